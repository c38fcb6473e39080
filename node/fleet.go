package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/gossip"
	"github.com/haa-dev/haa/node/vrrp"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Errors of ApplyFleet besides *config.Error (test with errors.Is).
var (
	ErrFleetStale    = errors.New("fleet document older than the one stored")
	ErrFleetConflict = errors.New("another fleet document has this generation")
	ErrNotStarted    = errors.New("agent has no configuration yet")
)

// fleetState is the agent's part in a fleet: the stored document and the
// gossip that carries it.
type fleetState struct {
	fleetFile string // where the document is kept; "": not kept

	// Guarded by Agent.mu.
	doc        *haav1.Fleet // stored document (its part runs); nil: none
	docHeld    bool         // stored but not offered to peers (rolling apply)
	fleetNames []string     // the running instances that come from doc
	pending    *haav1.Fleet // a newer document that cannot run here
	pendingErr string       // why

	gossip      atomic.Pointer[gossip.Gossip] // nil: the node gossips with no one
	fleetWG     sync.WaitGroup                // the publisher and the detector
	meta        atomic.Pointer[haav1.GossipMeta]
	offer       atomic.Pointer[haav1.Fleet]
	pub         chan struct{} // wakes the publisher
	changed     chan struct{} // wakes the detector
	apiAddr     string        // guarded by Agent.mu
	incarnation uint64        // guarded by Agent.mu
	lastSummary string        // what the publisher last sent (time aside)
	summarySeq  atomic.Uint64
	issues      atomic.Pointer[[]*haav1.FleetIssue] // lasting ones, from the detector
	splitBrains atomic.Uint64                       // split brains this node took part in
}

// FleetApplyOptions qualify an ApplyFleet.
type FleetApplyOptions struct {
	// DryRun validates, checks against this node and plans only.
	DryRun bool
	// Hold stores and runs the document without offering it to peers.
	Hold bool
	// Source says where the document comes from, for the event: "api",
	// "gossip from NODE".
	Source string
	// Adopt is catching up from a peer: a document of the stored
	// generation with a higher hash replaces the stored one (two applies
	// raced: every node settles on the same one) instead of being refused.
	Adopt bool
}

// FleetApplyResult is the outcome of an ApplyFleet.
type FleetApplyResult struct {
	ApplyResult
	// Node is this node's name.
	Node string
	// FleetGeneration is the generation stored after the call.
	FleetGeneration uint64
	// Instances are the document's instances this node runs.
	Instances []string
}

// WithFleetFile keeps the fleet document in path, so a restarted agent runs
// its part again at once (and then catches up from its peers).
func WithFleetFile(path string) Option { return func(a *Agent) { a.fleetFile = path } }

