package balancer

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/haa-dev/haa/node/lvs"
)

// A virtual server group: every service of the group gets the same
// destinations, each real server is checked once, a drain reaches every
// service, and services that leave the group (or the whole group) are
// removed from the backend.
func TestBalancerGroupProgramsEveryService(t *testing.T) {
	fb := &fakeBackend{state: lvs.State{}}
	a := lbAgent(t, fb)
	apply := func(y string) {
		t.Helper()
		if _, err := a.Apply(context.Background(), lbConfig(t, y), applyOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	key := func(s string) lvs.Key { return lvs.Key{Addr: netip.MustParseAddrPort(s), Proto: lvs.TCP} }
	rs1, rs2 := netip.MustParseAddrPort("10.9.1.1:80"), netip.MustParseAddrPort("10.9.1.2:80")
	apply(`virtualServers:
  - {name: web, group: ["10.9.0.1:80", "10.9.0.10-11:80"], realServers: [{address: 10.9.1.1}, {address: 10.9.1.2, weight: 3}]}
`)
	for _, k := range []string{"10.9.0.1:80", "10.9.0.10:80", "10.9.0.11:80"} {
		if d := fb.dests(key(k)); len(d) != 2 || d[rs1] != 1 || d[rs2] != 3 {
			t.Errorf("%s: destinations %v, want both real servers", k, d)
		}
	}
	if _, err := a.SetRealServer("web", "10.9.1.2:80", RealServerAction{Drain: true}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"10.9.0.1:80", "10.9.0.10:80", "10.9.0.11:80"} {
		if d := fb.dests(key(k)); d[rs2] != 0 || d[rs1] != 1 {
			t.Errorf("%s after the drain: %v, want 10.9.1.2 at weight 0", k, d)
		}
	}
	vss, _ := a.VirtualServers(context.Background())
	if len(vss) != 1 || len(vss[0].Reals) != 2 || len(vss[0].Also) != 2 {
		t.Fatalf("VirtualServers: %+v", vss)
	}

	// The group shrinks: the service that left is removed, the others
	// stay as they are.
	apply(`virtualServers:
  - {name: web, group: ["10.9.0.1:80", "10.9.0.10:80"], realServers: [{address: 10.9.1.1}, {address: 10.9.1.2, weight: 3}]}
`)
	fb.mu.Lock()
	_, left := fb.state[key("10.9.0.11:80")]
	n := len(fb.state)
	fb.mu.Unlock()
	if left || n != 2 {
		t.Errorf("after the group shrank: 10.9.0.11 still programmed %v, %d services (want 2)", left, n)
	}
	apply("")
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if len(fb.state) != 0 {
		t.Errorf("the group removed, the backend holds %v", fb.state)
	}
}

// countingBackend is a fakeBackend with connection counts.
type countingBackend struct {
	*fakeBackend
	conns map[lvs.Key]map[netip.AddrPort]lvs.Conns
}

func (c countingBackend) Conns(context.Context) (map[lvs.Key]map[netip.AddrPort]lvs.Conns, error) {
	return c.conns, nil
}

// A real server of a group counts the connections of every service of
// the group.
func TestBalancerGroupSumsConnections(t *testing.T) {
	key := func(s string) lvs.Key { return lvs.Key{Addr: netip.MustParseAddrPort(s), Proto: lvs.TCP} }
	rs := netip.MustParseAddrPort("10.9.1.1:80")
	cb := countingBackend{&fakeBackend{state: lvs.State{}}, map[lvs.Key]map[netip.AddrPort]lvs.Conns{
		key("10.9.0.1:80"):  {rs: {Active: 3, Inactive: 1}},
		key("10.9.0.10:80"): {rs: {Active: 2}},
	}}
	b := New(Deps{Backend: cb, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	a := &testBalancer{b, t}
	if _, err := a.Apply(context.Background(), lbConfig(t, `virtualServers:
  - {name: web, group: ["10.9.0.1:80", "10.9.0.10:80"], realServers: [{address: 10.9.1.1}]}
`), applyOptions{}); err != nil {
		t.Fatal(err)
	}
	vss, _ := a.VirtualServers(context.Background())
	if c := vss[0].Reals[0].Conns; c == nil || c.Active != 5 || c.Inactive != 1 {
		t.Errorf("connections %+v, want 5 active and 1 inactive (both services)", c)
	}
}
