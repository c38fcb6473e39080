package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/haa-dev/haa/ctl"
	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// parseFleet parses and checks a fleet document before anything is sent.
func parseFleet(data []byte, src string) (*haav1.Fleet, error) {
	doc, err := config.ParseFleet(data)
	if err == nil {
		err = config.ValidateFleet(doc)
	}
	if err != nil {
		return nil, invalid(src, "fleet document", fieldViolations(err), "nothing was sent to the fleet")
	}
	return doc, nil
}

// applyFleet applies a fleet document to the fleet and prints each node's
// plan and result (table: as it goes).
func (a *app) applyFleet(cmd *cobra.Command, doc *haav1.Fleet, src string, o ctl.FleetApplyOptions) error {
	ctx, f, err := a.openFleet(cmd)
	if err != nil {
		return err
	}
	defer f.Close()
	o.StepTimeout = a.timeout
	p := &fleetPrinter{a: a}
	if a.output == outTable {
		o.Progress = p.progress
	}
	r, err := f.Apply(ctx, doc, o)
	if a.output != outTable {
		if perr := a.printReport(r); perr != nil {
			return perr
		}
	} else if perr := p.finish(r); perr != nil {
		return perr
	}
	return a.fleetApplyError(r, err, src, o)
}

// fleetPrinter prints a fleet apply for people: each node's plan, a rolling
// apply's steps as they happen, then a summary.
type fleetPrinter struct {
	a          *app
	planned    []ctl.FleetStep
	plansShown bool
}

func (p *fleetPrinter) progress(s ctl.FleetStep) {
	out := p.a.out
	step := fmt.Sprintf("[%d/%d]", s.Step, s.Steps)
	if s.Steps == 0 {
		step = "fleet:"
	}
	switch s.Kind {
	case ctl.StepPlanned:
		p.planned = append(p.planned, s)
	case ctl.StepStarted:
		if !p.plansShown {
			p.plansShown = true
			for _, pl := range p.planned {
				head := pl.Node + ": plan"
				if pl.Err != nil {
					head = pl.Node + ": " + nodeErrText(pl.Err)
				}
				p.block(head, pl.Plan, pl.Err)
			}
			fmt.Fprintf(out, "Rolling out fleet generation %d, one node at a time:\n", s.Generation)
		}
		fmt.Fprintf(out, "%s %s: applying (%s)\n", step, s.Node, planSummary(s.Plan))
	case ctl.StepApplied:
		if s.Step > 0 {
			fmt.Fprintf(out, "%s %s: applied in %s, waiting for the fleet to converge\n", step, s.Node, round(s.Took))
		}
	case ctl.StepWaiting:
		fmt.Fprintf(out, "%s waiting: %s\n", step, strings.Join(s.Problems, "; "))
	case ctl.StepConverged:
		fmt.Fprintf(out, "%s converged after %s\n", step, round(s.Took))
	case ctl.StepFailed:
		if s.Err != nil {
			fmt.Fprintf(out, "%s %s: %s\n", step, s.Node, nodeErrText(s.Err))
			break
		}
		fmt.Fprintf(out, "%s not converged after %s:\n", step, round(s.Took))
		for _, pr := range s.Problems {
			fmt.Fprintf(out, "  %s\n", pr)
		}
	}
}

// block prints one node: a headline, its problems or its plan.
func (p *fleetPrinter) block(head string, plan *haav1.Plan, err error) {
	fmt.Fprintln(p.a.out, head)
	if vs := ctl.ErrorDetails(err); len(vs) > 0 {
		for _, v := range vs {
			fmt.Fprintf(p.a.out, "  %s\n", v)
		}
	} else if plan != nil {
		_ = printPlan(p.a, plan)
	}
	fmt.Fprintln(p.a.out)
}

