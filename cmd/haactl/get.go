package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/haa-dev/haa/ctl"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

func newGetCmd(a *app) *cobra.Command {
	cmd := group("get", "Show the node, its instances, virtual servers, configuration or recent events; or the fleet")
	cmd.AddCommand(newGetNodeCmd(a), newGetInstancesCmd(a), newGetVirtualServersCmd(a), newGetConfigCmd(a), newGetEventsCmd(a),
		newGetNodesCmd(a), newGetFleetCmd(a), newGetIssuesCmd(a))
	return cmd
}

func newGetNodeCmd(a *app) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Show the agent: name, version, uptime, configuration generation, maintenance",
		Long: `Show the agent: name, version, uptime, configuration generation and hash,
API listeners, maintenance and, once it runs virtual servers, the load
balancing backend (ipvs or nftables) and why it was chosen. -o json|yaml
prints a haa.v1.Node.
--all lists every member of the fleet instead, as haactl get nodes.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all {
				return a.fleetView(cmd, func(v *haav1.GetFleetResponse) error { return a.printMembers(v) })
			}
			return a.call(cmd, func(ctx context.Context, c *ctl.Client) error {
				n, err := c.Node(ctx)
				if err != nil {
					return err
				}
				if a.output != outTable {
					return a.printMessage(n)
				}
				t := newTable()
				t.row("NAME", n.GetName())
				t.row("VERSION", orDash(n.GetVersion()))
				t.row("PID", fmt.Sprint(n.GetPid()))
				started := fmtTime(n.GetStartTime())
				if n.GetUptime() != nil {
					started += fmt.Sprintf(" (up %s)", n.GetUptime().AsDuration().Truncate(time.Second))
				}
				t.row("STARTED", started)
				t.row("CONFIG", fmt.Sprintf("generation %d, hash %s", n.GetConfigGeneration(), shortHash(n.GetConfigHash())))
				t.row("LISTEN", joinOrDash(n.GetListenAddresses()))
				t.row("MAINTENANCE", maintenanceText(n.GetMaintenance()))
				if b := n.GetLbBackend(); b != "" {
					if r := n.GetLbBackendReason(); r != "" {
						b += " (" + r + ")"
					}
					t.row("LB BACKEND", b)
				}
				if l := n.GetLogLevel(); l != "" {
					t.row("LOG LEVEL", l)
				}
				if m := n.GetMetricsAddress(); m != "" {
					t.row("METRICS", m)
				}
				return t.flush(a.out)
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "every member of the fleet (haactl get nodes)")
	return cmd
}

func newGetInstancesCmd(a *app) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:     "instances",
		Aliases: []string{"instance", "inst"},
		Short:   "List the VRRP instances with their state",
		Long: `List the VRRP instances with their state. PRIO is the effective priority,
followed by the configured one when they differ; VIPS counts the addresses
held out of those configured. -o json|yaml prints a
haa.v1.ListInstancesResponse.

