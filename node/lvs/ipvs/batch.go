package ipvs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"syscall"
	"time"

	"github.com/moby/ipvs"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// writer sends IPVS's write commands (new/set/delete service and
// destination) many to a system call, over its own generic netlink socket:
// the kernel carries out the messages of one sendmsg in order and answers
// each with an acknowledgement, which are read back in as few reads. One
// command per round trip (what github.com/moby/ipvs and libnl do) costs two
// or three system calls and a 64 KiB buffer per real server; a table of
// 10,000 services x 5 real servers is 60,000 commands.
type writer struct {
	fd     int
	family uint16 // the IPVS generic netlink family's id
	seq    uint32
	buf    []byte // the batch being built
	rbuf   []byte
}

// IPVS generic netlink (include/uapi/linux/ip_vs.h).
const (
	ipvsGenlVersion = 1

	ipvsCmdNewService = 1
	ipvsCmdSetService = 2
	ipvsCmdDelService = 3
	ipvsCmdNewDest    = 5
	ipvsCmdSetDest    = 6
	ipvsCmdDelDest    = 7

	ipvsCmdAttrService = 1
	ipvsCmdAttrDest    = 2

	ipvsSvcAttrAF        = 1
	ipvsSvcAttrProtocol  = 2
	ipvsSvcAttrAddr      = 3
	ipvsSvcAttrPort      = 4
	ipvsSvcAttrFWMark    = 5
	ipvsSvcAttrSchedName = 6
	ipvsSvcAttrFlags     = 7
	ipvsSvcAttrTimeout   = 8
	ipvsSvcAttrNetmask   = 9
	ipvsSvcAttrPEName    = 11

	ipvsDestAttrAddr      = 1
	ipvsDestAttrPort      = 2
	ipvsDestAttrFwdMethod = 3
	ipvsDestAttrWeight    = 4
	ipvsDestAttrUThresh   = 5
	ipvsDestAttrLThresh   = 6
	ipvsDestAttrAddrAF    = 11

	genlCtrlCmdGetFamily   = 3
	genlCtrlAttrFamilyID   = 1
	genlCtrlAttrFamilyName = 2

	// batchBytes bounds one sendmsg (the socket's send buffer is larger);
	// batchMsgs bounds the acknowledgements waiting in the receive buffer
	// (each one is an skb of about a kilobyte: with the buffer's default
	// size, 212 KiB, 500 of them overflow it and are lost).
	batchBytes = 48 << 10
	batchMsgs  = 256
	// writerRcvBuf is the receive buffer asked for.
	writerRcvBuf = 4 << 20
	// writerTimeout bounds a read of acknowledgements.
	writerTimeout = 30 * time.Second
)

// newWriter opens a generic netlink socket in the network namespace at
// path (the caller's when empty) and finds the IPVS family.
func newWriter(path string) (*writer, error) {
	fd, err := socketIn(path)
	if err != nil {
		return nil, err
	}
	w := &writer{fd: fd, rbuf: make([]byte, 256<<10)}
	// Acknowledgements of failed commands carry only the header back.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, writerRcvBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, writerRcvBuf)
	}
	tv := unix.NsecToTimeval(writerTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if w.family, err = w.resolve("IPVS"); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("the IPVS generic netlink family: %w", err)
	}
	return w, nil
}

// socketIn opens a NETLINK_GENERIC socket in the namespace at path: the
// socket stays in the namespace it was created in.
func socketIn(path string) (int, error) {
	if path == "" {
		return unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_GENERIC)
	}
	target, err := netns.GetFromPath(path)
	if err != nil {
		return -1, err
	}
	defer target.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return -1, err
	}
	defer orig.Close()
	if err := netns.Set(target); err != nil {
		return -1, err
	}
	fd, serr := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_GENERIC)
	if err := netns.Set(orig); err != nil {
		// This thread is in the wrong namespace: never let it run Go code
		// again (locked, it exits with the goroutine).
		if serr == nil {
			unix.Close(fd)
		}
		runtime.Goexit()
	}
	return fd, serr
}

func (w *writer) close() error { return unix.Close(w.fd) }

