package vrrp

import (
	"net/netip"
	"slices"
	"sync"
)

// mailboxSources is how many sources' adverts wait for a runner at once.
const mailboxSources = 64

// mailbox holds the adverts waiting for a runner: the latest one of each
// source, in the order the sources were first heard. Only the latest
// advert of a source matters to the protocol, so a source that sends
// faster than the runner handles them replaces its own advert and never
// takes another source's place: a flood from one address cannot push out
// the master's adverts. When mailboxSources sources wait already, a new
// one is dropped, unless it is protected (the master the runner follows,
// a unicast peer): then the oldest unprotected one makes room.
type mailbox struct {
	mu      sync.Mutex
	pending []inAdvert // at most one per source
	wake    chan struct{}
}

func newMailbox() *mailbox { return &mailbox{wake: make(chan struct{}, 1)} }

// put stores m as its source's latest advert; false when it was dropped
// for want of room.
func (b *mailbox) put(m inAdvert, protected func(netip.Addr) bool) bool {
	b.mu.Lock()
	i := slices.IndexFunc(b.pending, func(x inAdvert) bool { return x.src == m.src })
	switch {
	case i >= 0:
		b.pending[i] = m
	case len(b.pending) < mailboxSources:
		b.pending = append(b.pending, m)
	case protected(m.src):
		j := slices.IndexFunc(b.pending, func(x inAdvert) bool { return !protected(x.src) })
		if j < 0 {
			b.mu.Unlock()
			return false
		}
		b.pending = append(slices.Delete(b.pending, j, j+1), m)
	default:
		b.mu.Unlock()
		return false
	}
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return true
}

// take moves the waiting adverts into buf (emptied first) and returns it.
func (b *mailbox) take(buf []inAdvert) []inAdvert {
	b.mu.Lock()
	buf = append(buf[:0], b.pending...)
	clear(b.pending)
	b.pending = b.pending[:0]
	b.mu.Unlock()
	return buf
}

// protectedSource reports whether src's adverts must find room: the master
// the runner follows, or one of its unicast peers.
func (r *Runner) protectedSource(src netip.Addr) bool {
	if src == r.Followed() {
		return true
	}
	return slices.Contains(r.Peers(), src)
}
