package nft

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/haa-dev/haa/deploy/lab"
	"github.com/haa-dev/haa/node/lvs"
	"github.com/haa-dev/haa/node/lvs/lvstest"
)

// newNFTInNS returns a backend programming a fresh namespace.
func newNFTInNS(t testing.TB) (*lab.NS, *Backend) {
	t.Helper()
	lab.Require(t)
	ns, err := lab.NewNS(lab.UniqueName("lvsnft"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Close() })
	return ns, newNFTFor(t, ns)
}

func newNFTFor(t testing.TB, ns *lab.NS) *Backend {
	t.Helper()
	h, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	b, err := New(WithNetNS(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// nftConn returns a library connection into ns, for looking behind the
// backend's back.
func nftConn(t testing.TB, ns *lab.NS) *nftables.Conn {
	t.Helper()
	h, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)), nftables.AsLasting())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseLasting() })
	return c
}

func mustApply(t testing.TB, b lvs.Backend, p lvs.Plan) {
	t.Helper()
	if err := b.Apply(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t testing.TB, b lvs.Backend) lvs.State {
	t.Helper()
	st, err := b.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// program makes b's table desired, and checks that it reads back so.
func program(t testing.TB, b lvs.Backend, desired lvs.State) {
	t.Helper()
	mustApply(t, b, lvs.Diff(mustRead(t, b), desired))
	if got := mustRead(t, b); !got.Equal(desired) {
		t.Fatalf("read back\n %s\nwant\n %s", got.String(), desired.String())
	}
}

// nftDP is a virtual server's datapath as programmed: its rule and slots.
type nftDP struct {
	chain  string
	handle uint64
	drop   bool
	sh     bool
	total  uint32            // the rule's modulus
	slots  map[string]uint32 // slots per real server below the modulus
	beyond int               // elements at or past the modulus (weight 0)
}

// datapath reads every virtual server's rule and slots straight from the
// kernel.
func datapath(t testing.TB, ns *lab.NS, b *Backend) map[lvs.Key]nftDP {
	t.Helper()
	c := nftConn(t, ns)
	b.mu.Lock()
	snap, err := b.readLocked()
	b.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	out := map[lvs.Key]nftDP{}
	elems := map[string][]nftables.SetElement{}
	for k, num := range snap.nums {
		dp := nftDP{chain: nftChainVS + strconv.Itoa(int(num)), slots: map[string]uint32{}}
		rules, err := c.GetRules(nftTable, &nftables.Chain{Name: dp.chain, Table: nftTable})
		if err != nil {
			t.Fatal(err)
		}
		if len(rules) != 1 {
			t.Fatalf("%s: %d rules in %s", k, len(rules), dp.chain)
		}
		dp.handle = rules[0].Handle
		var set string
		var immNum uint32
		for _, e := range rules[0].Exprs {
			switch e := e.(type) {
			case *expr.Verdict:
				dp.drop = e.Kind == expr.VerdictDrop
			case *expr.Numgen:
				dp.total = e.Modulus
			case *expr.Hash:
				dp.total, dp.sh = e.Modulus, true
				if e.Seed != nftSeed(k) {
					t.Fatalf("%s: seed %#x", k, e.Seed)
				}
			case *expr.Immediate:
				immNum = binary.NativeEndian.Uint32(e.Data)
			case *expr.Lookup:
				set = e.SetName
			}
		}
		if !dp.drop {
			if immNum != num || set != nftGroupName(num/nftGroupSize) {
				t.Fatalf("%s: rule looks up %d in %s", k, immNum, set)
			}
		}
		g := nftGroupName(num / nftGroupSize)
		if _, ok := elems[g]; !ok {
			es, err := c.GetSetElements(nftSetRef(g))
			if err != nil {
				t.Fatal(err)
			}
			elems[g] = es
		}
		for _, e := range elems[g] {
			n, addr, _, err := nftParseTarget(e)
			if err != nil {
				t.Fatal(err)
			}
			if n != num {
				continue
			}
			if slot := binary.NativeEndian.Uint32(e.Key[4:]); slot < dp.total {
				dp.slots[addr.String()]++
			} else {
				dp.beyond++
			}
		}
		out[k] = dp
	}
	return out
}

func TestNFTSupports(t *testing.T) {
	var b Backend
	ok := lvs.Service{Key: lvstest.TCPKey("10.0.0.1:80"), Scheduler: "wrr", Forwarding: lvs.NAT}
	tests := []struct {
		name string
		edit func(s *lvs.Service)
		err  string // "" : supported
	}{
		{"wrr nat", func(*lvs.Service) {}, ""},
		{"rr", func(s *lvs.Service) { s.Scheduler = "rr" }, ""},
		{"sh", func(s *lvs.Service) { s.Scheduler = "sh" }, ""},
		{"udp", func(s *lvs.Service) { s.Key.Proto = lvs.UDP }, ""},
		{"sctp", func(s *lvs.Service) { s.Key.Proto = lvs.SCTP }, ""},
		{"fwmark", func(s *lvs.Service) { s.Key = lvs.Key{FWMark: 3} }, ""},
		{"dr", func(s *lvs.Service) { s.Forwarding = lvs.DirectRoute },
			"forwarding dr needs the ipvs backend: set loadBalancer.backend: ipvs where the kernel has IPVS, or use forwarding nat"},
		{"tunnel", func(s *lvs.Service) { s.Forwarding = lvs.Tunnel },
			"forwarding tunnel needs the ipvs backend: set loadBalancer.backend: ipvs where the kernel has IPVS, or use forwarding nat"},
		{"lc", func(s *lvs.Service) { s.Scheduler = "lc" },
			"scheduler lc is not available with the nftables backend: use rr, wrr or sh, or the ipvs backend"},
		{"mh", func(s *lvs.Service) { s.Scheduler = "mh" },
			"scheduler mh is not available with the nftables backend: use rr, wrr or sh, or the ipvs backend"},
		{"persistence", func(s *lvs.Service) { s.Persistence = time.Minute },
			"persistence needs the ipvs backend; with nftables, scheduler sh keeps each client on one real server"},
		{"ipv6", func(s *lvs.Service) {
			s.Key = lvs.Key{Addr: netip.MustParseAddrPort("[2001:db8::1]:80"), Proto: lvs.TCP}
		},
			"IPv6 virtual servers need the ipvs backend: the nftables backend balances IPv4 only"},
		{"ipv6 fwmark", func(s *lvs.Service) { s.Key = lvs.Key{FWMark: 3, V6: true} },
			"IPv6 virtual servers need the ipvs backend: the nftables backend balances IPv4 only"},
		{"port 0", func(s *lvs.Service) { s.Key.Addr = netip.MustParseAddrPort("10.0.0.1:0") },
			"a virtual server on port 0 (every port) needs the ipvs backend"},
		{"protocol", func(s *lvs.Service) { s.Key.Proto = 33 },
			"protocol proto-33 is not supported by the nftables backend: use tcp, udp or sctp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok
			tt.edit(&s)
			err := b.Supports(s)
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tt.err {
				t.Fatalf("got %v\nwant %s", err, tt.err)
			}
		})
	}
	if b.Name() != "nftables" {
		t.Fatal(b.Name())
	}
}

func TestNFTSlots(t *testing.T) {
	d := func(ws ...int) map[netip.AddrPort]lvs.DestAttrs {
		m := map[netip.AddrPort]lvs.DestAttrs{}
		for i, w := range ws {
			m[netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, 0, byte(i + 1)}), 80)] = lvs.DestAttrs{Weight: w}
		}
		return m
	}
	tests := []struct {
		sched string
		dests map[netip.AddrPort]lvs.DestAttrs
		want  []uint32
	}{
		{"rr", d(1, 1, 1), []uint32{1, 1, 1}},
		{"rr", d(5, 0, 2), []uint32{1, 1}},
		{"wrr", d(3, 1, 1), []uint32{3, 1, 1}},
		{"wrr", d(300, 100, 100), []uint32{3, 1, 1}},
		{"wrr", d(2, 0, 4), []uint32{1, 2}},
		{"sh", d(6, 4), []uint32{3, 2}},
		{"wrr", d(0, 0), nil},
		{"wrr", d(1000, 999, 1), []uint32{500, 500, 1}}, // scaled to about nftMaxSlots
		{"wrr", d(65535, 1), []uint32{1000, 1}},
	}
	for _, tt := range tests {
		_, widths, total := nftSlots(tt.sched, tt.dests)
		if !slices.Equal(widths, tt.want) {
			t.Errorf("%s %v: widths %v, want %v", tt.sched, tt.dests, widths, tt.want)
		}
		var sum uint32
		for _, w := range widths {
			sum += w
		}
		if sum != total {
			t.Errorf("total %d != %d", total, sum)
		}
	}
}

