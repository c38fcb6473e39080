package main

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// acceptMode false (keepalived's no_accept, RFC 5798 6.1): the master
// holds and announces the VIP, but packets to it are dropped (nftables
// table inet haa_accept, owned by haad, there only while master); with
// the default (keepalived's accept) the VIP answers. IPv4 and IPv6.
func TestAcceptModeFalseDropsPacketsToVIPs(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2)
	n1, n2 := c.lab.Nodes[0], c.lab.Nodes[1]
	off := "    acceptMode: false\n"
	c.start(n1, instance{name: "V4", vrid: 51, prio: 200, extra: off}, func() instance { in := v6(200, off); in.name = "V6"; return in }())
	c.start(n2, instance{name: "V4", vrid: 51, prio: 100}, func() instance { in := v6(100, ""); in.name = "V6"; return in }())
	c.waitHolder(vip, n1, 5*time.Second)
	c.waitHolder(vip6, n1, 5*time.Second)
	for _, a := range []netip.Addr{vip, vip6} {
		if replies := c.pings(a, 500*time.Millisecond); replies > 0 {
			t.Fatalf("the master with acceptMode false answered %d pings to %s", replies, a)
		}
	}
	for set, want := range map[string]netip.Addr{"vips4": vip, "vips6": vip6} {
		got, ok, err := n1.NFTSetAddrs("haa_accept", set)
		if err != nil || !ok || !slices.Contains(got, want) {
			t.Fatalf("set %s of table inet haa_accept on the master: %v (table there: %v, %v), want %s", set, got, ok, err, want)
		}
	}
	// The backup takes over: it accepts (the default), and the old
	// master, stopped, leaves no table behind.
	if err := c.procs[n1].Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	c.waitHolder(vip, n2, 3*time.Second)
	c.waitHolder(vip6, n2, 3*time.Second)
	for _, a := range []netip.Addr{vip, vip6} {
		if replies := c.pings(a, 500*time.Millisecond); replies == 0 {
			t.Fatalf("the master with the default acceptMode does not answer pings to %s", a)
		}
	}
	if _, ok, err := n1.NFTSetAddrs("haa_accept", "vips4"); ok || err != nil {
		t.Fatalf("stopped haad left its table (%v)", err)
	}
}

// pings pings a from the client every 10 ms for d and returns how many
// replies came.
func (c *cluster) pings(a netip.Addr, d time.Duration) int {
	c.t.Helper()
	p, err := c.lab.Clients[0].StartPing(a, 10*time.Millisecond, d)
	if err != nil {
		c.t.Fatal(err)
	}
	<-time.After(d + 50*time.Millisecond)
	return len(p.Stop().Replies)
}
