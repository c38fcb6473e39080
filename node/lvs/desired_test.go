package lvs_test

import (
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/haa-dev/haa/node/lvs"
	"github.com/haa-dev/haa/node/lvs/lvstest"
)

func TestDesired(t *testing.T) {
	a := netip.MustParseAddrPort("10.0.0.1:80")
	b := netip.MustParseAddrPort("10.0.0.2:80")
	sorry := netip.MustParseAddrPort("10.0.0.9:80")
	real := func(addr netip.AddrPort, w int, healthy bool) lvs.Real {
		return lvs.Real{Addr: addr, Weight: w, Healthy: healthy, Dynamic: -1, Override: -1}
	}
	inhibit := func(r lvs.Real) lvs.Real {
		r.Inhibit = true
		return r
	}
	drained := real(b, 2, true)
	drained.Drained = true
	override := real(b, 2, true)
	override.Override = 7
	dynamic := real(b, 2, true)
	dynamic.Dynamic = 4
	both := dynamic
	both.Override = 9
	tests := []struct {
		name      string
		g         lvs.Group
		wasUp     bool
		want      map[netip.AddrPort]int
		up, sorry bool
		hw        int
	}{
		{"all healthy", lvs.Group{Reals: []lvs.Real{real(a, 1, true), real(b, 3, true)}, Quorum: 1}, true,
			map[netip.AddrPort]int{a: 1, b: 3}, true, false, 4},
		{"failed one removed", lvs.Group{Reals: []lvs.Real{real(a, 1, true), real(b, 3, false)}, Quorum: 1}, true,
			map[netip.AddrPort]int{a: 1}, true, false, 1},
		{"failed one inhibited", lvs.Group{Reals: []lvs.Real{real(a, 1, true), inhibit(real(b, 3, false))}, Quorum: 1}, true,
			map[netip.AddrPort]int{a: 1, b: 0}, true, false, 1},
		{"all down, sorry", lvs.Group{Reals: []lvs.Real{real(a, 1, false), real(b, 3, false)}, Quorum: 1, Sorry: sorry}, true,
			map[netip.AddrPort]int{sorry: 1}, false, true, 0},
		{"all down, inhibited, sorry beside them", lvs.Group{Reals: []lvs.Real{inhibit(real(a, 1, false))}, Quorum: 1, Sorry: sorry}, true,
			map[netip.AddrPort]int{a: 0, sorry: 1}, false, true, 0},
		{"all down, no sorry", lvs.Group{Reals: []lvs.Real{real(a, 1, false)}, Quorum: 1}, true,
			map[netip.AddrPort]int{}, false, false, 0},
		{"quorum lost keeps healthy without sorry", lvs.Group{Reals: []lvs.Real{real(a, 1, true), real(b, 3, false)}, Quorum: 2}, true,
			map[netip.AddrPort]int{a: 1}, false, false, 1},
		{"quorum lost, sorry replaces healthy", lvs.Group{Reals: []lvs.Real{real(a, 1, true), real(b, 3, false)}, Quorum: 2, Sorry: sorry}, true,
			map[netip.AddrPort]int{sorry: 1}, false, true, 1},
		{"hysteresis keeps up", lvs.Group{Reals: []lvs.Real{real(a, 2, true), real(b, 3, false)}, Quorum: 3, Hysteresis: 1, Sorry: sorry}, true,
			map[netip.AddrPort]int{a: 2}, true, false, 2},
		{"hysteresis keeps down", lvs.Group{Reals: []lvs.Real{real(a, 3, true), real(b, 3, false)}, Quorum: 3, Hysteresis: 1, Sorry: sorry}, false,
			map[netip.AddrPort]int{sorry: 1}, false, true, 3},
		{"hysteresis comes up", lvs.Group{Reals: []lvs.Real{real(a, 4, true), real(b, 3, false)}, Quorum: 3, Hysteresis: 1, Sorry: sorry}, false,
			map[netip.AddrPort]int{a: 4}, true, false, 4},
		{"drained counts 0", lvs.Group{Reals: []lvs.Real{real(a, 1, true), drained}, Quorum: 2, Sorry: sorry}, true,
			map[netip.AddrPort]int{sorry: 1}, false, true, 1},
		{"drained stays programmed at 0", lvs.Group{Reals: []lvs.Real{real(a, 1, true), drained}, Quorum: 1}, true,
			map[netip.AddrPort]int{a: 1, b: 0}, true, false, 1},
		{"operator weight", lvs.Group{Reals: []lvs.Real{override}, Quorum: 1}, true, map[netip.AddrPort]int{b: 7}, true, false, 7},
		{"dynamic weight", lvs.Group{Reals: []lvs.Real{dynamic}, Quorum: 1}, true, map[netip.AddrPort]int{b: 4}, true, false, 4},
		{"operator beats dynamic", lvs.Group{Reals: []lvs.Real{both}, Quorum: 1}, true, map[netip.AddrPort]int{b: 9}, true, false, 9},
		{"no real servers, sorry", lvs.Group{Quorum: 1, Sorry: sorry}, true, map[netip.AddrPort]int{sorry: 1}, false, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := lvs.Desired(tt.g, tt.wasUp)
			if w := lvstest.Weights(got.VS.Dests); !maps.Equal(w, tt.want) {
				t.Errorf("dests = %v, want %v", w, tt.want)
			}
			if got.Up != tt.up || got.SorryActive != tt.sorry || got.HealthyWeight != tt.hw {
				t.Errorf("up %v sorry %v weight %d, want %v %v %d", got.Up, got.SorryActive, got.HealthyWeight, tt.up, tt.sorry, tt.hw)
			}
		})
	}
}

