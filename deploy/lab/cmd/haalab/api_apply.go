package main

// bench-api, API reads during a large apply: GetNode, ListInstances and a
// /metrics scrape at rest, then again while one ApplyConfig programs
// services x dests virtual and real servers; the apply's wall time in
// process, and the same apply through haactl apply -f.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/haa-dev/haa/ctl"
	"github.com/haa-dev/haa/deploy/lab"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// The targets for reads during a large apply.
const (
	applyReadP99    = 5 * time.Millisecond
	applyReadMax    = 50 * time.Millisecond
	applyScrapeMax  = 50 * time.Millisecond
	applyMetricsURL = "http://" + applyMetricsListen + "/metrics"
	// applyMetricsListen is haad's metrics listener, on the loopback of
	// the node's namespace.
	applyMetricsListen = "127.0.0.1:9650"
	// applyReadPace spaces the pairs of reads (GetNode, ListInstances)
	// during the apply: thousands of samples, without a closed loop
	// taking a core from the apply it measures.
	applyReadPace = 2 * time.Millisecond
	// applyScrapePace spaces the /metrics scrapes during the apply.
	applyScrapePace = 100 * time.Millisecond
	// applyRestScrapes is how many /metrics scrapes are timed at rest.
	applyRestScrapes = 50
	// applyLoadedFor is how long the reads are timed again once the
	// table is loaded.
	applyLoadedFor = 5 * time.Second
	// applyCallTimeout bounds every read: a read that waits this long
	// fails (and counts as failed).
	applyCallTimeout = 30 * time.Second
)

// apiOptions are bench-api's flags.
type apiOptions struct {
	haad                          string
	transitions, calls, perToggle int
	out                           string
	// The large apply: services x dests, programmed by backend; reads
	// GetNode and ListInstances calls each at rest. services 0: skip it.
	services, dests int
	backend         string
	reads           int
	// haactl also applies the table through haactl apply -f: a path, or
	// empty for the haactl next to haad (skipped when there is none).
	haactl string
	// haadLog: where to copy the log of the haad of the large apply
	// (empty: nowhere).
	haadLog string
}

func parseBenchAPI(args []string, stderr io.Writer) (apiOptions, error) {
	fs := flag.NewFlagSet("haalab bench-api", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o apiOptions
	fs.StringVar(&o.haad, "haad", "bin/haad", "haad binary")
	fs.IntVar(&o.transitions, "transitions", 1000, "transitions to time")
	fs.IntVar(&o.calls, "calls", 10000, "GetNode calls to time")
	fs.StringVar(&o.out, "out", "out/bench-api.md", "Markdown report to write")
	fs.IntVar(&o.perToggle, "instances", 1, "VRRP instances that change state together at each toggle")
	fs.IntVar(&o.services, "services", 5000, "API reads during a large apply: virtual servers applied (0: skip this case)")
	fs.IntVar(&o.dests, "dests", 5, "real servers per virtual server of the large apply")
	fs.StringVar(&o.backend, "backend", "nftables", "backend of the large apply: auto, nftables or ipvs")
	fs.IntVar(&o.reads, "reads", 2000, "GetNode and ListInstances calls each, timed at rest before the large apply")
	fs.StringVar(&o.haactl, "haactl", "", "haactl binary, to time the large apply through haactl apply -f too (default: haactl next to --haad; skipped if absent)")
	fs.StringVar(&o.haadLog, "haad-log", "", "copy the log of the large apply's haad (run at --log-level info) to this file")
	if err := parseFlags(fs, "bench-api", args); err != nil {
		return o, err
	}
	switch {
	case o.transitions < 1 || o.transitions > 1000000:
		return o, usageErrorf("bench-api: --transitions %d: use 1..1000000", o.transitions)
	case o.calls < 1 || o.calls > 10000000:
		return o, usageErrorf("bench-api: --calls %d: use 1..10000000", o.calls)
	case o.perToggle < 1 || o.perToggle > 255:
		return o, usageErrorf("bench-api: --instances %d: use 1..255", o.perToggle)
	case o.services < 0 || o.services > 100000:
		return o, usageErrorf("bench-api: --services %d: use 0..100000 (0 skips the large apply)", o.services)
	case o.dests < 1 || o.dests > 64:
		return o, usageErrorf("bench-api: --dests %d: use 1..64", o.dests)
	case o.services*o.dests > 1000000:
		return o, usageErrorf("bench-api: --services x --dests = %d: at most 1000000 real servers", o.services*o.dests)
	case o.reads < 1 || o.reads > 1000000:
		return o, usageErrorf("bench-api: --reads %d: use 1..1000000", o.reads)
	}
	switch o.backend {
	case "auto", "nftables", "ipvs":
	default:
		return o, usageErrorf("bench-api: --backend %q: use auto, nftables or ipvs", o.backend)
	}
	return o, nil
}

// findHaactl resolves --haactl: flag, or the haactl next to haad when flag
// is empty. No haactl there: empty path and a note saying why.
func findHaactl(flag, haad string) (path, note string, err error) {
	if flag == "" {
		p := filepath.Join(filepath.Dir(haad), "haactl")
		if fi, err := os.Stat(p); err != nil || fi.IsDir() {
			return "", "no haactl next to " + haad + " (--haactl)", nil
		}
		return p, "", nil
	}
	p, err := filepath.Abs(flag)
	if err != nil {
		return "", "", usageErrorf("bench-api: --haactl %s: %v", flag, err)
	}
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		return "", "", usageErrorf("bench-api: --haactl %s: not a file (make build)", flag)
	}
	return p, "", nil
}

