package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/haa-dev/haa/ctl"
	"github.com/haa-dev/haa/deploy/lab"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// The issue's dual-master document, as written: a lab on 192.168.55.0/24
// whose nodes are called lb1, lb2, lb3 and whose interfaces are eth0.
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

var (
	fleetSubnet = netip.MustParsePrefix("192.168.55.0/24")
	vip140      = netip.MustParseAddr("192.168.55.140")
	vip141      = netip.MustParseAddr("192.168.55.141")
	vip142      = netip.MustParseAddr("192.168.55.142")
)

// fleet is a lab whose haad agents gossip (encrypted, labelled): node i is
// lbi, its own file has no instance.
type fleet struct {
	*cluster
	key string
}

func newFleet(t *testing.T, nodes int) *fleet {
	t.Helper()
	return newFleetClients(t, nodes, 1)
}

// newFleetClients is newFleet with that many client namespaces (real
// servers, users).
func newFleetClients(t *testing.T, nodes, clients int) *fleet {
	t.Helper()
	l := lab.NewT(t, lab.Options{Prefix: lab.UniqueName("hf"), Nodes: nodes, Clients: clients, Subnet: fleetSubnet})
	c := &cluster{t: t, lab: l, dir: t.TempDir(), bin: haad(t), procs: map[*lab.Node]*lab.Proc{}}
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
	})
	f := &fleet{cluster: c, key: filepath.Join(c.dir, "gossip.key")}
	k := make([]byte, 32)
	rand.Read(k)
	if err := os.WriteFile(f.key, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, n := range l.Nodes {
		f.startNode(n)
	}
	for _, n := range l.Nodes {
		f.waitMembers(n, nodes)
	}
	return f
}

func lbName(n *lab.Node) string { return "lb" + strings.TrimPrefix(n.Name, "n") }

// startNode runs haad on n with gossip and no instance of its own.
func (f *fleet) startNode(n *lab.Node) {
	f.t.Helper()
	var join []string
	for _, o := range f.lab.Nodes {
		if o != n {
			join = append(join, fmt.Sprintf("%q", o.Addr.String()+":7946"))
		}
	}
	cfg := fmt.Sprintf("name: %s\ngossip:\n  bind: %s:7946\n  join: [%s]\n  keyFile: %s\n  label: haa-test\n",
		lbName(n), n.Addr, strings.Join(join, ", "), f.key)
	p, err := n.StartHaad(f.dir, f.bin, cfg, "--log-level", "debug", "--status-file", f.statusPath(n))
	if err != nil {
		f.t.Fatal(err)
	}
	f.procs[n] = p
}

func (f *fleet) view(n *lab.Node) *haav1.GetFleetResponse {
	f.t.Helper()
	v, err := f.tryView(n)
	if err != nil {
		f.t.Fatal(err)
	}
	return v
}

// tryView asks n for its fleet view; an agent that is not up yet is an
// error, not a failure.
func (f *fleet) tryView(n *lab.Node) (*haav1.GetFleetResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := ctl.Dial(ctx, "unix://"+n.HaadFiles(f.dir).Socket)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Fleet(ctx)
}

