package balancer

import (
	"context"
	"net/netip"
	"time"

	"github.com/haa-dev/haa/node/check/probe"
	"github.com/haa-dev/haa/node/internal/pace"
	"github.com/haa-dev/haa/node/lvs"
)

// VirtualServer is one virtual server as it runs.
type VirtualServer struct {
	Name string
	Key  lvs.Key // address and protocol, or firewall mark
	// Also are its group's other services (they take the same real
	// servers).
	Also       []lvs.Key
	Scheduler  string
	Forwarding lvs.Forwarding
	// Up: its healthy weight reaches its quorum.
	Up            bool
	Quorum        int
	HealthyWeight int
	Sorry         netip.AddrPort // invalid: none
	SorryActive   bool
	Reals         []RealServer
	// SetHash identifies its set of real servers (SetHash).
	SetHash uint32
}

// RealServer is one real server as it runs.
type RealServer struct {
	Addr             netip.AddrPort
	Healthy          bool
	ConfiguredWeight int
	Drained          bool
	Override         int // runtime weight; -1: none
	// Thresholds are the connection limits haad sets (unset: none).
	Thresholds lvs.Thresholds
	Check      string // its check's kind, or "none"
	// LastResult is the last check's outcome in words ("ok",
	// "connection refused"...).
	LastResult string
	// LastDuration is how long the last check took (0: not run yet).
	LastDuration time.Duration
	Since        time.Time // when Healthy last changed
	// Programmed: the backend holds it, with Weight.
	Programmed bool
	Weight     int
	// KeptUntil: down for its check, kept in the table until then while
	// the other directors see it up (zero: not kept).
	KeptUntil time.Time
	// Conns are its connection counts, when the backend counts them and
	// they were asked for (VirtualServers).
	Conns *lvs.Conns

	checkID string
}

// Snapshot is the balancer after a change. It is immutable.
type Snapshot struct {
	// Backend is the backend's name, and Reason why it is the one; before
	// a configuration with virtual servers opens it, the one it would open
	// and why.
	Backend, Reason string
	// Open: the backend is opened.
	Open bool
	// VirtualServers in the configured order.
	VirtualServers []*VirtualServer

	sched   *probe.Scheduler // for the checks' latest results
	counter lvs.Counter      // the backend, when it counts connections
}

// Status returns the balancer's state now: the snapshot published after
// the last change, with each check's latest result. It never waits for the
// balancer's lock nor for the kernel.
func (b *Balancer) Status() *Snapshot { return b.snap.Load() }

// Latest returns the latest result of a real server's check (not only the
// last change of its health) and how long it took; ok is false without a
// check or before its first run.
func (s *Snapshot) Latest(r RealServer) (detail string, took time.Duration, ok bool) {
	return latest(s.sched, r.checkID)
}

func latest(sched *probe.Scheduler, id string) (detail string, took time.Duration, ok bool) {
	if sched == nil || id == "" {
		return "", 0, false
	}
	st, ok := sched.Status(id)
	if !ok {
		return "", 0, false
	}
	detail = st.Last.Detail
	if detail == "" && st.Last.OK {
		detail = "ok"
	}
	return detail, st.Last.Duration, true
}

// States returns the virtual servers of the snapshot, in the configured
// order, each real server with its check's latest result; it never asks
// the kernel (no connection counts).
func (s *Snapshot) States() []VirtualServer {
	out := make([]VirtualServer, len(s.VirtualServers))
	for i, vs := range s.VirtualServers {
		out[i] = *vs
		out[i].Reals = append([]RealServer(nil), vs.Reals...)
		for k := range out[i].Reals {
			r := &out[i].Reals[k]
			if d, took, ok := s.Latest(*r); ok {
				r.LastResult, r.LastDuration = d, took
			}
		}
	}
	return out
}

// VirtualServers returns every virtual server as it runs, in the
// configured order, each real server with its check's latest result and,
// when the backend counts them, its connections (read from the kernel
// without any lock: a large IPVS table takes a while), and the backend's
// name.
func (b *Balancer) VirtualServers(ctx context.Context) ([]VirtualServer, string) {
	snap := b.Status()
	out := snap.States()
	if snap.counter == nil || len(out) == 0 {
		return out, snap.Backend
	}
	conns, err := snap.counter.Conns(ctx)
	if err != nil {
		b.log.Warn("reading connection counts", "backend", snap.Backend, "err", err)
		return out, snap.Backend
	}
	for i := range out {
		for k := range out[i].Reals {
			r := &out[i].Reals[k]
			// A group's services each count their own: the real
			// server's connections are their sum.
			var sum lvs.Conns
			found := false
			for _, key := range append([]lvs.Key{out[i].Key}, out[i].Also...) {
				if n, ok := conns[key][r.Addr]; ok {
					sum.Active += n.Active
					sum.Inactive += n.Inactive
					found = true
				}
			}
			if found {
				r.Conns = &sum
			}
		}
	}
	return out, snap.Backend
}

// publishLocked rebuilds the views of the virtual servers that changed and
// publishes the snapshot. requested is loadBalancer.backend, for the
// backend a configuration would open. Called with mu held.
func (b *Balancer) publishLocked(requested string) {
	s := &Snapshot{Backend: b.lbName, Reason: b.lbReason, Open: b.backend != nil, sched: b.sched}
	s.counter, _ = b.backend.(lvs.Counter)
	if !s.Open {
		s.Backend, s.Reason = b.prefer(requested)
		s.Reason += " (opened with the first virtual server)"
	}
	s.VirtualServers = make([]*VirtualServer, 0, len(b.order))
	var pc pace.Pacer
	for _, name := range b.order {
		pc.Yield()
		run := b.vss[name]
		if run == nil {
			continue
		}
		if run.view == nil || run.dirty {
			run.view, run.dirty = b.viewOf(run), false
		}
		s.VirtualServers = append(s.VirtualServers, run.view)
	}
	b.snap.Store(s)
}

// viewOf is a virtual server's view. Called with mu held.
func (b *Balancer) viewOf(run *vsRun) *VirtualServer {
	vs := run.cfg
	v := &VirtualServer{Name: vs.Name, Key: vs.Service.Key, Also: vs.Also, Scheduler: vs.Service.Scheduler,
		Forwarding: vs.Service.Forwarding, Up: run.up, Quorum: vs.Quorum, HealthyWeight: run.hw,
		Sorry: vs.Sorry, SorryActive: run.sorry, Reals: make([]RealServer, 0, len(run.reals)), SetHash: run.setHash}
	for _, r := range run.reals {
		v.Reals = append(v.Reals, b.realView(r))
	}
	return v
}

// realView is a real server's view. Called with mu held.
func (b *Balancer) realView(r *realRun) RealServer {
	v := RealServer{Addr: r.cfg.Addr, Healthy: r.status.Healthy, ConfiguredWeight: r.cfg.Weight, Drained: r.drained,
		Override: r.override, Thresholds: r.cfg.Thresholds, Check: "none", LastResult: r.status.Last.Detail, LastDuration: r.status.Last.Duration,
		Since: r.status.Since, KeptUntil: r.keptUntil(), checkID: r.id}
	if r.cfg.Check != nil {
		v.Check = string(r.cfg.Check.Kind)
	}
	if vs := b.programmed[r.run.cfg.Service.Key]; vs != nil {
		if d, ok := vs.Dests[r.cfg.Addr]; ok {
			v.Programmed, v.Weight = true, d.Weight
		}
	}
	return v
}