// TestNFTProgram: program from empty, read back, datapath as designed;
// a weight change touches one chain's rule; scheduler change; delete; the
// last delete drops the table; a new backend starts from empty.
func TestNFTProgram(t *testing.T) {
	ns, b := newNFTInNS(t)
	a, c, d, e := lvstest.TCPKey("10.0.0.1:80"), lvstest.TCPKey("10.0.0.2:80"), lvstest.TCPKey("10.0.0.3:80"), lvs.Key{Addr: netip.MustParseAddrPort("10.0.0.4:53"), Proto: lvs.UDP}
	fw := lvs.Key{FWMark: 5}
	desired := lvstest.StateOf(
		lvstest.VS(a, "wrr", "10.1.0.1:80=3", "10.1.0.2:80=1", "10.1.0.3:8080=1", "10.1.0.4:80=0"),
		lvstest.VS(c, "rr", "10.1.0.1:80=3", "10.1.0.2:80=1"),
		lvstest.VS(d, "sh", "10.1.0.1:80=0"), // no slot: drop
		lvstest.VS(e, "sh", "10.1.0.1:53=2", "10.1.0.2:53=4"),
		lvstest.VS(fw, "wrr", "10.1.0.1:80=2", "10.1.0.5:81=2"),
		lvstest.VS(lvstest.TCPKey("10.0.0.9:80"), "wrr"), // no real server at all
	)
	desired[c].PersistPrefix = 32 // meaningless without persistence, but kept
	program(t, b, desired)
	if p := lvs.Diff(mustRead(t, b), desired); len(p) != 0 {
		t.Fatalf("not idempotent: %q", p.Strings())
	}

	dp := datapath(t, ns, b)
	check := func(k lvs.Key, drop, sh bool, total uint32, slots map[string]uint32, beyond int) {
		t.Helper()
		got := dp[k]
		if got.drop != drop || got.sh != sh || got.total != total || got.beyond != beyond || fmt.Sprint(got.slots) != fmt.Sprint(slots) {
			t.Fatalf("%s: datapath %+v; want drop %v sh %v total %d slots %v beyond %d", k, got, drop, sh, total, slots, beyond)
		}
	}
	check(a, false, false, 5, map[string]uint32{"10.1.0.1:80": 3, "10.1.0.2:80": 1, "10.1.0.3:8080": 1}, 1)
	check(c, false, false, 2, map[string]uint32{"10.1.0.1:80": 1, "10.1.0.2:80": 1}, 0)
	check(d, true, false, 0, map[string]uint32{}, 1)
	check(e, false, true, 3, map[string]uint32{"10.1.0.1:53": 1, "10.1.0.2:53": 2}, 0)
	check(fw, false, false, 2, map[string]uint32{"10.1.0.1:80": 1, "10.1.0.5:81": 1}, 0)

	// One weight change: Read reflects it, the other chains keep their
	// rule (same handle).
	next := desired.Clone()
	next[a].Dests[netip.MustParseAddrPort("10.1.0.2:80")] = lvs.DestAttrs{Weight: 2}
	p := lvs.Diff(desired, next)
	if len(p) != 1 {
		t.Fatalf("plan %q", p.Strings())
	}
	mustApply(t, b, p)
	if got := mustRead(t, b); !got.Equal(next) {
		t.Fatalf("read %s\nwant %s", got.String(), next.String())
	}
	dp2 := datapath(t, ns, b)
	for k, x := range dp {
		if k == a {
			if dp2[k].handle == x.handle || dp2[k].total != 6 {
				t.Fatalf("changed rule %+v (was %+v)", dp2[k], x)
			}
			continue
		}
		if dp2[k].handle != x.handle || dp2[k].chain != x.chain {
			t.Fatalf("%s: rule %d in %s became %d in %s", k, x.handle, x.chain, dp2[k].handle, dp2[k].chain)
		}
	}
	// A change that keeps the slots (rr weights) keeps even its rule.
	next2 := next.Clone()
	next2[c].Dests[netip.MustParseAddrPort("10.1.0.1:80")] = lvs.DestAttrs{Weight: 7}
	program(t, b, next2)
	if h := datapath(t, ns, b)[c].handle; h != dp2[c].handle {
		t.Fatalf("rr weight change replaced the rule: %d -> %d", dp2[c].handle, h)
	}

	// A scheduler change is one update: rr -> sh swaps numgen for jhash.
	next3 := next2.Clone()
	next3[c].Scheduler = "sh"
	if p := lvs.Diff(next2, next3); len(p) != 1 || p[0].Kind != lvs.UpdateService {
		t.Fatalf("plan %q", p.Strings())
	}
	program(t, b, next3)
	if x := datapath(t, ns, b)[c]; !x.sh || x.total != 8 { // weights 7:1
		t.Fatalf("after scheduler change: %+v", x)
	}

	// Weight 0 everywhere, then back.
	next4 := next3.Clone()
	for addr := range next4[e].Dests {
		next4[e].Dests[addr] = lvs.DestAttrs{}
	}
	program(t, b, next4)
	if x := datapath(t, ns, b)[e]; !x.drop || x.beyond != 2 {
		t.Fatalf("all weight 0: %+v", x)
	}
	program(t, b, next3)

	// Delete some services; chain numbers are reused.
	next5 := next3.Clone()
	delete(next5, a)
	delete(next5, fw)
	program(t, b, next5)
	next5[lvstest.TCPKey("10.0.0.7:80")] = lvstest.VS(lvstest.TCPKey("10.0.0.7:80"), "rr", "10.1.0.7:80=1")
	program(t, b, next5)
	b.mu.Lock()
	maxNum := b.next
	b.mu.Unlock()
	if maxNum > uint32(len(desired)) {
		t.Fatalf("chain numbers not reused: next %d", maxNum)
	}

	// A new backend (a restarted agent) starts from an empty table.
	b2 := newNFTFor(t, ns)
	if got := mustRead(t, b2); len(got) != 0 {
		t.Fatalf("leftover table: %s", got.String())
	}
	if got := mustRead(t, b); len(got) != 0 {
		t.Fatalf("old backend reads %s", got.String())
	}

	// Deleting the last service deletes the table.
	program(t, b2, next5)
	program(t, b2, lvs.State{})
	tables, err := nftConn(t, ns).ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name == nftTableName {
			t.Fatal("table left after the last service went")
		}
	}
	// And programming starts over.
	program(t, b2, desired)
}

