package gossip

import (
	"time"
	"unicode/utf8"

	"github.com/hashicorp/memberlist"
	"google.golang.org/protobuf/proto"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// delegate is memberlist's Delegate: called from memberlist goroutines,
// concurrently; every method returns without waiting for anything but
// short gossip locks.
type delegate Gossip

var _ memberlist.Delegate = (*delegate)(nil)

// NodeMeta encodes Local.Meta within limit bytes.
func (d *delegate) NodeMeta(limit int) []byte {
	g := (*Gossip)(d)
	m := g.local.Meta()
	if g.leaving.Load() {
		m = proto.Clone(m).(*haav1.GossipMeta)
		m.Leaving = true
	}
	return g.encodeMeta(m, limit)
}

// NotifyMsg receives a peer's broadcast.
func (d *delegate) NotifyMsg(b []byte) {
	g := (*Gossip)(d)
	var m haav1.GossipMessage
	if err := proto.Unmarshal(b, &m); err != nil {
		g.rej.hit(g.log, "malformed", "undecodable gossip message: "+err.Error(), time.Now())
		return
	}
	s := m.GetSummary()
	if s == nil {
		return // a kind from a newer version
	}
	if !validSummary(s) {
		g.rej.hit(g.log, "malformed", "invalid node summary from "+s.GetNode(), time.Now())
		return
	}
	if s.GetNode() == g.name {
		return
	}
	g.mu.Lock()
	changed := g.mergeSummaryLocked(s, true, time.Now())
	g.mu.Unlock()
	if changed {
		g.changed()
	}
}

// GetBroadcasts hands memberlist the queued parts of the own summary.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.bq.GetBroadcasts(overhead, limit)
}

// LocalState is this node's side of a push/pull: every complete summary
// known, this node's first (or, before its first SetSummary, a summary with
// only its name: peers learn who sent the state), and on a join the offered
// document.
func (d *delegate) LocalState(join bool) []byte {
	g := (*Gossip)(d)
	st := &haav1.GossipState{}
	if join {
		st.Document = g.local.Offer()
	}
	g.mu.Lock()
	first := g.own
	if first == nil {
		first = &haav1.NodeSummary{Node: g.name}
	}
	st.Summaries = make([]*haav1.NodeSummary, 0, len(g.sums)+1)
	st.Summaries = append(st.Summaries, first)
	for _, ps := range g.sums {
		if ps.complete != nil {
			st.Summaries = append(st.Summaries, ps.complete)
		}
	}
	g.mu.Unlock()
	// Stored summaries are never modified (a newer one replaces them), so
	// they can be encoded without the lock.
	b, err := proto.Marshal(st)
	if err != nil {
		g.log.Error("encoding the gossip state failed: peers miss this push/pull", "err", err)
		return nil
	}
	return b
}

// MergeRemoteState takes a peer's side of a push/pull: its summaries always,
// its document only on a join-type sync.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	g := (*Gossip)(d)
	if join {
		g.joinMerges.Add(1)
	} else {
		g.periodicMerges.Add(1)
	}
	var st haav1.GossipState
	if err := proto.Unmarshal(buf, &st); err != nil {
		g.rej.hit(g.log, "malformed", "undecodable gossip state: "+err.Error(), time.Now())
		return
	}
	from := ""
	if len(st.GetSummaries()) > 0 {
		from = st.GetSummaries()[0].GetNode()
	}
	now := time.Now()
	changed := false
	invalid := false
	g.mu.Lock()
	for _, s := range st.GetSummaries() {
		if !validSummary(s) {
			invalid = true
			continue
		}
		if s.GetNode() == g.name || (s.GetIncarnation() == 0 && s.GetSeq() == 0) {
			continue // this node's, or a sender's name only
		}
		if g.mergeSummaryLocked(s, false, now) {
			changed = true
		}
	}
	g.mu.Unlock()
	if invalid {
		// Counted once per state, as NotifyMsg counts one summary.
		g.rej.hit(g.log, "malformed", "invalid node summary in the gossip state from "+from, now)
	}
	if changed {
		g.changed()
	}
	// A document is offered only by a sender that names itself validly.
	if join && st.GetDocument() != nil && from != "" && from != g.name && g.hq != nil {
		g.hq.offered(from, st.GetDocument())
	}
}

// events is memberlist's EventDelegate. memberlist calls it with its node
// lock held: it must not call memberlist.
type events Gossip

var _ memberlist.EventDelegate = (*events)(nil)

