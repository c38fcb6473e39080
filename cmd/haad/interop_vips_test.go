package main

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
)

// keepalived.conf with keepalived's virtual_ipaddress_excluded, or
// without any address (version 2), beside haad's excludedVips / no vips.
// keepalived drops adverts whose address list is not its own, so these
// pairs only work if haad advertises exactly what keepalived does.

var (
	excl4 = netip.MustParseAddr("10.77.0.101")
	excl6 = netip.MustParseAddr("fd77::101")
)

func kaExcluded(n *lab.Node, prio int, addrs string) string {
	return fmt.Sprintf(`global_defs {
  router_id %s
  vrrp_version 3
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority %d
  advert_int 0.1
%s}
`, n.Name, prio, addrs)
}

// haad master with excludedVips, keepalived backup with the same
// virtual_ipaddress_excluded: keepalived accepts haad's adverts (the
// excluded addresses are not in them), haad holds and announces every
// address; on haad's stop keepalived takes over and haad removes them all.
// Then the reverse: keepalived master, haad backup hearing it.
func TestInteropExcludedAddresses(t *testing.T) {
	t.Parallel()
	requireKeepalived(t)
	c := newCluster(t, 2)
	hn, kn := c.lab.Nodes[0], c.lab.Nodes[1]
	p := v3Fast
	in := p.haad(200, "")
	in.extra = fmt.Sprintf("    excludedVips: [%s/24, %s/64]\n", excl4, excl6)
	c.start(hn, in)
	c.waitHolder(vip, hn, p.masterDown(200)+5*time.Second)
	// The addresses are added one after the other: the excluded ones a
	// moment after the VIP.
	for _, a := range []netip.Addr{excl4, excl6} {
		if err := lab.Poll(2*time.Second, 10*time.Millisecond, "the excluded "+a.String()+" on the master", func() (bool, error) {
			return hn.HasAddr(a)
		}); err != nil {
			t.Fatalf("haad master does not hold the excluded %s (%v)", a, err)
		}
	}
	ka := c.startKeepalived(kn, kaExcluded(kn, 100, fmt.Sprintf("  virtual_ipaddress {\n    %s/24\n  }\n  virtual_ipaddress_excluded {\n    %s/24\n    %s/64\n  }\n", vip, excl4, excl6)))
	ka.waitLog("(VI_1) Entering BACKUP STATE", 5*time.Second)
	c.stableHolder(vip, hn, p.masterDown(100)+time.Second)
	ka.noLog("Entering MASTER STATE")
	ka.noLog(kaComplaints...)
	st := c.wantStatus(hn, "MASTER", nil)
	if st.GARPsSent == 0 {
		t.Errorf("haad master sent no gratuitous ARP/NA: %+v", st)
	}

	ka.markLog()
	took := c.handover(c.procs[hn], kn, p)
	ka.waitLog("(VI_1) Entering MASTER STATE", 5*time.Second)
	for _, a := range []netip.Addr{excl4, excl6} {
		if ok, err := hn.HasAddr(a); err != nil || ok {
			t.Errorf("haad stopped but still holds the excluded %s (%v)", a, err)
		}
	}
	t.Logf("haad stopped: keepalived master after %v", took)

	// haad as the backup of keepalived's master: it hears the adverts
	// (no drop: the address lists agree) and holds nothing.
	in.prio = 100
	c.start(hn, in)
	c.stableHolder(vip, kn, p.masterDown(100)+time.Second)
	c.wantStatus(hn, "BACKUP", kn)
}

// A version 2 instance without addresses, both sides: the election alone.
func TestInteropNoAddresses(t *testing.T) {
	t.Parallel()
	requireKeepalived(t)
	c := newCluster(t, 2)
	hn, kn := c.lab.Nodes[0], c.lab.Nodes[1]
	in := instance{name: "VI_1", vrid: 51, prio: 200, version: 2, interval: "1s", vips: []string{}}
	c.start(hn, in)
	c.waitRunning(hn)
	ka := c.startKeepalived(kn, strings.Replace(kaExcluded(kn, 100, ""), "vrrp_version 3", "vrrp_version 2", 1))
	ka.waitLog("(VI_1) Entering BACKUP STATE", 5*time.Second)
	err := lab.Poll(10*time.Second, 50*time.Millisecond, "haad to be master", func() (bool, error) {
		return c.status(hn)["VI_1"].State == "MASTER", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second) // longer than keepalived's master-down interval
	ka.noLog("Entering MASTER STATE")
	ka.noLog(kaComplaints...)
	c.wantStatus(hn, "MASTER", nil)
}
