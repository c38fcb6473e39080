package pace

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestYieldLetsOthersRun: with one processor, a goroutine that is ready
// runs within a few slices of a busy loop that calls Yield, not after the
// scheduler's 10 ms preemption.
func TestYieldLetsOthersRun(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var ran atomic.Int64
	start := time.Now()
	go func() { ran.Store(int64(time.Since(start))) }()
	var p Pacer
	for time.Since(start) < 50*time.Millisecond && ran.Load() == 0 {
		p.Yield()
	}
	got := time.Duration(ran.Load())
	if got == 0 || got > 5*time.Millisecond {
		t.Fatalf("the other goroutine ran after %v (0: not within 50ms)", got)
	}
}
