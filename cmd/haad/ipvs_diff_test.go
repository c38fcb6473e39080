package main

// The IPVS differential suite: for every keepalived.conf of testdata/ipvs
// (its README.md describes the lab and the files' "# diff:" lines),
// keepalived 2.2.7 and `haad --keepalived-config` run the same file, one
// after the other, in one lab (a director namespace and a namespace of
// real servers), and `ipvsadm -S -n` in the director's namespace must be
// the same at start, after a reload, after some real servers fail, after
// they return and after the daemon stops. A difference passes only when
// it is listed in explainedDiffs with the warning of `haad --check` that
// names it. It needs a kernel with IPVS: make test-ipvs runs it in a VM.

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
)

// corpusDir holds the suite's keepalived.conf files.
const corpusDir = "testdata/ipvs"

// The snapshots of a run, in order ("reload" only for files that reload).
const (
	phaseStart  = "start"
	phaseReload = "reload"
	phaseFail   = "fail"
	phaseReturn = "return"
	phaseStop   = "stop"
)

// Timing of the runs. The files' checks find a stopped server within about
// 2 s (delay_loop 1, retry 1, delay_before_retry 0.5); the bounds are
// generous, for a loaded VM under TCG emulation.
const (
	// diffReady bounds a daemon's start: haad serving its API,
	// keepalived logging "Startup complete".
	diffReady = 60 * time.Second
	// diffTimeout bounds the wait for a daemon to act on a step: for
	// keepalived, to change the table (or log that it changed each
	// failing or returning real server); for haad, to make its table
	// keepalived's (after that it is compared as it is).
	diffTimeout = 20 * time.Second
	// diffConfirm: how long a table must stay as it is once keepalived
	// logged every change awaited (or started), or before it is read
	// with ipvsadm.
	diffConfirm = 1500 * time.Millisecond
	// diffSettle is added to the file's longest delay_loop where nothing
	// tells when keepalived is done: after a reload, or for the dynamic
	// weights of its first checks. It is also how long a table of haad's
	// that is not keepalived's must stay the same to be compared.
	diffSettle = 2500 * time.Millisecond
	// diffStopTimeout bounds a daemon's clean stop.
	diffStopTimeout = 20 * time.Second
	// diffPoll is how often the table is read (through netlink, in
	// process: ipvsadm runs once it has stayed the same for
	// diffConfirm).
	diffPoll = 200 * time.Millisecond
	// diffParallel is how many labs run files at once; they start
	// diffStagger apart, so that not all build a lab and start a daemon
	// at the same moment (in the VM, that burst takes seconds).
	diffParallel = 8
	diffStagger  = 1500 * time.Millisecond
	// diffAttempts: how many times a file runs when real servers that
	// were not stopped failed their checks (a loaded VM).
	diffAttempts = 2
)

// explainedDiff is a difference between the tables that haad announces:
// in the snapshots named, keepalived's table has the lines onlyKeepalived
// that haad's has not, and haad's the lines onlyHaad, and haad --check
// prints each of warnings (a part of the line is enough). Every listed
// difference must occur: one that no longer does is reported, so that the
// list stays true.
type explainedDiff struct {
	file           string
	phases         []string
	onlyKeepalived []string
	onlyHaad       []string
	warnings       []string
}

var explainedDiffs = []explainedDiff{
	{
		// One-packet scheduling (-o) and the SIP persistence engine
		// (--pe sip): haa programs neither.
		file:           "udp-sip.conf",
		phases:         []string{phaseStart, phaseFail, phaseReturn},
		onlyKeepalived: []string{"-A -u 10.77.0.119:5060 -s rr -p 30 --pe sip -o"},
		onlyHaad:       []string{"-A -u 10.77.0.119:5060 -s rr -p 30"},
		warnings: []string{
			"ops: haa has no one-packet scheduling",
			"persistence_engine: haa has no IPVS persistence engines",
		},
	},
	{
		// Scheduler flags (-b): haa sets none.
		file:           "sched-flags.conf",
		phases:         []string{phaseStart, phaseFail, phaseReturn},
		onlyKeepalived: []string{"-A -t 10.77.0.120:80 -s sh -b sh-fallback,sh-port", "-A -t 10.77.0.120:443 -s mh -b mh-fallback"},
		onlyHaad:       []string{"-A -t 10.77.0.120:80 -s sh", "-A -t 10.77.0.120:443 -s mh"},
		warnings: []string{
			"sh-port: scheduler flags are not supported",
			"sh-fallback: scheduler flags are not supported",
			"mh-fallback: scheduler flags are not supported",
		},
	},
	{
		// A NAT sorry server given without a port: keepalived programs
		// port 0 (each connection keeps its port), haa the service's.
		file:           "sorry-nat-noport.conf",
		phases:         []string{phaseFail},
		onlyKeepalived: []string{"-a -t 10.77.0.121:80 -r 10.77.0.209:0 -m -w 1"},
		onlyHaad:       []string{"-a -t 10.77.0.121:80 -r 10.77.0.209:80 -m -w 1"},
		warnings: []string{
			"sorry_server: keepalived programs a NAT sorry server given without a port with port 0",
		},
	},
}

