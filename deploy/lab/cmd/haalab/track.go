package main

// bench-track: the time from a failing health check on the master to the
// VIP moving to the backup, haad beside keepalived with the same check
// script, intervals, weights and priorities, in one lab.

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/haa-dev/haa/deploy/lab"
)

// The tracker benchmark's setup: one instance, n1 master at 100, n2 backup
// at 90, a check with weight -20 that fails on n1 while a flag file exists.
const (
	trackPrioMaster = 100
	trackPrioBackup = 90
	trackWeight     = -20
	trackVersion    = 3
	trackAdvert     = time.Second
	trackInterval   = time.Second // the check's interval (and timeout)
	trackRise       = 1
	trackFall       = 2
	trackTracker    = "chk_flag"
	// trackStable is how long n1 must hold the VIP alone before a trial:
	// a few adverts, so the backup has heard the restored priority.
	trackStable = 3 * time.Second
	// trackWait bounds each wait of a trial (far above the expected 5.6 s).
	trackWait = 20 * time.Second
)

// trackInstances is the benchmark's instance at priority prio.
func trackInstances(prio int) []instance {
	return []instance{{Name: "VI_1", VRID: benchVRID, Priority: prio, Version: trackVersion,
		Interval: trackAdvert, VIPs: []string{benchVIP.String() + "/24"}}}
}

// trackMasterDown is the backup's master-down interval: 3 adverts + skew.
func trackMasterDown() time.Duration { return bound(trackVersion, trackPrioBackup, trackAdvert) }

// trackOptions are bench-track's flags.
type trackOptions struct {
	haad    string
	trials  int
	out     string
	logs    string
	command string
}

