package gossip

import (
	"sync"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// handlerQueue carries calls to the Handler from memberlist goroutines,
// which must not wait, to the one goroutine that makes them, in order.
// It never blocks and stays small without dropping a document: a Changed
// joins the Changed already at the tail, and an Offered replaces the
// not yet delivered one of the same peer (keeping the higher generation).
// So it holds at most two entries per peer.
type handlerQueue struct {
	mu    sync.Mutex
	items []hitem
	wake  chan struct{} // capacity 1
}

// hitem is a Changed call (doc nil) or an Offered call.
type hitem struct {
	from string
	doc  *haav1.Fleet
}

func newHandlerQueue() *handlerQueue {
	return &handlerQueue{wake: make(chan struct{}, 1)}
}

func (q *handlerQueue) changed() {
	q.mu.Lock()
	if n := len(q.items); n == 0 || q.items[n-1].doc != nil {
		q.items = append(q.items, hitem{})
	}
	q.mu.Unlock()
	q.signal()
}

func (q *handlerQueue) offered(from string, doc *haav1.Fleet) {
	q.mu.Lock()
	defer q.signal()
	defer q.mu.Unlock()
	for i := range q.items {
		if it := &q.items[i]; it.doc != nil && it.from == from {
			if doc.GetGeneration() >= it.doc.GetGeneration() {
				it.doc = doc
			}
			return
		}
	}
	q.items = append(q.items, hitem{from: from, doc: doc})
}

func (q *handlerQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pop takes the first entry.
func (q *handlerQueue) pop() (hitem, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return hitem{}, false
	}
	it := q.items[0]
	q.items[0] = hitem{}
	q.items = q.items[1:]
	if len(q.items) == 0 {
		q.items = nil // let the backing array go
	}
	return it, true
}

// run calls h for every entry until done is closed.
func (q *handlerQueue) run(h Handler, done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case <-q.wake:
		}
		for {
			it, ok := q.pop()
			if !ok {
				break
			}
			select {
			case <-done:
				return
			default:
			}
			if it.doc != nil {
				h.Offered(it.from, it.doc)
			} else {
				h.Changed()
			}
		}
	}
}
