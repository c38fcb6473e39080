package vrrp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// bus is an in-memory LAN: every advert sent by one runner is decoded and
// delivered to the others, unless the link between them is cut.
type bus struct {
	mu      sync.Mutex
	nodes   map[netip.Addr]*Runner
	cut     map[[2]netip.Addr]bool
	garbled int
	// prepare, when set, changes a runner before it runs.
	prepare func(*node)
}

func newBus() *bus { return &bus{nodes: map[netip.Addr]*Runner{}, cut: map[[2]netip.Addr]bool{}} }

type port struct {
	b    *bus
	self netip.Addr
}

func (p port) Send(src, dst netip.Addr, msg []byte) error {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	for addr, r := range p.b.nodes {
		if addr == p.self || p.b.cut[[2]netip.Addr{p.self, addr}] {
			continue
		}
		if dst != r.rc.Group && dst != addr {
			continue
		}
		a, err := ParseAdvert(msg, src, dst, ChecksumRFC)
		if err != nil {
			p.b.garbled++
			continue
		}
		r.Deliver(src, &a)
	}
	return nil
}

func (b *bus) partition(x, y netip.Addr, cut bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cut[[2]netip.Addr{x, y}] = cut
	b.cut[[2]netip.Addr{y, x}] = cut
}

// vipHolder records whether a node holds its VIPs.
type vipHolder struct {
	mu   sync.Mutex
	held bool
	adds int
	// took is how long each add and removal takes (thousands of
	// addresses take the kernel seconds).
	took time.Duration
}

func (a *vipHolder) Add() error {
	time.Sleep(a.took)
	a.mu.Lock()
	a.held = true
	a.adds++
	a.mu.Unlock()
	return nil
}

func (a *vipHolder) Del() error {
	time.Sleep(a.took)
	a.mu.Lock()
	a.held = false
	a.mu.Unlock()
	return nil
}
func (a *vipHolder) Held() bool { a.mu.Lock(); defer a.mu.Unlock(); return a.held }

type announcer struct {
	mu    sync.Mutex
	times []time.Time
}

func (g *announcer) Announce(netip.Addr) error {
	g.mu.Lock()
	g.times = append(g.times, time.Now())
	g.mu.Unlock()
	return nil
}

func (g *announcer) count() int { g.mu.Lock(); defer g.mu.Unlock(); return len(g.times) }

type node struct {
	addr   netip.Addr
	r      *Runner
	vips   *vipHolder
	garp   *announcer
	cancel context.CancelFunc
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (b *bus) start(t *testing.T, last byte, prio uint8, mut func(*RunnerConfig)) *node {
	addr := netip.AddrFrom4([4]byte{10, 77, 0, last})
	rc := RunnerConfig{
		Config: Config{Name: "VI_1", VRID: 51, Priority: prio, Version: 3, Interval: 100 * time.Millisecond,
			Preempt: true, Addrs: []netip.Addr{vip1}, Primary: addr},
		Interface: "eth0", Group: GroupV4,
		GARP: GARPConfig{Delay: 5 * time.Second, Repeat: 5, RefreshRepeat: 1},
	}
	if mut != nil {
		mut(&rc)
	}
	n := &node{addr: addr, vips: &vipHolder{}, garp: &announcer{}}
	n.r = NewRunner(rc, port{b, addr}, n.vips, n.garp, quiet(), nil)
	if b.prepare != nil {
		b.prepare(n)
	}
	b.mu.Lock()
	b.nodes[addr] = n.r
	b.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go n.r.Run(ctx, true)
	t.Cleanup(func() { cancel(); <-n.r.Done() })
	return n
}

func (b *bus) remove(n *node) {
	b.mu.Lock()
	delete(b.nodes, n.addr)
	b.mu.Unlock()
}

func masters(ns ...*node) (names []string) {
	for _, n := range ns {
		if n.r.Status().State == Master {
			names = append(names, n.addr.String())
		}
	}
	return names
}

func holders(ns ...*node) (names []string) {
	for _, n := range ns {
		if n.vips.Held() {
			names = append(names, n.addr.String())
		}
	}
	return names
}

func wantOneMaster(t *testing.T, want *node, ns ...*node) {
	t.Helper()
	m, h := masters(ns...), holders(ns...)
	if len(m) != 1 || m[0] != want.addr.String() || len(h) != 1 || h[0] != want.addr.String() {
		t.Fatalf("masters %v, VIP holders %v; want only %v", m, h, want.addr)
	}
}

func TestRunnerElectionFailoverAndPreemption(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		n1 := b.start(t, 1, 200, nil)
		n2 := b.start(t, 2, 150, nil)
		n3 := b.start(t, 3, 100, nil)
		time.Sleep(time.Second)
		synctest.Wait()
		wantOneMaster(t, n1, n1, n2, n3)

		// The master leaves gracefully: priority 0, n2 takes over after
		// its skew time rather than a master-down interval.
		stop := time.Now()
		if err := n1.r.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		b.remove(n1)
		time.Sleep(SkewTime(3, 150, 100*time.Millisecond) + time.Millisecond)
		synctest.Wait()
		wantOneMaster(t, n2, n2, n3)
		if took := n2.r.Status().LastChange.Sub(stop); took > 50*time.Millisecond {
			t.Fatalf("handover after priority 0 took %v", took)
		}

		// n2 crashes (no priority 0): n3 takes over after its master-down interval.
		crash := time.Now()
		b.partition(n2.addr, n3.addr, true)
		time.Sleep(MasterDownInterval(3, 100, 100*time.Millisecond) + 10*time.Millisecond)
		synctest.Wait()
		if got := n3.r.Status(); got.State != Master || got.LastChange.Sub(crash) > MasterDownInterval(3, 100, 100*time.Millisecond) {
			t.Fatalf("n3 %v after %v", got.State, got.LastChange.Sub(crash))
		}

		// n1 returns with the highest priority and preempts.
		n1 = b.start(t, 1, 200, nil)
		time.Sleep(time.Second)
		synctest.Wait()
		b.partition(n2.addr, n3.addr, false)
		time.Sleep(time.Second)
		synctest.Wait()
		wantOneMaster(t, n1, n1, n2, n3)
	})
}

