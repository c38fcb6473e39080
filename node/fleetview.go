package node

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/fleet"
	"github.com/haa-dev/haa/node/gossip"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// catchUpEvery limits how often the node asks one peer for its document.
const catchUpEvery = 5 * time.Second

// issueGrace is how long a split brain or vrid collision must last before
// it is reported: gossip news is a few hundred milliseconds old, so during
// an ordinary takeover the old master's last summary still says MASTER.
const issueGrace = 2 * time.Second

// detectLoop watches the fleet through gossip: it reports members joining
// and failing, the split brains and vrid collisions this node is part of
// and its own drift (as events), re-announces the addresses of a split
// brain it stays master of once it is over, and catches up with a newer
// document a peer offers.
func (a *Agent) detectLoop(g *gossip.Gossip) {
	defer a.fleetWG.Done()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var tr fleet.Tracker
	since := map[string]time.Time{} // issue key -> first seen
	members := map[string]haav1.MemberState{}
	asked := map[string]time.Time{}
	var drift *haav1.Drift
	first := true
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-a.changed:
		case <-tick.C:
		}
		if a.ctx.Err() != nil {
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
		a.memberEvents(view, members)
		name := view.Self
		ins := a.fleetInstances(view, a.summary())
		confirmed := lasting(fleet.Detect(ins), since, time.Now())
		a.issues.Store(&confirmed)
		// Every lasting issue is tracked (an issue ends when it is gone,
		// not when this node leaves it); events only for those this node
		// is part of.
		appeared, resolved := tr.Update(confirmed)
		for _, is := range appeared {
			if involves(is, name) {
				a.issueEvent(is, false)
			}
		}
		for _, is := range resolved {
			if !involves(is, name) {
				continue
			}
			if sb := is.GetSplitBrain(); sb != nil {
				sb.Master = fleet.MasterOf(ins, sb.GetSegment(), sb.GetVrid())
				if sb.Master == name {
					a.announce(sb.GetSegment(), sb.GetVrid())
				}
			}
			a.issueEvent(is, true)
		}
		drift = a.driftEvent(drift)
		a.catchUp(g, view, asked)
	}
}

// lasting returns the issues seen continuously for issueGrace; since keeps
// when each was first seen.
func lasting(cur []*haav1.FleetIssue, since map[string]time.Time, now time.Time) []*haav1.FleetIssue {
	var out []*haav1.FleetIssue
	keys := map[string]bool{}
	for _, is := range cur {
		k := fleet.Key(is)
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
	}
	for _, p := range parties {
		if p.GetNode() == node {
			return true
		}
	}
	return false
}

func (a *Agent) issueEvent(is *haav1.FleetIssue, resolved bool) {
	e := &haav1.Event{}
	switch k := is.GetKind().(type) {
	case *haav1.FleetIssue_SplitBrain:
		sb := proto.Clone(k.SplitBrain).(*haav1.SplitBrain)
		sb.Resolved = resolved
		if !resolved {
			a.splitBrains.Add(1)
			a.log.Error("split brain: several nodes are master of one virtual router", "segment", sb.GetSegment(),
				"vrid", sb.GetVrid(), "masters", nodeInstances(sb.GetMasters()))
		} else {
			a.log.Warn("split brain over", "segment", sb.GetSegment(), "vrid", sb.GetVrid(), "master", sb.GetMaster())
		}
		e.Kind = &haav1.Event_SplitBrain{SplitBrain: sb}
		e.Instance = a.instanceOn(sb.GetSegment(), sb.GetVrid())
	case *haav1.FleetIssue_VridCollision:
		vc := proto.Clone(k.VridCollision).(*haav1.VridCollision)
		vc.Resolved = resolved
		if !resolved {
			a.log.Error("vrid collision: different virtual routers use one vrid on one segment: give one of them another vrid",
				"segment", vc.GetSegment(), "vrid", vc.GetVrid(), "instances", nodeInstances(vc.GetInstances()))
		}
		e.Kind = &haav1.Event_VridCollision{VridCollision: vc}
		e.Instance = a.instanceOn(vc.GetSegment(), vc.GetVrid())
	default:
		return
	}
	a.events.Append(e)
}

func nodeInstances(ps []*haav1.NodeInstance) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.GetNode() + "/" + p.GetInstance()
	}
	return out
}

// on reports whether the instance is the virtual router vrid of segment.
func (in *instance) on(segment string, vrid uint32) bool {
	return in.segment.IsValid() && in.segment.String() == segment && uint32(in.cfg.VRRP.VRID) == vrid
}

// instanceOn names this node's instance of a virtual router.
func (a *Agent) instanceOn(segment string, vrid uint32) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	for name, in := range a.instances {
		if in.on(segment, vrid) {
			return name
		}
	}
	return ""
}