// skippedDiffFiles are files whose difference this suite found and that
// is not fixed yet: what differs, and whether haad --check refuses the file
// (TestIPVSDiffCorpus reports a skip that no longer holds).
var skippedDiffFiles = map[string]struct {
	why     string
	refused bool
}{}

// corpusFile is a keepalived.conf of the corpus with its "# diff:" lines.
type corpusFile struct {
	name         string
	text         string // @TESTDATA@ replaced
	reload       string // the text after the reload; "" for none
	fail         []netip.Addr
	beforeStart  [][]string // ipvsadm arguments
	beforeReload [][]string
	// delayLoop is the longest delay_loop of the file (and its reload):
	// keepalived's first checks come within one after its start.
	delayLoop time.Duration
}

// phases are the snapshots of a run of f, in order.
func (f *corpusFile) phases() []string {
	p := []string{phaseStart}
	if f.reload != "" {
		p = append(p, phaseReload)
	}
	if len(f.fail) > 0 {
		p = append(p, phaseFail, phaseReturn)
	}
	return append(p, phaseStop)
}

var delayLoopRE = regexp.MustCompile(`(?m)^\s*delay_loop\s+(\S+)`)

// readCorpus reads the files of corpusDir (but those that another one
// names as its reload).
func readCorpus(t *testing.T) []*corpusFile {
	t.Helper()
	dir, err := filepath.Abs(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.conf"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no keepalived files in %s: %v", dir, err)
	}
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		return strings.ReplaceAll(string(b), "@TESTDATA@", dir), err
	}
	var files []*corpusFile
	reloads := map[string]bool{}
	for _, path := range names {
		f := &corpusFile{name: filepath.Base(path)}
		if f.text, err = read(f.name); err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(f.text, "\n") {
			rest, ok := strings.CutPrefix(line, "# diff: ")
			if !ok {
				continue
			}
			word, args, _ := strings.Cut(rest, " ")
			fields := strings.Fields(args)
			switch word {
			case "fail":
				for _, a := range fields {
					ip, err := netip.ParseAddr(a)
					if err != nil {
						t.Fatalf("%s:%d: %v", f.name, i+1, err)
					}
					f.fail = append(f.fail, ip)
				}
			case "before-start":
				f.beforeStart = append(f.beforeStart, fields)
			case "before-reload":
				f.beforeReload = append(f.beforeReload, fields)
			case "reload":
				if f.reload, err = read(args); err != nil {
					t.Fatalf("%s:%d: %v", f.name, i+1, err)
				}
				reloads[args] = true
			default:
				t.Fatalf("%s:%d: unknown %q: want fail, before-start, reload or before-reload", f.name, i+1, line)
			}
		}
		for _, m := range delayLoopRE.FindAllStringSubmatch(f.text+f.reload, -1) {
			secs, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				t.Fatalf("%s: delay_loop %s: %v", f.name, m[1], err)
			}
			f.delayLoop = max(f.delayLoop, time.Duration(secs*float64(time.Second)))
		}
		files = append(files, f)
	}
	files = slices.DeleteFunc(files, func(f *corpusFile) bool { return reloads[f.name] })
	for _, f := range files {
		if len(f.fail) == 0 {
			t.Fatalf("%s: no \"# diff: fail ADDR...\" line: every file makes servers fail", f.name)
		}
	}
	return files
}

// diffResult is what a file's runs gave.
type diffResult struct {
	warnings []string                       // haad --check's warnings
	tables   map[string]map[string][]string // daemon, phase: ipvsadm -S -n, sorted
	logs     map[string]string              // daemon: the end of its log
	errors   []string                       // haad's log lines at level ERROR
	notes    []string
	err      error
}

