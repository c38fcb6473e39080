package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/haa-dev/haa/deploy/lab"
)

// vrrpGroup and vrrpGroup6 are VRRP's multicast groups.
var (
	vrrpGroup  = net.IPv4(224, 0, 0, 18)
	vrrpGroup6 = net.ParseIP("ff02::12")
)

// advertWatch listens to VRRP adverts on a lab member's LAN (the client's):
// when each source last sent one, and how many. It tells the benchmark where
// in the master's advert cycle a power-off happens, and counts the adverts
// on the wire.
type advertWatch struct {
	conns []net.PacketConn

	mu     sync.Mutex
	last   map[netip.Addr]time.Time
	count  map[netip.Addr]uint64
	recent map[netip.Addr][]time.Time // the latest watchRecent adverts, oldest first
	notify chan struct{}              // closed and replaced at every advert
	done   chan struct{}
}

// watchAdverts opens raw IP protocol 112 sockets in n's namespace, IPv4's
// joined to 224.0.0.18 and IPv6's to ff02::12 on its interface.
func watchAdverts(n *lab.Node) (*advertWatch, error) {
	var conns []net.PacketConn
	err := n.Do(func() error {
		ifi, err := net.InterfaceByName(n.Iface)
		if err != nil {
			return err
		}
		c4, err := net.ListenPacket("ip4:112", "0.0.0.0")
		if err != nil {
			return err
		}
		conns = append(conns, c4)
		if err := ipv4.NewPacketConn(c4).JoinGroup(ifi, &net.IPAddr{IP: vrrpGroup}); err != nil {
			return err
		}
		c6, err := net.ListenPacket("ip6:112", "::")
		if err != nil {
			return err
		}
		conns = append(conns, c6)
		return ipv6.NewPacketConn(c6).JoinGroup(ifi, &net.IPAddr{IP: vrrpGroup6})
	})
	if err != nil {
		for _, c := range conns {
			c.Close()
		}
		return nil, fmt.Errorf("%s: VRRP listener: %w", n.NS.Name, err)
	}
	w := &advertWatch{
		conns:  conns,
		last:   map[netip.Addr]time.Time{},
		count:  map[netip.Addr]uint64{},
		recent: map[netip.Addr][]time.Time{},
		notify: make(chan struct{}),
		done:   make(chan struct{}),
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { w.receive(c) })
	}
	go func() {
		wg.Wait()
		close(w.done)
	}()
	return w, nil
}

func (w *advertWatch) receive(conn net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFrom(buf)
		now := time.Now()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(time.Millisecond) // transient: never spin
			continue
		}
		// The IP header is stripped: buf holds the VRRP message.
		if n < 8 || buf[0]&0x0f != 1 || buf[2] == 0 { // adverts only, not priority 0
			continue
		}
		ipa, ok := from.(*net.IPAddr)
		if !ok {
			continue
		}
		src, ok := netip.AddrFromSlice(ipa.IP)
		if !ok {
			continue
		}
		src = src.Unmap()
		w.mu.Lock()
		w.last[src] = now
		w.count[src]++
		r := w.recent[src]
		if len(r) >= watchRecent {
			r = r[1:]
		}
		w.recent[src] = append(r, now)
		close(w.notify)
		w.notify = make(chan struct{})
		w.mu.Unlock()
	}
}

// Last returns when src's latest advert was seen (zero if never).
func (w *advertWatch) Last(src netip.Addr) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last[src]
}

// Count returns how many adverts src has sent so far.
func (w *advertWatch) Count(src netip.Addr) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.count[src]
}

// watchRecent is how many advert times per source FirstAfter can look at.
const watchRecent = 512

// FirstAfter returns when the first advert from src after t was seen, if it
// is among the latest watchRecent.
func (w *advertWatch) FirstAfter(src netip.Addr, t time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, at := range w.recent[src] {
		if at.After(t) {
			return at, true
		}
	}
	return time.Time{}, false
}

// Next waits for the next advert from src, at most timeout, and returns when
// it was seen.
func (w *advertWatch) Next(src netip.Addr, timeout time.Duration) (time.Time, error) {
	w.mu.Lock()
	base := w.count[src]
	w.mu.Unlock()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		w.mu.Lock()
		got, at, ch := w.count[src], w.last[src], w.notify
		w.mu.Unlock()
		if got > base {
			return at, nil
		}
		select {
		case <-ch:
		case <-timer.C:
			return time.Time{}, fmt.Errorf("no VRRP advert from %s within %v", src, timeout)
		case <-w.done:
			return time.Time{}, errors.New("VRRP listener closed")
		}
	}
}

// Close stops listening.
func (w *advertWatch) Close() {
	for _, c := range w.conns {
		_ = c.Close()
	}
	<-w.done
}
