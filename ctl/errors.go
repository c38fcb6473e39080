package ctl

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// FieldViolation is one problem of a rejected configuration.
type FieldViolation struct {
	// Field is the path in the configuration's JSON/YAML names, e.g.
	// "instances[0].vrid"; empty for the document as a whole.
	Field       string
	Description string
}

func (v FieldViolation) String() string {
	if v.Field == "" {
		return v.Description
	}
	return v.Field + ": " + v.Description
}

// ErrorDetails returns the field violations carried by an InvalidArgument
// error (its google.rpc.BadRequest details), in the agent's order; nil for
// any other error.
func ErrorDetails(err error) []FieldViolation {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		return nil
	}
	var out []FieldViolation
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, v := range br.GetFieldViolations() {
			out = append(out, FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
		}
	}
	return out
}

// ErrEventsLost is wrapped by every *EventsLostError.
var ErrEventsLost = errors.New("events lost")

// EventsLostError says the agent no longer has the events a watcher asked
// for: it fell more than the agent's event buffer behind. Whatever those
// events said is lost; the watcher must resync (read the current state with
// Node and Instances) and watch again from now on (since nil), or from
// Oldest-1 to read what is still buffered.
type EventsLostError struct {
	// After is the sequence number of the last event seen (the since_seq
	// asked for).
	After uint64
	// Oldest is the oldest event the agent still has; 0 if unknown.
	Oldest uint64
	// Err is the agent's error.
	Err error
}

func (e *EventsLostError) Error() string {
	kept := ""
	if e.Oldest > 0 {
		kept = fmt.Sprintf(" (the oldest it keeps is %d)", e.Oldest)
	}
	return fmt.Sprintf("events after seq %d are no longer buffered on the node%s: "+
		"what they said is lost; resync by reading the current state, then watch again from now on", e.After, kept)
}

// Unwrap returns both ErrEventsLost and the agent's error.
func (e *EventsLostError) Unwrap() []error { return []error{ErrEventsLost, e.Err} }

// oldestRE finds the oldest kept sequence number in the agent's message
// ("... the oldest kept is 17") when no ErrorInfo detail carries it.
var oldestRE = regexp.MustCompile(`oldest (?:kept|buffered)(?: event)? is (\d+)`)

// eventsLost turns an OutOfRange error of WatchEvents into an
// *EventsLostError, reading the oldest kept sequence number from an
// ErrorInfo detail (metadata "oldest_seq") or from the message.
func eventsLost(after uint64, err error) *EventsLostError {
	e := &EventsLostError{After: after, Err: err}
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if n, perr := strconv.ParseUint(info.GetMetadata()["oldest_seq"], 10, 64); perr == nil {
				e.Oldest = n
				return e
			}
		}
	}
	if m := oldestRE.FindStringSubmatch(st.Message()); m != nil {
		e.Oldest, _ = strconv.ParseUint(m[1], 10, 64)
	}
	return e
}
