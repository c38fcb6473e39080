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

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Strategies of Fleet.Apply.
const (
	// StrategyAll applies to every node at once.
	StrategyAll = "all"
	// StrategyRolling applies to one node at a time, backups first and
	// the current master last, waiting for the fleet to converge after each.
	StrategyRolling = "rolling"
)

// Defaults of FleetApplyOptions.
const (
	DefaultStepTimeout     = 10 * time.Second
	DefaultConvergeTimeout = 60 * time.Second
	DefaultPollInterval    = 200 * time.Millisecond
)

// FleetApplyOptions qualify Fleet.Apply.
type FleetApplyOptions struct {
	// DryRun plans on every node only.
	DryRun bool
	// Strategy is StrategyAll (the default) or StrategyRolling.
	Strategy string
	// StepTimeout bounds each call to a node (default DefaultStepTimeout).
	StepTimeout time.Duration
	// ConvergeTimeout bounds the wait for VRRP and the directors' tables
	// to converge after each step of a rolling apply, and after the apply
	// with Wait (default DefaultConvergeTimeout).
	ConvergeTimeout time.Duration
	// Wait, with StrategyAll, waits after the apply until the fleet has
	// converged (VRRP, see Converged, and every director's kernel table,
	// see VirtualServersConverged), for ConvergeTimeout at most
	// (ErrNotConverged). A rolling apply always waits, after each step.
	Wait bool
	// PollInterval is how often a rolling apply reads every node's
	// instances while it waits; converged means so on two reads at least
	// this far apart (default DefaultPollInterval).
	PollInterval time.Duration
	// Progress, if set, hears how the apply goes. It is never called
	// concurrently and must not block for long.
	Progress func(FleetStep)
}

// FleetStepKind says what a FleetStep reports.
type FleetStepKind int

// Kinds of FleetStep, in the order they come.
const (
	// StepPlanned: a node's dry run answered (Node, Plan; Err if it
	// refused or could not be reached). Once per node, by name.
	StepPlanned FleetStepKind = iota + 1
	// StepStarted: a rolling step applies to Node (Step of Steps, Plan).
	StepStarted
	// StepApplied: Node applied the document (Plan, Took).
	StepApplied
	// StepWaiting: a rolling step (or an apply to all with Wait: Step 0)
	// waits for VRRP and the directors' tables; Problems is what has not
	// converged yet (reported again whenever it changes).
	StepWaiting
	// StepConverged: the fleet converged Took after the step's apply.
	StepConverged
	// StepFailed: Node's apply failed (Err), or the step did not converge
	// in time (Problems): the rollout stops.
	StepFailed
	// StepReleased: Node, applied with hold, now offers the document to
	// its peers (the end of a rolling apply); Err if that failed.
	StepReleased
)

var stepNames = map[FleetStepKind]string{StepPlanned: "planned", StepStarted: "started", StepApplied: "applied",
	StepWaiting: "waiting", StepConverged: "converged", StepFailed: "failed", StepReleased: "released"}

func (k FleetStepKind) String() string {
	if s, ok := stepNames[k]; ok {
		return s
	}
	return fmt.Sprintf("FleetStepKind(%d)", int(k))
}

// FleetStep is news of a Fleet.Apply, for Progress.
type FleetStep struct {
	Kind FleetStepKind
	// Generation is the fleet generation being applied.
	Generation uint64
	// Step and Steps number the steps of a rolling apply from 1; 0 for an
	// apply to all.
	Step, Steps int
	Node        string
	Plan        *haav1.Plan
	Took        time.Duration
	Problems    []string
	Err         error
}

// NodeOutcome is what became of a node in a Fleet.Apply.
type NodeOutcome string