// TestDesiredInhibitedStayBesideTheSorryServer: with inhibit_on_failure,
// keepalived keeps every real server at weight 0 while the sorry server
// takes the connections (quorum lost): the failed ones (inhibited) and the
// healthy ones too (perform_quorum_state removes them, which inhibit turns
// into weight 0). Regaining the quorum brings the healthy ones back.
func TestDesiredInhibitedStayBesideTheSorryServer(t *testing.T) {
	a := netip.MustParseAddrPort("10.0.0.1:80")
	b := netip.MustParseAddrPort("10.0.0.2:80")
	c := netip.MustParseAddrPort("10.0.0.3:80")
	sorry := netip.MustParseAddrPort("10.0.0.9:80")
	reals := []lvs.Real{
		{Addr: a, Weight: 2, Healthy: true, Dynamic: -1, Override: -1, Inhibit: true},
		{Addr: b, Weight: 3, Healthy: false, Dynamic: -1, Override: -1, Inhibit: true},
		{Addr: c, Weight: 3, Healthy: false, Dynamic: -1, Override: -1, Inhibit: true},
	}
	g := lvs.Group{Service: lvs.Service{Scheduler: "wrr"}, Reals: reals, Sorry: sorry, Quorum: 5}
	out := lvs.Desired(g, true)
	want := map[netip.AddrPort]int{a: 0, b: 0, c: 0, sorry: 1}
	if w := lvstest.Weights(out.VS.Dests); !maps.Equal(w, want) || out.Up || !out.SorryActive {
		t.Fatalf("quorum lost: dests %v up %v sorry %v, want %v, down, sorry", w, out.Up, out.SorryActive, want)
	}
	// The plan from the table with quorum is weight 0 for the healthy one
	// and the sorry server added: no real server removed.
	before := lvs.Desired(lvs.Group{Service: g.Service, Reals: reals, Sorry: sorry, Quorum: 2}, true)
	got := lvs.Diff(lvs.State{g.Service.Key: before.VS}, lvs.State{g.Service.Key: out.VS}).Strings()
	wantPlan := []string{
		"update-dest " + g.Service.Key.String() + " 10.0.0.1:80 weight 0",
		"add-dest " + g.Service.Key.String() + " 10.0.0.9:80 weight 1",
	}
	if !slices.Equal(got, wantPlan) {
		t.Fatalf("plan %q, want %q", got, wantPlan)
	}
	g.Reals[1].Healthy, g.Reals[2].Healthy = true, true
	out = lvs.Desired(g, false)
	want = map[netip.AddrPort]int{a: 2, b: 3, c: 3}
	if w := lvstest.Weights(out.VS.Dests); !maps.Equal(w, want) || !out.Up || out.SorryActive {
		t.Fatalf("quorum back: dests %v, want %v", w, want)
	}
}

// TestDesiredSorryServerAsKeepalived: per real server inhibit (one that
// inhibits, one that does not), sorry_server_inhibit (the sorry server at
// weight 0 while the service is up) and sorry_server_lvs_method (the sorry
// server's own forwarding method).
func TestDesiredSorryServerAsKeepalived(t *testing.T) {
	a := netip.MustParseAddrPort("10.0.0.1:80")
	b := netip.MustParseAddrPort("10.0.0.2:80")
	sorry := netip.MustParseAddrPort("10.0.0.9:80")
	svc := lvs.Service{Scheduler: "wrr", Forwarding: lvs.NAT}
	g := lvs.Group{Service: svc, Sorry: sorry, SorryForwarding: lvs.DirectRoute, SorryInhibit: true, Quorum: 1, Reals: []lvs.Real{
		{Addr: a, Weight: 1, Healthy: true, Dynamic: -1, Override: -1, Inhibit: true},
		{Addr: b, Weight: 1, Healthy: false, Dynamic: -1, Override: -1},
	}}
	up := lvs.Desired(g, true).VS.Dests
	want := map[netip.AddrPort]lvs.DestAttrs{a: {Weight: 1}, sorry: {Weight: 0, Forwarding: lvs.DirectRoute}}
	if !maps.Equal(up, want) {
		t.Errorf("up: %v, want %v", up, want)
	}
	g.Reals[0].Healthy = false
	down := lvs.Desired(g, true)
	want = map[netip.AddrPort]lvs.DestAttrs{a: {Weight: 0}, sorry: {Weight: 1, Forwarding: lvs.DirectRoute}}
	if !maps.Equal(down.VS.Dests, want) || !down.SorryActive {
		t.Errorf("down: %v, want %v", down.VS.Dests, want)
	}
	// The plan that takes the sorry server in is one update, not an add.
	p := lvs.Diff(lvs.State{svc.Key: lvs.Desired(lvs.Group{Service: svc, Sorry: sorry, SorryForwarding: lvs.DirectRoute,
		SorryInhibit: true, Quorum: 1, Reals: []lvs.Real{{Addr: a, Weight: 1, Healthy: true, Dynamic: -1, Override: -1, Inhibit: true}}}, true).VS},
		lvs.State{svc.Key: down.VS}).Strings()
	wantPlan := []string{
		"update-dest " + svc.Key.String() + " 10.0.0.1:80 weight 0",
		"update-dest " + svc.Key.String() + " 10.0.0.9:80 weight 1 dr",
	}
	if !slices.Equal(p, wantPlan) {
		t.Errorf("plan %q, want %q", p, wantPlan)
	}
}
