package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"

	"github.com/haa-dev/haa/ctl"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// failoverMargin is how much longer than the takeover timeout haactl waits
// for the agent's answer.
const failoverMargin = 5 * time.Second

func newFailoverCmd(a *app) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "failover INSTANCE",
		Short: "Hand an instance over from this node (its master) to a backup",
		Long: `Make this node, master of INSTANCE, hand over: it sends a priority-0
advert so that the best backup takes over at once, and haactl returns when
another node has taken over, printing its address. The instance then stays
backup on this node (see Hold in haactl describe instance).

Run it on the master: on a backup it fails. --timeout here is how long to
wait for another node to take over (the agent's default is 10s); haactl
waits 5s more for the agent's answer. -o json|yaml prints a
haa.v1.FailoverResponse.`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: a.completeInstances,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			wait := timeout
			if wait <= 0 {
				wait = 10 * time.Second
			}
			return a.callTimeout(cmd, wait+failoverMargin, func(ctx context.Context, c *ctl.Client) error {
				nm, err := c.Failover(ctx, name, timeout)
				switch {
				case errors.Is(err, ctl.ErrNotMaster):
					return failf("%s: failover hands over from the master: run it against the node that is master of %s (haactl get instances shows it)", statusMessage(err), name)
				case err != nil && errors.Is(err, context.DeadlineExceeded), err != nil && statusCode(err) == codes.DeadlineExceeded:
					return failf("no other node took over %s within %s: %s: are the backups running? (haactl get instances on them)", name, wait, statusMessage(err))
				case err != nil:
					return err
				}
				r := &haav1.FailoverResponse{NewMaster: nm}
				if a.output != outTable {
					return a.printMessage(r)
				}
				_, err = fmt.Fprintf(a.out, "%s: %s took over; this node holds it as backup.\n", name, orDash(nm))
				return err
			})
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for another node to take over")
	return cmd
}

func statusCode(err error) codes.Code {
	if st, ok := grpcStatus(err); ok {
		return st.Code()
	}
	return codes.Unknown
}

func statusMessage(err error) string {
	if st, ok := grpcStatus(err); ok {
		return st.Message()
	}
	return err.Error()
}

func newMaintenanceCmd(a *app) *cobra.Command {
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "maintenance on|off",
		Short: "Turn maintenance on (stay backup everywhere) or off",
		Long: `maintenance on makes the node give up every mastership and refuse to become
master, until maintenance off or, with --ttl, for that long. It survives a
restart of haad. -o json|yaml prints a haa.v1.Maintenance.`,
		Example: `  haactl maintenance on --ttl 30m
  haactl maintenance off`,
		ValidArgs: []string{"on", "off"},
		Args:      usageArgs(cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs)),
		RunE: func(cmd *cobra.Command, args []string) error {
			on := args[0] == "on"
			if !on && cmd.Flags().Changed("ttl") {
				return &usageError{err: errors.New("--ttl only goes with maintenance on"), cmd: cmd.CommandPath()}
			}
			if ttl < 0 {
				return &usageError{err: fmt.Errorf("--ttl %s: want a positive duration", ttl), cmd: cmd.CommandPath()}
			}
			return a.call(cmd, func(ctx context.Context, c *ctl.Client) error {
				m, err := c.SetMaintenance(ctx, on, ttl)
				if errors.Is(err, ctl.ErrPartial) {
					return failf("maintenance is %s now, but haad could not keep it across a restart: %s", maintenanceText(m), statusMessage(err))
				}
				if err != nil {
					return err
				}
				if a.output != outTable {
					return a.printMessage(m)
				}
				switch {
				case !m.GetEnabled():
					_, err = fmt.Fprintln(a.out, "Maintenance off: the node takes part in elections again.")
				case m.GetUntil() == nil:
					_, err = fmt.Fprintln(a.out, "Maintenance on until turned off (haactl maintenance off): the node stays backup everywhere.")
				default:
					_, err = fmt.Fprintf(a.out, "Maintenance %s: the node stays backup everywhere.\n", maintenanceText(m))
				}
				return err
			})
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "end maintenance by itself after this long (default: until turned off)")
	return cmd
}