// TestNFTApplyRefused: a plan the backend cannot carry out is refused
// before anything is programmed.
func TestNFTApplyRefused(t *testing.T) {
	_, b := newNFTInNS(t)
	good := lvstest.StateOf(lvstest.VS(lvstest.TCPKey("10.0.0.1:80"), "wrr", "10.1.0.1:80=1"))
	program(t, b, good)
	for _, tt := range []struct {
		name string
		vs   *lvs.VirtualServer
		err  string
	}{
		{"scheduler", lvstest.VS(lvstest.TCPKey("10.0.0.2:80"), "lc", "10.1.0.1:80=1"), "scheduler lc is not available"},
		{"fwmark without port", lvstest.VS(lvs.Key{FWMark: 9}, "rr", "10.1.0.1:0=1"), "real server 10.1.0.1:0: needs a port"},
		{"ipv6 real server", lvstest.VS(lvstest.TCPKey("10.0.0.2:80"), "rr", "[2001:db8::1]:80=1"), "not IPv4"},
		{"weight", lvstest.VS(lvstest.TCPKey("10.0.0.2:80"), "rr", "10.1.0.1:80=70000"), "weight 70000 out of range"},
		{"thresholds", func() *lvs.VirtualServer {
			vs := lvstest.VS(lvstest.TCPKey("10.0.0.2:80"), "rr", "10.1.0.1:80=1")
			vs.Dests[netip.MustParseAddrPort("10.1.0.1:80")] = lvs.DestAttrs{Weight: 1, Thresholds: lvs.Thresholds{Upper: 10, Set: true}}
			return vs
		}(), "connection thresholds need the ipvs backend"},
		{"dr sorry server", func() *lvs.VirtualServer {
			vs := lvstest.VS(lvstest.TCPKey("10.0.0.2:80"), "rr", "10.1.0.1:80=1")
			vs.Dests[netip.MustParseAddrPort("10.1.0.9:80")] = lvs.DestAttrs{Weight: 1, Forwarding: lvs.DirectRoute}
			return vs
		}(), "real server 10.1.0.9:80: forwarding dr needs the ipvs backend"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			desired := good.Clone()
			desired[tt.vs.Key] = tt.vs
			desired[lvstest.TCPKey("10.0.0.3:80")] = lvstest.VS(lvstest.TCPKey("10.0.0.3:80"), "rr", "10.1.0.1:80=1")
			err := b.Apply(context.Background(), lvs.Diff(good, desired))
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), tt.vs.Key.String()) {
				t.Fatalf("err %v, want %q", err, tt.err)
			}
			if got := mustRead(t, b); !got.Equal(good) {
				t.Fatalf("programmed anyway: %s", got.String())
			}
		})
	}
}

