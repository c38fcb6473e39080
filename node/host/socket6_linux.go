package host

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/haa-dev/haa/node/vrrp"
)

// Socket6 is the raw IPv6 socket for IP protocol 112 bound to one
// interface (RFC 5798 over IPv6). The kernel never hands a raw IPv6
// socket the IP header: each read rebuilds it in front of the VRRP
// message from what the kernel reports (the sender, the destination, the
// hop limit), so both families go through the same receive checks
// (vrrp.Iface). Adverts leave with a hop limit of 255 from the source
// address the runner names (a link-local one, as RFC 5798 asks). The
// checksum, pseudo-header included, is computed and verified by haad (a
// bad one is counted, not dropped silently by the kernel).
type Socket6 struct {
	ifname  string
	ifindex int
	f       *os.File
	lane    *os.File // the priority lane: only the sources SetSources names
	laneMu  sync.Mutex
	onLane  []netip.Addr // the lane's sources, which the main socket's filter drops
	closed  atomic.Bool
	// overflows is the kernel's count of packets the full buffer
	// dropped (SO_RXQ_OVFL), as last reported.
	overflows atomic.Uint32

	mu     sync.Mutex
	groups groupRefs
}

// ListenSocket6 opens the IPv6 VRRP socket of an interface, and its
// priority lane (see vrrp.Lane), as ListenSocket does for IPv4.
func ListenSocket6(ifname string) (*Socket6, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("vrrp IPv6 socket on %s: %w", ifname, err)
	}
	lane, err := openRaw6(ifname, ifi.Index, true)
	if err != nil {
		return nil, err
	}
	fd, err := openRaw6(ifname, ifi.Index, false)
	if err != nil {
		unix.Close(lane)
		return nil, err
	}
	return &Socket6{ifname: ifname, ifindex: ifi.Index, f: os.NewFile(uintptr(fd), "vrrp6-"+ifname),
		lane: os.NewFile(uintptr(lane), "vrrp6-lane-"+ifname), groups: groupRefs{}}, nil
}

// openRaw6 opens a raw IPv6 socket of protocol 112 bound to the
// interface; a lane starts with a filter that lets nothing through.
func openRaw6(ifname string, index int, lane bool) (int, error) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, vrrp.Protocol)
	if err != nil {
		return -1, fmt.Errorf("vrrp IPv6 socket on %s: %w (haad needs CAP_NET_RAW and IPv6 in the kernel)", ifname, err)
	}
	v6 := func(opt, v int) func(int) error {
		return func(fd int) error { return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, opt, v) }
	}
	var setup []setting
	if lane {
		setup = append(setup, setting{"filter", func(fd int) error { return attachFilter6(fd, nil, true) }})
	}
	setup = append(setup, []setting{
		{"bind to device", func(fd int) error { return unix.BindToDevice(fd, ifname) }},
		// Linux 4.20 and later; before, the socket also gets the
		// groups other sockets joined (the receive checks drop them).
		{"IPV6_MULTICAST_ALL", func(fd int) error {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0); err != unix.ENOPROTOOPT {
				return err
			}
			return nil
		}},
		{"IPV6_RECVPKTINFO", v6(unix.IPV6_RECVPKTINFO, 1)},
		{"IPV6_RECVHOPLIMIT", v6(unix.IPV6_RECVHOPLIMIT, 1)},
		{"IPV6_MULTICAST_HOPS", v6(unix.IPV6_MULTICAST_HOPS, 255)},
		{"IPV6_UNICAST_HOPS", v6(unix.IPV6_UNICAST_HOPS, 255)},
		{"IPV6_MULTICAST_LOOP", v6(unix.IPV6_MULTICAST_LOOP, 0)},
		{"IPV6_MULTICAST_IF", v6(unix.IPV6_MULTICAST_IF, index)},
		{"SO_TIMESTAMPNS", func(fd int) error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) }},
	}...)
	if !lane {
		setup = append(setup, []setting{
			{"SO_RCVBUF", func(fd int) error {
				if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf) == nil {
					return nil
				}
				return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
			}},
			{"SO_RXQ_OVFL", func(fd int) error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1) }},
		}...)
	}
	for _, s := range setup {
		if err := s.fn(fd); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("vrrp IPv6 socket on %s: %s: %w", ifname, s.what, err)
		}
	}
	return fd, nil
}