// TestIPVSTableMatchesKeepalived is the differential suite (see the top of
// this file): every file of testdata/ipvs, keepalived then haad, the
// tables compared snapshot by snapshot.
func TestIPVSTableMatchesKeepalived(t *testing.T) {
	lab.RequireIPVS(t)
	requireKeepalived(t)
	ipvsadm, err := exec.LookPath("ipvsadm")
	if err != nil {
		t.Fatalf("ipvsadm is needed to read the tables (apt-get install ipvsadm): %v", err)
	}
	files := readCorpus(t)
	bin := haad(t)
	dir := t.TempDir()

	// diffParallel labs, each running files one after the other; the
	// subtests report them in order.
	results := make([]chan *diffResult, len(files))
	var run []int
	for i, f := range files {
		if _, skip := skippedDiffFiles[f.name]; !skip && subtestSelected(f.name) {
			results[i] = make(chan *diffResult, 1)
			run = append(run, i)
		}
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var closeErrs []error
	for w := range min(diffParallel, len(run)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(w) * diffStagger) // spreading the load, not waiting for anything
			var dl *diffLab
			for i := range jobs {
				if dl == nil { // the first job, or the last lab could not be built
					var err error
					dl, err = newDiffLab(filepath.Join(dir, fmt.Sprintf("lab%d-%d", w, i)), ipvsadm)
					if err != nil {
						results[i] <- &diffResult{err: fmt.Errorf("building the lab: %w", err)}
						continue
					}
				}
				results[i] <- runDiffFile(dl, files[i], bin, filepath.Join(dir, strings.TrimSuffix(files[i].name, ".conf")))
			}
			if dl != nil {
				if err := dl.close(); err != nil {
					mu.Lock()
					closeErrs = append(closeErrs, err)
					mu.Unlock()
				}
			}
		}()
	}
	go func() {
		for _, i := range run {
			jobs <- i
		}
		close(jobs)
	}()
	t.Cleanup(func() {
		wg.Wait() // every lab closed before the test ends
		for _, err := range closeErrs {
			t.Errorf("closing a lab: %v", err)
		}
	})

	var compared, identical, explained int
	for i, f := range files {
		t.Run(f.name, func(t *testing.T) {
			if sk, skip := skippedDiffFiles[f.name]; skip {
				t.Skip("known difference, not fixed yet: " + sk.why)
			}
			if results[i] == nil {
				t.Fatalf("not run: subtestSelected disagrees with -test.run")
			}
			res := <-results[i]
			for _, n := range res.notes {
				t.Log(n)
			}
			logs := func() {
				for _, d := range []string{"keepalived", "haad"} {
					if l, ok := res.logs[d]; ok {
						t.Logf("--- the end of %s's log:\n%s", d, l)
					}
				}
			}
			if res.err != nil {
				logs()
				t.Fatal(res.err)
			}
			c, same, ex := compareDiffTables(t, f, res)
			compared, identical, explained = compared+c, identical+same, explained+ex
			// The same table, but reached through a failure (a plan the
			// kernel refused, retried): keepalived programs it at once.
			for _, l := range res.errors {
				t.Errorf("haad logged an error: %s", l)
			}
			if t.Failed() {
				logs()
			}
		})
	}
	t.Logf("%d files, %d snapshots compared: %d identical, %d with an explained difference, %d not",
		len(files), compared, identical, explained, compared-identical-explained)
}

// subtestSelected reports whether -test.run's pattern for the subtests
// (after its first "/") lets the subtest name run, so that the files a
// run leaves out are not run in the background either.
func subtestSelected(name string) bool {
	f := flag.Lookup("test.run")
	if f == nil {
		return true
	}
	parts := strings.SplitN(f.Value.String(), "/", 3)
	if len(parts) < 2 || parts[1] == "" {
		return true
	}
	re, err := regexp.Compile(parts[1])
	return err != nil || re.MatchString(name)
}

