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
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
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

// NewNS creates the named namespace and brings its loopback up.
func NewNS(name string) (*NS, error) {
	if len(name) > 200 {
		return nil, fmt.Errorf("namespace name %q too long", name)
	}
	if err := ip("netns", "add", name); err != nil {
		return nil, err
	}
	ns := &NS{Name: name}
	if err := ns.IP("link", "set", "lo", "up"); err != nil {
		_ = ns.Close()
		return nil, err
	}
	return ns, nil
}

// Close deletes the namespace; processes still inside keep it alive until
// they exit, so callers stop their processes first.
func (n *NS) Close() error {
	return ip("netns", "del", n.Name)
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
