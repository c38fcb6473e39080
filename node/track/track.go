// Package track runs the trackers of a configuration (keepalived's
// vrrp_script, track_interface, vrrp_track_file and vrrp_track_process) and
// turns their results into what they do to an instance's priority.
//
// A Checker (Script, File, Process, Link) runs until its context ends and
// reports a Result whenever its state changes. Contribute applies a
// tracker's weight to a Result, and Effective sums the contributions into
// the priority an instance runs with. RiseFall debounces single results.
package track

import (
	"context"
	"time"
)

// Result is a tracker's state.
type Result struct {
	// OK is whether the check passes. A file tracker is OK when it reads
	// 0; Contribute decides what its number does.
	OK bool
	// Value is the number a file tracker read (0 for other kinds).
	Value int
	// Detail is the last outcome in words: "exit status 1", "timed out
	// after 2s", "link down", "value 3", "2 processes (need 1..)", "no
	// such file (reads as 0)".
	Detail string
	// Since is when OK (or Value) last changed.
	Since time.Time
}

// Checker is one running tracker.
type Checker interface {
	// Run checks until ctx ends, calling report with the first result at
	// once (or after the first check) and then whenever OK, Value or
	// Detail changes; identical results are not reported again. report
	// is called from Run's goroutine only and must not block long.
	Run(ctx context.Context, report func(Result))
}

// Contribution is what one tracker does to one instance.
type Contribution struct {
	// Delta is added to the priority (negative: subtracted).
	Delta int
	// Fault puts the instance in FAULT.
	Fault bool
}

// maxWeight is the largest priority change a tracker may make without
// faulting. (The priority itself is clamped by the VRRP core.)
const maxWeight = 253

// fileValueLimit bounds a file's number before it is multiplied by the
// weight: any number beyond it already moves the priority past its bounds,
// and the bound keeps the product from overflowing.
const fileValueLimit = 1 << 20

// Kind is what a tracker watches.
type Kind string

// Tracker kinds.
const (
	KindScript    Kind = "script"
	KindInterface Kind = "interface"
	KindFile      Kind = "file"
	KindProcess   Kind = "process"
)

// Contribute applies keepalived's weight rules to a tracker's result.
//
// Script, interface and process trackers: a positive weight is added while
// the tracker is OK; a negative weight is added (subtracted) while it has
// failed; with weight 0 a failure is a Fault.
//
// File trackers: with weight 0, a non-zero Value is a Fault. Otherwise
// Delta is Value times weight, and a Delta below -253 is a Fault instead
// (Delta 0).
func Contribute(kind Kind, weight int, r Result) Contribution {
	if kind == KindFile {
		if weight == 0 {
			return Contribution{Fault: r.Value != 0}
		}
		v := min(max(r.Value, -fileValueLimit), fileValueLimit)
		if d := v * weight; d >= -maxWeight {
			return Contribution{Delta: d}
		}
		return Contribution{Fault: true}
	}
	switch {
	case weight > 0 && r.OK:
		return Contribution{Delta: weight}
	case weight < 0 && !r.OK:
		return Contribution{Delta: weight}
	case weight == 0 && !r.OK:
		return Contribution{Fault: true}
	}
	return Contribution{}
}

// RiseFall turns single results into a state: rise OK results in a row
// make a failed check OK, fall failures in a row make an OK check failed.
// It starts OK (keepalived's default). Not safe for concurrent use.
type RiseFall struct {
	rise, fall int
	ok         bool
	streak     int // results in a row that disagree with ok
}

// NewRiseFall returns a RiseFall in the OK state. rise or fall below 1
// means 1.
func NewRiseFall(rise, fall int) *RiseFall {
	return &RiseFall{rise: max(rise, 1), fall: max(fall, 1), ok: true}
}

// NewRiseFallIn returns a RiseFall in state ok (a check that restarts
// keeps the state it had).
func NewRiseFallIn(rise, fall int, ok bool) *RiseFall {
	r := NewRiseFall(rise, fall)
	r.ok = ok
	return r
}

// Observe records one result and returns the state and whether this
// result changed it.
func (r *RiseFall) Observe(ok bool) (state, changed bool) {
	if ok == r.ok {
		r.streak = 0
		return r.ok, false
	}
	r.streak++
	need := r.fall
	if !r.ok {
		need = r.rise
	}
	if r.streak < need {
		return r.ok, false
	}
	r.ok, r.streak = ok, 0
	return r.ok, true
}

// Sleep waits for d or until ctx ends, and reports whether ctx is still
// live.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Reporter sends a checker's results on, dropping repeats and keeping
// Since at the last change of OK or Value.
type Reporter struct {
	report func(Result)
	last   Result
	sent   bool
}

// NewReporter returns a Reporter that hands results to report.
func NewReporter(report func(Result)) *Reporter { return &Reporter{report: report} }

// Send reports r unless it equals the last result reported (Since aside).
func (p *Reporter) Send(r Result) {
	if p.sent {
		if r.OK == p.last.OK && r.Value == p.last.Value {
			if r.Detail == p.last.Detail {
				return
			}
			r.Since = p.last.Since
		}
	}
	p.last, p.sent = r, true
	p.report(r)
}
