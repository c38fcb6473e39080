package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/haa-dev/haa/ctl"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// logLevels are the levels haad takes, most verbose first.
var logLevels = []string{"debug", "info", "warn", "error"}

func newLogLevelCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "log-level [debug|info|warn|error]",
		Short: "Show or change the agent's log level at runtime",
		Long: `Without an argument, print the agent's log level. With one, change it now,
without a restart: e.g. debug while investigating, then back to info. The
change lasts until haad restarts, which starts again with its --log-level
(default info).

-o json|yaml prints a haa.v1.SetLogLevelResponse (level, and previous when
changed).`,
		Example: `  haactl log-level
  haactl log-level debug
  haactl log-level info`,
		ValidArgs: logLevels,
		Args: usageArgs(cobra.MatchAll(cobra.MaximumNArgs(1), func(_ *cobra.Command, args []string) error {
			if len(args) == 1 && !slices.Contains(logLevels, strings.ToLower(args[0])) {
				return fmt.Errorf("log level %q: want %s", args[0], strings.Join(logLevels, ", "))
			}
			return nil
		})),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *ctl.Client) error {
				if len(args) == 0 {
					level, err := c.LogLevel(ctx)
					if err != nil {
						return err
					}
					if level == "" {
						return failf("haad at %s does not report its log level (is it older than haactl?)", a.target)
					}
					if a.output != outTable {
						return a.printMessage(&haav1.SetLogLevelResponse{Level: level})
					}
					_, err = fmt.Fprintln(a.out, level)
					return err
				}
				r, err := c.SetLogLevel(ctx, strings.ToLower(args[0]))
				if err != nil {
					return err
				}
				if a.output != outTable {
					return a.printMessage(r)
				}
				if r.GetLevel() == r.GetPrevious() {
					_, err = fmt.Fprintf(a.out, "Log level %s (unchanged).\n", r.GetLevel())
					return err
				}
				_, err = fmt.Fprintf(a.out, "Log level %s (was %s), until haad restarts.\n", r.GetLevel(), orDash(r.GetPrevious()))
				return err
			})
		},
	}
}
