// Package tracking is the agent's trackers, sync groups and notify
// commands: what moves an instance's priority or puts it in FAULT besides
// the protocol, which instances change state together, and the programs
// that run at each change.
//
// A Manager owns all of it. One goroutine (the loop) turns tracker results
// and sync group members' notices into commands to the instances, in the
// order they happened; runners only ever push to its queue (Observe), so
// neither waits for the other, and the loop never calls a runner while
// holding the Manager's lock. The agent's apply drives the rest: Prepare
// resolves every program (nothing changes), Commit starts and stops
// trackers and groups, Initial gives a starting instance its verdict and
// Attach points the loop at the running instances.
//
// Readers (API, metrics) read the Snapshot published after every change;
// they never take the lock.
package tracking

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/host"
	"github.com/haa-dev/haa/node/internal/fifo"
	"github.com/haa-dev/haa/node/notify"
	"github.com/haa-dev/haa/node/script"
	"github.com/haa-dev/haa/node/syncgroup"
	"github.com/haa-dev/haa/node/track"
	"github.com/haa-dev/haa/node/track/checkers"
	"github.com/haa-dev/haa/node/vrrp"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Host is what tracking needs of the machine: the state of a tracked link
// when its tracker starts (then link events, LinkChanged).
type Host interface {
	Link(name string) (host.Link, error)
}

// Events receives tracking's events. Append must not block.
type Events interface {
	Append(e *haav1.Event) *haav1.Event
}

// Runner is what tracking steers of a running instance (*vrrp.Runner).
type Runner interface {
	SetTrack(offset int, fault string)
	SyncFault(reason string)
	SyncMaster()
	SyncBackup()
	Resync()
}

// Deps are what a Manager is built with.
type Deps struct {
	Log    *slog.Logger
	Events Events
	Notify *notify.Runner
	Host   Host
}

// notifyKeep is how many notify outcomes are kept per instance and group.
const notifyKeep = 10

// Manager runs the trackers, sync groups and notify commands of one agent.
type Manager struct {
	log       *slog.Logger
	events    Events
	notify    *notify.Runner
	ownNotify bool // notify was made by New: Close closes it
	host      Host

	ctx    context.Context // the trackers and the loop run until Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	q      *fifo.Queue[msg]

	// mu guards what follows; the loop, the apply and the runners'
	// Observe take it, never while calling a runner.
	mu        sync.Mutex
	runs      map[string]*trackerRun // running trackers by name
	groups    map[string]*groupRun   // by group name
	memberOf  map[string]*groupRun   // instance name -> its group
	views     map[string]*tracked    // by instance name
	notifiers map[string]*notifier   // by instance name, kept across restarts
	results   map[string][]notify.Record
	given     map[string]verdict // the verdict Initial handed out, until Attach
	// The link events seen, numbered: a tracker started from what the host
	// said before an event takes the event's state instead.
	linkSeq uint64
	links   map[string]linkSeen

	snap atomic.Pointer[Snapshot]
}

// trackerRun is one running tracker.
type trackerRun struct {
	cfg    config.Tracker
	argv   []string // the resolved command of a script tracker
	cancel context.CancelFunc
	link   *checkers.Link // interface trackers
	result track.Result
	known  bool // result is a report, not the assumed initial state
}

// groupRun is one sync group.
type groupRun struct {
	cfg   config.SyncGroup
	g     *syncgroup.Group
	spec  *notify.Spec
	queue *notify.Queue
}

// tracked is what the loop needs of one instance.
type tracked struct {
	runner Runner
	refs   []config.TrackRef
	// The verdict last handed to runner.
	verdict
}

type verdict struct {
	offset int
	fault  string
}

// msg is one input of the loop: a tracker's report, a sync group member's
// notice, or a request to recompute every instance.
type msg struct {
	run       *trackerRun
	result    track.Result
	notice    *vrrp.Notice
	recompute bool
	flushed   chan struct{} // closed when the loop gets here
}

// linkSeen is the last event of a link and its number.
type linkSeen struct {
	seq uint64
	up  bool
}

// notifier is an instance's notify queue and its current commands.
type notifier struct {
	spec  *notify.Spec
	queue *notify.Queue
}

// New starts a Manager with no trackers.
func New(d Deps) *Manager {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	own := d.Notify == nil
	if own {
		d.Notify = notify.NewRunner(d.Log, d.Events)
	}
	m := &Manager{log: d.Log, events: d.Events, notify: d.Notify, ownNotify: own, host: d.Host, q: fifo.New[msg](),
		runs: map[string]*trackerRun{}, groups: map[string]*groupRun{}, memberOf: map[string]*groupRun{},
		views: map[string]*tracked{}, notifiers: map[string]*notifier{}, results: map[string][]notify.Record{},
		given: map[string]verdict{}, links: map[string]linkSeen{}}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.mu.Lock()
	m.publishLocked()
	m.mu.Unlock()
	m.wg.Go(m.loop)
	return m
}