// resolve asks the generic netlink controller for a family's id.
func (w *writer) resolve(name string) (uint16, error) {
	w.buf = w.buf[:0]
	start := w.begin(unix.GENL_ID_CTRL, genlCtrlCmdGetFamily)
	w.buf = appendAttr(w.buf, genlCtrlAttrFamilyName, append([]byte(name), 0))
	w.end(start)
	seq := w.seq
	if err := w.send(); err != nil {
		return 0, err
	}
	var id uint16
	var ackErr error
	err := w.receive(func(m syscall.NetlinkMessage) bool {
		if m.Header.Seq != seq {
			return false
		}
		switch m.Header.Type {
		case unix.NLMSG_ERROR:
			if e := ackErrno(m.Data); e != 0 {
				ackErr = e
			}
			return true
		case unix.GENL_ID_CTRL:
			if len(m.Data) < unix.GENL_HDRLEN {
				return false
			}
			walkAttrs(m.Data[unix.GENL_HDRLEN:], func(t uint16, v []byte) {
				if t == genlCtrlAttrFamilyID && len(v) >= 2 {
					id = binary.NativeEndian.Uint16(v)
				}
			})
			return false // the acknowledgement follows
		}
		return false
	}, 1)
	if err != nil {
		return 0, err
	}
	if ackErr != nil {
		if errors.Is(ackErr, unix.ENOENT) {
			return 0, fmt.Errorf("the kernel has no %s family (modprobe ip_vs)", name)
		}
		return 0, ackErr
	}
	if id == 0 {
		return 0, fmt.Errorf("the controller did not say the id of %s", name)
	}
	return id, nil
}

// cmd is one write command: a service and, for destination commands, a
// destination.
type cmd struct {
	cmd  uint8
	svc  *ipvs.Service
	dest *ipvs.Destination
}

// run sends cmds in batches and returns, for each, the kernel's error or
// nil. Every command is carried out whatever the others' fate: a failed one
// does not stop the rest. err is a failure of the socket itself, after
// which the fate of the commands not yet answered is unknown (their errors
// say so).
func (w *writer) run(cmds []cmd) (errs []error, err error) {
	errs = make([]error, len(cmds))
	for i := 0; i < len(cmds); {
		w.buf = w.buf[:0]
		first := w.seq + 1
		j := i
		for ; j < len(cmds) && j-i < batchMsgs && (j == i || len(w.buf) < batchBytes); j++ {
			w.encode(cmds[j])
		}
		if err := w.send(); err != nil {
			for k := i; k < len(cmds); k++ {
				errs[k] = fmt.Errorf("not sent: %w", err)
			}
			return errs, err
		}
		pending := j - i
		answered := make([]bool, pending)
		rerr := w.receive(func(m syscall.NetlinkMessage) bool {
			k := int(m.Header.Seq - first)
			if m.Header.Type != unix.NLMSG_ERROR || k < 0 || k >= pending || answered[k] {
				return false
			}
			answered[k] = true
			if e := ackErrno(m.Data); e != 0 {
				errs[i+k] = e
			}
			return true
		}, pending)
		if rerr != nil {
			for k := range pending {
				if !answered[k] {
					errs[i+k] = fmt.Errorf("no answer: %w", rerr)
				}
			}
			for k := j; k < len(cmds); k++ {
				errs[k] = fmt.Errorf("not sent: %w", rerr)
			}
			return errs, rerr
		}
		i = j
	}
	return errs, nil
}

// encode appends c's message to the batch.
func (w *writer) encode(c cmd) {
	start := w.begin(w.family, c.cmd)
	w.buf = appendService(w.buf, c.svc)
	if c.dest != nil {
		w.buf = appendDest(w.buf, c.dest)
	}
	w.end(start)
}

