package server

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/haa-dev/haa/node"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// LogLevelCore is haad's log level (*node.LogLevel).
type LogLevelCore interface {
	// Level is the level's name now ("" if it cannot change).
	Level() string
	// Set sets one of node.LogLevels and returns the previous level's
	// name.
	Set(level string) (previous string, err error)
}

// SetLogLevel changes the agent's log level now.
func (s *Server) SetLogLevel(_ context.Context, req *haav1.SetLogLevelRequest) (*haav1.SetLogLevelResponse, error) {
	lc := s.level
	if lc == nil {
		return nil, status.Error(codes.Unimplemented, "this agent's log level cannot change at runtime")
	}
	allowed := strings.Join(node.LogLevels, ", ")
	if req.GetLevel() == "" {
		return nil, invalidArgument("level", "required: one of "+allowed)
	}
	lv, err := node.ParseLogLevel(req.GetLevel())
	if err != nil {
		return nil, invalidArgument("level", err.Error())
	}
	prev, err := lc.Set(req.GetLevel())
	switch { // the level was parsed above: ErrUnknownLogLevel cannot come back
	case errors.Is(err, node.ErrLogLevelFixed):
		return nil, status.Error(codes.Unimplemented, err.Error())
	case err != nil:
		return nil, s.status(err)
	}
	return &haav1.SetLogLevelResponse{Level: node.LogLevelName(lv), Previous: prev}, nil
}
