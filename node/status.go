package node

import (
	"fmt"
	"net/netip"
	"os"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/haa-dev/haa/node/balancer"
	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/fleet"
	"github.com/haa-dev/haa/node/instances"
	"github.com/haa-dev/haa/node/tracking"
	"github.com/haa-dev/haa/node/vrrp"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// ErrNotFound: no instance of that name runs.
var ErrNotFound = instances.ErrNotFound

// Everything here reads the subsystems' snapshots: none of it waits for an
// apply or for the kernel.

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
	// The load-balancing backend and why it was chosen (or would be).
	LBBackend, LBReason string
	// MetricsAddress is where Prometheus metrics are served
	// (http://host:port/metrics), or "".
	MetricsAddress string
}

// Node returns the agent's identity and configuration state.
func (a *Agent) Node() NodeInfo {
	r, ep, lb := a.running.Load(), a.endpoints.Load(), a.lb.Status()
	name := ""
	if r.resolved != nil {
		name = r.resolved.Name
	}
	return NodeInfo{Name: name, Version: a.version, Started: a.started, Generation: r.generation, Hash: r.hash,
		Listen: ep.listen, Maintenance: r.maintenance, Pid: os.Getpid(), LBBackend: lb.Backend, LBReason: lb.Reason,
		MetricsAddress: ep.metrics}
}

// SetListenAddresses records where the API listens, for Node.
func (a *Agent) SetListenAddresses(addrs []string) {
	for {
		old := a.endpoints.Load()
		ep := *old
		ep.listen = append([]string(nil), addrs...)
		if a.endpoints.CompareAndSwap(old, &ep) {
			return
		}
	}
}

// SetMetricsAddress records where metrics are served, for Node.
func (a *Agent) SetMetricsAddress(url string) {
	for {
		old := a.endpoints.Load()
		ep := *old
		ep.metrics = url
		if a.endpoints.CompareAndSwap(old, &ep) {
			return
		}
	}
}

// ConfigState returns the node's own configuration (what Apply takes: the
// fleet document's part is not in it) with the generation and hash of
// everything running (nil before the first Apply).
func (a *Agent) ConfigState() (*haav1.AgentConfig, uint64, string) {
	r := a.running.Load()
	return r.own, r.generation, r.hash
}

// InstanceStatus is what the agent knows about one instance.
type InstanceStatus struct {
	Config config.Instance
	Status vrrp.Status
	Stats  *vrrp.Stats
	// Tracking is its trackers, sync group and latest notify commands.
	Tracking tracking.InstanceView
	// Peers are its unicast destinations now (none: multicast).
	Peers []netip.Addr
}

// Instances returns every running instance's status, by name.
func (a *Agent) Instances() []InstanceStatus {
	snap, tr := a.vrrp.Snapshot(), a.track.Snapshot()
	out := make([]InstanceStatus, 0, len(snap.List()))
	for _, in := range snap.List() {
		out = append(out, instanceStatus(in, tr))
	}
	return out
}

// Instance returns one instance's status.
func (a *Agent) Instance(name string) (InstanceStatus, error) {
	in := a.vrrp.Snapshot().Get(name)
	if in == nil {
		return InstanceStatus{}, fmt.Errorf("instance %q: %w", name, ErrNotFound)
	}
	return instanceStatus(in, a.track.Snapshot()), nil
}

func instanceStatus(in *instances.Instance, tr *tracking.Snapshot) InstanceStatus {
	return InstanceStatus{Config: in.Config, Status: in.Status(), Stats: in.Stats(), Tracking: tr.Instance(in.Name()),
		Peers: in.Runner().Peers()}
}

// Events returns the node's event log.
func (a *Agent) Events() *EventLog { return a.events }

// VRRP returns the VRRP instances (failover, interface counters).
func (a *Agent) VRRP() *instances.Set { return a.vrrp }

// Tracking returns the trackers, sync groups and notify commands.
func (a *Agent) Tracking() *tracking.Manager { return a.track }

// Balancer returns the virtual servers.
func (a *Agent) Balancer() *balancer.Balancer { return a.lb }

// Fleet returns the node's part in the fleet.
func (a *Agent) Fleet() *fleet.Node { return a.fleet }

