package host

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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
	id      atomic.Uint32
	closed  atomic.Bool

	mu     sync.Mutex
	groups map[netip.Addr]int
}

// ListenSocket opens the VRRP socket of an interface.
func ListenSocket(ifname string) (*Socket, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("vrrp socket on %s: %w", ifname, err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, vrrp.Protocol)
	if err != nil {
		return nil, fmt.Errorf("vrrp socket on %s: %w (haad needs CAP_NET_RAW)", ifname, err)
	}
	setup := []struct {
		what string
		fn   func() error
	}{
		{"bind to device", func() error { return unix.BindToDevice(fd, ifname) }},
		{"IP_HDRINCL", func() error { return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_HDRINCL, 1) }},
		{"IP_MULTICAST_LOOP", func() error { return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0) }},
		// Only the groups this socket joined, not every group joined on the host.
		{"IP_MULTICAST_ALL", func() error { return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0) }},
		{"IP_MULTICAST_TTL", func() error { return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 255) }},
		{"IP_MULTICAST_IF", func() error {
			return unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi.Index)})
		}},
		// Kernel receive timestamps: the master-down timer runs from the
		// moment an advert arrived, not from when haad got to it.
		{"SO_TIMESTAMPNS", func() error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) }},
		{"SO_RCVBUF", func() error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20) }},
	}
	for _, s := range setup {
		if err := s.fn(); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("vrrp socket on %s: %s: %w", ifname, s.what, err)
		}
	}
	return &Socket{
		ifname: ifname, ifindex: ifi.Index,
		f:      os.NewFile(uintptr(fd), "vrrp-"+ifname),
		groups: map[netip.Addr]int{},
	}, nil
}

// Interface returns the interface name.
func (c *Socket) Interface() string { return c.ifname }

// Index returns the index of the interface the socket is bound to.
func (c *Socket) Index() int { return c.ifindex }

// JoinGroup joins a multicast group on the interface (reference counted).
func (c *Socket) JoinGroup(g netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.groups[g] > 0 {
		c.groups[g]++
		return nil
	}
	if err := c.mreq(unix.IP_ADD_MEMBERSHIP, g); err != nil {
		return fmt.Errorf("join %s on %s: %w", g, c.ifname, err)
	}
	c.groups[g] = 1
	return nil
}

// LeaveGroup undoes one JoinGroup.
func (c *Socket) LeaveGroup(g netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.groups[g] == 0 {
		return nil
	}
	c.groups[g]--
	if c.groups[g] > 0 {
		return nil
	}
	delete(c.groups, g)
	return c.mreq(unix.IP_DROP_MEMBERSHIP, g)
}

func (c *Socket) mreq(op int, g netip.Addr) error {
	rc, err := c.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		m := &unix.IPMreqn{Multiaddr: g.As4(), Ifindex: int32(c.ifindex)}
		serr = unix.SetsockoptIPMreqn(int(fd), unix.IPPROTO_IP, op, m)
	})
	return errors.Join(err, serr)
}

// Read reads one IP packet.
func (c *Socket) Read(b []byte) (int, error) { return c.f.Read(b) }

// ReadPacket reads one IP packet and tells when it arrived, on the
// monotonic clock (from the kernel's receive timestamp).
func (c *Socket) ReadPacket(b []byte) (int, time.Time, error) {
	rc, err := c.f.SyscallConn()
	if err != nil {
		return 0, time.Time{}, err
	}
	var oob [64]byte
	var n, oobn int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), b, oob[:], 0)
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
	return n, arrival(oob[:oobn], time.Now()), nil
}

// arrival converts the kernel's wall-clock receive timestamp into the
// packet's age subtracted from now (which carries Go's monotonic reading,
// so a clock step cannot move deadlines). Without a usable timestamp it is
// now.
func arrival(oob []byte, now time.Time) time.Time {
	// Walk the control messages by hand: this runs for every packet and
	// unix.ParseSocketControlMessage allocates.
	for len(oob) >= unix.CmsgLen(0) {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.CmsgLen(0) || l > len(oob) {
			return now
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && l >= unix.CmsgLen(16) {
			ts := (*unix.Timespec)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
			age := now.Sub(time.Unix(ts.Sec, ts.Nsec))
			if age < 0 || age > time.Second {
				return now // clock stepped: ignore
			}
			return now.Add(-age)
		}
		next := unix.CmsgSpace(l - unix.CmsgLen(0))
		if next > len(oob) {
			return now
		}
		oob = oob[next:]
	}
	return now
}

// Send sends msg from src to dst with a TTL of 255.
func (c *Socket) Send(src, dst netip.Addr, msg []byte) error {
	var buf [1500]byte
	pkt := vrrp.AppendIPv4(buf[:0], vrrp.IPv4Header{
		TOS: vrrp.TOSInternetControl, TTL: 255, Protocol: vrrp.Protocol, ID: uint16(c.id.Add(1)), Src: src, Dst: dst,
	}, msg)
	rc, err := c.f.SyscallConn()
	if err != nil {
		return err
	}
	sa := &unix.SockaddrInet4{Addr: dst.As4()}
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), pkt, 0, sa)
		return serr != unix.EAGAIN
	})
	return errors.Join(err, serr)
}

// Close closes the socket; a blocked Read returns.
func (c *Socket) Close() error {
	c.closed.Store(true)
	return c.f.Close()
}
