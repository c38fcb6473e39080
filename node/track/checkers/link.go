package checkers

import (
	"context"
	"sync"
	"time"

	"github.com/haa-dev/haa/node/track"
)

// Link is an interface tracker: OK while the link is up. It does not watch
// the interface itself: the agent's link monitor calls Set on every
// update of the interface.
type Link struct {
	name    string
	mu      sync.Mutex
	up      bool
	since   time.Time     // when up last changed
	changed chan struct{} // a pending change for Run (capacity 1)
}

// NewLink returns the tracker of interface name, whose link is up or not
// now.
func NewLink(name string, up bool) *Link {
	return &Link{name: name, up: up, since: time.Now(), changed: make(chan struct{}, 1)}
}

// Name is the interface's name.
func (l *Link) Name() string { return l.name }

// Set records the link's state. It never blocks. Changes that come faster
// than Run handles them are merged: Run reports the latest state.
func (l *Link) Set(up bool) {
	l.mu.Lock()
	if up == l.up {
		l.mu.Unlock()
		return
	}
	l.up, l.since = up, time.Now()
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default: // Run has a change to look at already
	}
}

// Run reports the link's state at once and then on every change, until
// ctx ends. Run one Run at a time.
func (l *Link) Run(ctx context.Context, report func(track.Result)) {
	rep := track.NewReporter(report)
	for {
		l.mu.Lock()
		r := track.Result{OK: l.up, Detail: "link down", Since: l.since}
		l.mu.Unlock()
		if r.OK {
			r.Detail = "link up"
		}
		rep.Send(r)
		select {
		case <-ctx.Done():
			return
		case <-l.changed:
		}
	}
}