// compareDiffTables compares the snapshots of f's two runs and returns how
// many it compared, how many were identical and how many differed as
// explainedDiffs says.
func compareDiffTables(t *testing.T, f *corpusFile, res *diffResult) (compared, identical, explained int) {
	t.Helper()
	ka, hd := res.tables["keepalived"], res.tables["haad"]
	for _, phase := range f.phases() {
		compared++
		k, h := ka[phase], hd[phase]
		onlyK, onlyH := lineDiff(k, h)
		var wantK, wantH []string
		var why []explainedDiff
		for _, ex := range explainedDiffs {
			if ex.file == f.name && slices.Contains(ex.phases, phase) {
				wantK, wantH = append(wantK, ex.onlyKeepalived...), append(wantH, ex.onlyHaad...)
				why = append(why, ex)
			}
		}
		slices.Sort(wantK)
		slices.Sort(wantH)
		switch {
		case len(onlyK) == 0 && len(onlyH) == 0 && len(why) == 0:
			identical++
			t.Logf("%s: identical:\n%s", phase, indent(k))
			continue
		case len(onlyK) == 0 && len(onlyH) == 0:
			t.Errorf("%s: the tables are identical, but explainedDiffs expects a difference here: remove it from the list", phase)
			continue
		case slices.Equal(onlyK, wantK) && slices.Equal(onlyH, wantH):
			ok := true
			for _, ex := range why {
				for _, w := range ex.warnings {
					if !slices.ContainsFunc(res.warnings, func(l string) bool { return strings.Contains(l, w) }) {
						t.Errorf("%s: the difference is explained by the warning %q, which haad --check no longer prints (its warnings: %q)", phase, w, res.warnings)
						ok = false
					}
				}
			}
			if ok {
				explained++
				t.Logf("%s: explained difference: keepalived %q, haad %q", phase, onlyK, onlyH)
			}
			continue
		}
		t.Errorf("%s: the tables differ\nonly keepalived's: %q\nonly haad's:       %q\nkeepalived's table:\n%s\nhaad's table:\n%s\nhaad's warnings:\n%s",
			phase, onlyK, onlyH, indent(k), indent(h), indent(res.warnings))
	}
	return compared, identical, explained
}

// lineDiff returns the lines only a has and those only b has (both
// sorted).
func lineDiff(a, b []string) (onlyA, onlyB []string) {
	for _, l := range a {
		if !slices.Contains(b, l) {
			onlyA = append(onlyA, l)
		}
	}
	for _, l := range b {
		if !slices.Contains(a, l) {
			onlyB = append(onlyB, l)
		}
	}
	return onlyA, onlyB
}

func indent(lines []string) string {
	if len(lines) == 0 {
		return "    (empty)"
	}
	return "    " + strings.Join(lines, "\n    ")
}

// diffRun is a file's run in a lab.
type diffRun struct {
	*diffLab
	f            *corpusFile
	text, reload string // the file's, with the lab's @WEIGHTS@
	bin, dir     string
	spurious     []string // real servers found down while serving (spuriousDowns)
}

// runDiffFile runs f with keepalived, then with haad, in dl. It runs
// haad --check for its warnings only when there is a difference to
// explain. When a real server that was not stopped failed its checks (the
// VM is loaded: a check timed out), the tables mean nothing: the file runs
// again, up to diffAttempts times.
func runDiffFile(dl *diffLab, f *corpusFile, bin, dir string) *diffResult {
	for _, a := range f.fail {
		if dl.servers[a] == nil {
			return &diffResult{err: fmt.Errorf("# diff: fail %s: no such real server in the lab (README.md)", a)}
		}
	}
	var notes []string
	for attempt := 1; ; attempt++ {
		r := &diffRun{diffLab: dl, f: f, bin: bin, dir: filepath.Join(dir, fmt.Sprint(attempt)),
			text: strings.ReplaceAll(f.text, "@WEIGHTS@", dl.weights), reload: strings.ReplaceAll(f.reload, "@WEIGHTS@", dl.weights)}
		res := r.run()
		res.notes = append(notes, res.notes...)
		if len(r.spurious) == 0 {
			return res
		}
		msg := fmt.Sprintf("attempt %d: real servers that were not stopped failed their checks: %s", attempt, strings.Join(r.spurious, "; "))
		if attempt == diffAttempts {
			res.err = errors.Join(res.err, errors.New(msg))
			return res
		}
		notes = append(res.notes, msg+": running the file again")
	}
}

