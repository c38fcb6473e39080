// Package server is the gRPC face of the haad agent: thin adapters that
// validate a request, convert it to the agent's types, call the agent and
// map its errors to status codes. It also owns the API's listeners (a unix
// socket and an optional TCP listener with TLS), each with limits that keep
// its clients from exhausting the agent (limits.go), the checks every
// request passes before a handler sees it (request.go), health and
// reflection.
//
// Nothing here decides anything about VRRP: that is package node.
package server

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/haa-dev/haa/node"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Core is what the API needs of the agent; *node.Agent implements it.
type Core interface {
	Node() node.NodeInfo
	Instances() []node.InstanceStatus
	Instance(name string) (node.InstanceStatus, error)
	ConfigState() (cfg *haav1.AgentConfig, gen uint64, hash string)
	Apply(ctx context.Context, cfg *haav1.AgentConfig, opts node.ApplyOptions) (node.ApplyResult, error)
	Events() *node.EventLog
	SetMaintenance(on bool, ttl time.Duration) (node.Maintenance, error)
}

// FailoverCore hands an instance's mastership over; the agent's VRRP
// instances (*instances.Set) implement it.
type FailoverCore interface {
	Failover(ctx context.Context, name string, timeout time.Duration) (netip.Addr, error)
}

// Deps are the parts of the agent the API serves. Agent is required; a
// nil part makes its calls Unimplemented (FleetService is then not
// served).
type Deps struct {
	Agent    Core
	Failover FailoverCore
	Balancer BalancerCore
	Fleet    FleetCore
	LogLevel LogLevelCore
	// Log: nil means slog.Default().
	Log *slog.Logger
}

// Server implements haav1.AgentServiceServer over the agent's parts.
type Server struct {
	haav1.UnimplementedAgentServiceServer

	core     Core
	failover FailoverCore
	lb       BalancerCore
	level    LogLevelCore
	log      *slog.Logger
	fleet    *Fleet // FleetService, when Deps.Fleet is set

	// closing ends the event streams when the API stops: a graceful stop
	// would otherwise wait for watchers that never leave.
	closing   chan struct{}
	closeOnce sync.Once
}

var _ haav1.AgentServiceServer = (*Server)(nil)

// New returns the AgentService (and FleetService) of the agent's parts.
func New(d Deps) *Server {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	s := &Server{core: d.Agent, failover: d.Failover, lb: d.Balancer, level: d.LogLevel, log: d.Log,
		closing: make(chan struct{})}
	if d.Fleet != nil {
		s.fleet = NewFleet(d.Fleet, d.Log)
	}
	return s
}

// close ends every event stream (with Unavailable) and refuses new ones.
func (s *Server) close() { s.closeOnce.Do(func() { close(s.closing) }) }

// GetNode returns the agent's identity and configuration state.
func (s *Server) GetNode(context.Context, *haav1.GetNodeRequest) (*haav1.GetNodeResponse, error) {
	n := nodeProto(s.core.Node(), time.Now())
	if s.level != nil {
		n.LogLevel = s.level.Level()
	}
	return &haav1.GetNodeResponse{Node: n}, nil
}

// ListInstances returns every instance, by name.
func (s *Server) ListInstances(context.Context, *haav1.ListInstancesRequest) (*haav1.ListInstancesResponse, error) {
	ins := s.core.Instances()
	out := &haav1.ListInstancesResponse{Instances: make([]*haav1.InstanceStatus, len(ins))}
	for i, in := range ins {
		out.Instances[i] = instanceProto(in)
	}
	return out, nil
}

// GetInstance returns one instance.
func (s *Server) GetInstance(_ context.Context, req *haav1.GetInstanceRequest) (*haav1.GetInstanceResponse, error) {
	if req.GetName() == "" {
		return nil, invalidArgument("name", "required: the instance's name, e.g. VI_1")
	}
	in, err := s.core.Instance(req.GetName())
	if err != nil {
		return nil, s.status(err)
	}
	return &haav1.GetInstanceResponse{Instance: instanceProto(in)}, nil
}

// GetConfig returns the running configuration (none before the first
// Apply) with its generation and hash.
func (s *Server) GetConfig(context.Context, *haav1.GetConfigRequest) (*haav1.GetConfigResponse, error) {
	cfg, gen, hash := s.core.ConfigState()
	return &haav1.GetConfigResponse{Config: cfg, Generation: gen, Hash: hash}, nil
}

