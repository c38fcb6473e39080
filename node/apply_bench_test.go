package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/node/host/hosttest"
	kaconf "github.com/haa-dev/haa/node/keepalived"
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

// benchAgent is an agent on a fake host and load-balancing backend,
// persisting to a file of b's, shut down when b ends.
func benchAgent(b *testing.B) *Agent {
	h := hosttest.NewNetwork().NewHost("n1")
	h.AddLink("eth0", "lan", "10.77.0.1/24")
	a, err := New(WithHost(h), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		WithBalancerBackend(&recordingBackend{state: lvs.State{}}), WithConfigFile(filepath.Join(b.TempDir(), "haad.yaml")))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Shutdown(context.Background()) })
	return a
}

// BenchmarkApplyLarge applies 5,000 virtual servers x 5 real servers
// (persisted, as the API does) and removes them again, on a fake host and
// backend: the agent's own cost of a large apply.
func BenchmarkApplyLarge(b *testing.B) {
	a := benchAgent(b)
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

// kaText is bench-lvs-keepalived's keepalived.conf: n virtual servers x 5
// real servers, one weight w.
func kaText(n, w int) []byte {
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, "virtual_server 10.1.%d.%d 80 {\n    delay_loop 60\n    lb_algo wrr\n    lb_kind NAT\n    protocol TCP\n", i>>8, i&255)
		for j := range 5 {
			k := i*5 + j + 1
			wt := j%3 + 1
			if i == n/2 && j == 1 {
				wt = w
			}
			fmt.Fprintf(&sb, "    real_server 10.200.%d.%d 8080 {\n        weight %d\n    }\n", k>>8, k&255, wt)
		}
		sb.WriteString("}\n")
	}
	return []byte(sb.String())
}

// BenchmarkReloadKeepalived is what a SIGHUP of haad --keepalived-config
// does with 1,000 virtual servers x 5 real servers, one weight changed:
// read and convert the file (which validates, resolving it), apply the
// conversion resolved (programming the one change), on a fake host and
// backend.
func BenchmarkReloadKeepalived(b *testing.B) {
	a := benchAgent(b)
	dir := b.TempDir()
	var paths []string
	for k, text := range [][]byte{kaText(1000, 9), kaText(1000, 2)} {
		p := filepath.Join(dir, fmt.Sprintf("k%d.conf", k))
		if err := os.WriteFile(p, text, 0o644); err != nil {
			b.Fatal(err)
		}
		paths = append(paths, p)
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		restore := RelaxGC() // as haad's reload
		cfg, resolved, _, err := kaconf.LoadResolved(paths[i%2], kaconf.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.Apply(context.Background(), cfg, ApplyOptions{Resolved: resolved}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		restore()
		time.Sleep(50 * time.Millisecond) // its collection, in the background, done: not timed (haad's table is complete before it)
		b.StartTimer()
		i++
	}
}

// fleetLBDoc is bench-fleet's document: n virtual servers x 5 real
// servers directed by n1 and n2, at generation gen.
func fleetLBDoc(n int, gen uint64) *haav1.Fleet {
	doc := &haav1.Fleet{Kind: "Fleet", Nodes: []string{"n1", "n2"}, Generation: gen}
	for _, vs := range bigConfig(n, 5).VirtualServers {
		fv := &haav1.FleetVirtualServer{Address: vs.Address, Scheduler: vs.Scheduler, Directors: []string{"n1", "n2"}}
		fv.RealServers = append(fv.RealServers, vs.RealServers...)
		doc.VirtualServers = append(doc.VirtualServers, fv)
	}
	return doc
}

// BenchmarkApplyFleetLB is one director's part of bench-fleet's apply:
// the dry run and the apply of a fleet document of 1,000 virtual servers
// x 5 real servers, then of one without them, on a fake host and backend.
func BenchmarkApplyFleetLB(b *testing.B) {
	a := benchAgent(b)
	if _, err := a.Apply(context.Background(), &haav1.AgentConfig{Name: "n1"}, ApplyOptions{}); err != nil {
		b.Fatal(err)
	}
	gen := uint64(0)
	b.ReportAllocs()
	for b.Loop() {
		for _, n := range []int{1000, 0} {
			gen++
			doc := fleetLBDoc(n, gen)
			if _, err := a.ApplyFleet(context.Background(), doc, FleetApplyOptions{DryRun: true, Source: "api"}); err != nil {
				b.Fatal(err)
			}
			if _, err := a.ApplyFleet(context.Background(), doc, FleetApplyOptions{Source: "api"}); err != nil {
				b.Fatal(err)
			}
		}
	}
}
