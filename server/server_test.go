package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/haa-dev/haa/node"
	"github.com/haa-dev/haa/node/balancer"
	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/instances"
	"github.com/haa-dev/haa/node/vip"
	"github.com/haa-dev/haa/node/vrrp"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

var (
	_ Core         = (*node.Agent)(nil)
	_ FleetCore    = (*node.Agent)(nil)
	_ FailoverCore = (*instances.Set)(nil)
	_ BalancerCore = (*balancer.Balancer)(nil)
	_ LogLevelCore = (*node.LogLevel)(nil)
)

// newServer serves a fake core: each part it implements is served.
func newServer(core Core, log *slog.Logger) *Server {
	d := Deps{Agent: core, Log: log}
	d.Failover, _ = core.(FailoverCore)
	d.Balancer, _ = core.(BalancerCore)
	d.Fleet, _ = core.(FleetCore)
	d.LogLevel, _ = core.(LogLevelCore)
	return New(d)
}

// fakeCore is a Core that records what it is asked and answers what the
// test set. Its event log is a real node.EventLog.
type fakeCore struct {
	mu        sync.Mutex
	info      node.NodeInfo
	instances []node.InstanceStatus
	cfg       *haav1.AgentConfig
	gen       uint64
	hash      string
	events    *node.EventLog

	applyErr  error // returned by Apply after validation (with Applied if applyPart)
	applyPart bool
	applies   []applyCall

	failoverAddr netip.Addr
	failoverErr  error
	failovers    []failoverCall

	maintErr error
	maints   []maintCall

	lb lbState
}

type applyCall struct {
	cfg         *haav1.AgentConfig
	opts        node.ApplyOptions
	cancellable bool // the context can end
}

type failoverCall struct {
	name    string
	timeout time.Duration
}

type maintCall struct {
	on  bool
	ttl time.Duration
}

func newFakeCore() *fakeCore {
	return &fakeCore{events: node.NewEventLog(64), gen: 3, hash: "abc"}
}

func (f *fakeCore) Node() node.NodeInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.info
}

func (f *fakeCore) Instances() []node.InstanceStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.instances
}

func (f *fakeCore) Instance(name string) (node.InstanceStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, in := range f.instances {
		if in.Config.VRRP.Name == name {
			return in, nil
		}
	}
	return node.InstanceStatus{}, fmt.Errorf("instance %q: %w", name, node.ErrNotFound)
}

func (f *fakeCore) ConfigState() (*haav1.AgentConfig, uint64, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg, f.gen, f.hash
}

// Apply validates for real (config.Validate), checks the generation, and
// otherwise returns what the test set.
func (f *fakeCore) Apply(ctx context.Context, cfg *haav1.AgentConfig, opts node.ApplyOptions) (node.ApplyResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applies = append(f.applies, applyCall{cfg, opts, ctx.Done() != nil})
	if err := config.Validate(cfg); err != nil {
		return node.ApplyResult{}, err
	}
	if e := opts.ExpectedGeneration; e != nil && *e != f.gen {
		return node.ApplyResult{}, fmt.Errorf("expected generation %d, running %d: %w", *e, f.gen, node.ErrGenerationMismatch)
	}
	res := node.ApplyResult{Plan: config.Plan{Added: []string{"VI_1"}}, Generation: f.gen, Hash: f.hash}
	if f.applyErr != nil && !f.applyPart {
		return node.ApplyResult{}, f.applyErr
	}
	if !opts.DryRun {
		f.gen++
		f.cfg, f.hash = cfg, fmt.Sprintf("h%d", f.gen)
		res.Generation, res.Hash, res.Applied, res.Changed = f.gen, f.hash, true, true
	}
	return res, f.applyErr
}

func (f *fakeCore) Events() *node.EventLog { return f.events }