// waitMembers waits until n sees want members alive.
func (f *fleet) waitMembers(n *lab.Node, want int) {
	f.t.Helper()
	err := lab.Poll(15*time.Second, 50*time.Millisecond, n.Name+" sees the fleet", func() (bool, error) {
		v, err := f.tryView(n)
		if err != nil {
			return false, nil
		}
		alive := 0
		for _, m := range v.GetMembers() {
			if m.GetState() == haav1.MemberState_MEMBER_STATE_ALIVE && m.GetApiAddress() != "" {
				alive++
			}
		}
		return alive == want, nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// haactl runs haactl against n (the seed) and returns its output and exit
// code.
func (f *fleet) haactl(n *lab.Node, args ...string) (string, int) {
	f.t.Helper()
	cmd := exec.Command(haactl(f.t), append([]string{"--target", "unix://" + n.HaadFiles(f.dir).Socket}, args...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		f.t.Fatal(err)
	}
	return string(out), code
}

func (f *fleet) writeDoc(name, doc string) string {
	f.t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// fleetGen is the fleet generation n stores.
func (f *fleet) fleetGen(n *lab.Node) uint64 {
	return f.view(n).GetDocument().GetGeneration()
}

// restart powers n back on and starts its haad again.
func (f *fleet) restart(n *lab.Node) {
	f.t.Helper()
	if err := n.PowerOn(); err != nil {
		f.t.Fatal(err)
	}
	f.startNode(n)
}

func TestFleetDualMasterRollout(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 3)
	lb1, lb2, lb3 := f.lab.Nodes[0], f.lab.Nodes[1], f.lab.Nodes[2]

	// Bad documents are refused before any node changes.
	for _, tc := range []struct{ name, doc, want string }{
		{"unknown node", strings.Replace(dualMasterDoc, "nodes: [lb1, lb2]", "nodes: [lb1, lb2, lb9]", 1), "lb9"},
		{"duplicate vrid", strings.Replace(dualMasterDoc, "vrid: 52", "vrid: 51", 1), "instances[1].vrid"},
		{"vip outside the subnet", strings.Replace(dualMasterDoc, "192.168.55.141/24", "10.99.0.141/24", 1), "instances[1].vips[0]"},
	} {
		out, code := f.haactl(lb3, "apply", "-f", f.writeDoc("bad.yaml", tc.doc))
		if code == 0 || !strings.Contains(out, tc.want) {
			t.Fatalf("%s: exit %d, want non-zero naming %s:\n%s", tc.name, code, tc.want, out)
		}
		for _, n := range f.lab.Nodes {
			if g := f.fleetGen(n); g != 0 {
				t.Fatalf("%s: %s stores fleet generation %d after a refused apply", tc.name, n.Name, g)
			}
		}
	}

	// The issue's document, applied rolling through any node.
	out, code := f.haactl(lb3, "apply", "-f", f.writeDoc("fleet.yaml", dualMasterDoc), "--strategy", "rolling")
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	t.Logf("haactl apply --strategy rolling:\n%s", out)
	f.waitHolder(vip140, lb1, 10*time.Second)
	f.waitHolder(vip141, lb2, 10*time.Second)
	for _, n := range f.lab.Nodes {
		if g := f.fleetGen(n); g != 1 {
			t.Fatalf("%s stores fleet generation %d, want 1", n.Name, g)
		}
	}
	// The fleet view from the node that runs nothing.
	out, code = f.haactl(lb3, "get", "instances", "--all")
	if code != 0 || strings.Count(out, "VI_") != 4 || !strings.Contains(out, "MASTER") {
		t.Fatalf("get instances --all: exit %d\n%s", code, out)
	}

	// lb1 powered off: lb2 holds both; back: each VIP to its preferred node.
	if err := lab.PowerOff(lb1, f.procs[lb1]); err != nil {
		t.Fatal(err)
	}
	f.waitHolder(vip140, lb2, 10*time.Second)
	f.stableHolder(vip141, lb2, 100*time.Millisecond)
	f.restart(lb1)
	f.waitHolder(vip140, lb1, 15*time.Second)
	f.stableHolder(vip141, lb2, 100*time.Millisecond)

	// lb2 is down during an apply: the apply says so (exit 1), the others
	// run the new generation, and lb2 catches up when it returns.
	if err := lab.PowerOff(lb2, f.procs[lb2]); err != nil {
		t.Fatal(err)
	}
	f.waitHolder(vip141, lb1, 10*time.Second)
	doc2 := dualMasterDoc + `  - name: VI_3
    interface: eth0
    vrid: 53
    advertInterval: 1s
    vips: ["192.168.55.142/24"]
    priorities: {lb1: 50, lb2: 150}
`
	out, code = f.haactl(lb1, "apply", "-f", f.writeDoc("fleet2.yaml", doc2), "--timeout", "3s")
	if code == 0 || !strings.Contains(out, "lb2") {
		t.Fatalf("apply with lb2 down: exit %d, want non-zero naming lb2:\n%s", code, out)
	}
	t.Logf("haactl apply with lb2 down:\n%s", out)
	if g := f.fleetGen(lb1); g != 2 {
		t.Fatalf("lb1 stores generation %d, want 2", g)
	}
	f.waitHolder(vip142, lb1, 10*time.Second) // lb1 is VI_3's only node
	f.restart(lb2)
	start := time.Now()
	if err := lab.Poll(15*time.Second, 20*time.Millisecond, "lb2 at fleet generation 2", func() (bool, error) {
		v, err := f.tryView(lb2)
		return err == nil && v.GetDocument().GetGeneration() == 2, nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("lb2 caught up %v after its haad started", time.Since(start).Round(time.Millisecond))
	f.waitHolder(vip142, lb2, 15*time.Second) // its priority 150 wins
	f.waitHolder(vip141, lb2, 15*time.Second)
	f.stableHolder(vip140, lb1, 100*time.Millisecond)
	// Every member, seen from lb3, runs generation 2 as the document says.
	var problem string
	if err := lab.Poll(10*time.Second, 50*time.Millisecond, "lb3 sees every member at generation 2", func() (bool, error) {
		problem = ""
		for _, m := range f.view(lb3).GetMembers() {
			if m.GetFleetGeneration() != 2 || m.GetFleetHash() != m.GetExpectedFleetHash() {
				problem = fmt.Sprintf("member %s: fleet generation %d hash %s, want 2 and %s", m.GetName(),
					m.GetFleetGeneration(), m.GetFleetHash(), m.GetExpectedFleetHash())
			}
		}
		return problem == "", nil
	}); err != nil {
		t.Fatal(err, problem)
	}
}

func TestFleetSplitBrainReported(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2)
	lb1, lb2 := f.lab.Nodes[0], f.lab.Nodes[1]
	doc := strings.ReplaceAll(dualMasterDoc, "advertInterval: 1s", "advertInterval: 100ms")
	if out, code := f.haactl(lb1, "apply", "-f", f.writeDoc("fleet.yaml", doc)); code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	f.waitHolder(vip140, lb1, 10*time.Second)
	f.waitHolder(vip141, lb2, 10*time.Second)

	// lb2 stops hearing VRRP; gossip still flows. It takes VI_1 too: both
	// are master of VRID 51, and gossip tells.
	undo, err := lb2.DropVRRP()
	if err != nil {
		t.Fatal(err)
	}
	var sb *haav1.SplitBrain
	if err := lab.Poll(10*time.Second, 50*time.Millisecond, "split brain in lb1's fleet view", func() (bool, error) {
		for _, is := range f.view(lb1).GetIssues() {
			if s := is.GetSplitBrain(); s != nil {
				sb = s
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatal(err)
	}
	if sb.GetVrid() != 51 || sb.GetSegment() != "192.168.55.0/24" || len(sb.GetMasters()) != 2 {
		t.Fatalf("split brain %v: want vrid 51 on 192.168.55.0/24 with lb1 and lb2", sb)
	}
	// lb2 sees it too before it ends (each node reports what its own
	// gossip view shows, a moment apart under load).
	if err := lab.Poll(10*time.Second, 50*time.Millisecond, "split brain in lb2's fleet view", func() (bool, error) {
		for _, is := range f.view(lb2).GetIssues() {
			if is.GetSplitBrain() != nil {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	f.waitHolder(vip140, lb1, 10*time.Second)

	// Both nodes reported it as an event, lb1 its end too, and lb1 (the
	// rightful master) re-announced VI_1 after the end.
	for _, n := range []*lab.Node{lb1, lb2} {
		evs := f.events(n, func(evs []*haav1.Event) bool {
			if n != lb1 {
				return hasSplitBrain(evs, false)
			}
			return hasSplitBrain(evs, true) && garpAfterResolved(evs)
		})
		if !hasSplitBrain(evs, false) {
			t.Fatalf("%s: no split_brain event", n.Name)
		}
		if n == lb1 && (!hasSplitBrain(evs, true) || !garpAfterResolved(evs)) {
			t.Fatalf("lb1: no resolved split_brain followed by a GARP of VI_1")
		}
	}
}

func hasSplitBrain(evs []*haav1.Event, resolved bool) bool {
	for _, e := range evs {
		if sb := e.GetSplitBrain(); sb != nil && sb.GetResolved() == resolved && sb.GetVrid() == 51 {
			if resolved && sb.GetMaster() != "lb1" {
				continue
			}
			return true
		}
	}
	return false
}

func garpAfterResolved(evs []*haav1.Event) bool {
	seen := false
	for _, e := range evs {
		if sb := e.GetSplitBrain(); sb != nil && sb.GetResolved() {
			seen = true
		}
		if seen && e.GetGarpSent() != nil && e.GetInstance() == "VI_1" {
			return true
		}
	}
	return false
}

// events polls n's buffered events until ok says they are complete.
func (f *fleet) events(n *lab.Node, ok func([]*haav1.Event) bool) []*haav1.Event {
	f.t.Helper()
	var evs []*haav1.Event
	_ = lab.Poll(10*time.Second, 100*time.Millisecond, "events of "+n.Name, func() (bool, error) {
		evs = f.allEvents(n)
		return ok(evs), nil
	})
	return evs
}

func (f *fleet) allEvents(n *lab.Node) []*haav1.Event {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := ctl.Dial(ctx, "unix://"+n.HaadFiles(f.dir).Socket)
	if err != nil {
		f.t.Fatal(err)
	}
	defer c.Close()
	evs, err := c.Events(ctx, nil, 300*time.Millisecond)
	if err != nil {
		f.t.Fatal(err)
	}
	return evs
}

// The fleet runs the load balancers: one document gives the LVS pair
// (lb1, lb2, which run the VIP's instance) the virtual server, and not
// lb3; haactl drain --all drains a real server on both directors at once.
func TestFleetVirtualServersOnDirectors(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 3)
	lb1, lb2, lb3 := f.lab.Nodes[0], f.lab.Nodes[1], f.lab.Nodes[2]
	doc := `kind: Fleet
nodes: [lb1, lb2, lb3]
instances:
  - name: VI_1
    interface: eth0
    vrid: 51
    advertInterval: 100ms
    vips: ["192.168.55.140/24"]
    priorities: {lb1: 200, lb2: 100}
virtualServers:
  - name: web
    address: "192.168.55.140:80"
    realServers: [{address: "192.168.55.200:8080"}, {address: "192.168.55.201:8080"}]
    overrides:
      lb2: {scheduler: rr}
`
	out, code := f.haactl(lb3, "apply", "-f", f.writeDoc("fleet.yaml", doc), "--wait")
	if code != 0 || !strings.Contains(out, "converged (VRRP, directors' tables)") || !strings.Contains(out, "Virtual servers added: web") {
		t.Fatalf("apply --wait: exit %d, want the plan's virtual server and the convergence\n%s", code, out)
	}
	// A change of the virtual servers alone rolls out director by
	// director, each step waiting for its kernel table.
	out, code = f.haactl(lb3, "apply", "-f", f.writeDoc("fleet.yaml", strings.Replace(doc, `{address: "192.168.55.201:8080"}`, `{address: "192.168.55.201:8080", weight: 4}`, 1)),
		"--strategy", "rolling")
	t.Logf("haactl apply --strategy rolling (a weight changed):\n%s", out)
	if code != 0 || !strings.Contains(out, "[2/2]") || strings.Count(out, "converged after") != 2 || !strings.Contains(out, "virtual servers changed web") {
		t.Fatalf("rolling apply of a virtual server change: exit %d, want two steps (lb1, lb2), each converged\n%s", code, out)
	}
	for _, n := range []*lab.Node{lb1, lb2} {
		out, code := f.haactl(n, "get", "vs")
		if code != 0 || !strings.Contains(out, "web") || !strings.Contains(out, "192.168.55.140:80") {
			t.Fatalf("%s, a director, has no virtual server web (exit %d):\n%s", n.Name, code, out)
		}
	}
	for n, want := range map[*lab.Node]string{lb1: "wrr", lb2: "rr"} {
		out, _ := f.haactl(n, "describe", "vs", "web")
		if !regexp.MustCompile(`Scheduler:\s+` + want + `\n`).MatchString(out) {
			t.Errorf("%s: want scheduler %s (lb2's override):\n%s", n.Name, want, out)
		}
	}
	if out, _ := f.haactl(lb3, "get", "vs"); strings.Contains(out, "192.168.55.140:80") {
		t.Fatalf("lb3, not a director, balances web:\n%s", out)
	}
	out, code = f.haactl(lb3, "get", "vs", "--all")
	t.Logf("haactl get vs --all:\n%s", out)
	if code != 0 || !regexp.MustCompile(`REAL SERVER\s+lb1\s+lb2\s*\n`).MatchString(out) || strings.Count(out, "web ") != 2 {
		t.Fatalf("get vs --all: exit %d, want the two directors' columns and a row per real server:\n%s", code, out)
	}
	out, code = f.haactl(lb3, "drain", "web", "192.168.55.200:8080", "--all")
	t.Logf("haactl drain web 192.168.55.200:8080 --all:\n%s", out)
	if code != 0 || strings.Count(out, "drained") != 2 || !strings.Contains(out, "not a director: no virtual server web") {
		t.Fatalf("drain --all: exit %d\n%s", code, out)
	}
}

// Multi-vantage health: the directors share their verdicts on the real
// servers through gossip. A real server cut off from lb1 only (a
// blackhole route in lb1's namespace) is down for lb1 and up for lb2: a
// real_server_disputed issue (haactl get issues) and event; healed, it is
// over.
func TestFleetRealServerDisputed(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2)
	lb1, lb2 := f.lab.Nodes[0], f.lab.Nodes[1]
	rs := f.lab.Clients[0]
	srv, err := rs.Respond(8080, "rs")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	doc := fmt.Sprintf(`kind: Fleet
nodes: [lb1, lb2]
instances:
  - {name: VI_1, interface: eth0, vrid: 51, advertInterval: 100ms, vips: ["192.168.55.140/24"], priorities: {lb1: 200, lb2: 100}}
virtualServers:
  - name: web
    address: "192.168.55.140:80"
    check: {tcp: {}, interval: 200ms, timeout: 200ms, fall: 1}
    keepIfPeersSeeUp: 4s
    realServers: [{address: "%s:8080"}]
`, rs.Addr)
	if out, code := f.haactl(lb1, "apply", "-f", f.writeDoc("fleet.yaml", doc)); code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	issues := func() string {
		out, _ := f.haactl(lb2, "get", "issues")
		return out
	}
	if err := lab.Poll(5*time.Second, 100*time.Millisecond, "no issue", func() (bool, error) {
		return !strings.Contains(issues(), "real server disputed"), nil
	}); err != nil {
		t.Fatal(err)
	}
	// The directors' verdicts travel with their gossip summaries: give
	// lb2's first one time to reach lb1.
	time.Sleep(2 * time.Second)
	if err := lb1.IP("route", "add", "blackhole", rs.Addr.String()+"/32"); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	// keepIfPeersSeeUp: lb1 keeps the server lb2 sees up in its table, for
	// 4 s at most; lb2 keeps serving it all along.
	row := func(n *lab.Node) string {
		out, _ := f.haactl(n, "describe", "vs", "web")
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, rs.Addr.String()+":8080") {
				return strings.Join(strings.Fields(l), " ")
			}
		}
		return ""
	}
	if err := lab.Poll(3*time.Second, 50*time.Millisecond, "lb1 keeps the real server (down,kept 1/1)", func() (bool, error) {
		return strings.Contains(row(lb1), "down,kept 1/1"), nil
	}); err != nil {
		t.Fatalf("%v: lb1's row %q", err, row(lb1))
	}
	var out string
	if err := lab.Poll(15*time.Second, 200*time.Millisecond, "a disputed real server in lb2's get issues", func() (bool, error) {
		out = issues()
		return strings.Contains(out, "real server disputed"), nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("haactl get issues:\n%s", out)
	if !strings.Contains(out, "down on lb1, up on lb2") {
		t.Fatalf("want lb1 down, lb2 up:\n%s", out)
	}
	if err := lab.Poll(5*time.Second, 50*time.Millisecond, "lb1 takes it out after keepIfPeersSeeUp", func() (bool, error) {
		return strings.Contains(row(lb1), "down -/1"), nil
	}); err != nil {
		t.Fatalf("%v: lb1's row %q", err, row(lb1))
	}
	if took := time.Since(cut); took < 4*time.Second {
		t.Fatalf("lb1 took the server out %v after the cut, before its 4 s keepIfPeersSeeUp", took)
	}
	if r := row(lb2); !strings.Contains(r, "up 1/1") {
		t.Fatalf("lb2, which still reaches the server, does not serve it: %q", r)
	}
	if err := lb1.IP("route", "del", "blackhole", rs.Addr.String()+"/32"); err != nil {
		t.Fatal(err)
	}
	if err := lab.Poll(15*time.Second, 200*time.Millisecond, "the dispute over", func() (bool, error) {
		return !strings.Contains(issues(), "real server disputed"), nil
	}); err != nil {
		t.Fatal(err)
	}
	// Both ends are events on the directors involved.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := ctl.Dial(ctx, "unix://"+lb2.HaadFiles(f.dir).Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var began, ended bool
	err = c.Watch(ctx, new(uint64), func(e *haav1.Event) error {
		if d := e.GetRealServerDisputed(); d != nil {
			began, ended = began || !d.GetResolved(), ended || d.GetResolved()
		}
		if began && ended {
			return errStopWatch
		}
		return nil
	})
	if !began || !ended {
		t.Fatalf("events: dispute began %v, ended %v (%v)", began, ended, err)
	}
}

var errStopWatch = errors.New("seen")