func parseBenchTrack(args []string, stderr io.Writer) (trackOptions, error) {
	fs := flag.NewFlagSet("haalab bench-track", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o trackOptions
	fs.StringVar(&o.haad, "haad", "bin/haad", "haad binary to run on the nodes")
	fs.IntVar(&o.trials, "trials", 10, "failing checks per implementation")
	fs.StringVar(&o.out, "out", "out/bench-track.md", "Markdown report to write")
	fs.StringVar(&o.logs, "logs", "", "directory for the scripts, the daemons' configs and logs (default: a new temporary directory, removed when everything passed)")
	if err := parseFlags(fs, "bench-track", args); err != nil {
		return o, err
	}
	if o.trials < 1 || o.trials > 1000 {
		return o, usageErrorf("bench-track: --trials %d: use 1..1000", o.trials)
	}
	return o, nil
}

// trackTrial is one failing check.
type trackTrial struct {
	N int
	// Moved is the time from the flag file's creation to the VIP on n2;
	// Left to the VIP gone from n1.
	Moved, Left time.Duration
	// Detection is the time from the flag to the check run that made the
	// check fail (the fall-th failing run); 0 when unknown.
	Detection time.Duration
	Err       error
}

// trackResult holds the trials of one implementation.
type trackResult struct {
	Daemon string
	Trials []trackTrial
	Err    error // the implementation could not run at all
}

// trackImpl runs one implementation with the benchmark's check.
type trackImpl struct {
	name  string
	start func(n *lab.Node, dir string, prio int, check []string) (*lab.Proc, error)
}

// runBenchTrack runs bench-track; command is the command line, for the
// report.
func runBenchTrack(s *session, command string, args []string, stderr io.Writer) error {
	o, err := parseBenchTrack(args, stderr)
	if err != nil {
		return err
	}
	o.command = command
	haad, dir, err := benchPrep(o.haad, o.logs, "haalab-track-")
	if err != nil {
		return err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	if strings.ContainsAny(dir, " \t\n\"'\\") {
		return usageErrorf("bench-track: --logs %q: the check's path goes into keepalived.conf: use a directory without spaces or quotes", dir)
	}
	script, err := writeCheckScript(dir)
	if err != nil {
		return err
	}
	impls := []trackImpl{
		{name: "haad", start: func(n *lab.Node, d string, prio int, check []string) (*lab.Proc, error) {
			return n.StartHaad(d, haad, haadTrackConfig(n.Name, prio, check),
				"--status-file", statusPath(d, n), "--log-level", "info")
		}},
		{name: "keepalived", start: func(n *lab.Node, d string, prio int, check []string) (*lab.Proc, error) {
			conf, err := keepalivedTrackConfig(n.Name, prio, check)
			if err != nil {
				return nil, err
			}
			return n.StartKeepalived(d, conf)
		}},
	}
	env := describeMachine(haad)
	fmt.Fprintf(s.out, "haa tracker benchmark: haad vs %s, %d failing checks per implementation\n", env.keepalived, o.trials)
	fmt.Fprintf(s.out, "  n1 (priority %d) master, n2 (priority %d) backup; check %s every %v, fall %d, weight %d; VRRPv%d adverts every %v\n",
		trackPrioMaster, trackPrioBackup, script, trackInterval, trackFall, trackWeight, trackVersion, trackAdvert)
	fmt.Fprintf(s.out, "  logs in %s\n\n", dir)

	var results []trackResult
	for _, im := range impls {
		if s.err() != nil {
			break
		}
		results = append(results, runTrackImpl(s, o, im, dir, script))
	}
	if err := s.err(); err != nil {
		if o.logs == "" {
			_ = os.RemoveAll(dir)
		}
		return err
	}
	report := renderTrackReport(o, env, results)
	if err := s.publish(report, o.out); err != nil {
		return err
	}
	failures := 0
	for _, r := range results {
		if r.Err != nil {
			failures++
		}
		for _, t := range r.Trials {
			if t.Err != nil {
				failures++
			}
		}
	}
	if failures > 0 {
		fmt.Fprintf(s.out, "%d trial(s) or run(s) failed; logs kept in %s\n", failures, dir)
		return fmt.Errorf("bench-track: %d trial(s) or run(s) failed", failures)
	}
	if o.logs == "" {
		_ = os.RemoveAll(dir)
	}
	return nil
}

// writeCheckScript writes the check both implementations run: a root-owned
// 0755 shell script in a root-owned 0755 directory that fails while the
// flag file (its first argument) exists, and then appends the time of the
// failing run to its second argument.
func writeCheckScript(dir string) (string, error) {
	date, err := exec.LookPath("date")
	if err != nil {
		return "", fmt.Errorf("the check script needs date(1): %w", err)
	}
	sdir := filepath.Join(dir, "scripts")
	if err := os.MkdirAll(sdir, 0o755); err != nil {
		return "", err
	}
	if err := os.Chmod(sdir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(sdir, "chk_flag.sh")
	body := fmt.Sprintf(`#!/bin/sh
# haalab bench-track check: fails while the flag file $1 exists; every
# failing run appends its time (seconds.nanoseconds) to $2.
if [ -e "$1" ]; then
	%s +%%s.%%N >> "$2"
	exit 1
fi
exit 0
`, date)
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		return "", err
	}
	return path, os.Chmod(path, 0o755)
}

// haadTrackConfig is haad's configuration: the benchmark's instance
// (haadConfig) tracking the check.
func haadTrackConfig(name string, prio int, check []string) string {
	quoted := make([]string, len(check))
	for i, a := range check {
		quoted[i] = strconv.Quote(a)
	}
	// haadConfig ends with the (only) instance: its track line follows.
	return haadConfig(name, trackInstances(prio)) +
		fmt.Sprintf("    track: [{tracker: %s}]\n", trackTracker) +
		fmt.Sprintf("trackers:\n  - name: %s\n    script: {command: [%s], interval: %v, timeout: %v, rise: %d, fall: %d}\n    weight: %d\n",
			trackTracker, strings.Join(quoted, ", "), trackInterval, trackInterval, trackRise, trackFall, trackWeight)
}

// keepalivedTrackConfig is keepalived's: the benchmark's instance
// (keepalivedConfig) with the same check as a vrrp_script, script security
// on and scripts run as root.
func keepalivedTrackConfig(name string, prio int, check []string) (string, error) {
	conf := keepalivedConfig(name, trackInstances(prio))
	secs := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }
	script := fmt.Sprintf("vrrp_script %s {\n  script \"%s\"\n  interval %s\n  timeout %s\n  rise %d\n  fall %d\n  weight %d\n}\n",
		trackTracker, strings.Join(check, " "), secs(trackInterval), secs(trackInterval), trackRise, trackFall, trackWeight)
	for _, ins := range []struct{ anchor, text string }{
		{"global_defs {\n", "global_defs {\n  enable_script_security\n  script_user root\n"},
		{"vrrp_instance ", script + "vrrp_instance "},
		{"  virtual_ipaddress {\n", "  track_script {\n    " + trackTracker + "\n  }\n  virtual_ipaddress {\n"},
	} {
		if strings.Count(conf, ins.anchor) != 1 {
			return "", fmt.Errorf("keepalived.conf of %s: %q not found once: cannot add the check", name, ins.anchor)
		}
		conf = strings.Replace(conf, ins.anchor, ins.text, 1)
	}
	return conf, nil
}

// runTrackImpl runs the trials of one implementation in a fresh lab.
func runTrackImpl(s *session, o trackOptions, im trackImpl, dir, script string) trackResult {
	res := trackResult{Daemon: im.name}
	fail := func(err error) trackResult {
		res.Err = err
		s.say("%s: FAILED: %v", im.name, err)
		return res
	}
	l, err := s.newLab(lab.Options{Prefix: lab.UniqueName("htrack"), Nodes: 2, Clients: -1})
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err := s.closeLab(l); err != nil {
			s.say("removing lab %s: %v", l.Prefix, err)
		}
	}()
	n1, n2 := l.Nodes[0], l.Nodes[1]
	d := filepath.Join(dir, im.name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return fail(err)
	}
	flagFile := filepath.Join(d, "flag-n1")
	runs := filepath.Join(d, "failing-runs-n1")
	_ = os.Remove(flagFile)
	w1, err := watchAddr(n1, benchVIP)
	if err != nil {
		return fail(err)
	}
	defer w1.Close()
	w2, err := watchAddr(n2, benchVIP)
	if err != nil {
		return fail(err)
	}
	defer w2.Close()
	p1, err := im.start(n1, d, trackPrioMaster, []string{script, flagFile, runs})
	if err != nil {
		return fail(err)
	}
	defer p1.Kill()
	p2, err := im.start(n2, d, trackPrioBackup, []string{script, filepath.Join(d, "flag-n2"), filepath.Join(d, "failing-runs-n2")})
	if err != nil {
		return fail(err)
	}
	defer p2.Kill()
	if _, err := l.WaitHolder(benchVIP, n1, 2*trackMasterDown()+10*time.Second); err != nil {
		return fail(fmt.Errorf("election: %w", errors.Join(err, exited(p1, p2), checkProblems(im.name, p1, p2))))
	}
	if err := checkProblems(im.name, p1, p2); err != nil {
		return fail(err)
	}
	s.say("%s: n1 elected; %d trials", im.name, o.trials)
	for i := 1; i <= o.trials; i++ {
		if s.err() != nil {
			break
		}
		t := trackOne(s, l, w1, w2, flagFile, runs, i)
		if t.Err == nil {
			t.Err = exited(p1, p2)
		}
		res.Trials = append(res.Trials, t)
		if t.Err != nil {
			s.say("  %-10s #%-2d FAILED: %v", im.name, i, t.Err)
			_ = os.Remove(flagFile)
			// The next trial waits for n1 to be the stable holder again;
			// a daemon that died ends this implementation's run.
			if exited(p1, p2) != nil {
				break
			}
			continue
		}
		s.say("  %-10s #%-2d VIP on n2 after %s (gone from n1 after %s; check failed after %s)",
			im.name, i, ms(t.Moved), ms(t.Left), ms(t.Detection))
	}
	return res
}

