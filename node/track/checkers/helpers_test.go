package checkers

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/haa-dev/haa/node/track"
)

// reports collects a checker's reports.
type reports struct {
	mu sync.Mutex
	rs []track.Result
	ch chan track.Result // every report, when not nil
}

func (r *reports) report(res track.Result) {
	r.mu.Lock()
	r.rs = append(r.rs, res)
	r.mu.Unlock()
	if r.ch != nil {
		r.ch <- res
	}
}

func (r *reports) all() []track.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]track.Result(nil), r.rs...)
}

// start runs c until the test ends, and returns its reports and a function
// that stops it and waits until Run returned.
func start(t *testing.T, c track.Checker, buffered bool) (*reports, func()) {
	t.Helper()
	rep := &reports{}
	if buffered {
		rep.ch = make(chan track.Result, 1000)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx, rep.report)
	}()
	stop := func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
	}
	t.Cleanup(stop)
	return rep, stop
}

// brief is a report without its time, for comparisons.
type brief struct {
	OK     bool
	Value  int
	Detail string
}

func briefs(rs []track.Result) []brief {
	var bs []brief
	for _, r := range rs {
		bs = append(bs, brief{r.OK, r.Value, r.Detail})
	}
	return bs
}
