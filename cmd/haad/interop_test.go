package main

// Interop tests: haad and a real keepalived 2.2.7 (VRRP only) in one virtual
// router, each side master in turn. Both sides are asked what they see: haad
// through its status file, keepalived through its log. They skip when
// keepalived is missing and fail instead when HAA_REQUIRE_NETNS=1.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
)

// requireKeepalived skips t without namespaces or keepalived, and fails it
// instead when HAA_REQUIRE_NETNS=1.
func requireKeepalived(t *testing.T) {
	t.Helper()
	lab.Require(t)
	if _, err := lab.KeepalivedPath(); err != nil {
		if os.Getenv(lab.RequireEnv) == "1" {
			t.Fatalf("keepalived interop test cannot run and %s=1: %v", lab.RequireEnv, err)
		}
		t.Skipf("skipping keepalived interop test: %v (or set %s=1 to make this a failure)", err, lab.RequireEnv)
	}
}

// proto is the VRRP setup both sides of an interop test share.
type proto struct {
	name     string
	version  int
	interval time.Duration
	advert   string // keepalived's advert_int for interval
	pass     string // v2 PASS password; "" for none
}

var (
	v2Pass = proto{name: "v2-pass", version: 2, interval: time.Second, advert: "1", pass: "1111"}
	v3Fast = proto{name: "v3-100ms", version: 3, interval: 100 * time.Millisecond, advert: "0.1"}
)

// masterDown is the master-down interval of a backup with priority prio.
func (p proto) masterDown(prio int) time.Duration {
	return 3*p.interval + p.interval*time.Duration(256-prio)/256
}

// haad is the haad instance VI_1 with priority prio and password pass.
func (p proto) haad(prio int, pass string) instance {
	in := instance{name: "VI_1", vrid: 51, prio: prio, version: p.version, interval: p.interval.String()}
	if pass != "" {
		in.extra = fmt.Sprintf("    auth: {type: PASS, password: %q}\n", pass)
	}
	return in
}

// keepalived is the keepalived.conf of node n: VI_1 with priority prio and
// password pass, the same VRID and VIP as haad's.
func (p proto) keepalived(n *lab.Node, prio int, pass string) string {
	auth := ""
	if pass != "" {
		auth = "  authentication {\n    auth_type PASS\n    auth_pass " + pass + "\n  }\n"
	}
	return fmt.Sprintf(`global_defs {
  router_id %s
  vrrp_version %d
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority %d
  advert_int %s
%s  virtual_ipaddress {
    %s/24
  }
}
`, n.Name, p.version, prio, p.advert, auth, vip)
}

// kaComplaints are keepalived 2.2.7's log messages for an advert it discards
// (vrrp_check_packet and friends): none may appear about haad's adverts.
var kaComplaints = []string{
	"invalid TTL/HL", "wrong version", "vrrp packet too", "auth, expecting",
	"invalid passwd", "interval mismatch", "Invalid packet type",
	"unexpected ip number count", "ip_tot_len mismatch", "VIPs but received",
	"not present in MASTER advert", "Invalid VRRPv", "Invalid auth type",
}

// keepalived is a keepalived peer on one node of a cluster. Its log
// accumulates over restarts; mark starts a new phase, and the since* and
// wait* methods look only at what was logged after the last mark.
type keepalived struct {
	c    *cluster
	node *lab.Node
	proc *lab.Proc
	log  string
	mark int
}

// startKeepalived runs keepalived with conf on n.
func (c *cluster) startKeepalived(n *lab.Node, conf string) *keepalived {
	c.t.Helper()
	k := &keepalived{c: c, node: n, log: n.KeepalivedFiles(c.dir).Log}
	c.t.Cleanup(func() {
		if c.t.Failed() {
			c.t.Logf("--- keepalived log of %s:\n%s", n.Name, tail(k.read(), 60))
		}
	})
	k.restart(conf)
	return k
}

// restart starts keepalived again (after a crash, a stop or a power-off);
// the log since the restart begins a new phase.
func (k *keepalived) restart(conf string) {
	k.c.t.Helper()
	k.markLog()
	p, err := k.node.StartKeepalived(k.c.dir, conf)
	if err != nil {
		k.c.t.Fatal(err)
	}
	k.proc = p
}

func (k *keepalived) read() string {
	b, _ := os.ReadFile(k.log)
	return string(b)
}

// markLog starts a new phase: later checks ignore what is logged so far.
func (k *keepalived) markLog() { k.mark = len(k.read()) }

// since returns the log written after the last mark.
func (k *keepalived) since() string {
	s := k.read()
	if k.mark > len(s) {
		return ""
	}
	return s[k.mark:]
}

