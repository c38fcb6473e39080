package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
)

// machine describes where the benchmark ran.
type machine struct {
	date       time.Time
	cpus       int
	kernel     string
	keepalived string
	haad       string
}

func describeMachine(haad string) machine {
	m := machine{date: time.Now().UTC(), cpus: runtime.NumCPU(), kernel: "unknown", keepalived: "keepalived (version unknown)", haad: haad}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if bin, err := lab.KeepalivedPath(); err == nil {
		// keepalived prints its version on stderr.
		if out, err := exec.Command(bin, "--version").CombinedOutput(); err == nil || len(out) > 0 {
			if line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n"); line != "" {
				m.keepalived = strings.TrimSpace(line)
			}
		}
	}
	return m
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// renderReport writes the Markdown report.
func renderReport(o benchOptions, m machine, results []settingResult, soaks []soakResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Failover benchmark: haad vs keepalived\n\n")
	fmt.Fprintf(&b, "- date: %s\n", m.date.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- machine: %d CPUs (nproc), Linux %s (uname -r)\n", m.cpus, m.kernel)
	fmt.Fprintf(&b, "- keepalived: %s\n", m.keepalived)
	fmt.Fprintf(&b, "- haad: %s\n", m.haad)
	fmt.Fprintf(&b, "- command: `%s`\n\n", o.command)

	if len(results) > 0 {
		fmt.Fprintf(&b, "## Client-visible outage when the master loses power\n\n")
		fmt.Fprintf(&b, "Two nodes and a client on one bridge, each in its own network namespace. n1 (priority %d) is master, n2 (priority %d) backup;\n",
			benchPrioMaster, benchPrioBackup)
		fmt.Fprintf(&b, "both start as BACKUP. Per trial: fresh daemons, n1 elected and the sole VIP holder for max(1 s, 3 intervals),\n")
		fmt.Fprintf(&b, "then the client pings the VIP every %v and n1 is powered off (link down + SIGKILL of the daemon and its children)\n", pingEvery)
		fmt.Fprintf(&b, "right after the client has seen one of n1's adverts on the wire. The backup's master-down timer has just been reset,\n")
		fmt.Fprintf(&b, "so the outage (the longest gap in replies) is the full master-down interval, 3 x interval + skew: the RFC bound.\n")
		fmt.Fprintf(&b, "A power-off at a random phase of the advert cycle would be shorter by the time since the last advert (up to one interval).\n")
		fmt.Fprintf(&b, "The implementations alternate trial by trial in the same lab. %d trials per cell.\n\n", o.trials)
		fmt.Fprintf(&b, "Target: haad's median at or below keepalived's and within %v of the RFC bound.\n\n", targetSlack)
		b.WriteString("| advert interval | RFC bound (prio 100 backup) | haad median | haad max | haad min | keepalived median | keepalived max | keepalived min | haad median <= keepalived | haad within 5 ms of bound | target |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: | :---: | :---: |\n")
		for _, r := range results {
			h, k := summarize(r.Trials["haad"]), summarize(r.Trials["keepalived"])
			bnd := r.Setting.bound()
			cell := func(st outageStats, d time.Duration) string {
				if st.N == 0 {
					return "n/a"
				}
				return ms1(d)
			}
			le, near := "n/a", "n/a"
			target := "n/a"
			if h.N > 0 && k.N > 0 {
				le = yesNo(h.Median <= k.Median)
			}
			if h.N > 0 {
				diff := h.Median - bnd
				near = fmt.Sprintf("%s (%+.1f ms)", yesNo(diff.Abs() <= targetSlack), float64(diff)/float64(time.Millisecond))
			}
			if h.N > 0 && k.N > 0 {
				target = yesNo(h.Median <= k.Median && (h.Median-bnd).Abs() <= targetSlack)
			}
			if h.Failed+k.Failed > 0 {
				target += fmt.Sprintf(" (failed trials: haad %d, keepalived %d)", h.Failed, k.Failed)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				r.Setting.Name, ms1(bnd),
				cell(h, h.Median), cell(h, h.Max), cell(h, h.Min),
				cell(k, k.Median), cell(k, k.Max), cell(k, k.Min),
				le, near, target)
		}
		b.WriteString("\nWhere the time goes (medians): detection is the time from n1's last advert to n2's first, both as seen by the client\n")
		b.WriteString("(the protocol's part: the master-down interval, ideally the RFC bound); switch is the rest of the outage: n2 adding the VIP,\n")
		b.WriteString("announcing it (gratuitous ARP) and the client's next ping reaching it (up to 2 ms).\n\n")
		b.WriteString("| advert interval | RFC bound | haad detection | haad switch | keepalived detection | keepalived switch |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: |\n")
		for _, r := range results {
			h, k := summarize(r.Trials["haad"]), summarize(r.Trials["keepalived"])
			cell := func(st outageStats, d time.Duration) string {
				if st.N == 0 || st.Detection == 0 {
					return "n/a"
				}
				return fmt.Sprintf("%.1f ms", msf(d))
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.Setting.Name, ms1(r.Setting.bound()),
				cell(h, h.Detection), cell(h, h.Switch), cell(k, k.Detection), cell(k, k.Switch))
		}
		b.WriteString("\nEvery trial (outage in ms; time from n1's last advert to the power-off in brackets):\n\n")
		for _, r := range results {
			for _, name := range []string{"haad", "keepalived"} {
				var parts []string
				for _, t := range r.Trials[name] {
					if t.Err != nil {
						parts = append(parts, "FAILED")
						continue
					}
					parts = append(parts, fmt.Sprintf("%.1f (%.1f)", msf(t.Failover.Outage), msf(t.Failover.SinceAdvert)))
				}
				fmt.Fprintf(&b, "- %s, %s: %s\n", r.Setting.Name, name, strings.Join(parts, ", "))
			}
		}
		var errs []string
		for _, r := range results {
			for _, name := range []string{"haad", "keepalived"} {
				for _, t := range r.Trials[name] {
					if t.Err != nil {
						errs = append(errs, fmt.Sprintf("- %s, %s, trial %d: %v", r.Setting.Name, name, t.N, oneLine(t.Err)))
					}
				}
			}
		}
		if len(errs) > 0 {
			fmt.Fprintf(&b, "\nFailed trials:\n\n%s\n", strings.Join(errs, "\n"))
		}
		b.WriteString("\n")
	}

	if len(soaks) > 0 {
		fmt.Fprintf(&b, "## Soak: steady state of many fast instances\n\n")
		fmt.Fprintf(&b, "Two nodes run the same instances (VRIDs 1..N, one VIP 10.77.1.N/32 each, VRRPv3); n1 priority %d is master of all,\n", benchPrioMaster)
		fmt.Fprintf(&b, "n2 priority %d backup. The window starts %v after n1 holds every VIP and lasts --soak. Spurious transitions: state changes\n", benchPrioBackup, soakSettle)
		b.WriteString("on either node during the window (haad: the `transitions` counters of its SIGUSR1 status; keepalived: `Entering ... STATE`\n")
		b.WriteString("lines in its log). CPU: utime + stime from /proc/PID/stat of every process of the implementation in the node's namespace\n")
		b.WriteString("(keepalived: parent and VRRP child), over the window, in % of one core. Adverts/s: seen from the master by the client.\n")
		b.WriteString("Timer slip: haad's largest delay of a timer firing since its start (`timerSlipMax`), master / backup, at the end of the\n")
		b.WriteString("window and, in brackets, at its start: a larger value at the end means the slip happened during the steady state.\n\n")
		b.WriteString("Host: the whole machine over the window (busy CPU without steal, hypervisor steal, and PSI CPU pressure: the share of\n")
		b.WriteString("time some task waited for a CPU), with the worst second: other work on the machine delays both implementations alike.\n\n")
		b.WriteString("| implementation | instances | interval | duration | spurious transitions | VIP checks failed | CPU master | CPU backup | adverts/s (master) | timer slip max | host |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
		for _, s := range soaks {
			if s.Err != nil {
				fmt.Fprintf(&b, "| %s | %d | %v | FAILED: %s | | | | | | | |\n", s.Daemon, s.Instances, s.Interval, oneLine(s.Err))
				continue
			}
			slip := "n/a"
			if s.SlipMaster >= 0 {
				slip = fmt.Sprintf("%s / %s (at the window's start: %s / %s)", ms(s.SlipMaster), ms(s.SlipBackup), ms(s.SlipMasterBefore), ms(s.SlipBackupBefore))
			}
			fmt.Fprintf(&b, "| %s | %d | %v | %v | %d | %d | %.2f %% | %.2f %% | %.0f | %s | %s |\n",
				s.Daemon, s.Instances, s.Interval, s.Duration.Round(time.Second), s.Spurious, s.BadChecks,
				s.CPUMaster, s.CPUBackup, s.AdvertRate, slip, describeHost(s))
		}
		var lines []string
		for _, s := range soaks {
			for _, bu := range s.Bursts {
				lines = append(lines, "- "+s.Daemon+": "+describeBurst(bu))
			}
		}
		if len(lines) > 0 {
			b.WriteString("\nState changes logged during the windows (UTC), with the host in that second:\n\n")
			b.WriteString(strings.Join(lines, "\n") + "\n")
		}
		b.WriteString("\n")
	}
	return b.String()
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ms1 formats a duration as milliseconds with one decimal.
func ms1(d time.Duration) string { return fmt.Sprintf("%.1f ms", msf(d)) }

func oneLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	return strings.ReplaceAll(s, "|", "/")
}
