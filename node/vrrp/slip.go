package vrrp

import (
	"sync/atomic"
	"time"
)

// TimerKind names the protocol timer whose lateness is measured.
type TimerKind int

// Timer kinds: a master's advert timer and a backup's master-down timer.
const (
	TimerAdvert TimerKind = iota
	TimerMasterDown
	numTimerKinds
)

func (k TimerKind) String() string {
	switch k {
	case TimerAdvert:
		return "advert"
	case TimerMasterDown:
		return "master_down"
	}
	return "unknown"
}

// TimerKinds lists every timer kind, in order, for metrics.
func TimerKinds() []TimerKind { return []TimerKind{TimerAdvert, TimerMasterDown} }

// SlipBuckets are the upper bounds of the timer-slip histogram buckets,
// from 100µs to 100ms.
var SlipBuckets = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond,
}

// SlipHistogram counts how late a timer fired, in the fixed SlipBuckets.
// Observe and Snapshot are safe for concurrent use without locks.
type SlipHistogram struct {
	buckets [len(SlipBuckets) + 1]atomic.Uint64 // per bucket (not cumulative); the last is +Inf
	count   atomic.Uint64
	sum     atomic.Int64 // nanoseconds
}

// Observe counts one firing that was d late.
func (h *SlipHistogram) Observe(d time.Duration) {
	d = max(d, 0)
	i := 0
	for i < len(SlipBuckets) && d > SlipBuckets[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sum.Add(int64(d))
	h.count.Add(1)
}

// SlipSnapshot is a histogram's content at one moment.
type SlipSnapshot struct {
	// Cumulative[i] counts the firings at most SlipBuckets[i] late.
	Cumulative [len(SlipBuckets)]uint64
	Count      uint64
	Sum        time.Duration
}

// Snapshot returns the counts. Read while observations go on, Count may
// exceed the last bucket by the firings being recorded.
func (h *SlipHistogram) Snapshot() SlipSnapshot {
	var s SlipSnapshot
	var acc uint64
	for i := range SlipBuckets {
		acc += h.buckets[i].Load()
		s.Cumulative[i] = acc
	}
	s.Count = max(h.count.Load(), acc)
	s.Sum = time.Duration(h.sum.Load())
	return s
}