// finish prints what the progress did not: every node's block (unless a
// rollout showed them already) and the summary.
func (p *fleetPrinter) finish(r *ctl.FleetApplyReport) error {
	if len(r.Nodes) == 0 {
		return nil // refused before anything was sent: the error says why
	}
	if !p.plansShown {
		for _, n := range r.Nodes {
			p.block(nodeHeadline(n), n.Plan, n.Err)
		}
	}
	ok, total := 0, 0
	var held, refused []string
	for _, n := range r.Nodes {
		switch n.Outcome {
		case ctl.OutcomeSkipped:
			continue
		case ctl.OutcomeApplied, ctl.OutcomePlanned:
			ok++
		case ctl.OutcomeHeld:
			held = append(held, n.Node)
		case ctl.OutcomeRefused:
			refused = append(refused, n.Node)
		}
		total++
	}
	out := p.a.out
	var err error
	switch {
	case len(refused) > 0 && r.DryRun:
		_, err = fmt.Fprintf(out, "Dry run: refused by %s; nothing changed.\n", strings.Join(refused, ", "))
	case len(refused) > 0:
		_, err = fmt.Fprintf(out, "Nothing applied anywhere: refused by %s.\n", strings.Join(refused, ", "))
	case r.DryRun:
		_, err = fmt.Fprintf(out, "Dry run: fleet generation %d would apply to %d/%d nodes; nothing changed.\n", r.Generation, ok, total)
	case r.StoppedAt != "":
		msg := fmt.Sprintf("Rollout stopped at %s's step after %s", r.StoppedAt, round(r.Took))
		if len(held) > 0 {
			msg += fmt.Sprintf(": fleet generation %d runs on %s, held (not offered to its peers yet)", r.Generation, strings.Join(held, ", "))
		}
		if len(r.Unchanged) > 0 {
			msg += "; not changed: " + strings.Join(r.Unchanged, ", ")
		}
		_, err = fmt.Fprintln(out, msg+".")
	case r.Converged > 0:
		_, err = fmt.Fprintf(out, "Applied fleet generation %d to %d/%d nodes in %s; converged (VRRP, directors' tables) %s after the apply.\n",
			r.Generation, ok, total, round(r.Took), round(r.Converged))
	default:
		_, err = fmt.Fprintf(out, "Applied fleet generation %d to %d/%d nodes in %s.\n", r.Generation, ok, total, round(r.Took))
	}
	return err
}

// nodeHeadline says what became of a node.
func nodeHeadline(n *ctl.NodeApply) string {
	nothing := ""
	if n.Plan != nil && !ctl.PlanChanges(n.Plan) {
		nothing = ", nothing to change"
	}
	switch n.Outcome {
	case ctl.OutcomePlanned:
		return n.Node + ": plan (dry run)"
	case ctl.OutcomeApplied:
		return fmt.Sprintf("%s: applied in %s%s", n.Node, round(n.Took), nothing)
	case ctl.OutcomeHeld:
		return fmt.Sprintf("%s: applied in %s, held (not offered to its peers yet)", n.Node, round(n.Took))
	case ctl.OutcomeNotApplied:
		return n.Node + ": not applied"
	case ctl.OutcomeSkipped:
		return n.Node + ": skipped: it left the fleet"
	case ctl.OutcomeRefused:
		if len(ctl.ErrorDetails(n.Err)) > 0 {
			return n.Node + ": refused:"
		}
		return n.Node + ": refused: " + nodeErrText(n.Err)
	}
	return n.Node + ": " + nodeErrText(n.Err)
}

// nodeErrText is a node's error for people.
func nodeErrText(err error) string {
	if errors.Is(err, ctl.ErrUnreachable) {
		if st, ok := grpcStatus(err); ok {
			return "unreachable: " + st.Message()
		}
		return err.Error()
	}
	if errors.Is(err, ctl.ErrPartial) {
		return "failed in part: " + statusMessage(err)
	}
	if st, ok := grpcStatus(err); ok {
		return fmt.Sprintf("failed: %s (%s)", st.Message(), st.Code())
	}
	return "failed: " + err.Error()
}

