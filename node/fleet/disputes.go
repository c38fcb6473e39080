package fleet

import (
	"cmp"
	"slices"
	"strings"

	"github.com/haa-dev/haa/node/gossip"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Verdict is one director's view of one real server, as its summary says.
type Verdict struct {
	Node, VirtualServer, Address string
	Healthy                      bool
}

// Disputes returns the real servers the directors disagree about (some
// see it down, others up), sorted by virtual server then real server,
// each with its directors sorted. Pure.
func Disputes(vs []Verdict) []*haav1.FleetIssue {
	type key struct{ vs, rs string }
	down, up := map[key][]string{}, map[key][]string{}
	for _, v := range vs {
		k := key{v.VirtualServer, v.Address}
		if v.Healthy {
			up[k] = append(up[k], v.Node)
		} else {
			down[k] = append(down[k], v.Node)
		}
	}
	var keys []key
	for k := range down {
		if len(up[k]) > 0 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b key) int { return cmp.Or(strings.Compare(a.vs, b.vs), strings.Compare(a.rs, b.rs)) })
	out := make([]*haav1.FleetIssue, 0, len(keys))
	for _, k := range keys {
		d, u := slices.Compact(slices.Sorted(slices.Values(down[k]))), slices.Compact(slices.Sorted(slices.Values(up[k])))
		out = append(out, &haav1.FleetIssue{Kind: &haav1.FleetIssue_RealServerDisputed{RealServerDisputed: &haav1.RealServerDisputed{
			VirtualServer: k.vs, RealServer: k.rs, DownOn: d, UpOn: u}}})
	}
	return out
}

// fleetVerdicts gathers the real-server verdicts of this node (self) and
// of every live member.
func fleetVerdicts(view gossip.View, self *haav1.NodeSummary) []Verdict {
	var out []Verdict
	add := func(node string, s *haav1.NodeSummary) {
		for _, v := range s.GetRealServers() {
			out = append(out, Verdict{Node: node, VirtualServer: v.GetVirtualServer(), Address: v.GetAddress(), Healthy: v.GetHealthy()})
		}
	}
	add(view.Self, self)
	for _, m := range view.Members {
		if m.Name != view.Self && live(m.State) {
			add(m.Name, m.Summary)
		}
	}
	return out
}
