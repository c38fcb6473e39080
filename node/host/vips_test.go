package host

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
	"github.com/haa-dev/haa/node/vip"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// testNS is a namespace with two interfaces, d0 and d1, and VIPs
// working inside it.
type testNS struct {
	ns *lab.NS
	h  *netlink.Handle
	m  *VIPs
}

func newTestNS(t testing.TB) *testNS {
	t.Helper()
	lab.Require(t)
	ns, err := lab.NewNS(lab.UniqueName("haavip"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ns.Close(); err != nil {
			t.Errorf("delete namespace: %v", err)
		}
	})
	// The kernel has no dummy module here: veth pairs, peers left alone.
	for _, d := range []string{"d0", "d1"} {
		must(t, ns.IP("link", "add", d, "type", "veth", "peer", "name", d+"p"))
		must(t, ns.IP("link", "set", d, "up"))
	}
	h, err := ns.Handle()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	m := NewVIPs(h)
	t.Cleanup(func() { _ = m.Close() })
	return &testNS{ns: ns, h: h, m: m}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func parse(t *testing.T, s string) vip.VIP {
	t.Helper()
	v, err := vip.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// ipAddr returns `ip -n NS addr show dev DEV`.
func (n *testNS) ipAddr(t *testing.T, dev string) string {
	t.Helper()
	out, err := n.ns.Output("ip", "addr", "show", "dev", dev)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (n *testNS) has(t *testing.T, iface string, v vip.VIP, want bool) {
	t.Helper()
	got, err := n.m.Has(iface, v)
	if err != nil {
		t.Fatalf("Has(%s, %s): %v", iface, v, err)
	}
	if got != want {
		t.Fatalf("Has(%s, %s) = %v, want %v\n%s", iface, v, got, want, n.ipAddr(t, v.Device(iface)))
	}
}

func TestAddHasDel(t *testing.T) {
	n := newTestNS(t)
	v := parse(t, "10.66.0.100/24")
	n.has(t, "d0", v, false)

	for i := range 2 { // the second Add finds it present: no error
		if err := n.m.Add("d0", v); err != nil {
			t.Fatalf("Add #%d: %v", i+1, err)
		}
	}
	n.has(t, "d0", v, true)
	n.has(t, "d1", v, false)
	n.has(t, "d0", parse(t, "10.66.0.100/32"), false) // prefix length counts
	if out := n.ipAddr(t, "d0"); !strings.Contains(out, "inet 10.66.0.100/24 scope global d0") {
		t.Errorf("ip addr shows no 10.66.0.100/24 (without brd, as keepalived):\n%s", out)
	}

	for i := range 2 { // the second Del finds it absent: no error
		if err := n.m.Del("d0", v); err != nil {
			t.Fatalf("Del #%d: %v", i+1, err)
		}
	}
	n.has(t, "d0", v, false)
}

func TestLabel(t *testing.T) {
	n := newTestNS(t)
	v := parse(t, "10.66.1.1/24 label d0:vip brd 10.66.1.255 scope link")
	must(t, n.m.Add("d0", v))
	n.has(t, "d0", v, true)

	out := n.ipAddr(t, "d0")
	if !strings.Contains(out, "inet 10.66.1.1/24 brd 10.66.1.255 scope link d0:vip") {
		t.Errorf("ip addr does not show the label, brd and scope:\n%s", out)
	}
	link, err := n.h.LinkByName("d0")
	must(t, err)
	addrs, err := n.h.AddrList(link, netlink.FAMILY_V4)
	must(t, err)
	found := false
	for _, a := range addrs {
		if a.IP.String() == "10.66.1.1" {
			found = true
			if a.Label != "d0:vip" || a.Scope != unix.RT_SCOPE_LINK || a.Broadcast.String() != "10.66.1.255" {
				t.Errorf("netlink: label %q scope %d brd %s, want d0:vip %d 10.66.1.255", a.Label, a.Scope, a.Broadcast, unix.RT_SCOPE_LINK)
			}
		}
	}
	if !found {
		t.Errorf("netlink: 10.66.1.1 not listed: %v", addrs)
	}
	must(t, n.m.Del("d0", v))
	n.has(t, "d0", v, false)
}

func TestBadLabel(t *testing.T) {
	n := newTestNS(t)
	v := parse(t, "10.66.2.1/24 label d1:vip")
	err := n.m.Add("d0", v)
	if !errors.Is(err, vip.ErrInvalid) || !strings.Contains(err.Error(), `must start with the interface name "d0"`) {
		t.Fatalf("Add with label d1:vip on d0: %v, want vip.ErrInvalid naming d0", err)
	}
	n.has(t, "d0", v, false)
	// The same vip.VIP is fine on d1.
	must(t, n.m.Add("d1", v))
	n.has(t, "d1", v, true)
}

func TestDevOverride(t *testing.T) {
	n := newTestNS(t)
	v := parse(t, "10.66.3.1/24 dev d1 label d1:x")
	must(t, n.m.Add("d0", v))
	n.has(t, "d0", v, true) // Has follows Dev too
	if out := n.ipAddr(t, "d1"); !strings.Contains(out, "10.66.3.1/24") || !strings.Contains(out, "d1:x") {
		t.Errorf("not on d1:\n%s", out)
	}
	if out := n.ipAddr(t, "d0"); strings.Contains(out, "10.66.3.1") {
		t.Errorf("on d0 too:\n%s", out)
	}
	must(t, n.m.Del("d0", v))
	if out := n.ipAddr(t, "d1"); strings.Contains(out, "10.66.3.1") {
		t.Errorf("still on d1 after Del:\n%s", out)
	}
}

func TestIPv6(t *testing.T) {
	n := newTestNS(t)
	for _, s := range []string{"fd00:66::100/64", "fe80::66/64 scope link", "2001:db8:66::1"} {
		v := parse(t, s)
		must(t, n.m.Add("d0", v))
		must(t, n.m.Add("d0", v))
		n.has(t, "d0", v, true)
		out := n.ipAddr(t, "d0")
		line := ""
		for l := range strings.Lines(out) {
			if strings.Contains(l, "inet6 "+v.Prefix.String()) {
				line = l
			}
		}
		// nodad: usable at once, never tentative.
		if !strings.Contains(line, "nodad") || strings.Contains(line, "tentative") {
			t.Errorf("%s: want nodad and not tentative:\n%s", v, out)
		}
		must(t, n.m.Del("d0", v))
		must(t, n.m.Del("d0", v))
		n.has(t, "d0", v, false)
	}
}

func TestNoInterface(t *testing.T) {
	n := newTestNS(t)
	v := parse(t, "10.66.4.1/32")
	if err := n.m.Add("nosuch0", v); !errors.Is(err, ErrNoInterface) {
		t.Errorf("Add on a missing interface: %v, want ErrNoInterface", err)
	}
	if _, err := n.m.Has("nosuch0", v); !errors.Is(err, ErrNoInterface) {
		t.Errorf("Has on a missing interface: %v, want ErrNoInterface", err)
	}
	if err := n.m.Del("nosuch0", v); err != nil {
		t.Errorf("Del on a missing interface: %v, want nil (the address is absent)", err)
	}
	if err := n.m.Add("", v); !errors.Is(err, vip.ErrInvalid) {
		t.Errorf("Add without an interface: %v, want vip.ErrInvalid", err)
	}
}

// TestDelPrimaryKeepsSecondaries: two VIPs of one subnet on an interface
// without another address there; the first is the kernel's primary. With
// promote_secondaries off the kernel deletes the second with the first:
// Del must leave it in place.
func TestDelPrimaryKeepsSecondaries(t *testing.T) {
	n := newTestNS(t)
	if out, err := n.ns.Output("sysctl", "-qw", "net.ipv4.conf.d0.promote_secondaries=0"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	first := parse(t, "10.66.5.1/24")
	second := parse(t, "10.66.5.2/24 label d0:two brd 10.66.5.255")
	other := parse(t, "10.66.6.1/24")
	for _, v := range []vip.VIP{first, second, other} {
		must(t, n.m.Add("d0", v))
	}
	must(t, n.m.Del("d0", first))
	n.has(t, "d0", first, false)
	n.has(t, "d0", second, true)
	n.has(t, "d0", other, true)
	if out := n.ipAddr(t, "d0"); !strings.Contains(out, "inet 10.66.5.2/24 brd 10.66.5.255 scope global d0:two") {
		t.Errorf("second vip.VIP lost its label or brd:\n%s", out)
	}
}

// TestConcurrent adds and removes VIPs from several goroutines through one
// Manager, as several instances failing over at once do.
func TestConcurrent(t *testing.T) {
	n := newTestNS(t)
	var wg sync.WaitGroup
	errc := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			for i := range 8 {
				v := vip.VIP{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 67, byte(g), byte(i + 1)}), 24)}
				if err := n.m.Add("d0", v); err != nil {
					errc <- err
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	link, err := n.h.LinkByName("d0")
	must(t, err)
	addrs, err := n.h.AddrList(link, netlink.FAMILY_V4)
	must(t, err)
	if len(addrs) != 64 {
		t.Errorf("%d addresses on d0, want 64", len(addrs))
	}
}

// TestAddLatency reports how long Add and Del take (they are on the
// failover path) and fails only on absurd values.
func TestAddLatency(t *testing.T) {
	n := newTestNS(t)
	// Addresses already present make the kernel's job realistic.
	for i := range 50 {
		must(t, n.m.Add("d0", vip.VIP{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 68, 0, byte(i + 1)}), 24)}))
	}
	const rounds = 100
	var add, del time.Duration
	for i := range rounds {
		v := vip.VIP{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 69, 0, byte(i + 1)}), 32)}
		t0 := time.Now()
		must(t, n.m.Add("d0", v))
		t1 := time.Now()
		must(t, n.m.Del("d0", v))
		add += t1.Sub(t0)
		del += time.Since(t1)
	}
	t.Logf("mean Add %v, mean Del %v (%d rounds, 50 other addresses)", add/rounds, del/rounds, rounds)
	if add/rounds > 50*time.Millisecond {
		t.Errorf("Add takes %v on average", add/rounds)
	}
}

