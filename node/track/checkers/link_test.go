package checkers

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

func TestLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		l := NewLink("eth1", true)
		if l.Name() != "eth1" {
			t.Errorf("Name() = %q", l.Name())
		}
		rep, stop := start(t, l, false)
		synctest.Wait()
		time.Sleep(time.Second)
		l.Set(false)
		synctest.Wait()
		l.Set(false) // no change: no report
		synctest.Wait()
		time.Sleep(time.Second)
		l.Set(true)
		synctest.Wait()
		stop()

		got := rep.all()
		want := []brief{{true, 0, "link up"}, {false, 0, "link down"}, {true, 0, "link up"}}
		if !slices.Equal(briefs(got), want) {
			t.Fatalf("reports:\n got %v\nwant %v", briefs(got), want)
		}
		for i, since := range []time.Duration{0, time.Second, 2 * time.Second} {
			if got[i].Since.Sub(t0) != since {
				t.Errorf("report %d: Since %v, want %v", i, got[i].Since.Sub(t0), since)
			}
		}
	})
}

func TestLinkSetNeverBlocks(t *testing.T) {
	l := NewLink("eth1", false)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10000 {
			l.Set(i%2 == 0) // nobody runs l
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Set blocked")
	}
	// Run reports the latest state once.
	rep, stop := start(t, l, true)
	if r := <-rep.ch; r.OK || r.Detail != "link down" {
		t.Errorf("first report %+v, want link down", r)
	}
	stop()
}
