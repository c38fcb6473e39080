package main

// chaos replays, in a namespace lab, the attacks an adversarial run used
// against haad: floods of junk VRRP packets on the LAN and abuse of the API.
// Every attack is bounded in count and in time; each is a row of a Markdown
// table with what it achieved, what it did to the cluster (transitions,
// drops, API latency, memory and descriptors) and a verdict against the
// targets (chaos_report.go).
//
// The lab: n1 (priority 200, the master) and n2 (priority 100, the backup)
// run the same two instances, VI_3 (VRRPv3, vrid 51, 100 ms adverts) and
// VI_2 (VRRPv2, vrid 52, 1 s adverts, auth PASS); n1 also serves the API on
// TCP with mutual TLS; c1 is the attacker, on the same bridge.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/haa-dev/haa/ctl"
	"github.com/haa-dev/haa/deploy/lab"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// The lab's VRRP set-up.
const (
	chaosInstV3     = "VI_3"
	chaosInstV2     = "VI_2"
	chaosVRIDv3     = 51
	chaosVRIDv2     = 52
	chaosVRIDDry    = 60 // the instance attack 10's dry runs would add
	chaosVRIDBig    = 70 // attack 9's instance with 300 VIPs
	chaosPass       = "chaos123"
	chaosPrioMaster = 200
	chaosPrioBackup = 100
	chaosIntervalV3 = 100 * time.Millisecond
	chaosIntervalV2 = time.Second
	// chaosAPIPort is n1's TCP API listener (mutual TLS).
	chaosAPIPort = 9651
	// chaosMetricsListen is every node's metrics listener, on the loopback
	// of its namespace.
	chaosMetricsListen = "127.0.0.1:9650"
)

// The targets and the tolerances of the verdicts.
const (
	// chaosP99Target bounds GetNode's p99 during every attack.
	chaosP99Target = 20 * time.Millisecond
	// chaosFDSlack and chaosRSSSlack: after an attack, a haad is back to
	// its baseline (its values just before the attack) when it holds at
	// most chaosFDSlack more descriptors and chaosRSSSlack more resident
	// memory.
	chaosFDSlack  = 8
	chaosRSSSlack = 20 << 20
	// chaosProbeEvery spaces the GetNode calls that time the API during an
	// attack; a call fails after chaosProbeTimeout.
	chaosProbeEvery   = 10 * time.Millisecond
	chaosProbeTimeout = 2 * time.Second
	// chaosMinSamples is the fewest GetNode calls a p99 is judged over.
	chaosMinSamples = 100
	// chaosSettleState bounds the wait for the cluster's normal state (n1
	// master, n2 backup of both instances) before an attack and after the
	// protocol's takeovers (VI_2's master-down interval is 3.2 s).
	chaosSettleState = 20 * time.Second
	// chaosSteady is how long a haad's resources must stay back within
	// the tolerance to count as back.
	chaosSteady = time.Second
	// chaosRest is how long the API is timed at rest, before the attacks.
	chaosRest = 3 * time.Second
	// chaosDrain is how long the counters are left to catch up after a
	// flood (packets still queued in sockets and channels).
	chaosDrain = 500 * time.Millisecond
)

// chaosTakeover is n2's master-down interval for VI_3 and VI_2: how long
// n1 may be silent before n2 rightly takes over.
var chaosTakeover = [2]time.Duration{bound(3, chaosPrioBackup, chaosIntervalV3), bound(2, chaosPrioBackup, chaosIntervalV2)}

var (
	chaosVIP3 = netip.MustParseAddr("10.77.0.100")
	chaosVIP2 = netip.MustParseAddr("10.77.0.101")
	// chaosVIPDry is the VIP of attack 10's instance.
	chaosVIPDry = netip.MustParseAddr("10.77.0.160")
	// chaosForeign is an address no instance has: the wrong address list.
	chaosForeign = netip.MustParseAddr("10.77.0.99")
)

// chaosAttackIDs are the attacks, by number, in the order they run: the
// priority floods (4) last among the floods, the 20,000 VIPs (9) last of
// all (it ends with a SIGTERM of n1's haad).
var chaosAttackIDs = []int{1, 2, 3, 5, 4, 6, 7, 8, 10, 9}

// chaosOptions are the flags of haalab chaos.
type chaosOptions struct {
	command, haad, haactl, out string
	// duration bounds every attack; maxPackets bounds every flood.
	duration   time.Duration
	maxPackets int
	// conns: attack 6's TLS connections; streams: attack 7's watchers;
	// dryRuns: attack 10's haactl runs.
	conns, streams, dryRuns int
	// vips: the sizes of attack 9's large tables, a row each.
	vips []int
	// settle bounds the wait for descriptors and memory to come back
	// after an attack.
	settle time.Duration
	// attacks are the selected attacks, by number.
	attacks map[int]bool
}

