package ctltest

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Cluster is a fleet of fake agents: each is an Agent served on its own
// unix socket with a FleetNode as its FleetService, whose GetFleet lists
// every node of the cluster (api_address: its socket, unix:///...) and
// their instances. ApplyFleet validates the document (config.ValidateFleet),
// admits it by haad's rules (config.AdmitFleet), honours dry_run and hold
// like haad, records every request, and runs the node's part of the
// document: the Agent composes it with its own configuration (generation
// and hash as haad's) and its instances change (new ones BACKUP). With
// AutoElect, VRRP converges at once after every apply (see Elect).
type Cluster struct {
	// AutoElect runs Elect after every apply that is not a dry run.
	AutoElect bool
	// Now is the cluster's clock (nil: time.Now).
	Now func() time.Time

	mu    sync.Mutex
	nodes []*FleetNode
}

// FleetNode is one node of a Cluster, and its fake FleetService. Change it
// with its methods while served.
type FleetNode struct {
	haav1.UnimplementedFleetServiceServer

	Name   string
	Agent  *Agent
	Server *Server
	// Target is the API address: unix:///path.
	Target string
	// Addr is its source address, 10.77.0.N (segment 10.77.0.0/24).
	Addr string

	c *Cluster
	// Guarded by c.mu.
	state    haav1.MemberState
	noGossip bool
	age      time.Duration
	doc      *haav1.Fleet
	held     bool
	pending  *haav1.Fleet
	fleetIns []*haav1.Instance
	refuse   error
	fail     error
	delay    time.Duration
	onApply  func(*haav1.ApplyFleetRequest)
	applies  []*haav1.ApplyFleetRequest
	issues   []*haav1.FleetIssue
}

// NewCluster serves a fake agent for each name (alive, gossiping, no
// instances, no document) until the test ends.
func NewCluster(t testing.TB, names ...string) *Cluster {
	t.Helper()
	c := &Cluster{}
	for i, name := range names {
		n := &FleetNode{Name: name, c: c, Addr: fmt.Sprintf("10.77.0.%d", i+1), state: haav1.MemberState_MEMBER_STATE_ALIVE, age: time.Second}
		n.Agent = &Agent{
			Node:   &haav1.Node{Name: name, Version: "test", Pid: int32(1000 + i), StartTime: timestamppb.New(time.Date(2025, 11, 22, 3, 0, 0, 0, time.UTC))},
			Config: &haav1.AgentConfig{Name: name},
			Fleet:  n,
		}
		n.Server = Serve(t, n.Agent)
		n.Target = n.Server.Target
		c.nodes = append(c.nodes, n)
	}
	slices.SortFunc(c.nodes, func(a, b *FleetNode) int { return cmp.Compare(a.Name, b.Name) })
	return c
}

func (c *Cluster) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Node returns the node by name; nil if none.
func (c *Cluster) Node(name string) *FleetNode {
	for _, n := range c.nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Nodes returns the nodes by name.
func (c *Cluster) Nodes() []*FleetNode { return slices.Clone(c.nodes) }

// Targets returns the nodes' API addresses, by node name.
func (c *Cluster) Targets() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.Target)
	}
	return out
}

// SetDocument stores doc on every node (as applied earlier, released) and
// runs each node's part; with AutoElect, VRRP converges.
func (c *Cluster) SetDocument(doc *haav1.Fleet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		n.storeLocked(doc, false)
	}
	if c.AutoElect {
		c.electLocked()
	}
}

// Elect makes VRRP converge at once: for each instance name, among the
// alive nodes that run it, not in FAULT and not held, the one with the
// highest effective priority (then source address) becomes MASTER and the
// others BACKUP.
func (c *Cluster) Elect() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.electLocked()
}

func (c *Cluster) electLocked() {
	type cand struct {
		n  *FleetNode
		in *haav1.InstanceStatus
	}
	byName := map[string][]cand{}
	for _, n := range c.nodes {
		if n.state != haav1.MemberState_MEMBER_STATE_ALIVE {
			continue
		}
		n.Agent.mu.Lock()
		for _, in := range n.Agent.Instances {
			byName[in.GetName()] = append(byName[in.GetName()], cand{n, in})
		}
		n.Agent.mu.Unlock()
	}
	for _, cs := range byName {
		var best *cand
		for i, x := range cs {
			if x.in.GetState() == haav1.State_STATE_FAULT || x.in.GetHold() != "" {
				continue
			}
			if best == nil || x.in.GetEffectivePriority() > best.in.GetEffectivePriority() ||
				(x.in.GetEffectivePriority() == best.in.GetEffectivePriority() && addr(x.in).Compare(addr(best.in)) > 0) {
				best = &cs[i]
			}
		}
		for _, x := range cs {
			x.n.Agent.mu.Lock()
			switch {
			case x.in.GetState() == haav1.State_STATE_FAULT:
			case best != nil && x.n == best.n:
				x.in.State, x.in.MasterAddress = haav1.State_STATE_MASTER, x.n.Addr
			default:
				x.in.State = haav1.State_STATE_BACKUP
				if best != nil {
					x.in.MasterAddress = best.n.Addr
				}
			}
			x.n.Agent.mu.Unlock()
		}
	}
}

