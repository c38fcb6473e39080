package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/node/check"
	"github.com/haa-dev/haa/node/config"
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
)

// balancer is the agent's virtual servers: it runs the real servers'
// health checks, decides each virtual server's destinations (lvs.Desired)
// and programs the difference into the backend. Check reports reach it
// through a queue served by one goroutine; that goroutine, Apply and the
// API change the tables under lmu only, so the backend sees one change at
// a time. Lock order: Agent.mu, then lmu, then tracking.tmu.
type balancer struct {
	lmu        sync.Mutex
	backend    lvs.Backend // nil until a configuration is applied
	lbName     string
	lbReason   string
	newBackend func(requested string) (lvs.Backend, string, error)
	decide     func(requested string) (lvs.Validator, string, error)
	sched      *check.Scheduler
	vss        map[string]*vsRun // by name
	order      []string          // names in the configured order
	programmed lvs.State         // what the backend holds of ours
	dropped    []lvs.Key         // services of removed virtual servers, until programmed
	byID       map[string]*realRun
	nextID     uint64
	requested  string // loadBalancer.backend when the backend was chosen
	// failed: the last program failed; the repair loop reads the kernel
	// back and programs again at retryAt (backing off). It also checks
	// every repairEvery that nothing else changed the table.
	failed     bool
	retryAt    time.Time
	backoff    time.Duration
	lastRepair time.Time
	lq         fifo[checkReport]
	lwg        sync.WaitGroup
}

// Repair timing of the programmed table.
const (
	repairEvery    = time.Minute
	retryFirst     = time.Second
	retryMax       = 30 * time.Second
	programTimeout = 30 * time.Second
)

// vsRun is one running virtual server.
type vsRun struct {
	cfg   config.VirtualServer
	reals []*realRun
	up    bool
	sorry bool
	hw    int
	cmds  lbCommands
	queue *notify.Queue // its notify commands, in order; nil until it has one to run
}

// realRun is one real server of a running virtual server.
type realRun struct {
	run      *vsRun
	cfg      config.RealServer
	id       string // its check's id in the scheduler: new at every (re)start, "" without a check
	check    *haav1.HealthCheck
	status   check.Status
	drained  bool
	override int // -1: none
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

// WithBalancerBackend makes the agent program its virtual servers through
// b instead of choosing ipvs or nftables (tests).
func WithBalancerBackend(b lvs.Backend) Option {
	return func(a *Agent) {
		a.newBackend = func(string) (lvs.Backend, string, error) { return b, "given to the agent", nil }
		a.decide = func(string) (lvs.Validator, string, error) { return b, "given to the agent", nil }
	}
}

// startBalancer starts the report loop. Called once by New.
func (a *Agent) startBalancer() {
	b := &a.balancer
	b.vss = map[string]*vsRun{}
	b.byID = map[string]*realRun{}
	b.programmed = lvs.State{}
	if b.newBackend == nil {
		b.newBackend = func(requested string) (lvs.Backend, string, error) { return lvs.Choose(requested) }
		b.decide = lvs.Decide
	}
	b.lq.init()
	b.lwg.Add(1)
	go func() {
		defer b.lwg.Done()
		for {
			reports, ok := b.lq.wait(a.ctx)
			if !ok {
				return
			}
			b.lmu.Lock()
			a.checkReports(reports)
			b.lmu.Unlock()
		}
	}()
	b.lwg.Add(1)
	go func() {
		defer b.lwg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-a.ctx.Done():
				return
			case now := <-t.C:
				b.lmu.Lock()
				if b.backend != nil && (len(b.vss) > 0 || len(b.programmed) > 0) &&
					((b.failed && !now.Before(b.retryAt)) || now.Sub(b.lastRepair) >= repairEvery) {
					a.repair()
				}
				b.lmu.Unlock()
			}
		}
	}()
}

