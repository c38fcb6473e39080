package main

import (
	"strings"
	"testing"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
)

// keepalived's IPsec AH authentication (auth_type AH), haad beside a real
// keepalived 2.2.7: each accepts the other's adverts as master, a
// priority-0 advert hands over, and a restarted haad goes on from the
// sequence numbers it hears, so keepalived keeps accepting it.
func TestInteropAH(t *testing.T) {
	t.Parallel()
	requireKeepalived(t)
	c := newCluster(t, 2)
	hn, kn := c.lab.Nodes[0], c.lab.Nodes[1]
	p := v2Pass
	ah := func(prio int) instance {
		in := p.haad(prio, "")
		in.extra = "    auth: {type: AH, password: \"s3cret\"}\n"
		return in
	}
	kaConf := strings.Replace(p.keepalived(kn, 100, "s3cret"), "auth_type PASS", "auth_type AH", 1)
	ahComplaints := append([]string{"IPSEC", "auth type"}, kaComplaints...)

	c.start(hn, ah(200))
	c.waitHolder(vip, hn, p.masterDown(200)+5*time.Second)
	ka := c.startKeepalived(kn, kaConf)
	ka.waitLog("(VI_1) Entering BACKUP STATE", 5*time.Second)
	// Longer than keepalived's master-down interval: it stays backup only
	// if it accepts haad's AH adverts.
	c.stableHolder(vip, hn, p.masterDown(100)+time.Second)
	ka.noLog("Entering MASTER STATE")
	ka.noLog(ahComplaints...)

	// haad stops: its priority-0 advert (with AH) hands over at once.
	ka.markLog()
	took := c.handover(c.procs[hn], kn, p)
	ka.wantLog("(VI_1) Backup received priority 0 advertisement")
	ka.noLog(ahComplaints...)
	if bound := p.masterDown(100) / 2; took > bound {
		t.Fatalf("keepalived took over %v after haad's SIGTERM: the AH priority-0 advert was not accepted", took)
	}

	// haad comes back (its counter starts at 0): it hears keepalived's
	// adverts, takes their sequence numbers over and preempts with the
	// next ones, which keepalived accepts.
	ka.markLog()
	c.start(hn, ah(200))
	c.waitHolder(vip, hn, p.masterDown(200)+5*time.Second)
	ka.waitLog("(VI_1) Entering BACKUP STATE", 5*time.Second)
	c.stableHolder(vip, hn, p.masterDown(100)+time.Second)
	ka.noLog(ahComplaints...)
	st := c.wantStatus(hn, "MASTER", nil)
	if st.AdvertsReceived == 0 {
		t.Fatalf("haad %+v never accepted keepalived's AH adverts", st)
	}

	// Another password on keepalived: each drops the other's adverts.
	ka.proc.Kill()
	ka.restart(strings.Replace(kaConf, "s3cret", "other", 1))
	ka.waitLog("IPSEC-AH : invalid IPSEC HMAC-MD5 value", 10*time.Second)
	err := lab.Poll(10*time.Second, 50*time.Millisecond, "haad to drop keepalived's adverts", func() (bool, error) {
		return c.status(hn)["VI_1"].Drops["auth_failure"] > 0, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