func addr(in *haav1.InstanceStatus) netip.Addr {
	a, _ := netip.ParseAddr(in.GetSourceAddress())
	return a
}

// SetDocument stores doc on this node alone (held or not) and runs its
// part.
func (n *FleetNode) SetDocument(doc *haav1.Fleet, hold bool) {
	n.locked(func() { n.storeLocked(doc, hold) })
}

// SetPending gives the node a newer document that it could not run (nil:
// none), as haad keeps one adopted from a peer whose part failed there.
// ApplyFleet then refuses a document older than it (config.AdmitFleet);
// storing it, or a newer one, forgets it. GetFleet does not report it (see
// SetIssues).
func (n *FleetNode) SetPending(doc *haav1.Fleet) {
	if doc != nil {
		doc = proto.Clone(doc).(*haav1.Fleet)
	}
	n.locked(func() { n.pending = doc })
}

// SetState sets the node's member state, as gossip reports it.
func (n *FleetNode) SetState(s haav1.MemberState) { n.locked(func() { n.state = s }) }

// SetGossip turns the node's gossip off (it then answers GetFleet with
// itself alone and no gossip counters, like haad without gossip) or on.
func (n *FleetNode) SetGossip(on bool) { n.locked(func() { n.noGossip = !on }) }

// SetAge sets how old the node's news is in GetFleet (default 1s).
func (n *FleetNode) SetAge(d time.Duration) { n.locked(func() { n.age = d }) }

// Refuse makes every ApplyFleet (dry run or not) fail with err, e.g.
// InvalidArgument(...); nil accepts again.
func (n *FleetNode) Refuse(err error) { n.locked(func() { n.refuse = err }) }

// Fail makes every ApplyFleet that is not a dry run fail with err (e.g.
// status.Error(codes.Internal, ...), or Partial(...) for one that took
// effect: the document is then stored); nil succeeds again.
func (n *FleetNode) Fail(err error) { n.locked(func() { n.fail = err }) }

// SetDelay makes every FleetService call wait d first (a slow node).
func (n *FleetNode) SetDelay(d time.Duration) { n.locked(func() { n.delay = d }) }

// OnApply calls fn after every ApplyFleet that is not a dry run has taken
// effect (and after AutoElect), without locks held: fn may change agents'
// instances (Agent.Update) to simulate VRRP.
func (n *FleetNode) OnApply(fn func(req *haav1.ApplyFleetRequest)) {
	n.locked(func() { n.onApply = fn })
}

// SetIssues sets the issues the node's GetFleet reports.
func (n *FleetNode) SetIssues(is ...*haav1.FleetIssue) { n.locked(func() { n.issues = is }) }

// Applies returns every ApplyFleet request received.
func (n *FleetNode) Applies() []*haav1.ApplyFleetRequest {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	return slices.Clone(n.applies)
}

// Document returns the stored document (nil: none) and whether it is held.
func (n *FleetNode) Document() (*haav1.Fleet, bool) {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if n.doc == nil {
		return nil, false
	}
	return proto.Clone(n.doc).(*haav1.Fleet), n.held
}

func (n *FleetNode) locked(fn func()) {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	fn()
}

