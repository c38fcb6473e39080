package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// ErrEventsLost is returned when a subscriber asks for events that are no
// longer in the buffer: it fell too far behind.
var ErrEventsLost = errors.New("events no longer buffered")

// DefaultEventBuffer is how many events the agent keeps for clients that
// reconnect.
const DefaultEventBuffer = 4096

// EventLog numbers the node's events and keeps the last ones in a ring so a
// client that reconnects with the last sequence number it saw gets exactly
// what it missed. Appending never blocks: a subscriber that falls more than
// the buffer behind gets ErrEventsLost.
type EventLog struct {
	mu   sync.Mutex
	node string
	ring []*haav1.Event
	next uint64        // sequence number of the next event; the first is 1
	wake chan struct{} // closed and replaced at every append
	now  func() time.Time
}

// NewEventLog returns a log keeping size events.
func NewEventLog(size int) *EventLog {
	if size <= 0 {
		size = DefaultEventBuffer
	}
	return &EventLog{ring: make([]*haav1.Event, size), next: 1, wake: make(chan struct{}), now: time.Now}
}

// SetNode sets the node name stamped on events.
func (l *EventLog) SetNode(name string) {
	l.mu.Lock()
	l.node = name
	l.mu.Unlock()
}

// Append stamps e (sequence number, time unless set, node) and stores it.
func (l *EventLog) Append(e *haav1.Event) *haav1.Event {
	l.mu.Lock()
	e.Seq = l.next
	if e.Time == nil {
		e.Time = timestamppb.New(l.now())
	}
	e.Node = l.node
	l.ring[l.next%uint64(len(l.ring))] = e
	l.next++
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
	return e
}

// LastSeq is the sequence number of the newest event (0: none yet).
func (l *EventLog) LastSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next - 1
}

// Subscription reads the log in order.
type Subscription struct {
	l    *EventLog
	next uint64
}

// Subscribe starts reading after since (nil: after the newest event, i.e.
// only new events). It fails with ErrEventsLost if events after since have
// already been overwritten, and with an error if since is in the future.
func (l *EventLog) Subscribe(since *uint64) (*Subscription, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if since == nil {
		return &Subscription{l: l, next: l.next}, nil
	}
	if *since >= l.next {
		return nil, fmt.Errorf("event %d does not exist yet (newest %d): %w", *since, l.next-1, ErrFutureEvent)
	}
	s := &Subscription{l: l, next: *since + 1}
	if s.next < l.oldest() {
		return nil, fmt.Errorf("events after %d are gone, the oldest kept is %d: %w", *since, l.oldest(), ErrEventsLost)
	}
	return s, nil
}

// ErrFutureEvent is returned for a since_seq the node has not reached.
var ErrFutureEvent = errors.New("no such event yet")

func (l *EventLog) oldest() uint64 {
	if n := uint64(len(l.ring)); l.next > n {
		return l.next - n
	}
	return 1
}

// Next returns the next event, waiting for it until ctx is done.
func (s *Subscription) Next(ctx context.Context) (*haav1.Event, error) {
	l := s.l
	for {
		l.mu.Lock()
		if s.next < l.oldest() {
			oldest := l.oldest()
			l.mu.Unlock()
			return nil, fmt.Errorf("subscriber fell behind: events %d..%d were overwritten: %w", s.next, oldest-1, ErrEventsLost)
		}
		if s.next < l.next {
			e := l.ring[s.next%uint64(len(l.ring))]
			s.next++
			l.mu.Unlock()
			return e, nil
		}
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
