package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/haa-dev/haa/node/balancer"
	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/host/hosttest"
	"github.com/haa-dev/haa/node/lvs"
	"github.com/haa-dev/haa/node/notify"
	"github.com/haa-dev/haa/node/script"
	"github.com/haa-dev/haa/node/vrrp"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Whole agents on an in-memory LAN (node/host/hosttest), under fake time:
// what the namespace suites prove with real haad processes, in
// milliseconds. Every agent is shut down inside its bubble.

// testNode is one agent on the fake LAN.
type testNode struct {
	*Agent
	name string
	host *hosttest.Host
	cmds *cmdLog
}

// cmdLog records the notify commands the agent ran.
type cmdLog struct {
	mu   sync.Mutex
	runs []string
}

func (c *cmdLog) exec(_ context.Context, j notify.Job) script.Result {
	c.mu.Lock()
	c.runs = append(c.runs, j.Type+" "+j.Name+" "+j.State)
	c.mu.Unlock()
	return script.Result{}
}

func (c *cmdLog) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.runs)
}

// newTestNode starts an agent on host name of lan, with eth0 on the
// segment "lan" at 10.77.0.last/24 and eth1 (an uplink) on its own
// segment.
func newTestNode(t *testing.T, lan *hosttest.Network, name string, last byte, opts ...Option) *testNode {
	t.Helper()
	h := lan.NewHost(name)
	h.AddLink("eth0", "lan", fmt.Sprintf("10.77.0.%d/24", last))
	h.AddLink("eth1", "uplink-"+name, fmt.Sprintf("192.0.2.%d/24", last))
	cmds := &cmdLog{}
	opts = append([]Option{WithHost(h), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		WithNotifyExec(cmds.exec)}, opts...)
	a, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return &testNode{Agent: a, name: name, host: h, cmds: cmds}
}

// apply applies a configuration given as YAML (the node's name is added).
func (n *testNode) apply(t *testing.T, y string) ApplyResult {
	t.Helper()
	res, err := n.Apply(context.Background(), parseConfig(t, "name: "+n.name+"\n"+y), ApplyOptions{})
	if err != nil {
		t.Fatalf("%s: apply: %v", n.name, err)
	}
	return res
}

func parseConfig(t *testing.T, y string) *haav1.AgentConfig {
	t.Helper()
	cfg, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func (n *testNode) shutdown(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Errorf("%s: shutdown: %v", n.name, err)
	}
}

func (n *testNode) state(t *testing.T, instance string) vrrp.State {
	t.Helper()
	st, err := n.Instance(instance)
	if err != nil {
		t.Fatalf("%s: %v", n.name, err)
	}
	return st.Status.State
}

// eventually advances fake time in small steps until ok, for at most d.
func eventually(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// instanceYAML is one instance at 100 ms adverts.
func instanceYAML(name string, vrid, prio int, vip string, extra string) string {
	return fmt.Sprintf("  - {name: %s, interface: eth0, vrid: %d, priority: %d, advertInterval: 0.1s, vips: [%q]%s}\n",
		name, vrid, prio, vip, extra)
}

// TestAgentsElectAndFailOver: two agents elect the higher priority, which
// holds the VIP; stopping it hands over within the skew time (priority-0
// advert), not the master-down interval.
func TestAgentsElectAndFailOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := hosttest.NewNetwork()
		n1, n2 := newTestNode(t, lan, "n1", 1), newTestNode(t, lan, "n2", 2)
		defer n2.shutdown(t)
		n1.apply(t, "instances:\n"+instanceYAML("VI_1", 51, 200, "10.77.0.100/24", ""))
		n2.apply(t, "instances:\n"+instanceYAML("VI_1", 51, 100, "10.77.0.100/24", ""))
		eventually(t, 2*time.Second, "n1 master holding the VIP", func() bool {
			return n1.state(t, "VI_1") == vrrp.Master && n1.host.Holds("10.77.0.100") &&
				n2.state(t, "VI_1") == vrrp.Backup && !n2.host.Holds("10.77.0.100")
		})
		if n1.host.Announced("10.77.0.100") == 0 {
			t.Error("the new master sent no gratuitous ARP")
		}
		start := time.Now()
		n1.shutdown(t)
		if n1.host.Holds("10.77.0.100") {
			t.Error("a stopped master kept its VIP")
		}
		eventually(t, time.Second, "n2 master after n1 stopped", func() bool {
			return n2.state(t, "VI_1") == vrrp.Master && n2.host.Holds("10.77.0.100")
		})
		skew := vrrp.SkewTime(3, 100, 100*time.Millisecond)
		if took := time.Since(start); took > skew+10*time.Millisecond {
			t.Errorf("takeover after %v: the priority-0 advert should make it the skew time (%v)", took, skew)
		}
	})
}