func (e *events) NotifyJoin(n *memberlist.Node) {
	(*Gossip)(e).memberEvent(n, haav1.MemberState_MEMBER_STATE_ALIVE)
}

func (e *events) NotifyUpdate(n *memberlist.Node) {
	(*Gossip)(e).memberEvent(n, haav1.MemberState_MEMBER_STATE_ALIVE)
}

func (e *events) NotifyLeave(n *memberlist.Node) {
	st := haav1.MemberState_MEMBER_STATE_DEAD
	if saidLeaving(n) {
		st = haav1.MemberState_MEMBER_STATE_LEFT
	}
	(*Gossip)(e).memberEvent(n, st)
}

func (g *Gossip) memberEvent(n *memberlist.Node, st haav1.MemberState) {
	var meta *haav1.GossipMeta
	if len(n.Meta) > 0 {
		meta = &haav1.GossipMeta{}
		if err := proto.Unmarshal(n.Meta, meta); err != nil {
			g.log.Debug("undecodable member metadata", "node", n.Name, "err", err)
			meta = nil
		}
	}
	now := time.Now()
	g.mu.Lock()
	m := g.members[n.Name]
	if m == nil {
		m = &member{}
		g.members[n.Name] = m
	}
	m.addr, m.meta = n.Address(), meta
	if m.state != st || m.since.IsZero() {
		m.state, m.since, m.tried = st, now, time.Time{}
	}
	m.suspectSince = time.Time{}
	g.mu.Unlock()
	g.changed()
}

// suspect marks a member whose probe by this node failed (memberlist marks
// it suspect and waits for it to refute).
func (g *Gossip) suspect(name string) {
	g.mu.Lock()
	m := g.members[name]
	changed := m != nil && m.state == haav1.MemberState_MEMBER_STATE_ALIVE && m.suspectSince.IsZero()
	if changed {
		m.suspectSince = time.Now()
	}
	g.mu.Unlock()
	if changed {
		g.changed()
	}
}

// pings is memberlist's PingDelegate: a member that answers a probe is no
// longer suspect.
type pings Gossip

var _ memberlist.PingDelegate = (*pings)(nil)

func (p *pings) AckPayload() []byte { return nil }

func (p *pings) NotifyPingComplete(other *memberlist.Node, _ time.Duration, _ []byte) {
	g := (*Gossip)(p)
	g.mu.Lock()
	m := g.members[other.Name]
	changed := m != nil && !m.suspectSince.IsZero()
	if changed {
		m.suspectSince = time.Time{}
	}
	g.mu.Unlock()
	if changed {
		g.changed()
	}
}

// encodeMeta encodes m within limit bytes, truncating the api field if it
// must (memberlist panics on longer metadata).
func (g *Gossip) encodeMeta(m *haav1.GossipMeta, limit int) []byte {
	if m == nil {
		return nil
	}
	b, err := proto.Marshal(m)
	if err == nil && len(b) <= limit {
		return b
	}
	size := len(b)
	c := proto.Clone(m).(*haav1.GossipMeta)
	for range 4 {
		over := len(b) - limit
		api := c.GetApi()
		if err != nil || over >= len(api) {
			c.Api = ""
		} else {
			api = api[:len(api)-over]
			for !utf8.ValidString(api) {
				api = api[:len(api)-1]
			}
			c.Api = api
		}
		b, err = proto.Marshal(c)
		if err == nil && len(b) <= limit {
			g.log.Warn("node metadata too large for gossip: api address truncated: use a shorter API address",
				"bytes", size, "limit", limit, "api", c.GetApi())
			return b
		}
	}
	b, err = proto.Marshal(&haav1.GossipMeta{Name: m.GetName()})
	if err != nil || len(b) > limit {
		b = nil
	}
	g.log.Error("node metadata too large for gossip: only the name is sent", "bytes", size, "limit", limit)
	return b
}

// broadcast is one part of the own summary in memberlist's queue; a newer
// one with the same name replaces it.
type broadcast struct {
	name string
	msg  []byte
}

var _ memberlist.NamedBroadcast = (*broadcast)(nil)

func (b *broadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(*broadcast)
	return ok && ob.name == b.name
}
func (b *broadcast) Message() []byte { return b.msg }
func (b *broadcast) Finished()       {}
func (b *broadcast) Name() string    { return b.name }

// saidLeaving reports whether a departed member said it was leaving (its last
// metadata has leaving set) rather than failing.
func saidLeaving(n *memberlist.Node) bool {
	var m haav1.GossipMeta
	return len(n.Meta) > 0 && proto.Unmarshal(n.Meta, &m) == nil && m.GetLeaving()
}
