package main

// Interop tests: haad and FRR's vrrpd (Debian's frr 8.4) in one virtual
// router, VRRPv3 at 100 ms over IPv4 and over IPv6. FRR keeps the VIP on a macvlan with
// the virtual MAC, protodown while it is backup: who holds the VIP is
// asked of the links that are up and running (lab.ActiveHolders), not of
// eth0 alone. Both sides are asked what they see: haad through its status
// file, FRR through vtysh (show vrrp json). They skip without root or FRR
// and fail instead when HAA_REQUIRE_NETNS=1.

import (
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
)

// requireFRR skips t without namespaces or FRR's vrrpd, and fails it
// instead when HAA_REQUIRE_NETNS=1.
func requireFRR(t *testing.T) {
	t.Helper()
	lab.Require(t)
	if err := lab.FRRAvailable(); err != nil {
		if os.Getenv(lab.RequireEnv) == "1" {
			t.Fatalf("FRR interop test cannot run and %s=1: %v", lab.RequireEnv, err)
		}
		t.Skipf("skipping FRR interop test: %v (or set %s=1 to make this a failure)", err, lab.RequireEnv)
	}
}

// frrFamily is the address family a test runs VRRPv3 over, with its VIP
// and FRR's virtual MAC for VRID 51.
type frrFamily struct {
	name string
	fam  lab.Family
	vip  netip.Addr
	vmac net.HardwareAddr
}

var frrFamilies = []frrFamily{
	{"ipv4", lab.IPv4, vip, net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, 51}},
	{"ipv6", lab.IPv6, vip6, net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x02, 51}},
}

// haad is haad's VI_1 of the family with priority prio (for IPv6, the
// VIP alone, as FRR advertises it).
func (ff frrFamily) haad(p proto, prio int) instance {
	in := p.haad(prio, "")
	if ff.fam == lab.IPv6 {
		in.vips = []string{vip6.String() + "/64"}
	}
	return in
}

// wantBackupOf checks haad's view of the master: FRR's node n over IPv4, a
// link-local address over IPv6 (FRR sends from its macvlan's, random).
func (ff frrFamily) wantBackupOf(c *cluster, hn, n *lab.Node) instanceDump {
	c.t.Helper()
	if ff.fam == lab.IPv4 {
		return c.wantStatus(hn, "BACKUP", n)
	}
	st := c.wantStatus(hn, "BACKUP", nil)
	if a, err := netip.ParseAddr(st.Master); err != nil || !a.IsLinkLocalUnicast() {
		c.t.Fatalf("haad backup %+v: want it to follow FRR's link-local address", st)
	}
	return st
}

// frr is FRR's router for VI_1: VRID 51, the family's VIP, priority prio,
// p's interval, preemption on or off.
func (ff frrFamily) frr(t *testing.T, p proto, prio int, preempt bool) lab.FRRVRRP {
	t.Helper()
	v, err := lab.NewFRRVRRP(ff.vip, ff.fam, 51, prio, p.interval, preempt)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// frrMasterDown is FRR's master-down interval for priority prio: its skew
// time is rounded down to whole milliseconds.
func (p proto) frrMasterDown(prio int) time.Duration {
	ms := p.interval.Milliseconds()
	return time.Duration(3*ms+ms*int64(256-prio)/256) * time.Millisecond
}

// startFRR runs FRR's zebra and vrrpd with v on n, in a directory of their
// own; when the test ends they are stopped and, on failure, their log shown.
func (c *cluster) startFRR(n *lab.Node, v lab.FRRVRRP) *lab.FRR {
	c.t.Helper()
	dir := lab.FRRTempDir(c.t)
	f, err := n.StartFRR(dir, v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		if err := f.Stop(2 * time.Second); err != nil {
			c.t.Errorf("FRR on %s: %v", n.Name, err)
		}
		if c.t.Failed() {
			z, _ := os.ReadFile(f.Files.ZebraLog)
			v, _ := os.ReadFile(f.Files.VRRPLog)
			c.t.Logf("--- zebra log of %s:\n%s\n--- vrrpd log of %s:\n%s", n.Name, tail(string(z), 10), n.Name, tail(string(v), 60))
		}
	})
	return f
}

