package host

import (
	"fmt"
	"os"
	"time"

	"github.com/haa-dev/haa/node/vrrp"

	"golang.org/x/sys/unix"
)

// preciseTimer is a timerfd read through the Go poller. Go's own timers
// wake an idle process through epoll_wait's millisecond timeout and so fire
// up to a millisecond late; a timerfd makes the kernel wake the poller at
// the exact time, which is what a 10 ms advert interval needs.
type preciseTimer struct {
	f  *os.File
	fd int
	c  chan time.Time
}

// NewPreciseTimer returns a vrrp.Timer backed by a CLOCK_MONOTONIC timerfd.
func NewPreciseTimer() (vrrp.Timer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	t := &preciseTimer{f: os.NewFile(uintptr(fd), "vrrp-timer"), fd: fd, c: make(chan time.Time, 1)}
	go t.loop()
	return t, nil
}

func (t *preciseTimer) loop() {
	var buf [8]byte
	for {
		if _, err := t.f.Read(buf[:]); err != nil {
			return // closed
		}
		select {
		case t.c <- time.Now():
		default: // a tick is pending already: the runner re-checks its deadline
		}
	}
}

func (t *preciseTimer) C() <-chan time.Time { return t.c }

func (t *preciseTimer) Reset(d time.Duration) {
	if d <= 0 {
		d = 1 // zero would disarm
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	_ = unix.TimerfdSettime(t.fd, 0, &spec, nil)
}

func (t *preciseTimer) Stop() {
	_ = unix.TimerfdSettime(t.fd, 0, &unix.ItimerSpec{}, nil)
}

func (t *preciseTimer) Close() error { return t.f.Close() }