// exited reports a daemon that is no longer running.
func exited(ps ...*lab.Proc) error {
	for _, p := range ps {
		if p.Exited() {
			return fmt.Errorf("%s on %s exited: %v (log %s)", filepath.Base(p.Name), p.Node.Name, p.Wait(), p.Log)
		}
	}
	return nil
}

// checkProblems finds keepalived's complaints about the check script (it
// disables an insecure or missing script and carries on without it).
func checkProblems(name string, ps ...*lab.Proc) error {
	if name != "keepalived" {
		return nil
	}
	for _, p := range ps {
		b, _ := os.ReadFile(p.Log)
		for _, line := range strings.Split(string(b), "\n") {
			l := strings.ToLower(line)
			if strings.Contains(l, "insecure") || strings.Contains(l, "security violation") ||
				(strings.Contains(l, "disabling") && strings.Contains(l, "script")) || strings.Contains(l, "not executable") {
				return fmt.Errorf("keepalived on %s: %s", p.Node.Name, strings.TrimSpace(line))
			}
		}
	}
	return nil
}

// trackOne runs one trial: n1 stable holder, flag created, VIP on n2 and
// gone from n1, flag removed, n1 holder again.
func trackOne(s *session, l *lab.Lab, w1, w2 *addrWatch, flagFile, runs string, i int) trackTrial {
	t := trackTrial{N: i}
	n1, n2 := l.Nodes[0], l.Nodes[1]
	if _, err := l.WaitHolder(benchVIP, n1, trackWait); err != nil {
		t.Err = fmt.Errorf("before the trial: %w", err)
		return t
	}
	if err := stableHolder(s, l, benchVIP, n1, trackStable); err != nil {
		t.Err = err
		return t
	}
	// A random phase: the flag falls anywhere in the check's and the
	// adverts' cycles (both are locked to the preemption that ended the
	// previous trial).
	if err := s.sleep(rand.N(max(trackInterval, trackAdvert))); err != nil {
		t.Err = err
		return t
	}
	mark := len(readRuns(runs))
	t0 := time.Now()
	if err := os.WriteFile(flagFile, nil, 0o644); err != nil {
		t.Err = err
		return t
	}
	var moved, left time.Time
	err := lab.Poll(trackWait, 5*time.Millisecond, "the VIP on n2 and gone from n1", func() (bool, error) {
		if err := s.err(); err != nil {
			return false, err
		}
		var ok1, ok2 bool
		moved, ok2 = w2.firstAfter(t0, true)
		left, ok1 = w1.firstAfter(t0, false)
		return ok1 && ok2, nil
	})
	if rerr := os.Remove(flagFile); err == nil {
		err = rerr
	}
	if err != nil {
		hs, _ := l.Holders(benchVIP)
		t.Err = fmt.Errorf("%w (holders %s)", err, lab.Names(hs))
		return t
	}
	t.Moved, t.Left = moved.Sub(t0), left.Sub(t0)
	if fails := readRuns(runs); len(fails) >= mark+trackFall {
		t.Detection = fails[mark+trackFall-1].Sub(t0)
	}
	// n2 must be the sole holder now; then n1 preempts once its check is
	// OK again (the next trial waits for that).
	if hs, err := l.Holders(benchVIP); err != nil || len(hs) > 1 || (len(hs) == 1 && hs[0] != n2) {
		t.Err = fmt.Errorf("after the move: holders %s (%v), want only n2", lab.Names(hs), err)
	}
	return t
}

