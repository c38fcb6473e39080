package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"sigs.k8s.io/yaml"

	"github.com/haa-dev/haa/ctl"
	"github.com/haa-dev/haa/ctl/ctltest"
	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

var started = time.Date(2025, 11, 22, 3, 0, 0, 0, time.UTC)

// local formats t as haactl does (in the local time zone).
func local(t time.Time) string { return t.Local().Format(timeLayout) }

const runningYAML = `name: n1
instances:
  - name: VI_1
    interface: eth0
    vrid: 51
    priority: 200
    advertInterval: 100ms
    vips: ["10.77.0.100/24"]
  - name: VI_2
    interface: eth0
    vrid: 52
    vips: ["10.77.0.110/24"]
`

func mustParse(t *testing.T, y string) *haav1.AgentConfig {
	t.Helper()
	c, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newFake is a node n1 with a master VI_1 and a backup VI_2.
func newFake(t *testing.T) *ctltest.Agent {
	now := time.Now()
	return &ctltest.Agent{
		Node: &haav1.Node{
			Name: "n1", Version: "0.4.0", Pid: 4242,
			StartTime:       timestamppb.New(started),
			Uptime:          durationpb.New(time.Hour + 2*time.Minute + 3*time.Second),
			ListenAddresses: []string{"unix:///run/haa/n1.sock"},
		},
		Instances: []*haav1.InstanceStatus{{
			Name: "VI_1", Interface: "eth0", Vrid: 51, Version: 3, State: haav1.State_STATE_MASTER, Family: "ipv4", AcceptMode: true,
			ConfiguredPriority: 200, EffectivePriority: 200, MasterAddress: "10.77.0.1", SourceAddress: "10.77.0.1",
			AdvertInterval: durationpb.New(100 * time.Millisecond),
			Vips:           []string{"10.77.0.100/24"}, VipsHeld: []string{"10.77.0.100/24"},
			LastTransition: &haav1.Transition{Time: timestamppb.New(now.Add(-(2*time.Hour + 5*time.Minute + 30*time.Second))),
				From: haav1.State_STATE_BACKUP, To: haav1.State_STATE_MASTER, Cause: "master_down_timer"},
			Counters: &haav1.Counters{AdvertsSent: 75000, AdvertsReceived: 12, GarpsSent: 10, Transitions: 2,
				Drops:        map[string]uint64{"ttl": 1, "auth_failure": 3},
				TimerSlipMax: durationpb.New(1200 * time.Microsecond)},
		}, {
			Name: "VI_2", Interface: "eth0", Vrid: 52, Version: 3, State: haav1.State_STATE_BACKUP,
			ConfiguredPriority: 100, EffectivePriority: 90, MasterAddress: "10.77.0.2",
			Vips: []string{"10.77.0.110/24"}, Hold: "maintenance", VipError: "add 10.77.0.110/24: permission denied",
		}},
		Config:     mustParse(t, runningYAML),
		Generation: 3,
		NewMaster:  "10.77.0.2",
		Validate: func(c *haav1.AgentConfig) error {
			if err := config.Validate(c); err != nil {
				var fv []string
				for _, f := range config.Fields(err) {
					fv = append(fv, f.Path, f.Msg)
				}
				return ctltest.InvalidArgument(err.Error(), fv...)
			}
			return nil
		},
	}
}

// syncBuffer is a bytes.Buffer safe for a command writing while the test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type result struct {
	out, err string
	code     int
}

// haactl runs a command line against target.
func haactl(t *testing.T, target, stdin string, args ...string) result {
	t.Helper()
	return haactlCtx(t.Context(), target, stdin, args...)
}

func haactlCtx(ctx context.Context, target, stdin string, args ...string) result {
	var out, errOut syncBuffer
	root := newRootCmd(&out, &errOut, ctl.Dial)
	root.SetIn(strings.NewReader(stdin))
	code := execute(ctx, root, append([]string{"--target", target}, args...), &errOut)
	return result{out.String(), errOut.String(), code}
}

func serve(t *testing.T) (*ctltest.Agent, string) {
	fake := newFake(t)
	return fake, ctltest.Serve(t, fake).Target
}

func wantOK(t *testing.T, r result) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.err)
	}
}

func wantFail(t *testing.T, r result, code int, stderr string) {
	t.Helper()
	if r.code != code || r.err != stderr {
		t.Errorf("exit %d, stderr:\n%s\nwant exit %d, stderr:\n%s", r.code, r.err, code, stderr)
	}
}

func wantOut(t *testing.T, r result, want string) {
	t.Helper()
	wantOK(t, r)
	if r.out != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.out, want)
	}
}

