package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/node"
	"github.com/haa-dev/haa/node/fleet"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// fakeFleet is a FleetCore that records the documents it is given.
type fakeFleet struct {
	mu      sync.Mutex
	applies []*haav1.Fleet
}

func (f *fakeFleet) FleetStatus() fleet.Status { return fleet.Status{Node: "n1"} }

func (f *fakeFleet) ApplyFleet(_ context.Context, doc *haav1.Fleet, _ node.FleetApplyOptions) (node.FleetApplyResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applies = append(f.applies, doc)
	return node.FleetApplyResult{Node: "n1", FleetGeneration: doc.GetGeneration()}, nil
}

func (f *fakeFleet) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.applies)
}

// withUnknown adds field num (a varint) to m's unknown fields: what a newer
// client's field looks like to this haad.
func withUnknown[M proto.Message](m M, num protowire.Number) M {
	r := m.ProtoReflect()
	b := protowire.AppendTag(r.GetUnknown(), num, protowire.VarintType)
	r.SetUnknown(protowire.AppendVarint(b, 1))
	return m
}

// A request carrying a field this haad does not know is refused, with the
// place of the field, at any depth; nothing reaches the agent.
func TestUnknownFieldsAreRefused(t *testing.T) {
	core := newFakeCore()
	ff := &fakeFleet{}
	a := startAPIWith(t, core, nil, func(s *Server) { s.fleet = NewFleet(ff, s.log) })
	ctx := testCtx(t)

	cfg := validConfig()
	withUnknown(cfg.Instances[0], 999)
	_, err := a.client.ApplyConfig(ctx, &haav1.ApplyConfigRequest{Config: cfg})
	st := wantCode(t, err, codes.InvalidArgument, "config.instances[0]: unknown field 999", "newer haactl?")
	if v := violations(t, st); len(v) != 1 || v[0].GetField() != "config.instances[0]" ||
		!strings.Contains(v[0].GetDescription(), "unknown field 999") {
		t.Errorf("violations %v", v)
	}

	// At the top of the request, and several at once.
	_, err = a.client.ApplyConfig(ctx, withUnknown(withUnknown(&haav1.ApplyConfigRequest{Config: validConfig()}, 50), 51))
	st = wantCode(t, err, codes.InvalidArgument, "unknown fields 50, 51 in the request")
	if v := violations(t, st); len(v) != 1 || v[0].GetField() != "" {
		t.Errorf("violations %v", v)
	}

	// The same configuration without the field applies.
	if _, err := a.client.ApplyConfig(ctx, &haav1.ApplyConfigRequest{Config: validConfig()}); err != nil {
		t.Fatal(err)
	}
	var n int
	core.do(func() { n = len(core.applies) })
	if n != 1 {
		t.Errorf("%d applies reached the core, want only the one without unknown fields", n)
	}

	// FleetService: in a map's message value.
	doc := &haav1.Fleet{Kind: "Fleet", Nodes: []string{"n1", "lb2"}, Instances: []*haav1.FleetInstance{
		{Name: "VI_1", Interface: "eth0", Vrid: 51, Overrides: map[string]*haav1.Instance{
			"lb2": withUnknown(&haav1.Instance{Interface: "ens4"}, 77)}}}}
	_, err = haav1.NewFleetServiceClient(a.conn).ApplyFleet(ctx, &haav1.ApplyFleetRequest{Document: doc})
	st = wantCode(t, err, codes.InvalidArgument, "document.instances[0].overrides.lb2: unknown field 77")
	if v := violations(t, st); len(v) != 1 || v[0].GetField() != "document.instances[0].overrides.lb2" {
		t.Errorf("violations %v", v)
	}
	if ff.calls() != 0 {
		t.Errorf("the document reached the agent")
	}

	// Every method: a unary one and a stream.
	_, err = a.client.GetNode(ctx, withUnknown(&haav1.GetNodeRequest{}, 3))
	wantCode(t, err, codes.InvalidArgument, "unknown field 3 in the request")
	s, err := a.client.WatchEvents(ctx, withUnknown(&haav1.WatchEventsRequest{}, 9))
	if err == nil {
		_, err = s.Recv()
	}
	wantCode(t, err, codes.InvalidArgument, "unknown field 9 in the request")
}