// countingOps counts the requests VIPs makes.
type countingOps struct {
	netlinkOps
	links, lists, adds, dels atomic.Int64
}

func (c *countingOps) LinkByName(name string) (netlink.Link, error) {
	c.links.Add(1)
	return c.netlinkOps.LinkByName(name)
}

func (c *countingOps) AddrList(l netlink.Link, fam int) ([]netlink.Addr, error) {
	c.lists.Add(1)
	return c.netlinkOps.AddrList(l, fam)
}

func (c *countingOps) AddrAdd(l netlink.Link, a *netlink.Addr) error {
	c.adds.Add(1)
	return c.netlinkOps.AddrAdd(l, a)
}

func (c *countingOps) AddrDel(l netlink.Link, a *netlink.Addr) error {
	c.dels.Add(1)
	return c.netlinkOps.AddrDel(l, a)
}

func (c *countingOps) counts() [4]int64 {
	return [4]int64{c.adds.Load(), c.dels.Load(), c.links.Load(), c.lists.Load()}
}

// TestLargeSetsCostLinearRequests: adding and removing N addresses costs
// N address requests, one link lookup per device and at most one listing
// per device, never a listing per address (20,000 VIPs took minutes when
// each removal listed the device); /32 addresses, which have no
// secondaries to restore, cost no listing at all.
func TestLargeSetsCostLinearRequests(t *testing.T) {
	n := newTestNS(t)
	const count = 3000
	var vs []vip.VIP
	for i := range count {
		vs = append(vs, vip.VIP{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 69, byte(i >> 8), byte(i)}), 32)})
	}
	vs = append(vs, parse(t, "10.70.0.1/32 dev d1"))
	ops := &countingOps{netlinkOps: n.h}
	m := &VIPs{h: ops}
	must(t, m.AddAll("d0", vs))
	if got, want := ops.counts(), [4]int64{count + 1, 0, 2, 0}; got != want {
		t.Errorf("AddAll of %d: %v adds, deletes, link lookups, listings; want %v", count+1, got, want)
	}
	for _, v := range []vip.VIP{vs[0], vs[count-1], vs[count]} {
		n.has(t, "d0", v, true)
	}
	ops = &countingOps{netlinkOps: n.h}
	m.h = ops
	must(t, m.DelAll("d0", vs))
	if got, want := ops.counts(), [4]int64{0, count + 1, 2, 0}; got != want {
		t.Errorf("DelAll of %d /32: %v adds, deletes, link lookups, listings; want %v", count+1, got, want)
	}
	for _, v := range []vip.VIP{vs[0], vs[count-1], vs[count]} {
		n.has(t, "d0", v, false)
	}

	// Addresses in a subnet: one listing per device, whatever their number.
	for i := range vs {
		vs[i].Prefix = netip.PrefixFrom(vs[i].Prefix.Addr(), 16)
	}
	must(t, m.AddAll("d0", vs))
	ops = &countingOps{netlinkOps: n.h}
	m.h = ops
	must(t, m.DelAll("d0", vs))
	if got, want := ops.counts(), [4]int64{0, count + 1, 2, 2}; got != want {
		t.Errorf("DelAll of %d /16: %v adds, deletes, link lookups, listings; want %v", count+1, got, want)
	}
	// Absent addresses found so cost no request.
	ops = &countingOps{netlinkOps: n.h}
	m.h = ops
	must(t, m.DelAll("d0", vs))
	if d := ops.dels.Load(); d != 0 {
		t.Errorf("DelAll of absent addresses sent %d deletes", d)
	}
}

