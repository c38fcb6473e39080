package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Build compiles the main package pkg (e.g. "./cmd/haad") of the module at
// moduleDir into dir and returns the binary's path.
func Build(moduleDir, dir, pkg string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = moduleDir
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// ModuleRoot walks up from the working directory to the directory holding
// go.mod.
func ModuleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("go.mod not found above the working directory")
		}
		d = parent
	}
}

// HaadFiles are the files StartHaad uses for one node in dir (Keepalived:
// the keepalived.conf of StartHaadKeepalived).
type HaadFiles struct{ Config, Keepalived, Log, State, Fleet, Socket string }

// HaadFiles returns the file names of the node's haad in dir.
func (n *Node) HaadFiles(dir string) HaadFiles {
	return HaadFiles{
		Config:     filepath.Join(dir, "haad-"+n.NS.Name+".yaml"),
		Keepalived: filepath.Join(dir, "haad-"+n.NS.Name+".keepalived.conf"),
		Log:        filepath.Join(dir, "haad-"+n.NS.Name+".log"),
		State:      filepath.Join(dir, "haad-"+n.NS.Name+".state.json"),
		Fleet:      filepath.Join(dir, "haad-"+n.NS.Name+".fleet.json"),
		Socket:     filepath.Join(dir, "haad-"+n.NS.Name+".sock"),
	}
}

// StartHaad writes config to dir/haad-NS.yaml and runs `bin --config FILE
// --state-file dir/haad-NS.state.json --fleet-file dir/haad-NS.fleet.json
// --socket dir/haad-NS.sock [args...]`
// in the node's namespace,
// logging to dir/haad-NS.log. A restarted haad on the same node finds its
// state again.
func (n *Node) StartHaad(dir, bin, config string, args ...string) (*Proc, error) {
	f := n.HaadFiles(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.Config, []byte(config), 0o644); err != nil {
		return nil, err
	}
	return n.Start(f.Log, bin, append([]string{"--config", f.Config, "--state-file", f.State, "--fleet-file", f.Fleet, "--socket", f.Socket}, args...)...)
}

// StartHaadKeepalived is StartHaad with a keepalived.conf: conf is written
// to dir/haad-NS.keepalived.conf and run with --keepalived-config instead
// of --config (SIGHUP converts the file again).
func (n *Node) StartHaadKeepalived(dir, bin, conf string, args ...string) (*Proc, error) {
	f := n.HaadFiles(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.Keepalived, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return n.Start(f.Log, bin, append([]string{"--keepalived-config", f.Keepalived, "--state-file", f.State, "--fleet-file", f.Fleet, "--socket", f.Socket}, args...)...)
}

// WaitAPI waits until haad p serves its API on socket (the socket exists:
// its first configuration runs), for timeout at most; an error if haad
// exits first.
func WaitAPI(p *Proc, socket string, timeout time.Duration) error {
	return Poll(timeout, 10*time.Millisecond, "haad's API socket", func() (bool, error) {
		if p.Exited() {
			return false, errors.New("haad exited")
		}
		_, err := os.Stat(socket)
		return err == nil, nil
	})
}

// Holders returns the nodes that answer for a on the LAN: their eth0 is up
// and holds a. A powered-off node (link down) never counts.
func (l *Lab) Holders(a netip.Addr) ([]*Node, error) {
	var out []*Node
	for _, n := range l.Nodes {
		up, err := n.IsUp()
		if err != nil {
			return nil, err
		}
		if !up {
			continue
		}
		ok, err := n.HasAddr(a)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, n)
		}
	}
	return out, nil
}

// Names lists node names, for messages.
func Names(ns []*Node) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = n.Name
	}
	return "[" + strings.Join(s, " ") + "]"
}

// Poll calls fn every interval until it returns true, an error, or timeout
// passes (an error naming what was awaited).
func Poll(timeout, interval time.Duration, what string, fn func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := fn()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(interval)
	}
}

// WaitHolder waits until exactly one node holds a (and, if want is not nil,
// that node is want) and returns it.
func (l *Lab) WaitHolder(a netip.Addr, want *Node, timeout time.Duration) (*Node, error) {
	var got []*Node
	err := Poll(timeout, 5*time.Millisecond, fmt.Sprintf("exactly one holder of %s", a), func() (bool, error) {
		var err error
		got, err = l.Holders(a)
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

// Failover is one measured power-off of a master.
type Failover struct {
	Outage    time.Duration // longest gap in the client's replies after the power-off
	NewMaster *Node
	Sent      int
	Received  int
}

// IsUp reports whether the node's eth0 is administratively up.
func (n *Node) IsUp() (bool, error) {
	h, link, err := n.handle()
	if err != nil {
		return false, err
	}
	h.Close()
	return link.Attrs().Flags&net.FlagUp != 0, nil
}

// PowerOn is the return of a powered-off node: like a reboot it comes back
// with only its own address (a VIP it held is gone), without the virtual
// MAC (macvlan) interfaces a killed VRRP speaker left and with eth0's ARP
// settings at the lab's, then its link goes up.
func (n *Node) PowerOn() error {
	h, link, err := n.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return fmt.Errorf("%s: list links: %w", n.NS.Name, err)
	}
	for _, l := range links {
		if _, ok := l.(*netlink.Macvlan); ok {
			if err := h.LinkDel(l); err != nil {
				return fmt.Errorf("%s: delete %s: %w", n.NS.Name, l.Attrs().Name, err)
			}
		}
	}
	for _, s := range memberSysctls {
		if err := n.WriteSysctl("net/ipv4/conf/"+n.Iface+"/"+s.key, s.value); err != nil {
			return err
		}
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && ip != n.Addr {
			if err := h.AddrDel(link, &a); err != nil {
				return fmt.Errorf("%s: remove %s: %w", n.NS.Name, ip, err)
			}
		}
	}
	if err := n.LinkUp(); err != nil {
		return err
	}
	// The kernel flushed the link's IPv6 addresses when it went down:
	// the node, booted again, configures its own (not the VIPs).
	a6 := &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(n.Addr6, 64)), Flags: unix.IFA_F_NODAD}
	if err := h.AddrReplace(link, a6); err != nil {
		return fmt.Errorf("%s: add %s: %w", n.NS.Name, n.Addr6, err)
	}
	return nil
}

// PowerOff takes a node off the network the hard way: its link goes down and
// its VRRP speaker is killed with SIGKILL (no priority-0 advert).
func PowerOff(n *Node, p *Proc) error {
	if err := n.LinkDown(); err != nil {
		return err
	}
	return p.Kill()
}

// MeasureFailover pings vip from client every 2 ms, powers off master (which
// must hold vip), waits until another node holds it and the client gets
// replies again, and returns the longest gap in replies.
func (l *Lab) MeasureFailover(client *Node, vip netip.Addr, master *Node, proc *Proc, timeout time.Duration) (Failover, error) {
	to, err := l.MeasureTakeover(client, vip, master, func() error { return PowerOff(master, proc) }, timeout)
	return to.Failover, err
}
