package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Reconnect backoff defaults of Watch.
const (
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
)

// WatchOption tunes Watch.
type WatchOption func(*watchOptions)

type watchOptions struct {
	minBackoff, maxBackoff time.Duration
	onRetry                func(Retry)
	onRestart              func(Restart) error
}

// WatchBackoff sets the reconnect delay: it starts at min, doubles at every
// failed attempt up to max, and is back to min once events flow again.
func WatchBackoff(min, max time.Duration) WatchOption {
	return func(o *watchOptions) {
		if min > 0 {
			o.minBackoff = min
		}
		if max >= o.minBackoff {
			o.maxBackoff = max
		}
	}
}

// OnRetry calls fn before every reconnect (to tell the user the stream
// broke). fn must not block.
func OnRetry(fn func(Retry)) WatchOption { return func(o *watchOptions) { o.onRetry = fn } }

// OnRestart calls fn when Watch, reconnecting, finds that the agent has
// restarted. A non-nil error from fn ends Watch with that error; otherwise
// Watch follows the new run from its first event.
func OnRestart(fn func(Restart) error) WatchOption {
	return func(o *watchOptions) { o.onRestart = fn }
}

// Retry describes a reconnect of Watch.
type Retry struct {
	// Err broke the stream (or failed the last attempt).
	Err error
	// Wait is the delay before the next attempt.
	Wait time.Duration
	// Attempt counts the attempts since events last flowed (1, 2, ...).
	Attempt int
	// Resume is the last event seen, the next attempt's since_seq; nil when
	// no event has been seen (the next attempt asks for new events only).
	Resume *uint64
}

// Restart describes an agent that restarted under a Watch. Event sequence
// numbers belong to one run of the agent: the new run numbers from 1 again.
type Restart struct {
	// Previous and Current identify the two runs (name, pid, start time).
	Previous, Current *haav1.Node
	// LastSeq is the last event seen from the previous run; nil if none.
	// Events the previous run had after it (e.g. of its shutdown) may be
	// lost.
	LastSeq *uint64
}

// sameRun tells whether two answers of GetNode come from one run of the
// agent.
func sameRun(a, b *haav1.Node) bool {
	return a.GetName() == b.GetName() && a.GetPid() == b.GetPid() &&
		proto.Equal(a.GetStartTime(), b.GetStartTime())
}

// errRestarted makes Watch subscribe again, to a new run of the agent.
var errRestarted = errors.New("the agent restarted")

// callbackError carries the error of Watch's fn out of the stream loop.
type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }

