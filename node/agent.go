// Package node is the haad agent: it owns the VRRP instances and the
// subsystems they use (sockets, virtual addresses, gratuitous ARP, link
// monitoring) and applies configurations to them.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/garp"
	"github.com/haa-dev/haa/node/notify"
	"github.com/haa-dev/haa/node/vip"
	"github.com/haa-dev/haa/node/vrrp"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Agent runs the VRRP instances of one node.
type Agent struct {
	log       *slog.Logger
	notify    func(vrrp.Notice)
	vips      *vip.Manager
	events    *EventLog
	drops     dropReports
	version   string
	started   time.Time
	stateFile string // generation, hash, maintenance; "" : not kept
	cfgFile   string // where applied configurations are persisted

	level   *slog.LevelVar // the logger's level (WithLogLevel), or nil
	levelMu sync.Mutex     // one SetLogLevel at a time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu serialises Apply and Shutdown: one mutation at a time.
	mu        sync.Mutex
	raw       *haav1.AgentConfig // running: local + the fleet's instances
	local     *haav1.AgentConfig // the node's own configuration (file, ApplyConfig)
	cfg       *config.Agent
	instances map[string]*instance
	gen       uint64
	hash      string
	maint     Maintenance
	maintSeq  uint64 // invalidates the TTL timer of an older SetMaintenance
	listen    []string
	// metricsURL is where metrics are served (SetMetricsAddress), for Node.
	metricsURL string

	ifmu   sync.RWMutex
	ifaces map[string]*iface

	garps map[string]*garp.Sender // by device, guarded by mu; closed at Shutdown
	// notifiers run each instance's notify commands, by instance name,
	// guarded by mu: kept across a restart of the instance so its STOP
	// and its next commands stay in order; closed when it is removed.
	notifiers map[string]*notifier

	fleetState
	tracking
	balancer
}

type instance struct {
	cfg    config.Instance
	runner *vrrp.Runner
	// segment is the network of the source address (e.g. 10.77.0.0/24),
	// definition identifies the virtual router: both for fleet detection.
	segment    netip.Prefix
	definition string
	// notifier runs its notify commands; initOffset and initFault are the
	// trackers' verdict it started with.
	notifier   *notifier
	initOffset int
	initFault  string
}

// iface is the shared per-interface state: one socket and its
// demultiplexer.
type iface struct {
	name  string
	conn  *vrrp.Conn
	demux *vrrp.Iface
	refs  int
	done  chan struct{}
}

// Option configures an Agent.
type Option func(*Agent)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(a *Agent) { a.log = l } }

// WithNotify receives every instance notice (transitions, drops, GARPs). It
// is called from the instances' goroutines and must not block.
func WithNotify(fn func(vrrp.Notice)) Option { return func(a *Agent) { a.notify = fn } }

// WithVersion sets the version reported by Node.
func WithVersion(v string) Option { return func(a *Agent) { a.version = v } }

// WithStateFile keeps the configuration generation and the maintenance mode
// in path, so both survive a restart.
func WithStateFile(path string) Option { return func(a *Agent) { a.stateFile = path } }

// WithConfigFile is where Apply with Persist writes the applied
// configuration (atomically), so a restart runs it.
func WithConfigFile(path string) Option { return func(a *Agent) { a.cfgFile = path } }

// WithEventBuffer sets how many events are kept for reconnecting clients.
func WithEventBuffer(n int) Option { return func(a *Agent) { a.events = NewEventLog(n) } }

// New returns an agent with no instances; Apply gives it some.
func New(opts ...Option) (*Agent, error) {
	a := &Agent{
		log:       slog.Default(),
		instances: map[string]*instance{},
		ifaces:    map[string]*iface{},
		garps:     map[string]*garp.Sender{},
		notifiers: map[string]*notifier{},
		started:   time.Now(),
		version:   "dev",
	}
	for _, o := range opts {
		o(a)
	}
	if a.events == nil {
		a.events = NewEventLog(DefaultEventBuffer)
	}
	a.drops.m = map[dropKey]*dropReport{}
	a.pub = make(chan struct{}, 1)
	a.changed = make(chan struct{}, 1)
	if err := a.loadState(); err != nil {
		return nil, err
	}
	if err := a.loadFleet(); err != nil {
		return nil, err
	}
	a.vips = vip.New(nil)
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.startTracking()
	a.startBalancer()
	if err := a.watchLinks(); err != nil {
		a.cancel()
		return nil, err
	}
	return a, nil
}