// latencies are one measurement's samples; failed calls count apart.
type latencies struct {
	d      []time.Duration
	failed int
	err    error // the first failure
	// worst is the longest sample and when it started, from the start of
	// the phase.
	worst, worstAt time.Duration
}

func (l *latencies) add(at, d time.Duration, err error) {
	if err != nil {
		l.failed++
		if l.err == nil {
			l.err = err
		}
	}
	if d > l.worst {
		l.worst, l.worstAt = d, at
	}
	l.d = append(l.d, d)
}

// percentiles are p50, p99 and the maximum; ok false without samples.
func (l latencies) percentiles() (p50, p99, mx time.Duration, ok bool) {
	if len(l.d) == 0 {
		return 0, 0, 0, false
	}
	d := slices.Clone(l.d)
	slices.Sort(d)
	return d[len(d)/2], d[len(d)*99/100], d[len(d)-1], true
}

// apiApplyResult is the case "API reads during a large apply".
type apiApplyResult struct {
	services, dests int
	backend         string // as GetNode reports it
	reqBytes        int
	// At rest (no virtual server), then while the apply is in flight.
	restNode, restList, restScrape latencies
	node, list, scrape             latencies
	// apply: the in-process ApplyConfig, reads going; del: the apply of
	// the configuration without virtual servers that removes them;
	// haactl: haactl apply -f of the same table, no reads (0: not run,
	// haactlNote says why).
	apply, del, haactl time.Duration
	haactlNote         string
	yamlBytes          int // haactl's file
	// The same reads for applyLoadedFor after the apply, the table
	// loaded; loadedBytes is the size of a scrape then.
	loadedNode, loadedList, loadedScrape latencies
	loadedBytes                          int
}