// TestAgentApplyInPlaceAndRestart: a priority change is applied in place
// (no transition); a vrid change restarts the instance; an unchanged one
// is not touched.
func TestAgentApplyInPlaceAndRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := hosttest.NewNetwork()
		n1 := newTestNode(t, lan, "n1", 1)
		defer n1.shutdown(t)
		n1.apply(t, "instances:\n"+instanceYAML("VI_1", 51, 200, "10.77.0.100/24", "")+instanceYAML("VI_2", 52, 200, "10.77.0.101/24", ""))
		eventually(t, 2*time.Second, "both masters", func() bool {
			return n1.state(t, "VI_1") == vrrp.Master && n1.state(t, "VI_2") == vrrp.Master
		})
		transitions := func(name string) uint64 {
			st, _ := n1.Instance(name)
			return st.Stats.Transitions.Load()
		}
		t1, t2 := transitions("VI_1"), transitions("VI_2")
		res := n1.apply(t, "instances:\n"+instanceYAML("VI_1", 51, 150, "10.77.0.100/24", "")+instanceYAML("VI_2", 52, 200, "10.77.0.101/24", ""))
		if len(res.Plan.Changed) != 1 || res.Plan.Changed[0].Restart || !slices.Equal(res.Plan.Unchanged, []string{"VI_2"}) {
			t.Fatalf("priority change: plan %+v", res.Plan)
		}
		time.Sleep(time.Second)
		st, _ := n1.Instance("VI_1")
		if st.Status.Priority != 150 || st.Status.State != vrrp.Master || transitions("VI_1") != t1 || transitions("VI_2") != t2 {
			t.Fatalf("after an in-place change: %+v, transitions %d/%d (were %d/%d)", st.Status, transitions("VI_1"), transitions("VI_2"), t1, t2)
		}
		res = n1.apply(t, "instances:\n"+instanceYAML("VI_1", 61, 150, "10.77.0.100/24", "")+instanceYAML("VI_2", 52, 200, "10.77.0.101/24", ""))
		if len(res.Plan.Changed) != 1 || !res.Plan.Changed[0].Restart {
			t.Fatalf("vrid change: plan %+v", res.Plan)
		}
		eventually(t, 2*time.Second, "VI_1 master again with its new vrid", func() bool {
			st, _ := n1.Instance("VI_1")
			return st.Status.State == vrrp.Master && st.Config.VRRP.VRID == 61
		})
		if transitions("VI_2") != t2 {
			t.Error("the untouched instance changed state")
		}
		if res.Generation != 3 || !res.Changed {
			t.Errorf("generation %d after three applies (changed %v)", res.Generation, res.Changed)
		}
		again := n1.apply(t, "instances:\n"+instanceYAML("VI_1", 61, 150, "10.77.0.100/24", "")+instanceYAML("VI_2", 52, 200, "10.77.0.101/24", ""))
		if !again.Applied || again.Changed || again.Generation != 3 || !again.Plan.Empty() {
			t.Errorf("the same configuration again: %+v, want applied, unchanged, generation 3", again)
		}
	})
}

