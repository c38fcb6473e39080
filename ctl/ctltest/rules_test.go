package ctltest

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// These tests fail when the fakes' answers drift from haad's rules, which
// live in node/config: the configuration hash (config.Hash), the plan
// (config.Diff), the generation, and the admission of fleet documents
// (config.AdmitFleet).

const runningYAML = `name: n1
instances:
  - {name: VI_1, interface: eth0, vrid: 51, priority: 200, vips: [10.77.0.100/24]}
  - {name: VI_2, interface: eth0, vrid: 52, vips: [10.77.0.110/24]}
`

func parse(t *testing.T, y string) *haav1.AgentConfig {
	t.Helper()
	c, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// realPlan is haad's plan from running to desired, both valid.
func realPlan(t *testing.T, running, desired *haav1.AgentConfig) *haav1.Plan {
	t.Helper()
	r, err := config.Resolve(running)
	if err != nil {
		t.Fatal(err)
	}
	d, err := config.Resolve(desired)
	if err != nil {
		t.Fatal(err)
	}
	p := config.Diff(r.Instances, d.Instances)
	out := &haav1.Plan{Added: p.Added, Removed: p.Removed, Unchanged: p.Unchanged}
	for _, c := range p.Changed {
		out.Changed = append(out.Changed, &haav1.InstanceChange{Name: c.Name, Fields: c.Fields, Restart: c.Restart})
	}
	return out
}

// variants make a configuration one that config.Resolve
// refuses (and the fake takes) without changing what differs.
var variants = map[string]func(c *haav1.AgentConfig){
	"valid":    func(*haav1.AgentConfig) {},
	"bad name": func(c *haav1.AgentConfig) { c.Name = "bad name" },
	"instances not valid": func(c *haav1.AgentConfig) {
		for _, in := range c.GetInstances() {
			in.Auth = &haav1.Auth{Password: "set without a type"}
		}
	},
}

func TestAgentHashAndGeneration(t *testing.T) {
	ctx := t.Context()
	a := &Agent{Node: &haav1.Node{Name: "n1"}, Config: parse(t, runningYAML), Generation: 3}
	hash := config.Hash(a.Config)
	if len(hash) != 32 {
		t.Fatalf("config.Hash = %q", hash)
	}
	n, err := a.GetNode(ctx, &haav1.GetNodeRequest{})
	if err != nil || n.GetNode().GetConfigHash() != hash || n.GetNode().GetConfigGeneration() != 3 {
		t.Errorf("GetNode = %v, %v; want hash %s", n, err, hash)
	}
	g, err := a.GetConfig(ctx, &haav1.GetConfigRequest{})
	if err != nil || g.GetHash() != hash || g.GetGeneration() != 3 {
		t.Errorf("GetConfig = %v, %v; want hash %s", g, err, hash)
	}

	desired := proto.Clone(a.Config).(*haav1.AgentConfig)
	desired.Instances[1].Priority = proto.Uint32(150)
	r, err := a.ApplyConfig(ctx, &haav1.ApplyConfigRequest{Config: desired, DryRun: true})
	if err != nil || r.GetApplied() || r.GetGeneration() != 3 || r.GetHash() != hash {
		t.Errorf("dry run = %v, %v", r, err)
	}
	r, err = a.ApplyConfig(ctx, &haav1.ApplyConfigRequest{Config: desired})
	if err != nil || !r.GetApplied() || r.GetGeneration() != 4 || r.GetHash() != config.Hash(desired) {
		t.Errorf("apply = %v, %v; want generation 4, hash %s", r, err, config.Hash(desired))
	}
	// The same again: applied, the generation stays (the hash is the same).
	r, err = a.ApplyConfig(ctx, &haav1.ApplyConfigRequest{Config: desired})
	if err != nil || !r.GetApplied() || r.GetGeneration() != 4 || r.GetHash() != config.Hash(desired) ||
		!slices.Equal(r.GetPlan().GetUnchanged(), []string{"VI_1", "VI_2"}) {
		t.Errorf("apply again = %v, %v", r, err)
	}
	var kinds []uint64
	for _, e := range a.events {
		kinds = append(kinds, e.GetConfigApplied().GetGeneration())
	}
	if !slices.Equal(kinds, []uint64{4, 4}) {
		t.Errorf("ConfigApplied events of generations %v, want [4 4]", kinds)
	}

	_, err = a.ApplyConfig(ctx, &haav1.ApplyConfigRequest{Config: desired, ExpectedGeneration: proto.Uint64(3)})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("expected generation 3: %v", err)
	}
	if _, err := a.ApplyConfig(ctx, &haav1.ApplyConfigRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("no config: %v", err)
	}
}

