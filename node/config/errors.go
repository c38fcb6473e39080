// Package config reads and validates the agent configuration: YAML (or JSON)
// in the protobuf JSON mapping of haa.v1.AgentConfig. Every problem is
// reported with its field path; nothing is applied unless all is valid.
package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrInvalid is wrapped by every *Error: test with errors.Is.
var ErrInvalid = errors.New("invalid configuration")

// FieldError is one problem at one place of the configuration.
type FieldError struct {
	// Path in the JSON/YAML names, e.g. "instances[0].vrid"; empty for the
	// document as a whole.
	Path string
	Msg  string
}

func (e FieldError) String() string {
	if e.Path == "" {
		return shorten(e.Msg)
	}
	return shorten(e.Path) + ": " + shorten(e.Msg)
}

// Messages name the values they refuse, but a value of megabytes (a
// 3 MB instance name sent through the API) must not be echoed in full: a
// quoted value ("...", as %q writes it) keeps its first maxQuoted bytes and
// a message its first and last bytes, up to maxMessage in all, each cut
// saying how much it left out.
const (
	maxQuoted  = 256
	maxMessage = 1024
)

// shorten cuts the long quoted values of s, then its middle if it is still
// longer than maxMessage.
func shorten(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	var b strings.Builder
	rest := s
	for {
		i := strings.IndexByte(rest, '"')
		if i < 0 {
			break
		}
		q, err := strconv.QuotedPrefix(rest[i:])
		if err != nil {
			b.WriteString(rest[:i+1])
			rest = rest[i+1:]
			continue
		}
		b.WriteString(rest[:i])
		rest = rest[i+len(q):]
		if len(q) <= maxQuoted+2 {
			b.WriteString(q)
			continue
		}
		v, err := strconv.Unquote(q)
		if err != nil || len(v) <= maxQuoted {
			b.WriteString(q)
			continue
		}
		cut := runeCut(v, maxQuoted)
		fmt.Fprintf(&b, "%q… (%d bytes more)", cut, len(v)-len(cut))
	}
	b.WriteString(rest)
	s = b.String()
	if len(s) <= maxMessage {
		return s
	}
	head := runeCut(s, maxMessage*3/4)
	tail := s[len(s)-maxMessage/4:]
	for len(tail) > 0 && !utf8.RuneStart(tail[0]) {
		tail = tail[1:]
	}
	return fmt.Sprintf("%s… (%d bytes left out) …%s", head, len(s)-len(head)-len(tail), tail)
}

// runeCut returns at most n bytes of s, not cutting a character.
func runeCut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Error lists every problem found in a configuration.
type Error struct {
	Source string // file name, or "" for a configuration from the API
	Fields []FieldError
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("invalid configuration")
	if e.Source != "" {
		fmt.Fprintf(&b, " %s", e.Source)
	}
	if len(e.Fields) == 1 {
		b.WriteString(": ")
		b.WriteString(e.Fields[0].String())
		return b.String()
	}
	fmt.Fprintf(&b, ": %d problems:", len(e.Fields))
	for _, f := range e.Fields {
		b.WriteString("\n  ")
		b.WriteString(f.String())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return ErrInvalid }

// problems collects field errors.
type problems []FieldError

func (p *problems) add(path, format string, args ...any) {
	for i, a := range args {
		if s, ok := a.(string); ok && len(s) > maxQuoted {
			args[i] = longValue(s) // never formatted whole
		}
	}
	*p = append(*p, FieldError{Path: path, Msg: shorten(fmt.Sprintf(format, args...))})
}

// longValue is a string argument of more than maxQuoted bytes: formatted,
// it is cut as shorten cuts a quoted value, without the whole of it ever
// being quoted or copied (a 3 MB value was, several times).
type longValue string

func (v longValue) Format(f fmt.State, verb rune) {
	cut := runeCut(string(v), maxQuoted)
	more := fmt.Sprintf("… (%d bytes more)", len(v)-len(cut))
	if verb == 'q' {
		fmt.Fprintf(f, "%q%s", cut, more)
		return
	}
	fmt.Fprintf(f, "%s%s", cut, more)
}

func (p problems) err(source string) error {
	if len(p) == 0 {
		return nil
	}
	return &Error{Source: source, Fields: p}
}

// Fields returns the field errors of err when it is an *Error, or a single
// pathless entry for any other error; long values are shortened, as in
// Error.
func Fields(err error) []FieldError {
	var ce *Error
	if errors.As(err, &ce) {
		out := make([]FieldError, len(ce.Fields))
		for i, f := range ce.Fields {
			out[i] = FieldError{Path: shorten(f.Path), Msg: shorten(f.Msg)}
		}
		return out
	}
	if err == nil {
		return nil
	}
	return []FieldError{{Msg: shorten(err.Error())}}
}
