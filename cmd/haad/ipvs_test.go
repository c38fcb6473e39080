package main

// Traffic through IPVS, end to end: a director namespace whose haad (or
// keepalived 2.2.7, for comparison) programs the namespace's IPVS table,
// a client namespace reaching the VIP, and real servers in namespaces of
// their own answering with their names. What is asserted is read from
// the kernel (the table, over netlink) and from the answers, never from
// haad's own view. This machine's kernel has no IPVS: make test-ipvs runs
// these tests in a VM whose kernel has it (lab.RequireIPVS skips them
// here, and fails them there when they cannot run).

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
)

// lvsLab is a load-balancing lab: the director n1 holds the VIP as a plain
// address (no VRRP: what is tested is the table and the traffic), the
// client c1 has srcs (its own address first, then extra ones: one
// namespace, many clients), and c2... are the real servers. With nat, the
// director forwards and the real servers route the clients' addresses
// through it; without, they are LVS-DR servers: the VIP on their lo,
// answering no ARP for it (arp_ignore=1, arp_announce=2), replying
// straight to the client.
type lvsLab struct {
	*cluster
	director *lab.Node
	user     *lab.Node
	srcs     []netip.Addr
	reals    []*lab.Node
	table    *tableReader
}

// extraSrcs are the client's extra addresses: 10.77.0.210 on, inside
// 10.77.0.208/28 (routed through the director by NAT real servers).
var extraSrcs = netip.MustParsePrefix("10.77.0.208/28")

func newLVSLab(t *testing.T, prefix string, reals int, nat bool, srcs int) *lvsLab {
	t.Helper()
	l := lab.NewT(t, lab.Options{Prefix: lab.UniqueName(prefix), Nodes: 1, Clients: 1 + reals})
	c := &cluster{t: t, lab: l, dir: t.TempDir(), bin: haad(t), procs: map[*lab.Node]*lab.Proc{}}
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
	})
	ll := &lvsLab{cluster: c, director: l.Nodes[0], user: l.Clients[0], reals: l.Clients[1:]}
	d := ll.director
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	vip32 := netip.PrefixFrom(vip, 32)
	must(d.AddAddr(d.Iface, vip32))
	ll.srcs = append(ll.srcs, ll.user.Addr)
	for i := range srcs - 1 {
		a := lab.HostAddr(extraSrcs, 2+i)
		must(ll.user.AddAddr(ll.user.Iface, netip.PrefixFrom(a, 32)))
		ll.srcs = append(ll.srcs, a)
	}
	if nat {
		for _, kv := range [][2]string{{"net/ipv4/ip_forward", "1"}, {"net/ipv4/conf/all/send_redirects", "0"},
			{"net/ipv4/conf/eth0/send_redirects", "0"}} {
			must(d.WriteSysctl(kv[0], kv[1]))
		}
	}
	for _, n := range ll.reals {
		if nat {
			must(n.AddRoute(netip.PrefixFrom(ll.user.Addr, 32), d.Addr))
			must(n.AddRoute(extraSrcs, d.Addr))
			must(n.WriteSysctl("net/ipv4/conf/all/accept_redirects", "0"))
			continue
		}
		must(n.AddAddr("lo", vip32))
		for _, dev := range []string{"all", "eth0"} {
			must(n.WriteSysctl("net/ipv4/conf/"+dev+"/arp_ignore", "1"))
			must(n.WriteSysctl("net/ipv4/conf/"+dev+"/arp_announce", "2"))
		}
	}
	ll.table = openTable(t, d, "ipvs")
	return ll
}

