package balancer

import (
	"context"
	"fmt"
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
	got := nftProblems(t, `virtualServers:
  - address: 10.9.0.1:80
    realServers:
      - {address: 10.9.1.1:80, upperThreshold: 100}
      - {address: 10.9.1.2:80, upperThreshold: 0}
  - fwmark: 3
    realServers: [{address: 10.9.2.1}]
`)
	want := []string{
		"virtualServers[0].realServers[0].upperThreshold: nftables backend: connection thresholds need the ipvs backend: the nftables backend does not count connections; remove them, or set loadBalancer.backend: ipvs",
		"virtualServers[1].realServers[0].address: nftables backend: needs a port with the nftables backend (its DNAT sets the destination port)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Prepare:\n got %q\nwant %q", got, want)
	}
}

// flushingBackend is a fake backend that can empty the whole table, as
// IPVS can: others' services included.
type flushingBackend struct {
	*fakeBackend
	flushes int
}

func (f *flushingBackend) Flush(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushes++
	f.state = lvs.State{}
	return nil
}

// TestBalancerFlushOnStartAndStop: loadBalancer.flushOnStart empties the
// table (another program's service too) before the first program, not at a
// reload; flushOnStop empties it at the stop instead of removing haad's
// services only (keepalived's lvs_flush, lvs_flush_on_stop).
func TestBalancerFlushOnStartAndStop(t *testing.T) {
	other := lvstest.VS(lvstest.TCPKey("10.8.0.1:80"), "rr", "10.8.1.1:80=1")
	for _, tc := range []struct {
		name              string
		start, stop       bool
		afterStart        []lvs.Key // besides web
		flushes, afterEnd int
	}{
		{"neither", false, false, []lvs.Key{other.Key}, 0, 1},
		{"at start", true, false, nil, 1, 0},
		{"at stop", false, true, []lvs.Key{other.Key}, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fb := &flushingBackend{fakeBackend: &fakeBackend{state: lvstest.StateOf(other.Clone())}}
			b := New(Deps{Backend: fb})
			doc := fmt.Sprintf(`loadBalancer: {flushOnStart: %v, flushOnStop: %v}
virtualServers:
  - {address: 10.9.0.1:80, realServers: [{address: 10.9.1.1}]}
`, tc.start, tc.stop)
			ctx := context.Background()
			for range 2 { // the second is a reload: no flush
				c, err := config.Resolve(lbConfig(t, doc))
				if err != nil {
					t.Fatal(err)
				}
				ch, err := b.Prepare(c)
				if err != nil {
					t.Fatal(err)
				}
				if err := b.Commit(ctx, ch); err != nil {
					t.Fatal(err)
				}
			}
			fb.mu.Lock()
			keys := fb.state.Keys()
			fb.mu.Unlock()
			want := append([]lvs.Key{lvstest.TCPKey("10.9.0.1:80")}, tc.afterStart...)
			if !sameKeys(keys, want) {
				t.Errorf("after start: %v, want %v", keys, want)
			}
			if err := b.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if fb.flushes != tc.flushes || len(fb.state) != tc.afterEnd {
				t.Errorf("%d flushes, %d services left (%s), want %d and %d", fb.flushes, len(fb.state), fb.state, tc.flushes, tc.afterEnd)
			}
		})
	}
}

func sameKeys(a, b []lvs.Key) bool {
	if len(a) != len(b) {
		return false
	}
	for _, k := range b {
		if !slices.Contains(a, k) {
			return false
		}
	}
	return true
}

// TestBalancerNFTablesRefusesFlushAndSorryForwarding: the nftables backend
// has no IPVS table to empty and forwards by DNAT only: both are refused
// at their fields.
func TestBalancerNFTablesRefusesFlushAndSorryForwarding(t *testing.T) {
	got := nftProblems(t, `loadBalancer: {flushOnStart: true, flushOnStop: true}
virtualServers:
  - address: 10.9.0.1:80
    sorryServer: 10.9.0.9:80
    sorryServerForwarding: dr
    realServers: [{address: 10.9.1.1:80}]
`)
	want := []string{
		"loadBalancer.flushOnStart: nftables backend: emptying the whole IPVS table needs the ipvs backend (the nftables backend touches its own table only, which it empties itself): remove it, or set loadBalancer.backend: ipvs",
		"loadBalancer.flushOnStop: nftables backend: emptying the whole IPVS table needs the ipvs backend (the nftables backend touches its own table only, which it empties itself): remove it, or set loadBalancer.backend: ipvs",
		"virtualServers[0].sorryServerForwarding: nftables backend: forwarding dr needs the ipvs backend: the nftables backend forwards by DNAT (nat)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Prepare:\n got %q\nwant %q", got, want)
	}
}

// nftProblems is what Prepare on the nftables backend says of a
// configuration, one "path: message" per problem.
func nftProblems(t *testing.T, yaml string) []string {
	t.Helper()
	b := New(Deps{Backend: nftChecks{&fakeBackend{state: lvs.State{}}}})
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	c, err := config.Resolve(lbConfig(t, yaml))
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Prepare(c)
	var got []string
	for _, f := range config.Fields(err) {
		got = append(got, f.Path+": "+f.Msg)
	}
	return got
}
