package main

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/haa-dev/haa/deploy/lab"
)

// Virtual routes and rules follow mastership, on haad as on keepalived
// with the same lines: the master holds them, the backup does not, in
// both directions.

var (
	vrouteVia   = netip.MustParsePrefix("10.88.0.0/16")
	vrouteBlack = netip.MustParsePrefix("10.99.0.0/16")
	vruleFrom   = netip.MustParsePrefix("10.77.0.100/32")
)

const (
	vrouteLines = "10.88.0.0/16 via 10.77.0.254 table 100\nblackhole 10.99.0.0/16"
	vruleLine   = "from 10.77.0.100/32 table 100 priority 1000"
)

// routing reports which of the virtual routes (table 100 via, main
// blackhole) and the rule n holds.
func routing(t *testing.T, n *lab.Node) (via, black, rule bool) {
	t.Helper()
	h, err := n.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	rs, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Dst == nil {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		a, _ := netip.AddrFromSlice(r.Dst.IP.To4())
		p := netip.PrefixFrom(a, ones)
		via = via || (p == vrouteVia && r.Table == 100 && r.Gw.Equal(netip.MustParseAddr("10.77.0.254").AsSlice()))
		black = black || (p == vrouteBlack && r.Type == unix.RTN_BLACKHOLE)
	}
	rules, err := h.RuleList(netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if r.Src != nil && r.Src.String() == vruleFrom.String() && r.Table == 100 && r.Priority == 1000 {
			rule = true
		}
	}
	return via, black, rule
}

func waitRouting(t *testing.T, n *lab.Node, want bool, what string) {
	t.Helper()
	err := lab.Poll(5*time.Second, 20*time.Millisecond, fmt.Sprintf("%s on %s: routes and rule held=%v", what, n.Name, want), func() (bool, error) {
		via, black, rule := routing(t, n)
		return via == want && black == want && rule == want, nil
	})
	if err != nil {
		via, black, rule := routing(t, n)
		t.Fatalf("%v (via %v, blackhole %v, rule %v)", err, via, black, rule)
	}
}

func TestInteropVirtualRoutesFollowMastership(t *testing.T) {
	t.Parallel()
	requireKeepalived(t)
	c := newCluster(t, 2)
	hn, kn := c.lab.Nodes[0], c.lab.Nodes[1]
	p := v3Fast
	// The host's own route to the same destination, another gateway: it
	// must survive haad's adds and removals (haad's carry protocol
	// keepalived and are added beside it).
	hostRoute := func() *netlink.Route {
		return &netlink.Route{Dst: &net.IPNet{IP: net.IP{10, 88, 0, 0}, Mask: net.CIDRMask(16, 32)},
			Gw: net.IP{10, 77, 0, 253}, Table: 100, Protocol: unix.RTPROT_BOOT}
	}
	{
		h, err := hn.Handle()
		if err != nil {
			t.Fatal(err)
		}
		err = h.RouteAdd(hostRoute())
		h.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	hostRouteThere := func() bool {
		h, err := hn.Handle()
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		rs, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: 100}, netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Gw.Equal(net.IP{10, 77, 0, 253}) && r.Protocol == unix.RTPROT_BOOT {
				return true
			}
		}
		return false
	}
	in := p.haad(200, "")
	in.extra = "    virtualRoutes: [\"10.88.0.0/16 via 10.77.0.254 table 100\", \"blackhole 10.99.0.0/16\"]\n" +
		"    virtualRules: [\"" + vruleLine + "\"]\n"
	c.start(hn, in)
	c.waitHolder(vip, hn, p.masterDown(200)+5*time.Second)
	waitRouting(t, hn, true, "haad master")

	ka := c.startKeepalived(kn, kaExcluded(kn, 100, fmt.Sprintf("  virtual_ipaddress {\n    %s/24\n  }\n  virtual_routes {\n    10.88.0.0/16 via 10.77.0.254 table 100\n    blackhole 10.99.0.0/16\n  }\n  virtual_rules {\n    %s\n  }\n", vip, vruleLine)))
	ka.waitLog("(VI_1) Entering BACKUP STATE", 5*time.Second)
	c.stableHolder(vip, hn, p.masterDown(100)+time.Second)
	waitRouting(t, kn, false, "keepalived backup")
	ka.noLog(kaComplaints...)

	// haad stops: keepalived takes the routes over, haad removed its own.
	ka.markLog()
	c.handover(c.procs[hn], kn, p)
	waitRouting(t, kn, true, "keepalived master")
	waitRouting(t, hn, false, "haad stopped")
	if !hostRouteThere() {
		t.Fatal("haad removed the host's own route to 10.88.0.0/16 (via 10.77.0.253)")
	}

	// haad back with the higher priority: it preempts, and the routes
	// move back.
	c.start(hn, in)
	c.waitHolder(vip, hn, p.masterDown(200)+5*time.Second)
	waitRouting(t, hn, true, "haad master again")
	waitRouting(t, kn, false, "keepalived backup again")
	if !hostRouteThere() {
		t.Fatal("haad's start removed the host's own route to 10.88.0.0/16 (via 10.77.0.253)")
	}
}