// runAPIApplyCase starts haad (one VRRP instance, the backend, metrics on
// the namespace's loopback) in a new one-node lab, times the reads at rest
// and during an ApplyConfig of the large table, removes the table, applies
// it again through haactl, and removes the lab.
func runAPIApplyCase(s *session, o apiOptions, haad, haactl, haactlNote string) (res apiApplyResult, err error) {
	res.services, res.dests, res.haactlNote = o.services, o.dests, haactlNote
	l, err := s.newLab(lab.Options{Prefix: lab.UniqueName("hapa"), Nodes: 1, Clients: -1})
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := s.closeLab(l); cerr != nil {
			err = errors.Join(err, fmt.Errorf("removing lab %s: %w", l.Prefix, cerr))
		}
	}()
	dir, err := os.MkdirTemp("", "haalab-api-apply")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	n := l.Nodes[0]
	files := n.HaadFiles(dir)
	conf := haadConfig(n.Name, []instance{{Name: "VI_1", VRID: 1, Priority: 200, Version: 3,
		Interval: 10 * time.Millisecond, VIPs: []string{"10.77.1.1/32"}}})
	if o.backend != "auto" {
		conf += fmt.Sprintf("loadBalancer: {backend: %s}\n", o.backend)
	}
	conf += fmt.Sprintf("metrics: {listen: %q}\n", applyMetricsListen)
	p, err := n.StartHaad(dir, haad, conf, "--log-level", "info")
	if err != nil {
		return res, err
	}
	defer func() {
		// Stopped before the lab goes, so that its log is complete.
		_ = p.Stop(30 * time.Second)
		if o.haadLog != "" {
			if b, rerr := os.ReadFile(files.Log); rerr != nil {
				err = errors.Join(err, rerr)
			} else if werr := os.WriteFile(o.haadLog, b, 0o644); werr != nil {
				err = errors.Join(err, werr)
			} else {
				s.say("haad's log copied to %s", o.haadLog)
			}
		}
		if err != nil {
			err = fmt.Errorf("%w (haad's log: %s)", err, lvsLogTail(files.Log))
		}
	}()
	if err := lab.WaitAPI(p, files.Socket, 10*time.Second); err != nil {
		return res, err
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Minute)
	defer cancel()
	// Two connections, as two clients: the reader's and the applier's.
	reader, err := ctl.Dial(ctx, "unix://"+files.Socket)
	if err != nil {
		return res, err
	}
	defer reader.Close()
	applier, err := ctl.Dial(ctx, "unix://"+files.Socket,
		ctl.WithGRPCOptions(grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30), grpc.MaxCallSendMsgSize(1<<30))))
	if err != nil {
		return res, err
	}
	defer applier.Close()
	if err := lab.Poll(10*time.Second, 10*time.Millisecond, "VI_1 master", func() (bool, error) {
		st, err := reader.Instances(ctx)
		return err == nil && len(st) == 1 && st[0].GetState() == haav1.State_STATE_MASTER, nil
	}); err != nil {
		return res, err
	}
	nd, err := reader.Node(ctx)
	if err != nil {
		return res, err
	}
	res.backend = nd.GetLbBackend()
	hc := n.HTTPClient(applyCallTimeout)
	// lastBytes is the size of the last scrape (one scraper at a time).
	var lastBytes int
	scrape := func() error {
		cctx, ccancel := context.WithTimeout(ctx, applyCallTimeout)
		defer ccancel()
		body, err := lab.GetBody(cctx, hc, applyMetricsURL)
		lastBytes = len(body)
		return err
	}
	if err := lab.Poll(10*time.Second, 20*time.Millisecond, "haad's /metrics", func() (bool, error) {
		return scrape() == nil, nil
	}); err != nil {
		return res, err
	}

	// At rest: sequential calls after a warm-up.
	s.say("large apply: %d GetNode and %d ListInstances calls and %d /metrics scrapes at rest (backend %s)",
		o.reads, o.reads, applyRestScrapes, res.backend)
	node := func() error {
		cctx, ccancel := context.WithTimeout(ctx, applyCallTimeout)
		defer ccancel()
		_, err := reader.Node(cctx)
		return err
	}
	list := func() error {
		cctx, ccancel := context.WithTimeout(ctx, applyCallTimeout)
		defer ccancel()
		_, err := reader.Instances(cctx)
		return err
	}
	for range 200 {
		if err := errors.Join(node(), list()); err != nil {
			return res, fmt.Errorf("warming up: %w", err)
		}
	}
	timed := func(l *latencies, t0 time.Time, f func() error) {
		t := time.Now()
		err := f()
		l.add(t.Sub(t0), time.Since(t), err)
	}
	t0 := time.Now()
	for range o.reads {
		timed(&res.restNode, t0, node)
	}
	for range o.reads {
		timed(&res.restList, t0, list)
	}
	for range applyRestScrapes {
		timed(&res.restScrape, t0, scrape)
	}
	for _, l := range []latencies{res.restNode, res.restList, res.restScrape} {
		if l.err != nil {
			return res, fmt.Errorf("at rest: %w", l.err)
		}
	}

	// readAll times the three reads, each paced in a goroutine of its
	// own, until stop is closed.
	readAll := func(stop <-chan struct{}, t0 time.Time) (n, l, m latencies) {
		var wg sync.WaitGroup
		wg.Go(func() { n = pace(stop, t0, applyReadPace, node) })
		wg.Go(func() { l = pace(stop, t0, applyReadPace, list) })
		wg.Go(func() { m = pace(stop, t0, applyScrapePace, scrape) })
		wg.Wait()
		return n, l, m
	}

	// The table: the running configuration (the instance, the backend,
	// metrics) with the virtual servers.
	gc, err := reader.Config(ctx)
	if err != nil {
		return res, err
	}
	base := gc.GetConfig()
	want := proto.Clone(base).(*haav1.AgentConfig)
	want.VirtualServers = lvsAgentConfig(o.services, o.dests, o.backend).GetVirtualServers()
	res.reqBytes = proto.Size(&haav1.ApplyConfigRequest{Config: want})

	// During: the apply in flight, the reads paced beside it until it
	// returns. A read started before it returns counts whole.
	s.say("large apply: ApplyConfig of %d virtual servers x %d real servers (%.1f MiB), reads every %v and a scrape every %v until it returns",
		o.services, o.dests, float64(res.reqBytes)/(1<<20), applyReadPace, applyScrapePace)
	done := make(chan struct{})
	var ar *haav1.ApplyConfigResponse
	var aerr error
	t0 = time.Now()
	go func() {
		defer close(done)
		ar, aerr = applier.Apply(ctx, want)
		res.apply = time.Since(t0)
	}()
	res.node, res.list, res.scrape = readAll(done, t0)
	<-done
	if aerr != nil {
		return res, fmt.Errorf("ApplyConfig of %d virtual servers: %w", o.services, aerr)
	}
	if !ar.GetApplied() {
		return res, fmt.Errorf("ApplyConfig of %d virtual servers: not applied: %v", o.services, ar)
	}
	s.say("large apply: ApplyConfig took %v; during it %d GetNode (max %v, at +%v), %d ListInstances (max %v, at +%v), %d scrapes (max %v, at +%v)",
		res.apply.Round(time.Millisecond), len(res.node.d), res.node.worst.Round(time.Microsecond), res.node.worstAt.Round(time.Millisecond),
		len(res.list.d), res.list.worst.Round(time.Microsecond), res.list.worstAt.Round(time.Millisecond),
		len(res.scrape.d), res.scrape.worst.Round(time.Microsecond), res.scrape.worstAt.Round(time.Millisecond))
	if err := checkKernelTable(n.NS.Name, res.backend, o.services); err != nil {
		return res, err
	}

	// The table loaded: the same reads for a while, the apply over.
	stop := make(chan struct{})
	timer := time.AfterFunc(applyLoadedFor, func() { close(stop) })
	defer timer.Stop()
	res.loadedNode, res.loadedList, res.loadedScrape = readAll(stop, time.Now())
	res.loadedBytes = lastBytes
	s.say("large apply: table loaded, for %v: %d GetNode (max %v), %d ListInstances (max %v), %d scrapes of %.1f KiB (max %v)",
		applyLoadedFor, len(res.loadedNode.d), res.loadedNode.worst.Round(time.Microsecond), len(res.loadedList.d),
		res.loadedList.worst.Round(time.Microsecond), len(res.loadedScrape.d), float64(res.loadedBytes)/(1<<10),
		res.loadedScrape.worst.Round(time.Microsecond))
	for _, l := range []latencies{res.loadedNode, res.loadedList, res.loadedScrape} {
		if l.err != nil {
			return res, fmt.Errorf("the table loaded: %w", l.err)
		}
	}

	// Remove the table (the configuration without virtual servers), then
	// the same apply through haactl, with nothing else going on.
	t := time.Now()
	if _, err := applier.Apply(ctx, base); err != nil {
		return res, fmt.Errorf("removing the %d virtual servers: %w", o.services, err)
	}
	res.del = time.Since(t)
	if err := checkKernelTable(n.NS.Name, res.backend, 0); err != nil {
		return res, err
	}
	s.say("large apply: removing the table (ApplyConfig without the virtual servers) took %v", res.del.Round(time.Millisecond))
	if haactl == "" {
		return res, nil
	}
	// The file an operator would write: YAML.
	js, err := protojson.Marshal(want)
	if err != nil {
		return res, err
	}
	y, err := yaml.JSONToYAML(js)
	if err != nil {
		return res, err
	}
	file := filepath.Join(dir, "apply.yaml")
	if err := os.WriteFile(file, y, 0o644); err != nil {
		return res, err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, haactl, "--target", "unix://"+files.Socket, "--timeout", "5m", "apply", "-f", file)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t = time.Now()
	err = cmd.Run()
	res.haactl = time.Since(t)
	if err != nil {
		return res, fmt.Errorf("haactl apply -f (%.1f MiB of YAML): %v: %s", float64(len(y))/(1<<20), err, strings.TrimSpace(stderr.String()))
	}
	if !strings.Contains(stdout.String(), "Applied: generation") {
		return res, fmt.Errorf("haactl apply -f: it did not say applied: %s", strings.TrimSpace(stdout.String()))
	}
	if err := checkKernelTable(n.NS.Name, res.backend, o.services); err != nil {
		return res, err
	}
	res.yamlBytes = len(y)
	s.say("large apply: haactl apply -f of the same table (%.1f MiB of YAML) took %v", float64(len(y))/(1<<20), res.haactl.Round(time.Millisecond))
	return res, nil
}