// ApplyFleet stores a fleet document and runs this node's part of it: the
// instances that name the node, composed with the node's own configuration.
// Nothing else changes. An invalid document, or one whose part cannot run
// here, changes nothing (a *config.Error with the document's paths); so
// does an older one (ErrFleetStale) or another one of the same generation
// (ErrFleetConflict). Generation 0 means the next one.
func (a *Agent) ApplyFleet(ctx context.Context, doc *haav1.Fleet, opts FleetApplyOptions) (FleetApplyResult, error) {
	if err := config.ValidateFleet(doc); err != nil {
		return FleetApplyResult{}, err
	}
	doc = proto.Clone(doc).(*haav1.Fleet)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.local == nil {
		return FleetApplyResult{}, ErrNotStarted
	}
	var cur uint64
	if a.doc != nil {
		cur = a.doc.GetGeneration()
	}
	// A suspended or unrunnable newer document still counts: an older one
	// must not slip in under it (retrying that very one is fine).
	floor := cur
	if p := a.pending; p != nil && p.GetGeneration() > floor && config.DocumentHash(p) != config.DocumentHash(doc) {
		floor = p.GetGeneration()
	}
	if doc.Generation == 0 {
		doc.Generation = max(cur, floor) + 1
	}
	same := false
	switch {
	case doc.Generation < floor:
		return FleetApplyResult{}, fmt.Errorf("document generation %d is older than generation %d stored on %s: get the fleet again and re-apply: %w",
			doc.Generation, floor, a.cfg.Name, ErrFleetStale)
	case a.doc != nil && doc.Generation == cur:
		switch dh, ch := config.DocumentHash(doc), config.DocumentHash(a.doc); {
		case dh == ch:
			same = true
		case opts.Adopt && dh > ch:
			// The race's winner replaces this node's document.
		default:
			return FleetApplyResult{}, fmt.Errorf("%s already stores another document of generation %d (applied concurrently?): re-run the apply, it takes the next generation: %w",
				a.cfg.Name, cur, ErrFleetConflict)
		}
	}
	if same && a.fleetHashLocked() == config.FleetNodeHash(doc, a.cfg.Name) {
		// Already running: only the hold may change.
		names := slices.Clone(a.fleetNames)
		res := FleetApplyResult{ApplyResult: ApplyResult{Plan: Plan{Unchanged: names}, Generation: a.gen, Hash: a.hash, Applied: !opts.DryRun},
			Node: a.cfg.Name, FleetGeneration: cur, Instances: names}
		if opts.DryRun {
			return res, nil
		}
		if a.pending != nil && a.pending.GetGeneration() <= doc.Generation {
			a.pending, a.pendingErr = nil, ""
			a.published()
		}
		if a.docHeld != opts.Hold {
			a.docHeld = opts.Hold
			err := a.saveFleet()
			a.published()
			return res, err
		}
		return res, nil
	}
	res, comp, err := a.apply(ctx, a.local, doc, true, ApplyOptions{DryRun: opts.DryRun})
	names := comp.fleetNames()
	out := FleetApplyResult{ApplyResult: res, Node: a.cfg.Name, FleetGeneration: cur, Instances: names}
	if opts.DryRun || !res.Applied {
		return out, err
	}
	a.doc, a.docHeld = doc, opts.Hold
	if a.pending != nil && a.pending.GetGeneration() <= doc.Generation {
		a.pending, a.pendingErr = nil, ""
	}
	out.FleetGeneration = doc.Generation
	if serr := a.saveFleet(); serr != nil {
		err = errors.Join(err, serr)
	}
	src := opts.Source
	if src == "" {
		src = "api"
	}
	a.events.Append(&haav1.Event{Kind: &haav1.Event_FleetApplied{FleetApplied: &haav1.FleetApplied{
		Generation: doc.Generation, Source: src, Plan: PlanProto(res.Plan)}}})
	a.log.Info("fleet document applied", "fleet_generation", doc.Generation, "source", src, "held", opts.Hold,
		"instances", names)
	a.published()
	return out, err
}

// fleetHashLocked is the hash of the fleet instances running. Called with
// a.mu held.
func (a *Agent) fleetHashLocked() string {
	var specs []*haav1.Instance
	for _, name := range a.fleetNames {
		if in := a.instances[name]; in != nil {
			specs = append(specs, in.cfg.Spec)
		}
	}
	return config.InstancesHash(specs)
}

// HasFleet reports whether the agent stores a fleet document.
func (a *Agent) HasFleet() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.doc != nil
}

// SuspendFleet stops using the stored fleet document (its part cannot run:
// why), so the node's own configuration can start; the document is reported
// as pending and the node as drifting until a document that runs arrives.
func (a *Agent) SuspendFleet(why error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.doc == nil {
		return
	}
	a.pending, a.pendingErr = a.doc, why.Error()
	a.doc, a.docHeld = nil, false
	a.log.Error("the stored fleet document cannot run here: running the node's own configuration only",
		"fleet_generation", a.pending.GetGeneration(), "err", why)
}

// storedFleet is the content of the fleet file.
type storedFleet struct {
	Held     bool            `json:"held"`
	Document json.RawMessage `json:"document"`
}

// loadFleet reads the fleet file, if any.
func (a *Agent) loadFleet() error {
	if a.fleetFile == "" {
		return nil
	}
	b, err := os.ReadFile(a.fleetFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the fleet document: %w", err)
	}
	var f storedFleet
	doc := &haav1.Fleet{}
	if err := json.Unmarshal(b, &f); err == nil {
		err = protojson.Unmarshal(f.Document, doc)
	}
	if err == nil {
		err = config.ValidateFleet(doc)
	}
	if err != nil {
		return fmt.Errorf("fleet file %s is damaged (%v): remove it, the node catches up from its peers", a.fleetFile, err)
	}
	a.doc, a.docHeld = doc, f.Held
	return nil
}