// frrState is FRR's view of VRID 51 over the family.
func (c *cluster) frrState(f *lab.FRR, ff frrFamily) lab.FRRFamily {
	c.t.Helper()
	st, err := f.State(51, ff.fam)
	if err != nil {
		c.t.Fatal(err)
	}
	return st
}

// waitFRR waits until FRR reports VRID 51 in status ("Backup", "Master").
func (c *cluster) waitFRR(f *lab.FRR, ff frrFamily, status string, timeout time.Duration) lab.FRRFamily {
	c.t.Helper()
	st, err := f.WaitStatus(51, ff.fam, status, timeout)
	if err != nil {
		c.t.Fatal(err)
	}
	return st
}

// waitActive waits until exactly want holds the VIP on a running link and
// returns how long that took.
func (c *cluster) waitActive(a netip.Addr, want *lab.Node, timeout time.Duration) time.Duration {
	c.t.Helper()
	at := time.Now()
	if _, err := c.lab.WaitActiveHolder(a, want, timeout); err != nil {
		c.t.Fatal(err)
	}
	return time.Since(at)
}

// stableActive asserts that exactly want holds the VIP on a running link
// for the whole period.
func (c *cluster) stableActive(a netip.Addr, want *lab.Node, period time.Duration) {
	c.t.Helper()
	for end := time.Now().Add(period); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		hs, err := c.lab.ActiveHolders(a)
		if err != nil {
			c.t.Fatal(err)
		}
		if len(hs) != 1 || hs[0] != want {
			c.t.Fatalf("active holders of %s: %s, want only %s", a, lab.Names(hs), want.Name)
		}
	}
}

// clientSees pings the VIP from the client until it answers and returns
// the MAC the client's neighbour table holds for it.
func (c *cluster) clientSees(vip netip.Addr) net.HardwareAddr {
	c.t.Helper()
	cl := c.lab.Clients[0]
	p, err := cl.StartPing(vip, 5*time.Millisecond, 5*time.Second)
	if err != nil {
		c.t.Fatal(err)
	}
	err = p.WaitReplies(20, 3*time.Second)
	p.Stop()
	if err != nil {
		out, _ := cl.Output("ip", "neigh")
		c.t.Fatalf("%v\nthe client's neighbours:\n%s", err, out)
	}
	mac, err := cl.Neigh(vip)
	if err != nil {
		c.t.Fatal(err)
	}
	return mac
}

// frrTakeoverSlack is what a takeover may take beyond the master-down
// interval: timers, the protodown round trip through zebra, a loaded host.
const frrTakeoverSlack = 500 * time.Millisecond

