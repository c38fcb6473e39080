package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
)

// The demo's virtual router.
var (
	demoVIP = netip.MustParseAddr("10.77.0.100")
)

const (
	demoVRID     = 51
	demoInterval = 100 * time.Millisecond
	// demoSlack is how far above the protocol bound an outage may go
	// before the demo calls it a failure (scheduling on a busy machine).
	demoSlack = 100 * time.Millisecond
)

var demoPriorities = []int{200, 150, 100} // n1, n2, n3

func demoInstance(prio int) []instance {
	return []instance{{Name: "VI_1", VRID: demoVRID, Priority: prio, Version: 3,
		Interval: demoInterval, VIPs: []string{demoVIP.String() + "/24", demoGW.String() + "/24"}}}
}

// demo is the state the demo's steps share.
type demo struct {
	s     *session
	haad  haadDaemon
	dir   string
	l     *lab.Lab
	procs map[*lab.Node]*lab.Proc
	watch *advertWatch
	lb    demoLB

	// Results for the summary.
	elected, failover, failBound, preempt time.Duration
}

func runDemo(s *session, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("haalab demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("haad", "bin/haad", "haad binary to run on the nodes")
	keepGoing := fs.Bool("keep-going", false, "run the remaining steps after a step fails (the exit status is still 1)")
	if err := parseFlags(fs, "demo", args); err != nil {
		return err
	}
	path, err := checkHaad(*bin)
	if err != nil {
		return err
	}
	if err := lab.Available(); err != nil {
		return fmt.Errorf("the lab %v", err)
	}
	dir, err := os.MkdirTemp("", "haalab-demo-")
	if err != nil {
		return err
	}
	d := &demo{s: s, haad: haadDaemon{bin: path}, dir: dir, procs: map[*lab.Node]*lab.Proc{}}

	fmt.Fprintf(s.out, `haa demo: three haad nodes share one virtual IP; the master loses power, then comes back.
  A LAN of network namespaces (nothing on the host changes): nodes n1 .1, n2 .2, n3 .3 and a client c1 .200 in 10.77.0.0/24.
  VRRPv3, adverts every %v, VIP %s; priorities n1 %d, n2 %d, n3 %d (the highest wins).
  Then load balancing: the nodes are also the directors of a virtual server %s -> real servers rs1 .201, rs2 .202, rs3 .203
  (HTTP on :%d, wrr, LVS-NAT); the real servers reach c1 through a second VIP %s that follows the master.

`, demoInterval, demoVIP, demoPriorities[0], demoPriorities[1], demoPriorities[2],
		netip.AddrPortFrom(demoVIP, demoVSPort), demoRSPort, demoGW)

	steps := []struct {
		name string
		fn   func() error
	}{
		{"build the lab", d.build},
		{"start haad", d.start},
		{"election", d.election},
		{"client reaches the VIP", func() error { return d.reach(d.l.Nodes[0]) }},
		{"power off the master", d.powerOff},
		{"client reaches the VIP through the new master", func() error { return d.reach(d.l.Nodes[1]) }},
		{"n1 comes back and preempts", d.comeBack},
		{"load balancing", d.lbBalance},
		{"real server down", d.lbRealDown},
		{"director failover", d.lbFailover},
	}
	failed := 0
	for i, st := range steps {
		if err := s.err(); err != nil {
			_ = os.RemoveAll(dir)
			return err
		}
		if failed > 0 && (!*keepGoing || d.l == nil) {
			s.say("step %d/%d %s: skipped", i+1, len(steps), st.name)
			continue
		}
		if err := st.fn(); err != nil {
			failed++
			s.say("step %d/%d %s: FAILED: %v", i+1, len(steps), st.name, err)
		}
	}
	if d.watch != nil {
		d.watch.Close()
	}
	d.closeLB()
	if d.l != nil {
		prefix := d.l.Prefix
		if err := s.closeLab(d.l); err != nil {
			failed++
			s.say("removing the lab: FAILED: %v", err)
		} else if left := namespaces(prefix); len(left) > 0 {
			failed++
			s.say("removing the lab: FAILED: namespaces left behind: %s", strings.Join(left, " "))
		} else {
			s.say("lab removed: haad stopped, the namespaces %s-* deleted", prefix)
		}
	}

	fmt.Fprintln(s.out)
	if failed > 0 {
		fmt.Fprintf(s.out, "demo FAILED (%d step(s)); haad logs kept in %s\n", failed, dir)
		return fmt.Errorf("demo: %d step(s) failed", failed)
	}
	_ = os.RemoveAll(dir)
	fmt.Fprintf(s.out, "demo passed in %.1f s:\n", time.Since(s.start).Seconds())
	fmt.Fprintf(s.out, "  election          n1 master %s after start\n", ms(d.elected))
	fmt.Fprintf(s.out, "  failover n1 -> n2 client outage %s (protocol bound %s)\n", ms(d.failover), ms(d.failBound))
	fmt.Fprintf(s.out, "  preemption n2 -> n1 longest gap in the client's replies %s\n", ms(d.preempt))
	fmt.Fprintf(s.out, "  load balancing    %d requests: %s\n", demoRequests, d.lb.spread)
	fmt.Fprintf(s.out, "  real server down  %s out after %s; %d requests: %s, none failed\n", d.lbDownServer().Body, ms(d.lb.downAfter), demoRequests, d.lb.spreadDown)
	fmt.Fprintf(s.out, "  director failover %s -> %s requests unanswered for %s (%d of %d failed)\n", d.lb.from, d.lb.to, ms(d.lb.outage), d.lb.failed, d.lb.sent)
	return nil
}

// checkHaad resolves the haad binary and checks it is executable.
func checkHaad(bin string) (string, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		if !strings.Contains(bin, "/") {
			return "", usageErrorf("--haad %s: %v (build it with: make build)", bin, err)
		}
		return "", usageErrorf("--haad %s: not an executable file (build it with: make build)", bin)
	}
	// Absolute: lab.Start recognises a program that has already replaced
	// `ip netns exec` by comparing /proc/PID/exe with the resolved path;
	// a relative path never matches and the start is reported as failed.
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if resolved, err := filepath.EvalSymlinks(abs); err == nil {
		abs = resolved
	}
	return abs, nil
}

