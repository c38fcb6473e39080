package lab

// FRR's vrrpd (Debian's frr 8.4) as a VRRP peer in a node's namespace: its
// configuration, the macvlan it needs per address family, its two daemons
// (zebra, which owns the kernel's interfaces, and vrrpd), its state through
// vtysh, and who holds an address on a link that is up and running (FRR
// keeps the VIP on a backup's macvlan, set protodown).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// FRR's programs, as Debian's frr package installs them.
const (
	FRRZebra = "/usr/lib/frr/zebra"
	FRRVRRPd = "/usr/lib/frr/vrrpd"
	FRRVtysh = "/usr/bin/vtysh"
	// FRRUser runs the daemons (-u/-g): FRR refuses to start as root,
	// which is not in its vty group (frrvty).
	FRRUser = "frr"
	// frrCrashDir holds a directory NAME.PID per running daemon
	// (FRR's crash log); a clean exit removes it, a SIGKILL leaves it.
	frrCrashDir = "/var/tmp/frr"
)

// ErrNoFRR is returned when FRR's vrrpd, zebra or vtysh, or the frr user, is
// missing.
var ErrNoFRR = errors.New("FRR not installed: install the Debian package frr (apt-get install frr)")

// FRRAvailable reports why FRR's vrrpd cannot run here, or nil.
func FRRAvailable() error {
	for _, p := range []string{FRRZebra, FRRVRRPd, FRRVtysh} {
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%w (%s missing)", ErrNoFRR, p)
		}
	}
	if _, _, err := frrIDs(); err != nil {
		return err
	}
	return nil
}

func frrIDs() (uid, gid int, err error) {
	u, err := user.Lookup(FRRUser)
	if err != nil {
		return 0, 0, fmt.Errorf("%w (user %s: %v)", ErrNoFRR, FRRUser, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("user %s: %w", FRRUser, err)
	}
	return uid, gid, nil
}

// Family is an address family of a VRRP virtual router: FRR runs one router
// per family (IPv4, IPv6) for each VRID, each on a macvlan of its own.
type Family int

// The address families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return fmt.Sprintf("Family(%d)", int(f))
}

// FRRVRRP is one virtual router of FRR's vrrpd on one address family: what
// NewFRRVRRP returns, the config lines (Config) and the macvlan (Macvlan)
// it needs.
type FRRVRRP struct {
	Family   Family
	VRID     int
	Priority int
	// Interval is the advertisement interval: FRR 8.4 takes milliseconds,
	// 10 ms to 40.95 s in steps of 10 ms (version 2: whole seconds).
	Interval time.Duration
	// Preempt is FRR's preempt mode (its default: on).
	Preempt bool
	// VIP is the virtual address; it goes on the macvlan as a host route
	// (/32, /128).
	VIP netip.Addr
	// Version is the VRRP version, 3 (the default, for 0) or 2 (IPv4 only).
	Version int
	// Iface is the parent interface; "" means eth0.
	Iface string
}

// NewFRRVRRP is the virtual router vrid of family fam with one address vip,
// priority prio, adverts every interval and preemption on or off.
func NewFRRVRRP(vip netip.Addr, fam Family, vrid, prio int, interval time.Duration, preempt bool) (FRRVRRP, error) {
	v := FRRVRRP{Family: fam, VRID: vrid, Priority: prio, Interval: interval, Preempt: preempt, VIP: vip.Unmap(), Version: 3}
	return v, v.check()
}

func (v FRRVRRP) check() error {
	switch {
	case v.Family != IPv4 && v.Family != IPv6:
		return fmt.Errorf("frr vrrp %d: family %v: want IPv4 or IPv6", v.VRID, v.Family)
	case v.Family == IPv4 && !v.VIP.Is4(), v.Family == IPv6 && !v.VIP.Is6():
		return fmt.Errorf("frr vrrp %d: VIP %s is not %v", v.VRID, v.VIP, v.Family)
	case v.VRID < 1 || v.VRID > 255:
		return fmt.Errorf("frr vrrp %d: VRID out of 1..255", v.VRID)
	case v.Priority < 1 || v.Priority > 254:
		return fmt.Errorf("frr vrrp %d: priority %d out of 1..254", v.VRID, v.Priority)
	case v.Interval < 10*time.Millisecond || v.Interval > 40950*time.Millisecond || v.Interval%(10*time.Millisecond) != 0:
		return fmt.Errorf("frr vrrp %d: interval %v: FRR takes 10 ms to 40.95 s in steps of 10 ms", v.VRID, v.Interval)
	case v.version() != 2 && v.version() != 3:
		return fmt.Errorf("frr vrrp %d: version %d", v.VRID, v.Version)
	case v.version() == 2 && (v.Family != IPv4 || v.Interval%time.Second != 0):
		return fmt.Errorf("frr vrrp %d: version 2 is IPv4 with whole seconds", v.VRID)
	}
	return nil
}

