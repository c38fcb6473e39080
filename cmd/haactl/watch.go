package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/haa-dev/haa/ctl"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

func newWatchCmd(a *app) *cobra.Command {
	var since uint64
	var all bool
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Follow the node's events",
		Long: `Follow the node's events until interrupted, one line each: time, seq,
instance and what happened. With --since N it first replays the events after
event N that the node still buffers (see haactl get events), then follows.

When the connection breaks (haad restarting, network), haactl says so on
standard error and reconnects, resuming after the last event it printed:
no event is lost or printed twice. Event numbers belong to one run of haad:
when haad has restarted, haactl says so and follows the new run from its
first event. If the node no longer buffers the events to resume from,
haactl exits 1 and says how to resync.

-o json prints one haa.v1.Event per line (for jq -c, or a log shipper),
-o yaml one document per event.

--all follows every member of the fleet that can be reached (found through
the members --target lists), from now on: each line starts with the node's
name (-o json: the event's node field). A node that cannot be reached is
named on standard error, once; a broken stream is resumed as above.`,
		Example: `  haactl watch
  haactl watch --since 1200 -o json
  haactl watch --all`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all {
				if cmd.Flags().Changed("since") {
					return &usageError{err: errors.New("--since goes with one node (event numbers are per node): watch --all follows every node from now on"), cmd: cmd.CommandPath()}
				}
				return a.watchFleet(cmd)
			}
			var sinceP *uint64
			if cmd.Flags().Changed("since") {
				sinceP = &since
			}
			ctx := cmdContext(cmd)
			c, err := a.connect(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			// Fail fast on a wrong target or credentials: past this point
			// errors are retried.
			check, cancel := context.WithTimeout(ctx, a.timeout)
			n, err := c.Node(check)
			cancel()
			if err != nil {
				return a.explain(err)
			}
			if a.output == outTable {
				fmt.Fprintf(a.errOut, "Watching %s (haad %s) at %s; interrupt to stop.\n", n.GetName(), orDash(n.GetVersion()), a.target)
			}
			var lastWhy string
			err = c.Watch(ctx, sinceP, func(e *haav1.Event) error {
				if a.output != outTable {
					return a.printStreamed(e)
				}
				_, err := fmt.Fprintln(a.out, eventLine(e))
				return err
			}, ctl.OnRetry(func(r ctl.Retry) {
				why := "the agent ended it"
				if !errors.Is(r.Err, io.EOF) {
					why = fmt.Sprintf("%s: %s", statusCode(r.Err), statusMessage(r.Err))
				}
				if r.Attempt > 1 && why == lastWhy {
					return // still down for the same reason: say it once
				}
				lastWhy = why
				resume := "new events only (none seen yet)"
				if r.Resume != nil {
					resume = fmt.Sprintf("after event %d", *r.Resume)
				}
				fmt.Fprintf(a.errOut, "haactl: the stream from %s broke (%s); reconnecting, resuming %s\n", a.target, why, resume)
			}), ctl.OnRestart(func(r ctl.Restart) error {
				lastWhy = ""
				lost := ""
				if r.LastSeq != nil {
					lost = fmt.Sprintf(" (events of the previous run after %d may be missing)", *r.LastSeq)
				}
				fmt.Fprintf(a.errOut, "haactl: haad restarted (pid %d, started %s): following the new run from its first event, numbered from 1%s\n",
					r.Current.GetPid(), fmtTime(r.Current.GetStartTime()), lost)
				return nil
			}))
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return nil // interrupted: the normal end
			}
			return a.explain(err)
		},
	}
	cmd.Flags().Uint64Var(&since, "since", 0, "replay the buffered events after this seq first")
	cmd.Flags().BoolVar(&all, "all", false, "every node of the fleet, each line prefixed with the node")
	return cmd
}

// watchFleet follows every reachable member's events.
func (a *app) watchFleet(cmd *cobra.Command) error {
	ctx, f, err := a.openFleet(cmd)
	if err != nil {
		return err
	}
	defer f.Close()
	clients := f.Clients()
	names := slices.Sorted(maps.Keys(clients))
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	if a.output == outTable {
		fmt.Fprintf(a.errOut, "Watching %s from now on; interrupt to stop.\n", strings.Join(names, ", "))
	}
	down := f.Unreachable()
	for _, n := range slices.Sorted(maps.Keys(down)) {
		fmt.Fprintf(a.errOut, "haactl: not watching %s: %s\n", n, nodeErrText(down[n]))
	}
	lastWhy := map[string]string{}
	err = f.Watch(ctx, func(node string, e *haav1.Event) error {
		if a.output != outTable {
			if e.GetNode() == "" {
				e.Node = node
			}
			return a.printStreamed(e)
		}
		_, err := fmt.Fprintf(a.out, "%-*s  %s\n", width, node, eventLine(e))
		return err
	}, ctl.OnRetry(func(r ctl.Retry) {
		node := "?"
		var ne *ctl.NodeError
		if errors.As(r.Err, &ne) {
			node = ne.Node
		}
		why := "the agent ended it"
		if !errors.Is(r.Err, io.EOF) {
			why = fmt.Sprintf("%s: %s", statusCode(r.Err), statusMessage(r.Err))
		}
		if r.Attempt > 1 && why == lastWhy[node] {
			return
		}
		lastWhy[node] = why
		fmt.Fprintf(a.errOut, "haactl: the stream from %s broke (%s); reconnecting\n", node, why)
	}), ctl.OnRestart(func(r ctl.Restart) error {
		lastWhy[r.Current.GetName()] = ""
		fmt.Fprintf(a.errOut, "haactl: haad on %s restarted (pid %d, started %s): following its new run\n",
			r.Current.GetName(), r.Current.GetPid(), fmtTime(r.Current.GetStartTime()))
		return nil
	}))
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil
	}
	var ne *ctl.NodeError
	if errors.As(err, &ne) {
		b := *a
		if c := clients[ne.Node]; c != nil {
			b.target = c.Target().String()
		}
		var ce *cliError
		if errors.As(b.explain(ne.Err), &ce) {
			return failf("%s: %s", ne.Node, ce.msg)
		}
	}
	return a.explain(err)
}
