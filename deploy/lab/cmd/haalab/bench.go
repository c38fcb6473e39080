package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
)

// setting is one advert-interval configuration of the failover benchmark.
type setting struct {
	Key      string // for --settings and directory names
	Name     string // for the table
	Version  int
	Interval time.Duration
	AuthPass string
	IPv6     bool // over IPv6: the client pings the IPv6 VIP (ping -6)
	VMAC     bool // a virtual MAC interface (use_vmac)
}

var allSettings = []setting{
	{Key: "1s", Name: "1 s (VRRPv2, PASS auth)", Version: 2, Interval: time.Second, AuthPass: "1111"},
	{Key: "100ms", Name: "100 ms (VRRPv3)", Version: 3, Interval: 100 * time.Millisecond},
	{Key: "10ms", Name: "10 ms (VRRPv3)", Version: 3, Interval: 10 * time.Millisecond},
	{Key: "100ms-v6", Name: "100 ms (VRRPv3, IPv6)", Version: 3, Interval: 100 * time.Millisecond, IPv6: true},
	{Key: "10ms-v6", Name: "10 ms (VRRPv3, IPv6)", Version: 3, Interval: 10 * time.Millisecond, IPv6: true},
	{Key: "100ms-vmac", Name: "100 ms (VRRPv3, use_vmac)", Version: 3, Interval: 100 * time.Millisecond, VMAC: true},
}

// The failover benchmark's virtual router: n1 is master, n2 the backup.
const (
	benchVRID       = 51
	benchPrioMaster = 200
	benchPrioBackup = 100
	// targetSlack is how close to the protocol bound haad's median must be.
	targetSlack = 5 * time.Millisecond
)

var (
	benchVIP  = netip.MustParseAddr("10.77.0.100")
	benchVIP6 = netip.MustParseAddr("fd77::100")
)

func (st setting) instances(prio int) []instance {
	vips := []string{benchVIP.String() + "/24"}
	if st.IPv6 {
		// RFC 5798 5.2.9: the link-local address first.
		vips = []string{"fe80::100/64", benchVIP6.String() + "/64"}
	}
	return []instance{{Name: "VI_1", VRID: benchVRID, Priority: prio, Version: st.Version,
		Interval: st.Interval, AuthPass: st.AuthPass, VIPs: vips, VMAC: st.VMAC}}
}

// vip is the address the client pings.
func (st setting) vip() netip.Addr {
	if st.IPv6 {
		return benchVIP6
	}
	return benchVIP
}

// bound is the protocol bound of the backup's takeover.
func (st setting) bound() time.Duration { return bound(st.Version, benchPrioBackup, st.Interval) }

// stable is how long n1 must hold the VIP alone before a trial's power-off:
// a second, and at least three advert intervals.
func (st setting) stable() time.Duration { return max(time.Second, 3*st.Interval) }

// trialTimeout bounds a whole trial: election, stable period, failover.
func (st setting) trialTimeout() time.Duration {
	return 3*st.bound() + st.stable() + 20*time.Second
}

// trial is the outcome of one power-off.
type trial struct {
	N        int
	Failover failover
	Err      error
}

// settingResult holds every trial of one setting, per implementation.
type settingResult struct {
	Setting setting
	Trials  map[string][]trial
}

type benchOptions struct {
	haad      string
	trials    int
	out       string
	soak      time.Duration
	instances int
	interval  time.Duration // the soak's advert interval
	settings  []setting
	logs      string
	command   string
}

