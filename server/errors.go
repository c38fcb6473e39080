package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/haa-dev/haa/node"
	"github.com/haa-dev/haa/node/balancer"
	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/fleet"
	"github.com/haa-dev/haa/node/instances"
)

// A status travels in the HTTP/2 trailers, which a client accepts only up
// to its header list limit (beyond, it sees Unavailable and nothing of
// what was wrong): whatever an error says, its message, its field
// violations and their descriptions are capped.
const (
	// maxInMessage is how many field problems the status message names;
	// the BadRequest detail lists up to maxViolations.
	maxInMessage   = 3
	maxViolations  = 100
	maxMessage     = 4 << 10
	maxDescription = 1 << 10
)

// status maps an error of the agent to a gRPC status. Sentinels are tested
// with errors.Is, so wrapped errors keep their code; anything unknown is
// Internal and logged.
func (s *Server) status(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err // already a status (from this package)
	}
	var code codes.Code
	msg := err.Error()
	switch {
	case errors.Is(err, config.ErrInvalid):
		return invalidConfig(err)
	case errors.Is(err, node.ErrPersist):
		// Nothing applied, and retrying changes nothing until someone
		// fixes the file's directory: not Unavailable (retry later) but
		// FailedPrecondition (fix, then retry).
		code = codes.FailedPrecondition
		msg += ": make the file's directory writable (free space, permissions, a read-only mount), then apply again"
	case errors.Is(err, node.ErrGenerationMismatch), errors.Is(err, config.ErrFleetStale),
		errors.Is(err, config.ErrFleetConflict):
		code = codes.FailedPrecondition
	case errors.Is(err, fleet.ErrNotStarted):
		code = codes.Unavailable
	case errors.Is(err, instances.ErrNotFound), errors.Is(err, balancer.ErrNoVirtualServer), errors.Is(err, balancer.ErrNoRealServer):
		code = codes.NotFound
	case errors.Is(err, balancer.ErrBadWeight):
		code = codes.InvalidArgument
	case errors.Is(err, instances.ErrNotMaster):
		code = codes.FailedPrecondition
	case errors.Is(err, instances.ErrNoTakeover):
		code = codes.DeadlineExceeded
	case errors.Is(err, node.ErrEventsLost):
		code = codes.OutOfRange
		msg += ": the events in between are lost; fetch the state again (ListInstances) and watch without since_seq"
	case errors.Is(err, node.ErrFutureEvent):
		code = codes.InvalidArgument
	case errors.Is(err, fleet.ErrStopped), errors.Is(err, balancer.ErrClosed):
		code = codes.Unavailable
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	default:
		s.log.Error("API call failed", "err", err)
		code = codes.Internal
	}
	return status.Error(code, capText(msg, maxMessage))
}

// partial reports an operation that took effect but failed in part: the
// code of err, a message saying what happened, and the response the call
// would have returned as a detail.
func (s *Server) partial(err error, resp protoadapt.MessageV2, format string, args ...any) error {
	st := status.Convert(s.status(err))
	p := status.New(st.Code(), capText(fmt.Sprintf(format, args...)+": "+st.Message(), maxMessage))
	if d, derr := p.WithDetails(protoadapt.MessageV1Of(resp)); derr == nil {
		p = d
	}
	return p.Err()
}

// invalidConfig is InvalidArgument with every problem of a configuration
// in a google.rpc.BadRequest, the first few also in the message.
func invalidConfig(err error) error {
	return badRequest("invalid configuration: ", config.Fields(err))
}

// unknownFields refuses a request carrying fields this haad does not know
// (fields: where, and which).
func unknownFields(fields []config.FieldError) error {
	return badRequest("", fields)
}

// undecodable refuses a request whose bytes are not a message of its type.
func undecodable(msgType, why string) error {
	return status.Error(codes.InvalidArgument, capText(fmt.Sprintf(
		"the request could not be decoded as a %s (protobuf's binary encoding): %s", msgType, why), maxMessage))
}

// badRequest is InvalidArgument with the problems in a google.rpc.BadRequest
// (up to maxViolations), the first few also in the message after head.
func badRequest(head string, fields []config.FieldError) error {
	br := &errdetails.BadRequest{}
	var msgs []string
	for _, f := range fields {
		if len(br.FieldViolations) == maxViolations {
			break
		}
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field: capText(f.Path, maxDescription), Description: capText(f.Msg, maxDescription)})
		if len(msgs) < maxInMessage {
			msgs = append(msgs, capText(f.String(), maxDescription))
		}
	}
	msg := head + strings.Join(msgs, "; ")
	switch n := len(fields) - len(msgs); {
	case n > 0 && len(fields) > maxViolations:
		msg += fmt.Sprintf("; and %d more (%d problems in all, the first %d in the BadRequest detail)", n, len(fields), maxViolations)
	case n > 0:
		msg += fmt.Sprintf("; and %d more (%d problems in all, each in the BadRequest detail)", n, len(fields))
	}
	return withBadRequest(status.New(codes.InvalidArgument, capText(msg, maxMessage)), br)
}

// invalidArgument is InvalidArgument for one field of a request.
func invalidArgument(field, desc string) error {
	desc = capText(desc, maxDescription)
	return withBadRequest(status.New(codes.InvalidArgument, field+": "+desc),
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: desc}}})
}

func withBadRequest(st *status.Status, br *errdetails.BadRequest) error {
	if d, err := st.WithDetails(br); err == nil {
		return d.Err()
	}
	return st.Err()
}

// tooManyWatchers refuses an event stream beyond a listener's limit.
func tooManyWatchers(addr string, limit int) error {
	return status.Errorf(codes.ResourceExhausted,
		"%s already serves %d event watchers, its most: end the watchers you no longer need (each haactl watch is one), then watch again",
		addr, limit)
}

// slowReader ends a stream whose client read nothing for d.
func slowReader(d time.Duration) error {
	return status.Errorf(codes.Unavailable,
		"the client read nothing for %v, so the stream ends: read faster, and reconnect with since_seq set to the last event seen", d)
}

// capText returns s cut to at most n bytes, saying how many bytes it left
// out (a cut never splits a character).
func capText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const note = 40 // "… (N bytes more)"
	cut := max(n-note, 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes more)", s[:cut], len(s)-cut)
}
