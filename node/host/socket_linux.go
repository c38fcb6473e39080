package host

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"

	"github.com/haa-dev/haa/node/vrrp"

	"golang.org/x/sys/unix"
)

// Socket is a raw IPv4 socket for IP protocol 112 bound to one interface. It
// receives whole IP packets and sends packets whose IPv4 header it builds
// itself (TTL 255, the instance's source address).
type Socket struct {
	ifname  string
	ifindex int
	f       *os.File
	lane    *os.File // the priority lane: only the sources SetSources names
	laneMu  sync.Mutex
	onLane  []netip.Addr // the lane's sources, which the main socket's filter drops
	id      atomic.Uint32
	closed  atomic.Bool
	// overflows is the kernel's count of packets the main socket's full
	// buffer dropped (SO_RXQ_OVFL), as last reported.
	overflows atomic.Uint32

	mu     sync.Mutex
	groups groupRefs
	ah     *os.File // IPsec AH packets, once ListenAH opened it
}

// rcvBuf is the main socket's receive buffer: at a flood's rate it holds
// a scheduling stall's worth of packets (a few thousand) instead of the
// default's few hundred.
const rcvBuf = 4 << 20

// ListenSocket opens the VRRP socket of an interface, and its priority
// lane (see vrrp.Lane): a second socket whose kernel filter lets through
// only the sources SetSources names, none at first.
func ListenSocket(ifname string) (*Socket, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("vrrp socket on %s: %w", ifname, err)
	}
	lane, err := openRaw(ifname, true, nil)
	if err != nil {
		return nil, err
	}
	fd, err := openRaw(ifname, false, []setting{
		{"IP_HDRINCL", func(fd int) error { return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_HDRINCL, 1) }},
		{"IP_MULTICAST_LOOP", func(fd int) error { return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0) }},
		{"IP_MULTICAST_TTL", func(fd int) error { return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 255) }},
		{"IP_MULTICAST_IF", func(fd int) error {
			return unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi.Index)})
		}},
		// Past net.core.rmem_max with CAP_NET_ADMIN; else what it allows.
		{"SO_RCVBUF", func(fd int) error {
			if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf) == nil {
				return nil
			}
			return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
		}},
		// The count of packets a full buffer dropped, with every packet.
		{"SO_RXQ_OVFL", func(fd int) error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1) }},
	})
	if err != nil {
		unix.Close(lane)
		return nil, err
	}
	return &Socket{
		ifname: ifname, ifindex: ifi.Index,
		f:      os.NewFile(uintptr(fd), "vrrp-"+ifname),
		lane:   os.NewFile(uintptr(lane), "vrrp-lane-"+ifname),
		groups: groupRefs{},
	}, nil
}

type setting struct {
	what string
	fn   func(fd int) error
}

// openRaw opens a raw socket for VRRP bound to ifname with the settings
// both sockets share, then extra. A lane starts with a filter that lets
// nothing through.
func openRaw(ifname string, lane bool, extra []setting) (int, error) {
	return openRawProto(ifname, vrrp.Protocol, lane, extra)
}

// openRawProto is openRaw for IP protocol proto.
func openRawProto(ifname string, proto int, lane bool, extra []setting) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return -1, fmt.Errorf("vrrp socket on %s: %w (haad needs CAP_NET_RAW)", ifname, err)
	}
	var setup []setting
	if lane {
		setup = append(setup, setting{"filter", func(fd int) error { return attachFilter(fd, nil, true) }})
	}
	setup = append(setup,
		setting{"bind to device", func(fd int) error { return unix.BindToDevice(fd, ifname) }},
		// Only the groups this socket joined, not every group joined on the host.
		setting{"IP_MULTICAST_ALL", func(fd int) error { return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0) }},
		// Kernel receive timestamps: the master-down timer runs from the
		// moment an advert arrived, not from when haad got to it.
		setting{"SO_TIMESTAMPNS", func(fd int) error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) }},
	)
	for _, s := range append(setup, extra...) {
		if err := s.fn(fd); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("vrrp socket on %s: %s: %w", ifname, s.what, err)
		}
	}
	return fd, nil
}

// attachFilter sets fd's filter to let through the IPv4 packets of srcs
// only (none when empty), or, if !only, every packet but theirs: a
// classic BPF program comparing the source address, run by the kernel
// before the packet is queued.
func attachFilter(fd int, srcs []netip.Addr, only bool) error {
	prog, err := sourceFilter(srcs, only)
	if err != nil {
		return err
	}
	return attachProgram(fd, prog)
}

// attachProgram sets fd's classic BPF filter.
func attachProgram(fd int, prog []bpf.Instruction) error {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return err
	}
	ins := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		ins[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(ins)), Filter: &ins[0]})
}

// maxLaneSources bounds the filter (its jumps skip at most 255
// instructions).
const maxLaneSources = 250

