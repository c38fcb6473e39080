package notify

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/haa-dev/haa/node/script"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// DefaultCloseTimeout bounds Runner.Close when its context has no deadline:
// a stopping agent lets the last notify commands (STOP) run that long, then
// kills them.
const DefaultCloseTimeout = 10 * time.Second

// Events receives every finished command as a notify_ran event (the
// agent's event log). Append must not block.
type Events interface {
	Append(e *haav1.Event) *haav1.Event
}

// Record is the outcome of one notify command.
type Record struct {
	// Seq orders the records of one Runner.
	Seq      uint64
	Time     time.Time
	Type     string // INSTANCE, GROUP, REAL_SERVER or VIRTUAL_SERVER
	Name     string
	State    string
	Command  []string
	Exit     int
	Duration time.Duration
	Output   string
	Err      string
}

// Runner runs the notify commands of the agent's subsystems. Each subsystem
// takes its queues from it (Queue) and hands back the ones it no longer
// needs (Retire): those finish what they hold in the background, and Close
// waits for them, for a bounded time. Every outcome is logged and appended
// to the event log as a notify_ran event.
type Runner struct {
	log    *slog.Logger
	events Events
	exec   Exec
	seq    atomic.Uint64

	// stop ends when Close gives up: the retired queues' running commands
	// are killed and what waits is reported unrun.
	stop    context.Context
	stopNow context.CancelFunc
	retired sync.WaitGroup
}

// RunnerOption configures NewRunner.
type RunnerOption func(*Runner)

// WithExec runs jobs through fn instead of their commands (tests).
func WithExec(fn Exec) RunnerOption { return func(r *Runner) { r.exec = fn } }

// NewRunner returns a Runner that logs to log and appends events to
// events; either may be nil.
func NewRunner(log *slog.Logger, events Events, opts ...RunnerOption) *Runner {
	if log == nil {
		log = slog.Default()
	}
	r := &Runner{log: log, events: events, exec: runCommand}
	r.stop, r.stopNow = context.WithCancel(context.Background())
	for _, o := range opts {
		o(r)
	}
	return r
}

// Queue starts a queue whose outcomes are logged, become events and, when
// record is not nil, are handed to record (in the order the jobs ran).
func (r *Runner) Queue(record func(Record)) *Queue {
	return newQueue(func(j Job, res script.Result) { r.done(j, res, record) }, r.exec, MaxPending)
}

// Retire closes q once it has run what it holds, in the background: Close
// waits for it.
func (r *Runner) Retire(q *Queue) {
	if q == nil {
		return
	}
	r.retired.Add(1)
	go func() {
		defer r.retired.Done()
		if err := q.Close(r.stop); err != nil {
			r.log.Warn("notify commands left unfinished", "err", err)
		}
	}()
}

// Close waits for the retired queues to finish until ctx ends, or for
// DefaultCloseTimeout when ctx has no deadline; then it kills the commands
// still running, reports the waiting ones unrun and returns ctx's error (or
// context.DeadlineExceeded).
func (r *Runner) Close(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCloseTimeout)
		defer cancel()
	}
	done := make(chan struct{})
	go func() {
		r.retired.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	r.stopNow()
	<-done
	return ctx.Err()
}

// done records one finished job.
func (r *Runner) done(j Job, res script.Result, record func(Record)) {
	rec := Record{Seq: r.seq.Add(1), Time: time.Now(), Type: j.Type, Name: j.Name, State: j.State,
		Command: append(append([]string(nil), cmdArgv(j.Cmd)...), j.Args...), Exit: res.Exit,
		Duration: res.Duration, Output: res.Output}
	if res.Err != nil {
		rec.Err = res.Err.Error()
	}
	if rec.Err != "" || rec.Exit != 0 {
		r.log.Warn("notify command failed", "type", j.Type, "name", j.Name, "state", j.State, "command", rec.Command,
			"exit", rec.Exit, "err", rec.Err, "output", rec.Output)
	} else {
		r.log.Info("notify command ran", "type", j.Type, "name", j.Name, "state", j.State, "command", rec.Command,
			"duration", rec.Duration)
	}
	if record != nil {
		record(rec)
	}
	if r.events == nil {
		return
	}
	e := &haav1.Event{Kind: &haav1.Event_NotifyRan{NotifyRan: &haav1.NotifyRan{Result: &haav1.NotifyResult{
		Time: timestamppb.New(rec.Time), Type: rec.Type, Name: rec.Name, State: rec.State, Command: rec.Command,
		ExitCode: int32(rec.Exit), Duration: durationpb.New(rec.Duration), Output: rec.Output, Error: rec.Err,
		Seq: rec.Seq}}}}
	if j.Type == "INSTANCE" {
		e.Instance = j.Name
	}
	r.events.Append(e)
}

func cmdArgv(c *script.Command) []string {
	if c == nil {
		return nil
	}
	return c.Argv
}
