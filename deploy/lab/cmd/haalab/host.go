package main

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// hostSample is the machine-wide CPU accounting at one moment: what else
// was going on while the daemons ran.
type hostSample struct {
	at                 time.Time
	total, idle, steal uint64 // /proc/stat ticks summed over the CPUs
	pressure           uint64 // /proc/pressure/cpu "some" total, in µs
	hasPressure        bool
}

func sampleHost() (hostSample, error) {
	h := hostSample{at: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return h, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return h, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	// user nice system idle iowait irq softirq steal [guest guest_nice]:
	// guest time is already part of user.
	for i := 1; i <= 8; i++ {
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return h, fmt.Errorf("/proc/stat: %w", err)
		}
		h.total += v
		switch i {
		case 4, 5:
			h.idle += v
		case 8:
			h.steal = v
		}
	}
	if p, err := os.ReadFile("/proc/pressure/cpu"); err == nil {
		for _, tok := range strings.Fields(strings.SplitN(string(p), "\n", 2)[0]) {
			if v, ok := strings.CutPrefix(tok, "total="); ok {
				if n, err := strconv.ParseUint(v, 10, 64); err == nil {
					h.pressure, h.hasPressure = n, true
				}
			}
		}
	}
	return h, nil
}

// hostLoad is the machine between two samples, in %: Busy is the CPUs'
// busy time (all CPUs, without steal), Steal the time the hypervisor ran
// something else while a vCPU wanted to run, Pressure the share of wall time
// in which some task waited for a CPU (-1 without PSI).
type hostLoad struct {
	From, To              time.Time
	Busy, Steal, Pressure float64
}

func hostBetween(a, b hostSample) hostLoad {
	l := hostLoad{From: a.at, To: b.at, Pressure: -1}
	if dt := b.total - a.total; b.total > a.total {
		l.Busy = float64(dt-(b.idle-a.idle)-(b.steal-a.steal)) / float64(dt) * 100
		l.Steal = float64(b.steal-a.steal) / float64(dt) * 100
	}
	if a.hasPressure && b.hasPressure {
		if wall := b.at.Sub(a.at).Microseconds(); wall > 0 {
			l.Pressure = float64(b.pressure-a.pressure) / float64(wall) * 100
		}
	}
	return l
}

// worst returns the per-second loads with the highest steal and the highest
// CPU pressure.
func worst(loads []hostLoad) (steal, pressure hostLoad) {
	for i, l := range loads {
		if i == 0 || l.Steal > steal.Steal {
			steal = l
		}
		if i == 0 || l.Pressure > pressure.Pressure {
			pressure = l
		}
	}
	return steal, pressure
}

// loadAt returns the per-second load covering t.
func loadAt(loads []hostLoad, t time.Time) (hostLoad, bool) {
	for _, l := range loads {
		if !t.Before(l.From) && !t.After(l.To) {
			return l, true
		}
	}
	return hostLoad{}, false
}

// transitionTimes reads the state changes a daemon logged: haad's
// `time=... msg="state change"` lines, keepalived's
// `Sun Nov 22 02:59:49 2026: (VI_1) Entering MASTER STATE` lines.
func transitionTimes(daemon, path string) ([]time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []time.Time
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		switch daemon {
		case "haad":
			if !strings.Contains(line, `msg="state change"`) {
				continue
			}
			v, ok := strings.CutPrefix(line, "time=")
			if !ok {
				continue
			}
			v, _, _ = strings.Cut(v, " ")
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				out = append(out, t)
			}
		case "keepalived":
			if !strings.Contains(line, "Entering ") || !strings.Contains(line, " STATE") {
				continue
			}
			stamp, _, ok := strings.Cut(line, ": ")
			if !ok {
				continue
			}
			if t, err := time.ParseInLocation("Mon Jan _2 15:04:05 2006", stamp, time.Local); err == nil {
				out = append(out, t)
			}
		}
	}
	return out, sc.Err()
}

// burst is the state changes logged within one second.
type burst struct {
	Second  time.Time
	Count   int
	Load    hostLoad // the host in the sampled second around it
	HasLoad bool
}

// bursts groups the transition times inside [from, to] by second.
func bursts(times []time.Time, from, to time.Time, loads []hostLoad) []burst {
	times = slices.Clone(times)
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	var out []burst
	for _, t := range times {
		if t.Before(from.Truncate(time.Second)) || t.After(to) {
			continue
		}
		sec := t.Truncate(time.Second)
		if n := len(out); n > 0 && out[n-1].Second.Equal(sec) {
			out[n-1].Count++
			continue
		}
		b := burst{Second: sec, Count: 1}
		// keepalived logs whole seconds: look at the middle of the second.
		b.Load, b.HasLoad = loadAt(loads, sec.Add(500*time.Millisecond))
		out = append(out, b)
	}
	return out
}
