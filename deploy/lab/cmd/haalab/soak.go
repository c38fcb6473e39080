package main

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/haa-dev/haa/deploy/lab"
)

// Soak parameters.
const (
	soakInterval = 10 * time.Millisecond
	// soakSettle is waited after every VIP is on n1, past the second
	// gratuitous ARP burst (garp delay 5 s in both implementations).
	soakSettle = 6 * time.Second
	// soakCheckEvery is how often the window checks who holds the VIPs.
	soakCheckEvery = time.Second
)

// soakVIP is the address of instance i (1..): 10.77.1.i for the first
// 254, then 10.77.2.x...: host addresses.
func soakVIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 77, byte(1 + (i-1)/254), byte((i-1)%254 + 1)})
}

// vridsPerLink is how many instances a soak runs on one link: past it
// (bench-cpu's 500), the rest run on a second link between the two nodes
// (eth1), with the same VRIDs again.
const vridsPerLink = 250

// soakInstances are the soak's n instances at interval, at priority prio.
func soakInstances(n, prio int, interval time.Duration) []instance {
	ins := make([]instance, n)
	for i := range ins {
		in := instance{Name: fmt.Sprintf("VI_%d", i+1), VRID: i%vridsPerLink + 1, Priority: prio, Version: 3,
			Interval: interval, VIPs: []string{soakVIP(i+1).String() + "/32"}}
		if i >= vridsPerLink {
			in.Iface = secondLink
		}
		ins[i] = in
	}
	return ins
}

// secondLink is the soak's second link between n1 and n2.
const secondLink = "eth1"

// addSecondLink connects n1 and n2 by a veth pair eth1 (10.78.0.1/24 and
// 10.78.0.2/24): the lab's namespaces, removed with them.
func addSecondLink(l *lab.Lab) error {
	n1, n2 := l.Nodes[0], l.Nodes[1]
	if err := n1.NS.IP("link", "add", secondLink, "type", "veth", "peer", "name", secondLink, "netns", n2.NS.Name); err != nil {
		return fmt.Errorf("second link: %w", err)
	}
	for i, n := range []*lab.Node{n1, n2} {
		if err := n.NS.IP("addr", "add", fmt.Sprintf("10.78.0.%d/24", i+1), "dev", secondLink); err != nil {
			return fmt.Errorf("second link: %w", err)
		}
		if err := n.NS.IP("link", "set", secondLink, "up"); err != nil {
			return fmt.Errorf("second link: %w", err)
		}
	}
	return nil
}

// soakResult is one implementation's steady state.
type soakResult struct {
	Daemon    string
	Instances int
	Interval  time.Duration
	Duration  time.Duration // the measured window
	// Spurious counts state changes during the window (both nodes).
	Spurious int
	// CPU in % of one core, every process of the implementation on the node.
	CPUMaster, CPUBackup float64
	// CPU time over the window, and resident memory at its end (every
	// process of the implementation on the node).
	CPUTimeMaster, CPUTimeBackup time.Duration
	RSSMaster, RSSBackup         uint64
	// WakeupsMaster/Backup: how many times the implementation's threads
	// were scheduled in during the window.
	WakeupsMaster, WakeupsBackup uint64
	// AdvertsSent is the adverts the master sent during the window: the
	// client's count on the LAN, times instances per instance on the LAN
	// when some run on the second link.
	AdvertsSent float64
	// AdvertRate is the adverts per second the client saw from the master
	// during the window; BackupAdverts those it saw from the backup.
	AdvertRate    float64
	BackupAdverts uint64
	// BadChecks counts checks during the window where n1 did not hold every
	// VIP or n2 held one.
	BadChecks int
	// SlipMaster/SlipBackup: haad's largest timer slip since its start, at
	// the end of the window and at its beginning (-1: n/a).
	SlipMaster, SlipBackup             time.Duration
	SlipMasterBefore, SlipBackupBefore time.Duration
	// Host is the machine over the window; WorstSteal and WorstPressure
	// the seconds with the most steal and the most CPU pressure.
	Host, WorstSteal, WorstPressure hostLoad
	// Bursts are the logged state changes during the window, by second.
	Bursts []burst
	Err    error
}

