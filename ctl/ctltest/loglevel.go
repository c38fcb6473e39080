package ctltest

import (
	"context"
	"strings"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// SetLogLevel implements haav1.AgentServiceServer: it sets Node.log_level
// to debug, info, warn or error (any case) and refuses anything else with
// InvalidArgument, as haad does.
func (a *Agent) SetLogLevel(_ context.Context, req *haav1.SetLogLevelRequest) (*haav1.SetLogLevelResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.enter("SetLogLevel"); err != nil {
		return nil, err
	}
	level := strings.ToLower(req.GetLevel())
	switch level {
	case "debug", "info", "warn", "error":
	default:
		desc := "unknown log level " + `"` + req.GetLevel() + `"` + ": use one of debug, info, warn, error"
		return nil, InvalidArgument("level: "+desc, "level", desc)
	}
	if a.Node == nil {
		a.Node = &haav1.Node{}
	}
	prev := a.Node.GetLogLevel()
	a.Node.LogLevel = level
	return &haav1.SetLogLevelResponse{Level: level, Previous: prev}, nil
}
