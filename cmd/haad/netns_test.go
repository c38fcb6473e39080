package main

// Integration tests: real haad processes in network namespaces (deploy/lab),
// real raw sockets, netlink and ARP. They skip without root and fail
// instead when HAA_REQUIRE_NETNS=1.

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
)

// binary builds ./cmd/NAME once per test run and returns its path.
var binary = func() func(t *testing.T, name string) string {
	type built struct {
		once sync.Once
		path string
		err  error
	}
	var mu sync.Mutex
	cache := map[string]*built{}
	return func(t *testing.T, name string) string {
		t.Helper()
		mu.Lock()
		b := cache[name]
		if b == nil {
			b = &built{}
			cache[name] = b
		}
		mu.Unlock()
		b.once.Do(func() {
			// HAA_BIN_DIR: binaries built beforehand (the IPVS VM has no
			// writable Go cache to build them with).
			if dir := os.Getenv("HAA_BIN_DIR"); dir != "" {
				b.path = filepath.Join(dir, name)
				if _, b.err = os.Stat(b.path); b.err != nil {
					b.err = fmt.Errorf("HAA_BIN_DIR: %w", b.err)
				}
				return
			}
			root, err := lab.ModuleRoot()
			if err != nil {
				b.err = err
				return
			}
			dir, err := os.MkdirTemp("", name+"-bin")
			if err != nil {
				b.err = err
				return
			}
			b.path, b.err = lab.Build(root, dir, "./cmd/"+name)
		})
		if b.err != nil {
			t.Fatal(b.err)
		}
		return b.path
	}
}()

// haad returns the haad binary, built once per test run.
func haad(t *testing.T) string { return binary(t, "haad") }

var vip = netip.MustParseAddr("10.77.0.100")

// cluster is a lab running haad on some of its nodes.
type cluster struct {
	t     *testing.T
	lab   *lab.Lab
	dir   string
	bin   string
	procs map[*lab.Node]*lab.Proc
}

func newCluster(t *testing.T, nodes int) *cluster {
	t.Helper()
	l := lab.NewT(t, lab.Options{Prefix: lab.UniqueName("hd"), Nodes: nodes})
	c := &cluster{t: t, lab: l, dir: t.TempDir(), bin: haad(t), procs: map[*lab.Node]*lab.Proc{}}
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
	})
	return c
}

// newPair runs VI_1 (VRID 51, the VIP, 100 ms adverts) on two nodes, n1
// priority 200 and n2 100, and waits until n1 holds the VIP.
func newPair(t *testing.T) (*cluster, *lab.Node, *lab.Node) {
	t.Helper()
	c := newCluster(t, 2)
	n1, n2 := c.lab.Nodes[0], c.lab.Nodes[1]
	c.start(n1, instance{name: "VI_1", vrid: 51, prio: 200})
	c.start(n2, instance{name: "VI_1", vrid: 51, prio: 100})
	c.waitHolder(vip, n1, 5*time.Second)
	return c, n1, n2
}

