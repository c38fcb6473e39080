// Package node is the haad agent. An Agent composes the subsystems that do
// the work and orders a configuration's apply across them:
//
//   - instances: the VRRP instances (runners, sockets, VIPs, GARP);
//   - tracking: trackers, sync groups and notify commands;
//   - balancer: virtual servers, their health checks and the backend;
//   - fleet: the fleet document, gossip and what the node sees of the
//     others.
//
// Each subsystem owns its state behind its own lock or goroutine and
// publishes an immutable snapshot after every change: the API, metrics and
// gossip read those and never wait for an apply, nor for the kernel. The
// machine itself (links, addresses, sockets, sysctls) is behind Host:
// host.Linux in haad, an in-memory fake in tests.
//
// Mutations (Apply, ApplyFleet, SetMaintenance, Shutdown) serialise on the
// agent's one lock; nothing else takes it.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/node/balancer"
	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/fleet"
	"github.com/haa-dev/haa/node/host"
	"github.com/haa-dev/haa/node/instances"
	"github.com/haa-dev/haa/node/internal/atomicfile"
	"github.com/haa-dev/haa/node/lvs"
	"github.com/haa-dev/haa/node/notify"
	"github.com/haa-dev/haa/node/tracking"
	"github.com/haa-dev/haa/node/vrrp"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Host is the machine the agent runs on: what its subsystems need of it
// and the link monitor. host.Linux is the real one.
type Host interface {
	instances.Host
	IPv4Forwarding() (bool, error)
	// WatchLinks reports every link, then each change, until ctx ends.
	WatchLinks(ctx context.Context) (<-chan host.LinkEvent, error)
}

// Errors of Apply and ApplyFleet besides *config.Error (test with
// errors.Is).
var (
	ErrGenerationMismatch = errors.New("configuration generation mismatch")
	// ErrPersist: the configuration could not be written to its file
	// (disk full, read-only, permissions): nothing was applied.
	ErrPersist       = errors.New("cannot write the configuration file")
	ErrShutdown      = fleet.ErrStopped
	ErrNotStarted    = fleet.ErrNotStarted
	ErrFleetStale    = config.ErrFleetStale
	ErrFleetConflict = config.ErrFleetConflict
)

// Agent runs one node: it composes the subsystems and orders an apply.
type Agent struct {
	log     *slog.Logger
	host    Host
	events  *EventLog
	notify  *notify.Runner
	vrrp    *instances.Set
	track   *tracking.Manager
	lb      *balancer.Balancer
	fleet   *fleet.Node
	state   stateFile
	cfgFile string // where applied configurations are persisted
	version string
	started time.Time

	ctx    context.Context // the agent's life: the link monitor, the maintenance timer
	cancel context.CancelFunc
	wg     sync.WaitGroup

	stopOnce sync.Once
	stopped  chan struct{} // closed when Shutdown is done
	stopErr  error         // Shutdown's outcome, set before stopped closes

	// mu serialises the mutations: Apply, ApplyFleet, SetMaintenance,
	// Shutdown. Readers never take it.
	mu         sync.Mutex
	maintTimer *time.Timer // ends a maintenance with a TTL; nil: none

	running   atomic.Pointer[running]
	endpoints atomic.Pointer[endpoints]
}

// running is what runs, published after every change. It is immutable.
type running struct {
	// own is the node's own configuration (its file, ApplyConfig); the
	// composition adds the fleet document's part (compose), and resolved
	// is the composition validated, with defaults (config.Resolve).
	own        *haav1.AgentConfig
	ownHash    string // config.Hash(own)
	resolved   *config.Agent
	generation uint64
	hash       string
	// doc is the fleet document the composition holds the part of (nil:
	// none), fleetNames the running instances that come from it and
	// fleetHash the hash of their configurations as they run: one view of
	// the fleet's part, published at once with the rest.
	doc         *haav1.Fleet
	held        bool // doc is not offered to peers (a rolling apply)
	fleetNames  []string
	fleetHash   string
	maintenance Maintenance
	incarnation uint64
}