// TestConcurrentRemovalsListOnce: instances that stop together remove
// their addresses one after another, so each removal lists the device once
// and none leaves an address behind. Run side by side, one removal's
// restore of secondaries put back addresses that another had just removed
// (left on the device), and each one's deletes interrupted the others'
// listings, which were read again and again (9,900 VIPs in 99 instances:
// 300 MB of listings alive at once, the API slowed to 100 ms).
func TestConcurrentRemovalsListOnce(t *testing.T) {
	n := newTestNS(t)
	const sets, per = 16, 150
	all := make([][]vip.VIP, sets)
	for s := range sets {
		for i := range per {
			all[s] = append(all[s], vip.VIP{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 73, byte(s), byte(i + 1)}), 16)})
		}
		must(t, n.m.AddAll("d0", all[s]))
	}
	ops := &countingOps{netlinkOps: n.h}
	m := &VIPs{h: ops}
	var wg sync.WaitGroup
	for s := range sets {
		wg.Go(func() {
			if err := m.DelAll("d0", all[s]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if l := ops.lists.Load(); l != sets {
		t.Errorf("%d removals side by side listed d0 %d times; want %d", sets, l, sets)
	}
	for s := range sets {
		n.has(t, "d0", all[s][per-1], false)
	}
}

// TestDumpsRetryWhenInterrupted: an address dump that the kernel
// interrupts (addresses changed while it was read) is read again, not
// reported as an error (6 of 20 dry runs failed so while addresses
// changed).
func TestDumpsRetryWhenInterrupted(t *testing.T) {
	tries := 0
	got, err := retryDump(func() (int, error) {
		if tries++; tries < 3 {
			return 0, netlink.ErrDumpInterrupted
		}
		return 42, nil
	})
	if got != 42 || err != nil || tries != 3 {
		t.Fatalf("got %d, %v after %d tries", got, err, tries)
	}
	start := time.Now()
	got, err = retryDump(func() (int, error) { return 7, netlink.ErrDumpInterrupted })
	if got != 7 || !errors.Is(err, netlink.ErrDumpInterrupted) || time.Since(start) < dumpBudget {
		t.Fatalf("always interrupted: %d, %v after %v; want the last result, interrupted, after %v", got, err, time.Since(start), dumpBudget)
	}

	n := newTestNS(t)
	for i := range 200 {
		must(t, n.m.Add("d0", vip.VIP{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 71, 0, byte(i)}), 32)}))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // churn: one address comes and goes while d0 is listed
		v := vip.VIP{Prefix: netip.MustParsePrefix("10.72.0.1/32")}
		for i := 0; i < 100000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = n.m.Add("d0", v)
			_ = n.m.Del("d0", v)
		}
	})
	defer wg.Wait()
	defer close(stop)
	must(t, n.ns.Do(func() error {
		l := NewLinux(nil)
		defer l.Close()
		for range 300 {
			addrs, err := l.Addrs("d0")
			if err != nil {
				return err
			}
			if len(addrs) < 200 {
				return fmt.Errorf("%d addresses listed, want at least 200", len(addrs))
			}
		}
		return nil
	}))
}