// waitLog waits until keepalived logs msg (after the last mark).
func (k *keepalived) waitLog(msg string, timeout time.Duration) {
	k.c.t.Helper()
	err := lab.Poll(timeout, 20*time.Millisecond, fmt.Sprintf("keepalived on %s to log %q", k.node.Name, msg), func() (bool, error) {
		if k.proc.Exited() {
			return false, fmt.Errorf("keepalived on %s exited: %v", k.node.Name, k.proc.Wait())
		}
		return strings.Contains(k.since(), msg), nil
	})
	if err != nil {
		k.c.t.Fatal(err)
	}
}

// wantLog asserts that keepalived logged every one of msgs since the mark.
func (k *keepalived) wantLog(msgs ...string) {
	k.c.t.Helper()
	s := k.since()
	for _, m := range msgs {
		if !strings.Contains(s, m) {
			k.c.t.Fatalf("keepalived on %s did not log %q", k.node.Name, m)
		}
	}
}

// noLog asserts that keepalived logged none of msgs since the mark.
func (k *keepalived) noLog(msgs ...string) {
	k.c.t.Helper()
	s := k.since()
	for _, m := range msgs {
		if i := strings.Index(s, m); i >= 0 {
			line := s[strings.LastIndex(s[:i], "\n")+1:]
			if j := strings.IndexByte(line, '\n'); j >= 0 {
				line = line[:j]
			}
			k.c.t.Fatalf("keepalived on %s logged %q", k.node.Name, line)
		}
	}
}

// waitRunning waits until the haad last started on n has installed its
// signal handlers (it logs "haad running" with its pid): a SIGUSR1 before
// that would kill it.
func (c *cluster) waitRunning(n *lab.Node) {
	c.t.Helper()
	p := c.procs[n]
	line := fmt.Sprintf("pid=%d", p.Pid())
	err := lab.Poll(5*time.Second, 10*time.Millisecond, "haad on "+n.Name+" to run", func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("haad on %s exited: %v", n.Name, p.Wait())
		}
		b, err := os.ReadFile(n.HaadFiles(c.dir).Log)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "haad running") && strings.Contains(l, line) {
				return true, nil
			}
		}
		return false, err
	})
	if err != nil {
		c.t.Fatal(err)
	}
}

// wantStatus asserts haad's view of VI_1 on n: its state, the master it
// follows (when a backup) and that no advert was dropped.
func (c *cluster) wantStatus(n *lab.Node, state string, master *lab.Node) instanceDump {
	c.t.Helper()
	st := c.status(n)["VI_1"]
	ok := st.State == state && len(st.Drops) == 0
	if master != nil {
		ok = ok && st.Master == master.Addr.String() && st.AdvertsReceived > 0
	}
	if !ok {
		want := state
		if master != nil {
			want += " of " + master.Addr.String() + " hearing its adverts"
		}
		c.t.Fatalf("haad on %s: %+v, want %s without drops", n.Name, st, want)
	}
	return st
}

// haad is master (priority 200), keepalived backup (100). The master is
// powered off: keepalived takes over and the client reaches the VIP through
// it; haad comes back and preempts.
func TestInteropHaadMaster(t *testing.T) {
	t.Parallel()
	for _, p := range []proto{v2Pass, v3Fast} {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			requireKeepalived(t)
			c := newCluster(t, 2)
			hn, kn := c.lab.Nodes[0], c.lab.Nodes[1]
			c.start(hn, p.haad(200, p.pass))
			c.waitHolder(vip, hn, p.masterDown(200)+5*time.Second)

			ka := c.startKeepalived(kn, p.keepalived(kn, 100, p.pass))
			ka.waitLog("(VI_1) Entering BACKUP STATE", 5*time.Second)
			// Longer than keepalived's master-down interval: it stays
			// backup only if it accepts haad's adverts.
			c.stableHolder(vip, hn, p.masterDown(100)+time.Second)
			ka.noLog("Entering MASTER STATE")
			ka.noLog(kaComplaints...)
			st := c.wantStatus(hn, "MASTER", nil)
			if st.AdvertsSent == 0 || st.Transitions != 2 {
				t.Fatalf("haad master %+v: want adverts sent and one election only", st)
			}

			ka.markLog()
			fo, err := c.lab.MeasureFailover(c.lab.Clients[0], vip, hn, c.procs[hn], p.masterDown(100)+5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if fo.NewMaster != kn {
				t.Fatalf("new master %s, want keepalived's %s", fo.NewMaster.Name, kn.Name)
			}
			t.Logf("haad powered off: keepalived took over, outage %v (master-down interval %v)", fo.Outage, p.masterDown(100))
			ka.waitLog("(VI_1) Entering MASTER STATE", 5*time.Second)

			ka.markLog()
			if err := hn.PowerOn(); err != nil {
				t.Fatal(err)
			}
			c.start(hn, p.haad(200, p.pass))
			c.waitHolder(vip, hn, p.masterDown(200)+5*time.Second)
			ka.waitLog("(VI_1) Entering BACKUP STATE", 5*time.Second)
			ka.wantLog(fmt.Sprintf("(VI_1) Master received advert from %s with higher priority 200, ours 100", hn.Addr))
			c.stableHolder(vip, hn, 3*p.interval+500*time.Millisecond)
			ka.noLog("Entering MASTER STATE")
			ka.noLog(kaComplaints...)
			// haad heard keepalived as master before preempting it.
			st = c.wantStatus(hn, "MASTER", nil)
			if st.AdvertsReceived == 0 {
				t.Fatalf("haad %+v never heard keepalived's adverts", st)
			}
		})
	}
}