// saveFleet writes the fleet file atomically. Called with a.mu held.
func (a *Agent) saveFleet() error {
	if a.fleetFile == "" || a.doc == nil {
		return nil
	}
	js, err := protojson.Marshal(a.doc)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(storedFleet{Held: a.docHeld, Document: js}, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(a.fleetFile, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing the fleet document: %w", err)
	}
	return nil
}

// published tells the publisher that the node's state changed. It never
// blocks.
func (a *Agent) published() {
	select {
	case a.pub <- struct{}{}:
	default:
	}
}

// GossipOption tunes StartGossip (tests).
type GossipOption func(*gossip.Config)

// WithGossipConfig lets fn change the gossip configuration before start
// (an in-memory transport, short timers).
func WithGossipConfig(fn func(*gossip.Config)) GossipOption { return GossipOption(fn) }

// StartGossip joins the fleet: the node gossips its metadata and health and
// offers its fleet document; it takes newer documents from its peers and
// reports split brains, drift and vrid collisions it is part of. api is
// where the node's API listens (for haactl). Call it once, after the first
// Apply.
func (a *Agent) StartGossip(cfg *haav1.Gossip, api string, opts ...GossipOption) error {
	a.mu.Lock()
	name := ""
	if a.cfg != nil {
		name = a.cfg.Name
	}
	a.mu.Unlock()
	if name == "" {
		return ErrNotStarted
	}
	var key []byte
	if cfg.GetKeyFile() != "" {
		k, err := gossip.LoadKey(cfg.GetKeyFile())
		if err != nil {
			return &config.Error{Fields: []config.FieldError{{Path: "gossip.keyFile", Msg: err.Error()}}}
		}
		key = k
	} else if !gossip.IsLoopback(cfg.GetBind()) && !cfg.GetInsecure() {
		return &config.Error{Fields: []config.FieldError{{Path: "gossip.keyFile",
			Msg: "required when gossip.bind is not a loopback address: create one with `haactl keygen`, or set gossip.insecure (labs only)"}}}
	}
	if key == nil && !gossip.IsLoopback(cfg.GetBind()) {
		a.log.Warn("gossip is in clear text and unauthenticated (gossip.insecure): anyone on the network can read and forge fleet state")
	}
	a.mu.Lock()
	a.apiAddr = api
	a.incarnation = uint64(time.Now().UnixNano())
	a.mu.Unlock()
	a.refreshMeta()
	gc := gossip.Config{
		Name: name, Bind: cfg.GetBind(), Advertise: cfg.GetAdvertise(), Join: cfg.GetJoin(),
		Key: key, Label: cfg.GetLabel(), Log: a.log.With("subsystem", "gossip"),
	}
	for _, o := range opts {
		o(&gc)
	}
	g, err := gossip.Start(gc, (*gossipLocal)(a), (*gossipHandler)(a))
	if err != nil {
		return err
	}
	a.gossip.Store(g)
	a.fleetWG.Add(2)
	go a.publishLoop(g)
	go a.detectLoop(g)
	a.published()
	return nil
}

// stopGossip leaves the fleet (the others see LEFT, not a failure).
func (a *Agent) stopGossip() {
	g := a.gossip.Load()
	if g == nil {
		return
	}
	a.fleetWG.Wait() // the publisher and the detector have stopped (ctx is done)
	a.publish(g)     // the last state: no instance any more
	if err := g.Leave(time.Second); err != nil {
		a.log.Warn("leaving the fleet", "err", err)
	}
}

// gossipLocal is what the agent offers to gossip; its methods never block.
type gossipLocal Agent

func (l *gossipLocal) Meta() *haav1.GossipMeta { return l.meta.Load() }
func (l *gossipLocal) Offer() *haav1.Fleet     { return l.offer.Load() }

// gossipHandler receives what peers send, in order, on one goroutine.
type gossipHandler Agent

// Offered adopts a peer's document when it is newer than the stored one.
func (h *gossipHandler) Offered(from string, doc *haav1.Fleet) {
	a := (*Agent)(h)
	a.mu.Lock()
	cur, pending := a.doc, a.pending
	a.mu.Unlock()
	if !newer(doc, cur) || (pending != nil && !newer(doc, pending)) {
		return
	}
	res, err := a.ApplyFleet(a.ctx, doc, FleetApplyOptions{Source: "gossip from " + from, Adopt: true})
	switch {
	case err == nil:
		return
	case res.Applied:
		// Stored and running, in part: drift reports what is missing.
		a.log.Error("caught up with the fleet document, but part of it failed", "from", from,
			"fleet_generation", doc.GetGeneration(), "err", err)
		return
	case errors.Is(err, ErrFleetStale), errors.Is(err, ErrShutdown), errors.Is(err, ErrNotStarted):
		return // overtaken by a newer apply, or stopping
	}
	a.mu.Lock()
	a.pending, a.pendingErr = proto.Clone(doc).(*haav1.Fleet), err.Error()
	a.mu.Unlock()
	a.log.Error("the fleet document from a peer cannot run here: the node keeps its part of the previous one",
		"from", from, "fleet_generation", doc.GetGeneration(), "err", err)
	a.published()
}

// Changed wakes the detector.
func (h *gossipHandler) Changed() {
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

// newer orders documents by generation, then hash: every node picks the
// same one of two concurrent applies.
func newer(doc, than *haav1.Fleet) bool {
	if than == nil {
		return doc != nil
	}
	if doc.GetGeneration() != than.GetGeneration() {
		return doc.GetGeneration() > than.GetGeneration()
	}
	return config.DocumentHash(doc) > config.DocumentHash(than)
}

// publishLoop sends the node's summary and metadata to gossip when they
// change, at most every 50 ms (gossip itself re-sends the summary every
// few seconds).
func (a *Agent) publishLoop(g *gossip.Gossip) {
	defer a.fleetWG.Done()
	tick := time.NewTicker(time.Second) // catches what no notice reports
	defer tick.Stop()
	for a.ctx.Err() == nil {
		select {
		case <-a.ctx.Done():
			return
		case <-a.pub:
		case <-tick.C:
		}
		if a.ctx.Err() != nil {
			return
		}
		a.publish(g)
		select {
		case <-a.ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// publish sends the summary if it changed, and the metadata if it changed.
func (a *Agent) publish(g *gossip.Gossip) {
	s := a.summary()
	key := summaryKey(s)
	if key != a.lastSummary {
		a.lastSummary = key
		s.Seq = a.summarySeq.Add(1)
		g.SetSummary(s)
	}
	if a.refreshMeta() {
		g.UpdateMeta()
	}
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

// summaryKey identifies a summary's content, its time aside.
func summaryKey(s *haav1.NodeSummary) string {
	c := proto.Clone(s).(*haav1.NodeSummary)
	c.Time = nil
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	return string(b)
}

// refreshMeta recomputes the metadata and the offered document; it reports
// whether the metadata changed. Only the publisher calls it (it must then
// tell gossip).
func (a *Agent) refreshMeta() bool {
	m, offer := a.buildMeta()
	a.offer.Store(offer)
	if proto.Equal(m, a.meta.Load()) {
		return false
	}
	a.meta.Store(m)
	return true
}

// buildMeta returns the node's metadata and the document it offers now.
func (a *Agent) buildMeta() (*haav1.GossipMeta, *haav1.Fleet) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := &haav1.GossipMeta{Name: a.cfg.Name, Api: a.apiAddr, Version: a.version,
		ConfigGeneration: a.gen, ConfigHash: a.hash, FleetHash: a.fleetHashLocked()}
	var offer *haav1.Fleet
	if a.doc != nil {
		m.FleetGeneration = a.doc.Generation
		if !a.docHeld {
			offer = a.doc
			m.FleetOffer = a.doc.Generation
			m.FleetOfferHash = config.DocumentHash(a.doc)
		}
	}
	return m, offer
}

// summary is the node's health summary now.
func (a *Agent) summary() *haav1.NodeSummary {
	a.mu.Lock()
	name, maint, incarnation := a.cfg.Name, a.maint.Enabled, a.incarnation
	fromFleet := map[string]bool{}
	for _, n := range a.fleetNames {
		fromFleet[n] = true
	}
	type entry struct {
		in *instance
		st InstanceStatus
	}
	var es []entry
	for _, in := range a.instances {
		es = append(es, entry{in: in, st: InstanceStatus{Config: in.cfg, Status: in.runner.Status()}})
	}
	drift := a.selfDriftLocked()
	a.mu.Unlock()
	slices.SortFunc(es, func(x, y entry) int { return strings.Compare(x.in.cfg.VRRP.Name, y.in.cfg.VRRP.Name) })
	s := &haav1.NodeSummary{Node: name, Incarnation: incarnation, Time: timestamp(time.Now()),
		Health: &haav1.NodeHealth{Maintenance: maint}}
	for _, e := range es {
		c, st := e.in.cfg, e.st.Status
		vips := make([]string, len(c.VIPs))
		for i, v := range c.VIPs {
			vips[i] = v.Prefix.String()
		}
		seg := ""
		if e.in.segment.IsValid() {
			seg = e.in.segment.String()
		}
		s.Instances = append(s.Instances, &haav1.InstanceSummary{Name: c.VRRP.Name, Interface: c.Interface,
			Vrid: uint32(c.VRRP.VRID), Segment: seg, State: StateProto(st.State), Priority: uint32(st.Priority),
			Vips: vips, Definition: e.in.definition, FromFleet: fromFleet[c.VRRP.Name]})
		if st.State == vrrp.Fault {
			s.Health.Problems = append(s.Health.Problems, c.VRRP.Name+" is in FAULT (interface "+c.Interface+" down?)")
		}
		if st.VIPError != "" {
			s.Health.Problems = append(s.Health.Problems, c.VRRP.Name+": cannot add its VIPs: "+st.VIPError)
		}
	}
	if drift != nil {
		s.Health.Problems = append(s.Health.Problems, drift.GetReason())
	}
	s.Health.Healthy = !maint && len(s.Health.Problems) == 0
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
