package server

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/haa-dev/haa/node"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// requests returns haa_api_requests_total by "method code".
func requests(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "haa_api_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var method, code string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "method":
					method = l.GetValue()
				case "code":
					code = l.GetValue()
				}
			}
			out[method+" "+code] = m.GetCounter().GetValue()
		}
	}
	return out
}

// listenWithMetrics serves core's API (unix socket, and api) counting its
// calls in a new registry.
func listenWithMetrics(t *testing.T, core *fakeCore, api *haav1.ApiConfig) (*Listeners, *prometheus.Registry, string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewAPIMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewAPIMetrics(reg); err == nil {
		t.Fatal("registering twice: no error")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	socket := filepath.Join(t.TempDir(), "haa.sock")
	l, err := Listen(newServer(core, log), api, socket, log, WithAPIMetrics(m))
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
		<-served
	})
	return l, reg, socket
}

func TestAPIMetricsCountCalls(t *testing.T) {
	core := newFakeCore()
	core.info = node.NodeInfo{Name: "n1", MetricsAddress: "http://127.0.0.1:9650/metrics"}
	_, reg, socket := listenWithMetrics(t, core, nil)

	// Before any call every method is there, at zero.
	got := requests(t, reg)
	for _, k := range []string{"/haa.v1.AgentService/GetNode OK", "/haa.v1.AgentService/WatchEvents OK",
		"/haa.v1.AgentService/Failover OK", "/grpc.health.v1.Health/Check OK"} {
		if v, ok := got[k]; !ok || v != 0 {
			t.Errorf("%s: %v, %v before any call; want 0", k, v, ok)
		}
	}

	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := haav1.NewAgentServiceClient(conn)
	ctx := testCtx(t)
	for range 2 {
		resp, err := c.GetNode(ctx, &haav1.GetNodeRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if a := resp.GetNode().GetMetricsAddress(); a != "http://127.0.0.1:9650/metrics" {
			t.Fatalf("metrics address %q", a)
		}
	}
	_, err = c.GetInstance(ctx, &haav1.GetInstanceRequest{Name: "nope"})
	wantCode(t, err, codes.NotFound)
	future := uint64(1 << 40)
	st, err := c.WatchEvents(ctx, &haav1.WatchEventsRequest{SinceSeq: &future})
	if err == nil {
		_, err = st.Recv()
	}
	wantCode(t, err, codes.InvalidArgument)
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}

	got = requests(t, reg)
	for k, want := range map[string]float64{
		"/haa.v1.AgentService/GetNode OK":                  2,
		"/haa.v1.AgentService/GetInstance NotFound":        1,
		"/haa.v1.AgentService/WatchEvents InvalidArgument": 1,
		"/grpc.health.v1.Health/Check OK":                  1,
		"/haa.v1.AgentService/Failover OK":                 0,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], want, got)
		}
	}
}

// A call refused before its handler (a request this haad does not know)
// is counted: the counter is the outermost interceptor. A client refused in
// the TLS handshake makes no call: nothing is counted.
func TestAPIMetricsCountRefusedCalls(t *testing.T) {
	ca := newCA(t, t.TempDir(), "ca")
	srvCert, srvKey := ca.issue(t, "server", netip.MustParseAddr("127.0.0.1"))
	core := newFakeCore()
	core.info.Name = "n1"
	l, reg, socket := listenWithMetrics(t, core, &haav1.ApiConfig{Tcp: &haav1.TcpListener{Listen: "127.0.0.1:0",
		Tls: &haav1.Tls{CertFile: srvCert, KeyFile: srvKey, ClientCaFile: ca.path("ca.crt")}}})
	wantCode(t, tlsClient(t, tcpAddr(t, l), ca, "", ""), codes.Unavailable)
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = haav1.NewAgentServiceClient(conn).GetNode(testCtx(t), withUnknown(&haav1.GetNodeRequest{}, 5))
	wantCode(t, err, codes.InvalidArgument)
	got := requests(t, reg)
	if got["/haa.v1.AgentService/GetNode InvalidArgument"] != 1 || got["/haa.v1.AgentService/GetNode Unavailable"] != 0 ||
		got["/haa.v1.AgentService/GetNode Unauthenticated"] != 0 {
		t.Fatalf("requests %v: want one InvalidArgument GetNode, nothing else", got)
	}
}

// Without the option nothing is counted and nothing is registered.
func TestListenWithoutMetrics(t *testing.T) {
	a := startAPI(t, newFakeCore(), nil)
	if a.l.metrics != nil {
		t.Fatal("metrics without WithAPIMetrics")
	}
	if _, err := a.client.GetNode(testCtx(t), &haav1.GetNodeRequest{}); err != nil {
		t.Fatal(err)
	}
}
