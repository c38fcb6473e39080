// Package balancer is the agent's virtual servers: it runs the real
// servers' health checks (node/check), decides each virtual server's
// destinations (lvs.Desired) and programs the difference (lvs.Diff) into a
// backend (IPVS or nftables, see Choose).
//
// A Balancer owns all of it behind its own lock: the apply (Prepare, then
// Commit), the check reports (one goroutine serves their queue), the
// runtime changes (SetRealServer) and the repair loop take it one at a
// time, so the backend sees one change at a time. Backend calls run under
// that lock with a context and a timeout (programTimeout) and can be
// cancelled; no reader ever takes it: after every change the Balancer
// publishes an immutable Snapshot (Status), and connection counts are read
// from the kernel without the lock (VirtualServers).
//
// Notify commands (real servers' notifyUp/notifyDown, quorumUp/quorumDown)
// run through the agent's notify.Runner, one queue per virtual server.
package balancer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/node/check"
	"github.com/haa-dev/haa/node/check/probe"
	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/internal/fifo"
	"github.com/haa-dev/haa/node/internal/pace"
	"github.com/haa-dev/haa/node/lvs"
	"github.com/haa-dev/haa/node/notify"
	"github.com/haa-dev/haa/node/script"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Errors of SetRealServer (test with errors.Is).
var (
	ErrNoVirtualServer = errors.New("no such virtual server")
	ErrNoRealServer    = errors.New("no such real server")
	ErrBadWeight       = errors.New("weight out of range 0..65535")
	ErrClosed          = errors.New("the load balancer is stopped")
)

// Repair timing of the programmed table.
const (
	repairEvery    = time.Minute
	retryFirst     = time.Second
	retryMax       = 30 * time.Second
	programTimeout = 30 * time.Second
)

// Host is what the balancer needs of the machine.
type Host interface {
	// IPv4Forwarding reports net.ipv4.ip_forward (NAT needs it).
	IPv4Forwarding() (bool, error)
}

// Events receives the balancer's events. Append must not block.
type Events interface {
	Append(e *haav1.Event) *haav1.Event
}

// Deps are what a Balancer is built with.
type Deps struct {
	Log    *slog.Logger
	Events Events
	Notify *notify.Runner
	Host   Host // nil: forwarding is not checked
	// Backend, when set, is used instead of choosing ipvs or nftables
	// (tests): it is "opened" at the first configuration with virtual
	// servers, as the real ones are.
	Backend lvs.Backend
	// RepairEvery is how often the backend's table is read back and what
	// someone else changed in it (ipvsadm -C, -e, -d; nft flush ruleset)
	// is put back; 0: every minute. Each is a dump of the whole
	// table: keep it long for thousands of virtual servers.
	RepairEvery time.Duration
}

// Balancer runs the virtual servers of one agent.
type Balancer struct {
	log       *slog.Logger
	events    Events
	notify    *notify.Runner
	ownNotify bool // notify was made by New: Close closes it
	host      Host
	open      func(requested string) (lvs.Backend, string, error)
	decide    func(requested string) (lvs.Validator, string, error)
	prefer    func(requested string) (string, string)
	repairIn  time.Duration // Deps.RepairEvery

	ctx    context.Context // ends at Close: cancels a program in flight (programCtx)
	cancel context.CancelFunc
	wg     sync.WaitGroup
	q      *fifo.Queue[checkReport]

	// mu guards everything below; readers use snap.
	mu        sync.Mutex
	closed    bool
	backend   lvs.Backend // nil until a configuration with virtual servers is committed
	lbName    string
	lbReason  string
	requested string // loadBalancer.backend when the backend was chosen
	// flushOnStop: Close empties the whole table (loadBalancer.flushOnStop),
	// as the last configuration says.
	flushOnStop bool
	sched       *probe.Scheduler
	vss         map[string]*vsRun // by name
	order       []string          // names in the configured order
	programmed  lvs.State         // what the backend holds of ours
	dropped     []lvs.Key         // services of removed virtual servers, until programmed
	byID        map[string]*realRun
	nextID      uint64
	// failed: the last program failed; the repair loop reads the kernel
	// back and programs again at retryAt (backing off). It also checks
	// every repairEvery that nothing else changed the table.
	failed     bool
	retryAt    time.Time
	backoff    time.Duration
	lastRepair time.Time
	// kept are the real servers kept in the table while the other
	// directors see them up (keepIfPeersSeeUp).
	kept map[*realRun]struct{}

	// peers are the other directors' verdicts (SetPeerVerdicts);
	// peersChanged wakes the repair loop to review the kept ones.
	peers        atomic.Pointer[PeerVerdicts]
	peersChanged chan struct{}

	snap atomic.Pointer[Snapshot]
}

// vsRun is one running virtual server.
type vsRun struct {
	cfg   config.VirtualServer
	reals []*realRun
	up    bool
	sorry bool
	hw    int
	cmds  lbCommands
	queue *notify.Queue // its notify commands, in order; nil until it has one to run
	view  *VirtualServer
	dirty bool // view is stale
	// setHash identifies its set of real servers (SetHash), for the
	// other directors' verdicts.
	setHash uint32
}