// TestNFTRecover: someone deletes the table behind the backend's back; the
// next Apply fails, the backend re-reads, and programming from what Read
// says works.
func TestNFTRecover(t *testing.T) {
	ns, b := newNFTInNS(t)
	desired := lvstest.StateOf(
		lvstest.VS(lvstest.TCPKey("10.0.0.1:80"), "wrr", "10.1.0.1:80=1", "10.1.0.2:80=1"),
		lvstest.VS(lvstest.TCPKey("10.0.0.2:80"), "rr", "10.1.0.1:80=1"),
	)
	program(t, b, desired)
	c := nftConn(t, ns)
	c.DelTable(nftTable)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	next := desired.Clone()
	next[lvstest.TCPKey("10.0.0.1:80")].Dests[netip.MustParseAddrPort("10.1.0.1:80")] = lvs.DestAttrs{Weight: 5}
	err := b.Apply(context.Background(), lvs.Diff(desired, next))
	if err == nil || !errors.Is(err, unix.ENOENT) {
		t.Fatalf("apply on a deleted table: %v", err)
	}
	t.Logf("error: %v", err)
	program(t, b, next) // diffs from Read, which is empty
}

// TestNFTBatches programs more services than one transaction takes, with
// real servers added, changed and removed across them.
func TestNFTBatches(t *testing.T) {
	_, b := newNFTInNS(t)
	n := nftBatchServices*2 + 100
	desired := lvstest.BigState(n, 3)
	program(t, b, desired)
	next := desired.Clone()
	i := 0
	for k, vs := range next {
		switch i % 4 {
		case 0:
			delete(next, k)
		case 1:
			for a := range vs.Dests {
				vs.Dests[a] = lvs.DestAttrs{Weight: 9}
			}
		case 2:
			vs.Dests[netip.MustParseAddrPort("10.201.0.1:80")] = lvs.DestAttrs{Weight: 1}
		}
		i++
	}
	program(t, b, next)
	program(t, b, lvs.State{})
}

