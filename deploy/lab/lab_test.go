package lab

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

// namespacesWithPrefix lists `ip netns list` entries starting with prefix+"-".
func namespacesWithPrefix(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	var found []string
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, prefix+"-") {
			found = append(found, name)
		}
	}
	return found
}

func TestPingAndLinkDown(t *testing.T) {
	t.Parallel()
	l := NewT(t, Options{Prefix: UniqueName("labping"), Nodes: 2, Clients: 1})
	if got := namespacesWithPrefix(t, l.Prefix); len(got) != 4 {
		t.Fatalf("namespaces %v, want switch + 2 nodes + 1 client", got)
	}
	c, n1 := l.Clients[0], l.Nodes[0]
	if c.Addr != netip.MustParseAddr("10.77.0.200") || n1.Addr != netip.MustParseAddr("10.77.0.1") ||
		l.Nodes[1].Addr != netip.MustParseAddr("10.77.0.2") {
		t.Fatalf("addresses: client %s, nodes %s %s", c.Addr, n1.Addr, l.Nodes[1].Addr)
	}
	if ok, err := n1.HasAddr(n1.Addr); err != nil || !ok {
		t.Fatalf("n1 HasAddr(%s) = %v, %v", n1.Addr, ok, err)
	}
	if ok, err := n1.HasAddr(netip.MustParseAddr("10.77.0.99")); err != nil || ok {
		t.Fatalf("n1 HasAddr(10.77.0.99) = %v, %v", ok, err)
	}

	// Warm-up: the first exchanges resolve neighbours (an ARP request
	// lost while the bridge's ports come up is sent again a second later);
	// steady state is measured after ten replies.
	warm, err := c.StartPing(n1.Addr, 2*time.Millisecond, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	werr := warm.WaitReplies(10, 4*time.Second)
	warm.Stop()
	if werr != nil {
		t.Fatal(werr)
	}

	// Steady state.
	p, err := c.StartPing(n1.Addr, 2*time.Millisecond, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitReplies(1, 2*time.Second); err != nil {
		p.Stop()
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	s := p.Stop()
	t.Logf("steady: sent %d received %d longest gap %v", s.Sent, s.Received, s.LongestGap)
	if s.Sent < 50 {
		t.Errorf("sent %d echo requests in ~300ms at 2ms, want >= 50", s.Sent)
	}
	if float64(s.Received) <= 0.8*float64(s.Sent) {
		t.Errorf("received %d of %d", s.Received, s.Sent)
	}
	if s.LongestGap >= 50*time.Millisecond {
		t.Errorf("longest gap %v in steady state, want < 50ms", s.LongestGap)
	}
	if mac, err := c.Neigh(n1.Addr); err != nil || mac.String() != n1.MAC.String() {
		t.Errorf("client ARP entry for n1 = %v, %v; want %v", mac, err, n1.MAC)
	}

	// Outage: n1's link down for 200ms.
	p, err = c.StartPing(n1.Addr, 2*time.Millisecond, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitReplies(10, 2*time.Second); err != nil {
		p.Stop()
		t.Fatal(err)
	}
	event := time.Now()
	if err := n1.LinkDown(); err != nil {
		p.Stop()
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := n1.LinkUp(); err != nil {
		p.Stop()
		t.Fatal(err)
	}
	err = p.WaitReplies(5, 2*time.Second)
	s = p.Stop()
	if err != nil {
		t.Fatalf("after LinkUp: %v", err)
	}
	gap := s.GapAfter(event)
	t.Logf("outage: sent %d received %d send errors %d gap after event %v (longest %v from %v after event)",
		s.Sent, s.Received, s.SendErrors, gap, s.LongestGap, s.GapStart.Sub(event))
	if gap < 150*time.Millisecond || gap >= 2*time.Second {
		t.Errorf("gap after LinkDown %v, want 150ms..2s", gap)
	}
	if ok, err := n1.HasAddr(n1.Addr); err != nil || !ok {
		t.Errorf("n1 lost its address over LinkDown/LinkUp: %v, %v", ok, err)
	}

	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if left := namespacesWithPrefix(t, l.Prefix); len(left) != 0 {
		t.Fatalf("namespaces left after Close: %v", left)
	}
}

func TestCloseKillsProcesses(t *testing.T) {
	t.Parallel()
	l := NewT(t, Options{Prefix: UniqueName("labproc"), Nodes: 1, Clients: -1})
	if len(l.Clients) != 0 {
		t.Fatalf("clients %d, want none", len(l.Clients))
	}
	n := l.Nodes[0]
	logPath := filepath.Join(t.TempDir(), "sleep.log")
	p, err := n.Start(logPath, "sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	// ip netns exec execs into the program: the pid is sleep's own, inside
	// the node's namespace.
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(p.Pid()) + "/comm")
	if err != nil || strings.TrimSpace(string(comm)) != "sleep" {
		t.Fatalf("pid %d is %q (%v), want sleep", p.Pid(), comm, err)
	}
	pids, err := n.Pids()
	if err != nil || len(pids) != 1 || pids[0] != p.Pid() {
		t.Fatalf("namespace pids %v (%v), want [%d]", pids, err, p.Pid())
	}
	start := time.Now()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !p.Exited() {
		t.Fatal("sleep still running after Close")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v", d)
	}
	var ee *exec.ExitError
	if err := p.Wait(); !errors.As(err, &ee) {
		t.Errorf("sleep exit: %v, want killed by a signal", err)
	}
	if left := namespacesWithPrefix(t, l.Prefix); len(left) != 0 {
		t.Fatalf("namespaces left after Close: %v", left)
	}
	if _, err := n.Start(logPath, "sleep", "1"); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
}

func TestProcSignalStopKill(t *testing.T) {
	t.Parallel()
	l := NewT(t, Options{Prefix: UniqueName("labsig"), Nodes: 1, Clients: -1})
	n := l.Nodes[0]
	dir := t.TempDir()

	// The signal reaches sleep itself: it dies of SIGUSR1.
	p, err := n.Start(filepath.Join(dir, "a.log"), "sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(p, 2*time.Second); err == nil || !strings.Contains(err.Error(), "user defined signal 1") {
		t.Errorf("after SIGUSR1: %v", err)
	}
	if err := p.Signal(syscall.SIGUSR1); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after exit: %v, want os.ErrProcessDone", err)
	}

	// Stop: SIGTERM is enough for sleep.
	p, err = n.Start(filepath.Join(dir, "b.log"), "sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(2 * time.Second); err == nil || !strings.Contains(err.Error(), "terminated") {
		t.Errorf("Stop: %v, want signal: terminated", err)
	}

	// Stop falls back to SIGKILL; Kill kills the whole group.
	p, err = n.Start(filepath.Join(dir, "c.log"), "sh", "-c", `trap "" TERM; echo started; sleep 60 & wait`)
	if err != nil {
		t.Fatal(err)
	}
	waitPids(t, n, 2)
	start := time.Now()
	if err := p.Stop(200 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Stop of a TERM-ignoring shell: %v, want signal: killed", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("Stop took %v", d)
	}
	waitPids(t, n, 0) // its sleep child went with the group
	if out, _ := os.ReadFile(filepath.Join(dir, "c.log")); string(out) != "started\n" {
		t.Errorf("log %q", out)
	}
}

func waitExit(p *Proc, timeout time.Duration) error {
	select {
	case <-p.Done():
		return p.Wait()
	case <-time.After(timeout):
		return errors.New("still running")
	}
}

// waitPids waits until the namespace holds exactly want processes.
func waitPids(t *testing.T, n *Node, want int) {
	t.Helper()
	var pids []int
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		var err error
		if pids, err = n.Pids(); err != nil {
			t.Fatal(err)
		}
		if len(pids) == want {
			return
		}
	}
	t.Fatalf("%s: processes %v, want %d", n.NS.Name, pids, want)
}

// TestGratuitousARP checks that clients update an existing ARP entry from a
// gratuitous ARP at once (what a VIP takeover relies on), and that
// unsolicited ARP does not create entries (arp_accept=0, the Linux default).
func TestGratuitousARP(t *testing.T) {
	t.Parallel()
	l := NewT(t, Options{Prefix: UniqueName("labgarp"), Nodes: 2})
	c, n1, n2 := l.Clients[0], l.Nodes[0], l.Nodes[1]
	p, err := c.StartPing(n1.Addr, 5*time.Millisecond, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	err = p.WaitReplies(3, 2*time.Second)
	p.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if mac, err := c.Neigh(n1.Addr); err != nil || mac.String() != n1.MAC.String() {
		t.Fatalf("client entry for n1: %v, %v", mac, err)
	}
	unknown := netip.MustParseAddr("10.77.0.99")
	// n2 claims n1's address, and an address nobody asked for.
	err = n2.Do(func() error {
		ifi, err := net.InterfaceByName(n2.Iface)
		if err != nil {
			return err
		}
		ac, err := arp.Dial(ifi)
		if err != nil {
			return err
		}
		defer ac.Close()
		for _, a := range []netip.Addr{n1.Addr, unknown} {
			pkt, err := arp.NewPacket(arp.OperationRequest, n2.MAC, a, ethernet.Broadcast, a)
			if err != nil {
				return err
			}
			if err := ac.WriteTo(pkt, ethernet.Broadcast); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var mac net.HardwareAddr
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if mac, err = c.Neigh(n1.Addr); err == nil && mac.String() == n2.MAC.String() {
			break
		}
	}
	if mac.String() != n2.MAC.String() {
		t.Fatalf("client entry for %s after gratuitous ARP from n2: %v, %v; want %v", n1.Addr, mac, err, n2.MAC)
	}
	if mac, err := c.Neigh(unknown); !errors.Is(err, ErrNoNeighbor) {
		t.Errorf("gratuitous ARP created an entry for %s: %v, %v", unknown, mac, err)
	}
}

// TestTwoLabsSameSubnet: labs share nothing, not even the address plan.
func TestTwoLabsSameSubnet(t *testing.T) {
	t.Parallel()
	a := NewT(t, Options{Prefix: UniqueName("labA"), Nodes: 1})
	b := NewT(t, Options{Prefix: UniqueName("labB"), Nodes: 1})
	if err := a.Nodes[0].LinkDown(); err != nil {
		t.Fatal(err)
	}
	p, err := b.Clients[0].StartPing(b.Nodes[0].Addr, 2*time.Millisecond, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	err = p.WaitReplies(20, 2*time.Second)
	p.Stop()
	if err != nil {
		t.Fatalf("lab B affected by lab A: %v", err)
	}
	p, err = a.Clients[0].StartPing(a.Nodes[0].Addr, 2*time.Millisecond, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	s := p.Stop()
	if s.Received != 0 {
		t.Errorf("lab A's n1 is down but answered %d pings", s.Received)
	}
}

func TestKeepalivedPeer(t *testing.T) {
	t.Parallel()
	if _, err := KeepalivedPath(); err != nil {
		t.Skip(err)
	}
	l := NewT(t, Options{Prefix: UniqueName("labka"), Nodes: 1})
	n, c := l.Nodes[0], l.Clients[0]
	vip := netip.MustParseAddr("10.77.0.100")
	conf := `global_defs {
  router_id ` + n.Name + `
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority 100
  advert_int 0.05
  version 3
  virtual_ipaddress {
    ` + vip.String() + `/24
  }
}
`
	dir := t.TempDir()
	p, err := n.StartKeepalived(dir, conf)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			out, _ := os.ReadFile(n.KeepalivedFiles(dir).Log)
			t.Logf("keepalived log:\n%s", out)
		}
	}()
	var has bool
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && !has && !p.Exited(); time.Sleep(10 * time.Millisecond) {
		if has, err = n.HasAddr(vip); err != nil {
			t.Fatal(err)
		}
	}
	if !has {
		t.Fatalf("keepalived did not become master with %s", vip)
	}
	waitPids(t, n, 2) // parent + VRRP child
	ping, err := c.StartPing(vip, 2*time.Millisecond, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	err = ping.WaitReplies(5, 2*time.Second)
	ping.Stop()
	if err != nil {
		t.Fatalf("VIP: %v", err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	waitPids(t, n, 0) // the crash took the VRRP child too
	// A crash does not clean up: the VIP stays.
	if has, err := n.HasAddr(vip); err != nil || !has {
		t.Errorf("after SIGKILL, VIP present = %v, %v; want still present", has, err)
	}
}

// Pure parts, no root needed.

func TestOptionsAndAddresses(t *testing.T) {
	s := netip.MustParsePrefix("10.77.0.0/24")
	if got := HostAddr(s, 1); got != netip.MustParseAddr("10.77.0.1") {
		t.Errorf("HostAddr 1 = %s", got)
	}
	if got := HostAddr(netip.MustParsePrefix("10.0.0.0/16"), 300); got != netip.MustParseAddr("10.0.1.44") {
		t.Errorf("HostAddr 300 = %s", got)
	}
	for _, tc := range []struct {
		opts Options
		ok   bool
	}{
		{Options{Nodes: 3, Clients: 1}, true},
		{Options{Nodes: 199, Clients: 56}, false},
		{Options{Nodes: 199, Clients: 55}, true}, // .200 .. .254
		{Options{Nodes: 200, Clients: 1}, false},
		{Options{Nodes: -1, Clients: 1}, false},
	} {
		err := checkOptions(tc.opts, s)
		if (err == nil) != tc.ok {
			t.Errorf("checkOptions(%+v) = %v", tc.opts, err)
		}
	}
	if err := checkOptions(Options{Nodes: 2, Clients: 1}, netip.MustParsePrefix("fd00::/64")); err == nil {
		t.Error("IPv6 subnet accepted")
	}
	if err := checkOptions(Options{Nodes: 2, Clients: 1}, netip.MustParsePrefix("10.0.0.0/25")); err == nil {
		t.Error("/25 accepted with a client at .200")
	}
}

func TestPingStatsGaps(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	s := PingStats{Start: t0, End: ms(100), Replies: []time.Time{ms(1), ms(3), ms(40), ms(42), ms(50), ms(95)}}
	s.LongestGap, s.GapStart = s.longestGap(time.Time{})
	if s.LongestGap != 45*time.Millisecond || !s.GapStart.Equal(ms(50)) {
		t.Errorf("longest gap %v from %v", s.LongestGap, s.GapStart.Sub(t0))
	}
	if g := s.GapAfter(ms(41)); g != 45*time.Millisecond {
		t.Errorf("GapAfter(41ms) = %v", g)
	}
	if g := s.GapAfter(ms(96)); g != 5*time.Millisecond {
		t.Errorf("GapAfter(96ms) = %v, want the trailing 5ms", g)
	}
	s.Replies = []time.Time{ms(1), ms(3), ms(40)}
	if g := s.GapAfter(ms(20)); g != 60*time.Millisecond {
		t.Errorf("GapAfter with an outage until End = %v, want 60ms", g)
	}
	empty := PingStats{Start: t0, End: ms(100)}
	if g, _ := empty.longestGap(time.Time{}); g != 100*time.Millisecond {
		t.Errorf("no replies: gap %v, want the whole run", g)
	}
}

// A lab whose prefix is taken fails to build and leaves the other lab alone.
func TestNewPrefixClash(t *testing.T) {
	t.Parallel()
	start := time.Now()
	a := NewT(t, Options{Prefix: UniqueName("labdup"), Nodes: 3})
	t.Logf("3 nodes + 1 client built in %v", time.Since(start))
	if _, err := New(Options{Prefix: a.Prefix, Nodes: 3}); err == nil {
		t.Fatal("second lab with the same prefix was built")
	}
	if got := namespacesWithPrefix(t, a.Prefix); len(got) != 5 {
		t.Fatalf("namespaces of the first lab after the clash: %v", got)
	}
	p, err := a.Clients[0].StartPing(a.Nodes[2].Addr, 2*time.Millisecond, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	err = p.WaitReplies(3, 2*time.Second)
	p.Stop()
	if err != nil {
		t.Fatal(err)
	}
}
