package ctl

import (
	"context"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// LogLevel returns the agent's log level now (debug, info, warn or error;
// "" from an agent whose level cannot change).
func (c *Client) LogLevel(ctx context.Context) (string, error) {
	n, err := c.Node(ctx)
	if err != nil {
		return "", err
	}
	return n.GetLogLevel(), nil
}

// SetLogLevel changes the agent's log level now, until haad restarts. The
// response has the new and the previous level. A level other than debug,
// info, warn or error is codes.InvalidArgument; an agent whose level cannot
// change answers codes.Unimplemented.
func (c *Client) SetLogLevel(ctx context.Context, level string) (*haav1.SetLogLevelResponse, error) {
	return c.api.SetLogLevel(ctx, &haav1.SetLogLevelRequest{Level: level})
}