// TestNFTScale measures what the issue asks: 10,000 services x 5 real
// servers programmed from empty, then single weight changes.
func TestNFTScale(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test skipped in -short")
	}
	_, b := newNFTInNS(t)
	ctx := context.Background()
	desired := lvstest.BigState(10000, 5)
	start := time.Now()
	p := lvs.Diff(nil, desired)
	diffTime := time.Since(start)
	start = time.Now()
	if err := b.Apply(ctx, p); err != nil {
		t.Fatal(err)
	}
	full := time.Since(start)
	t.Logf("10,000 services x 5 real servers from empty: diff %v, apply %v", diffTime.Round(time.Millisecond), full.Round(time.Millisecond))
	if full > 15*time.Second {
		t.Errorf("full program took %v", full)
	}

	keys := desired.Keys()
	st := desired
	var times []time.Duration
	for i := range 20 {
		k := keys[i*397%len(keys)]
		addr := lvs.SortedAddrs(st[k].Dests)[i%5]
		// Diff of the one service, as the agent does for a check result.
		old := lvs.State{k: st[k]}
		vs := st[k].Clone()
		w := (vs.Dests[addr].Weight + 1 + i) % 4 // 0..3: often to or from 0
		if w == st[k].Dests[addr].Weight {
			w++
		}
		vs.Dests[addr] = lvs.DestAttrs{Weight: w}
		start := time.Now()
		p := lvs.Diff(old, lvs.State{k: vs})
		if err := b.Apply(ctx, p); err != nil {
			t.Fatal(err)
		}
		times = append(times, time.Since(start))
		st[k] = vs
	}
	slices.Sort(times)
	t.Logf("one weight change at 10,000 services: median %v, max %v", times[len(times)/2].Round(10*time.Microsecond), times[len(times)-1].Round(10*time.Microsecond))
	if times[len(times)/2] > 250*time.Millisecond {
		t.Errorf("weight change median %v", times[len(times)/2])
	}
	start = time.Now()
	got := mustRead(t, b)
	t.Logf("read 10,000 services: %v", time.Since(start).Round(time.Millisecond))
	if !got.Equal(st) {
		t.Fatal("read differs from what was programmed")
	}
}

