package main

// chaos: the verdicts and the Markdown report.

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// chaosRow is one attack (or one request of attack 8) and what it did.
type chaosRow struct {
	ID, Name string
	Kind     rowKind
	// Rate is what the attack achieved, rendered ("" for a single request).
	Rate     string
	Duration time.Duration
	// Trans are the transitions of VI_3 and VI_2 on n1 and n2 during the
	// attack (-1: unknown).
	Trans [2]int64
	// Silence is n1's longest silence on the wire during the attack, for
	// VI_3 and VI_2 (Watched: measured).
	Silence [2]time.Duration
	Watched bool
	// Slip is how late each node's VI_3 timers fired at worst during the
	// attack (0: unknown, no later than its worst before the attack);
	// SlipLate how many of them fired more than 100 ms late, SlipSum how
	// late all of them were in total (at least the worst).
	Slip     [2]time.Duration
	SlipLate [2]uint64
	SlipSum  [2]time.Duration
	// Drops are the packets each node dropped, by reason.
	Drops [2]map[string]uint64
	// Lat are the GetNode round trips on each node during the attack;
	// Floor the reference server's health Checks timed beside them.
	Lat   [2]latencies
	Floor latencies
	// Before and After are each haad's memory and descriptors.
	Before, After [2]resUsage
	// Code is the status code of a request row, WantCode the expected one.
	Code, WantCode string
	// Fail lists the attack's own failed checks; Notes what it saw.
	Fail, Notes []string
	// Err is set when the attack could not run.
	Err error
}

var chaosNodeNames = [2]string{"n1", "n2"}

// verdict judges a row: fails are targets missed; unjudged are targets
// the run could not judge because the machine itself failed them (the
// master did not send, the reference server was slow as well).
func (r chaosRow) verdict() (fails, unjudged []string) {
	if r.Err != nil {
		fails = append(fails, "could not run: "+oneLine(r.Err))
	}
	if r.Kind != kindProtocol {
		if r.Trans[0] > 0 {
			fails = append(fails, fmt.Sprintf("false transitions: %d on n1, the master", r.Trans[0]))
		}
		if t := r.Trans[1]; t > 0 {
			switch {
			case !r.Watched:
				fails = append(fails, fmt.Sprintf("false transitions: %d on n2 (n1's adverts not watched)", t))
			case r.Silence[0] >= chaosTakeover[0] || r.Silence[1] >= chaosTakeover[1]:
				// The master did not send normally: whose fault?
				silent := fmt.Sprintf("n1 silent on the wire for %s / %s (n2 takes over after %s / %s)",
					lvsDur(r.Silence[0]), lvsDur(r.Silence[1]), lvsDur(chaosTakeover[0]), lvsDur(chaosTakeover[1]))
				late := r.Silence[0] - chaosIntervalV3 // how late n1's adverts were
				_, _, refMax, _ := r.Floor.percentiles()
				switch {
				case refMax >= late:
					unjudged = append(unjudged, fmt.Sprintf("%d transitions on n2 after the machine stalled: %s, the reference server's worst round trip %s", t, silent, lvsDur(refMax)))
				case r.Slip[0] >= late/2 || r.Slip[0] == 0 && r.SlipLate[0] > 0 && r.SlipSum[0] >= late/2:
					how := fmt.Sprintf("its timers up to %s late", lvsDur(r.Slip[0]))
					if r.Slip[0] == 0 {
						how = fmt.Sprintf("its timers more than 100 ms late %d times, %s in all", r.SlipLate[0], lvsDur(r.SlipSum[0]))
					}
					fails = append(fails, fmt.Sprintf("the master stopped sending under the attack: %s, %s, while the machine answered within %s (reference server); %d transitions on n2 followed",
						silent, how, lvsDur(refMax), t))
				default:
					unjudged = append(unjudged, fmt.Sprintf("%d transitions on n2 after n1's adverts were lost on the LAN: %s, though n1's timers were %s late in all", t, silent, lvsDur(r.SlipSum[0])))
				}
			default:
				fails = append(fails, fmt.Sprintf("false transitions: %d on n2 while n1 kept sending (longest silence %s)", t, lvsDur(r.Silence[0])))
			}
		}
	}
	_, ref, _, refOK := r.Floor.percentiles()
	for i, l := range r.Lat {
		if l.failed > 0 {
			msg := fmt.Sprintf("%d GetNode calls failed on %s (%s)", l.failed, chaosNodeNames[i], oneLine(l.err))
			if r.Floor.failed > 0 {
				unjudged = append(unjudged, msg+fmt.Sprintf(", but %d calls to the reference server failed too", r.Floor.failed))
			} else {
				fails = append(fails, msg)
			}
		}
		_, p99, _, ok := l.percentiles()
		switch {
		case !ok || p99 <= chaosP99Target || len(l.d) < chaosMinSamples:
		case !refOK || ref <= chaosP99Target:
			fails = append(fails, fmt.Sprintf("API p99 on %s %s > %v", chaosNodeNames[i], lvsDur(p99), chaosP99Target))
		case p99 > ref+chaosP99Target:
			fails = append(fails, fmt.Sprintf("API p99 on %s %s > the reference's %s + %v", chaosNodeNames[i], lvsDur(p99), lvsDur(ref), chaosP99Target))
		default:
			unjudged = append(unjudged, fmt.Sprintf("API p99 on %s %s > %v, but the machine's own (the reference server's) was %s", chaosNodeNames[i], lvsDur(p99), chaosP99Target, lvsDur(ref)))
		}
	}
	for i := range r.Before {
		b, a := r.Before[i], r.After[i]
		if b.Err != nil || a.Err != nil {
			continue // a haad gone is reported by the attack
		}
		if a.FDs > b.FDs+chaosFDSlack {
			fails = append(fails, fmt.Sprintf("%s descriptors %d -> %d (more than +%d)", chaosNodeNames[i], b.FDs, a.FDs, chaosFDSlack))
		}
		if a.RSS > b.RSS+chaosRSSSlack {
			fails = append(fails, fmt.Sprintf("%s RSS %s -> %s (more than +%s)", chaosNodeNames[i], mib(int64(b.RSS)), mib(int64(a.RSS)), mib(chaosRSSSlack)))
		}
	}
	if r.WantCode != "" && r.Code != r.WantCode {
		fails = append(fails, fmt.Sprintf("answered %s, want %s", r.Code, r.WantCode))
	}
	return append(fails, r.Fail...), unjudged
}

