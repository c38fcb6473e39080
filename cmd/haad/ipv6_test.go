package main

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// IPv6 instances (RFC 5798 over IPv6) between haad processes: adverts
// from link-local addresses to ff02::12, the VIPs added without DAD and
// announced by unsolicited neighbour advertisements, a client pinging the
// global VIP through the failover.

var (
	vip6ll = netip.MustParseAddr("fe80::100")
	vip6   = netip.MustParseAddr("fd77::100")
)

// v6 is an IPv6 VI_1 with priority prio: the link-local VIP first, as
// RFC 5798 5.2.9 asks.
func v6(prio int, extra string) instance {
	return instance{name: "VI_1", vrid: 51, prio: prio, vips: []string{vip6ll.String() + "/64", vip6.String() + "/64"}, extra: extra}
}

func TestIPv6FailoverAndPreemption(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2)
	n1, n2 := c.lab.Nodes[0], c.lab.Nodes[1]
	c.start(n1, v6(200, ""))
	c.start(n2, v6(100, ""))
	c.waitHolder(vip6, n1, 5*time.Second)
	c.stableHolder(vip6, n1, 500*time.Millisecond)
	c.stableHolder(vip6ll, n1, 100*time.Millisecond)
	st := c.wantStatus(n2, "BACKUP", nil)
	if st.Master != n1.LinkLocal.String() {
		t.Fatalf("n2 follows %q, want n1's link-local %s", st.Master, n1.LinkLocal)
	}
	r, err := c.api(n1).GetInstance(context.Background(), &haav1.GetInstanceRequest{Name: "VI_1"})
	if in := r.GetInstance(); err != nil || in.GetFamily() != "ipv6" || in.GetSourceAddress() != n1.LinkLocal.String() {
		t.Fatalf("the API shows %v (%v), want family ipv6 from %s", in, err, n1.LinkLocal)
	}
	if m := c.wantStatus(n1, "MASTER", nil); m.GARPsSent == 0 {
		t.Errorf("the IPv6 master sent no neighbour advertisement: %+v", m)
	}

	fo, err := c.lab.MeasureFailover(c.lab.Clients[0], vip6, n1, c.procs[n1], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	bound := 3*100*time.Millisecond + 100*time.Millisecond*(256-100)/256
	t.Logf("IPv6 outage seen by ping -6 %v (protocol bound %v)", fo.Outage, bound)
	if fo.NewMaster != n2 || fo.Outage > bound+300*time.Millisecond {
		t.Fatalf("new master %s after %v, want n2 within %v", fo.NewMaster.Name, fo.Outage, bound+300*time.Millisecond)
	}
	if err := n1.PowerOn(); err != nil {
		t.Fatal(err)
	}
	c.start(n1, v6(200, ""))
	c.waitHolder(vip6, n1, 5*time.Second)
	c.stableHolder(vip6, n1, 300*time.Millisecond)
	if st := c.wantStatus(n2, "BACKUP", nil); st.Master != n1.LinkLocal.String() {
		t.Fatalf("after preemption n2 follows %q, want %s", st.Master, n1.LinkLocal)
	}
}

// IPv4 and IPv6 instances with the same VRID on one interface are two
// virtual routers (RFC 5798 5.2.3): each elects its own master.
func TestIPv6AndIPv4SameVRID(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2)
	n1, n2 := c.lab.Nodes[0], c.lab.Nodes[1]
	four := func(prio int) instance { return instance{name: "V4", vrid: 51, prio: prio} }
	six := func(prio int) instance { in := v6(prio, ""); in.name = "V6"; return in }
	c.start(n1, four(200), six(100))
	c.start(n2, four(100), six(200))
	c.waitHolder(vip, n1, 5*time.Second)
	c.waitHolder(vip6, n2, 5*time.Second)
	c.stableHolder(vip, n1, 500*time.Millisecond)
	c.stableHolder(vip6, n2, 100*time.Millisecond)
}

// Unicast IPv6 peers (global addresses): n2 names its source, n1 does
// not and sends from its address in the peer's network (not from its
// link-local one, which no router would forward).
func TestIPv6UnicastPeers(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2)
	n1, n2 := c.lab.Nodes[0], c.lab.Nodes[1]
	peer := func(self, other *lab.Node) string {
		return "    unicastPeers: [\"" + other.Addr6.String() + "\"]\n    sourceAddress: \"" + self.Addr6.String() + "\"\n"
	}
	c.start(n1, v6(200, "    unicastPeers: [\""+n2.Addr6.String()+"\"]\n"))
	c.start(n2, v6(100, peer(n2, n1)))
	c.waitHolder(vip6, n1, 5*time.Second)
	c.stableHolder(vip6, n1, 500*time.Millisecond)
	if st := c.wantStatus(n2, "BACKUP", nil); st.Master != n1.Addr6.String() {
		t.Fatalf("n2 follows %q, want %s", st.Master, n1.Addr6)
	}
	if err := c.procs[n1].Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	c.waitHolder(vip6, n2, 3*time.Second)
}
