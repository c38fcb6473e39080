package fleet

import (
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/node/gossip"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// catchUpEvery limits how often the node asks one peer for its document.
const catchUpEvery = 5 * time.Second

// catchUpAfter is how long a peer must have offered a newer document
// before this node asks for it: during a fleet apply, haactl's own call
// comes within that, and a node that asked every peer that applied first
// would make the apply cost each node the whole fleet's state. (A node
// that joins gets the document with its join; this is for one that missed
// an apply while it stayed in the fleet.)
const catchUpAfter = 2 * time.Second

// issueGrace is how long a split brain or vrid collision must last before
// it is reported: gossip news is a few hundred milliseconds old, so during
// an ordinary takeover the old master's last summary still says MASTER.
const issueGrace = 2 * time.Second

// detectSettle is how long the detector lets news gather after a change
// before it reads the fleet.
const detectSettle = 100 * time.Millisecond

// detectLoop watches the fleet through gossip: it reports members joining
// and failing, the split brains and vrid collisions this node is part of
// and its own drift (as events), re-announces the addresses of a split
// brain it stays master of once it is over, and catches up with a newer
// document a peer offers.
func (n *Node) detectLoop(g *gossip.Gossip) {
	defer n.wg.Done()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var tr Tracker
	since := map[string]time.Time{} // issue key -> first seen
	members := map[string]haav1.MemberState{}
	asked := map[string]time.Time{}
	offered := map[string]offerSeen{}
	var drift *haav1.Drift
	first := true
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.changed:
			// Changes come in bursts (every member's summary after a
			// fleet apply): one round for the burst, not one per member,
			// each of which reads the whole fleet.
			select {
			case <-n.ctx.Done():
				return
			case <-time.After(detectSettle):
			}
			// What came meanwhile is in this round.
			select {
			case <-n.changed:
			default:
			}
		case <-tick.C:
		}
		if n.ctx.Err() != nil {
			return
		}
		view := g.View()
		if first {
			// Who is there at start-up is not news.
			for _, m := range view.Members {
				members[m.Name] = m.State
			}
			first = false
		}
		n.memberEvents(view, members)
		name := view.Self
		self := n.summary()
		ins := fleetInstances(view, self)
		if n.peers != nil {
			n.peers.SetFleetPeers(Peers(view, self))
		}
		verdicts := fleetVerdicts(view, self)
		if n.verdict != nil {
			n.verdict.PeerVerdicts(othersVerdicts(verdicts, name))
		}
		confirmed := lasting(append(Detect(ins), Disputes(verdicts)...), since, time.Now())
		n.issues.Store(&confirmed)
		// Every lasting issue is tracked (an issue ends when it is gone,
		// not when this node leaves it); events only for those this node
		// is part of.
		appeared, resolved := tr.Update(confirmed)
		for _, is := range appeared {
			if involves(is, name) {
				n.issueEvent(is, false)
			}
		}
		for _, is := range resolved {
			if !involves(is, name) {
				continue
			}
			if sb := is.GetSplitBrain(); sb != nil {
				sb.Master = MasterOf(ins, sb.GetSegment(), sb.GetVrid())
				if sb.Master == name && n.ann != nil {
					n.ann.Announce(sb.GetSegment(), sb.GetVrid())
				}
			}
			n.issueEvent(is, true)
		}
		drift = n.driftEvent(drift)
		n.catchUp(g, view, asked, offered)
	}
}

// lasting returns the issues seen continuously for issueGrace; since keeps
// when each was first seen.
func lasting(cur []*haav1.FleetIssue, since map[string]time.Time, now time.Time) []*haav1.FleetIssue {
	var out []*haav1.FleetIssue
	keys := map[string]bool{}
	for _, is := range cur {
		k := Key(is)
		keys[k] = true
		if _, ok := since[k]; !ok {
			since[k] = now
		}
		if now.Sub(since[k]) >= issueGrace {
			out = append(out, is)
		}
	}
	for k := range since {
		if !keys[k] {
			delete(since, k)
		}
	}
	return out
}

// involves reports whether node is one of an issue's parties.
func involves(is *haav1.FleetIssue, node string) bool {
	var parties []*haav1.NodeInstance
	switch k := is.GetKind().(type) {
	case *haav1.FleetIssue_SplitBrain:
		parties = k.SplitBrain.GetMasters()
	case *haav1.FleetIssue_VridCollision:
		parties = k.VridCollision.GetInstances()
	case *haav1.FleetIssue_RealServerDisputed:
		d := k.RealServerDisputed
		return slices.Contains(d.GetDownOn(), node) || slices.Contains(d.GetUpOn(), node)
	}
	for _, p := range parties {
		if p.GetNode() == node {
			return true
		}
	}
	return false
}