// ApplyConfig validates, plans and (unless dry_run) applies and persists a
// configuration.
func (s *Server) ApplyConfig(ctx context.Context, req *haav1.ApplyConfigRequest) (*haav1.ApplyConfigResponse, error) {
	if req.GetConfig() == nil {
		return nil, invalidArgument("config", "required: the complete agent configuration to run")
	}
	// A client that goes away must not cut an Apply short halfway (e.g.
	// while instances stop): it runs to the end, as a SIGHUP reload does.
	res, err := s.core.Apply(context.WithoutCancel(ctx), req.GetConfig(), node.ApplyOptions{
		DryRun:             req.GetDryRun(),
		ExpectedGeneration: req.ExpectedGeneration,
		Persist:            true,
	})
	out := &haav1.ApplyConfigResponse{Plan: res.Plan.Proto(), Generation: res.Generation, Hash: res.Hash,
		Applied: res.Applied, Changed: res.Changed}
	if err != nil && res.Applied {
		// The configuration runs (a new generation), but part of it failed,
		// e.g. an instance could not start: say both.
		return nil, s.partial(err, out, "configuration applied as generation %d, but", res.Generation)
	}
	if err != nil {
		return nil, s.status(err)
	}
	return out, nil
}

// WatchEvents streams events, from since_seq (exclusive) or from now on. The
// response headers are sent once the subscription is in place: a client
// that waits for them sees every event appended afterwards. The listener
// bounds the watchers and ends one that reads nothing for long (limits.go).
func (s *Server) WatchEvents(req *haav1.WatchEventsRequest, stream grpc.ServerStreamingServer[haav1.WatchEventsResponse]) error {
	sub, err := s.core.Events().Subscribe(req.SinceSeq)
	if err != nil {
		return s.status(err)
	}
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	// Next returns what is logged before it looks at ctx: once the API
	// stops, the stream still sends every event logged before (a
	// stopping haad's last transitions), then ends.
	for {
		e, err := sub.Next(ctx)
		if err != nil {
			select {
			case <-s.closing:
				return status.Error(codes.Unavailable, "the agent's API is stopping: reconnect with since_seq set to the last event seen")
			default:
			}
			return s.status(err)
		}
		if err := stream.Send(&haav1.WatchEventsResponse{Event: e}); err != nil {
			return err
		}
	}
}

// Failover hands an instance's mastership to another node.
func (s *Server) Failover(ctx context.Context, req *haav1.FailoverRequest) (*haav1.FailoverResponse, error) {
	if req.GetInstance() == "" {
		return nil, invalidArgument("instance", "required: the instance to hand over, e.g. VI_1")
	}
	var timeout time.Duration
	if t := req.GetTimeout(); t != nil {
		if err := t.CheckValid(); err != nil || t.AsDuration() < 0 {
			return nil, invalidArgument("timeout", "must be a positive duration (unset: 10s)")
		}
		timeout = t.AsDuration()
	}
	if s.failover == nil {
		return nil, status.Error(codes.Unimplemented, "this agent cannot hand mastership over")
	}
	addr, err := s.failover.Failover(ctx, req.GetInstance(), timeout)
	if err != nil {
		return nil, s.status(err)
	}
	return &haav1.FailoverResponse{NewMaster: addr.String()}, nil
}

// SetMaintenance turns maintenance mode on or off.
func (s *Server) SetMaintenance(_ context.Context, req *haav1.SetMaintenanceRequest) (*haav1.SetMaintenanceResponse, error) {
	var ttl time.Duration
	if t := req.GetTtl(); t != nil {
		if err := t.CheckValid(); err != nil || t.AsDuration() < 0 {
			return nil, invalidArgument("ttl", "must be a positive duration (unset: until turned off)")
		}
		if !req.GetEnabled() {
			return nil, invalidArgument("ttl", "only with enabled: true (how long maintenance lasts)")
		}
		ttl = t.AsDuration()
	}
	m, err := s.core.SetMaintenance(req.GetEnabled(), ttl)
	out := &haav1.SetMaintenanceResponse{Maintenance: maintenanceProto(m)}
	if err != nil {
		// Maintenance is in effect; keeping it across a restart failed.
		return nil, s.partial(err, out, "maintenance set (enabled=%t), but", req.GetEnabled())
	}
	return out, nil
}