func parseBench(args []string, stderr io.Writer) (benchOptions, error) {
	fs := flag.NewFlagSet("haalab bench-failover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := benchOptions{interval: soakInterval}
	fs.StringVar(&o.haad, "haad", "bin/haad", "haad binary to run on the nodes")
	fs.IntVar(&o.trials, "trials", 10, "power-offs per setting and implementation")
	fs.StringVar(&o.out, "out", "out/bench-failover.md", "Markdown report to write")
	fs.DurationVar(&o.soak, "soak", 5*time.Minute, "steady-state window of the soak test per implementation (0: no soak)")
	fs.IntVar(&o.instances, "instances", 50, "VRRP instances in the soak test (1..254)")
	quick := fs.Bool("quick", false, "smoke run: --trials 3 --soak 20s unless given")
	keys := fs.String("settings", "1s,100ms,10ms,100ms-v6,10ms-v6,100ms-vmac", "settings to run: 1s (VRRPv2), 100ms, 10ms (VRRPv3), 100ms-v6, 10ms-v6 (VRRPv3 over IPv6), 100ms-vmac (use_vmac)")
	fs.StringVar(&o.logs, "logs", "", "directory for the daemons' configs and logs (default: a new temporary directory, removed when everything passed)")
	if err := parseFlags(fs, "bench-failover", args); err != nil {
		return o, err
	}
	if *quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["trials"] {
			o.trials = 3
		}
		if !set["soak"] {
			o.soak = 20 * time.Second
		}
	}
	if o.trials < 1 || o.trials > 1000 {
		return o, usageErrorf("bench-failover: --trials %d: use 1..1000", o.trials)
	}
	if o.instances < 1 || o.instances > 254 {
		return o, usageErrorf("bench-failover: --instances %d: use 1..254 (one VRID and one 10.77.1.N address each)", o.instances)
	}
	if o.soak < 0 || o.soak > 2*time.Hour {
		return o, usageErrorf("bench-failover: --soak %v: use 0..2h", o.soak)
	}
	for _, k := range strings.Split(*keys, ",") {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		i := slices.IndexFunc(allSettings, func(s setting) bool { return s.Key == k })
		if i < 0 {
			return o, usageErrorf("bench-failover: --settings: unknown setting %q (use 1s, 100ms, 10ms, 100ms-v6, 10ms-v6, 100ms-vmac)", k)
		}
		o.settings = append(o.settings, allSettings[i])
	}
	return o, nil
}

// runBench runs bench-failover; command is the command line, for the report.
func runBench(s *session, command string, args []string, stderr io.Writer) error {
	o, err := parseBench(args, stderr)
	if err != nil {
		return err
	}
	o.command = command
	haad, dir, err := benchPrep(o.haad, o.logs, "haalab-bench-")
	if err != nil {
		return err
	}
	daemons := []daemon{haadDaemon{bin: haad}, keepalivedDaemon{}}
	b := &bench{s: s, o: o, dir: dir, daemons: daemons}
	env := describeMachine(haad)

	fmt.Fprintf(s.out, "haa failover benchmark: haad vs %s, %d power-offs per setting and implementation\n", env.keepalived, o.trials)
	fmt.Fprintf(s.out, "  two nodes (n1 priority %d master, n2 priority %d backup) and a client pinging the VIP every %v, in namespaces\n",
		benchPrioMaster, benchPrioBackup, pingEvery)
	fmt.Fprintf(s.out, "  logs in %s\n\n", dir)

	var results []settingResult
	for _, st := range o.settings {
		if s.err() != nil {
			break
		}
		results = append(results, b.runSetting(st))
	}
	var soaks []soakResult
	if o.soak > 0 {
		for _, d := range daemons {
			if s.err() != nil {
				break
			}
			soaks = append(soaks, b.runSoak(d))
		}
	}
	if err := s.err(); err != nil {
		if o.logs == "" {
			_ = os.RemoveAll(dir)
		}
		return err
	}

	report := renderReport(o, env, results, soaks)
	if err := s.publish(report, o.out); err != nil {
		return err
	}
	failures := countFailures(results, soaks)
	if failures > 0 {
		fmt.Fprintf(s.out, "%d trial(s) or soak run(s) failed; logs kept in %s\n", failures, dir)
		return fmt.Errorf("bench-failover: %d trial(s) or soak run(s) failed", failures)
	}
	if o.logs == "" {
		_ = os.RemoveAll(dir)
	}
	return nil
}

func countFailures(results []settingResult, soaks []soakResult) int {
	n := 0
	for _, r := range results {
		for _, ts := range r.Trials {
			for _, t := range ts {
				if t.Err != nil {
					n++
				}
			}
		}
	}
	for _, s := range soaks {
		if s.Err != nil {
			n++
		}
	}
	return n
}

