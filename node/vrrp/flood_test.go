package vrrp

import (
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

func packet(t *testing.T, a Advert, src netip.Addr) []byte {
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