// maxLaneSources6 bounds the IPv6 filter: four comparisons per source,
// and its jumps skip at most 255 instructions.
const maxLaneSources6 = 30

// skfNetOff is SKF_NET_OFF: a classic BPF load relative to the network
// header, which a raw IPv6 socket's packet no longer starts with.
const skfNetOff = 0xfff00000

// sourceFilter6 is sourceFilter for IPv6: the source address is bytes 8
// to 24 of the IPv6 header, compared four bytes at a time.
func sourceFilter6(srcs []netip.Addr, only bool) ([]bpf.Instruction, error) {
	if len(srcs) > maxLaneSources6 {
		return nil, fmt.Errorf("%d sources for the IPv6 priority lane, at most %d", len(srcs), maxLaneSources6)
	}
	n := len(srcs)
	var prog []bpf.Instruction
	for b, a := range srcs {
		if !a.Is6() || a.Is4In6() {
			return nil, fmt.Errorf("priority lane: %s is not an IPv6 address", a)
		}
		w := a.As16()
		for i := range 4 {
			p := 8*b + 2*i + 1 // the jump's index
			jmp := bpf.JumpIf{Cond: bpf.JumpEqual, Val: binary.BigEndian.Uint32(w[4*i:]), SkipFalse: uint8(8*(b+1) - (p + 1))}
			if i == 3 {
				jmp.SkipTrue = uint8(8*n + 1 - (p + 1)) // matched
			}
			prog = append(prog, bpf.LoadAbsolute{Off: skfNetOff + 8 + uint32(4*i), Size: 4}, jmp)
		}
	}
	drop, keep := bpf.RetConstant{Val: 0}, bpf.RetConstant{Val: 0xffff}
	if only {
		return append(prog, drop, keep), nil // [8n]: no match, [8n+1]: match
	}
	return append(prog, keep, drop), nil
}

func attachFilter6(fd int, srcs []netip.Addr, only bool) error {
	prog, err := sourceFilter6(srcs, only)
	if err != nil {
		return err
	}
	return attachProgram(fd, prog)
}

// Lane returns the socket's priority lane.
func (c *Socket6) Lane() vrrp.Lane { return lane6{c} }

type lane6 struct{ c *Socket6 }

func (l lane6) ReadPacket(b []byte) (int, time.Time, error) { return l.c.read(l.c.lane, b) }

// SetSources is Socket's lane's, for IPv6 sources.
func (l lane6) SetSources(srcs []netip.Addr) error {
	c := l.c
	c.laneMu.Lock()
	defer c.laneMu.Unlock()
	on, err := moveLane(c.onLane, srcs, func(f *os.File, srcs []netip.Addr, only bool) error {
		return control(f, func(fd int) error { return attachFilter6(fd, srcs, only) })
	}, c.f, c.lane)
	c.onLane = on
	return err
}

// Interface returns the interface name.
func (c *Socket6) Interface() string { return c.ifname }

// Index returns the index of the interface the socket is bound to.
func (c *Socket6) Index() int { return c.ifindex }

// Overflows returns how many packets the socket's full buffer has
// dropped (wrapping at 2^32, as the kernel's counter).
func (c *Socket6) Overflows() uint32 { return c.overflows.Load() }

// JoinGroup joins an IPv6 multicast group on the interface (reference
// counted).
func (c *Socket6) JoinGroup(g netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.groups.join(g, c.ifname, func() error { return c.mreq(unix.IPV6_JOIN_GROUP, g) })
}

// LeaveGroup undoes one JoinGroup.
func (c *Socket6) LeaveGroup(g netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.groups.leave(g, func() error { return c.mreq(unix.IPV6_LEAVE_GROUP, g) })
}

func (c *Socket6) mreq(op int, g netip.Addr) error {
	if !g.Is6() {
		return fmt.Errorf("%s is not an IPv6 group", g)
	}
	var errs []error
	for _, f := range []*os.File{c.f, c.lane} {
		errs = append(errs, control(f, func(fd int) error {
			return unix.SetsockoptIPv6Mreq(fd, unix.IPPROTO_IPV6, op, &unix.IPv6Mreq{Multiaddr: g.As16(), Interface: uint32(c.ifindex)})
		}))
	}
	return errors.Join(errs...)
}