--all lists the instances of every node of the fleet instead, as gossip
reports them to the node --target names: NODE, INSTANCE, STATE, PRIO (the
effective priority), VIPS, GEN ("fleet N": from the fleet document of
generation N; "local N": from the node's own configuration of generation N)
and AGE (how old the news is; "-" for a node gossip says failed: its state
is unknown). -o json|yaml prints a haa.v1.GetFleetResponse with the
instances only.`,
		Example: `  haactl get instances
  haactl get instances --all`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all {
				return a.fleetView(cmd, a.printFleetInstances)
			}
			return a.call(cmd, func(ctx context.Context, c *ctl.Client) error {
				ins, err := c.Instances(ctx)
				if err != nil {
					return err
				}
				if a.output != outTable {
					return a.printMessage(&haav1.ListInstancesResponse{Instances: ins})
				}
				if len(ins) == 0 {
					fmt.Fprintln(a.errOut, "No instances: the configuration has none (haactl get config).")
					return nil
				}
				t := newTable()
				t.row("NAME", "IFACE", "VRID", "VER", "STATE", "PRIO", "MASTER", "VIPS", "LAST TRANSITION", "NOTES")
				for _, in := range ins {
					t.row(in.GetName(), ifaceText(in.GetInterface(), in.GetVmacInterface()), fmt.Sprint(in.GetVrid()), versionText(in.GetVersion(), in.GetFamily()),
						stateName(in.GetState()), priority(in), orDash(in.GetMasterAddress()),
						fmt.Sprintf("%d/%d", len(in.GetVipsHeld()), len(in.GetVips())),
						lastTransition(in.GetLastTransition()), notes(in))
				}
				return t.flush(a.out)
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "the instances of every node of the fleet")
	return cmd
}

// ifaceText is an instance's interface, with its virtual MAC interface
// after a + ("eth0+vrrp.51").
func ifaceText(iface, vmac string) string {
	if vmac == "" {
		return iface
	}
	return iface + "+" + vmac
}

// versionText is the VRRP version, with "/6" for an IPv6 instance.
func versionText(v uint32, family string) string {
	if family == "ipv6" {
		return fmt.Sprintf("%d/6", v)
	}
	return fmt.Sprint(v)
}

func priority(in *haav1.InstanceStatus) string {
	if in.GetEffectivePriority() == in.GetConfiguredPriority() {
		return fmt.Sprint(in.GetEffectivePriority())
	}
	return fmt.Sprintf("%d (%d)", in.GetEffectivePriority(), in.GetConfiguredPriority())
}

func lastTransition(tr *haav1.Transition) string {
	if tr == nil {
		return "-"
	}
	s := "?"
	if tr.GetTime() != nil {
		s = age(time.Since(tr.GetTime().AsTime())) + " ago"
	}
	if tr.GetCause() != "" {
		s += ", " + tr.GetCause()
	}
	return s
}

func notes(in *haav1.InstanceStatus) string {
	var n []string
	if in.GetHold() != "" {
		n = append(n, "held: "+in.GetHold())
	}
	if in.GetVipError() != "" {
		n = append(n, "VIP error (haactl describe instance "+in.GetName()+")")
	}
	return strings.Join(n, "; ")
}

func newGetConfigCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Print the running configuration",
		Long: `Print the running configuration. -o table (the default) prints it as a
configuration file, with its generation and hash in a comment: a file that
haactl apply -f takes back. -o json|yaml prints a haa.v1.GetConfigResponse.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c *ctl.Client) error {
				r, err := c.Config(ctx)
				if err != nil {
					return err
				}
				if a.output != outTable {
					return a.printMessage(r)
				}
				y, err := toYAML(r.GetConfig())
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(a.out, "# running configuration: generation %d, hash %s\n%s", r.GetGeneration(), r.GetHash(), y)
				return err
			})
		},
	}
}

func newGetEventsCmd(a *app) *cobra.Command {
	var since uint64
	var last int
	cmd := &cobra.Command{
		Use:     "events",
		Aliases: []string{"event"},
		Short:   "List the recent events the node still buffers",
		Long: `List the events the node still buffers (its last few thousand), oldest
first, and return: with --since N only those after event N, with --last K
only the newest K. Use haactl watch to follow new events.

The API has no "newest event" marker: the node sends what it buffers at once,
and haactl returns when nothing more has come for a moment (so an event that
happens meanwhile may be listed too). Each event's seq is its position: give
the last one to haactl watch --since to continue from there.

-o json prints one haa.v1.Event per line, -o yaml one document per event.`,
		Example: `  haactl get events --last 20
  haactl get events --since 1200 -o json | jq -c 'select(.stateChanged)'`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var sinceP *uint64
			if cmd.Flags().Changed("since") {
				sinceP = &since
			}
			if last < 0 {
				return &usageError{err: fmt.Errorf("--last %d: want a count >= 0", last), cmd: cmd.CommandPath()}
			}
			return a.call(cmd, func(ctx context.Context, c *ctl.Client) error {
				evs, err := c.Events(ctx, sinceP, 0)
				if err != nil {
					return err
				}
				if last > 0 && len(evs) > last {
					evs = evs[len(evs)-last:]
				}
				return a.printEvents(evs)
			})
		},
	}
	cmd.Flags().Uint64Var(&since, "since", 0, "only the events after this seq (default: every buffered event)")
	cmd.Flags().IntVar(&last, "last", 0, "only the newest K events (0: all)")
	return cmd
}

func (a *app) printEvents(evs []*haav1.Event) error {
	if a.output != outTable {
		for _, e := range evs {
			if err := a.printStreamed(e); err != nil {
				return err
			}
		}
		return nil
	}
	if len(evs) == 0 {
		fmt.Fprintln(a.errOut, "No events.")
		return nil
	}
	for _, e := range evs {
		if _, err := fmt.Fprintln(a.out, eventLine(e)); err != nil {
			return err
		}
	}
	return nil
}
