// Command haad is the haa node agent: it runs the VRRP instances of its
// configuration file on this node.
//
//	haad --config /etc/haa/haad.yaml
//
// SIGHUP reloads the file and applies only what changed; SIGTERM hands every
// mastership over (priority-0 adverts) and exits; SIGUSR1 writes every
// instance's state and counters as JSON to --status-file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/haa-dev/haa/node"
	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1
	exitConfig  = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	// Signals are caught first: a SIGHUP or SIGUSR1 arriving while haad
	// starts must not kill it.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	defer signal.Stop(sigs)

	fs := flag.NewFlagSet("haad", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "/etc/haa/haad.yaml", "agent configuration file (YAML)")
	check := fs.Bool("check", false, "validate the configuration file and exit (0: valid, 2: invalid)")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	format := fs.String("log-format", "text", "log format: text or json")
	shutdownTimeout := fs.Duration("shutdown-timeout", 10*time.Second, "how long SIGTERM waits for the handover")
	stateFile := fs.String("state-file", "", "where the configuration generation and maintenance mode are kept across restarts (default /var/lib/haa/haad-NAME.state.json)")
	statusFile := fs.String("status-file", "", "where SIGUSR1 writes every instance's state and counters as JSON (default /run/haa/haad-NAME.json)")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	log, err := newLogger(stderr, *level, *format)
	if err != nil {
		fmt.Fprintln(stderr, "haad:", err)
		return exitConfig
	}

	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "haad:", err)
		return exitConfig
	}
	if *check {
		fmt.Fprintf(stderr, "haad: %s is valid (%d instances)\n", *cfgPath, len(cfg.GetInstances()))
		return exitOK
	}

	if *statusFile == "" {
		*statusFile = filepath.Join(config.DefaultSocketDir, "haad-"+nodeName(cfg)+".json")
	}

	if *stateFile == "" {
		*stateFile = filepath.Join(defaultStateDir, "haad-"+nodeName(cfg)+".state.json")
	}
	agent, err := node.New(node.WithLogger(log), node.WithVersion(version),
		node.WithStateFile(*stateFile), node.WithConfigFile(*cfgPath))
	if err != nil {
		fmt.Fprintln(stderr, "haad:", err)
		return exitRuntime
	}
	if _, err := agent.Apply(context.Background(), cfg, node.ApplyOptions{}); err != nil {
		fmt.Fprintln(stderr, "haad:", err)
		shutdown(agent, *shutdownTimeout, log)
		if errors.Is(err, config.ErrInvalid) {
			return exitConfig
		}
		return exitRuntime
	}
	log.Info("haad running", "config", *cfgPath, "node", cfg.GetName(), "instances", len(cfg.GetInstances()), "pid", os.Getpid())

	for sig := range sigs {
		switch sig {
		case syscall.SIGHUP:
			reload(agent, *cfgPath, log)
		case syscall.SIGUSR1:
			if err := writeStatus(agent, *statusFile); err != nil {
				log.Error("writing status file", "path", *statusFile, "err", err)
			} else {
				log.Info("status written", "path", *statusFile)
			}
		default:
			log.Info("stopping: handing over mastership", "signal", sig.String())
			return shutdown(agent, *shutdownTimeout, log)
		}
	}
	return exitOK
}

// reload applies the file again; an invalid file is refused with the full
// report and the running configuration stays.
func reload(agent *node.Agent, path string, log *slog.Logger) {
	cfg, err := config.Load(path)
	if err != nil {
		log.Error("reload refused: the running configuration stays", "err", err.Error())
		return
	}
	res, err := agent.Apply(context.Background(), cfg, node.ApplyOptions{})
	if err != nil {
		log.Error("reload failed", "err", err.Error())
		return
	}
	p := res.Plan
	log.Info("reloaded", "generation", res.Generation, "added", p.Added, "removed", p.Removed, "changed", p.Changed, "unchanged", p.Unchanged)
}

func shutdown(agent *node.Agent, timeout time.Duration, log *slog.Logger) int {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := agent.Shutdown(ctx); err != nil {
		log.Error("shutdown incomplete", "err", err)
		return exitRuntime
	}
	return exitOK
}

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

const defaultStateDir = "/var/lib/haa"

func nodeName(cfg *haav1.AgentConfig) string {
	if n := cfg.GetName(); n != "" {
		return n
	}
	h, _ := os.Hostname()
	return h
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}
