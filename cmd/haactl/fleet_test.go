package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/haa-dev/haa/ctl"
	"github.com/haa-dev/haa/ctl/ctltest"
	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// dualMasterDoc is the issue's document, as rollout dual-master prints it.
const dualMasterDoc = `kind: Fleet
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

var durationRE = regexp.MustCompile(`\b\d+(\.\d+)?(ns|µs|ms|s)\b`)

// scrub makes an output comparable: durations become T, the fleet's socket
// paths their node's name.
func scrub(c *ctltest.Cluster, s string) string {
	for _, n := range c.Nodes() {
		s = strings.ReplaceAll(s, n.Target, "unix:///"+n.Name+".sock")
	}
	return durationRE.ReplaceAllString(s, "T")
}

func wantScrubbed(t *testing.T, c *ctltest.Cluster, r result, code int, stdout, stderr string) {
	t.Helper()
	if got := scrub(c, r.out); r.code != code || got != stdout {
		t.Errorf("exit %d, stdout:\n%s\nwant exit %d, stdout:\n%s", r.code, got, code, stdout)
	}
	if got := scrub(c, r.err); got != stderr {
		t.Errorf("stderr:\n%s\nwant:\n%s", got, stderr)
	}
}

const planAdded = `INSTANCE  CHANGE  EFFECT  FIELDS
VI_1      added   starts
VI_2      added   starts
`

func TestFleetApply(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2", "lb3")
	c.AutoElect = true
	file := writeFile(t, "fleet.yaml", dualMasterDoc)
	target := c.Node("lb2").Target

	wantScrubbed(t, c, haactl(t, target, "", "apply", "-f", file, "--dry-run"), 0, `lb1: plan (dry run)
`+planAdded+`
lb2: plan (dry run)
`+planAdded+`
lb3: plan (dry run)
No instances before or after.

Dry run: fleet generation 1 would apply to 3/3 nodes; nothing changed.
`, "")
	for _, n := range c.Nodes() {
		if doc, _ := n.Document(); doc != nil {
			t.Fatalf("dry run: %s stores %v", n.Name, doc)
		}
	}

	wantScrubbed(t, c, haactl(t, target, "", "apply", "-f", file), 0, `lb1: applied in T
`+planAdded+`
lb2: applied in T
`+planAdded+`
lb3: applied in T, nothing to change
No instances before or after.

Applied fleet generation 1 to 3/3 nodes in T.
`, "")
	for _, n := range c.Nodes() {
		if doc, held := n.Document(); doc.GetGeneration() != 1 || held {
			t.Errorf("%s: %v (held %v)", n.Name, doc, held)
		}
	}

	// -o json: the report.
	r := haactl(t, target, "", "apply", "-f", file, "-o", "json")
	wantOK(t, r)
	var rep struct {
		Generation uint64
		Strategy   string
		Nodes      []struct {
			Node, Outcome   string
			FleetGeneration uint64
			Plan, Result    json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(r.out), &rep); err != nil || rep.Generation != 2 || rep.Strategy != "all" || len(rep.Nodes) != 3 {
		t.Fatalf("-o json: %v\n%s", err, r.out)
	}
	res := &haav1.ApplyFleetResponse{}
	if n := rep.Nodes[0]; n.Node != "lb1" || n.Outcome != "applied" || n.FleetGeneration != 2 || protojson.Unmarshal(n.Result, res) != nil || !res.GetApplied() {
		t.Errorf("-o json lb1: %+v", n)
	}
}

func TestFleetApplyRolling(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2")
	c.AutoElect = true
	file := writeFile(t, "fleet.yaml", dualMasterDoc)
	wantScrubbed(t, c, haactl(t, c.Node("lb1").Target, "", "apply", "-f", file, "--strategy", "rolling"), 0, `lb1: plan
