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
)

// DialFunc connects to an agent: ctl.Dial in production.
type DialFunc func(ctx context.Context, target string, opts ...ctl.Option) (*ctl.Client, error)

// DialFleetFunc connects to a fleet through seeds: ctl.DialFleet in
// production.
type DialFleetFunc func(ctx context.Context, seeds []string, opts ...ctl.Option) (*ctl.Fleet, error)

// app is the state of one command line: the global flags and where to
// write. Every command is a closure over it; nothing is global.
type app struct {
	out, errOut io.Writer
	dial        DialFunc
	dialFleet   DialFleetFunc

	target                                string
	tlsCA, tlsCert, tlsKey, tlsServerName string
	insecure                              bool
	output                                string
	timeout                               time.Duration
}

const (
	outTable = "table"
	outJSON  = "json"
	outYAML  = "yaml"
)

// defaultTarget is $HAA_TARGET, else the socket haad serves by default:
// /run/haa/NAME.sock, NAME defaulting to the host name.
func defaultTarget() string {
	if t := os.Getenv("HAA_TARGET"); t != "" {
		return t
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "localhost"
	}
	return "unix:///run/haa/" + h + ".sock"
}

func newRootCmd(out, errOut io.Writer, dial DialFunc) *cobra.Command {
	a := &app{out: out, errOut: errOut, dial: dial, dialFleet: ctl.DialFleet}
	root := &cobra.Command{
		Use:   "haactl",
		Short: "Control haad, the haa VRRP agent",
		Long: `haactl controls haad, the haa VRRP agent, through its API.

It talks to one agent: the local one on its unix socket by default
(unix:///run/haa/HOSTNAME.sock, or $HAA_TARGET), or a remote one over TLS
with --target HOST:PORT --tls-ca ... (mutual TLS: --tls-cert, --tls-key).

haad also balances load, as keepalived's virtual servers do: get vs lists
the virtual servers, each with its real servers' health, weights and
connections (as ipvsadm -Ln does, with the health checks' results);
describe virtual-server shows one; drain, enable and weight change a real
server at runtime, on that node, until haad restarts.

Agents that gossip form a fleet: any of them answers for all (get nodes,
get instances --all, get fleet, get issues), and haactl reaches every
member through the API address it advertises (watch --all, and apply -f of
a fleet document: kind: Fleet, one document for the whole fleet; rollout
dual-master writes one). For these, --target may list a few members,
comma-separated: the first that answers is used.

-o json and -o yaml print the API's messages (haa.v1, protobuf JSON names) for
scripts; the default, -o table, is for people. haactl exits non-zero when
anything failed (on any node of the fleet), 2 for a wrong command line.`,
		Example: `  haactl get instances
  haactl describe instance VI_1
  haactl diff -f /etc/haa/haad.yaml && haactl apply -f /etc/haa/haad.yaml
  haactl watch
  haactl --target 10.0.0.2:9651 --tls-ca ca.pem get node -o json

  # load balancing
  haactl get vs
  haactl describe virtual-server web
  haactl drain web 10.0.1.11:80      # no new connections; haactl enable web 10.0.1.11:80 undoes it
  haactl weight web 10.0.1.11:80 50

  # a fleet
  haactl get nodes
  haactl get instances --all
  haactl apply -f fleet.yaml --dry-run && haactl apply -f fleet.yaml --strategy rolling
  haactl rollout dual-master --nodes lb1,lb2 --vips 192.168.55.140/24,192.168.55.141/24 --interface eth0
  haactl --target 10.0.0.1:9651,10.0.0.2:9651 --tls-ca ca.pem watch --all
  haactl keygen > /etc/haa/gossip.key

  # from keepalived (offline)
  haactl import /etc/keepalived/keepalived.conf > /etc/haa/haad.yaml
  haactl import lb1.conf lb2.conf --node lb1,lb2 > fleet.yaml`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(*cobra.Command, []string) error {
			switch a.output {
			case outTable, outJSON, outYAML:
			default:
				return &usageError{err: fmt.Errorf("-o %q: want table, json or yaml", a.output)}
			}
			if a.insecure && a.tlsCA+a.tlsCert+a.tlsKey+a.tlsServerName != "" {
				return &usageError{err: errors.New("--insecure (plaintext) contradicts --tls-ca, --tls-cert, --tls-key and --tls-server-name")}
			}
			return nil
		},
	}
	root.SetOut(out)
	root.SetErr(errOut)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{err: err, cmd: c.CommandPath()}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&a.target, "target", defaultTarget(), "the agent: unix:///path/to/socket or host:port (env HAA_TARGET); fleet commands: a comma-separated list of members")
	pf.StringVar(&a.tlsCA, "tls-ca", "", "PEM CA bundle that signed the agent's certificate (TCP; default: system roots)")
	pf.StringVar(&a.tlsCert, "tls-cert", "", "PEM client certificate, for an agent that requires mutual TLS")
	pf.StringVar(&a.tlsKey, "tls-key", "", "PEM key of --tls-cert")
	pf.StringVar(&a.tlsServerName, "tls-server-name", "", "name to check the agent's certificate against (default: the target's host)")
	pf.BoolVar(&a.insecure, "insecure", false, "plaintext TCP, for an agent whose listener is insecure (labs only)")
	pf.StringVarP(&a.output, "output", "o", outTable, "output format: table, json or yaml")
	pf.DurationVar(&a.timeout, "timeout", 10*time.Second, "how long to wait for the agent's answer")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{outTable, outJSON, outYAML}, cobra.ShellCompDirectiveNoFileComp))

	root.AddCommand(
		newGetCmd(a),
		newDescribeCmd(a),
		newApplyCmd(a),
		newDiffCmd(a),
		newWatchCmd(a),
		newFailoverCmd(a),
		newMaintenanceCmd(a),
		newLogLevelCmd(a),
		newDrainCmd(a),
		newEnableCmd(a),
		newWeightCmd(a),
		newRolloutCmd(a),
		newKeygenCmd(a),
		newImportCmd(a),
	)
	return root
}

