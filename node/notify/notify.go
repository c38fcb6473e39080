// Package notify runs the notify commands of instances and sync groups
// (keepalived's notify_master, notify_backup, notify_fault, notify_stop and
// notify): for each state change, the state's own command, then the `any`
// command with keepalived's arguments. A Queue runs them one at a time, in
// the order of the changes, without ever making the VRRP code that pushes
// them wait.
package notify

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/haa-dev/haa/node/script"
)

// DefaultTimeout is the timeout of a notify command when Spec.Timeout is
// not set.
const DefaultTimeout = 30 * time.Second

// MaxPending is how many jobs may wait in a Queue; beyond that the oldest
// waiting job is dropped.
const MaxPending = 1000

// ErrDropped is the error of a job dropped because MaxPending jobs were
// already waiting.
var ErrDropped = errors.New("dropped: too many notify commands pending")

// ErrClosed is the error of a job that never ran because its queue was
// closed: pushed after Close, or still waiting when Close gave up.
var ErrClosed = errors.New("not run: the notify queue was closed before its turn")

// errStopped is why a running job is killed when Close gives up.
var errStopped = errors.New("the notify queue was closed before the command finished")

// Job is one notify command to run.
type Job struct {
	Type     string // "INSTANCE" or "GROUP"
	Name     string // the instance's or group's name
	State    string // "MASTER", "BACKUP", "FAULT" or "STOP"
	Priority int
	Cmd      *script.Command
	// Args are appended to Cmd.Argv: keepalived's TYPE NAME STATE
	// PRIORITY for the `any` command, none for the others.
	Args    []string
	Timeout time.Duration // <= 0: none
}

// env is the environment a job runs with (on top of script's PATH).
func (j Job) env() []string {
	return []string{
		"HAA_TYPE=" + j.Type,
		"HAA_NAME=" + j.Name,
		"HAA_STATE=" + j.State,
		"HAA_PRIORITY=" + strconv.Itoa(j.Priority),
	}
}

// Spec is a resolved Notify block: the commands of one instance or group.
type Spec struct {
	// The commands run on becoming MASTER, BACKUP, FAULT, on stopping,
	// and on every change; nil: none.
	Master, Backup, Fault, Stop, Any *script.Command
	// Timeout is how long each command may run; <= 0: DefaultTimeout.
	Timeout time.Duration
}

// Jobs returns the commands for one change of an instance or group (typ
// "INSTANCE" or "GROUP") to state, in the order keepalived runs them: the
// state's own command, then `any` with TYPE NAME STATE PRIORITY appended.
// A nil Spec has none.
func (s *Spec) Jobs(typ, name, state string, prio int) []Job {
	if s == nil {
		return nil
	}
	base := Job{Type: typ, Name: name, State: state, Priority: prio, Timeout: s.Timeout}
	if base.Timeout <= 0 {
		base.Timeout = DefaultTimeout
	}
	var own *script.Command
	switch state {
	case "MASTER":
		own = s.Master
	case "BACKUP":
		own = s.Backup
	case "FAULT":
		own = s.Fault
	case "STOP":
		own = s.Stop
	}
	var jobs []Job
	if own != nil {
		j := base
		j.Cmd = own
		jobs = append(jobs, j)
	}
	if s.Any != nil {
		j := base
		j.Cmd = s.Any
		j.Args = []string{typ, name, state, strconv.Itoa(prio)}
		jobs = append(jobs, j)
	}
	return jobs
}

// Report receives every job of a Queue once it is done: run, dropped or
// not run. A Queue calls it from its own goroutine, one job at a time, in
// the order the jobs were pushed; only jobs pushed after Close are
// reported from another goroutine.
type Report func(Job, script.Result)

// Exec runs one job until it ends or ctx does (the queue's Close gave
// up). The default runs the job's command.
type Exec func(ctx context.Context, j Job) script.Result

func runCommand(ctx context.Context, j Job) script.Result {
	if j.Cmd == nil {
		return script.Result{Exit: -1, Err: errors.New("no command to run")}
	}
	return j.Cmd.Run(ctx, j.Timeout, j.Args, j.env())
}

// Queue runs jobs one at a time, in the order pushed, in its own
// goroutine. Close it to stop that goroutine.
type Queue struct {
	report Report
	exec   Exec
	limit  int
	ctx    context.Context // ends when Close gives up: kills the running job
	cancel context.CancelCauseFunc
	wake   chan struct{} // capacity 1: there is something to do
	done   chan struct{} // closed when the goroutine has returned

	mu      sync.Mutex
	pending []Job // waiting, oldest first
	dropped []Job // dropped from pending, not reported yet
	closed  bool
}

// NewQueue starts a queue that hands every finished job to report.
func NewQueue(report Report) *Queue {
	return newQueue(report, runCommand, MaxPending)
}

func newQueue(report Report, exec Exec, limit int) *Queue {
	ctx, cancel := context.WithCancelCause(context.Background())
	q := &Queue{
		report: report,
		exec:   exec,
		limit:  limit,
		ctx:    ctx,
		cancel: cancel,
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	go q.loop()
	return q
}

// Push appends jobs to the queue. It never blocks: VRRP code calls it from
// its notify callback. When MaxPending jobs are already waiting, the oldest
// waiting job is dropped and reported with Result{Exit: -1, Err:
// ErrDropped}, so nothing vanishes silently. After Close, the jobs are
// reported with ErrClosed.
func (q *Queue) Push(jobs ...Job) {
	if len(jobs) == 0 {
		return
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		jobs = append([]Job(nil), jobs...)
		go func() {
			for _, j := range jobs {
				q.report(j, script.Result{Exit: -1, Err: ErrClosed})
			}
		}()
		return
	}
	for _, j := range jobs {
		if len(q.pending) >= q.limit {
			q.dropped = append(q.dropped, q.pending[0])
			q.pending[0] = Job{}
			q.pending = q.pending[1:]
		}
		q.pending = append(q.pending, j)
	}
	q.mu.Unlock()
	q.signal()
}

// signal wakes the queue's goroutine.
func (q *Queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Close stops accepting jobs and returns once the queued ones have run. If
// ctx ends first, the running job is killed, the waiting ones are reported
// with ErrClosed, and Close returns an error once they are reported.
func (q *Queue) Close(ctx context.Context) error {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
	}
	q.cancel(errStopped)
	<-q.done
	return fmt.Errorf("notify commands left unfinished: %w", context.Cause(ctx))
}

// loop runs the jobs until the queue is closed and empty.
func (q *Queue) loop() {
	defer close(q.done)
	for {
		q.mu.Lock()
		dropped := q.dropped
		q.dropped = nil
		var leftover []Job
		if q.ctx.Err() != nil {
			leftover = q.pending
			q.pending = nil
		}
		var job *Job
		if len(q.pending) > 0 {
			j := q.pending[0]
			job = &j
			q.pending[0] = Job{}
			q.pending = q.pending[1:]
		}
		closed := q.closed
		q.mu.Unlock()

		for _, j := range dropped {
			q.report(j, script.Result{Exit: -1, Err: ErrDropped})
		}
		for _, j := range leftover {
			q.report(j, script.Result{Exit: -1, Err: ErrClosed})
		}
		if job != nil {
			q.report(*job, q.exec(q.ctx, *job))
			continue
		}
		if closed {
			return
		}
		select {
		case <-q.wake:
		case <-q.ctx.Done():
		}
	}
}
