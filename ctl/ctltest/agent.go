// Package ctltest is an in-memory haad for tests of API clients (ctl,
// haactl): a fake haav1.AgentServiceServer with canned state that records
// what it is asked, served on a unix socket; and a fleet of them (Cluster),
// each also serving a fake haav1.FleetServiceServer.
package ctltest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/vrrp"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Agent is a fake agent. Set its fields before serving it; afterwards
// change state only through its methods.
//
// Its configuration answers follow haad's own rules, from node/config: the
// hash is config.Hash of what runs (Config, and the fleet document's part
// once a Cluster stored one), the plan is config.Diff, and the generation
// goes up when the hash changes (see ApplyConfig).
type Agent struct {
	haav1.UnimplementedAgentServiceServer

	Node       *haav1.Node
	Instances  []*haav1.InstanceStatus
	Config     *haav1.AgentConfig
	Generation uint64
	// Validate checks a configuration given to ApplyConfig; its error is
	// returned as is (see InvalidArgument). nil accepts everything.
	Validate func(*haav1.AgentConfig) error
	// NewMaster is the address Failover reports.
	NewMaster string
	// Now is the fake's clock (nil: time.Now).
	Now func() time.Time
	// EventBuffer is how many events are kept for WatchEvents (0: 64).
	EventBuffer int
	// BreakAfter ends every WatchEvents stream with BreakErr (default
	// Unavailable) after sending that many events; 0 never.
	BreakAfter int
	BreakErr   error
	// Errors fails RPCs by method name ("GetNode", "ApplyConfig"...).
	Errors map[string]error
	// Fleet, if set, is served alongside the agent (see NewCluster).
	Fleet haav1.FleetServiceServer
	// VirtualServers and Backend are what ListVirtualServers returns;
	// SetRealServer changes the real servers in place (see balancer.go).
	VirtualServers []*haav1.VirtualServerStatus
	Backend        string

	mu       sync.Mutex
	events   []*haav1.Event
	nextSeq  uint64
	wake     chan struct{}
	watches  []*uint64
	applies  []*haav1.ApplyConfigRequest
	rsSets   []*haav1.SetRealServerRequest
	requests []string
	// fromFleet is the fleet document's part for this node (set by a
	// Cluster): what haad composes with Config.
	fromFleet *haav1.AgentConfig
}

func (a *Agent) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Publish stamps events (sequence number, node name, time unless set) and
// delivers them to watchers.
func (a *Agent) Publish(evs ...*haav1.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.publishLocked(evs...)
}

func (a *Agent) publishLocked(evs ...*haav1.Event) {
	if a.nextSeq == 0 {
		a.nextSeq = 1
	}
	size := a.EventBuffer
	if size <= 0 {
		size = 64
	}
	for _, e := range evs {
		e.Seq = a.nextSeq
		a.nextSeq++
		if e.Time == nil {
			e.Time = timestamppb.New(a.now())
		}
		e.Node = a.Node.GetName()
		a.events = append(a.events, e)
	}
	if n := len(a.events) - size; n > 0 {
		a.events = slices.Delete(a.events, 0, n)
	}
	if a.wake != nil {
		close(a.wake)
	}
	a.wake = make(chan struct{})
}

// Reboot makes the agent a new run of haad: its events are gone and
// numbered from 1 again, its pid and start time change. Call it while the
// server is stopped (a real restart cuts every connection).
func (a *Agent) Reboot() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events, a.nextSeq = nil, 1
	if a.Node == nil {
		a.Node = &haav1.Node{}
	}
	a.Node.Pid++
	a.Node.StartTime = timestamppb.New(a.now())
}

// Watches returns the since_seq of every WatchEvents call (nil: unset).
func (a *Agent) Watches() []*uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.watches)
}

// Applies returns every ApplyConfig request.
func (a *Agent) Applies() []*haav1.ApplyConfigRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.applies)
}

// Requests returns the method names called, in order.
func (a *Agent) Requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.requests)
}

// Update runs fn with the agent locked, to change its state while served.
func (a *Agent) Update(fn func(a *Agent)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fn(a)
}

func (a *Agent) enter(method string) error {
	a.requests = append(a.requests, method)
	return a.Errors[method]
}

// GetNode implements haav1.AgentServiceServer.
func (a *Agent) GetNode(context.Context, *haav1.GetNodeRequest) (*haav1.GetNodeResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.enter("GetNode"); err != nil {
		return nil, err
	}
	n := proto.Clone(a.Node).(*haav1.Node)
	if n == nil {
		n = &haav1.Node{}
	}
	n.ConfigGeneration = a.Generation
	n.ConfigHash = a.hashLocked()
	return &haav1.GetNodeResponse{Node: n}, nil
}