// Config returns the configuration last applied, or nil.
func (a *Agent) Config() *haav1.AgentConfig {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.raw
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
}

// ApplyResult is the outcome of an Apply.
type ApplyResult struct {
	Plan       Plan
	Generation uint64 // running after the call
	Hash       string
	Applied    bool
}

// Errors of Apply besides *config.Error (test with errors.Is).
var (
	ErrGenerationMismatch = errors.New("configuration generation mismatch")
	ErrShutdown           = errors.New("agent is shut down")
)

// Apply validates cfg, checks it against this node (interfaces, addresses)
// and changes only what differs from the running configuration: removed
// instances stop, changed ones are updated in place or restarted (see
// Change), added ones start, unchanged ones are not touched. A configuration
// that is invalid or cannot run here changes nothing; an invalid one
// returns a *config.Error listing every problem.
func (a *Agent) Apply(ctx context.Context, raw *haav1.AgentConfig, opts ApplyOptions) (ApplyResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	res, _, err := a.apply(ctx, raw, a.doc, false, opts)
	return res, err
}

// apply composes local with the fleet document (nil: none) and applies the
// result; fleetSide says which of the two is being changed (for the paths
// of errors). It returns the composition that runs. Called with a.mu held.
func (a *Agent) apply(ctx context.Context, local *haav1.AgentConfig, doc *haav1.Fleet, fleetSide bool, opts ApplyOptions) (ApplyResult, composed, error) {
	comp, err := compose(local, doc, fleetSide)
	if err != nil {
		return ApplyResult{}, composed{}, err
	}
	raw := comp.cfg
	want, err := config.Resolve(raw)
	if err != nil {
		return ApplyResult{}, composed{}, comp.repath(err, fleetSide)
	}
	if err := checkNode(want); err != nil {
		return ApplyResult{}, composed{}, comp.repath(err, fleetSide)
	}
	gate(want)
	cmds, err := resolveCommands(want)
	if err != nil {
		return ApplyResult{}, composed{}, comp.repath(err, fleetSide)
	}
	lbCmds, err := a.prepareBalancer(want)
	if err != nil {
		return ApplyResult{}, composed{}, comp.repath(err, fleetSide)
	}
	if comp.nLocal < len(want.Instances) {
		vips := map[netip.Addr]bool{}
		for _, in := range want.Instances {
			for _, v := range in.VIPs {
				vips[v.Prefix.Addr()] = true
			}
		}
		if err := checkSubnets(want, comp.nLocal, vips); err != nil {
			return ApplyResult{}, composed{}, comp.repath(err, fleetSide)
		}
	}
	hash := ConfigHash(raw)
	if a.ctx.Err() != nil {
		return ApplyResult{}, composed{}, ErrShutdown
	}
	if e := opts.ExpectedGeneration; e != nil && *e != a.gen {
		return ApplyResult{}, composed{}, fmt.Errorf("expected generation %d, running %d: get the configuration again and retry: %w",
			*e, a.gen, ErrGenerationMismatch)
	}
	var running []config.Instance
	for _, in := range a.instances {
		running = append(running, in.cfg)
	}
	plan := Diff(running, want.Instances)
	res := ApplyResult{Plan: plan, Generation: a.gen, Hash: a.hash}
	byName := map[string]config.Instance{}
	for _, in := range want.Instances {
		byName[in.VRRP.Name] = in
	}

	// Pre-flight everything that will start before changing anything.
	var start []string
	stop := append([]string(nil), plan.Removed...)
	for _, c := range plan.Changed {
		if c.Restart {
			start = append(start, c.Name)
			stop = append(stop, c.Name)
		}
	}
	start = append(start, plan.Added...)
	ready := map[string]prepared{}
	var errs []error
	for _, name := range start {
		p, err := a.prepare(byName[name])
		if err != nil {
			errs = append(errs, fmt.Errorf("instance %s: %w", name, err))
		}
		ready[name] = p
	}
	if err := errors.Join(errs...); err != nil {
		return ApplyResult{}, composed{}, fmt.Errorf("nothing applied: %w", err)
	}
	if opts.DryRun {
		return res, comp, nil
	}
	if opts.Persist && a.cfgFile != "" && ConfigHash(local) != ConfigHash(a.local) {
		if err := writeConfigFile(a.cfgFile, local, a.gen+1); err != nil {
			return ApplyResult{}, composed{}, fmt.Errorf("nothing applied: persisting the configuration: %w", err)
		}
	}

	a.stopInstances(ctx, stop)
	inPlace := slices.Clone(plan.Unchanged) // a sync group joined or left changes them too
	for _, c := range plan.Changed {
		if !c.Restart {
			inPlace = append(inPlace, c.Name)
		}
	}
	for _, name := range inPlace {
		in := a.instances[name]
		next := byName[name]
		next.VRRP.Primary = in.cfg.VRRP.Primary
		if !proto.Equal(in.cfg.Spec, next.Spec) || in.cfg.VRRP.Gated != next.VRRP.Gated {
			in.runner.Update(runnerConfig(next))
		}
		in.cfg = next
	}
	a.reconcileTracking(want, cmds)
	for _, name := range start {
		p := ready[name]
		p.notify = cmds.notify[name]
		if err := a.startInstance(p); err != nil {
			errs = append(errs, fmt.Errorf("instance %s: %w", name, err))
		}
	}
	a.setNotifySpecs(cmds)
	a.closeNotifiers()
	a.linkTracking()
	if err := a.reconcileBalancer(want, lbCmds); err != nil {
		errs = append(errs, err)
	}
	if hash != a.hash {
		a.gen++
		a.hash = hash
	}
	a.raw, a.cfg, a.local = raw, want, local
	a.fleetNames = comp.fleetNames()
	a.events.SetNode(want.Name)
	if err := a.saveState(); err != nil {
		errs = append(errs, err)
	}
	res.Generation, res.Hash, res.Applied = a.gen, a.hash, true
	a.events.Append(&haav1.Event{Kind: &haav1.Event_ConfigApplied{ConfigApplied: &haav1.ConfigApplied{
		Generation: a.gen, Hash: a.hash, Plan: PlanProto(plan)}}})
	a.log.Info("configuration applied", "generation", a.gen, "added", plan.Added, "removed", plan.Removed,
		"changed", changeNames(plan.Changed), "unchanged", len(plan.Unchanged))
	a.published()
	return res, comp, errors.Join(errs...)
}

