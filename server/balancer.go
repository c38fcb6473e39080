package server

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/haa-dev/haa/node/balancer"
	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// BalancerCore is what the load-balancing calls need of the agent; its
// *balancer.Balancer implements it.
type BalancerCore interface {
	VirtualServers(ctx context.Context) ([]balancer.VirtualServer, string)
	SetRealServer(ctx context.Context, vs, rs string, act balancer.RealServerAction) (balancer.RealServer, error)
}

func (s *Server) balancer() (BalancerCore, error) {
	if s.lb != nil {
		return s.lb, nil
	}
	return nil, status.Error(codes.Unimplemented, "this agent has no load balancer")
}

// ListVirtualServers returns every virtual server with its real servers.
func (s *Server) ListVirtualServers(ctx context.Context, _ *haav1.ListVirtualServersRequest) (*haav1.ListVirtualServersResponse, error) {
	b, err := s.balancer()
	if err != nil {
		return nil, err
	}
	vss, backend := b.VirtualServers(ctx)
	out := &haav1.ListVirtualServersResponse{Backend: backend}
	for _, vs := range vss {
		out.VirtualServers = append(out.VirtualServers, virtualServerProto(vs))
	}
	return out, nil
}

// SetRealServer drains, enables or re-weights one real server.
func (s *Server) SetRealServer(ctx context.Context, req *haav1.SetRealServerRequest) (*haav1.SetRealServerResponse, error) {
	b, err := s.balancer()
	if err != nil {
		return nil, err
	}
	if req.GetVirtualServer() == "" {
		return nil, invalidArgument("virtual_server", "required: the virtual server's name (haactl get vs lists them)")
	}
	if req.GetRealServer() == "" {
		return nil, invalidArgument("real_server", "required: the real server's ADDR:PORT")
	}
	var act balancer.RealServerAction
	switch a := req.GetAction().(type) {
	case *haav1.SetRealServerRequest_Drain:
		if !a.Drain {
			return nil, invalidArgument("drain", "must be true: to undo a drain, set enable")
		}
		act.Drain = true
	case *haav1.SetRealServerRequest_Enable:
		if !a.Enable {
			return nil, invalidArgument("enable", "must be true")
		}
		act.Enable = true
	case *haav1.SetRealServerRequest_Weight:
		w := int(a.Weight)
		if a.Weight > config.MaxRealWeight {
			return nil, invalidArgument("weight", "out of range 0..65535")
		}
		act.Weight = &w
	default:
		return nil, invalidArgument("action", "set one of drain, enable or weight")
	}
	rs, err := b.SetRealServer(ctx, req.GetVirtualServer(), req.GetRealServer(), act)
	if err != nil {
		return nil, s.status(err)
	}
	return &haav1.SetRealServerResponse{RealServer: realServerProto(rs)}, nil
}