// rawCodec sends and receives bytes as they are.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// A request whose bytes are not a protobuf message is InvalidArgument, not
// Internal, on every method.
func TestUndecodableRequest(t *testing.T) {
	core := newFakeCore()
	a := startAPI(t, core, nil)
	ctx := testCtx(t)
	garbage := []byte{0x0a, 0x05, 0x01} // field 1, 5 bytes long, 1 byte given
	for _, method := range []string{"/haa.v1.AgentService/ApplyConfig", "/haa.v1.AgentService/GetNode",
		"/grpc.health.v1.Health/Check"} {
		var out []byte
		err := a.conn.Invoke(ctx, method, &garbage, &out, grpc.ForceCodec(rawCodec{}))
		wantCode(t, err, codes.InvalidArgument, "the request could not be decoded")
	}
	s, err := a.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/haa.v1.AgentService/WatchEvents",
		grpc.ForceCodec(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendMsg(&garbage); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var out []byte
	wantCode(t, s.RecvMsg(&out), codes.InvalidArgument, "the request could not be decoded")
	var n int
	core.do(func() { n = len(core.applies) })
	if n != 0 {
		t.Errorf("an undecodable request reached the core")
	}
	// Good requests still work (the server's codec encodes as the
	// standard one does).
	if _, err := a.client.GetNode(ctx, &haav1.GetNodeRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := healthpb.NewHealthClient(a.conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
}

// A huge invalid value is answered InvalidArgument with a short message:
// a status that echoes it does not fit in the HTTP/2 trailers (the client
// then sees Unavailable).
func TestHugeValueShortError(t *testing.T) {
	a := startAPI(t, newFakeCore(), nil)
	huge := strings.Repeat("x", 3<<20)
	for name, cfg := range map[string]*haav1.AgentConfig{
		"name": {Name: "n1", Instances: []*haav1.Instance{{Name: huge, Interface: "eth0", Vrid: 51, Vips: []string{"10.0.0.100/24"}}}},
		"vip":  {Name: "n1", Instances: []*haav1.Instance{{Name: "VI_1", Interface: "eth0", Vrid: 51, Vips: []string{huge}}}},
	} {
		_, err := a.client.ApplyConfig(testCtx(t), &haav1.ApplyConfigRequest{Config: cfg})
		st := wantCode(t, err, codes.InvalidArgument, "invalid configuration: instances[0].", "bytes more")
		if n := len(st.Message()); n > 4096 {
			t.Errorf("%s: message of %d bytes", name, n)
		}
		for _, v := range violations(t, st) {
			if n := len(v.GetDescription()); n > 1024 {
				t.Errorf("%s: violation description of %d bytes", name, n)
			}
		}
	}
}

// The status message and details are capped whatever the error says.
func TestStatusIsCapped(t *testing.T) {
	s := newServer(newFakeCore(), slog.New(slog.DiscardHandler))
	huge := strings.Repeat("é", 1<<20)
	st := wantCode(t, s.status(errors.New(huge)), codes.Internal, "bytes more")
	if len(st.Message()) > 4096 {
		t.Errorf("message of %d bytes", len(st.Message()))
	}
	if !strings.HasPrefix(st.Message(), "éé") || !utf8.ValidString(st.Message()) {
		t.Errorf("message cut badly: %q...", st.Message()[:16])
	}
	st = wantCode(t, invalidArgument("name", huge), codes.InvalidArgument, "bytes more")
	if v := violations(t, st); len(v[0].GetDescription()) > 1024 || len(st.Message()) > 4096 {
		t.Errorf("description of %d bytes, message of %d", len(v[0].GetDescription()), len(st.Message()))
	}
}

// Nothing applied because the configuration file cannot be written: the
// operator must fix the disk, so FailedPrecondition, with the path.
func TestPersistFailure(t *testing.T) {
	core := newFakeCore()
	core.applyErr = fmt.Errorf("nothing applied: %w %s: %w", node.ErrPersist, "/etc/haa/haad.yaml",
		fmt.Errorf("open /etc/haa/.haad.yaml.tmp: %w", syscall.EROFS))
	a := startAPI(t, core, nil)
	_, err := a.client.ApplyConfig(testCtx(t), &haav1.ApplyConfigRequest{Config: validConfig()})
	wantCode(t, err, codes.FailedPrecondition, "nothing applied", "/etc/haa/haad.yaml", "read-only file system",
		"apply again")
	if strings.Contains(a.logs.String(), "level=ERROR") {
		t.Errorf("an expected refusal is logged as an internal error:\n%s", a.logs)
	}
}
