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
	if got := arrival(timestampCmsg(now.Add(-3*time.Millisecond)), now); now.Sub(got) != 3*time.Millisecond {
		t.Fatalf("arrival %v before now, want 3ms", now.Sub(got))
	}
	// A timestamp from the future or far past (clock stepped) is ignored.
	for _, ts := range []time.Time{now.Add(time.Second), now.Add(-time.Hour)} {
		if got := arrival(timestampCmsg(ts), now); !got.Equal(now) {
			t.Fatalf("timestamp %v: arrival %v, want now", ts.Sub(now), got.Sub(now))
		}
	}
	if got := arrival(nil, now); !got.Equal(now) {
		t.Fatal("no control message: want now")
	}
}
