package ctl_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/ctl"
	"github.com/haa-dev/haa/ctl/ctltest"
	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// dualMaster is the document.
const dualMaster = `kind: Fleet
nodes: [lb1, lb2]
instances:
  - name: VI_1
    interface: eth0
    vrid: 51
    advertInterval: 1s
    vips: ["192.168.55.140/24"]
    priorities: {lb1: 100, lb2: 80}
  - name: VI_2
    interface: eth0
    vrid: 52
    advertInterval: 1s
    vips: ["192.168.55.141/24"]
    priorities: {lb1: 80, lb2: 100}
`

func parseFleet(t *testing.T, y string) *haav1.Fleet {
	t.Helper()
	doc, err := config.ParseFleet([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func dialFleet(t *testing.T, seeds ...string) *ctl.Fleet {
	t.Helper()
	f, err := ctl.DialFleet(t.Context(), seeds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// fast are options that keep a rolling apply quick.
func fast(o ctl.FleetApplyOptions) ctl.FleetApplyOptions {
	o.PollInterval = 10 * time.Millisecond
	if o.ConvergeTimeout == 0 {
		o.ConvergeTimeout = 5 * time.Second
	}
	return o
}

func TestDialFleet(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2", "lb3")
	// One seed is enough; a seed that is not there is skipped.
	f := dialFleet(t, "unix://"+t.TempDir()+"/none.sock", c.Node("lb2").Target)
	if f.View().GetNode() != "lb2" || f.Seed() != c.Node("lb2").Target || len(f.View().GetMembers()) != 3 {
		t.Fatalf("view: %v", f.View())
	}
	clients := f.Clients()
	for _, n := range c.Nodes() {
		cl := clients[n.Name]
		if cl == nil || cl.Target().String() != n.Target {
			t.Fatalf("client of %s: %v", n.Name, cl)
		}
		nd, err := cl.Node(t.Context())
		if err != nil || nd.GetName() != n.Name {
			t.Errorf("%s answers %v, %v", n.Name, nd, err)
		}
	}
	if len(f.Unreachable()) != 0 {
		t.Errorf("unreachable: %v", f.Unreachable())
	}

	// Failed members get no client.
	c.Node("lb3").SetState(haav1.MemberState_MEMBER_STATE_DEAD)
	f = dialFleet(t, c.Node("lb1").Target)
	if _, ok := f.Clients()["lb3"]; ok || len(f.Clients()) != 2 {
		t.Errorf("clients: %v", f.Clients())
	}
	if err := f.Unreachable()["lb3"]; !errors.Is(err, ctl.ErrUnreachable) || err.Error() != "unreachable: gossip says it is DEAD" {
		t.Errorf("lb3: %v", err)
	}
	// It comes back: Refresh dials it.
	c.Node("lb3").SetState(haav1.MemberState_MEMBER_STATE_ALIVE)
	if err := f.Refresh(t.Context()); err != nil || f.Clients()["lb3"] == nil || len(f.Unreachable()) != 0 {
		t.Errorf("refresh: %v, %v, %v", err, f.Clients(), f.Unreachable())
	}
	c.Node("lb3").SetState(haav1.MemberState_MEMBER_STATE_DEAD)

	// A seed that does not gossip.
	c.Node("lb1").SetGossip(false)
	_, err := ctl.DialFleet(t.Context(), []string{c.Node("lb1").Target})
	if !errors.Is(err, ctl.ErrNoGossip) || !strings.Contains(err.Error(), "node lb1 at "+c.Node("lb1").Target+" is no fleet member: give it a gossip section") {
		t.Errorf("no gossip: %v", err)
	}
	// ... but another seed does.
	if f := dialFleet(t, c.Node("lb1").Target, c.Node("lb2").Target); f.View().GetNode() != "lb2" {
		t.Errorf("second seed: %v", f.View().GetNode())
	}
	// Every seed fails: each says why.
	_, err = ctl.DialFleet(t.Context(), []string{c.Node("lb1").Target, "unix:///nonexistent/haad.sock"})
	if !errors.Is(err, ctl.ErrNoGossip) || !errors.Is(err, ctl.ErrNoAgent) || !strings.Contains(err.Error(), "seed unix:///nonexistent/haad.sock: no haad listening") {
		t.Errorf("all seeds fail: %v", err)
	}
	if _, err := ctl.DialFleet(t.Context(), []string{" "}); err == nil {
		t.Error("no seed: no error")
	}
}

func TestEach(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2", "lb3")
	f := dialFleet(t, c.Node("lb1").Target)
	c.Node("lb2").SetDelay(5 * time.Second)
	var mu sync.Mutex
	inflight, most := 0, 0
	start := time.Now()
	res := ctl.Each(t.Context(), f, []string{"lb3", "lb2", "lb1", "lb9"}, 200*time.Millisecond,
		func(ctx context.Context, node string, c *ctl.Client) (string, error) {
			mu.Lock()
			inflight++
			most = max(most, inflight)
			mu.Unlock()
			defer func() {
				mu.Lock()
				inflight--
				mu.Unlock()
			}()
			v, err := c.Fleet(ctx)
			time.Sleep(50 * time.Millisecond) // overlap
			return v.GetNode(), err
		})
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s", took)
	}
	if most != 3 {
		t.Errorf("%d calls at once, want 3", most)
	}
	var nodes []string
	for _, r := range res {
		nodes = append(nodes, r.Node)
	}
	if !slices.Equal(nodes, []string{"lb1", "lb2", "lb3", "lb9"}) {
		t.Fatalf("nodes %v", nodes)
	}
	if res[0].Err != nil || res[0].Value != "lb1" || res[2].Err != nil || res[2].Value != "lb3" || res[0].Took <= 0 {
		t.Errorf("fast nodes: %+v %+v", res[0], res[2])
	}
	if status.Code(res[1].Err) != codes.DeadlineExceeded || res[1].Took < 200*time.Millisecond {
		t.Errorf("slow node: %+v", res[1])
	}
	if !errors.Is(res[3].Err, ctl.ErrUnreachable) || !strings.Contains(res[3].Err.Error(), "gossip has never seen it") {
		t.Errorf("unknown node: %+v", res[3])
	}
	// nil: every member that can be called.
	if res := ctl.Each(t.Context(), f, nil, time.Second, func(context.Context, string, *ctl.Client) (int, error) { return 1, nil }); len(res) != 3 {
		t.Errorf("every member: %v", res)
	}
}

// requests summarises a node's ApplyFleet requests: "dry 4", "apply 4",
// "hold 4".
func requests(n *ctltest.FleetNode) []string {
	var out []string
	for _, r := range n.Applies() {
		kind := "apply"
		switch {
		case r.GetDryRun():
			kind = "dry"
		case r.GetHold():
			kind = "hold"
		}
		out = append(out, fmt.Sprintf("%s %d", kind, r.GetDocument().GetGeneration()))
	}
	return out
}

func wantRequests(t *testing.T, c *ctltest.Cluster, want map[string][]string) {
	t.Helper()
	for _, n := range c.Nodes() {
		if got := requests(n); !slices.Equal(got, want[n.Name]) {
			t.Errorf("%s: requests %v, want %v", n.Name, got, want[n.Name])
		}
	}
}

func TestApplyAll(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2", "lb3")
	// lb3 stores a newer document than the others (held by a rollout that
	// stopped): the new generation is one more.
	old := parseFleet(t, "kind: Fleet\nnodes: [lb1]\ninstances: [{name: VI_9, interface: eth0, vrid: 9, vips: [10.77.0.99/24]}]\n")
	old.Generation = 3
	c.SetDocument(old)
	old.Generation = 5
	c.Node("lb3").SetDocument(old, true)

	f := dialFleet(t, c.Node("lb1").Target)
	var steps []string
	r, err := f.Apply(t.Context(), parseFleet(t, dualMaster), ctl.FleetApplyOptions{Progress: func(s ctl.FleetStep) {
		steps = append(steps, s.Kind.String()+" "+s.Node)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Generation != 6 || r.Strategy != ctl.StrategyAll || len(r.Nodes) != 3 {
		t.Fatalf("report: %+v", r)
	}
	wantRequests(t, c, map[string][]string{"lb1": {"dry 6", "apply 6"}, "lb2": {"dry 6", "apply 6"}, "lb3": {"dry 6", "apply 6"}})
	for _, n := range r.Nodes {
		if n.Outcome != ctl.OutcomeApplied || n.Err != nil || n.Generation != 6 || n.Result.GetFleetGeneration() != 6 {
			t.Errorf("%s: %+v", n.Node, n)
		}
		doc, held := c.Node(n.Node).Document()
		if doc.GetGeneration() != 6 || held {
			t.Errorf("%s stores %v (held %v)", n.Node, doc, held)
		}
	}
	if p := r.Node("lb1").Plan; !slices.Equal(p.GetAdded(), []string{"VI_1", "VI_2"}) || !slices.Equal(p.GetRemoved(), []string{"VI_9"}) {
		t.Errorf("lb1 plan: %v", p)
	}
	if p := r.Node("lb3").Plan; changes(p) {
		t.Errorf("lb3 plan: %v", p)
	}
	slices.Sort(steps[3:])
	if want := []string{"planned lb1", "planned lb2", "planned lb3", "applied lb1", "applied lb2", "applied lb3"}; !slices.Equal(steps, want) {
		t.Errorf("progress: %v", steps)
	}

	// A dry run changes nothing.
	r, err = f.Apply(t.Context(), parseFleet(t, dualMaster), ctl.FleetApplyOptions{DryRun: true})
	if err != nil || r.Generation != 7 || r.Node("lb2").Outcome != ctl.OutcomePlanned || !r.DryRun {
		t.Fatalf("dry run: %+v, %v", r, err)
	}
	if doc, _ := c.Node("lb2").Document(); doc.GetGeneration() != 6 {
		t.Errorf("dry run stored generation %d", doc.GetGeneration())
	}
}

func changes(p *haav1.Plan) bool {
	return len(p.GetAdded())+len(p.GetRemoved())+len(p.GetChanged()) > 0
}

func TestApplyRefused(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2", "lb3")
	f := dialFleet(t, c.Node("lb1").Target)

	// A node gossip never saw: nothing is sent.
	doc := parseFleet(t, strings.Replace(dualMaster, "nodes: [lb1, lb2]", "nodes: [lb1, lb2, lb7, lb8]", 1))
	r, err := f.Apply(t.Context(), doc, ctl.FleetApplyOptions{})
	if !errors.Is(err, ctl.ErrRefused) || err.Error() != "fleet document refused, nothing changed: unknown nodes lb7, lb8: members are lb1, lb2, lb3 "+
		"(a node takes part once its haad gossips with the fleet: haactl get nodes)" {
		t.Errorf("unknown nodes: %v", err)
	}
	if r == nil || len(r.Nodes) != 0 {
		t.Errorf("report: %+v", r)
	}
	// Invalid here already: nothing is sent.
	_, err = f.Apply(t.Context(), parseFleet(t, strings.Replace(dualMaster, "vrid: 51", "vrid: 300", 1)), ctl.FleetApplyOptions{})
	if !errors.Is(err, ctl.ErrRefused) || !errors.Is(err, config.ErrInvalid) || len(config.Fields(err)) == 0 {
		t.Errorf("invalid: %v", err)
	}
	wantRequests(t, c, nil)

	// One node refuses its dry run: nothing is applied anywhere.
	c.Node("lb2").Refuse(ctltest.InvalidArgument("invalid fleet document", "instances[0].vips[0]", "192.168.55.140/24 is in no subnet of eth0 on lb2: add an override"))
	r, err = f.Apply(t.Context(), parseFleet(t, dualMaster), ctl.FleetApplyOptions{Strategy: ctl.StrategyRolling})
	if !errors.Is(err, ctl.ErrRefused) || err.Error() != "fleet document refused, nothing changed: refused by lb2" {
		t.Errorf("refused: %v", err)
	}
	wantRequests(t, c, map[string][]string{"lb1": {"dry 1"}, "lb2": {"dry 1"}, "lb3": {"dry 1"}})
	if n := r.Node("lb2"); n.Outcome != ctl.OutcomeRefused || len(ctl.ErrorDetails(n.Err)) != 1 {
		t.Errorf("lb2: %+v", n)
	}
	if n := r.Node("lb1"); n.Outcome != ctl.OutcomeNotApplied || !changes(n.Plan) {
		t.Errorf("lb1: %+v", n)
	}
	for _, n := range c.Nodes() {
		if doc, _ := n.Document(); doc != nil {
			t.Errorf("%s stores %v", n.Name, doc)
		}
	}
}

func TestApplyUnreachable(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2", "lb3", "lb4")
	c.Node("lb3").SetState(haav1.MemberState_MEMBER_STATE_DEAD)
	c.Node("lb4").SetState(haav1.MemberState_MEMBER_STATE_LEFT) // left, and not in the document: skipped
	f := dialFleet(t, c.Node("lb1").Target)
	c.Node("lb2").Server.Stop() // alive in gossip, but its API is gone

	doc := parseFleet(t, strings.Replace(dualMaster, "nodes: [lb1, lb2]", "nodes: [lb1, lb2, lb3]", 1))
	r, err := f.Apply(t.Context(), doc, ctl.FleetApplyOptions{})
	if !errors.Is(err, ctl.ErrPartial) || !strings.HasPrefix(err.Error(), "took effect in part: applied except on lb2: unreachable: ") ||
		!strings.HasSuffix(err.Error(), "; lb3: unreachable: gossip says it is DEAD") {
		t.Errorf("error: %v", err)
	}
	for node, want := range map[string]ctl.NodeOutcome{"lb1": ctl.OutcomeApplied, "lb2": ctl.OutcomeUnreachable, "lb3": ctl.OutcomeUnreachable, "lb4": ctl.OutcomeSkipped} {
		if n := r.Node(node); n.Outcome != want || (want == ctl.OutcomeUnreachable) != errors.Is(n.Err, ctl.ErrUnreachable) {
			t.Errorf("%s: %+v, want %s", node, n, want)
		}
	}
	wantRequests(t, c, map[string][]string{"lb1": {"dry 1", "apply 1"}})
}

// A node that stops answering between the dry run and the apply.
func TestApplyFails(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2")
	f := dialFleet(t, c.Node("lb1").Target)
	c.Node("lb2").Fail(ctltest.Partial(codes.Internal, "fleet generation 1 applied, but: instance VI_2: interface eth0 not found",
		&haav1.ApplyFleetResponse{Node: "lb2", FleetGeneration: 1, Applied: true}))
	r, err := f.Apply(t.Context(), parseFleet(t, dualMaster), ctl.FleetApplyOptions{})
	if !errors.Is(err, ctl.ErrPartial) || !strings.Contains(err.Error(), "lb2: took effect in part: rpc error: code = Internal desc = fleet generation 1 applied, but") {
		t.Errorf("error: %v", err)
	}
	if n := r.Node("lb2"); n.Outcome != ctl.OutcomeFailed || n.Result.GetFleetGeneration() != 1 || n.Generation != 1 {
		t.Errorf("lb2: %+v", n)
	}
	if r.Node("lb1").Outcome != ctl.OutcomeApplied {
		t.Errorf("lb1: %+v", r.Node("lb1"))
	}
}

func TestApplyRolling(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2", "lb3")
	c.AutoElect = true
	// lb1 is master of two instances, lb3 of one, lb2 of none.
	c.SetDocument(parseFleet(t, `kind: Fleet
nodes: [lb1, lb2, lb3]
generation: 2
instances:
  - {name: VI_1, interface: eth0, vrid: 51, vips: [10.77.0.51/24], priorities: {lb1: 100, lb2: 90, lb3: 80}}
  - {name: VI_2, interface: eth0, vrid: 52, vips: [10.77.0.52/24], priorities: {lb1: 100, lb2: 80, lb3: 90}}
  - {name: VI_3, interface: eth0, vrid: 53, vips: [10.77.0.53/24], priorities: {lb2: 90, lb3: 100}}
`))
	next := parseFleet(t, `kind: Fleet
nodes: [lb1, lb2, lb3]
instances:
  - {name: VI_1, interface: eth0, vrid: 51, vips: [10.77.0.51/24], priorities: {lb1: 100, lb2: 90, lb3: 80}, advertInterval: 200ms}
  - {name: VI_2, interface: eth0, vrid: 52, vips: [10.77.0.52/24], priorities: {lb1: 100, lb2: 80, lb3: 90}, advertInterval: 200ms}
  - {name: VI_3, interface: eth0, vrid: 53, vips: [10.77.0.53/24], priorities: {lb2: 90, lb3: 100}, advertInterval: 200ms}
`)
	// While lb3 applies, lb2 holds the new document (not offered yet) and
	// lb1 still has the old one.
	var during []string
	c.Node("lb3").OnApply(func(req *haav1.ApplyFleetRequest) {
		if !req.GetHold() {
			return
		}
		for _, n := range c.Nodes() {
			doc, held := n.Document()
			during = append(during, fmt.Sprintf("%s %d %v", n.Name, doc.GetGeneration(), held))
		}
	})
	f := dialFleet(t, c.Node("lb2").Target)
	var steps []string
	r, err := f.Apply(t.Context(), next, fast(ctl.FleetApplyOptions{Strategy: ctl.StrategyRolling, Progress: func(s ctl.FleetStep) {
		if s.Kind != ctl.StepPlanned && s.Kind != ctl.StepReleased {
			steps = append(steps, fmt.Sprintf("%s %d/%d %s", s.Kind, s.Step, s.Steps, s.Node))
		}
	}}))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Order, []string{"lb2", "lb3", "lb1"}) {
		t.Errorf("order %v", r.Order)
	}
	if want := []string{"started 1/3 lb2", "applied 1/3 lb2", "converged 1/3 lb2", "started 2/3 lb3", "applied 2/3 lb3", "converged 2/3 lb3",
		"started 3/3 lb1", "applied 3/3 lb1", "converged 3/3 lb1"}; !slices.Equal(steps, want) {
		t.Errorf("progress:\n%s", strings.Join(steps, "\n"))
	}
	if want := []string{"lb1 2 false", "lb2 3 true", "lb3 3 true"}; !slices.Equal(during, want) {
		t.Errorf("during lb3's step: %v", during)
	}
	wantRequests(t, c, map[string][]string{"lb1": {"dry 3", "hold 3", "apply 3"}, "lb2": {"dry 3", "hold 3", "apply 3"}, "lb3": {"dry 3", "hold 3", "apply 3"}})
	for _, n := range c.Nodes() {
		if doc, held := n.Document(); doc.GetGeneration() != 3 || held {
			t.Errorf("%s: generation %d, held %v", n.Name, doc.GetGeneration(), held)
		}
		if rn := r.Node(n.Name); rn.Outcome != ctl.OutcomeApplied || len(rn.Plan.GetChanged()) == 0 {
			t.Errorf("%s: %+v", n.Name, rn)
		}
	}
}

// The rollout on two fresh nodes: lb1 first (no master anywhere,
// by name), then lb2, which takes VI_2 over.
func TestApplyRollingDualMaster(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2")
	c.AutoElect = true
	f := dialFleet(t, c.Node("lb1").Target)
	r, err := f.Apply(t.Context(), parseFleet(t, dualMaster), fast(ctl.FleetApplyOptions{Strategy: ctl.StrategyRolling}))
	if err != nil || !slices.Equal(r.Order, []string{"lb1", "lb2"}) {
		t.Fatalf("%v: %+v", err, r)
	}
	masters := map[string]string{}
	for _, n := range c.Nodes() {
		for _, in := range n.Agent.Instances {
			if in.GetState() == haav1.State_STATE_MASTER {
				masters[in.GetName()] = n.Name
			}
		}
	}
	if masters["VI_1"] != "lb1" || masters["VI_2"] != "lb2" {
		t.Errorf("masters %v", masters)
	}
}

// VRRP never converges after the first step: the rollout stops, the other
// node is left unchanged, the first keeps the document held.
func TestApplyRollingNotConverged(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2")
	f := dialFleet(t, c.Node("lb1").Target)
	var waiting [][]string
	var failed *ctl.FleetStep
	start := time.Now()
	r, err := f.Apply(t.Context(), parseFleet(t, dualMaster), fast(ctl.FleetApplyOptions{
		Strategy: ctl.StrategyRolling, ConvergeTimeout: 150 * time.Millisecond,
		Progress: func(s ctl.FleetStep) {
			switch s.Kind {
			case ctl.StepWaiting:
				waiting = append(waiting, s.Problems)
			case ctl.StepFailed:
				failed = &s
			}
		}}))
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s", took)
	}
	if !errors.Is(err, ctl.ErrNotConverged) || err.Error() != "VRRP did not converge: rollout stopped after step 1/2 (lb1): "+
		"not converged within 150ms: VI_1: no master; VI_2: no master; not changed: lb2" {
		t.Errorf("error: %v", err)
	}
	if !slices.Equal(r.Problems, []string{"VI_1: no master", "VI_2: no master"}) || !slices.Equal(r.Unchanged, []string{"lb2"}) {
		t.Errorf("report: %+v", r)
	}
	if len(waiting) != 1 || failed == nil || failed.Node != "lb1" || len(failed.Problems) != 2 {
		t.Errorf("progress: waiting %v, failed %+v", waiting, failed)
	}
	if r.Node("lb1").Outcome != ctl.OutcomeHeld || r.Node("lb2").Outcome != ctl.OutcomeNotApplied {
		t.Errorf("outcomes: %s, %s", r.Node("lb1").Outcome, r.Node("lb2").Outcome)
	}
	wantRequests(t, c, map[string][]string{"lb1": {"dry 1", "hold 1"}, "lb2": {"dry 1"}})
	if doc, held := c.Node("lb1").Document(); doc.GetGeneration() != 1 || !held {
		t.Errorf("lb1: %v, held %v", doc, held)
	}

	// Two masters after lb1's step (VRRP blocked between them).
	c2 := ctltest.NewCluster(t, "lb1", "lb2")
	c2.Node("lb1").OnApply(func(*haav1.ApplyFleetRequest) {
		c2.Node("lb1").Agent.Update(func(a *ctltest.Agent) {
			for _, in := range a.Instances {
				in.State = haav1.State_STATE_MASTER
			}
		})
	})
	c2.Node("lb2").Agent.Instances = []*haav1.InstanceStatus{{Name: "VI_1", State: haav1.State_STATE_MASTER, EffectivePriority: 80}}
	f = dialFleet(t, c2.Node("lb1").Target)
	r, err = f.Apply(t.Context(), parseFleet(t, dualMaster), fast(ctl.FleetApplyOptions{Strategy: ctl.StrategyRolling, ConvergeTimeout: 50 * time.Millisecond}))
	if !errors.Is(err, ctl.ErrNotConverged) || !slices.Equal(r.Problems, []string{"VI_1: two masters: lb1, lb2"}) || !slices.Equal(r.Order, []string{"lb1", "lb2"}) {
		t.Errorf("two masters: %v, %+v", err, r)
	}
}

// A step whose apply fails stops the rollout.
func TestApplyRollingStepFails(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2")
	c.AutoElect = true
	c.Node("lb1").Fail(status.Error(codes.Internal, "disk full"))
	f := dialFleet(t, c.Node("lb1").Target)
	r, err := f.Apply(t.Context(), parseFleet(t, dualMaster), fast(ctl.FleetApplyOptions{Strategy: ctl.StrategyRolling}))
	if !errors.Is(err, ctl.ErrPartial) || err.Error() != "took effect in part: rollout stopped at step 1/2: lb1: rpc error: code = Internal desc = disk full; not changed: lb1, lb2" {
		t.Errorf("error: %v", err)
	}
	if r.Node("lb1").Outcome != ctl.OutcomeFailed || r.Node("lb2").Outcome != ctl.OutcomeNotApplied {
		t.Errorf("report: %+v %+v", r.Node("lb1"), r.Node("lb2"))
	}
	wantRequests(t, c, map[string][]string{"lb1": {"dry 1", "hold 1"}, "lb2": {"dry 1"}})
}

func status3(_, name string, st haav1.State, prio uint32, src string) *haav1.InstanceStatus {
	return &haav1.InstanceStatus{Name: name, State: st, EffectivePriority: prio, SourceAddress: src}
}

func TestConverged(t *testing.T) {
	const (
		M = haav1.State_STATE_MASTER
		B = haav1.State_STATE_BACKUP
		I = haav1.State_STATE_INIT
		F = haav1.State_STATE_FAULT
	)
	doc := &haav1.Fleet{Kind: "Fleet", Nodes: []string{"lb1", "lb2", "lb3"}, Instances: []*haav1.FleetInstance{
		{Name: "VI_1", Vrid: 51, Priorities: map[string]uint32{"lb1": 100, "lb2": 80}},
		{Name: "VI_2", Vrid: 52, Priorities: map[string]uint32{"lb1": 80, "lb2": 100}},
	}}
	nopreempt := proto.Clone(doc).(*haav1.Fleet)
	nopreempt.Instances[0].Preempt = proto.Bool(false)
	type ins = []*haav1.InstanceStatus
	for _, tc := range []struct {
		name   string
		doc    *haav1.Fleet
		byNode map[string]ins
		want   []string
	}{
		{"converged", doc, map[string]ins{
			"lb1": {status3("lb1", "VI_1", M, 100, "10.0.0.1"), status3("lb1", "VI_2", B, 80, "10.0.0.1")},
			"lb2": {status3("lb2", "VI_1", B, 80, "10.0.0.2"), status3("lb2", "VI_2", M, 100, "10.0.0.2")},
		}, nil},
		{"nothing runs yet", doc, map[string]ins{"lb1": {}, "lb2": {}}, nil},
		{"only some nodes run it (rolling)", doc, map[string]ins{
			"lb1": {status3("lb1", "VI_1", M, 100, "10.0.0.1"), status3("lb1", "VI_2", M, 80, "10.0.0.1")},
			"lb2": {},
		}, nil},
		{"two masters, no master", doc, map[string]ins{
			"lb1": {status3("lb1", "VI_1", M, 100, "10.0.0.1"), status3("lb1", "VI_2", B, 80, "10.0.0.1")},
			"lb2": {status3("lb2", "VI_1", M, 80, "10.0.0.2"), status3("lb2", "VI_2", B, 100, "10.0.0.2")},
		}, []string{"VI_1: two masters: lb1, lb2", "VI_2: no master"}},
		{"three masters", doc, map[string]ins{
			"lb1": {status3("lb1", "VI_1", M, 100, "10.0.0.1")},
			"lb2": {status3("lb2", "VI_1", M, 80, "10.0.0.2")},
			"lb3": {status3("lb3", "VI_1", M, 80, "10.0.0.3")},
		}, []string{"VI_1: 3 masters: lb1, lb2, lb3"}},
		{"wrong master", doc, map[string]ins{
			"lb1": {status3("lb1", "VI_1", B, 100, "10.0.0.1")},
			"lb2": {status3("lb2", "VI_1", M, 80, "10.0.0.2")},
		}, []string{"VI_1: lb1 (priority 100) should be master, lb2 (80) is"}},
		{"wrong master without preempt", nopreempt, map[string]ins{
			"lb1": {status3("lb1", "VI_1", B, 100, "10.0.0.1")},
			"lb2": {status3("lb2", "VI_1", M, 80, "10.0.0.2")},
		}, nil},
		{"a node not in the document (rolling, old document): preempts", doc, map[string]ins{
			"lb2": {status3("lb2", "VI_1", M, 80, "10.0.0.2")},
			"lb9": {status3("lb9", "VI_1", B, 150, "10.0.0.9")},
		}, []string{"VI_1: lb9 (priority 150) should be master, lb2 (80) is"}},
		{"the better node is in FAULT or held", doc, map[string]ins{
			"lb1": {status3("lb1", "VI_1", F, 100, "10.0.0.1"), {Name: "VI_2", State: B, EffectivePriority: 100, Hold: "maintenance"}},
			"lb2": {status3("lb2", "VI_1", M, 80, "10.0.0.2"), status3("lb2", "VI_2", M, 80, "10.0.0.2")},
		}, nil},
		{"equal priorities: either", doc, map[string]ins{
			"lb1": {status3("lb1", "VI_1", M, 100, "10.0.0.1")},
			"lb2": {status3("lb2", "VI_1", B, 100, "10.0.0.2")},
		}, nil},
		{"INIT", doc, map[string]ins{
			"lb1": {status3("lb1", "VI_1", M, 100, "10.0.0.1")},
			"lb2": {status3("lb2", "VI_1", I, 80, "10.0.0.2")},
			"lb3": {status3("lb3", "VI_1", I, 80, "10.0.0.3")},
		}, []string{"VI_1: lb2, lb3 still INIT"}},
		{"INIT only", doc, map[string]ins{
			"lb1": {status3("lb1", "VI_2", I, 80, "10.0.0.1")},
		}, []string{"VI_2: lb1 still INIT", "VI_2: no master"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ctl.Converged(tc.byNode, tc.doc); !slices.Equal(got, tc.want) {
				t.Errorf("Converged = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFleetWatch(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2")
	f := dialFleet(t, c.Node("lb1").Target)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	type seen struct{ node, instance, origin string }
	var got []seen
	done := make(chan error, 1)
	go func() {
		done <- f.Watch(ctx, func(node string, e *haav1.Event) error {
			got = append(got, seen{node, e.GetInstance(), e.GetNode()})
			if len(got) == 4 {
				return errDone
			}
			return nil
		}, ctl.WatchBackoff(time.Millisecond, 10*time.Millisecond))
	}()
	// since nil: publish once both streams are up.
	waitFor(t, func() bool { return len(c.Node("lb1").Agent.Watches()) == 1 && len(c.Node("lb2").Agent.Watches()) == 1 })
	c.Node("lb1").Agent.Publish(stateEvent("VI_1"), stateEvent("VI_2"))
	c.Node("lb2").Agent.Publish(stateEvent("VI_3"), stateEvent("VI_4"))
	if err := <-done; !errors.Is(err, errDone) {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b seen) int { return strings.Compare(a.instance, b.instance) })
	if want := []seen{{"lb1", "VI_1", "lb1"}, {"lb1", "VI_2", "lb1"}, {"lb2", "VI_3", "lb2"}, {"lb2", "VI_4", "lb2"}}; !slices.Equal(got, want) {
		t.Errorf("events %v", got)
	}
	// Per node, in order.
	var lb1 []string
	for _, s := range got {
		if s.node == "lb1" {
			lb1 = append(lb1, s.instance)
		}
	}
	if !slices.Equal(lb1, []string{"VI_1", "VI_2"}) {
		t.Errorf("lb1 order: %v", lb1)
	}

	// A broken stream: OnRetry names the node, and the watch resumes.
	c.Node("lb2").Agent.Update(func(a *ctltest.Agent) { a.BreakAfter = 1 })
	var retried []string
	ctx2, cancel2 := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel2()
	n := 0
	go func() {
		done <- f.Watch(ctx2, func(node string, e *haav1.Event) error {
			if n++; n == 2 {
				return errDone
			}
			return nil
		}, ctl.WatchBackoff(time.Millisecond, 10*time.Millisecond), ctl.OnRetry(func(r ctl.Retry) {
			var ne *ctl.NodeError
			if errors.As(r.Err, &ne) && status.Code(r.Err) == codes.Unavailable {
				retried = append(retried, ne.Node)
			}
		}))
	}()
	waitFor(t, func() bool { return len(c.Node("lb2").Agent.Watches()) == 2 })
	c.Node("lb2").Agent.Publish(stateEvent("VI_5"), stateEvent("VI_6"))
	if err := <-done; !errors.Is(err, errDone) {
		t.Fatal(err)
	}
	if len(retried) == 0 || retried[0] != "lb2" {
		t.Errorf("retries %v", retried)
	}

	// Cancelled: ctx's error.
	ctx3, cancel3 := context.WithCancel(t.Context())
	go func() { done <- f.Watch(ctx3, func(string, *haav1.Event) error { return nil }) }()
	cancel3()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
