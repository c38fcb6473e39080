package probe

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/haa-dev/haa/node/check"
)

// gauge counts runs in progress across runners, and the most at once.
type gauge struct {
	mu       sync.Mutex
	cur, max int
}

func (g *gauge) add(d int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cur += d
	g.max = max(g.max, g.cur)
}

func (g *gauge) peak() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.max
}

// runner is a fake exec command: it returns codes in turn (the last one
// forever), each run taking d, or never ending before ctx when hang is
// set. It records when each run started, relative to t0.
type runner struct {
	t0    time.Time
	d     time.Duration
	hang  bool
	g     *gauge
	mu    sync.Mutex
	codes []int
	runs  []time.Duration
	ends  int // runs that returned
}

func (r *runner) Run(ctx context.Context, timeout time.Duration, env []string) (int, string) {
	r.mu.Lock()
	r.runs = append(r.runs, time.Since(r.t0))
	code := r.codes[0]
	if len(r.codes) > 1 {
		r.codes = r.codes[1:]
	}
	r.mu.Unlock()
	if r.g != nil {
		r.g.add(1)
		defer r.g.add(-1)
	}
	defer func() {
		r.mu.Lock()
		r.ends++
		r.mu.Unlock()
	}()
	if r.hang {
		<-ctx.Done()
		return -1, "killed"
	}
	if r.d > 0 {
		select {
		case <-ctx.Done():
			return -1, "killed"
		case <-time.After(r.d):
		}
	}
	return code, ""
}

func (r *runner) ended() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ends
}

func (r *runner) started() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.runs)
}

// execSpec returns an exec check run by r: interval 10s, retry delay 2s,
// timeout 1s, no jitter.
func execSpec(r *runner, rise, fall int) check.Spec {
	return check.Spec{Kind: check.Exec, Interval: 10 * time.Second, Timeout: time.Second, RetryDelay: 2 * time.Second,
		Rise: rise, Fall: fall, Exec: &check.ExecSpec{Run: r}}
}

// report is one call of the report callback.
type report struct {
	id      string
	at      time.Duration // since t0
	healthy bool
	weight  int
	since   time.Duration // check.Status.Since, since t0
	detail  string        // check.Status.Last.Detail
}

func (r report) String() string {
	return fmt.Sprintf("%s@%v{healthy %v weight %d since %v %q}", r.id, r.at, r.healthy, r.weight, r.since, r.detail)
}

// reports records report calls.
type reports struct {
	t0   time.Time
	mu   sync.Mutex
	list []report
}

func (rs *reports) report(id string, st check.Status) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.list = append(rs.list, report{id, time.Since(rs.t0), st.Healthy, st.Weight, st.Since.Sub(rs.t0), st.Last.Detail})
}

func (rs *reports) all() []report {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return slices.Clone(rs.list)
}

func secs(s ...float64) []time.Duration {
	var d []time.Duration
	for _, x := range s {
		d = append(d, time.Duration(x*float64(time.Second)))
	}
	return d
}

func TestSchedulerRiseFall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		rs := &reports{t0: t0}
		s := NewScheduler(4, rs.report)
		defer s.Close()
		r := &runner{t0: t0, codes: []int{0, 1, 0, 1, 1, 1, 0, 0, 0}}
		s.Set("rs1", execSpec(r, 2, 2))
		st, ok := s.Status("rs1")
		if !ok || !st.Healthy || st.Weight != -1 || !st.Since.Equal(t0) || st.Last.Detail != "not checked yet" {
			t.Fatalf("initial check.Status = %+v, %v; want healthy, weight -1, since now", st, ok)
		}
		time.Sleep(65 * time.Second)
		synctest.Wait()

		// 0 OK; 10 fails (fall 2: retry); 12 OK; 22 fails (retry); 24
		// fails: falls; 34 fails; 44 OK (rise 2); 54 OK: rises; 64 OK.
		if got, want := r.started(), secs(0, 10, 12, 22, 24, 34, 44, 54, 64); !slices.Equal(got, want) {
			t.Errorf("runs at %v, want %v", got, want)
		}
		want := []report{
			{"rs1", 24 * time.Second, false, -1, 24 * time.Second, "exit 1"},
			{"rs1", 54 * time.Second, true, -1, 54 * time.Second, "exit 0"},
		}
		if got := rs.all(); !slices.Equal(got, want) {
			t.Errorf("reports\n got %v\nwant %v", got, want)
		}
		st, _ = s.Status("rs1")
		if !st.Healthy || st.Last.Detail != "exit 0" || !st.Last.OK || st.Since.Sub(t0) != 54*time.Second {
			t.Errorf("Status = %+v", st)
		}
	})
}

func TestSchedulerFallOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		rs := &reports{t0: t0}
		s := NewScheduler(4, rs.report)
		defer s.Close()
		// Fall 1: the first failure fails the check, then the interval
		// applies (no retry delay once failed).
		r := &runner{t0: t0, codes: []int{1, 1, 0}}
		s.Set("a", execSpec(r, 1, 1))
		time.Sleep(25 * time.Second)
		synctest.Wait()
		if got, want := r.started(), secs(0, 10, 20); !slices.Equal(got, want) {
			t.Errorf("runs at %v, want %v", got, want)
		}
		want := []report{
			{"a", 0, false, -1, 0, "exit 1"},
			{"a", 20 * time.Second, true, -1, 20 * time.Second, "exit 0"},
		}
		if got := rs.all(); !slices.Equal(got, want) {
			t.Errorf("reports\n got %v\nwant %v", got, want)
		}
	})
}

func TestSchedulerRetryDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		rs := &reports{t0: t0}
		s := NewScheduler(4, rs.report)
		defer s.Close()
		// Fall 3, each run takes 500ms: retries come 2s after the end of
		// a failed run until the third failure, then the interval.
		r := &runner{t0: t0, d: 500 * time.Millisecond, codes: []int{1, 1, 1, 1}}
		s.Set("a", execSpec(r, 1, 3))
		time.Sleep(20 * time.Second)
		synctest.Wait()
		if got, want := r.started(), secs(0, 2.5, 5, 15.5); !slices.Equal(got, want) {
			t.Errorf("runs at %v, want %v", got, want)
		}
		want := []report{{"a", 5500 * time.Millisecond, false, -1, 5500 * time.Millisecond, "exit 1"}}
		if got := rs.all(); !slices.Equal(got, want) {
			t.Errorf("reports\n got %v\nwant %v", got, want)
		}
	})
}

func TestSchedulerTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		rs := &reports{t0: t0}
		s := NewScheduler(4, rs.report)
		defer s.Close()
		r := &runner{t0: t0, hang: true, codes: []int{0}}
		s.Set("a", execSpec(r, 1, 1))
		time.Sleep(12 * time.Second)
		synctest.Wait()
		// The probe ends at the 1s timeout; the next comes 10s later.
		if got, want := r.started(), secs(0, 11); !slices.Equal(got, want) {
			t.Errorf("runs at %v, want %v", got, want)
		}
		want := []report{{"a", time.Second, false, -1, time.Second, "timeout after 1s"}}
		if got := rs.all(); !slices.Equal(got, want) {
			t.Errorf("reports\n got %v\nwant %v", got, want)
		}
		if st, _ := s.Status("a"); st.Last.Duration != time.Second {
			t.Errorf("Last = %+v, want a 1s run", st.Last)
		}
	})
}

func TestSchedulerDynamicWeight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		rs := &reports{t0: t0}
		s := NewScheduler(4, rs.report)
		defer s.Close()
		r := &runner{t0: t0, codes: []int{0, 5, 5, 2, 1, 7, 0}}
		sp := execSpec(r, 1, 1)
		sp.Exec.Dynamic = true
		s.Set("a", sp)
		time.Sleep(65 * time.Second)
		synctest.Wait()
		want := []report{
			// 0s: exit 0 is the configured weight (-1): no change.
			{"a", 10 * time.Second, true, 3, 0, "exit 5 (weight 3)"},
			// 20s: weight 3 again: no report.
			{"a", 30 * time.Second, true, 0, 0, "exit 2 (weight 0)"},
			{"a", 40 * time.Second, false, 0, 40 * time.Second, "exit 1"},
			{"a", 50 * time.Second, true, 5, 50 * time.Second, "exit 7 (weight 5)"},
			{"a", 60 * time.Second, true, -1, 50 * time.Second, "exit 0"},
		}
		if got := rs.all(); !slices.Equal(got, want) {
			t.Errorf("reports\n got %v\nwant %v", got, want)
		}
	})
}

func TestSchedulerJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		s := NewScheduler(1000, nil)
		defer s.Close()
		const n = 200
		var rs []*runner
		for i := range n {
			r := &runner{t0: t0, codes: []int{0}}
			rs = append(rs, r)
			sp := execSpec(r, 1, 1)
			sp.Interval, sp.Jitter = time.Hour, 5*time.Second
			s.Set(fmt.Sprint("rs", i), sp)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		lo, hi := time.Hour, time.Duration(0)
		for i, r := range rs {
			runs := r.started()
			if len(runs) != 1 || runs[0] < 0 || runs[0] >= 5*time.Second {
				t.Fatalf("check %d ran at %v, want once in [0, 5s)", i, runs)
			}
			lo, hi = min(lo, runs[0]), max(hi, runs[0])
		}
		// 200 uniform draws: all in one 4s-wide band has odds ~1e-140.
		if lo >= time.Second || hi < 4*time.Second {
			t.Errorf("first runs in [%v, %v], want spread over [0, 5s)", lo, hi)
		}
	})
}

func TestSchedulerSetRemove(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		rs := &reports{t0: t0}
		s := NewScheduler(4, rs.report)
		defer s.Close()

		// Fail "a" (fall 1) at 0s.
		r1 := &runner{t0: t0, codes: []int{1}}
		s.Set("a", execSpec(r1, 1, 1))
		s.Set("b", execSpec(&runner{t0: t0, codes: []int{0}}, 1, 1))
		if s.Len() != 2 {
			t.Fatalf("Len = %d, want 2", s.Len())
		}
		time.Sleep(time.Second)
		synctest.Wait()

		// Replace it at 1s with rise 2: still failed, the streak starts
		// again, the old runner is not used any more.
		r2 := &runner{t0: t0, codes: []int{0}}
		s.Set("a", execSpec(r2, 2, 1))
		if st, _ := s.Status("a"); st.Healthy || st.Since != t0 || st.Last.Detail != "exit 1" {
			t.Errorf("Status after Set = %+v, want the old one", st)
		}
		time.Sleep(15 * time.Second)
		synctest.Wait()
		if got, want := r1.started(), secs(0); !slices.Equal(got, want) {
			t.Errorf("old runner ran at %v, want %v", got, want)
		}
		if got, want := r2.started(), secs(1, 11); !slices.Equal(got, want) {
			t.Errorf("new runner ran at %v, want %v", got, want)
		}
		want := []report{
			{"a", 0, false, -1, 0, "exit 1"},
			{"a", 11 * time.Second, true, -1, 11 * time.Second, "exit 0"},
		}
		if got := rs.all(); !slices.Equal(got, want) {
			t.Errorf("reports\n got %v\nwant %v", got, want)
		}

		s.Remove("b")
		s.Remove("nothing")
		if _, ok := s.Status("b"); ok || s.Len() != 1 {
			t.Errorf("after Remove: check.Status found %v, Len %d; want gone, 1", ok, s.Len())
		}
	})
}

func TestSchedulerInFlightDiscarded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		rs := &reports{t0: t0}
		s := NewScheduler(4, rs.report)
		defer s.Close()

		// A probe in flight when its check is removed is canceled, and
		// its (failed) result is not reported.
		gone := &runner{t0: t0, d: 800 * time.Millisecond, codes: []int{0}}
		s.Set("gone", execSpec(gone, 1, 1))
		// A probe in flight when its check is replaced: same.
		old := &runner{t0: t0, d: 800 * time.Millisecond, codes: []int{1}}
		s.Set("replaced", execSpec(old, 1, 1))
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		s.Remove("gone")
		repl := &runner{t0: t0, codes: []int{0}}
		s.Set("replaced", execSpec(repl, 1, 1))
		synctest.Wait()
		if gone.ended() != 1 || old.ended() != 1 {
			t.Errorf("runs ended %d, %d; want canceled at once", gone.ended(), old.ended())
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := rs.all(); len(got) != 0 {
			t.Errorf("reports %v, want none", got)
		}
		if st, _ := s.Status("replaced"); !st.Healthy || st.Last.Detail != "exit 0" {
			t.Errorf("Status = %+v, want the new check's result", st)
		}
		if got, want := repl.started(), secs(0.5); !slices.Equal(got, want) {
			t.Errorf("new runner ran at %v, want %v", got, want)
		}
	})
}

func TestSchedulerInFlightBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		s := NewScheduler(3, nil)
		defer s.Close()
		g := &gauge{}
		var rs []*runner
		for i := range 20 {
			r := &runner{t0: t0, d: 900 * time.Millisecond, g: g, codes: []int{0}}
			rs = append(rs, r)
			sp := execSpec(r, 1, 1)
			sp.Interval = time.Hour
			s.Set(fmt.Sprint("rs", i), sp)
		}
		// 20 probes, 3 at a time, 900ms each: 7 rounds.
		time.Sleep(6 * time.Second)
		synctest.Wait()
		ran := 0
		for _, r := range rs {
			ran += len(r.started())
		}
		if ran != 20 {
			t.Errorf("%d probes ran, want all 20 by 5.4s", ran)
		}
		if g.peak() != 3 {
			t.Errorf("at most %d probes at once, want 3", g.peak())
		}
		// In the order they were due: check i waits for round i/3.
		for i, r := range rs {
			if got, want := r.started(), []time.Duration{time.Duration(i/3) * 900 * time.Millisecond}; !slices.Equal(got, want) {
				t.Errorf("check %d ran at %v, want %v", i, got, want)
			}
		}
	})
}

func TestSchedulerHangingProbe(t *testing.T) {
	for _, slots := range []int{1, 2} {
		t.Run(fmt.Sprint(slots, " slots"), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				t0 := time.Now()
				s := NewScheduler(slots, nil)
				defer s.Close()
				hang := &runner{t0: t0, hang: true, codes: []int{0}}
				hs := execSpec(hang, 1, 1)
				hs.Timeout, hs.Interval = 3*time.Second, 5*time.Second
				s.Set("hang", hs)
				fast := &runner{t0: t0, codes: []int{0}}
				fs := execSpec(fast, 1, 1)
				fs.Interval = time.Second
				s.Set("fast", fs)
				time.Sleep(30 * time.Second)
				synctest.Wait()
				runs := fast.started()
				bound := time.Second // a free slot: on time
				if slots == 1 {
					bound += hs.Timeout // waits for the hanging probe at most
				}
				prev := time.Duration(0)
				for _, at := range runs {
					if at-prev > bound {
						t.Errorf("fast runs %v: a gap of %v > %v", runs, at-prev, bound)
					}
					prev = at
				}
				if slots == 2 && len(runs) != 31 {
					t.Errorf("fast ran %d times in 30s, want 31", len(runs))
				}
				if slots == 1 && len(runs) < 12 {
					t.Errorf("fast ran %d times in 30s, want at least 12", len(runs))
				}
			})
		})
	}
}

func TestSchedulerClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		rs := &reports{t0: t0}
		s := NewScheduler(4, rs.report)
		r := &runner{t0: t0, hang: true, codes: []int{0}}
		sp := execSpec(r, 1, 1)
		sp.Timeout = time.Hour
		s.Set("a", sp)
		time.Sleep(time.Second)
		synctest.Wait()
		s.Close() // cancels the hanging probe and waits for it
		if r.ended() != 1 {
			t.Errorf("probe not ended by Close")
		}
		if got := rs.all(); len(got) != 0 {
			t.Errorf("reports %v, want none", got)
		}
		s.Set("b", sp) // ignored
		s.Close()
		if s.Len() != 1 {
			t.Errorf("Len = %d after Close and Set, want 1", s.Len())
		}
		if time.Since(t0) != time.Second {
			t.Errorf("Close took %v", time.Since(t0)-time.Second)
		}
	})
}

// TestSchedulerMany runs 50,000 checks: each on time, never more than
// maxInFlight probes at once.
func TestSchedulerMany(t *testing.T) {
	t.Parallel() // the slowest test here: overlap it with the network ones
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		s := NewScheduler(64, nil)
		defer s.Close()
		const n = 50000
		g := &gauge{}
		r := &runner{t0: t0, g: g, codes: []int{0}}
		sp := execSpec(r, 1, 1)
		sp.Jitter = 10 * time.Second
		for i := range n {
			s.Set(fmt.Sprint("rs", i), sp)
		}
		if s.Len() != n {
			t.Fatalf("Len = %d, want %d", s.Len(), n)
		}
		time.Sleep(10*time.Second - time.Nanosecond)
		synctest.Wait()
		// Every check ran once in [0, 10s).
		if runs := r.started(); len(runs) != n || slices.Max(runs) >= 10*time.Second {
			t.Errorf("%d runs, the last at %v; want %d in [0, 10s)", len(runs), slices.Max(runs), n)
		}
		if g.peak() > 64 {
			t.Errorf("%d probes at once, want at most 64", g.peak())
		}
	})
}