// haad is master (priority 200), FRR backup (100): FRR follows haad's
// adverts, haad alone holds the VIP. haad's node is powered off: FRR takes
// over within its master-down interval, the VIP on its macvlan, and the
// client reaches the VIP at the virtual MAC.
func TestInteropFRRHaadMaster(t *testing.T) {
	t.Parallel()
	for _, ff := range frrFamilies {
		t.Run(ff.name, func(t *testing.T) {
			t.Parallel()
			requireFRR(t)
			c := newCluster(t, 2)
			hn, fn := c.lab.Nodes[0], c.lab.Nodes[1]
			p := v3Fast
			c.start(hn, ff.haad(p, 200))
			c.waitActive(ff.vip, hn, p.masterDown(200)+5*time.Second)

			f := c.startFRR(fn, ff.frr(t, p, 100, true))
			c.waitFRR(f, ff, "Backup", 5*time.Second)
			// Longer than FRR's master-down interval: it stays backup only if
			// it accepts haad's adverts.
			c.stableActive(ff.vip, hn, p.frrMasterDown(100)+time.Second)
			fs := c.frrState(f, ff)
			if fs.Status != "Backup" || fs.Stats.Transitions != 1 || fs.Stats.AdverRx == 0 || fs.Stats.AdverTx != 0 {
				t.Fatalf("FRR %+v: want Backup since startup, hearing haad's adverts", fs)
			}
			if fs.MasterAdverInterval != int(p.interval.Milliseconds()) {
				t.Fatalf("FRR learnt a master interval of %d ms from haad, want %v", fs.MasterAdverInterval, p.interval)
			}
			st := c.wantStatus(hn, "MASTER", nil)
			if st.AdvertsSent == 0 || st.Transitions != 2 {
				t.Fatalf("haad master %+v: want adverts sent and one election only", st)
			}
			if mac := c.clientSees(ff.vip); mac.String() != hn.MAC.String() {
				t.Fatalf("the client reaches %s at %s, want haad's %s: FRR's backup answered ARP", ff.vip, mac, hn.MAC)
			}

			to, err := c.lab.MeasureTakeover(c.lab.Clients[0], ff.vip, hn, func() error { return lab.PowerOff(hn, c.procs[hn]) },
				p.frrMasterDown(100)+5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if to.NewMaster != fn {
				t.Fatalf("new master %s, want FRR's %s", to.NewMaster.Name, fn.Name)
			}
			t.Logf("haad powered off: FRR master after %v, client outage %v (FRR's master-down interval %v)",
				to.Took, to.Outage, p.frrMasterDown(100))
			if bound := p.frrMasterDown(100) + frrTakeoverSlack; to.Took > bound {
				t.Fatalf("FRR took over after %v, more than %v", to.Took, bound)
			}
			if link, err := fn.ActiveLink(ff.vip); err != nil || link != f.Routers[0].Macvlan().Name {
				t.Fatalf("FRR holds %s on %q (%v), want its macvlan", ff.vip, link, err)
			}
			if fs := c.waitFRR(f, ff, "Master", time.Second); fs.Stats.Transitions != 2 {
				t.Fatalf("FRR %+v: want Backup then Master", fs)
			}
			if mac := c.clientSees(ff.vip); mac.String() != ff.vmac.String() {
				t.Fatalf("the client reaches %s at %s, want FRR's virtual MAC %s", ff.vip, mac, ff.vmac)
			}
		})
	}
}

// FRR is master (priority 200), haad backup (100): haad follows FRR's
// adverts. FRR's node is powered off: haad takes over; FRR comes back and
// preempts (FRR's preempt mode), haad returns to backup and drops the VIP.
func TestInteropFRRMaster(t *testing.T) {
	t.Parallel()
	for _, ff := range frrFamilies {
		t.Run(ff.name, func(t *testing.T) {
			t.Parallel()
			requireFRR(t)
			c := newCluster(t, 2)
			hn, fn := c.lab.Nodes[0], c.lab.Nodes[1]
			p := v3Fast
			f := c.startFRR(fn, ff.frr(t, p, 200, true))
			took := c.waitActive(ff.vip, fn, p.frrMasterDown(200)+5*time.Second)
			t.Logf("FRR alone: master %v after StartFRR returned, its router in Backup (master-down interval %v)", took, p.frrMasterDown(200))
			c.waitFRR(f, ff, "Master", time.Second)

			c.start(hn, ff.haad(p, 100))
			c.stableActive(ff.vip, fn, p.masterDown(100)+time.Second)
			st := ff.wantBackupOf(c, hn, fn)
			if st.Transitions != 1 {
				t.Fatalf("haad backup %+v: want no transition after startup", st)
			}
			if ok, err := hn.HasAddr(ff.vip); err != nil || ok {
				t.Fatalf("haad backup holds %s (%v)", ff.vip, err)
			}
			if fs := c.frrState(f, ff); fs.Status != "Master" || fs.Stats.AdverRx != 0 {
				t.Fatalf("FRR %+v: want Master, hearing no advert from a lower priority", fs)
			}

			to, err := c.lab.MeasureTakeover(c.lab.Clients[0], ff.vip, fn, f.PowerOff, p.masterDown(100)+5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if to.NewMaster != hn {
				t.Fatalf("new master %s, want haad's %s", to.NewMaster.Name, hn.Name)
			}
			t.Logf("FRR powered off: haad master after %v, client outage %v (master-down interval %v)",
				to.Took, to.Outage, p.masterDown(100))
			if bound := p.masterDown(100) + frrTakeoverSlack; to.Took > bound {
				t.Fatalf("haad took over after %v, more than %v", to.Took, bound)
			}
			st = c.wantStatus(hn, "MASTER", nil)
			if st.LastCause != "master_down_timer" {
				t.Fatalf("haad %+v: want master by master_down_timer", st)
			}

			at := time.Now()
			if err := f.PowerOn(); err != nil {
				t.Fatal(err)
			}
			c.waitActive(ff.vip, fn, p.frrMasterDown(200)+5*time.Second)
			t.Logf("FRR powered on: master again %v after the power-on (FRR's start-up and master-down interval %v)",
				time.Since(at), p.frrMasterDown(200))
			c.waitFRR(f, ff, "Master", time.Second)
			c.stableActive(ff.vip, fn, 3*p.interval+500*time.Millisecond)
			st = ff.wantBackupOf(c, hn, fn)
			if st.LastCause != "higher_priority_advert" {
				t.Fatalf("haad %+v: want backup by higher_priority_advert", st)
			}
			if ok, err := hn.HasAddr(ff.vip); err != nil || ok {
				t.Fatalf("haad backup still holds %s (%v)", ff.vip, err)
			}
			if mac := c.clientSees(ff.vip); mac.String() != ff.vmac.String() {
				t.Fatalf("the client reaches %s at %s, want FRR's virtual MAC %s", ff.vip, mac, ff.vmac)
			}
		})
	}
}

// FRR is master alone (priority 100); haad starts with priority 200 and
// preempts it: FRR goes backup (its macvlan protodown), haad holds the VIP.
func TestInteropFRRPreemptedByHaad(t *testing.T) {
	t.Parallel()
	for _, ff := range frrFamilies {
		t.Run(ff.name, func(t *testing.T) {
			t.Parallel()
			requireFRR(t)
			c := newCluster(t, 2)
			hn, fn := c.lab.Nodes[0], c.lab.Nodes[1]
			p := v3Fast
			f := c.startFRR(fn, ff.frr(t, p, 100, true))
			c.waitActive(ff.vip, fn, p.frrMasterDown(100)+5*time.Second)
			c.waitFRR(f, ff, "Master", time.Second)

			at := time.Now()
			c.start(hn, ff.haad(p, 200))
			c.waitActive(ff.vip, hn, p.masterDown(200)+5*time.Second)
			took := time.Since(at)
			// haad, backup at start, preempts a master it hears below its
			// priority after its skew time, without waiting for master-down.
			t.Logf("haad started: master, FRR's macvlan protodown, %v after haad's start (skew %v, master-down interval %v)",
				took, p.interval*56/256, p.masterDown(200))
			if bound := p.masterDown(200) + time.Second; took > bound {
				t.Fatalf("haad preempted FRR after %v, more than %v", took, bound)
			}
			fs := c.waitFRR(f, ff, "Backup", time.Second)
			c.stableActive(ff.vip, hn, p.frrMasterDown(100)+time.Second)
			fs = c.frrState(f, ff)
			if fs.Status != "Backup" || fs.Stats.Transitions != 3 || fs.Stats.AdverRx == 0 {
				t.Fatalf("FRR %+v: want Backup after Master, hearing haad", fs)
			}
			st := c.wantStatus(hn, "MASTER", nil)
			// haad heard FRR as master before preempting it.
			if st.AdvertsReceived == 0 || st.Transitions != 2 {
				t.Fatalf("haad %+v: want master in one election, after hearing FRR", st)
			}
			t.Logf("haad master by %s", st.LastCause)
			if mac := c.clientSees(ff.vip); mac.String() != hn.MAC.String() {
				t.Fatalf("the client reaches %s at %s, want haad's %s", ff.vip, mac, hn.MAC)
			}
		})
	}
}

// Split and heal: haad and FRR, both running, stop hearing each other's
// adverts (each drops VRRP on input): both become master. Healed, the
// lower priority yields within an advert interval or so: exactly one master,
// the higher priority. Both ways round.
func TestInteropFRRSplitHeal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name             string
		haadPrio, frrPri int
	}{
		{"haad-higher", 200, 100},
		{"frr-higher", 100, 200},
	} {
		for _, ff := range frrFamilies {
			t.Run(ff.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				requireFRR(t)
				c := newCluster(t, 2)
				hn, fn := c.lab.Nodes[0], c.lab.Nodes[1]
				p := v3Fast
				high, low := hn, fn
				if tc.frrPri > tc.haadPrio {
					high, low = fn, hn
				}
				// The higher priority first: the other joins as backup.
				var f *lab.FRR
				if high == hn {
					c.start(hn, ff.haad(p, tc.haadPrio))
					c.waitActive(ff.vip, hn, p.masterDown(tc.haadPrio)+5*time.Second)
					f = c.startFRR(fn, ff.frr(t, p, tc.frrPri, true))
					c.waitFRR(f, ff, "Backup", 5*time.Second)
				} else {
					f = c.startFRR(fn, ff.frr(t, p, tc.frrPri, true))
					c.waitActive(ff.vip, fn, p.frrMasterDown(tc.frrPri)+5*time.Second)
					c.start(hn, ff.haad(p, tc.haadPrio))
					c.waitRunning(hn)
				}
				c.stableActive(ff.vip, high, p.masterDown(100)+500*time.Millisecond)

				var undos []func() error
				heal := func() {
					for _, u := range undos {
						if err := u(); err != nil {
							t.Error(err)
						}
					}
					undos = nil
				}
				t.Cleanup(heal)
				for _, n := range []*lab.Node{hn, fn} {
					undo, err := n.DropVRRP()
					if err != nil {
						t.Fatal(err)
					}
					undos = append(undos, undo)
				}
				at := time.Now()
				err := lab.Poll(p.masterDown(100)+5*time.Second, 5*time.Millisecond, "both sides master", func() (bool, error) {
					hs, err := c.lab.ActiveHolders(ff.vip)
					return len(hs) == 2, err
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("split: %s master too after %v (master-down interval %v)", low.Name, time.Since(at), p.masterDown(100))
				c.waitFRR(f, ff, "Master", time.Second)
				if st := c.status(hn)["VI_1"]; st.State != "MASTER" {
					t.Fatalf("haad %+v: want MASTER while split", st)
				}
				time.Sleep(3 * p.interval) // a few adverts each, unheard

				at = time.Now()
				heal()
				took := c.waitActive(ff.vip, high, 3*time.Second)
				t.Logf("healed: only %s (priority %d) master after %v", high.Name, max(tc.haadPrio, tc.frrPri), took)
				if bound := 3*p.interval + frrTakeoverSlack; time.Since(at) > bound {
					t.Fatalf("two masters for %v after the heal, more than %v", took, bound)
				}
				c.stableActive(ff.vip, high, p.masterDown(100)+500*time.Millisecond)
				if high == hn {
					c.wantStatus(hn, "MASTER", nil)
					c.waitFRR(f, ff, "Backup", time.Second)
				} else {
					st := ff.wantBackupOf(c, hn, fn)
					if st.LastCause != "higher_priority_advert" {
						t.Fatalf("haad %+v: want backup by higher_priority_advert", st)
					}
					if fs := c.frrState(f, ff); fs.Status != "Master" {
						t.Fatalf("FRR %+v: want Master", fs)
					}
				}
			})
		}
	}
}