`+planAdded+`
lb2: plan
`+planAdded+`
Rolling out fleet generation 1, one node at a time:
[1/2] lb1: applying (added VI_1, VI_2)
[1/2] lb1: applied in T, waiting for the fleet to converge
[1/2] converged after T
[2/2] lb2: applying (added VI_1, VI_2)
[2/2] lb2: applied in T, waiting for the fleet to converge
[2/2] converged after T
Applied fleet generation 1 to 2/2 nodes in T.
`, "")
}

// VRRP does not converge: the rollout stops, exit 1.
func TestFleetApplyNotConverged(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2")
	file := writeFile(t, "fleet.yaml", dualMasterDoc)
	wantScrubbed(t, c, haactl(t, c.Node("lb1").Target, "", "apply", "-f", file, "--strategy", "rolling", "--converge-timeout", "100ms"), 1, `lb1: plan
`+planAdded+`
lb2: plan
`+planAdded+`
Rolling out fleet generation 1, one node at a time:
[1/2] lb1: applying (added VI_1, VI_2)
[1/2] lb1: applied in T, waiting for the fleet to converge
[1/2] waiting: VI_1: no master; VI_2: no master
[1/2] not converged after T:
  VI_1: no master
  VI_2: no master
Rollout stopped at lb1's step after T: fleet generation 1 runs on lb1, held (not offered to its peers yet); not changed: lb2.
`, "haactl: rollout stopped: the fleet did not converge within --converge-timeout T after lb1's step (see above); "+
		"fix the problem and apply again, or apply the previous document to roll back (haactl get instances --all shows the fleet)\n")
}

func TestFleetApplyRefused(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2", "lb3")
	target := c.Node("lb1").Target
	file := writeFile(t, "fleet.yaml", dualMasterDoc)

	// Checked by haactl: nothing is sent.
	bad := writeFile(t, "bad.yaml", "kind: Fleet\nnodes: [lb1, lb1]\ninstances:\n  - {name: VI_1, interface: eth0, vrid: 351, vips: [10.0.0.1/24]}\n")
	wantFail(t, haactl(t, target, "", "apply", "-f", bad), 1, "haactl: "+bad+" is not a valid fleet document (2 problems), nothing was sent to the fleet:\n"+
		bad+": nodes[1]: \"lb1\" is already listed (nodes[0]): remove one\n"+
		bad+": instances[0].vrid: 351 is out of range 1..255\n")
	typo := writeFile(t, "typo.yaml", "kind: Fleet\nnodes: [lb1]\ninstances:\n  - {name: VI_1, interface: eth0, vrid: 51, vipz: [10.0.0.1/24]}\n")
	wantFail(t, haactl(t, target, "", "apply", "-f", typo), 1, "haactl: "+typo+" is not a valid fleet document (1 problem), nothing was sent to the fleet:\n"+
		typo+": instances[0].vipz: unknown field \"vipz\" (did you mean \"vips\"?)\n")
	unknown := writeFile(t, "unknown.yaml", strings.Replace(dualMasterDoc, "nodes: [lb1, lb2]", "nodes: [lb1, lb2, lb9]", 1))
	wantFail(t, haactl(t, target, "", "apply", "-f", unknown), 1, "haactl: "+unknown+": unknown node lb9: members are lb1, lb2, lb3 "+
		"(a node takes part once its haad gossips with the fleet: haactl get nodes); nothing was sent\n")
	for _, n := range c.Nodes() {
		if len(n.Applies()) != 0 {
			t.Fatalf("%s: %v", n.Name, n.Applies())
		}
	}

	// Refused by a node: nothing applied anywhere.
	c.Node("lb2").Refuse(ctltest.InvalidArgument("invalid fleet document", "instances[0].vips[0]", "192.168.55.140/24 is in no subnet of eth0 on lb2: add an override"))
	wantScrubbed(t, c, haactl(t, target, "", "apply", "-f", file), 1, `lb1: not applied
`+planAdded+`
lb2: refused:
  instances[0].vips[0]: 192.168.55.140/24 is in no subnet of eth0 on lb2: add an override

lb3: not applied
No instances before or after.

