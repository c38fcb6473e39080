package main

// bench-lvs-keepalived: haad and keepalived 2.2.7 run the same
// keepalived.conf (N virtual servers x D real servers, NAT, wrr, no health
// checks: keepalived counts such real servers alive) one after the other
// in fresh namespaces, on a kernel with IPVS (make bench-lvs runs it in
// haalab vm), and the kernel's table is timed as it fills: from start to
// complete, a reload that changes one weight, a reload that replaces 1 %
// of the real servers, and stop; with each daemon's memory. Both read the
// same file, so both do the same work: parse, convert, program.

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
)

type lvsKAOptions struct {
	haad, out, command string
	sizes              []int
	dests, rounds      int
	timeout            time.Duration
}

func parseBenchLVSKeepalived(args []string, stderr io.Writer) (lvsKAOptions, error) {
	fs := flag.NewFlagSet("haalab bench-lvs-keepalived", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o lvsKAOptions
	sizes := fs.String("sizes", "1000,10000", "virtual servers, a size per comma")
	fs.StringVar(&o.haad, "haad", "bin/haad", "haad binary")
	fs.IntVar(&o.dests, "dests", 5, "real servers per virtual server")
	fs.IntVar(&o.rounds, "rounds", 2, "rounds per size; each runs both daemons, in alternating order")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "bound on each step's wait for the kernel's table")
	fs.StringVar(&o.out, "out", "out/bench-lvs-keepalived.md", "Markdown report to write")
	if err := parseFlags(fs, "bench-lvs-keepalived", args); err != nil {
		return o, err
	}
	var bad string
	var ok bool
	if o.sizes, bad, ok = intList(*sizes, 1, 50000); !ok {
		return o, usageErrorf("bench-lvs-keepalived: --sizes %q: use numbers 1..50000 separated by commas", bad)
	}
	switch {
	case o.dests < 1 || o.dests > 64:
		return o, usageErrorf("bench-lvs-keepalived: --dests %d: use 1..64", o.dests)
	case o.rounds < 1 || o.rounds > 20:
		return o, usageErrorf("bench-lvs-keepalived: --rounds %d: use 1..20", o.rounds)
	case o.timeout < time.Second || o.timeout > time.Hour:
		return o, usageErrorf("bench-lvs-keepalived: --timeout %v: use 1s..1h", o.timeout)
	}
	abs, err := filepath.Abs(o.haad)
	if err != nil {
		return o, err
	}
	o.haad = abs
	return o, nil
}

// kaTable is an IPVS table as /proc/net/ip_vs writes it: service ->
// real server -> weight, in its hexadecimal notation.
type kaTable map[string]map[string]int

// hexAddrPort is addr:port as /proc/net/ip_vs writes IPv4 (0A010000:0050).
func hexAddrPort(ap netip.AddrPort) string {
	a := ap.Addr().As4()
	return fmt.Sprintf("%02X%02X%02X%02X:%04X", a[0], a[1], a[2], a[3], ap.Port())
}

// readIPVS parses /proc/PID/net/ip_vs: the table of PID's namespace.
func readIPVS(pid int) (kaTable, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/ip_vs", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseIPVS(f)
}

// parseIPVS parses the text of /proc/net/ip_vs.
func parseIPVS(f io.Reader) (kaTable, error) {
	t := kaTable{}
	var cur map[string]int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fs := strings.Fields(line)
		switch {
		case len(fs) >= 4 && fs[0] == "->" && cur != nil:
			w, err := strconv.Atoi(fs[3])
			if err != nil {
				return nil, fmt.Errorf("ip_vs: %q: %w", line, err)
			}
			cur[fs[1]] = w
		case len(fs) >= 2 && (fs[0] == "TCP" || fs[0] == "UDP" || fs[0] == "SCTP" || fs[0] == "FWM"):
			cur = map[string]int{}
			t[fs[0]+" "+fs[1]] = cur
		}
	}
	return t, sc.Err()
}

func (t kaTable) dests() int {
	n := 0
	for _, ds := range t {
		n += len(ds)
	}
	return n
}

