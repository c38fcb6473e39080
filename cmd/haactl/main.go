// Command haactl controls haad, the haa VRRP agent, through its API: see
// haactl --help. The commands are built by newRootCmd; main only wires
// them to the process (arguments, standard streams, signals, exit code).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/haa-dev/haa/ctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, newRootCmd(os.Stdout, os.Stderr, ctl.Dial), os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}
