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

// Error lists every error of a file (unknown keywords, bad values, ...), in
// file order.
type Error struct {
	Problems []Problem
}

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
	seq int
	p   Problem
}

// report collects the errors and warnings of one conversion.
type report struct {
	errs, warns []problem
}

func (r *report) errorf(t token, kw, format string, args ...any) {
	r.errs = append(r.errs, problem{t.seq, Problem{t.pos, kw, fmt.Sprintf(format, args...)}})
}

func (r *report) warnf(t token, kw, format string, args ...any) {
	r.warns = append(r.warns, problem{t.seq, Problem{t.pos, kw, fmt.Sprintf(format, args...)}})
}

// sorted returns the problems in file order (stable: problems found at one
// token keep the order they were found in), without exact duplicates.
func sorted(ps []problem) []Problem {
	ps = slices.Clone(ps)
	slices.SortStableFunc(ps, func(a, b problem) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]Problem, 0, len(ps))
	for _, p := range ps {
		if !slices.Contains(out, p.p) {
			out = append(out, p.p)
		}
	}
	return out
}
