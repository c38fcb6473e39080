// Package garp announces virtual addresses on a link after a failover:
// gratuitous ARP for IPv4 and unsolicited neighbour advertisements for IPv6,
// so that neighbours move their ARP / neighbour entry to this node's MAC.
//
// The frames are the ones keepalived 2.2.7 sends (captured in a namespace):
//
//   - IPv4: an Ethernet broadcast ARP request, sender MAC = the interface's
//     MAC, sender IP = target IP = the address, target MAC ff:ff:ff:ff:ff:ff.
//   - IPv6: an ICMPv6 neighbour advertisement from the address itself to
//     ff02::1, hop limit 255, flags Override (and Router when IPv6
//     forwarding is on for the interface), with a target link-layer address
//     option carrying the interface's MAC.
package garp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// ErrNoIPv6 is wrapped by Announce for an IPv6 address when the Sender could
// not open its ICMPv6 socket (IPv6 disabled in the kernel, for instance).
var ErrNoIPv6 = errors.New("IPv6 not available")

// targetHardwareAddr is the ARP target hardware address of a gratuitous ARP.
// keepalived and iputils' arping -U put the broadcast address here; the
// kernel's own announcements and RFC 5227 use zeros. Receivers ignore it.
var targetHardwareAddr = ethernet.Broadcast

var allNodes = netip.MustParseAddr("ff02::1")

// Sender sends gratuitous ARPs and unsolicited neighbour advertisements on
// one interface. It is safe for concurrent use: the VRRP instances of an
// interface share one Sender.
//
// A Sender only sends: its sockets drop every incoming packet in the
// kernel, so an idle Sender costs nothing.
type Sender struct {
	ifi    net.Interface
	hw     net.HardwareAddr
	router bool // IPv6 forwarding was on at Open: set the NA Router flag

	arp   *packet.Conn
	nd    *ipv6.PacketConn // nil when ndErr != nil
	ndErr error

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Open opens a Sender on the named interface in the network namespace of
// the calling thread; the Sender keeps working in that namespace whatever
// goroutine uses it later. The interface must have an Ethernet (6 byte) MAC
// address, which is read once here, like the interface's IPv6 forwarding
// setting (it sets the Router flag of neighbour advertisements, as
// keepalived does). It does not need an IP address. A Sender is bound to the
// interface's index: reopen it if the interface is deleted and recreated.
func Open(ifname string) (*Sender, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("garp: interface %q: %w", ifname, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("garp: interface %q has no Ethernet MAC address (got %q): gratuitous ARP needs one", ifname, ifi.HardwareAddr)
	}
	// Send only: a filter that accepts nothing, so received ARP traffic is
	// never queued on the socket.
	drop, err := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	if err != nil {
		return nil, fmt.Errorf("garp: %w", err)
	}
	pc, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ARP, &packet.Config{Filter: drop})
	if err != nil {
		return nil, fmt.Errorf("garp: open ARP socket on %s: %w", ifname, err)
	}
	s := &Sender{ifi: *ifi, hw: bytes.Clone(ifi.HardwareAddr), arp: pc}
	s.nd, s.ndErr = openND(ifi)
	s.router = readSysctl("net/ipv6/conf/"+ifname+"/forwarding") == "1"
	return s, nil
}

// openND opens the ICMPv6 socket used for neighbour advertisements.
func openND(ifi *net.Interface) (*ipv6.PacketConn, error) {
	c, err := net.ListenIP("ip6:ipv6-icmp", nil)
	if err != nil {
		return nil, err
	}
	p := ipv6.NewPacketConn(c)
	var block ipv6.ICMPFilter
	block.SetAll(true)
	for _, set := range []func() error{
		func() error { return p.SetICMPFilter(&block) },
		func() error { return p.SetMulticastHopLimit(ndp.HopLimit) },
		func() error { return p.SetHopLimit(ndp.HopLimit) },
		func() error { return p.SetMulticastInterface(ifi) },
		func() error { return p.SetMulticastLoopback(false) },
	} {
		if err := set(); err != nil {
			_ = p.Close()
			return nil, err
		}
	}
	// The advert's source is the announced address itself (as keepalived
	// does). Freebind lets it go out even if that address is not (yet)
	// usable as a source, e.g. still tentative.
	if rc, err := c.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
		})
	}
	return p, nil
}

