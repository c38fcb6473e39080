// Package config reads and validates the agent configuration: YAML (or JSON)
// in the protobuf JSON mapping of haa.v1.AgentConfig. Every problem is
// reported with its field path; nothing is applied unless all is valid.
package config

import (
	"errors"
	"fmt"
	"strings"
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
		return e.Msg
	}
	return e.Path + ": " + e.Msg
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
	*p = append(*p, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (p problems) err(source string) error {
	if len(p) == 0 {
		return nil
	}
	return &Error{Source: source, Fields: p}
}

// Fields returns the field errors of err when it is an *Error, or a single
// pathless entry for any other error.
func Fields(err error) []FieldError {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Fields
	}
	if err == nil {
		return nil
	}
	return []FieldError{{Msg: err.Error()}}
}