// run runs the file with keepalived, then with haad.
func (r *diffRun) run() *diffResult {
	res := &diffResult{tables: map[string]map[string][]string{}, logs: map[string]string{}}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		res.err = err
		return res
	}
	var ref map[string][]string // haad's target
	for _, d := range []string{"keepalived", "haad"} {
		tables, err := r.runDaemon(d, ref, res)
		res.tables[d] = tables
		if err != nil {
			res.err = fmt.Errorf("%s: %w", d, err)
			if d == "haad" {
				_, out := r.check()
				res.err = fmt.Errorf("%w\nhaad --check --keepalived-config:\n%s", res.err, out)
			}
			return res
		}
		ref = haadTarget(r.f, tables)
	}
	for _, phase := range r.f.phases() {
		if !slices.Equal(res.tables["keepalived"][phase], res.tables["haad"][phase]) {
			var out string
			res.warnings, out = r.check()
			if res.warnings == nil && !strings.Contains(out, " is valid ") {
				res.err = fmt.Errorf("haad --check --keepalived-config refuses the file it ran:\n%s", out)
			}
			break
		}
	}
	return res
}

// spuriousDowns returns the real servers that daemon d's log says failed
// while they were serving: before the fail step (the log's first failOff
// bytes), or after it but not among the failing ones.
func spuriousDowns(d, log string, failOff int, fail []netip.Addr) []string {
	var out []string
	off := 0
	for _, l := range strings.SplitAfter(log, "\n") {
		at := off
		off += len(l)
		var who string
		switch d {
		case "keepalived":
			for _, verb := range []string{"Removing service [", "Disabling service ["} {
				if _, rest, ok := strings.Cut(l, verb); ok {
					who, _, _ = strings.Cut(rest, "]")
				}
			}
		default:
			if strings.Contains(l, `msg="real server down"`) {
				if _, rest, ok := strings.Cut(l, " real_server="); ok {
					who, _, _ = strings.Cut(rest, " ")
					if ap, err := netip.ParseAddrPort(who); err == nil {
						who = ap.Addr().String()
					}
				}
			}
		}
		a, err := netip.ParseAddr(who)
		if err != nil {
			continue
		}
		if at < failOff || !slices.Contains(fail, a) {
			out = append(out, fmt.Sprintf("%s: %s", d, strings.TrimSpace(l)))
		}
	}
	return out
}

// check returns the warnings of haad --check --keepalived-config for the
// file, and its whole output.
func (r *diffRun) check() ([]string, string) {
	conf := filepath.Join(r.dir, r.f.name)
	if err := os.WriteFile(conf, []byte(r.text), 0o644); err != nil {
		return nil, err.Error()
	}
	out, err := exec.Command(r.bin, "--check", "--keepalived-config", conf).CombinedOutput()
	if err != nil {
		return nil, fmt.Sprintf("%s(%v)", out, err)
	}
	var warnings []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "haad: warning: ") {
			warnings = append(warnings, l)
		}
	}
	return warnings, string(out)
}

// haadTarget is what haad's table should be at each phase: keepalived's,
// with the differences of explainedDiffs.
func haadTarget(f *corpusFile, ka map[string][]string) map[string][]string {
	want := map[string][]string{}
	for phase, lines := range ka {
		lines = slices.Clone(lines)
		for _, ex := range explainedDiffs {
			if ex.file == f.name && slices.Contains(ex.phases, phase) {
				lines = slices.DeleteFunc(lines, func(l string) bool { return slices.Contains(ex.onlyKeepalived, l) })
				lines = append(lines, ex.onlyHaad...)
			}
		}
		slices.Sort(lines)
		want[phase] = lines
	}
	return want
}