// runSoak runs one implementation's soak in its own lab, bounded by a
// watchdog.
func (b *bench) runSoak(d daemon) soakResult {
	res := soakResult{Daemon: d.Name(), Instances: b.o.instances, Interval: b.o.interval, SlipMaster: -1, SlipBackup: -1,
		SlipMasterBefore: -1, SlipBackupBefore: -1}
	b.s.say("soak %s: %d VRRPv3 instances at %v on two nodes, %v steady-state window", d.Name(), b.o.instances, b.o.interval, b.o.soak)
	fl, err := b.newFailoverLab()
	if err != nil {
		res.Err = err
		b.s.say("  %s soak FAILED: %v", d.Name(), err)
		return res
	}
	defer b.closeFailoverLab(fl)
	var expired atomic.Bool
	limit := b.o.soak + 2*time.Minute
	watchdog := time.AfterFunc(limit, func() {
		expired.Store(true)
		_ = b.s.closeLab(fl.l)
	})
	defer watchdog.Stop()
	err = b.soak(fl, d, &res)
	if expired.Load() {
		err = fmt.Errorf("soak timed out after %v (%v)", limit, err)
	}
	if err != nil {
		res.Err = err
		b.s.say("  %s soak FAILED: %v", d.Name(), err)
		return res
	}
	slip := ""
	if res.SlipMaster >= 0 {
		slip = fmt.Sprintf(", timer slip max %s / %s (%s / %s at the window's start)",
			ms(res.SlipMaster), ms(res.SlipBackup), ms(res.SlipMasterBefore), ms(res.SlipBackupBefore))
	}
	b.s.say("  %s: %d spurious transitions, CPU master %.2f %% backup %.2f %% of one core, %.0f adverts/s from the master%s",
		d.Name(), res.Spurious, res.CPUMaster, res.CPUBackup, res.AdvertRate, slip)
	if res.BackupAdverts > 0 {
		b.s.say("  %s: the backup sent %d adverts during the window", d.Name(), res.BackupAdverts)
	}
	b.s.say("  host during the window: %s", describeHost(res))
	for _, bu := range res.Bursts {
		b.s.say("  %s: %s", d.Name(), describeBurst(bu))
	}
	return res
}