// ListInstances implements haav1.AgentServiceServer.
func (a *Agent) ListInstances(context.Context, *haav1.ListInstancesRequest) (*haav1.ListInstancesResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.enter("ListInstances"); err != nil {
		return nil, err
	}
	r := &haav1.ListInstancesResponse{}
	for _, in := range a.Instances {
		r.Instances = append(r.Instances, proto.Clone(in).(*haav1.InstanceStatus))
	}
	return r, nil
}

// GetInstance implements haav1.AgentServiceServer.
func (a *Agent) GetInstance(_ context.Context, req *haav1.GetInstanceRequest) (*haav1.GetInstanceResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.enter("GetInstance"); err != nil {
		return nil, err
	}
	in := a.instance(req.GetName())
	if in == nil {
		return nil, status.Errorf(codes.NotFound, "no instance %q", req.GetName())
	}
	return &haav1.GetInstanceResponse{Instance: proto.Clone(in).(*haav1.InstanceStatus)}, nil
}

func (a *Agent) instance(name string) *haav1.InstanceStatus {
	for _, in := range a.Instances {
		if in.GetName() == name {
			return in
		}
	}
	return nil
}

// GetConfig implements haav1.AgentServiceServer: the own configuration
// (without the fleet document's part), the generation and the hash of what
// runs, like haad.
func (a *Agent) GetConfig(context.Context, *haav1.GetConfigRequest) (*haav1.GetConfigResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.enter("GetConfig"); err != nil {
		return nil, err
	}
	return &haav1.GetConfigResponse{Config: proto.Clone(a.Config).(*haav1.AgentConfig), Generation: a.Generation, Hash: a.hashLocked()}, nil
}

// ApplyConfig implements haav1.AgentServiceServer with haad's rules: a
// missing configuration is InvalidArgument; then Validate (if set); then
// the expected generation (FailedPrecondition); the plan is config.Diff of
// the instances running and desired (see resolved); a dry run stops there.
// Otherwise the configuration runs: the generation goes up when the hash
// (config.Hash) changes, and the call is Applied, with a ConfigApplied
// event, even when nothing changed.
func (a *Agent) ApplyConfig(_ context.Context, req *haav1.ApplyConfigRequest) (*haav1.ApplyConfigResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.applies = append(a.applies, req)
	if err := a.enter("ApplyConfig"); err != nil {
		return nil, err
	}
	if req.GetConfig() == nil {
		return nil, InvalidArgument("config: required: the complete agent configuration to run",
			"config", "required: the complete agent configuration to run")
	}
	if a.Validate != nil {
		if err := a.Validate(req.GetConfig()); err != nil {
			return nil, err
		}
	}
	if req.ExpectedGeneration != nil && req.GetExpectedGeneration() != a.Generation {
		// As haad words node.ErrGenerationMismatch.
		return nil, status.Errorf(codes.FailedPrecondition,
			"expected generation %d, running %d: get the configuration again and retry: configuration generation mismatch",
			req.GetExpectedGeneration(), a.Generation)
	}
	running, want := a.composedLocked(a.Config), a.composedLocked(req.GetConfig())
	resp := &haav1.ApplyConfigResponse{Plan: diff(running, want), Generation: a.Generation, Hash: config.Hash(running)}
	if req.GetDryRun() {
		return resp, nil
	}
	a.Config = proto.Clone(req.GetConfig()).(*haav1.AgentConfig)
	if h := config.Hash(want); h != resp.Hash {
		a.Generation++
		resp.Hash, resp.Changed = h, true
	}
	resp.Generation, resp.Applied = a.Generation, true
	a.publishLocked(&haav1.Event{Kind: &haav1.Event_ConfigApplied{ConfigApplied: &haav1.ConfigApplied{
		Generation: a.Generation, Hash: resp.Hash, Plan: resp.Plan}}})
	return resp, nil
}

// hashLocked is the hash of the configuration that runs.
func (a *Agent) hashLocked() string {
	return config.Hash(a.composedLocked(a.Config))
}

// composedLocked is what haad runs for the own configuration own: the
// fleet document's instances, trackers and sync groups for this node
// appended to own's. (haad also refuses a name both define; the fake
// does not check.)
func (a *Agent) composedLocked(own *haav1.AgentConfig) *haav1.AgentConfig {
	return compose(own, a.fromFleet)
}

// compose appends the fleet document's part (nil: no document) to own.
func compose(own, part *haav1.AgentConfig) *haav1.AgentConfig {
	if part == nil {
		return own
	}
	c := &haav1.AgentConfig{}
	if own != nil {
		c = proto.Clone(own).(*haav1.AgentConfig)
	}
	c.Instances = append(c.Instances, part.GetInstances()...)
	c.Trackers = append(c.Trackers, part.GetTrackers()...)
	c.SyncGroups = append(c.SyncGroups, part.GetSyncGroups()...)
	return c
}