// runDaemon runs the file with daemon d ("keepalived" or "haad") from an
// empty table, and returns its table at each phase. With ref (haad's run),
// each wait ends as soon as the table is ref's for that phase and stays so.
func (r *diffRun) runDaemon(d string, ref map[string][]string, res *diffResult) (map[string][]string, error) {
	tables := map[string][]string{}
	t00 := time.Now()
	defer func() { res.notes = append(res.notes, fmt.Sprintf("%s: %.1fs in all", d, time.Since(t00).Seconds())) }()
	for _, s := range r.servers {
		if err := s.start(); err != nil {
			return tables, err
		}
	}
	if _, err := r.ipvsadm("-C"); err != nil {
		return tables, err
	}
	if fp, err := r.fingerprint(); err != nil || fp != "" {
		return tables, fmt.Errorf("the table is not empty after ipvsadm -C: %q %v", fp, err)
	}
	for _, args := range r.f.beforeStart {
		if _, err := r.ipvsadm(args...); err != nil {
			return tables, err
		}
	}
	// The file the daemon runs (and a reload rewrites): lab's.
	conf := r.director.KeepalivedFiles(r.dir).Conf
	if d == "haad" {
		conf = r.director.HaadFiles(r.dir).Keepalived
	}
	var p *lab.Proc
	var took []string // how long each phase took
	failOff := -1     // the log's length when the servers were stopped
	defer func() {
		res.notes = append(res.notes, fmt.Sprintf("%s: %s", d, strings.Join(took, ", ")))
		if p != nil {
			_ = p.Kill()
			log := readFile(p.Log)
			res.logs[d] = tail(log, 40)
			if failOff < 0 {
				failOff = len(log)
			}
			r.spurious = append(r.spurious, spuriousDowns(d, log, failOff, r.f.fail)...)
			if d == "haad" {
				for _, l := range strings.Split(log, "\n") {
					if strings.Contains(l, " level=ERROR ") {
						res.errors = append(res.errors, l)
					}
				}
			}
		}
	}()
	// step carries out act and waits for the daemon to act on it; up
	// says which way the failing servers go (nil: they do not).
	step := func(phase string, up *bool, act func() error) error {
		before, err := r.fingerprint()
		if err != nil {
			return err
		}
		var logged func() bool
		settle := diffConfirm
		switch {
		case d != "keepalived":
		case phase == phaseStart:
			// Ready: keepalived logged "Startup complete", after
			// programming every service. Dynamic weights come with
			// the first checks, within one delay_loop.
			logged = func() bool { return true }
			if strings.Contains(r.text, "misc_dynamic") {
				settle += r.f.delayLoop + diffSettle
			}
		case up != nil:
			logged = keepalivedLogged(p.Log, len(readFile(p.Log)), r.f.fail, *up)
		default:
			settle = diffSettle + r.f.delayLoop
		}
		t0 := time.Now()
		if err := act(); err != nil {
			return err
		}
		t, err := r.await(p, phase, before, ref[phase], logged, settle)
		tables[phase] = t
		took = append(took, fmt.Sprintf("%s %.1fs", phase, time.Since(t0).Seconds()))
		return err
	}
	t0 := time.Now()
	err := step(phaseStart, nil, func() error {
		var err error
		p, err = r.startDaemon(d)
		took = append(took, fmt.Sprintf("ready %.1fs", time.Since(t0).Seconds()))
		return err
	})
	if err != nil {
		return tables, err
	}
	if r.f.reload != "" {
		for _, args := range r.f.beforeReload {
			if _, err := r.ipvsadm(args...); err != nil {
				return tables, err
			}
		}
		err := step(phaseReload, nil, func() error {
			if err := os.WriteFile(conf, []byte(r.reload), 0o644); err != nil {
				return err
			}
			return p.Signal(syscall.SIGHUP)
		})
		if err != nil {
			return tables, err
		}
	}
	down, up := false, true
	failOff = len(readFile(p.Log))
	if err := step(phaseFail, &down, func() error { return r.setServers(false) }); err != nil {
		return tables, err
	}
	if err := step(phaseReturn, &up, func() error { return r.setServers(true) }); err != nil {
		return tables, err
	}
	if err := p.Stop(diffStopTimeout); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return tables, fmt.Errorf("stopping: %w", err)
		}
		res.notes = append(res.notes, fmt.Sprintf("%s exited with %v after SIGTERM", d, err))
	}
	t, err := r.snapshot()
	tables[phaseStop] = t
	return tables, err
}

// startDaemon starts d with the file in the director's namespace, and
// waits until it runs.
func (r *diffRun) startDaemon(d string) (*lab.Proc, error) {
	if d == "keepalived" {
		// -C: the checkers only (the files have no VRRP instance).
		p, err := r.director.StartKeepalivedLVS(r.dir, r.text)
		if err != nil {
			return nil, err
		}
		log := r.director.KeepalivedFiles(r.dir).Log
		return p, lab.Poll(diffReady, diffPoll, "keepalived's start", func() (bool, error) {
			if p.Exited() {
				return false, fmt.Errorf("keepalived exited: %v", p.Wait())
			}
			return strings.Contains(readFile(log), "Startup complete"), nil
		})
	}
	p, err := r.director.StartHaadKeepalived(r.dir, r.bin, r.text,
		"--status-file", filepath.Join(r.dir, "status.json"), "--log-level", "debug")
	if err != nil {
		return nil, err
	}
	// (lab.WaitAPI polls every 10 ms: a stat of a missing file costs much
	// in the VM, whose root is a 9p mount.)
	sock := r.director.HaadFiles(r.dir).Socket
	return p, lab.Poll(diffReady, diffPoll, "haad's API", func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("haad exited: %v", p.Wait())
		}
		_, err := os.Stat(sock)
		return err == nil, nil
	})
}