func (n *Node) issueEvent(is *haav1.FleetIssue, resolved bool) {
	e := &haav1.Event{}
	switch k := is.GetKind().(type) {
	case *haav1.FleetIssue_SplitBrain:
		sb := proto.Clone(k.SplitBrain).(*haav1.SplitBrain)
		sb.Resolved = resolved
		if !resolved {
			n.splitBrains.Add(1)
			n.log.Error("split brain: several nodes are master of one virtual router", "segment", sb.GetSegment(),
				"vrid", sb.GetVrid(), "masters", nodeInstances(sb.GetMasters()))
		} else {
			n.log.Warn("split brain over", "segment", sb.GetSegment(), "vrid", sb.GetVrid(), "master", sb.GetMaster())
		}
		e.Kind = &haav1.Event_SplitBrain{SplitBrain: sb}
		e.Instance = n.instanceOn(sb.GetSegment(), sb.GetVrid())
	case *haav1.FleetIssue_VridCollision:
		vc := proto.Clone(k.VridCollision).(*haav1.VridCollision)
		vc.Resolved = resolved
		if !resolved {
			n.log.Error("vrid collision: different virtual routers use one vrid on one segment: give one of them another vrid",
				"segment", vc.GetSegment(), "vrid", vc.GetVrid(), "instances", nodeInstances(vc.GetInstances()))
		}
		e.Kind = &haav1.Event_VridCollision{VridCollision: vc}
		e.Instance = n.instanceOn(vc.GetSegment(), vc.GetVrid())
	case *haav1.FleetIssue_RealServerDisputed:
		d := proto.Clone(k.RealServerDisputed).(*haav1.RealServerDisputed)
		d.Resolved = resolved
		if !resolved {
			n.log.Warn("real server disputed: its directors disagree about its health (a path problem near those that see it down?)",
				"virtual_server", d.GetVirtualServer(), "real_server", d.GetRealServer(), "down_on", d.GetDownOn(), "up_on", d.GetUpOn())
		} else {
			n.log.Info("real server no longer disputed", "virtual_server", d.GetVirtualServer(), "real_server", d.GetRealServer())
		}
		e.Kind = &haav1.Event_RealServerDisputed{RealServerDisputed: d}
	default:
		return
	}
	n.append(e)
}

func (n *Node) append(e *haav1.Event) {
	if n.events != nil {
		n.events.Append(e)
	}
}

func nodeInstances(ps []*haav1.NodeInstance) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.GetNode() + "/" + p.GetInstance()
	}
	return out
}

// instanceOn names this node's instance of a virtual router.
func (n *Node) instanceOn(segment string, vrid uint32) string {
	for _, li := range n.local.LocalState().Instances {
		if in := li.Summary; in.GetSegment() != "" && in.GetSegment() == segment && in.GetVrid() == vrid {
			return in.GetName()
		}
	}
	return ""
}

// driftEvent reports this node's own drift when it starts and ends.
func (n *Node) driftEvent(prev *haav1.Drift) *haav1.Drift {
	cur := n.selfDrift(n.local.LocalState(), n.doc.Load())
	switch {
	case cur != nil && (prev == nil || prev.GetReason() != cur.GetReason() || prev.GetExpectedHash() != cur.GetExpectedHash()):
		n.log.Error("drift: this node does not run what the fleet document gives it", "reason", cur.GetReason())
		n.append(&haav1.Event{Kind: &haav1.Event_Drift{Drift: cur}})
	case cur == nil && prev != nil:
		done := proto.Clone(prev).(*haav1.Drift)
		done.Resolved = true
		n.log.Info("drift over: this node runs what the fleet document gives it")
		n.append(&haav1.Event{Kind: &haav1.Event_Drift{Drift: done}})
	}
	return cur
}

// offerSeen is a peer's offer and when this node first saw it.
type offerSeen struct {
	gen   uint64
	hash  string
	since time.Time
}

