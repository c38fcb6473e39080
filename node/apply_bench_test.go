package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/node/host/hosttest"
	"github.com/haa-dev/haa/node/lvs"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// bigConfig is bench-lvs's table: services virtual servers of dests real
// servers each.
func bigConfig(services, dests int) *haav1.AgentConfig {
	cfg := &haav1.AgentConfig{Name: "n1", VirtualServers: make([]*haav1.VirtualServer, services)}
	for i := range services {
		v := 0x0a640001 + i
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 80)
		vs := &haav1.VirtualServer{Address: addr.String(), Scheduler: "wrr", RealServers: make([]*haav1.RealServer, dests)}
		for j := range dests {
			d := i*dests + j
			rs := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 200, byte(d >> 8), byte(d)}), uint16(8080+j%10))
			vs.RealServers[j] = &haav1.RealServer{Address: fmt.Sprint(rs), Weight: proto.Uint32(uint32(j%3 + 1))}
		}
		cfg.VirtualServers[i] = vs
	}
	return cfg
}

// BenchmarkApplyLarge applies 5,000 virtual servers x 5 real servers
// (persisted, as the API does) and removes them again, on a fake host and
// backend: the agent's own cost of a large apply.
func BenchmarkApplyLarge(b *testing.B) {
	h := hosttest.NewNetwork().NewHost("n1")
	h.AddLink("eth0", "lan", "10.77.0.1/24")
	a, err := New(WithHost(h), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		WithBalancerBackend(&recordingBackend{state: lvs.State{}}), WithConfigFile(filepath.Join(b.TempDir(), "haad.yaml")))
	if err != nil {
		b.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	big, small := bigConfig(5000, 5), &haav1.AgentConfig{Name: "n1"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Apply(context.Background(), big, ApplyOptions{Persist: true}); err != nil {
			b.Fatal(err)
		}
		if _, err := a.Apply(context.Background(), small, ApplyOptions{Persist: true}); err != nil {
			b.Fatal(err)
		}
	}
}
