package lab

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Pinger sends ICMP echo requests from a node at a fixed rate and records when
// each reply arrives. It is the client side of outage measurements.
type Pinger struct {
	node   *Node
	target netip.Addr
	conn   *icmp.PacketConn
	id     uint16
	token  [8]byte // echo payload: tells our replies from anyone else's

	stopOnce sync.Once
	stopCh   chan struct{}
	done     chan struct{} // closed when sender and receiver are finished

	mu      sync.Mutex
	start   time.Time
	end     time.Time
	sent    int
	sendErr int
	replied []bool      // per sent echo (sequence number counted from 0)
	replies []time.Time // receive times, in arrival order
	notify  chan struct{}
	stats   PingStats
}

// PingStats is the outcome of a Pinger run.
type PingStats struct {
	Target netip.Addr
	// Start is when the first request was sent, End when sending stopped.
	Start, End time.Time
	// Sent counts echo requests attempted; SendErrors those the kernel
	// refused (no route while the link is down, ...). Received counts
	// distinct replies (duplicates are ignored).
	Sent, SendErrors, Received int
	// Replies holds the receive time of every reply, in arrival order.
	Replies []time.Time
	// LongestGap is the longest interval without a reply: between two
	// consecutive replies, or from Start to the first reply, or from the last
	// reply to End (so an outage lasting until the end still counts). With no
	// reply at all it is End-Start. GapStart is when that gap began.
	LongestGap time.Duration
	GapStart   time.Time
}

// GapAfter returns the longest interval without a reply among those ending
// after t (counting End as the end of the last one): the outage caused by an
// event at t. Gaps that ended before t are ignored.
func (s PingStats) GapAfter(t time.Time) time.Duration {
	gap, _ := s.longestGap(t)
	return gap
}

// longestGap returns the longest gap ending after t, and its start.
func (s PingStats) longestGap(t time.Time) (time.Duration, time.Time) {
	var best time.Duration
	var bestStart time.Time
	prev := s.Start
	consider := func(next time.Time) {
		if next.After(t) && next.Sub(prev) > best {
			best, bestStart = next.Sub(prev), prev
		}
		prev = next
	}
	for _, r := range s.Replies {
		consider(r)
	}
	consider(s.End)
	return best, bestStart
}