// TestRunnerSlowAddressesNeverSilenceTheMaster: a master whose addresses
// take seconds to add (a large set) keeps sending adverts meanwhile, so no
// backup takes over; it announces them once they are there, and Shutdown
// returns once they are removed.
func TestRunnerSlowAddressesNeverSilenceTheMaster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		b.prepare = func(n *node) { n.vips.took = 3 * time.Second }
		n1 := b.start(t, 1, 200, nil)
		b.prepare = nil
		n2 := b.start(t, 2, 100, nil)
		time.Sleep(500 * time.Millisecond) // n1 is master, adding
		synctest.Wait()
		if n1.r.Status().State != Master || n1.vips.Held() || n1.garp.count() != 0 {
			t.Fatalf("n1 %v, held %v, %d GARPs: want master, still adding, none yet", n1.r.Status().State, n1.vips.Held(), n1.garp.count())
		}
		time.Sleep(4 * time.Second)
		synctest.Wait()
		if n := n2.r.Stats().BecameMaster.Load(); n != 0 {
			t.Fatalf("the backup became master %d times while the master added its addresses", n)
		}
		if !n1.vips.Held() || !n1.r.Status().VIPsHeld || n1.garp.count() == 0 {
			t.Fatalf("after the add: held %v, status %v, %d GARPs", n1.vips.Held(), n1.r.Status().VIPsHeld, n1.garp.count())
		}
		start := time.Now()
		if err := n1.r.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n1.vips.Held() || time.Since(start) < 3*time.Second {
			t.Fatalf("Shutdown returned after %v with the addresses held %v", time.Since(start), n1.vips.Held())
		}
	})
}

func TestRunnerSplitBrainHeals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		n1 := b.start(t, 1, 100, nil)
		n2 := b.start(t, 2, 100, nil)
		time.Sleep(time.Second)
		synctest.Wait()
		if m := masters(n1, n2); len(m) != 1 {
			t.Fatalf("masters %v before the split", m)
		}
		b.partition(n1.addr, n2.addr, true)
		time.Sleep(time.Second)
		synctest.Wait()
		if m := masters(n1, n2); len(m) != 2 {
			t.Fatalf("masters %v during the split, want both", m)
		}
		b.partition(n1.addr, n2.addr, false)
		time.Sleep(time.Second)
		synctest.Wait()
		// Equal priority: the higher primary address wins.
		wantOneMaster(t, n2, n1, n2)
	})
}

func TestRunnerNoPreempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		low := b.start(t, 1, 100, nil)
		time.Sleep(time.Second)
		high := b.start(t, 2, 200, func(rc *RunnerConfig) { rc.Preempt = false })
		time.Sleep(5 * time.Second)
		synctest.Wait()
		wantOneMaster(t, low, low, high)
	})
}

func TestRunnerGARPSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		n := b.start(t, 1, 255, func(rc *RunnerConfig) {
			rc.GARP = GARPConfig{Delay: 5 * time.Second, Repeat: 3, Refresh: 60 * time.Second, RefreshRepeat: 2, Interval: 10 * time.Millisecond}
		})
		start := time.Now()
		time.Sleep(time.Second)
		synctest.Wait()
		if c := n.garp.count(); c != 3 {
			t.Fatalf("%d GARPs in the first burst, want 3", c)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if c := n.garp.count(); c != 6 {
			t.Fatalf("%d GARPs after the delayed burst, want 6", c)
		}
		time.Sleep(61 * time.Second)
		synctest.Wait()
		if c := n.garp.count(); c != 8 {
			t.Fatalf("%d GARPs after one refresh, want 8", c)
		}
		n.garp.mu.Lock()
		got := fmt.Sprint(n.garp.times[1].Sub(start), n.garp.times[3].Sub(start), n.garp.times[6].Sub(start))
		n.garp.mu.Unlock()
		if want := fmt.Sprint(10*time.Millisecond, 5*time.Second, 65*time.Second+20*time.Millisecond); got != want {
			t.Fatalf("GARP times %s, want %s", got, want)
		}
		if n.r.Stats().GARPsSent.Load() != 8 {
			t.Fatalf("GARPsSent %d", n.r.Stats().GARPsSent.Load())
		}
	})
}

func TestRunnerLinkDownReleasesVIPs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		n1 := b.start(t, 1, 200, nil)
		n2 := b.start(t, 2, 100, nil)
		time.Sleep(time.Second)
		synctest.Wait()
		n1.r.Link(false)
		b.partition(n1.addr, n2.addr, true)
		time.Sleep(time.Second)
		synctest.Wait()
		if n1.r.Status().State != Fault || n1.vips.Held() {
			t.Fatalf("n1 %v holding %v after link down", n1.r.Status().State, n1.vips.Held())
		}
		wantOneMaster(t, n2, n1, n2)
		b.partition(n1.addr, n2.addr, false)
		n1.r.Link(true)
		time.Sleep(time.Second)
		synctest.Wait()
		wantOneMaster(t, n1, n1, n2)
	})
}

// A control event queued before Shutdown must not end the runner while it
// is still master (it once did: the VIP stayed, no priority 0 was sent).
func TestRunnerShutdownAfterQueuedControlEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		n := b.start(t, 1, 255, nil)
		time.Sleep(time.Second)
		synctest.Wait()
		n.r.Link(true)
		n.r.SetTrack(-55, "")
		if err := n.r.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if st := n.r.Status(); st.State != Init || n.vips.Held() {
			t.Fatalf("after Shutdown: state %v, VIPs held %v", st.State, n.vips.Held())
		}
	})
}

// After a split brain heals, the winner re-announces its addresses so the
// LAN's ARP caches stop pointing at the loser.
func TestRunnerSplitBrainHealReannounces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		n1 := b.start(t, 1, 100, nil)
		n2 := b.start(t, 2, 200, nil)
		time.Sleep(time.Second)
		b.partition(n1.addr, n2.addr, true)
		time.Sleep(10 * time.Second) // both masters, both past their delayed GARP burst
		synctest.Wait()
		before := n2.garp.count()
		b.partition(n1.addr, n2.addr, false)
		time.Sleep(time.Second)
		synctest.Wait()
		wantOneMaster(t, n2, n1, n2)
		if got := n2.garp.count(); got < before+5 {
			t.Fatalf("winner sent %d GARPs after the heal, want a burst of 5", got-before)
		}
	})
}

func TestRunnerGARPPlanStaysInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		n := b.start(t, 1, 255, func(rc *RunnerConfig) {
			rc.GARP = GARPConfig{Delay: 2 * time.Second, Repeat: 5, Interval: time.Second}
		})
		start := time.Now()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		n.garp.mu.Lock()
		defer n.garp.mu.Unlock()
		var got []time.Duration
		for _, at := range n.garp.times {
			got = append(got, at.Sub(start).Round(time.Millisecond))
		}
		want := []time.Duration{0, 1, 2, 2, 3, 3, 4, 4, 5, 6}
		for i := range want {
			want[i] *= time.Second
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("GARP times %v, want %v", got, want)
		}
	})
}