func parseChaos(args []string, stderr io.Writer) (chaosOptions, error) {
	fs := flag.NewFlagSet("haalab chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o chaosOptions
	var attacks string
	fs.StringVar(&o.haad, "haad", "bin/haad", "haad binary")
	fs.StringVar(&o.haactl, "haactl", "", "haactl binary, for attack 10 (default: haactl next to --haad)")
	fs.StringVar(&o.out, "out", "out/chaos.md", "Markdown report to write")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "how long each attack lasts at most")
	fs.IntVar(&o.maxPackets, "max-packets", 10000000, "packets each flood sends at most")
	fs.IntVar(&o.conns, "conns", 2000, "attack 6: TCP connections without a client certificate")
	fs.IntVar(&o.streams, "streams", 50, "attack 7: WatchEvents streams that never read")
	fs.IntVar(&o.dryRuns, "dry-runs", 20, "attack 10: haactl apply --dry-run runs")
	vips := fs.String("vips", "20000,9900", "attack 9: VIPs of the large configurations, a row each, separated by commas (100 per instance; haad's maximum is 10000 per node)")
	fs.DurationVar(&o.settle, "settle", 10*time.Second, "after each attack, how long to wait at most for descriptors and memory to come back")
	fs.StringVar(&attacks, "attacks", "all", "the attacks to run: all, or numbers 1..10 separated by commas")
	if err := parseFlags(fs, "chaos", args); err != nil {
		return o, err
	}
	switch {
	case o.duration < time.Second || o.duration > 10*time.Minute:
		return o, usageErrorf("chaos: --duration %v: use 1s..10m", o.duration)
	case o.maxPackets < 1:
		return o, usageErrorf("chaos: --max-packets %d: at least 1", o.maxPackets)
	case o.conns < 1 || o.conns > 10000:
		return o, usageErrorf("chaos: --conns %d: use 1..10000", o.conns)
	case o.streams < 1 || o.streams > 1000:
		return o, usageErrorf("chaos: --streams %d: use 1..1000", o.streams)
	case o.dryRuns < 1 || o.dryRuns > 1000:
		return o, usageErrorf("chaos: --dry-runs %d: use 1..1000", o.dryRuns)
	case o.settle < 0 || o.settle > 10*time.Minute:
		return o, usageErrorf("chaos: --settle %v: use 0s..10m", o.settle)
	}
	var bad string
	var ok bool
	if o.vips, bad, ok = intList(*vips, 1, chaosMaxVIPs); !ok {
		return o, usageErrorf("chaos: --vips %q: use numbers 1..%d (%d instances of %d VIPs), separated by commas", bad, chaosMaxVIPs, len(chaosBigVRIDs()), chaosVIPsPerInstance)
	}
	o.attacks = map[int]bool{}
	if attacks == "all" {
		for _, id := range chaosAttackIDs {
			o.attacks[id] = true
		}
		return o, nil
	}
	for _, f := range strings.Split(attacks, ",") {
		id, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || !slices.Contains(chaosAttackIDs, id) {
			return o, usageErrorf("chaos: --attacks %q: %q is not an attack number 1..10", attacks, f)
		}
		o.attacks[id] = true
	}
	return o, nil
}

// chaosNode is one of the two haad nodes.
type chaosNode struct {
	n     *lab.Node
	prio  int
	conf  string
	proc  *lab.Proc
	files lab.HaadFiles
	c     *ctl.Client // probes and counters, over the unix socket
	http  *http.Client
}

// chaosLab is the running lab.
type chaosLab struct {
	s        *session
	ctx      context.Context
	o        chaosOptions
	l        *lab.Lab
	dir      string
	haad     string
	haactl   string
	noHaactl string // why there is no haactl
	nodes    [2]*chaosNode
	attacker *lab.Node
	pki      chaosPKI
	// Attack 9's large table, for its SIGTERM step: the configuration with
	// the VIPs (nil: refused), the VIPs, and whether to apply it again
	// first (it was removed in time).
	manyWant    *haav1.AgentConfig
	manySet     map[netip.Addr]bool
	manyReapply bool
	// wire records the nodes' adverts as c1 sees them (nil: not watched).
	wire *wireWatch
	// floor calls the reference gRPC server (startFloor).
	floor func(ctx context.Context) error
	// rest are the probes at rest, before the first attack.
	rest [3]latencies
}

