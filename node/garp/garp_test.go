package garp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

var staleMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}

// pair is two namespaces A and B joined by a veth pair, eth0 on both sides.
type pair struct {
	A, B *lab.NS
}

func newPair(t *testing.T) *pair {
	t.Helper()
	lab.Require(t)
	p := &pair{A: newNS(t, "haagarpA"), B: newNS(t, "haagarpB")}
	run(t, p.A.IP("link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", p.B.Name))
	for _, ns := range []*lab.NS{p.A, p.B} {
		// No DAD: IPv6 link-local and test addresses are usable at once.
		if out, err := ns.Output("sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0"); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		run(t, ns.IP("link", "set", "eth0", "up"))
	}
	return p
}

func newNS(t *testing.T, prefix string) *lab.NS {
	t.Helper()
	ns, err := lab.NewNS(lab.UniqueName(prefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ns.Close(); err != nil {
			t.Errorf("delete namespace: %v", err)
		}
	})
	return ns
}

func run(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// openSender opens a Sender on eth0 inside ns.
func openSender(t *testing.T, ns *lab.NS) *Sender {
	t.Helper()
	var s *Sender
	run(t, ns.Do(func() (err error) {
		s, err = Open("eth0")
		return err
	}))
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// listen opens a packet socket for ethertype proto on eth0 inside ns.
func listen(t *testing.T, ns *lab.NS, proto int) *packet.Conn {
	t.Helper()
	var c *packet.Conn
	run(t, ns.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		c, err = packet.Listen(ifi, packet.Raw, proto, nil)
		return err
	}))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func handle(t *testing.T, ns *lab.NS) *netlink.Handle {
	t.Helper()
	h, err := ns.Handle()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func linkMAC(t *testing.T, ns *lab.NS) net.HardwareAddr {
	t.Helper()
	l, err := handle(t, ns).LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().HardwareAddr
}

// waitNeigh waits until ns's neighbour entry for ip on eth0 has lladdr want.
func waitNeigh(t *testing.T, ns *lab.NS, ip netip.Addr, want net.HardwareAddr) {
	t.Helper()
	h := handle(t, ns)
	l, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	fam := unix.AF_INET
	if ip.Is6() {
		fam = unix.AF_INET6
	}
	var last string
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		ns, err := h.NeighList(l.Attrs().Index, fam)
		if err != nil {
			t.Fatal(err)
		}
		last = "no entry"
		for _, n := range ns {
			if a, _ := netip.AddrFromSlice(n.IP); a.Unmap() == ip {
				last = fmt.Sprintf("lladdr %s state %#x", n.HardwareAddr, n.State)
				if bytes.Equal(n.HardwareAddr, want) {
					return
				}
			}
		}
	}
	t.Fatalf("neighbour %s: want lladdr %s, have %s", ip, want, last)
}

func TestAnnounceIPv4(t *testing.T) {
	p := newPair(t)
	vip := netip.MustParseAddr("10.77.0.100")
	// B knows the VIP at the old master's MAC. A has no IPv4 address at
	// all: the Sender must not need one.
	run(t, p.B.IP("addr", "add", "10.77.0.2/24", "dev", "eth0"))
	run(t, p.B.IP("neigh", "add", vip.String(), "lladdr", staleMAC.String(), "dev", "eth0", "nud", "stale"))
	rx := listen(t, p.B, unix.ETH_P_ARP)

	s := openSender(t, p.A)
	mac := linkMAC(t, p.A)
	if !bytes.Equal(s.HardwareAddr(), mac) {
		t.Fatalf("HardwareAddr = %s, want eth0's %s", s.HardwareAddr(), mac)
	}
	if err := s.Announce(vip); err != nil {
		t.Fatal(err)
	}

	// (a) the frame, as keepalived sends it.
	f, a := readARP(t, rx, vip)
	if !bytes.Equal(f.Destination, ethernet.Broadcast) || !bytes.Equal(f.Source, mac) {
		t.Errorf("ethernet %s -> %s, want %s -> broadcast", f.Source, f.Destination, mac)
	}
	if a.Operation != arp.OperationRequest {
		t.Errorf("operation %v, want request", a.Operation)
	}
	if !bytes.Equal(a.SenderHardwareAddr, mac) || a.SenderIP != vip || a.TargetIP != vip {
		t.Errorf("arp sender %s %s target %s, want %s %s target %s", a.SenderHardwareAddr, a.SenderIP, a.TargetIP, mac, vip, vip)
	}
	if !bytes.Equal(a.TargetHardwareAddr, ethernet.Broadcast) {
		t.Errorf("target MAC %s, want ff:ff:ff:ff:ff:ff (keepalived's)", a.TargetHardwareAddr)
	}

	// (b) what clients rely on: B's entry moved to A's MAC.
	waitNeigh(t, p.B, vip, mac)
}

// readARP returns the next ARP frame about target received on c.
func readARP(t *testing.T, c *packet.Conn, target netip.Addr) (*ethernet.Frame, *arp.Packet) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1600)
	for {
		n, _, err := c.ReadFrom(b)
		if err != nil {
			t.Fatalf("no ARP for %s received: %v", target, err)
		}
		var f ethernet.Frame
		if err := f.UnmarshalBinary(b[:n]); err != nil {
			continue
		}
		var a arp.Packet
		if err := a.UnmarshalBinary(f.Payload); err != nil || a.TargetIP != target {
			continue
		}
		return &f, &a
	}
}

