package instances

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/host"
	"github.com/haa-dev/haa/node/host/hosttest"
	"github.com/haa-dev/haa/node/vrrp"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

func resolved(t *testing.T, y string) []config.Instance {
	t.Helper()
	raw, err := config.Parse([]byte("name: n1\ninstances:\n" + y))
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Resolve(raw)
	if err != nil {
		t.Fatal(err)
	}
	return c.Instances
}

func newSet(h Host) *Set {
	return New(Deps{Host: h, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// TestPrepareChangesNothing: an instance that cannot start here refuses
// the whole change, with each problem, before anything runs.
func TestPrepareChangesNothing(t *testing.T) {
	h := hosttest.NewNetwork().NewHost("n1")
	h.AddLink("eth0", "lan")                 // no address of its own
	h.AddLink("eth1", "lan2", "10.1.0.1/24") // fine
	h.AddLink("eth2", "lan3")
	s := newSet(h)
	defer s.Close(context.Background())
	_, err := s.Prepare(resolved(t, "  - {name: VI_1, interface: eth0, vrid: 1, vips: [10.0.0.9/24]}\n"+
		"  - {name: VI_2, interface: eth1, vrid: 2, vips: [10.1.0.9/24]}\n"+
		"  - {name: VI_3, interface: eth2, vrid: 3, vips: [10.2.0.9/24]}\n"))
	if err == nil || !strings.Contains(err.Error(), "instance VI_1: interface eth0 has no IPv4 address") ||
		!strings.Contains(err.Error(), "instance VI_3") || strings.Contains(err.Error(), "VI_2") {
		t.Fatalf("Prepare: %v", err)
	}
	if n := len(s.Snapshot().List()); n != 0 {
		t.Fatalf("%d instances run after a refused change", n)
	}
}

// TestLinkRecreatedStaysFault: an interface deleted and created again
// (another index) keeps its instances in FAULT: their socket is bound to
// the old one.
func TestLinkRecreatedStaysFault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := hosttest.NewNetwork().NewHost("n1")
		h.AddLink("eth0", "lan", "10.0.0.1/24")
		s := newSet(h)
		defer s.Close(context.Background())
		ch, err := s.Prepare(resolved(t, "  - {name: VI_1, interface: eth0, vrid: 1, advertInterval: 0.1s, vips: [10.0.0.9/24]}\n"))
		if err != nil {
			t.Fatal(err)
		}
		s.Stop(context.Background(), ch)
		s.Update(ch)
		if err := s.Start(ch, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		in := s.Snapshot().Get("VI_1")
		if st := in.Status(); st.State != vrrp.Master || !h.Holds("10.0.0.9") {
			t.Fatalf("alone on its link: %v", st.State)
		}
		lk, _ := h.Link("eth0")
		s.LinkChanged(host.LinkEvent{Name: "eth0", Index: lk.Index, Up: false})
		time.Sleep(10 * time.Millisecond)
		if st := in.Status(); st.State != vrrp.Fault || h.Holds("10.0.0.9") {
			t.Fatalf("link down: %v", st.State)
		}
		s.LinkChanged(host.LinkEvent{Name: "eth0", Index: lk.Index + 100, Up: true}) // another link of that name
		time.Sleep(time.Second)
		if st := in.Status(); st.State != vrrp.Fault {
			t.Fatalf("the recreated link brought the instance back: %v", st.State)
		}
		s.LinkChanged(host.LinkEvent{Resync: true})
		s.LinkChanged(host.LinkEvent{Name: "eth0", Index: lk.Index, Up: true})
		time.Sleep(time.Second)
		if st := in.Status(); st.State != vrrp.Master {
			t.Fatalf("the same link up again: %v", st.State)
		}
	})
}

// TestStopIsBounded: an instance whose addresses take longer to remove
// than StopWait does not hold the apply up longer, readers never wait
// for it, and it removes them all in the end.
func TestStopIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := hosttest.NewNetwork().NewHost("n1")
		h.AddLink("eth0", "lan", "10.0.0.1/24")
		s := newSet(h)
		defer s.Close(context.Background())
		apply := func(y string) {
			ch, err := s.Prepare(resolved(t, y))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			s.Stop(context.Background(), ch)
			if took := time.Since(start); took > StopWait {
				t.Errorf("Stop took %v, more than StopWait", took)
			}
			s.Update(ch)
			if err := s.Start(ch, nil); err != nil {
				t.Fatal(err)
			}
		}
		apply("  - {name: VI_1, interface: eth0, vrid: 1, advertInterval: 0.1s, vips: [10.0.0.9/24]}\n")
		time.Sleep(time.Second)
		if !h.Holds("10.0.0.9") {
			t.Fatal("not master alone on its link")
		}
		h.SetVIPDelay(time.Minute)
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			apply("  - {name: VI_2, interface: eth0, vrid: 2, advertInterval: 0.1s, vips: [10.0.0.10/24]}\n")
		}()
		time.Sleep(time.Second)
		read := time.Now()
		if s.Snapshot().List(); time.Since(read) != 0 {
			t.Errorf("a reader waited %v for the instance stopping", time.Since(read))
		}
		<-stopped
		if !h.Holds("10.0.0.9") {
			t.Fatal("removed faster than the host can")
		}
		time.Sleep(time.Minute)
		if h.Holds("10.0.0.9") {
			t.Fatal("VI_1's address stayed after it stopped")
		}
	})
}

