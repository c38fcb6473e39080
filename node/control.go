package node

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/lvs"
	"github.com/haa-dev/haa/node/vrrp"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Errors of the control operations (test with errors.Is).
var (
	ErrNotFound   = errors.New("no such instance")
	ErrNotMaster  = errors.New("not master")
	ErrNoTakeover = errors.New("no other node took over")
)

// Events returns the node's event log.
func (a *Agent) Events() *EventLog { return a.events }

// NodeInfo describes the agent.
type NodeInfo struct {
	Name        string
	Version     string
	Started     time.Time
	Generation  uint64
	Hash        string
	Listen      []string
	Maintenance Maintenance
	Pid         int
	// The load-balancing backend and why it was chosen.
	LBBackend, LBReason string
	// MetricsAddress is where Prometheus metrics are served
	// (http://host:port/metrics), or "".
	MetricsAddress string
	// LogLevel is the log level now (see SetLogLevel); "" if it cannot
	// change (no WithLogLevel).
	LogLevel string
}

// Node returns the agent's identity and configuration state.
func (a *Agent) Node() NodeInfo {
	a.mu.Lock()
	defer a.mu.Unlock()
	name := ""
	if a.cfg != nil {
		name = a.cfg.Name
	}
	lb, why := a.Backend()
	if lb == "" {
		requested := ""
		if a.cfg != nil {
			requested = a.cfg.LBBackend
		}
		lb, why = lvs.Preferred(requested)
		why += " (opened with the first virtual server)"
	}
	return NodeInfo{Name: name, Version: a.version, Started: a.started, Generation: a.gen, Hash: a.hash,
		Listen: append([]string(nil), a.listen...), Maintenance: a.maint, Pid: os.Getpid(), LBBackend: lb, LBReason: why, MetricsAddress: a.metricsURL,
		LogLevel: a.logLevel()}
}

// SetListenAddresses records where the API listens, for Node.
func (a *Agent) SetListenAddresses(addrs []string) {
	a.mu.Lock()
	a.listen = append([]string(nil), addrs...)
	a.mu.Unlock()
}

// SetMetricsAddress records where metrics are served, for Node.
func (a *Agent) SetMetricsAddress(url string) {
	a.mu.Lock()
	a.metricsURL = url
	a.mu.Unlock()
}

// ConfigState returns the node's own configuration (what Apply takes: the
// fleet document's instances are not in it) with the generation and hash of
// everything running (nil before the first Apply).
func (a *Agent) ConfigState() (*haav1.AgentConfig, uint64, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.local, a.gen, a.hash
}

// Instance returns one instance's status.
func (a *Agent) Instance(name string) (InstanceStatus, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	in := a.instances[name]
	if in == nil {
		return InstanceStatus{}, fmt.Errorf("instance %q: %w", name, ErrNotFound)
	}
	return a.status(in), nil
}

// Failover makes this node's master of the instance hand over (priority-0
// advert) and waits until another node is master. The instance then keeps
// accepting the new master, whatever its priority, until it becomes master
// again by the protocol (the new master fails) or by another failover.
func (a *Agent) Failover(ctx context.Context, name string, timeout time.Duration) (netip.Addr, error) {
	a.mu.Lock()
	in := a.instances[name]
	a.mu.Unlock()
	if in == nil {
		return netip.Addr{}, fmt.Errorf("instance %q: %w", name, ErrNotFound)
	}
	if st := in.runner.Status(); st.State != vrrp.Master {
		return netip.Addr{}, fmt.Errorf("instance %s is %v here, only its master can fail over: %w", name, st.State, ErrNotMaster)
	}
	in.runner.Failover()
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	self := in.cfg.VRRP.Primary
	for {
		st := in.runner.Status()
		if st.State == vrrp.Backup && st.MasterAddr.IsValid() && st.MasterAddr != self {
			return st.MasterAddr, nil
		}
		select {
		case <-ctx.Done():
			return netip.Addr{}, fmt.Errorf("instance %s handed over, but within %v %w (is a backup running?); it takes mastership back by itself: %w",
				name, timeout, ErrNoTakeover, ctx.Err())
		case <-tick.C:
		}
	}
}

// SetMaintenance turns maintenance on (every master hands over, no instance
// becomes master) or off. A ttl > 0 turns it off by itself after ttl. It is
// kept in the state file and survives a restart.
func (a *Agent) SetMaintenance(on bool, ttl time.Duration) (Maintenance, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := Maintenance{Enabled: on}
	if on && ttl > 0 {
		m.Until = time.Now().Add(ttl)
	}
	a.maint = m
	a.maintSeq++
	for _, in := range a.instances {
		in.runner.Hold(on)
	}
	a.armMaintenanceTTL()
	a.published()
	err := a.saveState()
	a.log.Info("maintenance", "enabled", on, "until", m.Until)
	a.events.Append(&haav1.Event{Kind: &haav1.Event_MaintenanceChanged{MaintenanceChanged: &haav1.MaintenanceChanged{
		Maintenance: MaintenanceProto(m)}}})
	return m, err
}

