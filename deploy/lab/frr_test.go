package lab

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

func TestFRRConfig(t *testing.T) {
	v4, err := NewFRRVRRP(netip.MustParseAddr("10.77.0.100"), IPv4, 51, 100, 100*time.Millisecond, true)
	if err != nil {
		t.Fatal(err)
	}
	v6, err := NewFRRVRRP(netip.MustParseAddr("fd77::100"), IPv6, 51, 100, 100*time.Millisecond, true)
	if err != nil {
		t.Fatal(err)
	}
	want4 := "interface eth0\n vrrp 51 version 3\n vrrp 51 priority 100\n vrrp 51 advertisement-interval 100\n vrrp 51 ip 10.77.0.100\n"
	if got := v4.Config(); got != want4 {
		t.Errorf("IPv4 config:\n%s\nwant:\n%s", got, want4)
	}
	v6.Preempt = false
	v6.Priority = 200
	v6.Interval = time.Second
	want6 := "interface eth0\n vrrp 51 version 3\n vrrp 51 priority 200\n vrrp 51 advertisement-interval 1000\n no vrrp 51 preempt\n vrrp 51 ipv6 fd77::100\n"
	if got := v6.Config(); got != want6 {
		t.Errorf("IPv6 config:\n%s\nwant:\n%s", got, want6)
	}

	m4, m6 := v4.Macvlan(), v6.Macvlan()
	if m4.Name != "vrrp4-51" || m4.MAC.String() != "00:00:5e:00:01:33" || m4.Addr.String() != "10.77.0.100/32" || m4.Parent != "eth0" {
		t.Errorf("IPv4 macvlan %+v", m4)
	}
	if m6.Name != "vrrp6-51" || m6.MAC.String() != "00:00:5e:00:02:33" || m6.Addr.String() != "fd77::100/128" {
		t.Errorf("IPv6 macvlan %+v", m6)
	}
	if len(m4.Sysctls) != 2 || m4.Sysctls[0] != [2]string{"net/ipv4/conf/eth0/arp_ignore", "2"} {
		t.Errorf("IPv4 sysctls %v", m4.Sysctls)
	}
	if len(m6.Sysctls) != 2 || m6.Sysctls[0] != [2]string{"net/ipv6/conf/vrrp6-51/accept_dad", "0"} {
		t.Errorf("IPv6 sysctls %v", m6.Sysctls)
	}

	// Both families of VRID 51: one interface block, the router's
	// settings once, both addresses.
	conf := FRRConfig("n1", v4, v6)
	if strings.Count(conf, "interface eth0") != 1 || strings.Count(conf, "vrrp 51 priority") != 1 ||
		!strings.Contains(conf, " vrrp 51 ip 10.77.0.100\n") || !strings.Contains(conf, " vrrp 51 ipv6 fd77::100\n") {
		t.Errorf("config of both families:\n%s", conf)
	}

	for _, bad := range []struct {
		vip      string
		fam      Family
		vrid     int
		prio     int
		interval time.Duration
	}{
		{"10.77.0.100", IPv6, 51, 100, time.Second},
		{"fd77::100", IPv4, 51, 100, time.Second},
		{"10.77.0.100", IPv4, 0, 100, time.Second},
		{"10.77.0.100", IPv4, 51, 255, time.Second},
		{"10.77.0.100", IPv4, 51, 100, 5 * time.Millisecond},
		{"10.77.0.100", IPv4, 51, 100, 105 * time.Millisecond},
	} {
		if _, err := NewFRRVRRP(netip.MustParseAddr(bad.vip), bad.fam, bad.vrid, bad.prio, bad.interval, true); err == nil {
			t.Errorf("NewFRRVRRP(%+v) accepted", bad)
		}
	}
}

// requireFRR skips t without namespaces or FRR, and fails it instead when
// HAA_REQUIRE_NETNS=1.
func requireFRR(t *testing.T) {
	t.Helper()
	Require(t)
	if err := FRRAvailable(); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("FRR test cannot run and %s=1: %v", RequireEnv, err)
		}
		t.Skipf("skipping FRR test: %v (or set %s=1 to make this a failure)", err, RequireEnv)
	}
}

