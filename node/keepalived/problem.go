package keepalived

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Pos is a place in a configuration file.
type Pos struct {
	File string
	Line int
}

// String returns "file:line".
func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// Problem is one error or warning, at a keyword.
type Problem struct {
	Pos     Pos
	Keyword string
	Msg     string
}

// String returns "file:line: keyword: msg" ("file:line: msg" without a
// keyword).
func (p Problem) String() string {
	if p.Keyword == "" {
		return p.Pos.String() + ": " + p.Msg
	}
	return p.Pos.String() + ": " + p.Keyword + ": " + p.Msg
}

// Error lists the errors of a file (unknown keywords, bad values, ...), in
// file order: every one, up to MaxErrors; past it, the first MaxErrors and
// a last problem saying how many more there are.
type Error struct {
	Problems []Problem
	// Warnings are the conversion's warnings, as Load returns them for a
	// file without errors: a user fixing the errors should see them too.
	// None when the braces do not pair up (every later message would be
	// doubtful).
	Warnings []Problem
}

// MaxErrors bounds the problems of an Error: a file that is not a
// keepalived configuration at all (or a log file it includes) would give
// one per line.
const MaxErrors = 100

// Error returns the problems, one per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// problem is a Problem with its place in the token stream (files are read
// in include order, so seq is the file order even across includes).
type problem struct {
	seq int32
	p   Problem
}

// maxKept bounds the errors, and the warnings, a report keeps: a file
// that is not a configuration can have millions of words, each an error.
const maxKept = 10 * MaxErrors

// report collects the errors and warnings of one conversion: the first
// maxKept of each found, and how many more there were.
type report struct {
	errs, warns         []problem
	moreErrs, moreWarns int
}

func (r *report) errorf(t token, kw, format string, args ...any) {
	if len(r.errs) >= maxKept {
		r.moreErrs++
		return
	}
	r.errs = append(r.errs, problem{t.seq, Problem{t.pos(), kw, fmt.Sprintf(format, args...)}})
}

func (r *report) warnf(t token, kw, format string, args ...any) {
	if len(r.warns) >= maxKept {
		r.moreWarns++
		return
	}
	r.warns = append(r.warns, problem{t.seq, Problem{t.pos(), kw, fmt.Sprintf(format, args...)}})
}

// full reports whether errors are no longer kept.
func (r *report) full() bool { return len(r.errs) >= maxKept }

// sorted returns the problems in file order (stable: problems found at one
// token keep the order they were found in), without exact duplicates.
func sorted(ps []problem) []Problem {
	ps = slices.Clone(ps)
	slices.SortStableFunc(ps, func(a, b problem) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]Problem, 0, len(ps))
	seen := make(map[Problem]bool, len(ps))
	for _, p := range ps {
		if !seen[p.p] {
			seen[p.p] = true
			out = append(out, p.p)
		}
	}
	return out
}

// err is the Error of the errors found, at most MaxErrors of them.
func (r *report) err() *Error {
	all := sorted(r.errs)
	more := len(all) - MaxErrors + r.moreErrs
	if more <= 0 {
		return &Error{Problems: all}
	}
	last := all[min(MaxErrors, len(all)-1)]
	last.Keyword = ""
	last.Msg = fmt.Sprintf("and %d more errors from here on, not listed: fix the ones above first (is this a keepalived configuration?)", more)
	return &Error{Problems: append(all[:min(MaxErrors, len(all)):min(MaxErrors, len(all))], last)}
}

// warnings are the warnings found; past maxKept, a last one says how many
// more there are.
func (r *report) warnings() []Problem {
	all := sorted(r.warns)
	if r.moreWarns > 0 {
		last := all[len(all)-1]
		last.Keyword = ""
		last.Msg = fmt.Sprintf("and %d more warnings, not listed", r.moreWarns)
		all = append(all, last)
	}
	return all
}