// readRuns reads the times of the failing check runs.
func readRuns(path string) []time.Time {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []time.Time
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sec, frac, ok := strings.Cut(strings.TrimSpace(sc.Text()), ".")
		if !ok {
			continue
		}
		s, err1 := strconv.ParseInt(sec, 10, 64)
		ns, err2 := strconv.ParseInt(frac, 10, 64)
		if err1 != nil || err2 != nil || len(frac) != 9 {
			continue
		}
		out = append(out, time.Unix(s, ns))
	}
	return out
}

// addrWatch records when an address is added to or removed from any
// interface of a node, from netlink notifications inside its namespace: no
// polling, times taken as the notifications arrive.
type addrWatch struct {
	addr netip.Addr
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	changes []addrChange
	err     error
}

type addrChange struct {
	at    time.Time
	added bool
}

func watchAddr(n *lab.Node, a netip.Addr) (*addrWatch, error) {
	h, err := netns.GetFromName(n.NS.Name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.NS.Name, err)
	}
	defer h.Close() // the subscription's socket is created at once
	w := &addrWatch{addr: a, done: make(chan struct{})}
	ch := make(chan netlink.AddrUpdate, 256)
	err = netlink.AddrSubscribeWithOptions(ch, w.done, netlink.AddrSubscribeOptions{
		Namespace: &h,
		ErrorCallback: func(err error) {
			w.mu.Lock()
			if w.err == nil {
				w.err = err
			}
			w.mu.Unlock()
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%s: address notifications: %w", n.NS.Name, err)
	}
	go func() {
		for u := range ch {
			at := time.Now()
			ip, ok := netip.AddrFromSlice(u.LinkAddress.IP)
			if !ok || ip.Unmap() != a {
				continue
			}
			w.mu.Lock()
			w.changes = append(w.changes, addrChange{at: at, added: u.NewAddr})
			w.mu.Unlock()
		}
	}()
	return w, nil
}

// firstAfter is the first addition (added) or removal after t.
func (w *addrWatch) firstAfter(t time.Time, added bool) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.changes {
		if c.added == added && c.at.After(t) {
			return c.at, true
		}
	}
	return time.Time{}, false
}

func (w *addrWatch) Close() { w.once.Do(func() { close(w.done) }) }

