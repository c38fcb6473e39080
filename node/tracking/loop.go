package tracking

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/notify"
	"github.com/haa-dev/haa/node/syncgroup"
	"github.com/haa-dev/haa/node/track"
	"github.com/haa-dev/haa/node/vrrp"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// TrackerView is a tracker as one instance sees it.
type TrackerView struct {
	Name     string
	Kind     track.Kind
	OK       bool
	Weight   int
	Delta    int  // what it adds to the priority now
	Fault    bool // it puts the instance in FAULT now
	Detail   string
	Since    time.Time
	ViaGroup bool
}

// TrackerState is one running tracker's own state, whatever the instances
// that track it make of it (metrics).
type TrackerState struct {
	Name   string
	Kind   track.Kind
	OK     bool // as the API shows it: a file tracker is failed when its number would fault or lower the priority
	Detail string
	Since  time.Time
}

// InstanceView is what tracking knows of one instance.
type InstanceView struct {
	// Trackers are the instance's trackers (its own, then its sync
	// group's, then the other members') and what each does to it now.
	Trackers  []TrackerView
	SyncGroup string
	// Notifies are the latest notify commands of the instance and its
	// group, oldest first.
	Notifies []notify.Record
}

// Snapshot is tracking's state after a change. It is immutable.
type Snapshot struct {
	// Trackers are the running trackers, by name.
	Trackers  []TrackerState
	instances map[string]InstanceView
}

// Instance returns what tracking knows of one instance.
func (s *Snapshot) Instance(name string) InstanceView { return s.instances[name] }

// Snapshot returns tracking's state now. It never waits.
func (m *Manager) Snapshot() *Snapshot { return m.snap.Load() }

// publishLocked makes the state now the snapshot. Called with mu held.
func (m *Manager) publishLocked() {
	s := &Snapshot{instances: make(map[string]InstanceView, len(m.views))}
	for _, run := range m.runs {
		r := run.result
		s.Trackers = append(s.Trackers, TrackerState{Name: run.cfg.Name, Kind: run.cfg.Kind,
			OK: trackerOK(run.cfg.Kind, run.cfg.Weight, r), Detail: r.Detail, Since: r.Since})
	}
	slices.SortFunc(s.Trackers, func(x, y TrackerState) int { return strings.Compare(x.Name, y.Name) })
	for name := range m.views {
		var v InstanceView
		_, _, v.Trackers = m.verdictLocked(name)
		v.Notifies = slices.Clone(m.results["INSTANCE/"+name])
		if gr := m.memberOf[name]; gr != nil {
			v.SyncGroup = gr.cfg.Name
			v.Notifies = append(v.Notifies, m.results["GROUP/"+v.SyncGroup]...)
			slices.SortFunc(v.Notifies, func(x, y notify.Record) int { return int(x.Seq) - int(y.Seq) })
		}
		s.instances[name] = v
	}
	m.snap.Store(s)
}

// ref is one tracker reference of an instance, with where it comes from.
type ref struct {
	config.TrackRef
	viaGroup bool
	noFault  bool // another member's tracker: its weight counts, its fault comes through the group
}

// refsLocked returns an instance's references: its own, its group's, then
// the other members' (their weights only), each tracker once.
func (m *Manager) refsLocked(name string) []ref {
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
	if v := m.views[name]; v != nil {
		add(v.refs, false, false)
	}
	if gr := m.memberOf[name]; gr != nil {
		add(gr.cfg.Track, true, false)
		for _, mb := range gr.cfg.Instances {
			if v := m.views[mb]; mb != name && v != nil {
				add(v.refs, true, true)
			}
		}
	}
	return out
}