// bench runs the benchmark's labs.
type bench struct {
	s       *session
	o       benchOptions
	dir     string
	daemons []daemon
}

// failoverLab is a 2-node + 1-client lab with a VRRP listener on the client.
type failoverLab struct {
	l *lab.Lab
	w *advertWatch
}

func (b *bench) newFailoverLab() (*failoverLab, error) {
	l, err := b.s.newLab(lab.Options{Prefix: lab.UniqueName("hbench"), Nodes: 2, Clients: 1})
	if err != nil {
		return nil, err
	}
	w, err := watchAdverts(l.Clients[0])
	if err != nil {
		return nil, errors.Join(err, b.s.closeLab(l))
	}
	return &failoverLab{l: l, w: w}, nil
}

func (b *bench) closeFailoverLab(fl *failoverLab) {
	fl.w.Close()
	if err := b.s.closeLab(fl.l); err != nil {
		b.s.say("removing lab %s: %v", fl.l.Prefix, err)
	}
}

// runSetting runs the trials of one setting, alternating the
// implementations trial by trial in one lab (a fresh lab after a trial that
// left it unusable).
func (b *bench) runSetting(st setting) settingResult {
	res := settingResult{Setting: st, Trials: map[string][]trial{}}
	b.s.say("setting %s: protocol bound for the backup %s; each trial: election, %v stable, power-off right after an advert of n1",
		st.Name, ms(st.bound()), st.stable())
	var fl *failoverLab
	defer func() {
		if fl != nil {
			b.closeFailoverLab(fl)
		}
	}()
	for i := 1; i <= b.o.trials; i++ {
		for _, d := range b.daemons {
			if b.s.err() != nil {
				return res
			}
			if fl == nil {
				var err error
				if fl, err = b.newFailoverLab(); err != nil {
					res.Trials[d.Name()] = append(res.Trials[d.Name()], trial{N: i, Err: err})
					b.s.say("  %-10s #%-2d FAILED: %v", d.Name(), i, err)
					continue
				}
			}
			t, usable := b.trial(fl, st, d, i)
			res.Trials[d.Name()] = append(res.Trials[d.Name()], t)
			if t.Err != nil {
				b.s.say("  %-10s #%-2d FAILED: %v", d.Name(), i, t.Err)
			} else {
				fo := t.Failover
				b.s.say("  %-10s #%-2d outage %9s  (%s advertised %s after n1's last advert, %s before the power-off)",
					d.Name(), i, ms(fo.Outage), fo.NewMaster.Name, ms(fo.Detection), ms(fo.SinceAdvert))
			}
			if !usable {
				b.closeFailoverLab(fl)
				fl = nil
			}
		}
	}
	return res
}

// trial runs one power-off; usable is false when the lab must be rebuilt.
func (b *bench) trial(fl *failoverLab, st setting, d daemon, i int) (t trial, usable bool) {
	t.N = i
	var expired atomic.Bool
	limit := st.trialTimeout()
	watchdog := time.AfterFunc(limit, func() {
		expired.Store(true)
		_ = b.s.closeLab(fl.l) // makes everything the trial waits for fail at once
	})
	defer watchdog.Stop()
	fo, err := b.runTrial(fl, st, d, i)
	if expired.Load() {
		return trial{N: i, Err: fmt.Errorf("trial timed out after %v (%v)", limit, err)}, false
	}
	if err != nil {
		t.Err = err
		// Leftovers are cleaned by the next trial; rebuild if that is not
		// possible.
		return t, b.clean(fl.l) == nil
	}
	t.Failover = fo
	return t, b.clean(fl.l) == nil
}