func (c *cluster) dumpLogs() {
	for _, n := range c.lab.Nodes {
		b, err := os.ReadFile(n.HaadFiles(c.dir).Log)
		if err == nil {
			c.t.Logf("--- haad log of %s:\n%s", n.Name, tail(string(b), 40))
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// instance is one VRRP instance of a generated agent configuration.
type instance struct {
	name     string
	vrid     int
	prio     int
	version  int
	interval string
	extra    string // more YAML lines, indented by 4
	vips     []string
}

func (c *cluster) config(n *lab.Node, ins ...instance) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\ninstances:\n", n.Name)
	for _, in := range ins {
		if in.version == 0 {
			in.version = 3
		}
		if in.interval == "" {
			in.interval = "100ms"
		}
		if in.vips == nil {
			in.vips = []string{vip.String() + "/24"}
		}
		fmt.Fprintf(&b, "  - name: %s\n    interface: eth0\n    vrid: %d\n    priority: %d\n    version: %d\n    advertInterval: %s\n    vips: [%s]\n%s",
			in.name, in.vrid, in.prio, in.version, in.interval, strings.Join(in.vips, ", "), in.extra)
	}
	return b.String()
}

func (c *cluster) start(n *lab.Node, ins ...instance) *lab.Proc {
	c.t.Helper()
	p, err := n.StartHaad(c.dir, c.bin, c.config(n, ins...),
		"--log-level", "debug", "--status-file", c.statusPath(n))
	if err != nil {
		c.t.Fatal(err)
	}
	c.procs[n] = p
	return p
}

func (c *cluster) statusPath(n *lab.Node) string {
	return filepath.Join(c.dir, "status-"+n.Name+".json")
}

// statusDoc is the SIGUSR1 status file.
type statusDoc struct {
	Instances      []instanceDump
	InterfaceDrops map[string]map[string]uint64
}

// status asks a node's haad for its status file (SIGUSR1) and returns its
// instances by name.
func (c *cluster) status(n *lab.Node) map[string]instanceDump {
	c.t.Helper()
	doc := c.statusDoc(n)
	m := map[string]instanceDump{}
	for _, d := range doc.Instances {
		m[d.Name] = d
	}
	return m
}

func (c *cluster) statusDoc(n *lab.Node) statusDoc {
	c.t.Helper()
	path := c.statusPath(n)
	os.Remove(path)
	// SIGUSR1 before haad installed its handler would kill it: wait for
	// this process's "haad running" line.
	running := fmt.Sprintf("pid=%d", c.procs[n].Pid())
	err := lab.Poll(10*time.Second, 10*time.Millisecond, n.Name+"'s haad running", func() (bool, error) {
		b, err := os.ReadFile(n.HaadFiles(c.dir).Log)
		return err == nil && strings.Contains(string(b), running), nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.procs[n].Signal(syscall.SIGUSR1); err != nil {
		c.t.Fatal(err)
	}
	var b []byte
	err = lab.Poll(5*time.Second, 10*time.Millisecond, "status file of "+n.Name, func() (bool, error) {
		var err error
		b, err = os.ReadFile(path)
		return err == nil, nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
	var doc statusDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		c.t.Fatal(err)
	}
	return doc
}

func (c *cluster) waitHolder(a netip.Addr, want *lab.Node, timeout time.Duration) *lab.Node {
	c.t.Helper()
	n, err := c.lab.WaitHolder(a, want, timeout)
	if err != nil {
		c.t.Fatal(err)
	}
	return n
}

// stableHolder asserts that exactly want holds a for the whole period.
func (c *cluster) stableHolder(a netip.Addr, want *lab.Node, period time.Duration) {
	c.t.Helper()
	end := time.Now().Add(period)
	for time.Now().Before(end) {
		hs, err := c.lab.Holders(a)
		if err != nil {
			c.t.Fatal(err)
		}
		if len(hs) != 1 || hs[0] != want {
			c.t.Fatalf("holders of %s: %s, want only %s", a, lab.Names(hs), want.Name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFailoverAndPreemption(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3)
	n1, n2, n3 := c.lab.Nodes[0], c.lab.Nodes[1], c.lab.Nodes[2]
	c.start(n1, instance{name: "VI_1", vrid: 51, prio: 200})
	c.start(n2, instance{name: "VI_1", vrid: 51, prio: 150})
	c.start(n3, instance{name: "VI_1", vrid: 51, prio: 100})
	c.waitHolder(vip, n1, 5*time.Second)
	c.stableHolder(vip, n1, 500*time.Millisecond)

	// Power off the master: n2 (next priority) takes over and the client
	// keeps reaching the VIP through it.
	fo, err := c.lab.MeasureFailover(c.lab.Clients[0], vip, n1, c.procs[n1], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if fo.NewMaster != n2 {
		t.Fatalf("new master %s, want n2", fo.NewMaster.Name)
	}
	bound := 3*100*time.Millisecond + 100*time.Millisecond*(256-150)/256
	t.Logf("outage %v (protocol bound %v)", fo.Outage, bound)
	if fo.Outage > bound+300*time.Millisecond {
		t.Fatalf("outage %v far above the protocol bound %v", fo.Outage, bound)
	}
	c.stableHolder(vip, n2, 300*time.Millisecond)

	// The power comes back: n1 preempts.
	if err := n1.PowerOn(); err != nil {
		t.Fatal(err)
	}
	c.start(n1, instance{name: "VI_1", vrid: 51, prio: 200})
	c.waitHolder(vip, n1, 5*time.Second)
	c.stableHolder(vip, n1, 300*time.Millisecond)
	st := c.status(n2)["VI_1"]
	if st.State != "BACKUP" || st.Master != n1.Addr.String() {
		t.Fatalf("n2 status %+v, want BACKUP of %s", st, n1.Addr)
	}
}

func TestNoPreempt(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2)
	n1, n2 := c.lab.Nodes[0], c.lab.Nodes[1]
	c.start(n2, instance{name: "VI_1", vrid: 51, prio: 100})
	c.waitHolder(vip, n2, 5*time.Second)
	c.start(n1, instance{name: "VI_1", vrid: 51, prio: 200, extra: "    preempt: false\n"})
	c.stableHolder(vip, n2, 1500*time.Millisecond)
	if st := c.status(n1)["VI_1"]; st.State != "BACKUP" {
		t.Fatalf("nopreempt node is %s", st.State)
	}
}

// SIGTERM on the master: a priority-0 advert makes the backup take over
// after its skew time, long before a master-down interval.
func TestPriorityZeroHandover(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2)
	n1, n2 := c.lab.Nodes[0], c.lab.Nodes[1]
	c.start(n1, instance{name: "VI_1", vrid: 51, prio: 200, interval: "1s"})
	c.start(n2, instance{name: "VI_1", vrid: 51, prio: 100, interval: "1s"})
	c.waitHolder(vip, n1, 8*time.Second)
	at := time.Now()
	if err := c.procs[n1].Stop(5 * time.Second); err != nil {
		t.Fatalf("haad did not exit cleanly on SIGTERM: %v", err)
	}
	c.waitHolder(vip, n2, 3*time.Second)
	took := time.Since(at)
	mdi := 3*time.Second + time.Second*156/256
	t.Logf("handover after SIGTERM: %v (master-down interval %v)", took, mdi)
	if took > 2*time.Second {
		t.Fatalf("handover took %v: the priority-0 advert was not honoured", took)
	}
	if ok, _ := n1.HasAddr(vip); ok {
		t.Fatal("stopped haad left the VIP behind")
	}
}

func TestUnicastPeers(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2)
	n1, n2 := c.lab.Nodes[0], c.lab.Nodes[1]
	peer := func(n *lab.Node) string { return fmt.Sprintf("    unicastPeers: [%q]\n", n.Addr) }
	c.start(n1, instance{name: "VI_1", vrid: 51, prio: 200, extra: peer(n2)})
	c.start(n2, instance{name: "VI_1", vrid: 51, prio: 100, extra: peer(n1)})
	c.waitHolder(vip, n1, 5*time.Second)
	c.stableHolder(vip, n1, 500*time.Millisecond)
	if st := c.status(n2)["VI_1"]; st.State != "BACKUP" || st.AdvertsReceived == 0 {
		t.Fatalf("n2 %+v: not a backup hearing unicast adverts", st)
	}
	fo, err := c.lab.MeasureFailover(c.lab.Clients[0], vip, n1, c.procs[n1], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if fo.NewMaster != n2 {
		t.Fatalf("new master %s", fo.NewMaster.Name)
	}
}

// Mismatched PASS passwords: the nodes never agree (both master) and every
// advert is dropped and counted as an auth failure.
func TestPassMismatch(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2)
	n1, n2 := c.lab.Nodes[0], c.lab.Nodes[1]
	auth := func(pw string) string { return fmt.Sprintf("    auth: {type: PASS, password: %q}\n", pw) }
	c.start(n1, instance{name: "VI_1", vrid: 51, prio: 200, version: 2, interval: "1s", extra: auth("secret1")})
	c.start(n2, instance{name: "VI_1", vrid: 51, prio: 100, version: 2, interval: "1s", extra: auth("secret2")})
	err := lab.Poll(8*time.Second, 20*time.Millisecond, "both nodes master", func() (bool, error) {
		hs, err := c.lab.Holders(vip)
		return len(hs) == 2, err
	})
	if err != nil {
		t.Fatal(err)
	}
	// A new master adds its VIP before its first advert: the other's
	// drops come a moment after both hold it.
	for _, n := range []*lab.Node{n1, n2} {
		var st instanceDump
		_ = lab.Poll(3*time.Second, 50*time.Millisecond, n.Name+"'s auth failures", func() (bool, error) {
			st = c.status(n)["VI_1"]
			return st.Drops["auth_failure"] > 0, nil
		})
		if st.State != "MASTER" || st.Drops["auth_failure"] == 0 || st.Transitions != 2 {
			t.Fatalf("%s: %+v, want MASTER with auth_failure drops and no other transition", n.Name, st)
		}
	}
}

// Split brain: VRRP between n1 and n2 is cut (bridge port isolation) while
// the client still reaches both. Both become master; after the heal exactly
// one is master and the VIP is on exactly one node.
func TestSplitBrainHeals(t *testing.T) {
	t.Parallel()
	c, n1, n2 := newPair(t)
	isolate := func(on string) {
		for _, n := range []*lab.Node{n1, n2} {
			if err := c.lab.Switch.Command("bridge", "link", "set", "dev", n.Port, "isolated", on).Run(); err != nil {
				t.Fatalf("bridge isolation %s: %v", on, err)
			}
		}
	}
	isolate("on")
	err := lab.Poll(5*time.Second, 20*time.Millisecond, "split brain", func() (bool, error) {
		hs, err := c.lab.Holders(vip)
		return len(hs) == 2, err
	})
	if err != nil {
		t.Fatal(err)
	}
	isolate("off")
	c.waitHolder(vip, n1, 5*time.Second)
	c.stableHolder(vip, n1, 500*time.Millisecond)
	if st := c.status(n2)["VI_1"]; st.State != "BACKUP" {
		t.Fatalf("n2 is %s after the heal", st.State)
	}
}

// kill -9 leaves the VIP on the dead node; a restarted haad removes it at
// once and only takes it back through the protocol.
func TestKill9Restart(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2)
	n1, n2 := c.lab.Nodes[0], c.lab.Nodes[1]
	c.start(n1, instance{name: "VI_1", vrid: 51, prio: 100})
	c.start(n2, instance{name: "VI_1", vrid: 51, prio: 200})
	c.waitHolder(vip, n2, 5*time.Second)
	if err := c.procs[n2].Kill(); err != nil {
		t.Fatal(err)
	}
	// n1 takes over; the killed n2 still has the address: two owners.
	err := lab.Poll(5*time.Second, 10*time.Millisecond, "n1 to take over", func() (bool, error) {
		return n1.HasAddr(vip)
	})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := n2.HasAddr(vip); !ok {
		t.Fatal("expected the killed haad to leave its VIP (the situation restart safety exists for)")
	}
	// Restart n2 with a lower priority so it stays backup: the stale VIP
	// must go and never come back.
	c.start(n2, instance{name: "VI_1", vrid: 51, prio: 50})
	err = lab.Poll(2*time.Second, 5*time.Millisecond, "the stale VIP removed", func() (bool, error) {
		ok, err := n2.HasAddr(vip)
		return !ok, err
	})
	if err != nil {
		t.Fatal(err)
	}
	c.stableHolder(vip, n1, time.Second)
}

// The master's link goes down: FAULT, VIPs released, the backup takes over;
// the link comes back: BACKUP, then preemption.
func TestLinkDownFault(t *testing.T) {
	t.Parallel()
	c, n1, n2 := newPair(t)
	if err := n1.LinkDown(); err != nil {
		t.Fatal(err)
	}
	c.waitHolder(vip, n2, 3*time.Second)
	if st := c.status(n1)["VI_1"]; st.State != "FAULT" || st.LastCause != "interface_down" {
		t.Fatalf("n1 %+v, want FAULT (interface_down)", st)
	}
	if err := n1.LinkUp(); err != nil {
		t.Fatal(err)
	}
	c.waitHolder(vip, n1, 5*time.Second)
}

// SIGHUP applies only the differences: adding an instance leaves the
// running one alone (no transition, no VIP flap), and an invalid file is
// refused while the running configuration stays.
func TestReload(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2)
	n1, n2 := c.lab.Nodes[0], c.lab.Nodes[1]
	vi1 := instance{name: "VI_1", vrid: 51, prio: 200}
	vip2 := netip.MustParseAddr("10.77.0.101")
	vi2 := instance{name: "VI_2", vrid: 52, prio: 200, vips: []string{vip2.String() + "/24"}}
	c.start(n1, vi1)
	c.start(n2, instance{name: "VI_1", vrid: 51, prio: 100})
	c.waitHolder(vip, n1, 5*time.Second)
	before := c.status(n1)["VI_1"]

	p, err := c.lab.Clients[0].StartPing(vip, 2*time.Millisecond, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if err := p.WaitReplies(20, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	cfgPath := n1.HaadFiles(c.dir).Config
	if err = os.WriteFile(cfgPath, []byte(c.config(n1, vi1, vi2)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.procs[n1].Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	c.waitHolder(vip2, n1, 5*time.Second)
	after := c.status(n1)
	if after["VI_1"].Transitions != before.Transitions || !after["VI_1"].LastTransition.Equal(before.LastTransition) {
		t.Fatalf("VI_1 changed on reload: before %+v after %+v", before, after["VI_1"])
	}
	// A new priority is applied in place: no transition, no flap.
	vi1.prio = 180
	if err := os.WriteFile(cfgPath, []byte(c.config(n1, vi1, vi2)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.procs[n1].Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	err = lab.Poll(3*time.Second, 20*time.Millisecond, "priority 180 in place", func() (bool, error) {
		st := c.status(n1)["VI_1"]
		return st.EffPriority == 180 && st.Transitions == before.Transitions, nil
	})
	if err != nil {
		t.Fatalf("%v: %+v", err, c.status(n1)["VI_1"])
	}
	// An invalid file: refused, logged with its problem, nothing changes.
	if err := os.WriteFile(cfgPath, []byte(c.config(n1, vi1, vi2)+"    bogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.procs[n1].Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	err = lab.Poll(3*time.Second, 20*time.Millisecond, "the refusal in the log", func() (bool, error) {
		b, err := os.ReadFile(n1.HaadFiles(c.dir).Log)
		return strings.Contains(string(b), "reload refused") && strings.Contains(string(b), `instances[1].bogus: unknown field`), err
	})
	if err != nil {
		t.Fatal(err)
	}
	c.stableHolder(vip2, n1, 300*time.Millisecond)
	st := p.Stop()
	if st.LongestGap > 100*time.Millisecond {
		t.Fatalf("the VIP of the unchanged instance stopped answering for %v during the reloads", st.LongestGap)
	}
	if final := c.status(n1); len(final) != 2 || final["VI_1"].Transitions != before.Transitions {
		t.Fatalf("after the refused reload: %+v", final)
	}
}
