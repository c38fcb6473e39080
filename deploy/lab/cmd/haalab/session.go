package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
)

// session is one run of a command: its cancellation, its narrative output
// and the labs it has open, so that an interrupt can remove them all.
type session struct {
	ctx   context.Context
	out   io.Writer
	start time.Time

	mu      sync.Mutex // held for the whole of closeAll: a second caller waits
	labs    []*lab.Lab
	stopped bool
}

func newSession(ctx context.Context, out io.Writer) *session {
	return &session{ctx: ctx, out: out, start: time.Now()}
}

// say prints one line of the narrative, stamped with the time since start.
func (s *session) say(format string, args ...any) {
	fmt.Fprintf(s.out, "[%6.2fs] %s\n", time.Since(s.start).Seconds(), fmt.Sprintf(format, args...))
}

// newLab builds a lab and registers it for removal.
func (s *session) newLab(opts lab.Options) (*lab.Lab, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	l, err := lab.New(opts)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil, errors.Join(s.err(), l.Close())
	}
	s.labs = append(s.labs, l)
	return l, nil
}

// closeLab removes one lab (idempotent).
func (s *session) closeLab(l *lab.Lab) error {
	s.mu.Lock()
	for i, x := range s.labs {
		if x == l {
			s.labs = append(s.labs[:i], s.labs[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
	return l.Close()
}

// closeAll removes every open lab; later labs are refused.
func (s *session) closeAll() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	var errs []error
	for _, l := range s.labs {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("lab %s: %w", l.Prefix, err))
		}
	}
	s.labs = nil
	return errors.Join(errs...)
}

// err is the cancellation cause once the run is cancelled, else nil.
func (s *session) err() error {
	if s.ctx.Err() != nil {
		return context.Cause(s.ctx)
	}
	return nil
}

// sleep waits d or until the run is cancelled.
func (s *session) sleep(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-s.ctx.Done():
		return context.Cause(s.ctx)
	}
}

// publish prints a benchmark's report and writes it to out ("" none).
func (s *session) publish(report, out string) error {
	fmt.Fprintln(s.out)
	fmt.Fprint(s.out, report)
	if out == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "\nreport written to %s\n", out)
	return nil
}