// local is the agent as the fleet sees it.
type local Agent

// LocalState builds the node's state from the snapshots.
func (l *local) LocalState() fleet.LocalState {
	a := (*Agent)(l)
	r := a.running.Load()
	snap := a.vrrp.Snapshot()
	s := fleet.LocalState{Version: a.version, Generation: r.generation, Hash: r.hash,
		Maintenance: r.maintenance.Enabled, Incarnation: r.incarnation, Doc: r.doc, Held: r.held, FleetHash: r.fleetHash}
	if r.resolved != nil {
		s.Name = r.resolved.Name
	}
	fromFleet := map[string]bool{}
	for _, n := range r.fleetNames {
		fromFleet[n] = true
	}
	for _, in := range snap.List() {
		c, st := in.Config, in.Status()
		vips := make([]string, len(c.VIPs))
		for i, v := range c.VIPs {
			vips[i] = v.Prefix.String()
		}
		seg := ""
		if in.Segment.IsValid() {
			seg = in.Segment.String()
		}
		s.Instances = append(s.Instances, fleet.LocalInstance{VIPError: st.VIPError, Summary: &haav1.InstanceSummary{
			Name: c.VRRP.Name, Interface: c.Interface, Vrid: uint32(c.VRRP.VRID), Segment: seg,
			State: instances.StateProto(st.State), Priority: uint32(st.Priority), Vips: vips,
			Definition: in.Definition, FromFleet: fromFleet[c.VRRP.Name], Family: c.Family, VmacInterface: vmacName(c),
			SourceAddress: addrString(c.VRRP.Primary)}})
	}
	if lb := a.lb.Status(); lb != nil {
		s.VirtualServers = make([]*haav1.VirtualServerHealth, 0, len(lb.VirtualServers))
		for _, vs := range lb.VirtualServers {
			h := &haav1.VirtualServerHealth{Name: vs.Name, RealServers: uint32(len(vs.Reals)), SetHash: vs.SetHash}
			s.VirtualServers = append(s.VirtualServers, h)
			for _, rs := range vs.Reals {
				if rs.Healthy {
					continue
				}
				if len(h.Down) == maxDownPerEntry {
					// Another entry of the same name: each fits a gossip
					// packet (the fleet merges them).
					h = &haav1.VirtualServerHealth{Name: vs.Name, RealServers: uint32(len(vs.Reals)), SetHash: vs.SetHash}
					s.VirtualServers = append(s.VirtualServers, h)
				}
				h.Down = append(h.Down, rs.Addr.String())
			}
		}
	}
	return s
}

// maxDownPerEntry bounds the real servers down in one VirtualServerHealth
// of the gossip summary: at most about 50 bytes each, a full entry fits a
// part of the summary (about 1,000 bytes).
const maxDownPerEntry = 16

// lbVerdicts hands the other directors' verdicts to the balancer.
type lbVerdicts Agent

// PeerVerdicts implements fleet.VerdictSink.
func (l *lbVerdicts) PeerVerdicts(vs []fleet.Verdicts) {
	out := make(balancer.PeerVerdicts, len(vs))
	for _, v := range vs {
		ph := balancer.PeerHealth{Node: v.Node, SetHash: v.SetHash}
		for _, d := range v.Down {
			if ap, err := netip.ParseAddrPort(d); err == nil {
				ph.Down = append(ph.Down, ap)
			}
		}
		out[v.VirtualServer] = append(out[v.VirtualServer], ph)
	}
	(*Agent)(l).lb.SetPeerVerdicts(out)
}

// addrString is an address in words, "" when invalid.
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// vmacName is the name of an instance's virtual MAC interface ("": none).
func vmacName(c config.Instance) string {
	if c.VMAC == nil {
		return ""
	}
	return c.VMAC.Name
}

// maintenanceProto is the maintenance mode in events.
func maintenanceProto(m Maintenance) *haav1.Maintenance {
	out := &haav1.Maintenance{Enabled: m.Enabled}
	if !m.Until.IsZero() {
		out.Until = timestamppb.New(m.Until)
	}
	return out
}

// FleetStatus is the fleet as this node sees it (fleet.Node.Status).
func (a *Agent) FleetStatus() fleet.Status { return a.fleet.Status() }