// realRun is one real server of a running virtual server.
type realRun struct {
	run      *vsRun
	cfg      *config.RealServer // in the resolved configuration, shared
	id       string             // its check's id in the scheduler: new at every (re)start, "" without a check
	check    *haav1.HealthCheck
	status   check.Status
	drained  bool
	override int // -1: none
	// kept: down for its check, kept in the table while the other
	// directors see it up (keepIfPeersSeeUp), until keptUntil.
	kept bool
}

// lbCommands are a virtual server's programs, resolved on this node.
type lbCommands struct {
	quorumUp, quorumDown *script.Command
	up, down             map[netip.AddrPort]*script.Command
	exec                 map[netip.AddrPort]*script.Command
}

// checkReport is a real server's health change.
type checkReport struct {
	id string
	st check.Status
}

// New starts a Balancer with no virtual servers; no backend is opened
// until a configuration has some.
func New(d Deps) *Balancer {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	own := d.Notify == nil
	if own {
		d.Notify = notify.NewRunner(d.Log, d.Events)
	}
	b := &Balancer{log: d.Log, events: d.Events, notify: d.Notify, ownNotify: own, host: d.Host,
		open: func(r string) (lvs.Backend, string, error) { return Choose(r, WithLogger(d.Log)) }, decide: Decide, prefer: Preferred,
		q:   fifo.New[checkReport](),
		vss: map[string]*vsRun{}, byID: map[string]*realRun{}, programmed: lvs.State{},
		kept: map[*realRun]struct{}{}, peersChanged: make(chan struct{}, 1),
		repairIn: cmp.Or(max(d.RepairEvery, 0), repairEvery)}
	if fb := d.Backend; fb != nil {
		b.open = func(string) (lvs.Backend, string, error) { return fb, "given to the agent", nil }
		b.decide = func(string) (lvs.Validator, string, error) { return fb, "given to the agent", nil }
		b.prefer = func(string) (string, string) { return fb.Name(), "given to the agent" }
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.mu.Lock()
	b.publishLocked("")
	b.mu.Unlock()
	b.wg.Go(b.reportLoop)
	b.wg.Go(b.repairLoop)
	return b
}

// reportLoop applies the checks' reports, in order.
func (b *Balancer) reportLoop() {
	for {
		reports, ok := b.q.Wait(b.ctx)
		if !ok {
			return
		}
		b.mu.Lock()
		if !b.closed {
			b.checkReports(reports)
			b.publishLocked(b.requested)
		}
		b.mu.Unlock()
	}
}

// repairLoop retries a failed program and compares the table with the
// kernel every repairIn (a minute by default).
func (b *Balancer) repairLoop() {
	tick := min(time.Second, b.repairIn)
	t := time.NewTicker(tick)
	defer t.Stop()
	// Half a tick of slack: a repair starts a little after its tick, so
	// without it a repair every whole number of ticks would wait a tick
	// more (every 2 s for 1 s).
	due := b.repairIn - tick/2
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.peersChanged:
			b.mu.Lock()
			if len(b.kept) > 0 {
				b.reviewKept(time.Now())
			}
			b.mu.Unlock()
		case now := <-t.C:
			b.mu.Lock()
			if len(b.kept) > 0 {
				b.reviewKept(now)
			}
			if !b.closed && b.backend != nil && (len(b.vss) > 0 || len(b.programmed) > 0) &&
				((b.failed && !now.Before(b.retryAt)) || now.Sub(b.lastRepair) >= due) {
				b.repair()
				b.publishLocked(b.requested)
			}
			b.mu.Unlock()
		}
	}
}

// repair reads the backend's table back and programs what differs from
// what the virtual servers want: after a failed program, and now and then
// in case something else (nft flush ruleset, ipvsadm -C) changed it.
// Called with mu held.
func (b *Balancer) repair() {
	b.lastRepair = time.Now()
	ctx, cancel := context.WithTimeout(b.ctx, programTimeout)
	defer cancel()
	st, err := b.backend.Read(ctx)
	if err != nil {
		b.programFailed(fmt.Errorf("%s backend: reading the table back: %w", b.lbName, err))
		return
	}
	was := b.programmed
	b.programmed = b.owned(st)
	// What it takes to turn the kernel's table back into what haad
	// programmed (not after a failure: then that was unknown).
	if back := lvs.Diff(b.programmed, was); len(back) > 0 && !b.failed {
		b.log.Warn("the kernel's table was changed outside haad: putting it back", "backend", b.lbName,
			"changes", len(back), "first", back[0].String())
	}
	live := map[lvs.Key]bool{}
	for _, run := range b.vss {
		for _, k := range run.cfg.Keys() {
			live[k] = true
		}
		run.dirty = true // its programmed weights may differ now
	}
	for k := range b.programmed {
		if !live[k] && !slices.Contains(b.dropped, k) {
			b.dropped = append(b.dropped, k) // left over from a failed removal
		}
	}
	runs := make([]*vsRun, 0, len(b.vss))
	for _, run := range b.vss {
		runs = append(runs, run)
	}
	failed := b.failed
	if err := b.program(ctx, runs...); err != nil {
		return
	}
	b.failed, b.backoff = false, 0
	if failed {
		b.log.Info("virtual servers programmed again after a failure", "backend", b.lbName)
	}
}