Nothing applied anywhere: refused by lb2.
`, "haactl: "+file+" was refused by lb2 (see above), nothing was applied anywhere: fix it and apply again\n")
	for _, n := range c.Nodes() {
		if doc, _ := n.Document(); doc != nil {
			t.Errorf("%s stores %v", n.Name, doc)
		}
	}
}

// A member that gossip says is dead: the others apply, exit 1.
func TestFleetApplyUnreachable(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2", "lb3")
	c.Node("lb3").SetState(haav1.MemberState_MEMBER_STATE_DEAD)
	file := writeFile(t, "fleet.yaml", strings.Replace(dualMasterDoc, "nodes: [lb1, lb2]", "nodes: [lb1, lb2, lb3]", 1))
	wantScrubbed(t, c, haactl(t, c.Node("lb1").Target, "", "apply", "-f", file), 1, `lb1: applied in T
`+planAdded+`
lb2: applied in T
`+planAdded+`
lb3: unreachable: gossip says it is DEAD

Applied fleet generation 1 to 2/3 nodes in T.
`, "haactl: fleet generation 1 did not reach lb3 (gossip says it is DEAD): a node that was down catches up through gossip "+
		"when it returns (haactl get nodes shows each node's FLEET-GEN)\n")
}

// A step whose apply fails stops the rollout.
func TestFleetApplyRollingStepFails(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2")
	c.AutoElect = true
	c.Node("lb1").Fail(status.Error(codes.Internal, "disk full"))
	file := writeFile(t, "fleet.yaml", dualMasterDoc)
	wantScrubbed(t, c, haactl(t, c.Node("lb2").Target, "", "apply", "-f", file, "--strategy", "rolling"), 1, `lb1: plan
`+planAdded+`
lb2: plan
`+planAdded+`
Rolling out fleet generation 1, one node at a time:
[1/2] lb1: applying (added VI_1, VI_2)
[1/2] lb1: failed: disk full (Internal)
Rollout stopped at lb1's step after T; not changed: lb1, lb2.
`, "haactl: the rollout stopped at lb1's step (not changed: lb1, lb2): fix the problem and apply again; "+
		"fleet generation 1 failed on lb1 (disk full (Internal)): haactl get issues, and haad's log there, say more\n")
}

func TestFleetApplyUsage(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1")
	target := c.Node("lb1").Target
	file := writeFile(t, "fleet.yaml", dualMasterDoc)
	node := writeFile(t, "haad.yaml", runningYAML)
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"apply", "-f", file, "--strategy", "canary"}, "haactl: --strategy \"canary\": want all or rolling\nsee 'haactl apply --help'\n"},
		{[]string{"apply", "-f", file, "--expected-generation", "3"}, "haactl: --expected-generation applies to a node's configuration, not to a fleet document: " +
			"the fleet's generation is set by haactl\nsee 'haactl apply --help'\n"},
		{[]string{"apply", "-f", node, "--strategy", "rolling"}, "haactl: --strategy applies to a fleet document (kind: Fleet) only\nsee 'haactl apply --help'\n"},
		{[]string{"watch", "--all", "--since", "3"}, "haactl: --since goes with one node (event numbers are per node): watch --all follows every node from now on\nsee 'haactl watch --help'\n"},
	} {
		wantFail(t, haactl(t, target, "", tc.args...), 2, tc.err)
	}
	wantFail(t, haactl(t, target, "", "diff", "-f", file), 1, "haactl: "+file+" is a fleet document (kind: Fleet): haactl apply -f "+file+" --dry-run shows each node's plan\n")
	if n := len(c.Node("lb1").Applies()); n != 0 {
		t.Errorf("%d applies", n)
	}
}

func TestRolloutDualMaster(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2")
	c.AutoElect = true
	target := c.Node("lb1").Target
	args := []string{"rollout", "dual-master", "--nodes", "lb1,lb2", "--vips", "192.168.55.140/24,192.168.55.141/24", "--interface", "eth0"}

	// --print: the issue's document, which reads back as itself.
	r := haactl(t, "unix:///nowhere.sock", "", append(args, "--print")...)
	wantOut(t, r, dualMasterDoc)
	r = haactl(t, "unix:///nowhere.sock", "", append(args, "--print", "-o", "json")...)
	wantOK(t, r)
	got := &haav1.Fleet{}
	if err := protojson.Unmarshal([]byte(r.out), got); err != nil || !proto.Equal(got, mustParseFleet(t, dualMasterDoc)) {
		t.Errorf("-o json: %v\n%s", err, r.out)
	}
	r = haactl(t, "unix:///nowhere.sock", "", "rollout", "dual-master", "--nodes", "a,b", "--vips", "10.1.0.1/16,10.1.0.2",
		"--interface", "ens4", "--vrids", "7,8", "--priorities", "150,50", "--advert-interval", "250ms", "--print")
	wantOut(t, r, `kind: Fleet