// Outcomes of a node.
const (
	// OutcomePlanned: a dry run: the node accepted the document.
	OutcomePlanned NodeOutcome = "planned"
	// OutcomeApplied: the node stores the document and runs its part.
	OutcomeApplied NodeOutcome = "applied"
	// OutcomeHeld: applied, but held (not offered to its peers): the
	// rolling apply stopped before releasing it.
	OutcomeHeld NodeOutcome = "held"
	// OutcomeNotApplied: the node accepted the dry run but was not changed
	// (another node refused, or the rollout stopped before it).
	OutcomeNotApplied NodeOutcome = "not applied"
	// OutcomeRefused: the node refused the document (Err says why).
	OutcomeRefused NodeOutcome = "refused"
	// OutcomeUnreachable: the node could not be called (Err says why).
	OutcomeUnreachable NodeOutcome = "unreachable"
	// OutcomeFailed: the node's apply failed, or took effect in part
	// (Err wraps ErrPartial, and Result is set).
	OutcomeFailed NodeOutcome = "failed"
	// OutcomeSkipped: the member left the fleet and the document does not
	// name it.
	OutcomeSkipped NodeOutcome = "skipped"
)

// NodeApply is one node's part of a Fleet.Apply.
type NodeApply struct {
	Node string
	// Member is gossip's view of the node when the apply began.
	Member  *haav1.Member
	Outcome NodeOutcome
	// Plan is what the document changes on the node: its dry run's plan,
	// then its apply's.
	Plan *haav1.Plan
	// Result is the node's last answer (dry run, apply or release).
	Result *haav1.ApplyFleetResponse
	// Generation is the fleet generation the node stores now, as far as
	// known.
	Generation uint64
	Err        error
	// Took is how long the node's (last) apply took.
	Took time.Duration
}

// FleetApplyReport is the outcome of a Fleet.Apply.
type FleetApplyReport struct {
	// Generation is the fleet generation given to the document.
	Generation uint64
	Strategy   string
	DryRun     bool
	// Nodes is every member and every node of the document, by name.
	Nodes []*NodeApply
	// Order is the order of a rolling apply's steps.
	Order []string
	// StoppedAt is the node whose step stopped a rollout (its apply failed,
	// or VRRP did not converge after it).
	StoppedAt string
	// Problems says what did not converge when a rollout stopped.
	Problems []string
	// Unchanged lists the nodes a stopped rollout did not change.
	Unchanged []string
	// Converged is how long the fleet took to converge after an apply to
	// all with Wait (0: not waited for).
	Converged time.Duration
	Took      time.Duration
}

// Node returns a node's part; nil if it had none.
func (r *FleetApplyReport) Node(name string) *NodeApply {
	for _, n := range r.Nodes {
		if n.Node == name {
			return n
		}
	}
	return nil
}

// nodesWith lists the nodes with one of these outcomes.
func (r *FleetApplyReport) nodesWith(outcomes ...NodeOutcome) []*NodeApply {
	var out []*NodeApply
	for _, n := range r.Nodes {
		if slices.Contains(outcomes, n.Outcome) {
			out = append(out, n)
		}
	}
	return out
}

// partialErr is the error of an apply that went through, except on the
// nodes that failed or could not be reached.
func (r *FleetApplyReport) partialErr() error {
	bad := r.nodesWith(OutcomeUnreachable, OutcomeFailed)
	if len(bad) == 0 {
		return nil
	}
	var msgs []string
	for _, n := range bad {
		msgs = append(msgs, (&NodeError{n.Node, n.Err}).Error())
	}
	what := "applied"
	if r.DryRun {
		what = "planned"
	}
	return fmt.Errorf("%w: %s except on %s", ErrPartial, what, strings.Join(msgs, "; "))
}