// endpoints is where the agent serves, for Node.
type endpoints struct {
	listen  []string
	metrics string
}

// options are New's.
type options struct {
	log        *slog.Logger
	host       Host
	version    string
	stateFile  string
	cfgFile    string
	fleetFile  string
	eventBuf   int
	backend    lvs.Backend
	lbRepair   time.Duration
	notifyExec notify.Exec
}

// Option configures an Agent.
type Option func(*options)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithHost runs the agent on h instead of this machine (tests).
func WithHost(h Host) Option { return func(o *options) { o.host = h } }

// WithVersion sets the version reported by Node.
func WithVersion(v string) Option { return func(o *options) { o.version = v } }

// WithStateFile keeps the configuration generation and the maintenance mode
// in path, so both survive a restart.
func WithStateFile(path string) Option { return func(o *options) { o.stateFile = path } }

// WithConfigFile is where Apply with Persist writes the applied
// configuration (atomically), so a restart runs it.
func WithConfigFile(path string) Option { return func(o *options) { o.cfgFile = path } }

// WithFleetFile keeps the fleet document in path, so a restarted agent runs
// its part again at once (and then catches up from its peers).
func WithFleetFile(path string) Option { return func(o *options) { o.fleetFile = path } }

// WithEventBuffer sets how many events are kept for reconnecting clients.
func WithEventBuffer(n int) Option { return func(o *options) { o.eventBuf = n } }

// WithBalancerBackend makes the agent program its virtual servers through
// b instead of choosing ipvs or nftables (tests).
func WithBalancerBackend(b lvs.Backend) Option { return func(o *options) { o.backend = b } }

// WithBalancerRepair makes the load balancer compare its table with the
// kernel's, and repair it, every d instead of every minute.
func WithBalancerRepair(d time.Duration) Option { return func(o *options) { o.lbRepair = d } }

// WithNotifyExec runs notify commands through fn instead of running them
// (tests).
func WithNotifyExec(fn notify.Exec) Option { return func(o *options) { o.notifyExec = fn } }