// diff is haad's plan from running to desired (config.Diff), as the API
// returns it.
func diff(running, desired *haav1.AgentConfig) *haav1.Plan {
	p := config.Diff(resolved(running), resolved(desired))
	out := &haav1.Plan{Added: p.Added, Removed: p.Removed, Unchanged: p.Unchanged}
	for _, c := range p.Changed {
		out.Changed = append(out.Changed, &haav1.InstanceChange{Name: c.Name, Fields: c.Fields, Restart: c.Restart})
	}
	return out
}

// resolved returns cfg's instances as config.Resolve gives them, for
// config.Diff. The fake takes configurations haad would refuse (tests
// leave out what they do not need, such as vips): when cfg does not
// resolve, each instance is resolved alone (with cfg's trackers), and one
// that does not resolve either is taken as configured, with the fields
// Diff reads besides the spec (name, priority) defaulted as Resolve does.
func resolved(cfg *haav1.AgentConfig) []config.Instance {
	if a, err := config.Resolve(cfg); err == nil {
		return a.Instances
	}
	out := make([]config.Instance, 0, len(cfg.GetInstances()))
	for _, s := range cfg.GetInstances() {
		one := &haav1.AgentConfig{Name: "ctltest", Trackers: cfg.GetTrackers(), Instances: []*haav1.Instance{s}}
		if a, err := config.Resolve(one); err == nil {
			out = append(out, a.Instances[0])
			continue
		}
		prio := uint8(config.DefaultPriority)
		if p := s.GetPriority(); s.Priority != nil && p >= 1 && p <= 255 {
			prio = uint8(p)
		}
		out = append(out, config.Instance{VRRP: vrrp.Config{Name: s.GetName(), Priority: prio}, Interface: s.GetInterface(), Spec: s})
	}
	return out
}

// WatchEvents implements haav1.AgentServiceServer like haad: since_seq
// resumes after that event, OutOfRange when it is no longer buffered.
func (a *Agent) WatchEvents(req *haav1.WatchEventsRequest, stream grpc.ServerStreamingServer[haav1.WatchEventsResponse]) error {
	a.mu.Lock()
	a.watches = append(a.watches, req.SinceSeq)
	if err := a.enter("WatchEvents"); err != nil {
		a.mu.Unlock()
		return err
	}
	if a.nextSeq == 0 {
		a.nextSeq = 1
	}
	next := a.nextSeq
	if req.SinceSeq != nil {
		since := req.GetSinceSeq()
		if since >= a.nextSeq {
			a.mu.Unlock()
			return status.Errorf(codes.InvalidArgument, "event %d does not exist yet (newest %d)", since, a.nextSeq-1)
		}
		if oldest := a.oldestLocked(); since+1 < oldest {
			a.mu.Unlock()
			st, _ := status.New(codes.OutOfRange, fmt.Sprintf("events after %d are gone, the oldest kept is %d", since, oldest)).
				WithDetails(&errdetails.ErrorInfo{Reason: "EVENTS_LOST", Domain: "haa.dev",
					Metadata: map[string]string{"oldest_seq": fmt.Sprint(oldest)}})
			return st.Err()
		}
		next = since + 1
	}
	a.mu.Unlock()
	// Like haad: the headers say the subscription is in place.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}

	sent := 0
	for {
		a.mu.Lock()
		var e *haav1.Event
		if oldest := a.oldestLocked(); next < oldest {
			a.mu.Unlock()
			return status.Errorf(codes.OutOfRange, "subscriber fell behind: events %d..%d were overwritten", next, oldest-1)
		}
		if next < a.nextSeq {
			e = a.events[int(next-a.oldestLocked())]
		}
		wake := a.wake
		if wake == nil {
			a.wake = make(chan struct{})
			wake = a.wake
		}
		breakAfter, breakErr := a.BreakAfter, a.BreakErr
		a.mu.Unlock()
		if e == nil {
			select {
			case <-wake:
				continue
			case <-stream.Context().Done():
				return stream.Context().Err()
			}
		}
		if err := stream.Send(&haav1.WatchEventsResponse{Event: e}); err != nil {
			return err
		}
		next++
		sent++
		if breakAfter > 0 && sent >= breakAfter {
			if breakErr == nil {
				breakErr = status.Error(codes.Unavailable, "fake: stream broken")
			}
			return breakErr
		}
	}
}