// announce makes this node's master of a virtual router send gratuitous
// ARPs: the clients the other master confused learn the right MAC again.
func (a *Agent) announce(segment string, vrid uint32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, in := range a.instances {
		if in.on(segment, vrid) {
			a.log.Info("re-announcing the virtual addresses after the split brain", "instance", in.cfg.VRRP.Name, "vrid", vrid)
			in.runner.Announce()
		}
	}
}

// selfDriftLocked is this node's own drift, if any: a newer document that
// cannot run here, or fleet instances that do not run as the document says.
// Called with a.mu held.
func (a *Agent) selfDriftLocked() *haav1.Drift {
	name := a.cfg.Name
	var stored uint64
	if a.doc != nil {
		stored = a.doc.GetGeneration()
	}
	switch {
	case a.pending != nil:
		return &haav1.Drift{Node: name, FleetGeneration: stored, Hash: a.fleetHashLocked(),
			ExpectedHash: config.FleetNodeHash(a.pending, name),
			Reason:       fmt.Sprintf("fleet generation %d cannot run here: %s", a.pending.GetGeneration(), truncate(a.pendingErr, 300))}
	case a.doc != nil && a.fleetHashLocked() != config.FleetNodeHash(a.doc, name):
		return &haav1.Drift{Node: name, FleetGeneration: stored, Hash: a.fleetHashLocked(),
			ExpectedHash: config.FleetNodeHash(a.doc, name),
			Reason:       fmt.Sprintf("runs other fleet instances than generation %d gives it (an instance failed to start?)", stored)}
	}
	return nil
}

// driftEvent reports this node's own drift when it starts and ends.
func (a *Agent) driftEvent(prev *haav1.Drift) *haav1.Drift {
	a.mu.Lock()
	cur := a.selfDriftLocked()
	a.mu.Unlock()
	switch {
	case cur != nil && (prev == nil || prev.GetReason() != cur.GetReason() || prev.GetExpectedHash() != cur.GetExpectedHash()):
		a.log.Error("drift: this node does not run what the fleet document gives it", "reason", cur.GetReason())
		a.events.Append(&haav1.Event{Kind: &haav1.Event_Drift{Drift: cur}})
	case cur == nil && prev != nil:
		done := proto.Clone(prev).(*haav1.Drift)
		done.Resolved = true
		a.log.Info("drift over: this node runs what the fleet document gives it")
		a.events.Append(&haav1.Event{Kind: &haav1.Event_Drift{Drift: done}})
	}
	return cur
}

// catchUp asks a peer that offers a newer document than this node stores
// for it (the answer comes through gossipHandler.Offered).
func (a *Agent) catchUp(g *gossip.Gossip, view gossip.View, asked map[string]time.Time) {
	a.mu.Lock()
	var have uint64
	haveHash := ""
	if a.doc != nil {
		have, haveHash = a.doc.GetGeneration(), config.DocumentHash(a.doc)
	}
	if a.pending != nil && a.pending.GetGeneration() >= have {
		have, haveHash = a.pending.GetGeneration(), config.DocumentHash(a.pending)
	}
	a.mu.Unlock()
	// A peer offers a newer generation, or the winner of a race for this one.
	newer := func(m *haav1.GossipMeta) bool {
		return m.GetFleetOffer() > have || m.GetFleetOffer() == have && have > 0 && m.GetFleetOfferHash() > haveHash
	}
	now := time.Now()
	for _, m := range view.Members {
		if m.Name == view.Self || m.State != haav1.MemberState_MEMBER_STATE_ALIVE || !newer(m.Meta) {
			continue
		}
		if now.Sub(asked[m.Name]) < catchUpEvery {
			continue
		}
		asked[m.Name] = now
		a.log.Info("catching up with the fleet document", "from", m.Name, "fleet_generation", m.Meta.GetFleetOffer(), "stored", have)
		if err := g.CatchUp(m.Name); err != nil {
			a.log.Warn("catching up failed: retrying", "from", m.Name, "err", err)
		}
		return // one peer at a time: its document may be the newest
	}
}