// New returns an agent with no instances; Apply gives it some. It reads
// the state and fleet files, and follows the links from now on.
func New(opts ...Option) (*Agent, error) {
	o := options{log: slog.Default(), version: "dev", eventBuf: DefaultEventBuffer}
	for _, f := range opts {
		f(&o)
	}
	a := &Agent{log: o.log, events: NewEventLog(o.eventBuf), state: stateFile(o.stateFile), cfgFile: o.cfgFile,
		version: o.version, started: time.Now(), stopped: make(chan struct{})}
	if o.host == nil {
		lh := host.NewLinux(o.log)
		o.host = lh
		// What a crashed run blocked (acceptMode false) is no longer
		// held: its VIPs are removed at start too.
		if err := host.ClearAcceptTable(); err != nil {
			o.log.Debug("cannot clear the nftables table of acceptMode", "table", host.AcceptTable, "err", err)
		}
	}
	a.host = o.host
	// Temporary files of writes a crash interrupted: never read, removed.
	for _, f := range []string{o.stateFile, o.cfgFile, o.fleetFile} {
		if gone, err := atomicfile.Clean(f); err != nil {
			o.log.Warn("removing temporary files left by an interrupted write", "file", f, "err", err)
		} else if len(gone) > 0 {
			o.log.Info("removed temporary files left by an interrupted write", "files", gone)
		}
	}
	st, err := a.state.load()
	if err != nil {
		return nil, err
	}
	var nopts []notify.RunnerOption
	if o.notifyExec != nil {
		nopts = append(nopts, notify.WithExec(o.notifyExec))
	}
	a.notify = notify.NewRunner(o.log, a.events, nopts...)
	a.track = tracking.New(tracking.Deps{Log: o.log, Events: a.events, Notify: a.notify, Host: o.host})
	a.lb = balancer.New(balancer.Deps{Log: o.log, Events: a.events, Notify: a.notify, Host: o.host, Backend: o.backend,
		RepairEvery: o.lbRepair})
	a.vrrp = instances.New(instances.Deps{Log: o.log, Host: o.host, Events: a.events,
		Observe: a.observe})
	a.fleet, err = fleet.New(fleet.Deps{Log: o.log, Events: a.events, Local: (*local)(a), Announcer: a.vrrp, Peers: a.vrrp, Verdicts: (*lbVerdicts)(a),
		File: o.fleetFile, Version: o.version})
	if err != nil {
		a.closeSubsystems(context.Background())
		return nil, err
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	r := &running{generation: st.Generation, hash: st.Hash, incarnation: uint64(time.Now().UnixNano())}
	if m := st.Maintenance; m.Enabled && (m.Until.IsZero() || time.Now().Before(m.Until)) {
		r.maintenance = m
		a.log.Warn("maintenance mode restored from the state file: no instance becomes master", "until", m.Until)
		a.vrrp.Hold(true)
	}
	a.running.Store(r)
	a.endpoints.Store(&endpoints{})
	a.mu.Lock()
	a.armMaintenanceTTL(r.maintenance)
	a.mu.Unlock()
	links, err := o.host.WatchLinks(a.ctx)
	if err != nil {
		a.cancel()
		a.closeSubsystems(context.Background())
		return nil, err
	}
	a.wg.Go(func() {
		for ev := range links {
			a.track.LinkChanged(ev)
			a.vrrp.LinkChanged(ev)
		}
	})
	return a, nil
}

// observe receives every instance notice (on the runner's goroutine).
func (a *Agent) observe(n vrrp.Notice) {
	switch n.Kind {
	case vrrp.NoticeTransition, vrrp.NoticePriority, vrrp.NoticeVIPs, vrrp.NoticeError:
		a.fleet.Published() // the fleet hears of it at once
	}
	a.track.Observe(n)
}

// ApplyOptions qualify an Apply.
type ApplyOptions struct {
	// DryRun validates and plans only.
	DryRun bool
	// ExpectedGeneration, if set, must be the running generation.
	ExpectedGeneration *uint64
	// Persist writes the configuration to the config file (WithConfigFile)
	// before applying it: what the API does; the file itself at start-up
	// and on SIGHUP is not rewritten.
	Persist bool
	// Resolved, if set, is config.Resolve of the very configuration
	// given (unchanged since), which its reader already resolved to
	// validate it: it is used as it is when no fleet document is composed
	// with it (resolving a large configuration twice was a quarter of a
	// reload).
	Resolved *config.Agent
}

// ApplyResult is the outcome of an Apply.
type ApplyResult struct {
	Plan       config.Plan
	Generation uint64 // running after the call
	Hash       string
	// Applied: the configuration runs (not a dry run, not refused).
	Applied bool
	// Changed: it differed from the running one (a new generation).
	Changed bool
}

// Apply runs own as the node's own configuration (composed with the
// stored fleet document's part). It validates it, checks it against this
// node and changes only what differs from what runs: removed instances
// stop, changed ones are updated in place or restarted (config.Change),
// added ones start, unchanged ones are not touched. A configuration that
// is invalid or cannot run here changes nothing; an invalid one returns a
// *config.Error listing every problem.
func (a *Agent) Apply(ctx context.Context, own *haav1.AgentConfig, opts ApplyOptions) (ApplyResult, error) {
	ctx, cancel := a.merged(ctx)
	defer cancel()
	a.mu.Lock()
	defer a.mu.Unlock()
	doc, held := a.fleet.Stored()
	res, _, err := a.apply(ctx, own, doc, held, false, opts)
	return res, err
}

// apply composes own with the fleet document doc (nil: none; held: not
// offered to peers) and applies the result; fleetSide says which of the two
// is being changed (for the paths of errors). It returns the composition that runs. Called with mu
// held.
//
// Everything that can refuse the configuration runs first, and a refusal
// changes nothing:
//
//  1. compose: own + the document's part for this node (name clashes);
//  2. resolve: every field validated, defaults applied (config.Resolve);
//  3. this node: interfaces, VIP devices, TLS files, the subnets of the
//     fleet's VIPs (checkNode, checkSubnets);
//  4. tracking.Prepare: the trackers' and notify programs exist and are
//     safe to run;
//  5. balancer.Prepare: every virtual server against the backend, their
//     programs;
//  6. the expected generation;
//  7. instances.Prepare: the plan; the source address and GARP senders of
//     every instance to start.
//
// A dry run stops there. Then, in this order:
//
//  8. the own configuration is persisted (Persist);
//  9. instances.Stop: removed and restarted instances hand over and stop
//     (their STOP notify commands are queued);
//  10. instances.Update: in-place changes;
//  11. tracking.Commit: trackers, sync groups and notify commands;
//  12. instances.Start: added and restarted instances, each with the
//     trackers' verdict (tracking.Initial);
//  13. tracking.Attach: the loop follows the running instances;
//  14. balancer.Commit: checks and the backend (cancellable through ctx);
//  15. the generation, the state file, the running snapshot, the event.
func (a *Agent) apply(ctx context.Context, own *haav1.AgentConfig, doc *haav1.Fleet, held, fleetSide bool, opts ApplyOptions) (ApplyResult, composed, error) {
	if a.ctx.Err() != nil {
		return ApplyResult{}, composed{}, ErrShutdown
	}
	if large(own) {
		defer RelaxGC()()
	}
	var took phases
	took.start("resolve")
	cur := a.running.Load()
	comp, err := compose(own, doc, fleetSide)
	if err != nil {
		return ApplyResult{}, composed{}, err
	}
	want := opts.Resolved
	if want == nil || comp.cfg != own {
		if want, err = config.Resolve(comp.cfg); err != nil {
			return ApplyResult{}, composed{}, comp.repath(err, fleetSide)
		}
	}
	took.start("prepare")
	if err := checkNode(a.host, want); err != nil {
		return ApplyResult{}, composed{}, comp.repath(err, fleetSide)
	}
	if comp.nLocal < len(want.Instances) {
		if err := checkSubnets(a.host, want, comp.nLocal); err != nil {
			return ApplyResult{}, composed{}, comp.repath(err, fleetSide)
		}
	}
	trackCh, err := a.track.Prepare(want)
	if err != nil {
		return ApplyResult{}, composed{}, comp.repath(err, fleetSide)
	}
	lbCh, err := a.lb.Prepare(want)
	if err != nil {
		return ApplyResult{}, composed{}, comp.repath(err, fleetSide)
	}
	if e := opts.ExpectedGeneration; e != nil && *e != cur.generation {
		return ApplyResult{}, composed{}, fmt.Errorf("expected generation %d, running %d: get the configuration again and retry: %w",
			*e, cur.generation, ErrGenerationMismatch)
	}
	vrrpCh, err := a.vrrp.Prepare(want.Instances)
	if err != nil {
		return ApplyResult{}, composed{}, err
	}
	ownHash := config.Hash(own)
	hash := ownHash // the composition is own when there is no document
	if doc != nil {
		hash = config.Hash(comp.cfg)
	}
	res := ApplyResult{Plan: vrrpCh.Plan, Generation: cur.generation, Hash: cur.hash}
	var running []config.VirtualServer
	if cur.resolved != nil {
		running = cur.resolved.VirtualServers
	}
	res.Plan.VirtualServers = config.DiffVirtualServers(running, want.VirtualServers)
	if opts.DryRun {
		return res, comp, nil
	}
	took.start("persist")
	if opts.Persist && a.cfgFile != "" && ownHash != cur.ownHash {
		if err := writeConfigFile(a.cfgFile, own, cur.generation+1); err != nil {
			return ApplyResult{}, composed{}, fmt.Errorf("nothing applied: %w %s: %w", ErrPersist, a.cfgFile, err)
		}
	}

	took.start("instances")
	a.vrrp.Stop(ctx, vrrpCh)
	a.vrrp.Update(vrrpCh)
	a.track.Commit(trackCh)
	var errs []error
	verdicts := map[string]instances.Verdict{} // taken before: Start holds the instances' lock
	for _, name := range vrrpCh.Starting() {
		var v instances.Verdict
		v.Offset, v.Fault, v.GroupFault = a.track.Initial(name)
		verdicts[name] = v
	}
	if err := a.vrrp.Start(vrrpCh, verdicts); err != nil {
		errs = append(errs, err)
	}
	runners := map[string]tracking.Runner{}
	for _, in := range a.vrrp.Snapshot().List() {
		runners[in.Name()] = in.Runner()
	}
	a.track.Attach(runners)
	took.start("balancer")
	if err := a.lb.Commit(ctx, lbCh); err != nil {
		errs = append(errs, err)
	}
	took.start("state")

	next := *cur
	if hash != cur.hash {
		next.generation++
		next.hash = hash
	}
	next.own, next.ownHash, next.resolved = own, ownHash, want
	next.doc, next.held, next.fleetNames = doc, held, comp.fleetNames()
	next.fleetHash = fleetHash(a.vrrp.Snapshot(), next.fleetNames, comp.fleetVirtualServers())
	a.running.Store(&next)
	a.events.SetNode(want.Name)
	if err := a.state.save(next.generation, next.hash, next.maintenance); err != nil {
		errs = append(errs, err)
	}
	res.Generation, res.Hash, res.Applied, res.Changed = next.generation, next.hash, true, hash != cur.hash
	a.events.Append(&haav1.Event{Kind: &haav1.Event_ConfigApplied{ConfigApplied: &haav1.ConfigApplied{
		Generation: next.generation, Hash: next.hash, Plan: res.Plan.Proto()}}})
	p := res.Plan
	took.start("")
	a.log.Info("configuration applied", "generation", next.generation, "added", p.Added, "removed", p.Removed,
		"changed", changeNames(p.Changed), "unchanged", len(p.Unchanged), "virtual_servers", len(want.VirtualServers),
		"took", took.total().Round(time.Millisecond), "phases", took.String())
	a.fleet.Published()
	return res, comp, errors.Join(errs...)
}

// large reports whether applying c allocates enough that the garbage
// collector would run several times during it (thousands of virtual and
// real servers).
func large(c *haav1.AgentConfig) bool {
	n := 0
	for _, vs := range c.GetVirtualServers() {
		n += 1 + len(vs.GetRealServers())
	}
	return n >= 5000
}

// RelaxGC lets the heap grow to five times its live size before the next
// collection, until the returned function is called: for a large apply,
// and for what comes before one (haad reading and converting a large
// keepalived.conf). On a two-core machine, a collection during the work
// makes it assist the collector for milliseconds at a time while a
// collector worker holds the other core: the API's readers and the VRRP
// runners wait. The collection runs after the work instead, in the
// background, and gives what the work's garbage took back to the system
// at once (debug.FreeOSMemory): left to the runtime's scavenger, the
// resident set stayed at the apply's peak for minutes (57 MiB for 1,000
// virtual servers from a keepalived.conf, against keepalived's 11 MiB).
// Calls nest: the outermost restores. A GOGC of 400 or more, or off,
// stays as it is.
func RelaxGC() (restore func()) {
	gcRelax.Lock()
	defer gcRelax.Unlock()
	if gcRelax.depth == 0 {
		gcRelax.prev = debug.SetGCPercent(400)
		if gcRelax.prev < 0 || gcRelax.prev >= 400 {
			debug.SetGCPercent(gcRelax.prev)
		}
	}
	gcRelax.depth++
	var once sync.Once
	return func() {
		once.Do(func() {
			gcRelax.Lock()
			defer gcRelax.Unlock()
			if gcRelax.depth--; gcRelax.depth > 0 {
				return
			}
			if gcRelax.prev < 0 || gcRelax.prev >= 400 {
				return
			}
			debug.SetGCPercent(gcRelax.prev)
			go debug.FreeOSMemory()
		})
	}
}

// gcRelax is RelaxGC's nesting: GOGC is the process's.
var gcRelax struct {
	sync.Mutex
	depth, prev int
}

// phases times the steps of an apply, for its log line: where the time of
// a large apply goes.
type phases struct {
	names []string
	durs  []time.Duration
	at    time.Time
}

// start ends the current phase and starts name ("": none).
func (p *phases) start(name string) {
	now := time.Now()
	if len(p.names) > 0 {
		p.durs[len(p.durs)-1] = now.Sub(p.at)
	}
	if name != "" {
		p.names = append(p.names, name)
		p.durs = append(p.durs, 0)
	}
	p.at = now
}

func (p *phases) total() time.Duration {
	var t time.Duration
	for _, d := range p.durs {
		t += d
	}
	return t
}

func (p *phases) String() string {
	parts := make([]string, len(p.names))
	for i, n := range p.names {
		parts[i] = n + "=" + p.durs[i].Round(100*time.Microsecond).String()
	}
	return strings.Join(parts, " ")
}

func changeNames(cs []config.Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
		if c.Restart {
			out[i] += " (restart)"
		}
	}
	return out
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

// ApplyFleet stores a fleet document and runs this node's part of it: the
// instances, trackers and sync groups that name the node, composed with
// the node's own configuration. Nothing else changes. An invalid document,
// or one whose part cannot run here, changes nothing (a *config.Error
// with the document's paths); so does an older one (ErrFleetStale) or
// another one of the same generation (ErrFleetConflict). Generation 0
// means the next one.
func (a *Agent) ApplyFleet(ctx context.Context, doc *haav1.Fleet, opts FleetApplyOptions) (FleetApplyResult, error) {
	if err := config.ValidateFleet(doc); err != nil {
		return FleetApplyResult{}, err
	}
	doc = proto.Clone(doc).(*haav1.Fleet)
	ctx, cancel := a.merged(ctx)
	defer cancel()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctx.Err() != nil {
		return FleetApplyResult{}, ErrShutdown
	}
	cur := a.running.Load()
	if cur.own == nil {
		return FleetApplyResult{}, ErrNotStarted
	}
	name := cur.resolved.Name
	stored, _ := a.fleet.Stored()
	storedGen := stored.GetGeneration()
	adm, err := a.fleet.Admit(doc, opts.Adopt, name)
	if err != nil {
		return FleetApplyResult{}, err
	}
	doc.Generation = adm.Generation
	if adm.Same && cur.fleetHash == config.FleetNodeHash(doc, name) {
		// Already running: only the hold may change.
		names := slices.Clone(cur.fleetNames)
		res := FleetApplyResult{ApplyResult: ApplyResult{Plan: config.Plan{Unchanged: names}, Generation: cur.generation,
			Hash: cur.hash, Applied: !opts.DryRun}, Node: name, FleetGeneration: storedGen, Instances: names}
		if opts.DryRun {
			return res, nil
		}
		a.fleet.ClearPending(doc.Generation)
		next := *cur
		next.held = opts.Hold
		a.running.Store(&next)
		return res, a.fleet.Hold(opts.Hold)
	}
	res, comp, err := a.apply(ctx, cur.own, doc, opts.Hold, true, ApplyOptions{DryRun: opts.DryRun})
	names := comp.fleetNames()
	out := FleetApplyResult{ApplyResult: res, Node: name, FleetGeneration: storedGen, Instances: names}
	if opts.DryRun || !res.Applied {
		return out, err
	}
	out.FleetGeneration = doc.Generation
	if serr := a.fleet.Store(doc, opts.Hold); serr != nil {
		err = errors.Join(err, serr)
	}
	src := opts.Source
	if src == "" {
		src = "api"
	}
	a.events.Append(&haav1.Event{Kind: &haav1.Event_FleetApplied{FleetApplied: &haav1.FleetApplied{
		Generation: doc.Generation, Source: src, Plan: res.Plan.Proto()}}})
	a.log.Info("fleet document applied", "fleet_generation", doc.Generation, "source", src, "held", opts.Hold,
		"instances", names)
	return out, err
}

// merged is ctx, ended also when the agent shuts down: an apply in flight
// then gives up waiting for the kernel, and Shutdown gets on.
func (a *Agent) merged(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(a.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// adopter is the agent as the fleet's Applier: a peer's newer document.
type adopter Agent

func (ad *adopter) AdoptFleet(ctx context.Context, doc *haav1.Fleet, from string) (bool, error) {
	res, err := (*Agent)(ad).ApplyFleet(ctx, doc, FleetApplyOptions{Source: "gossip from " + from, Adopt: true})
	return res.Applied, err
}

// fleetHash is the hash of the fleet instances running and of the fleet
// virtual servers applied.
func fleetHash(snap *instances.Snapshot, names []string, vss []*haav1.VirtualServer) string {
	var specs []*haav1.Instance
	for _, name := range names {
		if in := snap.Get(name); in != nil {
			specs = append(specs, in.Config.Spec)
		}
	}
	return config.NodeHash(specs, vss)
}

// StartGossip joins the fleet (see fleet.Node.Start). api is where the
// node's API listens (for haactl). Call it once, after the first Apply.
func (a *Agent) StartGossip(cfg *haav1.Gossip, api string, opts ...fleet.GossipOption) error {
	return a.fleet.Start(cfg, api, (*adopter)(a), opts...)
}

// Maintenance is the node's maintenance mode: while enabled no instance
// becomes master.
type Maintenance struct {
	Enabled bool      `json:"enabled"`
	Until   time.Time `json:"until,omitzero"` // zero: until turned off
}

// SetMaintenance turns maintenance on (every master hands over, no instance
// becomes master) or off. A ttl > 0 turns it off by itself after ttl. It is
// kept in the state file and survives a restart.
func (a *Agent) SetMaintenance(on bool, ttl time.Duration) (Maintenance, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctx.Err() != nil {
		return Maintenance{}, ErrShutdown
	}
	return a.setMaintenance(on, ttl)
}

// setMaintenance is SetMaintenance with mu held.
func (a *Agent) setMaintenance(on bool, ttl time.Duration) (Maintenance, error) {
	m := Maintenance{Enabled: on}
	if on && ttl > 0 {
		m.Until = time.Now().Add(ttl)
	}
	next := *a.running.Load()
	next.maintenance = m
	a.running.Store(&next)
	a.vrrp.Hold(on)
	a.armMaintenanceTTL(m)
	a.fleet.Published()
	err := a.state.save(next.generation, next.hash, m)
	a.log.Info("maintenance", "enabled", on, "until", m.Until)
	a.events.Append(&haav1.Event{Kind: &haav1.Event_MaintenanceChanged{MaintenanceChanged: &haav1.MaintenanceChanged{
		Maintenance: maintenanceProto(m)}}})
	return m, err
}

// armMaintenanceTTL ends maintenance m at its deadline, replacing the
// timer of an earlier one. Called with mu held (or from New).
func (a *Agent) armMaintenanceTTL(m Maintenance) {
	if a.maintTimer != nil {
		a.maintTimer.Stop()
		a.maintTimer = nil
	}
	if !m.Enabled || m.Until.IsZero() {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(time.Until(m.Until), func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.maintTimer != t || a.ctx.Err() != nil {
			return // replaced, or the agent stopped
		}
		a.maintTimer = nil
		if _, err := a.setMaintenance(false, 0); err != nil {
			a.log.Error("ending maintenance", "err", err)
		}
	})
	a.maintTimer = t
}

// Shutdown stops the agent: every master sends a priority-0 advert and
// removes its addresses (backups take over after the skew time), the
// virtual servers are removed, the node leaves the fleet and the last
// notify commands (STOP) run. An apply in flight gives up. It returns
// ctx's error if that took longer; a second call waits for the first.
func (a *Agent) Shutdown(ctx context.Context) error {
	a.stopOnce.Do(func() {
		go func() {
			a.cancel() // applies refuse or give up; the link monitor stops
			a.mu.Lock()
			if a.maintTimer != nil {
				a.maintTimer.Stop()
				a.maintTimer = nil
			}
			a.mu.Unlock()
			a.stopErr = a.closeSubsystems(ctx)
			a.wg.Wait()
			close(a.stopped)
		}()
	})
	select {
	case <-a.stopped:
		return a.stopErr
	case <-ctx.Done():
		return fmt.Errorf("shutting down: %w", ctx.Err())
	}
}

// closeSubsystems closes the subsystems in the order that lets each hand
// over: instances (their STOP transitions), the balancer, tracking (the
// groups' STOP), the fleet (the last summary says no instance runs, then
// the node leaves: peers see it go, not fail), then the notify commands.
func (a *Agent) closeSubsystems(ctx context.Context) error {
	var errs []error
	if a.vrrp != nil {
		errs = append(errs, a.vrrp.Close(ctx))
	}
	errs = append(errs, a.lb.Close(ctx), a.track.Close(ctx))
	if a.fleet != nil {
		a.fleet.Close()
	}
	errs = append(errs, a.notify.Close(ctx))
	if c, ok := a.host.(interface{ Close() error }); ok {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// checkNode reports configuration that cannot run on this node.
func checkNode(h Host, c *config.Agent) error {
	var fields []config.FieldError
	exists := func(name string) bool {
		_, err := h.Link(name)
		return err == nil
	}
	for i, in := range c.Instances {
		if !exists(in.Interface) {
			fields = append(fields, config.FieldError{
				Path: fmt.Sprintf("instances[%d].interface", i),
				Msg:  fmt.Sprintf("no interface %q on this node", in.Interface)})
		}
		for k, v := range in.VIPs {
			if v.Dev != "" && !exists(v.Dev) {
				fields = append(fields, config.FieldError{
					Path: fmt.Sprintf("instances[%d].%s", i, in.VIPField(k)),
					Msg:  fmt.Sprintf("no interface %q on this node", v.Dev)})
			}
		}
		for k, r := range in.Routes {
			if r.Dev != "" && !exists(r.Dev) {
				fields = append(fields, config.FieldError{
					Path: fmt.Sprintf("instances[%d].virtualRoutes[%d]", i, k),
					Msg:  fmt.Sprintf("no interface %q on this node", r.Dev)})
			}
		}
	}
	if t := c.TLS; t != nil {
		for _, f := range []struct{ path, file string }{
			{"api.tcp.tls.certFile", t.GetCertFile()}, {"api.tcp.tls.keyFile", t.GetKeyFile()},
			{"api.tcp.tls.clientCaFile", t.GetClientCaFile()},
		} {
			if f.file == "" {
				continue
			}
			if _, err := os.Stat(f.file); err != nil {
				fields = append(fields, config.FieldError{Path: f.path, Msg: fmt.Sprintf("cannot read %s on this node: %v", f.file, err)})
			}
		}
	}
	if len(fields) > 0 {
		return &config.Error{Fields: fields}
	}
	return nil
}

// CheckCommands resolves every program of a configuration on this node
// (trackers' scripts, notify commands, the virtual servers' notify and exec
// check commands): each must exist and be safe to run (script.Secure).
// Every problem is reported with its field path.
func CheckCommands(c *config.Agent) error {
	_, err := tracking.ResolveCommands(c)
	var fields []config.FieldError
	if ce := (*config.Error)(nil); errors.As(err, &ce) {
		fields = ce.Fields
	} else if err != nil {
		return err
	}
	_, lb := balancer.ResolveCommands(c) // the virtual servers' notify and exec commands
	if fields = append(fields, lb...); len(fields) > 0 {
		return &config.Error{Fields: fields}
	}
	return nil
}
