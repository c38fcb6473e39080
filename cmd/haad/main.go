// Command haad is the haa node agent: it runs the VRRP instances of its
// configuration file on this node.
//
//	haad --config /etc/haa/haad.yaml
//	haad --keepalived-config /etc/keepalived/keepalived.conf
//
// --keepalived-config runs an existing keepalived.conf unchanged (package
// node/keepalived converts it at start and at every SIGHUP; what haa does
// not support is logged as a warning each time). With it, a configuration
// applied through the API (haactl apply) is not persisted anywhere: it runs
// until the next SIGHUP or restart, which run the keepalived file again.
//
// Once the file's configuration runs, haad serves its gRPC API
// (haa.v1.AgentService) on the unix socket api.socket (default
// /run/haa/NAME.sock) and, if configured, on api.tcp.
//
// SIGHUP reloads the file and applies only what changed; SIGTERM stops the
// API, hands every mastership over (priority-0 adverts) and exits; SIGUSR1
// writes every instance's state and counters as JSON to --status-file.
//
// Under systemd (Type=notify, deploy/systemd/haad.service) haad sends
// READY=1 once the configuration runs and the API serves, RELOADING=1 and
// READY=1 around a SIGHUP, and STOPPING=1 at SIGTERM. haactl log-level
// changes the log level at runtime.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/haa-dev/haa/node"
	"github.com/haa-dev/haa/node/config"
	kaconf "github.com/haa-dev/haa/node/keepalived"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
	"github.com/haa-dev/haa/server"
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
	kaPath := fs.String("keepalived-config", "", "run this keepalived.conf instead of --config (converted at start and at every SIGHUP)")
	check := fs.Bool("check", false, "validate the configuration file and exit (0: valid, 2: invalid)")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	format := fs.String("log-format", "text", "log format: text or json")
	shutdownTimeout := fs.Duration("shutdown-timeout", 10*time.Second, "how long SIGTERM waits for the handover")
	socket := fs.String("socket", "", "serve the API on this unix socket instead of api.socket")
	stateFile := fs.String("state-file", "", "where the configuration generation and maintenance mode are kept across restarts (default /var/lib/haa/haad-NAME.state.json)")
	fleetFile := fs.String("fleet-file", "", "where the fleet document is kept across restarts (default /var/lib/haa/haad-NAME.fleet.json)")
	statusFile := fs.String("status-file", "", "where SIGUSR1 writes every instance's state and counters as JSON (default /run/haa/haad-NAME.json)")
	lbRepair := fs.Duration("lb-repair-interval", time.Minute, "how often the load balancer reads its table back from the kernel and puts back what someone else changed (ipvsadm -C, -e, -d): each is a dump of the whole table")
	cpuProfile := fs.String("cpu-profile", "", "for developers: write a CPU profile (go tool pprof) of the whole run to this file when haad exits")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "haad:", err)
			return exitConfig
		}
		defer stop()
	}
	if *lbRepair < 100*time.Millisecond {
		fmt.Fprintf(stderr, "haad: --lb-repair-interval %v: use 100ms or more\n", *lbRepair)
		return exitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "haad: unexpected argument %q: give the file with --config or --keepalived-config\n", fs.Arg(0))
		return exitConfig
	}
	src := source{path: *cfgPath}
	if *kaPath != "" {
		configSet := false
		fs.Visit(func(f *flag.Flag) { configSet = configSet || f.Name == "config" })
		if configSet {
			fmt.Fprintln(stderr, "haad: --config and --keepalived-config: give one of them")
			return exitConfig
		}
		src = source{path: *kaPath, keepalived: true}
	}
	logLevel := new(slog.LevelVar) // haactl log-level changes it
	log, err := newLogger(stderr, logLevel, *level, *format)
	if err != nil {
		fmt.Fprintln(stderr, "haad:", err)
		return exitConfig
	}

	if *check {
		return checkConfig(src, stderr)
	}
	sd := newSDNotifier(log) // systemd (Type=notify), if it started haad
	// Reading, converting and applying a large configuration, with the
	// collector held back until the first apply is done.
	relaxed := node.RelaxGC()
	defer relaxed() // on the way out before the first apply; a second call does nothing
	cfg, resolved, err := src.loadResolved(logWarnings(log))
	if err != nil {
		fmt.Fprintln(stderr, "haad:", err)
		return exitConfig
	}

	if *statusFile == "" {
		*statusFile = filepath.Join(config.DefaultSocketDir, "haad-"+nodeName(cfg)+".json")
	}

	if *stateFile == "" {
		*stateFile = filepath.Join(defaultStateDir, "haad-"+nodeName(cfg)+".state.json")
	}
	if *fleetFile == "" {
		*fleetFile = filepath.Join(defaultStateDir, "haad-"+nodeName(cfg)+".fleet.json")
	}
	opts := []node.Option{node.WithLogger(log), node.WithVersion(version),
		node.WithStateFile(*stateFile), node.WithFleetFile(*fleetFile), node.WithBalancerRepair(*lbRepair)}
	if !src.keepalived {
		// haactl apply persists what it applies into the file, so that a
		// restart runs it; a keepalived.conf is never rewritten.
		opts = append(opts, node.WithConfigFile(src.path))
	}
	agent, err := node.New(opts...)
	if err != nil {
		fmt.Fprintln(stderr, "haad:", err)
		return exitRuntime
	}
	// The metrics port is bound before anything runs: a port in use stops
	// haad before it takes any address, not after.
	mx, err := startMetrics(agent, cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "haad:", err)
		shutdown(agent, *shutdownTimeout, log)
		return exitRuntime
	}
	defer mx.stop()
	_, err = agent.Apply(context.Background(), cfg, node.ApplyOptions{Resolved: resolved})
	if doc, _ := agent.Fleet().Stored(); err != nil && doc != nil {
		// The node's own file must run even when the stored fleet
		// document's part cannot (an interface renamed...): the node then
		// reports drift until a document that runs arrives.
		agent.Fleet().Suspend(err)
		_, err = agent.Apply(context.Background(), cfg, node.ApplyOptions{})
	}
	relaxed()
	if err != nil {
		fmt.Fprintln(stderr, "haad:", src.annotate(err))
		shutdown(agent, *shutdownTimeout, log)
		if errors.Is(err, config.ErrInvalid) {
			return exitConfig
		}
		return exitRuntime
	}
	api, served, err := startAPI(agent, node.NewLogLevel(logLevel, log), cfg, *socket, log, mx.listenOptions()...)
	if err != nil {
		fmt.Fprintln(stderr, "haad:", err)
		shutdown(agent, *shutdownTimeout, log)
		return exitRuntime
	}
	if g := cfg.GetGossip(); g != nil {
		if err := agent.StartGossip(g, apiAddress(api.Addrs(), g)); err != nil {
			fmt.Fprintln(stderr, "haad: gossip:", err)
			api.SetServing(false)
			shutdown(agent, *shutdownTimeout, log)
			stopAPI(api, log)
			if errors.Is(err, config.ErrInvalid) {
				return exitConfig
			}
			return exitRuntime
		}
	}
	sd.ready(agent) // the configuration runs and the API serves
	if src.keepalived {
		log.Info("running a keepalived configuration: what haactl apply changes is not persisted; SIGHUP and restarts run the file again (haactl import converts it to haa's YAML)",
			"keepalived-config", src.path)
	}
	log.Info("haad running", src.flag(), src.path, "node", cfg.GetName(), "instances", len(cfg.GetInstances()),
		"api", api.Addrs(), "pid", os.Getpid())

	for {
		select {
		case err := <-served:
			// Serve ends only at Stop, or when a listener fails: VRRP goes
			// on without the API.
			log.Error("the API stopped serving: the instances keep running; restart haad to get the API back", "err", err)
			served = nil
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				sd.reloading()
				sd.ready(agent, reload(agent, src, cfg, log))
			case syscall.SIGUSR1:
				if err := writeStatus(agent, *statusFile); err != nil {
					log.Error("writing status file", "path", *statusFile, "err", err)
				} else {
					log.Info("status written", "path", *statusFile)
				}
			default:
				sd.stopping()
				log.Info("stopping: handing over mastership", "signal", sig.String())
				// Hand over first, then close the API: the event
				// streams send the last transitions before they end.
				api.SetServing(false)
				code := shutdown(agent, *shutdownTimeout, log)
				stopAPI(api, log)
				return code
			}
		}
	}
}