// respond starts an HTTP server answering body on port in n, stopped when
// the test ends.
func respond(t *testing.T, n *lab.Node, port uint16, body string, echo bool) *lab.Responder {
	t.Helper()
	start := n.Respond
	if echo {
		start = n.RespondEcho
	}
	r, err := start(port, body)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

// haadArgs are every lab haad's flags: the table is compared with the
// kernel's every second (repairs are measured in seconds, not minutes).
func (l *lvsLab) haadArgs() []string {
	return []string{"--log-level", "debug", "--lb-repair-interval", "1s", "--status-file", l.statusPath(l.director)}
}

// startHaad runs haad with a YAML configuration on the director.
func (l *lvsLab) startHaad(yaml string) *lab.Proc {
	l.t.Helper()
	p, err := l.director.StartHaad(l.dir, l.bin, "name: director\n"+yaml, l.haadArgs()...)
	if err != nil {
		l.t.Fatal(err)
	}
	l.procs[l.director] = p
	return p
}

// startHaadKeepalived runs haad with a keepalived.conf on the director.
func (l *lvsLab) startHaadKeepalived(conf string) *lab.Proc {
	l.t.Helper()
	p, err := l.director.StartHaadKeepalived(l.dir, l.bin, conf, l.haadArgs()...)
	if err != nil {
		l.t.Fatal(err)
	}
	l.procs[l.director] = p
	return p
}

// waitRunning waits until the director's last started haad logs "haad
// running" (its configuration runs and its API serves): a restarted haad
// finds the old socket file in place, so the file alone proves nothing.
func (l *lvsLab) waitRunning(timeout time.Duration) {
	l.t.Helper()
	p := l.procs[l.director]
	pid := fmt.Sprintf("pid=%d", p.Pid())
	err := lab.Poll(timeout, 20*time.Millisecond, "haad to run", func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("haad exited: %v", p.Wait())
		}
		for _, line := range strings.Split(l.haadLog(0), "\n") {
			if strings.Contains(line, "haad running") && strings.Contains(line, pid) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		l.t.Fatal(err)
	}
}

// wantCleanLog asserts that the director's haad logged no error, no
// failed program and no table changed outside it (a repair that finds
// something to do) from byte offset from on.
func (l *lvsLab) wantCleanLog(from int) {
	l.t.Helper()
	log := l.haadLog(from)
	for _, bad := range []string{"level=ERROR", "programming virtual servers failed", "file exists", "changed outside haad"} {
		if i := strings.Index(log, bad); i >= 0 {
			line := log[strings.LastIndex(log[:i], "\n")+1:]
			line, _, _ = strings.Cut(line, "\n")
			l.t.Errorf("haad logged %q: %s", bad, line)
		}
	}
}

// haadLog is the director's haad log from byte offset from on.
func (l *lvsLab) haadLog(from int) string {
	b, _ := os.ReadFile(l.director.HaadFiles(l.dir).Log)
	if from > len(b) {
		return ""
	}
	return string(b[from:])
}

// ipvsadm runs ipvsadm in the director's namespace.
func (l *lvsLab) ipvsadm(args ...string) {
	l.t.Helper()
	if _, err := l.director.Output("ipvsadm", args...); err != nil {
		l.t.Fatal(err)
	}
}

// haactl runs haactl against the director's haad.
func (l *lvsLab) haactl(args ...string) string {
	l.t.Helper()
	target := "unix://" + l.director.HaadFiles(l.dir).Socket
	out, err := exec.Command(haactl(l.t), append([]string{"--target", target}, args...)...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("haactl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// from is a client with source address src.
func (l *lvsLab) from(src netip.Addr) *client {
	return &client{hc: l.user.HTTPClientFrom(src, 3*time.Second)}
}

func vipURL(port uint16) string {
	return fmt.Sprintf("http://%s/", netip.AddrPortFrom(vip, port))
}

func vsKey(port uint16) string { return netip.AddrPortFrom(vip, port).String() + "/tcp" }

// rsAddr is real server i's (0-based) address with port.
func (l *lvsLab) rsAddr(i int, port uint16) string {
	return netip.AddrPortFrom(l.reals[i].Addr, port).String()
}

// stickiness makes rounds of requests, each round one from every source,
// and returns the answers per source; a failed request fails the test.
func (l *lvsLab) stickiness(t *testing.T, url string, rounds int) map[netip.Addr]map[string]int {
	t.Helper()
	got := map[netip.Addr]map[string]int{}
	for range rounds {
		for _, s := range l.srcs {
			body, err := l.from(s).get(url)
			if err != nil {
				t.Fatalf("request from %s to %s: %v", s, url, err)
			}
			if got[s] == nil {
				got[s] = map[string]int{}
			}
			got[s][body]++
		}
	}
	return got
}

// servers is the set of real servers that answered, over every source.
func servers(by map[netip.Addr]map[string]int) []string {
	set := map[string]bool{}
	for _, m := range by {
		for b := range m {
			set[b] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// TestIPVSNATSchedulers: LVS-NAT through haad's IPVS table, one virtual
// server per scheduler on the same three real servers. rr and wrr spread
// exactly, sh and mh keep each client on one server, lc evens out and wlc
// follows the weights roughly, persistence keeps each client on the server
// rr gave it first; haactl drains, re-weights and enables a real server
// (the kernel's weights and the spread follow); a sorry server takes over
// while its virtual server's only real server is down; a hand edit of the
// table (ipvsadm -e, -d, -E, -C) is put back by haad; a clean stop
// removes everything.
func TestIPVSNATSchedulers(t *testing.T) {
	t.Parallel()
	lab.RequireIPVS(t)
	l := newLVSLab(t, "ipnat", 3, true, 6)
	for i, n := range l.reals {
		respond(t, n, rsPort, fmt.Sprintf("rs%d", i+1), false)
	}
	const sorryPort, soloPort = 8090, 8081
	respond(t, l.reals[0], sorryPort, "sorry", false)
	solo := respond(t, l.reals[1], soloPort, "solo", false)

	rs := func(port uint16, weights ...int) string {
		var b strings.Builder
		for i, w := range weights {
			fmt.Fprintf(&b, "{address: %s, weight: %d}, ", l.rsAddr(i, port), w)
		}
		return "[" + strings.TrimSuffix(b.String(), ", ") + "]"
	}
	cfg := fmt.Sprintf(`virtualServers:
  - {name: rr, address: %[1]s:80, scheduler: rr, realServers: %[2]s}
  - {name: wrr, address: %[1]s:81, scheduler: wrr, realServers: %[3]s}
  - {name: sh, address: %[1]s:82, scheduler: sh, realServers: %[2]s}
  - {name: mh, address: %[1]s:83, scheduler: mh, realServers: %[2]s}
  - {name: lc, address: %[1]s:84, scheduler: lc, realServers: %[2]s}
  - {name: wlc, address: %[1]s:85, scheduler: wlc, realServers: %[4]s}
  - {name: persist, address: %[1]s:86, scheduler: rr, persistenceTimeout: 30s, realServers: %[2]s}
  - name: sorry
    address: %[1]s:87
    scheduler: rr
    sorryServer: %[5]s
    check: {tcp: {}, interval: 1s, timeout: 1s, retryDelay: 200ms, fall: 2, rise: 1, jitter: 0s}
    realServers: [{address: %[6]s}]
`, vip, rs(rsPort, 1, 1, 1), rs(rsPort, 3, 2, 1), rs(rsPort, 3, 1, 1), l.rsAddr(0, sorryPort), l.rsAddr(1, soloPort))
	l.startHaad(cfg)

	nat := func(sched string, persist time.Duration, weights ...int) kernelVS {
		d := map[string]int{}
		for i, w := range weights {
			d[l.rsAddr(i, rsPort)] = w
		}
		return kernelVS{Sched: sched, Fwd: "nat", Persist: persist, Dests: d}
	}
	want := kernelTable{
		vsKey(80): nat("rr", 0, 1, 1, 1),
		vsKey(81): nat("wrr", 0, 3, 2, 1),
		vsKey(82): nat("sh", 0, 1, 1, 1),
		vsKey(83): nat("mh", 0, 1, 1, 1),
		vsKey(84): nat("lc", 0, 1, 1, 1),
		vsKey(85): nat("wlc", 0, 3, 1, 1),
		vsKey(86): nat("rr", 30*time.Second, 1, 1, 1),
		vsKey(87): {Sched: "rr", Fwd: "nat", Dests: map[string]int{l.rsAddr(1, soloPort): 1}},
	}
	// The first program loads six schedulers' modules: seconds each in
	// the VM.
	l.table.wait(t, "haad's virtual servers in the IPVS table", want, 60*time.Second)
	one := l.from(l.user.Addr)

	// rr: each server in turn; wrr 3:2:1: exactly by weight.
	if got := one.spread(t, vipURL(80), 15); !sameCounts(got, map[string]int{"rs1": 5, "rs2": 5, "rs3": 5}) {
		t.Errorf("rr: 15 requests went %v, want 5 each", got)
	}
	if got := one.spread(t, vipURL(81), 30); !sameCounts(got, map[string]int{"rs1": 15, "rs2": 10, "rs3": 5}) {
		t.Errorf("wrr 3:2:1: 30 requests went %v, want 15/10/5", got)
	}
	// sh, mh: every client keeps its server.
	for _, s := range []struct {
		name string
		port uint16
	}{{"sh", 82}, {"mh", 83}} {
		by := l.stickiness(t, vipURL(s.port), 3)
		for src, m := range by {
			if len(m) != 1 {
				t.Errorf("%s: the client %s went to %v, want one server", s.name, src, m)
			}
		}
		t.Logf("%s: %d clients on %v: %v", s.name, len(by), servers(by), by)
	}
	// lc: sequential connections (each inactive once closed) even out;
	// wlc 3:1:1 follows the weights. Both roughly.
	got := one.spread(t, vipURL(84), 15)
	t.Logf("lc: 15 requests went %v", got)
	for i := range 3 {
		if n := got[fmt.Sprintf("rs%d", i+1)]; n < 2 || n > 8 {
			t.Errorf("lc: 15 requests went %v, want each server 2..8 (about 5)", got)
			break
		}
	}
	got = one.spread(t, vipURL(85), 25)
	t.Logf("wlc 3:1:1: 25 requests went %v", got)
	if got["rs1"] < 10 || got["rs1"] <= got["rs2"] || got["rs1"] <= got["rs3"] || got["rs2"] < 2 || got["rs3"] < 2 {
		t.Errorf("wlc 3:1:1: 25 requests went %v, want rs1 most (about 15) and rs2, rs3 about 5", got)
	}
	// Persistence: rr gives each new client the next server, and every
	// later connection of that client goes there too.
	by := l.stickiness(t, vipURL(86), 3)
	for src, m := range by {
		if len(m) != 1 {
			t.Errorf("persistence: the client %s went to %v, want one server", src, m)
		}
	}
	if s := servers(by); len(s) != 3 {
		t.Errorf("persistence: %d clients went to %v, want every server (rr for new clients)", len(by), s)
	}

	// haactl: drain, weight and enable move the kernel's weights and the
	// spread, without a reload.
	rs1, rs3 := l.rsAddr(0, rsPort), l.rsAddr(2, rsPort)
	l.haactl("drain", "wrr", rs1)
	want[vsKey(81)] = nat("wrr", 0, 0, 2, 1)
	l.table.wait(t, "rs1 drained", want, 10*time.Second)
	if got := one.spread(t, vipURL(81), 15); !sameCounts(got, map[string]int{"rs2": 10, "rs3": 5}) {
		t.Errorf("wrr with rs1 drained: 15 requests went %v, want 0/10/5", got)
	}
	l.haactl("weight", "wrr", rs3, "2")
	want[vsKey(81)] = nat("wrr", 0, 0, 2, 2)
	l.table.wait(t, "rs3 at weight 2", want, 10*time.Second)
	if got := one.spread(t, vipURL(81), 10); !sameCounts(got, map[string]int{"rs2": 5, "rs3": 5}) {
		t.Errorf("wrr 0:2:2: 10 requests went %v, want 0/5/5", got)
	}
	l.haactl("enable", "wrr", rs1)
	l.haactl("enable", "wrr", rs3)
	want[vsKey(81)] = nat("wrr", 0, 3, 2, 1)
	l.table.wait(t, "rs1 and rs3 enabled", want, 10*time.Second)
	// Two weight changes in a row leave IPVS's wrr mid-cycle (its state
	// is reset by the first, then the second lands while it runs): each
	// server within one of its share, not exact (seen once: 14/10/6).
	if got := one.spread(t, vipURL(81), 30); !nearCounts(got, map[string]int{"rs1": 15, "rs2": 10, "rs3": 5}, 1) {
		t.Errorf("wrr after enable: 30 requests went %v, want 15/10/5 give or take one", got)
	}

	// The sorry server: the only real server stops, the sorry server takes
	// its place in the table and answers; it comes back and takes over.
	solo.Stop()
	sorryVS := kernelVS{Sched: "rr", Fwd: "nat", Dests: map[string]int{l.rsAddr(0, sorryPort): 1}}
	want[vsKey(87)] = sorryVS
	l.table.wait(t, "the sorry server in place of the stopped real server", want, 10*time.Second)
	if got := one.spread(t, vipURL(87), 3); !sameCounts(got, map[string]int{"sorry": 3}) {
		t.Errorf("3 requests with the real server down went %v, want the sorry server", got)
	}
	// Back: the table swaps the sorry server for the real server. What
	// fails across the swap is logged, not asserted: connections in
	// flight to the sorry server when it is deleted hang (IPVS drops
	// their packets: expire_nodest_conn=0), and one that arrives between
	// the plan's delete and its add is refused (no destination).
	pr := startProber(t, one, vipURL(87), 20*time.Millisecond)
	if err := solo.Start(); err != nil {
		t.Fatal(err)
	}
	want[vsKey(87)] = kernelVS{Sched: "rr", Fwd: "nat", Dests: map[string]int{l.rsAddr(1, soloPort): 1}}
	l.table.wait(t, "the real server back in place of the sorry server", want, 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	ps := pr.Stop()
	var refused, hung int
	for _, p := range ps {
		switch {
		case p.err == nil:
		case errors.Is(p.err, syscall.ECONNREFUSED):
			refused++
		default:
			hung++
		}
	}
	t.Logf("sorry server -> real server: of %d requests (one every 20 ms), %d refused, %d timed out or reset", len(ps), refused, hung)
	if got := one.spread(t, vipURL(87), 3); !sameCounts(got, map[string]int{"solo": 3}) {
		t.Errorf("3 requests with the real server back went %v, want it", got)
	}

	// Until now every repair (each second) found the table as haad left
	// it: nothing read back differently (persistence, weights 0).
	l.wantCleanLog(0)

	// Hand edits: haad puts its table back (--lb-repair-interval 1s).
	v80, v81 := netip.AddrPortFrom(vip, 80).String(), netip.AddrPortFrom(vip, 81).String()
	// Each edit is seen by one repair, whose warning names the first
	// change that puts the table back, and is put back.
	edits := []struct {
		what, seen string
		args       []string
	}{
		{"ipvsadm -e (a weight)", "update-dest " + vsKey(81) + " " + rs1 + " weight 3", []string{"-e", "-t", v81, "-r", rs1, "-m", "-w", "9"}},
		{"ipvsadm -d (a real server)", "add-dest " + vsKey(80) + " " + l.rsAddr(1, rsPort) + " weight 1", []string{"-d", "-t", v80, "-r", l.rsAddr(1, rsPort)}},
		{"ipvsadm -E (a scheduler)", "update-service " + vsKey(80), []string{"-E", "-t", v80, "-s", "wlc"}},
		{"ipvsadm -C (everything)", "add-service " + vsKey(80), []string{"-C"}},
	}
	var took []string
	for _, e := range edits {
		from := len(l.haadLog(0))
		l.ipvsadm(e.args...)
		edited := time.Now()
		err := lab.Poll(10*time.Second, 20*time.Millisecond, "haad's warning of "+e.what, func() (bool, error) {
			return strings.Contains(l.haadLog(from), "changed outside haad"), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if log := l.haadLog(from); strings.Count(log, "changed outside haad") != 1 || !strings.Contains(log, e.seen) {
			t.Errorf("haad's warnings after %s: %q, want one naming %q", e.what, log, e.seen)
		}
		back := l.table.wait(t, "haad to put its table back after "+e.what, want, 10*time.Second)
		took = append(took, fmt.Sprintf("%s %.2f s", e.what, back.Sub(edited).Seconds()))
	}
	t.Logf("table put back after %s (repairs every 1 s)", strings.Join(took, ", "))
	if got := one.spread(t, vipURL(80), 15); !sameCounts(got, map[string]int{"rs1": 5, "rs2": 5, "rs3": 5}) {
		t.Errorf("rr after the repairs: 15 requests went %v, want 5 each", got)
	}

	// A clean stop removes what haad programmed.
	if err := l.procs[l.director].Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := l.table.get(t); len(got) != 0 {
		t.Errorf("IPVS table after haad stopped: %s, want empty", got)
	}
}

// TestIPVSDirectRouting: LVS-DR. The real servers hold the VIP on lo and
// answer no ARP for it; the director only rewrites the MAC, so a real
// server sees the connection arrive at VIP:80 from the client's own
// address and replies straight to the client. rr spreads exactly; the
// client's ARP entry for the VIP is the director's.
func TestIPVSDirectRouting(t *testing.T) {
	t.Parallel()
	lab.RequireIPVS(t)
	l := newLVSLab(t, "ipdr", 2, false, 1)
	for i, n := range l.reals {
		respond(t, n, 80, fmt.Sprintf("rs%d", i+1), true)
	}
	l.startHaad(fmt.Sprintf(`virtualServers:
  - name: web
    address: %s:80
    scheduler: rr
    forwarding: dr
    check: {tcp: {}, interval: 1s, timeout: 1s, jitter: 0s}
    realServers: [{address: %s}, {address: %s}]
`, vip, l.rsAddr(0, 80), l.rsAddr(1, 80)))
	want := kernelTable{vsKey(80): {Sched: "rr", Fwd: "dr", Dests: map[string]int{l.rsAddr(0, 80): 1, l.rsAddr(1, 80): 1}}}
	l.table.wait(t, "the DR virtual server in the IPVS table", want, 30*time.Second)

	one := l.from(l.user.Addr)
	got := map[string]int{}
	for i := range 20 {
		body, err := one.get(vipURL(80))
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		f := strings.Fields(body)
		if len(f) != 3 {
			t.Fatalf("answer %q: want NAME LOCAL REMOTE", body)
		}
		local, remote := netip.MustParseAddrPort(f[1]), netip.MustParseAddrPort(f[2])
		if local != netip.AddrPortFrom(vip, 80) || remote.Addr() != l.user.Addr {
			t.Fatalf("%s saw the connection %s -> %s, want %s -> %s:80 (direct routing: no address translated)",
				f[0], remote, local, l.user.Addr, vip)
		}
		got[f[0]]++
	}
	if !sameCounts(got, map[string]int{"rs1": 10, "rs2": 10}) {
		t.Errorf("rr over DR: 20 requests went %v, want 10 each", got)
	}
	mac, err := l.user.Neigh(vip)
	if err != nil {
		t.Fatal(err)
	}
	if mac.String() != l.director.MAC.String() {
		t.Errorf("the client's ARP entry for the VIP is %s, want the director's %s (a real server answered ARP for its lo VIP)", mac, l.director.MAC)
	}
	// Each second's repair read the DR service back as haad programmed it.
	time.Sleep(1500 * time.Millisecond)
	l.wantCleanLog(0)
}

// probe is one request of a prober: when it started and ended.
type probe struct {
	at, end time.Time
	body    string
	err     error
}

// prober opens a new connection to a URL every period, each request in
// its own goroutine (a hanging one never delays the next), until Stop.
type prober struct {
	mu     sync.Mutex
	probes []probe
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

// startProber starts probing; it stops at Stop, or when the test ends.
func startProber(t *testing.T, c *client, url string, every time.Duration) *prober {
	p := &prober{stop: make(chan struct{})}
	t.Cleanup(func() { p.Stop() })
	p.wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			p.wg.Go(func() {
				at := time.Now()
				body, err := c.get(url)
				p.mu.Lock()
				p.probes = append(p.probes, probe{at: at, end: time.Now(), body: body, err: err})
				p.mu.Unlock()
			})
		}
	})
	return p
}

// Stop ends the probing, waits for the requests in flight and returns
// every probe in the order they started.
func (p *prober) Stop() []probe {
	p.once.Do(func() { close(p.stop) })
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	slices.SortFunc(p.probes, func(a, b probe) int { return a.at.Compare(b.at) })
	return p.probes
}

// failed counts the failed probes, and those outside [from, to]: ended
// before from or started after to.
func failed(ps []probe, from, to time.Time) (n, outside int, first error) {
	for _, p := range ps {
		if p.err == nil {
			continue
		}
		n++
		if p.end.Before(from) || p.at.After(to) {
			outside++
			if first == nil {
				first = fmt.Errorf("%w (started %s, ended %s)", p.err, p.at.Format("15:04:05.000"), p.end.Format("15:04:05.000"))
			}
		}
	}
	return n, outside, first
}

// killedServer is what a client saw while a real server was killed.
type killedServer struct {
	failed, requests int
	removed          time.Duration
}

// TestIPVSKilledServer: a real server is killed while a client opens a
// connection every 50 ms; the director removes it from the IPVS table
// after its failed checks, and from then on no request fails. Run for
// haad and then for keepalived 2.2.7 on the same keepalived.conf (haad
// --keepalived-config; keepalived's checker only, -C): the failed
// requests and the time to removal of each are logged side by side.
func TestIPVSKilledServer(t *testing.T) {
	lab.RequireIPVS(t)
	requireKeepalived(t)
	l := newLVSLab(t, "ipkill", 3, true, 1)
	var reals []*lab.Responder
	for i, n := range l.reals {
		reals = append(reals, respond(t, n, rsPort, fmt.Sprintf("rs%d", i+1), false))
	}
	// delay_loop 1 s, one retry 0.2 s after a failure: a refused server
	// is removed 0.2..1.2 s after it stops (plus the checks' own time).
	const delayLoop, retryDelay = time.Second, 200 * time.Millisecond
	var b strings.Builder
	fmt.Fprintf(&b, "global_defs {\n  router_id director\n}\nvirtual_server %s 80 {\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n", vip)
	for _, n := range l.reals {
		fmt.Fprintf(&b, "  real_server %s %d {\n    weight 1\n    TCP_CHECK {\n      connect_timeout 1\n      retry 1\n      delay_before_retry 0.2\n    }\n  }\n", n.Addr, rsPort)
	}
	b.WriteString("}\n")
	conf := b.String()
	all := kernelTable{vsKey(80): {Sched: "rr", Fwd: "nat", Dests: map[string]int{
		l.rsAddr(0, rsPort): 1, l.rsAddr(1, rsPort): 1, l.rsAddr(2, rsPort): 1}}}
	without := kernelTable{vsKey(80): {Sched: "rr", Fwd: "nat", Dests: map[string]int{
		l.rsAddr(0, rsPort): 1, l.rsAddr(2, rsPort): 1}}}

	run := func(name string, start func() *lab.Proc) killedServer {
		t.Helper()
		p := start()
		l.table.wait(t, name+"'s virtual server in the IPVS table", all, 30*time.Second)
		pr := startProber(t, l.from(l.user.Addr), vipURL(80), 50*time.Millisecond)
		time.Sleep(500 * time.Millisecond)
		killed := time.Now()
		reals[1].Stop()
		removed := l.table.wait(t, name+" to remove the killed real server", without, delayLoop+retryDelay+10*time.Second)
		time.Sleep(500 * time.Millisecond)
		ps := pr.Stop()
		// A request that started just before the removal may still have
		// been sent to the dead server: 100 ms of grace.
		n, outside, first := failed(ps, killed, removed.Add(100*time.Millisecond))
		if outside > 0 {
			t.Errorf("%s: %d of %d requests failed before the kill (%s) or after the removal (%s) (first: %v)", name, outside, len(ps),
				killed.Format("15:04:05.000"), removed.Format("15:04:05.000"), first)
		}
		if len(ps) < 10 {
			t.Errorf("%s: only %d requests in %v", name, len(ps), time.Since(killed))
		}
		if err := reals[1].Start(); err != nil {
			t.Fatal(err)
		}
		if err := p.Stop(10 * time.Second); err != nil && !isTerminated(err) {
			t.Errorf("%s did not stop cleanly: %v", name, err)
		}
		l.table.wait(t, name+" to remove its virtual server at its stop", kernelTable{}, 10*time.Second)
		return killedServer{failed: n, requests: len(ps), removed: removed.Sub(killed)}
	}
	h := run("haad", func() *lab.Proc { return l.startHaadKeepalived(conf) })
	k := run("keepalived", func() *lab.Proc {
		p, err := l.director.StartKeepalivedLVS(l.dir, conf)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				b, _ := os.ReadFile(l.director.KeepalivedFiles(l.dir).Log)
				t.Logf("--- keepalived log:\n%s", tail(string(b), 40))
			}
		})
		return p
	})
	t.Logf("server killed: haad %d failed requests of %d, removed after %.2f s; keepalived %d failed of %d, removed after %.2f s (delay_loop %v, retry 1 after %v)",
		h.failed, h.requests, h.removed.Seconds(), k.failed, k.requests, k.removed.Seconds(), delayLoop, retryDelay)
}

// isTerminated reports whether err is a process's death by SIGTERM (what
// keepalived's exit status says after a clean stop).
func isTerminated(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && strings.Contains(ee.Error(), "terminated")
}

// TestIPVSReloadAndCrash: haad runs a keepalived.conf. The file changes and
// SIGHUP makes the table follow (a weight, a real server added and one
// removed, the scheduler, a virtual server added). Then haad is killed
// (SIGKILL) while a client opens a connection every 50 ms: the table stays
// in the kernel and serves; a new haad takes it over without an error or a
// duplicate, ends the runtime drain the old one had made, and no request
// fails throughout.
func TestIPVSReloadAndCrash(t *testing.T) {
	t.Parallel()
	lab.RequireIPVS(t)
	l := newLVSLab(t, "iprel", 3, true, 1)
	for i, n := range l.reals {
		respond(t, n, rsPort, fmt.Sprintf("rs%d", i+1), false)
	}
	type rsConf struct {
		i, weight int
	}
	type vsConf struct {
		port  uint16
		sched string
		reals []rsConf
	}
	conf := func(vss ...vsConf) string {
		var b strings.Builder
		b.WriteString("global_defs {\n  router_id director\n}\n")
		for _, vs := range vss {
			fmt.Fprintf(&b, "virtual_server %s %d {\n  delay_loop 1\n  lb_algo %s\n  lb_kind NAT\n  protocol TCP\n", vip, vs.port, vs.sched)
			for _, r := range vs.reals {
				fmt.Fprintf(&b, "  real_server %s %d {\n    weight %d\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n", l.reals[r.i].Addr, rsPort, r.weight)
			}
			b.WriteString("}\n")
		}
		return b.String()
	}
	table := func(vss ...vsConf) kernelTable {
		kt := kernelTable{}
		for _, vs := range vss {
			d := map[string]int{}
			for _, r := range vs.reals {
				d[l.rsAddr(r.i, rsPort)] = r.weight
			}
			kt[vsKey(vs.port)] = kernelVS{Sched: vs.sched, Fwd: "nat", Dests: d}
		}
		return kt
	}
	v1 := []vsConf{{80, "rr", []rsConf{{0, 1}, {1, 1}}}}
	p := l.startHaadKeepalived(conf(v1...))
	l.table.wait(t, "the first configuration in the IPVS table", table(v1...), 30*time.Second)

	// SIGHUP: rs1's weight 1 -> 2, rs2 removed, rs3 added, rr -> wrr, and
	// a second virtual server.
	v2 := []vsConf{{80, "wrr", []rsConf{{0, 2}, {2, 1}}}, {81, "rr", []rsConf{{1, 1}}}}
	if err := os.WriteFile(l.director.HaadFiles(l.dir).Keepalived, []byte(conf(v2...)), 0o644); err != nil {
		t.Fatal(err)
	}
	hup := time.Now()
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	seen := l.table.wait(t, "the table to follow the changed file after SIGHUP", table(v2...), 30*time.Second)
	t.Logf("SIGHUP: the table followed after %.2f s", seen.Sub(hup).Seconds())
	one := l.from(l.user.Addr)
	if got := one.spread(t, vipURL(80), 15); !sameCounts(got, map[string]int{"rs1": 10, "rs3": 5}) {
		t.Errorf("wrr 2:1 after SIGHUP: 15 requests went %v, want 10/5", got)
	}
	if got := one.spread(t, vipURL(81), 3); !sameCounts(got, map[string]int{"rs2": 3}) {
		t.Errorf("the virtual server added by SIGHUP: 3 requests went %v, want rs2", got)
	}

	// A runtime drain, then a crash: the kernel keeps the table as it was.
	rs3 := l.rsAddr(2, rsPort)
	l.haactl("drain", vsKey(80), rs3)
	drained := table(v2...)
	drained[vsKey(80)].Dests[rs3] = 0
	l.table.wait(t, "rs3 drained", drained, 10*time.Second)
	pr := startProber(t, one, vipURL(80), 50*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if got := l.table.get(t); !got.equal(drained) {
		t.Errorf("the IPVS table after haad was killed: %s, want it left as it was: %s", got, drained)
	}
	// The new haad takes the table over and adjusts it: the drain was the
	// old process's (runtime changes last until haad restarts).
	logFrom := len(l.haadLog(0))
	started := time.Now()
	l.startHaadKeepalived(conf(v2...))
	seen = l.table.wait(t, "the restarted haad to take the table over", table(v2...), 30*time.Second)
	t.Logf("restart after SIGKILL: the table taken over and adjusted %.2f s after the start", seen.Sub(started).Seconds())
	l.waitRunning(30 * time.Second)
	time.Sleep(300 * time.Millisecond)
	ps := pr.Stop()
	if n, _, first := failed(ps, time.Now(), time.Now()); n > 0 || len(ps) < 10 {
		t.Errorf("%d of %d requests failed across the crash and the restart (first: %v), want none", n, len(ps), first)
	}
	l.wantCleanLog(logFrom)
	if got := l.table.get(t); !got.equal(table(v2...)) || len(got) != 2 {
		t.Errorf("the IPVS table after the restart: %s, want exactly %s", got, table(v2...))
	}
	if got := one.spread(t, vipURL(80), 15); !sameCounts(got, map[string]int{"rs1": 10, "rs3": 5}) {
		t.Errorf("wrr 2:1 after the restart: 15 requests went %v, want 10/5", got)
	}
}

// nearCounts is sameCounts within slack of each count, the same total.
func nearCounts(got, want map[string]int, slack int) bool {
	if len(got) != len(want) {
		return false
	}
	total := 0
	for k, v := range want {
		if d := got[k] - v; d > slack || d < -slack {
			return false
		}
		total += got[k] - v
	}
	return total == 0
}