nodes: [a, b]
instances:
  - name: VI_1
    interface: ens4
    vrid: 7
    advertInterval: 250ms
    vips: ["10.1.0.1/16"]
    priorities: {a: 150, b: 50}
  - name: VI_2
    interface: ens4
    vrid: 8
    advertInterval: 250ms
    vips: ["10.1.0.2"]
    priorities: {a: 50, b: 150}
`)

	// Applied, rolling: lb1 ends master of VI_1, lb2 of VI_2.
	r = haactl(t, target, "", args...)
	wantOK(t, r)
	if !strings.Contains(r.out, "Rolling out fleet generation 1, one node at a time:\n[1/2] lb1: applying") || !strings.HasSuffix(scrub(c, r.out), "Applied fleet generation 1 to 2/2 nodes in T.\n") {
		t.Errorf("stdout:\n%s", r.out)
	}
	wantScrubbed(t, c, haactl(t, target, "", "get", "instances", "--all"), 0, `NODE  INSTANCE  IFACE  FAMILY  STATE   PRIO  VIPS               GEN      AGE
lb1   VI_1      eth0   ipv4    MASTER  100   192.168.55.140/24  fleet 1  T
lb1   VI_2      eth0   ipv4    BACKUP  80    192.168.55.141/24  fleet 1  T
lb2   VI_1      eth0   ipv4    BACKUP  80    192.168.55.140/24  fleet 1  T
lb2   VI_2      eth0   ipv4    MASTER  100   192.168.55.141/24  fleet 1  T
`, "")

	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--nodes", "lb1", "--vips", "10.0.0.1/24,10.0.0.2/24", "--interface", "eth0"}, "--nodes: want two, comma-separated, got 1"},
		{[]string{"--nodes", "lb1,lb1", "--vips", "10.0.0.1/24,10.0.0.2/24", "--interface", "eth0"}, "--nodes: give two different values, not lb1 twice"},
		{[]string{"--nodes", "lb1,lb2", "--vips", "10.0.0.1/24,nope", "--interface", "eth0", "--vrids", "51,51", "--priorities", "80,100"},
			"--vips: \"nope\" is no address: want ADDR/LEN, e.g. 192.168.55.140/24\n--vrids: give two different virtual router ids, not 51 twice\n" +
				"--priorities 80,100: the first (the preferred node's) must be the higher"},
		{[]string{"--nodes", "lb1,lb2", "--vips", "10.0.0.1/24,10.0.0.2/24", "--interface", "eth0", "--vrids", "0,256"}, "--vrids: \"0\": want a whole number in 1..255"},
		{[]string{"--nodes", "lb1,lb2", "--vips", "10.0.0.1/24,10.0.0.2/24", "--interface", "eth0", "--advert-interval", "0s"}, "--advert-interval 0s: want a positive duration, e.g. 1s"},
		{[]string{"--nodes", "lb1,lb2", "--vips", "10.0.0.1/24,10.0.0.2/24"}, "required flag(s) \"interface\" not set"},
	} {
		r := haactl(t, target, "", append([]string{"rollout", "dual-master", "--print"}, tc.args...)...)
		if r.code != 2 || !strings.HasPrefix(r.err, "haactl: "+tc.err+"\nsee '") {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant:\n%s", tc.args, r.code, r.err, tc.err)
		}
	}
	wantFail(t, haactl(t, target, "", "rollout"), 2, "haactl: haactl rollout what?\nsee 'haactl rollout --help'\n")
}

func mustParseFleet(t *testing.T, y string) *haav1.Fleet {
	t.Helper()
	doc, err := config.ParseFleet([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestGetFleet(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2", "lb3")
	c.AutoElect = true
	target := c.Node("lb3").Target
	wantFail(t, haactl(t, target, "", "get", "fleet"), 0, "No fleet document: none was ever applied to lb3 (haactl apply -f fleet.yaml).\n")
	doc := mustParseFleet(t, dualMasterDoc)
	doc.Generation = 4
	c.SetDocument(doc)
	// lb2 missed it, lb3 runs something else.
	c.Node("lb2").SetDocument(mustParseFleet(t, "kind: Fleet\nnodes: [lb2]\ngeneration: 3\ninstances: []\n"), false)
	c.Elect()
	c.Node("lb3").SetAge(2 * time.Minute)
	c.Node("lb3").SetState(haav1.MemberState_MEMBER_STATE_SUSPECT)

	nodes := `NAME  STATE    HEALTH   GEN  FLEET-GEN  DRIFT   AGE  API
