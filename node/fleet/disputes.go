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
	members := map[group][]int{} // indexes into hs
	for i, h := range hs {
		g := group{h.VirtualServer, h.SetHash}
		members[g] = append(members[g], i)
	}
	down, up := map[key][]string{}, map[key][]string{}
	for g, ms := range members {
		// Who sees each server down, in this group: the others see it up.
		seen := map[string][]int{}
		for _, i := range ms {
			for _, rs := range hs[i].Down {
				seen[rs] = append(seen[rs], i)
			}
		}
		for rs, by := range seen {
			k := key{g.vs, rs}
			for _, i := range ms {
				if slices.Contains(by, i) {
					down[k] = append(down[k], hs[i].Node)
				} else {
					up[k] = append(up[k], hs[i].Node)
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
// of every live member. A virtual server with many real servers down comes
// in several entries of the same name (so that each fits a gossip packet):
// they are one Verdicts here.
func fleetVerdicts(view gossip.View, self *haav1.NodeSummary) []Verdicts {
	var out []Verdicts
	add := func(node string, s *haav1.NodeSummary) {
		at := map[string]int{}
		for _, v := range s.GetVirtualServers() {
			if i, ok := at[v.GetName()]; ok {
				out[i].Down = append(slices.Clip(out[i].Down), v.GetDown()...)
				continue
			}
			at[v.GetName()] = len(out)
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