// programCtx bounds one program of the backend: by programTimeout, by
// ctx, and by the balancer's life (Close cancels what is in flight).
func (b *Balancer) programCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, programTimeout)
	stop := context.AfterFunc(b.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// programFailed records a failed program: the repair loop retries it.
func (b *Balancer) programFailed(err error) {
	b.backoff = min(max(2*b.backoff, retryFirst), retryMax)
	b.failed, b.retryAt = true, time.Now().Add(b.backoff)
	b.log.Error("programming virtual servers failed; retrying", "backend", b.lbName, "in", b.backoff, "err", err)
}

// Change is a prepared configuration of the virtual servers.
type Change struct {
	cfg  *config.Agent
	cmds map[string]lbCommands
}

// Prepare checks every virtual server against the backend that runs them
// (the one the first configuration with virtual servers decides: the
// choice lasts until haad restarts) and resolves their commands. It opens
// and changes nothing; every problem comes with its field path.
func (b *Balancer) Prepare(c *config.Agent) (*Change, error) {
	b.mu.Lock()
	var backend lvs.Validator
	if b.backend != nil {
		backend = b.backend
	}
	name, requested := b.lbName, b.requested
	b.mu.Unlock()
	switch {
	case backend == nil && len(c.VirtualServers) > 0:
		v, _, err := b.decide(c.LBBackend)
		if err != nil {
			return nil, &config.Error{Fields: []config.FieldError{{Path: "loadBalancer.backend", Msg: err.Error()}}}
		}
		backend = v
	case backend != nil && c.LBBackend != requested:
		b.log.Warn("loadBalancer.backend changed: it takes effect when haad restarts", "running", name,
			"was", requested, "now", c.LBBackend)
	}
	var fields []config.FieldError
	if _, ok := backend.(lvs.Flusher); backend != nil && !ok {
		for _, f := range []struct {
			on   bool
			path string
		}{{c.FlushOnStart, "loadBalancer.flushOnStart"}, {c.FlushOnStop, "loadBalancer.flushOnStop"}} {
			if f.on {
				fields = append(fields, config.FieldError{Path: f.path, Msg: fmt.Sprintf("%s backend: emptying the whole IPVS table needs the ipvs backend (the %s backend touches its own table only, which it empties itself): remove it, or set loadBalancer.backend: ipvs", backend.Name(), backend.Name())})
			}
		}
	}
	var pc pace.Pacer
	for i, vs := range c.VirtualServers {
		pc.Yield()
		path := fmt.Sprintf("virtualServers[%d]", i)
		if err := backend.Supports(vs.Service); err != nil {
			fields = append(fields, config.FieldError{Path: path, Msg: fmt.Sprintf("%s backend: %v", backend.Name(), err)})
		} else if dc, ok := backend.(lvs.DestChecker); ok {
			probe := &lvs.VirtualServer{Service: vs.Service, Dests: map[netip.AddrPort]lvs.DestAttrs{}}
			for _, rs := range vs.Reals {
				probe.Dests[rs.Addr] = lvs.DestAttrs{Weight: rs.Weight, Forwarding: vs.Service.Forwarding, Thresholds: rs.Thresholds}
			}
			if vs.Sorry.IsValid() {
				probe.Dests[vs.Sorry] = lvs.DestAttrs{Weight: 1, Forwarding: vs.SorryForwarding}
			}
			if err := dc.SupportsDests(probe); err != nil {
				fields = append(fields, destFields(path, vs, backend.Name(), err)...)
			}
		}
	}
	out, cmdFields := ResolveCommands(c)
	fields = append(fields, cmdFields...)
	if len(fields) > 0 {
		return nil, &config.Error{Fields: fields}
	}
	if b.forwardingOff(c.VirtualServers) {
		b.log.Warn("net.ipv4.ip_forward is 0: virtual servers with nat forwarding need it (sysctl -w net.ipv4.ip_forward=1)")
	}
	return &Change{cfg: c, cmds: out}, nil
}

// destFields are the problems a backend found with the destinations of
// the virtual server vs (at path), each at the field to change when the
// backend names the destination and what is wrong with it
// (lvs.DestError).
func destFields(path string, vs config.VirtualServer, backend string, err error) []config.FieldError {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	out := make([]config.FieldError, 0, len(errs))
	for _, e := range errs {
		p, msg := path+".realServers", e.Error()
		var de *lvs.DestError
		if errors.As(e, &de) {
			p, msg = destPath(path, vs, de), de.Err.Error()
		}
		out = append(out, config.FieldError{Path: p, Msg: backend + " backend: " + msg})
	}
	return out
}

// destPath is the field of virtual server vs (at path) that makes the
// destination of de what the backend refuses.
func destPath(path string, vs config.VirtualServer, de *lvs.DestError) string {
	if de.Addr == vs.Sorry {
		switch {
		case de.Attr != lvs.AttrForwarding:
			return path + ".sorryServer"
		case vs.Spec.GetSorryServerForwarding() != "":
			return path + ".sorryServerForwarding"
		}
		return path + ".forwarding"
	}
	k := slices.IndexFunc(vs.Reals, func(r config.RealServer) bool { return r.Addr == de.Addr })
	if k < 0 {
		return path + ".realServers"
	}
	rp := fmt.Sprintf("%s.realServers[%d]", path, k)
	switch de.Attr {
	case lvs.AttrAddress:
		return rp + ".address"
	case lvs.AttrWeight:
		return rp + ".weight"
	case lvs.AttrForwarding:
		return path + ".forwarding"
	case lvs.AttrThresholds:
		if vs.Reals[k].Spec.UpperThreshold == nil {
			return rp + ".lowerThreshold"
		}
		return rp + ".upperThreshold"
	}
	return rp
}

// ResolveCommands resolves the virtual servers' programs on this node
// (quorum and real-server notify commands, exec checks): each must exist
// and be safe to run. Every problem comes with its field path.
func ResolveCommands(c *config.Agent) (map[string]lbCommands, []config.FieldError) {
	var fields []config.FieldError
	out := make(map[string]lbCommands, len(c.VirtualServers))
	var pc pace.Pacer
	for i, vs := range c.VirtualServers {
		// Paths are written only for a command: most virtual servers
		// have none, and a path for every real server was most of this.
		path := func() string { return fmt.Sprintf("virtualServers[%d]", i) }
		var cmds lbCommands // maps made at their first command: most virtual servers have none
		set := func(m *map[netip.AddrPort]*script.Command, addr netip.AddrPort, c *script.Command) {
			if c == nil {
				return
			}
			if *m == nil {
				*m = map[netip.AddrPort]*script.Command{}
			}
			(*m)[addr] = c
		}
		resolve := func(p func() string, argv []string, user string) *script.Command {
			if len(argv) == 0 {
				return nil
			}
			cmd, err := script.Resolve(argv, user)
			if err != nil {
				fields = append(fields, config.FieldError{Path: p() + "[0]", Msg: err.Error()})
			}
			return cmd
		}
		field := func(name string) func() string { return func() string { return path() + "." + name } }
		cmds.quorumUp = resolve(field("quorumUp"), vs.QuorumUp, "")
		cmds.quorumDown = resolve(field("quorumDown"), vs.QuorumDown, "")
		for k, rs := range vs.Reals {
			rp := func(name string) func() string {
				return func() string { return fmt.Sprintf("%s.realServers[%d].%s", path(), k, name) }
			}
			set(&cmds.up, rs.Addr, resolve(rp("notifyUp"), rs.NotifyUp, ""))
			set(&cmds.down, rs.Addr, resolve(rp("notifyDown"), rs.NotifyDown, ""))
			if rs.Check != nil && rs.Check.Kind == check.Exec {
				cp := rp("check.exec.command")
				if rs.Spec.GetCheck() == nil {
					cp = field("check.exec.command")
				}
				set(&cmds.exec, rs.Addr, resolve(cp, rs.ExecCommand, rs.ExecUser))
			}
		}
		out[vs.Name] = cmds
		pc.Yield()
	}
	return out, fields
}

// forwardingOff reports whether a NAT virtual server needs IPv4 forwarding
// that is off.
func (b *Balancer) forwardingOff(vss []config.VirtualServer) bool {
	nat := slices.ContainsFunc(vss, func(vs config.VirtualServer) bool {
		return vs.Service.Forwarding == lvs.NAT && !vs.Service.Key.Is6()
	})
	if !nat || b.host == nil {
		return false
	}
	on, err := b.host.IPv4Forwarding()
	return err == nil && !on
}

// Commit makes the running virtual servers those of the change: checks
// start, restart or stop as their real servers change, and the backend
// gets the difference (opened at the first configuration with virtual
// servers: an agent that only runs VRRP never needs nftables or IPVS).
// Real servers keep their health and any runtime weight across the change
// unless their own configuration changed; a virtual server renamed (same
// address) keeps them too. A backend that refuses the plan does not undo
// the configuration: the failure is logged and the repair loop programs
// it again. Only a backend that cannot be opened is an error.
func (b *Balancer) Commit(ctx context.Context, ch *Change) error {
	c, cmds := ch.cfg, ch.cmds
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	defer b.publishLocked(c.LBBackend)
	if b.backend == nil {
		if len(c.VirtualServers) == 0 {
			return nil
		}
		nb, reason, err := b.open(c.LBBackend)
		if err != nil {
			return fmt.Errorf("load balancing: %w", err)
		}
		b.backend, b.lbName, b.lbReason, b.requested = nb, nb.Name(), reason, c.LBBackend
		b.log.Info("load-balancing backend chosen", "backend", nb.Name(), "reason", reason)
		// The first repair is a repair interval from now: the table is
		// about to be read and programmed. (From the zero time, the
		// repair loop read the whole table back at once, holding the
		// balancer while the first program waited: a second and a half
		// of a 1,000-virtual-server start.)
		b.lastRepair = time.Now()
		b.sched = probe.NewScheduler(c.MaxChecks, func(id string, st check.Status) {
			b.q.Push(checkReport{id: id, st: st})
		})
		// loadBalancer.flushOnStart (keepalived's lvs_flush): the whole
		// table goes first, others' services included.
		rctx, cancel := b.programCtx(ctx)
		if f, ok := b.backend.(lvs.Flusher); ok && c.FlushOnStart {
			if err := f.Flush(rctx); err != nil {
				b.log.Error("emptying the table at start (loadBalancer.flushOnStart)", "backend", b.lbName, "err", err)
			} else {
				b.log.Info("table emptied at start, others' services included (loadBalancer.flushOnStart)", "backend", b.lbName)
			}
		}
		// What an earlier haad left (IPVS keeps it across a crash) is
		// taken as programmed, so the first plan adjusts only what
		// differs. Others' services are left alone. (A service that
		// appears later, at a reload, the IPVS backend takes over in
		// the same way as it programs: ipvs.Backend.Apply.)
		st, err := b.backend.Read(rctx)
		cancel()
		if err != nil {
			b.log.Warn("reading the backend's table", "backend", b.lbName, "err", err)
		}
		taken := 0
		for _, vs := range c.VirtualServers {
			for _, k := range vs.Keys() {
				if v := st[k]; v != nil {
					b.programmed[k] = v
					taken++
				}
			}
		}
		if taken > 0 {
			b.log.Info("virtual servers already in the table: taken over and adjusted", "backend", b.lbName,
				"count", taken)
		}
	}
	b.flushOnStop = c.FlushOnStop
	names := map[string]bool{}
	for _, vs := range c.VirtualServers {
		names[vs.Name] = true
	}
	renamed := map[lvs.Key]*vsRun{} // runs whose name is gone, by key
	for name, run := range b.vss {
		if !names[name] {
			renamed[run.cfg.Service.Key] = run
		}
	}
	b.order = b.order[:0]
	var changed []*vsRun
	var pc pace.Pacer
	for _, vs := range c.VirtualServers {
		pc.Yield()
		b.order = append(b.order, vs.Name)
		run := b.vss[vs.Name]
		if run == nil {
			if old := renamed[vs.Service.Key]; old != nil {
				delete(renamed, vs.Service.Key)
				delete(b.vss, old.cfg.Name)
				run = old
				b.vss[vs.Name] = run
				run.dirty = true
			}
		}
		if run != nil && proto.Equal(run.cfg.Spec, vs.Spec) && sameCommands(run.cmds, cmds[vs.Name]) {
			continue
		}
		if run != nil && run.cfg.Service.Key == vs.Service.Key {
			// A group that lost services: the next program removes them.
			for _, k := range run.cfg.Also {
				if !slices.Contains(vs.Also, k) {
					b.dropped = append(b.dropped, k)
				}
			}
		}
		if run == nil || run.cfg.Service.Key != vs.Service.Key {
			if run != nil {
				b.dropVirtualServer(run)
			}
			run = &vsRun{up: true}
			b.vss[vs.Name] = run
		}
		b.updateVirtualServer(run, vs, cmds[vs.Name])
		changed = append(changed, run)
	}
	for _, run := range renamed {
		b.dropVirtualServer(run)
	}
	pctx, cancel := b.programCtx(ctx)
	defer cancel()
	_ = b.program(pctx, changed...) // a failure is logged and retried
	return nil
}

func sameCommands(x, y lbCommands) bool {
	eq := func(m, n map[netip.AddrPort]*script.Command) bool {
		return maps.EqualFunc(m, n, sameCommand)
	}
	return sameCommand(x.quorumUp, y.quorumUp) && sameCommand(x.quorumDown, y.quorumDown) &&
		eq(x.up, y.up) && eq(x.down, y.down) && eq(x.exec, y.exec)
}

func sameCommand(p, q *script.Command) bool {
	return (p == nil) == (q == nil) && (p == nil || slices.Equal(p.Argv, q.Argv))
}

// updateVirtualServer gives run a new configuration: real servers that
// left stop their checks, new ones start, those whose check changed
// restart it (keeping their health) under a new id, so that a report of
// the old check still queued is recognised and dropped.
func (b *Balancer) updateVirtualServer(run *vsRun, vs config.VirtualServer, cmds lbCommands) {
	old := map[netip.AddrPort]*realRun{}
	for _, r := range run.reals {
		old[r.cfg.Addr] = r
	}
	reals := make([]*realRun, 0, len(vs.Reals))
	for i := range vs.Reals {
		rs := &vs.Reals[i]
		hc := rs.Spec.GetCheck()
		if hc == nil {
			hc = vs.Spec.GetCheck()
		}
		r := old[rs.Addr]
		delete(old, rs.Addr)
		if r == nil {
			r = &realRun{run: run, override: -1, status: check.Status{Healthy: true, Weight: -1, Since: time.Now()}}
		} else if rs.Weight != r.cfg.Weight {
			// A new configured weight ends any runtime one.
			r.drained, r.override = false, -1
		}
		restart := r.check == nil || !proto.Equal(r.check, hc) || r.cfg.Addr != rs.Addr ||
			!sameCommand(run.cmds.exec[rs.Addr], cmds.exec[rs.Addr])
		r.cfg, r.check = rs, hc
		switch {
		case rs.Check == nil:
			b.stopCheck(r)
			r.status.Healthy, r.status.Weight, r.status.Last = true, -1, check.Result{}
		case restart:
			b.stopCheck(r)
			spec := *rs.Check
			if spec.Kind == check.Exec {
				spec.Exec = &check.ExecSpec{Run: execRunner{cmds.exec[rs.Addr]}, Dynamic: rs.Check.Exec != nil && rs.Check.Exec.Dynamic}
			}
			b.nextID++
			r.id = strconv.FormatUint(b.nextID, 10)
			b.byID[r.id] = r
			b.sched.SetFrom(r.id, spec, r.status) // a failed server stays failed until it passes
		}
		reals = append(reals, r)
	}
	for _, r := range old {
		b.stopCheck(r)
	}
	run.cfg, run.reals, run.cmds, run.dirty = vs, reals, cmds, true
	addrs := make([]netip.AddrPort, len(reals))
	for i, r := range reals {
		addrs[i] = r.cfg.Addr
	}
	run.setHash = SetHash(addrs)
}

// stopCheck stops a real server's check, if it has one.
func (b *Balancer) stopCheck(r *realRun) {
	if r.id != "" {
		b.sched.Remove(r.id)
		delete(b.byID, r.id)
		r.id = ""
	}
}

// dropVirtualServer stops a virtual server's checks and forgets it; the
// next program removes it from the backend.
func (b *Balancer) dropVirtualServer(run *vsRun) {
	for _, r := range run.reals {
		b.stopCheck(r)
	}
	if b.vss[run.cfg.Name] == run {
		delete(b.vss, run.cfg.Name)
	}
	b.notify.Retire(run.queue)
	run.queue = nil
	b.dropped = append(b.dropped, run.cfg.Keys()...)
	run.reals = nil
}

// execRunner runs an exec check's command.
type execRunner struct{ cmd *script.Command }

func (e execRunner) Run(ctx context.Context, timeout time.Duration, env []string) (int, string) {
	if e.cmd == nil {
		return -1, "no command"
	}
	r := e.cmd.Run(ctx, timeout, nil, env)
	switch {
	case r.Err != nil:
		return r.Exit, r.Err.Error()
	case r.Output != "":
		line, _, _ := strings.Cut(r.Output, "\n")
		return r.Exit, line
	}
	return r.Exit, ""
}

// checkReports applies health changes. Called with mu held.
func (b *Balancer) checkReports(reports []checkReport) {
	type change struct {
		r             *realRun
		healthy       bool
		cause, detail string
	}
	var changed []*vsRun
	var events []change
	for _, rep := range reports {
		r := b.byID[rep.id] // nil: a check stopped or restarted since
		if r == nil {
			continue
		}
		run := r.run
		was := r.status
		r.status = rep.st
		run.dirty = true // its last result at least
		if was.Healthy == rep.st.Healthy && was.Weight == rep.st.Weight {
			continue
		}
		if !slices.Contains(changed, run) {
			changed = append(changed, run)
		}
		if was.Healthy == rep.st.Healthy { // a dynamic exec check's weight
			events = append(events, change{r, true, "weight", fmt.Sprintf("set to %d by its exec check", lvsReal(r).Effective())})
			continue
		}
		cause, cmd, state := "down", run.cmds.down[r.cfg.Addr], "DOWN"
		detail := rep.st.Last.Detail
		if rep.st.Healthy {
			cause, cmd, state = "up", run.cmds.up[r.cfg.Addr], "UP"
			if r.kept {
				b.unkeep(r)
			}
		} else {
			detail += b.keepIfPeersSeeUp(r)
		}
		b.log.Info("real server "+cause, "virtual_server", run.cfg.Name, "real_server", r.cfg.Addr, "detail", detail)
		events = append(events, change{r, rep.st.Healthy, cause, detail})
		if cmd != nil {
			b.lbNotify(run, notify.Job{Type: "REAL_SERVER", Name: run.cfg.Name + "/" + r.cfg.Addr.String(), State: state,
				Cmd: cmd, Timeout: notify.DefaultTimeout})
		}
	}
	ctx, cancel := context.WithTimeout(b.ctx, programTimeout)
	defer cancel()
	_ = b.program(ctx, changed...) // a failure is logged and retried
	for _, c := range events {
		b.realServerEvent(c.r, c.healthy, c.cause, c.detail)
	}
}

// realServerEvent records a real server's change with the weight it has
// in the backend now. Called with mu held, after program.
func (b *Balancer) realServerEvent(r *realRun, healthy bool, cause, detail string) {
	if b.events == nil {
		return
	}
	w := 0
	if vs := b.programmed[r.run.cfg.Service.Key]; vs != nil {
		w = vs.Dests[r.cfg.Addr].Weight
	}
	b.events.Append(&haav1.Event{Kind: &haav1.Event_RealServerChanged{RealServerChanged: &haav1.RealServerChanged{
		VirtualServer: r.run.cfg.Name, RealServer: r.cfg.Addr.String(), Healthy: healthy,
		Weight: uint32(w), Cause: cause, Detail: detail}}})
}

func lvsReal(r *realRun) lvs.Real {
	return lvs.Real{Addr: r.cfg.Addr, Weight: r.cfg.Weight, Healthy: r.status.Healthy || r.kept, Dynamic: r.status.Weight,
		Drained: r.drained, Override: r.override, Thresholds: r.cfg.Thresholds, Inhibit: r.cfg.Inhibit}
}

// program decides the destinations of the given virtual servers (dropped
// ones included: those are removed) and programs the difference, touching
// nothing else. Called with mu held.
func (b *Balancer) program(ctx context.Context, runs ...*vsRun) error {
	actual, desired := lvs.State{}, lvs.State{}
	// Services of dropped virtual servers go (unless a running one took
	// the same key over).
	for _, k := range b.dropped {
		if vs := b.programmed[k]; vs != nil {
			actual[k] = vs
		}
	}
	dropped := b.dropped
	b.dropped = nil
	// Quorum changes are reported once the backend has them (or refused
	// them): whoever watches the events may connect at once.
	var quorum []*vsRun
	defer func() {
		for _, run := range quorum {
			b.quorumChanged(run)
		}
	}()
	var pc pace.Pacer
	for _, run := range runs {
		pc.Yield()
		if b.vss[run.cfg.Name] != run {
			continue
		}
		g := lvs.Group{Service: run.cfg.Service, Sorry: run.cfg.Sorry, SorryForwarding: run.cfg.SorryForwarding,
			SorryInhibit: run.cfg.SorryInhibit, Quorum: run.cfg.Quorum, Hysteresis: run.cfg.Hysteresis}
		for _, r := range run.reals {
			g.Reals = append(g.Reals, lvsReal(r))
		}
		out := lvs.Desired(g, run.up)
		k := run.cfg.Service.Key
		if vs := b.programmed[k]; vs != nil {
			actual[k] = vs
		}
		desired[k] = out.VS
		// A group's other services: the same destinations.
		for _, ak := range run.cfg.Also {
			if vs := b.programmed[ak]; vs != nil {
				actual[ak] = vs
			}
			desired[ak] = out.VS.WithKey(ak)
		}
		if out.Up != run.up { // a new service starts up: one below its quorum reports it
			quorum = append(quorum, run)
		}
		run.up, run.sorry, run.hw, run.dirty = out.Up, out.SorryActive, out.HealthyWeight, true
	}
	plan := lvs.Diff(actual, desired)
	if len(plan) == 0 {
		return nil
	}
	if err := b.backend.Apply(ctx, plan); err != nil {
		// What is programmed now is unknown: read it back; the repair
		// loop programs the rest.
		if st, rerr := b.backend.Read(ctx); rerr == nil {
			b.programmed = b.owned(st)
			for _, run := range b.vss {
				run.dirty = true
			}
		}
		err = fmt.Errorf("%s backend: %w", b.lbName, err)
		b.dropped = append(b.dropped, dropped...) // still to remove
		b.programFailed(err)
		return err
	}
	lvs.Apply(b.programmed, plan)
	return nil
}

// owned keeps the services of st that are ours: those of running virtual
// servers and those we programmed before.
func (b *Balancer) owned(st lvs.State) lvs.State {
	ours := map[lvs.Key]bool{}
	for _, run := range b.vss {
		for _, k := range run.cfg.Keys() {
			ours[k] = true
		}
	}
	out := lvs.State{}
	for k, vs := range st {
		if _, ok := b.programmed[k]; ok || ours[k] {
			out[k] = vs
		}
	}
	return out
}

// lbNotify queues a virtual server's notify command, starting its queue
// at the first one (most virtual servers have none).
func (b *Balancer) lbNotify(run *vsRun, j notify.Job) {
	if run.queue == nil {
		run.queue = b.notify.Queue(nil) // events only: no record is kept
	}
	run.queue.Push(j)
}

// quorumChanged reports a virtual server that went up or down (run.up)
// and runs its quorum command.
func (b *Balancer) quorumChanged(run *vsRun) {
	state, cmd := "DOWN", run.cmds.quorumDown
	if run.up {
		state, cmd = "UP", run.cmds.quorumUp
	}
	b.log.Warn("virtual server quorum "+strings.ToLower(state), "virtual_server", run.cfg.Name,
		"healthy_weight", run.hw, "quorum", run.cfg.Quorum, "sorry", run.sorry)
	if b.events != nil {
		b.events.Append(&haav1.Event{Kind: &haav1.Event_VirtualServerChanged{VirtualServerChanged: &haav1.VirtualServerChanged{
			VirtualServer: run.cfg.Name, Up: run.up, HealthyWeight: uint32(run.hw), Sorry: run.sorry}}})
	}
	if cmd != nil {
		b.lbNotify(run, notify.Job{Type: "VIRTUAL_SERVER", Name: run.cfg.Name, State: state, Cmd: cmd,
			Timeout: notify.DefaultTimeout})
	}
}

// RealServerAction is a runtime change of one real server: exactly one of
// Drain, Enable and Weight.
type RealServerAction struct {
	Drain  bool
	Enable bool
	Weight *int
}

// SetRealServer drains, enables or re-weights one real server now, without
// a configuration change, and records it as an event. It lasts until the
// real server's configured weight changes or haad restarts. ctx bounds the
// backend's program.
func (b *Balancer) SetRealServer(ctx context.Context, vsName, addr string, act RealServerAction) (RealServer, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return RealServer{}, ErrClosed
	}
	run := b.vss[vsName]
	if run == nil {
		return RealServer{}, fmt.Errorf("virtual server %q: %w", vsName, ErrNoVirtualServer)
	}
	r := findReal(run, addr)
	if r == nil {
		return RealServer{}, fmt.Errorf("virtual server %s has no real server %q: %w", vsName, addr, ErrNoRealServer)
	}
	var cause, detail string
	wasDrained, wasOverride := r.drained, r.override
	switch {
	case act.Weight != nil:
		if *act.Weight < 0 || *act.Weight > config.MaxRealWeight {
			return RealServer{}, fmt.Errorf("weight %d: %w", *act.Weight, ErrBadWeight)
		}
		r.drained, r.override = false, *act.Weight
		cause, detail = "weight", "set to "+strconv.Itoa(*act.Weight)+" through the API"
	case act.Drain:
		r.drained = true
		cause, detail = "drained", "through the API"
	default:
		r.drained, r.override = false, -1
		cause, detail = "enabled", "through the API"
	}
	pctx, cancel := b.programCtx(ctx)
	defer cancel()
	err := b.program(pctx, run)
	defer b.publishLocked(b.requested)
	if err != nil {
		r.drained, r.override = wasDrained, wasOverride // the repair loop programs the old weight back
		return RealServer{}, err
	}
	b.log.Info("real server "+cause, "virtual_server", vsName, "real_server", r.cfg.Addr, "weight", lvsReal(r).Effective())
	b.realServerEvent(r, r.status.Healthy, cause, detail)
	v := b.realView(r)
	if d, took, ok := latest(b.sched, r.id); ok {
		v.LastResult, v.LastDuration = d, took
	}
	return v, nil
}