// BenchmarkVIPSet adds and removes sets of VIPs on one device (make
// bench-vips): the kernel's time grows with the square of the addresses
// on the device, which sets config.MaxVIPsPerNode.
func BenchmarkVIPSet(b *testing.B) {
	for _, count := range []int{1000, 5000, 10000, 20000} {
		b.Run(fmt.Sprintf("vips=%d", count), func(b *testing.B) {
			n := newTestNS(b).m
			var vs []vip.VIP
			for i := range count {
				vs = append(vs, vip.VIP{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(80 + i>>16), byte(i >> 8), byte(i)}), 32)})
			}
			var add, del time.Duration
			for b.Loop() {
				start := time.Now()
				if err := n.AddAll("d0", vs); err != nil {
					b.Fatal(err)
				}
				mid := time.Now()
				if err := n.DelAll("d0", vs); err != nil {
					b.Fatal(err)
				}
				add, del = add+mid.Sub(start), del+time.Since(mid)
			}
			b.ReportMetric(add.Seconds()/float64(b.N), "add-s")
			b.ReportMetric(del.Seconds()/float64(b.N), "del-s")
		})
	}
}

// AddAll remembers the links it looked up; a link deleted and created
// again (another index) is looked up again, the address added on the new
// one.
func TestAddAllRecreatedLink(t *testing.T) {
	n := newTestNS(t)
	v := vip.VIP{Prefix: netip.MustParsePrefix("10.9.0.1/24")}
	must(t, n.m.AddAll("d0", []vip.VIP{v}))
	must(t, n.ns.IP("link", "del", "d0"))
	must(t, n.ns.IP("link", "add", "d0", "type", "veth", "peer", "name", "d0p"))
	must(t, n.ns.IP("link", "set", "d0", "up"))
	must(t, n.m.AddAll("d0", []vip.VIP{v}))
	if ok, err := n.m.Has("d0", v); err != nil || !ok {
		t.Fatalf("the address is not on the new d0 (%v)", err)
	}
}
