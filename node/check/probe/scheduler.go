package probe

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/haa-dev/haa/node/check"

	"github.com/haa-dev/haa/node/track"
)

// Scheduler runs many checks, each on its own schedule, with at most a
// fixed number of probes in flight. One dispatcher goroutine keeps the
// checks in a heap by due time; each probe runs in a goroutine of its
// own, started when it is due and a slot is free. A check that waits for
// a slot runs as soon as one frees, before checks due later.
//
// Timing of a check: the first probe after a random delay in [0, Jitter);
// after an OK probe the next one an Interval later; after a failed probe
// that has not (yet) made the check fall, a RetryDelay later; once the
// check has failed, an Interval later. Intervals count from the end of a
// probe.
//
// The methods are safe for concurrent use and never wait for a probe.
type Scheduler struct {
	max    int
	report func(id string, st check.Status)

	epoch  time.Time       // due times count from it
	ctx    context.Context // ends at Close: cancels every probe
	cancel context.CancelFunc
	wake   chan struct{} // cap 1: something changed for the dispatcher
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	checks   map[string]*entry
	due      dueHeap // checks waiting for their time (not in flight)
	inFlight int
	seq      uint64 // orders checks due at the same time
}

// entry is one check. A Set or Remove detaches it (checks[id] no longer
// points to it), which discards the result of its probe in flight.
type entry struct {
	id   string
	spec check.Spec
	st   check.Status
	rf   *track.RiseFall

	index  int                // in the heap; -1: not in it
	cancel context.CancelFunc // of the probe in flight; nil: none
}

// NewScheduler returns a running Scheduler that runs at most maxInFlight
// probes at once (below 1 means 1). report is called whenever a check's
// Healthy or Weight changes, from a scheduler goroutine with the
// Scheduler's lock held: it must return quickly (queue the change) and
// must not call the Scheduler's methods. It is not called for a check's
// initial state, nor after Close returns.
func NewScheduler(maxInFlight int, report func(id string, st check.Status)) *Scheduler {
	if report == nil {
		report = func(string, check.Status) {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scheduler{
		max:    max(maxInFlight, 1),
		report: report,
		epoch:  time.Now(),
		ctx:    ctx,
		cancel: cancel,
		wake:   make(chan struct{}, 1),
		checks: make(map[string]*entry),
	}
	s.wg.Add(1)
	go s.dispatch()
	return s
}

// Set adds the check id, or replaces its spec. A new check starts Healthy
// with Weight -1 and Since now, without a report. A replaced check keeps
// its Status (Healthy, Weight, Since, Last) but starts its rise or fall
// streak again; its probe in flight, if any, is canceled and its result
// discarded. Either way the first probe comes after a random delay in
// [0, Jitter). Set after Close does nothing.
func (s *Scheduler) Set(id string, spec check.Spec) { s.set(id, spec, nil) }

// SetFrom is Set for a check that continues one the caller ran before
// under another id (its configuration changed): a new id starts in state
// from instead of Healthy, so a failed server stays failed until rise good
// probes, and the change back is reported.
func (s *Scheduler) SetFrom(id string, spec check.Spec, from check.Status) { s.set(id, spec, &from) }

func (s *Scheduler) set(id string, spec check.Spec, from *check.Status) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	st := check.Status{Healthy: true, Weight: -1, Last: check.Result{Weight: -1, Detail: "not checked yet"}, Since: now}
	if from != nil {
		st = *from
	}
	if old := s.checks[id]; old != nil {
		st = old.st
		s.detach(old)
	}
	e := &entry{id: id, spec: spec, st: st, rf: track.NewRiseFallIn(spec.Rise, spec.Fall, st.Healthy), index: -1}
	s.checks[id] = e
	at := now
	if spec.Jitter > 0 {
		at = at.Add(time.Duration(rand.Int64N(int64(spec.Jitter))))
	}
	s.schedule(e, at)
}

// Remove stops the check id, canceling its probe in flight (whose result
// is discarded). Removing an unknown id does nothing.
func (s *Scheduler) Remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.checks[id]; e != nil {
		s.detach(e)
		delete(s.checks, id)
	}
}