func TestStateProto(t *testing.T) {
	for s, want := range map[vrrp.State]haav1.State{vrrp.Init: haav1.State_STATE_INIT, vrrp.Backup: haav1.State_STATE_BACKUP,
		vrrp.Master: haav1.State_STATE_MASTER, vrrp.Fault: haav1.State_STATE_FAULT, vrrp.State(-1): haav1.State_STATE_UNSPECIFIED} {
		if got := StateProto(s); got != want {
			t.Errorf("%v: %v, want %v", s, got, want)
		}
	}
}

// TestStartLogsStaleAddressesItRemoves: an address an earlier run left on
// the interface is removed at start, with a log line that names it; a
// clean start says nothing.
func TestStartLogsStaleAddressesItRemoves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := hosttest.NewNetwork().NewHost("n1")
		h.AddLink("eth0", "lan", "10.0.0.1/24")
		var logs lockedLog
		s := New(Deps{Host: h, Log: slog.New(slog.NewTextHandler(&logs, nil))})
		defer s.Close(context.Background())
		cfg := resolved(t, "  - {name: VI_1, interface: eth0, vrid: 1, advertInterval: 1s, vips: [10.0.0.9/24, 10.0.0.10/24]}\n")
		if err := h.AddVIPs("eth0", cfg[0].VIPs[:1]); err != nil {
			t.Fatal(err)
		}
		applySet(t, s, cfg)
		if h.Holds("10.0.0.9") {
			t.Error("the stale address is still there after start")
		}
		l := logs.String()
		if !strings.Contains(l, "removed virtual addresses an earlier run left") || !strings.Contains(l, "count=1") || !strings.Contains(l, "addresses=10.0.0.9/24") {
			t.Errorf("no log line naming the stale address:\n%s", l)
		}
	})
}

// TestRoutesFollowMastership: an instance's virtual routes and rules are
// added with its addresses when it becomes master and removed with them.
func TestRoutesFollowMastership(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := hosttest.NewNetwork().NewHost("n1")
		h.AddLink("eth0", "lan", "10.0.0.1/24")
		s := newSet(h)
		defer s.Close(context.Background())
		apply := func(y string) { applySet(t, s, resolved(t, y)) }
		apply("  - {name: VI_1, interface: eth0, vrid: 1, advertInterval: 0.1s, vips: [10.0.0.9/24], virtualRoutes: [\"10.1.0.0/16 via 10.0.0.254\", \"blackhole 10.9.0.0/16\"], virtualRules: [\"from 10.0.0.9 table 100\"]}\n")
		time.Sleep(time.Second)
		if routes, rules := h.Routing(); routes != 2 || rules != 1 || !h.Holds("10.0.0.9") {
			t.Fatalf("master: %d routes, %d rules, want 2 and 1 with the VIP", routes, rules)
		}
		apply("")
		time.Sleep(time.Second)
		if routes, rules := h.Routing(); routes != 0 || rules != 0 {
			t.Fatalf("stopped: %d routes, %d rules left", routes, rules)
		}
	})
}

