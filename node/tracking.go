package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/notify"
	"github.com/haa-dev/haa/node/script"
	"github.com/haa-dev/haa/node/syncgroup"
	"github.com/haa-dev/haa/node/track"
	"github.com/haa-dev/haa/node/vrrp"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// tracking is the agent's trackers, sync groups and notify commands. One
// goroutine (trackLoop) turns tracker results and sync group members'
// notices into commands to the instances, in the order they happened; the
// instances' runners only ever push to its queue, so neither waits for the
// other. Lock order: Agent.mu, then tmu; the loop never takes Agent.mu.
type tracking struct {
	tmu      sync.Mutex
	runs     map[string]*trackerRun // running trackers by name
	groups   map[string]*groupRun   // by group name
	memberOf map[string]*groupRun   // instance name -> its group
	views    map[string]*tracked    // by instance name
	results  map[string][]NotifyRecord
	seq      uint64 // of notify commands

	tq       fifo[trackMsg]
	closeCtx context.Context // notify queues finish their commands until it ends
	closeEnd context.CancelFunc
	twg      sync.WaitGroup // tracker goroutines and the loop
	notifyWG sync.WaitGroup // notify queues closing
}

// trackerRun is one running tracker.
type trackerRun struct {
	cfg    config.Tracker
	argv   []string // the resolved command of a script tracker
	cancel context.CancelFunc
	link   *track.Link // interface trackers
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
	runner *vrrp.Runner
	refs   []config.TrackRef
	// The verdict last handed to runner.
	offset int
	fault  string
}

// trackMsg is one input of the loop: a tracker's report, a sync group
// member's notice, or a request to recompute every instance.
type trackMsg struct {
	run       *trackerRun
	result    track.Result
	notice    *vrrp.Notice
	recompute bool
	flushed   chan struct{} // closed when the loop gets here
}

// notifier is an instance's notify queue and its current commands.
type notifier struct {
	mu    sync.Mutex
	spec  *notify.Spec
	queue *notify.Queue
}

func (n *notifier) setSpec(s *notify.Spec) {
	n.mu.Lock()
	n.spec = s
	n.mu.Unlock()
}

// transition queues the commands for one state change. Called from the
// runner's goroutine: never blocks.
func (n *notifier) transition(name string, to vrrp.State, prio uint8) {
	n.mu.Lock()
	spec := n.spec
	n.mu.Unlock()
	if jobs := spec.Jobs("INSTANCE", name, notifyState(to), int(prio)); len(jobs) > 0 {
		n.queue.Push(jobs...)
	}
}

// notifyState is keepalived's name of a state in notify arguments.
func notifyState(s vrrp.State) string {
	if s == vrrp.Init {
		return "STOP"
	}
	return s.String()
}

// NotifyRecord is the outcome of one notify command.
type NotifyRecord struct {
	Seq      uint64
	Time     time.Time
	Type     string // INSTANCE or GROUP
	Name     string
	State    string
	Command  []string
	Exit     int
	Duration time.Duration
	Output   string
	Err      string
}

// notifyKeep is how many notify outcomes are kept per instance and group.
const notifyKeep = 10

// TrackerView is a tracker as one instance sees it.
type TrackerView struct {
	Name     string
	Kind     string
	OK       bool
	Weight   int
	Delta    int  // what it adds to the priority now
	Fault    bool // it puts the instance in FAULT now
	Detail   string
	Since    time.Time
	ViaGroup bool
}

// commands are the programs of a configuration, resolved on this node.
type commands struct {
	trackers map[string]*script.Command // by tracker name
	notify   map[string]*notify.Spec    // by instance name
	groups   map[string]*notify.Spec    // by group name
}

