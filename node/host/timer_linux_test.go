package host

import (
	"testing"
	"time"

	"github.com/haa-dev/haa/node/vrrp"
)

// TestPreciseTimerExtend: a timer moved later (Extend) ticks once, at the
// new time, not at the one it was armed for; a stopped one never ticks.
func TestPreciseTimerExtend(t *testing.T) {
	tm, err := NewPreciseTimer()
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Close()
	x, ok := tm.(vrrp.Extender)
	if !ok {
		t.Fatal("the precise timer is not a vrrp.Extender")
	}
	start := time.Now()
	tm.Reset(20 * time.Millisecond)
	x.Extend(start.Add(150 * time.Millisecond))
	x.Extend(start.Add(300 * time.Millisecond))
	select {
	case <-tm.C():
		if el := time.Since(start); el < 300*time.Millisecond {
			t.Fatalf("ticked after %v, before the 300 ms it was moved to", el)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no tick within 5 s of a timer moved to 300 ms")
	}
	select {
	case <-tm.C():
		t.Fatal("a second tick")
	case <-time.After(100 * time.Millisecond):
	}

	// Reset after an Extend to a later time: Reset wins.
	start = time.Now()
	tm.Reset(time.Second)
	x.Extend(start.Add(2 * time.Second))
	tm.Reset(30 * time.Millisecond)
	select {
	case <-tm.C():
		if el := time.Since(start); el > 900*time.Millisecond {
			t.Fatalf("ticked after %v: the Reset to 30 ms did not win", el)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no tick")
	}

	tm.Reset(20 * time.Millisecond)
	x.Extend(time.Now().Add(50 * time.Millisecond))
	tm.Stop()
	select {
	case <-tm.C():
		t.Fatal("a stopped timer ticked")
	case <-time.After(200 * time.Millisecond):
	}
}
