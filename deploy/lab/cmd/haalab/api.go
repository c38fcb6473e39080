package main

import (
	"context"
	"errors"
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
// stamping it to a watching client receiving it, the GetNode round trip
// over the unix socket, and (api_apply.go) reads during a large apply.
func runBenchAPI(s *session, cmdline string, args []string, stderr io.Writer) error {
	o, err := parseBenchAPI(args, stderr)
	if err != nil {
		return err
	}
	haad, err := filepath.Abs(o.haad)
	if err != nil {
		return err
	}
	haactl, haactlNote, err := findHaactl(o.haactl, haad)
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
	for i := 1; i <= o.perToggle; i++ {
		ins = append(ins, instance{Name: fmt.Sprintf("VI_%d", i), VRID: i, Priority: 200, Version: 3,
			Interval: 10 * time.Millisecond, VIPs: []string{fmt.Sprintf("10.77.1.%d/32", i)}})
	}
	p, err := n.StartHaad(dir, haad, haadConfig(n.Name, ins), "--log-level", "warn")
	if err != nil {
		return err
	}
	sock := n.HaadFiles(dir).Socket
	if err := lab.WaitAPI(p, sock, 5*time.Second); err != nil {
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
		return m == o.perToggle, err
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
	s.say("timing %d transitions (maintenance on/off of %d instance(s) at 10 ms)", o.transitions, o.perToggle)
	on := true
	deadline := time.Now().Add(5 * time.Minute)
	for count() < o.transitions {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d transitions seen in 5 minutes", count())
		}
		want := count() + o.perToggle
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

	s.say("timing %d GetNode calls over the unix socket", o.calls)
	for i := 0; i < 200; i++ { // warm up
		if _, err := c.Node(ctx); err != nil {
			return err
		}
	}
	rtt := make([]time.Duration, 0, o.calls)
	for i := 0; i < o.calls; i++ {
		t0 := time.Now()
		if _, err := c.Node(ctx); err != nil {
			return err
		}
		rtt = append(rtt, time.Since(t0))
	}
	floor, err := grpcFloor(ctx, dir, o.calls)
	if err != nil {
		return fmt.Errorf("measuring the bare gRPC floor: %w", err)
	}
	cancel()
	if err := <-watchErr; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	// The large apply runs in a lab of its own, alone on the machine.
	if err := s.closeLab(l); err != nil {
		return fmt.Errorf("removing lab %s: %w", l.Prefix, err)
	}
	var apply apiApplyResult
	var applyErr error
	if o.services > 0 {
		apply, applyErr = runAPIApplyCase(s, o, haad, haactl, haactlNote)
	}

	mu.Lock()
	ev := slices.Clone(lat[:o.transitions])
	mu.Unlock()
	m := describeMachine(haad)
	var b strings.Builder
	fmt.Fprintf(&b, "# API benchmark\n\n- date: %s\n- machine: %d CPUs, Linux %s\n- command: `%s`\n\n",
		m.date.Format("2006-01-02 15:04 MST"), m.cpus, m.kernel, cmdline)
	fmt.Fprintf(&b, "Event latency: from the transition as stamped by the agent (the event's time) to its arrival at a client\n"+
		"following WatchEvents through ctl (the library haactl watch uses), over the unix socket; transitions made by\n"+
		"turning maintenance on and off (%d VRRPv3 instance(s) at 10 ms changing state together). GetNode: sequential round trips\n"+
		"after 200 warm-up calls.\n\n", o.perToggle)
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
	switch {
	case o.services == 0:
	case applyErr != nil:
		fmt.Fprintf(&b, "\n## API reads during a large apply\n\nFailed: %s\n", oneLine(applyErr))
	default:
		b.WriteString("\n" + renderAPIApply(apply))
	}
	report := b.String()
	fmt.Fprint(s.out, "\n"+report)
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(o.out, []byte(report), 0o644); err != nil {
		return err
	}
	s.say("report written to %s", o.out)
	return applyErr
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
