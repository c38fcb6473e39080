package checkers

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/haa-dev/haa/node/script"
)

// fakeRunner returns its results in turn (the last one forever), each
// after taking d.
type fakeRunner struct {
	d       time.Duration
	mu      sync.Mutex
	results []script.Result
	runs    []time.Time     // when each run started
	timeout []time.Duration // the timeout of each run
}

func (f *fakeRunner) Run(ctx context.Context, timeout time.Duration, args, env []string) script.Result {
	f.mu.Lock()
	f.runs = append(f.runs, time.Now())
	f.timeout = append(f.timeout, timeout)
	r := f.results[0]
	if len(f.results) > 1 {
		f.results = f.results[1:]
	}
	f.mu.Unlock()
	select {
	case <-ctx.Done():
		return script.Result{Exit: -1, Err: fmt.Errorf("killed: %w", context.Cause(ctx))}
	case <-time.After(f.d):
		return r
	}
}

func (f *fakeRunner) started() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.runs)
}

func exits(codes ...int) []script.Result {
	var rs []script.Result
	for _, c := range codes {
		rs = append(rs, script.Result{Exit: c})
	}
	return rs
}

func TestScriptRiseFall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		f := &fakeRunner{d: 100 * time.Millisecond, results: exits(0, 1, 0, 1, 1, 1, 0, 0, 0)}
		rep, stop := start(t, &Script{Cmd: f, Interval: time.Second, Rise: 2, Fall: 2}, false)
		time.Sleep(8*time.Second + 500*time.Millisecond) // 9 runs
		synctest.Wait()
		stop()

		got := rep.all()
		want := []brief{
			{true, 0, "exit status 0"},  // 0s
			{true, 0, "exit status 1"},  // 1s: one failure keeps it OK (fall 2)
			{true, 0, "exit status 0"},  // 2s
			{true, 0, "exit status 1"},  // 3s
			{false, 0, "exit status 1"}, // 4s: two failures in a row
			// 5s: failed again, not reported
			{false, 0, "exit status 0"}, // 6s: one success keeps it failed (rise 2)
			{true, 0, "exit status 0"},  // 7s: two successes
			// 8s: OK again, not reported
		}
		if !slices.Equal(briefs(got), want) {
			t.Fatalf("reports:\n got %v\nwant %v", briefs(got), want)
		}
		// Since is when OK last changed; reports come after each run.
		step := 100 * time.Millisecond
		wantSince := []time.Duration{0, 0, 0, 0, 4 * time.Second, 4 * time.Second, 7 * time.Second}
		for i, r := range got {
			if want := t0.Add(wantSince[i] + step); !r.Since.Equal(want) {
				t.Errorf("report %d: Since %v, want %v", i, r.Since.Sub(t0), want.Sub(t0))
			}
		}
		runs := f.started()
		if len(runs) != 9 {
			t.Fatalf("%d runs, want 9", len(runs))
		}
		for i, at := range runs {
			if want := t0.Add(time.Duration(i) * time.Second); !at.Equal(want) {
				t.Errorf("run %d started at %v, want %v", i, at.Sub(t0), want.Sub(t0))
			}
		}
		if f.timeout[0] != time.Second {
			t.Errorf("timeout %v, want the interval (1s)", f.timeout[0])
		}
	})
}

func TestScriptOutcomes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		timedOut := fmt.Errorf("%w after 2s", script.ErrTimeout)
		f := &fakeRunner{results: []script.Result{
			{Exit: 1}, {Exit: 1}, {Exit: 2}, {Exit: -1, Err: timedOut}, {Exit: -1, Err: timedOut},
			{Exit: -1, Err: fmt.Errorf("could not start /bin/x: permission denied")}, {Exit: 0},
		}}
		rep, stop := start(t, &Script{Cmd: f, Interval: 10 * time.Second, Timeout: 2 * time.Second}, false)
		time.Sleep(65 * time.Second)
		synctest.Wait()
		stop()
		want := []brief{
			{false, 0, "exit status 1"},
			{false, 0, "exit status 2"}, // the outcome changed while failed
			{false, 0, "timed out after 2s"},
			{false, 0, "could not start /bin/x: permission denied"},
			{true, 0, "exit status 0"},
		}
		if got := briefs(rep.all()); !slices.Equal(got, want) {
			t.Fatalf("reports:\n got %v\nwant %v", got, want)
		}
		if f.timeout[0] != 2*time.Second {
			t.Errorf("timeout %v, want 2s", f.timeout[0])
		}
	})
}

func TestScriptSlowRunDelaysNext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		f := &fakeRunner{d: 2500 * time.Millisecond, results: exits(0)}
		_, stop := start(t, &Script{Cmd: f, Interval: time.Second, Timeout: 5 * time.Second}, false)
		time.Sleep(6 * time.Second)
		stop()
		want := []time.Duration{0, 2500 * time.Millisecond, 5 * time.Second}
		runs := f.started()
		if len(runs) != len(want) {
			t.Fatalf("%d runs, want %d", len(runs), len(want))
		}
		for i, at := range runs {
			if at.Sub(t0) != want[i] {
				t.Errorf("run %d started at %v, want %v", i, at.Sub(t0), want[i])
			}
		}
	})
}

func TestScriptStopsDuringRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeRunner{d: time.Hour, results: exits(1)}
		rep, stop := start(t, &Script{Cmd: f, Interval: time.Second}, false)
		time.Sleep(time.Second)
		stop() // fails the test if Run does not return
		synctest.Wait()
		if got := rep.all(); len(got) != 0 {
			t.Errorf("a run killed by the end of the context was reported: %v", briefs(got))
		}
	})
}

func TestScriptReal(t *testing.T) {
	cmd, err := script.Resolve([]string{"/bin/sh", "-c", "exit 1"}, "")
	if err != nil {
		t.Skipf("cannot resolve /bin/sh here: %v", err)
	}
	rep, stop := start(t, &Script{Cmd: cmd, Interval: time.Hour, Timeout: 10 * time.Second}, true)
	select {
	case r := <-rep.ch:
		if r.OK || r.Detail != "exit status 1" {
			t.Errorf("first report %+v, want failed with exit status 1", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no report within 10s")
	}
	stop()
}