// setServers stops or starts the file's failing real servers.
func (r *diffRun) setServers(up bool) error {
	for _, a := range r.f.fail {
		if !up {
			r.servers[a].stop()
		} else if err := r.servers[a].start(); err != nil {
			return err
		}
	}
	return nil
}

// await waits until the daemon has acted on the last step and returns the
// table then (ipvsadm -S -n, sorted). The table is followed through netlink
// (a fingerprint); ipvsadm runs once it has stayed the same for
// diffConfirm.
//   - with want (haad's run): the table is want; or diffTimeout passes and
//     the table, once it stays the same for diffSettle, is returned as it
//     is;
//   - with logged (keepalived's run): logged reports true (keepalived logged
//     every change awaited), and the table then stays the same for settle;
//   - else (keepalived's reload): the table changes from before, then stays
//     the same for settle.
func (r *diffRun) await(p *lab.Proc, phase, before string, want []string, logged func() bool, settle time.Duration) ([]string, error) {
	start := time.Now()
	last, lastChange := before, start
	changed := false
	var loggedAt time.Time
	var snap []string // the table since the last change, once stable
	for {
		if p.Exited() {
			return snap, fmt.Errorf("%s: the daemon exited: %v", phase, p.Wait())
		}
		fp, err := r.fingerprint()
		if err != nil {
			return snap, err
		}
		now := time.Now()
		if fp != last {
			last, lastChange, changed, snap = fp, now, true, nil
		}
		if loggedAt.IsZero() && logged != nil && logged() {
			loggedAt = now
		}
		stable := now.Sub(lastChange)
		if snap == nil && stable >= diffConfirm {
			if snap, err = r.snapshot(); err != nil {
				return nil, err
			}
		}
		late := now.Sub(start) >= diffTimeout
		switch {
		case snap == nil:
		case want != nil && slices.Equal(snap, want):
			return snap, nil
		case want != nil && late && stable >= diffSettle:
			return snap, nil // not want: compared as it is
		case logged != nil && !loggedAt.IsZero() && now.Sub(loggedAt) >= settle && stable >= settle:
			return snap, nil
		case want == nil && logged == nil && changed && stable >= settle:
			return snap, nil
		}
		switch {
		case !late:
		case want == nil && logged != nil && loggedAt.IsZero():
			return snap, fmt.Errorf("%s: keepalived did not log every change awaited within %v; the table:\n%s", phase, diffTimeout, indent(snap))
		case want == nil && logged == nil && !changed:
			return snap, fmt.Errorf("%s: the table did not change within %v:\n%s", phase, diffTimeout, indent(snap))
		case now.Sub(start) > diffTimeout+4*diffSettle:
			return snap, fmt.Errorf("%s: the table kept changing for %v", phase, now.Sub(start).Round(time.Second))
		}
		time.Sleep(diffPoll)
	}
}

// keepalivedLogged returns a func reporting whether keepalived's log,
// after offset, says that it took each of addrs' real servers out of
// every virtual server it has them in (up: put them back): as many
// "Removing service [ADDR]:" or "Disabling service [ADDR]:" lines (up:
// "Adding", "Enabling") as "Activating healthchecker for service [ADDR]:"
// lines name virtual servers.
func keepalivedLogged(log string, offset int, addrs []netip.Addr, up bool) func() bool {
	verbs := []string{"Removing", "Disabling"}
	if up {
		verbs = []string{"Adding", "Enabling"}
	}
	return func() bool {
		text := readFile(log)
		if offset > len(text) {
			return false
		}
		for _, a := range addrs {
			tag := "service [" + a.String() + "]:"
			vss := map[string]bool{}
			for _, l := range strings.Split(text, "\n") {
				if _, rest, ok := strings.Cut(l, "Activating healthchecker for "+tag); ok {
					vss[rest] = true
				}
			}
			n := 0
			for _, l := range strings.Split(text[offset:], "\n") {
				for _, v := range verbs {
					if strings.Contains(l, v+" "+tag) {
						n++
					}
				}
			}
			if len(vss) == 0 || n < len(vss) {
				return false
			}
		}
		return true
	}
}

