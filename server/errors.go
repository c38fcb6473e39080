package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

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

// maxInMessage is how many field problems the status message names; the
// BadRequest detail always lists all of them.
const maxInMessage = 3

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
	return status.Error(code, msg)
}

// partial reports an operation that took effect but failed in part: the
// code of err, a message saying what happened, and the response the call
// would have returned as a detail.
func (s *Server) partial(err error, resp protoadapt.MessageV2, format string, args ...any) error {
	st := status.Convert(s.status(err))
	p := status.New(st.Code(), fmt.Sprintf(format, args...)+": "+st.Message())
	if d, derr := p.WithDetails(protoadapt.MessageV1Of(resp)); derr == nil {
		p = d
	}
	return p.Err()
}

// invalidConfig is InvalidArgument with every problem of a configuration
// in a google.rpc.BadRequest, the first few also in the message.
func invalidConfig(err error) error {
	fields := config.Fields(err)
	br := &errdetails.BadRequest{}
	var msgs []string
	for _, f := range fields {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: f.Path, Description: f.Msg})
		if len(msgs) < maxInMessage {
			msgs = append(msgs, f.String())
		}
	}
	msg := "invalid configuration: " + strings.Join(msgs, "; ")
	if n := len(fields) - len(msgs); n > 0 {
		msg += fmt.Sprintf("; and %d more (%d problems in all, each in the BadRequest detail)", n, len(fields))
	}
	return withBadRequest(status.New(codes.InvalidArgument, msg), br)
}

// invalidArgument is InvalidArgument for one field of a request.
func invalidArgument(field, desc string) error {
	return withBadRequest(status.New(codes.InvalidArgument, field+": "+desc),
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: desc}}})
}

func withBadRequest(st *status.Status, br *errdetails.BadRequest) error {
	if d, err := st.WithDetails(br); err == nil {
		return d.Err()
	}
	return st.Err()
}
