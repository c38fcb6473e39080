package checkers

import (
	"context"
	"fmt"
	"time"

	"github.com/haa-dev/haa/node/track"

	"github.com/haa-dev/haa/node/script"
)

// Runner runs a command once; *script.Command satisfies it.
type Runner interface {
	Run(ctx context.Context, timeout time.Duration, args, env []string) script.Result
}

// Script is a tracker that runs a command every Interval (the first run at
// once): exit status 0 is a success, anything else (another status, a
// timeout, a failure to start) a failure. Results go through a RiseFall.
type Script struct {
	// Cmd is the command.
	Cmd Runner
	// Interval is the time from the start of one run to the start of the
	// next (default 1s). A run that lasts longer delays the next.
	Interval time.Duration
	// Timeout is how long a run may last before it is killed (default:
	// the interval).
	Timeout time.Duration
	// Rise and Fall are the RiseFall counts (default 1).
	Rise, Fall int
}

// Run runs the command until ctx ends. The first report follows the first
// run; later ones come when the state or the outcome changes ("exit status
// 1" to "exit status 2" while failed is reported).
func (s *Script) Run(ctx context.Context, report func(track.Result)) {
	interval := s.Interval
	if interval <= 0 {
		interval = time.Second
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = interval
	}
	rf := track.NewRiseFall(s.Rise, s.Fall)
	rep := track.NewReporter(report)
	for ctx.Err() == nil {
		start := time.Now()
		res := s.Cmd.Run(ctx, timeout, nil, nil)
		if ctx.Err() != nil {
			return // killed because we are stopping: not an outcome
		}
		ok, _ := rf.Observe(res.Err == nil && res.Exit == 0)
		rep.Send(track.Result{OK: ok, Detail: outcome(res), Since: time.Now()})
		if !track.Sleep(ctx, interval-time.Since(start)) {
			return
		}
	}
}

// outcome describes one run: "exit status 1", "timed out after 2s", "could
// not start ...".
func outcome(r script.Result) string {
	if r.Err != nil {
		return r.Err.Error()
	}
	return fmt.Sprintf("exit status %d", r.Exit)
}
