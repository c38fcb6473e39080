package main

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
)

// fleetLB is the load-balancing part of bench-fleet: the fleet document
// gains vs virtual servers of rs real servers each, directed by the
// directors.
type fleetLB struct {
	directors   []*lab.Node
	vs, rs      int
	applies     int
	idle        time.Duration
	nodes       int
	procs       map[*lab.Node]*lab.Proc
	gen         *int
	withVS      *bool
	file        string
	doc         func(gen int) string
	haactl      func(args ...string) *exec.Cmd
	stats       func() (sent, recv uint64, err error)
	lbTimes     []time.Duration // haactl start -> every director's kernel holds them
	waitTimes   []time.Duration // haactl apply --wait returned
	removeTimes []time.Duration // haactl start -> every director's kernel has none left
	sentPer     float64
	recvPer     float64
	rssPer      float64 // MiB per director
	// CPU used during each apply of the virtual servers: by the
	// directors, by the other agents.
	cpuDirectors, cpuOthers []time.Duration
}

// cpuOf sums the processor time the agents used so far, directors and
// others apart.
func (f *fleetLB) cpuOf() (directors, others time.Duration) {
	directors = agentsCPU(f.procs, func(n *lab.Node) bool { return slices.Contains(f.directors, n) })
	others = agentsCPU(f.procs, func(n *lab.Node) bool { return !slices.Contains(f.directors, n) })
	return directors, others
}

// agentsCPU sums the processor time (user and system) the agents of the
// nodes pick chooses used so far.
func agentsCPU(procs map[*lab.Node]*lab.Proc, pick func(*lab.Node) bool) time.Duration {
	var d time.Duration
	for n, p := range procs {
		if !pick(n) {
			continue
		}
		if ticks, err := cpuTicks(p.Pid()); err == nil {
			d += time.Duration(ticks) * 10 * time.Millisecond // USER_HZ 100
		}
	}
	return d
}

// fleetVirtualServers is the virtualServers section: n virtual servers
// (10.1.0.0:80 onwards) of rs real servers each (10.200.0.1:8080
// onwards, weights 1, 2, 3, 1...), without checks (always healthy: the
// rollout's cost, not the checks'), directed by directors.
func fleetVirtualServers(directors []*lab.Node, n, rs int) string {
	var b strings.Builder
	names := make([]string, len(directors))
	for i, d := range directors {
		names[i] = d.Name
	}
	fmt.Fprintf(&b, "virtualServers:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {name: vs%d, address: %q, directors: [%s], realServers: [", i, lvsVIP(i), strings.Join(names, ", "))
		for j := range rs {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "{address: %q, weight: %d}", lvsReal(i, j, rs), j%3+1)
		}
		b.WriteString("]}\n")
	}
	return b.String()
}