func TestAgentPlan(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(c *haav1.AgentConfig)
		fields  []string
		restart bool
	}{
		{"vrid", func(c *haav1.AgentConfig) { c.Instances[0].Vrid = 61 }, []string{"vrid"}, true},
		{"interface", func(c *haav1.AgentConfig) { c.Instances[0].Interface = "eth1" }, []string{"interface"}, true},
		{"vips", func(c *haav1.AgentConfig) { c.Instances[0].Vips = []string{"10.77.0.101/24"} }, []string{"vips"}, true},
		{"advert interval", func(c *haav1.AgentConfig) { c.Instances[0].AdvertInterval = durationpb.New(200 * time.Millisecond) },
			[]string{"advertInterval"}, true},
		{"priority", func(c *haav1.AgentConfig) { c.Instances[0].Priority = proto.Uint32(150) }, []string{"priority"}, false},
		{"priority set to the default", func(c *haav1.AgentConfig) { c.Instances[1].Priority = proto.Uint32(100) }, []string{"priority"}, false},
		{"address owner", func(c *haav1.AgentConfig) { c.Instances[0].Priority = proto.Uint32(255) }, []string{"priority"}, true},
		{"preempt", func(c *haav1.AgentConfig) { c.Instances[0].Preempt = proto.Bool(false) }, []string{"preempt"}, false},
		{"state", func(c *haav1.AgentConfig) { c.Instances[0].State = "MASTER" }, []string{"state"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			running := parse(t, runningYAML)
			desired := proto.Clone(running).(*haav1.AgentConfig)
			tc.edit(desired)
			// VI_0 added: listed as haad lists it (sorted).
			desired.Instances = append(desired.Instances, &haav1.Instance{Name: "VI_0", Interface: "eth0", Vrid: 50, Vips: []string{"10.77.0.90/24"}})
			want := realPlan(t, running, desired)
			if len(want.GetChanged()) != 1 || !slices.Equal(want.GetChanged()[0].GetFields(), tc.fields) || want.GetChanged()[0].GetRestart() != tc.restart {
				t.Fatalf("config.Diff says %v: this test's cases need updating", want)
			}
			// Configurations that config.Resolve refuses as a whole, or
			// instance by instance, have the same plan.
			for what, spoil := range variants {
				r, d := proto.Clone(running).(*haav1.AgentConfig), proto.Clone(desired).(*haav1.AgentConfig)
				spoil(r)
				spoil(d)
				if _, err := config.Resolve(d); (err == nil) != (what == "valid") {
					t.Fatalf("%s: config.Resolve: %v", what, err)
				}
				a := &Agent{Config: r, Generation: 1}
				resp, err := a.ApplyConfig(t.Context(), &haav1.ApplyConfigRequest{Config: d, DryRun: true})
				if err != nil || !proto.Equal(resp.GetPlan(), want) {
					t.Errorf("%s: plan %v, %v; want %v", what, resp.GetPlan(), err, want)
				}
			}
		})
	}
}

const fleetA = `kind: Fleet
nodes: [lb1, lb2]
instances:
  - {name: VI_1, interface: eth0, vrid: 51, vips: [10.77.0.51/24], priorities: {lb1: 100, lb2: 90}}
  - {name: VI_2, interface: eth0, vrid: 52, vips: [10.77.0.52/24], priorities: {lb1: 90, lb2: 100}}
`

// fleetB changes VI_1's vrid (a restart) and VI_2's priorities (in place).
const fleetB = `kind: Fleet
nodes: [lb1, lb2]
instances:
  - {name: VI_1, interface: eth0, vrid: 61, vips: [10.77.0.51/24], priorities: {lb1: 100, lb2: 90}}
  - {name: VI_2, interface: eth0, vrid: 52, vips: [10.77.0.52/24], priorities: {lb1: 80, lb2: 100}}
`