func (n *FleetNode) wait(ctx context.Context) error {
	n.c.mu.Lock()
	d := n.delay
	n.c.mu.Unlock()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// GetFleet implements haav1.FleetServiceServer.
func (n *FleetNode) GetFleet(ctx context.Context, _ *haav1.GetFleetRequest) (*haav1.GetFleetResponse, error) {
	if err := n.wait(ctx); err != nil {
		return nil, err
	}
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	r := &haav1.GetFleetResponse{Node: n.Name, Issues: slices.Clone(n.issues)}
	if n.doc != nil {
		r.Document = proto.Clone(n.doc).(*haav1.Fleet)
	}
	members := c.nodes
	if n.noGossip {
		members = []*FleetNode{n}
	} else {
		r.Gossip = &haav1.GossipStats{BytesSent: 1000, BytesReceived: 2000, Since: timestamppb.New(now.Add(-time.Hour))}
	}
	for _, m := range members {
		m.Agent.mu.Lock()
		mem := &haav1.Member{Name: m.Name, GossipAddress: m.Addr + ":7946", ApiAddress: m.Target, State: m.state,
			Version: m.Agent.Node.GetVersion(), ConfigGeneration: m.Agent.Generation, ConfigHash: m.Agent.hashLocked(),
			FleetHash: config.InstancesHash(m.fleetIns), Health: &haav1.NodeHealth{Healthy: true},
			Updated: timestamppb.New(now.Add(-m.age)), Age: durationpb.New(m.age), StateSince: timestamppb.New(now.Add(-time.Hour))}
		if m.doc != nil {
			mem.FleetGeneration = m.doc.GetGeneration()
		}
		if n.doc != nil {
			mem.ExpectedFleetHash = config.FleetNodeHash(n.doc, m.Name)
		}
		if m.state == haav1.MemberState_MEMBER_STATE_ALIVE && r.Gossip != nil {
			r.Gossip.Alive++
		}
		for _, in := range m.Agent.Instances {
			fi := &haav1.FleetInstanceStatus{Node: m.Name, Name: in.GetName(), Interface: in.GetInterface(), Vrid: in.GetVrid(),
				Segment: "10.77.0.0/24", State: in.GetState(), Priority: in.GetEffectivePriority(), Vips: slices.Clone(in.GetVips()),
				Generation: mem.GetConfigGeneration(), FleetGeneration: mem.GetFleetGeneration(), Updated: mem.GetUpdated(), Age: mem.GetAge(),
				FromFleet: slices.ContainsFunc(m.fleetIns, func(fi *haav1.Instance) bool { return fi.GetName() == in.GetName() }),
				Family:    in.GetFamily(), VmacInterface: in.GetVmacInterface()}
			if m.state != haav1.MemberState_MEMBER_STATE_ALIVE && m.state != haav1.MemberState_MEMBER_STATE_SUSPECT {
				fi.State = haav1.State_STATE_UNSPECIFIED
			}
			r.Instances = append(r.Instances, fi)
		}
		m.Agent.mu.Unlock()
		r.Members = append(r.Members, mem)
	}
	return r, nil
}

// ApplyFleet implements haav1.FleetServiceServer with haad's rules: the
// document is validated (config.ValidateFleet), then admitted against the
// stored and pending ones (config.AdmitFleet: generation 0 is the next one;
// an older one, or another one of the stored generation, is
// FailedPrecondition). The stored document again, running, changes nothing
// but the hold. Otherwise the node's part runs as haad runs it (the plan,
// generation and hash of ApplyConfig, a ConfigApplied event), and the
// document is stored (a FleetApplied event).
func (n *FleetNode) ApplyFleet(ctx context.Context, req *haav1.ApplyFleetRequest) (*haav1.ApplyFleetResponse, error) {
	n.locked(func() { n.applies = append(n.applies, proto.Clone(req).(*haav1.ApplyFleetRequest)) })
	if err := n.wait(ctx); err != nil {
		return nil, err
	}
	c := n.c
	c.mu.Lock()
	resp, err := n.applyLocked(req)
	if err != nil || req.GetDryRun() {
		c.mu.Unlock()
		return resp, err
	}
	if c.AutoElect {
		c.electLocked()
	}
	onApply := n.onApply
	c.mu.Unlock()
	if onApply != nil {
		onApply(req)
	}
	return resp, nil
}

// applyLocked is ApplyFleet with c.mu held.
func (n *FleetNode) applyLocked(req *haav1.ApplyFleetRequest) (*haav1.ApplyFleetResponse, error) {
	if n.refuse != nil {
		return nil, n.refuse
	}
	doc := req.GetDocument()
	if doc == nil {
		return nil, InvalidArgument("document: required: the fleet document (kind: Fleet)", "document", "required: the fleet document (kind: Fleet)")
	}
	if err := config.ValidateFleet(doc); err != nil {
		var fv []string
		for _, f := range config.Fields(err) {
			fv = append(fv, f.Path, f.Msg)
		}
		return nil, InvalidArgument(err.Error(), fv...)
	}
	doc = proto.Clone(doc).(*haav1.Fleet)
	adm, err := config.AdmitFleet(n.doc, n.pending, doc, false, n.Name)
	if err != nil {
		// As haad maps config.ErrFleetStale and config.ErrFleetConflict.
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	doc.Generation = adm.Generation
	ins, _ := config.ForNode(doc, n.Name)
	var names []string
	for _, in := range ins {
		names = append(names, in.GetName())
	}
	a := n.Agent
	resp := &haav1.ApplyFleetResponse{Node: n.Name, FleetGeneration: n.doc.GetGeneration(), Instances: names}
	var commit func()
	if adm.Same && config.InstancesHash(n.fleetIns) == config.FleetNodeHash(doc, n.Name) {
		// Already running: only the hold may change.
		a.mu.Lock()
		resp.Plan, resp.Generation, resp.Hash = &haav1.Plan{Unchanged: names}, a.Generation, a.hashLocked()
		a.mu.Unlock()
		resp.Applied = !req.GetDryRun()
		commit = func() {
			if n.pending.GetGeneration() <= doc.GetGeneration() {
				n.pending = nil
			}
			n.held = req.GetHold()
		}
	} else {
		a.mu.Lock()
		resp.Plan = diff(a.composedLocked(a.Config), compose(a.Config, fleetPart(doc, n.Name)))
		resp.Generation, resp.Hash = a.Generation, a.hashLocked()
		a.mu.Unlock()
		commit = func() {
			n.storeLocked(doc, req.GetHold())
			a.mu.Lock()
			defer a.mu.Unlock()
			resp.Generation, resp.Hash = a.Generation, a.hashLocked()
			resp.FleetGeneration, resp.Applied = doc.GetGeneration(), true
			a.publishLocked(&haav1.Event{Kind: &haav1.Event_ConfigApplied{ConfigApplied: &haav1.ConfigApplied{
				Generation: resp.Generation, Hash: resp.Hash, Plan: resp.Plan}}},
				&haav1.Event{Kind: &haav1.Event_FleetApplied{FleetApplied: &haav1.FleetApplied{
					Generation: doc.GetGeneration(), Source: "api", Plan: resp.Plan}}})
		}
	}
	if req.GetDryRun() {
		return resp, nil
	}
	if n.fail != nil {
		for _, d := range status.Convert(n.fail).Details() {
			if _, ok := d.(*haav1.ApplyFleetResponse); ok { // took effect in part
				commit()
			}
		}
		return nil, n.fail
	}
	commit()
	return resp, nil
}

// fleetPart is the document's part for node, as haad composes it with the
// node's own configuration: its instances, and the trackers and sync
// groups they need.
func fleetPart(doc *haav1.Fleet, node string) *haav1.AgentConfig {
	ins, _ := config.ForNode(doc, node)
	trackers, groups, _, _ := config.ForNodeExtras(doc, node)
	return &haav1.AgentConfig{Instances: ins, Trackers: trackers, SyncGroups: groups}
}

// storeLocked stores doc and runs the node's part: the agent composes it
// with its own configuration (a new generation when the hash changes), and
// its instances follow (added ones BACKUP, the others keep their state).
func (n *FleetNode) storeLocked(doc *haav1.Fleet, hold bool) {
	doc = proto.Clone(doc).(*haav1.Fleet)
	if n.pending.GetGeneration() <= doc.GetGeneration() {
		n.pending = nil
	}
	n.doc, n.held = doc, hold
	ins, _ := config.ForNode(doc, n.Name)
	old := n.fleetIns
	n.fleetIns = ins
	a := n.Agent
	a.mu.Lock()
	defer a.mu.Unlock()
	before := a.hashLocked()
	a.fromFleet = fleetPart(doc, n.Name)
	if a.hashLocked() != before {
		a.Generation++
	}
	if config.InstancesHash(old) == config.InstancesHash(ins) {
		return
	}
	prev := map[string]*haav1.InstanceStatus{}
	a.Instances = slices.DeleteFunc(a.Instances, func(st *haav1.InstanceStatus) bool {
		if slices.ContainsFunc(old, func(in *haav1.Instance) bool { return in.GetName() == st.GetName() }) {
			prev[st.GetName()] = st
			return true
		}
		return false
	})
	for _, in := range ins {
		st := prev[in.GetName()] // kept: its state too
		if st == nil {
			st = &haav1.InstanceStatus{Name: in.GetName(), State: haav1.State_STATE_BACKUP}
		}
		prio := uint32(config.DefaultPriority)
		if in.Priority != nil {
			prio = in.GetPriority()
		}
		version := in.GetVersion()
		if version == 0 {
			version = config.DefaultVersion
		}
		st.Interface, st.Vrid, st.Version = in.GetInterface(), in.GetVrid(), version
		st.ConfiguredPriority, st.EffectivePriority = prio, prio
		st.Vips, st.SourceAddress, st.AdvertInterval = slices.Clone(in.GetVips()), n.Addr, in.GetAdvertInterval()
		st.Family, st.AcceptMode = in.GetFamily(), in.AcceptMode == nil || in.GetAcceptMode()
		if st.Family == "" {
			st.Family = "ipv4"
			if len(in.GetVips()) > 0 && strings.Contains(in.GetVips()[0], ":") {
				st.Family = "ipv6"
			}
		}
		if in.GetVmac() != nil {
			st.VmacInterface = in.GetVmac().GetName()
			if st.VmacInterface == "" {
				st.VmacInterface = fmt.Sprintf("vrrp.%d", in.GetVrid())
			}
		}
		a.Instances = append(a.Instances, st)
	}
}
