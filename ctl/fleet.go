package ctl

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

var (
	// ErrNoGossip is returned by DialFleet when a seed answers but does not
	// gossip: it is no member of a fleet.
	ErrNoGossip = errors.New("the node does not gossip")
	// ErrUnreachable wraps the error of a member that cannot be called:
	// gossip says it failed or left, it advertises no API address, or
	// dialling it failed.
	ErrUnreachable = errors.New("unreachable")
	// ErrRefused wraps the error of a Fleet.Apply that changed nothing: the
	// document is invalid, names a node gossip never saw, or a node refused
	// its dry run. The report says why, node by node.
	ErrRefused = errors.New("fleet document refused, nothing changed")
	// ErrNotConverged wraps the error of a rolling Fleet.Apply stopped
	// because VRRP did not settle after a step: the report lists what did
	// not converge and the nodes left unchanged.
	ErrNotConverged = errors.New("VRRP did not converge")
)

// NodeError is an error of one node of a fleet.
type NodeError struct {
	Node string
	Err  error
}

func (e *NodeError) Error() string { return e.Node + ": " + e.Err.Error() }

// Unwrap returns the node's error.
func (e *NodeError) Unwrap() error { return e.Err }

// Fleet is a connection to every member of a fleet that can be called: one
// Client per member, found through the gossip view of a seed. Its methods
// may be called concurrently.
type Fleet struct {
	seed string
	dial dialOptions
	opts []Option

	mu      sync.Mutex
	view    *haav1.GetFleetResponse
	clients map[string]*Client
	down    map[string]error // members without a client, and why
}

// DialFleet asks the seeds in turn for the fleet view (GetFleet); the first
// that answers gives it. Each member the view lists as alive with an API
// address is then dialled (unix:///path or host:port) with opts (TLS
// options apply to TCP addresses only: unix sockets are plaintext). A
// member that cannot be dialled, or that gossip says failed or left, is
// listed by Unreachable. A seed that answers but does not gossip fails
// with ErrNoGossip; with one seed, its error is returned as is (a gRPC
// status error stays one), with several, every seed's error.
//
// Dialling is lazy (see Dial): an unreachable member shows at its first
// call. The view is a snapshot: Refresh reads it again.
func DialFleet(ctx context.Context, seeds []string, opts ...Option) (*Fleet, error) {
	var o dialOptions
	for _, opt := range opts {
		opt(&o)
	}
	var list []string
	for _, s := range seeds {
		if s = strings.TrimSpace(s); s != "" && !slices.Contains(list, s) {
			list = append(list, s)
		}
	}
	if len(list) == 0 {
		return nil, errors.New("no seed: give the API address of at least one fleet member")
	}
	var errs []error
	for i, s := range list {
		c, err := dialMember(ctx, s, &o, opts)
		if err == nil {
			var v *haav1.GetFleetResponse
			v, err = seedView(ctx, c, len(list)-i)
			if err == nil {
				f := &Fleet{seed: s, dial: o, opts: opts, clients: map[string]*Client{}, down: map[string]error{}}
				if v.GetNode() != "" {
					f.clients[v.GetNode()] = c
				} else {
					c.Close() // an agent that does not name itself: no member to call
				}
				f.update(ctx, v)
				return f, nil
			}
			c.Close()
		}
		if len(list) == 1 {
			return nil, err
		}
		errs = append(errs, fmt.Errorf("seed %s: %w", s, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// seedView asks a seed for the fleet view, leaving time for the other
// seeds when ctx has a deadline.
func seedView(ctx context.Context, c *Client, seedsLeft int) (*haav1.GetFleetResponse, error) {
	if dl, ok := ctx.Deadline(); ok && seedsLeft > 1 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Until(dl)/time.Duration(seedsLeft))
		defer cancel()
	}
	v, err := c.Fleet(ctx)
	if err != nil {
		return nil, err
	}
	if v.GetGossip() == nil {
		return nil, fmt.Errorf("%w: %s at %s is no fleet member: give it a gossip section in its configuration "+
			"(gossip: {bind: HOST:7946, join: [PEER:7946]}), or give a seed that gossips", ErrNoGossip, orUnnamed(v.GetNode()), c.Target())
	}
	return v, nil
}

func orUnnamed(s string) string {
	if s == "" {
		return "the node"
	}
	return "node " + s
}

// dialMember dials a member's API address with the fleet's options, but
// without the TLS options for a unix socket.
func dialMember(ctx context.Context, target string, o *dialOptions, opts []Option) (*Client, error) {
	t, err := ParseTarget(target)
	if err != nil {
		return nil, err
	}
	if t.Network == "unix" {
		opts = []Option{WithGRPCOptions(o.grpcOpts...)}
	}
	return Dial(ctx, target, opts...)
}

// update takes a new view: it dials the members that are alive and have no
// client yet, and says why the others have none.
func (f *Fleet) update(ctx context.Context, v *haav1.GetFleetResponse) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.view = v
	for _, m := range v.GetMembers() {
		name := m.GetName()
		if _, ok := f.clients[name]; ok || name == "" {
			continue
		}
		switch {
		case m.GetState() != haav1.MemberState_MEMBER_STATE_ALIVE:
			f.down[name] = fmt.Errorf("%w: gossip says it is %s", ErrUnreachable, MemberStateName(m.GetState()))
		case m.GetApiAddress() == "":
			f.down[name] = fmt.Errorf("%w: it advertises no API address", ErrUnreachable)
		default:
			mc, err := dialMember(ctx, m.GetApiAddress(), &f.dial, f.opts)
			if err != nil {
				f.down[name] = fmt.Errorf("%w: %w", ErrUnreachable, err)
				continue
			}
			f.clients[name] = mc
			delete(f.down, name)
		}
	}
}

// MemberStateName is a member state for people: ALIVE, SUSPECT, DEAD,
// LEFT, or "-".
func MemberStateName(s haav1.MemberState) string {
	if s == haav1.MemberState_MEMBER_STATE_UNSPECIFIED {
		return "-"
	}
	return strings.TrimPrefix(s.String(), "MEMBER_STATE_")
}

// View returns the fleet view of the seed that answered (the latest, see
// Refresh).
func (f *Fleet) View() *haav1.GetFleetResponse {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.view
}

// Refresh asks the seed's node for the fleet view again, and dials the
// members that have become reachable since.
func (f *Fleet) Refresh(ctx context.Context) error {
	c := f.client(f.View().GetNode())
	if c == nil {
		return fmt.Errorf("%w: the seed", ErrUnreachable)
	}
	v, err := c.Fleet(ctx)
	if err != nil {
		return err
	}
	f.update(ctx, v)
	return nil
}

// Seed returns the seed that answered, as given to DialFleet.
func (f *Fleet) Seed() string { return f.seed }

// Clients returns a client of each member that can be called, by node name.
func (f *Fleet) Clients() map[string]*Client {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.clients)
}