func TestGetNode(t *testing.T) {
	fake, target := serve(t)
	hash := config.Hash(fake.Config)

	wantOut(t, haactl(t, target, "", "get", "node"), `NAME         n1
VERSION      0.4.0
PID          4242
STARTED      `+local(started)+` (up 1h2m3s)
CONFIG       generation 3, hash `+hash[:12]+`
LISTEN       unix:///run/haa/n1.sock
MAINTENANCE  off
`)
	wantOut(t, haactl(t, target, "", "get", "node", "-o", "json"), `{
  "name": "n1",
  "version": "0.4.0",
  "startTime": "2025-11-22T03:00:00Z",
  "uptime": "3723s",
  "configGeneration": "3",
  "configHash": "`+hash+`",
  "listenAddresses": [
    "unix:///run/haa/n1.sock"
  ],
  "pid": 4242
}
`)
	wantOut(t, haactl(t, target, "", "get", "node", "-o", "yaml"), `configGeneration: "3"
configHash: `+hash+`
listenAddresses:
- unix:///run/haa/n1.sock
name: n1
pid: 4242
startTime: "2025-11-22T03:00:00Z"
uptime: 3723s
version: 0.4.0
`)
	fake.Update(func(a *ctltest.Agent) { a.Node.Maintenance = &haav1.Maintenance{Enabled: true} })
	if r := haactl(t, target, "", "get", "node"); !strings.Contains(r.out, "MAINTENANCE  on until turned off\n") {
		t.Errorf("maintenance: %s", r.out)
	}
}

func TestGetInstances(t *testing.T) {
	fake, target := serve(t)
	wantOut(t, haactl(t, target, "", "get", "instances"), `NAME  IFACE  VRID  VER  STATE   PRIO      MASTER     VIPS  LAST TRANSITION              NOTES
VI_1  eth0   51    3    MASTER  200       10.77.0.1  1/1   2h5m ago, master_down_timer
VI_2  eth0   52    3    BACKUP  90 (100)  10.77.0.2  0/1   -                            held: maintenance; VIP error (haactl describe instance VI_2)
`)
	want := &haav1.ListInstancesResponse{Instances: fake.Instances}
	for _, format := range []string{"json", "yaml"} {
		r := haactl(t, target, "", "get", "instances", "-o", format)
		wantOK(t, r)
		js := []byte(r.out)
		if format == "yaml" {
			var err error
			if js, err = yaml.YAMLToJSON(js); err != nil {
				t.Fatal(err)
			}
		}
		got := &haav1.ListInstancesResponse{}
		if err := protojson.Unmarshal(js, got); err != nil || !proto.Equal(got, want) {
			t.Errorf("-o %s: %v\n%s", format, err, r.out)
		}
		for _, s := range []string{"effectivePriority", "vipsHeld", "lastTransition", "STATE_MASTER", "auth_failure", "masterAddress"} {
			if !strings.Contains(r.out, s) {
				t.Errorf("-o %s: no %q in\n%s", format, s, r.out)
			}
		}
	}
}

func TestDescribeInstance(t *testing.T) {
	fake, target := serve(t)
	tr := fake.Instances[0].LastTransition.Time.AsTime()
	wantOut(t, haactl(t, target, "", "describe", "instance", "VI_1"), `Name:                VI_1
Interface:           eth0
VRID:                51
Version:             3
Family:              IPv4
Accept mode:         yes
State:               MASTER
Priority:            200 (configured 200)
Master:              10.77.0.1 (this node)
Source address:      10.77.0.1
Advert interval:     100ms
VIPs:                10.77.0.100/24
VIPs held:           10.77.0.100/24
VIP error:           -
Hold:                -
Last transition:     BACKUP -> MASTER at `+local(tr)+` (2h5m ago)
  cause:             master_down_timer
Counters:
  adverts sent:      75000
  adverts received:  12
  GARPs sent:        10
  transitions:       2
  timer slip max:    1.2ms
Drops:
  auth_failure:      3
  ttl:               1
`)
	r := haactl(t, target, "", "describe", "instance", "VI_2")
	for _, s := range []string{"VIP error:           add 10.77.0.110/24: permission denied\n", "Hold:                maintenance\n",
		"Last transition:     -\n", "Drops:               none\n", "Priority:            90 (configured 100)\n"} {
		if !strings.Contains(r.out, s) {
			t.Errorf("VI_2: no %q in\n%s", s, r.out)
		}
	}
	r = haactl(t, target, "", "describe", "instance", "VI_1", "-o", "json")
	wantOK(t, r)
	got := &haav1.InstanceStatus{}
	if err := protojson.Unmarshal([]byte(r.out), got); err != nil || !proto.Equal(got, fake.Instances[0]) {
		t.Errorf("-o json: %v\n%s", err, r.out)
	}
	if !strings.Contains(r.out, `"drops": {
      "auth_failure": "3",
      "ttl": "1"
    }`) {
		t.Errorf("-o json drops:\n%s", r.out)
	}

	wantFail(t, haactl(t, target, "", "describe", "instance", "VI_9"), 1,
		"haactl: no instance \"VI_9\": haactl get instances lists the instances\n")
	wantFail(t, haactl(t, target, "", "describe", "instance"), 2,
		"haactl: accepts 1 arg(s), received 0\nsee 'haactl describe instance --help'\n")
}

func TestGetConfig(t *testing.T) {
	fake, target := serve(t)
	hash := config.Hash(fake.Config)
	wantOut(t, haactl(t, target, "", "get", "config"), `# running configuration: generation 3, hash `+hash+`
instances:
- advertInterval: 0.100s
  interface: eth0
  name: VI_1
  priority: 200
  vips:
  - 10.77.0.100/24
  vrid: 51
- interface: eth0
  name: VI_2
  vips:
  - 10.77.0.110/24
  vrid: 52
name: n1
`)
	// The table form is a configuration file again.
	r := haactl(t, target, "", "get", "config")
	if c := mustParse(t, r.out); !proto.Equal(c, fake.Config) {
		t.Errorf("get config does not parse back: %v", c)
	}
	r = haactl(t, target, "", "get", "config", "-o", "json")
	got := &haav1.GetConfigResponse{}
	if err := protojson.Unmarshal([]byte(r.out), got); err != nil || got.GetGeneration() != 3 || !proto.Equal(got.GetConfig(), fake.Config) {
		t.Errorf("-o json: %v\n%s", err, r.out)
	}
}

