package ctltest

import (
	"context"
	"net/netip"
	"slices"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// maxWeight is the largest real-server weight haad takes.
const maxWeight = 65535

// RealServerSets returns every SetRealServer request.
func (a *Agent) RealServerSets() []*haav1.SetRealServerRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.rsSets)
}

// ListVirtualServers implements haav1.AgentServiceServer: VirtualServers
// and Backend as they are.
func (a *Agent) ListVirtualServers(context.Context, *haav1.ListVirtualServersRequest) (*haav1.ListVirtualServersResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.enter("ListVirtualServers"); err != nil {
		return nil, err
	}
	r := &haav1.ListVirtualServersResponse{Backend: a.Backend}
	for _, vs := range a.VirtualServers {
		r.VirtualServers = append(r.VirtualServers, proto.Clone(vs).(*haav1.VirtualServerStatus))
	}
	return r, nil
}

// SetRealServer implements haav1.AgentServiceServer like haad: the real
// server (ADDR:PORT, or ADDR when unique in its virtual server) is drained,
// enabled or re-weighted; a healthy one that is programmed gets its new
// effective weight; a RealServerChanged event records it. Unknown names are
// NotFound, a weight over 65535 or a missing action InvalidArgument.
func (a *Agent) SetRealServer(_ context.Context, req *haav1.SetRealServerRequest) (*haav1.SetRealServerResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rsSets = append(a.rsSets, req)
	if err := a.enter("SetRealServer"); err != nil {
		return nil, err
	}
	var vs *haav1.VirtualServerStatus
	for _, v := range a.VirtualServers {
		if v.GetName() == req.GetVirtualServer() {
			vs = v
		}
	}
	if vs == nil {
		return nil, status.Errorf(codes.NotFound, "virtual server %q: no such virtual server", req.GetVirtualServer())
	}
	rs := findReal(vs, req.GetRealServer())
	if rs == nil {
		return nil, status.Errorf(codes.NotFound, "virtual server %s has no real server %q: no such real server", vs.GetName(), req.GetRealServer())
	}
	var cause, detail string
	switch act := req.GetAction().(type) {
	case *haav1.SetRealServerRequest_Drain:
		rs.Drained, rs.WeightOverride = true, nil
		cause, detail = "drained", "through the API"
	case *haav1.SetRealServerRequest_Enable:
		rs.Drained, rs.WeightOverride = false, nil
		cause, detail = "enabled", "through the API"
	case *haav1.SetRealServerRequest_Weight:
		if act.Weight > maxWeight {
			return nil, InvalidArgument("weight out of range 0..65535", "weight", "out of range 0..65535")
		}
		rs.Drained, rs.WeightOverride = false, proto.Uint32(act.Weight)
		cause, detail = "weight", "set to "+itoa(act.Weight)+" through the API"
	default:
		return nil, InvalidArgument("no action", "action", "set one of drain, enable or weight")
	}
	if rs.GetHealthy() && rs.GetProgrammed() {
		rs.Weight = effective(rs)
	}
	a.publishLocked(&haav1.Event{Kind: &haav1.Event_RealServerChanged{RealServerChanged: &haav1.RealServerChanged{
		VirtualServer: vs.GetName(), RealServer: rs.GetAddress(), Healthy: rs.GetHealthy(),
		Weight: rs.GetWeight(), Cause: cause, Detail: detail}}})
	return &haav1.SetRealServerResponse{RealServer: proto.Clone(rs).(*haav1.RealServerStatus)}, nil
}

func effective(rs *haav1.RealServerStatus) uint32 {
	switch {
	case rs.GetDrained():
		return 0
	case rs.WeightOverride != nil:
		return rs.GetWeightOverride()
	}
	return rs.GetConfiguredWeight()
}

// findReal finds a real server by ADDR:PORT, or by ADDR when only one has
// that address.
func findReal(vs *haav1.VirtualServerStatus, addr string) *haav1.RealServerStatus {
	if _, err := netip.ParseAddrPort(addr); err == nil {
		for _, rs := range vs.GetRealServers() {
			if rs.GetAddress() == addr {
				return rs
			}
		}
		return nil
	}
	var found *haav1.RealServerStatus
	for _, rs := range vs.GetRealServers() {
		if ap, err := netip.ParseAddrPort(rs.GetAddress()); err == nil && ap.Addr().String() == addr {
			if found != nil {
				return nil
			}
			found = rs
		}
	}
	return found
}

func itoa(n uint32) string {
	return strconv.FormatUint(uint64(n), 10)
}