// Two FRRs in a lab, for each family: the higher priority is master with
// the VIP on its running macvlan, the other backup with the VIP on a
// protodown one (not an active holder); the master's power-off moves the
// VIP, its return takes it back (preempt), its clean stop hands it over
// after the backup's skew time (priority 0).
func TestFRRPair(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fam Family
		vip netip.Addr
		mac string
	}{
		{IPv4, netip.MustParseAddr("10.77.0.100"), "00:00:5e:00:01:33"},
		{IPv6, netip.MustParseAddr("fd77::100"), "00:00:5e:00:02:33"},
	} {
		t.Run(tc.fam.String(), func(t *testing.T) {
			t.Parallel()
			testFRRPair(t, tc.fam, tc.vip, tc.mac)
		})
	}
}

func testFRRPair(t *testing.T, fam Family, vip netip.Addr, vmac string) {
	requireFRR(t)
	l := NewT(t, Options{Prefix: UniqueName("labfrr"), Nodes: 2})
	dir := FRRTempDir(t)
	n1, n2 := l.Nodes[0], l.Nodes[1]
	var frrs []*FRR
	t.Cleanup(func() {
		for _, f := range frrs {
			if err := f.Stop(2 * time.Second); err != nil {
				t.Errorf("stop FRR: %v", err)
			}
			if t.Failed() {
				b, _ := os.ReadFile(f.Files.VRRPLog)
				t.Logf("--- vrrpd log of %s:\n%s", f.Node.Name, frrTail(string(b), 40))
			}
		}
	})
	for i, n := range []*Node{n1, n2} {
		v, err := NewFRRVRRP(vip, fam, 51, 200-100*i, 100*time.Millisecond, true)
		if err != nil {
			t.Fatal(err)
		}
		f, err := n.StartFRR(dir, v)
		if err != nil {
			t.Fatal(err)
		}
		frrs = append(frrs, f)
	}
	if _, err := l.WaitActiveHolder(vip, n1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	st1, err := frrs[0].WaitStatus(51, fam, "Master", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	st2, err := frrs[1].WaitStatus(51, fam, "Backup", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	macvlan := frrs[0].Routers[0].Macvlan().Name
	if link, err := n1.ActiveLink(vip); err != nil || link != macvlan {
		t.Fatalf("n1 holds %s on %q (%v), want %s", vip, link, err, macvlan)
	}
	// The backup keeps the VIP on its macvlan, protodown: not active.
	if link, err := n2.ActiveLink(vip); err != nil || link != "" {
		t.Fatalf("backup n2 actively holds %s on %q (%v)", vip, link, err)
	}
	if ok, err := n1.HasAddr(vip); err != nil || ok {
		t.Fatalf("n1 has %s on eth0 (%v)", vip, err)
	}
	t.Logf("master %+v\nbackup %+v", st1, st2)

	// Both macvlans carry the virtual MAC: once the bridge forgets the
	// master's port, it floods frames to it, and the backup's macvlan,
	// protodown but up, takes them in and answers. The outage says little.
	to, err := l.MeasureTakeover(l.Clients[0], vip, n1, frrs[0].PowerOff, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if to.NewMaster != n2 {
		t.Fatalf("new master %s, want n2", to.NewMaster.Name)
	}
	t.Logf("FRR n1 powered off: n2 master after %v, outage %v", to.Took, to.Outage)
	if mac, err := l.Clients[0].Neigh(vip); err != nil || mac.String() != vmac {
		t.Fatalf("client's neighbour entry for %s: %v (%v), want the virtual MAC %s", vip, mac, err, vmac)
	}
	if err := frrs[0].PowerOn(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.WaitActiveHolder(vip, n1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := frrs[1].WaitStatus(51, fam, "Backup", 2*time.Second); err != nil {
		t.Fatal(err)
	}

	// A clean stop (vrrpd, then zebra): vrrpd sends priority 0 and has
	// zebra set its macvlan protodown before zebra exits, so n2 takes
	// over after its skew time and n1 answers for nothing.
	at := time.Now()
	if err := frrs[0].Stop(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := l.WaitActiveHolder(vip, n2, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("FRR n1 stopped: n2 master after %v", time.Since(at))
	if st, err := frrs[1].WaitStatus(51, fam, "Master", time.Second); err != nil {
		t.Fatalf("%v: %+v", err, st)
	}
}

func frrTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