const desiredYAML = `name: n1
instances:
  - name: VI_1
    interface: eth0
    vrid: 61
    priority: 200
    advertInterval: 100ms
    vips: ["10.77.0.100/24"]
  - name: VI_2
    interface: eth0
    vrid: 52
    priority: 150
    vips: ["10.77.0.110/24"]
  - name: VI_3
    interface: eth1
    vrid: 53
    vips: ["10.77.1.100/24"]
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const wantPlan = `INSTANCE  CHANGE   EFFECT                            FIELDS
VI_3      added    starts
VI_1      changed  restart (may cause a transition)  vrid
VI_2      changed  in place                          priority
`

func TestApply(t *testing.T) {
	fake, target := serve(t)
	file := writeFile(t, "haad.yaml", desiredYAML)
	hash := config.Hash(fake.Config)

	wantOut(t, haactl(t, target, "", "apply", "-f", file, "--dry-run"), wantPlan+`
Dry run: nothing applied; generation 3 runs (hash `+hash[:12]+`).
`)
	wantFail(t, haactl(t, target, "", "apply", "-f", file, "--expected-generation", "2"), 1,
		"haactl: the configuration changed since generation 2, nothing was applied: "+
			"run haactl get node and haactl diff -f "+file+" to see what runs now, and retry\n")
	if n := len(fake.Applies()); n != 2 || fake.Generation != 3 {
		t.Fatalf("%d applies, generation %d", n, fake.Generation)
	}

	r := haactl(t, target, "", "apply", "-f", file, "--expected-generation", "3")
	wantOut(t, r, wantPlan+"\nApplied: generation 4 runs (hash "+config.Hash(mustParse(t, desiredYAML))[:12]+").\n")
	if req := fake.Applies()[2]; req.GetDryRun() || req.GetExpectedGeneration() != 3 || !proto.Equal(req.GetConfig(), mustParse(t, desiredYAML)) {
		t.Errorf("request: %v", req)
	}

	// Again, from standard input: nothing to change (applied, but the
	// same generation runs).
	r = haactl(t, target, desiredYAML, "apply", "-f", "-")
	wantOut(t, r, `INSTANCE  CHANGE     EFFECT  FIELDS
VI_1      unchanged
VI_2      unchanged
VI_3      unchanged

Nothing to change: generation 4 runs (hash `+shortHash(config.Hash(fake.Config))+`).
`)

	r = haactl(t, target, "", "apply", "-f", file, "--dry-run", "-o", "json")
	wantOut(t, r, `{
  "plan": {
    "unchanged": [
      "VI_1",
      "VI_2",
      "VI_3"
    ]
  },
  "generation": "4",
  "hash": "`+config.Hash(fake.Config)+`"
}
`)
	r = haactl(t, target, "", "apply", "-f", writeFile(t, "x.yaml", runningYAML), "--dry-run", "-o", "yaml")
	wantOut(t, r, `generation: "4"
hash: `+config.Hash(fake.Config)+`
plan:
  changed:
  - fields:
    - vrid
    name: VI_1
    restart: true
  - fields:
    - priority
    name: VI_2
  removed:
  - VI_3
`)
}

func TestApplyInvalid(t *testing.T) {
	fake, target := serve(t)
	// Caught by haactl's parser: nothing is sent.
	bad := writeFile(t, "bad.yaml", "name: n1\ninstances:\n  - name: VI_1\n    vrdi: 51\n    priority: high\n")
	wantFail(t, haactl(t, target, "", "apply", "-f", bad), 1,
		"haactl: "+bad+" is not a valid configuration (2 problems), nothing was sent to the agent:\n"+
			bad+": instances[0].priority: expected a whole number, got the string \"high\"\n"+
			bad+": instances[0].vrdi: unknown field \"vrdi\" (did you mean \"vrid\"?)\n")
	if n := len(fake.Applies()); n != 0 {
		t.Errorf("%d applies sent", n)
	}
	// Caught by the agent: every field violation, one per line.
	invalid := writeFile(t, "invalid.yaml", "name: n1\ninstances:\n  - name: VI_1\n    interface: eth0\n    vrid: 300\n    vips: [10.0.0.1]\n  - name: VI_1\n    interface: eth0\n    vrid: 52\n    vips: [10.0.0.2]\n")
	r := haactl(t, target, "", "diff", "-f", invalid)
	if r.code != 1 || !strings.HasPrefix(r.err, "haactl: "+invalid+" is not a valid configuration (2 problems), nothing was applied:\n") ||
		!strings.Contains(r.err, "\n"+invalid+": instances[0].vrid: ") || !strings.Contains(r.err, "\n"+invalid+": instances[1].name: ") ||
		strings.Count(r.err, "\n") != 3 {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.err)
	}
	if reqs := fake.Applies(); len(reqs) != 1 || !reqs[0].GetDryRun() || fake.Generation != 3 {
		t.Errorf("requests %v, generation %d", reqs, fake.Generation)
	}
	none := filepath.Join(t.TempDir(), "none.yaml")
	wantFail(t, haactl(t, target, "", "apply", "-f", none), 1,
		"haactl: cannot read the configuration: open "+none+": no such file or directory\n")
}

func TestDiff(t *testing.T) {
	_, target := serve(t)
	file := writeFile(t, "haad.yaml", desiredYAML)
	wantOut(t, haactl(t, target, "", "diff", "-f", file), wantPlan+`