func TestAnnounceIPv6(t *testing.T) {
	p := newPair(t)
	vip := netip.MustParseAddr("fd00:77::100")
	run(t, p.A.IP("addr", "add", vip.String()+"/64", "dev", "eth0", "nodad"))
	run(t, p.B.IP("addr", "add", "fd00:77::2/64", "dev", "eth0", "nodad"))
	run(t, p.B.IP("-6", "neigh", "add", vip.String(), "lladdr", staleMAC.String(), "dev", "eth0", "nud", "stale"))
	rx := listen(t, p.B, unix.ETH_P_IPV6)

	s := openSender(t, p.A)
	mac := linkMAC(t, p.A)
	if err := s.Announce(vip); err != nil {
		t.Fatal(err)
	}

	f, src, dst, hops, na := readNA(t, rx, vip)
	if want := (net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}); !bytes.Equal(f.Destination, want) || !bytes.Equal(f.Source, mac) {
		t.Errorf("ethernet %s -> %s, want %s -> %s", f.Source, f.Destination, mac, want)
	}
	if src != vip || dst != allNodes || hops != 255 {
		t.Errorf("ipv6 %s -> %s hop limit %d, want %s -> ff02::1 hop limit 255", src, dst, hops, vip)
	}
	if !na.Override || na.Solicited || na.Router {
		t.Errorf("flags router=%v solicited=%v override=%v, want override only (forwarding is off)", na.Router, na.Solicited, na.Override)
	}
	var lla net.HardwareAddr
	for _, o := range na.Options {
		if l, ok := o.(*ndp.LinkLayerAddress); ok && l.Direction == ndp.Target {
			lla = l.Addr
		}
	}
	if !bytes.Equal(lla, mac) {
		t.Errorf("target link-layer address option %s, want %s", lla, mac)
	}

	waitNeigh(t, p.B, vip, mac)

	// An address that is not (yet) on A still goes out, from itself.
	other := netip.MustParseAddr("fd00:77::200")
	if err := s.Announce(other); err != nil {
		t.Fatalf("address not on the interface: %v", err)
	}
	if _, src, _, _, _ := readNA(t, rx, other); src != other {
		t.Errorf("source %s, want %s", src, other)
	}
}

// readNA returns the next neighbour advertisement for target received on c,
// with its IPv6 source, destination and hop limit.
func readNA(t *testing.T, c *packet.Conn, target netip.Addr) (*ethernet.Frame, netip.Addr, netip.Addr, int, *ndp.NeighborAdvertisement) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1600)
	for {
		n, _, err := c.ReadFrom(b)
		if err != nil {
			t.Fatalf("no neighbour advertisement for %s received: %v", target, err)
		}
		var f ethernet.Frame
		if err := f.UnmarshalBinary(b[:n]); err != nil || f.EtherType != ethernet.EtherTypeIPv6 {
			continue
		}
		h, err := ipv6.ParseHeader(f.Payload)
		if err != nil || h.NextHeader != unix.IPPROTO_ICMPV6 || len(f.Payload) < ipv6.HeaderLen+h.PayloadLen {
			continue
		}
		m, err := ndp.ParseMessage(f.Payload[ipv6.HeaderLen : ipv6.HeaderLen+h.PayloadLen])
		if err != nil {
			continue
		}
		na, ok := m.(*ndp.NeighborAdvertisement)
		if !ok || na.TargetAddress != target {
			continue
		}
		src, _ := netip.AddrFromSlice(h.Src)
		dst, _ := netip.AddrFromSlice(h.Dst)
		return &f, src, dst, h.HopLimit, na
	}
}

