package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/haa-dev/haa/deploy/lab"
)

// vrrpGroup is the IPv4 VRRP multicast group.
var vrrpGroup = net.IPv4(224, 0, 0, 18)

// advertWatch listens to VRRP adverts on a lab member's LAN (the client's):
// when each source last sent one, and how many. It tells the benchmark where
// in the master's advert cycle a power-off happens, and counts the adverts
// on the wire.
type advertWatch struct {
	conn net.PacketConn

	mu     sync.Mutex
	last   map[netip.Addr]time.Time
	count  map[netip.Addr]uint64
	recent map[netip.Addr][]time.Time // the latest watchRecent adverts, oldest first
	notify chan struct{}              // closed and replaced at every advert
	done   chan struct{}
}

// watchAdverts opens a raw IP protocol 112 socket in n's namespace and joins
// 224.0.0.18 on its interface.
func watchAdverts(n *lab.Node) (*advertWatch, error) {
	var conn net.PacketConn
	err := n.Do(func() error {
		c, err := net.ListenPacket("ip4:112", "0.0.0.0")
		if err != nil {
			return err
		}
		ifi, err := net.InterfaceByName(n.Iface)
		if err == nil {
			err = ipv4.NewPacketConn(c).JoinGroup(ifi, &net.IPAddr{IP: vrrpGroup})
		}
		if err != nil {
			c.Close()
			return err
		}
		conn = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: VRRP listener: %w", n.NS.Name, err)
	}
	w := &advertWatch{
		conn:   conn,
		last:   map[netip.Addr]time.Time{},
		count:  map[netip.Addr]uint64{},
		recent: map[netip.Addr][]time.Time{},
		notify: make(chan struct{}),
		done:   make(chan struct{}),
	}
	go w.receive()
	return w, nil
}

func (w *advertWatch) receive() {
	defer close(w.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := w.conn.ReadFrom(buf)
		now := time.Now()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(time.Millisecond) // transient: never spin
			continue
		}
		// The IPv4 header is stripped: buf holds the VRRP message.
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
	_ = w.conn.Close()
	<-w.done
}
