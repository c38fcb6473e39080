// Package lab builds throw-away network labs out of Linux network namespaces:
// nodes and clients joined by a bridge that lives in its own namespace, so
// nothing on the host is ever touched. The demo, the integration tests and the
// benchmarks all use it.
package lab

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RequireEnv is the environment variable that turns a skipped namespace test
// into a failed one. CI sets it so root-only tests can never pass by skipping.
const RequireEnv = "HAA_REQUIRE_NETNS"

// Require skips t when network namespaces cannot be created (not root, no
// iproute2), and fails it instead when HAA_REQUIRE_NETNS=1.
func Require(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("network namespace test cannot run and %s=1: %v", RequireEnv, err)
		}
		t.Skipf("skipping network namespace test: %v (run as root, or set %s=1 to make this a failure)", err, RequireEnv)
	}
}

// RequireIPVSEnv turns a skipped IPVS kernel test into a failed one: the
// VM stage (make test-ipvs) sets it, since its kernel has IPVS.
const RequireIPVSEnv = "HAA_REQUIRE_IPVS"

// IPVSProcFile exists when the kernel has IPVS (built in or loaded).
const IPVSProcFile = "/proc/net/ip_vs"

// RequireIPVS skips t when the kernel has no IPVS (this machine's has
// none: the tests run in make test-ipvs's VM), and fails it instead when
// HAA_REQUIRE_IPVS=1; then it requires namespaces (Require).
func RequireIPVS(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(IPVSProcFile); err != nil {
		if os.Getenv(RequireIPVSEnv) == "1" {
			t.Fatalf("IPVS kernel test cannot run and %s=1: %s missing (modprobe ip_vs)", RequireIPVSEnv, IPVSProcFile)
		}
		t.Skipf("the kernel has no IPVS (%s missing): make test-ipvs runs this test in a VM whose kernel has it", IPVSProcFile)
	}
	Require(t)
}

// Available reports why namespaces cannot be used here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("needs iproute2 (the ip command)")
	}
	return nil
}

// UniqueName returns prefix plus a short random suffix. Namespace and link
// names made with it never collide between tests running in parallel.
func UniqueName(prefix string) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// NS is a network namespace created by this package.
type NS struct {
	Name string
}

// NetnsDir is where named namespaces are bound, as iproute2's.
const NetnsDir = "/run/netns"

// NewNS creates the named namespace and brings its loopback up. It does
// what `ip netns add NAME` does, in this process (an exec of ip costs a
// tenth of a second under the IPVS VM's emulation, and a lab made dozens):
// a new network namespace bound at /run/netns/NAME, with /run/netns a
// shared mount point so that Close's unmount reaches every mount namespace
// (those of `ip netns exec` too). `ip netns` sees it as one of its own.
func NewNS(name string) (*NS, error) {
	if len(name) > 200 {
		return nil, fmt.Errorf("namespace name %q too long", name)
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return nil, fmt.Errorf("namespace name %q: not a file name", name)
	}
	if err := addNetns(name); err != nil {
		return nil, fmt.Errorf("netns add %s: %w", name, err)
	}
	ns := &NS{Name: name}
	h, err := ns.Handle()
	if err == nil {
		var lo netlink.Link
		if lo, err = h.LinkByName("lo"); err == nil {
			err = h.LinkSetUp(lo)
		}
		h.Close()
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("%s: set lo up: %w", name, err), ns.Close())
	}
	return ns, nil
}

// netnsDirMu serialises making /run/netns a shared mount point.
var netnsDirMu sync.Mutex

// shareNetnsDir makes /run/netns a shared mount point (first a bind mount
// of itself), as iproute2's netns_add does.
func shareNetnsDir() error {
	netnsDirMu.Lock()
	defer netnsDirMu.Unlock()
	if err := os.MkdirAll(NetnsDir, 0o755); err != nil {
		return err
	}
	made := false
	for {
		err := unix.Mount("", NetnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if err != unix.EINVAL || made {
			return fmt.Errorf("mount --make-shared %s: %w", NetnsDir, err)
		}
		if err := unix.Mount(NetnsDir, NetnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("mount --bind %s %s: %w", NetnsDir, NetnsDir, err)
		}
		made = true
	}
}

// addNetns creates a network namespace and binds it at /run/netns/NAME,
// from a locked thread that unshares its network namespace, binds it and
// goes back to the process's one.
func addNetns(name string) error {
	if err := shareNetnsDir(); err != nil {
		return err
	}
	path := filepath.Join(NetnsDir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0)
	if err != nil {
		return err
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		// The thread stays locked, and dies with this goroutine, unless
		// it is back in the process's namespace.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err = unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			err = fmt.Errorf("mount --bind %s: %w", path, err)
		}
		if serr := netns.Set(orig); serr == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		_ = os.Remove(path)
		return err
	}
	return nil
}