// ---- real traffic ----

// lbLab is a client, a director and three real servers, each in its own
// namespace: client -- director (VIPs, ip_forward) -- real server i (its
// own /24, default route via the director). Each real server answers a
// TCP connection on port 8080 with its name.
type lbLab struct {
	client, director *lab.NS
	reals            []*lab.NS
	realAddr         []netip.Addr
	clientAddrs      []netip.Addr
	vip, vipMark     netip.Addr
	b                *Backend
}

func newLBLab(t *testing.T) *lbLab {
	lab.Require(t)
	x, y := 16+rand.IntN(200), rand.IntN(60)*4
	net4 := func(z, h int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(x), byte(y + z), byte(h)}) }
	l := &lbLab{vip: net4(0, 100), vipMark: net4(0, 101)}
	mk := func(prefix string) *lab.NS {
		ns, err := lab.NewNS(lab.UniqueName(prefix))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ns.Close() })
		return ns
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	l.director = mk("lvsdir")
	l.client = mk("lvscl")
	must(l.director.IP("link", "add", "cl", "type", "veth", "peer", "name", "eth0", "netns", l.client.Name))
	must(l.director.IP("addr", "add", net4(0, 1).String()+"/24", "dev", "cl"))
	must(l.director.IP("addr", "add", l.vip.String()+"/32", "dev", "cl"))
	must(l.director.IP("addr", "add", l.vipMark.String()+"/32", "dev", "cl"))
	must(l.director.IP("link", "set", "cl", "up"))
	for h := 2; h < 18; h++ {
		a := net4(0, h)
		l.clientAddrs = append(l.clientAddrs, a)
		must(l.client.IP("addr", "add", a.String()+"/24", "dev", "eth0"))
	}
	must(l.client.IP("link", "set", "eth0", "up"))
	must(l.director.WriteSysctl("net/ipv4/ip_forward", "1"))
	for i := range 3 {
		rs := mk("lvsrs")
		dev := "rs" + strconv.Itoa(i)
		must(l.director.IP("link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", rs.Name))
		must(l.director.IP("addr", "add", net4(1+i, 1).String()+"/24", "dev", dev))
		must(l.director.IP("link", "set", dev, "up"))
		must(rs.IP("addr", "add", net4(1+i, 2).String()+"/24", "dev", "eth0"))
		must(rs.IP("link", "set", "eth0", "up"))
		must(rs.IP("route", "add", "default", "via", net4(1+i, 1).String()))
		l.reals = append(l.reals, rs)
		l.realAddr = append(l.realAddr, net4(1+i, 2))
		name := "rs" + strconv.Itoa(i)
		var ln net.Listener
		must(rs.Do(func() error {
			var err error
			ln, err = net.Listen("tcp4", ":8080")
			return err
		}))
		var wg sync.WaitGroup
		t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
		wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = c.Write([]byte(name + "\n"))
				_ = c.Close()
			}
		})
	}
	l.b = newNFTFor(t, l.director)
	return l
}