// passed reports whether a row met every target.
func (r chaosRow) passed() bool {
	f, u := r.verdict()
	return len(f) == 0 && len(u) == 0
}

// chaosFailed counts the rows that did not meet every target (failed or
// could not be judged).
func chaosFailed(rows []chaosRow) int {
	n := 0
	for _, r := range rows {
		if !r.passed() {
			n++
		}
	}
	return n
}

func verdictCell(r chaosRow) string {
	fails, unjudged := r.verdict()
	var v string
	switch {
	case len(fails) > 0:
		v = "**FAIL**: " + strings.Join(fails, "; ")
		if len(unjudged) > 0 {
			v += "; not judged: " + strings.Join(unjudged, "; ")
		}
	case len(unjudged) > 0:
		v = "**INCONCLUSIVE**: " + strings.Join(unjudged, "; ")
	default:
		v = "pass"
	}
	if r.Kind == kindProtocol {
		v += " (protocol: expected takeover)"
	}
	return mdCell(v)
}

func transCell(r chaosRow) string {
	cell := func(t int64) string {
		if t < 0 {
			return "?"
		}
		return fmt.Sprint(t)
	}
	return cell(r.Trans[0]) + " / " + cell(r.Trans[1])
}

// dropsCell lists the drops by reason, the most frequent first, as
// "reason n1 / n2".
func dropsCell(r chaosRow) string {
	total := map[string]uint64{}
	for _, d := range r.Drops {
		for k, v := range d {
			total[k] += v
		}
	}
	if len(total) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range sortedKeys(total) {
		parts = append(parts, fmt.Sprintf("%s %s / %s", k, count(r.Drops[0][k]), count(r.Drops[1][k])))
	}
	return strings.Join(parts, ", ")
}

// count formats a counter: 950, 12.3k, 1.23M.
func count(v uint64) string { return si(float64(v)) }

// p99String is the p99 of l, with its failed calls.
func p99String(l latencies) string {
	_, p99, _, ok := l.percentiles()
	if !ok {
		return "n/a"
	}
	s := lvsDur(p99)
	if l.failed > 0 {
		s += fmt.Sprintf(" (%d failed)", l.failed)
	}
	return s
}

