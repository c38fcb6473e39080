package ctl

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// ErrNotFound wraps the error of a SetRealServer naming a virtual server
// the agent does not have, or a real server its virtual server does not
// have (codes.NotFound). VirtualServers lists what there is.
var ErrNotFound = errors.New("not found")

// VirtualServers returns every virtual server of the node, in the
// configured order, with its real servers (health, weights, connections
// where the backend counts them), and the name of the backend that
// programs them (ipvs or nftables). An agent without a load balancer is
// codes.Unimplemented.
func (c *Client) VirtualServers(ctx context.Context) (*haav1.ListVirtualServersResponse, error) {
	return c.api.ListVirtualServers(ctx, &haav1.ListVirtualServersRequest{})
}

// RealServerAction is what SetRealServer does to a real server: Drain,
// Enable or Weight. The zero value does nothing and is refused.
type RealServerAction struct {
	set  func(*haav1.SetRealServerRequest)
	desc string
}

// Drain sets a real server's weight to 0 until enabled: it takes no new
// connections, its established ones go on.
func Drain() RealServerAction {
	return RealServerAction{desc: "drain", set: func(r *haav1.SetRealServerRequest) {
		r.Action = &haav1.SetRealServerRequest_Drain{Drain: true}
	}}
}

// Enable undoes Drain and Weight: the real server gets its configured
// weight back (0 still while its health check fails).
func Enable() RealServerAction {
	return RealServerAction{desc: "enable", set: func(r *haav1.SetRealServerRequest) {
		r.Action = &haav1.SetRealServerRequest_Enable{Enable: true}
	}}
}

// Weight gives a real server weight w (0..65535; more is
// codes.InvalidArgument) instead of its configured one, until enabled.
func Weight(w uint32) RealServerAction {
	return RealServerAction{desc: fmt.Sprintf("weight %d", w), set: func(r *haav1.SetRealServerRequest) {
		r.Action = &haav1.SetRealServerRequest_Weight{Weight: w}
	}}
}

// String is "drain", "enable" or "weight N".
func (a RealServerAction) String() string {
	if a.set == nil {
		return "none"
	}
	return a.desc
}

// SetRealServer drains, enables or re-weights the real server rs
// ("ADDR:PORT", or ADDR when only one real server of vs has it) of the
// virtual server named vs, without a configuration change, and returns it
// as it runs afterwards. The change lasts until the real server's
// configuration changes or haad restarts. A virtual or real server the
// agent does not have fails with an error wrapping ErrNotFound.
func (c *Client) SetRealServer(ctx context.Context, vs, rs string, action RealServerAction) (*haav1.RealServerStatus, error) {
	if action.set == nil {
		return nil, errors.New("SetRealServer without an action: give Drain(), Enable() or Weight(n)")
	}
	req := &haav1.SetRealServerRequest{VirtualServer: vs, RealServer: rs}
	action.set(req)
	r, err := c.api.SetRealServer(ctx, req)
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return nil, err
	}
	return r.GetRealServer(), nil
}
