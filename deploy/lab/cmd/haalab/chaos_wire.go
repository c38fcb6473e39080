package main

// chaos: what the master put on the wire. A transition of the backup is a
// false one only if the master kept sending; c1 (the attacker's namespace,
// on the same bridge) records every advert of n1 and n2 with the kernel's
// receive time, so that haalab's own scheduling does not blur the gaps.

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/haa-dev/haa/node/vrrp"
)

// wireKey is one speaker of one virtual router.
type wireKey struct {
	src  netip.Addr
	vrid uint8
}

// wireWatch records the kernel receive times of the adverts (priority > 0)
// of the sources it watches.
type wireWatch struct {
	fd   int
	srcs map[netip.Addr]bool

	mu    sync.Mutex
	times map[wireKey][]time.Time
	stop  bool
	done  chan struct{}
}

// watchWire opens a raw VRRP socket in the namespace do runs in, joined to
// 224.0.0.18 on iface, with kernel timestamps, and records the adverts of
// srcs until Close.
func watchWire(do func(func() error) error, iface string, srcs ...netip.Addr) (*wireWatch, error) {
	var fd int
	err := do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, vrrp.Protocol)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("wire watch: %w", err)
	}
	w := &wireWatch{fd: fd, srcs: map[netip.Addr]bool{}, times: map[wireKey][]time.Time{}, done: make(chan struct{})}
	for _, s := range srcs {
		w.srcs[s] = true
	}
	if err := w.setup(do, iface); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("wire watch: %w", err)
	}
	go w.receive()
	return w, nil
}

func (w *wireWatch) setup(do func(func() error) error, iface string) error {
	return do(func() error {
		if err := unix.BindToDevice(w.fd, iface); err != nil {
			return err
		}
		idx, err := ifIndex(iface)
		if err != nil {
			return err
		}
		mreq := &unix.IPMreqn{Multiaddr: vrrp.GroupV4.As4(), Ifindex: int32(idx)}
		if err := unix.SetsockoptIPMreqn(w.fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(w.fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			return err
		}
		// Wake up every 100 ms to notice Close.
		return unix.SetsockoptTimeval(w.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
	})
}

// ifIndex is the index of the interface name in the calling thread's
// namespace.
func ifIndex(name string) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("interface %s: %w", name, err)
	}
	return int(ifr.Uint32()), nil
}

func (w *wireWatch) receive() {
	defer close(w.done)
	buf := make([]byte, 1500)
	oob := make([]byte, 128)
	for {
		w.mu.Lock()
		stop := w.stop
		w.mu.Unlock()
		if stop {
			return
		}
		n, oobn, _, _, err := unix.Recvmsg(w.fd, buf, oob, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			time.Sleep(10 * time.Millisecond) // never spin
			continue
		}
		at, ok := kernelTime(oob[:oobn])
		if !ok {
			at = time.Now()
		}
		// A raw IPv4 socket returns the IP header.
		if n < vrrp.IPv4HeaderLen {
			continue
		}
		ihl := int(buf[0]&0x0f) * 4
		if n < ihl+vrrp.HeaderLen {
			continue
		}
		src := netip.AddrFrom4([4]byte(buf[12:16]))
		m := buf[ihl:n]
		if !w.srcs[src] || m[0]&0x0f != vrrp.TypeAdvertisement || m[2] == vrrp.PriorityStop {
			continue
		}
		k := wireKey{src: src, vrid: m[1]}
		w.mu.Lock()
		w.times[k] = append(w.times[k], at)
		w.mu.Unlock()
	}
}

// kernelTime reads the SCM_TIMESTAMPNS control message.
func kernelTime(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := *(*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			return time.Unix(ts.Unix()), true
		}
	}
	return time.Time{}, false
}

// Close stops the watch.
func (w *wireWatch) Close() {
	w.mu.Lock()
	w.stop = true
	w.mu.Unlock()
	<-w.done
	unix.Close(w.fd)
}

// Silence is src's longest silence for vrid between from and to: the
// largest gap between its consecutive adverts, the edges included.
func (w *wireWatch) Silence(src netip.Addr, vrid uint8, from, to time.Time) time.Duration {
	w.mu.Lock()
	ts := append([]time.Time(nil), w.times[wireKey{src, vrid}]...)
	w.mu.Unlock()
	return longestGap(ts, from, to)
}

// Count is how many adverts src sent for vrid between from and to.
func (w *wireWatch) Count(src netip.Addr, vrid uint8, from, to time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, t := range w.times[wireKey{src, vrid}] {
		if !t.Before(from) && !t.After(to) {
			n++
		}
	}
	return n
}

// longestGap is the largest gap between consecutive times of ts within
// [from, to], counting from from and up to to.
func longestGap(ts []time.Time, from, to time.Time) time.Duration {
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	prev, gap := from, time.Duration(0)
	for _, t := range ts {
		if t.Before(from) || t.After(to) {
			continue
		}
		gap = max(gap, t.Sub(prev))
		prev = t
	}
	return max(gap, to.Sub(prev))
}
