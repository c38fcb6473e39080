package host

import (
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func timestampCmsg(ts time.Time) []byte {
	b := make([]byte, unix.CmsgSpace(16))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS
	h.SetLen(unix.CmsgLen(16))
	spec := (*unix.Timespec)(unsafe.Pointer(&b[unix.CmsgLen(0)]))
	*spec = unix.NsecToTimespec(ts.UnixNano())
	return b
}

func TestArrivalFromKernelTimestamp(t *testing.T) {
	now := time.Now()
	if got, _, _ := arrival(timestampCmsg(now.Add(-3*time.Millisecond)), now); now.Sub(got) != 3*time.Millisecond {
		t.Fatalf("arrival %v before now, want 3ms", now.Sub(got))
	}
	// A timestamp from the future or far past (clock stepped) is ignored.
	for _, ts := range []time.Time{now.Add(time.Second), now.Add(-time.Hour)} {
		if got, _, _ := arrival(timestampCmsg(ts), now); !got.Equal(now) {
			t.Fatalf("timestamp %v: arrival %v, want now", ts.Sub(now), got.Sub(now))
		}
	}
	if got, _, ok := arrival(nil, now); !got.Equal(now) || ok {
		t.Fatal("no control message: want now, no drop count")
	}
	// The drop count of a full buffer comes with the timestamp.
	ovfl := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&ovfl[0]))
	h.Level, h.Type = unix.SOL_SOCKET, unix.SO_RXQ_OVFL
	h.SetLen(unix.CmsgLen(4))
	*(*uint32)(unsafe.Pointer(&ovfl[unix.CmsgLen(0)])) = 4711
	got, n, ok := arrival(append(timestampCmsg(now.Add(-time.Millisecond)), ovfl...), now)
	if now.Sub(got) != time.Millisecond || n != 4711 || !ok {
		t.Fatalf("arrival %v, drops %d (%v): want 1ms and 4711", now.Sub(got), n, ok)
	}
}
