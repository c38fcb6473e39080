package main

// End-to-end tests of the API: real haad processes in namespaces, real gRPC
// over their unix sockets, real transitions.

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/haa-dev/haa/deploy/lab"
	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// api dials a node's haad over its unix socket.
func (c *cluster) api(n *lab.Node) haav1.AgentServiceClient {
	c.t.Helper()
	sock := n.HaadFiles(c.dir).Socket
	err := lab.Poll(5*time.Second, 10*time.Millisecond, "the API socket of "+n.Name, func() (bool, error) {
		_, err := os.Stat(sock)
		return err == nil, nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { conn.Close() })
	return haav1.NewAgentServiceClient(conn)
}

// watcher collects a node's events in the background.
type watcher struct {
	mu     sync.Mutex
	events []*haav1.Event
	err    error
}

func (c *cluster) watch(cl haav1.AgentServiceClient, since *uint64) *watcher {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c.t.Cleanup(cancel)
	st, err := cl.WatchEvents(ctx, &haav1.WatchEventsRequest{SinceSeq: since})
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := st.Header(); err != nil { // the subscription exists
		c.t.Fatal(err)
	}
	w := &watcher{}
	go func() {
		for {
			r, err := st.Recv()
			w.mu.Lock()
			if err != nil {
				w.err = err
				w.mu.Unlock()
				return
			}
			w.events = append(w.events, r.GetEvent())
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *watcher) snapshot() []*haav1.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*haav1.Event(nil), w.events...)
}

// waitFor waits for an event matching fn.
func (w *watcher) waitFor(t *testing.T, what string, fn func(*haav1.Event) bool) *haav1.Event {
	t.Helper()
	var found *haav1.Event
	err := lab.Poll(10*time.Second, 10*time.Millisecond, what, func() (bool, error) {
		for _, e := range w.snapshot() {
			if fn(e) {
				found = e
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("%v; events: %v", err, w.snapshot())
	}
	return found
}

func becameMaster(instance string) func(*haav1.Event) bool {
	return func(e *haav1.Event) bool {
		return e.GetInstance() == instance && e.GetStateChanged().GetTo() == haav1.State_STATE_MASTER
	}
}

func TestAPIInspectAndWatchAFailover(t *testing.T) {
	t.Parallel()
	c, n1, n2 := newPair(t)
	a1, a2 := c.api(n1), c.api(n2)
	ctx := context.Background()

	node, err := a1.GetNode(ctx, &haav1.GetNodeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := node.GetNode(); n.GetName() != "n1" || n.GetConfigGeneration() != 1 || len(n.GetConfigHash()) != 32 ||
		len(n.GetListenAddresses()) != 1 || !strings.HasPrefix(n.GetListenAddresses()[0], "unix://") {
		t.Fatalf("GetNode: %v", n)
	}
	in, err := a1.GetInstance(ctx, &haav1.GetInstanceRequest{Name: "VI_1"})
	if err != nil {
		t.Fatal(err)
	}
	if s := in.GetInstance(); s.GetState() != haav1.State_STATE_MASTER || s.GetEffectivePriority() != 200 ||
		len(s.GetVipsHeld()) != 1 || s.GetLastTransition().GetCause() != "master_down_timer" || s.GetCounters().GetAdvertsSent() == 0 {
		t.Fatalf("GetInstance: %v", s)
	}
	if _, err := a1.GetInstance(ctx, &haav1.GetInstanceRequest{Name: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown instance: %v", err)
	}

	// Watch n2 while the master is powered off.
	w := c.watch(a2, nil)
	if _, err := c.lab.MeasureFailover(c.lab.Clients[0], vip, n1, c.procs[n1], 5*time.Second); err != nil {
		t.Fatal(err)
	}
	e := w.waitFor(t, "n2 becoming master", becameMaster("VI_1"))
	if e.GetStateChanged().GetFrom() != haav1.State_STATE_BACKUP || e.GetStateChanged().GetCause() != "master_down_timer" || e.GetNode() != "n2" {
		t.Fatalf("transition event %v", e)
	}
	w.waitFor(t, "VIPs added on n2", func(e *haav1.Event) bool { return e.GetVipsChanged().GetAdded() })
	w.waitFor(t, "a GARP round from n2", func(e *haav1.Event) bool { return e.GetGarpSent() != nil })
	// Sequence numbers are gapless and increasing.
	evs := w.snapshot()
	for i := 1; i < len(evs); i++ {
		if evs[i].GetSeq() != evs[i-1].GetSeq()+1 {
			t.Fatalf("sequence gap: %d then %d", evs[i-1].GetSeq(), evs[i].GetSeq())
		}
	}
	// A client reconnecting after the first event gets exactly the rest.
	first := evs[0].GetSeq()
	w2 := c.watch(a2, &first)
	err = lab.Poll(3*time.Second, 10*time.Millisecond, "the replay", func() (bool, error) {
		return len(w2.snapshot()) >= len(evs)-1, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range w2.snapshot()[:len(evs)-1] {
		if e.GetSeq() != evs[i+1].GetSeq() {
			t.Fatalf("replay event %d has seq %d, want %d", i, e.GetSeq(), evs[i+1].GetSeq())
		}
	}
	// A since_seq that was never reached is refused.
	future := uint64(1 << 40)
	st, err := a2.WatchEvents(ctx, &haav1.WatchEventsRequest{SinceSeq: &future})
	if err == nil {
		_, err = st.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("future since_seq: %v", err)
	}
}

func vi(name string, vrid int, prio int, addr string) *haav1.Instance {
	p := uint32(prio)
	return &haav1.Instance{Name: name, Interface: "eth0", Vrid: uint32(vrid), Priority: &p,
		AdvertInterval: durationpb.New(100 * time.Millisecond), Vips: []string{addr}}
}

func TestAPIApplyConfig(t *testing.T) {
	t.Parallel()
	c, n1, _ := newPair(t)
	a1 := c.api(n1)
	ctx := context.Background()
	cfgFile := n1.HaadFiles(c.dir).Config

	got, err := a1.GetConfig(ctx, &haav1.GetConfigRequest{})
	if err != nil {
		t.Fatal(err)
	}
	gen := got.GetGeneration()
	cfg := got.GetConfig()
	vip2 := netip.MustParseAddr("10.77.0.101")
	cfg.Instances = append(cfg.Instances, vi("VI_2", 52, 200, vip2.String()+"/24"))

	// A dry run plans and changes nothing.
	res, err := a1.ApplyConfig(ctx, &haav1.ApplyConfigRequest{Config: cfg, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if p := res.GetPlan(); res.GetApplied() || res.GetGeneration() != gen || len(p.GetAdded()) != 1 || p.GetUnchanged()[0] != "VI_1" {
		t.Fatalf("dry run: %v", res)
	}
	if ok, _ := n1.HasAddr(vip2); ok {
		t.Fatal("a dry run added a VIP")
	}

	// Apply: VI_1 is untouched (no event, no flap), VI_2 starts.
	w := c.watch(a1, nil)
	p, err := c.lab.Clients[0].StartPing(vip, 2*time.Millisecond, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if err := p.WaitReplies(20, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	res, err = a1.ApplyConfig(ctx, &haav1.ApplyConfigRequest{Config: cfg, ExpectedGeneration: &gen})
	if err != nil {
		t.Fatal(err)
	}
	if !res.GetApplied() || res.GetGeneration() != gen+1 {
		t.Fatalf("apply: %v", res)
	}
	c.waitHolder(vip2, n1, 5*time.Second)
	w.waitFor(t, "config applied", func(e *haav1.Event) bool { return e.GetConfigApplied().GetGeneration() == gen+1 })
	for _, e := range w.snapshot() {
		if e.GetInstance() == "VI_1" {
			t.Fatalf("the unchanged VI_1 had an event: %v", e)
		}
	}
	if st := p.Stop(); st.LongestGap > 100*time.Millisecond {
		t.Fatalf("VI_1's VIP stopped answering for %v during the apply", st.LongestGap)
	}
	// Persisted: the file now holds VI_2.
	persisted, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	if pc, err := config.Parse(persisted); err != nil || len(pc.GetInstances()) != 2 {
		t.Fatalf("persisted file: %v %v", pc, err)
	}

	// A stale generation: FailedPrecondition, nothing changes.
	if _, err := a1.ApplyConfig(ctx, &haav1.ApplyConfigRequest{Config: cfg, ExpectedGeneration: &gen}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("stale generation: %v", err)
	}
	// An invalid configuration: every field violation, the file byte-identical.
	bad := &haav1.AgentConfig{Name: "n1", Instances: []*haav1.Instance{vi("VI_1", 300, 0, "10.77.0.100/33")}}
	_, err = a1.ApplyConfig(ctx, &haav1.ApplyConfigRequest{Config: bad})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("invalid config: %v", err)
	}
	var fields []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	if strings.Join(fields, " ") != "instances[0].vrid instances[0].priority instances[0].vips[0]" {
		t.Fatalf("field violations %v", fields)
	}
	after, _ := os.ReadFile(cfgFile)
	if !bytes.Equal(after, persisted) {
		t.Fatal("a refused apply changed the persisted file")
	}
	if g, _ := a1.GetConfig(ctx, &haav1.GetConfigRequest{}); g.GetGeneration() != gen+1 {
		t.Fatalf("generation %d after a refused apply", g.GetGeneration())
	}

	// A restart runs the last applied configuration, same generation.
	if err := c.procs[n1].Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	p2, err := n1.Start(n1.HaadFiles(c.dir).Log, c.bin, "--config", cfgFile, "--state-file", n1.HaadFiles(c.dir).State, "--fleet-file", n1.HaadFiles(c.dir).Fleet,
		"--socket", n1.HaadFiles(c.dir).Socket, "--status-file", c.statusPath(n1))
	if err != nil {
		t.Fatal(err)
	}
	c.procs[n1] = p2
	c.waitHolder(vip2, n1, 5*time.Second)
	node, err := c.api(n1).GetNode(ctx, &haav1.GetNodeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if node.GetNode().GetConfigGeneration() != gen+1 || node.GetNode().GetConfigHash() != res.GetHash() {
		t.Fatalf("after restart: %v, want generation %d hash %s", node.GetNode(), gen+1, res.GetHash())
	}
}

func TestAPIFailoverAndMaintenance(t *testing.T) {
	t.Parallel()
	c, n1, n2 := newPair(t)
	a1, a2 := c.api(n1), c.api(n2)
	ctx := context.Background()

	// Failover from the backup is refused.
	if _, err := a2.Failover(ctx, &haav1.FailoverRequest{Instance: "VI_1"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("failover on the backup: %v", err)
	}
	res, err := a1.Failover(ctx, &haav1.FailoverRequest{Instance: "VI_1"})
	if err != nil {
		t.Fatal(err)
	}
	if res.GetNewMaster() != n2.Addr.String() {
		t.Fatalf("new master %q", res.GetNewMaster())
	}
	// n1 does not preempt back although its priority is higher. (Failover
	// returns at the takeover; the new master's VIP worker adds the
	// address a moment later.)
	c.waitHolder(vip, n2, 2*time.Second)
	c.stableHolder(vip, n2, time.Second)
	in, _ := a1.GetInstance(ctx, &haav1.GetInstanceRequest{Name: "VI_1"})
	if in.GetInstance().GetHold() != "failover" || in.GetInstance().GetLastTransition().GetCause() != "failover_requested" {
		t.Fatalf("n1 after failover: %v", in.GetInstance())
	}

	// Maintenance on n2 (now master): n1 takes over; n2 never becomes master.
	m, err := a2.SetMaintenance(ctx, &haav1.SetMaintenanceRequest{Enabled: true})
	if err != nil || !m.GetMaintenance().GetEnabled() {
		t.Fatalf("maintenance: %v %v", m, err)
	}
	c.waitHolder(vip, n1, 3*time.Second)
	// It survives a crash and restart of n2's haad, even with n1 gone.
	if err := c.procs[n2].Kill(); err != nil {
		t.Fatal(err)
	}
	if err := n1.LinkDown(); err != nil {
		t.Fatal(err)
	}
	c.start(n2, instance{name: "VI_1", vrid: 51, prio: 100})
	time.Sleep(time.Second) // 3 master-down intervals with nobody else
	if hs, _ := c.lab.Holders(vip); len(hs) != 0 {
		t.Fatalf("holders %s while the only live node is in maintenance", lab.Names(hs))
	}
	// Maintenance with a TTL ends by itself.
	a2 = c.api(n2)
	if _, err := a2.SetMaintenance(ctx, &haav1.SetMaintenanceRequest{Enabled: true, Ttl: durationpb.New(500 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	c.waitHolder(vip, n2, 3*time.Second)
	node, _ := a2.GetNode(ctx, &haav1.GetNodeRequest{})
	if node.GetNode().GetMaintenance().GetEnabled() {
		t.Fatal("maintenance still on after its TTL")
	}
}

// grpcurl, with no .proto files, lists the services and calls GetNode.
func TestGrpcurl(t *testing.T) {
	t.Parallel()
	bin := os.Getenv("HAA_GRPCURL")
	if bin == "" {
		bin, _ = exec.LookPath("grpcurl")
	}
	if bin == "" {
		if os.Getenv(lab.RequireEnv) == "1" {
			t.Fatal("grpcurl not found: make test installs it (HAA_GRPCURL)")
		}
		t.Skip("grpcurl not found: run make test, or go install github.com/fullstorydev/grpcurl/cmd/grpcurl")
	}
	c := newCluster(t, 1)
	n1 := c.lab.Nodes[0]
	c.start(n1, instance{name: "VI_1", vrid: 51, prio: 200})
	c.api(n1) // waits for the socket
	sock := n1.HaadFiles(c.dir).Socket
	run := func(args ...string) string {
		out, err := exec.Command(bin, append([]string{"-plaintext", "-unix", sock}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("grpcurl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	list := run("list")
	for _, want := range []string{"haa.v1.AgentService", "grpc.health.v1.Health"} {
		if !strings.Contains(list, want) {
			t.Fatalf("grpcurl list lacks %s:\n%s", want, list)
		}
	}
	if out := run("haa.v1.AgentService/GetNode"); !strings.Contains(out, `"name": "n1"`) {
		t.Fatalf("GetNode through grpcurl:\n%s", out)
	}
	if out := run("grpc.health.v1.Health/Check"); !strings.Contains(out, "SERVING") {
		t.Fatalf("health:\n%s", out)
	}
}