func (b *bench) soak(fl *failoverLab, d daemon, res *soakResult) error {
	l, w := fl.l, fl.w
	n1, n2 := l.Nodes[0], l.Nodes[1]
	dir := filepath.Join(b.dir, "soak", d.Name())
	n := b.o.instances
	if n > vridsPerLink {
		if err := addSecondLink(l); err != nil {
			return err
		}
	}
	p1, err := d.Start(n1, dir, soakInstances(n, benchPrioMaster, b.o.interval))
	if err != nil {
		return err
	}
	// Stopped with SIGTERM (a profiled haad writes its profile then), the
	// backup first: no failover to wait for.
	defer func() { _ = p1.Stop(10 * time.Second) }()
	p2, err := d.Start(n2, dir, soakInstances(n, benchPrioBackup, b.o.interval))
	if err != nil {
		return err
	}
	defer func() { _ = p2.Stop(10 * time.Second) }()

	t0 := time.Now()
	err = lab.Poll(30*time.Second, 50*time.Millisecond, fmt.Sprintf("n1 to hold all %d VIPs", n), func() (bool, error) {
		bad, err := soakCheck(l, n)
		return bad == "", err
	})
	if err != nil {
		return err
	}
	b.s.say("  %s: n1 master of all %d instances after %s; settling %v", d.Name(), n, ms(time.Since(t0)), soakSettle)
	if err := b.s.sleep(soakSettle); err != nil {
		return err
	}
	if bad, err := soakCheck(l, n); err != nil || bad != "" {
		return errors.Join(err, fmt.Errorf("not settled: %s", bad))
	}

	// Before the window.
	before, err := haadSnapshot(d, p1, p2, dir)
	if err != nil {
		return err
	}
	res.SlipMasterBefore, res.SlipBackupBefore = before.slip[0], before.slip[1]
	logs := []string{n1.KeepalivedFiles(dir).Log, n2.KeepalivedFiles(dir).Log}
	offsets := []int64{fileSize(logs[0]), fileSize(logs[1])}
	cpu1, err := sampleCPU(n1.NS)
	if err != nil {
		return err
	}
	cpu2, err := sampleCPU(n2.NS)
	if err != nil {
		return err
	}
	adv1, adv2, advAt := w.Count(n1.Addr), w.Count(n2.Addr), time.Now()
	host0, err := sampleHost()
	if err != nil {
		return err
	}
	prev := host0
	var loads []hostLoad

	// The window: check the VIPs once a second, nothing else.
	end := time.Now().Add(b.o.soak)
	for time.Now().Before(end) {
		if err := b.s.sleep(min(soakCheckEvery, time.Until(end))); err != nil {
			return err
		}
		if h, err := sampleHost(); err == nil {
			loads = append(loads, hostBetween(prev, h))
			prev = h
		}
		if p1.Exited() || p2.Exited() {
			return fmt.Errorf("%s exited during the soak (logs in %s)", d.Name(), dir)
		}
		if bad, err := soakCheck(l, n); err != nil {
			return err
		} else if bad != "" {
			res.BadChecks++
			b.s.say("  %s: %s", d.Name(), bad)
		}
	}

	// After the window.
	cpu1b, err := sampleCPU(n1.NS)
	if err != nil {
		return err
	}
	cpu2b, err := sampleCPU(n2.NS)
	if err != nil {
		return err
	}
	adv1b, adv2b, advEnd := w.Count(n1.Addr), w.Count(n2.Addr), time.Now()
	if h, err := sampleHost(); err == nil {
		res.Host = hostBetween(host0, h)
	}
	res.WorstSteal, res.WorstPressure = worst(loads)
	res.Duration = cpu1b.at.Sub(cpu1.at)
	res.CPUMaster, res.CPUBackup = cpuPercent(cpu1, cpu1b), cpuPercent(cpu2, cpu2b)
	res.CPUTimeMaster, res.CPUTimeBackup = cpuUsed(cpu1, cpu1b), cpuUsed(cpu2, cpu2b)
	res.RSSMaster, res.RSSBackup = cpu1b.rss, cpu2b.rss
	res.WakeupsMaster, res.WakeupsBackup = cpu1b.wakeup-min(cpu1b.wakeup, cpu1.wakeup), cpu2b.wakeup-min(cpu2b.wakeup, cpu2.wakeup)
	res.AdvertRate = float64(adv1b-adv1) / advEnd.Sub(advAt).Seconds()
	res.AdvertsSent = float64(adv1b-adv1) * float64(n) / float64(min(n, vridsPerLink))
	res.AdvertRate *= float64(n) / float64(min(n, vridsPerLink))
	res.BackupAdverts = adv2b - adv2

	var logged []time.Time
	for _, n := range []*lab.Node{n1, n2} {
		log := n.HaadFiles(dir).Log
		if _, ok := d.(keepalivedDaemon); ok {
			log = n.KeepalivedFiles(dir).Log
		}
		ts, err := transitionTimes(d.Name(), log)
		if err != nil {
			return err
		}
		logged = append(logged, ts...)
	}
	res.Bursts = bursts(logged, cpu1.at, cpu1b.at, loads)

	switch d.(type) {
	case haadDaemon:
		after, err := haadSnapshot(d, p1, p2, dir)
		if err != nil {
			return err
		}
		res.Spurious = int(after.transitions - before.transitions)
		res.SlipMaster, res.SlipBackup = after.slip[0], after.slip[1]
	case keepalivedDaemon:
		for i, log := range logs {
			c, err := keepalivedTransitions(log, offsets[i])
			if err != nil {
				return err
			}
			res.Spurious += c
		}
	}
	return nil
}

