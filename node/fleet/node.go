// Package fleet is a node's part in the fleet: the fleet document it
// stores and whose part it runs (the agent composes that part with the
// node's own configuration), the gossip that carries the document and
// every node's health (node/gossip), and what the node sees of the others.
//
// A Node owns the store (its own lock: the agent's applies and the gossip
// handler write; readers load the published state) and two goroutines once
// gossip starts: the publisher, which sends the node's summary and
// metadata when they change (at most every 50 ms), and the detector, which
// every 500 ms turns the gossip view into member events, the lasting split
// brains and vrid collisions this node is part of (Detect, pure), its own
// drift, and catch-ups with a newer document a peer offers. What the node
// itself is comes from the agent (Local), read from its snapshots: neither
// goroutine ever waits for an apply.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/gossip"
	"github.com/haa-dev/haa/node/internal/atomicfile"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// ErrNotStarted: the node has no configuration yet (gossip needs its name).
var ErrNotStarted = errors.New("agent has no configuration yet")

// Events receives the fleet's events. Append must not block.
type Events interface {
	Append(e *haav1.Event) *haav1.Event
}

// Local is this node as the fleet sees it; the agent implements it from
// its subsystems' snapshots. Its methods never block.
type Local interface {
	// LocalState is the node's state now.
	LocalState() LocalState
}

// LocalState is this node's state for its gossip metadata and summary.
type LocalState struct {
	Name        string
	Version     string
	Generation  uint64
	Hash        string
	Maintenance bool
	Incarnation uint64
	// Doc is the fleet document whose part runs (nil: none) and FleetHash
	// identifies the fleet instances that run of it (config.InstancesHash
	// of their specs): the two are published together after an apply.
	// What the node tells the fleet (metadata, summary, GetFleet) takes
	// the document from here, not from the store, which an apply updates
	// last: the fleet never sees a document and a running part that do not
	// belong together.
	Doc       *haav1.Fleet
	Held      bool // Doc is not offered to peers
	FleetHash string
	Instances []LocalInstance
	// VirtualServers are the verdicts of this node's health checks on its
	// virtual servers' real servers.
	VirtualServers []*haav1.VirtualServerHealth
}

// LocalInstance is one of this node's instances.
type LocalInstance struct {
	Summary *haav1.InstanceSummary
	// VIPError is why its VIPs cannot be added, while master ("": none).
	VIPError string
}

// Applier runs a document a peer offered (the agent's ApplyFleet with
// Adopt): applied reports whether it stores and runs it now (in part when
// err is not nil).
type Applier interface {
	AdoptFleet(ctx context.Context, doc *haav1.Fleet, from string) (applied bool, err error)
}

// Announcer makes this node's master of a virtual router re-announce its
// addresses (after a split brain it stays master of).
type Announcer interface {
	Announce(segment string, vrid uint32)
}

// Deps are what a Node is built with.
type Deps struct {
	Log       *slog.Logger
	Events    Events
	Local     Local
	Announcer Announcer
	// Peers, if set, takes the instances' unicast peers from the fleet.
	Peers PeerSetter
	// Verdicts, if set, takes the other directors' verdicts on the real
	// servers.
	Verdicts VerdictSink
	// File keeps the stored document across restarts ("": not kept).
	File string
	// Version is haad's version, for the metadata.
	Version string
}

// Node is this node's part in a fleet: the fleet document it stores (its
// part of which runs), the gossip that carries the document, the members'
// health and the problems it detects. The document store has its own lock,
// taken by the agent's apply (which serialises the changes) and by the
// gossip handler; readers use the published document (Stored) and the
// gossip view.
type Node struct {
	log     *slog.Logger
	events  Events
	local   Local
	ann     Announcer
	peers   PeerSetter
	verdict VerdictSink
	file    string
	started time.Time

	mu      sync.Mutex // the store's writers
	doc     atomic.Pointer[stored]
	applier Applier

	gossip      atomic.Pointer[gossip.Gossip] // nil: the node gossips with no one
	ctx         context.Context
	cancel      context.CancelFunc
	wg          sync.WaitGroup // the publisher and the detector
	meta        atomic.Pointer[haav1.GossipMeta]
	offer       atomic.Pointer[haav1.Fleet]
	pub         chan struct{} // wakes the publisher
	changed     chan struct{} // wakes the detector
	apiAddr     atomic.Pointer[string]
	lastSummary string // what the publisher last sent (time aside); publisher only
	summarySeq  atomic.Uint64
	issues      atomic.Pointer[[]*haav1.FleetIssue] // lasting ones, from the detector
	splitBrains atomic.Uint64                       // split brains this node took part in
	hashes      hashMemo                            // of the documents held
}

