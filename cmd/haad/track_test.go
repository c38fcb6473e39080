package main

// Namespace tests of trackers, sync groups and notify commands: real haad
// processes in a lab (deploy/lab), real check commands, real interfaces and
// files, observed through the API. They skip without root and fail instead
// when HAA_REQUIRE_NETNS=1.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/haa-dev/haa/deploy/lab"
	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// vrrpBound is the master-down interval of a priority-90 backup at the
// cluster's default 100 ms VRRPv3 adverts: how long VRRP needs, at most, to
// move a VIP once a master stops winning.
const vrrpBound = 3*100*time.Millisecond + 100*time.Millisecond*(256-90)/256

// startTop runs haad on n with the instances and extra top-level YAML
// (trackers:, syncGroups:) appended to the generated configuration.
func (c *cluster) startTop(n *lab.Node, top string, ins ...instance) *lab.Proc {
	c.t.Helper()
	p, err := n.StartHaad(c.dir, c.bin, c.config(n, ins...)+top,
		"--log-level", "debug", "--status-file", c.statusPath(n))
	if err != nil {
		c.t.Fatal(err)
	}
	c.procs[n] = p
	return p
}

// getInstance asks the agent for one instance.
func getInstance(t *testing.T, cl haav1.AgentServiceClient, name string) *haav1.InstanceStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := cl.GetInstance(ctx, &haav1.GetInstanceRequest{Name: name})
	if err != nil {
		t.Fatalf("GetInstance %s: %v", name, err)
	}
	return r.GetInstance()
}

// waitInstance polls GetInstance until ok holds, and returns the status.
func waitInstance(t *testing.T, cl haav1.AgentServiceClient, name, what string, timeout time.Duration,
	ok func(*haav1.InstanceStatus) bool) *haav1.InstanceStatus {
	t.Helper()
	var last *haav1.InstanceStatus
	err := lab.Poll(timeout, 20*time.Millisecond, what, func() (bool, error) {
		last = getInstance(t, cl, name)
		return ok(last), nil
	})
	if err != nil {
		t.Fatalf("%v; %s: %v", err, name, last)
	}
	return last
}

// trackerOf returns the instance's tracker called name, or nil.
func trackerOf(in *haav1.InstanceStatus, name string) *haav1.TrackerStatus {
	for _, tr := range in.GetTrackers() {
		if tr.GetName() == name {
			return tr
		}
	}
	return nil
}

// trackerIs reports whether the instance shows tracker name in state with
// contribution delta.
func trackerIs(in *haav1.InstanceStatus, name string, state haav1.TrackerState, delta int32) bool {
	tr := trackerOf(in, name)
	return tr != nil && tr.GetState() == state && tr.GetContribution() == delta
}

func trackerChanged(tracker string, state haav1.TrackerState, instance string) func(*haav1.Event) bool {
	return func(e *haav1.Event) bool {
		tc := e.GetTrackerChanged()
		return tc != nil && tc.GetTracker() == tracker && tc.GetState() == state && slices.Contains(tc.GetInstances(), instance)
	}
}

// webPort is where each node's tiny web server listens, on its own
// loopback: every namespace has its own, so the nodes never collide.
const webPort = 18080

// webServer is an HTTP server listening inside a node's namespace, served
// by the test process ("nginx" of the tutorials).
type webServer struct {
	t    *testing.T
	n    *lab.Node
	srv  *http.Server
	done chan struct{}
}

// startWeb starts (or restarts) the node's web server on
// 127.0.0.1:webPort inside its namespace.
func startWeb(t *testing.T, n *lab.Node) *webServer {
	t.Helper()
	var ln net.Listener
	err := n.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", webPort))
		return err
	})
	if err != nil {
		t.Fatalf("%s: web server: %v", n.Name, err)
	}
	w := &webServer{t: t, n: n, done: make(chan struct{}), srv: &http.Server{
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(rw, "hello from %s\n", n.Name)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}}
	go func() {
		defer close(w.done)
		_ = w.srv.Serve(ln)
	}()
	t.Cleanup(w.stop)
	return w
}

// stop closes the listener and every connection: the check fails at once
// (connection refused).
func (w *webServer) stop() {
	_ = w.srv.Close()
	select {
	case <-w.done:
	case <-time.After(5 * time.Second):
		w.t.Errorf("%s: web server still serving 5 s after Close", w.n.Name)
	}
}

