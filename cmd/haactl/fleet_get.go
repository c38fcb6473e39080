package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/ctl"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// fleetView runs fn with the fleet view of the first seed that answers.
func (a *app) fleetView(cmd *cobra.Command, fn func(v *haav1.GetFleetResponse) error) error {
	return a.callFleet(cmd, func(_ context.Context, f *ctl.Fleet) error { return fn(f.View()) })
}

func newGetNodesCmd(a *app) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:     "nodes",
		Aliases: []string{"members"},
		Short:   "List the members of the fleet",
		Long: `List the members of the fleet, as the node --target names (any member
answers for all, from gossip): NAME, STATE in gossip (ALIVE, SUSPECT, DEAD,
LEFT), HEALTH, GEN (its configuration generation), FLEET-GEN (the fleet
generation it stores), DRIFT (whether it runs what the fleet document gives
it: "behind" when it stores an older document, "ahead" when it holds a newer
one a rolling apply has not released yet, "yes" when it runs something else
than it should), AGE (how old the news is) and API (where its API listens).
--all changes nothing: every member is listed. -o json|yaml prints a
haa.v1.GetFleetResponse with the members only.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.fleetView(cmd, func(v *haav1.GetFleetResponse) error { return a.printMembers(v) })
		},
	}
	cmd.Flags().BoolVar(&all, "all", true, "every member (the default)")
	return cmd
}

func (a *app) printMembers(v *haav1.GetFleetResponse) error {
	if a.output != outTable {
		return a.printMessage(&haav1.GetFleetResponse{Node: v.GetNode(), Members: v.GetMembers()})
	}
	t := newTable()
	t.row("NAME", "STATE", "HEALTH", "GEN", "FLEET-GEN", "DRIFT", "AGE", "API")
	for _, m := range v.GetMembers() {
		ageText := "-"
		if m.GetAge() != nil {
			ageText = age(m.GetAge().AsDuration())
		}
		t.row(m.GetName(), ctl.MemberStateName(m.GetState()), health(m.GetHealth()), fmt.Sprint(m.GetConfigGeneration()),
			fmt.Sprint(m.GetFleetGeneration()), drift(m, v.GetDocument()), ageText, orDash(m.GetApiAddress()))
	}
	return t.flush(a.out)
}

func health(h *haav1.NodeHealth) string {
	switch {
	case h == nil:
		return "-"
	case len(h.GetProblems()) > 0:
		return strings.Join(h.GetProblems(), "; ")
	case h.GetMaintenance():
		return "maintenance"
	case h.GetHealthy():
		return "healthy"
	}
	return "unhealthy"
}

func drift(m *haav1.Member, doc *haav1.Fleet) string {
	switch {
	case doc == nil:
		return "-"
	case m.GetFleetGeneration() < doc.GetGeneration():
		return "behind"
	case m.GetFleetGeneration() > doc.GetGeneration():
		return "ahead"
	case m.GetFleetHash() != m.GetExpectedFleetHash():
		return "yes"
	}
	return "no"
}

// printFleetInstances prints every node's instances, as gossip has them.
func (a *app) printFleetInstances(v *haav1.GetFleetResponse) error {
	if a.output != outTable {
		return a.printMessage(&haav1.GetFleetResponse{Node: v.GetNode(), Instances: v.GetInstances()})
	}
	if len(v.GetInstances()) == 0 {
		fmt.Fprintln(a.errOut, "No instances in the fleet: no node runs any (haactl get fleet, haactl apply -f fleet.yaml).")
		return nil
	}
	t := newTable()
	t.row("NODE", "INSTANCE", "IFACE", "FAMILY", "STATE", "PRIO", "VIPS", "GEN", "AGE")
	for _, in := range v.GetInstances() {
		gen := fmt.Sprintf("local %d", in.GetGeneration())
		if in.GetFromFleet() {
			gen = fmt.Sprintf("fleet %d", in.GetFleetGeneration())
		}
		ageText := "-"
		if in.GetAge() != nil {
			ageText = age(in.GetAge().AsDuration())
		}
		t.row(in.GetNode(), in.GetName(), ifaceText(in.GetInterface(), in.GetVmacInterface()), orDash(in.GetFamily()),
			stateName(in.GetState()), fmt.Sprint(in.GetPriority()), joinOrDash(in.GetVips()), gen, ageText)
	}
	return t.flush(a.out)
}

func newGetFleetCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "fleet",
		Short: "Print the fleet document",
		Long: `Print the fleet document the node --target names stores, with its
