package balancer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/lvs"
	"github.com/haa-dev/haa/node/lvs/lvstest"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// fakeBackend records the plans it is given and keeps the state they make.
type fakeBackend struct {
	mu       sync.Mutex
	plans    []lvs.Plan
	state    lvs.State
	refuse   string // Supports refuses this scheduler
	failNext int    // Apply fails this many times more
	closed   bool
	reads    int
}

func (f *fakeBackend) Name() string { return "fake" }

func (f *fakeBackend) Supports(s lvs.Service) error {
	if s.Scheduler == f.refuse {
		return fmt.Errorf("scheduler %s is not available", s.Scheduler)
	}
	return nil
}

func (f *fakeBackend) Apply(_ context.Context, p lvs.Plan) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failNext > 0 {
		f.failNext--
		return errors.New("injected failure")
	}
	f.plans = append(f.plans, p)
	lvs.Apply(f.state, p)
	return nil
}

func (f *fakeBackend) Read(context.Context) (lvs.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return f.state.Clone(), nil
}

func (f *fakeBackend) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	return nil
}

// since returns the ops of the plans after the first n, as strings.
func (f *fakeBackend) since(n int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, p := range f.plans[n:] {
		for _, op := range p {
			out = append(out, op.String())
		}
	}
	return out
}

func (f *fakeBackend) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.plans)
}

func (f *fakeBackend) dests(k lvs.Key) map[netip.AddrPort]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if vs := f.state[k]; vs != nil {
		return lvstest.Weights(vs.Dests)
	}
	return nil
}

// listener accepts TCP connections on 127.0.0.1 until closed.
func listener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testBalancer is a Balancer and the way the agent drives it.
type testBalancer struct {
	*Balancer
	t *testing.T
}