func readSysctl(path string) string {
	b, err := os.ReadFile("/proc/sys/" + path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// HardwareAddr returns the interface's MAC address as read by Open: the
// sender address of every announcement.
func (s *Sender) HardwareAddr() net.HardwareAddr {
	return bytes.Clone(s.hw)
}

// Interface returns the name of the Sender's interface.
func (s *Sender) Interface() string { return s.ifi.Name }

// Announce sends one announcement for addr: a gratuitous ARP request for an
// IPv4 address, an unsolicited neighbour advertisement (Override set, to
// ff02::1) for an IPv6 address. It neither waits nor repeats; the caller
// schedules repeats (keepalived's garp_master_repeat / _delay).
func (s *Sender) Announce(addr netip.Addr) error {
	addr = addr.Unmap().WithZone("")
	switch {
	case s.closed.Load():
		return fmt.Errorf("garp %s: announce %s: %w", s.ifi.Name, addr, net.ErrClosed)
	case !addr.IsValid():
		return errors.New("garp: announce: no address")
	case addr.IsUnspecified() || addr.IsMulticast() || addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("garp %s: announce %s: not a unicast address", s.ifi.Name, addr)
	case addr.Is4():
		return s.announceARP(addr)
	default:
		return s.announceNA(addr)
	}
}

func (s *Sender) announceARP(addr netip.Addr) error {
	fb, err := arpFrame(s.hw, addr)
	if err == nil {
		_, err = s.arp.WriteTo(fb, &packet.Addr{HardwareAddr: ethernet.Broadcast})
	}
	if err != nil {
		return fmt.Errorf("garp %s: announce %s: %w", s.ifi.Name, addr, err)
	}
	return nil
}

// arpFrame returns the Ethernet frame of a gratuitous ARP for addr from hw.
func arpFrame(hw net.HardwareAddr, addr netip.Addr) ([]byte, error) {
	p, err := arp.NewPacket(arp.OperationRequest, hw, addr, targetHardwareAddr, addr)
	if err != nil {
		return nil, err
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	f := ethernet.Frame{
		Destination: ethernet.Broadcast,
		Source:      hw,
		EtherType:   ethernet.EtherTypeARP,
		Payload:     pb,
	}
	return f.MarshalBinary()
}

func (s *Sender) announceNA(addr netip.Addr) error {
	if s.ndErr != nil {
		return fmt.Errorf("garp %s: announce %s: %w: %v", s.ifi.Name, addr, ErrNoIPv6, s.ndErr)
	}
	m := &ndp.NeighborAdvertisement{
		Router:        s.router,
		Override:      true,
		TargetAddress: addr,
		Options: []ndp.Option{&ndp.LinkLayerAddress{
			Direction: ndp.Target,
			Addr:      s.hw,
		}},
	}
	b, err := ndp.MarshalMessage(m)
	if err != nil {
		return fmt.Errorf("garp %s: announce %s: %w", s.ifi.Name, addr, err)
	}
	// The kernel fills in the ICMPv6 checksum of raw ICMPv6 sockets. The
	// destination carries no zone: a zone name would be resolved in the
	// namespace of whatever thread runs this; the control message's
	// interface index is namespace-proof.
	cm := &ipv6.ControlMessage{HopLimit: ndp.HopLimit, Src: addr.AsSlice(), IfIndex: s.ifi.Index}
	if _, err := s.nd.WriteTo(b, cm, &net.IPAddr{IP: allNodes.AsSlice()}); err != nil {
		return fmt.Errorf("garp %s: announce %s: %w", s.ifi.Name, addr, err)
	}
	return nil
}

// Close closes the Sender's sockets. Announce fails with an error wrapping
// net.ErrClosed after Close. Close may be called more than once.
func (s *Sender) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		errs := []error{s.arp.Close()}
		if s.nd != nil {
			errs = append(errs, s.nd.Close())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