// errReason is a node's error for people, without "failed: " or
// "unreachable: " (said otherwise).
func errReason(err error) string {
	s := nodeErrText(err)
	for _, p := range []string{"unreachable: ", "failed: "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

// round is a duration for people: 412ms, 3.9s.
func round(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// fleetApplyError explains how a fleet apply failed.
func (a *app) fleetApplyError(r *ctl.FleetApplyReport, err error, src string, o ctl.FleetApplyOptions) error {
	if err == nil {
		return nil
	}
	var refused, failed, down []string
	for _, n := range r.Nodes {
		switch n.Outcome {
		case ctl.OutcomeRefused:
			refused = append(refused, n.Node)
		case ctl.OutcomeFailed:
			failed = append(failed, fmt.Sprintf("%s (%s)", n.Node, errReason(n.Err)))
		case ctl.OutcomeUnreachable:
			down = append(down, fmt.Sprintf("%s (%s)", n.Node, errReason(n.Err)))
		}
	}
	switch {
	case errors.Is(err, ctl.ErrRefused) && len(r.Nodes) == 0:
		msg := strings.TrimPrefix(err.Error(), ctl.ErrRefused.Error()+": ")
		return failf("%s: %s; nothing was sent", src, msg)
	case errors.Is(err, ctl.ErrRefused):
		return failf("%s was refused by %s (see above), nothing was applied anywhere: fix it and apply again", src, strings.Join(refused, ", "))
	case errors.Is(err, ctl.ErrNotConverged) && r.StoppedAt == "":
		return failf("fleet generation %d applied, but the fleet did not converge within --converge-timeout %s (see above): "+
			"haactl get instances --all, get vs --all and get issues show where", r.Generation, o.ConvergeTimeout)
	case errors.Is(err, ctl.ErrNotConverged):
		return failf("rollout stopped: the fleet did not converge within --converge-timeout %s after %s's step (see above); "+
			"fix the problem and apply again, or apply the previous document to roll back (haactl get instances --all shows the fleet)",
			o.ConvergeTimeout, r.StoppedAt)
	case errors.Is(err, ctl.ErrPartial):
		var parts []string
		if r.StoppedAt != "" {
			parts = append(parts, fmt.Sprintf("the rollout stopped at %s's step (not changed: %s): fix the problem and apply again",
				r.StoppedAt, orDash(strings.Join(r.Unchanged, ", "))))
		}
		if len(failed) > 0 {
			parts = append(parts, fmt.Sprintf("fleet generation %d failed on %s: haactl get issues, and haad's log there, say more",
				r.Generation, strings.Join(failed, ", ")))
		}
		if len(down) > 0 {
			what := "did not reach"
			if r.DryRun {
				what = "could not be planned on"
			}
			parts = append(parts, fmt.Sprintf("fleet generation %d %s %s: a node that was down catches up through gossip "+
				"when it returns (haactl get nodes shows each node's FLEET-GEN)", r.Generation, what, strings.Join(down, ", ")))
		}
		if len(parts) > 0 {
			return failf("%s", strings.Join(parts, "; "))
		}
	}
	return a.explain(err)
}

// The report for -o json|yaml.
type fleetReportJSON struct {
	Generation uint64          `json:"generation"`
	Strategy   string          `json:"strategy"`
	DryRun     bool            `json:"dryRun,omitempty"`
	Nodes      []fleetNodeJSON `json:"nodes"`
	Order      []string        `json:"order,omitempty"`
	StoppedAt  string          `json:"stoppedAt,omitempty"`
	Problems   []string        `json:"problems,omitempty"`
	Unchanged  []string        `json:"unchanged,omitempty"`
	Took       string          `json:"took"`
}

type fleetNodeJSON struct {
	Node       string          `json:"node"`
	Outcome    string          `json:"outcome"`
	Generation uint64          `json:"fleetGeneration,omitempty"`
	Plan       json.RawMessage `json:"plan,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
	Error      string          `json:"error,omitempty"`
	Violations []violationJSON `json:"violations,omitempty"`
	Took       string          `json:"took,omitempty"`
}

type violationJSON struct {
	Field       string `json:"field,omitempty"`
	Description string `json:"description"`
}

func (a *app) printReport(r *ctl.FleetApplyReport) error {
	rj := fleetReportJSON{Generation: r.Generation, Strategy: r.Strategy, DryRun: r.DryRun, Order: r.Order,
		StoppedAt: r.StoppedAt, Problems: r.Problems, Unchanged: r.Unchanged, Took: r.Took.String(), Nodes: []fleetNodeJSON{}}
	for _, n := range r.Nodes {
		nj := fleetNodeJSON{Node: n.Node, Outcome: string(n.Outcome), Generation: n.Generation}
		if n.Took > 0 {
			nj.Took = n.Took.String()
		}
		var err error
		if n.Plan != nil {
			if nj.Plan, err = marshalJSON(n.Plan); err != nil {
				return err
			}
		}
		if n.Result != nil {
			if nj.Result, err = marshalJSON(n.Result); err != nil {
				return err
			}
		}
		if n.Err != nil {
			nj.Error = nodeErrText(n.Err)
			for _, v := range ctl.ErrorDetails(n.Err) {
				nj.Violations = append(nj.Violations, violationJSON{v.Field, v.Description})
			}
		}
		rj.Nodes = append(rj.Nodes, nj)
	}
	b, err := json.MarshalIndent(rj, "", "  ")
	if err != nil {
		return err
	}
	if a.output == outYAML {
		if b, err = yaml.JSONToYAML(b); err != nil {
			return err
		}
		_, err = a.out.Write(b)
		return err
	}
	_, err = fmt.Fprintf(a.out, "%s\n", b)
	return err
}