// do runs fn under the fake's lock: the handlers run on other goroutines.
func (f *fakeCore) do(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

func (f *fakeCore) Failover(_ context.Context, name string, timeout time.Duration) (netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failovers = append(f.failovers, failoverCall{name, timeout})
	return f.failoverAddr, f.failoverErr
}

func (f *fakeCore) SetMaintenance(on bool, ttl time.Duration) (node.Maintenance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maints = append(f.maints, maintCall{on, ttl})
	m := node.Maintenance{Enabled: on}
	if ttl > 0 {
		m.Until = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return m, f.maintErr
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// testAPI is a served API and a client of its unix socket.
type testAPI struct {
	core   *fakeCore
	l      *Listeners
	socket string
	logs   *syncBuffer
	conn   *grpc.ClientConn
	client haav1.AgentServiceClient
}

func startAPI(t *testing.T, core *fakeCore, api *haav1.ApiConfig) *testAPI {
	t.Helper()
	return startAPIWith(t, core, api, nil)
}

// startAPIWith is startAPI with the server given to edit (nil: as is)
// before it serves, and ListenOptions.
func startAPIWith(t *testing.T, core *fakeCore, api *haav1.ApiConfig, edit func(*Server), opts ...ListenOption) *testAPI {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	socket := filepath.Join(t.TempDir(), "run", "haa.sock")
	srv := newServer(core, log)
	if edit != nil {
		edit(srv)
	}
	l, err := Listen(srv, api, socket, log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- l.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := l.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &testAPI{core: core, l: l, socket: socket, logs: logs, conn: conn, client: haav1.NewAgentServiceClient(conn)}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantCode asserts err's status code and that its message contains each of
// msgs; it returns the status.
func wantCode(t *testing.T, err error, code codes.Code, msgs ...string) *status.Status {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code {
		t.Fatalf("error %v, want code %v", err, code)
	}
	for _, m := range msgs {
		if !strings.Contains(st.Message(), m) {
			t.Errorf("message %q lacks %q", st.Message(), m)
		}
	}
	return st
}

func violations(t *testing.T, st *status.Status) []*errdetails.BadRequest_FieldViolation {
	t.Helper()
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			return br.GetFieldViolations()
		}
	}
	t.Fatalf("status %v has no BadRequest detail", st)
	return nil
}

func TestGetNode(t *testing.T) {
	core := newFakeCore()
	started := time.Now().Add(-time.Hour)
	core.info = node.NodeInfo{Name: "n1", Version: "v1.2", Started: started, Generation: 7, Hash: "h7",
		Listen: []string{"unix:///run/haa/n1.sock"}, Maintenance: node.Maintenance{Enabled: true}, Pid: 42}
	a := startAPI(t, core, nil)
	resp, err := a.client.GetNode(testCtx(t), &haav1.GetNodeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	n := resp.GetNode()
	if n.GetName() != "n1" || n.GetVersion() != "v1.2" || n.GetConfigGeneration() != 7 || n.GetConfigHash() != "h7" ||
		n.GetPid() != 42 || !n.GetMaintenance().GetEnabled() || len(n.GetListenAddresses()) != 1 ||
		!n.GetStartTime().AsTime().Equal(started) || n.GetUptime().AsDuration() < time.Hour {
		t.Fatalf("node %v", n)
	}
}

func testInstance() node.InstanceStatus {
	st := &vrrp.Stats{}
	st.AdvertsSent.Store(10)
	st.AdvertsReceived.Store(20)
	st.GARPsSent.Store(5)
	st.Transitions.Store(2)
	st.TimerSlipMax.Store(int64(3 * time.Millisecond))
	st.Drop(vrrp.DropTTL)
	st.Drop(vrrp.DropTTL)
	st.Drop(vrrp.DropAuthFailure)
	changed := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	return node.InstanceStatus{
		Config: config.Instance{
			VRRP: vrrp.Config{Name: "VI_1", VRID: 51, Priority: 200, Version: 3, Interval: 100 * time.Millisecond,
				Primary: netip.MustParseAddr("10.0.0.1")},
			Interface: "eth0",
			VIPs:      []vip.VIP{{Prefix: netip.MustParsePrefix("10.0.0.100/24")}, {Prefix: netip.MustParsePrefix("10.0.0.101/24")}},
		},
		Status: vrrp.Status{Name: "VI_1", State: vrrp.Master, Priority: 150, MasterAddr: netip.MustParseAddr("10.0.0.1"),
			MasterInterval: 100 * time.Millisecond, LastChange: changed, LastFrom: vrrp.Backup,
			LastCause: vrrp.CauseMasterDown, VIPsHeld: true, Held: "", VIPError: ""},
		Stats: st,
	}
}

func TestInstances(t *testing.T) {
	core := newFakeCore()
	core.instances = []node.InstanceStatus{testInstance()}
	a := startAPI(t, core, nil)
	ctx := testCtx(t)

	list, err := a.client.ListInstances(ctx, &haav1.ListInstancesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetInstances()) != 1 {
		t.Fatalf("instances %v", list)
	}
	got, err := a.client.GetInstance(ctx, &haav1.GetInstanceRequest{Name: "VI_1"})
	if err != nil {
		t.Fatal(err)
	}
	want := &haav1.InstanceStatus{
		Name: "VI_1", Interface: "eth0", Vrid: 51, Version: 3, State: haav1.State_STATE_MASTER,
		ConfiguredPriority: 200, EffectivePriority: 150, MasterAddress: "10.0.0.1",
		AdvertInterval: durationpb.New(100 * time.Millisecond),
		Vips:           []string{"10.0.0.100/24", "10.0.0.101/24"},
		VipsHeld:       []string{"10.0.0.100/24", "10.0.0.101/24"},
		LastTransition: &haav1.Transition{Time: list.GetInstances()[0].GetLastTransition().GetTime(),
			From: haav1.State_STATE_BACKUP, To: haav1.State_STATE_MASTER, Cause: "master_down_timer"},
		Counters: &haav1.Counters{AdvertsSent: 10, AdvertsReceived: 20, GarpsSent: 5, Transitions: 2,
			Drops: map[string]uint64{"ttl": 2, "auth_failure": 1}, TimerSlipMax: durationpb.New(3 * time.Millisecond)},
		SourceAddress: "10.0.0.1",
	}
	if !proto.Equal(got.GetInstance(), want) || !proto.Equal(list.GetInstances()[0], want) {
		t.Fatalf("instance\n got %v\nwant %v", got.GetInstance(), want)
	}
	if !got.GetInstance().GetLastTransition().GetTime().AsTime().Equal(testInstance().Status.LastChange) {
		t.Errorf("last transition time %v", got.GetInstance().GetLastTransition().GetTime().AsTime())
	}

	_, err = a.client.GetInstance(ctx, &haav1.GetInstanceRequest{Name: "VI_9"})
	wantCode(t, err, codes.NotFound, `instance "VI_9"`)

	_, err = a.client.GetInstance(ctx, &haav1.GetInstanceRequest{})
	st := wantCode(t, err, codes.InvalidArgument, "name: required")
	if v := violations(t, st); len(v) != 1 || v[0].GetField() != "name" {
		t.Errorf("violations %v", v)
	}
}

func TestGetConfig(t *testing.T) {
	core := newFakeCore()
	a := startAPI(t, core, nil)
	ctx := testCtx(t)
	resp, err := a.client.GetConfig(ctx, &haav1.GetConfigRequest{})
	if err != nil || resp.GetConfig() != nil || resp.GetGeneration() != 3 {
		t.Fatalf("before any config: %v, %v", resp, err)
	}
	core.do(func() { core.cfg = &haav1.AgentConfig{Name: "n1"} })
	resp, err = a.client.GetConfig(ctx, &haav1.GetConfigRequest{})
	if err != nil || resp.GetConfig().GetName() != "n1" || resp.GetHash() != "abc" {
		t.Fatalf("GetConfig: %v, %v", resp, err)
	}
}

func validConfig() *haav1.AgentConfig {
	return &haav1.AgentConfig{Name: "n1", Instances: []*haav1.Instance{
		{Name: "VI_1", Interface: "eth0", Vrid: 51, Vips: []string{"10.0.0.100/24"}}}}
}

func TestApplyConfig(t *testing.T) {
	core := newFakeCore()
	a := startAPI(t, core, nil)
	ctx := testCtx(t)

	// Dry run: planned, nothing applied; the options reach the core.
	three := uint64(3)
	resp, err := a.client.ApplyConfig(ctx, &haav1.ApplyConfigRequest{Config: validConfig(), DryRun: true, ExpectedGeneration: &three})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetApplied() || resp.GetChanged() || resp.GetGeneration() != 3 || len(resp.GetPlan().GetAdded()) != 1 {
		t.Fatalf("dry run %v", resp)
	}
	var c applyCall
	core.do(func() { c = core.applies[0] })
	if !c.opts.DryRun || !c.opts.Persist || c.opts.ExpectedGeneration == nil || *c.opts.ExpectedGeneration != 3 ||
		!proto.Equal(c.cfg, validConfig()) || c.cancellable {
		t.Fatalf("core got %+v", c)
	}

	resp, err = a.client.ApplyConfig(ctx, &haav1.ApplyConfigRequest{Config: validConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetApplied() || !resp.GetChanged() || resp.GetGeneration() != 4 || resp.GetHash() != "h4" {
		t.Fatalf("apply %v", resp)
	}
	var o node.ApplyOptions
	core.do(func() { o = core.applies[1].opts })
	if o.DryRun || !o.Persist || o.ExpectedGeneration != nil {
		t.Fatalf("options %+v", o)
	}

	// A stale generation.
	_, err = a.client.ApplyConfig(ctx, &haav1.ApplyConfigRequest{Config: validConfig(), ExpectedGeneration: &three})
	wantCode(t, err, codes.FailedPrecondition, "expected generation 3, running 4")

	// No configuration at all.
	_, err = a.client.ApplyConfig(ctx, &haav1.ApplyConfigRequest{})
	st := wantCode(t, err, codes.InvalidArgument, "config: required")
	if v := violations(t, st); len(v) != 1 || v[0].GetField() != "config" {
		t.Errorf("violations %v", v)
	}
	var n int
	core.do(func() { n = len(core.applies) })
	if n != 3 {
		t.Errorf("a nil configuration reached the core")
	}
}

func TestApplyConfigInvalidListsEveryProblem(t *testing.T) {
	core := newFakeCore()
	a := startAPI(t, core, nil)
	bad := &haav1.AgentConfig{Name: "n1", Instances: []*haav1.Instance{
		{Name: "VI_1", Interface: "eth0", Vrid: 300, Priority: proto.Uint32(0), Vips: []string{"10.0.0.1/33"}},
		{Name: "VI_1", Interface: "eth0", Vrid: 52, Version: 4, Vips: []string{"10.0.0.2/24"}},
	}}
	_, err := a.client.ApplyConfig(testCtx(t), &haav1.ApplyConfigRequest{Config: bad})
	st := wantCode(t, err, codes.InvalidArgument,
		"invalid configuration: instances[0].vrid: 300 is out of range 1..255; instances[0].priority: 0 is out of range",
		"and 2 more (5 problems in all")
	want := []string{"instances[0].vrid", "instances[0].priority", "instances[0].vips[0]", "instances[1].version", "instances[1].name"}
	v := violations(t, st)
	if len(v) != len(want) {
		t.Fatalf("violations %v, want %d", v, len(want))
	}
	for i, f := range want {
		if v[i].GetField() != f || v[i].GetDescription() == "" {
			t.Errorf("violation %d = %v, want field %s", i, v[i], f)
		}
	}
	if strings.Contains(v[0].GetDescription(), "instances[0]") {
		t.Errorf("description repeats the path: %q", v[0].GetDescription())
	}
}

func TestApplyConfigPartialFailure(t *testing.T) {
	core := newFakeCore()
	core.applyErr, core.applyPart = errors.New("instance VI_1: socket: permission denied"), true
	a := startAPI(t, core, nil)
	_, err := a.client.ApplyConfig(testCtx(t), &haav1.ApplyConfigRequest{Config: validConfig()})
	st := wantCode(t, err, codes.Internal, "configuration applied as generation 4, but: instance VI_1: socket: permission denied")
	var resp *haav1.ApplyConfigResponse
	for _, d := range st.Details() {
		if r, ok := d.(*haav1.ApplyConfigResponse); ok {
			resp = r
		}
	}
	if resp == nil || !resp.GetApplied() || resp.GetGeneration() != 4 {
		t.Fatalf("detail %v in %v", resp, st.Details())
	}
	if !strings.Contains(a.logs.String(), "permission denied") {
		t.Errorf("internal error not logged:\n%s", a.logs)
	}
}

func TestErrorMapping(t *testing.T) {
	for _, c := range []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("x: %w", node.ErrGenerationMismatch), codes.FailedPrecondition},
		{fmt.Errorf("nothing applied: %w /etc/haa/haad.yaml: %w", node.ErrPersist, os.ErrPermission), codes.FailedPrecondition},
		{fmt.Errorf("x: %w", node.ErrNotFound), codes.NotFound},
		{fmt.Errorf("x: %w", instances.ErrNotMaster), codes.FailedPrecondition},
		{fmt.Errorf("x: %w: %w", instances.ErrNoTakeover, context.DeadlineExceeded), codes.DeadlineExceeded},
		{fmt.Errorf("x: %w", node.ErrEventsLost), codes.OutOfRange},
		{fmt.Errorf("x: %w", node.ErrFutureEvent), codes.InvalidArgument},
		{fmt.Errorf("x: %w", node.ErrShutdown), codes.Unavailable},
		{fmt.Errorf("x: %w", context.Canceled), codes.Canceled},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{&config.Error{Fields: []config.FieldError{{Path: "a", Msg: "b"}}}, codes.InvalidArgument},
		{fmt.Errorf("nothing applied: %w", &config.Error{Fields: []config.FieldError{{Msg: "doc"}}}), codes.InvalidArgument},
		{errors.New("disk on fire"), codes.Internal},
	} {
		s := newServer(newFakeCore(), slog.New(slog.DiscardHandler))
		if got := status.Code(s.status(c.err)); got != c.code {
			t.Errorf("%v: code %v, want %v", c.err, got, c.code)
		}
	}
}

func TestFailover(t *testing.T) {
	core := newFakeCore()
	core.failoverAddr = netip.MustParseAddr("10.0.0.2")
	a := startAPI(t, core, nil)
	ctx := testCtx(t)

	resp, err := a.client.Failover(ctx, &haav1.FailoverRequest{Instance: "VI_1", Timeout: durationpb.New(3 * time.Second)})
	if err != nil || resp.GetNewMaster() != "10.0.0.2" {
		t.Fatalf("Failover: %v, %v", resp, err)
	}
	if _, err := a.client.Failover(ctx, &haav1.FailoverRequest{Instance: "VI_1"}); err != nil {
		t.Fatal(err)
	}
	var calls []failoverCall
	core.do(func() { calls = append(calls, core.failovers...) })
	if calls[0] != (failoverCall{"VI_1", 3 * time.Second}) || calls[1] != (failoverCall{"VI_1", 0}) {
		t.Fatalf("core got %v", calls)
	}

	_, err = a.client.Failover(ctx, &haav1.FailoverRequest{})
	wantCode(t, err, codes.InvalidArgument, "instance: required")
	_, err = a.client.Failover(ctx, &haav1.FailoverRequest{Instance: "VI_1", Timeout: durationpb.New(-time.Second)})
	wantCode(t, err, codes.InvalidArgument, "timeout")

	core.do(func() { core.failoverErr = fmt.Errorf("instance VI_1 is BACKUP here: %w", instances.ErrNotMaster) })
	_, err = a.client.Failover(ctx, &haav1.FailoverRequest{Instance: "VI_1"})
	wantCode(t, err, codes.FailedPrecondition, "BACKUP here")
	core.do(func() {
		core.failoverErr = fmt.Errorf("handed over, but within 1s %w: %w", instances.ErrNoTakeover, context.DeadlineExceeded)
	})
	_, err = a.client.Failover(ctx, &haav1.FailoverRequest{Instance: "VI_1"})
	wantCode(t, err, codes.DeadlineExceeded, "no other node took over")
	core.do(func() { core.failoverErr = fmt.Errorf("instance %q: %w", "VI_7", node.ErrNotFound) })
	_, err = a.client.Failover(ctx, &haav1.FailoverRequest{Instance: "VI_7"})
	wantCode(t, err, codes.NotFound)
	core.do(func() { calls = append(calls[:0], core.failovers...) })
	if len(calls) != 5 {
		t.Errorf("invalid requests reached the core: %v", calls)
	}
}

func TestSetMaintenance(t *testing.T) {
	core := newFakeCore()
	a := startAPI(t, core, nil)
	ctx := testCtx(t)
	resp, err := a.client.SetMaintenance(ctx, &haav1.SetMaintenanceRequest{Enabled: true, Ttl: durationpb.New(time.Hour)})
	if err != nil || !resp.GetMaintenance().GetEnabled() || resp.GetMaintenance().GetUntil() == nil {
		t.Fatalf("SetMaintenance: %v, %v", resp, err)
	}
	resp, err = a.client.SetMaintenance(ctx, &haav1.SetMaintenanceRequest{})
	if err != nil || resp.GetMaintenance().GetEnabled() {
		t.Fatalf("SetMaintenance off: %v, %v", resp, err)
	}
	var calls []maintCall
	core.do(func() { calls = append(calls, core.maints...) })
	if calls[0] != (maintCall{true, time.Hour}) || calls[1] != (maintCall{false, 0}) {
		t.Fatalf("core got %v", calls)
	}
	_, err = a.client.SetMaintenance(ctx, &haav1.SetMaintenanceRequest{Ttl: durationpb.New(time.Hour)})
	wantCode(t, err, codes.InvalidArgument, "ttl: only with enabled: true")
	_, err = a.client.SetMaintenance(ctx, &haav1.SetMaintenanceRequest{Enabled: true, Ttl: durationpb.New(-time.Hour)})
	wantCode(t, err, codes.InvalidArgument, "ttl")

	core.do(func() { core.maintErr = errors.New("writing state: read-only file system") })
	_, err = a.client.SetMaintenance(ctx, &haav1.SetMaintenanceRequest{Enabled: true})
	wantCode(t, err, codes.Internal, "maintenance set (enabled=true), but: writing state")
}

func appendEvents(l *node.EventLog, n int) {
	for range n {
		l.Append(&haav1.Event{Instance: "VI_1", Kind: &haav1.Event_PriorityChanged{PriorityChanged: &haav1.PriorityChanged{Priority: 100}}})
	}
}

func recvSeqs(t *testing.T, s grpc.ServerStreamingClient[haav1.WatchEventsResponse], n int) []uint64 {
	t.Helper()
	var seqs []uint64
	for range n {
		r, err := s.Recv()
		if err != nil {
			t.Fatalf("after %v: %v", seqs, err)
		}
		seqs = append(seqs, r.GetEvent().GetSeq())
	}
	return seqs
}

func TestWatchEventsResume(t *testing.T) {
	core := newFakeCore()
	appendEvents(core.events, 10)
	a := startAPI(t, core, nil)
	ctx := testCtx(t)

	since := uint64(7)
	s, err := a.client.WatchEvents(ctx, &haav1.WatchEventsRequest{SinceSeq: &since})
	if err != nil {
		t.Fatal(err)
	}
	if got := recvSeqs(t, s, 3); fmt.Sprint(got) != "[8 9 10]" {
		t.Fatalf("resumed with %v, want [8 9 10]", got)
	}
	appendEvents(core.events, 2)
	if got := recvSeqs(t, s, 2); fmt.Sprint(got) != "[11 12]" {
		t.Fatalf("then %v, want [11 12]", got)
	}

	// Without since_seq: only what comes after the subscription, which is
	// in place once the headers arrive.
	live, err := a.client.WatchEvents(ctx, &haav1.WatchEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := live.Header(); err != nil {
		t.Fatal(err)
	}
	appendEvents(core.events, 1)
	if got := recvSeqs(t, live, 1); fmt.Sprint(got) != "[13]" {
		t.Fatalf("live stream got %v, want [13]", got)
	}
	if got := recvSeqs(t, s, 1); fmt.Sprint(got) != "[13]" {
		t.Fatalf("resumed stream got %v, want [13]", got)
	}
}

func TestWatchEventsOutOfRange(t *testing.T) {
	core := newFakeCore()
	core.events = node.NewEventLog(4)
	appendEvents(core.events, 10)
	a := startAPI(t, core, nil)
	ctx := testCtx(t)

	old := uint64(2)
	s, err := a.client.WatchEvents(ctx, &haav1.WatchEventsRequest{SinceSeq: &old})
	if err == nil {
		_, err = s.Recv()
	}
	wantCode(t, err, codes.OutOfRange, "watch without since_seq")

	future := uint64(100)
	s, err = a.client.WatchEvents(ctx, &haav1.WatchEventsRequest{SinceSeq: &future})
	if err == nil {
		_, err = s.Recv()
	}
	wantCode(t, err, codes.InvalidArgument, "does not exist yet")

	// The oldest kept event is 7: resuming after 6 works.
	six := uint64(6)
	s, err = a.client.WatchEvents(ctx, &haav1.WatchEventsRequest{SinceSeq: &six})
	if err != nil {
		t.Fatal(err)
	}
	if got := recvSeqs(t, s, 4); fmt.Sprint(got) != "[7 8 9 10]" {
		t.Fatalf("got %v", got)
	}
	// A watcher that falls behind by more than the buffer is told so. The
	// stream reads concurrently: a burst far faster than one Send per
	// event leaves it behind.
	appendEvents(core.events, 10000)
	for {
		_, err := s.Recv()
		if err != nil {
			wantCode(t, err, codes.OutOfRange, "fell behind")
			break
		}
	}
}

// A watcher that goes away ends its stream on the server: the API then
// stops without waiting.
func TestWatchEventsEndsWhenClientLeaves(t *testing.T) {
	core := newFakeCore()
	a := startAPI(t, core, nil)
	ctx, cancel := context.WithCancel(testCtx(t))
	s, err := a.client.WatchEvents(ctx, &haav1.WatchEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Header(); err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(a.logs.String(), "method=/haa.v1.AgentService/WatchEvents") {
		if time.Now().After(deadline) {
			t.Fatalf("the stream did not end on the server:\n%s", a.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop ends the event streams (Unavailable) instead of waiting for them.
func TestStopEndsWatchers(t *testing.T) {
	core := newFakeCore()
	a := startAPI(t, core, nil)
	s, err := a.client.WatchEvents(testCtx(t), &haav1.WatchEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Header(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := a.l.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Stop took %v", d)
	}
	_, err = s.Recv()
	wantCode(t, err, codes.Unavailable, "reconnect with since_seq")
}

// TestStopDeliversLoggedEvents: the events logged before the API stops
// (a stopping haad's last transitions) reach a watcher before its stream
// ends, however little time is left between the two: here the watcher
// reads nothing until the stop, with more than a flow-control window of
// events queued, so the stream is still sending when the API stops.
func TestStopDeliversLoggedEvents(t *testing.T) {
	core := newFakeCore()
	core.events = node.NewEventLog(2000)
	a := startAPI(t, core, nil)
	s, err := a.client.WatchEvents(testCtx(t), &haav1.WatchEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Header(); err != nil {
		t.Fatal(err)
	}
	const n = 1000
	pad := strings.Repeat("x", 1000)
	for i := range n {
		core.events.Append(&haav1.Event{Instance: fmt.Sprintf("VI_%d", i), Kind: &haav1.Event_Error{Error: &haav1.InstanceError{Message: pad}}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- a.l.Stop(ctx) }()
	time.Sleep(50 * time.Millisecond) // the stop has begun: the stream is told to end
	for i := range n {
		e, err := s.Recv()
		if err != nil {
			t.Fatalf("event %d of %d lost at stop: %v", i+1, n, err)
		}
		if want := fmt.Sprintf("VI_%d", i); e.GetEvent().GetInstance() != want {
			t.Fatalf("event %d is %v, want %s", i+1, e.GetEvent(), want)
		}
	}
	_, err = s.Recv()
	wantCode(t, err, codes.Unavailable, "reconnect with since_seq")
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

func TestStateProto(t *testing.T) {
	for s, want := range map[vrrp.State]haav1.State{vrrp.Init: haav1.State_STATE_INIT, vrrp.Backup: haav1.State_STATE_BACKUP,
		vrrp.Master: haav1.State_STATE_MASTER, vrrp.Fault: haav1.State_STATE_FAULT, vrrp.State(9): haav1.State_STATE_UNSPECIFIED} {
		if got := stateProto(s); got != want {
			t.Errorf("%v: %v, want %v", s, got, want)
		}
	}
}