// apiAddress is where the other nodes' users reach this node's API, for the
// gossip metadata: the TCP listener if there is one (an unspecified host
// replaced by the gossip address), else the unix socket.
func apiAddress(addrs []string, g *haav1.Gossip) string {
	for _, a := range addrs {
		hp, ok := strings.CutPrefix(a, "tcp://")
		if !ok {
			continue
		}
		host, port, err := net.SplitHostPort(hp)
		if err != nil {
			return hp
		}
		if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
			adv := g.GetAdvertise()
			if adv == "" {
				adv = g.GetBind()
			}
			if h, _, err := net.SplitHostPort(adv); err == nil {
				host = h
			}
		}
		return net.JoinHostPort(host, port)
	}
	if len(addrs) > 0 {
		return addrs[0]
	}
	return ""
}

// apiStopTimeout bounds how long a stopping haad lets API calls in progress
// finish (event streams end at once).
const apiStopTimeout = 3 * time.Second

// startAPI serves the API of the running configuration: on its unix socket
// and, if configured, its TCP listener. The API's settings are read at start
// only: a change of api takes effect at the next start.
func startAPI(agent *node.Agent, level *node.LogLevel, cfg *haav1.AgentConfig, socket string, log *slog.Logger, opts ...server.ListenOption) (*server.Listeners, <-chan error, error) {
	resolved, err := config.Resolve(cfg) // valid: Apply accepted it
	if err != nil {
		return nil, nil, err
	}
	if socket == "" {
		socket = resolved.Socket
	}
	srv := server.New(server.Deps{Agent: agent, Failover: agent.VRRP(), Balancer: agent.Balancer(), Fleet: agent,
		LogLevel: level, Log: log})
	api, err := server.Listen(srv, cfg.GetApi(), socket, log, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot serve the API: %w", err)
	}
	agent.SetListenAddresses(api.Addrs())
	served := make(chan error, 1)
	go func() { served <- api.Serve() }()
	api.SetServing(true) // the configuration runs: the first Apply succeeded
	return api, served, nil
}