// StartPing starts pinging target from the node, one echo request every
// `every` (a ticker: it does not drift; a late tick is skipped, not
// doubled), until Stop or until max has elapsed, whichever comes first.
func (n *Node) StartPing(target netip.Addr, every, max time.Duration) (*Pinger, error) {
	target = target.Unmap()
	if every <= 0 || max <= 0 {
		return nil, fmt.Errorf("ping %s: interval %v and max %v must be positive", target, every, max)
	}
	var conn *icmp.PacketConn
	err := n.Do(func() error {
		var err error
		if target.Is6() {
			conn, err = icmp.ListenPacket("ip6:ipv6-icmp", "::")
		} else {
			conn, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: icmp socket: %w", n.NS.Name, err)
	}
	p := &Pinger{
		node:   n,
		target: target,
		conn:   conn,
		stopCh: make(chan struct{}),
		done:   make(chan struct{}),
		notify: make(chan struct{}),
	}
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	p.id = binary.BigEndian.Uint16(idb[:])
	_, _ = rand.Read(p.token[:])

	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		p.receive()
	}()
	go func() {
		defer close(p.done)
		p.send(every, max)
		// Closing the socket ends receive; replies still in flight are lost,
		// which only matters within the last interval.
		_ = p.conn.Close()
		<-recvDone
	}()
	return p, nil
}

func (p *Pinger) send(every, max time.Duration) {
	dst := &net.IPAddr{IP: p.target.AsSlice()}
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	p.mu.Lock()
	p.start = time.Now()
	p.mu.Unlock()
	for {
		p.mu.Lock()
		seq := p.sent
		p.sent++
		p.replied = append(p.replied, false)
		p.mu.Unlock()
		var typ icmp.Type = ipv4.ICMPTypeEcho
		if p.target.Is6() {
			typ = ipv6.ICMPTypeEchoRequest
		}
		msg := icmp.Message{
			Type: typ,
			Body: &icmp.Echo{ID: int(p.id), Seq: seq & 0xffff, Data: p.token[:]},
		}
		b, err := msg.Marshal(nil)
		if err == nil {
			_, err = p.conn.WriteTo(b, dst)
		}
		if err != nil {
			p.mu.Lock()
			p.sendErr++
			p.mu.Unlock()
		}
		select {
		case <-ticker.C:
		case <-deadline.C:
			p.finish()
			return
		case <-p.stopCh:
			p.finish()
			return
		}
	}
}

func (p *Pinger) finish() {
	p.mu.Lock()
	p.end = time.Now()
	p.mu.Unlock()
}

func (p *Pinger) receive() {
	buf := make([]byte, 1500)
	for {
		n, from, err := p.conn.ReadFrom(buf)
		now := time.Now()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(time.Millisecond) // transient: keep reading, never spin
			continue
		}
		if ipa, ok := from.(*net.IPAddr); !ok || !ipa.IP.Equal(p.target.AsSlice()) {
			continue
		}
		proto, reply := ipv4.ICMPTypeEcho.Protocol(), icmp.Type(ipv4.ICMPTypeEchoReply)
		if p.target.Is6() {
			proto, reply = ipv6.ICMPTypeEchoRequest.Protocol(), ipv6.ICMPTypeEchoReply
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != reply {
			continue
		}
		echo, ok := m.Body.(*icmp.Echo)
		if !ok || uint16(echo.ID) != p.id || !bytes.Equal(echo.Data, p.token[:]) {
			continue
		}
		p.record(uint16(echo.Seq), now)
	}
}

// record notes a reply to the most recent request whose low 16 bits of the
// sequence number are seq.
func (p *Pinger) record(seq uint16, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sent == 0 {
		return
	}
	last := p.sent - 1
	idx := last - int(uint16(last)-seq)
	if idx < 0 || p.replied[idx] {
		return // unknown or duplicate
	}
	p.replied[idx] = true
	p.replies = append(p.replies, at)
	close(p.notify)
	p.notify = make(chan struct{})
}

// WaitReplies waits until n replies have arrived after the call, at most
// timeout. It fails early when the pinger stops.
func (p *Pinger) WaitReplies(n int, timeout time.Duration) error {
	p.mu.Lock()
	base := len(p.replies)
	p.mu.Unlock()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		p.mu.Lock()
		got := len(p.replies) - base
		ch := p.notify
		p.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-timer.C:
			return fmt.Errorf("ping %s from %s: %d of %d replies within %v", p.target, p.node.NS.Name, got, n, timeout)
		case <-p.done:
			p.mu.Lock()
			got = len(p.replies) - base
			p.mu.Unlock()
			if got >= n {
				return nil
			}
			return fmt.Errorf("ping %s from %s: pinger stopped after %d of %d replies", p.target, p.node.NS.Name, got, n)
		}
	}
}

// Received returns the number of replies so far.
func (p *Pinger) Received() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.replies)
}

// Stop stops the pinger (if max has not already) and returns its stats. It may
// be called more than once.
func (p *Pinger) Stop() PingStats {
	p.stopOnce.Do(func() { close(p.stopCh) })
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stats.Start.IsZero() {
		s := PingStats{
			Target:     p.target,
			Start:      p.start,
			End:        p.end,
			Sent:       p.sent,
			SendErrors: p.sendErr,
			Received:   len(p.replies),
			Replies:    append([]time.Time(nil), p.replies...),
		}
		s.LongestGap, s.GapStart = s.longestGap(time.Time{})
		p.stats = s
	}
	return p.stats
}
