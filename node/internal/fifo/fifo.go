// Package fifo is an unbounded queue for a subsystem's owner goroutine:
// pushing never blocks, the owner takes everything queued at once.
package fifo

import (
	"context"
	"sync"
)

// Queue is an unbounded queue. The zero value is not ready: use New.
type Queue[T any] struct {
	mu    sync.Mutex
	items []T
	wake  chan struct{}
}

// New returns an empty queue.
func New[T any]() *Queue[T] { return &Queue[T]{wake: make(chan struct{}, 1)} }

// Push appends v. It never blocks.
func (q *Queue[T]) Push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Wait returns everything queued, in order, waiting for something if the
// queue is empty; false once ctx ends.
func (q *Queue[T]) Wait(ctx context.Context) ([]T, bool) {
	for {
		q.mu.Lock()
		items := q.items
		q.items = nil
		q.mu.Unlock()
		if len(items) > 0 {
			return items, true
		}
		select {
		case <-q.wake:
		case <-ctx.Done():
			return nil, false
		}
	}
}
