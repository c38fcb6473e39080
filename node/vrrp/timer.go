package vrrp

import "time"

// Timer is the runner's clock for its protocol deadlines (advert and
// master-down). The default is a time.Timer, which fake time (synctest)
// drives; on Linux the agent gives it host.NewPreciseTimer (a timerfd).
type Timer interface {
	C() <-chan time.Time
	// Reset arms the timer to fire once after d.
	Reset(d time.Duration)
	Stop()
	// Close releases the timer's resources.
	Close() error
}

// An Extender is a Timer that can be moved later cheaply, with no tick
// for the deadline it leaves (host.NewPreciseTimer). The runner moves a
// backup's master-down timer so at every advert; a Timer without it fires
// at the older deadline and is armed again.
type Extender interface {
	Extend(at time.Time)
}

// RunnerOption configures a Runner.
type RunnerOption func(*Runner)

// WithTimer makes the runner use t for its protocol deadlines.
func WithTimer(t Timer) RunnerOption { return func(r *Runner) { r.timer = t } }

type goTimer struct{ t *time.Timer }

func newGoTimer() Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return goTimer{t}
}

func (g goTimer) C() <-chan time.Time   { return g.t.C }
func (g goTimer) Reset(d time.Duration) { g.t.Reset(d) }
func (g goTimer) Stop()                 { g.t.Stop() }
func (g goTimer) Close() error          { g.t.Stop(); return nil }

// WithHold starts the instance on hold (maintenance): it never becomes
// master until Hold(false).
func WithHold() RunnerOption { return func(r *Runner) { r.in.held = true } }

// WithTrack starts the instance with the trackers' verdict (see EvTrack)
// and, for a sync group member, the group's fault (reason "" for none).
func WithTrack(offset int, fault, syncFault string) RunnerOption {
	return func(r *Runner) {
		r.in.SetInitialTrack(offset, fault)
		r.in.SetInitialSyncFault(syncFault)
		r.st.Priority = r.in.Priority()
	}
}