func (v FRRVRRP) version() int {
	if v.Version == 0 {
		return 3
	}
	return v.Version
}

func (v FRRVRRP) parent() string {
	if v.Iface == "" {
		return Iface
	}
	return v.Iface
}

// Config returns vrrpd's lines for the router, under `interface PARENT`:
//
//	interface eth0
//	 vrrp 51 version 3
//	 vrrp 51 priority 100
//	 vrrp 51 advertisement-interval 100
//	 [no vrrp 51 preempt]
//	 vrrp 51 ip 10.77.0.100        (IPv6: vrrp 51 ipv6 fd77::100)
//
// advertisement-interval is in milliseconds (FRR 8.4).
func (v FRRVRRP) Config() string {
	var b strings.Builder
	fmt.Fprintf(&b, "interface %s\n", v.parent())
	fmt.Fprintf(&b, " vrrp %d version %d\n", v.VRID, v.version())
	fmt.Fprintf(&b, " vrrp %d priority %d\n", v.VRID, v.Priority)
	fmt.Fprintf(&b, " vrrp %d advertisement-interval %d\n", v.VRID, v.Interval.Milliseconds())
	if !v.Preempt {
		fmt.Fprintf(&b, " no vrrp %d preempt\n", v.VRID)
	}
	kw := "ip"
	if v.Family == IPv6 {
		kw = "ipv6"
	}
	fmt.Fprintf(&b, " vrrp %d %s %s\n", v.VRID, kw, v.VIP)
	return b.String()
}

// FRRMacvlan is the interface FRR's router of one family sends from and
// keeps its VIP on: a bridge-mode macvlan on the parent carrying the
// virtual MAC (00:00:5e:00:01:VRID for IPv4, 00:00:5e:00:02:VRID for
// IPv6). vrrpd finds it by that MAC; the name is ours.
type FRRMacvlan struct {
	Name, Parent string
	MAC          net.HardwareAddr
	// Addr is the VIP as a host prefix: no second connected route for
	// the LAN through a link that is protodown on a backup.
	Addr netip.Prefix
	// Sysctls are written (as PATH under /proc/sys, VALUE) once the
	// macvlan exists, before its address and before it goes up.
	Sysctls [][2]string
}

// Macvlan returns the macvlan the router needs: vrrp4-VRID or vrrp6-VRID
// on the parent, with addrgenmode random (the link-local address of a
// virtual MAC would be the same on every node); for IPv6 accept_dad=0 and
// keep_addr_on_down=1 on it (the VIP is on every node's macvlan, and stays
// on a backup's while protodown), for IPv4 arp_ignore=2 and arp_announce=2
// on the parent (it must not answer ARP for the VIP with its own MAC).
func (v FRRVRRP) Macvlan() FRRMacvlan {
	m := FRRMacvlan{
		Name:   fmt.Sprintf("vrrp%d-%d", int(v.Family), v.VRID),
		Parent: v.parent(),
		MAC:    net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, byte(v.VRID)},
		Addr:   netip.PrefixFrom(v.VIP, v.VIP.BitLen()),
	}
	if v.Family == IPv6 {
		m.MAC[4] = 0x02
		m.Sysctls = [][2]string{
			{"net/ipv6/conf/" + m.Name + "/accept_dad", "0"},
			{"net/ipv6/conf/" + m.Name + "/keep_addr_on_down", "1"},
		}
	} else {
		m.Sysctls = [][2]string{
			{"net/ipv4/conf/" + m.Parent + "/arp_ignore", "2"},
			{"net/ipv4/conf/" + m.Parent + "/arp_announce", "2"},
		}
	}
	return m
}