func lbAgent(t *testing.T, fb *fakeBackend) *testBalancer {
	t.Helper()
	b := New(Deps{Backend: fb, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return &testBalancer{b, t}
}

// Apply prepares and (unless dry) commits a configuration, as the agent's
// apply does.
func (b *testBalancer) Apply(ctx context.Context, cfg *haav1.AgentConfig, opts applyOptions) (struct{}, error) {
	c, err := config.Resolve(cfg)
	if err != nil {
		return struct{}{}, err
	}
	ch, err := b.Prepare(c)
	if err != nil || opts.DryRun {
		return struct{}{}, err
	}
	return struct{}{}, b.Commit(ctx, ch)
}

// Shutdown closes the balancer, as the agent's does.
func (b *testBalancer) Shutdown(ctx context.Context) error { return b.Close(ctx) }

// Backend is the backend's name and reason, once opened.
func (b *testBalancer) Backend() (string, string) {
	s := b.Status()
	if !s.Open {
		return "", ""
	}
	return s.Backend, s.Reason
}

// SetRealServer is the API's call.
func (b *testBalancer) SetRealServer(vs, rs string, act RealServerAction) (RealServer, error) {
	return b.Balancer.SetRealServer(context.Background(), vs, rs, act)
}

type applyOptions struct{ DryRun bool }

func lbConfig(t *testing.T, yaml string) *haav1.AgentConfig {
	t.Helper()
	cfg, err := config.Parse([]byte("name: lb1\n" + yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestBalancerProgramsOnlyWhatChanged drives the agent's virtual servers
// with real TCP checks against local listeners and a recording backend:
// every change, whether a check, the API or a new configuration, reaches
// the backend as the smallest plan.
func TestBalancerProgramsOnlyWhatChanged(t *testing.T) {
	fb := &fakeBackend{state: lvs.State{}}
	a := lbAgent(t, fb)
	ln1, ln2 := listener(t), listener(t)
	rs1 := netip.MustParseAddrPort(ln1.Addr().String())
	rs2 := netip.MustParseAddrPort(ln2.Addr().String())
	key := lvs.Key{Addr: netip.MustParseAddrPort("10.9.0.1:80"), Proto: lvs.TCP}
	doc := fmt.Sprintf(`virtualServers:
  - name: web
    address: 10.9.0.1:80
    check: {tcp: {}, interval: 100ms, timeout: 100ms, retryDelay: 20ms, fall: 2, rise: 2, jitter: 0s}
    realServers:
      - address: %s
      - {address: %s, weight: 2}
`, rs1, rs2)
	ctx := context.Background()
	if _, err := a.Apply(ctx, lbConfig(t, doc), applyOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, want := fb.since(0), []string{
		"add-service " + key.String(),
		"add-dest " + key.String() + " " + rs1.String() + " weight 1",
		"add-dest " + key.String() + " " + rs2.String() + " weight 2",
	}; !slices.Equal(sorted(got), sorted(want)) {
		t.Fatalf("first plan:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if name, _ := a.Backend(); name != "fake" {
		t.Errorf("Backend() = %q", name)
	}

	// A real server fails its checks: its destination alone goes.
	n := fb.count()
	ln2.Close()
	waitFor(t, "rs2 removed", func() bool { _, ok := fb.dests(key)[rs2]; return !ok })
	if got := fb.since(n); !slices.Equal(got, []string{"delete-dest " + key.String() + " " + rs2.String() + " weight 2"}) {
		t.Errorf("plans after rs2 failed: %v", got)
	}
	vss, backend := a.VirtualServers(ctx)
	if backend != "fake" || len(vss) != 1 {
		t.Fatalf("VirtualServers: %v %q", vss, backend)
	}
	if r := vss[0].Reals[1]; r.Healthy || r.Programmed || r.LastResult == "" {
		t.Errorf("rs2 after failing: %v", r)
	}

	// The API: weight, drain, enable; one op each.
	for _, step := range []struct {
		act  RealServerAction
		want string
	}{
		{RealServerAction{Weight: ptr(5)}, "update-dest " + key.String() + " " + rs1.String() + " weight 5"},
		{RealServerAction{Drain: true}, "update-dest " + key.String() + " " + rs1.String() + " weight 0"},
		{RealServerAction{Enable: true}, "update-dest " + key.String() + " " + rs1.String() + " weight 1"},
	} {
		n = fb.count()
		if _, err := a.SetRealServer("web", rs1.String(), step.act); err != nil {
			t.Fatal(err)
		}
		if got := fb.since(n); !slices.Equal(got, []string{step.want}) {
			t.Errorf("after %+v: %v, want %s", step.act, got, step.want)
		}
	}
	if _, err := a.SetRealServer("nope", rs1.String(), RealServerAction{Drain: true}); !errors.Is(err, ErrNoVirtualServer) {
		t.Errorf("unknown virtual server: %v", err)
	}
	if _, err := a.SetRealServer("web", "10.1.1.1:1", RealServerAction{Drain: true}); !errors.Is(err, ErrNoRealServer) {
		t.Errorf("unknown real server: %v", err)
	}
	if _, err := a.SetRealServer("web", rs1.String(), RealServerAction{Weight: ptr(70000)}); !errors.Is(err, ErrBadWeight) {
		t.Errorf("weight 70000: %v", err)
	}

	// A new configuration that only adds a real server adds only it; the
	// failed one stays failed (its health survives the change).
	rs3 := netip.MustParseAddrPort("127.0.0.1:9") // nothing listens: it fails after fall checks
	n = fb.count()
	doc2 := strings.Replace(doc, "      - {address: "+rs2.String()+", weight: 2}\n",
		"      - {address: "+rs2.String()+", weight: 2}\n      - address: "+rs3.String()+"\n", 1)
	if _, err := a.Apply(ctx, lbConfig(t, doc2), applyOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := fb.since(n); !slices.Equal(got, []string{"add-dest " + key.String() + " " + rs3.String() + " weight 1"}) {
		t.Errorf("plans after adding rs3: %v", got)
	}
	waitFor(t, "rs3 removed", func() bool { _, ok := fb.dests(key)[rs3]; return !ok })

	// An unsupported scheduler is refused with its path; nothing changes.
	fb.mu.Lock()
	fb.refuse = "sh"
	fb.mu.Unlock()
	n = fb.count()
	_, err := a.Apply(ctx, lbConfig(t, strings.Replace(doc, "    address: 10.9.0.1:80\n", "    address: 10.9.0.1:80\n    scheduler: sh\n", 1)), applyOptions{})
	if fields := config.Fields(err); len(fields) != 1 || fields[0].Path != "virtualServers[0]" || !strings.Contains(fields[0].Msg, "sh") {
		t.Errorf("unsupported scheduler: %v", err)
	}
	if got := fb.since(n); len(got) != 0 {
		t.Errorf("a refused configuration changed the backend: %v", got)
	}

	// Removing the virtual server removes its service.
	n = fb.count()
	if _, err := a.Apply(ctx, lbConfig(t, ""), applyOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := fb.since(n); !slices.Equal(got, []string{"delete-service " + key.String()}) {
		t.Errorf("plans after removing web: %v", got)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := a.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if !fb.closed {
		t.Error("backend not closed at shutdown")
	}
}

// TestBalancerShutdownRemovesServices: a clean stop removes what the agent
// programmed, as keepalived does.
func TestBalancerShutdownRemovesServices(t *testing.T) {
	fb := &fakeBackend{state: lvs.State{}}
	a := lbAgent(t, fb)
	if _, err := a.Apply(context.Background(), lbConfig(t, `virtualServers:
  - {address: 10.9.0.1:80, realServers: [{address: 10.9.1.1}]}
  - {address: 10.9.0.2:53, protocol: udp, sorryServer: "10.9.1.9:53"}
`), applyOptions{}); err != nil {
		t.Fatal(err)
	}
	fb.mu.Lock()
	if len(fb.state) != 2 {
		t.Errorf("programmed %d services, want 2", len(fb.state))
	}
	fb.mu.Unlock()
	vss, _ := a.VirtualServers(context.Background())
	if len(vss) != 2 || vss[0].Name != "10.9.0.1:80/tcp" || !vss[1].SorryActive {
		t.Errorf("VirtualServers: %v", vss)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if len(fb.state) != 0 {
		t.Errorf("after shutdown the backend holds %v", fb.state)
	}
}

func ptr[T any](v T) *T { return &v }

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestBalancerRetriesAFailedProgram: a plan the backend refused is
// programmed again by the repair loop, without any change to the
// configuration or to health.
func TestBalancerRetriesAFailedProgram(t *testing.T) {
	fb := &fakeBackend{state: lvs.State{}, failNext: 1}
	a := lbAgent(t, fb)
	_, err := a.Apply(context.Background(), lbConfig(t, `virtualServers:
  - {address: 10.9.0.1:80, realServers: [{address: 10.9.1.1}]}
`), applyOptions{})
	if err != nil {
		t.Fatalf("Apply with a failing backend: %v, want the configuration applied and the program retried", err)
	}
	key := lvs.Key{Addr: netip.MustParseAddrPort("10.9.0.1:80"), Proto: lvs.TCP}
	waitFor(t, "the service programmed by the repair loop", func() bool {
		return fb.dests(key)[netip.MustParseAddrPort("10.9.1.1:80")] == 1
	})
}

// TestBalancerFirstRepairAfterAnInterval: the table is read back when the
// backend opens, then once a repair interval has passed, not at the repair
// loop's first tick (from the zero time, a 1,000-virtual-server start read
// the whole table back while its first program waited).
func TestBalancerFirstRepairAfterAnInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fb := &fakeBackend{state: lvs.State{}}
		a := lbAgent(t, fb)
		if _, err := a.Apply(context.Background(), lbConfig(t, `virtualServers:
  - {address: 10.9.0.1:80, realServers: [{address: 10.9.1.1}]}
`), applyOptions{}); err != nil {
			t.Fatal(err)
		}
		reads := func() int {
			fb.mu.Lock()
			defer fb.mu.Unlock()
			return fb.reads
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n := reads(); n != 1 {
			t.Errorf("%d reads of the table 5 s after the start, want 1 (when the backend opened)", n)
		}
		time.Sleep(repairEvery)
		synctest.Wait()
		if n := reads(); n != 2 {
			t.Errorf("%d reads of the table a repair interval later, want 2", n)
		}
	})
}

// TestBalancerRenameKeepsHealth: renaming a virtual server (same address)
// keeps its real servers' health: a failed one is not added back.
func TestBalancerRenameKeepsHealth(t *testing.T) {
	fb := &fakeBackend{state: lvs.State{}}
	a := lbAgent(t, fb)
	ln := listener(t)
	up := netip.MustParseAddrPort(ln.Addr().String())
	down := netip.MustParseAddrPort("127.0.0.1:9")
	doc := func(name string) *haav1.AgentConfig {
		return lbConfig(t, fmt.Sprintf(`virtualServers:
  - name: %s
    address: 10.9.0.1:80
    check: {tcp: {}, interval: 100ms, timeout: 100ms, retryDelay: 20ms, fall: 1, jitter: 0s}
    realServers: [{address: %s}, {address: %s}]
`, name, up, down))
	}
	if _, err := a.Apply(context.Background(), doc("web"), applyOptions{}); err != nil {
		t.Fatal(err)
	}
	key := lvs.Key{Addr: netip.MustParseAddrPort("10.9.0.1:80"), Proto: lvs.TCP}
	waitFor(t, "the failed real server removed", func() bool { _, ok := fb.dests(key)[down]; return !ok })
	n := fb.count()
	if _, err := a.Apply(context.Background(), doc("www"), applyOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := fb.since(n); len(got) != 0 {
		t.Errorf("renaming the virtual server programmed %v, want nothing", got)
	}
	vss, _ := a.VirtualServers(context.Background())
	if len(vss) != 1 || vss[0].Name != "www" || vss[0].Reals[1].Healthy {
		t.Errorf("after the rename: %v", vss)
	}
	if _, err := a.SetRealServer("www", up.String(), RealServerAction{Drain: true}); err != nil {
		t.Errorf("the renamed virtual server does not take API calls: %v", err)
	}
}

// TestBalancerRetriesAFailedRemoval: a virtual server removed while the
// backend refuses is removed by the repair loop, the last one too.
func TestBalancerRetriesAFailedRemoval(t *testing.T) {
	fb := &fakeBackend{state: lvs.State{}}
	a := lbAgent(t, fb)
	if _, err := a.Apply(context.Background(), lbConfig(t, `virtualServers:
  - {address: 10.9.0.1:80, realServers: [{address: 10.9.1.1}]}
`), applyOptions{}); err != nil {
		t.Fatal(err)
	}
	fb.mu.Lock()
	fb.failNext = 1
	fb.mu.Unlock()
	if _, err := a.Apply(context.Background(), lbConfig(t, ""), applyOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the removed service deleted by the repair loop", func() bool {
		fb.mu.Lock()
		defer fb.mu.Unlock()
		return len(fb.state) == 0
	})
}

// TestBalancerDryRunOpensNothing: a dry run (haactl diff, apply
// --dry-run) checks virtual servers against the backend it would use
// without opening it.
func TestBalancerDryRunOpensNothing(t *testing.T) {
	fb := &fakeBackend{state: lvs.State{}}
	a := lbAgent(t, fb)
	opened := 0
	a.open = func(string) (lvs.Backend, string, error) { opened++; return fb, "test", nil }
	cfg := lbConfig(t, `virtualServers:
  - {address: 10.9.0.1:80, realServers: [{address: 10.9.1.1}]}
`)
	if _, err := a.Apply(context.Background(), cfg, applyOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if name, _ := a.Backend(); opened != 0 || name != "" {
		t.Errorf("a dry run opened the backend (%d times, %q)", opened, name)
	}
	if _, err := a.Apply(context.Background(), cfg, applyOptions{}); err != nil || opened != 1 {
		t.Errorf("the real apply: %v, opened %d times", err, opened)
	}
}

// TestBalancerChangedCheckKeepsHealth: a failed real server whose check
// changes stays failed, and comes back when the new check passes.
func TestBalancerChangedCheckKeepsHealth(t *testing.T) {
	fb := &fakeBackend{state: lvs.State{}}
	a := lbAgent(t, fb)
	ln := listener(t)
	up := netip.MustParseAddrPort(ln.Addr().String())
	doc := func(port uint16) *haav1.AgentConfig {
		return lbConfig(t, fmt.Sprintf(`virtualServers:
  - address: 10.9.0.1:80
    check: {tcp: {}, port: %d, interval: 100ms, timeout: 100ms, retryDelay: 20ms, fall: 1, rise: 1, jitter: 0s}
    realServers: [{address: %s}]
`, port, up))
	}
	if _, err := a.Apply(context.Background(), doc(9), applyOptions{}); err != nil { // nothing listens on port 9
		t.Fatal(err)
	}
	key := lvs.Key{Addr: netip.MustParseAddrPort("10.9.0.1:80"), Proto: lvs.TCP}
	waitFor(t, "the real server failed", func() bool { _, ok := fb.dests(key)[up]; return !ok })
	if _, err := a.Apply(context.Background(), doc(up.Port()), applyOptions{}); err != nil { // the check now probes the listener
		t.Fatal(err)
	}
	waitFor(t, "the real server back once its new check passes", func() bool { _, ok := fb.dests(key)[up]; return ok })
}

// The snapshot has the latest check's result and duration of every real
// server with a check, once it ran; one without a check has none.
func TestLatestCheck(t *testing.T) {
	a := lbAgent(t, &fakeBackend{state: lvs.State{}})
	if vs := a.Status().VirtualServers; len(vs) != 0 {
		t.Fatalf("virtual servers before any configuration: %v", vs)
	}
	ln := listener(t)
	rs := netip.MustParseAddrPort(ln.Addr().String())
	doc := fmt.Sprintf(`virtualServers:
  - name: web
    address: 10.9.0.1:80
    check: {tcp: {}, interval: 100ms, timeout: 100ms, jitter: 0s}
    realServers: [{address: "%s"}]
  - name: plain
    address: 10.9.0.2:80
    realServers: [{address: "10.9.0.3:80"}]
`, rs)
	if _, err := a.Apply(context.Background(), lbConfig(t, doc), applyOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the check's duration", func() bool {
		s := a.Status()
		_, took, ok := s.Latest(s.VirtualServers[0].Reals[0])
		return ok && took > 0
	})
	s := a.Status()
	if d, _, ok := s.Latest(s.VirtualServers[0].Reals[0]); d != "connected" || !ok {
		t.Errorf("web's latest result %q", d)
	}
	if _, _, ok := s.Latest(s.VirtualServers[1].Reals[0]); ok {
		t.Error("a real server without a check has a latest result")
	}
}

// TestBalancerRepairsHandEdits: what someone else changes in the kernel's
// table (a weight, a real server deleted, the whole table flushed) is put
// back by the repair loop, every Deps.RepairEvery.
func TestBalancerRepairsHandEdits(t *testing.T) {
	fb := &fakeBackend{state: lvs.State{}}
	b := New(Deps{Backend: fb, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), RepairEvery: 50 * time.Millisecond})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	a := &testBalancer{b, t}
	if _, err := a.Apply(context.Background(), lbConfig(t, `virtualServers:
  - {address: 10.9.0.1:80, realServers: [{address: 10.9.1.1, weight: 3}, {address: 10.9.1.2}]}
`), applyOptions{}); err != nil {
		t.Fatal(err)
	}
	key := lvs.Key{Addr: netip.MustParseAddrPort("10.9.0.1:80"), Proto: lvs.TCP}
	rs1, rs2 := netip.MustParseAddrPort("10.9.1.1:80"), netip.MustParseAddrPort("10.9.1.2:80")
	want := map[netip.AddrPort]int{rs1: 3, rs2: 1}
	waitFor(t, "the service programmed", func() bool { return maps.Equal(fb.dests(key), want) })
	edits := []struct {
		name string
		edit func(lvs.State)
	}{
		{"a weight changed", func(s lvs.State) {
			d := s[key].Dests[rs1]
			d.Weight = 7
			s[key].Dests[rs1] = d
		}},
		{"a real server deleted", func(s lvs.State) { delete(s[key].Dests, rs2) }},
		{"the table flushed", func(s lvs.State) { clear(s) }},
	}
	for _, e := range edits {
		fb.mu.Lock()
		e.edit(fb.state)
		fb.mu.Unlock()
		waitFor(t, "the table put back after "+e.name, func() bool { return maps.Equal(fb.dests(key), want) })
	}
}

// seenAtEvent records, at each virtual_server_changed event, what the
// backend holds of key then.
type seenAtEvent struct {
	fb  *fakeBackend
	key lvs.Key
	mu  sync.Mutex
	at  []string // "up|down: dests"
}

func (s *seenAtEvent) Append(e *haav1.Event) *haav1.Event {
	if vc := e.GetVirtualServerChanged(); vc != nil {
		state := "down"
		if vc.GetUp() {
			state = "up"
		}
		d := s.fb.dests(s.key)
		var parts []string
		for _, a := range slices.SortedFunc(maps.Keys(d), netip.AddrPort.Compare) {
			parts = append(parts, fmt.Sprintf("%s=%d", a, d[a]))
		}
		s.mu.Lock()
		s.at = append(s.at, state+": "+strings.Join(parts, " "))
		s.mu.Unlock()
	}
	return e
}

func (s *seenAtEvent) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.at)
}

// TestBalancerQuorumEventAfterProgram: a virtual_server_changed event
// (quorum lost, quorum back) is appended once the backend holds the
// change, so that whoever watches the events may connect at once: the
// sorry server in place when the quorum is lost, the real server back
// when it returns.
func TestBalancerQuorumEventAfterProgram(t *testing.T) {
	fb := &fakeBackend{state: lvs.State{}}
	key := lvs.Key{Addr: netip.MustParseAddrPort("10.9.0.1:80"), Proto: lvs.TCP}
	ev := &seenAtEvent{fb: fb, key: key}
	b := New(Deps{Backend: fb, Events: ev, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	a := &testBalancer{b, t}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rs := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close() // refused: the real server fails its first check
	sorry := netip.MustParseAddrPort("10.9.2.1:80")
	if _, err := a.Apply(context.Background(), lbConfig(t, fmt.Sprintf(`virtualServers:
  - address: 10.9.0.1:80
    sorryServer: %s
    check: {tcp: {}, interval: 100ms, timeout: 100ms, retryDelay: 20ms, fall: 1, rise: 1, jitter: 0s}
    realServers: [{address: %s}]
`, sorry, rs)), applyOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "quorum lost", func() bool { return len(ev.seen()) == 1 })
	// The real server comes back on its port.
	ln, err = net.Listen("tcp", rs.String())
	if err != nil {
		t.Skipf("the real server's port was taken meanwhile: %v", err)
	}
	defer ln.Close()
	waitFor(t, "quorum back", func() bool { return len(ev.seen()) == 2 })
	want := []string{"down: " + sorry.String() + "=1", "up: " + rs.String() + "=1"}
	if got := ev.seen(); !slices.Equal(got, want) {
		t.Errorf("the backend at each virtual_server_changed event: %q, want %q", got, want)
	}
}

// kernelLike is a fakeBackend that reads back as the kernel does: the
// thresholds without their Set mark (whose they are is not in the kernel).
type kernelLike struct{ *fakeBackend }

func (k kernelLike) Read(ctx context.Context) (lvs.State, error) {
	st, err := k.fakeBackend.Read(ctx)
	for _, vs := range st {
		for a, d := range vs.Dests {
			d.Thresholds.Set = false
			vs.Dests[a] = d
		}
	}
	return st, err
}

// countingHandler counts the log records whose message contains sub.
type countingHandler struct {
	slog.Handler
	sub string
	n   *atomic.Int64
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.sub) {
		h.n.Add(1)
	}
	return nil
}

// TestBalancerRepairQuietWhenUnchanged: a repair that reads back the table
// as haad programmed it (thresholds included, which the kernel returns
// without haad's mark) finds nothing changed outside haad: no warning;
// a hand edit is one.
func TestBalancerRepairQuietWhenUnchanged(t *testing.T) {
	fb := &fakeBackend{state: lvs.State{}}
	var warned atomic.Int64
	log := slog.New(countingHandler{Handler: slog.NewTextHandler(io.Discard, nil), sub: "changed outside haad", n: &warned})
	b := New(Deps{Backend: kernelLike{fb}, Log: log, RepairEvery: 20 * time.Millisecond})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	a := &testBalancer{b, t}
	if _, err := a.Apply(context.Background(), lbConfig(t, `virtualServers:
  - address: 10.9.0.1:80
    persistenceTimeout: 30s
    realServers: [{address: 10.9.1.1, weight: 3, upperThreshold: 100, lowerThreshold: 50}, {address: 10.9.1.2}]
`), applyOptions{}); err != nil {
		t.Fatal(err)
	}
	key := lvs.Key{Addr: netip.MustParseAddrPort("10.9.0.1:80"), Proto: lvs.TCP}
	rs2 := netip.MustParseAddrPort("10.9.1.2:80")
	waitFor(t, "the service programmed", func() bool { return len(fb.dests(key)) == 2 })
	time.Sleep(300 * time.Millisecond) // about 15 repairs
	if n := warned.Load(); n != 0 {
		t.Fatalf("%d repairs warned of a table changed outside haad, none changed it", n)
	}
	fb.mu.Lock()
	delete(fb.state[key].Dests, rs2)
	fb.mu.Unlock()
	waitFor(t, "the deleted real server put back", func() bool { _, ok := fb.dests(key)[rs2]; return ok })
	time.Sleep(100 * time.Millisecond)
	if n := warned.Load(); n != 1 {
		t.Errorf("%d warnings after one hand edit, want 1", n)
	}
}