--- running (generation 3)
+++ `+file+`
@@ -5,10 +5,16 @@
   priority: 200
   vips:
   - 10.77.0.100/24
-  vrid: 51
+  vrid: 61
 - interface: eth0
   name: VI_2
+  priority: 150
   vips:
   - 10.77.0.110/24
   vrid: 52
+- interface: eth1
+  name: VI_3
+  vips:
+  - 10.77.1.100/24
+  vrid: 53
 name: n1
`)
	same := writeFile(t, "same.yaml", runningYAML)
	wantOut(t, haactl(t, target, "", "diff", "-f", same), `INSTANCE  CHANGE     EFFECT  FIELDS
VI_1      unchanged
VI_2      unchanged

No difference between the running configuration (generation 3) and `+same+`.
`)
	r := haactl(t, target, "", "diff", "-f", file, "-o", "json")
	got := &haav1.ApplyConfigResponse{}
	if err := protojson.Unmarshal([]byte(r.out), got); err != nil || len(got.GetPlan().GetChanged()) != 2 || got.GetApplied() {
		t.Errorf("-o json: %v\n%s", err, r.out)
	}
}

func TestUnifiedDiff(t *testing.T) {
	// Expected outputs from GNU diff -u.
	a := "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n"
	for _, tc := range []struct{ b, want string }{
		{"0\n1\n2\n3\n4\n5\nsix\n7\n8\n9\n10\n11\n12\n13\n14\n", `@@ -1,9 +1,10 @@
+0
 1
 2
 3
 4
 5
-6
+six
 7
 8
 9
@@ -12,4 +13,3 @@
 12
 13
 14
-15
`},
		{"0\n1\n2\n3\n4\n5\n6\n7\nsix\n9\n10\n11\n12\n13\n14\n15\n16\n", `@@ -1,3 +1,4 @@
+0
 1
 2
 3
@@ -5,7 +6,7 @@
 5
 6
 7
-8
+six
 9
 10
 11
@@ -13,3 +14,4 @@
 13
 14
 15
+16
`},
	} {
		if got := unifiedDiff("a", "b", a, tc.b); got != "--- a\n+++ b\n"+tc.want {
			t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
		}
	}
	if got := unifiedDiff("a", "b", a, a); got != "" {
		t.Errorf("no change: %q", got)
	}
	if got, want := unifiedDiff("a", "b", "", "x\n"), "--- a\n+++ b\n@@ -0,0 +1 @@\n+x\n"; got != want {
		t.Errorf("from empty: %q", got)
	}
}

// events publishes a few events of each kind: seq 1..5.
func events(fake *ctltest.Agent) []time.Time {
	var ts []time.Time
	base := time.Date(2025, 11, 22, 3, 45, 1, 123e6, time.UTC)
	for i, e := range []*haav1.Event{
		{Instance: "VI_1", Kind: &haav1.Event_StateChanged{StateChanged: &haav1.StateChanged{
			From: haav1.State_STATE_BACKUP, To: haav1.State_STATE_MASTER, Cause: "master_down_timer", Priority: 200}}},
		{Instance: "VI_1", Kind: &haav1.Event_VipsChanged{VipsChanged: &haav1.VipsChanged{Added: true, Vips: []string{"10.77.0.100/24"}}}},
		{Instance: "VI_1", Kind: &haav1.Event_GarpSent{GarpSent: &haav1.GarpSent{Addresses: []string{"10.77.0.100"}}}},
		{Instance: "VI_2", Kind: &haav1.Event_PacketsDropped{PacketsDropped: &haav1.PacketsDropped{Reason: "auth_failure", Count: 3, Detail: "from 10.77.0.9"}}},
		{Kind: &haav1.Event_ConfigApplied{ConfigApplied: &haav1.ConfigApplied{Generation: 4, Hash: "0123456789abcdef",
			Plan: &haav1.Plan{Added: []string{"VI_3"}, Changed: []*haav1.InstanceChange{{Name: "VI_1", Restart: true}, {Name: "VI_2"}}}}}},
		{Instance: "VI_2", Kind: &haav1.Event_MasterChanged{MasterChanged: &haav1.MasterChanged{Address: "10.77.0.3", Priority: 120}}},
		{Instance: "VI_2", Kind: &haav1.Event_PriorityChanged{PriorityChanged: &haav1.PriorityChanged{Priority: 90}}},
		{Instance: "VI_2", Kind: &haav1.Event_Error{Error: &haav1.InstanceError{Message: "add 10.77.0.110/24: permission denied"}}},
		{Kind: &haav1.Event_MaintenanceChanged{MaintenanceChanged: &haav1.MaintenanceChanged{Maintenance: &haav1.Maintenance{}}}},
	} {
		t := base.Add(time.Duration(i) * time.Second)
		e.Time = timestamppb.New(t)
		fake.Publish(e)
		ts = append(ts, t)
	}
	return ts
}

func eventLines(ts []time.Time) []string {
	f := func(i int) string { return ts[i].Local().Format(timeLayout + ".000") }
	return []string{
		f(0) + "      1  VI_1      BACKUP -> MASTER (master_down_timer, priority 200)",
		f(1) + "      2  VI_1      VIPs added: 10.77.0.100/24",
		f(2) + "      3  VI_1      gratuitous ARP/NA sent for 10.77.0.100",
		f(3) + "      4  VI_2      dropped 3 packets: auth_failure (from 10.77.0.9)",
		f(4) + "      5  -         configuration applied: generation 4 (hash 0123456789ab): added VI_3; changed VI_1 (restart), VI_2",
		f(5) + "      6  VI_2      master is now 10.77.0.3 (priority 120)",
		f(6) + "      7  VI_2      priority now 90",
		f(7) + "      8  VI_2      error: add 10.77.0.110/24: permission denied",
		f(8) + "      9  -         maintenance off",
	}
}

func TestGetEvents(t *testing.T) {
	fake, target := serve(t)
	fake.BreakAfter = 4 // resumed transparently
	lines := eventLines(events(fake))

	wantOut(t, haactl(t, target, "", "get", "events"), strings.Join(lines, "\n")+"\n")
	wantOut(t, haactl(t, target, "", "get", "events", "--since", "6"), strings.Join(lines[6:], "\n")+"\n")
	wantOut(t, haactl(t, target, "", "get", "events", "--last", "2"), strings.Join(lines[7:], "\n")+"\n")
	r := haactl(t, target, "", "get", "events", "--since", "9")
	if r.code != 0 || r.out != "" || r.err != "No events.\n" {
		t.Errorf("none: %+v", r)
	}

	r = haactl(t, target, "", "get", "events", "--since", "7", "-o", "json")
	wantOut(t, r, `{"seq":"8","time":"2025-11-22T03:45:08.123Z","node":"n1","instance":"VI_2","error":{"message":"add 10.77.0.110/24: permission denied"}}
{"seq":"9","time":"2025-11-22T03:45:09.123Z","node":"n1","maintenanceChanged":{"maintenance":{}}}
`)
	r = haactl(t, target, "", "get", "events", "--since", "7", "-o", "yaml")
	wantOut(t, r, `---
