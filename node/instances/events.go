package instances

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/vrrp"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// noticeFunc turns an instance's notices into events and hands them to
// the observer.
func (s *Set) noticeFunc(c config.Instance) func(vrrp.Notice) {
	vips := make([]string, len(c.VIPs))
	for i, v := range c.VIPs {
		vips[i] = v.Prefix.String()
	}
	addrs := make([]string, len(c.VRRP.Addrs))
	for i, v := range c.VRRP.Addrs {
		addrs[i] = v.String()
	}
	return func(n vrrp.Notice) {
		s.observe(n)
		if s.events == nil {
			return
		}
		e := &haav1.Event{Time: timestamppb.New(n.Time), Instance: n.Instance}
		switch n.Kind {
		case vrrp.NoticeTransition:
			e.Kind = &haav1.Event_StateChanged{StateChanged: &haav1.StateChanged{
				From: StateProto(n.From), To: StateProto(n.To), Cause: string(n.Cause), Priority: uint32(n.Priority)}}
		case vrrp.NoticePriority:
			configured := c.VRRP.Priority // the configuration now: an in-place update changes it
			if in := s.Snapshot().Get(n.Instance); in != nil {
				configured = in.Config.VRRP.Priority
			}
			e.Kind = &haav1.Event_PriorityChanged{PriorityChanged: &haav1.PriorityChanged{
				Priority: uint32(n.Priority), Configured: uint32(configured)}}
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
		case vrrp.NoticeDrop: // the runner reports drops at most every 10 s per reason
			e.Kind = &haav1.Event_PacketsDropped{PacketsDropped: &haav1.PacketsDropped{
				Reason: n.Drop.String(), Count: n.Count, Detail: n.Detail}}
		default:
			return
		}
		s.events.Append(e)
	}
}

// StateProto is a state's wire form, in events and gossip: the API's
// states are the vrrp states in their order, after UNSPECIFIED.
func StateProto(st vrrp.State) haav1.State {
	if st < vrrp.Init || st > vrrp.Fault {
		return haav1.State_STATE_UNSPECIFIED
	}
	return haav1.State_STATE_INIT + haav1.State(st-vrrp.Init)
}
