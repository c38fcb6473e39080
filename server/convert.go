package server

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/haa-dev/haa/node"
	"github.com/haa-dev/haa/node/vrrp"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

func nodeProto(n node.NodeInfo, now time.Time) *haav1.Node {
	out := &haav1.Node{
		Name:             n.Name,
		Version:          n.Version,
		LogLevel:         n.LogLevel,
		ConfigGeneration: n.Generation,
		ConfigHash:       n.Hash,
		ListenAddresses:  n.Listen,
		Maintenance:      node.MaintenanceProto(n.Maintenance),
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

func instanceProto(in node.InstanceStatus) *haav1.InstanceStatus {
	c, st := in.Config, in.Status
	out := &haav1.InstanceStatus{
		Name:               c.VRRP.Name,
		Interface:          c.Interface,
		Vrid:               uint32(c.VRRP.VRID),
		Version:            uint32(c.VRRP.Version),
		State:              node.StateProto(st.State),
		ConfiguredPriority: uint32(c.VRRP.Priority),
		EffectivePriority:  uint32(st.Priority),
		VipError:           st.VIPError,
		Hold:               st.Held,
		Counters:           countersProto(in.Stats),
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
			From:  node.StateProto(st.LastFrom),
			To:    node.StateProto(st.State),
			Cause: string(st.LastCause),
		}
	}
	if st.State == vrrp.Fault {
		out.FaultReason = st.FaultReason
	}
	out.SyncGroup = in.SyncGroup
	for _, t := range in.Trackers {
		ts := &haav1.TrackerStatus{Name: t.Name, Kind: t.Kind, State: node.TrackerStateProto(t.OK),
			Weight: int32(t.Weight), Contribution: int32(t.Delta), Fault: t.Fault, Detail: t.Detail, ViaSyncGroup: t.ViaGroup}
		if !t.Since.IsZero() {
			ts.Since = timestamppb.New(t.Since)
		}
		out.Trackers = append(out.Trackers, ts)
	}
	for _, r := range in.Notifies {
		out.NotifyResults = append(out.NotifyResults, node.NotifyProto(r))
	}
	return out
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