// memberEvents reports members changing state.
func (a *Agent) memberEvents(view gossip.View, last map[string]haav1.MemberState) {
	seen := map[string]bool{}
	for _, m := range view.Members {
		seen[m.Name] = true
		if m.Name == view.Self || last[m.Name] == m.State {
			continue
		}
		last[m.Name] = m.State
		a.log.Info("fleet member", "node", m.Name, "state", m.State.String(), "addr", m.Addr)
		a.events.Append(&haav1.Event{Kind: &haav1.Event_MemberChanged{MemberChanged: &haav1.MemberChanged{
			Node: m.Name, State: m.State, Address: m.Addr}}})
	}
	for n := range last {
		if !seen[n] {
			delete(last, n)
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
func (a *Agent) fleetInstances(view gossip.View, self *haav1.NodeSummary) []fleet.Instance {
	var out []fleet.Instance
	add := func(node string, s *haav1.NodeSummary) {
		for _, in := range s.GetInstances() {
			out = append(out, fleet.Instance{Node: node, Name: in.GetName(), Segment: in.GetSegment(),
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

// FleetStatus is the fleet as this node sees it: members, their instances
// and how fresh that news is, the stored document and the problems.
// Without gossip the fleet is this node alone.
func (a *Agent) FleetStatus() *haav1.GetFleetResponse {
	now := time.Now()
	a.mu.Lock()
	if a.cfg == nil {
		a.mu.Unlock()
		return &haav1.GetFleetResponse{}
	}
	name := a.cfg.Name
	var doc *haav1.Fleet
	if a.doc != nil {
		doc = proto.Clone(a.doc).(*haav1.Fleet)
	}
	a.mu.Unlock()
	self := a.summary()
	selfMeta, _ := a.buildMeta()
	var view gossip.View
	out := &haav1.GetFleetResponse{Node: name, Document: doc}
	if g := a.gossip.Load(); g != nil {
		view = g.View()
		st := g.Stats()
		out.Gossip = &haav1.GossipStats{BytesSent: st.BytesSent, BytesReceived: st.BytesReceived, Rejected: st.Rejected,
			Since: timestamp(st.Since), Alive: uint32(st.Alive), SplitBrains: a.splitBrains.Load()}
	} else {
		view = gossip.View{Self: name, Members: []gossip.Member{{Name: name, State: haav1.MemberState_MEMBER_STATE_ALIVE, Since: a.started}}}
	}
	for _, m := range view.Members {
		meta, sum, heard := m.Meta, m.Summary, m.Heard
		if m.Name == name {
			meta, sum, heard = selfMeta, self, now
		}
		mem := &haav1.Member{Name: m.Name, GossipAddress: m.Addr, State: m.State, StateSince: timestamp(m.Since)}
		if meta != nil {
			mem.ApiAddress, mem.Version = meta.GetApi(), meta.GetVersion()
			mem.ConfigGeneration, mem.ConfigHash = meta.GetConfigGeneration(), meta.GetConfigHash()
			mem.FleetGeneration, mem.FleetHash = meta.GetFleetGeneration(), meta.GetFleetHash()
		}
		if doc != nil {
			mem.ExpectedFleetHash = config.FleetNodeHash(doc, m.Name)
		}
		if sum != nil {
			mem.Health, mem.Updated = sum.GetHealth(), sum.GetTime()
			if !heard.IsZero() {
				mem.Age = durationpb.New(now.Sub(heard).Round(time.Millisecond))
			}
			for _, in := range sum.GetInstances() {
				fi := &haav1.FleetInstanceStatus{Node: m.Name, Name: in.GetName(), Interface: in.GetInterface(),
					Vrid: in.GetVrid(), Segment: in.GetSegment(), State: in.GetState(), Priority: in.GetPriority(),
					Vips: in.GetVips(), Generation: mem.GetConfigGeneration(), FleetGeneration: mem.GetFleetGeneration(),
					Updated: sum.GetTime(), Age: mem.GetAge(), FromFleet: in.GetFromFleet()}
				if !live(m.State) {
					fi.State = haav1.State_STATE_UNSPECIFIED // what a dead node last said is not its state
				}
				out.Instances = append(out.Instances, fi)
			}
		}
		out.Members = append(out.Members, mem)
		if d := memberDrift(mem, doc); d != nil && live(m.State) {
			out.Issues = append(out.Issues, &haav1.FleetIssue{Kind: &haav1.FleetIssue_Drift{Drift: d}})
		}
	}
	if p := a.issues.Load(); p != nil {
		out.Issues = append(out.Issues, *p...)
	}
	return out
}

// memberDrift says how a member differs from the document, if it does.
func memberDrift(m *haav1.Member, doc *haav1.Fleet) *haav1.Drift {
	if doc == nil {
		return nil
	}
	d := &haav1.Drift{Node: m.GetName(), FleetGeneration: m.GetFleetGeneration(), Hash: m.GetFleetHash(),
		ExpectedHash: m.GetExpectedFleetHash()}
	switch {
	case m.GetFleetGeneration() != doc.GetGeneration():
		d.Reason = fmt.Sprintf("stores fleet generation %d, not %d", m.GetFleetGeneration(), doc.GetGeneration())
	case m.GetFleetHash() != m.GetExpectedFleetHash():
		d.Reason = "runs other fleet instances than the document gives it"
	default:
		return nil
	}
	for _, p := range m.GetHealth().GetProblems() {
		d.Reason += "; " + p
	}
	return d
}
