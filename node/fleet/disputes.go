package fleet

import (
	"cmp"
	"slices"
	"strings"

	"github.com/haa-dev/haa/node/gossip"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Verdicts are one director's verdicts on one virtual server's real
// servers, as its summary says: those it sees down; every other one of
// the set it checks (SetHash) is up.
type Verdicts struct {
	Node, VirtualServer string
	SetHash             uint32
	Down                []string
}

// Disputes returns the real servers the directors disagree about (some
// see it down, others up), sorted by virtual server then real server,
// each with its directors sorted. Directors are compared only where they
// check the same set of real servers (SetHash): one that does not check
// a server says nothing of it. Pure.
func Disputes(hs []Verdicts) []*haav1.FleetIssue {
	type group struct {
		vs   string
		hash uint32
	}
	type key struct{ vs, rs string }
	members := map[group][]Verdicts{}
	for _, h := range hs {
		g := group{h.VirtualServer, h.SetHash}
		members[g] = append(members[g], h)
	}
	down, up := map[key][]string{}, map[key][]string{}
	for g, ms := range members {
		for _, h := range ms {
			for _, rs := range h.Down {
				down[key{g.vs, rs}] = append(down[key{g.vs, rs}], h.Node)
			}
		}
		for _, h := range ms {
			for k := range down {
				if k.vs == g.vs && !slices.Contains(h.Down, k.rs) && slices.ContainsFunc(ms, func(o Verdicts) bool { return slices.Contains(o.Down, k.rs) }) {
					up[k] = append(up[k], h.Node)
				}
			}
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

// fleetVerdicts gathers the virtual servers' health of this node (self) and
// of every live member.
func fleetVerdicts(view gossip.View, self *haav1.NodeSummary) []Verdicts {
	var out []Verdicts
	add := func(node string, s *haav1.NodeSummary) {
		for _, v := range s.GetVirtualServers() {
			out = append(out, Verdicts{Node: node, VirtualServer: v.GetName(), SetHash: v.GetSetHash(), Down: v.GetDown()})
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