// pace calls f every interval (at once after a longer call) from now
// until stop is closed, and returns the calls' latencies, each with its
// start since t0. A call in flight when stop closes counts whole; none
// starts after.
func pace(stop <-chan struct{}, t0 time.Time, every time.Duration, f func() error) latencies {
	var l latencies
	for {
		select {
		case <-stop:
			return l
		default:
		}
		start := time.Now()
		err := f()
		l.add(start.Sub(t0), time.Since(start), err)
		t := time.NewTimer(time.Until(start.Add(every)))
		select {
		case <-stop:
			t.Stop()
			return l
		case <-t.C:
		}
	}
}

// checkKernelTable checks that the namespace's kernel holds want virtual
// servers (read over netlink, not through haad).
func checkKernelTable(nsName, backend string, want int) error {
	k, _, err := lvsKernelServices(nsName, backend)
	if err != nil {
		return fmt.Errorf("reading the kernel's table: %w", err)
	}
	if k != want {
		return fmt.Errorf("the kernel's %s table holds %d virtual servers, want %d", backend, k, want)
	}
	return nil
}

// renderAPIApply is the report's section on reads during a large apply.
func renderAPIApply(r apiApplyResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## API reads during a large apply\n\n")
	fmt.Fprintf(&b, "A fresh one-node lab runs haad with one VRRPv3 instance at 10 ms, the %s backend and metrics on the\n", r.backend)
	fmt.Fprintf(&b, "namespace's loopback (%s). At rest (no virtual server): sequential GetNode calls, then sequential\n", applyMetricsListen)
	b.WriteString("ListInstances calls, through ctl over the unix socket after 200 warm-up pairs, then sequential /metrics scrapes\n")
	b.WriteString("from inside the namespace (a new TCP connection each). During the apply: another connection sends one ApplyConfig\n")
	fmt.Fprintf(&b, "of the running configuration plus %d virtual servers x %d real servers (%.1f MiB, bench-lvs's table); while it is\n",
		r.services, r.dests, float64(r.reqBytes)/(1<<20))
	fmt.Fprintf(&b, "in flight, three goroutines call GetNode every %v, ListInstances every %v and scrape /metrics every %v\n",
		applyReadPace, applyReadPace, applyScrapePace)
	b.WriteString("(each at once after a longer call); none starts a call once the apply has returned (a call in flight then counts\n")
	fmt.Fprintf(&b, "whole). Then, the table loaded, the same three for %v. A call fails after %v.\n\n", applyLoadedFor, applyCallTimeout)
	b.WriteString("| measurement | samples | p50 | p99 | max | target | met |\n| --- | ---: | ---: | ---: | ---: | ---: | :---: |\n")
	row := func(name string, l latencies, p99Target, maxTarget time.Duration) {
		n := fmt.Sprint(len(l.d))
		if l.failed > 0 {
			n += fmt.Sprintf(" (%d failed)", l.failed)
		}
		p50, p99, mx, ok := l.percentiles()
		if !ok {
			fmt.Fprintf(&b, "| %s | 0 | n/a | n/a | n/a | | no |\n", name)
			return
		}
		var tgt []string
		met := l.failed == 0
		if p99Target > 0 {
			tgt = append(tgt, fmt.Sprintf("p99 <= %v", p99Target))
			met = met && p99 <= p99Target
		}
		if maxTarget > 0 {
			tgt = append(tgt, fmt.Sprintf("max <= %v", maxTarget))
			met = met && mx <= maxTarget
		}
		t, m := strings.Join(tgt, ", "), yesNo(met)
		if len(tgt) == 0 {
			t, m = "-", "-"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", name, n, lvsDur(p50), lvsDur(p99), lvsDur(mx), t, m)
	}
	row("GetNode at rest", r.restNode, 0, 0)
	row("ListInstances at rest", r.restList, 0, 0)
	row("/metrics scrape at rest", r.restScrape, 0, 0)
	row("GetNode during apply", r.node, applyReadP99, applyReadMax)
	row("ListInstances during apply", r.list, applyReadP99, applyReadMax)
	row("/metrics scrape during apply", r.scrape, 0, applyScrapeMax)
	row("GetNode, table loaded (after the apply), scrapes going", r.loadedNode, 0, 0)
	row("ListInstances, table loaded, scrapes going", r.loadedList, 0, 0)
	row("/metrics scrape, table loaded", r.loadedScrape, 0, 0)
	secs := func(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
	fmt.Fprintf(&b, "\n- apply wall time, ApplyConfig of %d x %d from empty through ctl, the reads going: **%s** (the longest GetNode\n"+
		"  started at +%s, the longest ListInstances at +%s, the longest scrape at +%s)\n",
		r.services, r.dests, secs(r.apply), secs(r.node.worstAt), secs(r.list.worstAt), secs(r.scrape.worstAt))
	if r.haactl > 0 {
		fmt.Fprintf(&b, "- apply wall time, `haactl apply -f` of the same table from empty, no reads going (a %.1f MiB YAML file; process\n"+
			"  start, parsing and printing included): **%s**\n", float64(r.yamlBytes)/(1<<20), secs(r.haactl))
	} else {
		fmt.Fprintf(&b, "- haactl apply -f not timed: %s\n", r.haactlNote)
	}
	fmt.Fprintf(&b, "- in between, removing the table (ApplyConfig of the configuration without the virtual servers): %s\n", secs(r.del))
	fmt.Fprintf(&b, "- a /metrics scrape of the table loaded: %.1f KiB\n", float64(r.loadedBytes)/(1<<10))
	for _, f := range []struct {
		name string
		l    latencies
	}{{"GetNode", r.node}, {"ListInstances", r.list}, {"/metrics", r.scrape}} {
		if f.l.err != nil {
			fmt.Fprintf(&b, "\nFirst failed %s during the apply: %s\n", f.name, oneLine(f.l.err))
		}
	}
	return b.String()
}