func changeNames(cs []Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
		if c.Restart {
			out[i] += " (restart)"
		}
	}
	return out
}

func runnerConfig(c config.Instance) vrrp.RunnerConfig {
	return vrrp.RunnerConfig{Config: c.VRRP, Interface: c.Interface, Group: c.Group,
		Peers: c.Peers, Checksum: c.Checksum, GARP: c.GARP}
}

// prepared is an instance whose node-dependent parts are resolved.
type prepared struct {
	cfg    config.Instance
	ann    announcer
	notify *notify.Spec
}

// prepare resolves what an instance needs from this node (its source
// address, GARP senders) without changing anything that runs.
func (a *Agent) prepare(c config.Instance) (prepared, error) {
	if !c.VRRP.Primary.IsValid() {
		p, err := primaryAddr(c.Interface, a.allVIPs(c))
		if err != nil {
			return prepared{}, err
		}
		c.VRRP.Primary = p
	}
	ann, err := a.announcer(c)
	if err != nil {
		return prepared{}, err
	}
	return prepared{cfg: c, ann: ann}, nil
}

// checkNode reports configuration that cannot run on this node.
func checkNode(c *config.Agent) error {
	var fields []config.FieldError
	for i, in := range c.Instances {
		if _, err := net.InterfaceByName(in.Interface); err != nil {
			fields = append(fields, config.FieldError{
				Path: fmt.Sprintf("instances[%d].interface", i),
				Msg:  fmt.Sprintf("no interface %q on this node", in.Interface)})
		}
		for k, v := range in.VIPs {
			if v.Dev == "" {
				continue
			}
			if _, err := net.InterfaceByName(v.Dev); err != nil {
				fields = append(fields, config.FieldError{
					Path: fmt.Sprintf("instances[%d].vips[%d]", i, k),
					Msg:  fmt.Sprintf("no interface %q on this node", v.Dev)})
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

func (a *Agent) stopInstances(ctx context.Context, names []string) {
	var wg sync.WaitGroup
	for _, name := range names {
		in := a.instances[name]
		if in == nil {
			continue
		}
		delete(a.instances, name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := in.runner.Shutdown(ctx); err != nil {
				a.log.Warn("instance did not stop in time", "instance", name, "err", err)
			}
			a.releaseIface(in)
		}()
	}
	wg.Wait()
}

func (a *Agent) startInstance(p prepared) (err error) {
	c := p.cfg
	ifc, err := a.acquireIface(c.Interface)
	if err != nil {
		return err
	}
	joined := false
	defer func() {
		if err != nil {
			if joined {
				_ = ifc.conn.LeaveGroup(c.Group)
			}
			a.releaseIfaceRef(ifc)
		}
	}()
	set := &vipSet{m: a.vips, iface: c.Interface, vips: c.VIPs}
	// Restart safety: addresses left by a crashed agent are removed until
	// the protocol makes this node master again.
	if err := set.Del(); err != nil {
		return fmt.Errorf("removing stale virtual addresses: %w", err)
	}
	for _, v := range c.VIPs {
		if v.Dev != "" {
			promoteSecondaries(v.Dev, a.log)
		}
	}
	if len(c.Peers) == 0 {
		if err := ifc.conn.JoinGroup(c.Group); err != nil {
			return err
		}
		joined = true
	}
	timer, err := vrrp.NewPreciseTimer()
	if err != nil {
		return err
	}
	offset, fault, groupFault := a.initialVerdict(c.VRRP.Name)
	ropts := []vrrp.RunnerOption{vrrp.WithTimer(timer), vrrp.WithTrack(offset, fault, groupFault)}
	if a.maint.Enabled {
		ropts = append(ropts, vrrp.WithHold())
	}
	nt := a.notifiers[c.VRRP.Name]
	if nt == nil {
		nt = &notifier{queue: notify.NewQueue(a.notifyDone)}
		a.notifiers[c.VRRP.Name] = nt
	}
	nt.setSpec(p.notify) // before it runs: its first transition has commands too
	r := vrrp.NewRunner(runnerConfig(c), ifc.conn, set, p.ann, a.log, a.noticeFunc(c, nt), ropts...)
	// Attach before reading the link state: a change in between reaches
	// the runner as an event instead of being lost.
	if err := ifc.demux.Add(r); err != nil {
		timer.Close()
		return err
	}
	up, err := linkUp(c.Interface)
	if err != nil {
		ifc.demux.Remove(c.VRRP.VRID)
		timer.Close()
		return err
	}
	a.instances[c.VRRP.Name] = &instance{cfg: c, runner: r,
		segment: segmentOf(c.Interface, c.VRRP.Primary), definition: config.Definition(c.Spec),
		notifier: nt, initOffset: offset, initFault: fault}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		r.Run(a.ctx, up)
	}()
	return nil
}

// allVIPs returns every VIP address of the configuration being applied and
// the running one, so none is mistaken for the interface's own address.
func (a *Agent) allVIPs(c config.Instance) map[netip.Addr]bool {
	m := map[netip.Addr]bool{}
	add := func(in config.Instance) {
		for _, v := range in.VIPs {
			m[v.Prefix.Addr()] = true
		}
	}
	add(c)
	for _, in := range a.instances {
		add(in.cfg)
	}
	return m
}

func (a *Agent) acquireIface(name string) (*iface, error) {
	a.ifmu.Lock()
	defer a.ifmu.Unlock()
	if ifc := a.ifaces[name]; ifc != nil {
		ifc.refs++
		return ifc, nil
	}
	conn, err := vrrp.ListenIPv4(name)
	if err != nil {
		return nil, err
	}
	promoteSecondaries(name, a.log)
	ifc := &iface{name: name, conn: conn, demux: vrrp.NewIface(name, a.log), refs: 1, done: make(chan struct{})}
	go func() {
		defer close(ifc.done)
		if err := ifc.demux.Serve(conn); err != nil {
			a.log.Error("VRRP receive loop stopped", "iface", name, "err", err)
		}
	}()
	a.ifaces[name] = ifc
	return ifc, nil
}

func (a *Agent) releaseIface(in *instance) {
	a.ifmu.RLock()
	ifc := a.ifaces[in.cfg.Interface]
	a.ifmu.RUnlock()
	if ifc == nil {
		return
	}
	ifc.demux.Remove(in.cfg.VRRP.VRID)
	if len(in.cfg.Peers) == 0 {
		_ = ifc.conn.LeaveGroup(in.cfg.Group)
	}
	a.releaseIfaceRef(ifc)
}

func (a *Agent) releaseIfaceRef(ifc *iface) {
	a.ifmu.Lock()
	ifc.refs--
	last := ifc.refs == 0
	if last {
		delete(a.ifaces, ifc.name)
	}
	a.ifmu.Unlock()
	if last {
		ifc.conn.Close()
		<-ifc.done
	}
}

// announcer returns the GARP sender of an instance: each VIP is announced on
// the device it lives on.
//
// Called with a.mu held, as every user of a.garps.
func (a *Agent) announcer(c config.Instance) (announcer, error) {
	ann := announcer{}
	for _, v := range c.VIPs {
		dev := v.Device(c.Interface)
		s := a.garps[dev]
		if s == nil {
			var err error
			if s, err = garp.Open(dev); err != nil {
				return nil, fmt.Errorf("gratuitous ARP on %s: %w", dev, err)
			}
			a.garps[dev] = s
		}
		ann[v.Prefix.Addr()] = s
	}
	return ann, nil
}

// announcer maps each VIP to the sender of its device.
type announcer map[netip.Addr]*garp.Sender

func (m announcer) Announce(addr netip.Addr) error {
	s := m[addr]
	if s == nil {
		return fmt.Errorf("no gratuitous ARP sender for %s", addr)
	}
	return s.Announce(addr)
}

// promoteSecondaries makes the kernel keep the other addresses of a subnet
// when one is removed (as keepalived does): without it, removing a VIP that
// became the subnet's primary address takes the other VIPs with it.
func promoteSecondaries(name string, log *slog.Logger) {
	p := "/proc/sys/net/ipv4/conf/" + name + "/promote_secondaries"
	if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
		log.Warn("cannot enable promote_secondaries: removing one VIP may briefly remove others of its subnet", "iface", name, "err", err)
	}
}

// Shutdown stops every instance: masters send a priority-0 advert and
// remove their addresses, so backups take over after the skew time.
func (a *Agent) Shutdown(ctx context.Context) error {
	a.mu.Lock()
	if a.ctx.Err() != nil {
		a.mu.Unlock()
		return nil // already shut down
	}
	names := make([]string, 0, len(a.instances))
	for n := range a.instances {
		names = append(names, n)
	}
	a.stopInstances(ctx, names)
	a.closeNotifiers()
	lbErr := a.stopBalancer(ctx)
	a.stopTracking(ctx)
	a.cancel() // Apply refuses from now on; the fleet loops stop
	a.mu.Unlock()
	a.stopGossip() // without a.mu: the fleet loops may be waiting for it
	a.mu.Lock()
	defer a.mu.Unlock()
	done := make(chan struct{})
	go func() {
		a.wg.Wait()
		a.tracking.twg.Wait()
		a.tracking.notifyWG.Wait() // the STOP notify commands
		a.balancer.lwg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("waiting for instances to stop: %w", ctx.Err())
	}
	for dev, s := range a.garps {
		s.Close()
		delete(a.garps, dev)
	}
	return errors.Join(ctx.Err(), lbErr, a.vips.Close())
}

// InstanceStatus is what the agent knows about one instance.
type InstanceStatus struct {
	Config config.Instance
	Status vrrp.Status
	Stats  *vrrp.Stats
	// Trackers are the instance's trackers (its own, then its sync
	// group's) and what each does to it now.
	Trackers  []TrackerView
	SyncGroup string
	// Notifies are the latest notify commands of the instance and its
	// group, oldest first.
	Notifies []NotifyRecord
}

// status returns an instance's status. Called with a.mu held.
func (a *Agent) status(in *instance) InstanceStatus {
	st := InstanceStatus{Config: in.cfg, Status: in.runner.Status(), Stats: in.runner.Stats()}
	st.Trackers, st.SyncGroup, st.Notifies = a.trackingStatus(in.cfg.VRRP.Name)
	return st
}

// Instances returns every running instance's status, by name.
func (a *Agent) Instances() []InstanceStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]InstanceStatus, 0, len(a.instances))
	for _, in := range a.instances {
		out = append(out, a.status(in))
	}
	sortByName(out)
	return out
}