// stored is the document store's state. It is immutable.
type stored struct {
	doc        *haav1.Fleet // stored document (its part runs); nil: none
	held       bool         // stored but not offered to peers (rolling apply)
	pending    *haav1.Fleet // a newer document that cannot run here
	pendingErr string       // why
}

// New returns the fleet part of a node, with the document kept in
// d.File if there is one (a damaged file is an error that says what to
// do).
func New(d Deps) (*Node, error) {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	n := &Node{log: d.Log, events: d.Events, local: d.Local, ann: d.Announcer, peers: d.Peers, verdict: d.Verdicts, file: d.File,
		started: time.Now(), pub: make(chan struct{}, 1), changed: make(chan struct{}, 1)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.doc.Store(&stored{})
	if err := n.load(); err != nil {
		return nil, err
	}
	return n, nil
}

// Stored returns the stored document (nil: none) and whether it is held.
// It never waits; do not modify the document.
func (n *Node) Stored() (doc *haav1.Fleet, held bool) {
	s := n.doc.Load()
	return s.doc, s.held
}

// Admit decides whether doc may be stored (config.AdmitFleet against the
// stored and pending documents of node).
func (n *Node) Admit(doc *haav1.Fleet, adopt bool, node string) (config.Admission, error) {
	s := n.doc.Load()
	return config.AdmitFleet(s.doc, s.pending, doc, adopt, node)
}

// Store keeps doc as the stored document (held: not offered to peers)
// once its part runs, forgets a pending document it supersedes, writes the
// fleet file and tells the fleet.
func (n *Node) Store(doc *haav1.Fleet, held bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	next := &stored{doc: doc, held: held}
	if p := n.doc.Load(); p.pending != nil && p.pending.GetGeneration() > doc.GetGeneration() {
		next.pending, next.pendingErr = p.pending, p.pendingErr
	}
	n.doc.Store(next)
	n.Published()
	return n.save(next)
}

// Hold changes whether the stored document is offered to peers.
func (n *Node) Hold(held bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := *n.doc.Load()
	if s.held == held {
		return nil
	}
	s.held = held
	n.doc.Store(&s)
	n.Published()
	return n.save(&s)
}

// ClearPending forgets a pending document of generation gen or older.
func (n *Node) ClearPending(gen uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := *n.doc.Load()
	if s.pending != nil && s.pending.GetGeneration() <= gen {
		s.pending, s.pendingErr = nil, ""
		n.doc.Store(&s)
		n.Published()
	}
}

// Suspend stops using the stored document (its part cannot run: why), so
// the node's own configuration can start; the document is reported as
// pending and the node as drifting until a document that runs arrives.
func (n *Node) Suspend(why error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.doc.Load()
	if s.doc == nil {
		return
	}
	n.doc.Store(&stored{pending: s.doc, pendingErr: why.Error()})
	n.log.Error("the stored fleet document cannot run here: running the node's own configuration only",
		"fleet_generation", s.doc.GetGeneration(), "err", why)
}

// setPending records a newer document that cannot run here.
func (n *Node) setPending(doc *haav1.Fleet, why string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := *n.doc.Load()
	s.pending, s.pendingErr = doc, why
	n.doc.Store(&s)
	n.Published()
}

// storedFile is the content of the fleet file.
type storedFile struct {
	Held     bool            `json:"held"`
	Document json.RawMessage `json:"document"`
}

// load reads the fleet file, if any.
func (n *Node) load() error {
	if n.file == "" {
		return nil
	}
	b, err := os.ReadFile(n.file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the fleet document: %w", err)
	}
	var f storedFile
	doc := &haav1.Fleet{}
	err = json.Unmarshal(b, &f)
	if err == nil {
		err = protojson.Unmarshal(f.Document, doc)
	}
	if err == nil {
		err = config.ValidateFleet(doc)
	}
	if err != nil {
		return fmt.Errorf("fleet file %s is damaged (%v): remove it, the node catches up from its peers", n.file, err)
	}
	n.doc.Store(&stored{doc: doc, held: f.Held})
	return nil
}

// save writes the fleet file atomically. Called with mu held.
func (n *Node) save(s *stored) error {
	if n.file == "" || s.doc == nil {
		return nil
	}
	js, err := protojson.Marshal(s.doc)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(storedFile{Held: s.held, Document: js}, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(n.file, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing the fleet document: %w", err)
	}
	return nil
}

// Published tells the publisher that the node's state changed (the fleet
// hears of it at once). It never blocks.
func (n *Node) Published() {
	select {
	case n.pub <- struct{}{}:
	default:
	}
}

// GossipOption tunes Start (tests).
type GossipOption func(*gossip.Config)

// WithGossipConfig lets fn change the gossip configuration before start
// (an in-memory transport, short timers).
func WithGossipConfig(fn func(*gossip.Config)) GossipOption { return GossipOption(fn) }

// Start joins the fleet: the node gossips its metadata and health and
// offers its document; it takes newer documents from its peers (through
// applier) and reports the split brains, drift and vrid collisions it is
// part of. api is where the node's API listens (for haactl). Call it once,
// after the node's first configuration runs.
func (n *Node) Start(cfg *haav1.Gossip, api string, applier Applier, opts ...GossipOption) error {
	name := n.local.LocalState().Name
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
		n.log.Warn("gossip is in clear text and unauthenticated (gossip.insecure): anyone on the network can read and forge fleet state")
	}
	n.apiAddr.Store(&api)
	n.applier = applier
	n.refreshMeta()
	gc := gossip.Config{
		Name: name, Bind: cfg.GetBind(), Advertise: cfg.GetAdvertise(), Join: cfg.GetJoin(),
		Key: key, Label: cfg.GetLabel(), Log: n.log.With("subsystem", "gossip"),
	}
	for _, o := range opts {
		o(&gc)
	}
	g, err := gossip.Start(gc, (*gossipLocal)(n), (*gossipHandler)(n))
	if err != nil {
		return err
	}
	n.gossip.Store(g)
	n.wg.Add(2)
	go n.publishLoop(g)
	go n.detectLoop(g)
	n.Published()
	return nil
}

// Close leaves the fleet (the others see LEFT, not a failure), after
// sending the node's last state.
func (n *Node) Close() {
	n.cancel()
	g := n.gossip.Load()
	if g == nil {
		return
	}
	n.wg.Wait() // the publisher and the detector have stopped
	n.publish(g)
	if err := g.Leave(time.Second); err != nil {
		n.log.Warn("leaving the fleet", "err", err)
	}
}

// gossipLocal is what the node offers to gossip; its methods never block.
type gossipLocal Node

func (l *gossipLocal) Meta() *haav1.GossipMeta { return l.meta.Load() }
func (l *gossipLocal) Offer() *haav1.Fleet     { return l.offer.Load() }

// gossipHandler receives what peers send, in order, on one goroutine.
type gossipHandler Node

// Offered adopts a peer's document when it is newer than the stored one.
func (h *gossipHandler) Offered(from string, doc *haav1.Fleet) {
	n := (*Node)(h)
	s := n.doc.Load()
	if !config.NewerFleet(doc, s.doc) || (s.pending != nil && !config.NewerFleet(doc, s.pending)) {
		return
	}
	applied, err := n.applier.AdoptFleet(n.ctx, doc, from)
	switch {
	case err == nil:
		return
	case applied:
		// Stored and running, in part: drift reports what is missing.
		n.log.Error("caught up with the fleet document, but part of it failed", "from", from,
			"fleet_generation", doc.GetGeneration(), "err", err)
		return
	case errors.Is(err, config.ErrFleetStale), errors.Is(err, ErrStopped), errors.Is(err, ErrNotStarted):
		return // overtaken by a newer apply, or stopping
	}
	n.setPending(proto.Clone(doc).(*haav1.Fleet), err.Error())
	n.log.Error("the fleet document from a peer cannot run here: the node keeps its part of the previous one",
		"from", from, "fleet_generation", doc.GetGeneration(), "err", err)
}

// ErrStopped is returned by an Applier that is shutting down.
var ErrStopped = errors.New("agent is shut down")

// Changed wakes the detector.
func (h *gossipHandler) Changed() {
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

// publishLoop sends the node's summary and metadata to gossip when they
// change, at most every 50 ms (gossip itself re-sends the summary every
// few seconds).
func (n *Node) publishLoop(g *gossip.Gossip) {
	defer n.wg.Done()
	tick := time.NewTicker(time.Second) // catches what no notice reports
	defer tick.Stop()
	for n.ctx.Err() == nil {
		select {
		case <-n.ctx.Done():
			return
		case <-n.pub:
		case <-tick.C:
		}
		if n.ctx.Err() != nil {
			return
		}
		n.publish(g)
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// publish sends the summary if it changed, with the metadata, and
// memberlist's metadata if what it must carry changed (see
// NodeSummary.meta).
func (n *Node) publish(g *gossip.Gossip) {
	stable := n.refreshMeta()
	s := n.summary()
	s.Meta = n.meta.Load()
	key := summaryKey(s)
	if key != n.lastSummary {
		n.lastSummary = key
		s.Seq = n.summarySeq.Add(1)
		g.SetSummary(s)
	}
	if stable {
		g.UpdateMeta()
	}
	select {
	case n.changed <- struct{}{}:
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
// whether what memberlist's metadata must carry changed: the name, API
// address and version (the rest travels with the summary).
func (n *Node) refreshMeta() bool {
	m, offer := n.buildMeta(n.local.LocalState())
	n.offer.Store(offer)
	old := n.meta.Load()
	if proto.Equal(m, old) {
		return false
	}
	n.meta.Store(m)
	return old == nil || m.GetName() != old.GetName() || m.GetApi() != old.GetApi() || m.GetVersion() != old.GetVersion()
}

// buildMeta returns the node's metadata and the document it offers, of l.
func (n *Node) buildMeta(l LocalState) (*haav1.GossipMeta, *haav1.Fleet) {
	api := ""
	if p := n.apiAddr.Load(); p != nil {
		api = *p
	}
	m := &haav1.GossipMeta{Name: l.Name, Api: api, Version: l.Version,
		ConfigGeneration: l.Generation, ConfigHash: l.Hash, FleetHash: l.FleetHash}
	var offer *haav1.Fleet
	if d := l.Doc; d != nil { // the document that runs: the store's once the apply is done
		m.FleetGeneration = d.Generation
		if !l.Held {
			offer = d
			m.FleetOffer = d.Generation
			m.FleetOfferHash = n.hashes.document(d)
		}
	}
	return m, offer
}

// summary is the node's health summary now.
func (n *Node) summary() *haav1.NodeSummary { return n.summaryOf(n.local.LocalState(), n.doc.Load()) }

// summaryOf is the health summary of l and the store's state st.
func (n *Node) summaryOf(l LocalState, st *stored) *haav1.NodeSummary {
	s := &haav1.NodeSummary{Node: l.Name, Incarnation: l.Incarnation, Time: timestamppb.Now(),
		Health: &haav1.NodeHealth{Maintenance: l.Maintenance}}
	for _, li := range l.Instances {
		in := li.Summary
		s.Instances = append(s.Instances, in)
		if in.GetState() == haav1.State_STATE_FAULT {
			s.Health.Problems = append(s.Health.Problems, in.GetName()+" is in FAULT (interface "+in.GetInterface()+" down?)")
		}
		if li.VIPError != "" {
			s.Health.Problems = append(s.Health.Problems, in.GetName()+": cannot add its VIPs: "+li.VIPError)
		}
	}
	s.VirtualServers = l.VirtualServers
	if d := n.selfDrift(l, st); d != nil {
		s.Health.Problems = append(s.Health.Problems, d.GetReason())
	}
	s.Health.Healthy = !l.Maintenance && len(s.Health.Problems) == 0
	return s
}

// selfDrift is this node's own drift, if any: a newer document that cannot
// run here, or fleet instances that do not run as the document whose part
// runs says.
func (n *Node) selfDrift(l LocalState, s *stored) *haav1.Drift {
	stored := l.Doc.GetGeneration()
	switch {
	case s.pending != nil:
		return &haav1.Drift{Node: l.Name, FleetGeneration: stored, Hash: l.FleetHash,
			ExpectedHash: n.hashes.node(s.pending, l.Name),
			Reason:       fmt.Sprintf("fleet generation %d cannot run here: %s", s.pending.GetGeneration(), truncate(s.pendingErr, 300))}
	case l.Doc != nil && l.FleetHash != n.hashes.node(l.Doc, l.Name):
		gen := l.Doc.GetGeneration()
		return &haav1.Drift{Node: l.Name, FleetGeneration: gen, Hash: l.FleetHash,
			ExpectedHash: n.hashes.node(l.Doc, l.Name),
			Reason:       fmt.Sprintf("runs other fleet instances than generation %d gives it (an instance failed to start?)", gen)}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
