package main

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
)

// pingEvery is the client's echo interval in every outage measurement.
const pingEvery = 2 * time.Millisecond

// failover is one measured power-off of a master.
type failover struct {
	// Outage is the longest gap in the client's replies after the power-off.
	Outage time.Duration
	// SinceAdvert is how long before the power-off the client saw the
	// master's last advert: the failover is expected after the master-down
	// interval minus this.
	SinceAdvert time.Duration
	// Detection is the time from the master's last advert to the new
	// master's first one, as seen by the client: the protocol's part of
	// the outage (0 when not seen). The rest is the new master adding the
	// VIP and announcing it, and the client's next ping.
	Detection      time.Duration
	NewMaster      *lab.Node
	Sent, Received int
}

// measureFailover is lab.MeasureFailover with the power-off placed in the
// master's advert cycle: it pings vip from client every 2 ms and, when
// aligned, powers the master off (link down + SIGKILL) right after the client
// has seen one of its adverts, so the backup's master-down timer has just been
// reset and the outage is the full master-down interval: the protocol bound.
// Not aligned, the power-off happens at whatever phase it falls on.
func measureFailover(l *lab.Lab, client *lab.Node, vip netip.Addr, master *lab.Node, proc *lab.Proc,
	w *advertWatch, aligned bool, interval, timeout time.Duration) (failover, error) {
	p, err := client.StartPing(vip, pingEvery, timeout+10*time.Second)
	if err != nil {
		return failover{}, err
	}
	defer p.Stop()
	if err := p.WaitReplies(50, 3*time.Second); err != nil {
		return failover{}, fmt.Errorf("client does not reach %s before the power-off: %w", vip, err)
	}
	// Adverts come from the nodes' own addresses: IPv6 ones from their
	// link-local address.
	src := func(n *lab.Node) netip.Addr {
		if vip.Is6() {
			return n.LinkLocal
		}
		return n.Addr
	}
	if aligned {
		if _, err := w.Next(src(master), 3*interval+time.Second); err != nil {
			return failover{}, fmt.Errorf("%s: %w", master.Name, err)
		}
	}
	at := time.Now()
	last := w.Last(src(master))
	if err := lab.PowerOff(master, proc); err != nil {
		return failover{}, err
	}
	fo := failover{}
	if !last.IsZero() {
		fo.SinceAdvert = at.Sub(last)
	}
	// Replies resuming tell that someone took over; only then look for who,
	// so that no netlink polling competes with the daemons for the CPU
	// during the outage.
	if err := p.WaitReplies(50, timeout); err != nil {
		hs, _ := l.ActiveHolders(vip)
		return failover{}, fmt.Errorf("client does not reach %s after the power-off (holders %s): %w", vip, lab.Names(hs), err)
	}
	// On a link that is up: the VIP may live on a virtual MAC interface.
	err = lab.Poll(time.Second, 10*time.Millisecond, "a new master of "+vip.String(), func() (bool, error) {
		hs, err := l.ActiveHolders(vip)
		if err != nil {
			return false, err
		}
		for _, h := range hs {
			if h != master {
				fo.NewMaster = h
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return failover{}, err
	}
	if first, ok := w.FirstAfter(src(fo.NewMaster), at); ok && !last.IsZero() {
		fo.Detection = first.Sub(last)
	}
	st := p.Stop()
	fo.Outage, fo.Sent, fo.Received = st.GapAfter(at), st.Sent, len(st.Replies)
	return fo, nil
}

// bound is the protocol's master-down interval of a backup of priority prio:
// 3 * interval + skew. v3 scales the skew with the interval; v2's skew is
// (256 - prio) / 256 seconds whatever the interval.
func bound(version, prio int, interval time.Duration) time.Duration {
	skew := time.Duration(256-prio) * interval / 256
	if version == 2 {
		skew = time.Duration(256-prio) * time.Second / 256
	}
	return 3*interval + skew
}

// cpuTicks returns utime + stime of pid from /proc/PID/stat, in clock ticks.
func cpuTicks(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: fields after it start
	// past the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return u + st, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTicks = 100

// cpuStat returns the CPU time pid's threads have used, in nanoseconds
// (the first field of /proc/PID/task/TID/schedstat, summed: the clock
// ticks of /proc/PID/stat are 10 ms, too coarse for one instance's adverts
// over a 20 s window), and how many times they were scheduled in (the
// third field: their wake-ups, about). A thread that has exited is not
// counted (a daemon's threads live as long as it does).
func cpuStat(pid int) (ns, slices uint64, err error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue // exited in between
		}
		f := strings.Fields(string(b))
		if len(f) < 3 {
			return 0, 0, fmt.Errorf("%s/%s/schedstat: unexpected format", dir, t.Name())
		}
		n, err1 := strconv.ParseUint(f[0], 10, 64)
		k, err2 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			return 0, 0, fmt.Errorf("%s/%s/schedstat: unexpected format", dir, t.Name())
		}
		ns += n
		slices += k
	}
	return ns, slices, nil
}

// cpuSample is the CPU time used so far by every process in a namespace
// (ns by pid), and their resident memory (bytes).
type cpuSample struct {
	at     time.Time
	ns     map[int]uint64
	rss    uint64
	wakeup uint64 // times their threads were scheduled in, summed
}

func sampleCPU(ns *lab.NS) (cpuSample, error) {
	pids, err := ns.Pids()
	if err != nil {
		return cpuSample{}, err
	}
	s := cpuSample{at: time.Now(), ns: map[int]uint64{}}
	for _, pid := range pids {
		if t, k, err := cpuStat(pid); err == nil {
			s.ns[pid] = t
			s.wakeup += k
			s.rss += rssOf(pid)
		}
	}
	if len(s.ns) == 0 {
		return s, fmt.Errorf("%s: no process to measure", ns.Name)
	}
	return s, nil
}

// rssOf is pid's resident set (VmRSS), 0 if unknown.
func rssOf(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuUsed is the CPU time used between two samples by the processes of
// the later one. A process that appeared in between counts from zero; one
// that exited is lost (none should).
func cpuUsed(before, after cpuSample) time.Duration {
	var ns uint64
	for pid, t := range after.ns {
		if b, ok := before.ns[pid]; ok && b <= t {
			ns += t - b
		} else if !ok {
			ns += t
		}
	}
	return time.Duration(ns)
}

// cpuPercent is cpuUsed in % of one core.
func cpuPercent(before, after cpuSample) float64 {
	wall := after.at.Sub(before.at).Seconds()
	if wall <= 0 {
		return 0
	}
	return cpuUsed(before, after).Seconds() / wall * 100
}