// catchUp asks a peer that offers a newer document than this node stores,
// and has for catchUpAfter, for it (the answer comes through
// gossipHandler.Offered). offered keeps when each peer's offer was first
// seen.
func (n *Node) catchUp(g *gossip.Gossip, view gossip.View, asked map[string]time.Time, offered map[string]offerSeen) {
	s := n.doc.Load()
	var have uint64
	haveHash := ""
	if s.doc != nil {
		have, haveHash = s.doc.GetGeneration(), n.hashes.document(s.doc)
	}
	if s.pending != nil && s.pending.GetGeneration() >= have {
		have, haveHash = s.pending.GetGeneration(), n.hashes.document(s.pending)
	}
	// A peer offers a newer generation, or the winner of a race for this one.
	newer := func(m *haav1.GossipMeta) bool {
		return m.GetFleetOffer() > have || m.GetFleetOffer() == have && have > 0 && m.GetFleetOfferHash() > haveHash
	}
	now := time.Now()
	for _, m := range view.Members {
		if m.Name == view.Self || m.State != haav1.MemberState_MEMBER_STATE_ALIVE || !newer(m.Meta) {
			delete(offered, m.Name)
			continue
		}
		o := offerSeen{m.Meta.GetFleetOffer(), m.Meta.GetFleetOfferHash(), now}
		if seen, ok := offered[m.Name]; ok && seen.gen == o.gen && seen.hash == o.hash {
			o.since = seen.since
		}
		offered[m.Name] = o
		if now.Sub(o.since) < catchUpAfter || now.Sub(asked[m.Name]) < catchUpEvery {
			continue
		}
		asked[m.Name] = now
		n.log.Info("catching up with the fleet document", "from", m.Name, "fleet_generation", m.Meta.GetFleetOffer(), "stored", have)
		if err := g.CatchUp(m.Name); err != nil {
			n.log.Warn("catching up failed: retrying", "from", m.Name, "err", err)
		}
		return // one peer at a time: its document may be the newest
	}
}

// memberEvents reports members changing state.
func (n *Node) memberEvents(view gossip.View, last map[string]haav1.MemberState) {
	seen := map[string]bool{}
	for _, m := range view.Members {
		seen[m.Name] = true
		if m.Name == view.Self || last[m.Name] == m.State {
			continue
		}
		last[m.Name] = m.State
		n.log.Info("fleet member", "node", m.Name, "state", m.State.String(), "addr", m.Addr)
		n.append(&haav1.Event{Kind: &haav1.Event_MemberChanged{MemberChanged: &haav1.MemberChanged{
			Node: m.Name, State: m.State, Address: m.Addr}}})
	}
	for name := range last {
		if !seen[name] {
			delete(last, name)
		}
	}
}

// live reports whether a member's news counts for detection: a failed or
// departed node's last summary is history.
func live(s haav1.MemberState) bool {
	return s == haav1.MemberState_MEMBER_STATE_ALIVE || s == haav1.MemberState_MEMBER_STATE_SUSPECT
}