// benchFleetLB times applies of the virtual servers to the directors
// (from empty, until every director's kernel table holds them), then
// measures gossip at rest with their real servers' health shared.
func benchFleetLB(s *session, f fleetLB) (*fleetLB, error) {
	if f.vs == 0 {
		return &f, nil
	}
	// waitKernel polls the directors' nftables tables, one at a time
	// (each poll dumps a table: polling all at once would take the
	// processors from the agents being measured), until each holds want
	// services, and returns when the last one did.
	waitKernel := func(want int, limit time.Duration) (time.Time, error) {
		var last time.Time
		pending := slices.Clone(f.directors)
		deadline := time.Now().Add(limit)
		for len(pending) > 0 {
			d := pending[0]
			k, _, err := lvsKernelServices(d.NS.Name, "nftables")
			now := time.Now()
			switch {
			case err == nil && k == want:
				last = now
				pending = pending[1:]
				continue
			case now.After(deadline):
				return last, fmt.Errorf("%s's kernel table holds %d virtual servers after %v, want %d (%v)", d.Name, k, limit, want, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return last, nil
	}
	apply := func(vs bool) (kernel, wait time.Duration, err error) {
		*f.withVS = vs
		*f.gen++
		if err := os.WriteFile(f.file, []byte(f.doc(*f.gen)), 0o644); err != nil {
			return 0, 0, err
		}
		want := 0
		if vs {
			want = f.vs
		}
		cmd := f.haactl("apply", "-f", f.file, "--wait", "--converge-timeout", "60s")
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			return 0, 0, err
		}
		done, kerr := waitKernel(want, 60*time.Second)
		werr := cmd.Wait()
		wait = time.Since(t0)
		if werr != nil {
			return 0, 0, fmt.Errorf("haactl apply --wait: %v\n%s", werr, lastLines(out.String(), 20))
		}
		if kerr != nil {
			return 0, 0, kerr
		}
		return done.Sub(t0), wait, nil
	}
	for i := range f.applies {
		if err := s.err(); err != nil {
			return nil, err
		}
		d0, o0 := f.cpuOf()
		k, w, err := apply(true)
		if err != nil {
			return nil, err
		}
		d1, o1 := f.cpuOf()
		f.cpuDirectors, f.cpuOthers = append(f.cpuDirectors, d1-d0), append(f.cpuOthers, o1-o0)
		f.lbTimes, f.waitTimes = append(f.lbTimes, k), append(f.waitTimes, w)
		s.say("apply %d of %d virtual servers x %d real servers to %d directors: every kernel table complete after %v; haactl apply --wait returned after %v; CPU: directors %v, other agents %v",
			i+1, f.vs, f.rs, len(f.directors), k.Round(time.Millisecond), w.Round(time.Millisecond), (d1 - d0).Round(10*time.Millisecond), (o1 - o0).Round(10*time.Millisecond))
		if i == f.applies-1 {
			break
		}
		k, _, err = apply(false)
		if err != nil {
			return nil, err
		}
		f.removeTimes = append(f.removeTimes, k)
		s.say("  removed from every director after %v", k.Round(time.Millisecond))
	}

	// Gossip at rest, the directors sharing their real servers' health.
	if err := s.sleep(5 * time.Second); err != nil {
		return nil, err
	}
	s.say("measuring gossip traffic at rest with %d real servers' health per director for %v", f.vs*f.rs, f.idle)
	s0, r0, err := f.stats()
	if err != nil {
		return nil, err
	}
	t := time.Now()
	if err := s.sleep(f.idle); err != nil {
		return nil, err
	}
	s1, r1, err := f.stats()
	if err != nil {
		return nil, err
	}
	secs := time.Since(t).Seconds()
	f.sentPer = float64(s1-s0) / float64(f.nodes) / secs
	f.recvPer = float64(r1-r0) / float64(f.nodes) / secs
	var rss int64
	for _, d := range f.directors {
		if v, err := procMem(f.procs[d].Pid(), "VmRSS"); err == nil {
			rss += int64(v)
		}
	}
	f.rssPer = float64(rss) / (1 << 20) / float64(len(f.directors))
	return &f, nil
}

// report is the part's Markdown rows and lines.
func (f *fleetLB) report(nodes int) string {
	if f.vs == 0 || len(f.lbTimes) == 0 {
		return ""
	}
	var b strings.Builder
	lb := slices.Sorted(slices.Values(f.lbTimes))
	w := slices.Sorted(slices.Values(f.waitTimes))
	p50 := func(d []time.Duration) time.Duration { return d[len(d)/2] }
	fmt.Fprintf(&b, "\nLoad balancers: %d virtual servers x %d real servers (no checks) in the same document, directed by %d of the %d nodes (nftables backend: this kernel has no IPVS), applied from empty %d times:\n\n",
		f.vs, f.rs, len(f.directors), nodes, len(f.lbTimes))
	b.WriteString("| measure | n | p50 | max | target | met |\n| --- | --- | --- | --- | --- | --- |\n")
	fmt.Fprintf(&b, "| `haactl apply --wait` start -> every director's kernel table holds the virtual servers (read from nftables) | %d | %s | %s | <= 3 s | %s |\n",
		len(lb), ms1(p50(lb)), ms1(lb[len(lb)-1]), yesNo(lb[len(lb)-1] <= 3*time.Second))
	fmt.Fprintf(&b, "| `haactl apply --wait` returns (VRRP converged, every director's table checked through the API on two polls) | %d | %s | %s | | |\n",
		len(w), ms1(p50(w)), ms1(w[len(w)-1]))
	if len(f.removeTimes) > 0 {
		r := slices.Sorted(slices.Values(f.removeTimes))
		fmt.Fprintf(&b, "| removing them: start -> every director's table empty | %d | %s | %s | | |\n", len(r), ms1(p50(r)), ms1(r[len(r)-1]))
	}
	fmt.Fprintf(&b, "\nGossip at rest over %v with %d real servers' health shared by each of %d directors: %.0f bytes sent and %.0f received per node per second (target < 20 KB/s: %s). Directors' RSS: %.1f MiB each.\n",
		f.idle.Round(time.Second), f.vs*f.rs, len(f.directors), f.sentPer, f.recvPer, yesNo(f.sentPer < 20000 && f.recvPer < 20000), f.rssPer)
	return b.String()
}

// lastLines is the end of s, n lines at most.
func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}