// InterfaceDrops returns, per interface, the packets dropped before an
// instance could be found (malformed, unknown VRID), by reason.
func (a *Agent) InterfaceDrops() map[string]map[vrrp.DropReason]uint64 {
	a.ifmu.RLock()
	defer a.ifmu.RUnlock()
	out := map[string]map[vrrp.DropReason]uint64{}
	for name, ifc := range a.ifaces {
		m := map[vrrp.DropReason]uint64{}
		for _, r := range vrrp.DropReasons() {
			if n := ifc.demux.Stats().Drops(r); n > 0 {
				m[r] = n
			}
		}
		out[name] = m
	}
	return out
}

// watchLinks follows link state through netlink events and tells the
// instances on an interface when it goes down or comes back. The
// subscription is renewed if netlink drops it (e.g. ENOBUFS), with a full
// resync, for as long as the agent runs.
func (a *Agent) watchLinks() error {
	ch, err := a.subscribeLinks()
	if err != nil {
		return fmt.Errorf("subscribing to link changes: %w", err)
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		last := map[string]bool{}
		for {
			for u := range ch {
				a.linkUpdate(u, last)
			}
			// The channel closed: shut down, or netlink dropped us.
			for a.ctx.Err() == nil {
				if ch, err = a.subscribeLinks(); err == nil {
					a.log.Warn("link monitor restarted")
					clear(last)
					break
				}
				select {
				case <-a.ctx.Done():
				case <-time.After(time.Second):
				}
			}
			if a.ctx.Err() != nil {
				return
			}
		}
	}()
	return nil
}

