package fleet

import (
	"net/netip"
	"slices"

	"github.com/haa-dev/haa/node/gossip"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// PeerSetter takes the unicast peers the fleet gives this node's
// instances (those with unicastPeersFromFleet); it must not block.
type PeerSetter interface {
	SetFleetPeers(peers map[string][]netip.Addr)
}

// VerdictSink takes the other live members' verdicts on their real
// servers (this node's balancer, for keepIfPeersSeeUp); it must not block.
type VerdictSink interface {
	PeerVerdicts(vs []Verdicts)
}

// othersVerdicts are the verdicts of every member but this node.
func othersVerdicts(all []Verdicts, self string) []Verdicts {
	out := make([]Verdicts, 0, len(all))
	for _, h := range all {
		if h.Node != self {
			out = append(out, h)
		}
	}
	return out
}

// Peers returns, for each of this node's instances (self), the source
// addresses of the live members' instances of the same name, VRID and
// family, sorted: the destinations of an instance that takes its unicast
// peers from the fleet. A member that left or is dead is no peer; one
// suspected still is (it may only be slow). It is pure.
func Peers(view gossip.View, self *haav1.NodeSummary) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	for _, mine := range self.GetInstances() {
		var peers []netip.Addr
		for _, m := range view.Members {
			if m.Name == view.Self || !live(m.State) {
				continue
			}
			for _, in := range m.Summary.GetInstances() {
				if in.GetName() != mine.GetName() || in.GetVrid() != mine.GetVrid() || in.GetFamily() != mine.GetFamily() {
					continue
				}
				a, err := netip.ParseAddr(in.GetSourceAddress())
				if err == nil && a.String() != mine.GetSourceAddress() && !slices.Contains(peers, a) {
					peers = append(peers, a)
				}
			}
		}
		slices.SortFunc(peers, netip.Addr.Compare)
		out[mine.GetName()] = peers
	}
	return out
}
