package vrrp

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

var (
	ll1   = netip.MustParseAddr("fe80::1")
	ll2   = netip.MustParseAddr("fe80::2")
	vip6  = netip.MustParseAddr("fe80::100")
	vip6g = netip.MustParseAddr("fd77::100")
)

func packet6(tb testing.TB, a Advert, src, dst netip.Addr, hops uint8) []byte {
	tb.Helper()
	msg, err := a.Marshal(src, dst, ChecksumRFC)
	if err != nil {
		tb.Fatal(err)
	}
	return AppendIPv6(nil, IPv6Header{HopLimit: hops, NextHeader: Protocol, Src: src, Dst: dst}, msg)
}

func TestIPv6HeaderRoundTrip(t *testing.T) {
	pkt := AppendIPv6(nil, IPv6Header{TrafficClass: 0xc0, HopLimit: 255, NextHeader: Protocol, Src: ll1, Dst: GroupV6}, []byte{1, 2, 3})
	h, p, err := ParseIPv6(pkt)
	if err != nil {
		t.Fatal(err)
	}
	if h != (IPv6Header{TrafficClass: 0xc0, HopLimit: 255, NextHeader: Protocol, Src: ll1, Dst: GroupV6}) || string(p) != "\x01\x02\x03" {
		t.Fatalf("got %+v %v", h, p)
	}
	if _, _, err := ParseIPv6(pkt[:39]); err == nil {
		t.Fatal("a truncated header parsed")
	}
	if _, _, err := ParseIPv6(pkt[:41]); err == nil {
		t.Fatal("a payload shorter than its length parsed")
	}
}

// ipv6Backup is a running IPv6 backup of VRID 51 (multicast, or unicast
// to peers) attached to an interface.
func ipv6Backup(t *testing.T, peers ...netip.Addr) (*Iface, *Runner) {
	t.Helper()
	r := NewRunner(RunnerConfig{Config: Config{Name: "VI_6", VRID: 51, Priority: 100, Version: 3, Primary: ll2,
		Interval: time.Second, Addrs: []netip.Addr{vip6, vip6g}}, Group: GroupV6, Peers: peers}, nil, nil, nil, quiet(), nil)
	ifc := NewIface("eth0", quiet())
	if err := ifc.Add(r); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go r.Run(ctx, true)
	t.Cleanup(func() { cancel(); <-r.Done() })
	for r.Status().State != Backup {
		time.Sleep(time.Millisecond)
	}
	return ifc, r
}

// An IPv6 advert (RFC 5798: hop limit 255, to ff02::12, checksum with the
// IPv6 pseudo-header) reaches its instance; one with another hop limit,
// a bad checksum or IPv4 addresses is dropped and counted, the state
// untouched.
func TestIPv6AdvertReceiveChecks(t *testing.T) {
	ifc, r := ipv6Backup(t)
	good := Advert{Version: 3, VRID: 51, Priority: 200, Interval: time.Second, Addrs: []netip.Addr{vip6, vip6g}}
	ifc.Handle(packet6(t, good, ll1, GroupV6, 255))
	if got := r.Status().MasterAddr; got != ll1 {
		t.Fatalf("the backup follows %v, want %v", got, ll1)
	}
	badSum := packet6(t, good, ll1, GroupV6, 255)
	badSum[len(badSum)-1] ^= 1
	wrongList := good
	wrongList.Addrs = []netip.Addr{vip6g}
	for _, tc := range []struct {
		name   string
		pkt    []byte
		reason DropReason
	}{
		{"hop limit 254", packet6(t, good, ll1, GroupV6, 254), DropTTL},
		{"checksum", badSum, DropChecksum},
		{"address list", packet6(t, wrongList, ll1, GroupV6, 255), DropAddrList},
		{"unicast to a multicast instance", packet6(t, good, ll1, ll2, 255), DropDestination},
		{"another group", packet6(t, good, ll1, netip.MustParseAddr("ff02::13"), 255), DropDestination},
	} {
		before := r.Stats().Drops(tc.reason)
		ifc.Handle(tc.pkt)
		if got := r.Stats().Drops(tc.reason) - before; got != 1 {
			t.Errorf("%s: %d drops for %s, want 1", tc.name, got, tc.reason)
		}
	}
	if st := r.Status(); st.State != Backup || st.MasterAddr != ll1 {
		t.Fatalf("after the drops: %v following %v", st.State, st.MasterAddr)
	}
}

// keepalived sends unicast IPv6 adverts with the default hop limit (64):
// a unicast IPv6 instance takes them, a multicast one does not.
func TestIPv6UnicastAcceptsKeepalivedHopLimit(t *testing.T) {
	ifc, r := ipv6Backup(t, ll1)
	a := Advert{Version: 3, VRID: 51, Priority: 200, Interval: time.Second, Addrs: []netip.Addr{vip6, vip6g}}
	ifc.Handle(packet6(t, a, ll1, ll2, 64))
	if got := r.Status().MasterAddr; got != ll1 {
		t.Fatalf("unicast advert with hop limit 64 not taken: following %v (drops %d)", got, r.Stats().Drops(DropTTL))
	}
}

// The IPv6 receive path allocates nothing either.
func TestIPv6ReceivePathAllocatesNothing(t *testing.T) {
	ifc, _ := ipv6Backup(t)
	pkt := packet6(t, Advert{Version: 3, VRID: 51, Priority: 200, Interval: time.Second, Addrs: []netip.Addr{vip6, vip6g}}, ll1, GroupV6, 255)
	var a Advert
	ifc.handle(pkt, time.Now(), false, &a)
	if n := testing.AllocsPerRun(1000, func() { ifc.handle(pkt, time.Now(), false, &a) }); n != 0 {
		t.Errorf("%.1f allocations per received IPv6 advert, want 0", n)
	}
}