lb1   ALIVE    healthy  1    4          no      T   unix:///lb1.sock
lb2   ALIVE    healthy  2    3          behind  T   unix:///lb2.sock
lb3   SUSPECT  healthy  0    4          no      2m   unix:///lb3.sock
`
	wantScrubbed(t, c, haactl(t, target, "", "get", "nodes"), 0, nodes, "")
	wantScrubbed(t, c, haactl(t, target, "", "get", "nodes", "--all"), 0, nodes, "")
	wantScrubbed(t, c, haactl(t, target, "", "get", "node", "--all"), 0, nodes, "")
	// Any member answers; the first seed that does.
	wantScrubbed(t, c, haactl(t, "unix:///nowhere.sock,"+c.Node("lb1").Target, "", "get", "nodes"), 0, nodes, "")

	wantScrubbed(t, c, haactl(t, target, "", "get", "instances", "--all"), 0, `NODE  INSTANCE  IFACE  FAMILY  STATE   PRIO  VIPS               GEN      AGE
lb1   VI_1      eth0   ipv4    MASTER  100   192.168.55.140/24  fleet 4  T
lb1   VI_2      eth0   ipv4    MASTER  80    192.168.55.141/24  fleet 4  T
`, "")
	r := haactl(t, target, "", "get", "instances", "--all", "-o", "json")
	got := &haav1.GetFleetResponse{}
	if err := protojson.Unmarshal([]byte(r.out), got); err != nil || len(got.GetInstances()) != 2 || len(got.GetMembers()) != 0 || got.GetNode() != "lb3" {
		t.Errorf("-o json: %v\n%s", err, r.out)
	}

	// get fleet prints a file that apply takes back.
	r = haactl(t, target, "", "get", "fleet")
	wantOK(t, r)
	if !strings.HasPrefix(r.out, "# fleet document: generation 4, as stored on lb3\n") {
		t.Errorf("get fleet:\n%s", r.out)
	}
	back := mustParseFleet(t, r.out)
	back.Generation = 4
	if !proto.Equal(back, doc) {
		t.Errorf("get fleet does not read back: %v", back)
	}
	r = haactl(t, target, "", "get", "fleet", "-o", "json")
	if err := protojson.Unmarshal([]byte(r.out), back); err != nil || !proto.Equal(back, doc) {
		t.Errorf("get fleet -o json: %v\n%s", err, r.out)
	}

	// A seed that does not gossip.
	c.Node("lb1").SetGossip(false)
	wantScrubbed(t, c, haactl(t, c.Node("lb1").Target, "", "get", "nodes"), 1, "", "haactl: the node does not gossip: node lb1 at unix:///lb1.sock is no fleet member: "+
		"give it a gossip section in its configuration (gossip: {bind: HOST:7946, join: [PEER:7946]}), or give a seed that gossips (--target)\n")
	wantScrubbed(t, c, haactl(t, "unix:///nowhere.sock,"+c.Node("lb1").Target, "", "get", "nodes"), 1, "", `haactl: no member of --target answered with the fleet:
  seed unix:///nowhere.sock: no haad listening on /nowhere.sock: is haad running?
  seed unix:///lb1.sock: the node does not gossip: node lb1 at unix:///lb1.sock is no fleet member: give it a gossip section in its configuration (gossip: {bind: HOST:7946, join: [PEER:7946]}), or give a seed that gossips