// FRRConfig is vrrpd's whole configuration for the routers vrs: a hostname,
// the debug switches the log needs (state changes, zebra, ARP/ND) and the
// routers grouped by parent interface.
func FRRConfig(hostname string, vrs ...FRRVRRP) string {
	var b strings.Builder
	fmt.Fprintf(&b, "hostname %s\nlog stdout debugging\n", hostname)
	b.WriteString("debug vrrp protocol\ndebug vrrp zebra\ndebug vrrp arp\ndebug vrrp ndisc\n")
	done := map[string]bool{}
	for _, v := range vrs {
		if done[v.parent()] {
			continue
		}
		done[v.parent()] = true
		fmt.Fprintf(&b, "interface %s\n", v.parent())
		seen := map[int]bool{}
		for _, w := range vrs {
			if w.parent() != v.parent() {
				continue
			}
			lines := strings.Split(strings.TrimSuffix(w.Config(), "\n"), "\n")[1:]
			if seen[w.VRID] {
				// The second family of a VRID: only its address (the
				// router's settings are per VRID).
				lines = lines[len(lines)-1:]
			}
			seen[w.VRID] = true
			b.WriteString(strings.Join(lines, "\n") + "\n")
		}
	}
	return b.String()
}

// SetupFRRMacvlan creates the macvlan of v in the node's namespace, as
// FRRVRRP.Macvlan describes it, and sets it up protodown: FRR's zebra
// clears that when vrrpd is master (and sets it with FRR's reason when
// backup), so the node never answers for the VIP before vrrpd decided.
// A macvlan created up without it would hold the VIP on a running link
// from its creation until vrrpd's first state. It does nothing when the
// macvlan exists already (FRR restarted on a node that kept it).
func (n *Node) SetupFRRMacvlan(v FRRVRRP) error {
	if err := v.check(); err != nil {
		return err
	}
	m := v.Macvlan()
	h, err := n.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	if l, err := h.LinkByName(m.Name); err == nil {
		if l.Type() != "macvlan" || l.Attrs().HardwareAddr.String() != m.MAC.String() {
			return fmt.Errorf("%s: %s exists and is not the macvlan %s", n.NS.Name, m.Name, m.MAC)
		}
		return nil
	}
	parent, err := h.LinkByName(m.Parent)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", n.NS.Name, m.Parent, err)
	}
	mv := &netlink.Macvlan{
		LinkAttrs: netlink.LinkAttrs{Name: m.Name, ParentIndex: parent.Attrs().Index, HardwareAddr: m.MAC},
		Mode:      netlink.MACVLAN_MODE_BRIDGE,
	}
	if err := h.LinkAdd(mv); err != nil {
		return fmt.Errorf("%s: add macvlan %s on %s: %w", n.NS.Name, m.Name, m.Parent, err)
	}
	link, err := h.LinkByName(m.Name)
	if err == nil {
		err = h.LinkSetIP6AddrGenMode(link, nl.IN6_ADDR_GEN_MODE_RANDOM)
	}
	if err != nil {
		return fmt.Errorf("%s: %s addrgenmode random: %w", n.NS.Name, m.Name, err)
	}
	// vishvananda/netlink has no protodown setter.
	if err := n.IP("link", "set", "dev", m.Name, "protodown", "on"); err != nil {
		return err
	}
	for _, s := range m.Sysctls {
		if err := n.WriteSysctl(s[0], s[1]); err != nil {
			return fmt.Errorf("%s: sysctl %s=%s: %w", n.NS.Name, s[0], s[1], err)
		}
	}
	addr := &netlink.Addr{IPNet: prefixNet(m.Addr)}
	if v.Family == IPv6 {
		addr.Flags = unix.IFA_F_NODAD
	}
	if err := h.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("%s: add %s to %s: %w", n.NS.Name, m.Addr, m.Name, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s: set %s up: %w", n.NS.Name, m.Name, err)
	}
	return nil
}

// RemoveFRRMacvlan deletes the macvlan of v, if any (a rebooted node has
// none until its set-up runs again).
func (n *Node) RemoveFRRMacvlan(v FRRVRRP) error {
	h, err := n.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(v.Macvlan().Name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return err
	}
	return h.LinkDel(l)
}

