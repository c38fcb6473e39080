package node

import (
	"context"
	"errors"
	"testing"
	"time"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

func ev(instance string) *haav1.Event { return &haav1.Event{Instance: instance} }

func TestEventLogResumeWithoutLossOrRepeat(t *testing.T) {
	l := NewEventLog(8)
	l.SetNode("n1")
	for i := 0; i < 5; i++ {
		l.Append(ev("VI_1"))
	}
	since := uint64(3)
	s, err := l.Subscribe(&since)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for want := uint64(4); want <= 5; want++ {
		e, err := s.Next(ctx)
		if err != nil || e.Seq != want || e.Node != "n1" || e.Time == nil {
			t.Fatalf("got %v %v, want seq %d", e, err, want)
		}
	}
	// Next waits for a new event.
	go func() { time.Sleep(10 * time.Millisecond); l.Append(ev("VI_2")) }()
	if e, err := s.Next(ctx); err != nil || e.Seq != 6 || e.Instance != "VI_2" {
		t.Fatalf("got %v %v", e, err)
	}
}

func TestEventLogOverflowAndBounds(t *testing.T) {
	l := NewEventLog(4)
	for i := 0; i < 10; i++ {
		l.Append(ev(""))
	}
	// Events 7..10 are kept; resuming after 6 works, after 5 does not.
	ok := uint64(6)
	if _, err := l.Subscribe(&ok); err != nil {
		t.Fatal(err)
	}
	old := uint64(5)
	if _, err := l.Subscribe(&old); !errors.Is(err, ErrEventsLost) {
		t.Fatalf("err %v, want ErrEventsLost", err)
	}
	future := uint64(11)
	if _, err := l.Subscribe(&future); !errors.Is(err, ErrFutureEvent) {
		t.Fatalf("err %v, want ErrFutureEvent", err)
	}
	// A slow subscriber overtaken by the ring learns it.
	s, _ := l.Subscribe(nil)
	for i := 0; i < 5; i++ {
		l.Append(ev(""))
	}
	if _, err := s.Next(context.Background()); !errors.Is(err, ErrEventsLost) {
		t.Fatalf("err %v, want ErrEventsLost", err)
	}
	// Without since: only new events.
	s, _ = l.Subscribe(nil)
	l.Append(ev("new"))
	if e, _ := s.Next(context.Background()); e.Instance != "new" || e.Seq != 16 {
		t.Fatalf("got %v", e)
	}
}