// sourceFilter is the program of attachFilter: for a raw IPv4 socket the
// packet starts at the IP header, whose source address is at offset 12.
func sourceFilter(srcs []netip.Addr, only bool) ([]bpf.Instruction, error) {
	if len(srcs) > maxLaneSources {
		return nil, fmt.Errorf("%d sources for the priority lane, at most %d", len(srcs), maxLaneSources)
	}
	prog := []bpf.Instruction{bpf.LoadAbsolute{Off: 12, Size: 4}}
	for k, a := range srcs {
		if !a.Is4() {
			return nil, fmt.Errorf("priority lane: %s is not an IPv4 address", a)
		}
		b := a.As4()
		// Matched: jump over the remaining comparisons and the verdict
		// of the others.
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: binary.BigEndian.Uint32(b[:]), SkipTrue: uint8(len(srcs) - k)})
	}
	drop, keep := bpf.RetConstant{Val: 0}, bpf.RetConstant{Val: 0xffff}
	if only {
		return append(prog, drop, keep), nil
	}
	return append(prog, keep, drop), nil
}

// Lane returns the socket's priority lane.
func (c *Socket) Lane() vrrp.Lane { return lane{c} }

type lane struct{ c *Socket }

func (l lane) ReadPacket(b []byte) (int, time.Time, error) { return l.c.read(l.c.lane, b) }

// SetSources replaces the sources the lane lets through; the main socket
// stops receiving them (the kernel queues their packets once, not twice).
// In between a source may reach both sockets for a moment, never neither:
// the main socket first drops only the sources that stay, then the lane
// takes the new set, then the main socket drops it.
func (l lane) SetSources(srcs []netip.Addr) error {
	c := l.c
	c.laneMu.Lock()
	defer c.laneMu.Unlock()
	on, err := moveLane(c.onLane, srcs, func(f *os.File, srcs []netip.Addr, only bool) error {
		return control(f, func(fd int) error { return attachFilter(fd, srcs, only) })
	}, c.f, c.lane)
	c.onLane = on
	return err
}

// moveLane moves the lane's sources from on to srcs with set (a filter
// setter): the main socket first drops only the sources that stay, then
// the lane takes the new set, then the main socket drops it. It returns
// the lane's sources after: srcs, or none when a step failed (the main
// socket then takes everything again).
func moveLane(on, srcs []netip.Addr, set func(f *os.File, srcs []netip.Addr, only bool) error, main, lane *os.File) ([]netip.Addr, error) {
	var stay []netip.Addr
	for _, a := range on {
		if slices.Contains(srcs, a) {
			stay = append(stay, a)
		}
	}
	for _, step := range []struct {
		f    *os.File
		srcs []netip.Addr
		only bool
	}{{main, stay, false}, {lane, srcs, true}, {main, srcs, false}} {
		if err := set(step.f, step.srcs, step.only); err != nil {
			_ = set(main, nil, false) // the main socket takes everything again
			return nil, err
		}
	}
	return slices.Clone(srcs), nil
}

// control runs fn on f's descriptor.
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) { serr = fn(int(fd)) })
	return errors.Join(err, serr)
}

// Overflows returns how many packets the main socket's full buffer has
// dropped (wrapping at 2^32, as the kernel's counter).
func (c *Socket) Overflows() uint32 { return c.overflows.Load() }

// Interface returns the interface name.
func (c *Socket) Interface() string { return c.ifname }

// Index returns the index of the interface the socket is bound to.
func (c *Socket) Index() int { return c.ifindex }

// JoinGroup joins a multicast group on the interface (reference counted).
func (c *Socket) JoinGroup(g netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.groups.join(g, c.ifname, func() error { return c.mreq(unix.IP_ADD_MEMBERSHIP, g) })
}

// LeaveGroup undoes one JoinGroup.
func (c *Socket) LeaveGroup(g netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.groups.leave(g, func() error { return c.mreq(unix.IP_DROP_MEMBERSHIP, g) })
}

// groupRefs counts the joins of each multicast group of a socket: the
// kernel is asked on the first join and after the last leave. Its owner
// serialises the calls.
type groupRefs map[netip.Addr]int

func (m groupRefs) join(g netip.Addr, ifname string, do func() error) error {
	if m[g] > 0 {
		m[g]++
		return nil
	}
	if err := do(); err != nil {
		return fmt.Errorf("join %s on %s: %w", g, ifname, err)
	}
	m[g] = 1
	return nil
}

func (m groupRefs) leave(g netip.Addr, do func() error) error {
	if m[g] == 0 {
		return nil
	}
	if m[g]--; m[g] > 0 {
		return nil
	}
	delete(m, g)
	return do()
}

// mreq joins or leaves g on the sockets (the AH one too, if open).
// Called with mu held.
func (c *Socket) mreq(op int, g netip.Addr) error {
	var errs []error
	files := []*os.File{c.f, c.lane}
	if c.ah != nil {
		files = append(files, c.ah)
	}
	for _, f := range files {
		errs = append(errs, c.mreqOn(f, op, g))
	}
	return errors.Join(errs...)
}