func runChaos(s *session, cmdline string, args []string, stderr io.Writer) error {
	o, err := parseChaos(args, stderr)
	if err != nil {
		return err
	}
	o.command = cmdline
	haad, err := checkHaad(o.haad)
	if err != nil {
		return err
	}
	haactl, note, err := findHaactl(o.haactl, haad)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "haalab-chaos")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pki, err := newChaosPKI(dir)
	if err != nil {
		return err
	}
	prefix := lab.UniqueName("hcha")
	l, err := s.newLab(lab.Options{Prefix: prefix, Nodes: 2, Clients: 1})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	x := &chaosLab{s: s, ctx: ctx, o: o, l: l, dir: dir, haad: haad, haactl: haactl, noHaactl: note,
		attacker: l.Clients[0], pki: pki}
	start := time.Now()
	rows, err := x.runAll()
	for _, cn := range x.nodes {
		if cn != nil && cn.c != nil {
			cn.c.Close()
		}
	}
	if cerr := s.closeLab(l); cerr != nil {
		err = errors.Join(err, fmt.Errorf("removing lab %s: %w", l.Prefix, cerr))
	}
	if left := namespaces(prefix); len(left) > 0 {
		err = errors.Join(err, fmt.Errorf("namespaces left behind: %s", strings.Join(left, " ")))
	}
	if err != nil && len(rows) == 0 {
		return err
	}
	report := renderChaos(o, describeMachine(haad), rows, x.rest, time.Since(start))
	fmt.Fprint(s.out, "\n"+report)
	if werr := os.MkdirAll(filepath.Dir(o.out), 0o755); werr != nil {
		return errors.Join(err, werr)
	}
	if werr := os.WriteFile(o.out, []byte(report), 0o644); werr != nil {
		return errors.Join(err, werr)
	}
	s.say("report written to %s", o.out)
	if n := chaosFailed(rows); n > 0 {
		err = errors.Join(err, fmt.Errorf("%d of %d rows failed their targets (see %s)", n, len(rows), o.out))
	}
	return err
}

// runAll starts the cluster and runs the selected attacks, one row each
// (attack 8 and 9 give several). An error is returned only when the lab
// itself cannot run; an attack that fails is a failed row.
func (x *chaosLab) runAll() ([]chaosRow, error) {
	x.s.say("lab %s: n1 (priority %d) and n2 (priority %d) run %s (v3, vrid %d, %v) and %s (v2, vrid %d, %v, auth PASS); c1 attacks",
		x.l.Prefix, chaosPrioMaster, chaosPrioBackup, chaosInstV3, chaosVRIDv3, chaosIntervalV3, chaosInstV2, chaosVRIDv2, chaosIntervalV2)
	w, err := watchWire(x.attacker.Do, x.attacker.Iface, x.l.Nodes[0].Addr, x.l.Nodes[1].Addr)
	if err != nil {
		x.s.say("no wire watch (the backup's transitions are all counted as false): %v", err)
	} else {
		x.wire = w
		defer w.Close()
	}
	for i, n := range x.l.Nodes {
		prio := chaosPrioMaster
		if i == 1 {
			prio = chaosPrioBackup
		}
		x.nodes[i] = &chaosNode{n: n, prio: prio, files: n.HaadFiles(x.dir), http: n.HTTPClient(5 * time.Second)}
		x.nodes[i].conf = x.haadConfig(i)
		if err := x.startNode(i); err != nil {
			return nil, err
		}
		c, err := ctl.Dial(x.ctx, "unix://"+x.nodes[i].files.Socket)
		if err != nil {
			return nil, err
		}
		x.nodes[i].c = c
	}
	d, err := x.waitSettled(chaosSettleState)
	if err != nil {
		return nil, fmt.Errorf("the cluster did not settle (n1 master, n2 backup of both instances): %w", err)
	}
	x.s.say("cluster settled in %v: n1 master, n2 backup of %s and %s", d.Round(time.Millisecond), chaosInstV3, chaosInstV2)
	stopFloor, err := x.startFloor()
	if err != nil {
		return nil, fmt.Errorf("the reference gRPC server: %w", err)
	}
	defer stopFloor()
	pr := x.startProbes()
	err = x.s.sleep(chaosRest)
	x.rest = pr.finish()
	if err != nil {
		return nil, err
	}
	x.s.say("at rest for %v: API p99 n1 %s, n2 %s, reference server %s", chaosRest, p99String(x.rest[0]), p99String(x.rest[1]), p99String(x.rest[2]))

	var rows []chaosRow
	for _, id := range chaosAttackIDs {
		if !x.o.attacks[id] {
			continue
		}
		for _, a := range x.attacks(id) {
			if err := x.s.err(); err != nil {
				return rows, err
			}
			r := x.run(a)
			x.s.say("  -> %s", summaryLine(r))
			rows = append(rows, r)
		}
	}
	return rows, nil
}