// stopAPI reports NOT_SERVING, ends the event streams and lets calls in
// progress finish, for apiStopTimeout at most.
func stopAPI(api *server.Listeners, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), apiStopTimeout)
	defer cancel()
	if err := api.Stop(ctx); err != nil {
		log.Warn("API stopped", "err", err)
	}
}

// source is where the configuration comes from: a haa YAML file (--config)
// or a keepalived.conf (--keepalived-config).
type source struct {
	path       string
	keepalived bool
}

// flag names the source's flag, for messages.
func (s source) flag() string {
	if s.keepalived {
		return "keepalived-config"
	}
	return "config"
}

// loadResolved reads, converts (keepalived) and validates the configuration. warn
// gets each of a keepalived file's warnings; a keepalived file's errors
// come as one error listing every problem on its own line, as "file:line:
// keyword: message".
//
// It returns the configuration resolved too, for
// node.ApplyOptions.Resolved: reading it validated it already.
func (s source) loadResolved(warn func(kaconf.Problem)) (*haav1.AgentConfig, *config.Agent, error) {
	if !s.keepalived {
		return config.LoadResolved(s.path)
	}
	cfg, resolved, warnings, err := kaconf.LoadResolved(s.path, kaconf.Options{})
	var ke *kaconf.Error
	if errors.As(err, &ke) {
		for _, w := range ke.Warnings {
			warn(w)
		}
		return nil, nil, &keepalivedError{path: s.path, err: ke}
	}
	if err != nil {
		return nil, nil, err // "read keepalived configuration: ..."
	}
	for _, w := range warnings {
		warn(w)
	}
	// The conversion is a valid haa configuration: the converter
	// validated it, and reports what is not at the line it came from
	// (validating it again here was a fifth of a reload's time).
	return cfg, resolved, nil
}

// annotate names a keepalived file as the source of a configuration error
// that names none (the field paths are those of the converted
// configuration: haactl import shows it).
func (s source) annotate(err error) error {
	var ce *config.Error
	if s.keepalived && errors.As(err, &ce) && ce.Source == "" {
		ce.Source = s.path + " (converted from keepalived: haactl import shows the result)"
	}
	return err
}

// keepalivedError is a keepalived file's every problem, one per line
// ("file:line: keyword: message"). It is a configuration error
// (config.ErrInvalid).
type keepalivedError struct {
	path string
	err  *kaconf.Error
}

