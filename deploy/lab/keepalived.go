package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// ErrNoKeepalived is returned by KeepalivedPath when keepalived is missing.
var ErrNoKeepalived = errors.New("keepalived not installed: install the Debian package keepalived (apt-get install keepalived)")

// KeepalivedPath returns the keepalived binary: /usr/sbin/keepalived, else the
// one on PATH.
func KeepalivedPath() (string, error) {
	const std = "/usr/sbin/keepalived"
	if fi, err := os.Stat(std); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return std, nil
	}
	if p, err := exec.LookPath("keepalived"); err == nil {
		return p, nil
	}
	return "", ErrNoKeepalived
}

// KeepalivedFiles are the files StartKeepalived uses for one node. Every name
// carries the node's namespace name (PREFIX-n1), unique per lab, so
// keepalived peers of different tests never share a pid file even in a
// shared directory.
type KeepalivedFiles struct {
	Conf, Log, PID, VRRPPID, CheckersPID string
}

// KeepalivedFiles returns the file names StartKeepalived uses in dir.
func (n *Node) KeepalivedFiles(dir string) KeepalivedFiles {
	base := filepath.Join(dir, "ka-"+n.NS.Name)
	return KeepalivedFiles{
		Conf:        filepath.Join(dir, "keepalived-"+n.NS.Name+".conf"),
		Log:         filepath.Join(dir, "keepalived-"+n.NS.Name+".log"),
		PID:         base + ".pid",
		VRRPPID:     base + "-vrrp.pid",
		CheckersPID: base + "-chk.pid",
	}
}

// StartKeepalived writes conf to dir/keepalived-NS.conf and runs keepalived
// 2.2.x in the node's namespace as a VRRP-only peer, logging to
// dir/keepalived-NS.log (NS is the namespace name, e.g. PREFIX-n1):
//
//	keepalived -n -l -D -G -P -R -f CONF -p PID -r VRRPPID -c CHKPID [extra...]
//
// -n stays in the foreground (Pid is the parent; it forks one VRRP child in
// the same process group), -l -D log in detail to the log file, -G keeps it
// off the host's syslog, -P runs only the VRRP subsystem (no checker, which
// would want IPVS), -R makes the parent exit instead of respawning a dead
// VRRP child, and the pid files are private to this node. Stop(timeout)
// (SIGTERM) is a clean shutdown: the child sends priority 0 and removes its
// VIPs. Kill SIGKILLs parent and child together: a crash. Note that killing
// only the parent is NOT a crash: the child notices and shuts down cleanly.
func (n *Node) StartKeepalived(dir, conf string, extra ...string) (*Proc, error) {
	return n.startKeepalived(dir, conf, "-P", extra)
}

// StartKeepalivedLVS is StartKeepalived for a load balancer: keepalived
// runs its checker subsystem only (-C instead of -P): the virtual_server
// blocks of conf, their health checks, programmed into the namespace's
// IPVS table; no VRRP. Stop (SIGTERM) removes its virtual servers, as
// keepalived does at a clean stop; Kill leaves them in the kernel.
func (n *Node) StartKeepalivedLVS(dir, conf string, extra ...string) (*Proc, error) {
	return n.startKeepalived(dir, conf, "-C", extra)
}

// startKeepalived runs keepalived with its subsystem flag (-P VRRP, -C
// checkers).
func (n *Node) startKeepalived(dir, conf, subsystem string, extra []string) (*Proc, error) {
	bin, err := KeepalivedPath()
	if err != nil {
		return nil, err
	}
	f := n.KeepalivedFiles(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.Conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	for _, pid := range []string{f.PID, f.VRRPPID, f.CheckersPID} {
		// A stale pid file naming a live keepalived makes it refuse to start.
		if err := os.Remove(pid); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", n.NS.Name, err)
		}
	}
	args := append([]string{"-n", "-l", "-D", "-G", subsystem, "-R",
		"-f", f.Conf, "-p", f.PID, "-r", f.VRRPPID, "-c", f.CheckersPID}, extra...)
	return n.Start(f.Log, bin, args...)
}