// findReal finds a real server by "ADDR:PORT" (or ADDR alone when only one
// real server has that address).
func findReal(run *vsRun, addr string) *realRun {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		for _, r := range run.reals {
			if r.cfg.Addr == ap {
				return r
			}
		}
		return nil
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return nil
	}
	var found *realRun
	for _, r := range run.reals {
		if r.cfg.Addr.Addr() == ip {
			if found != nil {
				return nil
			}
			found = r
		}
	}
	return found
}

// Close stops the checks and the loops and removes every virtual server
// this agent programmed (as keepalived does when it stops), or with
// loadBalancer.flushOnStop empties the whole table (keepalived's
// lvs_flush_on_stop), within ctx's deadline (at most programTimeout).
func (b *Balancer) Close(ctx context.Context) error {
	err := b.close(ctx)
	b.wg.Wait() // the loops: they see closed, or the context's end
	if b.ownNotify {
		err = errors.Join(err, b.notify.Close(ctx))
	}
	return err
}

func (b *Balancer) close(ctx context.Context) error {
	b.cancel() // first: a program in flight gives up, and the lock comes free
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if b.sched != nil {
		b.sched.Close()
		b.sched = nil
	}
	for _, run := range b.vss {
		b.notify.Retire(run.queue)
	}
	clear(b.vss)
	b.order = nil
	b.publishLocked(b.requested)
	if b.backend == nil {
		return nil
	}
	var err error
	d := programTimeout
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl))
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	defer cancel()
	f, flush := b.backend.(lvs.Flusher)
	switch plan := lvs.Diff(b.programmed, lvs.State{}); {
	case flush && b.flushOnStop:
		// keepalived's lvs_flush_on_stop: everything, others' too.
		if err = f.Flush(actx); err != nil {
			err = fmt.Errorf("emptying the table (loadBalancer.flushOnStop): %w", err)
		} else {
			b.log.Info("table emptied at stop, others' services included (loadBalancer.flushOnStop)", "backend", b.lbName)
		}
		b.programmed = lvs.State{}
	case len(plan) > 0:
		if err = b.backend.Apply(actx, plan); err != nil {
			err = fmt.Errorf("removing the virtual servers: %w", err)
		}
		b.programmed = lvs.State{}
	}
	return errors.Join(err, b.backend.Close())
}