func (t kaTable) equal(u kaTable) bool {
	if len(t) != len(u) {
		return false
	}
	for k, ds := range t {
		if e, ok := u[k]; !ok || !maps.Equal(ds, e) {
			return false
		}
	}
	return true
}

// kaScenario is the benchmark's table at one step: weights per real
// server, the real servers of virtual server i, j-th replaced (moved)
// or not.
type kaScenario struct {
	services, dests int
	// weight overrides one real server's weight (the reload's change);
	// moved: real servers replaced by others (the 1 % reload).
	weight map[[2]int]int
	moved  map[[2]int]bool
}

// movedReal is the replacement of real server j of virtual server i.
func movedReal(i, j, dests int) netip.AddrPort {
	r := lvsReal(i, j, dests)
	a := r.Addr().As4()
	a[1] += 10 // 10.200.x.y -> 10.210.x.y
	return netip.AddrPortFrom(netip.AddrFrom4(a), r.Port())
}

func (s kaScenario) real(i, j int) (netip.AddrPort, int) {
	w := j%3 + 1
	if v, ok := s.weight[[2]int{i, j}]; ok {
		w = v
	}
	if s.moved[[2]int{i, j}] {
		return movedReal(i, j, s.dests), w
	}
	return lvsReal(i, j, s.dests), w
}