// TestAgentTrackerFaultsInstanceAndSyncGroup: an interface tracker whose
// link goes down faults its instance, and the sync group joined by a
// later apply takes the other member along; both come back with the link.
func TestAgentTrackerFaultsInstanceAndSyncGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := hosttest.NewNetwork()
		n1, n2 := newTestNode(t, lan, "n1", 1), newTestNode(t, lan, "n2", 2)
		defer n1.shutdown(t)
		defer n2.shutdown(t)
		const trackers = "trackers:\n  - {name: uplink, interface: {name: eth1}, weight: 0}\n"
		ins := func(prio int, track string) string {
			return "instances:\n" + instanceYAML("VI_1", 51, prio, "10.77.0.100/24", track) +
				instanceYAML("VI_2", 52, prio, "10.77.0.101/24", "")
		}
		n1.apply(t, trackers+ins(200, ", track: [{tracker: uplink}]"))
		n2.apply(t, ins(100, ""))
		eventually(t, 2*time.Second, "n1 master of both", func() bool {
			return n1.state(t, "VI_1") == vrrp.Master && n1.state(t, "VI_2") == vrrp.Master
		})

		// Without a group, the uplink takes VI_1 only.
		n1.host.SetLink("eth1", false)
		eventually(t, time.Second, "VI_1 in FAULT on n1, VI_2 still master", func() bool {
			return n1.state(t, "VI_1") == vrrp.Fault && n1.state(t, "VI_2") == vrrp.Master && n2.state(t, "VI_1") == vrrp.Master
		})
		st, _ := n1.Instance("VI_1")
		if !strings.Contains(st.Status.FaultReason, "tracker uplink failed") {
			t.Errorf("fault reason %q", st.Status.FaultReason)
		}
		n1.host.SetLink("eth1", true)
		eventually(t, 2*time.Second, "VI_1 back on n1", func() bool { return n1.state(t, "VI_1") == vrrp.Master })

		// The group joined in place: the instances are not restarted.
		const group = "syncGroups:\n  - {name: VG_1, instances: [VI_1, VI_2], notify: {any: [/bin/true]}}\n"
		res := n1.apply(t, trackers+group+ins(200, ", track: [{tracker: uplink}]"))
		if len(res.Plan.Changed) != 0 {
			t.Fatalf("joining a sync group restarted instances: %+v", res.Plan)
		}
		n2.apply(t, group+ins(100, ""))
		time.Sleep(time.Second)
		n1.host.SetLink("eth1", false)
		eventually(t, time.Second, "both in FAULT on n1, both master on n2", func() bool {
			return n1.state(t, "VI_1") == vrrp.Fault && n1.state(t, "VI_2") == vrrp.Fault &&
				n2.state(t, "VI_1") == vrrp.Master && n2.state(t, "VI_2") == vrrp.Master &&
				n2.host.Holds("10.77.0.100") && n2.host.Holds("10.77.0.101")
		})
		st, _ = n1.Instance("VI_2")
		if !strings.Contains(st.Status.FaultReason, "sync group VG_1") || st.Tracking.SyncGroup != "VG_1" {
			t.Errorf("VI_2: fault %q, group %q", st.Status.FaultReason, st.Tracking.SyncGroup)
		}
		eventually(t, time.Second, "the group's notify command", func() bool {
			return slices.Contains(n1.cmds.list(), "GROUP VG_1 FAULT")
		})
		n1.host.SetLink("eth1", true)
		eventually(t, 2*time.Second, "both back on n1", func() bool {
			return n1.state(t, "VI_1") == vrrp.Master && n1.state(t, "VI_2") == vrrp.Master &&
				n2.state(t, "VI_1") == vrrp.Backup && n2.state(t, "VI_2") == vrrp.Backup
		})
	})
}

// TestAgentMaintenance: maintenance hands every mastership over and ends
// by itself at its TTL; a maintenance restored from the state file whose
// TTL has not passed when the agent stops never fires afterwards.
func TestAgentMaintenance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := hosttest.NewNetwork()
		stateFile := filepath.Join(t.TempDir(), "state.json")
		n1, n2 := newTestNode(t, lan, "n1", 1, WithStateFile(stateFile)), newTestNode(t, lan, "n2", 2)
		defer n2.shutdown(t)
		n1.apply(t, "instances:\n"+instanceYAML("VI_1", 51, 200, "10.77.0.100/24", ""))
		n2.apply(t, "instances:\n"+instanceYAML("VI_1", 51, 100, "10.77.0.100/24", ""))
		eventually(t, 2*time.Second, "n1 master", func() bool { return n1.state(t, "VI_1") == vrrp.Master })
		start := time.Now()
		if _, err := n1.SetMaintenance(true, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Second, "n2 master during maintenance", func() bool {
			return n2.state(t, "VI_1") == vrrp.Master && n1.state(t, "VI_1") == vrrp.Backup
		})
		if !n1.Node().Maintenance.Enabled {
			t.Fatal("Node does not say maintenance")
		}
		eventually(t, 12*time.Second, "maintenance over and n1 master again", func() bool {
			return !n1.Node().Maintenance.Enabled && n1.state(t, "VI_1") == vrrp.Master
		})
		if d := time.Since(start); d < 10*time.Second {
			t.Errorf("maintenance ended after %v, before its 10s TTL", d)
		}

		// Restored with 5s left, then stopped: nothing fires later.
		if _, err := n1.SetMaintenance(true, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		n1.shutdown(t)
		again := newTestNode(t, lan, "n1", 3, WithStateFile(stateFile))
		if !again.Node().Maintenance.Enabled {
			t.Fatal("maintenance not restored from the state file")
		}
		seq := again.Events().LastSeq()
		again.shutdown(t)
		time.Sleep(10 * time.Second)
		if got := again.Events().LastSeq(); got != seq {
			t.Errorf("%d events after the agent stopped: its maintenance timer still ran", got-seq)
		}
	})
}

