package notify

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/haa-dev/haa/node/script"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

type eventList struct {
	mu sync.Mutex
	es []*haav1.Event
}

func (l *eventList) Append(e *haav1.Event) *haav1.Event {
	l.mu.Lock()
	l.es = append(l.es, e)
	l.mu.Unlock()
	return e
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestRunnerCloseBoundedWithoutDeadline: a stopping agent whose context
// has no deadline waits DefaultCloseTimeout for a hung notify command, not
// minutes (the queues used to be given five).
func TestRunnerCloseBoundedWithoutDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewRunner(quietLog(), nil, WithExec(func(ctx context.Context, j Job) script.Result {
			<-ctx.Done() // hangs until killed
			return script.Result{Exit: -1, Err: context.Cause(ctx)}
		}))
		var got []Record
		q := r.Queue(func(rec Record) { got = append(got, rec) })
		q.Push(Job{Type: "INSTANCE", Name: "VI_1", State: "STOP"}, Job{Type: "INSTANCE", Name: "VI_1", State: "STOP"})
		r.Retire(q)
		start := time.Now()
		err := r.Close(context.Background())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close = %v, want a deadline error", err)
		}
		if d := time.Since(start); d != DefaultCloseTimeout {
			t.Fatalf("Close took %v, want %v", d, DefaultCloseTimeout)
		}
		if len(got) != 2 || got[0].Err == "" || got[1].Err != ErrClosed.Error() {
			t.Fatalf("records %+v: want the killed command and the unrun one", got)
		}
	})
}

// TestRunnerRecordsAndEvents: every outcome is numbered, recorded and
// appended as a notify_ran event, an instance's with the instance.
func TestRunnerRecordsAndEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ev := &eventList{}
		r := NewRunner(quietLog(), ev, WithExec(func(ctx context.Context, j Job) script.Result {
			time.Sleep(time.Second)
			if j.State == "FAULT" {
				return script.Result{Exit: 3, Duration: time.Second}
			}
			return script.Result{Duration: time.Second}
		}))
		var got []Record
		q := r.Queue(func(rec Record) { got = append(got, rec) })
		cmd := &script.Command{Argv: []string{"/bin/notify"}}
		q.Push(Job{Type: "INSTANCE", Name: "VI_1", State: "MASTER", Cmd: cmd, Args: []string{"INSTANCE", "VI_1", "MASTER", "100"}},
			Job{Type: "INSTANCE", Name: "VI_1", State: "FAULT", Cmd: cmd})
		g := r.Queue(nil) // a balancer's queue: events only
		g.Push(Job{Type: "REAL_SERVER", Name: "web/10.0.0.1:80", State: "DOWN", Cmd: cmd})
		r.Retire(q)
		r.Retire(g)
		if err := r.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Seq >= got[1].Seq || got[1].Exit != 3 ||
			len(got[0].Command) != 5 || got[0].Command[4] != "100" {
			t.Fatalf("records %+v", got)
		}
		if len(ev.es) != 3 {
			t.Fatalf("%d events, want 3", len(ev.es))
		}
		for _, e := range ev.es {
			res := e.GetNotifyRan().GetResult()
			if want := map[string]string{"INSTANCE": "VI_1", "REAL_SERVER": ""}[res.GetType()]; e.GetInstance() != want {
				t.Fatalf("event %v: instance %q, want %q", e, e.GetInstance(), want)
			}
		}
	})
}