// trackStats summarises the successful trials of one implementation.
type trackStats struct {
	N, Failed                  int
	Median, P90, Min, Max      time.Duration
	Left, Detection, VRRP      time.Duration // medians
	DetectionMin, DetectionMax time.Duration
	VRRPMin, VRRPMax           time.Duration
	hasDetection               bool
}

func summarizeTrack(ts []trackTrial) trackStats {
	var st trackStats
	var moved, left, dets, vrrp []time.Duration
	for _, t := range ts {
		if t.Err != nil {
			st.Failed++
			continue
		}
		moved = append(moved, t.Moved)
		left = append(left, t.Left)
		if t.Detection > 0 {
			dets = append(dets, t.Detection)
			vrrp = append(vrrp, t.Moved-t.Detection)
		}
	}
	st.N = len(moved)
	if st.N == 0 {
		return st
	}
	st.Median, st.P90 = median(moved), percentile(moved, 90)
	st.Min, st.Max = slices.Min(moved), slices.Max(moved)
	st.Left = median(left)
	if len(dets) > 0 {
		st.hasDetection = true
		st.Detection, st.VRRP = median(dets), median(vrrp)
		st.DetectionMin, st.DetectionMax = slices.Min(dets), slices.Max(dets)
		st.VRRPMin, st.VRRPMax = slices.Min(vrrp), slices.Max(vrrp)
	}
	return st
}

// percentile is the nearest-rank p-th percentile of v (sorted in place).
func percentile(v []time.Duration, p float64) time.Duration {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	i := int(math.Ceil(p/100*float64(len(v)))) - 1
	return v[max(0, min(i, len(v)-1))]
}

