package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/haa-dev/haa/ctl"
	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// readConfig reads and parses a configuration file ("-": standard input)
// with the agent's own parser, so that a mistyped field or a wrong type is
// reported with its path before anything is sent. The agent validates the
// rest (it knows its version's rules).
func readConfig(cmd *cobra.Command, file string) (*haav1.AgentConfig, string, error) {
	var data []byte
	var err error
	src := file
	if file == "-" {
		src = "<stdin>"
		data, err = io.ReadAll(cmd.InOrStdin())
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, src, failf("cannot read the configuration: %v", err)
	}
	cfg, err := config.Parse(data)
	if err != nil {
		var vs []ctl.FieldViolation
		for _, f := range config.Fields(err) {
			vs = append(vs, ctl.FieldViolation{Field: f.Path, Description: f.Msg})
		}
		return nil, src, invalidConfig(src, vs, "nothing was sent to the agent")
	}
	return cfg, src, nil
}

func newApplyCmd(a *app) *cobra.Command {
	var file string
	var dryRun bool
	var expected uint64
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Apply a configuration file to the node",
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
-o json|yaml prints a haa.v1.ApplyConfigResponse.`,
		Example: `  haactl apply -f /etc/haa/haad.yaml --dry-run
  haactl apply -f /etc/haa/haad.yaml --expected-generation 7`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, src, err := readConfig(cmd, file)
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
				case r.GetApplied():
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
	_ = cmd.MarkFlagRequired("filename")
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
	return cmd
}

// applyError explains what ApplyConfig rejected.
func applyError(err error, src, file string, expected uint64) error {
	if vs := ctl.ErrorDetails(err); len(vs) > 0 {
		return invalidConfig(src, vs, "nothing was applied")
	}
	if errors.Is(err, ctl.ErrStaleGeneration) {
		msg := err.Error()
		if st, ok := grpcStatus(err); ok {
			msg = st.Message()
		}
		return failf("the configuration changed since generation %d (%s), nothing was applied: "+
			"run haactl get node and haactl diff -f %s to see what runs now, and retry", expected, msg, file)
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
	return t.flush(a.out)
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