// Apply applies a fleet document to the fleet, carefully:
//
//  1. The document is validated here (config.ValidateFleet), and every
//     node it names must be a member of the fleet: otherwise nothing is
//     sent (ErrRefused).
//  2. Its generation becomes one more than the highest any member (or the
//     seed's document) has, as the seed sees it now (see Refresh).
//  3. Every member that can be called gets it as a dry run, concurrently
//     (every member stores the document, also those it does not name). If
//     any refuses, nothing is applied anywhere (ErrRefused; the report
//     says every node's problems).
//  4. StrategyAll applies to all at once. StrategyRolling applies to the
//     nodes whose plan changes something, one at a time, ordered by how
//     many instances they are master of now (fewest first, then by name),
//     each with hold (not offered to peers yet); after each it waits until
//     VRRP converged (see Converged) on two reads PollInterval apart, or
//     stops (ErrNotConverged) when it has not within ConvergeTimeout,
//     leaving the rest unchanged. At the end every node gets the document
//     without hold, which releases it.
//
// Members that cannot be called (failed or left according to gossip,
// unreachable, or failing at the apply) are reported and the rest applied;
// the error then wraps ErrPartial: they catch up through gossip when they
// return. A report is returned whatever happens.
func (f *Fleet) Apply(ctx context.Context, doc *haav1.Fleet, o FleetApplyOptions) (*FleetApplyReport, error) {
	start := time.Now()
	r := &FleetApplyReport{Strategy: o.Strategy, DryRun: o.DryRun}
	err := f.apply(ctx, doc, &o, r)
	r.Took = time.Since(start)
	return r, err
}