// haadConfig is node i's configuration: the two instances, metrics on the
// namespace's loopback and, on n1, the TCP API with mutual TLS.
func (x *chaosLab) haadConfig(i int) string {
	cn := x.nodes[i]
	conf := haadConfig(cn.n.Name, []instance{
		{Name: chaosInstV3, VRID: chaosVRIDv3, Priority: cn.prio, Version: 3, Interval: chaosIntervalV3, VIPs: []string{chaosVIP3.String() + "/32"}},
		{Name: chaosInstV2, VRID: chaosVRIDv2, Priority: cn.prio, Version: 2, Interval: chaosIntervalV2, AuthPass: chaosPass, VIPs: []string{chaosVIP2.String() + "/32"}},
	})
	conf += fmt.Sprintf("metrics: {listen: %q}\n", chaosMetricsListen)
	if i == 0 {
		conf += fmt.Sprintf("api:\n  tcp:\n    listen: %q\n    tls: {certFile: %q, keyFile: %q, clientCaFile: %q}\n",
			netip.AddrPortFrom(cn.n.Addr, chaosAPIPort).String(), x.pki.serverCert, x.pki.serverKey, x.pki.caFile)
	}
	return conf
}

// startNode starts (or restarts) node i's haad and waits for its API.
func (x *chaosLab) startNode(i int) error {
	cn := x.nodes[i]
	p, err := cn.n.StartHaad(x.dir, x.haad, cn.conf, "--log-level", "info")
	if err != nil {
		return err
	}
	cn.proc = p
	if err := lab.WaitAPI(p, cn.files.Socket, 10*time.Second); err != nil {
		return fmt.Errorf("%s: %w (log: %s)", cn.n.Name, err, lvsLogTail(cn.files.Log))
	}
	return nil
}

// states returns the state of VI_3 and VI_2 on node i.
func (x *chaosLab) states(i int) (map[string]haav1.State, error) {
	ctx, cancel := context.WithTimeout(x.ctx, 5*time.Second)
	defer cancel()
	st, err := x.nodes[i].c.Instances(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]haav1.State{}
	for _, in := range st {
		out[in.GetName()] = in.GetState()
	}
	return out, nil
}

// waitSettled waits until n1 is master and n2 backup of both instances and
// returns how long that took.
func (x *chaosLab) waitSettled(timeout time.Duration) (time.Duration, error) {
	t0 := time.Now()
	var last string
	err := lab.Poll(timeout, 50*time.Millisecond, "n1 master and n2 backup of both instances", func() (bool, error) {
		if err := x.s.err(); err != nil {
			return false, err
		}
		ok := true
		var parts []string
		for i, want := range []haav1.State{haav1.State_STATE_MASTER, haav1.State_STATE_BACKUP} {
			st, err := x.states(i)
			if err != nil {
				ok = false
				parts = append(parts, fmt.Sprintf("%s: %v", x.nodes[i].n.Name, err))
				continue
			}
			for _, name := range []string{chaosInstV3, chaosInstV2} {
				if st[name] != want {
					ok = false
				}
				parts = append(parts, fmt.Sprintf("%s %s %s", x.nodes[i].n.Name, name, stateName(st[name])))
			}
		}
		last = strings.Join(parts, ", ")
		return ok, nil
	})
	if err != nil {
		return 0, fmt.Errorf("%w (last seen: %s)", err, last)
	}
	return time.Since(t0), nil
}

func stateName(s haav1.State) string {
	return strings.TrimPrefix(s.String(), "STATE_")
}

// rowKind says how a row is judged.
type rowKind int

const (
	// kindFlood: junk on the wire while the master sends normally; any
	// transition is false.
	kindFlood rowKind = iota
	// kindProtocol: legitimate VRRP from a foreign source; the takeovers
	// it causes are the protocol's, not counted.
	kindProtocol
	// kindAPI: abuse of the API; any transition is false.
	kindAPI
)

// chaosAttack is one row to run.
type chaosAttack struct {
	id, name string
	kind     rowKind
	run      func(r *chaosRow) error
	// post runs after the measurements (attack 9: SIGTERM); may be nil.
	post func(r *chaosRow)
}

