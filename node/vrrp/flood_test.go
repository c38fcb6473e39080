package vrrp

import (
	"context"
	"io"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// ifacePort delivers a runner's adverts to a receiving interface as IP
// packets, through the same checks and queueing as the kernel's.
type ifacePort struct{ to *Iface }

func (p ifacePort) Send(src, dst netip.Addr, msg []byte) error {
	p.to.HandleAt(AppendIPv4(nil, IPv4Header{TTL: 255, Protocol: Protocol, Src: src, Dst: dst}, msg), time.Now())
	return nil
}

func packet(t testing.TB, a Advert, src netip.Addr) []byte {
	t.Helper()
	msg, err := a.Marshal(src, GroupV4, ChecksumRFC)
	if err != nil {
		t.Fatal(err)
	}
	return AppendIPv4(nil, IPv4Header{TTL: 255, Protocol: Protocol, Src: src, Dst: GroupV4}, msg)
}

// TestFloodNeverCostsTheMastersAdverts: a third node floods the backup's
// interface with junk while the master sends normally; the backup never
// becomes master. Junk the packet alone condemns (the wrong version) is
// dropped before it is queued and counted; well-formed adverts of a lower
// priority from one source replace each other and never take the master's
// place. Drops are reported as one notice per reason with a count.
func TestFloodNeverCostsTheMastersAdverts(t *testing.T) {
	for _, tt := range []struct {
		name string
		junk Advert
		drop DropReason
	}{
		{"wrong version", Advert{Version: 2, VRID: 51, Priority: 250, Interval: time.Second, Addrs: []netip.Addr{vip1}}, DropVersion},
		{"lower priority", Advert{Version: 3, VRID: 51, Priority: 50, Interval: 100 * time.Millisecond, Addrs: []netip.Addr{vip1}}, DropNone},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBus()
				var mu sync.Mutex
				var drops []Notice
				b.prepare = func(n *node) {
					n.r.notify = func(n Notice) {
						if n.Kind == NoticeDrop {
							mu.Lock()
							drops = append(drops, n)
							mu.Unlock()
						}
					}
				}
				backup := b.start(t, 2, 100, nil)
				b.remove(backup) // it hears the master only through its interface
				ifc := NewIface("eth0", quiet())
				if err := ifc.Add(backup.r); err != nil {
					t.Fatal(err)
				}
				b.prepare = func(n *node) { n.r.send = ifacePort{ifc} }
				master := b.start(t, 1, 200, nil)
				time.Sleep(time.Second)
				if st := backup.r.Status().State; st != Backup {
					t.Fatalf("backup %v before the flood", st)
				}
				before := backup.r.Stats().Transitions.Load()

				attacker := netip.MustParseAddr("10.77.0.66")
				junk := packet(t, tt.junk, attacker)
				for range 3000 { // 3 s: 300 packets every millisecond
					for range 300 {
						ifc.HandleAt(junk, time.Now())
					}
					time.Sleep(time.Millisecond)
				}
				synctest.Wait()
				if n := backup.r.Stats().Transitions.Load() - before; n != 0 || backup.r.Status().State != Backup {
					t.Fatalf("the backup changed state %d times during the flood (now %v)", n, backup.r.Status().State)
				}
				if master.r.Status().State != Master {
					t.Fatal("the master lost its place")
				}
				if tt.drop != DropNone {
					if n := backup.r.Stats().Drops(tt.drop); n != 900000 {
						t.Errorf("%d %s drops counted, want 900000", n, tt.drop)
					}
					mu.Lock()
					defer mu.Unlock()
					if len(drops) != 1 || drops[0].Count != 1 {
						t.Errorf("%d drop notices: want one, at the first drop (the next is due after 10 s)", len(drops))
					}
				}
			})
		})
	}
}