// TestAgentFailoverWaitsForTheTakeover: Failover returns as the other
// node's adverts make this one a backup, not at a polling tick.
func TestAgentFailoverWaitsForTheTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := hosttest.NewNetwork()
		n1, n2 := newTestNode(t, lan, "n1", 1), newTestNode(t, lan, "n2", 2)
		defer n1.shutdown(t)
		defer n2.shutdown(t)
		n1.apply(t, "instances:\n"+instanceYAML("VI_1", 51, 200, "10.77.0.100/24", ""))
		n2.apply(t, "instances:\n"+instanceYAML("VI_1", 51, 100, "10.77.0.100/24", ""))
		eventually(t, 2*time.Second, "n1 master", func() bool { return n1.state(t, "VI_1") == vrrp.Master })
		time.Sleep(33 * time.Millisecond) // off any 5 ms grid
		// The moment n1 learns of the new master, from its own notice.
		var learned time.Time
		var mu sync.Mutex
		go func() {
			r := n1.VRRP().Snapshot().Get("VI_1").Runner()
			for {
				st, ch := r.Watch()
				if st.State == vrrp.Backup && st.MasterAddr == netip.MustParseAddr("10.77.0.2") {
					mu.Lock()
					learned = time.Now()
					mu.Unlock()
					return
				}
				<-ch
			}
		}()
		addr, err := n1.VRRP().Failover(context.Background(), "VI_1", 5*time.Second)
		returned := time.Now()
		if err != nil || addr != netip.MustParseAddr("10.77.0.2") {
			t.Fatalf("Failover: %v, %v", addr, err)
		}
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if !returned.Equal(learned) {
			t.Errorf("Failover returned at %v, the takeover was learned at %v", returned.Sub(learned), learned)
		}
		if _, err := n2.VRRP().Failover(context.Background(), "nope", 0); err == nil {
			t.Error("Failover of an unknown instance")
		}
	})
}

// recordingBackend is a load-balancing backend in memory.
type recordingBackend struct {
	mu    sync.Mutex
	state lvs.State
	block chan struct{} // when set, Apply waits for it or for its context
}

func (b *recordingBackend) Name() string               { return "memory" }
func (b *recordingBackend) Supports(lvs.Service) error { return nil }
func (b *recordingBackend) Close() error               { return nil }

func (b *recordingBackend) Apply(ctx context.Context, p lvs.Plan) error {
	b.mu.Lock()
	block := b.block
	b.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	lvs.Apply(b.state, p)
	return nil
}

func (b *recordingBackend) Read(context.Context) (lvs.State, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state.Clone(), nil
}

func (b *recordingBackend) weight(k lvs.Key, rs netip.AddrPort) (int, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if vs := b.state[k]; vs != nil {
		d, ok := vs.Dests[rs]
		return d.Weight, ok
	}
	return 0, false
}