// dest is real server i's address on port 8080.
func (l *lbLab) dest(i int) string {
	return netip.AddrPortFrom(l.realAddr[i], 8080).String() + "="
}

// dial connects from ns (from the address from, if valid) to addr and
// returns the name the real server answered, or an error.
func dial(ns *lab.NS, from netip.Addr, addr netip.AddrPort, timeout time.Duration) (string, error) {
	var c net.Conn
	err := ns.Do(func() error {
		d := net.Dialer{Timeout: timeout}
		if from.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: from.AsSlice()}
		}
		var err error
		c, err = d.Dial("tcp4", addr.String())
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

// count makes n connections from the client to addr and counts the
// answers by real server.
func (l *lbLab) count(t *testing.T, ns *lab.NS, from netip.Addr, addr netip.AddrPort, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		name, err := dial(ns, from, addr, 3*time.Second)
		if err != nil {
			t.Fatalf("connection to %s: %v", addr, err)
		}
		got[name]++
	}
	return got
}

func TestNFTTraffic(t *testing.T) {
	l := newLBLab(t)
	vip := netip.AddrPortFrom(l.vip, 80)
	key := lvs.Key{Addr: vip, Proto: lvs.TCP}
	set := func(sched string, weights ...int) {
		t.Helper()
		var dests []string
		for i, w := range weights {
			dests = append(dests, l.dest(i)+strconv.Itoa(w))
		}
		program(t, l.b, lvstest.StateOf(lvstest.VS(key, sched, dests...)))
	}
	want := func(got map[string]int, counts ...int) {
		t.Helper()
		w := map[string]int{}
		for i, c := range counts {
			if c > 0 {
				w["rs"+strconv.Itoa(i)] = c
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Fatalf("connections per real server %v, want %v", got, w)
		}
	}
	noClient := netip.Addr{}

	t.Run("rr", func(t *testing.T) {
		set("rr", 1, 1, 1)
		want(l.count(t, l.client, noClient, vip, 30), 10, 10, 10)
	})
	t.Run("wrr 3:1:1", func(t *testing.T) {
		set("wrr", 3, 1, 1)
		want(l.count(t, l.client, noClient, vip, 25), 15, 5, 5)
	})
	t.Run("weight 0", func(t *testing.T) {
		set("rr", 1, 0, 1)
		want(l.count(t, l.client, noClient, vip, 20), 10, 0, 10)
	})
	t.Run("sh", func(t *testing.T) {
		set("sh", 1, 1, 1)
		servers := map[string]bool{}
		for _, from := range l.clientAddrs {
			got := l.count(t, l.client, from, vip, 3)
			if len(got) != 1 {
				t.Fatalf("client %s spread over %v", from, got)
			}
			for name := range got {
				servers[name] = true
			}
		}
		if len(servers) < 2 {
			t.Fatalf("%d client addresses all on %v", len(l.clientAddrs), servers)
		}
	})
	t.Run("output chain", func(t *testing.T) {
		// A client on the director itself goes through the output hook.
		set("rr", 1, 1, 0)
		want(l.count(t, l.director, noClient, vip, 10), 5, 5)
	})
	t.Run("no real server", func(t *testing.T) {
		set("wrr", 0, 0, 0)
		if name, err := dial(l.client, noClient, vip, 300*time.Millisecond); err == nil {
			t.Fatalf("connected to %s with every weight 0", name)
		}
		set("wrr", 0, 2, 0)
		want(l.count(t, l.client, noClient, vip, 4), 0, 4)
	})
	t.Run("fwmark", func(t *testing.T) {
		// A test-owned filter rule marks TCP to vipMark:80 with 42 before
		// the NAT hook.
		c := nftConn(t, l.director)
		tbl := c.AddTable(&nftables.Table{Name: "haa_test", Family: nftables.TableFamilyIPv4})
		ch := c.AddChain(&nftables.Chain{Name: "mark", Table: tbl, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityMangle})
		vipb := l.vipMark.As4()
		c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: vipb[:]},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 80}},
			&expr.Immediate{Register: 1, Data: binary.NativeEndian.AppendUint32(nil, 42)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
		}})
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		fw := lvs.Key{FWMark: 42}
		program(t, l.b, lvstest.StateOf(
			lvstest.VS(key, "rr", l.dest(0)+"1"),
			lvstest.VS(fw, "rr", l.dest(1)+"1", l.dest(2)+"1"),
		))
		want(l.count(t, l.client, noClient, netip.AddrPortFrom(l.vipMark, 80), 10), 0, 5, 5)
		// The address service is unaffected.
		want(l.count(t, l.client, noClient, vip, 3), 3)
	})
}

// TestNFTInspect: Inspect reads what a Backend programmed in another
// namespace, and leaves the table alone (New would delete it).
func TestNFTInspect(t *testing.T) {
	ns, b := newNFTInNS(t)
	h, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if got, err := Inspect(context.Background(), WithNetNS(int(h))); err != nil || len(got) != 0 {
		t.Fatalf("Inspect without a table: %v, %v; want empty", got, err)
	}
	desired := lvstest.StateOf(
		lvstest.VS(lvstest.TCPKey("10.0.0.1:80"), "wrr", "10.1.0.1:80=3", "10.1.0.2:80=1"),
		lvstest.VS(lvstest.TCPKey("10.0.0.2:80"), "sh", "10.1.0.1:80=1"),
	)
	program(t, b, desired)
	for range 2 {
		got, err := Inspect(context.Background(), WithNetNS(int(h)))
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(desired) {
			t.Fatalf("Inspect: %s\nwant %s", got.String(), desired.String())
		}
	}
	if got := mustRead(t, b); !got.Equal(desired) {
		t.Fatalf("the backend reads %s after Inspect, want %s", got.String(), desired.String())
	}
}