generation in a comment: a file that haactl apply -f takes back (applied,
it gets the fleet's next generation). -o json|yaml prints a haa.v1.Fleet.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.fleetView(cmd, func(v *haav1.GetFleetResponse) error {
				doc := v.GetDocument()
				if doc == nil {
					fmt.Fprintf(a.errOut, "No fleet document: none was ever applied to %s (haactl apply -f fleet.yaml).\n", v.GetNode())
					return nil
				}
				if a.output != outTable {
					return a.printMessage(doc)
				}
				// The generation is in the comment: apply gives the fleet's
				// next one anyway.
				file := proto.Clone(doc).(*haav1.Fleet)
				file.Generation = 0
				y, err := toYAML(file)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(a.out, "# fleet document: generation %d, as stored on %s\n%s", doc.GetGeneration(), v.GetNode(), y)
				return err
			})
		},
	}
}

func newGetIssuesCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "issues",
		Aliases: []string{"issue"},
		Short:   "List the problems detected in the fleet",
		Long: `List the problems detected in the fleet now: split brains (several
nodes MASTER of one virtual router on one segment), vrid collisions (one
vrid used by different virtual routers on one segment) and drift (a node
that does not run what the fleet document gives it). -o json|yaml prints a
haa.v1.GetFleetResponse with the issues only.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.fleetView(cmd, func(v *haav1.GetFleetResponse) error {
				if a.output != outTable {
					return a.printMessage(&haav1.GetFleetResponse{Node: v.GetNode(), Issues: v.GetIssues()})
				}
				if len(v.GetIssues()) == 0 {
					fmt.Fprintln(a.errOut, "No issues.")
					return nil
				}
				t := newTable()
				t.row("ISSUE", "WHERE", "DETAIL")
				for _, is := range v.GetIssues() {
					t.row(issueRow(is)...)
				}
				return t.flush(a.out)
			})
		},
	}
}

func issueRow(is *haav1.FleetIssue) []string {
	switch k := is.GetKind().(type) {
	case *haav1.FleetIssue_SplitBrain:
		sb := k.SplitBrain
		return []string{"split brain", fmt.Sprintf("%s vrid %d", sb.GetSegment(), sb.GetVrid()), "masters: " + nodeInstanceList(sb.GetMasters())}
	case *haav1.FleetIssue_VridCollision:
		vc := k.VridCollision
		return []string{"vrid collision", fmt.Sprintf("%s vrid %d", vc.GetSegment(), vc.GetVrid()), "used by " + nodeInstanceList(vc.GetInstances())}
	case *haav1.FleetIssue_Drift:
		d := k.Drift
		return []string{"drift", d.GetNode(), driftText(d)}
	case *haav1.FleetIssue_RealServerDisputed:
		d := k.RealServerDisputed
		return []string{"real server disputed", d.GetVirtualServer() + " " + d.GetRealServer(),
			fmt.Sprintf("down on %s, up on %s: a path problem near %s?", joinOrDash(d.GetDownOn()), joinOrDash(d.GetUpOn()), joinOrDash(d.GetDownOn()))}
	}
	return []string{"unknown", "-", "a newer haad? haactl get issues -o json shows it"}
}

func nodeInstanceList(ps []*haav1.NodeInstance) string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s (%s)", p.GetNode(), p.GetInstance()))
	}
	return joinOrDash(out)
}

func driftText(d *haav1.Drift) string {
	s := fmt.Sprintf("fleet generation %d, runs %s, should run %s", d.GetFleetGeneration(), shortHash(d.GetHash()), shortHash(d.GetExpectedHash()))
	if d.GetReason() != "" {
		s += ": " + d.GetReason()
	}
	return s
}
