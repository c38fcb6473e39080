package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/haa-dev/haa/ctl"
	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// readInput reads a file, "-": standard input. src names it in messages.
func readInput(cmd *cobra.Command, file string) (data []byte, src string, err error) {
	src = file
	if file == "-" {
		src = "<stdin>"
		data, err = io.ReadAll(cmd.InOrStdin())
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, src, failf("cannot read the configuration: %v", err)
	}
	return data, src, nil
}

// readConfig reads and parses a configuration file ("-": standard input)
// with the agent's own parser, so that a mistyped field or a wrong type is
// reported with its path before anything is sent. The agent validates the
// rest (it knows its version's rules).
func readConfig(cmd *cobra.Command, file string) (*haav1.AgentConfig, string, error) {
	data, src, err := readInput(cmd, file)
	if err != nil {
		return nil, src, err
	}
	return parseConfig(data, src, file)
}

func parseConfig(data []byte, src, file string) (*haav1.AgentConfig, string, error) {
	if config.IsFleet(data) {
		return nil, src, failf("%s is a fleet document (kind: Fleet): haactl apply -f %s --dry-run shows each node's plan", src, file)
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return nil, src, invalidConfig(src, fieldViolations(err), "nothing was sent to the agent")
	}
	return cfg, src, nil
}

// fieldViolations lists the problems of a *config.Error.
func fieldViolations(err error) []ctl.FieldViolation {
	var vs []ctl.FieldViolation
	for _, f := range config.Fields(err) {
		vs = append(vs, ctl.FieldViolation{Field: f.Path, Description: f.Msg})
	}
	return vs
}