// Status returns the check id's current status, and whether it exists.
func (s *Scheduler) Status(id string) (check.Status, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.checks[id]
	if e == nil {
		return check.Status{}, false
	}
	return e.st, true
}

// Len returns the number of checks.
func (s *Scheduler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.checks)
}

// Close stops the Scheduler: it cancels the probes in flight and waits
// for them and the dispatcher to end. No report is made after Close
// returns. Close may be called more than once.
func (s *Scheduler) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// detach takes e out of the heap and cancels its probe in flight. The
// caller holds mu and removes e from checks (or replaces it).
func (s *Scheduler) detach(e *entry) {
	if e.index >= 0 {
		heap.Remove(&s.due, e.index)
	}
	if e.cancel != nil {
		e.cancel()
		e.cancel = nil
	}
}

// schedule puts e in the heap, due at at, and wakes the dispatcher if it
// is now the first. The caller holds mu.
func (s *Scheduler) schedule(e *entry, at time.Time) {
	s.seq++
	heap.Push(&s.due, due{at: at.Sub(s.epoch), seq: s.seq, e: e})
	if e.index == 0 {
		s.poke()
	}
}

// poke wakes the dispatcher without waiting.
func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// dispatch starts the probes that are due while slots are free, then
// sleeps until the next is due or something changes.
func (s *Scheduler) dispatch() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		now := time.Since(s.epoch)
		for s.inFlight < s.max && len(s.due) > 0 && s.due[0].at <= now {
			s.start(heap.Pop(&s.due).(due).e)
		}
		wait := time.Duration(-1)
		if s.inFlight < s.max && len(s.due) > 0 {
			wait = s.due[0].at - now
		}
		s.mu.Unlock()

		if wait >= 0 {
			timer.Reset(wait)
		} else {
			timer.Stop()
		}
		select {
		case <-s.ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
	}
}

// start runs a probe of e in a goroutine of its own. The caller holds mu.
func (s *Scheduler) start(e *entry) {
	ctx, cancel := context.WithCancel(s.ctx)
	e.cancel = cancel
	s.inFlight++
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		r := Probe(ctx, e.spec)
		cancel()
		s.done(e, r)
	}()
}

// done records the result r of a probe of e and schedules the next one,
// unless e was removed or replaced meanwhile.
func (s *Scheduler) done(e *entry, r check.Result) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight--
	s.poke() // a slot is free
	if s.closed || s.checks[e.id] != e {
		return
	}
	e.cancel = nil
	e.st.Last = r
	healthy, changed := e.rf.Observe(r.OK)
	weightChanged := false
	if r.OK && healthy && r.Weight != e.st.Weight {
		e.st.Weight, weightChanged = r.Weight, true
	}
	if changed {
		e.st.Healthy, e.st.Since = healthy, now
	}
	next := e.spec.Interval
	if !r.OK && healthy {
		next = e.spec.RetryDelay
	}
	s.schedule(e, now.Add(max(next, 0)))
	if changed || weightChanged {
		s.report(e.id, e.st)
	}
}

// due is a check waiting in the heap. The due time is kept here rather
// than in the entry so that comparisons need not follow the pointer.
type due struct {
	at  time.Duration // when the probe is due, since epoch
	seq uint64        // orders checks due at the same time
	e   *entry
}

// dueHeap is a min-heap of checks by due time (then by seq).
type dueHeap []due

func (h dueHeap) Len() int { return len(h) }

func (h dueHeap) Less(i, j int) bool {
	return h[i].at < h[j].at || (h[i].at == h[j].at && h[i].seq < h[j].seq)
}

func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].e.index, h[j].e.index = i, j
}

func (h *dueHeap) Push(x any) {
	d := x.(due)
	d.e.index = len(*h)
	*h = append(*h, d)
}

func (h *dueHeap) Pop() any {
	old := *h
	n := len(old)
	d := old[n-1]
	old[n-1] = due{}
	d.e.index = -1
	*h = old[:n-1]
	return d
}