// repair reads the backend's table back and programs what differs from
// what the virtual servers want: after a failed program, and now and then
// in case something else (nft flush ruleset, ipvsadm -C) changed it.
// Called with lmu held.
func (a *Agent) repair() {
	b := &a.balancer
	b.lastRepair = time.Now()
	ctx, cancel := context.WithTimeout(a.ctx, programTimeout)
	defer cancel()
	st, err := b.backend.Read(ctx)
	if err != nil {
		a.programFailed(fmt.Errorf("%s backend: reading the table back: %w", b.lbName, err))
		return
	}
	b.programmed = a.owned(st)
	live := map[lvs.Key]bool{}
	for _, run := range b.vss {
		live[run.cfg.Service.Key] = true
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
	was := b.failed
	if err := a.program(runs...); err != nil {
		return
	}
	b.failed, b.backoff = false, 0
	if was {
		a.log.Info("virtual servers programmed again after a failure", "backend", b.lbName)
	}
}

// programFailed records a failed program: the repair loop retries it.
func (a *Agent) programFailed(err error) {
	b := &a.balancer
	b.backoff = min(max(2*b.backoff, retryFirst), retryMax)
	b.failed, b.retryAt = true, time.Now().Add(b.backoff)
	a.log.Error("programming virtual servers failed; retrying", "backend", b.lbName, "in", b.backoff, "err", err)
}

// prepareBalancer checks every virtual server against the backend that
// runs them (the one the first configuration with virtual servers decides:
// the choice lasts until haad restarts) and resolves their commands. It
// opens and changes nothing. Called by apply with a.mu held.
func (a *Agent) prepareBalancer(c *config.Agent) (map[string]lbCommands, error) {
	b := &a.balancer
	b.lmu.Lock()
	var backend lvs.Validator
	if b.backend != nil {
		backend = b.backend
	}
	b.lmu.Unlock()
	switch {
	case backend == nil && len(c.VirtualServers) > 0:
		v, _, err := b.decide(c.LBBackend)
		if err != nil {
			return nil, &config.Error{Fields: []config.FieldError{{Path: "loadBalancer.backend", Msg: err.Error()}}}
		}
		backend = v
	case backend != nil && c.LBBackend != b.requested:
		a.log.Warn("loadBalancer.backend changed: it takes effect when haad restarts", "running", b.lbName,
			"was", b.requested, "now", c.LBBackend)
	}
	var fields []config.FieldError
	for i, vs := range c.VirtualServers {
		path := fmt.Sprintf("virtualServers[%d]", i)
		if err := backend.Supports(vs.Service); err != nil {
			fields = append(fields, config.FieldError{Path: path, Msg: fmt.Sprintf("%s backend: %v", backend.Name(), err)})
		} else if dc, ok := backend.(lvs.DestChecker); ok {
			probe := &lvs.VirtualServer{Service: vs.Service, Dests: map[netip.AddrPort]int{}}
			for _, rs := range vs.Reals {
				probe.Dests[rs.Addr] = rs.Weight
			}
			if vs.Sorry.IsValid() {
				probe.Dests[vs.Sorry] = 1
			}
			if err := dc.SupportsDests(probe); err != nil {
				fields = append(fields, config.FieldError{Path: path + ".realServers", Msg: fmt.Sprintf("%s backend: %v", backend.Name(), err)})
			}
		}
	}
	out, cmdFields := resolveLBCommands(c)
	fields = append(fields, cmdFields...)
	if len(fields) > 0 {
		return nil, &config.Error{Fields: fields}
	}
	if forwardingOff(c.VirtualServers) {
		a.log.Warn("net.ipv4.ip_forward is 0: virtual servers with nat forwarding need it (sysctl -w net.ipv4.ip_forward=1)")
	}
	return out, nil
}

// resolveLBCommands resolves the virtual servers' programs on this node
// (quorum and real-server notify commands, exec checks): each must exist
// and be safe to run. Every problem comes with its field path.
func resolveLBCommands(c *config.Agent) (map[string]lbCommands, []config.FieldError) {
	var fields []config.FieldError
	out := map[string]lbCommands{}
	for i, vs := range c.VirtualServers {
		path := fmt.Sprintf("virtualServers[%d]", i)
		cmds := lbCommands{up: map[netip.AddrPort]*script.Command{}, down: map[netip.AddrPort]*script.Command{},
			exec: map[netip.AddrPort]*script.Command{}}
		resolve := func(p string, argv []string, user string) *script.Command {
			if len(argv) == 0 {
				return nil
			}
			cmd, err := script.Resolve(argv, user)
			if err != nil {
				fields = append(fields, config.FieldError{Path: p + "[0]", Msg: err.Error()})
			}
			return cmd
		}
		cmds.quorumUp = resolve(path+".quorumUp", vs.QuorumUp, "")
		cmds.quorumDown = resolve(path+".quorumDown", vs.QuorumDown, "")
		for k, rs := range vs.Reals {
			rp := fmt.Sprintf("%s.realServers[%d]", path, k)
			cmds.up[rs.Addr] = resolve(rp+".notifyUp", rs.NotifyUp, "")
			cmds.down[rs.Addr] = resolve(rp+".notifyDown", rs.NotifyDown, "")
			if rs.Check != nil && rs.Check.Kind == check.Exec {
				cp := rp + ".check.exec.command"
				if rs.Spec.GetCheck() == nil {
					cp = path + ".check.exec.command"
				}
				cmds.exec[rs.Addr] = resolve(cp, rs.ExecCommand, rs.ExecUser)
			}
		}
		out[vs.Name] = cmds
	}
	return out, fields
}

// forwardingOff reports whether a NAT virtual server needs IPv4 forwarding
// that is off.
func forwardingOff(vss []config.VirtualServer) bool {
	nat := slices.ContainsFunc(vss, func(vs config.VirtualServer) bool {
		return vs.Service.Forwarding == lvs.NAT && !vs.Service.Key.Is6()
	})
	if !nat {
		return false
	}
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	return err == nil && strings.TrimSpace(string(b)) == "0"
}

// reconcileBalancer makes the running virtual servers those of c: checks
// start, restart or stop as their real servers change, and the backend
// gets the difference. Real servers keep their health and any runtime
// weight across the change unless their own configuration changed; a
// virtual server renamed (same address) keeps them too. Called by apply
// with a.mu held.
func (a *Agent) reconcileBalancer(c *config.Agent, cmds map[string]lbCommands) error {
	b := &a.balancer
	b.lmu.Lock()
	defer b.lmu.Unlock()
	if b.backend == nil {
		if len(c.VirtualServers) == 0 {
			return nil
		}
		// Opened at the first applied configuration with virtual servers
		// (never by a dry run): an agent that only runs VRRP never needs
		// nftables or IPVS.
		nb, reason, err := b.newBackend(c.LBBackend)
		if err != nil {
			return fmt.Errorf("load balancing: %w", err)
		}
		b.backend, b.lbName, b.lbReason, b.requested = nb, nb.Name(), reason, c.LBBackend
		a.log.Info("load-balancing backend chosen", "backend", nb.Name(), "reason", reason)
		b.sched = check.NewScheduler(c.MaxChecks, func(id string, st check.Status) {
			b.lq.push(checkReport{id: id, st: st})
		})
		// What an earlier haad left (IPVS keeps it across a crash) is
		// taken as programmed, so the first plan adjusts instead of
		// failing on services that exist. Others' services are left
		// alone.
		ctx, cancel := context.WithTimeout(a.ctx, programTimeout)
		st, err := b.backend.Read(ctx)
		cancel()
		if err != nil {
			a.log.Warn("reading the backend's table", "backend", b.lbName, "err", err)
		}
		for _, vs := range c.VirtualServers {
			if v := st[vs.Service.Key]; v != nil {
				b.programmed[vs.Service.Key] = v
			}
		}
	}
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
	for _, vs := range c.VirtualServers {
		b.order = append(b.order, vs.Name)
		run := b.vss[vs.Name]
		if run == nil {
			if old := renamed[vs.Service.Key]; old != nil {
				delete(renamed, vs.Service.Key)
				delete(b.vss, old.cfg.Name)
				run = old
				b.vss[vs.Name] = run
			}
		}
		if run != nil && proto.Equal(run.cfg.Spec, vs.Spec) && sameCommands(run.cmds, cmds[vs.Name]) {
			continue
		}
		if run == nil || run.cfg.Service.Key != vs.Service.Key {
			if run != nil {
				a.dropVirtualServer(run)
			}
			run = &vsRun{up: true}
			b.vss[vs.Name] = run
		}
		a.updateVirtualServer(run, vs, cmds[vs.Name])
		changed = append(changed, run)
	}
	for _, run := range renamed {
		a.dropVirtualServer(run)
	}
	// A backend that refuses the plan does not undo the configuration:
	// the failure is logged and the repair loop programs it again.
	_ = a.program(changed...)
	return nil
}

func sameCommands(x, y lbCommands) bool {
	eq := func(m, n map[netip.AddrPort]*script.Command) bool {
		return maps.EqualFunc(m, n, sameCommand)
	}
	return sameCommand(x.quorumUp, y.quorumUp) && sameCommand(x.quorumDown, y.quorumDown) &&
		eq(x.up, y.up) && eq(x.down, y.down) && eq(x.exec, y.exec)
}

// updateVirtualServer gives run a new configuration: real servers that
// left stop their checks, new ones start, those whose check changed
// restart it (keeping their health) under a new id, so that a report of
// the old check still queued is recognised and dropped.
func (a *Agent) updateVirtualServer(run *vsRun, vs config.VirtualServer, cmds lbCommands) {
	b := &a.balancer
	old := map[netip.AddrPort]*realRun{}
	for _, r := range run.reals {
		old[r.cfg.Addr] = r
	}
	reals := make([]*realRun, 0, len(vs.Reals))
	for _, rs := range vs.Reals {
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
			a.stopCheck(r)
			r.status.Healthy, r.status.Weight, r.status.Last = true, -1, check.Result{}
		case restart:
			a.stopCheck(r)
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
		a.stopCheck(r)
	}
	run.cfg, run.reals, run.cmds = vs, reals, cmds
}

// stopCheck stops a real server's check, if it has one.
func (a *Agent) stopCheck(r *realRun) {
	b := &a.balancer
	if r.id != "" {
		b.sched.Remove(r.id)
		delete(b.byID, r.id)
		r.id = ""
	}
}

func sameCommand(p, q *script.Command) bool {
	return (p == nil) == (q == nil) && (p == nil || slices.Equal(p.Argv, q.Argv))
}

// dropVirtualServer stops a virtual server's checks and forgets it; the
// next program removes it from the backend.
func (a *Agent) dropVirtualServer(run *vsRun) {
	b := &a.balancer
	for _, r := range run.reals {
		a.stopCheck(r)
	}
	if b.vss[run.cfg.Name] == run {
		delete(b.vss, run.cfg.Name)
	}
	if run.queue != nil {
		a.closeQueue(run.queue)
	}
	b.dropped = append(b.dropped, run.cfg.Service.Key)
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

// checkReports applies health changes. Called with lmu held.
func (a *Agent) checkReports(reports []checkReport) {
	type change struct {
		r             *realRun
		healthy       bool
		cause, detail string
	}
	b := &a.balancer
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
		if rep.st.Healthy {
			cause, cmd, state = "up", run.cmds.up[r.cfg.Addr], "UP"
		}
		a.log.Info("real server "+cause, "virtual_server", run.cfg.Name, "real_server", r.cfg.Addr, "detail", rep.st.Last.Detail)
		events = append(events, change{r, rep.st.Healthy, cause, rep.st.Last.Detail})
		if cmd != nil {
			a.lbNotify(run, notify.Job{Type: "REAL_SERVER", Name: run.cfg.Name + "/" + r.cfg.Addr.String(), State: state,
				Cmd: cmd, Timeout: notify.DefaultTimeout})
		}
	}
	_ = a.program(changed...) // a failure is logged and retried
	for _, c := range events {
		a.realServerEvent(c.r, c.healthy, c.cause, c.detail)
	}
}

// realServerEvent records a real server's change with the weight it has
// in the backend now. Called with lmu held, after program.
func (a *Agent) realServerEvent(r *realRun, healthy bool, cause, detail string) {
	w := 0
	if vs := a.balancer.programmed[r.run.cfg.Service.Key]; vs != nil {
		w = vs.Dests[r.cfg.Addr]
	}
	a.events.Append(&haav1.Event{Kind: &haav1.Event_RealServerChanged{RealServerChanged: &haav1.RealServerChanged{
		VirtualServer: r.run.cfg.Name, RealServer: r.cfg.Addr.String(), Healthy: healthy,
		Weight: uint32(w), Cause: cause, Detail: detail}}})
}

func lvsReal(r *realRun) lvs.Real {
	return lvs.Real{Addr: r.cfg.Addr, Weight: r.cfg.Weight, Healthy: r.status.Healthy, Dynamic: r.status.Weight,
		Drained: r.drained, Override: r.override}
}

// program decides the destinations of the given virtual servers (nil
// entries and dropped ones included: those are removed) and programs the
// difference, touching nothing else. Called with lmu held.
func (a *Agent) program(runs ...*vsRun) error {
	b := &a.balancer
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
	for _, run := range runs {
		if b.vss[run.cfg.Name] != run {
			continue
		}
		g := lvs.Group{Service: run.cfg.Service, Sorry: run.cfg.Sorry, Quorum: run.cfg.Quorum,
			Hysteresis: run.cfg.Hysteresis, Inhibit: run.cfg.Inhibit}
		for _, r := range run.reals {
			g.Reals = append(g.Reals, lvsReal(r))
		}
		out := lvs.Desired(g, run.up)
		k := run.cfg.Service.Key
		if vs := b.programmed[k]; vs != nil {
			actual[k] = vs
		}
		desired[k] = out.VS
		if out.Up != run.up { // a new service starts up: one below its quorum reports it
			a.quorumChanged(run, out)
		}
		run.up, run.sorry, run.hw = out.Up, out.SorryActive, out.HealthyWeight
	}
	plan := lvs.Diff(actual, desired)
	if len(plan) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(a.ctx, programTimeout)
	defer cancel()
	if err := b.backend.Apply(ctx, plan); err != nil {
		// What is programmed now is unknown: read it back; the repair
		// loop programs the rest.
		if st, rerr := b.backend.Read(ctx); rerr == nil {
			b.programmed = a.owned(st)
		}
		err = fmt.Errorf("%s backend: %w", b.lbName, err)
		b.dropped = append(b.dropped, dropped...) // still to remove
		a.programFailed(err)
		return err
	}
	lvs.Apply(b.programmed, plan)
	return nil
}

// owned keeps the services of st that are ours: those of running virtual
// servers and those we programmed before.
func (a *Agent) owned(st lvs.State) lvs.State {
	b := &a.balancer
	ours := map[lvs.Key]bool{}
	for _, run := range b.vss {
		ours[run.cfg.Service.Key] = true
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
func (a *Agent) lbNotify(run *vsRun, j notify.Job) {
	if run.queue == nil {
		run.queue = notify.NewQueue(a.notifyDone)
	}
	run.queue.Push(j)
}

// quorumChanged reports a virtual server going up or down and runs its
// quorum command.
func (a *Agent) quorumChanged(run *vsRun, out lvs.Outcome) {
	state, cmd := "DOWN", run.cmds.quorumDown
	if out.Up {
		state, cmd = "UP", run.cmds.quorumUp
	}
	a.log.Warn("virtual server quorum "+strings.ToLower(state), "virtual_server", run.cfg.Name,
		"healthy_weight", out.HealthyWeight, "quorum", run.cfg.Quorum, "sorry", out.SorryActive)
	a.events.Append(&haav1.Event{Kind: &haav1.Event_VirtualServerChanged{VirtualServerChanged: &haav1.VirtualServerChanged{
		VirtualServer: run.cfg.Name, Up: out.Up, HealthyWeight: uint32(out.HealthyWeight), Sorry: out.SorryActive}}})
	if cmd != nil {
		a.lbNotify(run, notify.Job{Type: "VIRTUAL_SERVER", Name: run.cfg.Name, State: state, Cmd: cmd,
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
// real server's configured weight changes or haad restarts.
func (a *Agent) SetRealServer(vsName, addr string, act RealServerAction) (*haav1.RealServerStatus, error) {
	b := &a.balancer
	b.lmu.Lock()
	defer b.lmu.Unlock()
	run := b.vss[vsName]
	if run == nil {
		return nil, fmt.Errorf("virtual server %q: %w", vsName, ErrNoVirtualServer)
	}
	r := findReal(run, addr)
	if r == nil {
		return nil, fmt.Errorf("virtual server %s has no real server %q: %w", vsName, addr, ErrNoRealServer)
	}
	var cause, detail string
	wasDrained, wasOverride := r.drained, r.override
	switch {
	case act.Weight != nil:
		if *act.Weight < 0 || *act.Weight > config.MaxRealWeight {
			return nil, fmt.Errorf("weight %d: %w", *act.Weight, ErrBadWeight)
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
	if err := a.program(run); err != nil {
		r.drained, r.override = wasDrained, wasOverride // the repair loop programs the old weight back
		return nil, err
	}
	a.log.Info("real server "+cause, "virtual_server", vsName, "real_server", r.cfg.Addr, "weight", lvsReal(r).Effective())
	a.realServerEvent(r, r.status.Healthy, cause, detail)
	return a.realStatus(r), nil
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

// VirtualServers returns every virtual server as it runs, in the
// configured order, and the backend's name.
func (a *Agent) VirtualServers(ctx context.Context) ([]*haav1.VirtualServerStatus, string) {
	b := &a.balancer
	b.lmu.Lock()
	backend, name := b.backend, b.lbName
	out, keys := a.virtualServers()
	b.lmu.Unlock()
	// Connection counts are read without lmu: a large IPVS table takes a
	// while, and checks and changes must not wait for it.
	c, ok := backend.(lvs.Counter)
	if !ok || len(out) == 0 {
		return out, name
	}
	conns, err := c.Conns(ctx)
	if err != nil {
		a.log.Warn("reading connection counts", "backend", name, "err", err)
		return out, name
	}
	for i, st := range out {
		for _, rs := range st.RealServers {
			if n, ok := conns[keys[i]][netip.MustParseAddrPort(rs.Address)]; ok {
				rs.ActiveConnections, rs.InactiveConnections = proto.Uint64(n.Active), proto.Uint64(n.Inactive)
			}
		}
	}
	return out, name
}

// VirtualServerStates returns every virtual server as VirtualServers
// does, without connection counts: it never asks the backend.
func (a *Agent) VirtualServerStates() []*haav1.VirtualServerStatus {
	a.balancer.lmu.Lock()
	defer a.balancer.lmu.Unlock()
	out, _ := a.virtualServers()
	return out
}

// virtualServers returns every virtual server's API form and key, in the
// configured order. Called with lmu held.
func (a *Agent) virtualServers() ([]*haav1.VirtualServerStatus, []lvs.Key) {
	b := &a.balancer
	out := make([]*haav1.VirtualServerStatus, 0, len(b.order))
	keys := make([]lvs.Key, 0, len(b.order))
	for _, name := range b.order {
		run := b.vss[name]
		if run == nil {
			continue
		}
		vs := run.cfg
		st := &haav1.VirtualServerStatus{Name: vs.Name, Scheduler: vs.Service.Scheduler,
			Forwarding: vs.Service.Forwarding.String(), Up: run.up, Quorum: uint32(vs.Quorum),
			HealthyWeight: uint32(run.hw), SorryActive: run.sorry}
		if k := vs.Service.Key; k.FWMark != 0 {
			st.Fwmark = k.FWMark
		} else {
			st.Address, st.Protocol = k.Addr.String(), k.Proto.String()
		}
		if vs.Sorry.IsValid() {
			st.SorryServer = vs.Sorry.String()
		}
		for _, r := range run.reals {
			st.RealServers = append(st.RealServers, a.realStatus(r))
		}
		out = append(out, st)
		keys = append(keys, vs.Service.Key)
	}
	return out, keys
}

// realStatus is a real server's API form. Called with lmu held.
func (a *Agent) realStatus(r *realRun) *haav1.RealServerStatus {
	b := &a.balancer
	st := &haav1.RealServerStatus{Address: r.cfg.Addr.String(), Healthy: r.status.Healthy,
		ConfiguredWeight: uint32(r.cfg.Weight), Drained: r.drained, LastResult: r.status.Last.Detail,
		Since: timestamp(r.status.Since), Check: "none"}
	if r.cfg.Check != nil {
		st.Check = string(r.cfg.Check.Kind)
		if cur, ok := b.sched.Status(r.id); ok { // the latest check, not only the last change
			st.LastResult = cur.Last.Detail
			if st.LastResult == "" && cur.Last.OK {
				st.LastResult = "ok"
			}
		}
	}
	if r.override >= 0 {
		st.WeightOverride = proto.Uint32(uint32(r.override))
	}
	if vs := b.programmed[r.run.cfg.Service.Key]; vs != nil {
		if w, ok := vs.Dests[r.cfg.Addr]; ok {
			st.Programmed, st.Weight = true, uint32(w)
		}
	}
	return st
}

// Backend returns the load-balancing backend's name and why it was chosen
// ("" before the first configuration with virtual servers).
func (a *Agent) Backend() (name, reason string) {
	b := &a.balancer
	b.lmu.Lock()
	defer b.lmu.Unlock()
	return b.lbName, b.lbReason
}

// stopBalancer stops the checks and the loop and removes every virtual
// server this agent programmed (as keepalived does when it stops). Called
// by Shutdown.
func (a *Agent) stopBalancer(ctx context.Context) error {
	b := &a.balancer
	b.lmu.Lock()
	defer b.lmu.Unlock()
	if b.sched != nil {
		b.sched.Close()
		b.sched = nil
	}
	for _, run := range b.vss {
		if run.queue != nil {
			a.closeQueue(run.queue)
		}
	}
	clear(b.vss)
	if b.backend == nil {
		return nil
	}
	var err error
	if plan := lvs.Diff(b.programmed, lvs.State{}); len(plan) > 0 {
		d := programTimeout
		if dl, ok := ctx.Deadline(); ok {
			d = min(d, time.Until(dl))
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
		defer cancel()
		if err = b.backend.Apply(actx, plan); err != nil {
			err = fmt.Errorf("removing the virtual servers: %w", err)
		}
		b.programmed = lvs.State{}
	}
	return errors.Join(err, b.backend.Close())
}
