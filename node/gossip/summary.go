package gossip

import (
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

const (
	// maxPartBytes is the target size of an encoded summary part: with
	// memberlist's headers, a label and encryption it fits its 1400-byte
	// UDP packets.
	maxPartBytes = 1000
	// maxPartSlack is how far over maxPartBytes a part can be and still go
	// out in a broadcast (only a single huge instance makes one that large).
	maxPartSlack = 100
	// maxParts bounds the parts of a received summary.
	maxParts = 1024
)

// peerSummary is what this node holds of a peer's summary.
type peerSummary struct {
	complete *haav1.NodeSummary // never modified once stored
	heard    time.Time
	pending  *assembly // parts of a newer summary not all received yet
}

// assembly collects the parts of one (incarnation, seq).
type assembly struct {
	k     sumKey
	parts []*haav1.NodeSummary
	have  int
}

// sumKey orders a node's summaries.
type sumKey struct{ inc, seq uint64 }

func keyOf(s *haav1.NodeSummary) sumKey { return sumKey{s.GetIncarnation(), s.GetSeq()} }

func (k sumKey) less(o sumKey) bool {
	if k.inc != o.inc {
		return k.inc < o.inc
	}
	return k.seq < o.seq
}

// validSummary checks what a peer sent is a summary or a part of one.
func validSummary(s *haav1.NodeSummary) bool {
	if s.GetNode() == "" || s.GetParts() > maxParts {
		return false
	}
	return s.GetParts() == 0 || s.GetPart() < s.GetParts()
}

// mergeSummaryLocked takes a summary or a part from a peer: a newer
// (incarnation, seq) than held replaces the held summary once complete; an
// older one is ignored; the same one again only refreshes Heard when it
// comes from its owner (direct: a broadcast, not a push/pull relay). It
// reports whether the held summary changed. s is not retained if it is
// shared: callers pass freshly decoded messages.
func (g *Gossip) mergeSummaryLocked(s *haav1.NodeSummary, direct bool, now time.Time) bool {
	ps := g.sums[s.GetNode()]
	if ps == nil {
		ps = &peerSummary{}
		g.sums[s.GetNode()] = ps
	}
	k := keyOf(s)
	if ps.complete != nil {
		held := keyOf(ps.complete)
		if k.less(held) {
			return false
		}
		if k == held {
			if direct {
				ps.heard = now
			}
			return false
		}
	}
	if s.GetParts() <= 1 {
		s.Part, s.Parts = 0, 0
		ps.complete, ps.heard = s, now
		if ps.pending != nil && !k.less(ps.pending.k) {
			ps.pending = nil
		}
		return true
	}
	a := ps.pending
	switch {
	case a == nil || a.k.less(k) || (a.k == k && len(a.parts) != int(s.GetParts())):
		a = &assembly{k: k, parts: make([]*haav1.NodeSummary, s.GetParts())}
		ps.pending = a
	case k.less(a.k):
		return false // older than the one being assembled
	}
	if a.parts[s.GetPart()] == nil {
		a.parts[s.GetPart()] = s
		a.have++
	}
	if a.have < len(a.parts) {
		return false
	}
	merged := proto.Clone(a.parts[0]).(*haav1.NodeSummary)
	merged.Part, merged.Parts = 0, 0
	merged.Instances, merged.VirtualServers = nil, nil
	for _, p := range a.parts {
		merged.Instances = append(merged.Instances, p.GetInstances()...)
		merged.VirtualServers = append(merged.VirtualServers, p.GetVirtualServers()...)
	}
	ps.complete, ps.heard, ps.pending = merged, now, nil
	return true
}

// splitSummary returns s as one part, or as several when it does not fit
// maxPartBytes: each part has the node, incarnation, seq, time and health,
// its index and the count, and a run of the instances and then of the
// virtual servers' health.
func splitSummary(s *haav1.NodeSummary) []*haav1.NodeSummary {
	whole := proto.Clone(s).(*haav1.NodeSummary)
	whole.Part, whole.Parts = 0, 1
	if msgSize(whole) <= maxPartBytes {
		return []*haav1.NodeSummary{whole}
	}
	base := proto.Clone(s).(*haav1.NodeSummary)
	base.Instances, base.VirtualServers = nil, nil
	newPart := func() *haav1.NodeSummary { return proto.Clone(base).(*haav1.NodeSummary) }
	var parts []*haav1.NodeSummary
	cur := newPart()
	// The instances, then the virtual servers' health, in runs that fit.
	// (Sizes add up: a part's size is its base's plus its entries'.)
	baseSize := msgSize(cur)
	size := baseSize
	entries := func() int { return len(cur.Instances) + len(cur.VirtualServers) }
	next := func(n int) {
		if entries() > 0 && size+n > maxPartBytes {
			parts = append(parts, cur)
			cur, size = newPart(), baseSize
		}
		size += n
	}
	for _, in := range s.GetInstances() {
		next(entrySize(6, proto.Size(in)))
		cur.Instances = append(cur.Instances, in)
	}
	for _, v := range s.GetVirtualServers() {
		next(entrySize(10, proto.Size(v)))
		cur.VirtualServers = append(cur.VirtualServers, v)
	}
	parts = append(parts, cur)
	for i, p := range parts {
		p.Part, p.Parts = uint32(i), uint32(len(parts))
	}
	return parts
}

// entrySize is the encoded size of a repeated message field's entry of n
// bytes, field number f (< 16): its tag, its length and itself.
func entrySize(f protowire.Number, n int) int {
	return protowire.SizeTag(f) + protowire.SizeBytes(n)
}

// msgSize is the encoded size of s as a GossipMessage, counting part and
// parts at their largest.
func msgSize(s *haav1.NodeSummary) int {
	part, parts := s.Part, s.Parts
	s.Part, s.Parts = maxParts, maxParts
	n := proto.Size(&haav1.GossipMessage{Kind: &haav1.GossipMessage_Summary{Summary: s}})
	s.Part, s.Parts = part, parts
	return n
}