// The nginx scenario of the keepalived tutorials: a web server per node, a
// check that fetches a page, weight -20. The master's server stops: its
// priority drops to 80, below the backup's 90, and the backup takes over
// within interval x fall plus the VRRP bound; the server comes back: the
// first node preempts.
func TestTrackNginxScenario(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2)
	n1, n2 := c.lab.Nodes[0], c.lab.Nodes[1]
	web1 := startWeb(t, n1)
	startWeb(t, n2)
	const (
		checkInterval = time.Second
		fall          = 2
	)
	top := fmt.Sprintf(`trackers:
  - name: chk_web
    script: {command: ["/usr/bin/curl", "-sf", "-m", "1", "http://127.0.0.1:%d/"], interval: 1s, timeout: 1s, rise: 1, fall: %d}
    weight: -20
`, webPort, fall)
	track := "    track: [{tracker: chk_web}]\n"
	c.startTop(n1, top, instance{name: "VI_1", vrid: 51, prio: 100, extra: track})
	c.startTop(n2, top, instance{name: "VI_1", vrid: 51, prio: 90, extra: track})
	c.waitHolder(vip, n1, 10*time.Second)
	a1, a2 := c.api(n1), c.api(n2)
	healthy := func(in *haav1.InstanceStatus) bool {
		return trackerIs(in, "chk_web", haav1.TrackerState_TRACKER_STATE_OK, 0) && in.GetEffectivePriority() == in.GetConfiguredPriority()
	}
	in := waitInstance(t, a1, "VI_1", "n1's chk_web OK", 5*time.Second, healthy)
	if tr := trackerOf(in, "chk_web"); tr.GetKind() != "script" || tr.GetWeight() != -20 || tr.GetFault() || in.GetState() != haav1.State_STATE_MASTER {
		t.Fatalf("n1 before the stop: %v", in)
	}
	waitInstance(t, a2, "VI_1", "n2's chk_web OK", 5*time.Second, healthy)
	c.stableHolder(vip, n1, 500*time.Millisecond)

	// nginx dies on the master.
	w := c.watch(a1, nil)
	at := time.Now()
	web1.stop()
	limit := checkInterval*fall + vrrpBound
	c.waitHolder(vip, n2, limit+5*time.Second)
	took := time.Since(at)
	t.Logf("server stopped on n1 -> n2 holds the VIP after %v (interval x fall + VRRP bound = %v)", took, limit)
	if took > limit+2*time.Second {
		t.Fatalf("failover took %v, far above interval x fall + VRRP bound = %v", took, limit)
	}
	in = waitInstance(t, a1, "VI_1", "n1 at priority 80 with chk_web FAILED", 3*time.Second, func(in *haav1.InstanceStatus) bool {
		return trackerIs(in, "chk_web", haav1.TrackerState_TRACKER_STATE_FAILED, -20) &&
			in.GetEffectivePriority() == 80 && in.GetState() == haav1.State_STATE_BACKUP
	})
	if tr := trackerOf(in, "chk_web"); tr.GetFault() || tr.GetDetail() == "" || in.GetConfiguredPriority() != 100 || in.GetFaultReason() != "" {
		t.Fatalf("n1 after the stop: %v", in)
	}
	// The VIP is added before the new master records its transition: wait
	// for the state a moment.
	waitInstance(t, a2, "VI_1", "n2 MASTER with chk_web OK", 3*time.Second, func(s *haav1.InstanceStatus) bool {
		return s.GetState() == haav1.State_STATE_MASTER && trackerIs(s, "chk_web", haav1.TrackerState_TRACKER_STATE_OK, 0)
	})
	c.stableHolder(vip, n2, 500*time.Millisecond)
	e := w.waitFor(t, "tracker_changed chk_web FAILED on n1", trackerChanged("chk_web", haav1.TrackerState_TRACKER_STATE_FAILED, "VI_1"))
	t.Logf("tracker_changed: %v", e.GetTrackerChanged())
	w.waitFor(t, "priority_changed to 80 on n1", func(e *haav1.Event) bool {
		pc := e.GetPriorityChanged()
		return e.GetInstance() == "VI_1" && pc != nil && pc.GetPriority() == 80 && pc.GetConfigured() == 100
	})

	// nginx is back: n1 returns to 100 and preempts.
	at = time.Now()
	startWeb(t, n1)
	c.waitHolder(vip, n1, checkInterval+vrrpBound+5*time.Second)
	t.Logf("server restarted on n1 -> n1 holds the VIP again after %v", time.Since(at))
	waitInstance(t, a1, "VI_1", "n1 healthy and master", 3*time.Second, func(in *haav1.InstanceStatus) bool {
		return healthy(in) && in.GetEffectivePriority() == 100 && in.GetState() == haav1.State_STATE_MASTER
	})
	w.waitFor(t, "tracker_changed chk_web OK on n1", trackerChanged("chk_web", haav1.TrackerState_TRACKER_STATE_OK, "VI_1"))
	c.stableHolder(vip, n1, 500*time.Millisecond)
	if s := getInstance(t, a2, "VI_1"); s.GetState() != haav1.State_STATE_BACKUP {
		t.Fatalf("n2 after the preemption: %v", s)
	}
}