// commands are the programs of a configuration, resolved on this node.
type commands struct {
	trackers map[string]*script.Command // by tracker name
	notify   map[string]*notify.Spec    // by instance name
	groups   map[string]*notify.Spec    // by group name
}

// Change is a prepared configuration of the trackers, sync groups and
// notify commands.
type Change struct {
	cfg  *config.Agent
	cmds commands
}

// Prepare resolves every program of c's trackers, instances and sync
// groups on this node: each must exist and be safe to run. It changes
// nothing; every problem comes with its field path.
func (m *Manager) Prepare(c *config.Agent) (*Change, error) {
	cmds, err := ResolveCommands(c)
	if err != nil {
		return nil, err
	}
	return &Change{cfg: c, cmds: cmds}, nil
}

// ResolveCommands resolves the programs of c's trackers, instances and
// sync groups (what Prepare checks), each problem at its field path.
func ResolveCommands(c *config.Agent) (commands, error) {
	out := commands{trackers: map[string]*script.Command{}, notify: map[string]*notify.Spec{}, groups: map[string]*notify.Spec{}}
	var fields []config.FieldError
	resolve := func(path string, argv []string, user string) *script.Command {
		cmd, err := script.Resolve(argv, "")
		if err != nil {
			fields = append(fields, config.FieldError{Path: path + "[0]", Msg: err.Error()})
			return nil
		}
		if user == "" {
			return cmd
		}
		if cmd, err = script.Resolve(argv, user); err != nil {
			fields = append(fields, config.FieldError{Path: path + "[0]", Msg: err.Error()})
		}
		return cmd
	}
	for i, t := range c.Trackers {
		if t.Script != nil {
			out.trackers[t.Name] = resolve(fmt.Sprintf("trackers[%d].script.command", i), t.Script.Command, t.Script.User)
		}
	}
	spec := func(path string, n *config.Notify) *notify.Spec {
		if n == nil {
			return nil
		}
		s := &notify.Spec{Timeout: n.Timeout}
		for _, f := range []struct {
			name string
			argv []string
			dst  **script.Command
		}{{"master", n.Master, &s.Master}, {"backup", n.Backup, &s.Backup}, {"fault", n.Fault, &s.Fault},
			{"stop", n.Stop, &s.Stop}, {"any", n.Any, &s.Any}} {
			if len(f.argv) > 0 {
				*f.dst = resolve(path+"."+f.name, f.argv, n.User)
			}
		}
		return s
	}
	for i, in := range c.Instances {
		out.notify[in.VRRP.Name] = spec(fmt.Sprintf("instances[%d].notify", i), in.Notify)
	}
	for i, g := range c.SyncGroups {
		out.groups[g.Name] = spec(fmt.Sprintf("syncGroups[%d].notify", i), g.Notify)
	}
	if len(fields) > 0 {
		return commands{}, &config.Error{Fields: fields}
	}
	return out, nil
}