// armMaintenanceTTL ends maintenance at its deadline. Called with a.mu held.
func (a *Agent) armMaintenanceTTL() {
	if !a.maint.Enabled || a.maint.Until.IsZero() {
		return
	}
	seq := a.maintSeq
	time.AfterFunc(time.Until(a.maint.Until), func() {
		a.mu.Lock()
		stale := seq != a.maintSeq || a.ctx == nil || a.ctx.Err() != nil
		a.mu.Unlock()
		if !stale {
			if _, err := a.SetMaintenance(false, 0); err != nil {
				a.log.Error("ending maintenance", "err", err)
			}
		}
	})
}

// MaintenanceProto converts the maintenance mode to its API form.
func MaintenanceProto(m Maintenance) *haav1.Maintenance {
	out := &haav1.Maintenance{Enabled: m.Enabled}
	if !m.Until.IsZero() {
		out.Until = timestamp(m.Until)
	}
	return out
}

// noticeFunc turns an instance's notices into events, notify commands and
// news for its sync group.
func (a *Agent) noticeFunc(c config.Instance, nt *notifier) func(vrrp.Notice) {
	vips := make([]string, len(c.VIPs))
	for i, v := range c.VIPs {
		vips[i] = v.Prefix.String()
	}
	addrs := make([]string, len(c.VRRP.Addrs))
	for i, v := range c.VRRP.Addrs {
		addrs[i] = v.String()
	}
	return func(n vrrp.Notice) {
		if a.notify != nil {
			a.notify(n)
		}
		switch n.Kind {
		case vrrp.NoticeTransition, vrrp.NoticePriority, vrrp.NoticeVIPs, vrrp.NoticeError:
			a.published() // the fleet hears of it at once
		}
		if n.Kind == vrrp.NoticeTransition {
			nt.transition(n.Instance, n.To, n.Priority)
		}
		a.groupNotice(n)
		e := &haav1.Event{Time: timestamp(n.Time), Instance: n.Instance}
		switch n.Kind {
		case vrrp.NoticeTransition:
			e.Kind = &haav1.Event_StateChanged{StateChanged: &haav1.StateChanged{
				From: StateProto(n.From), To: StateProto(n.To), Cause: string(n.Cause), Priority: uint32(n.Priority)}}
		case vrrp.NoticePriority:
			e.Kind = &haav1.Event_PriorityChanged{PriorityChanged: &haav1.PriorityChanged{
				Priority: uint32(n.Priority), Configured: uint32(c.VRRP.Priority)}}
		case vrrp.NoticeVIPs:
			e.Kind = &haav1.Event_VipsChanged{VipsChanged: &haav1.VipsChanged{Added: n.Added, Vips: vips}}
		case vrrp.NoticeGARP:
			e.Kind = &haav1.Event_GarpSent{GarpSent: &haav1.GarpSent{Addresses: addrs}}
		case vrrp.NoticeMaster:
			e.Kind = &haav1.Event_MasterChanged{MasterChanged: &haav1.MasterChanged{
				Address: n.Addr.String(), Priority: uint32(n.Priority)}}
		case vrrp.NoticeError:
			msg := n.Detail
			if n.Err != nil {
				msg += ": " + n.Err.Error()
			}
			e.Kind = &haav1.Event_Error{Error: &haav1.InstanceError{Message: msg}}
		case vrrp.NoticeDrop:
			count, ok := a.drops.report(n.Instance, n.Drop, n.Time)
			if !ok {
				return
			}
			e.Kind = &haav1.Event_PacketsDropped{PacketsDropped: &haav1.PacketsDropped{
				Reason: n.Drop.String(), Count: count, Detail: n.Detail}}
		default:
			return
		}
		a.events.Append(e)
	}
}

// dropEvery limits packet-drop events per instance and reason.
const dropEvery = 10 * time.Second

type dropKey struct {
	instance string
	reason   vrrp.DropReason
}

type dropReport struct {
	last    time.Time
	pending uint64
}

// dropReports rate-limits drop events: a flood of bad packets becomes one
// event per instance and reason every dropEvery, with the count.
type dropReports struct {
	mu sync.Mutex
	m  map[dropKey]*dropReport
}

func (d *dropReports) report(instance string, r vrrp.DropReason, now time.Time) (uint64, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := dropKey{instance, r}
	st := d.m[k]
	if st == nil {
		st = &dropReport{}
		d.m[k] = st
	}
	st.pending++
	if !st.last.IsZero() && now.Sub(st.last) < dropEvery {
		return 0, false
	}
	n := st.pending
	st.pending, st.last = 0, now
	return n, true
}

// StateProto converts a state to its API form.
func StateProto(s vrrp.State) haav1.State {
	switch s {
	case vrrp.Init:
		return haav1.State_STATE_INIT
	case vrrp.Backup:
		return haav1.State_STATE_BACKUP
	case vrrp.Master:
		return haav1.State_STATE_MASTER
	case vrrp.Fault:
		return haav1.State_STATE_FAULT
	}
	return haav1.State_STATE_UNSPECIFIED
}