// ReadPacket reads one VRRP message of the main socket and returns it
// behind a rebuilt IPv6 header (vrrp.ParseIPv6 reads it), with its arrival
// time from the kernel's receive timestamp.
func (c *Socket6) ReadPacket(b []byte) (int, time.Time, error) { return c.read(c.f, b) }

func (c *Socket6) read(f *os.File, b []byte) (int, time.Time, error) {
	if len(b) < vrrp.IPv6HeaderLen {
		return 0, time.Time{}, fmt.Errorf("vrrp IPv6 socket: %d-byte buffer", len(b))
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, time.Time{}, err
	}
	var oob [128]byte
	var from unix.RawSockaddrInet6
	var n, oobn int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, rerr = rawRecvmsg6(int(fd), b[vrrp.IPv6HeaderLen:], oob[:], &from, unix.MSG_DONTWAIT)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		if c.closed.Load() {
			return 0, time.Time{}, os.ErrClosed
		}
		return 0, time.Time{}, err
	}
	now := time.Now()
	at, ovfl, ok := arrival(oob[:oobn], now)
	if ok && f == c.f {
		c.overflows.Store(ovfl)
	}
	dst, hops := pktinfo6(oob[:oobn])
	h := vrrp.IPv6Header{NextHeader: vrrp.Protocol, HopLimit: hops, Src: netip.AddrFrom16(from.Addr), Dst: dst}
	if n > 0xffff {
		n = 0xffff
	}
	vrrp.PutIPv6Header(b[:0], h, n)
	return vrrp.IPv6HeaderLen + n, at, nil
}

// pktinfo6 returns the destination (IPV6_PKTINFO) and the hop limit
// (IPV6_HOPLIMIT) of a received packet's control messages: :: and 0 when
// the kernel did not say (the receive checks then drop the packet).
func pktinfo6(oob []byte) (dst netip.Addr, hops uint8) {
	dst = netip.IPv6Unspecified()
	for len(oob) >= unix.CmsgLen(0) {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.CmsgLen(0) || l > len(oob) {
			return dst, hops
		}
		data := oob[unix.CmsgLen(0):l]
		if h.Level == unix.IPPROTO_IPV6 {
			switch {
			case h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
				dst = netip.AddrFrom16([16]byte(data[:16]))
			case h.Type == unix.IPV6_HOPLIMIT && len(data) >= 4:
				hops = uint8(binary.NativeEndian.Uint32(data))
			}
		}
		next := unix.CmsgSpace(l - unix.CmsgLen(0))
		if next > len(oob) {
			return dst, hops
		}
		oob = oob[next:]
	}
	return dst, hops
}

// Send sends msg from src (an address of the interface: its link-local
// one for adverts) to dst with a hop limit of 255.
func (c *Socket6) Send(src, dst netip.Addr, msg []byte) error {
	return send6(c.f, c.ifname, c.ifindex, src, dst, msg)
}

func send6(f *os.File, ifname string, ifindex int, src, dst netip.Addr, msg []byte) error {
	if !src.Is6() || !dst.Is6() {
		return fmt.Errorf("vrrp IPv6 socket on %s: %v -> %v is not IPv6", ifname, src, dst)
	}
	var oob [unix.SizeofCmsghdr + unix.SizeofInet6Pktinfo + 8]byte
	space := unix.CmsgSpace(unix.SizeofInet6Pktinfo)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
	pi.Addr = src.As16()
	pi.Ifindex = uint32(ifindex)
	to := unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: dst.As16()}
	if dst.IsLinkLocalUnicast() || dst.IsLinkLocalMulticast() || dst.IsInterfaceLocalMulticast() {
		to.Scope_id = uint32(ifindex)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		serr = rawSendmsg6(int(fd), msg, oob[:space], &to)
		return serr != unix.EAGAIN
	})
	return errors.Join(err, serr)
}

// Close closes the sockets; a blocked read returns.
func (c *Socket6) Close() error {
	c.closed.Store(true)
	return errors.Join(c.f.Close(), c.lane.Close())
}
