package balancer

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/haa-dev/haa/node/lvs"
)

// keepIfPeersSeeUp: a real server this director's check sees down stays
// in the table while every other director sees it up, for the bound at
// most; one a peer sees down too goes at once; without the policy the
// check alone decides (keepalived's behaviour).
func TestBalancerKeepIfPeersSeeUp(t *testing.T) {
	fb := &fakeBackend{state: lvs.State{}}
	a := lbAgent(t, fb)
	ln1, ln2, ln3 := listener(t), listener(t), listener(t)
	rs1 := netip.MustParseAddrPort(ln1.Addr().String())
	rs2 := netip.MustParseAddrPort(ln2.Addr().String())
	rs3 := netip.MustParseAddrPort(ln3.Addr().String())
	const chk = "check: {tcp: {}, interval: 100ms, timeout: 100ms, retryDelay: 20ms, fall: 1, rise: 1, jitter: 0s}"
	cfg := lbConfig(t, fmt.Sprintf(`virtualServers:
  - name: kept
    address: 10.9.0.1:80
    keepIfPeersSeeUp: 2s
    %s
    realServers: [{address: %s}, {address: %s}]
  - name: plain
    address: 10.9.0.2:80
    %s
    realServers: [{address: %s}]
`, chk, rs1, rs2, chk, rs3))
	if _, err := a.Apply(context.Background(), cfg, applyOptions{}); err != nil {
		t.Fatal(err)
	}
	kept := lvs.Key{Addr: netip.MustParseAddrPort("10.9.0.1:80"), Proto: lvs.TCP}
	plain := lvs.Key{Addr: netip.MustParseAddrPort("10.9.0.2:80"), Proto: lvs.TCP}
	kset, pset := SetHash([]netip.AddrPort{rs2, rs1}), SetHash([]netip.AddrPort{rs3})
	a.SetPeerVerdicts(PeerVerdicts{
		"kept":  {{Node: "lb2", SetHash: kset}, {Node: "lb3", SetHash: kset}, {Node: "lb4", SetHash: 1, Down: []netip.AddrPort{rs1}}},
		"plain": {{Node: "lb2", SetHash: pset}},
	})
	in := func(k lvs.Key, rs netip.AddrPort) bool { _, ok := fb.dests(k)[rs]; return ok }
	waitFor(t, "every real server programmed", func() bool { return in(kept, rs1) && in(kept, rs2) && in(plain, rs3) })

	down := time.Now()
	ln1.Close()
	ln2.Close()
	ln3.Close()
	waitFor(t, "plain's real server removed (no policy)", func() bool { return !in(plain, rs3) })
	waitFor(t, "kept's real servers down for this director", func() bool {
		rs := a.Status().VirtualServers[0].Reals
		return !rs[0].Healthy && !rs[1].Healthy
	})
	for i, rs := range a.Status().VirtualServers[0].Reals {
		if rs.KeptUntil.IsZero() || !rs.Programmed || !in(kept, rs.Addr) {
			t.Fatalf("real server %d (%s): kept until %v, programmed %v: want kept in the table", i, rs.Addr, rs.KeptUntil, rs.Programmed)
		}
	}
	// A peer sees rs2 down too: it goes at once.
	a.SetPeerVerdicts(PeerVerdicts{"kept": {{Node: "lb2", SetHash: kset, Down: []netip.AddrPort{rs2}}, {Node: "lb3", SetHash: kset}}})
	waitFor(t, "rs2 removed once a peer sees it down", func() bool { return !in(kept, rs2) })
	if !in(kept, rs1) {
		t.Fatal("rs1 removed with rs2, while its peers still see it up")
	}
	if took := time.Since(down); took > 1500*time.Millisecond {
		t.Fatalf("rs2 taken out %v after its check failed: want at once when a peer sees it down", took)
	}
	// rs1: the bound is over.
	waitFor(t, "rs1 removed after keepIfPeersSeeUp", func() bool { return !in(kept, rs1) })
	if took := time.Since(down); took < 1800*time.Millisecond || took > 4*time.Second {
		t.Fatalf("rs1 removed %v after its check failed, want about 2s (keepIfPeersSeeUp) plus a tick", took)
	}
	if rs := a.Status().VirtualServers[0].Reals[0]; !rs.KeptUntil.IsZero() || rs.Programmed {
		t.Fatalf("rs1 after the bound: %+v", rs)
	}
}
