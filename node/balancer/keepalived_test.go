package balancer

import (
	"context"
	"slices"
	"testing"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/lvs"
	"github.com/haa-dev/haa/node/lvs/lvstest"
	"github.com/haa-dev/haa/node/lvs/nft"
)

// nftChecks is a fake backend that refuses what the nftables backend
// refuses (its Supports and SupportsDests, which need no kernel).
type nftChecks struct{ *fakeBackend }

func (nftChecks) Name() string { return "nftables" }

func (nftChecks) Supports(s lvs.Service) error { return (*nft.Backend)(nil).Supports(s) }

func (nftChecks) SupportsDests(vs *lvs.VirtualServer) error {
	return (*nft.Backend)(nil).SupportsDests(vs)
}

// TestBalancerThresholdsKeptThroughWeightChanges: the thresholds of the
// configuration are programmed, and a drain, an enable and a weight
// change carry them (they used to be reset to 0 by any update).
func TestBalancerThresholdsKeptThroughWeightChanges(t *testing.T) {
	fb := &fakeBackend{state: lvs.State{}}
	a := lbAgent(t, fb)
	ctx := context.Background()
	if _, err := a.Apply(ctx, lbConfig(t, `virtualServers:
  - name: web
    address: 10.9.0.1:80
    realServers:
      - {address: 10.9.1.1, upperThreshold: 100, lowerThreshold: 80}
      - {address: 10.9.1.2}
`), applyOptions{}); err != nil {
		t.Fatal(err)
	}
	k := lvstest.TCPKey("10.9.0.1:80")
	want := lvs.Thresholds{Upper: 100, Lower: 80, Set: true}
	for _, act := range []RealServerAction{{Drain: true}, {Enable: true}, {Weight: ptr(7)}} {
		n := fb.count()
		rs, err := a.SetRealServer("web", "10.9.1.1:80", act)
		if err != nil {
			t.Fatal(err)
		}
		if rs.Thresholds != want {
			t.Errorf("status thresholds %+v, want %+v", rs.Thresholds, want)
		}
		fb.mu.Lock()
		p := fb.plans[n]
		got := fb.state[k].Dests[lvstest.TCPKey("10.9.1.1:80").Addr].Thresholds
		fb.mu.Unlock()
		if len(p) != 1 || p[0].Dest.Thresholds != want || got != want {
			t.Errorf("after %+v: plan %q, programmed %+v, want thresholds %+v", act, p.Strings(), got, want)
		}
	}
}

// TestBalancerNFTablesRefusesThresholds: the nftables backend cannot
// limit connections: thresholds are refused at their field, with what to
// do instead.
func TestBalancerNFTablesRefusesThresholds(t *testing.T) {
	fb := &fakeBackend{state: lvs.State{}}
	b := New(Deps{Backend: nftChecks{fb}})
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	c, err := config.Resolve(lbConfig(t, `virtualServers:
  - address: 10.9.0.1:80
    realServers:
      - {address: 10.9.1.1:80, upperThreshold: 100}
      - {address: 10.9.1.2:80, upperThreshold: 0}
  - fwmark: 3
    realServers: [{address: 10.9.2.1}]
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Prepare(c)
	var got []string
	for _, f := range config.Fields(err) {
		got = append(got, f.Path+": "+f.Msg)
	}
	want := []string{
		"virtualServers[0].realServers[0].upperThreshold: nftables backend: connection thresholds need the ipvs backend: the nftables backend does not count connections; remove them, or set loadBalancer.backend: ipvs",
		"virtualServers[1].realServers[0].address: nftables backend: needs a port with the nftables backend (its DNAT sets the destination port)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Prepare:\n got %q\nwant %q", got, want)
	}
}