// Commit makes the running trackers and sync groups those of the change:
// trackers no instance references any more, or whose definition changed,
// stop; new ones start (a weight-only change keeps the check and its
// result). Instances get their notify commands; the notify queues of
// instances and groups no longer configured finish what they hold and
// close, and their outcomes are forgotten. Call it after the removed
// instances stopped (their STOP commands are queued) and before new ones
// start (they start with Initial's verdict).
func (m *Manager) Commit(ch *Change) {
	c, cmds := ch.cfg, ch.cmds
	needed := map[string]bool{}
	for _, in := range c.Instances {
		for _, r := range in.Track {
			needed[r.Tracker] = true
		}
	}
	for _, g := range c.SyncGroups {
		for _, r := range g.Track {
			needed[r.Tracker] = true
		}
	}
	// What the host says of links and files is read before the lock: the
	// runners' notices take it. A link event that comes in meanwhile wins.
	m.mu.Lock()
	seq := m.linkSeq
	m.mu.Unlock()
	initial := map[string]track.Result{}
	for _, tr := range c.Trackers {
		switch tr.Kind {
		case track.KindInterface:
			up := false
			if m.host != nil {
				lk, err := m.host.Link(tr.Iface)
				up = err == nil && lk.Up
			}
			r := track.Result{OK: up, Since: time.Now(), Detail: "link down"}
			if up {
				r.Detail = "link up"
			}
			initial[tr.Name] = r
		case track.KindFile:
			initial[tr.Name] = checkers.ReadFile(tr.File)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, tr := range c.Trackers {
		if seen, ok := m.links[tr.Iface]; ok && tr.Kind == track.KindInterface && seen.seq > seq {
			r := track.Result{OK: seen.up, Since: time.Now(), Detail: "link down"}
			if seen.up {
				r.Detail = "link up"
			}
			initial[tr.Name] = r
		}
	}
	for _, tr := range c.Trackers {
		run := m.runs[tr.Name]
		if run != nil && (!needed[tr.Name] || !sameTracker(run, tr, cmds.trackers[tr.Name])) {
			run.cancel()
			delete(m.runs, tr.Name)
			run = nil
		}
		if run != nil {
			run.cfg = tr // a new weight only: the check and its result stay
		}
		if run == nil && needed[tr.Name] {
			m.runs[tr.Name] = m.startTracker(tr, cmds.trackers[tr.Name], initial[tr.Name])
		}
	}
	for name, run := range m.runs {
		if !slices.ContainsFunc(c.Trackers, func(tr config.Tracker) bool { return tr.Name == name }) {
			run.cancel()
			delete(m.runs, name)
		}
	}

	groups := map[string]*groupRun{}
	memberOf := map[string]*groupRun{}
	for _, g := range c.SyncGroups {
		gr := m.groups[g.Name]
		if gr == nil || !slices.Equal(gr.cfg.Instances, g.Instances) {
			gr = &groupRun{g: syncgroup.New(g.Name, g.Instances), queue: m.notify.Queue(m.recorder("GROUP/" + g.Name))}
		}
		gr.cfg, gr.spec = g, cmds.groups[g.Name]
		groups[g.Name] = gr
		for _, in := range g.Instances {
			memberOf[in] = gr
		}
	}
	for name, gr := range m.groups {
		if groups[name] != gr {
			m.notify.Retire(gr.queue)
			if groups[name] == nil {
				delete(m.results, "GROUP/"+name)
			}
		}
	}
	m.groups, m.memberOf = groups, memberOf

	views := map[string]*tracked{}
	for _, in := range c.Instances {
		name := in.VRRP.Name
		v := m.views[name]
		if v == nil {
			v = &tracked{}
		}
		v.refs = in.Track
		views[name] = v
		nt := m.notifiers[name]
		if nt == nil {
			nt = &notifier{queue: m.notify.Queue(m.recorder("INSTANCE/" + name))}
			m.notifiers[name] = nt
		}
		nt.spec = cmds.notify[name] // its next transition runs the new commands
	}
	m.views = views
	for name, nt := range m.notifiers {
		if views[name] == nil {
			m.notify.Retire(nt.queue)
			delete(m.notifiers, name)
			delete(m.results, "INSTANCE/"+name)
		}
	}
	m.publishLocked()
}

// sameTracker reports whether a running tracker checks what the one
// configured checks (its weight aside: that only changes what its result
// does).
func sameTracker(run *trackerRun, tr config.Tracker, cmd *script.Command) bool {
	a, b := proto.Clone(run.cfg.Spec).(*haav1.Tracker), proto.Clone(tr.Spec).(*haav1.Tracker)
	a.Weight, b.Weight = 0, 0
	if !proto.Equal(a, b) {
		return false
	}
	var argv []string
	if cmd != nil {
		argv = cmd.Argv
	}
	return slices.Equal(run.argv, argv)
}

// startTracker starts one tracker; initial is what the host said of an
// interface or file tracker's subject. Called with mu held.
func (m *Manager) startTracker(tr config.Tracker, cmd *script.Command, initial track.Result) *trackerRun {
	ctx, cancel := context.WithCancel(m.ctx)
	run := &trackerRun{cfg: tr, cancel: cancel, result: track.Result{OK: true, Since: time.Now(), Detail: "not checked yet"}}
	var checker track.Checker
	switch tr.Kind {
	case track.KindScript:
		run.argv = cmd.Argv
		checker = &checkers.Script{Cmd: cmd, Interval: tr.Script.Interval, Timeout: tr.Script.Timeout,
			Rise: tr.Script.Rise, Fall: tr.Script.Fall}
	case track.KindInterface:
		run.link = checkers.NewLink(tr.Iface, initial.OK)
		run.result = initial
		checker = run.link
	case track.KindFile:
		checker = &checkers.File{Path: tr.File}
		run.result = initial
	case track.KindProcess:
		p := tr.Process
		checker = &checkers.Process{Name: p.Name, Args: p.Args, Quorum: p.Quorum, QuorumMax: p.QuorumMax, Interval: p.Interval}
	default:
		panic(fmt.Sprintf("tracker %s: kind %q", tr.Name, tr.Kind)) // config.Resolve sets one of the four
	}
	m.log.Info("tracker started", "tracker", tr.Name, "kind", tr.Kind, "weight", tr.Weight)
	m.wg.Go(func() {
		checker.Run(ctx, func(r track.Result) { m.q.Push(msg{run: run, result: r}) })
	})
	return run
}

// Initial is the verdict a starting instance begins with: the trackers'
// offset and fault, and its sync group's fault.
func (m *Manager) Initial(name string) (offset int, fault, groupFault string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	offset, fault, _ = m.verdictLocked(name)
	if gr := m.memberOf[name]; gr != nil {
		groupFault = gr.g.Reason(name)
	}
	m.given[name] = verdict{offset, fault}
	return offset, fault, groupFault
}

// Attach points the loop at the instances' runners once they run (nil or
// missing: not running) and has every verdict recomputed (a report may
// have come in between). The sync groups learn their members' states.
func (m *Manager) Attach(runners map[string]Runner) {
	m.mu.Lock()
	var members []Runner
	for name, v := range m.views {
		r := runners[name]
		if r == nil {
			v.runner = nil
			continue
		}
		if v.runner != r {
			v.runner = r
			v.verdict = m.given[name]
		}
		if m.memberOf[name] != nil {
			members = append(members, r)
		}
	}
	clear(m.given)
	m.mu.Unlock()
	// A group created around running instances hears no transition from
	// them: each runner reports its state in order with its other notices.
	for _, r := range members {
		r.Resync()
	}
	m.q.Push(msg{recompute: true})
}

// Observe takes a runner's notice: a transition queues the instance's
// notify commands; transitions and wishes of sync group members go to the
// loop. Called on the runner's goroutine: it never blocks.
func (m *Manager) Observe(n vrrp.Notice) {
	switch n.Kind {
	case vrrp.NoticeTransition, vrrp.NoticeSync, vrrp.NoticeState:
	default:
		return
	}
	m.mu.Lock()
	var jobs []notify.Job
	var queue *notify.Queue
	if nt := m.notifiers[n.Instance]; nt != nil && n.Kind == vrrp.NoticeTransition {
		jobs, queue = nt.spec.Jobs("INSTANCE", n.Instance, notifyState(n.To), int(n.Priority)), nt.queue
	}
	member := m.memberOf[n.Instance] != nil
	m.mu.Unlock()
	if len(jobs) > 0 {
		queue.Push(jobs...)
	}
	if member {
		m.q.Push(msg{notice: &n})
	}
}

// notifyState is keepalived's name of a state in notify arguments.
func notifyState(s vrrp.State) string {
	if s == vrrp.Init {
		return "STOP"
	}
	return s.String()
}

// LinkChanged tells the interface trackers of a link its state.
func (m *Manager) LinkChanged(ev host.LinkEvent) {
	if ev.Resync {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.linkSeq++
	m.links[ev.Name] = linkSeen{m.linkSeq, ev.Up}
	for _, run := range m.runs {
		if run.link != nil && run.cfg.Iface == ev.Name {
			run.link.Set(ev.Up)
		}
	}
}

// recorder keeps the last notify outcomes of an instance or group (key
// "INSTANCE/NAME" or "GROUP/NAME") while it is configured.
func (m *Manager) recorder(key string) func(notify.Record) {
	return func(rec notify.Record) {
		m.mu.Lock()
		defer m.mu.Unlock()
		name := strings.SplitN(key, "/", 2)[1]
		if strings.HasPrefix(key, "GROUP/") && m.groups[name] == nil ||
			strings.HasPrefix(key, "INSTANCE/") && m.notifiers[name] == nil {
			return // gone: a retired queue's last commands are events only
		}
		rs := append(m.results[key], rec)
		if len(rs) > notifyKeep {
			rs = slices.Clone(rs[len(rs)-notifyKeep:])
		}
		m.results[key] = rs
		m.publishLocked()
	}
}

// Close stops the trackers and retires the notify queues once the loop has
// handled the instances' last transitions (the groups' STOP commands).
// Call it after the instances stopped; the notify runner's Close then
// waits for the commands (Close does when New made the runner).
func (m *Manager) Close(ctx context.Context) error {
	flushed := make(chan struct{})
	m.q.Push(msg{flushed: flushed})
	select {
	case <-flushed:
	case <-ctx.Done():
	}
	m.mu.Lock()
	for name, run := range m.runs {
		run.cancel()
		delete(m.runs, name)
	}
	for name, gr := range m.groups {
		m.notify.Retire(gr.queue)
		delete(m.groups, name)
	}
	for name, nt := range m.notifiers {
		m.notify.Retire(nt.queue)
		delete(m.notifiers, name)
	}
	clear(m.memberOf)
	m.mu.Unlock()
	m.cancel()
	done := make(chan struct{})
	go func() {
		m.wg.Wait() // the trackers (a script's process is killed) and the loop
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("waiting for the trackers to stop: %w", ctx.Err())
	}
	if m.ownNotify {
		err = errors.Join(err, m.notify.Close(ctx))
	}
	return err
}
