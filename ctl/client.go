package ctl

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

var (
	// ErrStaleGeneration wraps the error of an Apply whose expected
	// generation is no longer the running one: someone else changed the
	// configuration in between. Nothing was applied.
	ErrStaleGeneration = errors.New("the running configuration has another generation")
	// ErrNotMaster wraps the error of a Failover of an instance this node is
	// not the master of.
	ErrNotMaster = errors.New("not master")
	// ErrPartial wraps the error of a change that took effect but failed in
	// part (e.g. a configuration that runs as a new generation, but one of
	// whose instances could not start): the call returns its result too.
	ErrPartial = errors.New("took effect in part")
)

// partial returns the response an agent attached to the error of a change
// that took effect in part.
func partial[T proto.Message](err error) (T, bool) {
	var zero T
	st, ok := status.FromError(err)
	if !ok {
		return zero, false
	}
	for _, d := range st.Details() {
		if r, ok := d.(T); ok {
			return r, true
		}
	}
	return zero, false
}

// Node returns the agent's identity, version, configuration generation and
// maintenance state.
func (c *Client) Node(ctx context.Context) (*haav1.Node, error) {
	r, err := c.api.GetNode(ctx, &haav1.GetNodeRequest{})
	if err != nil {
		return nil, err
	}
	return r.GetNode(), nil
}

// Instances returns every VRRP instance of the node, by name.
func (c *Client) Instances(ctx context.Context) ([]*haav1.InstanceStatus, error) {
	r, err := c.api.ListInstances(ctx, &haav1.ListInstancesRequest{})
	if err != nil {
		return nil, err
	}
	return r.GetInstances(), nil
}

// Instance returns one instance; codes.NotFound if there is none by name.
func (c *Client) Instance(ctx context.Context, name string) (*haav1.InstanceStatus, error) {
	r, err := c.api.GetInstance(ctx, &haav1.GetInstanceRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return r.GetInstance(), nil
}

// Config returns the running configuration with its generation and hash.
func (c *Client) Config(ctx context.Context) (*haav1.GetConfigResponse, error) {
	return c.api.GetConfig(ctx, &haav1.GetConfigRequest{})
}

// ApplyOption qualifies Apply.
type ApplyOption func(*haav1.ApplyConfigRequest)

// DryRun validates and plans only.
func DryRun() ApplyOption { return func(r *haav1.ApplyConfigRequest) { r.DryRun = true } }

// IfGeneration applies only if generation n still runs (optimistic
// concurrency: read with Config or Node, decide, apply); otherwise Apply
// fails with ErrStaleGeneration.
func IfGeneration(n uint64) ApplyOption {
	return func(r *haav1.ApplyConfigRequest) { r.ExpectedGeneration = &n }
}

// Apply validates cfg on the agent, diffs it against the running
// configuration and, unless DryRun, applies it. The response holds the plan
// and the generation running afterwards. An invalid configuration is
// codes.InvalidArgument: ErrorDetails lists its field violations. A
// configuration applied with failures returns the response and an error
// wrapping ErrPartial.
func (c *Client) Apply(ctx context.Context, cfg *haav1.AgentConfig, opts ...ApplyOption) (*haav1.ApplyConfigResponse, error) {
	req := &haav1.ApplyConfigRequest{Config: cfg}
	for _, o := range opts {
		o(req)
	}
	r, err := c.api.ApplyConfig(ctx, req)
	if err != nil {
		if r, ok := partial[*haav1.ApplyConfigResponse](err); ok {
			return r, fmt.Errorf("%w: %w", ErrPartial, err)
		}
		if req.ExpectedGeneration != nil && status.Code(err) == codes.FailedPrecondition {
			return nil, fmt.Errorf("%w: %w", ErrStaleGeneration, err)
		}
		return nil, err
	}
	return r, nil
}

// Failover makes this node, master of instance, hand over, and returns the
// address of the new master once another node has taken over (waiting up to
// timeout; 0: the agent's default, 10s). The instance is then held as
// backup on this node. A node that is not master fails with ErrNotMaster.
func (c *Client) Failover(ctx context.Context, instance string, timeout time.Duration) (string, error) {
	req := &haav1.FailoverRequest{Instance: instance}
	if timeout > 0 {
		req.Timeout = durationpb.New(timeout)
	}
	r, err := c.api.Failover(ctx, req)
	if err != nil {
		if status.Code(err) == codes.FailedPrecondition {
			return "", fmt.Errorf("%w: %w", ErrNotMaster, err)
		}
		return "", err
	}
	return r.GetNewMaster(), nil
}

// SetMaintenance turns maintenance on (the node gives up every mastership
// and stays backup, for ttl or, with 0, until turned off) or off. It returns
// the new maintenance state; with an error wrapping ErrPartial when it is in
// effect but could not be made to survive a restart of the agent.
func (c *Client) SetMaintenance(ctx context.Context, on bool, ttl time.Duration) (*haav1.Maintenance, error) {
	req := &haav1.SetMaintenanceRequest{Enabled: on}
	if on && ttl > 0 {
		req.Ttl = durationpb.New(ttl)
	}
	r, err := c.api.SetMaintenance(ctx, req)
	if err != nil {
		if r, ok := partial[*haav1.SetMaintenanceResponse](err); ok {
			return r.GetMaintenance(), fmt.Errorf("%w: %w", ErrPartial, err)
		}
		return nil, err
	}
	return r.GetMaintenance(), nil
}

// Fleet returns the fleet as the agent sees it through gossip: the members,
// every node's instances with how fresh that news is, the fleet document it
// stores and the problems detected. An agent that does not gossip answers
// with itself alone and no gossip counters (see DialFleet).
func (c *Client) Fleet(ctx context.Context) (*haav1.GetFleetResponse, error) {
	return c.fleet.GetFleet(ctx, &haav1.GetFleetRequest{})
}

// ApplyFleet stores a fleet document on the agent and runs its part of it
// (req.DryRun: plans only; req.Hold: without offering it to the peers yet).
// An invalid document, or one the node cannot run, is codes.InvalidArgument
// (ErrorDetails lists the problems); a document older than the stored one,
// or another one of the same generation, fails with an error wrapping
// ErrStaleGeneration (codes.FailedPrecondition). Either way nothing
// changed. A document stored but run with failures returns the response
// and an error wrapping ErrPartial. Most callers want Fleet.Apply, which
// applies to every member.
func (c *Client) ApplyFleet(ctx context.Context, req *haav1.ApplyFleetRequest) (*haav1.ApplyFleetResponse, error) {
	r, err := c.fleet.ApplyFleet(ctx, req)
	if err != nil {
		if r, ok := partial[*haav1.ApplyFleetResponse](err); ok {
			return r, fmt.Errorf("%w: %w", ErrPartial, err)
		}
		if status.Code(err) == codes.FailedPrecondition {
			return nil, fmt.Errorf("%w: %w", ErrStaleGeneration, err)
		}
		return nil, err
	}
	return r, nil
}