// mreqOn joins or leaves g on one of the sockets.
func (c *Socket) mreqOn(f *os.File, op int, g netip.Addr) error {
	return control(f, func(fd int) error {
		return unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, op, &unix.IPMreqn{Multiaddr: g.As4(), Ifindex: int32(c.ifindex)})
	})
}

// Read reads one IP packet.
func (c *Socket) Read(b []byte) (int, error) { return c.f.Read(b) }

// ReadPacket reads one IP packet of the main socket and tells when it
// arrived, on the monotonic clock (from the kernel's receive timestamp).
func (c *Socket) ReadPacket(b []byte) (int, time.Time, error) { return c.read(c.f, b) }

func (c *Socket) read(f *os.File, b []byte) (int, time.Time, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, time.Time{}, err
	}
	var oob [64]byte
	var n, oobn int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, rerr = rawRecvmsg(int(fd), b, oob[:], unix.MSG_DONTWAIT)
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
	at, ovfl, ok := arrival(oob[:oobn], time.Now())
	if ok && f == c.f {
		c.overflows.Store(ovfl)
	}
	return n, at, nil
}

// arrival converts the kernel's wall-clock receive timestamp into the
// packet's age subtracted from now (which carries Go's monotonic reading,
// so a clock step cannot move deadlines). Without a usable timestamp it is
// now. It also returns the socket's drop count (SO_RXQ_OVFL) if the
// kernel gave it (ok).
func arrival(oob []byte, now time.Time) (at time.Time, ovfl uint32, ok bool) {
	at = now
	// Walk the control messages by hand: this runs for every packet and
	// unix.ParseSocketControlMessage allocates.
	for len(oob) >= unix.CmsgLen(0) {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.CmsgLen(0) || l > len(oob) {
			return at, ovfl, ok
		}
		switch {
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && l >= unix.CmsgLen(16):
			ts := (*unix.Timespec)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
			// A clock step makes the age absurd: ignore it then.
			if age := now.Sub(time.Unix(ts.Sec, ts.Nsec)); age >= 0 && age <= time.Second {
				at = now.Add(-age)
			}
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SO_RXQ_OVFL && l >= unix.CmsgLen(4):
			ovfl, ok = *(*uint32)(unsafe.Pointer(&oob[unix.CmsgLen(0)])), true
		}
		next := unix.CmsgSpace(l - unix.CmsgLen(0))
		if next > len(oob) {
			return at, ovfl, ok
		}
		oob = oob[next:]
	}
	return at, ovfl, ok
}

// Send sends msg from src to dst with a TTL of 255.
func (c *Socket) Send(src, dst netip.Addr, msg []byte) error {
	var buf [1500]byte
	pkt := vrrp.AppendIPv4(buf[:0], vrrp.IPv4Header{
		TOS: vrrp.TOSInternetControl, TTL: 255, Protocol: vrrp.Protocol, ID: uint16(c.id.Add(1)), Src: src, Dst: dst,
	}, msg)
	return c.SendPacket(dst, pkt)
}

// Close closes the sockets; a blocked read returns.
func (c *Socket) Close() error {
	c.closed.Store(true)
	err := errors.Join(c.f.Close(), c.lane.Close())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ah != nil {
		err = errors.Join(err, c.ah.Close())
	}
	return err
}

// SendPacket sends pkt, a whole IPv4 packet (an advert, with its IPsec AH
// header if it has one), to dst.
func (c *Socket) SendPacket(dst netip.Addr, pkt []byte) error { return sendPacket4(c.f, dst, pkt) }

func sendPacket4(f *os.File, dst netip.Addr, pkt []byte) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	to := dst.As4()
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		serr = rawSendto(int(fd), pkt, 0, to)
		return serr != unix.EAGAIN
	})
	return errors.Join(err, serr)
}

// ListenAH opens the interface's socket of IPsec AH packets (protocol
// 51), for instances with AH authentication; it joins the groups the
// main socket joined, and those it joins later. It is opened once:
// a second call returns the same reader. Close closes it.
func (c *Socket) ListenAH() (vrrp.Reader, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ah != nil {
		return ahReader{c}, nil
	}
	fd, err := openRawProto(c.ifname, vrrp.ProtocolAH, false, nil)
	if err != nil {
		return nil, err
	}
	c.ah = os.NewFile(uintptr(fd), "vrrp-ah-"+c.ifname)
	for g := range c.groups {
		if err := c.mreqOn(c.ah, unix.IP_ADD_MEMBERSHIP, g); err != nil {
			c.ah.Close()
			c.ah = nil // the next call tries again, whole
			return nil, fmt.Errorf("IPsec AH socket on %s: join %s: %w", c.ifname, g, err)
		}
	}
	return ahReader{c}, nil
}

type ahReader struct{ c *Socket }

func (r ahReader) ReadPacket(b []byte) (int, time.Time, error) { return r.c.read(r.c.ah, b) }