// resUsage is a haad's resident memory and open descriptors.
type resUsage struct {
	RSS uint64 // bytes
	FDs int
	Err error // not measured (the process is gone)
}

func readRes(p *lab.Proc) resUsage {
	if p == nil || p.Exited() {
		return resUsage{Err: errors.New("exited")}
	}
	rss, err := procMem(p.Pid(), "VmRSS")
	if err != nil {
		return resUsage{Err: err}
	}
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(p.Pid()) + "/fd")
	if err != nil {
		return resUsage{Err: err}
	}
	return resUsage{RSS: rss, FDs: len(fds)}
}

// backTo reports whether u is back to the baseline b, within the slack.
func (u resUsage) backTo(b resUsage) bool {
	return u.Err == nil && b.Err == nil && u.FDs <= b.FDs+chaosFDSlack && u.RSS <= b.RSS+chaosRSSSlack
}

// nodeSnap is what a row reads of a node before and after its attack.
type nodeSnap struct {
	err error
	// transitions of VI_3 and VI_2 (not of instances an attack adds).
	trans uint64
	// drops by reason: every instance's and the interfaces' (metrics).
	drops map[string]uint64
	// adverts sent and received by VI_3, and its largest timer slip since
	// haad started.
	sent, received uint64
	slip           time.Duration
	// hist is VI_3's timer-slip histogram from /metrics.
	hist slipHist
}

// slipHist is the part of a timer-slip histogram chaos reads: how many
// firings, how many were at most 100 ms late, and their total lateness.
type slipHist struct {
	count, within100ms uint64
	sum                time.Duration
}

// timerSlips sums haa_instance_timer_slip_seconds of instance (every timer)
// from a Prometheus text exposition.
func timerSlips(text, instance string) slipHist {
	var h slipHist
	const name = "haa_instance_timer_slip_seconds_"
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name) || !strings.Contains(line, `vrrp_instance="`+instance+`"`) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			continue
		}
		switch rest := line[len(name):]; {
		case strings.HasPrefix(rest, "sum{"):
			h.sum += time.Duration(v * float64(time.Second))
		case strings.HasPrefix(rest, "count{"):
			h.count += uint64(v)
		case strings.HasPrefix(rest, "bucket{") && strings.Contains(rest, `le="0.1"`):
			h.within100ms += uint64(v)
		}
	}
	return h
}

func (x *chaosLab) snap(i int) nodeSnap {
	ctx, cancel := context.WithTimeout(x.ctx, 5*time.Second)
	defer cancel()
	cn := x.nodes[i]
	st, err := cn.c.Instances(ctx)
	if err != nil {
		return nodeSnap{err: err}
	}
	s := nodeSnap{drops: map[string]uint64{}}
	for _, in := range st {
		c := in.GetCounters()
		if in.GetName() == chaosInstV3 || in.GetName() == chaosInstV2 {
			s.trans += c.GetTransitions()
		}
		if in.GetName() == chaosInstV3 {
			s.sent, s.received = c.GetAdvertsSent(), c.GetAdvertsReceived()
			s.slip = c.GetTimerSlipMax().AsDuration()
		}
		for k, v := range c.GetDrops() {
			s.drops[k] += v
		}
	}
	body, err := lab.GetBody(ctx, cn.http, "http://"+chaosMetricsListen+"/metrics")
	if err != nil {
		return nodeSnap{err: fmt.Errorf("metrics: %w", err)}
	}
	for k, v := range interfaceDrops(body) {
		s.drops[k] += v
	}
	s.hist = timerSlips(body, chaosInstV3)
	return s
}

// interfaceDrops sums haa_interface_packets_dropped_total by reason from a
// Prometheus text exposition.
func interfaceDrops(text string) map[string]uint64 {
	out := map[string]uint64{}
	const name = "haa_interface_packets_dropped_total{"
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		labels, value, ok := strings.Cut(line[len(name):], "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(labels, ",") {
			if k, val, ok := strings.Cut(l, "="); ok && k == "reason" {
				out[strings.Trim(val, `"`)] += uint64(v)
			}
		}
	}
	return out
}

// dropDelta is after - before, by reason, without zeros.
func dropDelta(before, after map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range after {
		if v > before[k] {
			out[k] = v - before[k]
		}
	}
	return out
}

// probes time GetNode on every node, and the floor's health Check, every
// chaosProbeEvery, until stopped.
type probes struct {
	stop chan struct{}
	done chan struct{}
	lat  [3]latencies // n1, n2, the floor
}

