package vrrp

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestSlipHistogramBuckets(t *testing.T) {
	var h SlipHistogram
	for _, d := range []time.Duration{-time.Millisecond, 0, 100 * time.Microsecond, 101 * time.Microsecond,
		3 * time.Millisecond, 100 * time.Millisecond, time.Second} {
		h.Observe(d)
	}
	s := h.Snapshot()
	//                100µs 250µs 500µs 1ms 2.5ms 5ms 10ms 25ms 50ms 100ms
	want := [len(SlipBuckets)]uint64{3, 4, 4, 4, 4, 5, 5, 5, 5, 6}
	if s.Cumulative != want || s.Count != 7 {
		t.Fatalf("cumulative %v count %d, want %v count 7", s.Cumulative, s.Count, want)
	}
	if wantSum := 100*time.Microsecond + 101*time.Microsecond + 3*time.Millisecond + 100*time.Millisecond + time.Second; s.Sum != wantSum {
		t.Fatalf("sum %v, want %v", s.Sum, wantSum)
	}
	if TimerAdvert.String() != "advert" || TimerMasterDown.String() != "master_down" || len(TimerKinds()) != 2 {
		t.Fatalf("timer kinds %v", TimerKinds())
	}
}

// A master's advert timer and a backup's master-down timer each count in
// their own histogram (on time under synctest: in the first bucket).
func TestRunnerTimerSlipByKind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		n1 := b.start(t, 1, 200, nil)
		n2 := b.start(t, 2, 100, nil)
		time.Sleep(time.Second)
		synctest.Wait()
		wantOneMaster(t, n1, n1, n2)
		adverts := n1.r.Stats().TimerSlip(TimerAdvert).Snapshot()
		if adverts.Count < 5 || adverts.Cumulative[0] != adverts.Count {
			t.Fatalf("n1 advert slips %+v: want several, all in the first bucket", adverts)
		}
		if s := n2.r.Stats().TimerSlip(TimerAdvert).Snapshot(); s.Count != 0 {
			t.Fatalf("the backup counted advert timers: %+v", s)
		}

		n1.cancel() // the master leaves (priority 0): n2's master-down timer fires after its skew time
		<-n1.r.Done()
		b.remove(n1)
		time.Sleep(time.Second)
		synctest.Wait()
		wantOneMaster(t, n2, n2)
		if s := n2.r.Stats().TimerSlip(TimerMasterDown).Snapshot(); s.Count != 1 {
			t.Fatalf("n2 master-down slips %+v, want 1", s)
		}
		if s := n2.r.Stats().TimerSlip(TimerAdvert).Snapshot(); s.Count == 0 {
			t.Fatal("n2 as master counted no advert timer")
		}
		if s := n2.r.Stats().TimerSlip(numTimerKinds).Snapshot(); s.Count != 0 {
			t.Fatalf("an unknown kind: %+v", s)
		}
	})
}
