package node

import (
	"slices"
	"strings"
	"time"
)

// TrackerState is one running tracker's own state, whatever the instances
// that track it make of it (metrics).
type TrackerState struct {
	Name   string
	Kind   string
	OK     bool // as the API shows it: a file tracker is failed when its number would fault or lower the priority
	Detail string
	Since  time.Time
}

// Trackers returns every running tracker's state, by name.
func (a *Agent) Trackers() []TrackerState {
	t := &a.tracking
	t.tmu.Lock()
	out := make([]TrackerState, 0, len(t.runs))
	for _, run := range t.runs {
		r := run.result
		out = append(out, TrackerState{Name: run.cfg.Name, Kind: run.cfg.Kind,
			OK: trackerOK(run.cfg.Kind, run.cfg.Weight, r), Detail: r.Detail, Since: r.Since})
	}
	t.tmu.Unlock()
	slices.SortFunc(out, func(x, y TrackerState) int { return strings.Compare(x.Name, y.Name) })
	return out
}

// CheckDurations returns how long the latest health check of each real
// server took, by virtual server name and real server "ADDR:PORT"; real
// servers without a check, or whose check has not run yet, are left out.
func (a *Agent) CheckDurations() map[string]map[string]time.Duration {
	b := &a.balancer
	b.lmu.Lock()
	defer b.lmu.Unlock()
	out := map[string]map[string]time.Duration{}
	if b.sched == nil {
		return out
	}
	for name, run := range b.vss {
		for _, r := range run.reals {
			if r.id == "" {
				continue
			}
			st, ok := b.sched.Status(r.id)
			if !ok || st.Last.Duration <= 0 {
				continue
			}
			if out[name] == nil {
				out[name] = map[string]time.Duration{}
			}
			out[name][r.cfg.Addr.String()] = st.Last.Duration
		}
	}
	return out
}