// conf is the keepalived.conf of the step.
func (s kaScenario) conf() string {
	var b strings.Builder
	b.Grow(s.services * (120 + 40*s.dests))
	b.WriteString("global_defs {\n    router_id n1\n}\n")
	for i := range s.services {
		v := lvsVIP(i)
		fmt.Fprintf(&b, "virtual_server %s %d {\n    delay_loop 60\n    lb_algo wrr\n    lb_kind NAT\n    protocol TCP\n", v.Addr(), v.Port())
		for j := range s.dests {
			r, w := s.real(i, j)
			fmt.Fprintf(&b, "    real_server %s %d {\n        weight %d\n    }\n", r.Addr(), r.Port(), w)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// table is what the kernel must hold at the step.
func (s kaScenario) table() kaTable {
	t := make(kaTable, s.services)
	for i := range s.services {
		ds := make(map[string]int, s.dests)
		for j := range s.dests {
			r, w := s.real(i, j)
			ds[hexAddrPort(r)] = w
		}
		t["TCP "+hexAddrPort(lvsVIP(i))] = ds
	}
	return t
}

// kaRun is one daemon's run at one size.
type kaRun struct {
	daemon                 string
	start, weight, replace time.Duration
	stop                   time.Duration
	rss, rssTotal          uint64 // haad; keepalived: its checker, and all its processes
	changed                int    // real servers the 1 % reload replaced
}

func runBenchLVSKeepalived(s *session, command string, args []string, stderr io.Writer) error {
	o, err := parseBenchLVSKeepalived(args, stderr)
	if err != nil {
		return err
	}
	o.command = command
	if _, err := os.Stat(lab.IPVSProcFile); err != nil {
		return fmt.Errorf("bench-lvs-keepalived needs a kernel with IPVS (%s missing): make bench-lvs runs it in haalab vm", lab.IPVSProcFile)
	}
	if err := lab.Available(); err != nil {
		return fmt.Errorf("bench-lvs-keepalived needs network namespaces: %w", err)
	}
	ka, err := lab.KeepalivedPath()
	if err != nil {
		return err
	}
	results := map[int][]kaRun{}
	for _, size := range o.sizes {
		for r := range o.rounds {
			order := []string{"keepalived", "haad"}
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, d := range order {
				if err := s.err(); err != nil {
					return err
				}
				res, err := runKA(s, o, ka, d, size)
				if err != nil {
					return fmt.Errorf("%d virtual servers, round %d, %s: %w", size, r+1, d, err)
				}
				s.say("%d x %d, round %d, %-10s start %s, weight reload %s, 1%% reload (%d real servers) %s, stop %s, RSS %s (all processes %s)",
					size, o.dests, r+1, d, lvsDur(res.start), lvsDur(res.weight), res.changed, lvsDur(res.replace), lvsDur(res.stop),
					mib(int64(res.rss)), mib(int64(res.rssTotal)))
				results[size] = append(results[size], res)
			}
		}
	}
	report := renderKAReport(o, ka, results, time.Now().UTC())
	fmt.Fprintln(s.out)
	fmt.Fprint(s.out, report)
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(o.out, []byte(report), 0o644)
}

// runKA runs one daemon through the steps in a fresh one-node lab.
func runKA(s *session, o lvsKAOptions, keepalived, daemon string, size int) (res kaRun, err error) {
	res.daemon = daemon
	l, err := s.newLab(lab.Options{Prefix: lab.UniqueName("hlka"), Nodes: 1, Clients: -1})
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := s.closeLab(l); cerr != nil {
			err = errors.Join(err, fmt.Errorf("removing lab %s: %w", l.Prefix, cerr))
		}
	}()
	dir, err := os.MkdirTemp("", "haalab-ka")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	node := l.Nodes[0]
	conf := filepath.Join(dir, "keepalived.conf")
	sc := kaScenario{services: size, dests: o.dests}
	if err := os.WriteFile(conf, []byte(sc.conf()), 0o644); err != nil {
		return res, err
	}
	// Both binaries' files are read once first: a first start would
	// otherwise time reading them (haad's is 30 MB) through the VM's 9p.
	for _, bin := range []string{keepalived, o.haad} {
		if f, err := os.Open(bin); err == nil {
			_, _ = io.Copy(io.Discard, f)
			f.Close()
		}
	}
	logFile := filepath.Join(dir, daemon+".log")
	chkPID := filepath.Join(dir, "chk.pid")
	var p *lab.Proc
	t0 := time.Now()
	switch daemon {
	case "keepalived":
		// -C: only the checkers (the LVS part), as haad runs only what
		// the file has; -G: not on the host's syslog.
		p, err = node.Start(logFile, keepalived, "-n", "-l", "-G", "-C", "-f", conf,
			"-p", filepath.Join(dir, "ka.pid"), "-c", chkPID)
	default:
		f := node.HaadFiles(dir)
		p, err = node.Start(logFile, o.haad, "--keepalived-config", conf, "--state-file", f.State,
			"--fleet-file", f.Fleet, "--socket", f.Socket, "--log-level", "warn")
	}
	if err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = p.Stop(10 * time.Second)
		}
		if err != nil {
			err = fmt.Errorf("%w (%s)", err, lvsLogTail(logFile))
		}
	}()
	wait := func(step string, want kaTable, since time.Time) (time.Duration, error) {
		var last kaTable
		err := lab.Poll(o.timeout, 20*time.Millisecond, step, func() (bool, error) {
			if p.Exited() {
				return false, fmt.Errorf("%s exited", daemon)
			}
			t, err := readIPVS(p.Pid())
			if err != nil {
				return false, err
			}
			last = t
			return t.equal(want), nil
		})
		if err != nil {
			return 0, fmt.Errorf("%w: the kernel holds %d services and %d real servers, want %d and %d", err,
				len(last), last.dests(), len(want), want.dests())
		}
		return time.Since(since), nil
	}
	if res.start, err = wait("the table, from start", sc.table(), t0); err != nil {
		return res, err
	}
	time.Sleep(time.Second) // settled: memory after the work
	res.rss, res.rssTotal = daemonRSS(p.Pid(), daemon, chkPID)

	// Reloads: the file rewritten, SIGHUP, the table waited for.
	reload := func(step string) (time.Duration, error) {
		if err := os.WriteFile(conf, []byte(sc.conf()), 0o644); err != nil {
			return 0, err
		}
		t0 := time.Now()
		if err := p.Signal(syscall.SIGHUP); err != nil {
			return 0, err
		}
		return wait(step, sc.table(), t0)
	}
	sc.weight = map[[2]int]int{{size / 2, 1}: 9}
	if res.weight, err = reload("the table, after a reload changing one weight"); err != nil {
		return res, err
	}

	// A reload that replaces 1 % of the real servers.
	sc.moved = map[[2]int]bool{}
	for k := 0; k < size*o.dests; k += 100 {
		sc.moved[[2]int{k / o.dests, k % o.dests}] = true
	}
	res.changed = len(sc.moved)
	if res.replace, err = reload("the table, after a reload replacing 1% of the real servers"); err != nil {
		return res, err
	}

	// Stop: both remove what they programmed.
	t1 := time.Now()
	serr := p.Stop(o.timeout)
	res.stop = time.Since(t1)
	stopped = true
	if serr != nil {
		return res, fmt.Errorf("%s stopped with %v after SIGTERM", daemon, serr)
	}
	return res, nil
}