// applySet runs want on s as an apply does: prepare, stop, update, start.
func applySet(t *testing.T, s *Set, want []config.Instance) {
	t.Helper()
	ch, err := s.Prepare(want)
	if err != nil {
		t.Fatal(err)
	}
	s.Stop(context.Background(), ch)
	s.Update(ch)
	if err := s.Start(ch, nil); err != nil {
		t.Fatal(err)
	}
}

// lockedLog is a log a test reads while the instances write it.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start applies y to s as the agent does and returns the started set.
func startYAML(t *testing.T, s *Set, y string) {
	t.Helper()
	ch, err := s.Prepare(resolved(t, y))
	if err != nil {
		t.Fatal(err)
	}
	s.Stop(context.Background(), ch)
	s.Update(ch)
	if err := s.Start(ch, nil); err != nil {
		t.Fatal(err)
	}
}

// A virtual MAC's life: created at start on a backup too, the VIPs (and
// an IPv6 instance's link-local source) on it while master, removed at
// stop. acceptMode false blocks the VIPs while they are held, never the
// source; the address owner is never blocked.
func TestVMACAndAcceptLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := hosttest.NewNetwork()
		h1, h2 := net.NewHost("n1"), net.NewHost("n2")
		h1.AddLink("eth0", "lan", "10.0.0.1/24", "fe80::1/64")
		h2.AddLink("eth0", "lan", "10.0.0.2/24", "fe80::2/64")
		s1, s2 := newSet(h1), newSet(h2)
		defer s1.Close(context.Background())
		defer s2.Close(context.Background())
		y := func(prio int) string {
			return fmt.Sprintf("  - {name: V6, interface: eth0, vrid: 51, priority: %d, advertInterval: 0.1s, vips: [fe80::100/64], vmac: {}, acceptMode: false}\n"+
				"  - {name: OWN, interface: eth0, vrid: 52, priority: %d, advertInterval: 0.1s, vips: [10.0.0.9/24], acceptMode: false}\n", prio, 255)
		}
		startYAML(t, s1, y(200))
		startYAML(t, s2, y(100))
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if !h1.HasLink("vrrp.51") || !h2.HasLink("vrrp.51") {
			t.Fatal("the virtual MAC interface exists only on the master: want it on every node")
		}
		vs := h1.VIPs("vrrp.51")
		if len(vs) != 2 || vs[0].Prefix.String() != "fe80::1/64" || vs[1].Prefix.String() != "fe80::100/64" {
			t.Fatalf("the master's vrrp.51 holds %v, want its link-local source, then the VIP", vs)
		}
		if len(h2.VIPs("vrrp.51")) != 0 {
			t.Fatalf("the backup's vrrp.51 holds %v", h2.VIPs("vrrp.51"))
		}
		if b := h1.Blocked(); len(b) != 1 || b[0].String() != "fe80::100" {
			t.Fatalf("the master blocks %v, want the VIP alone (not the source, not the owner's 10.0.0.9)", b)
		}
		if b := h2.Blocked(); len(b) != 0 {
			t.Fatalf("the backup blocks %v", b)
		}
		if err := s1.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if h1.HasLink("vrrp.51") || len(h1.Blocked()) != 0 {
			t.Fatalf("after stop: vrrp.51 there %v, blocked %v", h1.HasLink("vrrp.51"), h1.Blocked())
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if b := h2.Blocked(); len(b) != 1 || len(h2.VIPs("vrrp.51")) != 2 {
			t.Fatalf("the new master blocks %v and holds %v", b, h2.VIPs("vrrp.51"))
		}
	})
}