func (d *demo) build() error {
	l, err := d.s.newLab(lab.Options{Prefix: lab.UniqueName("hdemo"), Nodes: 3, Clients: 1 + demoRealServers})
	if err != nil {
		return err
	}
	d.l = l
	w, err := watchAdverts(l.Clients[0])
	if err != nil {
		return err
	}
	d.watch = w
	d.s.say("lab %s built: 8 namespaces (switch, n1, n2, n3, c1, c2, c3, c4), veth pairs on bridge %s", l.Prefix, lab.Bridge)
	if err := d.buildLB(); err != nil {
		return err
	}
	d.s.say("and for load balancing: rs1, rs2, rs3 (namespaces c2, c3, c4) serve HTTP on :%d and route c1 via %s; n1, n2, n3 forward",
		demoRSPort, demoGW)
	return nil
}

func (d *demo) start() error {
	var started []string
	for i, n := range d.l.Nodes {
		p, err := d.startHaad(n, demoPriorities[i])
		if err != nil {
			return err
		}
		d.procs[n] = p
		started = append(started, fmt.Sprintf("%s (priority %d, pid %d)", n.Name, demoPriorities[i], p.Pid()))
	}
	d.s.say("haad started on %s; every node starts as backup and waits for a master", strings.Join(started, ", "))
	return nil
}

func (d *demo) election() error {
	t0 := time.Now()
	n1 := d.l.Nodes[0]
	if _, err := d.l.WaitHolder(demoVIP, n1, 5*time.Second); err != nil {
		return errors.Join(err, d.exited())
	}
	d.elected = time.Since(t0)
	d.s.say("n1 won the election: it holds %s %s after start (no master heard, n1's master-down interval %s is the shortest)",
		demoVIP, ms(d.elected), ms(bound(3, demoPriorities[0], demoInterval)))
	line, err := d.statusLine()
	if err != nil {
		return err
	}
	d.s.say("haad status (SIGUSR1): %s", line)
	return d.expectStates(map[string]string{"n1": "MASTER", "n2": "BACKUP", "n3": "BACKUP"})
}

// exited describes the haads that are no longer running, with the end of
// their logs, or returns nil.
func (d *demo) exited() error {
	var errs []error
	for _, n := range d.l.Nodes {
		p := d.procs[n]
		if p == nil || !p.Exited() {
			continue
		}
		status := "exit status 0"
		if err := p.Wait(); err != nil {
			status = err.Error()
		}
		b, _ := os.ReadFile(p.Log)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		last := lines[len(lines)-1]
		if last == "" {
			last = "(empty)"
		}
		errs = append(errs, fmt.Errorf("haad on %s exited (%s); the last line of its log %s: %s", n.Name, status, p.Log, last))
	}
	return errors.Join(errs...)
}