// The master tracks a second interface with weight 0: the interface going
// down puts the instance in FAULT (naming the tracker) and the backup takes
// over; it coming back makes the master preempt again.
func TestTrackUplinkDown(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2)
	n1, n2 := c.lab.Nodes[0], c.lab.Nodes[1]
	// The uplink: a veth pair inside n1 (both ends there), so its
	// operational state is a real UP.
	if err := n1.IP("link", "add", "upl0", "type", "veth", "peer", "name", "upl1"); err != nil {
		t.Fatal(err)
	}
	for _, dev := range []string{"upl1", "upl0"} {
		if err := n1.IP("link", "set", dev, "up"); err != nil {
			t.Fatal(err)
		}
	}
	top := "trackers:\n  - name: uplink\n    interface: {name: upl0}\n    weight: 0\n"
	c.startTop(n1, top, instance{name: "VI_1", vrid: 51, prio: 100, extra: "    track: [{tracker: uplink}]\n"})
	c.start(n2, instance{name: "VI_1", vrid: 51, prio: 90})
	c.waitHolder(vip, n1, 10*time.Second)
	a1 := c.api(n1)
	in := waitInstance(t, a1, "VI_1", "n1's uplink OK", 5*time.Second, func(in *haav1.InstanceStatus) bool {
		return trackerIs(in, "uplink", haav1.TrackerState_TRACKER_STATE_OK, 0) && in.GetState() == haav1.State_STATE_MASTER
	})
	if tr := trackerOf(in, "uplink"); tr.GetKind() != "interface" || tr.GetFault() {
		t.Fatalf("n1 before: %v", in)
	}
	c.stableHolder(vip, n1, 300*time.Millisecond)

	w := c.watch(a1, nil)
	at := time.Now()
	if err := n1.IP("link", "set", "upl0", "down"); err != nil {
		t.Fatal(err)
	}
	c.waitHolder(vip, n2, vrrpBound+5*time.Second)
	took := time.Since(at)
	t.Logf("uplink down on n1 -> n2 holds the VIP after %v (VRRP bound %v)", took, vrrpBound)
	if took > vrrpBound+time.Second {
		t.Fatalf("failover took %v: an interface tracker is event-driven, the VRRP bound is %v", took, vrrpBound)
	}
	in = waitInstance(t, a1, "VI_1", "n1 in FAULT", 3*time.Second, func(in *haav1.InstanceStatus) bool {
		return in.GetState() == haav1.State_STATE_FAULT
	})
	tr := trackerOf(in, "uplink")
	if !strings.Contains(in.GetFaultReason(), "uplink") || tr.GetState() != haav1.TrackerState_TRACKER_STATE_FAILED || !tr.GetFault() || len(in.GetVipsHeld()) != 0 {
		t.Fatalf("n1 with its uplink down: %v, want FAULT naming uplink, the tracker failed with fault, no VIP held", in)
	}
	e := w.waitFor(t, "n1 entering FAULT", func(e *haav1.Event) bool {
		return e.GetInstance() == "VI_1" && e.GetStateChanged().GetTo() == haav1.State_STATE_FAULT
	})
	if cause := e.GetStateChanged().GetCause(); cause != "tracker_failed" {
		t.Errorf("FAULT transition cause %q, want tracker_failed", cause)
	}
	w.waitFor(t, "tracker_changed uplink FAILED", trackerChanged("uplink", haav1.TrackerState_TRACKER_STATE_FAILED, "VI_1"))
	c.stableHolder(vip, n2, 500*time.Millisecond)

	at = time.Now()
	if err := n1.IP("link", "set", "upl0", "up"); err != nil {
		t.Fatal(err)
	}
	c.waitHolder(vip, n1, vrrpBound+5*time.Second)
	t.Logf("uplink up on n1 -> n1 holds the VIP again after %v", time.Since(at))
	in = waitInstance(t, a1, "VI_1", "n1 master, uplink OK", 3*time.Second, func(in *haav1.InstanceStatus) bool {
		return in.GetState() == haav1.State_STATE_MASTER && trackerIs(in, "uplink", haav1.TrackerState_TRACKER_STATE_OK, 0)
	})
	if in.GetFaultReason() != "" {
		t.Fatalf("n1 master with fault reason %q", in.GetFaultReason())
	}
	w.waitFor(t, "tracker_changed uplink OK", trackerChanged("uplink", haav1.TrackerState_TRACKER_STATE_OK, "VI_1"))
	c.stableHolder(vip, n1, 300*time.Millisecond)
}

