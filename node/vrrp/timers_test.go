package vrrp

import (
	"testing"
	"time"
)

func TestTimerWorkedExamples(t *testing.T) {
	for _, tc := range []struct {
		version  int
		prio     uint8
		interval time.Duration
		want     time.Duration
	}{
		{3, 100, time.Second, 3609375 * time.Microsecond},
		{3, 100, 100 * time.Millisecond, 360937500 * time.Nanosecond},
		{3, 100, 10 * time.Millisecond, 36093750 * time.Nanosecond},
		{2, 100, time.Second, 3609375 * time.Microsecond},
		{2, 254, 3 * time.Second, 9*time.Second + 7812500*time.Nanosecond},
		// keepalived once overflowed here (4288 s): it is 39.96 s.
		{3, 1, 10 * time.Second, 39960937500 * time.Nanosecond},
	} {
		if got := MasterDownInterval(tc.version, tc.prio, tc.interval); got != tc.want {
			t.Errorf("MasterDownInterval(v%d, prio %d, %v) = %v, want %v", tc.version, tc.prio, tc.interval, got, tc.want)
		}
	}
}

// TestTimerProperties checks every priority 1..254 and every v3 interval
// 1..4095 centiseconds.
func TestTimerProperties(t *testing.T) {
	for cs := 1; cs <= 4095; cs++ {
		iv := time.Duration(cs) * 10 * time.Millisecond
		prev := time.Duration(1<<63 - 1)
		for p := 1; p <= 254; p++ {
			prio := uint8(p)
			skew := SkewTime(3, prio, iv)
			mdi := MasterDownInterval(3, prio, iv)
			if skew <= 0 || skew >= iv {
				t.Fatalf("prio %d interval %v: skew %v not in (0, interval)", p, iv, skew)
			}
			if mdi != 3*iv+skew {
				t.Fatalf("prio %d interval %v: mdi %v != 3*interval+skew", p, iv, mdi)
			}
			if mdi <= 3*iv || mdi >= 4*iv {
				t.Fatalf("prio %d interval %v: mdi %v not in (3, 4) intervals", p, iv, mdi)
			}
			// A higher priority always takes over first.
			if mdi >= prev {
				t.Fatalf("interval %v: mdi for prio %d (%v) not below prio %d (%v)", iv, p, mdi, p-1, prev)
			}
			prev = mdi
			// Exact against the formula in rational arithmetic (ns).
			if want := time.Duration((256 - int64(p)) * int64(iv) / 256); skew != want {
				t.Fatalf("prio %d interval %v: skew %v want %v", p, iv, skew, want)
			}
		}
	}
}
