// Command haalab runs haad in a throw-away namespace lab (deploy/lab): a
// narrated demo of failover and preemption, and the failover benchmark
// against keepalived.
//
//	haalab demo --haad bin/haad
//	haalab bench-failover --haad bin/haad --trials 10 --out out/bench-failover.md
//	haalab chaos --haad bin/haad --out out/chaos.md
//	haalab vm -- ./ipvs.test -test.v   (Debian's kernel, with IPVS, under qemu)
//
// Everything happens inside network namespaces the lab creates; nothing on
// the host is touched. The labs are removed at the end, on error, and on
// Ctrl-C or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // a step, a trial or the set-up failed
	exitUsage = 2
)

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

const usage = `haalab: haad in a network namespace lab

usage:
  haalab demo --haad PATH [--keep-going]
  haalab bench-failover --haad PATH [--trials N] [--out FILE] [--soak 5m] [--instances 50] [--quick]
  haalab bench-cpu --haad PATH [--scales 50@10ms,1@10ms,500@100ms] [--rounds 3] [--window 20s] [--out FILE] [--profile --logs DIR]
  haalab bench-api --haad PATH [--transitions 1000] [--calls 10000] [--out FILE]
                   [--services 5000] [--dests 5] [--backend nftables] [--reads 2000] [--haactl PATH] [--haad-log FILE]
  haalab bench-fleet --haad PATH --haactl PATH [--nodes 32] [--applies 10] [--returns 5] [--idle 30s] [--out FILE]
  haalab bench-track --haad PATH [--trials 10] [--out FILE]
  haalab bench-lvs [--services 10000] [--dests 5] [--backend auto|nftables|ipvs] [--rounds 3] [--changes 20] [--haad PATH] [--out FILE]
  haalab bench-lvs-keepalived [--haad PATH] [--sizes 1000,10000] [--dests 5] [--rounds 2] [--out FILE]   (a kernel with IPVS: in haalab vm)
  haalab chaos --haad PATH [--haactl PATH] [--duration 20s] [--attacks all|1,2,...] [--out FILE]
  haalab vm [--share out/vm] [--timeout 20m] [--env NAME=VALUE] -- COMMAND [ARG...]   (or --prepare)

Run "haalab COMMAND -h" for the flags of a command. Needs root.
`

// run runs the command line argv (argv[0] is the program) and returns the
// exit status.
func run(argv []string, stdout, stderr io.Writer) int {
	args := argv[1:]
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, rest := args[0], args[1:]

	// Ctrl-C / SIGTERM: cancel the run and remove every lab at once; the
	// command then returns with an error.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	s := newSession(ctx, stdout)
	finished := make(chan struct{})
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		select {
		case sig := <-sigs:
			cancel(fmt.Errorf("%w by %v", errInterrupted, sig))
			fmt.Fprintf(stderr, "\nhaalab: %v: removing the lab\n", sig)
			s.closeAll()
		case <-finished:
		}
	}()

	var err error
	switch cmd {
	case "demo":
		err = runDemo(s, rest, stderr)
	case "bench-failover":
		err = runBench(s, commandLine(argv), rest, stderr)
	case "bench-cpu":
		err = runBenchCPU(s, commandLine(argv), rest, stderr)
	case "bench-api":
		err = runBenchAPI(s, commandLine(argv), rest, stderr)
	case "bench-fleet":
		err = runBenchFleet(s, commandLine(argv), rest, stderr)
	case "bench-track":
		err = runBenchTrack(s, commandLine(argv), rest, stderr)
	case "bench-lvs":
		err = runBenchLVS(s, commandLine(argv), rest, stderr)
	case "bench-lvs-keepalived":
		err = runBenchLVSKeepalived(s, commandLine(argv), rest, stderr)
	case "chaos":
		err = runChaos(s, commandLine(argv), rest, stderr)
	case "vm":
		err = runVM(s, rest, stdout, stderr)
	case "grpc-floor-server": // bench-api's reference server
		err = runFloorServer(rest)
	default:
		fmt.Fprintf(stderr, "haalab: unknown command %q\n\n%s", cmd, usage)
		close(finished)
		return exitUsage
	}
	close(finished)
	<-watcherDone
	if cerr := s.closeAll(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("removing the lab: %w", cerr))
	}
	var exit errExit
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &exit):
		return int(exit)
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "haalab:", err)
		return exitUsage
	case errors.Is(context.Cause(ctx), errInterrupted):
		fmt.Fprintln(stderr, "haalab:", context.Cause(ctx))
		return exitFail
	default:
		fmt.Fprintln(stderr, "haalab:", strings.TrimSpace(err.Error()))
		return exitFail
	}
}

var (
	// errUsage wraps command-line mistakes (exit status 2).
	errUsage = errors.New("usage")
	// errInterrupted is the cause of a run cancelled by a signal.
	errInterrupted = errors.New("interrupted")
)

func usageErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// commandLine renders argv for a shell, quoting what needs it.
func commandLine(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~!") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts[i] = a
	}
	return strings.Join(parts, " ")
}

// parseFlags parses a command's flags: -h is flag.ErrHelp, a bad flag or
// any argument left over a usage error naming the command.
func parseFlags(fs *flag.FlagSet, name string, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErrorf("%s: %v", name, err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("%s: unexpected arguments %q", name, fs.Args())
	}
	return nil
}

// intList parses a flag's comma-separated numbers, each in lo..hi; when
// one is not, ok is false and bad is that part.
func intList(s string, lo, hi int) (out []int, bad string, ok bool) {
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < lo || n > hi {
			return nil, f, false
		}
		out = append(out, n)
	}
	return out, "", true
}
