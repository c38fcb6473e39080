package server

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/haa-dev/haa/node"
	"github.com/haa-dev/haa/node/balancer"
	"github.com/haa-dev/haa/node/fleet"
	"github.com/haa-dev/haa/node/notify"
	"github.com/haa-dev/haa/node/vrrp"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// The agent's domain types to their API form: the one place they are
// converted for responses.

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func nodeProto(n node.NodeInfo, now time.Time) *haav1.Node {
	out := &haav1.Node{
		Name:             n.Name,
		Version:          n.Version,
		ConfigGeneration: n.Generation,
		ConfigHash:       n.Hash,
		ListenAddresses:  n.Listen,
		Maintenance:      maintenanceProto(n.Maintenance),
		Pid:              int32(n.Pid),
		LbBackend:        n.LBBackend,
		LbBackendReason:  n.LBReason,
		MetricsAddress:   n.MetricsAddress,
	}
	if !n.Started.IsZero() {
		out.StartTime = timestamppb.New(n.Started)
		out.Uptime = durationpb.New(now.Sub(n.Started))
	}
	return out
}

func maintenanceProto(m node.Maintenance) *haav1.Maintenance {
	return &haav1.Maintenance{Enabled: m.Enabled, Until: timestamp(m.Until)}
}

// stateProto: the API's states are the vrrp states in their order, after
// UNSPECIFIED.
func stateProto(s vrrp.State) haav1.State {
	if s < vrrp.Init || s > vrrp.Fault {
		return haav1.State_STATE_UNSPECIFIED
	}
	return haav1.State_STATE_INIT + haav1.State(s-vrrp.Init)
}

func instanceProto(in node.InstanceStatus) *haav1.InstanceStatus {
	c, st := in.Config, in.Status
	out := &haav1.InstanceStatus{
		Name:                  c.VRRP.Name,
		Interface:             c.Interface,
		Vrid:                  uint32(c.VRRP.VRID),
		Version:               uint32(c.VRRP.Version),
		State:                 stateProto(st.State),
		ConfiguredPriority:    uint32(c.VRRP.Priority),
		EffectivePriority:     uint32(st.Priority),
		VipError:              st.VIPError,
		Hold:                  st.Held,
		Counters:              countersProto(in.Stats),
		Family:                c.Family,
		AcceptMode:            c.Accept || c.VRRP.Priority == vrrp.PriorityOwner,
		UnicastPeersFromFleet: c.PeersFromFleet,
	}
	for _, p := range in.Peers {
		out.UnicastPeers = append(out.UnicastPeers, p.String())
	}
	if m := c.VMAC; m != nil {
		out.VmacInterface, out.VmacAddress = m.Name, m.MAC.String()
	}
	if st.MasterAddr.IsValid() {
		out.MasterAddress = st.MasterAddr.String()
	}
	if c.VRRP.Primary.IsValid() {
		out.SourceAddress = c.VRRP.Primary.String()
	}
	interval := st.MasterInterval
	if interval == 0 {
		interval = c.VRRP.Interval
	}
	out.AdvertInterval = durationpb.New(interval)
	for _, v := range c.VIPs {
		out.Vips = append(out.Vips, v.Prefix.String())
	}
	if st.VIPsHeld {
		out.VipsHeld = out.Vips
	}
	if !st.LastChange.IsZero() {
		out.LastTransition = &haav1.Transition{
			Time:  timestamppb.New(st.LastChange),
			From:  stateProto(st.LastFrom),
			To:    stateProto(st.State),
			Cause: string(st.LastCause),
		}
	}
	if st.State == vrrp.Fault {
		out.FaultReason = st.FaultReason
	}
	out.SyncGroup = in.Tracking.SyncGroup
	for _, t := range in.Tracking.Trackers {
		state := haav1.TrackerState_TRACKER_STATE_FAILED
		if t.OK {
			state = haav1.TrackerState_TRACKER_STATE_OK
		}
		out.Trackers = append(out.Trackers, &haav1.TrackerStatus{Name: t.Name, Kind: string(t.Kind), State: state,
			Weight: int32(t.Weight), Contribution: int32(t.Delta), Fault: t.Fault, Detail: t.Detail, ViaSyncGroup: t.ViaGroup,
			Since: timestamp(t.Since)})
	}
	for _, r := range in.Tracking.Notifies {
		out.NotifyResults = append(out.NotifyResults, notifyProto(r))
	}
	return out
}

func notifyProto(r notify.Record) *haav1.NotifyResult {
	return &haav1.NotifyResult{Time: timestamp(r.Time), Type: r.Type, Name: r.Name, State: r.State,
		Command: r.Command, ExitCode: int32(r.Exit), Duration: durationpb.New(r.Duration), Output: r.Output,
		Error: r.Err, Seq: r.Seq}
}

