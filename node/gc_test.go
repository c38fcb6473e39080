package node

import (
	"runtime/debug"
	"testing"
)

// TestRelaxGCNests: GOGC is 400 from the outermost RelaxGC until its
// restore; an inner restore, or a second call of a restore, changes
// nothing; a GOGC already above 400 is left alone.
func TestRelaxGCNests(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	gogc := func() int {
		v := debug.SetGCPercent(-1)
		debug.SetGCPercent(v)
		return v
	}
	outer := RelaxGC()
	if got := gogc(); got != 400 {
		t.Fatalf("GOGC in a relaxed section = %d, want 400", got)
	}
	inner := RelaxGC()
	inner()
	inner()
	if got := gogc(); got != 400 {
		t.Fatalf("GOGC after the inner restore = %d, want 400 until the outer one", got)
	}
	outer()
	if got := gogc(); got != 100 {
		t.Fatalf("GOGC after the outer restore = %d, want 100 back", got)
	}
	outer()
	if got := gogc(); got != 100 {
		t.Fatalf("GOGC after a second outer restore = %d, want 100", got)
	}
	debug.SetGCPercent(800)
	RelaxGC()()
	if got := gogc(); got != 800 {
		t.Fatalf("GOGC 800 after RelaxGC = %d, want it left alone", got)
	}
}