// soakCheck returns "" when n1 holds every soak VIP and n2 none, else what
// is wrong.
func soakCheck(l *lab.Lab, n int) (string, error) {
	n1, n2 := l.Nodes[0], l.Nodes[1]
	have := func(node *lab.Node) (map[netip.Addr]bool, error) {
		h, err := node.NS.Handle()
		if err != nil {
			return nil, err
		}
		defer h.Close()
		addrs, err := h.AddrList(nil, netlink.FAMILY_V4) // every link's
		for try := 0; errors.Is(err, netlink.ErrDumpInterrupted) && try < 10; try++ {
			// The daemon was adding or removing addresses during the
			// dump: read it again.
			time.Sleep(10 * time.Millisecond)
			addrs, err = h.AddrList(nil, netlink.FAMILY_V4)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: list addresses: %w", node.NS.Name, err)
		}
		m := map[netip.Addr]bool{}
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok {
				m[ip.Unmap()] = true
			}
		}
		return m, nil
	}
	a1, err := have(n1)
	if err != nil {
		return "", err
	}
	a2, err := have(n2)
	if err != nil {
		return "", err
	}
	missing, extra := 0, 0
	for i := 1; i <= n; i++ {
		if !a1[soakVIP(i)] {
			missing++
		}
		if a2[soakVIP(i)] {
			extra++
		}
	}
	if missing == 0 && extra == 0 {
		return "", nil
	}
	return fmt.Sprintf("n1 lacks %d of %d VIPs, n2 holds %d", missing, n, extra), nil
}

// haadCounters is what the soak reads from both haads' status files.
type haadCounters struct {
	transitions uint64
	slip        [2]time.Duration // master, backup
}

// haadSnapshot reads the counters of the haads p1 (master) and p2; for
// another implementation it returns zeros and slips of -1.
func haadSnapshot(d daemon, p1, p2 *lab.Proc, dir string) (haadCounters, error) {
	c := haadCounters{slip: [2]time.Duration{-1, -1}}
	if _, ok := d.(haadDaemon); !ok {
		return c, nil
	}
	for i, p := range []*lab.Proc{p1, p2} {
		st, err := haadStatus(p, statusPath(dir, p.Node))
		if err != nil {
			return c, err
		}
		t, slip := statusTotals(st)
		c.transitions += t
		c.slip[i] = slip
	}
	return c, nil
}

// describeHost summarises the machine during a soak window.
func describeHost(r soakResult) string {
	s := fmt.Sprintf("busy %.0f %%, steal %.1f %% (worst second %.0f %%)", r.Host.Busy, r.Host.Steal, r.WorstSteal.Steal)
	if r.Host.Pressure >= 0 {
		s += fmt.Sprintf(", CPU pressure %.1f %% (worst second %.0f %%)", r.Host.Pressure, r.WorstPressure.Pressure)
	}
	return s
}

// describeBurst tells when state changes happened and what the host did then.
func describeBurst(b burst) string {
	s := fmt.Sprintf("%d state change(s) at %s", b.Count, b.Second.UTC().Format("15:04:05"))
	if b.HasLoad {
		s += fmt.Sprintf(" (host that second: busy %.0f %%, steal %.0f %%", b.Load.Busy, b.Load.Steal)
		if b.Load.Pressure >= 0 {
			s += fmt.Sprintf(", CPU pressure %.0f %%", b.Load.Pressure)
		}
		s += ")"
	}
	return s
}