func (f *Fleet) client(node string) *Client {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clients[node]
}

// Unreachable returns why each other member cannot be called, by node name
// (each error wraps ErrUnreachable).
func (f *Fleet) Unreachable() map[string]error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.down)
}

// Member returns gossip's view of a member; nil if it is none.
func (f *Fleet) Member(name string) *haav1.Member {
	for _, m := range f.View().GetMembers() {
		if m.GetName() == name {
			return m
		}
	}
	return nil
}

// Close closes every client.
func (f *Fleet) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	for _, c := range f.clients {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// whyDown says why node has no client.
func (f *Fleet) whyDown(node string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.down[node]; err != nil {
		return err
	}
	return fmt.Errorf("%w: not a member of the fleet (gossip has never seen it)", ErrUnreachable)
}

// NodeResult is the outcome of one node's call of Each.
type NodeResult[T any] struct {
	Node  string
	Value T
	Err   error
	Took  time.Duration
}

// Each calls fn on every node of nodes (nil: every member that can be
// called) concurrently, each with its own deadline of timeout (0: ctx's
// only), and returns every node's result, sorted by node name. A node
// without a client gets an error wrapping ErrUnreachable without a call.
func Each[T any](ctx context.Context, f *Fleet, nodes []string, timeout time.Duration,
	fn func(ctx context.Context, node string, c *Client) (T, error)) []NodeResult[T] {
	clients := f.Clients()
	if nodes == nil {
		nodes = slices.Collect(maps.Keys(clients))
	}
	nodes = slices.Clone(nodes)
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)
	out := make([]NodeResult[T], len(nodes))
	var wg sync.WaitGroup
	for i, node := range nodes {
		out[i].Node = node
		c := clients[node]
		if c == nil {
			out[i].Err = f.whyDown(node)
			continue
		}
		wg.Go(func() {
			cctx := ctx
			if timeout > 0 {
				var cancel context.CancelFunc
				cctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			start := time.Now()
			out[i].Value, out[i].Err = fn(cctx, node, c)
			out[i].Took = time.Since(start)
		})
	}
	wg.Wait()
	return out
}