// p99Cell is "n1 / n2 (ref: the reference server)".
func p99Cell(r chaosRow) string {
	s := p99String(r.Lat[0]) + " / " + p99String(r.Lat[1])
	if len(r.Floor.d) > 0 {
		s += " (ref " + p99String(r.Floor) + ")"
	}
	return s
}

func resCell(b, a resUsage) string {
	one := func(u resUsage) (string, string) {
		if u.Err != nil {
			return "?", "?"
		}
		return fmt.Sprintf("%.1f", float64(u.RSS)/(1<<20)), fmt.Sprint(u.FDs)
	}
	br, bf := one(b)
	ar, af := one(a)
	if b.Err != nil && a.Err != nil {
		return "n/a"
	}
	return fmt.Sprintf("%s -> %s MiB, %s -> %s FDs", br, ar, bf, af)
}

func rateCell(r chaosRow) string {
	if r.Rate == "" {
		return "-"
	}
	return r.Rate
}

func durCell(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	if d < time.Second {
		return lvsDur(d)
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// mdCell makes s safe in a table cell.
func mdCell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", "/"), "\n", " ")
}

// renderChaos writes the Markdown report.
func renderChaos(o chaosOptions, m machine, rows []chaosRow, rest [3]latencies, took time.Duration) string {
	var b strings.Builder
	b.WriteString("# Chaos: haad under the attacks of an adversarial run\n\n")
	fmt.Fprintf(&b, "- date: %s\n", m.date.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- machine: %d CPUs, Linux %s\n", m.cpus, m.kernel)
	fmt.Fprintf(&b, "- haad: %s\n", m.haad)
	fmt.Fprintf(&b, "- command: `%s`\n", o.command)
	fmt.Fprintf(&b, "- run time: %.0f s\n\n", took.Seconds())
	fmt.Fprintf(&b, "Lab: two haad nodes and an attacker on one bridge, each in its own network namespace. n1 (priority %d) is the\n", chaosPrioMaster)
	fmt.Fprintf(&b, "master and n2 (priority %d) the backup of %s (VRRPv3, vrid %d, %v adverts, VIP %s) and %s (VRRPv2, vrid %d,\n",
		chaosPrioBackup, chaosInstV3, chaosVRIDv3, chaosIntervalV3, chaosVIP3, chaosInstV2, chaosVRIDv2)
	fmt.Fprintf(&b, "%v adverts, auth PASS, VIP %s); n1 also serves the API on TCP %d with mutual TLS (a throw-away CA). c1 floods from its\n",
		chaosIntervalV2, chaosVIP2, chaosAPIPort)
	b.WriteString("own namespace with a raw socket (IP_HDRINCL) to 224.0.0.18, as fast as it can, from its own address.\n")
	fmt.Fprintf(&b, "Every attack is bounded: at most %v (--duration) and, for floods, %d packets (--max-packets).\n\n", o.duration, o.maxPackets)
	b.WriteString("Columns: the rate the attack achieved; transitions of both instances on the real master (n1) and the backup (n2)\n")
	b.WriteString("during the attack (and, for attack 4, until the cluster is back); drops by reason on n1 / n2 (ListInstances counters\n")
	fmt.Fprintf(&b, "plus haa_interface_packets_dropped_total from /metrics); API p99: sequential GetNode calls through ctl over each node's\n")
	fmt.Fprintf(&b, "unix socket, one every %v while the attack runs (a call fails after %v); each haad's VmRSS and open descriptors\n", chaosProbeEvery, chaosProbeTimeout)
	b.WriteString("(/proc/PID/status, /proc/PID/fd) just before the attack and after it.\n\n")
	b.WriteString("The attacker, both haads and haalab share the machine's CPUs: a flood slows everything on it. The API column's\n")
	b.WriteString("\"ref\" is the p99 of a bare gRPC health server in another process (haalab grpc-floor-server), timed the same way\n")
	b.WriteString("at the same time: the round trip the machine itself allows. ")
	fmt.Fprintf(&b, "At rest, for %v before the first attack: GetNode p99 n1 %s, n2 %s, ref %s.\n\n",
		chaosRest, p99String(rest[0]), p99String(rest[1]), p99String(rest[2]))
	b.WriteString("Targets: no false transition under any junk flood while the master sends normally (any transition outside\n")
	fmt.Fprintf(&b, "attack 4 counts; attack 4 is legitimate VRRP from a foreign source: its takeovers are the protocol's); API p99 <= %v\n", chaosP99Target)
	fmt.Fprintf(&b, "on both nodes during every attack (judged over %d calls or more: a single request's row shows it, unjudged), and no\n", chaosMinSamples)
	fmt.Fprintf(&b, "failed call; after the attack each haad back to its baseline (its values just\n")
	fmt.Fprintf(&b, "before): descriptors within +%d, RSS within +%s, measured once both have stayed back for %v, or %v (--settle)\n", chaosFDSlack, mib(chaosRSSSlack), chaosSteady, o.settle)
	b.WriteString("after the attack.\n")
	b.WriteString("Requests (8, 9a) must be refused with InvalidArgument; 9b applied (VIPs added and removed, none left after SIGTERM)\n")
	b.WriteString("or refused with InvalidArgument against a documented per-node maximum; 10: no dry run fails.\n\n")
	b.WriteString("Judging on a shared machine: c1 also records every advert of n1 with the kernel's receive time (SO_TIMESTAMPNS; the\n")
	fmt.Fprintf(&b, "flood is not looped back to it). A transition of the backup is false when n1 kept sending: its longest silence on the\n")
	fmt.Fprintf(&b, "wire stayed under n2's master-down interval (%s for %s, %s for %s). If it did not, the master did not send normally:\n",
		lvsDur(chaosTakeover[0]), chaosInstV3, lvsDur(chaosTakeover[1]), chaosInstV2)
	b.WriteString("a FAIL when n1's own timers fired about that late (haad's largest timer slip) while the reference server answered, else\n")
	b.WriteString("INCONCLUSIVE (the machine stalled: the reference server was stalled as long; or the LAN lost n1's adverts: its timers were\n")
	b.WriteString("on time). Any transition of n1, the master, is false. An API p99 over the target is a failure when the reference server met the target,\n")
	fmt.Fprintf(&b, "or when haad's p99 exceeds the reference's by more than %v; otherwise INCONCLUSIVE. INCONCLUSIVE rows make the exit\n", chaosP99Target)
	b.WriteString("status non-zero too.\n\n")
	b.WriteString("| # | attack | rate achieved | duration | transitions n1 / n2 | drops by reason (n1 / n2) | API p99 n1 / n2 | n1 RSS, FDs (before -> after) | n2 RSS, FDs (before -> after) | verdict |\n")
	b.WriteString("| --- | --- | ---: | ---: | :---: | --- | ---: | --- | --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.ID, mdCell(r.Name), mdCell(rateCell(r)), durCell(r.Duration),
			transCell(r), mdCell(dropsCell(r)), p99Cell(r), resCell(r.Before[0], r.After[0]), resCell(r.Before[1], r.After[1]), verdictCell(r))
	}
	b.WriteString("\n## Notes\n\n")
	for _, r := range rows {
		lines := slices.Clone(r.Notes)
		var api []string
		for i, l := range r.Lat {
			if p50, _, mx, ok := l.percentiles(); ok {
				api = append(api, fmt.Sprintf("GetNode on %s: %d calls, p50 %s, max %s", chaosNodeNames[i], len(l.d), lvsDur(p50), lvsDur(mx)))
			}
		}
		if p50, _, mx, ok := r.Floor.percentiles(); ok {
			api = append(api, fmt.Sprintf("reference server: p50 %s, max %s", lvsDur(p50), lvsDur(mx)))
		}
		lines = append(lines, strings.Join(api, "; "))
		if r.Err != nil {
			lines = append(lines, "error: "+oneLine(r.Err))
		}
		fmt.Fprintf(&b, "- %s. %s\n", r.ID, mdCell(r.Name))
		for _, l := range lines {
			if l != "" {
				fmt.Fprintf(&b, "  - %s\n", l)
			}
		}
	}
	var failed, unjudged []string
	for _, r := range rows {
		switch f, u := r.verdict(); {
		case len(f) > 0:
			failed = append(failed, r.ID)
		case len(u) > 0:
			unjudged = append(unjudged, r.ID)
		}
	}
	fmt.Fprintf(&b, "\n## Verdict\n\n%d of %d rows meet their targets", len(rows)-len(failed)-len(unjudged), len(rows))
	if len(failed) > 0 {
		fmt.Fprintf(&b, "; failing: %s", strings.Join(failed, ", "))
	}
	if len(unjudged) > 0 {
		fmt.Fprintf(&b, "; inconclusive (the machine or the LAN, not haad, missed the target: see each verdict): %s", strings.Join(unjudged, ", "))
	}
	b.WriteString(".\n")
	return b.String()
}