check --target (a comma-separated list of fleet members)
`)
}

func TestGetIssues(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2")
	target := c.Node("lb1").Target
	wantFail(t, haactl(t, target, "", "get", "issues"), 0, "No issues.\n")
	c.Node("lb1").SetIssues(
		&haav1.FleetIssue{Kind: &haav1.FleetIssue_SplitBrain{SplitBrain: &haav1.SplitBrain{Segment: "10.77.0.0/24", Vrid: 51,
			Masters: []*haav1.NodeInstance{{Node: "lb1", Instance: "VI_1"}, {Node: "lb2", Instance: "VI_1"}}}}},
		&haav1.FleetIssue{Kind: &haav1.FleetIssue_VridCollision{VridCollision: &haav1.VridCollision{Segment: "10.77.0.0/24", Vrid: 52,
			Instances: []*haav1.NodeInstance{{Node: "lb1", Instance: "VI_2"}, {Node: "lb2", Instance: "OTHER"}}}}},
		&haav1.FleetIssue{Kind: &haav1.FleetIssue_Drift{Drift: &haav1.Drift{Node: "lb2", FleetGeneration: 4, Hash: "0123456789abcdef",
			ExpectedHash: "fedcba9876543210", Reason: "instance VI_2: interface eth0 not found"}}},
	)
	wantOut(t, haactl(t, target, "", "get", "issues"), `ISSUE           WHERE                 DETAIL