func (x *chaosLab) startProbes() *probes {
	p := &probes{stop: make(chan struct{}), done: make(chan struct{})}
	t0 := time.Now()
	calls := [3]func(ctx context.Context) error{}
	for i, cn := range x.nodes {
		c := cn.c
		calls[i] = func(ctx context.Context) error { _, err := c.Node(ctx); return err }
	}
	calls[2] = x.floor
	var wg sync.WaitGroup
	for i, call := range calls {
		if call == nil {
			continue
		}
		wg.Go(func() {
			p.lat[i] = pace(p.stop, t0, chaosProbeEvery, func() error {
				ctx, cancel := context.WithTimeout(x.ctx, chaosProbeTimeout)
				defer cancel()
				return call(ctx)
			})
		})
	}
	go func() {
		wg.Wait()
		close(p.done)
	}()
	return p
}

func (p *probes) finish() [3]latencies {
	close(p.stop)
	<-p.done
	return p.lat
}

// startFloor runs a bare gRPC health server in another process (haalab
// grpc-floor-server, bench-api's floor) on a unix socket and sets x.floor
// to a health Check on it: the reference round trip, timed beside GetNode,
// tells the machine's delays from haad's. The returned func stops it.
func (x *chaosLab) startFloor() (func(), error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(x.dir, "floor.sock")
	cmd := exec.Command(self, "grpc-floor-server", sock)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	if err := lab.Poll(5*time.Second, 10*time.Millisecond, "the floor server", func() (bool, error) {
		_, err := os.Stat(sock)
		return err == nil, nil
	}); err != nil {
		stop()
		return nil, err
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		stop()
		return nil, err
	}
	hc := healthpb.NewHealthClient(conn)
	x.floor = func(ctx context.Context) error {
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	return func() { conn.Close(); stop() }, nil
}

// run runs one attack and measures it: the cluster in its normal state,
// counters and resources before, GetNode timed on both nodes while it
// runs, then (after the protocol's takeovers have settled, for those rows)
// counters after, and resources once back to the baseline or after
// --settle.
func (x *chaosLab) run(a chaosAttack) chaosRow {
	r := chaosRow{ID: a.id, Name: a.name, Kind: a.kind, Trans: [2]int64{-1, -1}}
	x.s.say("attack %s: %s", a.id, a.name)
	if err := x.ready(&r); err != nil {
		r.Err = err
		return r
	}
	var before [2]nodeSnap
	for i := range x.nodes {
		before[i] = x.snap(i)
		r.Before[i] = readRes(x.nodes[i].proc)
	}
	load := x.startLoad()
	pr := x.startProbes()
	t0 := time.Now()
	err := a.run(&r)
	if r.Duration == 0 {
		r.Duration = time.Since(t0)
	}
	lat := pr.finish()
	r.Lat, r.Floor = [2]latencies{lat[0], lat[1]}, lat[2]
	if note := load(); note != "" {
		r.Notes = append(r.Notes, note)
	}
	if err != nil {
		r.Err = err
	}
	for _, cn := range x.nodes {
		if cn.proc.Exited() {
			r.Fail = append(r.Fail, fmt.Sprintf("%s's haad exited during the attack (%s)", cn.n.Name, lvsLogTail(cn.files.Log)))
		}
	}
	if a.kind != kindAPI {
		_ = x.s.sleep(chaosDrain)
	}
	if x.wire != nil && a.kind != kindProtocol {
		// What n1 put on the wire while the attack ran (and drained).
		from, to := t0, time.Now()
		n1 := x.nodes[0].n.Addr
		r.Silence = [2]time.Duration{x.wire.Silence(n1, chaosVRIDv3, from, to), x.wire.Silence(n1, chaosVRIDv2, from, to)}
		r.Watched = true
		if to.Sub(from) >= time.Second {
			r.Notes = append(r.Notes, fmt.Sprintf("on the wire (seen from c1): n1 sent %d adverts of %s and %d of %s in %.1f s; its longest silence %s (n2 takes over after %s) and %s (after %s)",
				x.wire.Count(n1, chaosVRIDv3, from, to), chaosInstV3, x.wire.Count(n1, chaosVRIDv2, from, to), chaosInstV2, to.Sub(from).Seconds(),
				lvsDur(r.Silence[0]), lvsDur(chaosTakeover[0]), lvsDur(r.Silence[1]), lvsDur(chaosTakeover[1])))
		}
	}
	if a.kind == kindProtocol {
		d, err := x.waitSettled(chaosSettleState)
		if err != nil {
			r.Fail = append(r.Fail, "the cluster did not come back: "+oneLine(err))
		} else {
			r.Notes = append(r.Notes, fmt.Sprintf("back to n1 master, n2 backup %v after the flood", (d+chaosDrain).Round(10*time.Millisecond)))
		}
	}
	var sent, received [2]uint64
	for i := range x.nodes {
		after := x.snap(i)
		if before[i].err != nil || after.err != nil {
			r.Notes = append(r.Notes, fmt.Sprintf("%s's counters: %v", x.nodes[i].n.Name, errors.Join(before[i].err, after.err)))
			continue
		}
		r.Trans[i] = int64(after.trans - before[i].trans)
		r.Drops[i] = dropDelta(before[i].drops, after.drops)
		if a.kind != kindAPI {
			sent[i], received[i] = after.sent-before[i].sent, after.received-before[i].received
		}
		// How late the timers fired: the worst since start if the attack
		// raised it, and the histogram's late firings in any case.
		if after.slip > before[i].slip {
			r.Slip[i] = after.slip
		}
		if b, a := before[i].hist, after.hist; a.count >= b.count && a.within100ms >= b.within100ms && a.sum >= b.sum {
			r.SlipLate[i] = (a.count - b.count) - (a.within100ms - b.within100ms)
			r.SlipSum[i] = a.sum - b.sum
		}
		switch name := x.nodes[i].n.Name; {
		case r.Slip[i] >= 10*time.Millisecond:
			r.Notes = append(r.Notes, fmt.Sprintf("%s's %s timers fired up to %s late (its largest timer slip since start, %s before the attack)",
				name, chaosInstV3, lvsDur(after.slip), lvsDur(before[i].slip)))
		case r.Slip[i] == 0 && r.SlipLate[i] > 0:
			r.Notes = append(r.Notes, fmt.Sprintf("%s's %s timers fired more than 100 ms late %d times, %s late in all",
				name, chaosInstV3, r.SlipLate[i], lvsDur(r.SlipSum[i])))
		}
	}
	if a.kind != kindAPI && r.Trans[0] >= 0 && r.Trans[1] >= 0 {
		// Whether the master went on sending, and the backup on hearing it.
		r.Notes = append(r.Notes, fmt.Sprintf("%s adverts in the %.1f s (one per %v while master): n1 sent %d, n2 handled %d",
			chaosInstV3, time.Since(t0).Seconds(), chaosIntervalV3, sent[0], received[1]))
	}
	// Resources: back within the tolerance for chaosSteady in a row, or
	// whatever they are once --settle has passed.
	t1 := time.Now()
	var since time.Time
	_ = lab.Poll(x.o.settle, 100*time.Millisecond, "resources back", func() (bool, error) {
		ok := true
		for i := range x.nodes {
			r.After[i] = readRes(x.nodes[i].proc)
			ok = ok && r.After[i].backTo(r.Before[i])
		}
		switch {
		case !ok:
			since = time.Time{}
		case since.IsZero():
			since = time.Now()
		}
		return ok && time.Since(since) >= chaosSteady || x.s.err() != nil, nil
	})
	if d := time.Since(t1); d > chaosSteady+200*time.Millisecond {
		r.Notes = append(r.Notes, fmt.Sprintf("descriptors and memory measured %v after the attack", d.Round(100*time.Millisecond)))
	}
	if a.post != nil {
		a.post(&r)
	}
	return r
}

// startLoad samples the machine and the CPU time of both haads and of
// haalab itself (the attacker and the probes); the returned func says
// what they used since.
func (x *chaosLab) startLoad() func() string {
	h0, herr := sampleHost()
	pids := []int{x.nodes[0].proc.Pid(), x.nodes[1].proc.Pid(), os.Getpid()}
	var t0 [3]uint64
	for i, pid := range pids {
		t0[i], _ = cpuTicks(pid)
	}
	w0 := time.Now()
	return func() string {
		h1, err := sampleHost()
		wall := time.Since(w0).Seconds()
		if herr != nil || err != nil || wall < 1 {
			return "" // too short to say
		}
		var pct [3]string
		for i, pid := range pids {
			t1, err := cpuTicks(pid)
			if err != nil || t1 < t0[i] {
				pct[i] = "?"
				continue
			}
			pct[i] = fmt.Sprintf("%.0f %%", float64(t1-t0[i])/clockTicks/wall*100)
		}
		l := hostBetween(h0, h1)
		s := fmt.Sprintf("CPU during the attack: the machine %.0f %% busy (of %d CPUs)", l.Busy, runtime.NumCPU())
		if l.Pressure >= 0 {
			s += fmt.Sprintf(", tasks waiting for a CPU %.0f %% of the time (PSI)", l.Pressure)
		}
		return s + fmt.Sprintf("; of one core: n1's haad %s, n2's %s, haalab (attacker, probes) %s", pct[0], pct[1], pct[2])
	}
}

// ready restarts a haad that is gone and waits for the normal state.
func (x *chaosLab) ready(r *chaosRow) error {
	for i, cn := range x.nodes {
		if cn.proc.Exited() {
			r.Notes = append(r.Notes, fmt.Sprintf("%s's haad had exited (%s): restarted", cn.n.Name, lvsLogTail(cn.files.Log)))
			if err := x.startNode(i); err != nil {
				return err
			}
		}
	}
	d, err := x.waitSettled(chaosSettleState)
	if err != nil {
		return fmt.Errorf("the cluster is not in its normal state before the attack: %w", err)
	}
	if d > time.Second {
		r.Notes = append(r.Notes, fmt.Sprintf("the cluster took %v to settle before the attack", d.Round(10*time.Millisecond)))
	}
	return nil
}

// attacks returns the rows of attack id.
func (x *chaosLab) attacks(id int) []chaosAttack {
	switch id {
	case 1:
		return []chaosAttack{{id: "1", name: "malformed adverts (truncated, bad checksum, TTL 254) to 224.0.0.18", kind: kindFlood,
			run: func(r *chaosRow) error { return x.flood(r, x.malformedPackets()) }}}
	case 2:
		return []chaosAttack{{id: "2", name: "well-formed VRRPv2 adverts at the v3 instance (vrid 51)", kind: kindFlood,
			run: func(r *chaosRow) error { return x.flood(r, x.wrongVersionPackets()) }}}
	case 3:
		return []chaosAttack{{id: "3", name: "right vrid, wrong auth (v2 instance) and wrong address list (both)", kind: kindFlood,
			run: func(r *chaosRow) error { return x.flood(r, x.mismatchPackets()) }}}
	case 4:
		return []chaosAttack{
			{id: "4a", name: "priority-0 adverts from a foreign source (both instances)", kind: kindProtocol,
				run: func(r *chaosRow) error { return x.flood(r, x.priorityPackets(0)) }},
			{id: "4b", name: "priority-254 adverts from a foreign source (both instances)", kind: kindProtocol,
				run: func(r *chaosRow) error { return x.flood(r, x.priorityPackets(254)) }},
		}
	case 5:
		return []chaosAttack{{id: "5", name: "unknown VRIDs (every vrid but 51 and 52)", kind: kindFlood,
			run: func(r *chaosRow) error { return x.flood(r, x.unknownVRIDPackets()) }}}
	case 6:
		return []chaosAttack{{id: "6", name: fmt.Sprintf("API: %d TCP connections without a client certificate to n1's mTLS listener", x.o.conns), kind: kindAPI,
			run: x.attackTLSConns}}
	case 7:
		return []chaosAttack{{id: "7", name: fmt.Sprintf("API: %d WatchEvents streams on n2 that never read", x.o.streams), kind: kindAPI,
			run: x.attackWatchers}}
	case 8:
		return x.malformedApplies()
	case 9:
		out := []chaosAttack{{id: "9a", name: "API: ApplyConfig with 300 VIPs on one instance", kind: kindAPI, run: x.attack300VIPs}}
		for i, n := range x.o.vips {
			out = append(out, chaosAttack{id: fmt.Sprintf("9%c", 'b'+i),
				name: fmt.Sprintf("API: ApplyConfig with %d VIPs across %d instances, removed, again, then SIGTERM", n, chaosBigInstances(n)), kind: kindAPI,
				run: func(r *chaosRow) error { return x.attackManyVIPs(r, n) }, post: x.manyVIPsSIGTERM})
		}
		return out
	case 10:
		return []chaosAttack{{id: "10", name: fmt.Sprintf("haactl apply --dry-run x%d while eth0's addresses churn", x.o.dryRuns), kind: kindAPI,
			run: x.attackDryRuns}}
	}
	return nil
}

// summaryLine is a row in one line, for the narrative.
func summaryLine(r chaosRow) string {
	parts := []string{}
	if r.Rate != "" {
		parts = append(parts, r.Rate)
	}
	if r.Code != "" {
		parts = append(parts, "code "+r.Code)
	}
	parts = append(parts, "transitions "+transCell(r), "API p99 "+p99Cell(r))
	return strings.Join(parts, ", ") + ": " + verdictCell(r)
}

// sortedKeys returns m's keys, the largest values first.
func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}