// fleetInstances lists every live member's instances for detection, this
// node's own from self (its live state, not its last gossip).
func fleetInstances(view gossip.View, self *haav1.NodeSummary) []Instance {
	var out []Instance
	add := func(node string, s *haav1.NodeSummary) {
		for _, in := range s.GetInstances() {
			out = append(out, Instance{Node: node, Name: in.GetName(), Segment: in.GetSegment(),
				Definition: in.GetDefinition(), VRID: in.GetVrid(), State: in.GetState()})
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

// Status is the fleet as this node sees it.
type Status struct {
	Node     string
	Document *haav1.Fleet // the stored document; nil: none
	// Gossip is nil when the node gossips with no one.
	Gossip    *GossipStats
	Members   []Member
	Instances []MemberInstance
	// Issues are the members' drift from the document, then the lasting
	// split brains and vrid collisions (the messages the event stream
	// carries).
	Issues []*haav1.FleetIssue
}

// GossipStats counts gossip traffic.
type GossipStats struct {
	BytesSent, BytesReceived uint64
	Rejected                 map[string]uint64
	Since                    time.Time
	Alive                    int
	SplitBrains              uint64 // split brains this node took part in
}

// Member is one node of the fleet.
type Member struct {
	Name, GossipAddress, APIAddress string
	State                           haav1.MemberState
	StateSince                      time.Time
	Version                         string
	ConfigGeneration                uint64
	ConfigHash                      string
	FleetGeneration                 uint64
	FleetHash, ExpectedFleetHash    string
	// Health is what it last said of itself (nil: nothing yet).
	Health *Health
	// Updated is when it made its last summary (its clock); Age how old
	// that news is here (-1: unknown).
	Updated time.Time
	Age     time.Duration
}

// Health is a member's health as it reports it.
type Health struct {
	Healthy, Maintenance bool
	Problems             []string
}

// MemberInstance is one instance of a member, as it reports it.
type MemberInstance struct {
	Node, Name, Interface string
	VRID                  uint32
	Segment               string
	// State is UNSPECIFIED for a member that is not alive: what a dead
	// node last said is not its state.
	State           haav1.State
	Priority        uint32
	VIPs            []string
	Generation      uint64
	FleetGeneration uint64
	Updated         time.Time
	Age             time.Duration // -1: unknown
	FromFleet       bool
	// Family is "ipv4" or "ipv6"; VMACInterface the virtual MAC
	// interface ("": none).
	Family, VMACInterface string
}

// Status returns the fleet as this node sees it: members, their instances
// and how fresh that news is, the stored document and the problems.
// Without gossip the fleet is this node alone. It never waits for a
// writer.
func (n *Node) Status() Status {
	now := time.Now()
	l := n.local.LocalState()
	if l.Name == "" {
		return Status{}
	}
	st := n.doc.Load() // once: every part of the answer sees the same store
	doc := l.Doc       // the document that runs (see LocalState)
	if doc != nil {
		doc = proto.Clone(doc).(*haav1.Fleet)
	}
	self := n.summaryOf(l, st)
	selfMeta, _ := n.buildMeta(l)
	var view gossip.View
	out := Status{Node: l.Name, Document: doc}
	if g := n.gossip.Load(); g != nil {
		view = g.View()
		st := g.Stats()
		out.Gossip = &GossipStats{BytesSent: st.BytesSent, BytesReceived: st.BytesReceived, Rejected: st.Rejected,
			Since: st.Since, Alive: st.Alive, SplitBrains: n.splitBrains.Load()}
	} else {
		view = gossip.View{Self: l.Name, Members: []gossip.Member{{Name: l.Name, State: haav1.MemberState_MEMBER_STATE_ALIVE, Since: n.started}}}
	}
	for _, m := range view.Members {
		meta, sum, heard := m.Meta, m.Summary, m.Heard
		if m.Name == l.Name {
			meta, sum, heard = selfMeta, self, now
		}
		mem := Member{Name: m.Name, GossipAddress: m.Addr, State: m.State, StateSince: m.Since, Age: -1}
		if meta != nil {
			mem.APIAddress, mem.Version = meta.GetApi(), meta.GetVersion()
			mem.ConfigGeneration, mem.ConfigHash = meta.GetConfigGeneration(), meta.GetConfigHash()
			mem.FleetGeneration, mem.FleetHash = meta.GetFleetGeneration(), meta.GetFleetHash()
		}
		if doc != nil {
			mem.ExpectedFleetHash = n.hashes.node(doc, m.Name)
		}
		if sum != nil {
			if h := sum.GetHealth(); h != nil {
				mem.Health = &Health{Healthy: h.GetHealthy(), Maintenance: h.GetMaintenance(), Problems: h.GetProblems()}
			}
			if t := sum.GetTime(); t != nil {
				mem.Updated = t.AsTime()
			}
			if !heard.IsZero() {
				mem.Age = now.Sub(heard).Round(time.Millisecond)
			}
			for _, in := range sum.GetInstances() {
				fi := MemberInstance{Node: m.Name, Name: in.GetName(), Interface: in.GetInterface(),
					VRID: in.GetVrid(), Segment: in.GetSegment(), State: in.GetState(), Priority: in.GetPriority(),
					VIPs: in.GetVips(), Generation: mem.ConfigGeneration, FleetGeneration: mem.FleetGeneration,
					Updated: mem.Updated, Age: mem.Age, FromFleet: in.GetFromFleet(),
					Family: in.GetFamily(), VMACInterface: in.GetVmacInterface()}
				if !live(m.State) {
					fi.State = haav1.State_STATE_UNSPECIFIED
				}
				out.Instances = append(out.Instances, fi)
			}
		}
		out.Members = append(out.Members, mem)
		if d := memberDrift(mem, doc); d != nil && live(m.State) {
			out.Issues = append(out.Issues, &haav1.FleetIssue{Kind: &haav1.FleetIssue_Drift{Drift: d}})
		}
	}
	if p := n.issues.Load(); p != nil {
		out.Issues = append(out.Issues, *p...)
	}
	return out
}

// memberDrift says how a member differs from the document, if it does.
func memberDrift(m Member, doc *haav1.Fleet) *haav1.Drift {
	if doc == nil {
		return nil
	}
	d := &haav1.Drift{Node: m.Name, FleetGeneration: m.FleetGeneration, Hash: m.FleetHash,
		ExpectedHash: m.ExpectedFleetHash}
	switch {
	case m.FleetGeneration != doc.GetGeneration():
		d.Reason = fmt.Sprintf("stores fleet generation %d, not %d", m.FleetGeneration, doc.GetGeneration())
	case m.FleetHash != m.ExpectedFleetHash:
		d.Reason = "runs other fleet instances than the document gives it"
	default:
		return nil
	}
	if m.Health != nil {
		for _, p := range m.Health.Problems {
			d.Reason += "; " + p
		}
	}
	return d
}