// group is a command that only holds subcommands.
func group(use, short string, aliases ...string) *cobra.Command {
	return &cobra.Command{
		Use:     use,
		Short:   short,
		Aliases: aliases,
		Args:    cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return &usageError{err: fmt.Errorf("%s what?", cmd.CommandPath()), cmd: cmd.CommandPath()}
			}
			return &usageError{err: fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath()), cmd: cmd.CommandPath()}
		},
	}
}

// usageArgs marks the errors of an argument check as usage errors.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return &usageError{err: err, cmd: cmd.CommandPath()}
		}
		return nil
	}
}

// options are the dial options given by the global flags.
func (a *app) options() []ctl.Option {
	var opts []ctl.Option
	if a.tlsCA != "" {
		opts = append(opts, ctl.WithCA(a.tlsCA))
	}
	if a.tlsCert != "" || a.tlsKey != "" {
		opts = append(opts, ctl.WithClientCert(a.tlsCert, a.tlsKey))
	}
	if a.tlsServerName != "" {
		opts = append(opts, ctl.WithServerName(a.tlsServerName))
	}
	if a.insecure {
		opts = append(opts, ctl.Insecure())
	}
	return opts
}

func (a *app) connect(ctx context.Context) (*ctl.Client, error) {
	c, err := a.dial(ctx, a.target, a.options()...)
	if err != nil {
		return nil, a.explain(err)
	}
	return c, nil
}

// call runs fn with a client and --timeout, and explains its error.
func (a *app) call(cmd *cobra.Command, fn func(ctx context.Context, c *ctl.Client) error) error {
	return a.callTimeout(cmd, a.timeout, fn)
}

func (a *app) callTimeout(cmd *cobra.Command, d time.Duration, fn func(ctx context.Context, c *ctl.Client) error) error {
	ctx, cancel := context.WithTimeout(cmdContext(cmd), d)
	defer cancel()
	c, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return a.explain(fn(ctx, c))
}

// seeds are the members --target lists, for fleet commands.
func (a *app) seeds() []string {
	var out []string
	for _, s := range strings.Split(a.target, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// connectFleet dials the fleet through the seeds of --target.
func (a *app) connectFleet(ctx context.Context) (*ctl.Fleet, error) {
	seeds := a.seeds()
	f, err := a.dialFleet(ctx, seeds, a.options()...)
	switch {
	case err == nil:
		return f, nil
	case len(seeds) > 1 && ctx.Err() == nil:
		return nil, failf("no member of --target answered with the fleet:\n  %s\ncheck --target (a comma-separated list of fleet members)",
			strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	return nil, a.explain(err)
}

// openFleet dials the fleet within --timeout, for commands whose work then
// takes longer (a rolling apply, a watch): it returns the command's context
// and the fleet, which the caller closes.
func (a *app) openFleet(cmd *cobra.Command) (context.Context, *ctl.Fleet, error) {
	ctx := cmdContext(cmd)
	dctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	f, err := a.connectFleet(dctx)
	return ctx, f, err
}

// callFleet runs fn with the fleet and --timeout, and explains its error.
func (a *app) callFleet(cmd *cobra.Command, fn func(ctx context.Context, f *ctl.Fleet) error) error {
	ctx, cancel := context.WithTimeout(cmdContext(cmd), a.timeout)
	defer cancel()
	f, err := a.connectFleet(ctx)
	if err != nil {
		return err
	}
	defer f.Close()
	return a.explain(fn(ctx, f))
}

func cmdContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// execute runs the command line and returns the exit code: 0, 1 when
// something failed, 2 for a wrong command line.
func execute(ctx context.Context, root *cobra.Command, args []string, errOut io.Writer) int {
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ce *cliError
	if errors.As(err, &ce) {
		fmt.Fprintf(errOut, "haactl: %s\n", ce.msg)
		return 1
	}
	// Everything else comes from cobra or the argument checks: the command
	// line is wrong.
	msg := err.Error()
	hint := "haactl --help"
	var ue *usageError
	if errors.As(err, &ue) {
		msg = ue.err.Error()
		if ue.cmd != "" {
			hint = ue.cmd + " --help"
		}
	}
	fmt.Fprintf(errOut, "haactl: %s\nsee '%s'\n", strings.TrimSpace(msg), hint)
	return 2
}

// completeInstances completes an instance name from the agent.
func (a *app) completeInstances(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return a.complete(cmd, prefix, func(ctx context.Context, c *ctl.Client) ([]string, error) {
		ins, err := c.Instances(ctx)
		var names []string
		for _, in := range ins {
			names = append(names, in.GetName())
		}
		return names, err
	})
}

// complete offers the candidates list returns (asked of the agent within
// 2 s) that start with prefix; nothing when the agent does not answer.
func (a *app) complete(cmd *cobra.Command, prefix string, list func(ctx context.Context, c *ctl.Client) ([]string, error)) ([]string, cobra.ShellCompDirective) {
	ctx, cancel := context.WithTimeout(cmdContext(cmd), 2*time.Second)
	defer cancel()
	c, err := a.dial(ctx, a.target, a.options()...)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer c.Close()
	all, err := list(ctx, c)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, s := range all {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