// CheckCommands resolves every program of a configuration on this node
// (trackers' scripts, notify commands, the virtual servers' notify and exec
// check commands): each must exist and be safe to run
// (script.Secure). Every problem is reported with its field path.
func CheckCommands(c *config.Agent) error {
	_, err := resolveCommands(c)
	var fields []config.FieldError
	if ce, ok := err.(*config.Error); ok {
		fields = ce.Fields
	} else if err != nil {
		return err
	}
	_, lb := resolveLBCommands(c) // the virtual servers' notify and exec commands
	if fields = append(fields, lb...); len(fields) > 0 {
		return &config.Error{Fields: fields}
	}
	return nil
}

func resolveCommands(c *config.Agent) (commands, error) {
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

// gate marks the instances that are members of a sync group.
func gate(c *config.Agent) {
	member := map[string]bool{}
	for _, g := range c.SyncGroups {
		for _, m := range g.Instances {
			member[m] = true
		}
	}
	for i := range c.Instances {
		c.Instances[i].VRRP.Gated = member[c.Instances[i].VRRP.Name]
	}
}

// startTracking starts the loop. Called once by New.
func (a *Agent) startTracking() {
	t := &a.tracking
	t.runs = map[string]*trackerRun{}
	t.groups = map[string]*groupRun{}
	t.memberOf = map[string]*groupRun{}
	t.views = map[string]*tracked{}
	t.results = map[string][]NotifyRecord{}
	t.tq.init()
	t.closeCtx, t.closeEnd = context.WithCancel(context.Background())
	t.twg.Add(1)
	go func() {
		defer t.twg.Done()
		a.trackLoop()
	}()
}

// reconcileTracking makes the running trackers and sync groups those of c:
// trackers no instance references any more, or whose definition changed,
// stop; new ones start. Called by apply with a.mu held, before instances
// start (they start with the trackers' verdict).
func (a *Agent) reconcileTracking(c *config.Agent, cmds commands) {
	t := &a.tracking
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
	t.tmu.Lock()
	defer t.tmu.Unlock()
	for _, tr := range c.Trackers {
		run := t.runs[tr.Name]
		if run != nil && (!needed[tr.Name] || !sameTracker(run, tr, cmds.trackers[tr.Name])) {
			run.cancel()
			delete(t.runs, tr.Name)
			run = nil
		}
		if run != nil {
			run.cfg = tr // a new weight only: the check and its result stay
		}
		if run == nil && needed[tr.Name] {
			t.runs[tr.Name] = a.startTracker(tr, cmds.trackers[tr.Name])
		}
	}
	for name, run := range t.runs {
		if !slices.ContainsFunc(c.Trackers, func(tr config.Tracker) bool { return tr.Name == name }) {
			run.cancel()
			delete(t.runs, name)
		}
	}

	groups := map[string]*groupRun{}
	memberOf := map[string]*groupRun{}
	for _, g := range c.SyncGroups {
		gr := t.groups[g.Name]
		if gr == nil || !slices.Equal(gr.cfg.Instances, g.Instances) {
			gr = &groupRun{g: syncgroup.New(g.Name, g.Instances), queue: notify.NewQueue(a.notifyDone)}
		}
		gr.cfg, gr.spec = g, cmds.groups[g.Name]
		groups[g.Name] = gr
		for _, m := range g.Instances {
			memberOf[m] = gr
		}
	}
	for name, gr := range t.groups {
		if groups[name] != gr {
			a.closeQueue(gr.queue)
		}
	}
	t.groups, t.memberOf = groups, memberOf

	views := map[string]*tracked{}
	for _, in := range c.Instances {
		v := t.views[in.VRRP.Name]
		if v == nil {
			v = &tracked{}
		}
		v.refs = in.Track
		views[in.VRRP.Name] = v
	}
	t.views = views
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

// startTracker starts one tracker. Called with tmu held.
func (a *Agent) startTracker(tr config.Tracker, cmd *script.Command) *trackerRun {
	t := &a.tracking
	ctx, cancel := context.WithCancel(a.ctx)
	run := &trackerRun{cfg: tr, cancel: cancel, result: track.Result{OK: true, Since: time.Now(), Detail: "not checked yet"}}
	var checker track.Checker
	switch tr.Kind {
	case "script":
		run.argv = cmd.Argv
		checker = &track.Script{Cmd: cmd, Interval: tr.Script.Interval, Timeout: tr.Script.Timeout,
			Rise: tr.Script.Rise, Fall: tr.Script.Fall}
	case "interface":
		up, err := linkUp(tr.Iface)
		run.link = track.NewLink(tr.Iface, up && err == nil)
		run.result = track.Result{OK: up && err == nil, Since: time.Now(), Detail: "link down"}
		if up {
			run.result.Detail = "link up"
		}
		checker = run.link
	case "file":
		checker = &track.File{Path: tr.File}
		run.result = track.ReadFile(tr.File)
	case "process":
		p := tr.Process
		checker = &track.Process{Name: p.Name, Args: p.Args, Quorum: p.Quorum, QuorumMax: p.QuorumMax, Interval: p.Interval}
	}
	a.log.Info("tracker started", "tracker", tr.Name, "kind", tr.Kind, "weight", tr.Weight)
	t.twg.Add(1)
	go func() {
		defer t.twg.Done()
		checker.Run(ctx, func(r track.Result) { t.tq.push(trackMsg{run: run, result: r}) })
	}()
	return run
}

// linkTracking points the loop at the instances' runners once they run, and
// has every verdict recomputed (a report may have come in between). Called
// by apply with a.mu held.
func (a *Agent) linkTracking() {
	t := &a.tracking
	t.tmu.Lock()
	var members []*vrrp.Runner
	for name, v := range t.views {
		in := a.instances[name]
		if in == nil {
			v.runner = nil
			continue
		}
		if v.runner != in.runner {
			v.runner = in.runner
			v.offset, v.fault = in.initOffset, in.initFault
		}
		if gr := t.memberOf[name]; gr != nil {
			members = append(members, in.runner)
		}
	}
	t.tmu.Unlock()
	// The groups learn their members' states (a group created around
	// running instances hears no transition from them): each runner
	// reports them in order with its other notices.
	for _, r := range members {
		r.Resync()
	}
	t.tq.push(trackMsg{recompute: true})
}

// closeNotifiers closes the notify queues of instances that no longer run,
// once they ran what they hold. Called with a.mu held.
func (a *Agent) closeNotifiers() {
	for name, nt := range a.notifiers {
		if a.instances[name] == nil {
			a.closeQueue(nt.queue)
			delete(a.notifiers, name)
		}
	}
}

// setNotifySpecs gives each running instance its notify commands.
func (a *Agent) setNotifySpecs(cmds commands) {
	for name, in := range a.instances {
		in.notifier.setSpec(cmds.notify[name])
	}
}

// initialVerdict is what a starting instance begins with: the trackers'
// verdict and its sync group's fault. Called with a.mu held.
func (a *Agent) initialVerdict(name string) (offset int, fault, groupFault string) {
	t := &a.tracking
	t.tmu.Lock()
	defer t.tmu.Unlock()
	offset, fault, _ = t.verdict(name)
	if gr := t.memberOf[name]; gr != nil {
		groupFault = gr.g.Reason(name)
	}
	return offset, fault, groupFault
}

// ref is one tracker reference of an instance, with where it comes from.
type ref struct {
	config.TrackRef
	viaGroup bool
	noFault  bool // another member's tracker: its weight counts, its fault comes through the group
}

// refsOf returns an instance's references: its own, its group's, then the
// other members' (their weights only), each tracker once. Called with tmu
// held.
func (t *tracking) refsOf(name string) []ref {
	var out []ref
	seen := map[string]bool{}
	add := func(rs []config.TrackRef, via, noFault bool) {
		for _, r := range rs {
			if !seen[r.Tracker] {
				seen[r.Tracker] = true
				out = append(out, ref{r, via, noFault})
			}
		}
	}
	if v := t.views[name]; v != nil {
		add(v.refs, false, false)
	}
	if gr := t.memberOf[name]; gr != nil {
		add(gr.cfg.Track, true, false)
		for _, m := range gr.cfg.Instances {
			if v := t.views[m]; m != name && v != nil {
				add(v.refs, true, true)
			}
		}
	}
	return out
}

// verdict computes an instance's offset, fault and tracker views. Called
// with tmu held.
func (t *tracking) verdict(name string) (offset int, fault string, views []TrackerView) {
	for _, r := range t.refsOf(name) {
		run := t.runs[r.Tracker]
		if run == nil {
			continue
		}
		c := track.Contribute(run.cfg.Kind, r.Weight, run.result)
		if r.noFault {
			c.Fault = false
		}
		offset += c.Delta
		if c.Fault && fault == "" {
			fault = fmt.Sprintf("tracker %s failed", r.Tracker)
			if run.result.Detail != "" {
				fault += ": " + run.result.Detail
			}
		}
		views = append(views, TrackerView{Name: r.Tracker, Kind: run.cfg.Kind, OK: trackerOK(run.cfg.Kind, r.Weight, run.result),
			Weight: r.Weight, Delta: c.Delta, Fault: c.Fault, Detail: run.result.Detail, Since: run.result.Since, ViaGroup: r.viaGroup})
	}
	return offset, fault, views
}

// TrackerStateProto converts a tracker's state to its API form.
func TrackerStateProto(ok bool) haav1.TrackerState {
	if ok {
		return haav1.TrackerState_TRACKER_STATE_OK
	}
	return haav1.TrackerState_TRACKER_STATE_FAILED
}

// trackerOK is the state shown for a tracker: a file tracker is failed when
// its number would fault or lower the priority.
func trackerOK(kind string, weight int, r track.Result) bool {
	if kind != "file" {
		return r.OK
	}
	c := track.Contribute(kind, weight, r)
	return !c.Fault && c.Delta >= 0
}

// trackLoop handles the loop's inputs in order until the agent stops.
func (a *Agent) trackLoop() {
	t := &a.tracking
	for {
		msgs, ok := t.tq.wait(a.ctx)
		if !ok {
			return
		}
		for _, m := range msgs {
			switch {
			case m.run != nil:
				a.trackerReport(m.run, m.result)
			case m.notice != nil:
				a.memberNotice(*m.notice)
			case m.recompute:
				a.retrack(nil)
			case m.flushed != nil:
				close(m.flushed)
			}
		}
	}
}

// trackerReport records a tracker's result and recomputes the instances
// that track it.
func (a *Agent) trackerReport(run *trackerRun, r track.Result) {
	t := &a.tracking
	t.tmu.Lock()
	if t.runs[run.cfg.Name] != run {
		t.tmu.Unlock()
		return // stopped or replaced meanwhile
	}
	prev, known := run.result, run.known
	run.result, run.known = r, true
	var users []string
	for name := range t.views {
		for _, rf := range t.refsOf(name) {
			if rf.Tracker == run.cfg.Name {
				users = append(users, name)
				break
			}
		}
	}
	t.tmu.Unlock()
	slices.Sort(users)
	if changed := prev.OK != r.OK || prev.Value != r.Value; changed || !known && !r.OK {
		state := TrackerStateProto(trackerOK(run.cfg.Kind, run.cfg.Weight, r))
		a.log.Info("tracker changed", "tracker", run.cfg.Name, "ok", r.OK, "value", r.Value, "detail", r.Detail, "instances", users)
		a.events.Append(&haav1.Event{Kind: &haav1.Event_TrackerChanged{TrackerChanged: &haav1.TrackerChanged{
			Tracker: run.cfg.Name, State: state, Detail: r.Detail, Instances: users}}})
	}
	a.retrack(users)
}

// retrack hands the instances (nil: every one) their current verdict when
// it changed.
func (a *Agent) retrack(names []string) {
	t := &a.tracking
	type send struct {
		r      *vrrp.Runner
		offset int
		fault  string
	}
	var sends []send
	t.tmu.Lock()
	if names == nil {
		for name := range t.views {
			names = append(names, name)
		}
	}
	for _, name := range names {
		v := t.views[name]
		if v == nil || v.runner == nil {
			continue
		}
		offset, fault, _ := t.verdict(name)
		if offset != v.offset || fault != v.fault {
			v.offset, v.fault = offset, fault
			sends = append(sends, send{v.runner, offset, fault})
		}
	}
	t.tmu.Unlock()
	for _, s := range sends {
		s.r.SetTrack(s.offset, s.fault)
	}
}

// memberNotice feeds a sync group member's transition or wish to its group
// and carries out the group's commands.
func (a *Agent) memberNotice(n vrrp.Notice) {
	t := &a.tracking
	t.tmu.Lock()
	gr := t.memberOf[n.Instance]
	if gr == nil {
		t.tmu.Unlock()
		return
	}
	before := gr.g.State()
	var cmds []syncgroup.Command
	switch n.Kind {
	case vrrp.NoticeTransition:
		cmds = gr.g.Transition(n.Instance, n.From, n.To, n.Cause)
	case vrrp.NoticeState: // Resync: the member's state, afresh
		cmds = gr.g.Transition(n.Instance, vrrp.Init, n.To, vrrp.CauseStartup)
	default:
		cmds = gr.g.Sync(n.Instance, n.Want, n.OwnFault)
	}
	after := gr.g.State()
	runners := make([]*vrrp.Runner, len(cmds))
	for i, c := range cmds {
		if v := t.views[c.Instance]; v != nil {
			runners[i] = v.runner
		}
	}
	spec, queue, name := gr.spec, gr.queue, gr.cfg.Name
	t.tmu.Unlock()
	for i, c := range cmds {
		r := runners[i]
		if r == nil {
			continue
		}
		switch c.Kind {
		case syncgroup.Fault:
			r.SyncFault(c.Reason)
		case syncgroup.Master:
			r.SyncMaster()
		case syncgroup.Backup:
			r.SyncBackup()
		}
	}
	if after != before {
		a.log.Info("sync group state", "group", name, "from", before.String(), "state", after.String())
		if jobs := spec.Jobs("GROUP", name, notifyState(after), 0); len(jobs) > 0 {
			queue.Push(jobs...)
		}
	}
}

// inGroup reports whether an instance is a sync group member now.
func (a *Agent) inGroup(name string) bool {
	t := &a.tracking
	t.tmu.Lock()
	defer t.tmu.Unlock()
	return t.memberOf[name] != nil
}

// groupNotice passes a runner's notice to the loop when the instance is in
// a sync group. Never blocks.
func (a *Agent) groupNotice(n vrrp.Notice) {
	if (n.Kind == vrrp.NoticeTransition || n.Kind == vrrp.NoticeSync || n.Kind == vrrp.NoticeState) && a.inGroup(n.Instance) {
		a.tracking.tq.push(trackMsg{notice: &n})
	}
}

// notifyDone records a finished notify command.
func (a *Agent) notifyDone(j notify.Job, r script.Result) {
	t := &a.tracking
	rec := NotifyRecord{Time: time.Now(), Type: j.Type, Name: j.Name, State: j.State,
		Command: append(append([]string(nil), j.Cmd.Argv...), j.Args...), Exit: r.Exit, Duration: r.Duration, Output: r.Output}
	if r.Err != nil {
		rec.Err = r.Err.Error()
	}
	t.tmu.Lock()
	t.seq++
	rec.Seq = t.seq
	key := j.Type + "/" + j.Name
	rs := append(t.results[key], rec)
	if len(rs) > notifyKeep {
		rs = rs[len(rs)-notifyKeep:]
	}
	t.results[key] = rs
	t.tmu.Unlock()
	if rec.Err != "" || rec.Exit != 0 {
		a.log.Warn("notify command failed", "type", j.Type, "name", j.Name, "state", j.State, "command", rec.Command,
			"exit", rec.Exit, "err", rec.Err, "output", rec.Output)
	} else {
		a.log.Info("notify command ran", "type", j.Type, "name", j.Name, "state", j.State, "command", rec.Command, "duration", rec.Duration)
	}
	e := &haav1.Event{Kind: &haav1.Event_NotifyRan{NotifyRan: &haav1.NotifyRan{Result: NotifyProto(rec)}}}
	if j.Type == "INSTANCE" {
		e.Instance = j.Name
	}
	a.events.Append(e)
}

// NotifyProto converts a notify outcome to its API form.
func NotifyProto(r NotifyRecord) *haav1.NotifyResult {
	return &haav1.NotifyResult{Time: timestamp(r.Time), Type: r.Type, Name: r.Name, State: r.State,
		Command: r.Command, ExitCode: int32(r.Exit), Duration: durationpb.New(r.Duration), Output: r.Output,
		Error: r.Err, Seq: r.Seq}
}

// closeQueue lets a notify queue finish what it holds, in the background;
// Shutdown waits for it.
func (a *Agent) closeQueue(q *notify.Queue) {
	t := &a.tracking
	t.notifyWG.Add(1)
	go func() {
		defer t.notifyWG.Done()
		// Shutdown ends closeCtx when its own deadline passes: the
		// command running then is killed, the rest reported unrun.
		ctx, cancel := context.WithTimeout(t.closeCtx, 5*time.Minute)
		defer cancel()
		if err := q.Close(ctx); err != nil {
			a.log.Warn("notify commands left unfinished", "err", err)
		}
	}()
}

// stopTracking stops the trackers and closes the sync groups' queues once
// the loop has handled the instances' last transitions (the groups' STOP
// commands). Called by Shutdown after the instances stopped.
func (a *Agent) stopTracking(ctx context.Context) {
	t := &a.tracking
	flushed := make(chan struct{})
	t.tq.push(trackMsg{flushed: flushed})
	select {
	case <-flushed:
	case <-ctx.Done():
	}
	t.tmu.Lock()
	for name, run := range t.runs {
		run.cancel()
		delete(t.runs, name)
	}
	for name, gr := range t.groups {
		a.closeQueue(gr.queue)
		delete(t.groups, name)
	}
	clear(t.memberOf)
	t.tmu.Unlock()
	context.AfterFunc(ctx, t.closeEnd)
}

// trackingStatus returns an instance's trackers, group and latest notify
// outcomes (its own and its group's, oldest first).
func (a *Agent) trackingStatus(name string) (views []TrackerView, group string, notes []NotifyRecord) {
	t := &a.tracking
	t.tmu.Lock()
	defer t.tmu.Unlock()
	_, _, views = t.verdict(name)
	notes = append(notes, t.results["INSTANCE/"+name]...)
	if gr := t.memberOf[name]; gr != nil {
		group = gr.cfg.Name
		notes = append(notes, t.results["GROUP/"+group]...)
		slices.SortFunc(notes, func(x, y NotifyRecord) int { return int(x.Seq) - int(y.Seq) })
	}
	return views, group, notes
}

// linkChanged tells the interface trackers of name its link state.
func (a *Agent) linkChanged(name string, up bool) {
	t := &a.tracking
	t.tmu.Lock()
	defer t.tmu.Unlock()
	for _, run := range t.runs {
		if run.link != nil && run.cfg.Iface == name {
			run.link.Set(up)
		}
	}
}

// fifo is an unbounded queue: push never blocks.
type fifo[T any] struct {
	mu    sync.Mutex
	items []T
	wake  chan struct{}
}

func (q *fifo[T]) init() { q.wake = make(chan struct{}, 1) }

func (q *fifo[T]) push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// wait returns everything queued, waiting for something if empty; false
// once ctx ends.
func (q *fifo[T]) wait(ctx context.Context) ([]T, bool) {
	for {
		q.mu.Lock()
		items := q.items
		q.items = nil
		q.mu.Unlock()
		if len(items) > 0 {
			return items, true
		}
		select {
		case <-q.wake:
		case <-ctx.Done():
			return nil, false
		}
	}
}