// Two instances in a sync group on both nodes; only VI_1 on the master
// tracks a file (weight 0). The file says 1: VI_1 goes to FAULT and takes
// VI_2 with it, the backup holds both VIPs; it says 0: both come back.
func TestSyncGroupMovesTogether(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2)
	n1, n2 := c.lab.Nodes[0], c.lab.Nodes[1]
	vip2 := netip.MustParseAddr("10.77.0.101")
	drain := filepath.Join(c.dir, "drain")
	writeFile(t, drain, "0\n")
	pair := func(prio int, track string) []instance {
		return []instance{
			{name: "VI_1", vrid: 51, prio: prio, extra: track},
			{name: "VI_2", vrid: 52, prio: prio, vips: []string{vip2.String() + "/24"}},
		}
	}
	group := "syncGroups:\n  - name: VG_1\n    instances: [VI_1, VI_2]\n"
	c.startTop(n1, fmt.Sprintf("trackers:\n  - name: drain\n    file: {path: %s}\n    weight: 0\n", drain)+group,
		pair(100, "    track: [{tracker: drain}]\n")...)
	c.startTop(n2, group, pair(90, "")...)
	c.waitHolder(vip, n1, 10*time.Second)
	c.waitHolder(vip2, n1, 10*time.Second)
	a1, a2 := c.api(n1), c.api(n2)
	in := waitInstance(t, a1, "VI_1", "n1's VI_1 tracking drain", 5*time.Second, func(in *haav1.InstanceStatus) bool {
		return trackerIs(in, "drain", haav1.TrackerState_TRACKER_STATE_OK, 0)
	})
	if in.GetSyncGroup() != "VG_1" || trackerOf(in, "drain").GetKind() != "file" {
		t.Fatalf("n1 VI_1: %v", in)
	}
	for _, cl := range []haav1.AgentServiceClient{a1, a2} {
		if s := getInstance(t, cl, "VI_2"); s.GetSyncGroup() != "VG_1" {
			t.Fatalf("VI_2 not in VG_1: %v", s)
		}
	}
	c.stableHolder(vip2, n1, 300*time.Millisecond)

	w := c.watch(a1, nil)
	at := time.Now()
	writeFile(t, drain, "1\n")
	c.waitHolder(vip, n2, vrrpBound+5*time.Second)
	c.waitHolder(vip2, n2, vrrpBound+5*time.Second)
	t.Logf("drain=1 on n1 -> n2 holds both VIPs after %v", time.Since(at))
	vi1 := waitInstance(t, a1, "VI_1", "n1's VI_1 in FAULT", 3*time.Second, func(in *haav1.InstanceStatus) bool {
		return in.GetState() == haav1.State_STATE_FAULT
	})
	if !strings.Contains(vi1.GetFaultReason(), "drain") || !trackerOf(vi1, "drain").GetFault() {
		t.Fatalf("n1 VI_1: %v, want FAULT naming the tracker drain", vi1)
	}
	vi2 := waitInstance(t, a1, "VI_2", "n1's VI_2 in FAULT", 3*time.Second, func(in *haav1.InstanceStatus) bool {
		return in.GetState() == haav1.State_STATE_FAULT
	})
	if !strings.Contains(vi2.GetFaultReason(), "VG_1") {
		t.Fatalf("n1 VI_2: %v, want FAULT naming the sync group VG_1", vi2)
	}
	t.Logf("fault reasons: VI_1 %q, VI_2 %q", vi1.GetFaultReason(), vi2.GetFaultReason())
	for _, name := range []string{"VI_1", "VI_2"} {
		waitInstance(t, a2, name, "n2 MASTER of "+name, 3*time.Second, func(s *haav1.InstanceStatus) bool {
			return s.GetState() == haav1.State_STATE_MASTER
		})
		w.waitFor(t, "n1's "+name+" entering FAULT", func(e *haav1.Event) bool {
			return e.GetInstance() == name && e.GetStateChanged().GetTo() == haav1.State_STATE_FAULT
		})
	}
	c.stableHolder(vip, n2, 300*time.Millisecond)
	c.stableHolder(vip2, n2, 300*time.Millisecond)

	at = time.Now()
	writeFile(t, drain, "0\n")
	c.waitHolder(vip, n1, vrrpBound+5*time.Second)
	c.waitHolder(vip2, n1, vrrpBound+5*time.Second)
	t.Logf("drain=0 on n1 -> n1 holds both VIPs again after %v", time.Since(at))
	for _, name := range []string{"VI_1", "VI_2"} {
		s := waitInstance(t, a1, name, "n1's "+name+" MASTER", 3*time.Second, func(in *haav1.InstanceStatus) bool {
			return in.GetState() == haav1.State_STATE_MASTER
		})
		if s.GetFaultReason() != "" {
			t.Fatalf("n1 %s master with fault reason %q", name, s.GetFaultReason())
		}
	}
	c.stableHolder(vip, n1, 300*time.Millisecond)
	c.stableHolder(vip2, n1, 300*time.Millisecond)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// scriptDir makes a root-owned 0755 directory for scripts under the test's
