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

// LogLevelCore is what SetLogLevel needs of the agent; *node.Agent
// implements it. A Core without it answers Unimplemented.
type LogLevelCore interface {
	// SetLogLevel sets one of node.LogLevels and returns the previous
	// level's name.
	SetLogLevel(level string) (previous string, err error)
}

// SetLogLevel changes the agent's log level now.
func (s *Server) SetLogLevel(_ context.Context, req *haav1.SetLogLevelRequest) (*haav1.SetLogLevelResponse, error) {
	lc, ok := s.core.(LogLevelCore)
	if !ok {
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
	prev, err := lc.SetLogLevel(req.GetLevel())
	switch { // the level was parsed above: ErrUnknownLogLevel cannot come back
	case errors.Is(err, node.ErrLogLevelFixed):
		return nil, status.Error(codes.Unimplemented, err.Error())
	case err != nil:
		return nil, s.status(err)
	}
	return &haav1.SetLogLevelResponse{Level: node.LogLevelName(lv), Previous: prev}, nil
}
