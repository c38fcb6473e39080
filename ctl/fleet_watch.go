package ctl

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Watch merges the event streams of every member that can be called (see
// Clients; the members joining later are not watched): fn hears each event
// with its node's name, in order per node, from now on. Each node's stream
// is followed as by Client.Watch with opts: it reconnects with backoff and
// resumes where it broke. Retry.Err, for OnRetry, is a *NodeError naming
// the node; Restart names the node in Previous and Current. fn and the
// OnRetry and OnRestart functions are never called concurrently.
//
// Watch returns when ctx is done (ctx.Err()), when fn returns an error (as
// is) or when a node's stream fails beyond retrying (a *NodeError, e.g.
// wrapping an *EventsLostError).
func (f *Fleet) Watch(ctx context.Context, fn func(node string, e *haav1.Event) error, opts ...WatchOption) error {
	clients := f.Clients()
	if len(clients) == 0 {
		return errors.New("no member of the fleet can be called")
	}
	var o watchOptions
	for _, opt := range opts {
		opt(&o)
	}
	ctx, cancel := context.WithCancel(ctx)
	var cb sync.Mutex // serialises fn and the callbacks
	type item struct {
		node string
		e    *haav1.Event
	}
	events := make(chan item)
	errc := make(chan error, len(clients))
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	for _, node := range slices.Sorted(maps.Keys(clients)) {
		c := clients[node]
		nodeOpts := slices.Clone(opts)
		if o.onRetry != nil {
			nodeOpts = append(nodeOpts, OnRetry(func(r Retry) {
				r.Err = &NodeError{Node: node, Err: r.Err}
				cb.Lock()
				defer cb.Unlock()
				o.onRetry(r)
			}))
		}
		if o.onRestart != nil {
			nodeOpts = append(nodeOpts, OnRestart(func(r Restart) error {
				cb.Lock()
				defer cb.Unlock()
				return o.onRestart(r)
			}))
		}
		wg.Go(func() {
			err := c.Watch(ctx, nil, func(e *haav1.Event) error {
				select {
				case events <- item{node, e}:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}, nodeOpts...)
			if ctx.Err() == nil {
				errc <- &NodeError{Node: node, Err: err}
			}
		})
	}
	for {
		select {
		case it := <-events:
			cb.Lock()
			err := fn(it.node, it.e)
			cb.Unlock()
			if err != nil {
				return err
			}
		case err := <-errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