// Watch calls fn with every event of the agent, in order, until ctx is done
// (it then returns ctx.Err()), fn returns an error (returned as is) or the
// agent answers something that retrying cannot fix.
//
// since nil starts with the events from now on; otherwise Watch starts right
// after event *since (replaying what the agent still buffers). When the
// stream breaks (agent restarting, network) Watch reconnects with bounded
// backoff and resumes after the last event fn saw, so fn sees every event
// exactly once. Only before the first event of a watch started with since
// nil can events be missed: there is no position to resume from yet.
//
// Sequence numbers restart with the agent, so Watch checks at every
// (re)connection which run of the agent it talks to (GetNode: pid and start
// time). When the agent has restarted, it calls the OnRestart function and
// follows the new run from its first event.
//
// If the agent no longer buffers the events to resume from, Watch returns
// an *EventsLostError (errors.Is ErrEventsLost): resync and watch again.
func (c *Client) Watch(ctx context.Context, since *uint64, fn func(*haav1.Event) error, opts ...WatchOption) error {
	o := watchOptions{minBackoff: DefaultMinBackoff, maxBackoff: DefaultMaxBackoff}
	for _, opt := range opts {
		opt(&o)
	}
	var last *uint64
	if since != nil {
		s := *since
		last = &s
	}
	var run *haav1.Node // the run of the agent the events come from
	checkRun := func(n *haav1.Node) error {
		switch {
		case run == nil:
			run = n
			return nil
		case sameRun(run, n):
			return nil
		}
		if o.onRestart != nil {
			if err := o.onRestart(Restart{Previous: run, Current: n, LastSeq: last}); err != nil {
				return &callbackError{err}
			}
		}
		run = n
		zero := uint64(0)
		last = &zero
		return errRestarted
	}
	wait, attempt := o.minBackoff, 0
	for {
		progressed := false
		err := c.watchOnce(ctx, &last, checkRun, func(e *haav1.Event) error {
			if last != nil {
				switch seq := e.GetSeq(); {
				case seq <= *last:
					return nil // seen already
				case seq > *last+1:
					return &EventsLostError{After: *last, Oldest: seq,
						Err: fmt.Errorf("the agent's stream jumped from event %d to %d", *last, seq)}
				}
			}
			seq := e.GetSeq()
			last = &seq
			progressed = true
			if err := fn(e); err != nil {
				return &callbackError{err}
			}
			return nil
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var cb *callbackError
		if errors.As(err, &cb) {
			return cb.err
		}
		if errors.Is(err, errRestarted) {
			wait, attempt = o.minBackoff, 0
			continue
		}
		var lost *EventsLostError
		if errors.As(err, &lost) {
			return lost
		}
		if status.Code(err) == codes.OutOfRange {
			var after uint64
			if last != nil {
				after = *last
			}
			return eventsLost(after, err)
		}
		if !retryable(err) {
			return err
		}
		if progressed {
			wait, attempt = o.minBackoff, 0
		}
		attempt++
		d := jitter(wait)
		if o.onRetry != nil {
			var resume *uint64
			if last != nil {
				r := *last
				resume = &r
			}
			o.onRetry(Retry{Err: err, Wait: d, Attempt: attempt, Resume: resume})
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, o.maxBackoff)
	}
}

// watchOnce follows one WatchEvents stream until it fails. It checks the
// run of the agent before subscribing (since *since may be of another run)
// and once subscribed (the agent may have restarted in between), with
// checkRun, which may change *since.
func (c *Client) watchOnce(ctx context.Context, since **uint64, checkRun func(*haav1.Node) error, handle func(*haav1.Event) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n, err := c.api.GetNode(ctx, &haav1.GetNodeRequest{})
	if err != nil {
		return err
	}
	if err := checkRun(n.GetNode()); err != nil {
		return err
	}
	stream, err := c.api.WatchEvents(ctx, &haav1.WatchEventsRequest{SinceSeq: *since})
	if err != nil {
		return err
	}
	// The agent sends the headers once the subscription is in place (or
	// with the first event); an agent that refuses ends the stream.
	if _, err := stream.Header(); err != nil {
		return err
	}
	if n, err = c.api.GetNode(ctx, &haav1.GetNodeRequest{}); err != nil {
		return err
	}
	if err := checkRun(n.GetNode()); err != nil {
		return err
	}
	for {
		r, err := stream.Recv()
		if err != nil {
			return err
		}
		if e := r.GetEvent(); e != nil {
			if err := handle(e); err != nil {
				return err
			}
		}
	}
}

// retryable tells a broken stream (reconnect) from an answer (give up). An
// agent ending the stream cleanly is shutting down: reconnect too.
func retryable(err error) bool {
	if errors.Is(err, io.EOF) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.Aborted, codes.Internal, codes.Unknown, codes.ResourceExhausted:
		return true
	}
	return false
}

// jitter spreads reconnects of many watchers of one agent: d ±20%.
func jitter(d time.Duration) time.Duration {
	return d - d/5 + rand.N(d*2/5+1)
}

// DefaultQuiet is how long Events waits for more events by default.
const DefaultQuiet = 300 * time.Millisecond

// ErrRestarted is returned by Events when the agent restarted while its
// events were read: they belong to two runs. Read them again.
var ErrRestarted = errors.New("the agent restarted while its events were read")

// Events returns the events the agent still buffers after since, oldest
// first; since nil: every event it still buffers. The API has no
// end-of-backlog marker, but the agent sends its backlog at once: Events
// returns when no event has come for quiet (0: DefaultQuiet) once
// subscribed. A broken stream is resumed after the last event read, unless
// the agent restarted (ErrRestarted). If the agent no longer has the events
// after *since, it returns an *EventsLostError.
func (c *Client) Events(ctx context.Context, since *uint64, quiet time.Duration) ([]*haav1.Event, error) {
	if quiet <= 0 {
		quiet = DefaultQuiet
	}
	if since != nil {
		return c.resumingBacklog(ctx, *since, quiet)
	}
	// From the oldest buffered: ask from the start, and when the buffer has
	// wrapped, from the oldest the agent says it keeps (it may move on
	// meanwhile: try again).
	var after uint64
	for range 4 {
		evs, err := c.resumingBacklog(ctx, after, quiet)
		var lost *EventsLostError
		if !errors.As(err, &lost) || lost.Oldest == 0 || len(evs) > 0 {
			return evs, err
		}
		after = lost.Oldest - 1
	}
	return c.resumingBacklog(ctx, after, quiet)
}

// resumingBacklog reads the backlog after since, resuming a broken stream
// after the last event read (up to 3 failed attempts in a row) if the
// agent has not restarted.
func (c *Client) resumingBacklog(ctx context.Context, since uint64, quiet time.Duration) ([]*haav1.Event, error) {
	var out []*haav1.Event
	var run *haav1.Node
	wait, failures := DefaultMinBackoff, 0
	for {
		n, err := c.api.GetNode(ctx, &haav1.GetNodeRequest{})
		if err == nil {
			if run != nil && !sameRun(run, n.GetNode()) {
				return out, ErrRestarted
			}
			run = n.GetNode()
			var evs []*haav1.Event
			evs, err = c.backlog(ctx, since, quiet)
			out = append(out, evs...)
			if len(evs) > 0 {
				since = evs[len(evs)-1].GetSeq()
				wait, failures = DefaultMinBackoff, 0
			}
		}
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return out, err
		}
		if failures++; failures == 3 {
			return out, err
		}
		t := time.NewTimer(jitter(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return out, ctx.Err()
		case <-t.C:
		}
		wait *= 2
	}
}

func (c *Client) backlog(ctx context.Context, since uint64, quiet time.Duration) ([]*haav1.Event, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.api.WatchEvents(ctx, &haav1.WatchEventsRequest{SinceSeq: &since})
	if err != nil {
		return nil, err
	}
	type item struct {
		e   *haav1.Event
		err error
	}
	subscribed := make(chan struct{})
	ch := make(chan item)
	go func() {
		// The agent sends the headers once subscribed (or with the first
		// event): from then on, its backlog comes at once.
		if _, err := stream.Header(); err == nil {
			close(subscribed)
		}
		for {
			r, err := stream.Recv()
			select {
			case ch <- item{r.GetEvent(), err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var out []*haav1.Event
	last := since
	// Until subscribed, allow for a slow connection (and for an agent that
	// sends its headers with the first event only).
	timer := time.NewTimer(max(quiet, 2*time.Second))
	defer timer.Stop()
	for {
		select {
		case <-subscribed:
			subscribed = nil
			timer.Reset(quiet)
		case it := <-ch:
			switch {
			case status.Code(it.err) == codes.OutOfRange:
				return out, eventsLost(last, it.err)
			case it.err != nil:
				return out, it.err
			case it.e == nil || it.e.GetSeq() <= last:
				continue
			case it.e.GetSeq() > last+1:
				return out, &EventsLostError{After: last, Oldest: it.e.GetSeq(),
					Err: fmt.Errorf("the agent's stream jumped from event %d to %d", last, it.e.GetSeq())}
			}
			out = append(out, it.e)
			last = it.e.GetSeq()
			timer.Reset(quiet)
		case <-timer.C:
			return out, nil
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
}