// TestJunkDropsAllocateNothing: a dropped advert takes no lock and builds
// no notice or message of its own (the flood's cost per packet is the
// parse and a counter).
func TestJunkDropsAllocateNothing(t *testing.T) {
	r := NewRunner(RunnerConfig{Config: Config{Name: "VI_1", VRID: 51, Priority: 100, Version: 3,
		Interval: time.Second, Addrs: []netip.Addr{vip1}}, Group: GroupV4}, nil, nil, nil, quiet(), nil)
	ifc := NewIface("eth0", quiet())
	if err := ifc.Add(r); err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddr("10.77.0.66")
	wrongVersion := packet(t, Advert{Version: 2, VRID: 51, Priority: 250, Interval: time.Second, Addrs: []netip.Addr{vip1}}, src)
	ttl := slices.Clone(wrongVersion)
	ttl[8] = 64
	now := time.Now()
	ifc.HandleAt(wrongVersion, now) // the first of each reason is logged
	ifc.HandleAt(ttl, now)
	for name, pkt := range map[string][]byte{"wrong version": wrongVersion, "TTL 64": ttl} {
		if n := testing.AllocsPerRun(1000, func() { ifc.HandleAt(pkt, now) }); n > 1 {
			t.Errorf("%s: %.0f allocations per dropped packet", name, n)
		}
	}
}

// fakeLane is a Lane whose "kernel filter" is a set of sources.
type fakeLane struct {
	mu   sync.Mutex
	srcs []netip.Addr
	sets int
	pkts chan []byte
}

func newFakeLane() *fakeLane { return &fakeLane{pkts: make(chan []byte, 64)} }

func (l *fakeLane) SetSources(srcs []netip.Addr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.srcs, l.sets = slices.Clone(srcs), l.sets+1
	return nil
}

func (l *fakeLane) sources() []netip.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.srcs)
}

// offer queues pkt on the lane if its source passes the filter.
func (l *fakeLane) offer(pkt []byte) {
	h, _, err := ParseIPv4(pkt)
	if err == nil && slices.Contains(l.sources(), h.Src) {
		l.pkts <- slices.Clone(pkt)
	}
}

func (l *fakeLane) ReadPacket(b []byte) (int, time.Time, error) {
	p, ok := <-l.pkts
	if !ok {
		return 0, time.Time{}, io.EOF
	}
	return copy(b, p), time.Now(), nil
}

// wire delivers a runner's adverts to an interface as the kernel would
// with a lane: every packet to the main socket, the lane's sources to the
// lane too.
type wire struct {
	ifc  *Iface
	lane *fakeLane
}

func (w wire) Send(src, dst netip.Addr, msg []byte) error {
	pkt := AppendIPv4(nil, IPv4Header{TTL: 255, Protocol: Protocol, Src: src, Dst: dst}, msg)
	w.lane.offer(pkt)
	w.ifc.HandleAt(pkt, time.Now())
	return nil
}

// TestLaneCarriesTheFollowedMaster: the interface gives its lane the
// source of the master its instance follows, takes that master's adverts
// from the lane only (the main socket's copies are skipped, not counted
// twice), and moves the lane to a new master when it changes.
func TestLaneCarriesTheFollowedMaster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		backup := b.start(t, 2, 100, nil)
		b.remove(backup)
		ifc := NewIface("eth0", quiet())
		if err := ifc.Add(backup.r); err != nil {
			t.Fatal(err)
		}
		lane := newFakeLane()
		go ifc.ServeLane(lane)
		defer close(lane.pkts)
		b.prepare = func(n *node) { n.r.send = wire{ifc, lane} }
		m1 := b.start(t, 1, 200, nil)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := lane.sources(); len(got) != 1 || got[0] != m1.addr {
			t.Fatalf("lane sources %v, want the master %v", got, m1.addr)
		}
		if st := backup.r.Status().State; st != Backup {
			t.Fatalf("backup %v", st)
		}
		sent, got := m1.r.Stats().AdvertsSent.Load(), backup.r.Stats().AdvertsReceived.Load()
		if got > sent {
			t.Fatalf("the backup handled %d adverts of %d sent: copies counted twice", got, sent)
		}
		// The master leaves; a new one comes: the lane follows it.
		if err := m1.r.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if st := backup.r.Status().State; st != Master {
			t.Fatalf("after the master left: %v", st)
		}
		m3 := b.start(t, 3, 250, nil)
		time.Sleep(time.Second)
		synctest.Wait()
		if got := lane.sources(); len(got) != 1 || got[0] != m3.addr {
			t.Fatalf("lane sources %v, want the new master %v", got, m3.addr)
		}
		if st := backup.r.Status().State; st != Backup {
			t.Fatalf("with the new master: %v", st)
		}
		// Its adverts come through the lane only: emptied behind the
		// interface's back, the main socket's copies are still skipped
		// and the backup loses the master.
		lane.SetSources(nil)
		time.Sleep(time.Second)
		synctest.Wait()
		if st := backup.r.Status().State; st != Master {
			t.Fatalf("the main socket's copies were not skipped: %v", st)
		}
	})
}

