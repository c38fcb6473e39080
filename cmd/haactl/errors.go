package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/haa-dev/haa/ctl"
)

// cliError is a failure explained for the user: exit code 1.
type cliError struct{ msg string }

func (e *cliError) Error() string { return e.msg }

func failf(format string, args ...any) error {
	return &cliError{msg: fmt.Sprintf(format, args...)}
}

// usageError is a wrong command line: exit code 2.
type usageError struct {
	err error
	cmd string // command path for the help hint
}

func (e *usageError) Error() string { return e.err.Error() }

// grpcStatus finds the status of a gRPC error, also when wrapped (unlike
// status.FromError, whose message then is the whole error's).
func grpcStatus(err error) (*status.Status, bool) {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus(), true
	}
	return nil, false
}

// explain turns an error into a message that says what happened and what
// to do about it.
func (a *app) explain(err error) error {
	if err == nil {
		return nil
	}
	var ce *cliError
	if errors.As(err, &ce) {
		return err
	}
	var lost *ctl.EventsLostError
	switch {
	case errors.Is(err, ctl.ErrNoAgent):
		return failf("%v see --target (or HAA_TARGET)", err)
	case errors.Is(err, ctl.ErrNoGossip):
		return failf("%v (--target)", err)
	case errors.As(err, &lost):
		return failf("%v: run haactl get instances to see the current state, then haactl watch (without --since) to follow from now on", lost)
	case errors.Is(err, context.DeadlineExceeded):
		return failf("haad at %s did not answer within --timeout %s: is it overloaded or stuck? try a longer --timeout", a.target, a.timeout)
	case errors.Is(err, context.Canceled):
		return failf("interrupted")
	}
	st, ok := grpcStatus(err)
	if !ok {
		return failf("%v", err)
	}
	msg := st.Message()
	switch st.Code() {
	case codes.Unavailable:
		return failf("cannot reach haad at %s: %s%s", a.target, msg, a.unavailableHint(msg))
	case codes.Unauthenticated:
		return failf("haad at %s refused the call: %s: check --tls-cert/--tls-key (a client certificate signed by the CA the agent trusts)", a.target, msg)
	case codes.PermissionDenied:
		return failf("haad at %s denied the call: %s", a.target, msg)
	case codes.DeadlineExceeded:
		return failf("haad at %s did not answer within --timeout %s: %s", a.target, a.timeout, msg)
	case codes.NotFound:
		return failf("%s: haactl get instances lists the instances", msg)
	case codes.Unimplemented:
		return failf("haad at %s does not implement this call (is it older than haactl?): %s", a.target, msg)
	case codes.InvalidArgument:
		return failf("haad rejected the request: %s", msg)
	}
	return failf("%s (%s)", msg, st.Code())
}

func (a *app) unavailableHint(msg string) string {
	tcp := !strings.HasPrefix(a.target, "unix:") && !strings.HasPrefix(a.target, "/")
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(msg, s) {
				return true
			}
		}
		return false
	}
	switch {
	case !tcp && has("permission denied"):
		return ": run haactl as root, or as a user allowed to open the socket"
	case !tcp && has("connection refused"):
		return ": the socket is there but nothing accepts: is haad running?"
	case has("certificate required", "bad certificate", "unknown certificate authority", "certificate expired", "certificate revoked"):
		return ": the agent wants a client certificate signed by a CA it trusts: check --tls-cert and --tls-key"
	case has("x509", "certificate", "handshake", "tls:"):
		return ": TLS failed: check --tls-ca and --tls-server-name (or --insecure for a plaintext lab listener)"
	case tcp && a.insecure && has("preface", "EOF", "connection reset", "broken pipe"):
		return ": the listener may require TLS: drop --insecure and give --tls-ca"
	case tcp && !a.insecure && a.tlsCert == "" && has("EOF", "connection reset", "broken pipe"):
		return ": if the agent requires mutual TLS, give --tls-cert and --tls-key"
	}
	return ": is haad running and listening there? check --target"
}

// invalidConfig lists every field violation, one per line, prefixed with
// the source so that editors and grep can use the lines.
func invalidConfig(src string, vs []ctl.FieldViolation, outcome string) error {
	return invalid(src, "configuration", vs, outcome)
}

// invalid lists every field violation of a file holding a what.
func invalid(src, what string, vs []ctl.FieldViolation, outcome string) error {
	var b strings.Builder
	problems := "1 problem"
	if len(vs) != 1 {
		problems = fmt.Sprintf("%d problems", len(vs))
	}
	fmt.Fprintf(&b, "%s is not a valid %s (%s), %s:", src, what, problems, outcome)
	for _, v := range vs {
		fmt.Fprintf(&b, "\n%s: %s", src, v)
	}
	return &cliError{msg: b.String()}
}