// The differential suite's corpus and bookkeeping, without IPVS or root:
// every file converts (haad --check) but those skippedDiffFiles names,
// which haad must still refuse (else the skip is stale); each explained
// difference relies on warnings haad --check prints; the log readers
// understand keepalived's and haad's lines.
func TestIPVSDiffCorpus(t *testing.T) {
	files := readCorpus(t)
	weights := t.TempDir()
	names := map[string]bool{}
	for _, f := range files {
		names[f.name] = true
		path := filepath.Join(t.TempDir(), f.name)
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(f.text, "@WEIGHTS@", weights)), 0o644); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		code := run([]string{"--check", "--keepalived-config", path}, &stderr)
		switch sk := skippedDiffFiles[f.name]; {
		case sk.refused && code == exitOK:
			t.Errorf("%s: haad --check accepts it now: remove it from skippedDiffFiles (%s)", f.name, sk.why)
		case !sk.refused && code != exitOK:
			t.Errorf("%s: haad --check: exit %d:\n%s", f.name, code, stderr.String())
		}
		for _, ex := range explainedDiffs {
			for _, w := range ex.warnings {
				if ex.file == f.name && !strings.Contains(stderr.String(), w) {
					t.Errorf("%s: explainedDiffs relies on the warning %q, which haad --check does not print:\n%s", f.name, w, stderr.String())
				}
			}
		}
	}
	for _, ex := range explainedDiffs {
		if !names[ex.file] {
			t.Errorf("explainedDiffs names %s, which is not in %s", ex.file, corpusDir)
		}
	}
	for name := range skippedDiffFiles {
		if !names[name] {
			t.Errorf("skippedDiffFiles names %s, which is not in %s", name, corpusDir)
		}
	}

	// keepalived 2.2.7's and haad's lines, as they log them.
	ka := `Mon Dec  7 11:23:31 2026: Activating healthchecker for service [10.77.0.201]:tcp:8080 for VS [10.77.0.116]:tcp:80
Mon Dec  7 11:23:31 2026: Activating healthchecker for service [10.77.0.201]:tcp:8080 for VS [10.77.0.116]:tcp:81
Mon Dec  7 11:23:31 2026: Activating healthchecker for service [fd77::201]:tcp:80 for VS [fd77::102]:tcp:80
Mon Dec  7 11:23:31 2026: Startup complete
`
	fail := []netip.Addr{netip.MustParseAddr("10.77.0.201"), netip.MustParseAddr("fd77::201")}
	down := ka + `Mon Dec  7 11:23:43 2026: Disabling service [10.77.0.201]:tcp:8080 of VS [10.77.0.116]:tcp:80
Mon Dec  7 11:23:43 2026: Removing service [fd77::201]:tcp:80 from VS [fd77::102]:tcp:80
`
	path := filepath.Join(t.TempDir(), "keepalived.log")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(down)
	if keepalivedLogged(path, len(ka), fail, false)() {
		t.Errorf("keepalivedLogged: one of the two virtual servers of 10.77.0.201 left, and it says done")
	}
	write(down + "Mon Dec  7 11:23:44 2026: Removing service [10.77.0.201]:tcp:8080 from VS [10.77.0.116]:tcp:81\n")
	if !keepalivedLogged(path, len(ka), fail, false)() || keepalivedLogged(path, len(ka), fail, true)() {
		t.Errorf("keepalivedLogged: every server down logged, and it does not say so")
	}
	if got := spuriousDowns("keepalived", down, len(ka), fail); len(got) != 0 {
		t.Errorf("spuriousDowns: the failing servers' removals after the fail step are not spurious: %q", got)
	}
	if got := spuriousDowns("keepalived", down, len(down), fail); len(got) != 2 {
		t.Errorf("spuriousDowns: removals before the fail step are spurious: got %q", got)
	}
	hd := `time=2026-12-07T12:24:25.236Z level=INFO msg="real server down" virtual_server=10.77.0.116:80/tcp real_server=10.77.0.202:8080 detail="connection refused"
time=2026-12-07T12:24:25.732Z level=INFO msg="real server down" virtual_server=[fd77::102]:80/tcp real_server=[fd77::201]:80 detail="connection refused"
`
	if got := spuriousDowns("haad", hd, 0, fail); len(got) != 1 || !strings.Contains(got[0], "10.77.0.202:8080") {
		t.Errorf("spuriousDowns: haad's 10.77.0.202 is not failing, fd77::201 is: got %q", got)
	}
}