error:
  message: 'add 10.77.0.110/24: permission denied'
instance: VI_2
node: n1
seq: "8"
time: "2025-11-22T03:45:08.123Z"
---
maintenanceChanged:
  maintenance: {}
node: n1
seq: "9"
time: "2025-11-22T03:45:09.123Z"
`)

	// The buffer has wrapped: without --since, what is left; with an old
	// --since, an error that says how to resync.
	fake.Update(func(a *ctltest.Agent) { a.EventBuffer = 3 })
	events(fake) // 10..18, keeps 16..18
	r = haactl(t, target, "", "get", "events")
	if r.code != 0 || strings.Count(r.out, "\n") != 3 || !strings.Contains(r.out, "     16  VI_2      priority now 90\n") {
		t.Errorf("wrapped: %+v", r)
	}
	wantFail(t, haactl(t, target, "", "get", "events", "--since", "2"), 1,
		"haactl: events after seq 2 are no longer buffered on the node (the oldest it keeps is 16): what they said is lost; "+
			"resync by reading the current state, then watch again from now on: run haactl get instances to see the current state, "+
			"then haactl watch (without --since) to follow from now on\n")
}

// waitOut waits until the command has printed n lines.
func waitOut(t *testing.T, buf func() string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(buf(), "\n") < n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d lines:\n%s", n, buf())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// watch runs haactl watch until it has printed n lines, then interrupts it.
func watch(t *testing.T, target string, n int, during func(out func() string), args ...string) result {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errOut syncBuffer
	root := newRootCmd(&out, &errOut, ctl.Dial)
	done := make(chan int)
	go func() { done <- execute(ctx, root, append([]string{"--target", target, "watch"}, args...), &errOut) }()
	if during != nil {
		during(out.String)
	}
	waitOut(t, out.String, n)
	cancel()
	code := <-done
	return result{out.String(), errOut.String(), code}
}

// The fake breaks every stream after 2 events: haactl watch resumes after
// the last event it printed, and prints each exactly once.
func TestWatchResumes(t *testing.T) {
	fake, target := serve(t)
	fake.BreakAfter = 2
	lines := eventLines(events(fake))

	r := watch(t, target, 9, nil, "--since", "0")
	wantOut(t, r, strings.Join(lines, "\n")+"\n")
	for _, s := range []string{"Watching n1 (haad 0.4.0) at " + target + "; interrupt to stop.\n",
		"haactl: the stream from " + target + " broke (Unavailable: fake: stream broken); reconnecting, resuming after event 2\n",
		"haactl: the stream from " + target + " broke (Unavailable: fake: stream broken); reconnecting, resuming after event 8\n"} {
		if !strings.Contains(r.err, s) {
			t.Errorf("stderr has no %q:\n%s", s, r.err)
		}
	}
	var got []string
	for _, p := range fake.Watches() {
		if p == nil {
			got = append(got, "nil")
		} else {
			got = append(got, strconv.FormatUint(*p, 10))
		}
	}
	if strings.Join(got, " ") != "0 2 4 6 8" {
		t.Errorf("since_seq of the calls: %v", got)
	}

	// -o json: one object per line, live events.
	r = watch(t, target, 3, func(func() string) {
		waitFor(t, func() bool { return len(fake.Watches()) == 6 })
		events(fake) // 10..18
	}, "-o", "json")
	wantOK(t, r)
	outLines := strings.Split(strings.TrimSpace(r.out), "\n")
	for i, l := range outLines[:3] {
		e := &haav1.Event{}
		if err := protojson.Unmarshal([]byte(l), e); err != nil || e.GetSeq() != uint64(10+i) {
			t.Errorf("line %d: %v: %s", i, err, l)
		}
	}
	if strings.Contains(r.err, "Watching") {
		t.Errorf("-o json: banner on stderr: %s", r.err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWatchEventsLost(t *testing.T) {
	fake, target := serve(t)
	fake.EventBuffer = 4
	events(fake)
	r := haactl(t, target, "", "watch", "--since", "1")
	if r.code != 1 || !strings.Contains(r.err, "haactl: events after seq 1 are no longer buffered on the node (the oldest it keeps is 6)") ||
		!strings.Contains(r.err, "then haactl watch (without --since) to follow from now on\n") {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.err)
	}
}

func TestFailover(t *testing.T) {
	_, target := serve(t)
	wantFail(t, haactl(t, target, "", "failover", "VI_2"), 1,
		"haactl: instance VI_2 is STATE_BACKUP here, not master: failover hands over from the master: "+
			"run it against the node that is master of VI_2 (haactl get instances shows it)\n")
	wantOut(t, haactl(t, target, "", "failover", "VI_1", "--timeout", "3s"), "VI_1: 10.77.0.2 took over; this node holds it as backup.\n")
	// Now VI_1 is a backup here too.
	if r := haactl(t, target, "", "failover", "VI_1"); r.code != 1 {
		t.Errorf("second failover: %+v", r)
	}
	_, target = serve(t)
	wantOut(t, haactl(t, target, "", "failover", "VI_1", "-o", "json"), "{\n  \"newMaster\": \"10.77.0.2\"\n}\n")
	wantFail(t, haactl(t, target, "", "failover", "VI_9"), 1, "haactl: no instance \"VI_9\": haactl get instances lists the instances\n")
}

func TestMaintenance(t *testing.T) {
	fake, target := serve(t)
	until := time.Now().Add(30 * time.Minute).Truncate(time.Second)
	fake.Now = func() time.Time { return until.Add(-30 * time.Minute) }

	r := haactl(t, target, "", "maintenance", "on", "--ttl", "30m")
	wantOK(t, r)
	if want := "Maintenance on until " + local(until) + " (in 2"; !strings.HasPrefix(r.out, want) ||
		!strings.HasSuffix(r.out, "m): the node stays backup everywhere.\n") {
		t.Errorf("got %q, want %q...", r.out, want)
	}
	wantOut(t, haactl(t, target, "", "maintenance", "on"), "Maintenance on until turned off (haactl maintenance off): the node stays backup everywhere.\n")
	wantOut(t, haactl(t, target, "", "maintenance", "on", "-o", "json"), "{\n  \"enabled\": true\n}\n")
	wantOut(t, haactl(t, target, "", "maintenance", "off"), "Maintenance off: the node takes part in elections again.\n")
	wantOut(t, haactl(t, target, "", "maintenance", "off", "-o", "yaml"), "{}\n")
	wantFail(t, haactl(t, target, "", "maintenance", "off", "--ttl", "1m"), 2,
		"haactl: --ttl only goes with maintenance on\nsee 'haactl maintenance --help'\n")
	wantFail(t, haactl(t, target, "", "maintenance", "maybe"), 2,
		"haactl: invalid argument \"maybe\" for \"haactl maintenance\"\nsee 'haactl maintenance --help'\n")
}

func TestUnreachable(t *testing.T) {
	dir := t.TempDir()
	wantFail(t, haactl(t, "unix://"+dir+"/n1.sock", "", "get", "node"), 1,
		"haactl: no haad listening on "+dir+"/n1.sock: is haad running? see --target (or HAA_TARGET)\n")
	r := haactl(t, "127.0.0.1:1", "", "--insecure", "get", "instances")
	if r.code != 1 || !strings.HasPrefix(r.err, "haactl: cannot reach haad at 127.0.0.1:1: ") ||
		!strings.HasSuffix(r.err, "connection refused\": is haad running and listening there? check --target\n") {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.err)
	}
	r = haactl(t, "unix://"+dir+"/n1.sock", "", "watch")
	if r.code != 1 || !strings.Contains(r.err, "no haad listening") {
		t.Errorf("watch: exit %d, stderr:\n%s", r.code, r.err)
	}
	wantFail(t, haactl(t, "unix://"+dir+"/n1.sock", "", "--tls-ca", "ca.pem", "get", "node"), 1,
		"haactl: target unix://"+dir+"/n1.sock: TLS options apply to TCP targets only; a unix socket is plaintext, guarded by its file permissions\n")
}

func TestErrorCodes(t *testing.T) {
	fake, target := serve(t)
	fake.Errors = map[string]error{"WatchEvents": status.Error(codes.Internal, "boom")}
	wantFail(t, haactl(t, target, "", "get", "events"), 1, "haactl: boom (Internal)\n")
	fake.Update(func(a *ctltest.Agent) {
		a.Errors = map[string]error{
			"GetNode":       status.Error(codes.Unauthenticated, "no client certificate"),
			"ListInstances": status.Error(codes.PermissionDenied, "read-only client"),
			"GetConfig":     status.Error(codes.Unimplemented, "unknown method GetConfig"),
		}
	})
	wantFail(t, haactl(t, target, "", "get", "node"), 1,
		"haactl: haad at "+target+" refused the call: no client certificate: check --tls-cert/--tls-key (a client certificate signed by the CA the agent trusts)\n")
	wantFail(t, haactl(t, target, "", "get", "instances"), 1, "haactl: haad at "+target+" denied the call: read-only client\n")
	wantFail(t, haactl(t, target, "", "get", "config"), 1,
		"haactl: haad at "+target+" does not implement this call (is it older than haactl?): unknown method GetConfig\n")
	// watch checks the target first: an agent that refuses fails at once.
	wantFail(t, haactl(t, target, "", "watch"), 1,
		"haactl: haad at "+target+" refused the call: no client certificate: check --tls-cert/--tls-key (a client certificate signed by the CA the agent trusts)\n")
}

func TestUsage(t *testing.T) {
	_, target := serve(t)
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"frobnicate"}, "haactl: unknown command \"frobnicate\" for \"haactl\"\nsee 'haactl --help'\n"},
		{[]string{"get"}, "haactl: haactl get what?\nsee 'haactl get --help'\n"},
		{[]string{"get", "nodes!"}, "haactl: unknown command \"nodes!\" for \"haactl get\"\nsee 'haactl get --help'\n"},
		{[]string{"-o", "xml", "get", "node"}, "haactl: -o \"xml\": want table, json or yaml\nsee 'haactl --help'\n"},
		{[]string{"get", "node", "--bogus"}, "haactl: unknown flag: --bogus\nsee 'haactl get node --help'\n"},
		{[]string{"apply"}, "haactl: required flag(s) \"filename\" not set\nsee 'haactl --help'\n"},
		{[]string{"get", "events", "--since", "x"}, "haactl: invalid argument \"x\" for \"--since\" flag: strconv.ParseUint: parsing \"x\": invalid syntax\nsee 'haactl get events --help'\n"},
	} {
		r := haactl(t, target, "", tc.args...)
		if r.code != 2 || r.err != tc.err {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant:\n%s", tc.args, r.code, r.err, tc.err)
		}
	}
	if r := haactl(t, target, ""); r.code != 0 || !strings.Contains(r.out, "Available Commands:") {
		t.Errorf("no command: %+v", r)
	}
}

func TestCompletion(t *testing.T) {
	_, target := serve(t)
	for _, sh := range []string{"bash", "zsh", "fish"} {
		if r := haactl(t, target, "", "completion", sh); r.code != 0 || !strings.Contains(r.out, "haactl") {
			t.Errorf("completion %s: exit %d, %d bytes", sh, r.code, len(r.out))
		}
	}
	r := haactl(t, target, "", "__complete", "describe", "instance", "VI")
	if r.code != 0 || !strings.HasPrefix(r.out, "VI_1\nVI_2\n:4\n") {
		t.Errorf("instance completion: %+v", r)
	}
}

func TestDefaultTarget(t *testing.T) {
	t.Setenv("HAA_TARGET", "10.0.0.1:9651")
	if got := defaultTarget(); got != "10.0.0.1:9651" {
		t.Errorf("with HAA_TARGET: %s", got)
	}
	t.Setenv("HAA_TARGET", "")
	h, _ := os.Hostname()
	if got := defaultTarget(); got != "unix:///run/haa/"+h+".sock" {
		t.Errorf("default: %s", got)
	}
}

func TestTLS(t *testing.T) {
	pki := ctltest.NewPKI(t)
	target := ctltest.ServeTLS(t, newFake(t), pki.ServerConfig(true)).Target
	r := haactl(t, target, "", "--tls-ca", pki.CAFile, "--tls-cert", pki.CertFile, "--tls-key", pki.KeyFile, "get", "node", "-o", "json")
	if r.code != 0 || !strings.Contains(r.out, `"name": "n1"`) {
		t.Errorf("mutual TLS: %+v", r)
	}
	r = haactl(t, target, "", "--tls-ca", pki.CAFile, "get", "node")
	if r.code != 1 || !strings.HasPrefix(r.err, "haactl: cannot reach haad at "+target+": ") ||
		!strings.Contains(r.err, "--tls-cert and --tls-key\n") {
		t.Errorf("no client certificate: exit %d, stderr:\n%s", r.code, r.err)
	}
	r = haactl(t, target, "", "--tls-cert", pki.CertFile, "--tls-key", pki.KeyFile, "get", "node")
	if r.code != 1 || !strings.Contains(r.err, "x509") ||
		!strings.HasSuffix(r.err, ": TLS failed: check --tls-ca and --tls-server-name (or --insecure for a plaintext lab listener)\n") {
		t.Errorf("unknown CA: exit %d, stderr:\n%s", r.code, r.err)
	}
	wantFail(t, haactl(t, target, "", "--tls-ca", pki.CAFile, "--insecure", "get", "node"), 2,
		"haactl: --insecure (plaintext) contradicts --tls-ca, --tls-cert, --tls-key and --tls-server-name\nsee 'haactl --help'\n")
}

// haad restarts under haactl watch: the new run numbers its events from 1
// again; haactl says so and prints the new run's events.
func TestWatchAgentRestart(t *testing.T) {
	fake := newFake(t)
	srv := ctltest.Serve(t, fake)
	target := srv.Target
	ts := events(fake) // 1..9
	lines := eventLines(ts)
	r := watch(t, target, 18, func(out func() string) {
		waitOut(t, out, 9)
		srv.Stop()
		fake.Reboot()
		events(fake) // 1..9 of the new run
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
	}, "--since", "0")
	wantOut(t, r, strings.Join(append(lines, lines...), "\n")+"\n")
	if !strings.Contains(r.err, "haactl: haad restarted (pid 4243, started ") ||
		!strings.Contains(r.err, "following the new run from its first event, numbered from 1 (events of the previous run after 9 may be missing)\n") {
		t.Errorf("stderr:\n%s", r.err)
	}
}

// A change that took effect in part: the result, then the error, exit 1.
func TestPartial(t *testing.T) {
	fake, target := serve(t)
	file := writeFile(t, "haad.yaml", desiredYAML)
	fake.Errors = map[string]error{
		"ApplyConfig": ctltest.Partial(codes.Internal, "configuration applied as generation 4, but: instance VI_3: interface eth1 not found",
			&haav1.ApplyConfigResponse{Plan: &haav1.Plan{Added: []string{"VI_3"}}, Generation: 4, Hash: "abc", Applied: true}),
		"SetMaintenance": ctltest.Partial(codes.Internal, "maintenance set (enabled=true), but: write state: read-only file system",
			&haav1.SetMaintenanceResponse{Maintenance: &haav1.Maintenance{Enabled: true}}),
	}
	r := haactl(t, target, "", "apply", "-f", file)
	if r.code != 1 || r.out != "INSTANCE  CHANGE  EFFECT  FIELDS\nVI_3      added   starts\n" ||
		r.err != "haactl: configuration applied as generation 4, but: instance VI_3: interface eth1 not found: see haactl get instances, and haad's log\n" {
		t.Errorf("apply: %+v", r)
	}
	r = haactl(t, target, "", "apply", "-f", file, "-o", "json")
	if r.code != 1 || !strings.Contains(r.out, `"applied": true`) {
		t.Errorf("apply -o json: %+v", r)
	}
	wantFail(t, haactl(t, target, "", "maintenance", "on"), 1,
		"haactl: maintenance is on until turned off now, but haad could not keep it across a restart: maintenance set (enabled=true), but: write state: read-only file system\n")
}

func TestDescribeInstanceTrackersAndNotify(t *testing.T) {
	fake, target := serve(t)
	since := time.Now().Add(-3 * time.Second)
	fake.Instances = append(fake.Instances, &haav1.InstanceStatus{
		Name: "VI_3", Interface: "eth0", Vrid: 53, Version: 3, State: haav1.State_STATE_FAULT,
		ConfiguredPriority: 100, EffectivePriority: 80, SyncGroup: "VG_1",
		FaultReason: "tracker uplink failed: link down",
		Trackers: []*haav1.TrackerStatus{
			{Name: "chk_nginx", Kind: "script", State: haav1.TrackerState_TRACKER_STATE_FAILED, Weight: -20,
				Contribution: -20, Detail: "exit status 1", Since: timestamppb.New(since)},
			{Name: "uplink", Kind: "interface", State: haav1.TrackerState_TRACKER_STATE_FAILED, Fault: true,
				Detail: "link down"},
			{Name: "drain_flag", Kind: "file", State: haav1.TrackerState_TRACKER_STATE_OK, Weight: -10,
				Detail: "value 0", ViaSyncGroup: true},
		},
		NotifyResults: []*haav1.NotifyResult{{Time: timestamppb.New(since), Type: "INSTANCE", Name: "VI_3", State: "FAULT",
			Command: []string{"/etc/haa/notify.sh", "fault"}, ExitCode: 0, Duration: durationpb.New(12 * time.Millisecond),
			Output: "paged\nsecond line"}},
	})
	r := haactl(t, target, "", "describe", "instance", "VI_3")
	wantOK(t, r)
	for _, s := range []string{
		"Priority:            80 (configured 100)\n",
		"Fault reason:        tracker uplink failed: link down\n",
		"Sync group:          VG_1\n",
		"  chk_nginx:         FAILED  script     weight -20   priority -20  exit status 1 (for 3s)\n",
		"  uplink:            FAILED  interface  weight 0     priority FAULT  link down\n",
		"  drain_flag:        OK      file       weight -10   priority +0  (via sync group)  value 0\n",
		"INSTANCE VI_3 FAULT: /etc/haa/notify.sh fault -> exit 0 in 12ms: paged ...\n",
	} {
		// The label column's width depends on the longest label.
		squash := func(s string) string { return regexp.MustCompile(` {2,}`).ReplaceAllString(s, "  ") }
		if !strings.Contains(squash(r.out), squash(s)) {
			t.Errorf("no %q in\n%s", s, r.out)
		}
	}
}