// TestAgentDrain: draining a real server programs its weight 0, enabling
// it programs its configured weight back.
func TestAgentDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := hosttest.NewNetwork()
		be := &recordingBackend{state: lvs.State{}}
		n1 := newTestNode(t, lan, "n1", 1, WithBalancerBackend(be))
		defer n1.shutdown(t)
		n1.apply(t, "instances:\n"+instanceYAML("VI_1", 51, 200, "10.77.0.100/24", "")+lbYAML)
		rs1 := netip.MustParseAddrPort("10.77.1.1:80")
		if w, ok := be.weight(lbKey, rs1); !ok || w != 1 {
			t.Fatalf("programmed weight %d %v", w, ok)
		}
		got, err := n1.Balancer().SetRealServer(context.Background(), "web", "10.77.1.1:80", balancer.RealServerAction{Drain: true})
		if err != nil || !got.Drained || got.Weight != 0 {
			t.Fatalf("drain: %+v, %v", got, err)
		}
		if w, _ := be.weight(lbKey, rs1); w != 0 {
			t.Fatalf("drained weight %d", w)
		}
		if _, err := n1.Balancer().SetRealServer(context.Background(), "web", "10.77.1.1", balancer.RealServerAction{Enable: true}); err != nil {
			t.Fatal(err)
		}
		if w, _ := be.weight(lbKey, rs1); w != 1 {
			t.Fatalf("enabled weight %d", w)
		}
		e := n1.Events()
		sub, _ := e.Subscribe(ptr(uint64(0)))
		var causes []string
		for range e.LastSeq() {
			ev, _ := sub.Next(context.Background())
			if rc := ev.GetRealServerChanged(); rc != nil {
				causes = append(causes, rc.GetCause())
			}
		}
		if !slices.Equal(causes, []string{"drained", "enabled"}) {
			t.Errorf("real server events %v", causes)
		}
	})
}

const lbYAML = "virtualServers:\n  - {name: web, address: 10.77.0.100:80, realServers: [{address: 10.77.1.1:80}, {address: 10.77.1.2:80}]}\n"

var lbKey = lvs.Key{Addr: netip.MustParseAddrPort("10.77.0.100:80"), Proto: lvs.TCP}

func ptr[T any](v T) *T { return &v }

// TestAgentReadersNeverWait: while an apply waits for a hung backend, every
// reader (the API's and the metrics' reads) answers at once, in real time.
func TestAgentReadersNeverWait(t *testing.T) {
	lan := hosttest.NewNetwork()
	be := &recordingBackend{state: lvs.State{}}
	n1 := newTestNode(t, lan, "n1", 1, WithBalancerBackend(be))
	defer n1.shutdown(t)
	n1.apply(t, "instances:\n"+instanceYAML("VI_1", 51, 200, "10.77.0.100/24", "")+lbYAML)
	be.mu.Lock()
	be.block = make(chan struct{})
	be.mu.Unlock()
	applied := make(chan error, 1)
	go func() {
		_, err := n1.Apply(context.Background(), parseConfig(t, "name: n1\ninstances:\n"+
			instanceYAML("VI_1", 51, 150, "10.77.0.100/24", "")+strings.Replace(lbYAML, "10.77.1.2:80", "10.77.1.3:80", 1)),
			ApplyOptions{})
		applied <- err
	}()
	// The apply is in the backend once the table cannot be read back.
	time.Sleep(100 * time.Millisecond)
	read := make(chan string, 1)
	go func() {
		n := n1.Node()
		ins := n1.Instances()
		vss, backend := n1.Balancer().VirtualServers(context.Background())
		f := n1.FleetStatus()
		_, gen, _ := n1.ConfigState()
		tr := n1.Tracking().Snapshot()
		drops := n1.VRRP().InterfaceDrops()
		read <- fmt.Sprintf("generation %d/%d, %d instances, %d virtual servers (%s), fleet %q, %d trackers, %d interfaces",
			n.Generation, gen, len(ins), len(vss), backend, f.Node, len(tr.Trackers), len(drops))
	}()
	select {
	case got := <-read:
		if want := "generation 1/1, 1 instances, 1 virtual servers (memory), fleet \"n1\", 0 trackers, 1 interfaces"; got != want {
			t.Errorf("reads during the apply: %s, want %s", got, want)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("reads wait for the apply")
	}
	select {
	case err := <-applied:
		t.Fatalf("the apply finished with the backend hung: %v", err)
	default:
	}
	be.mu.Lock()
	close(be.block)
	be.block = nil
	be.mu.Unlock()
	if err := <-applied; err != nil {
		t.Fatal(err)
	}
	if _, ok := be.weight(lbKey, netip.MustParseAddrPort("10.77.1.3:80")); !ok {
		t.Error("the new real server was not programmed")
	}
	if n := n1.Node(); n.Generation != 2 {
		t.Errorf("generation %d after the apply", n.Generation)
	}
}

// TestSetRealServerHonoursItsContext: a runtime change whose backend call
// hangs gives up when its context ends, and the real server keeps its
// weight.
func TestSetRealServerHonoursItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := hosttest.NewNetwork()
		be := &recordingBackend{state: lvs.State{}}
		n1 := newTestNode(t, lan, "n1", 1, WithBalancerBackend(be))
		defer n1.shutdown(t)
		n1.apply(t, "virtualServers:\n  - {name: web, address: 10.77.0.100:80, realServers: [{address: 10.77.1.1:80}]}\n")
		be.mu.Lock()
		be.block = make(chan struct{})
		be.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		_, err := n1.Balancer().SetRealServer(ctx, "web", "10.77.1.1:80", balancer.RealServerAction{Drain: true})
		if err == nil || time.Since(start) != time.Second {
			t.Fatalf("SetRealServer with a hung backend: %v after %v, want its context's end after 1s", err, time.Since(start))
		}
		be.mu.Lock()
		close(be.block)
		be.block = nil
		be.mu.Unlock()
		if rs := n1.Balancer().Status().VirtualServers[0].Reals[0]; rs.Drained {
			t.Error("a drain that failed is shown as done")
		}
	})
}