// statusLine describes every running haad's state.
func (d *demo) statusLine() (string, error) {
	var parts []string
	for _, n := range d.l.Nodes {
		p := d.procs[n]
		if p == nil || p.Exited() {
			parts = append(parts, n.Name+" off")
			continue
		}
		st, err := haadStatus(p, statusPath(d.dir, n))
		if err != nil {
			return "", err
		}
		if len(st) != 1 {
			return "", fmt.Errorf("%s: %d instances in the status, want 1", n.Name, len(st))
		}
		part := fmt.Sprintf("%s %s", n.Name, st[0].State)
		if st[0].State == "BACKUP" && st[0].Master != "" {
			part += " (master " + st[0].Master + ")"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ", "), nil
}

// expectStates checks the states haad reports.
func (d *demo) expectStates(want map[string]string) error {
	for _, n := range d.l.Nodes {
		w, ok := want[n.Name]
		if !ok {
			continue
		}
		st, err := haadStatus(d.procs[n], statusPath(d.dir, n))
		if err != nil {
			return err
		}
		if len(st) != 1 || st[0].State != w {
			return fmt.Errorf("%s reports %+v, want %s", n.Name, st, w)
		}
	}
	return nil
}

// reach pings the VIP from the client for a while and checks who answers.
func (d *demo) reach(want *lab.Node) error {
	c := d.l.Clients[0]
	p, err := c.StartPing(demoVIP, pingEvery, 5*time.Second)
	if err != nil {
		return err
	}
	err = p.WaitReplies(150, 3*time.Second)
	st := p.Stop()
	if err != nil {
		return err
	}
	mac, err := c.Neigh(demoVIP)
	if err != nil {
		return err
	}
	who := "?"
	for _, n := range d.l.Nodes {
		if mac.String() == n.MAC.String() {
			who = n.Name
		}
	}
	d.s.say("c1 pings %s every %v: %d of %d answered, by %s (MAC %s)", demoVIP, pingEvery, st.Received, st.Sent, who, mac)
	if who != want.Name {
		return fmt.Errorf("the VIP is answered by %s, want %s", who, want.Name)
	}
	return nil
}

func (d *demo) powerOff() error {
	n1, n2 := d.l.Nodes[0], d.l.Nodes[1]
	d.s.say("powering off n1: its link goes down and haad is SIGKILLed (no goodbye advert), while c1 keeps pinging")
	fo, err := measureFailover(d.l, d.l.Clients[0], demoVIP, n1, d.procs[n1], d.watch, false, demoInterval, 5*time.Second)
	if err != nil {
		return err
	}
	d.failover = fo.Outage
	d.failBound = bound(3, demoPriorities[1], demoInterval)
	d.s.say("%s took over; c1 got no reply for %s (protocol bound for n2: 3 x %v + skew %s = %s; n1 died %s after its last advert, so about %s was expected)",
		fo.NewMaster.Name, ms(fo.Outage), demoInterval, ms(d.failBound-3*demoInterval), ms(d.failBound),
		ms(fo.SinceAdvert), ms(d.failBound-fo.SinceAdvert))
	if fo.NewMaster != n2 {
		return fmt.Errorf("new master %s, want n2 (the next priority)", fo.NewMaster.Name)
	}
	if fo.Outage > d.failBound+demoSlack {
		return fmt.Errorf("outage %s is far above the protocol bound %s", ms(fo.Outage), ms(d.failBound))
	}
	line, err := d.statusLine()
	if err != nil {
		return err
	}
	d.s.say("haad status (SIGUSR1): %s", line)
	return d.expectStates(map[string]string{"n2": "MASTER", "n3": "BACKUP"})
}

func (d *demo) comeBack() error {
	n1, c := d.l.Nodes[0], d.l.Clients[0]
	p, err := c.StartPing(demoVIP, pingEvery, 10*time.Second)
	if err != nil {
		return err
	}
	defer p.Stop()
	if err := p.WaitReplies(25, 3*time.Second); err != nil {
		return err
	}
	if err := n1.PowerOn(); err != nil {
		return err
	}
	t0 := time.Now()
	proc, err := d.startHaad(n1, demoPriorities[0])
	if err != nil {
		return err
	}
	d.procs[n1] = proc
	d.s.say("n1 powered on (link up, no VIP) and haad restarted (pid %d); c1 keeps pinging", proc.Pid())
	if _, err := d.l.WaitHolder(demoVIP, n1, 5*time.Second); err != nil {
		return err
	}
	took := time.Since(t0)
	if err := p.WaitReplies(50, 3*time.Second); err != nil {
		return fmt.Errorf("after the preemption: %w", err)
	}
	st := p.Stop()
	d.preempt = st.GapAfter(t0)
	d.s.say("n1 preempted n2 %s after its start (n2's lower-priority adverts do not reset n1's master-down timer of %s)",
		ms(took), ms(bound(3, demoPriorities[0], demoInterval)))
	d.s.say("during the move c1 lost %d of %d pings; the longest gap between its replies was %s", st.Sent-st.Received, st.Sent, ms(d.preempt))
	if err := d.reachQuiet(n1); err != nil {
		return err
	}
	line, err := d.statusLine()
	if err != nil {
		return err
	}
	d.s.say("haad status (SIGUSR1): %s", line)
	return d.expectStates(map[string]string{"n1": "MASTER", "n2": "BACKUP", "n3": "BACKUP"})
}

// reachQuiet checks that want answers for the VIP.
func (d *demo) reachQuiet(want *lab.Node) error {
	mac, err := d.l.Clients[0].Neigh(demoVIP)
	if err != nil {
		return err
	}
	if mac.String() != want.MAC.String() {
		return fmt.Errorf("c1 reaches %s at %s, want %s (%s)", demoVIP, mac, want.Name, want.MAC)
	}
	return nil
}

// namespaces lists the namespaces whose name starts with prefix-.
func namespaces(prefix string) []string {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil
	}
	var found []string
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, prefix+"-") {
			found = append(found, name)
		}
	}
	return found
}

// ms formats a duration in milliseconds: 361.2 ms, 3609 ms.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 100:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}