split brain     10.77.0.0/24 vrid 51  masters: lb1 (VI_1), lb2 (VI_1)
vrid collision  10.77.0.0/24 vrid 52  used by lb1 (VI_2), lb2 (OTHER)
drift           lb2                   fleet generation 4, runs 0123456789ab, should run fedcba987654: instance VI_2: interface eth0 not found
`)
	r := haactl(t, target, "", "get", "issues", "-o", "yaml")
	if r.code != 0 || !strings.Contains(r.out, "splitBrain:") || !strings.Contains(r.out, "node: lb1\n") {
		t.Errorf("-o yaml: %+v", r)
	}
}

func TestWatchAll(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb22", "lb3")
	c.Node("lb3").SetState(haav1.MemberState_MEMBER_STATE_LEFT)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errOut syncBuffer
	root := newRootCmd(&out, &errOut, ctl.Dial)
	done := make(chan int)
	go func() {
		done <- execute(ctx, root, []string{"--target", c.Node("lb1").Target, "watch", "--all"}, &errOut)
	}()
	waitFor(t, func() bool {
		return len(c.Node("lb1").Agent.Watches()) == 1 && len(c.Node("lb22").Agent.Watches()) == 1
	})
	ts := started.Add(45 * time.Minute)
	for i, name := range []string{"lb1", "lb22"} {
		c.Node(name).Agent.Publish(&haav1.Event{Time: timeAt(ts, i), Instance: "VI_1", Kind: &haav1.Event_MemberChanged{MemberChanged: &haav1.MemberChanged{
			Node: "lb3", State: haav1.MemberState_MEMBER_STATE_LEFT, Address: "10.77.0.3:7946"}}})
	}
	waitOut(t, out.String, 2)
	c.Node("lb22").Agent.Publish(&haav1.Event{Time: timeAt(ts, 2), Instance: "VI_2", Kind: &haav1.Event_FleetApplied{FleetApplied: &haav1.FleetApplied{
		Generation: 4, Source: "gossip from lb1", Plan: &haav1.Plan{Added: []string{"VI_2"}}}}})
	waitOut(t, out.String, 3)
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		"lb1   " + local(ts) + ".000      1  VI_1      member lb3 is LEFT (10.77.0.3:7946)",
		"lb22  " + local(ts) + ".001      1  VI_1      member lb3 is LEFT (10.77.0.3:7946)",
		"lb22  " + local(ts) + ".002      2  VI_2      fleet generation 4 applied (gossip from lb1): added VI_2",
	}
	// The two nodes' first events may come in either order.
	if len(lines) != 3 || lines[2] != want[2] || !(lines[0] == want[0] && lines[1] == want[1] || lines[0] == want[1] && lines[1] == want[0]) {
		t.Errorf("stdout:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if e := errOut.String(); e != "Watching lb1, lb22 from now on; interrupt to stop.\nhaactl: not watching lb3: unreachable: gossip says it is LEFT\n" {
		t.Errorf("stderr:\n%s", e)
	}
}

func TestKeygen(t *testing.T) {
	r := haactl(t, "unix:///nowhere.sock", "", "keygen")
	wantOK(t, r)
	key, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(r.out, "\n"))
	if err != nil || len(key) != 32 || strings.Count(r.out, "\n") != 1 {
		t.Errorf("keygen: %v, %q", err, r.out)
	}
	if r2 := haactl(t, "unix:///nowhere.sock", "", "keygen"); r2.out == r.out {
		t.Error("the same key twice")
	}
}

func TestDescribeFleetEvents(t *testing.T) {
	for _, tc := range []struct {
		e    *haav1.Event
		want string
	}{
		{&haav1.Event{Kind: &haav1.Event_SplitBrain{SplitBrain: &haav1.SplitBrain{Segment: "10.77.0.0/24", Vrid: 51,
			Masters: []*haav1.NodeInstance{{Node: "lb1", Instance: "VI_1"}, {Node: "lb2", Instance: "VI_1"}}}}},
			"split brain on 10.77.0.0/24 vrid 51: masters lb1 (VI_1), lb2 (VI_1)"},
		{&haav1.Event{Kind: &haav1.Event_SplitBrain{SplitBrain: &haav1.SplitBrain{Segment: "10.77.0.0/24", Vrid: 51, Resolved: true, Master: "lb1"}}},
			"split brain over on 10.77.0.0/24 vrid 51: lb1 stays master"},
		{&haav1.Event{Kind: &haav1.Event_VridCollision{VridCollision: &haav1.VridCollision{Segment: "10.77.0.0/24", Vrid: 52,
			Instances: []*haav1.NodeInstance{{Node: "lb1", Instance: "VI_2"}, {Node: "lb3", Instance: "X"}}}}},
			"vrid collision on 10.77.0.0/24 vrid 52: used by lb1 (VI_2), lb3 (X)"},
		{&haav1.Event{Kind: &haav1.Event_Drift{Drift: &haav1.Drift{Node: "lb2", FleetGeneration: 4, Hash: "aaaa", ExpectedHash: "bbbb", Reason: "x"}}},
			"drift: lb2 does not run what the fleet document gives it (fleet generation 4, runs aaaa, should run bbbb: x)"},
		{&haav1.Event{Kind: &haav1.Event_Drift{Drift: &haav1.Drift{Node: "lb2", FleetGeneration: 4, Resolved: true}}},
			"drift over: lb2 runs what fleet generation 4 gives it"},
		{&haav1.Event{Kind: &haav1.Event_MemberChanged{MemberChanged: &haav1.MemberChanged{Node: "lb2", State: haav1.MemberState_MEMBER_STATE_DEAD}}},
			"member lb2 is DEAD"},
	} {
		if got := describeEvent(tc.e); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestFleetCompletion(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2", "lb3")
	r := haactl(t, c.Node("lb1").Target, "", "__complete", "rollout", "dual-master", "--nodes", "lb1,")
	if r.code != 0 || !strings.HasPrefix(r.out, "lb1,lb2\nlb1,lb3\n:") {
		t.Errorf("--nodes completion: %+v", r)
	}
	r = haactl(t, c.Node("lb1").Target, "", "__complete", "apply", "-f", "x.yaml", "--strategy", "")
	if r.code != 0 || !strings.HasPrefix(r.out, "all\nrolling\n:") {
		t.Errorf("--strategy completion: %+v", r)
	}
}

// timeAt is ts plus i milliseconds.
func timeAt(ts time.Time, i int) *timestamppb.Timestamp {
	return timestamppb.New(ts.Add(time.Duration(i) * time.Millisecond))
}

// drain --all drains a real server on every director of the fleet at
// once and reports each: a node without the virtual server is not a
// director; one that fails makes the command fail, the others done.
func TestDrainAllDirectors(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2", "lb3")
	web := func() []*haav1.VirtualServerStatus {
		return []*haav1.VirtualServerStatus{{Name: "web", Address: "10.77.0.100:80", Protocol: "tcp", Up: true,
			RealServers: []*haav1.RealServerStatus{{Address: "10.77.1.1:80", Healthy: true, Programmed: true,
				ConfiguredWeight: 100, Weight: 100, Check: "tcp", LastResult: "ok"}}}}
	}
	c.Node("lb1").Agent.VirtualServers = web()
	c.Node("lb2").Agent.VirtualServers = web()
	target := c.Node("lb3").Target
	r := haactl(t, target, "", "drain", "web", "10.77.1.1:80", "--all")
	wantOK(t, r)
	out := scrub(c, r.out)
	t.Logf("haactl drain web 10.77.1.1:80 --all:\n%s", out)
	for _, want := range []string{"NODE", "lb1   10.77.1.1:80", "lb2   10.77.1.1:80", "lb3   -", "not a director: no virtual server web", "Done on 2 director(s)."} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	for _, n := range []string{"lb1", "lb2"} {
		sets := c.Node(n).Agent.RealServerSets()
		if len(sets) != 1 || !sets[0].GetDrain() || sets[0].GetRealServer() != "10.77.1.1:80" {
			t.Errorf("%s got %v, want one drain of 10.77.1.1:80", n, sets)
		}
	}
	if sets := c.Node("lb3").Agent.RealServerSets(); len(sets) != 0 {
		t.Errorf("lb3, not a director, got %v", sets)
	}

	// A director that fails: reported, the command fails, the other done.
	c.Node("lb2").Agent.VirtualServers[0].RealServers = nil
	r = haactl(t, target, "", "enable", "web", "10.77.1.1:80", "--all")
	if r.code != 1 || !strings.Contains(r.out, "lb2   -") || !strings.Contains(r.out, "FAILED") ||
		!strings.Contains(r.err, "1 of 3 nodes failed") {
		t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s", r.code, r.out, r.err)
	}
	if sets := c.Node("lb1").Agent.RealServerSets(); len(sets) != 2 || !sets[1].GetEnable() {
		t.Errorf("lb1 got %v, want the drain then the enable", sets)
	}
	// No director at all.
	r = haactl(t, target, "", "drain", "db", "10.77.1.9:5432", "--all")
	if r.code != 1 || !strings.Contains(r.err, "no node of the fleet has the virtual server db") {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.err)
	}
	wantFail(t, haactl(t, target, "", "drain", "web", "10.77.1.1:80", "--all", "-o", "json"), 2,
		"haactl: --all prints a table (one row per director); leave out -o\nsee 'haactl drain --help'\n")
}

// get vs --all: every real server with a column per director; directors
// that disagree about its health are marked.
func TestGetVirtualServersAll(t *testing.T) {
	c := ctltest.NewCluster(t, "lb1", "lb2", "lb3")
	web := func(healthy bool) []*haav1.VirtualServerStatus {
		return []*haav1.VirtualServerStatus{{Name: "web", Address: "10.77.0.100:80", Protocol: "tcp", Up: true,
			RealServers: []*haav1.RealServerStatus{
				{Address: "10.77.1.1:80", Healthy: true, Programmed: true, ConfiguredWeight: 100, Weight: 100,
					ActiveConnections: proto.Uint64(3), InactiveConnections: proto.Uint64(7)},
				{Address: "10.77.1.2:80", Healthy: healthy, Programmed: healthy, ConfiguredWeight: 100, Weight: 100}}}}
	}
	c.Node("lb1").Agent.VirtualServers = web(true)
	c.Node("lb2").Agent.VirtualServers = web(false)
	r := haactl(t, c.Node("lb3").Target, "", "get", "vs", "--all")
	want := []string{
		"VIRTUAL SERVER  REAL SERVER   lb1             lb2",
		"web             10.77.1.1:80  up 100/100 3/7  up 100/100 3/7",
		"web             10.77.1.2:80  up 100/100      down -/100      DISPUTED",
	}
	got := strings.Split(strings.TrimRight(r.out, "\n"), "\n")
	for i := range got {
		got[i] = strings.TrimRight(got[i], " ")
	}
	if r.code != 0 || !slices.Equal(got, want) {
		t.Errorf("exit %d, stdout:\n%s\nwant:\n%s", r.code, r.out, strings.Join(want, "\n"))
	}
}
