package fleet

// Detection finds the problems of a fleet from what its nodes report
// through gossip: split brains (two nodes MASTER of one virtual router on
// one segment) and vrid collisions (one vrid used by different virtual
// routers on one segment). It is pure: no I/O, no clock. The detector
// (view.go) gathers every live node's instances, calls Detect, and feeds
// the issues to a Tracker to learn which appeared and which are over.

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"google.golang.org/protobuf/proto"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Instance is one node's instance as that node reports it.
type Instance struct {
	Node string
	Name string
	// Segment is the network of the instance's source address on its
	// interface, e.g. "10.77.0.0/24": which adverts reach which nodes.
	// Empty (unknown): the instance takes no part in detection.
	Segment string
	// Definition identifies the virtual router (config.Definition): equal
	// on every node running the same one. Empty: unknown, not compared.
	Definition string
	VRID       uint32
	State      haav1.State
}

// group is one virtual router as the segment sees it: (segment, vrid).
type group struct {
	segment string
	vrid    uint32
}

// Detect returns the fleet's split brains and vrid collisions, sorted by
// segment (as networks when they parse), vrid, then kind (split brain
// before vrid collision). Instances with an empty Segment are ignored.
//
//   - Split brain: two or more distinct nodes report MASTER for one
//     (segment, vrid). Masters lists each (node, instance) MASTER there.
//   - Vrid collision: two or more distinct non-empty Definitions on one
//     (segment, vrid). Instances lists every (node, instance) there.
//
// The lists are sorted by node, then instance, without repeats.
func Detect(ins []Instance) []*haav1.FleetIssue {
	groups := map[group][]Instance{}
	for _, in := range ins {
		if in.Segment == "" {
			continue
		}
		g := group{in.Segment, in.VRID}
		groups[g] = append(groups[g], in)
	}
	keys := make([]group, 0, len(groups))
	for g := range groups {
		keys = append(keys, g)
	}
	slices.SortFunc(keys, func(a, b group) int {
		if c := compareSegments(a.segment, b.segment); c != 0 {
			return c
		}
		return cmp.Compare(a.vrid, b.vrid)
	})
	var out []*haav1.FleetIssue
	for _, g := range keys {
		members := groups[g]
		var masters []*haav1.NodeInstance
		masterNodes := map[string]bool{}
		defs := map[string]bool{}
		var all []*haav1.NodeInstance
		for _, in := range members {
			ni := &haav1.NodeInstance{Node: in.Node, Instance: in.Name}
			all = append(all, ni)
			if in.State == haav1.State_STATE_MASTER {
				masters = append(masters, ni)
				masterNodes[in.Node] = true
			}
			if in.Definition != "" {
				defs[in.Definition] = true
			}
		}
		if len(masterNodes) >= 2 {
			out = append(out, &haav1.FleetIssue{Kind: &haav1.FleetIssue_SplitBrain{SplitBrain: &haav1.SplitBrain{
				Segment: g.segment, Vrid: g.vrid, Masters: sortNodeInstances(masters)}}})
		}
		if len(defs) >= 2 {
			out = append(out, &haav1.FleetIssue{Kind: &haav1.FleetIssue_VridCollision{VridCollision: &haav1.VridCollision{
				Segment: g.segment, Vrid: g.vrid, Instances: sortNodeInstances(all)}}})
		}
	}
	return out
}

// MasterOf returns the node that alone reports MASTER for (segment, vrid),
// or "" when none or several do: who stayed master when a split brain
// ends (Tracker reports it resolved without knowing).
func MasterOf(ins []Instance, segment string, vrid uint32) string {
	master := ""
	for _, in := range ins {
		if in.Segment != segment || in.VRID != vrid || in.State != haav1.State_STATE_MASTER || in.Node == master {
			continue
		}
		if master != "" {
			return ""
		}
		master = in.Node
	}
	return master
}