func (e *keepalivedError) Error() string {
	var b strings.Builder
	problems := "1 problem"
	if n := len(e.err.Problems); n != 1 {
		problems = fmt.Sprintf("%d problems", n)
	}
	fmt.Fprintf(&b, "invalid keepalived configuration %s (%s):", e.path, problems)
	for _, p := range e.err.Problems {
		b.WriteString("\n")
		b.WriteString(p.String())
	}
	return b.String()
}

func (e *keepalivedError) Unwrap() []error { return []error{e.err, config.ErrInvalid} }

// logWarnings logs each warning of a keepalived file.
func logWarnings(log *slog.Logger) func(kaconf.Problem) {
	return func(p kaconf.Problem) {
		log.Warn("keepalived.conf warning", "file", p.Pos.File, "line", p.Pos.Line, "keyword", p.Keyword, "detail", p.Msg)
	}
}

// checkConfig is --check: the file must load and the programs it runs must
// exist here and be safe to run as root.
func checkConfig(src source, stderr io.Writer) int {
	warnings := 0
	cfg, res, err := src.loadResolved(func(p kaconf.Problem) {
		warnings++
		fmt.Fprintf(stderr, "haad: warning: %s\n", p)
	})
	if err != nil {
		fmt.Fprintln(stderr, "haad:", err)
		return exitConfig
	}
	if res != nil {
		if err := node.CheckCommands(res); err != nil {
			var ce *config.Error
			if errors.As(err, &ce) && !src.keepalived {
				ce.Source = src.path
			}
			fmt.Fprintln(stderr, "haad:", src.annotate(err))
			return exitConfig
		}
		for _, m := range missingInterfaces(res, interfaceExists) {
			warnings++
			fmt.Fprintf(stderr, "haad: warning: %s\n", m)
		}
	}
	if !src.keepalived {
		fmt.Fprintf(stderr, "haad: %s is valid (%d instances, %d warnings)\n", src.path, len(cfg.GetInstances()), warnings)
		return exitOK
	}
	fmt.Fprintf(stderr, "haad: %s is valid (%d instances, %d virtual servers, %d warnings)\n",
		src.path, len(cfg.GetInstances()), len(cfg.GetVirtualServers()), warnings)
	return exitOK
}

// reload applies the file again; an invalid file is refused with the full
// report and the running configuration stays. It returns why it did not
// apply, or what failed although it applied (for systemd's STATUS, with
// READY=1 either way).
func reload(agent *node.Agent, src source, started *haav1.AgentConfig, log *slog.Logger) error {
	defer node.RelaxGC()() // the file read, converted and applied at once
	cfg, resolved, err := src.loadResolved(logWarnings(log))
	if err != nil {
		log.Error("reload refused: the running configuration stays", "err", err.Error())
		return fmt.Errorf("reload refused: %w", err)
	}
	if cfg.GetMetrics().GetListen() != started.GetMetrics().GetListen() {
		log.Warn("metrics changed: the metrics listener takes the new setting when haad restarts",
			"running", started.GetMetrics().GetListen(), "configured", cfg.GetMetrics().GetListen())
	}
	res, err := agent.Apply(context.Background(), cfg, node.ApplyOptions{Resolved: resolved})
	p := res.Plan
	switch {
	case err != nil && res.Applied:
		// The new configuration runs; something around it failed (the
		// state file could not be written, an instance did not start).
		err = src.annotate(err)
		log.Warn("reloaded, but part of it failed: the new configuration runs", "generation", res.Generation,
			"added", p.Added, "removed", p.Removed, "changed", p.Changed, "unchanged", p.Unchanged, "err", err.Error())
		return fmt.Errorf("reloaded, but: %w", err)
	case err != nil:
		err = src.annotate(err)
		log.Error("reload failed", "err", err.Error())
		return fmt.Errorf("reload failed: %w", err)
	}
	log.Info("reloaded", "generation", res.Generation, "added", p.Added, "removed", p.Removed, "changed", p.Changed, "unchanged", p.Unchanged)
	return nil
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

func newLogger(w io.Writer, lv *slog.LevelVar, level, format string) (*slog.Logger, error) {
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

// startCPUProfile profiles the process into path until stop.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