// verdictLocked computes an instance's offset, fault and tracker views.
func (m *Manager) verdictLocked(name string) (offset int, fault string, views []TrackerView) {
	for _, r := range m.refsLocked(name) {
		run := m.runs[r.Tracker]
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

// trackerOK is the state shown for a tracker: a file tracker is failed when
// its number would fault or lower the priority.
func trackerOK(kind track.Kind, weight int, r track.Result) bool {
	if kind != track.KindFile {
		return r.OK
	}
	c := track.Contribute(kind, weight, r)
	return !c.Fault && c.Delta >= 0
}

// loop handles the inputs in order until Close.
func (m *Manager) loop() {
	for {
		msgs, ok := m.q.Wait(m.ctx)
		if !ok {
			return
		}
		for _, x := range msgs {
			switch {
			case x.run != nil:
				m.trackerReport(x.run, x.result)
			case x.notice != nil:
				m.memberNotice(*x.notice)
			case x.recompute:
				m.retrack(nil)
			case x.flushed != nil:
				close(x.flushed)
			}
		}
	}
}

// trackerReport records a tracker's result and recomputes the instances
// that track it.
func (m *Manager) trackerReport(run *trackerRun, r track.Result) {
	m.mu.Lock()
	if m.runs[run.cfg.Name] != run {
		m.mu.Unlock()
		return // stopped or replaced meanwhile
	}
	prev, known := run.result, run.known
	run.result, run.known = r, true
	cfg := run.cfg // a weight-only change (Commit) replaces it under mu
	var users []string
	for name := range m.views {
		for _, rf := range m.refsLocked(name) {
			if rf.Tracker == cfg.Name {
				users = append(users, name)
				break
			}
		}
	}
	m.publishLocked()
	m.mu.Unlock()
	slices.Sort(users)
	if changed := prev.OK != r.OK || prev.Value != r.Value; changed || !known && !r.OK {
		state := haav1.TrackerState_TRACKER_STATE_FAILED
		if trackerOK(cfg.Kind, cfg.Weight, r) {
			state = haav1.TrackerState_TRACKER_STATE_OK
		}
		m.log.Info("tracker changed", "tracker", cfg.Name, "ok", r.OK, "value", r.Value, "detail", r.Detail, "instances", users)
		if m.events != nil {
			m.events.Append(&haav1.Event{Kind: &haav1.Event_TrackerChanged{TrackerChanged: &haav1.TrackerChanged{
				Tracker: cfg.Name, State: state, Detail: r.Detail, Instances: users}}})
		}
	}
	m.retrack(users)
}

// retrack hands the instances (nil: every one) their current verdict when
// it changed.
func (m *Manager) retrack(names []string) {
	type send struct {
		r Runner
		verdict
	}
	var sends []send
	m.mu.Lock()
	if names == nil {
		for name := range m.views {
			names = append(names, name)
		}
	}
	for _, name := range names {
		v := m.views[name]
		if v == nil || v.runner == nil {
			continue
		}
		offset, fault, _ := m.verdictLocked(name)
		if cur := (verdict{offset, fault}); cur != v.verdict {
			v.verdict = cur
			sends = append(sends, send{v.runner, cur})
		}
	}
	m.mu.Unlock()
	for _, s := range sends {
		s.r.SetTrack(s.offset, s.fault)
	}
}

// memberNotice feeds a sync group member's transition or wish to its group
// and carries out the group's commands.
func (m *Manager) memberNotice(n vrrp.Notice) {
	m.mu.Lock()
	gr := m.memberOf[n.Instance]
	if gr == nil {
		m.mu.Unlock()
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
	runners := make([]Runner, len(cmds))
	for i, c := range cmds {
		if v := m.views[c.Instance]; v != nil {
			runners[i] = v.runner
		}
	}
	spec, queue, name := gr.spec, gr.queue, gr.cfg.Name
	m.mu.Unlock()
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
		m.log.Info("sync group state", "group", name, "from", before.String(), "state", after.String())
		if jobs := spec.Jobs("GROUP", name, notifyState(after), 0); len(jobs) > 0 {
			queue.Push(jobs...)
		}
	}
}