func TestAnnounceRouterFlag(t *testing.T) {
	p := newPair(t)
	vip := netip.MustParseAddr("fd00:78::1")
	if out, err := p.A.Output("sysctl", "-qw", "net.ipv6.conf.eth0.forwarding=1"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	run(t, p.A.IP("addr", "add", vip.String()+"/64", "dev", "eth0", "nodad"))
	rx := listen(t, p.B, unix.ETH_P_IPV6)
	s := openSender(t, p.A)
	if err := s.Announce(vip); err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, na := readNA(t, rx, vip); !na.Router || !na.Override {
		t.Errorf("router=%v override=%v, want both with forwarding on (as keepalived)", na.Router, na.Override)
	}
}

// TestAnnounceConcurrent shares one Sender between goroutines, as the VRRP
// instances of an interface do; run it with -race.
func TestAnnounceConcurrent(t *testing.T) {
	p := newPair(t)
	rx := listen(t, p.B, unix.ETH_P_ARP)
	s := openSender(t, p.A)

	const workers, each = 8, 10
	var wg sync.WaitGroup
	errc := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := s.Announce(netip.AddrFrom4([4]byte{10, 77, byte(w), byte(i + 1)})); err != nil {
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

	seen := map[netip.Addr]bool{}
	if err := rx.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1600)
	for len(seen) < workers*each {
		n, _, err := rx.ReadFrom(b)
		if err != nil {
			t.Fatalf("received %d of %d announcements: %v", len(seen), workers*each, err)
		}
		var f ethernet.Frame
		var a arp.Packet
		if f.UnmarshalBinary(b[:n]) == nil && a.UnmarshalBinary(f.Payload) == nil && a.SenderIP == a.TargetIP {
			seen[a.TargetIP] = true
		}
	}
}

func TestOpenErrors(t *testing.T) {
	lab.Require(t)
	ns := newNS(t, "haagarpE")
	err := ns.Do(func() error {
		_, err := Open("nonexistent0")
		return err
	})
	if err == nil {
		t.Error("Open(nonexistent0): no error")
	}
	// lo has no MAC address.
	err = ns.Do(func() error {
		_, err := Open("lo")
		return err
	})
	if err == nil {
		t.Error("Open(lo): no error")
	} else {
		t.Logf("Open(lo): %v", err)
	}
}

func TestAnnounceBadAddr(t *testing.T) {
	p := newPair(t)
	s := openSender(t, p.A)
	for _, a := range []netip.Addr{{}, netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("224.0.0.18"),
		netip.MustParseAddr("255.255.255.255"), netip.MustParseAddr("::"), netip.MustParseAddr("ff02::1")} {
		if err := s.Announce(a); err == nil {
			t.Errorf("Announce(%v): no error", a)
		}
	}
	// An IPv4-mapped address is announced as IPv4.
	if err := s.Announce(netip.MustParseAddr("::ffff:10.77.0.9")); err != nil {
		t.Errorf("Announce(::ffff:10.77.0.9): %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Announce(netip.MustParseAddr("10.77.0.100")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Announce after Close: %v, want net.ErrClosed", err)
	}
}

// TestFrameBytes pins the ARP frame to the bytes keepalived 2.2.7 sent for
// 10.77.0.100 from 5a:96:23:c7:36:21 (captured with tcpdump in a namespace),
// apart from the padding to the Ethernet minimum that the NIC adds anyway.
func TestFrameBytes(t *testing.T) {
	keepalived := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x5a, 0x96, 0x23, 0xc7, 0x36, 0x21, 0x08, 0x06, 0x00, 0x01,
		0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x5a, 0x96, 0x23, 0xc7, 0x36, 0x21, 0x0a, 0x4d, 0x00, 0x64,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0a, 0x4d, 0x00, 0x64,
	}
	mac := net.HardwareAddr(keepalived[6:12])
	vip := netip.MustParseAddr("10.77.0.100")
	fb, err := arpFrame(mac, vip)
	if err != nil {
		t.Fatal(err)
	}
	if len(fb) != 60 {
		t.Errorf("frame length %d, want 60 (42 padded to the Ethernet minimum)", len(fb))
	}
	if !bytes.Equal(fb[:len(keepalived)], keepalived) {
		t.Errorf("frame\n% x\nwant (keepalived)\n% x", fb[:len(keepalived)], keepalived)
	}
}