// compareSegments orders segments as networks (address, then length) when
// both parse, else as text.
func compareSegments(a, b string) int {
	pa, ea := netip.ParsePrefix(a)
	pb, eb := netip.ParsePrefix(b)
	if ea == nil && eb == nil {
		if c := pa.Addr().Compare(pb.Addr()); c != 0 {
			return c
		}
		if c := cmp.Compare(pa.Bits(), pb.Bits()); c != 0 {
			return c
		}
	}
	return cmp.Compare(a, b)
}

func sortNodeInstances(l []*haav1.NodeInstance) []*haav1.NodeInstance {
	slices.SortFunc(l, func(a, b *haav1.NodeInstance) int {
		if c := cmp.Compare(a.GetNode(), b.GetNode()); c != 0 {
			return c
		}
		return cmp.Compare(a.GetInstance(), b.GetInstance())
	})
	return slices.CompactFunc(l, func(a, b *haav1.NodeInstance) bool {
		return a.GetNode() == b.GetNode() && a.GetInstance() == b.GetInstance()
	})
}

// Key is an issue's stable identity, the same for as long as it lasts
// whatever its details (which nodes are masters):
// "split_brain/10.77.0.0/24/51", "vrid_collision/10.77.0.0/24/51",
// "drift/lb2". "" for an issue of no known kind.
func Key(is *haav1.FleetIssue) string {
	switch k := is.GetKind().(type) {
	case *haav1.FleetIssue_SplitBrain:
		return fmt.Sprintf("split_brain/%s/%d", k.SplitBrain.GetSegment(), k.SplitBrain.GetVrid())
	case *haav1.FleetIssue_VridCollision:
		return fmt.Sprintf("vrid_collision/%s/%d", k.VridCollision.GetSegment(), k.VridCollision.GetVrid())
	case *haav1.FleetIssue_Drift:
		return "drift/" + k.Drift.GetNode()
	case *haav1.FleetIssue_RealServerDisputed:
		return "real_server_disputed/" + k.RealServerDisputed.GetVirtualServer() + "/" + k.RealServerDisputed.GetRealServer()
	}
	return ""
}

// Tracker turns successive sets of current issues into edges: which
// appeared and which are over. The zero Tracker is ready (and has seen no
// issue). It is not safe for concurrent use.
type Tracker struct {
	last map[string]*haav1.FleetIssue // by Key: the last form seen
}

// Update takes the issues present now (as Detect returns them) and returns
// those that appeared since the last Update (a Key not present then), in
// the order of cur, and those resolved (a Key present then, not now),
// sorted by Key. An issue whose details change (a third node becomes
// master in a split brain) is still the same issue: not reported again.
//
// A resolved issue is a copy of the last form seen with Resolved set; for
// a split brain, Master is left empty: the caller that knows the current
// instances sets it with MasterOf. Issues without a Key and repeats of a
// Key in cur are ignored. The Tracker keeps copies: the caller may change
// what it passes and gets.
func (t *Tracker) Update(cur []*haav1.FleetIssue) (appeared, resolved []*haav1.FleetIssue) {
	now := make(map[string]*haav1.FleetIssue, len(cur))
	for _, is := range cur {
		k := Key(is)
		if k == "" {
			continue
		}
		if _, dup := now[k]; dup {
			continue
		}
		now[k] = proto.Clone(is).(*haav1.FleetIssue)
		if _, seen := t.last[k]; !seen {
			appeared = append(appeared, is)
		}
	}
	var gone []string
	for k := range t.last {
		if _, ok := now[k]; !ok {
			gone = append(gone, k)
		}
	}
	slices.Sort(gone)
	for _, k := range gone {
		is := t.last[k]
		switch x := is.GetKind().(type) {
		case *haav1.FleetIssue_SplitBrain:
			x.SplitBrain.Resolved = true
		case *haav1.FleetIssue_VridCollision:
			x.VridCollision.Resolved = true
		case *haav1.FleetIssue_Drift:
			x.Drift.Resolved = true
		case *haav1.FleetIssue_RealServerDisputed:
			x.RealServerDisputed.Resolved = true
		}
		resolved = append(resolved, is)
	}
	t.last = now
	return appeared, resolved
}