// Close deletes the namespace as `ip netns del` does (unmounts and removes
// /run/netns/NAME); processes still inside keep it alive until they exit,
// so callers stop their processes first.
func (n *NS) Close() error {
	path := filepath.Join(NetnsDir, n.Name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("netns del %s: umount: %w", n.Name, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("netns del %s: %w", n.Name, err)
	}
	return nil
}

// IP runs `ip -n NAME args...` (an iproute2 command inside the namespace).
func (n *NS) IP(args ...string) error {
	return ip(append([]string{"-n", n.Name}, args...)...)
}

// Command returns a command that runs inside the namespace through
// `ip netns exec`.
func (n *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Output runs a command inside the namespace and returns its standard output.
func (n *NS) Output(name string, args ...string) (string, error) {
	cmd := n.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), n.Name, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// Do runs fn on an OS thread switched into the namespace. Sockets created by
// fn stay in the namespace after Do returns and may be used from any
// goroutine.
func (n *NS) Do(fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	target, err := netns.GetFromName(n.Name)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return err
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// The thread is in an unknown namespace: keep it locked so the
		// runtime discards it instead of reusing it.
		runtime.LockOSThread()
		return errors.Join(ferr, err)
	}
	return ferr
}

// Handle returns a netlink handle operating inside the namespace.
func (n *NS) Handle() (*netlink.Handle, error) {
	h, err := netns.GetFromName(n.Name)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return netlink.NewHandleAt(h)
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// WriteSysctl writes value to /proc/sys/PATH inside the namespace. PATH uses
// slashes ("net/ipv4/conf/eth0/arp_accept") so interface names with dots work.
func (n *NS) WriteSysctl(path, value string) error {
	return n.Do(func() error {
		return os.WriteFile(filepath.Join("/proc/sys", path), []byte(value), 0)
	})
}

// ReadSysctl reads /proc/sys/PATH inside the namespace, without the trailing
// newline.
func (n *NS) ReadSysctl(path string) (string, error) {
	var out []byte
	err := n.Do(func() error {
		var err error
		out, err = os.ReadFile(filepath.Join("/proc/sys", path))
		return err
	})
	return strings.TrimSpace(string(out)), err
}

// Pids returns the processes whose network namespace is this one (what
// `ip netns pids` prints). Exited but unreaped processes are not listed.
func (n *NS) Pids() ([]int, error) {
	var want unix.Stat_t
	if err := unix.Stat(filepath.Join("/run/netns", n.Name), &want); err != nil {
		return nil, fmt.Errorf("namespace %s: %w", n.Name, err)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		if n.holds(pid, &want) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func (n *NS) holds(pid int, want *unix.Stat_t) bool {
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/net", &st); err != nil {
		return false
	}
	return st.Dev == want.Dev && st.Ino == want.Ino
}

// KillAll sends SIGKILL to every process inside the namespace and waits, at
// most timeout, until none is left. Each process is pinned with a pidfd and
// checked to still be inside the namespace before it is signalled, so a
// recycled pid can never hit a process elsewhere.
func (n *NS) KillAll(timeout time.Duration) error {
	var want unix.Stat_t
	if err := unix.Stat(filepath.Join("/run/netns", n.Name), &want); err != nil {
		return fmt.Errorf("namespace %s: %w", n.Name, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		pids, err := n.Pids()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			fd, err := unix.PidfdOpen(pid, 0)
			if err != nil {
				continue // already gone
			}
			if n.holds(pid, &want) {
				_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			}
			_ = unix.Close(fd)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("namespace %s: processes %v still running %v after SIGKILL", n.Name, pids, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// AddAddr adds the address p to the interface dev inside the namespace
// (`ip addr add P dev DEV`, without running ip).
func (n *NS) AddAddr(dev string, p netip.Prefix) error {
	h, err := n.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", n.Name, dev, err)
	}
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: prefixNet(p)}); err != nil {
		return fmt.Errorf("%s: add %s to %s: %w", n.Name, p, dev, err)
	}
	return nil
}

// AddRoute routes dst through the gateway via inside the namespace (`ip
// route add DST via VIA`, without running ip).
func (n *NS) AddRoute(dst netip.Prefix, via netip.Addr) error {
	h, err := n.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	if err := h.RouteAdd(&netlink.Route{Dst: prefixNet(dst.Masked()), Gw: via.AsSlice()}); err != nil {
		return fmt.Errorf("%s: route %s via %s: %w", n.Name, dst, via, err)
	}
	return nil
}