func parseFleet(t *testing.T, y string, gen uint64) *haav1.Fleet {
	t.Helper()
	doc, err := config.ParseFleet([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	doc.Generation = gen
	return doc
}

// composed is what haad runs on node: own and the document's part.
func composed(own *haav1.AgentConfig, doc *haav1.Fleet, node string) *haav1.AgentConfig {
	c := proto.Clone(own).(*haav1.AgentConfig)
	ins, _ := config.ForNode(doc, node)
	c.Instances = append(c.Instances, ins...)
	return c
}

func TestFleetAdmission(t *testing.T) {
	ctx := t.Context()
	c := NewCluster(t, "lb1", "lb2")
	n := c.Node("lb1")
	own := parse(t, "name: lb1\ninstances: [{name: OWN, interface: eth0, vrid: 9, vips: [10.77.0.9/24]}]\n")
	n.Agent.Update(func(a *Agent) { a.Config = own })

	var pending *haav1.Fleet
	for _, step := range []struct {
		name    string
		pending *haav1.Fleet // set before the call
		doc     *haav1.Fleet
		dryRun  bool
		code    codes.Code
	}{
		{name: "first, dry run", doc: parseFleet(t, fleetA, 0), dryRun: true},
		{name: "first", doc: parseFleet(t, fleetA, 0)},
		{name: "next", doc: parseFleet(t, fleetB, 0)},
		{name: "older", doc: parseFleet(t, fleetA, 1), code: codes.FailedPrecondition},
		{name: "another of the stored generation", doc: parseFleet(t, fleetA, 2), code: codes.FailedPrecondition},
		{name: "the stored one again", doc: parseFleet(t, fleetB, 2)},
		{name: "the same at a new generation", doc: parseFleet(t, fleetB, 3)},
		{name: "under a pending newer one", pending: parseFleet(t, fleetB, 5), doc: parseFleet(t, fleetA, 4), code: codes.FailedPrecondition},
		{name: "next above the pending one", doc: parseFleet(t, fleetA, 0)},
		{name: "the pending one retried", pending: parseFleet(t, fleetB, 8), doc: parseFleet(t, fleetB, 8)},
	} {
		if step.pending != nil {
			pending = step.pending
			n.SetPending(pending)
		}
		stored, _ := n.Document()
		adm, admErr := config.AdmitFleet(stored, pending, step.doc, false, "lb1")
		before, err := n.Agent.GetNode(ctx, &haav1.GetNodeRequest{})
		if err != nil {
			t.Fatal(err)
		}
		r, err := n.ApplyFleet(ctx, &haav1.ApplyFleetRequest{Document: step.doc, DryRun: step.dryRun})
		if status.Code(err) != step.code {
			t.Fatalf("%s: %v, want %v", step.name, err, step.code)
		}
		if (admErr != nil) != (err != nil) || (err != nil && status.Convert(err).Message() != admErr.Error()) {
			t.Fatalf("%s: %v; config.AdmitFleet says %+v, %v", step.name, err, adm, admErr)
		}
		if err != nil {
			continue
		}
		now, _ := n.Document()
		doc := proto.Clone(step.doc).(*haav1.Fleet)
		doc.Generation = adm.Generation
		if step.dryRun {
			if r.GetApplied() || r.GetFleetGeneration() != stored.GetGeneration() || !proto.Equal(now, stored) {
				t.Errorf("%s: %v; stores %v", step.name, r, now)
			}
			continue
		}
		if !r.GetApplied() || r.GetFleetGeneration() != adm.Generation || now.GetGeneration() != adm.Generation {
			t.Errorf("%s: %v; stores generation %d, config.AdmitFleet says %d", step.name, r, now.GetGeneration(), adm.Generation)
		}
		if adm.Same {
			if !slices.Equal(r.GetPlan().GetUnchanged(), []string{"VI_1", "VI_2"}) || changes(r.GetPlan()) {
				t.Errorf("%s: plan %v", step.name, r.GetPlan())
			}
		} else if want := realPlan(t, composed(own, stored, "lb1"), composed(own, doc, "lb1")); !proto.Equal(r.GetPlan(), want) {
			t.Errorf("%s: plan %v, config.Diff says %v", step.name, r.GetPlan(), want)
		}
		// The hash is what runs: own and the document's part; a new
		// generation when it changes.
		hash := config.Hash(composed(own, doc, "lb1"))
		gen := before.GetNode().GetConfigGeneration()
		if hash != before.GetNode().GetConfigHash() {
			gen++
		}
		if r.GetHash() != hash || r.GetGeneration() != gen {
			t.Errorf("%s: generation %d hash %s, want %d %s", step.name, r.GetGeneration(), r.GetHash(), gen, hash)
		}
		after, _ := n.Agent.GetNode(ctx, &haav1.GetNodeRequest{})
		cfg, _ := n.Agent.GetConfig(ctx, &haav1.GetConfigRequest{})
		v, _ := n.GetFleet(ctx, &haav1.GetFleetRequest{})
		if after.GetNode().GetConfigHash() != hash || cfg.GetHash() != hash || v.GetMembers()[0].GetConfigHash() != hash ||
			after.GetNode().GetConfigGeneration() != gen || !proto.Equal(cfg.GetConfig(), own) {
			t.Errorf("%s: GetNode %v, GetConfig %v, GetFleet %v; want generation %d hash %s", step.name, after, cfg, v.GetMembers()[0], gen, hash)
		}
		if pending.GetGeneration() <= adm.Generation {
			pending = nil // stored: haad forgets the pending one
		}
	}
}

func changes(p *haav1.Plan) bool {
	return len(p.GetAdded())+len(p.GetRemoved())+len(p.GetChanged()) > 0
}