func newApplyCmd(a *app) *cobra.Command {
	var file, strategy string
	var dryRun bool
	var expected uint64
	var converge time.Duration
	var wait bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Apply a configuration file to the node, or a fleet document to the fleet",
		Long: `Apply a configuration file (the format of haad --config; - reads standard
input) to the node: the agent validates it, compares it with the running
configuration and changes what differs. Nothing changes unless all of it is
valid: every problem is listed, one per line, and haactl exits 1.

The plan lists each instance: added, removed, unchanged, or changed with the
fields that differ and how the change is made: "in place", or "restart (may
cause a transition)" when the instance restarts (handing over first if it is
master).

--dry-run only shows the plan (haactl diff also shows the text differences).
--expected-generation N applies only if generation N still runs (see haactl
get node), so that two operators cannot overwrite each other's change.
-o json|yaml prints a haa.v1.ApplyConfigResponse.

A fleet document (kind: Fleet: nodes, and instances with their priorities
per node) goes to the whole fleet, found through the members --target lists
(comma-separated; any one that answers is enough). Each node runs the
instances that name it, beside those of its own file. haactl checks the
document, refuses a node the fleet does not know, and gives the document
the fleet's next generation. Every member then plans it (a dry run): if
any refuses, nothing changes anywhere and every node's problems are listed.
Then, with --strategy all (the default), every node applies it at once;
with --strategy rolling, one node at a time, those master of the fewest
instances first and the current master last, each time waiting until the
fleet has converged (each instance has one master, the one its priorities
say; every director that runs the document has each of its virtual servers
in its kernel table, the healthy real servers at the document's weights),
for --converge-timeout at most: if it has not, the rollout stops and says
what did not converge and which nodes were left unchanged. --wait waits
for the same after an apply to all (exit 1 if it does not come). haactl prints
each node's plan and result, and exits 1 if any node failed or could not be
reached (it catches up through gossip when it returns). -o json|yaml prints
the report: each node's plan (haa.v1.Plan), result (haa.v1.ApplyFleetResponse)
or error.`,
		Example: `  haactl apply -f /etc/haa/haad.yaml --dry-run
  haactl apply -f /etc/haa/haad.yaml --expected-generation 7
  haactl apply -f fleet.yaml --dry-run
  haactl --target 10.0.0.1:9651,10.0.0.2:9651 --tls-ca ca.pem apply -f fleet.yaml --strategy rolling
  haactl apply -f fleet.yaml --wait`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, src, err := readInput(cmd, file)
			if err != nil {
				return err
			}
			if config.IsFleet(data) {
				if cmd.Flags().Changed("expected-generation") {
					return &usageError{err: errors.New("--expected-generation applies to a node's configuration, not to a fleet document: the fleet's generation is set by haactl"), cmd: cmd.CommandPath()}
				}
				if strategy != ctl.StrategyAll && strategy != ctl.StrategyRolling {
					return &usageError{err: fmt.Errorf("--strategy %q: want all or rolling", strategy), cmd: cmd.CommandPath()}
				}
				doc, err := parseFleet(data, src)
				if err != nil {
					return err
				}
				return a.applyFleet(cmd, doc, src, ctl.FleetApplyOptions{DryRun: dryRun, Strategy: strategy, ConvergeTimeout: converge, Wait: wait})
			}
			for _, f := range []string{"strategy", "converge-timeout", "wait"} {
				if cmd.Flags().Changed(f) {
					return &usageError{err: fmt.Errorf("--%s applies to a fleet document (kind: Fleet) only", f), cmd: cmd.CommandPath()}
				}
			}
			cfg, src, err := parseConfig(data, src, file)
			if err != nil {
				return err
			}
			var opts []ctl.ApplyOption
			if dryRun {
				opts = append(opts, ctl.DryRun())
			}
			if cmd.Flags().Changed("expected-generation") {
				opts = append(opts, ctl.IfGeneration(expected))
			}
			return a.call(cmd, func(ctx context.Context, c *ctl.Client) error {
				r, err := c.Apply(ctx, cfg, opts...)
				partial := errors.Is(err, ctl.ErrPartial)
				if err != nil && !partial {
					return applyError(err, src, file, expected)
				}
				if a.output != outTable {
					if perr := a.printMessage(r); perr != nil {
						return perr
					}
				} else if perr := printPlan(a, r.GetPlan()); perr != nil {
					return perr
				}
				if partial {
					return failf("%s: see haactl get instances, and haad's log", statusMessage(err))
				}
				if a.output != outTable {
					return nil
				}
				switch {
				case dryRun:
					_, err = fmt.Fprintf(a.out, "\nDry run: nothing applied; generation %d runs (hash %s).\n", r.GetGeneration(), shortHash(r.GetHash()))
				case r.GetChanged() || r.GetApplied() && ctl.PlanChanges(r.GetPlan()):
					// (An older haad sets no "changed": its plan says.)
					_, err = fmt.Fprintf(a.out, "\nApplied: generation %d runs (hash %s).\n", r.GetGeneration(), shortHash(r.GetHash()))
				default:
					_, err = fmt.Fprintf(a.out, "\nNothing to change: generation %d runs (hash %s).\n", r.GetGeneration(), shortHash(r.GetHash()))
				}
				return err
			})
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "the configuration file (- for standard input)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only show the plan")
	cmd.Flags().Uint64Var(&expected, "expected-generation", 0, "apply only if this generation still runs")
	cmd.Flags().StringVar(&strategy, "strategy", ctl.StrategyAll, "fleet document: all (every node at once) or rolling (one node at a time, the master last)")
	cmd.Flags().DurationVar(&converge, "converge-timeout", ctl.DefaultConvergeTimeout, "fleet document: how long to wait for VRRP and the directors' tables to converge (after each node when rolling; with --wait)")
	cmd.Flags().BoolVar(&wait, "wait", false, "fleet document, strategy all: wait until VRRP and every director's kernel table have converged")
	_ = cmd.MarkFlagRequired("filename")
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
	_ = cmd.RegisterFlagCompletionFunc("strategy", cobra.FixedCompletions([]string{ctl.StrategyAll, ctl.StrategyRolling}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// applyError explains what ApplyConfig rejected.
func applyError(err error, src, file string, expected uint64) error {
	if vs := ctl.ErrorDetails(err); len(vs) > 0 {
		return invalidConfig(src, vs, "nothing was applied")
	}
	if errors.Is(err, ctl.ErrStaleGeneration) {
		return failf("the configuration changed since generation %d, nothing was applied: "+
			"run haactl get node and haactl diff -f %s to see what runs now, and retry", expected, file)
	}
	return err
}

// printPlan prints a plan as a table: one instance per row.
func printPlan(a *app, p *haav1.Plan) error {
	n := len(p.GetAdded()) + len(p.GetRemoved()) + len(p.GetChanged()) + len(p.GetUnchanged())
	if n == 0 {
		_, err := fmt.Fprintln(a.out, "No instances before or after.")
		return err
	}
	t := newTable()
	t.row("INSTANCE", "CHANGE", "EFFECT", "FIELDS")
	for _, name := range p.GetAdded() {
		t.row(name, "added", "starts", "")
	}
	for _, name := range p.GetRemoved() {
		t.row(name, "removed", "stops (releasing its VIPs if master)", "")
	}
	for _, c := range p.GetChanged() {
		effect := "in place"
		if c.GetRestart() {
			effect = "restart (may cause a transition)"
		}
		t.row(c.GetName(), "changed", effect, strings.Join(c.GetFields(), ", "))
	}
	for _, name := range p.GetUnchanged() {
		t.row(name, "unchanged", "", "")
	}
	if err := t.flush(a.out); err != nil {
		return err
	}
	for _, v := range virtualServerChanges(p) {
		what := v.what
		if what == "changed" {
			what += " in place"
		}
		if _, err := fmt.Fprintf(a.out, "Virtual servers %s: %s\n", what, shortList(v.names, 10)); err != nil {
			return err
		}
	}
	return nil
}

func newDiffCmd(a *app) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "diff -f FILE",
		Short: "Show what applying a configuration file would change",
		Long: `Show what haactl apply -f FILE would do, without doing it: the plan of a dry
run (see haactl apply --help), then the differences between the running
configuration and the file, both rendered the same way (YAML in the API's
field names, durations normalized), as a unified diff. -o json|yaml prints the
dry run's haa.v1.ApplyConfigResponse only.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, src, err := readConfig(cmd, file)
			if err != nil {
				return err
			}
			return a.call(cmd, func(ctx context.Context, c *ctl.Client) error {
				r, err := c.Apply(ctx, cfg, ctl.DryRun())
				if err != nil {
					return applyError(err, src, file, 0)
				}
				if a.output != outTable {
					return a.printMessage(r)
				}
				running, err := c.Config(ctx)
				if err != nil {
					return err
				}
				before, err := toYAML(running.GetConfig())
				if err != nil {
					return err
				}
				after, err := toYAML(cfg)
				if err != nil {
					return err
				}
				if err := printPlan(a, r.GetPlan()); err != nil {
					return err
				}
				fmt.Fprintln(a.out)
				d := unifiedDiff(fmt.Sprintf("running (generation %d)", running.GetGeneration()), src, string(before), string(after))
				if d == "" {
					_, err = fmt.Fprintf(a.out, "No difference between the running configuration (generation %d) and %s.\n", running.GetGeneration(), src)
					return err
				}
				_, err = io.WriteString(a.out, d)
				return err
			})
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "the configuration file (- for standard input)")
	_ = cmd.MarkFlagRequired("filename")
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
	return cmd
}