func (a *Agent) oldestLocked() uint64 {
	if len(a.events) == 0 {
		return a.nextSeq
	}
	return a.events[0].GetSeq()
}

// Failover implements haav1.AgentServiceServer: a MASTER instance becomes
// BACKUP held by "failover", anything else is FailedPrecondition.
func (a *Agent) Failover(_ context.Context, req *haav1.FailoverRequest) (*haav1.FailoverResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.enter("Failover"); err != nil {
		return nil, err
	}
	in := a.instance(req.GetInstance())
	if in == nil {
		return nil, status.Errorf(codes.NotFound, "no instance %q", req.GetInstance())
	}
	if in.GetState() != haav1.State_STATE_MASTER {
		return nil, status.Errorf(codes.FailedPrecondition, "instance %s is %s here, not master", in.GetName(), in.GetState())
	}
	in.State = haav1.State_STATE_BACKUP
	in.Hold = "failover"
	return &haav1.FailoverResponse{NewMaster: a.NewMaster}, nil
}

// SetMaintenance implements haav1.AgentServiceServer.
func (a *Agent) SetMaintenance(_ context.Context, req *haav1.SetMaintenanceRequest) (*haav1.SetMaintenanceResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.enter("SetMaintenance"); err != nil {
		return nil, err
	}
	m := &haav1.Maintenance{Enabled: req.GetEnabled()}
	if req.GetEnabled() && req.GetTtl() != nil {
		m.Until = timestamppb.New(a.now().Add(req.GetTtl().AsDuration()))
	}
	if a.Node == nil {
		a.Node = &haav1.Node{}
	}
	a.Node.Maintenance = m
	a.publishLocked(&haav1.Event{Kind: &haav1.Event_MaintenanceChanged{MaintenanceChanged: &haav1.MaintenanceChanged{Maintenance: m}}})
	return &haav1.SetMaintenanceResponse{Maintenance: m}, nil
}

// InvalidArgument returns the error of a rejected configuration:
// InvalidArgument with a google.rpc.BadRequest detail listing the
// violations, given as field, description pairs.
func InvalidArgument(msg string, fieldDesc ...string) error {
	br := &errdetails.BadRequest{}
	for i := 0; i+1 < len(fieldDesc); i += 2 {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: fieldDesc[i], Description: fieldDesc[i+1]})
	}
	st, err := status.New(codes.InvalidArgument, msg).WithDetails(br)
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// Partial returns the error of a change that took effect in part, as haad
// says it: the code and message of the failure, with the response the call
// would have returned as a detail.
func Partial(code codes.Code, msg string, resp proto.Message) error {
	st, err := status.New(code, msg).WithDetails(protoadapt.MessageV1Of(resp))
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// Server serves an Agent on a unix socket, or over TCP with TLS.
type Server struct {
	// Target is the address to dial: unix:///path, or 127.0.0.1:PORT.
	Target string
	// Path is the unix socket's path.
	Path  string
	agent *Agent
	tls   *tls.Config
	addr  string

	mu  sync.Mutex
	srv *grpc.Server
}

// Serve serves a on a unix socket in a temporary directory until the test
// ends.
func Serve(t testing.TB, a *Agent) *Server {
	t.Helper()
	// Socket paths are limited to 108 bytes: t.TempDir() can be longer.
	dir, err := os.MkdirTemp("", "haa")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Path: filepath.Join(dir, "haad.sock"), agent: a}
	s.Target = "unix://" + s.Path
	t.Cleanup(func() {
		s.Stop()
		os.RemoveAll(dir)
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	return s
}

// ServeTLS serves a over TLS on a loopback port until the test ends.
func ServeTLS(t testing.TB, a *Agent, cfg *tls.Config) *Server {
	t.Helper()
	s := &Server{agent: a, tls: cfg, addr: "127.0.0.1:0"}
	t.Cleanup(s.Stop)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	return s
}

// Start serves again after Stop, at the same address.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	var l net.Listener
	var err error
	var opts []grpc.ServerOption
	if s.Path != "" {
		os.Remove(s.Path)
		l, err = net.Listen("unix", s.Path)
	} else {
		l, err = net.Listen("tcp", s.addr)
		if err == nil {
			s.addr = l.Addr().String()
			s.Target = s.addr
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.tls)))
	}
	if err != nil {
		return err
	}
	s.srv = grpc.NewServer(opts...)
	haav1.RegisterAgentServiceServer(s.srv, s.agent)
	if s.agent.Fleet != nil {
		haav1.RegisterFleetServiceServer(s.srv, s.agent.Fleet)
	}
	go s.srv.Serve(l)
	return nil
}

// Stop closes every connection at once (as a crashing agent would) and
// stops listening.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Stop()
		s.srv = nil
	}
}