// begin starts a message (header and genetlink header) and returns where.
func (w *writer) begin(typ uint16, command uint8) int {
	w.seq++
	start := len(w.buf)
	var h [unix.NLMSG_HDRLEN + unix.GENL_HDRLEN]byte
	binary.NativeEndian.PutUint16(h[4:], typ)
	binary.NativeEndian.PutUint16(h[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(h[8:], w.seq)
	h[16] = command
	h[17] = ipvsGenlVersion
	w.buf = append(w.buf, h[:]...)
	return start
}

// end writes the message's length.
func (w *writer) end(start int) {
	binary.NativeEndian.PutUint32(w.buf[start:], uint32(len(w.buf)-start))
}

func (w *writer) send() error {
	return unix.Sendto(w.fd, w.buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

// receive reads messages and hands each to fn until fn has said true
// (an awaited answer) want times.
func (w *writer) receive(fn func(syscall.NetlinkMessage) bool, want int) error {
	for want > 0 {
		n, _, err := unix.Recvfrom(w.fd, w.rbuf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.EAGAIN) {
				return fmt.Errorf("no answer from the kernel in %v", writerTimeout)
			}
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(w.rbuf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if fn(m) {
				want--
			}
		}
	}
	return nil
}

// ackErrno is the error of an acknowledgement (NLMSG_ERROR), 0 for success.
func ackErrno(data []byte) syscall.Errno {
	if len(data) < 4 {
		return syscall.EINVAL
	}
	return syscall.Errno(-int32(binary.NativeEndian.Uint32(data)))
}

// appendService appends s as IPVS_CMD_ATTR_SERVICE, as the kernel reads it
// (net/netfilter/ipvs/ip_vs_ctl.c, ip_vs_genl_parse_service): the key
// (family with fwmark, or protocol, address and port), and the scheduler,
// flags, timeout and netmask it requires for new services.
func appendService(b []byte, s *ipvs.Service) []byte {
	return appendNested(b, ipvsCmdAttrService, func(b []byte) []byte {
		b = appendU16(b, ipvsSvcAttrAF, s.AddressFamily)
		if s.FWMark != 0 {
			b = appendU32(b, ipvsSvcAttrFWMark, s.FWMark)
		} else {
			b = appendU16(b, ipvsSvcAttrProtocol, s.Protocol)
			b = appendAttr(b, ipvsSvcAttrAddr, rawIP(s.Address))
			b = appendAttr(b, ipvsSvcAttrPort, binary.BigEndian.AppendUint16(nil, s.Port))
		}
		b = appendAttr(b, ipvsSvcAttrSchedName, append([]byte(s.SchedName), 0))
		if s.PEName != "" {
			b = appendAttr(b, ipvsSvcAttrPEName, append([]byte(s.PEName), 0))
		}
		var flags [8]byte
		binary.NativeEndian.PutUint32(flags[0:], s.Flags)
		binary.NativeEndian.PutUint32(flags[4:], 0xFFFFFFFF)
		b = appendAttr(b, ipvsSvcAttrFlags, flags[:])
		b = appendU32(b, ipvsSvcAttrTimeout, s.Timeout)
		return appendU32(b, ipvsSvcAttrNetmask, s.Netmask)
	})
}

// appendDest appends d as IPVS_CMD_ATTR_DEST (ip_vs_genl_parse_dest):
// address, port, and the forwarding method, weight and thresholds it
// requires.
func appendDest(b []byte, d *ipvs.Destination) []byte {
	return appendNested(b, ipvsCmdAttrDest, func(b []byte) []byte {
		b = appendAttr(b, ipvsDestAttrAddr, rawIP(d.Address))
		b = appendAttr(b, ipvsDestAttrPort, binary.BigEndian.AppendUint16(nil, d.Port))
		if d.AddressFamily != 0 {
			b = appendU16(b, ipvsDestAttrAddrAF, d.AddressFamily)
		}
		b = appendU32(b, ipvsDestAttrFwdMethod, d.ConnectionFlags&ipvs.ConnectionFlagFwdMask)
		b = appendU32(b, ipvsDestAttrWeight, uint32(d.Weight))
		b = appendU32(b, ipvsDestAttrUThresh, d.UpperThreshold)
		return appendU32(b, ipvsDestAttrLThresh, d.LowerThreshold)
	})
}

// rawIP is an address as IPVS takes it: 4 bytes for IPv4, else 16.
func rawIP(ip net.IP) []byte {
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	return ip.To16()
}

func appendU16(b []byte, typ uint16, v uint16) []byte {
	return appendAttr(b, typ, binary.NativeEndian.AppendUint16(nil, v))
}

func appendU32(b []byte, typ uint16, v uint32) []byte {
	return appendAttr(b, typ, binary.NativeEndian.AppendUint32(nil, v))
}

// appendAttr appends a netlink attribute, padded to 4 bytes.
func appendAttr(b []byte, typ uint16, v []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(unix.NLA_HDRLEN+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%unix.NLA_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

// appendNested appends an attribute whose value fill writes.
func appendNested(b []byte, typ uint16, fill func([]byte) []byte) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = fill(b)
	binary.NativeEndian.PutUint16(b[start:], uint16(len(b)-start))
	binary.NativeEndian.PutUint16(b[start+2:], typ) // without NLA_F_NESTED, as libnl and moby/ipvs send it
	return b
}

// walkAttrs calls fn for each attribute in b.
func walkAttrs(b []byte, fn func(typ uint16, v []byte)) {
	for len(b) >= unix.NLA_HDRLEN {
		l := int(binary.NativeEndian.Uint16(b))
		if l < unix.NLA_HDRLEN || l > len(b) {
			return
		}
		fn(binary.NativeEndian.Uint16(b[2:])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER), b[unix.NLA_HDRLEN:l])
		l = (l + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if l > len(b) {
			return
		}
		b = b[l:]
	}
}