type failingAddrs struct {
	vipHolder
	fails int
}

func (f *failingAddrs) Add() error {
	f.mu.Lock()
	if f.fails > 0 {
		f.fails--
		f.mu.Unlock()
		return fmt.Errorf("no such device")
	}
	f.mu.Unlock()
	return f.vipHolder.Add()
}

// A failed VIP add is retried at every advert and shown in the status.
func TestRunnerRetriesFailedVIPAdd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &failingAddrs{fails: 3}
		rc := RunnerConfig{Config: Config{Name: "VI_1", VRID: 51, Priority: 255, Version: 3, Interval: 100 * time.Millisecond,
			Addrs: []netip.Addr{vip1}, Primary: self}, Group: GroupV4, GARP: GARPConfig{Repeat: 1}}
		r := NewRunner(rc, port{newBus(), self}, f, &announcer{}, quiet(), nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer func() { cancel(); <-r.Done() }()
		go r.Run(ctx, true)
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if st := r.Status(); st.State != Master || st.VIPError == "" {
			t.Fatalf("status %+v: want MASTER with a VIP error", st)
		}
		time.Sleep(350 * time.Millisecond)
		synctest.Wait()
		if st := r.Status(); st.VIPError != "" || !f.Held() {
			t.Fatalf("status %+v held %v: want the VIPs added after retries", st, f.Held())
		}
	})
}

// quickHolder is a small address set (QuickAddresses) that notes how many
// adverts its runner had sent when it was added.
type quickHolder struct {
	vipHolder
	r          *Runner
	sentAtAdd  atomic.Int64
	garps      func() int
	garpAtAdd  atomic.Int64
	stateAtAdd atomic.Int64
}

func (q *quickHolder) Quick() bool { return true }

func (q *quickHolder) Add() error {
	q.sentAtAdd.Store(int64(q.r.Stats().AdvertsSent.Load()))
	q.garpAtAdd.Store(int64(q.garps()))
	q.stateAtAdd.Store(int64(q.r.Status().State))
	return q.vipHolder.Add()
}

// TestRunnerAddsQuickAddressesBeforeItsFirstAdvert: a small set is added
// by the runner itself at takeover, before its first advert, and
// announced at once (keepalived's order, no hand-off to the worker); a
// large one (TestRunnerSlowAddressesNeverSilenceTheMaster) stays the
// worker's.
func TestRunnerAddsQuickAddressesBeforeItsFirstAdvert(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		addr := netip.MustParseAddr("10.77.0.1")
		rc := RunnerConfig{Config: Config{Name: "VI_1", VRID: 51, Priority: 200, Version: 3, Interval: 100 * time.Millisecond,
			Preempt: true, Addrs: []netip.Addr{vip1}, Primary: addr}, Interface: "eth0", Group: GroupV4,
			GARP: GARPConfig{Delay: 5 * time.Second, Repeat: 5, RefreshRepeat: 1}}
		garp := &announcer{}
		q := &quickHolder{garps: garp.count}
		q.sentAtAdd.Store(-1)
		r := NewRunner(rc, port{b, addr}, q, garp, quiet(), nil)
		q.r = r
		b.nodes[addr] = r
		ctx, cancel := context.WithCancel(context.Background())
		defer func() { cancel(); <-r.Done() }()
		go r.Run(ctx, true)
		time.Sleep(time.Second)
		synctest.Wait()
		if r.Status().State != Master || !q.Held() {
			t.Fatalf("alone: %v, held %v", r.Status().State, q.Held())
		}
		if n := q.sentAtAdd.Load(); n != 0 {
			t.Fatalf("the addresses were added after %d adverts as master, want before the first", n)
		}
		if st := State(q.stateAtAdd.Load()); st != Master {
			t.Fatalf("the status said %v while the addresses were added, want MASTER", st)
		}
		if n := q.garpAtAdd.Load(); n != 0 || garp.count() == 0 {
			t.Fatalf("GARPs: %d before the add, %d in all", n, garp.count())
		}
	})
}