func renderTrackReport(o trackOptions, m machine, results []trackResult) string {
	var b strings.Builder
	md := trackMasterDown()
	fmt.Fprintf(&b, "# Tracker benchmark: haad vs keepalived\n\n")
	fmt.Fprintf(&b, "- date: %s\n", m.date.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- machine: %d CPUs (nproc), Linux %s (uname -r)\n", m.cpus, m.kernel)
	fmt.Fprintf(&b, "- keepalived: %s\n", m.keepalived)
	fmt.Fprintf(&b, "- haad: %s\n", m.haad)
	fmt.Fprintf(&b, "- command: `%s`\n\n", o.command)

	fmt.Fprintf(&b, "## Time from a failing check to the VIP moving\n\n")
	fmt.Fprintf(&b, "Two nodes on one bridge, each in its own network namespace, run one VRRP instance: n1 priority %d (master),\n", trackPrioMaster)
	fmt.Fprintf(&b, "n2 priority %d (backup), VRRPv%d, adverts every %v, preemption on. Both track the same check, a root-owned\n", trackPrioBackup, trackVersion, trackAdvert)
	fmt.Fprintf(&b, "shell script (mode 0755, in a root-owned 0755 directory) that fails while a flag file exists: interval %v,\n", trackInterval)
	fmt.Fprintf(&b, "timeout %v, rise %d, fall %d, weight %d. haad runs it as a `script` tracker; keepalived as a `vrrp_script` with\n", trackInterval, trackRise, trackFall, trackWeight)
	b.WriteString("`enable_script_security` and `script_user root`. Per trial: n1 holds the VIP alone for " + trackStable.String() + ", then after a random\n")
	fmt.Fprintf(&b, "0..%v (the flag falls at any point of the check's and the adverts' cycles) the flag file is created on n1 (time 0),\n", max(trackInterval, trackAdvert))
	b.WriteString("and the times the VIP appears on n2 and leaves n1 are taken from netlink address\n")
	b.WriteString("notifications inside each node's namespace; then the flag is removed and n1 preempts back before the next trial.\n")
	fmt.Fprintf(&b, "One implementation after the other in a fresh lab, %d trials each.\n\n", o.trials)

	b.WriteString("| implementation | trials | median | p90 | min | max | VIP gone from n1 (median) | check failed (median) | VRRP part (median) |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range results {
		st := summarizeTrack(r.Trials)
		if r.Err != nil || st.N == 0 {
			why := "no successful trial"
			if r.Err != nil {
				why = oneLine(r.Err)
			}
			fmt.Fprintf(&b, "| %s | 0 | FAILED: %s | | | | | | |\n", r.Daemon, why)
			continue
		}
		det, vrrp := "n/a", "n/a"
		if st.hasDetection {
			det, vrrp = ms1(st.Detection), ms1(st.VRRP)
		}
		trials := strconv.Itoa(st.N)
		if st.Failed > 0 {
			trials += fmt.Sprintf(" (+%d failed)", st.Failed)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Daemon, trials,
			ms1(st.Median), ms1(st.P90), ms1(st.Min), ms1(st.Max), ms1(st.Left), det, vrrp)
	}

	skew := time.Duration(256-trackPrioBackup) * trackAdvert / 256
	low, high := trackInterval*(trackFall-1), trackInterval*trackFall
	b.WriteString("\nWhere the time goes. **Detection**: the flag appears at a random point of the check's cycle, so the first failing\n")
	fmt.Fprintf(&b, "run comes 0..%v later and the check fails at the %s failing run: %v..%v after the flag (interval x fall at most).\n",
		trackInterval, ordinal(trackFall), low, high)
	b.WriteString("\"check failed\" is the time of that run, as the script itself logs it. **VRRP**: n1's priority is then\n")
	fmt.Fprintf(&b, "%d, below n2's %d. The implementations differ here:\n\n", trackPrioMaster+trackWeight, trackPrioBackup)
	fmt.Fprintf(&b, "- keepalived follows RFC 5798 6.4.2: n1 goes on advertising at %d on its schedule, and n2, preempting, discards\n", trackPrioMaster+trackWeight)
	fmt.Fprintf(&b, "  those lower-priority adverts and takes over when its master-down interval (3 x %v + skew (256 - %d) / 256 x %v\n", trackAdvert, trackPrioBackup, trackAdvert)
	fmt.Fprintf(&b, "  = %s) since n1's last priority-%d advert runs out: %s..%s after the detection, depending on where in n1's\n", ms1(md), trackPrioMaster, ms1(md-trackAdvert), ms1(md))
	fmt.Fprintf(&b, "  advert cycle the check failed. Expected total: %s..%s.\n", ms1(low+md-trackAdvert), ms1(high+md))
	fmt.Fprintf(&b, "- haad's master advertises its new priority at once, and a preempting backup that hears a lower-priority master\n")
	fmt.Fprintf(&b, "  takes over after its skew time (%s) instead of the whole master-down interval (node/vrrp: updatePriority,\n", ms1(skew))
	fmt.Fprintf(&b, "  backupAdvert). Expected total: %s..%s.\n\n", ms1(low+skew), ms1(high+skew))
	b.WriteString("In both, n1 releases the VIP when it hears n2's first advert at the higher priority (\"VIP gone from n1\").\n\n")

	b.WriteString("| implementation | check failed min..max | VRRP part min..max |\n| --- | ---: | ---: |\n")
	for _, r := range results {
		st := summarizeTrack(r.Trials)
		if !st.hasDetection {
			fmt.Fprintf(&b, "| %s | n/a | n/a |\n", r.Daemon)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s..%s | %s..%s |\n", r.Daemon, ms1(st.DetectionMin), ms1(st.DetectionMax), ms1(st.VRRPMin), ms1(st.VRRPMax))
	}

	b.WriteString("\nEvery trial (flag to VIP on n2, ms; check failed after, in brackets):\n\n")
	for _, r := range results {
		var parts []string
		for _, t := range r.Trials {
			if t.Err != nil {
				parts = append(parts, "FAILED")
				continue
			}
			parts = append(parts, fmt.Sprintf("%.1f (%.1f)", msf(t.Moved), msf(t.Detection)))
		}
		if len(parts) == 0 {
			parts = []string{"none"}
		}
		fmt.Fprintf(&b, "- %s: %s\n", r.Daemon, strings.Join(parts, ", "))
	}
	var errs []string
	for _, r := range results {
		if r.Err != nil {
			errs = append(errs, fmt.Sprintf("- %s: %s", r.Daemon, oneLine(r.Err)))
		}
		for _, t := range r.Trials {
			if t.Err != nil {
				errs = append(errs, fmt.Sprintf("- %s, trial %d: %s", r.Daemon, t.N, oneLine(t.Err)))
			}
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(&b, "\nFailures:\n\n%s\n", strings.Join(errs, "\n"))
	}
	return b.String()
}

func ordinal(n int) string {
	switch n {
	case 1:
		return "1st"
	case 2:
		return "2nd"
	case 3:
		return "3rd"
	default:
		return fmt.Sprintf("%dth", n)
	}
}
