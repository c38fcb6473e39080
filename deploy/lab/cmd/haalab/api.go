package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/haa-dev/haa/ctl"
	"github.com/haa-dev/haa/deploy/lab"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// runBenchAPI measures the API: how long a transition takes from the agent
// stamping it to a watching client receiving it, and the GetNode round trip
// over the unix socket.
func runBenchAPI(s *session, cmdline string, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench-api", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("haad", "bin/haad", "haad binary")
	transitions := fs.Int("transitions", 1000, "transitions to time")
	calls := fs.Int("calls", 10000, "GetNode calls to time")
	out := fs.String("out", "out/bench-api.md", "Markdown report to write")
	perToggle := fs.Int("instances", 1, "VRRP instances that change state together at each toggle")
	if err := fs.Parse(args); err != nil {
		return err
	}
	haad, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	l, err := s.newLab(lab.Options{Prefix: lab.UniqueName("hapi"), Nodes: 1, Clients: -1})
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "haalab-api")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	n := l.Nodes[0]
	// Instances at 10 ms: maintenance on makes them hand over, off makes
	// them master again one master-down interval later.
	var ins []instance
	for i := 1; i <= *perToggle; i++ {
		ins = append(ins, instance{Name: fmt.Sprintf("VI_%d", i), VRID: i, Priority: 200, Version: 3,
			Interval: 10 * time.Millisecond, VIPs: []string{fmt.Sprintf("10.77.1.%d/32", i)}})
	}
	if _, err := n.StartHaad(dir, haad, haadConfig(n.Name, ins), "--log-level", "warn"); err != nil {
		return err
	}
	sock := n.HaadFiles(dir).Socket
	if err := lab.Poll(5*time.Second, 10*time.Millisecond, "haad's API socket", func() (bool, error) {
		_, err := os.Stat(sock)
		return err == nil, nil
	}); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	c, err := ctl.Dial(ctx, "unix://"+sock)
	if err != nil {
		return err
	}
	defer c.Close()
	masters := func() (int, error) {
		st, err := c.Instances(ctx)
		m := 0
		for _, in := range st {
			if in.GetState() == haav1.State_STATE_MASTER {
				m++
			}
		}
		return m, err
	}
	if err := lab.Poll(5*time.Second, 10*time.Millisecond, "every instance master", func() (bool, error) {
		m, err := masters()
		return m == *perToggle, err
	}); err != nil {
		return err
	}

	// The watcher: what `haactl watch` does, through the same library.
	var mu sync.Mutex
	var lat []time.Duration
	got := make(chan struct{}, 1)
	watchErr := make(chan error, 1)
	go func() {
		watchErr <- c.Watch(ctx, nil, func(e *haav1.Event) error {
			if e.GetStateChanged() == nil {
				return nil
			}
			d := time.Since(e.GetTime().AsTime())
			mu.Lock()
			lat = append(lat, d)
			mu.Unlock()
			select {
			case got <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	time.Sleep(200 * time.Millisecond) // the stream is established
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(lat) }
	s.say("timing %d transitions (maintenance on/off of %d instance(s) at 10 ms)", *transitions, *perToggle)
	on := true
	deadline := time.Now().Add(5 * time.Minute)
	for count() < *transitions {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d transitions seen in 5 minutes", count())
		}
		want := count() + *perToggle
		if _, err := c.SetMaintenance(ctx, on, 0); err != nil {
			return err
		}
		on = !on
		if err := lab.Poll(5*time.Second, time.Millisecond, "the transitions' events", func() (bool, error) {
			select {
			case err := <-watchErr:
				return false, fmt.Errorf("watch ended: %w", err)
			default:
			}
			return count() >= want, nil
		}); err != nil {
			return err
		}
	}
	if on { // leave the node out of maintenance
		_, _ = c.SetMaintenance(ctx, false, 0)
	}

	s.say("timing %d GetNode calls over the unix socket", *calls)
	for i := 0; i < 200; i++ { // warm up
		if _, err := c.Node(ctx); err != nil {
			return err
		}
	}
	rtt := make([]time.Duration, 0, *calls)
	for i := 0; i < *calls; i++ {
		t0 := time.Now()
		if _, err := c.Node(ctx); err != nil {
			return err
		}
		rtt = append(rtt, time.Since(t0))
	}
	floor, err := grpcFloor(ctx, dir, *calls)
	if err != nil {
		return fmt.Errorf("measuring the bare gRPC floor: %w", err)
	}
	cancel()

	mu.Lock()
	ev := slices.Clone(lat[:*transitions])
	mu.Unlock()
	m := describeMachine(haad)
	var b strings.Builder
	fmt.Fprintf(&b, "# API benchmark\n\n- date: %s\n- machine: %d CPUs, Linux %s\n- command: `%s`\n\n",
		m.date.Format("2006-01-02 15:04 MST"), m.cpus, m.kernel, cmdline)
	fmt.Fprintf(&b, "Event latency: from the transition as stamped by the agent (the event's time) to its arrival at a client\n"+
		"following WatchEvents through ctl (the library haactl watch uses), over the unix socket; transitions made by\n"+
		"turning maintenance on and off (%d VRRPv3 instance(s) at 10 ms changing state together). GetNode: sequential round trips\n"+
		"after 200 warm-up calls.\n\n", *perToggle)
	b.WriteString("| measurement | samples | p50 | p99 | max | target | met |\n| --- | ---: | ---: | ---: | ---: | ---: | :---: |\n")
	row := func(name string, d []time.Duration, target time.Duration) {
		slices.Sort(d)
		p50, p99 := d[len(d)/2], d[len(d)*99/100]
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | p99 <= %v | %s |\n", name, len(d), us(p50), us(p99), us(d[len(d)-1]), target, yesNo(p99 <= target))
	}
	row("event latency (transition -> watching client)", ev, 5*time.Millisecond)
	row("GetNode round trip (unix socket)", rtt, time.Millisecond)
	row("floor: bare gRPC health Check, another process (unix socket)", floor, time.Millisecond)
	b.WriteString("\nThe floor is an empty gRPC server (grpc-go's health service, nothing else) in a separate process on the same\n" +
		"kind of socket: what any Go gRPC round trip between two processes costs on this machine.\n")
	report := b.String()
	fmt.Fprint(s.out, "\n"+report)
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
		return err
	}
	s.say("report written to %s", *out)
	if err := <-watchErr; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

// grpcFloor measures round trips to a bare gRPC health server in another
// process (haalab itself, re-executed), as the floor GetNode is compared to.
func grpcFloor(ctx context.Context, dir string, calls int) ([]time.Duration, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "floor.sock")
	cmd := exec.CommandContext(ctx, self, "grpc-floor-server", sock)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := lab.Poll(5*time.Second, 10*time.Millisecond, "the floor server", func() (bool, error) {
		_, err := os.Stat(sock)
		return err == nil, nil
	}); err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	for i := 0; i < 200; i++ {
		if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			return nil, err
		}
	}
	out := make([]time.Duration, 0, calls)
	for i := 0; i < calls; i++ {
		t0 := time.Now()
		if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}

// runFloorServer serves an empty gRPC health service on a unix socket until
// killed (hidden subcommand of bench-api).
func runFloorServer(args []string) error {
	if len(args) != 1 {
		return usageErrorf("grpc-floor-server SOCKET")
	}
	l, err := net.Listen("unix", args[0])
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	return srv.Serve(l)
}
