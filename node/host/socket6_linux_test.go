package host

import (
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
	"github.com/haa-dev/haa/node/vrrp"
)

// A real IPv6 VRRP socket pair across a veth: an advert sent from a
// link-local address to ff02::12 arrives behind a rebuilt IPv6 header
// with its source, destination and hop limit 255, and the checksum
// (pseudo-header included) verifies; a unicast one likewise.
func TestSocket6SendReceive(t *testing.T) {
	rx, tx := newSocket6Pair(t)
	lls := []string{"fe80::2", "fe80::1"}
	src, dst := netip.MustParseAddr(lls[1]), netip.MustParseAddr(lls[0])
	vips := []netip.Addr{netip.MustParseAddr("fe80::100"), netip.MustParseAddr("fd77::100")}
	for _, to := range []netip.Addr{vrrp.GroupV6, dst} {
		a := vrrp.Advert{Version: 3, VRID: 51, Priority: 100, Interval: time.Second, Addrs: vips}
		msg, err := a.Marshal(src, to, vrrp.ChecksumRFC)
		if err != nil {
			t.Fatal(err)
		}
		sent := time.Now()
		if err := tx.Send(src, to, msg); err != nil {
			t.Fatalf("send to %v: %v", to, err)
		}
		buf := make([]byte, 2048)
		must(t, rx.f.SetReadDeadline(time.Now().Add(5*time.Second)))
		n, at, err := rx.ReadPacket(buf)
		if err != nil {
			t.Fatalf("read (to %v): %v", to, err)
		}
		h, payload, err := vrrp.ParseIPv6(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		if h.Src != src || h.Dst != to || h.HopLimit != 255 || h.NextHeader != vrrp.Protocol {
			t.Errorf("header %+v, want %v -> %v, hop limit 255, next header 112", h, src, to)
		}
		got, err := vrrp.ParseAdvert(payload, h.Src, h.Dst, vrrp.ChecksumRFC)
		if err != nil {
			t.Fatalf("advert to %v: %v", to, err)
		}
		if got.VRID != 51 || len(got.Addrs) != 2 || got.Addrs[0] != vips[0] {
			t.Errorf("advert %+v", got)
		}
		if at.Before(sent.Add(-time.Second)) || at.After(time.Now()) {
			t.Errorf("arrival %v not between the send and now", at)
		}
	}
}

// newSocket6Pair is a receiving IPv6 socket on eth0 (fe80::2) in one
// namespace, joined to ff02::12, and a sending one (fe80::1, fe80::66) on
// the other end of a veth pair in another.
func newSocket6Pair(t *testing.T) (rx, tx *Socket6) {
	t.Helper()
	lab.Require(t)
	var nss []*lab.NS
	for _, p := range []string{"haa6A", "haa6B"} {
		ns, err := lab.NewNS(lab.UniqueName(p))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := ns.Close(); err != nil {
				t.Errorf("delete namespace: %v", err)
			}
		})
		nss = append(nss, ns)
	}
	must(t, nss[0].IP("link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", nss[1].Name))
	for k, ns := range nss {
		must(t, ns.WriteSysctl("net/ipv6/conf/eth0/accept_dad", "0"))
		must(t, ns.WriteSysctl("net/ipv6/conf/eth0/addr_gen_mode", "1"))
		for _, a := range [][]string{{"fe80::2"}, {"fe80::1", "fe80::66"}}[k] {
			must(t, ns.IP("addr", "add", a+"/64", "dev", "eth0", "nodad"))
		}
		must(t, ns.IP("link", "set", "eth0", "up"))
	}
	for k, s := range []**Socket6{&rx, &tx} {
		must(t, nss[k].Do(func() error {
			var err error
			*s, err = ListenSocket6("eth0")
			return err
		}))
		t.Cleanup(func() { (*s).Close() })
	}
	must(t, rx.JoinGroup(vrrp.GroupV6))
	// The link-local route comes a moment after the link: wait for a
	// packet to go through, then drain it.
	src := netip.MustParseAddr("fe80::1")
	probe, err := (&vrrp.Advert{Version: 3, VRID: 1, Priority: 1, Interval: time.Second,
		Addrs: []netip.Addr{src}}).Marshal(src, vrrp.GroupV6, vrrp.ChecksumRFC)
	must(t, err)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err = tx.Send(src, vrrp.GroupV6, probe); err == nil || time.Now().After(deadline) {
			break
		}
	}
	must(t, err)
	sources6(t, rx.f, rx.ReadPacket)
	return rx, tx
}

// sources6 is sources for IPv6 packets.
func sources6(t *testing.T, f *os.File, rd func([]byte) (int, time.Time, error)) []netip.Addr {
	t.Helper()
	return readSources(t, f, rd, func(b []byte) (netip.Addr, error) {
		h, _, err := vrrp.ParseIPv6(b)
		return h.Src, err
	})
}

// The IPv6 priority lane, as IPv4's (TestLaneCarriesOnlyItsSources): its
// kernel filter, which compares the source address four bytes at a time
// from the network header, lets through its sources only; the main socket
// gets everything else.
func TestLane6CarriesOnlyItsSources(t *testing.T) {
	rx, tx := newSocket6Pair(t)
	master, other := netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fe80::66")
	msg := func(src netip.Addr) []byte {
		m, err := (&vrrp.Advert{Version: 3, VRID: 51, Priority: 100, Interval: time.Second,
			Addrs: []netip.Addr{netip.MustParseAddr("fe80::100")}}).Marshal(src, vrrp.GroupV6, vrrp.ChecksumRFC)
		must(t, err)
		return m
	}
	send := func() {
		for _, src := range []netip.Addr{master, other, master} {
			must(t, tx.Send(src, vrrp.GroupV6, msg(src)))
		}
	}
	lane := rx.Lane()
	send()
	if got := sources6(t, rx.lane, lane.ReadPacket); len(got) != 0 {
		t.Fatalf("a lane without sources carried %v", got)
	}
	if got := sources6(t, rx.f, rx.ReadPacket); len(got) != 3 {
		t.Fatalf("the main socket got %v, want all 3", got)
	}
	// A neighbour of master's (same first 12 bytes) stays on the main
	// socket: all four words are compared.
	must(t, lane.SetSources([]netip.Addr{netip.MustParseAddr("fe80::3"), master}))
	send()
	if got := sources6(t, rx.lane, lane.ReadPacket); len(got) != 2 || got[0] != master || got[1] != master {
		t.Fatalf("the lane carried %v, want the master's two", got)
	}
	if got := sources6(t, rx.f, rx.ReadPacket); len(got) != 1 || got[0] != other {
		t.Fatalf("the main socket got %v, want only the other's", got)
	}
	must(t, lane.SetSources(nil))
	send()
	if got := sources6(t, rx.f, rx.ReadPacket); len(got) != 3 {
		t.Fatalf("the main socket got %v, want all 3 again", got)
	}
	if err := lane.SetSources(make([]netip.Addr, maxLaneSources6+1)); err == nil {
		t.Fatal("more sources than the filter holds were accepted")
	}
}
