package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// bench-cpu: what the VRRP data path costs in steady state, haad beside
// keepalived. Each run is the soak's (two nodes, n1 master of every
// instance, n2 backup, a window after the election settled), in a fresh
// lab; the implementations alternate which goes first, round by round.

// cpuScale is one size of the benchmark: instances at an advert interval.
type cpuScale struct {
	instances int
	interval  time.Duration
}

func (c cpuScale) String() string { return fmt.Sprintf("%d@%v", c.instances, c.interval) }

type cpuOptions struct {
	haad    string
	rounds  int
	window  time.Duration
	scales  []cpuScale
	main    cpuScale // the scale of the headline table
	out     string
	logs    string
	profile bool
	command string
}

func parseBenchCPU(args []string, stderr io.Writer) (cpuOptions, error) {
	fs := flag.NewFlagSet("haalab bench-cpu", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := cpuOptions{main: cpuScale{50, 10 * time.Millisecond}}
	fs.StringVar(&o.haad, "haad", "bin/haad", "haad binary to run on the nodes")
	fs.IntVar(&o.rounds, "rounds", 3, "runs per scale and implementation (the median is reported)")
	fs.DurationVar(&o.window, "window", 20*time.Second, "steady-state window of each run")
	scales := fs.String("scales", "50@10ms,1@10ms,500@100ms", "INSTANCES@INTERVAL,...: the sizes to run (the first is the headline table; at most 500 instances, 250 per link)")
	fs.StringVar(&o.out, "out", "out/bench-cpu.md", "Markdown report to write")
	fs.StringVar(&o.logs, "logs", "", "directory for the daemons' configs, logs and profiles (default: a new temporary directory, removed when everything passed)")
	fs.BoolVar(&o.profile, "profile", false, "run haad with --cpu-profile (n1.pprof and n2.pprof per run, in --logs)")
	if err := parseFlags(fs, "bench-cpu", args); err != nil {
		return o, err
	}
	if o.rounds < 1 || o.rounds > 100 {
		return o, usageErrorf("bench-cpu: --rounds %d: use 1..100", o.rounds)
	}
	if o.window < 5*time.Second || o.window > time.Hour {
		return o, usageErrorf("bench-cpu: --window %v: use 5s..1h", o.window)
	}
	for _, f := range strings.Split(*scales, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, iv, ok := strings.Cut(f, "@")
		c := cpuScale{}
		var err1, err2 error
		c.instances, err1 = strconv.Atoi(n)
		c.interval, err2 = time.ParseDuration(iv)
		if !ok || err1 != nil || err2 != nil || c.instances < 1 || c.instances > 2*vridsPerLink ||
			c.interval < 10*time.Millisecond || c.interval > 40950*time.Millisecond || c.interval%(10*time.Millisecond) != 0 {
			return o, usageErrorf("bench-cpu: --scales: %q: write INSTANCES@INTERVAL, 1..500 instances at a multiple of 10ms (VRRPv3), e.g. 50@10ms", f)
		}
		o.scales = append(o.scales, c)
	}
	if len(o.scales) == 0 {
		return o, usageErrorf("bench-cpu: --scales: give at least one INSTANCES@INTERVAL")
	}
	o.main = o.scales[0]
	return o, nil
}

// cpuRun is one implementation's run at one scale.
type cpuRun struct {
	scale cpuScale
	round int
	soakResult
}

// perAdvert is the CPU time per advert, in µs.
func perAdvert(cpu time.Duration, adverts float64) float64 {
	if adverts <= 0 {
		return 0
	}
	return float64(cpu) / float64(time.Microsecond) / adverts
}

func runBenchCPU(s *session, command string, args []string, stderr io.Writer) error {
	o, err := parseBenchCPU(args, stderr)
	if err != nil {
		return err
	}
	o.command = command
	haad, dir, err := benchPrep(o.haad, o.logs, "haalab-cpu-")
	if err != nil {
		return err
	}
	env := describeMachine(haad)
	fmt.Fprintf(s.out, "haa data-path CPU benchmark: haad vs %s; each run a fresh lab, %v window after the election, %d rounds\n",
		env.keepalived, o.window, o.rounds)
	fmt.Fprintf(s.out, "  logs in %s\n\n", dir)

	var runs []cpuRun
	failures := 0
	for _, sc := range o.scales {
		for round := range o.rounds {
			hd := haadDaemon{bin: haad}
			ds := []daemon{hd, keepalivedDaemon{}}
			if round%2 == 1 {
				slices.Reverse(ds)
			}
			for _, d := range ds {
				if s.err() != nil {
					return s.err()
				}
				rdir := filepath.Join(dir, fmt.Sprintf("%d-%v-r%d", sc.instances, sc.interval, round+1))
				if h, ok := d.(haadDaemon); ok && o.profile {
					h.profileDir = rdir
					d = h
				}
				b := &bench{s: s, dir: rdir, o: benchOptions{soak: o.window, instances: sc.instances, interval: sc.interval}}
				res := b.runSoak(d)
				if res.Err != nil {
					failures++
				} else {
					s.say("  %s: master %.1f µs per advert sent, backup %.1f µs per advert received, RSS %s / %s, thread wake-ups per advert %.2f / %.2f",
						d.Name(), perAdvert(res.CPUTimeMaster, res.AdvertsSent), perAdvert(res.CPUTimeBackup, res.AdvertsSent),
						mib(int64(res.RSSMaster)), mib(int64(res.RSSBackup)),
						float64(res.WakeupsMaster)/res.AdvertsSent, float64(res.WakeupsBackup)/res.AdvertsSent)
				}
				runs = append(runs, cpuRun{scale: sc, round: round + 1, soakResult: res})
			}
		}
	}
	report := renderCPUReport(o, env, runs)
	if err := s.publish(report, o.out); err != nil {
		return err
	}
	if failures > 0 {
		return fmt.Errorf("bench-cpu: %d run(s) failed; logs kept in %s", failures, dir)
	}
	if o.logs == "" {
		_ = os.RemoveAll(dir)
	}
	return nil
}

// spread is "median (min-max)" of xs with format f.
func spread(xs []float64, f string) string {
	if len(xs) == 0 {
		return "-"
	}
	m := median(xs)
	if xs[0] == xs[len(xs)-1] {
		return fmt.Sprintf(f, m)
	}
	return fmt.Sprintf(f+" ("+f+"-"+f+")", m, xs[0], xs[len(xs)-1])
}

func renderCPUReport(o cpuOptions, env machine, runs []cpuRun) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Data-path CPU: haad vs keepalived (haalab bench-cpu)\n\n")
	fmt.Fprintf(&b, "- date: %s\n- machine: %d CPUs, kernel %s\n- %s; haad: %s\n- command: `%s`\n\n",
		env.date.Format("2006-01-02 15:04 MST"), env.cpus, env.kernel, env.keepalived, env.haad, o.command)
	fmt.Fprintf(&b, "Two nodes in namespaces, VRRPv3, n1 master of every instance (priority %d), n2 backup (%d); each run in a\n"+
		"fresh lab, %v of steady state after the election settled. CPU: every process of the implementation on the\n"+
		"node (keepalived's parent and VRRP child), from the kernel's per-thread run time; RSS at the window's end.\n"+
		"Adverts: those the master sent during the window, counted on the wire. %d rounds per scale; the\n"+
		"implementations alternate which runs first. Median (min-max).\n\n", benchPrioMaster, benchPrioBackup, o.window, o.rounds)
	pick := func(sc cpuScale, daemon string, f func(cpuRun) float64) []float64 {
		var xs []float64
		for _, r := range runs {
			if r.scale == sc && r.Daemon == daemon && r.Err == nil {
				xs = append(xs, f(r))
			}
		}
		return xs
	}
	daemons := []string{"keepalived", "haad"}
	fmt.Fprintf(&b, "### %d instances at %v (%.0f adverts/s)\n\n", o.main.instances, o.main.interval,
		float64(o.main.instances)/o.main.interval.Seconds())
	b.WriteString("| | master CPU | backup CPU | RSS per node (master / backup) | spurious transitions |\n| --- | ---: | ---: | ---: | ---: |\n")
	for _, d := range daemons {
		sp := 0
		for _, r := range runs {
			if r.scale == o.main && r.Daemon == d && r.Err == nil {
				sp += r.Spurious
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s / %s | %d |\n", d,
			spread(pick(o.main, d, func(r cpuRun) float64 { return r.CPUMaster }), "%.1f %%"),
			spread(pick(o.main, d, func(r cpuRun) float64 { return r.CPUBackup }), "%.1f %%"),
			spread(pick(o.main, d, func(r cpuRun) float64 { return float64(r.RSSMaster) / (1 << 20) }), "%.1f MiB"),
			spread(pick(o.main, d, func(r cpuRun) float64 { return float64(r.RSSBackup) / (1 << 20) }), "%.1f MiB"), sp)
	}
	b.WriteString("\n### CPU per advert\n\n")
	b.WriteString("| instances | interval | adverts/s | daemon | master: µs per advert sent | backup: µs per advert received | spurious |\n" +
		"| ---: | ---: | ---: | --- | ---: | ---: | ---: |\n")
	for _, sc := range o.scales {
		for _, d := range daemons {
			sp := 0
			for _, r := range runs {
				if r.scale == sc && r.Daemon == d && r.Err == nil {
					sp += r.Spurious
				}
			}
			fmt.Fprintf(&b, "| %d | %v | %s | %s | %s | %s | %d |\n", sc.instances, sc.interval,
				spread(pick(sc, d, func(r cpuRun) float64 { return r.AdvertRate }), "%.0f"), d,
				spread(pick(sc, d, func(r cpuRun) float64 { return perAdvert(r.CPUTimeMaster, r.AdvertsSent) }), "%.1f"),
				spread(pick(sc, d, func(r cpuRun) float64 { return perAdvert(r.CPUTimeBackup, r.AdvertsSent) }), "%.1f"), sp)
		}
	}
	b.WriteString("\nEvery run:\n\n| scale | round | daemon | master CPU | backup CPU | adverts sent | RSS master / backup | spurious | error |\n" +
		"| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range runs {
		e := ""
		if r.Err != nil {
			e = strings.ReplaceAll(r.Err.Error(), "|", "/")
		}
		fmt.Fprintf(&b, "| %v | %d | %s | %.2f %% | %.2f %% | %.0f | %s / %s | %d | %s |\n", r.scale, r.round, r.Daemon,
			r.CPUMaster, r.CPUBackup, r.AdvertsSent, mib(int64(r.RSSMaster)), mib(int64(r.RSSBackup)), r.Spurious, e)
	}
	return b.String()
}