// TestFleetAppliesReportNoDrift: while fleet documents that restart this
// node's fleet instance are applied one after the other, what the fleet
// sees of the node (its summary's health, the fleet's issues: what the
// gossip publisher and detector send and report) never says it drifts:
// the fleet's part, its hash and the document are published together.
func TestFleetAppliesReportNoDrift(t *testing.T) {
	lan := hosttest.NewNetwork()
	n1 := newTestNode(t, lan, "n1", 1)
	defer n1.shutdown(t)
	n1.apply(t, "instances:\n"+instanceYAML("OWN", 50, 100, "10.77.0.99/24", ""))
	doc := func(prio, vrid int) *haav1.Fleet {
		return parseDoc(t, fmt.Sprintf("kind: Fleet\nnodes: [n1]\ninstances:\n  - {name: FI_1, interface: eth0, vrid: %d, "+
			"advertInterval: 0.1s, vips: [\"10.77.0.140/24\"], priorities: {n1: %d}}\n", vrid, prio))
	}
	if _, err := n1.ApplyFleet(context.Background(), doc(100, 51), FleetApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	var reads, drifts int
	var seen string
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			st := n1.FleetStatus()
			reads++
			for _, m := range st.Members {
				if m.Health != nil && len(m.Health.Problems) > 0 {
					drifts++
					seen = m.Health.Problems[0]
				}
			}
			if len(st.Issues) > 0 {
				drifts++
				seen = st.Issues[0].String()
			}
		}
	}()
	for i := range 100 {
		if _, err := n1.ApplyFleet(context.Background(), doc(100+i, 51+i%2), FleetApplyOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	<-done
	if drifts > 0 || reads == 0 {
		t.Errorf("%d of %d reads during the applies saw the node drift: %s", drifts, reads, seen)
	}
}

// TestShutdownGivesUpOnAHungBackend: an apply waiting for a hung backend
// gives up when the agent shuts down, and Shutdown keeps to its context.
func TestShutdownGivesUpOnAHungBackend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := hosttest.NewNetwork()
		be := &recordingBackend{state: lvs.State{}, block: make(chan struct{})}
		n1 := newTestNode(t, lan, "n1", 1, WithBalancerBackend(be))
		applied := make(chan error, 1)
		go func() {
			_, err := n1.Apply(context.Background(), parseConfig(t, "name: n1\n"+lbYAML), ApplyOptions{})
			applied <- err
		}()
		synctest.Wait() // the apply waits in the backend
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_ = n1.Shutdown(ctx)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Shutdown took %v with a 2s context", d)
		}
		select {
		case <-applied:
		default:
			t.Error("the apply still waits for the backend after the shutdown")
		}
		close(be.block)
		synctest.Wait()
	})
}

// TestAgentRemovesInterruptedWrites: temporary files that a crash left
// next to the state, configuration and fleet files are removed at start.
func TestAgentRemovesInterruptedWrites(t *testing.T) {
	dir := t.TempDir()
	var left []string
	for _, f := range []string{"state.json", "haad.yaml", "fleet.json"} {
		tmp := filepath.Join(dir, "."+f+".tmp4711")
		if err := os.WriteFile(tmp, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
		left = append(left, tmp)
	}
	n := newTestNode(t, hosttest.NewNetwork(), "n1", 1, WithStateFile(filepath.Join(dir, "state.json")),
		WithConfigFile(filepath.Join(dir, "haad.yaml")), WithFleetFile(filepath.Join(dir, "fleet.json")))
	defer n.shutdown(t)
	for _, f := range left {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after start: %v", f, err)
		}
	}
}