// temporary directory (itself 0700 under the sticky /tmp: a secure path).
func scriptDir(t *testing.T, parent string) string {
	t.Helper()
	d := filepath.Join(parent, "scripts")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return d
}

// writeScript writes an executable script with the given mode.
func writeScript(t *testing.T, path, body string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// A file tracker (weight 0) flaps 100 times in 6 s while every transition
// runs two notify commands that take 20 ms each: the queue falls behind and
// catches up, and the log the commands write lists exactly the transitions
// of the event stream, in order, each as its own command then `any`.
func TestNotifyOrderUnderFlaps(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1)
	n1 := c.lab.Nodes[0]
	dir := scriptDir(t, c.dir)
	logPath := filepath.Join(c.dir, "notify.log")
	script := filepath.Join(dir, "notify.sh")
	writeScript(t, script, fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %s\nsleep 0.02\n", logPath), 0o755)
	flag := filepath.Join(c.dir, "flap")
	writeFile(t, flag, "0\n")
	notify := fmt.Sprintf(`    track: [{tracker: flap}]
    notify:
      master: [%[1]q, "master"]
      backup: [%[1]q, "backup"]
      fault: [%[1]q, "fault"]
      any: [%[1]q, "any"]
`, script)
	c.startTop(n1, fmt.Sprintf("trackers:\n  - name: flap\n    file: {path: %s}\n    weight: 0\n", flag),
		instance{name: "VI_1", vrid: 51, prio: 100, extra: notify})
	c.waitHolder(vip, n1, 10*time.Second)
	a1 := c.api(n1)

	readLog := func() []string {
		b, err := os.ReadFile(logPath)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		s := strings.TrimRight(string(b), "\n")
		if s == "" {
			return nil
		}
		return strings.Split(s, "\n")
	}
	// Start from a quiet node: master, and its last notify (MASTER) logged.
	err := lab.Poll(10*time.Second, 20*time.Millisecond, "the startup notifies", func() (bool, error) {
		l := readLog()
		return len(l) > 0 && l[len(l)-1] == "any INSTANCE VI_1 MASTER 100", nil
	})
	if err != nil {
		t.Fatalf("%v; log: %q", err, readLog())
	}
	// Its notify_ran event follows the command's end (after the log line):
	// wait for it, and count only later notify commands.
	var startSeq uint64
	waitInstance(t, a1, "VI_1", "the startup notify results", 5*time.Second, func(in *haav1.InstanceStatus) bool {
		rs := in.GetNotifyResults()
		if len(rs) == 0 {
			return false
		}
		last := rs[len(rs)-1]
		startSeq = last.GetSeq()
		return last.GetState() == "MASTER" && slices.Contains(last.GetCommand(), "any")
	})
	mark := len(readLog())
	w := c.watch(a1, nil)

	const flaps = 100
	start := time.Now()
	for range flaps {
		writeFile(t, flag, "1\n")
		time.Sleep(30 * time.Millisecond)
		writeFile(t, flag, "0\n")
		time.Sleep(30 * time.Millisecond)
	}
	t.Logf("%d flaps written in %v", flaps, time.Since(start))

	// Settled: master again, every transition's two commands reported.
	var states []haav1.State
	var ran []*haav1.NotifyResult
	collect := func() {
		states, ran = nil, nil
		for _, e := range w.snapshot() {
			if e.GetInstance() == "VI_1" && e.GetStateChanged() != nil {
				states = append(states, e.GetStateChanged().GetTo())
			}
			if r := e.GetNotifyRan().GetResult(); r != nil && r.GetSeq() > startSeq {
				ran = append(ran, r)
			}
		}
	}
	err = lab.Poll(90*time.Second, 100*time.Millisecond, "the notify queue to drain", func() (bool, error) {
		collect()
		return len(states) > 0 && states[len(states)-1] == haav1.State_STATE_MASTER &&
			len(ran) == 2*len(states) && len(readLog())-mark == 2*len(states), nil
	})
	if err != nil {
		t.Fatalf("%v: %d transitions, %d notify_ran events, %d log lines", err, len(states), len(ran), len(readLog())-mark)
	}
	t.Logf("%d transitions, drained %v after the first flap", len(states), time.Since(start))
	time.Sleep(500 * time.Millisecond) // nothing more comes
	collect()
	lines := readLog()[mark:]
	if len(lines) != 2*len(states) || len(ran) != 2*len(states) {
		t.Fatalf("after settling: %d transitions, %d notify_ran events, %d log lines", len(states), len(ran), len(lines))
	}
	if len(states) < flaps {
		t.Fatalf("only %d transitions for %d flaps: the file tracker missed most of them", len(states), flaps)
	}
	for i := 1; i < len(states); i++ {
		if states[i] == states[i-1] {
			t.Fatalf("transition %d to %v repeats the previous state", i, states[i])
		}
	}

	// The log: for transition i, its own command then `any`, in the
	// order of the events.
	var wantLog []string
	for _, s := range states {
		name := strings.TrimPrefix(s.String(), "STATE_")
		wantLog = append(wantLog, strings.ToLower(name), fmt.Sprintf("any INSTANCE VI_1 %s 100", name))
	}
	if !slices.Equal(lines, wantLog) {
		for i := range lines {
			if i >= len(wantLog) || lines[i] != wantLog[i] {
				t.Fatalf("notify log differs from the event stream at line %d: got %q, want %q\nlog around it: %q",
					i, lines[i], wantLog[min(i, len(wantLog)-1)], lines[max(0, i-4):min(len(lines), i+4)])
			}
		}
		t.Fatalf("notify log has %d lines, the events want %d", len(lines), len(wantLog))
	}

	// The notify_ran events: the same order, each exit 0, gapless seq.
	for i, r := range ran {
		st := strings.TrimPrefix(states[i/2].String(), "STATE_")
		own := i%2 == 0
		cmd := r.GetCommand()
		isAny := len(cmd) > 1 && cmd[1] == "any"
		if r.GetType() != "INSTANCE" || r.GetName() != "VI_1" || r.GetState() != st || r.GetExitCode() != 0 || r.GetError() != "" ||
			len(cmd) == 0 || cmd[0] != script || isAny == own {
			t.Fatalf("notify_ran %d: %v, want the %s command of the transition to %s, exit 0", i, r, map[bool]string{true: "own", false: "any"}[own], st)
		}
		if i > 0 && r.GetSeq() != ran[i-1].GetSeq()+1 {
			t.Fatalf("notify_ran %d: seq %d after %d: not gapless", i, r.GetSeq(), ran[i-1].GetSeq())
		}
		if r.GetDuration().AsDuration() < 20*time.Millisecond {
			t.Fatalf("notify_ran %d took %v: the command sleeps 20 ms", i, r.GetDuration().AsDuration())
		}
	}
	in := getInstance(t, a1, "VI_1")
	if rs := in.GetNotifyResults(); len(rs) == 0 || rs[len(rs)-1].GetSeq() != ran[len(ran)-1].GetSeq() {
		t.Fatalf("GetInstance notify_results %v: want the latest (seq %d) last", rs, ran[len(ran)-1].GetSeq())
	}
}

// Insecure or missing check and notify commands are refused where the
// configuration is checked, naming the field: haad --check (exit 2), and
// ApplyConfig on a running agent (InvalidArgument, nothing changes).
func TestScriptSecurityRefused(t *testing.T) {
	t.Parallel()
	dir := scriptDir(t, t.TempDir())
	good := filepath.Join(dir, "good.sh")
	writeScript(t, good, "#!/bin/sh\nexit 0\n", 0o755)
	open := filepath.Join(dir, "open.sh")
	writeScript(t, open, "#!/bin/sh\nexit 0\n", 0o777)
	missing := filepath.Join(dir, "missing.sh")

	// cfg is a valid agent configuration whose tracker runs check and
	// whose VI_1 runs notify on becoming master.
	cfg := func(check, notify string) string {
		return fmt.Sprintf(`name: n1
trackers:
  - name: chk
    script: {command: [%q]}
    weight: -10
instances:
  - name: VI_1
    interface: eth0
    vrid: 51
    priority: 100
    vips: ["10.77.0.100/24"]
    track: [{tracker: chk}]
    notify: {master: [%q, "master"]}
`, check, notify)
	}
	cases := []struct {
		name          string
		check, notify string
		want          []string
	}{
		{"world-writable check", open, good, []string{"trackers[0].script.command", open, "writable"}},
		{"missing check", missing, good, []string{"trackers[0].script.command", missing}},
		{"check not in PATH", "haa-no-such-check", good, []string{"trackers[0].script.command", "haa-no-such-check", "PATH"}},
		{"world-writable notify", good, open, []string{"instances[0].notify.master", open, "writable"}},
	}
	t.Run("check", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "haad.yaml")
		writeFile(t, p, cfg(good, good))
		var stderr bytes.Buffer
		if code := run([]string{"--config", p, "--check"}, &stderr); code != exitOK {
			t.Fatalf("--check on secure commands: exit %d: %s", code, &stderr)
		}
		for _, tc := range cases {
			writeFile(t, p, cfg(tc.check, tc.notify))
			stderr.Reset()
			if code := run([]string{"--config", p, "--check"}, &stderr); code != exitConfig {
				t.Fatalf("%s: --check exit %d, want %d; stderr:\n%s", tc.name, code, exitConfig, &stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("%s: --check output lacks %q:\n%s", tc.name, w, &stderr)
				}
			}
		}
	})
	t.Run("apply", func(t *testing.T) {
		c := newCluster(t, 1)
		n1 := c.lab.Nodes[0]
		c.start(n1, instance{name: "VI_1", vrid: 51, prio: 100})
		c.waitHolder(vip, n1, 10*time.Second)
		a1 := c.api(n1)
		ctx := context.Background()
		before, err := a1.GetConfig(ctx, &haav1.GetConfigRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range cases {
			ac, err := config.Parse([]byte(cfg(tc.check, tc.notify)))
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			_, err = a1.ApplyConfig(ctx, &haav1.ApplyConfigRequest{Config: ac})
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("%s: ApplyConfig: %v, want InvalidArgument", tc.name, err)
			}
			var fields []string
			for _, d := range status.Convert(err).Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, v := range br.GetFieldViolations() {
						fields = append(fields, v.GetField()+": "+v.GetDescription())
					}
				}
			}
			all := strings.Join(fields, "\n") + "\n" + status.Convert(err).Message()
			if len(fields) == 0 || !strings.HasPrefix(fields[0], tc.want[0]) {
				t.Fatalf("%s: field violations %q, want one on %s", tc.name, fields, tc.want[0])
			}
			for _, w := range tc.want[1:] {
				if !strings.Contains(all, w) {
					t.Errorf("%s: ApplyConfig error lacks %q: %s", tc.name, w, all)
				}
			}
		}
		after, err := a1.GetConfig(ctx, &haav1.GetConfigRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if after.GetGeneration() != before.GetGeneration() {
			t.Fatalf("generation %d after refused applies, was %d", after.GetGeneration(), before.GetGeneration())
		}
		c.stableHolder(vip, n1, 200*time.Millisecond)
	})
}