// FRRTempDir returns a new directory for StartFRR, removed when t ends:
// under os.TempDir, mode 0755, so that the daemons (user frr) reach it; a
// test's TempDir (0700, root) is not reachable.
func FRRTempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "haa-frr-")
	if err == nil {
		err = os.Chmod(d, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// FRRFiles are the files of one node's FRR, all in Dir (dir/frr-NS, owned
// by the frr user): configs, pid files, logs, zebra's socket (zserv.api, -z
// for both daemons) and the vty sockets (zebra.vty, vrrpd.vty:
// --vty_socket Dir), private to the node, so FRRs of several nodes and
// tests never meet.
type FRRFiles struct {
	Dir, ZebraConf, VRRPConf, ZebraPID, VRRPPID, ZebraLog, VRRPLog, Zserv string
}

// FRRFiles returns the files of the node's FRR under dir.
func (n *Node) FRRFiles(dir string) FRRFiles {
	d := filepath.Join(dir, "frr-"+n.NS.Name)
	return FRRFiles{
		Dir:       d,
		ZebraConf: filepath.Join(d, "zebra.conf"),
		VRRPConf:  filepath.Join(d, "vrrpd.conf"),
		ZebraPID:  filepath.Join(d, "zebra.pid"),
		VRRPPID:   filepath.Join(d, "vrrpd.pid"),
		ZebraLog:  filepath.Join(d, "zebra.log"),
		VRRPLog:   filepath.Join(d, "vrrpd.log"),
		Zserv:     filepath.Join(d, "zserv.api"),
	}
}

// FRR is FRR's zebra and vrrpd running in a node's namespace.
type FRR struct {
	Node    *Node
	Dir     string // as given to StartFRR
	Files   FRRFiles
	Routers []FRRVRRP
	Zebra   *Proc
	VRRPd   *Proc
}

// frrStartWait bounds the wait for each daemon's socket.
const frrStartWait = 10 * time.Second

// StartFRR runs FRR's zebra and vrrpd in the node's namespace for the
// routers vrs (several VRIDs, both families of one VRID), their files in
// dir/frr-NS (dir must be reachable by the frr user: FRRTempDir):
//
//	zebra -f zebra.conf -i zebra.pid -z zserv.api --vty_socket DIR -P 0 -u frr -g frr --log stdout
//	vrrpd -f vrrpd.conf -i vrrpd.pid -z zserv.api --vty_socket DIR -P 0 -u frr -g frr --log stdout
//
// in the foreground (the lab stops them), each logging to its .log, no vty
// TCP port (-P 0). It creates the macvlans that are missing
// (SetupFRRMacvlan), starts zebra, waits for its socket, starts vrrpd and
// returns once every router has left Initialize (vtysh).
func (n *Node) StartFRR(dir string, vrs ...FRRVRRP) (*FRR, error) {
	if err := FRRAvailable(); err != nil {
		return nil, err
	}
	uid, gid, err := frrIDs()
	if err != nil {
		return nil, err
	}
	if len(vrs) == 0 {
		return nil, errors.New("StartFRR: no virtual router")
	}
	f := &FRR{Node: n, Dir: dir, Files: n.FRRFiles(dir), Routers: vrs}
	if err := os.MkdirAll(f.Files.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chown(f.Files.Dir, uid, gid); err != nil {
		return nil, err
	}
	if err := reachable(f.Files.Dir, uid, gid); err != nil {
		return nil, err
	}
	for _, v := range vrs {
		if err := n.SetupFRRMacvlan(v); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(f.Files.ZebraConf, []byte("hostname "+n.Name+"\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.Files.VRRPConf, []byte(FRRConfig(n.Name, vrs...)), 0o644); err != nil {
		return nil, err
	}
	if err := f.start(); err != nil {
		return nil, err
	}
	return f, nil
}

// start runs zebra, then vrrpd, and waits for its routers.
func (f *FRR) start() error {
	fl := f.Files
	// Stale pid files and sockets of an earlier run (killed) go first.
	for _, p := range []string{fl.ZebraPID, fl.VRRPPID, fl.Zserv, filepath.Join(fl.Dir, "zebra.vty"), filepath.Join(fl.Dir, "vrrpd.vty")} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	common := []string{"-z", fl.Zserv, "--vty_socket", fl.Dir, "-P", "0", "-u", FRRUser, "-g", FRRUser, "--log", "stdout"}
	z, err := f.Node.Start(fl.ZebraLog, FRRZebra, append([]string{"-f", fl.ZebraConf, "-i", fl.ZebraPID}, common...)...)
	if err != nil {
		return err
	}
	f.Zebra = z
	if err := waitSocket(z, fl.Zserv); err != nil {
		return errors.Join(err, f.Kill())
	}
	v, err := f.Node.Start(fl.VRRPLog, FRRVRRPd, append([]string{"-f", fl.VRRPConf, "-i", fl.VRRPPID}, common...)...)
	if err != nil {
		return errors.Join(err, f.Kill())
	}
	f.VRRPd = v
	if err := waitSocket(v, filepath.Join(fl.Dir, "vrrpd.vty")); err != nil {
		return errors.Join(err, f.Kill())
	}
	// Ready once every router has left Initialize (Backup, protodown
	// requested, or Master): one that cannot start (no address on its
	// parent, no macvlan) stays there.
	err = Poll(frrStartWait, 10*time.Millisecond, "vrrpd's routers to start", func() (bool, error) {
		if v.Exited() {
			return false, fmt.Errorf("%s: vrrpd exited: %v (log %s)", f.Node.NS.Name, v.Wait(), v.Log)
		}
		for _, r := range f.Routers {
			st, err := f.State(r.VRID, r.Family)
			if err != nil || st.Status == "" || st.Status == "Initialize" {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return errors.Join(err, f.Kill())
	}
	return nil
}

// waitSocket waits until p created the unix socket path.
func waitSocket(p *Proc, path string) error {
	return Poll(frrStartWait, 5*time.Millisecond, filepath.Base(p.Name)+"'s "+filepath.Base(path), func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("%s: %s exited: %v (log %s)", p.Node.NS.Name, p.Name, p.Wait(), p.Log)
		}
		fi, err := os.Stat(path)
		return err == nil && fi.Mode()&os.ModeSocket != 0, nil
	})
}

// reachable checks that the frr user (uid, gid) can search every directory
// from / to dir.
func reachable(dir string, uid, gid int) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for d := abs; ; d = filepath.Dir(d) {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			return err
		}
		mode := st.Mode & 0o777
		ok := mode&0o001 != 0 ||
			(int(st.Uid) == uid && mode&0o100 != 0) ||
			(int(st.Gid) == gid && mode&0o010 != 0)
		if !ok {
			return fmt.Errorf("FRR's directory %s: the %s user cannot enter %s (mode %o): use lab.FRRTempDir", abs, FRRUser, d, mode)
		}
		if d == "/" || d == "." {
			return nil
		}
	}
}

// Restart starts FRR again on the same files and routers (after Kill,
// Stop or a power-off): the macvlans that are missing are created again.
func (f *FRR) Restart() error {
	for _, p := range []*Proc{f.VRRPd, f.Zebra} {
		if p != nil && !p.Exited() {
			return fmt.Errorf("%s: %s still running", f.Node.NS.Name, p.Name)
		}
	}
	f.Zebra, f.VRRPd = nil, nil
	for _, v := range f.Routers {
		if err := f.Node.SetupFRRMacvlan(v); err != nil {
			return err
		}
	}
	return f.start()
}

// procs returns vrrpd then zebra, those started.
func (f *FRR) procs() []*Proc {
	var ps []*Proc
	for _, p := range []*Proc{f.VRRPd, f.Zebra} {
		if p != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// Kill SIGKILLs vrrpd and zebra (a crash: no priority-0 advert; the
// macvlans stay as they were, a master's up with its VIP) and removes
// the crash directories FRR leaves in /var/tmp/frr.
func (f *FRR) Kill() error {
	var errs []error
	for _, p := range f.procs() {
		errs = append(errs, p.Kill())
		removeCrashDir(p)
	}
	return errors.Join(errs...)
}

// Stop stops vrrpd, then zebra, with SIGTERM (a clean shutdown), each
// SIGKILLed after timeout; an error if one exits with a failure.
func (f *FRR) Stop(timeout time.Duration) error {
	var errs []error
	for _, p := range f.procs() {
		if err := p.Stop(timeout); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", f.Node.NS.Name, filepath.Base(p.Name), err))
		}
		removeCrashDir(p)
	}
	return errors.Join(errs...)
}

func removeCrashDir(p *Proc) {
	if p.Exited() {
		_ = os.RemoveAll(filepath.Join(frrCrashDir, filepath.Base(p.Name)+"."+strconv.Itoa(p.Pid())))
	}
}

// PowerOff takes the node off the network the hard way: eth0 goes down
// and FRR is killed (Kill).
func (f *FRR) PowerOff() error {
	return errors.Join(f.Node.LinkDown(), f.Kill())
}

// PowerOn is a reboot after PowerOff: the node comes back with its own
// address only (Node.PowerOn) and without macvlans; then FRR's set-up and
// daemons run again (Restart).
func (f *FRR) PowerOn() error {
	for _, v := range f.Routers {
		if err := f.Node.RemoveFRRMacvlan(v); err != nil {
			return err
		}
	}
	if err := f.Node.PowerOn(); err != nil {
		return err
	}
	return f.Restart()
}

// FRRRouter is one virtual router in vtysh's `show vrrp json` (FRR 8.4).
type FRRRouter struct {
	VRID                  int       `json:"vrid"`
	Version               int       `json:"version"`
	Shutdown              bool      `json:"shutdown"`
	PreemptMode           bool      `json:"preemptMode"`
	AcceptMode            bool      `json:"acceptMode"`
	Interface             string    `json:"interface"`
	AdvertisementInterval int       `json:"advertisementInterval"` // ms
	V4                    FRRFamily `json:"v4"`
	V6                    FRRFamily `json:"v6"`
}

// Family returns the router's state for one family.
func (r FRRRouter) Family(fam Family) FRRFamily {
	if fam == IPv6 {
		return r.V6
	}
	return r.V4
}

// FRRFamily is a router's state in one address family. Status is
// "Initialize", "Backup" or "Master"; the intervals are in milliseconds.
type FRRFamily struct {
	Interface           string   `json:"interface"`
	VMAC                string   `json:"vmac"`
	PrimaryAddress      string   `json:"primaryAddress"`
	Status              string   `json:"status"`
	EffectivePriority   int      `json:"effectivePriority"`
	MasterAdverInterval int      `json:"masterAdverInterval"`
	SkewTime            int      `json:"skewTime"`
	MasterDownInterval  int      `json:"masterDownInterval"`
	Addresses           []string `json:"addresses"`
	Stats               struct {
		AdverTx         uint64 `json:"adverTx"`
		AdverRx         uint64 `json:"adverRx"`
		GarpTx          uint64 `json:"garpTx"`
		NeighborAdverTx uint64 `json:"neighborAdverTx"`
		Transitions     uint64 `json:"transitions"`
	} `json:"stats"`
}

// vtyshWait bounds one vtysh query.
const vtyshWait = 5 * time.Second

// Vtysh runs vtysh against this FRR's vrrpd (`vtysh --vty_socket DIR -d
// vrrpd -c CMD...`) and returns its output.
func (f *FRR) Vtysh(cmds ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), vtyshWait)
	defer cancel()
	args := []string{"--vty_socket", f.Files.Dir, "-d", "vrrpd"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	cmd := exec.CommandContext(ctx, FRRVtysh, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s: vtysh %s: %w: %s", f.Node.NS.Name, strings.Join(cmds, "; "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// Show returns vrrpd's routers (`show vrrp json`).
func (f *FRR) Show() ([]FRRRouter, error) {
	out, err := f.Vtysh("show vrrp json")
	if err != nil {
		return nil, err
	}
	var rs []FRRRouter
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		return nil, fmt.Errorf("%s: show vrrp json: %w: %q", f.Node.NS.Name, err, out)
	}
	return rs, nil
}

// State returns router vrid's state in family fam.
func (f *FRR) State(vrid int, fam Family) (FRRFamily, error) {
	rs, err := f.Show()
	if err != nil {
		return FRRFamily{}, err
	}
	for _, r := range rs {
		if r.VRID == vrid {
			return r.Family(fam), nil
		}
	}
	return FRRFamily{}, fmt.Errorf("%s: vrrpd has no router %d", f.Node.NS.Name, vrid)
}

// WaitStatus waits until router vrid is in status ("Backup", "Master") in
// family fam, and returns its state; an error after timeout or when vrrpd
// exits.
func (f *FRR) WaitStatus(vrid int, fam Family, status string, timeout time.Duration) (FRRFamily, error) {
	var st FRRFamily
	err := Poll(timeout, 20*time.Millisecond, fmt.Sprintf("FRR on %s: router %d %v %s", f.Node.Name, vrid, fam, status), func() (bool, error) {
		if f.VRRPd.Exited() {
			return false, fmt.Errorf("%s: vrrpd exited: %v", f.Node.NS.Name, f.VRRPd.Wait())
		}
		var err error
		st, err = f.State(vrid, fam)
		return err == nil && st.Status == status, err
	})
	if err != nil {
		return st, fmt.Errorf("%w (status %q)", err, st.Status)
	}
	return st, nil
}

// ActiveLink returns the name of the node's link that holds a and can
// answer for it: up and running (carrier, not protodown, its lower link
// up: a powered-off node holds nothing), the address not tentative nor
// failed DAD; "" when none. Unlike HasAddr, which looks at eth0 only and
// whatever its state, it finds FRR's VIP on a master's macvlan and not
// on a backup's (protodown).
func (n *Node) ActiveLink(a netip.Addr) (string, error) {
	h, err := n.Handle()
	if err != nil {
		return "", fmt.Errorf("%s: %w", n.NS.Name, err)
	}
	defer h.Close()
	addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return "", fmt.Errorf("%s: list addresses: %w", n.NS.Name, err)
	}
	a = a.Unmap()
	for _, ad := range addrs {
		ip, ok := netip.AddrFromSlice(ad.IP)
		if !ok || ip.Unmap() != a || ad.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
			continue
		}
		l, err := h.LinkByIndex(ad.LinkIndex)
		if err != nil {
			return "", fmt.Errorf("%s: link %d: %w", n.NS.Name, ad.LinkIndex, err)
		}
		if at := l.Attrs(); at.Flags&net.FlagUp != 0 && at.RawFlags&unix.IFF_RUNNING != 0 {
			return at.Name, nil
		}
	}
	return "", nil
}

// ActiveHolders returns the nodes that hold a on a link that is up and
// running (ActiveLink): haad's VIP on eth0, FRR's on a master's macvlan.
func (l *Lab) ActiveHolders(a netip.Addr) ([]*Node, error) {
	var out []*Node
	for _, n := range l.Nodes {
		link, err := n.ActiveLink(a)
		if err != nil {
			return nil, err
		}
		if link != "" {
			out = append(out, n)
		}
	}
	return out, nil
}

// WaitActiveHolder is WaitHolder by ActiveHolders: it waits until exactly
// one node holds a on a running link (want, if not nil) and returns it.
func (l *Lab) WaitActiveHolder(a netip.Addr, want *Node, timeout time.Duration) (*Node, error) {
	var got []*Node
	err := Poll(timeout, 2*time.Millisecond, fmt.Sprintf("exactly one active holder of %s", a), func() (bool, error) {
		var err error
		got, err = l.ActiveHolders(a)
		return err == nil && len(got) == 1 && (want == nil || got[0] == want), err
	})
	if err != nil {
		if want != nil {
			return nil, fmt.Errorf("%w (want %s, holders %s)", err, want.Name, Names(got))
		}
		return nil, fmt.Errorf("%w (holders %s)", err, Names(got))
	}
	return got[0], nil
}

// Takeover is a measured power-off of a master, by ActiveHolders.
type Takeover struct {
	Failover
	// Took is the time from the power-off to the new master holding the
	// VIP on a running link.
	Took time.Duration
}

// MeasureTakeover is MeasureFailover for masters that are not haad on
// eth0: the client pings vip every 2 ms, powerOff takes master (which
// must actively hold vip) off the network, and it returns when another
// node actively holds vip and the client gets replies again.
func (l *Lab) MeasureTakeover(client *Node, vip netip.Addr, master *Node, powerOff func() error, timeout time.Duration) (Takeover, error) {
	p, err := client.StartPing(vip, 2*time.Millisecond, timeout+10*time.Second)
	if err != nil {
		return Takeover{}, err
	}
	stopped := false
	defer func() {
		if !stopped {
			p.Stop()
		}
	}()
	if err := p.WaitReplies(50, 3*time.Second); err != nil {
		return Takeover{}, fmt.Errorf("client does not reach %s before the power-off: %w", vip, err)
	}
	at := time.Now()
	if err := powerOff(); err != nil {
		return Takeover{}, err
	}
	var next *Node
	err = Poll(timeout, 2*time.Millisecond, "a new master", func() (bool, error) {
		hs, err := l.ActiveHolders(vip)
		for _, h := range hs {
			if h != master {
				next = h
				return true, nil
			}
		}
		return false, err
	})
	if err != nil {
		return Takeover{}, err
	}
	took := time.Since(at)
	if err := p.WaitReplies(50, timeout); err != nil {
		return Takeover{}, fmt.Errorf("client does not reach %s through %s: %w", vip, next.Name, err)
	}
	st := p.Stop()
	stopped = true
	return Takeover{Failover: Failover{Outage: st.GapAfter(at), NewMaster: next, Sent: st.Sent, Received: len(st.Replies)}, Took: took}, nil
}