func countersProto(s *vrrp.Stats) *haav1.Counters {
	if s == nil {
		return nil
	}
	out := &haav1.Counters{
		AdvertsSent:     s.AdvertsSent.Load(),
		AdvertsReceived: s.AdvertsReceived.Load(),
		GarpsSent:       s.GARPsSent.Load(),
		Transitions:     s.Transitions.Load(),
		TimerSlipMax:    durationpb.New(time.Duration(s.TimerSlipMax.Load())),
	}
	for _, r := range vrrp.DropReasons() {
		if n := s.Drops(r); n > 0 {
			if out.Drops == nil {
				out.Drops = map[string]uint64{}
			}
			out.Drops[r.String()] = n
		}
	}
	return out
}

func virtualServerProto(vs balancer.VirtualServer) *haav1.VirtualServerStatus {
	out := &haav1.VirtualServerStatus{Name: vs.Name, Scheduler: vs.Scheduler, Forwarding: vs.Forwarding.String(),
		Up: vs.Up, Quorum: uint32(vs.Quorum), HealthyWeight: uint32(vs.HealthyWeight), SorryActive: vs.SorryActive}
	if k := vs.Key; k.FWMark != 0 {
		out.Fwmark = k.FWMark
	} else {
		out.Address, out.Protocol = k.Addr.String(), k.Proto.String()
	}
	if vs.Sorry.IsValid() {
		out.SorryServer = vs.Sorry.String()
	}
	for _, k := range vs.Also {
		if k.FWMark != 0 {
			out.Group = append(out.Group, fmt.Sprintf("fwmark:%d", k.FWMark))
		} else {
			out.Group = append(out.Group, k.Addr.String())
		}
	}
	for _, r := range vs.Reals {
		out.RealServers = append(out.RealServers, realServerProto(r))
	}
	return out
}

func realServerProto(r balancer.RealServer) *haav1.RealServerStatus {
	out := &haav1.RealServerStatus{Address: r.Addr.String(), Healthy: r.Healthy, ConfiguredWeight: uint32(r.ConfiguredWeight),
		Drained: r.Drained, LastResult: r.LastResult, Since: timestamp(r.Since), Check: r.Check,
		Programmed: r.Programmed, Weight: uint32(r.Weight), KeptUntil: timestamp(r.KeptUntil)}
	if r.Override >= 0 {
		out.WeightOverride = proto.Uint32(uint32(r.Override))
	}
	if r.Conns != nil {
		out.ActiveConnections, out.InactiveConnections = proto.Uint64(r.Conns.Active), proto.Uint64(r.Conns.Inactive)
	}
	if t := r.Thresholds; t.Set {
		out.UpperThreshold, out.LowerThreshold = proto.Uint32(t.Upper), proto.Uint32(t.Lower)
	}
	return out
}

func fleetProto(s fleet.Status) *haav1.GetFleetResponse {
	out := &haav1.GetFleetResponse{Node: s.Node, Document: s.Document, Issues: s.Issues}
	if g := s.Gossip; g != nil {
		out.Gossip = &haav1.GossipStats{BytesSent: g.BytesSent, BytesReceived: g.BytesReceived, Rejected: g.Rejected,
			Since: timestamp(g.Since), Alive: uint32(g.Alive), SplitBrains: g.SplitBrains}
	}
	age := func(d time.Duration) *durationpb.Duration {
		if d < 0 {
			return nil
		}
		return durationpb.New(d)
	}
	for _, m := range s.Members {
		mp := &haav1.Member{Name: m.Name, GossipAddress: m.GossipAddress, ApiAddress: m.APIAddress, State: m.State,
			Version: m.Version, ConfigGeneration: m.ConfigGeneration, ConfigHash: m.ConfigHash,
			FleetGeneration: m.FleetGeneration, FleetHash: m.FleetHash, ExpectedFleetHash: m.ExpectedFleetHash,
			Updated: timestamp(m.Updated), Age: age(m.Age), StateSince: timestamp(m.StateSince)}
		if h := m.Health; h != nil {
			mp.Health = &haav1.NodeHealth{Healthy: h.Healthy, Maintenance: h.Maintenance, Problems: h.Problems}
		}
		out.Members = append(out.Members, mp)
	}
	for _, in := range s.Instances {
		out.Instances = append(out.Instances, &haav1.FleetInstanceStatus{Node: in.Node, Name: in.Name,
			Interface: in.Interface, Vrid: in.VRID, Segment: in.Segment, State: in.State, Priority: in.Priority,
			Vips: in.VIPs, Generation: in.Generation, FleetGeneration: in.FleetGeneration,
			Updated: timestamp(in.Updated), Age: age(in.Age), FromFleet: in.FromFleet,
			Family: in.Family, VmacInterface: in.VMACInterface})
	}
	return out
}