func (f *Fleet) apply(ctx context.Context, doc *haav1.Fleet, o *FleetApplyOptions, r *FleetApplyReport) error {
	if o.Strategy == "" {
		o.Strategy, r.Strategy = StrategyAll, StrategyAll
	}
	if o.Strategy != StrategyAll && o.Strategy != StrategyRolling {
		return fmt.Errorf("strategy %q: want %s or %s", o.Strategy, StrategyAll, StrategyRolling)
	}
	o.StepTimeout = orDefault(o.StepTimeout, DefaultStepTimeout)
	o.ConvergeTimeout = orDefault(o.ConvergeTimeout, DefaultConvergeTimeout)
	o.PollInterval = orDefault(o.PollInterval, DefaultPollInterval)
	var mu sync.Mutex
	progress := func(s FleetStep) {
		if o.Progress != nil {
			mu.Lock()
			defer mu.Unlock()
			s.Generation = r.Generation
			o.Progress(s)
		}
	}

	if doc == nil {
		return fmt.Errorf("%w: no document", ErrRefused)
	}
	doc = proto.Clone(doc).(*haav1.Fleet)
	if err := config.ValidateFleet(doc); err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	// The generations may have changed since DialFleet.
	rctx, cancel := context.WithTimeout(ctx, o.StepTimeout)
	_ = f.Refresh(rctx) // else the view DialFleet had
	cancel()
	view := f.View()
	members := map[string]*haav1.Member{}
	var names []string
	gen := view.GetDocument().GetGeneration()
	for _, m := range view.GetMembers() {
		members[m.GetName()] = m
		names = append(names, m.GetName())
		gen = max(gen, m.GetFleetGeneration())
	}
	var unknown []string
	for _, n := range doc.GetNodes() {
		if members[n] == nil {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(names)
		return fmt.Errorf("%w: %s %s: members are %s (a node takes part once its haad gossips with the fleet: haactl get nodes)",
			ErrRefused, plural(len(unknown), "unknown node", "unknown nodes"), strings.Join(unknown, ", "), strings.Join(names, ", "))
	}
	doc.Generation = gen + 1
	r.Generation = doc.Generation

	slices.Sort(names)
	var targets []string
	for _, name := range names {
		m := members[name]
		n := &NodeApply{Node: name, Member: m, Generation: m.GetFleetGeneration()}
		r.Nodes = append(r.Nodes, n)
		switch {
		case m.GetState() == haav1.MemberState_MEMBER_STATE_LEFT && !slices.Contains(doc.GetNodes(), name):
			n.Outcome = OutcomeSkipped
		case m.GetState() != haav1.MemberState_MEMBER_STATE_ALIVE:
			n.Outcome, n.Err = OutcomeUnreachable, fmt.Errorf("%w: gossip says it is %s", ErrUnreachable, MemberStateName(m.GetState()))
		case f.client(name) != nil:
			targets = append(targets, name)
		default:
			n.Outcome, n.Err = OutcomeUnreachable, f.whyDown(name)
		}
	}

	// Dry run everywhere.
	dry := Each(ctx, f, targets, o.StepTimeout, func(ctx context.Context, _ string, c *Client) (*haav1.ApplyFleetResponse, error) {
		return c.ApplyFleet(ctx, &haav1.ApplyFleetRequest{Document: doc, DryRun: true})
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	targets = targets[:0]
	var refused []string
	for _, res := range dry {
		n := r.Node(res.Node)
		n.Took = res.Took
		switch {
		case res.Err != nil && unreachable(res.Err):
			n.Outcome, n.Err = OutcomeUnreachable, fmt.Errorf("%w: %w", ErrUnreachable, res.Err)
		case res.Err != nil:
			n.Outcome, n.Err = OutcomeRefused, res.Err
			refused = append(refused, res.Node)
		default:
			n.Outcome, n.Plan, n.Result = OutcomePlanned, res.Value.GetPlan(), res.Value
			targets = append(targets, res.Node)
		}
	}
	for _, n := range r.Nodes {
		if n.Outcome != OutcomeSkipped {
			progress(FleetStep{Kind: StepPlanned, Node: n.Node, Plan: n.Plan, Took: n.Took, Err: n.Err})
		}
	}
	if len(refused) > 0 {
		for _, n := range r.nodesWith(OutcomePlanned) {
			n.Outcome = OutcomeNotApplied
		}
		return fmt.Errorf("%w: refused by %s", ErrRefused, strings.Join(refused, ", "))
	}
	if o.DryRun {
		return r.partialErr()
	}
	if len(targets) == 0 {
		return fmt.Errorf("%w: no member could be reached", ErrPartial)
	}
	if o.Strategy == StrategyRolling {
		if err := f.rolling(ctx, doc, targets, o, r, progress); err != nil {
			return err
		}
		return r.partialErr()
	}

	res := Each(ctx, f, targets, o.StepTimeout, func(ctx context.Context, node string, c *Client) (*haav1.ApplyFleetResponse, error) {
		start := time.Now()
		resp, err := c.ApplyFleet(ctx, &haav1.ApplyFleetRequest{Document: doc})
		progress(FleetStep{Kind: StepApplied, Node: node, Plan: resp.GetPlan(), Took: time.Since(start), Err: err})
		return resp, err
	})
	var applied []string
	for _, res := range res {
		r.Node(res.Node).applied(res.Value, res.Err, res.Took, OutcomeApplied)
		if res.Err == nil {
			applied = append(applied, res.Node)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if o.Wait && len(applied) > 0 {
		start := time.Now()
		problems, took, err := f.converge(ctx, doc, targets, applied, o, func(p []string) {
			progress(FleetStep{Kind: StepWaiting, Problems: p, Took: time.Since(start)})
		})
		if err != nil {
			return err
		}
		if problems != nil {
			r.Problems = problems
			progress(FleetStep{Kind: StepFailed, Problems: problems, Took: took})
			return fmt.Errorf("%w: applied, but not converged within %s: %s", ErrNotConverged, o.ConvergeTimeout, strings.Join(problems, "; "))
		}
		r.Converged = took
		progress(FleetStep{Kind: StepConverged, Took: took})
	}
	return r.partialErr()
}

// applied records the answer of an apply.
func (n *NodeApply) applied(resp *haav1.ApplyFleetResponse, err error, took time.Duration, ok NodeOutcome) {
	n.Took, n.Err = took, err
	if resp != nil {
		n.Result, n.Generation = resp, resp.GetFleetGeneration()
		if n.Plan == nil || PlanChanges(resp.GetPlan()) { // a release plans nothing: keep the step's plan
			n.Plan = resp.GetPlan()
		}
	}
	switch {
	case err == nil:
		n.Outcome = ok
	case unreachable(err):
		n.Outcome, n.Err = OutcomeUnreachable, fmt.Errorf("%w: %w", ErrUnreachable, err)
	default:
		n.Outcome = OutcomeFailed
	}
}

// rolling applies to the nodes one at a time (see Apply).
func (f *Fleet) rolling(ctx context.Context, doc *haav1.Fleet, targets []string, o *FleetApplyOptions, r *FleetApplyReport, progress func(FleetStep)) error {
	// Who is master of what now.
	now := Each(ctx, f, targets, o.StepTimeout, func(ctx context.Context, _ string, c *Client) ([]*haav1.InstanceStatus, error) {
		return c.Instances(ctx)
	})
	masters := map[string]int{}
	for _, res := range now {
		for _, in := range res.Value {
			if in.GetState() == haav1.State_STATE_MASTER {
				masters[res.Node]++
			}
		}
	}
	for _, t := range targets {
		if PlanChanges(r.Node(t).Plan) {
			r.Order = append(r.Order, t)
		}
	}
	slices.SortStableFunc(r.Order, func(a, b string) int { return masters[a] - masters[b] })

	stop := func(i int) {
		for _, t := range targets {
			if !slices.Contains(r.Order[:i], t) {
				r.Unchanged = append(r.Unchanged, t)
				if n := r.Node(t); n.Outcome == OutcomePlanned {
					n.Outcome = OutcomeNotApplied
				}
			}
		}
	}
	steps := len(r.Order)
	for i, node := range r.Order {
		step := FleetStep{Step: i + 1, Steps: steps, Node: node}
		n := r.Node(node)
		step.Kind, step.Plan = StepStarted, n.Plan
		progress(step)
		cctx, cancel := context.WithTimeout(ctx, o.StepTimeout)
		start := time.Now()
		resp, err := f.client(node).ApplyFleet(cctx, &haav1.ApplyFleetRequest{Document: doc, Hold: true})
		cancel()
		n.applied(resp, err, time.Since(start), OutcomeHeld)
		if err != nil {
			step.Kind, step.Err = StepFailed, err
			r.StoppedAt = node
			progress(step)
			if resp != nil { // took effect there, in part
				stop(i + 1)
			} else {
				stop(i)
			}
			if e := ctx.Err(); e != nil {
				return e
			}
			return fmt.Errorf("%w: rollout stopped at step %d/%d: %s%s", ErrPartial, i+1, steps, &NodeError{node, n.Err}, notChanged(r.Unchanged))
		}
		step.Kind, step.Plan, step.Took = StepApplied, n.Plan, n.Took
		progress(step)

		problems, took, err := f.converge(ctx, doc, targets, r.Order[:i+1], o, func(p []string) {
			progress(FleetStep{Kind: StepWaiting, Step: i + 1, Steps: steps, Node: node, Problems: p, Took: time.Since(start)})
		})
		if err != nil {
			stop(i + 1)
			return err
		}
		if problems != nil {
			r.Problems, r.StoppedAt = problems, node
			stop(i + 1)
			progress(FleetStep{Kind: StepFailed, Step: i + 1, Steps: steps, Node: node, Problems: problems, Took: took})
			return fmt.Errorf("%w: rollout stopped after step %d/%d (%s): not converged within %s: %s%s",
				ErrNotConverged, i+1, steps, node, o.ConvergeTimeout, strings.Join(problems, "; "), notChanged(r.Unchanged))
		}
		progress(FleetStep{Kind: StepConverged, Step: i + 1, Steps: steps, Node: node, Took: took})
	}

	// Release: every node stores the document and offers it.
	res := Each(ctx, f, targets, o.StepTimeout, func(ctx context.Context, node string, c *Client) (*haav1.ApplyFleetResponse, error) {
		resp, err := c.ApplyFleet(ctx, &haav1.ApplyFleetRequest{Document: doc})
		progress(FleetStep{Kind: StepReleased, Node: node, Err: err})
		return resp, err
	})
	for _, res := range res {
		n := r.Node(res.Node)
		took := n.Took
		n.applied(res.Value, res.Err, res.Took, OutcomeApplied)
		if slices.Contains(r.Order, res.Node) {
			n.Took = took // the step's apply, not the release
		}
	}
	return ctx.Err()
}

func notChanged(nodes []string) string {
	if len(nodes) == 0 {
		return ""
	}
	return "; not changed: " + strings.Join(nodes, ", ")
}

// converge polls every node's instances, and the virtual servers of the
// directors among applied (the nodes that run the document now), until Converged and VirtualServersConverged find no problem on
// two polls at least PollInterval apart (problems nil), or returns the
// last problems after ConvergeTimeout. waiting hears the problems when
// they change.
func (f *Fleet) converge(ctx context.Context, doc *haav1.Fleet, nodes, applied []string, o *FleetApplyOptions, waiting func([]string)) ([]string, time.Duration, error) {
	start := time.Now()
	var okSince time.Time
	var last string
	want := wantVirtualServers(doc, applied)
	directors := slices.Sorted(maps.Keys(want))
	for {
		polled := time.Now()
		res := Each(ctx, f, nodes, o.StepTimeout, func(ctx context.Context, _ string, c *Client) ([]*haav1.InstanceStatus, error) {
			return c.Instances(ctx)
		})
		vres := Each(ctx, f, directors, o.StepTimeout, func(ctx context.Context, _ string, c *Client) ([]*haav1.VirtualServerStatus, error) {
			resp, err := c.VirtualServers(ctx)
			return resp.GetVirtualServers(), err
		})
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		byNode := map[string][]*haav1.InstanceStatus{}
		var unread []string
		for _, res := range res {
			if res.Err != nil {
				unread = append(unread, fmt.Sprintf("%s: cannot read its instances: %s", res.Node, errMessage(res.Err)))
				continue
			}
			byNode[res.Node] = res.Value
		}
		vsByNode := map[string][]*haav1.VirtualServerStatus{}
		for _, res := range vres {
			if res.Err != nil {
				unread = append(unread, fmt.Sprintf("%s: cannot read its virtual servers: %s", res.Node, errMessage(res.Err)))
				continue
			}
			vsByNode[res.Node] = res.Value
		}
		problems := append(Converged(byNode, doc), want.converged(vsByNode)...)
		problems = append(problems, unread...)
		switch {
		case len(problems) > 0:
			okSince = time.Time{}
			if s := strings.Join(problems, "\n"); s != last {
				last = s
				waiting(problems)
			}
			if time.Since(start) >= o.ConvergeTimeout {
				return problems, time.Since(start), nil
			}
		case okSince.IsZero():
			okSince = polled
		case polled.Sub(okSince) >= o.PollInterval:
			return nil, time.Since(start), nil
		}
		t := time.NewTimer(o.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, 0, ctx.Err()
		case <-t.C:
		}
	}
}

// errMessage is a gRPC status error's message, or the error's.
func errMessage(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}

// unreachable tells an error of transport (the node could not be reached
// or did not answer in time) from the node's answer.
func unreachable(err error) bool {
	if errors.Is(err, ErrNoAgent) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUnreachable) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// PlanChanges tells whether a plan changes anything (instances or virtual
// servers).
func PlanChanges(p *haav1.Plan) bool {
	return len(p.GetAdded())+len(p.GetRemoved())+len(p.GetChanged())+
		len(p.GetVirtualServersAdded())+len(p.GetVirtualServersRemoved())+len(p.GetVirtualServersChanged()) > 0
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