// keepalived is master (priority 200), haad backup (100). keepalived
// crashes with its link down: haad takes over; keepalived comes back and
// preempts, haad returns to backup and releases the VIP.
func TestInteropKeepalivedMaster(t *testing.T) {
	t.Parallel()
	for _, p := range []proto{v2Pass, v3Fast} {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			requireKeepalived(t)
			c := newCluster(t, 2)
			hn, kn := c.lab.Nodes[0], c.lab.Nodes[1]
			ka := c.startKeepalived(kn, p.keepalived(kn, 200, p.pass))
			c.waitHolder(vip, kn, p.masterDown(200)+5*time.Second)
			ka.wantLog("(VI_1) Entering MASTER STATE")

			c.start(hn, p.haad(100, p.pass))
			c.stableHolder(vip, kn, p.masterDown(100)+time.Second)
			st := c.wantStatus(hn, "BACKUP", kn)
			if st.Transitions != 1 {
				t.Fatalf("haad backup %+v: want no transition after startup", st)
			}
			ka.noLog(kaComplaints...)

			ka.markLog()
			fo, err := c.lab.MeasureFailover(c.lab.Clients[0], vip, kn, ka.proc, p.masterDown(100)+5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if fo.NewMaster != hn {
				t.Fatalf("new master %s, want haad's %s", fo.NewMaster.Name, hn.Name)
			}
			t.Logf("keepalived crashed: haad took over, outage %v (master-down interval %v)", fo.Outage, p.masterDown(100))
			st = c.wantStatus(hn, "MASTER", nil)
			if st.LastCause != "master_down_timer" {
				t.Fatalf("haad %+v: want master by master_down_timer", st)
			}

			if err := kn.PowerOn(); err != nil {
				t.Fatal(err)
			}
			ka.restart(p.keepalived(kn, 200, p.pass))
			c.waitHolder(vip, kn, p.masterDown(200)+5*time.Second)
			ka.wantLog("(VI_1) Entering MASTER STATE")
			c.stableHolder(vip, kn, 3*p.interval+500*time.Millisecond)
			st = c.wantStatus(hn, "BACKUP", kn)
			if st.LastCause != "higher_priority_advert" {
				t.Fatalf("haad %+v: want backup by higher_priority_advert", st)
			}
			if ok, err := hn.HasAddr(vip); err != nil || ok {
				t.Fatalf("haad backup still holds %s (%v)", vip, err)
			}
			ka.noLog(kaComplaints...)
		})
	}
}

// SIGTERM on a master sends priority 0: the backup takes over after its skew
// time (0.61 s for priority 100 at 1 s adverts), long before the master-down
// interval (3.61 s). Both directions, v2 with PASS and v3.
func TestInteropPriorityZero(t *testing.T) {
	t.Parallel()
	v3Slow := proto{name: "v3-1s", version: 3, interval: time.Second, advert: "1"}
	for _, p := range []proto{v2Pass, v3Slow} {
		t.Run(p.name+"/keepalived-to-haad", func(t *testing.T) {
			t.Parallel()
			requireKeepalived(t)
			c := newCluster(t, 2)
			hn, kn := c.lab.Nodes[0], c.lab.Nodes[1]
			ka := c.startKeepalived(kn, p.keepalived(kn, 200, p.pass))
			c.waitHolder(vip, kn, p.masterDown(200)+5*time.Second)
			c.start(hn, p.haad(100, p.pass))
			c.waitRunning(hn)
			// Until haad follows keepalived: from then on only a
			// priority-0 advert explains a takeover before master-down.
			err := lab.Poll(5*time.Second, 50*time.Millisecond, "haad to follow keepalived", func() (bool, error) {
				st := c.status(hn)["VI_1"]
				return st.State == "BACKUP" && st.Master == kn.Addr.String(), nil
			})
			if err != nil {
				t.Fatal(err)
			}

			ka.markLog()
			took := c.handover(ka.proc, hn, p)
			ka.wantLog("(VI_1) sent 0 priority")
			st := c.wantStatus(hn, "MASTER", nil)
			if st.Transitions != 2 || st.LastCause != "master_down_timer" {
				t.Fatalf("haad %+v: want one transition, to master by its (skew) timer", st)
			}
			if bound := p.masterDown(100) / 2; took > bound {
				t.Fatalf("haad took over %v after keepalived's SIGTERM (master-down %v): the priority-0 advert was not honoured", took, p.masterDown(100))
			}
		})
		t.Run(p.name+"/haad-to-keepalived", func(t *testing.T) {
			t.Parallel()
			requireKeepalived(t)
			c := newCluster(t, 2)
			hn, kn := c.lab.Nodes[0], c.lab.Nodes[1]
			c.start(hn, p.haad(200, p.pass))
			c.waitHolder(vip, hn, p.masterDown(200)+5*time.Second)
			ka := c.startKeepalived(kn, p.keepalived(kn, 100, p.pass))
			ka.waitLog("(VI_1) Entering BACKUP STATE", 5*time.Second)
			// Until keepalived has heard haad's adverts.
			c.stableHolder(vip, hn, p.interval+500*time.Millisecond)

			ka.markLog()
			took := c.handover(c.procs[hn], kn, p)
			ka.waitLog("(VI_1) Entering MASTER STATE", 5*time.Second)
			ka.wantLog("(VI_1) Backup received priority 0 advertisement")
			ka.noLog(kaComplaints...)
			if bound := p.masterDown(100) / 2; took > bound {
				t.Fatalf("keepalived took over %v after haad's SIGTERM (master-down %v): the priority-0 advert was not honoured", took, p.masterDown(100))
			}
		})
	}
}