// receivingBackup is a running backup of VRID 51 attached to an
// interface, and a master's advert for it, as the kernel hands it over.
func receivingBackup(tb testing.TB) (*Iface, []byte, func()) {
	tb.Helper()
	r := NewRunner(RunnerConfig{Config: Config{Name: "VI_1", VRID: 51, Priority: 100, Version: 3,
		Interval: time.Second, Addrs: []netip.Addr{vip1}}, Group: GroupV4}, nil, nil, nil, quiet(), nil)
	ifc := NewIface("eth0", quiet())
	if err := ifc.Add(r); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go r.Run(ctx, true)
	for r.Status().State != Backup {
		time.Sleep(time.Millisecond)
	}
	master := netip.MustParseAddr("10.77.0.1")
	pkt := packet(tb, Advert{Version: 3, VRID: 51, Priority: 200, Interval: time.Second, Addrs: []netip.Addr{vip1}}, master)
	var a Advert
	ifc.handle(pkt, time.Now(), false, &a) // the first makes it follow the master
	if got := r.Status().MasterAddr; got != master {
		tb.Fatalf("the backup follows %v, want %v", got, master)
	}
	return ifc, pkt, func() { cancel(); <-r.Done() }
}

// TestReceivePathAllocatesNothing: a valid advert of the master a backup
// follows, from the packet to the instance's step (decode, the receive
// checks, demultiplexing by VRID, the step, the timer), allocates
// nothing.
func TestReceivePathAllocatesNothing(t *testing.T) {
	ifc, pkt, stop := receivingBackup(t)
	defer stop()
	var a Advert
	received := ifc.runners.Load()[51].Stats().AdvertsReceived.Load()
	if n := testing.AllocsPerRun(1000, func() { ifc.handle(pkt, time.Now(), false, &a) }); n != 0 {
		t.Errorf("%.1f allocations per received advert, want 0", n)
	}
	if got := ifc.runners.Load()[51].Stats().AdvertsReceived.Load() - received; got != 1001 {
		t.Errorf("%d adverts received, want 1001 (each one stepped)", got)
	}
}

// BenchmarkReceiveAdvert is the receive path of a backup for one advert
// of its master, from the packet (no socket).
func BenchmarkReceiveAdvert(b *testing.B) {
	ifc, pkt, stop := receivingBackup(b)
	defer stop()
	var a Advert
	b.ReportAllocs()
	for b.Loop() {
		ifc.handle(pkt, time.Now(), false, &a)
	}
}

// TestLaneKeepsWhatTheMainSocketQueuedBefore: an advert of the master the
// main socket had queued before the lane took that master (the lane never
// saw it) is handled, not skipped as the lane's: a master that hands over
// (priority 0) right after its first advert is not lost in the switch.
func TestLaneKeepsWhatTheMainSocketQueuedBefore(t *testing.T) {
	ifc, pkt, stop := receivingBackup(t) // following 10.77.0.1 now
	defer stop()
	lane := newFakeLane()
	defer close(lane.pkts)
	queued := time.Now()
	time.Sleep(time.Millisecond)
	go ifc.ServeLane(lane)
	for deadline := time.Now().Add(5 * time.Second); len(lane.sources()) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the lane never took the followed master")
		}
	}
	r := ifc.runners.Load()[51]
	before := r.Stats().AdvertsReceived.Load()
	ifc.HandleAt(pkt, queued) // arrived before the lane took the master
	if got := r.Stats().AdvertsReceived.Load() - before; got != 1 {
		t.Fatalf("%d adverts handled from the main socket's backlog, want 1", got)
	}
	ifc.HandleAt(pkt, time.Now()) // the lane's from now on: skipped here
	if got := r.Stats().AdvertsReceived.Load() - before; got != 1 {
		t.Fatalf("a main-socket copy of a lane source arriving after the switch was handled (%d)", got)
	}
}
