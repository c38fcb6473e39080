package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
)

// instance is one VRRP instance, rendered for haad or for keepalived.
type instance struct {
	Name     string
	VRID     int
	Priority int
	Version  int // 2 or 3
	Interval time.Duration
	AuthPass string   // VRRPv2 PASS authentication; empty: none
	VIPs     []string // ADDR/LEN
	Iface    string   // "": lab.Iface
	VMAC     bool     // a virtual MAC interface (use_vmac)
}

// iface is the instance's interface.
func (in instance) iface() string {
	if in.Iface == "" {
		return lab.Iface
	}
	return in.Iface
}

// haadConfig renders a haad YAML configuration for node name.
func haadConfig(name string, ins []instance) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\ninstances:\n", name)
	for _, in := range ins {
		fmt.Fprintf(&b, "  - name: %s\n    interface: %s\n    vrid: %d\n    priority: %d\n    version: %d\n    advertInterval: %s\n    vips: [%s]\n",
			in.Name, in.iface(), in.VRID, in.Priority, in.Version, in.Interval, strings.Join(in.VIPs, ", "))
		if in.AuthPass != "" {
			fmt.Fprintf(&b, "    auth: {type: PASS, password: %q}\n", in.AuthPass)
		}
		if in.VMAC {
			b.WriteString("    vmac: {}\n")
		}
	}
	return b.String()
}

// keepalivedConfig renders a keepalived.conf for node name. Every instance
// starts in BACKUP, like haad's, so the election decides. All instances must
// have the same version (global_defs vrrp_version).
func keepalivedConfig(name string, ins []instance) string {
	var b strings.Builder
	version := 2
	if len(ins) > 0 {
		version = ins[0].Version
	}
	fmt.Fprintf(&b, "global_defs {\n  router_id %s\n  vrrp_version %d\n}\n", name, version)
	for _, in := range ins {
		fmt.Fprintf(&b, "vrrp_instance %s {\n  state BACKUP\n  interface %s\n  virtual_router_id %d\n  priority %d\n  advert_int %s\n",
			in.Name, in.iface(), in.VRID, in.Priority, strconv.FormatFloat(in.Interval.Seconds(), 'f', -1, 64))
		if in.AuthPass != "" {
			fmt.Fprintf(&b, "  authentication {\n    auth_type PASS\n    auth_pass %s\n  }\n", in.AuthPass)
		}
		if in.VMAC {
			b.WriteString("  use_vmac\n")
		}
		b.WriteString("  virtual_ipaddress {\n")
		for _, v := range in.VIPs {
			fmt.Fprintf(&b, "    %s\n", v)
		}
		b.WriteString("  }\n}\n")
	}
	return b.String()
}

// daemon is a VRRP implementation the lab can run on a node.
type daemon interface {
	// Name is "haad" or "keepalived".
	Name() string
	// Start runs the implementation with the instances on n, its files in dir.
	Start(n *lab.Node, dir string, ins []instance) (*lab.Proc, error)
}

// haadDaemon runs haad; SIGUSR1 writes its status to statusPath.
type haadDaemon struct {
	bin string
	// profileDir, when set, gets each node's CPU profile (NODE.pprof,
	// haad --cpu-profile, written when haad stops).
	profileDir string
}

func (haadDaemon) Name() string { return "haad" }

func (d haadDaemon) Start(n *lab.Node, dir string, ins []instance) (*lab.Proc, error) {
	args := []string{"--status-file", statusPath(dir, n), "--log-level", "info"}
	if d.profileDir != "" {
		if err := os.MkdirAll(d.profileDir, 0o755); err != nil {
			return nil, err
		}
		args = append(args, "--cpu-profile", filepath.Join(d.profileDir, n.Name+".pprof"))
	}
	return n.StartHaad(dir, d.bin, haadConfig(n.Name, ins), args...)
}

func statusPath(dir string, n *lab.Node) string {
	return filepath.Join(dir, "status-"+n.NS.Name+".json")
}

// keepalivedDaemon runs keepalived 2.2.x, VRRP only (see lab.StartKeepalived).
type keepalivedDaemon struct{}

func (keepalivedDaemon) Name() string { return "keepalived" }

func (keepalivedDaemon) Start(n *lab.Node, dir string, ins []instance) (*lab.Proc, error) {
	return n.StartKeepalived(dir, keepalivedConfig(n.Name, ins))
}

// instanceStatus is the part of haad's SIGUSR1 status file haalab reads.
type instanceStatus struct {
	Name            string `json:"name"`
	VRID            int    `json:"vrid"`
	State           string `json:"state"`
	Priority        int    `json:"priority"`
	Master          string `json:"master"`
	AdvertInterval  string `json:"advertInterval"`
	AdvertsSent     uint64 `json:"advertsSent"`
	AdvertsReceived uint64 `json:"advertsReceived"`
	Transitions     uint64 `json:"transitions"`
	TimerSlipMax    string `json:"timerSlipMax"`
}

// haadStatus asks a haad for its status file (SIGUSR1) and decodes it.
func haadStatus(p *lab.Proc, path string) ([]instanceStatus, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := p.Signal(syscall.SIGUSR1); err != nil {
		return nil, fmt.Errorf("%s: haad status: %w", p.Node.Name, err)
	}
	var b []byte
	err := lab.Poll(5*time.Second, 5*time.Millisecond, "the status file of haad on "+p.Node.Name, func() (bool, error) {
		var err error
		b, err = os.ReadFile(path)
		return err == nil, nil
	})
	if err != nil {
		return nil, err
	}
	var doc struct {
		Instances []instanceStatus `json:"instances"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: status file %s: %w", p.Node.Name, path, err)
	}
	return doc.Instances, nil
}

// statusTotals sums transitions and finds the largest timer slip.
func statusTotals(st []instanceStatus) (transitions uint64, slipMax time.Duration) {
	for _, s := range st {
		transitions += s.Transitions
		if d, err := time.ParseDuration(s.TimerSlipMax); err == nil && d > slipMax {
			slipMax = d
		}
	}
	return transitions, slipMax
}

// keepalivedTransitions counts the state changes keepalived logged after
// byte offset from of its log.
func keepalivedTransitions(log string, from int64) (int, error) {
	b, err := os.ReadFile(log)
	if err != nil {
		return 0, err
	}
	if from > int64(len(b)) {
		from = int64(len(b))
	}
	n := 0
	for _, line := range strings.Split(string(b[from:]), "\n") {
		if strings.Contains(line, "Entering ") && strings.Contains(line, " STATE") {
			n++
		}
	}
	return n, nil
}

// fileSize is the size of path, 0 when missing.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