// handover sends SIGTERM to the master's process and returns how long it
// took until to (a backup of priority 100) held the VIP; then it checks that
// the master exited cleanly and released the VIP. The VIP is watched on to
// itself: keepalived takes about a second to exit after sending priority 0.
func (c *cluster) handover(master *lab.Proc, to *lab.Node, p proto) time.Duration {
	c.t.Helper()
	at := time.Now()
	if err := master.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatal(err)
	}
	err := lab.Poll(p.masterDown(100)+3*time.Second, 2*time.Millisecond, to.Name+" to take the VIP", func() (bool, error) {
		return to.HasAddr(vip)
	})
	if err != nil {
		c.t.Fatal(err)
	}
	took := time.Since(at)
	c.t.Logf("SIGTERM on %s's %s -> %s master after %v (skew %v, master-down %v)",
		master.Node.Name, filepath.Base(master.Name), to.Name, took, p.interval*156/256, p.masterDown(100))
	select {
	case <-master.Done():
		if err := master.Wait(); err != nil {
			c.t.Fatalf("%s on %s exited with %v after SIGTERM", master.Name, master.Node.Name, err)
		}
	case <-time.After(5 * time.Second):
		c.t.Fatalf("%s on %s still running 5 s after SIGTERM", master.Name, master.Node.Name)
	}
	c.waitHolder(vip, to, time.Second)
	return took
}

// keepalived and haad with different PASS passwords: neither accepts the
// other's adverts, both become master, and each side says why.
func TestInteropAuthMismatch(t *testing.T) {
	t.Parallel()
	requireKeepalived(t)
	c := newCluster(t, 2)
	hn, kn := c.lab.Nodes[0], c.lab.Nodes[1]
	p := v2Pass
	ka := c.startKeepalived(kn, p.keepalived(kn, 100, "1111"))
	c.start(hn, p.haad(200, "2222"))
	err := lab.Poll(p.masterDown(100)+5*time.Second, 20*time.Millisecond, "both sides master", func() (bool, error) {
		hs, err := c.lab.Holders(vip)
		return len(hs) == 2, err
	})
	if err != nil {
		t.Fatal(err)
	}
	ka.waitLog("(VI_1) Entering MASTER STATE", 5*time.Second)
	ka.waitLog("(VI_1) received an invalid passwd!", 3*time.Second)
	var st instanceDump
	err = lab.Poll(3*time.Second, 100*time.Millisecond, "haad to count auth failures", func() (bool, error) {
		st = c.status(hn)["VI_1"]
		return st.Drops["auth_failure"] > 0, nil
	})
	if err != nil {
		t.Fatalf("%v: haad %+v", err, st)
	}
	if st.State != "MASTER" || st.Drops["auth_failure"] == 0 || st.Transitions != 2 {
		t.Fatalf("haad %+v: want MASTER with auth_failure drops and no other transition", st)
	}
	for r, n := range st.Drops {
		if r != "auth_failure" {
			t.Fatalf("haad dropped %d adverts as %s: only auth_failure expected", n, r)
		}
	}
	if hs, err := c.lab.Holders(vip); err != nil || len(hs) != 2 {
		t.Fatalf("holders %s (%v): want both sides", lab.Names(hs), err)
	}
}