func (a *Agent) subscribeLinks() (chan netlink.LinkUpdate, error) {
	ch := make(chan netlink.LinkUpdate, 256)
	err := netlink.LinkSubscribeWithOptions(ch, a.ctx.Done(), netlink.LinkSubscribeOptions{
		ListExisting:      true,
		ReceiveBufferSize: 1 << 20,
		ErrorCallback: func(err error) {
			if a.ctx.Err() == nil { // closing the socket at shutdown is not news
				a.log.Error("link monitor", "err", err)
			}
		},
	})
	return ch, err
}

// linkUpdate hands a link change to the instances of that interface. A
// deleted interface counts as down: its socket is bound to the old one, so
// the instances stay in FAULT until haad is restarted.
func (a *Agent) linkUpdate(u netlink.LinkUpdate, last map[string]bool) {
	attrs := u.Attrs()
	up := isUp(attrs) && u.Header.Type != unix.RTM_DELLINK
	a.linkChanged(attrs.Name, up)
	a.ifmu.RLock()
	ifc := a.ifaces[attrs.Name]
	a.ifmu.RUnlock()
	if ifc != nil && attrs.Index != ifc.conn.Index() {
		if up {
			a.log.Error("interface was deleted and created again: its instances stay in FAULT; restart haad to use the new one",
				"iface", attrs.Name)
		}
		up = false
	}
	if prev, seen := last[attrs.Name]; seen && prev == up {
		return
	}
	last[attrs.Name] = up
	if ifc == nil {
		return
	}
	a.log.Info("link state", "iface", attrs.Name, "up", up)
	ifc.demux.Each(func(r *vrrp.Runner) { r.Link(up) })
}