// clean kills whatever runs on the nodes and powers them on: VIPs gone,
// links up.
func (b *bench) clean(l *lab.Lab) error {
	var errs []error
	for _, n := range l.Nodes {
		if err := n.KillAll(5 * time.Second); err != nil {
			errs = append(errs, err)
		}
		if err := n.PowerOn(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (b *bench) runTrial(fl *failoverLab, st setting, d daemon, i int) (failover, error) {
	l := fl.l
	n1, n2, c := l.Nodes[0], l.Nodes[1], l.Clients[0]
	if err := b.clean(l); err != nil {
		return failover{}, err
	}
	dir := filepath.Join(b.dir, st.Key, fmt.Sprintf("%s-%02d", d.Name(), i))
	p1, err := d.Start(n1, dir, st.instances(benchPrioMaster))
	if err != nil {
		return failover{}, err
	}
	defer p1.Kill()
	p2, err := d.Start(n2, dir, st.instances(benchPrioBackup))
	if err != nil {
		return failover{}, err
	}
	defer p2.Kill()
	// Both start as backups: n1 takes over after its master-down interval.
	if _, err := l.WaitActiveHolder(st.vip(), n1, 2*st.bound()+5*time.Second); err != nil {
		return failover{}, fmt.Errorf("election: %w", err)
	}
	if err := stableHolder(b.s, l, st.vip(), n1, st.stable()); err != nil {
		return failover{}, err
	}
	for _, p := range []*lab.Proc{p1, p2} {
		if p.Exited() {
			return failover{}, fmt.Errorf("%s on %s exited: %v (log %s)", d.Name(), p.Node.Name, p.Wait(), p.Log)
		}
	}
	fo, err := measureFailover(l, c, st.vip(), n1, p1, fl.w, true, st.Interval, 2*st.bound()+3*time.Second)
	if err != nil {
		return failover{}, err
	}
	if fo.NewMaster != n2 {
		return fo, fmt.Errorf("new master %s, want n2", fo.NewMaster.Name)
	}
	return fo, nil
}

// stableHolder checks that only want holds a for the whole period.
func stableHolder(s *session, l *lab.Lab, a netip.Addr, want *lab.Node, period time.Duration) error {
	end := time.Now().Add(period)
	for time.Now().Before(end) {
		if err := s.err(); err != nil {
			return err
		}
		hs, err := l.ActiveHolders(a)
		if err != nil {
			return err
		}
		if len(hs) != 1 || hs[0] != want {
			return fmt.Errorf("not stable: holders of %s %s, want only %s", a, lab.Names(hs), want.Name)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// outageStats summarises the successful trials.
type outageStats struct {
	N, Failed        int
	Median, Min, Max time.Duration
	// Detection is the median time from the master's last advert to the
	// new master's first; Switch the median of outage minus detection.
	Detection, Switch time.Duration
}

func summarize(ts []trial) outageStats {
	var v, det, sw []time.Duration
	st := outageStats{}
	for _, t := range ts {
		if t.Err != nil {
			st.Failed++
			continue
		}
		v = append(v, t.Failover.Outage)
		if t.Failover.Detection > 0 {
			det = append(det, t.Failover.Detection)
			sw = append(sw, t.Failover.Outage-t.Failover.Detection)
		}
	}
	st.N = len(v)
	if len(v) == 0 {
		return st
	}
	st.Median = median(v)
	st.Min, st.Max = slices.Min(v), slices.Max(v)
	st.Detection, st.Switch = median(det), median(sw)
	return st
}

// median of v (0 when empty); v is sorted in place.
func median[T ~int64 | ~float64](v []T) T {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// benchPrep checks what a benchmark against keepalived needs (haad, the
// keepalived binary, the lab) and returns the haad binary and the log
// directory: logs, or a new temporary one named after prefix.
func benchPrep(haadPath, logs, prefix string) (haad, dir string, err error) {
	if haad, err = checkHaad(haadPath); err != nil {
		return "", "", err
	}
	if _, err := lab.KeepalivedPath(); err != nil {
		return "", "", err
	}
	if err := lab.Available(); err != nil {
		return "", "", fmt.Errorf("the lab %v", err)
	}
	if logs == "" {
		dir, err = os.MkdirTemp("", prefix)
		return haad, dir, err
	}
	return haad, logs, os.MkdirAll(logs, 0o755)
}
