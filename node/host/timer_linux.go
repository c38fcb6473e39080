package host

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/haa-dev/haa/node/vrrp"

	"golang.org/x/sys/unix"
)

// preciseTimer is a timerfd read through the Go poller. Go's own timers
// wake an idle process through epoll_wait's millisecond timeout and so fire
// up to a millisecond late; a timerfd makes the kernel wake the poller at
// the exact time, which is what a 10 ms advert interval needs.
//
// It can also be moved later (Extend): a backup's master-down deadline
// moves with every advert, and the timerfd is set again at once, one
// system call the scheduler does not see (rawTimerfdSettime). Left at the
// older deadline, it fired every two intervals or so per instance, each
// time a wake-up of two goroutines and a step of the instance to find the
// deadline had moved: at 50 instances at 10 ms, more than the adverts
// cost.
type preciseTimer struct {
	f    *os.File
	fd   int
	c    chan time.Time
	base time.Time // due counts from it (monotonic)

	mu  sync.Mutex   // orders the timerfd's settings: Reset, Stop, and the loop's own
	due atomic.Int64 // when the timer should fire, ns after base; 0: disarmed
}

// NewPreciseTimer returns a vrrp.Timer backed by a CLOCK_MONOTONIC timerfd.
func NewPreciseTimer() (vrrp.Timer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	t := &preciseTimer{f: os.NewFile(uintptr(fd), "vrrp-timer"), fd: fd, c: make(chan time.Time, 1), base: time.Now()}
	go t.loop()
	return t, nil
}

func (t *preciseTimer) loop() {
	var buf [8]byte
	rc, err := t.f.SyscallConn()
	if err != nil {
		return
	}
	for {
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			_, rerr = rawRead(int(fd), buf[:]) // see raw_linux.go
			return rerr != unix.EAGAIN
		})
		if err != nil || rerr != nil {
			return // closed
		}
		if !t.fired() {
			continue
		}
		select {
		case t.c <- time.Now():
		default: // a tick is pending already: the runner re-checks its deadline
		}
	}
}

// fired reports whether the timerfd's expiry is the timer's: false when it
// was moved later (armed again for then) or stopped since.
func (t *preciseTimer) fired() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	due := t.due.Load()
	if due == 0 {
		return false // stopped
	}
	if left := due - int64(time.Since(t.base)); left > 0 {
		t.set(time.Duration(left))
		return false
	}
	t.due.Store(0)
	return true
}

// set arms the timerfd; called with mu held.
func (t *preciseTimer) set(d time.Duration) {
	if d <= 0 {
		d = 1 // zero would disarm
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	_ = rawTimerfdSettime(t.fd, &spec)
}

func (t *preciseTimer) C() <-chan time.Time { return t.c }

func (t *preciseTimer) Reset(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.due.Store(max(int64(time.Since(t.base)+d), 1))
	t.set(d)
}

// Extend moves an armed timer later, to at. (An expiry already on its way
// to the runner is dropped by fired if the timer was moved past it.)
func (t *preciseTimer) Extend(at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	due := max(int64(at.Sub(t.base)), 1)
	t.due.Store(due)
	t.set(time.Duration(due - int64(time.Since(t.base))))
}

func (t *preciseTimer) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.due.Store(0)
	_ = rawTimerfdSettime(t.fd, &unix.ItimerSpec{})
}

func (t *preciseTimer) Close() error { return t.f.Close() }