func isUp(attrs *netlink.LinkAttrs) bool {
	return attrs.Flags&net.FlagUp != 0 && attrs.RawFlags&unix.IFF_RUNNING != 0
}

func linkUp(name string) (bool, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return false, fmt.Errorf("interface %s: %w", name, err)
	}
	return isUp(l.Attrs()), nil
}

// primaryAddr returns the first IPv4 address of the interface that is not a
// VIP: the source of adverts and the tie-breaker.
func primaryAddr(name string, vips map[netip.Addr]bool) (netip.Addr, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("interface %s: %w", name, err)
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("addresses of %s: %w", name, err)
	}
	for _, ad := range addrs {
		ip, ok := netip.AddrFromSlice(ad.IP.To4())
		if ok && !vips[ip] && ad.Flags&unix.IFA_F_SECONDARY == 0 {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no IPv4 address of its own: add one or set sourceAddress", name)
}

// vipSet adds and removes one instance's VIPs.
type vipSet struct {
	m     *vip.Manager
	iface string
	vips  []vip.VIP
}

func (s *vipSet) Add() error {
	var errs []error
	for _, v := range s.vips {
		errs = append(errs, s.m.Add(s.iface, v))
	}
	return errors.Join(errs...)
}

func (s *vipSet) Del() error {
	var errs []error
	for _, v := range s.vips {
		errs = append(errs, s.m.Del(s.iface, v))
	}
	return errors.Join(errs...)
}