// daemonRSS is haad's resident set, or keepalived's checker's and the sum
// over its processes (the parent and the checker).
func daemonRSS(pid int, daemon, chkPIDFile string) (main, total uint64) {
	self, _ := procMem(pid, "VmRSS")
	if daemon != "keepalived" {
		return self, self
	}
	b, err := os.ReadFile(chkPIDFile)
	if err != nil {
		return 0, self
	}
	cpid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, self
	}
	chk, _ := procMem(cpid, "VmRSS")
	return chk, self + chk
}

func renderKAReport(o lvsKAOptions, ka string, results map[int][]kaRun, date time.Time) string {
	var b strings.Builder
	kernel := "unknown"
	if v, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(v))
	}
	kaVersion := "keepalived"
	if out, err := exec.Command(ka, "--version").CombinedOutput(); err == nil || len(out) > 0 {
		kaVersion, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	}
	fmt.Fprintf(&b, "# IPVS: haad and keepalived programming the same keepalived.conf\n\n")
	fmt.Fprintf(&b, "- date: %s\n- kernel: %s (%d CPUs)\n- %s; haad: %s\n- command: `%s`\n\n", date.Format("2006-01-02 15:04 UTC"), kernel,
		runtime.NumCPU(), kaVersion, o.haad, o.command)
	b.WriteString("Each daemon runs the same file (N virtual servers x " + strconv.Itoa(o.dests) + " real servers, NAT, wrr, no health checks) alone in a fresh\n" +
		"namespace: keepalived with -C (checkers only), haad with --keepalived-config. Times are from start (or SIGHUP) until\n" +
		"the kernel's table (/proc/PID/net/ip_vs, polled every 20 ms) is exactly the file's. RSS: haad; keepalived's\n" +
		"checker process (and, in brackets, with its parent), one second after the table was complete. Median of the rounds;\n" +
		"the daemons alternate which goes first.\n\n")
	b.WriteString("| virtual servers | daemon | start -> table complete | reload: one weight | reload: 1 % of real servers replaced | stop | RSS |\n")
	b.WriteString("| ---: | --- | ---: | ---: | ---: | ---: | ---: |\n")
	for _, size := range o.sizes {
		for _, d := range []string{"keepalived", "haad"} {
			var start, weight, replace, stop []time.Duration
			var rss, total []int64
			for _, r := range results[size] {
				if r.daemon != d {
					continue
				}
				start, weight, replace, stop = append(start, r.start), append(weight, r.weight), append(replace, r.replace), append(stop, r.stop)
				rss, total = append(rss, int64(r.rss)), append(total, int64(r.rssTotal))
			}
			if len(start) == 0 {
				continue
			}
			mem := mib(medianInt(rss))
			if d == "keepalived" {
				mem += " (" + mib(medianInt(total)) + ")"
			}
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s |\n", size, d, lvsDur(median(start)), lvsDur(median(weight)),
				lvsDur(median(replace)), lvsDur(median(stop)), mem)
		}
	}
	b.WriteString("\nEvery round:\n\n| virtual servers | daemon | start | one weight | 1 % | stop | RSS |\n| ---: | --- | ---: | ---: | ---: | ---: | ---: |\n")
	for _, size := range o.sizes {
		for _, r := range results[size] {
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s |\n", size, r.daemon, lvsDur(r.start), lvsDur(r.weight), lvsDur(r.replace),
				lvsDur(r.stop), mib(int64(r.rss)))
		}
	}
	return b.String()
}
