package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrClosed is returned when a process is started in a closed lab.
var ErrClosed = errors.New("lab closed")

// Proc is a process started inside a node's namespace.
//
// `ip netns exec` execs into the program, so Pid is the program's own pid and
// Signal reaches the program itself. The program leads its own process group;
// Kill and the SIGKILL fallback of Stop hit the whole group (for keepalived:
// the parent and its VRRP child at once).
type Proc struct {
	// Node is where the process runs; Name is the program, Log its log file.
	Node *Node
	Name string
	Log  string

	pid  int
	proc *os.Process
	done chan struct{}
	err  error // exit error, valid once done is closed

	mu      sync.Mutex
	reaping bool // the leader is being reaped: its pid may be reused
}

// Start runs name with args inside the node's namespace, stdout and stderr
// appended to logPath (created, with its directory, when missing). It returns
// once `ip netns exec` has exec'd into the program: the pid is the program's
// and signals reach it. The lab's
// Close stops it. The process gets SIGKILL if the thread that started it dies
// (the test binary crashing), so it does not outlive a crashed test.
func (n *Node) Start(logPath, name string, args ...string) (*Proc, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := n.Command(name, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	l := n.lab
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, fmt.Errorf("%s: start %s: %w", n.NS.Name, name, ErrClosed)
	}
	if err := cmd.Start(); err != nil {
		l.mu.Unlock()
		return nil, fmt.Errorf("%s: start %s: %w", n.NS.Name, name, err)
	}
	p := &Proc{
		Node: n,
		Name: name,
		Log:  logPath,
		pid:  cmd.Process.Pid,
		proc: cmd.Process,
		done: make(chan struct{}),
	}
	go func() {
		// Wait for the exit without reaping, so that killGroup can tell
		// whether the pid (and so the group id) is still ours.
		var info unix.Siginfo
		for unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil) == unix.EINTR {
		}
		p.mu.Lock()
		p.reaping = true
		p.mu.Unlock()
		p.err = cmd.Wait()
		close(p.done)
	}()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	if err := p.waitExec(name); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", n.NS.Name, name, errors.Join(err, p.Kill()))
	}
	return p, nil
}

// waitExec waits until `ip netns exec` has exec'd into the program, so that
// Pid, Signal and /proc/PID are the program's and not ip's. Returns early
// when the process exits (its exit error is then the program's, or ip's
// complaint in the log).
func (p *Proc) waitExec(name string) error {
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		return err
	}
	ipExe, err := filepath.EvalSymlinks(ipPath)
	if err != nil {
		return err
	}
	if prog, err := exec.LookPath(name); err == nil {
		if resolved, err := filepath.EvalSymlinks(prog); err == nil && resolved == ipExe {
			return nil // the program is ip itself
		}
	}
	exe := "/proc/" + strconv.Itoa(p.pid) + "/exe"
	// Generous: under the IPVS VM's emulation, with other VMs on the
	// host, ip has taken more than 2 s to exec. The poll starts at 100 µs
	// and backs off to 5 ms, so that a slow exec does not cost a busy
	// loop.
	const limit = 15 * time.Second
	wait := 100 * time.Microsecond
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(wait) {
		cur, err := os.Readlink(exe)
		if err != nil || cur != ipExe || p.Exited() {
			return nil // exec'd (or gone)
		}
		wait = min(2*wait, 5*time.Millisecond)
	}
	return fmt.Errorf("ip netns exec did not exec into %s within %v", name, limit)
}

// Pid returns the program's process id (also its process group id).
func (p *Proc) Pid() int { return p.pid }

// Done is closed when the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to exit and returns its exit error (nil for
// status 0, an *exec.ExitError otherwise).
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Signal sends sig to the program only (not to its children). After the
// process exited it returns os.ErrProcessDone.
func (p *Proc) Signal(sig os.Signal) error {
	if p.Exited() {
		return os.ErrProcessDone
	}
	return p.proc.Signal(sig)
}

// Kill sends SIGKILL to the process group (the program and everything it
// forked, at once: a crash) and waits for the program to be gone. Once the
// program has exited on its own, leftovers of its group are no longer
// reachable by Kill; the lab's Close kills everything left in its namespaces.
// It returns an error only when the program could not be killed.
func (p *Proc) Kill() error {
	p.killGroup()
	select {
	case <-p.done:
		return nil
	case <-time.After(killWait):
		return fmt.Errorf("%s: %s (pid %d) still running %v after SIGKILL", p.Node.NS.Name, p.Name, p.pid, killWait)
	}
}

// Stop sends SIGTERM to the program, waits up to timeout, then SIGKILLs the
// process group. It returns the program's exit error (an *exec.ExitError
// "signal: terminated" when it died of the SIGTERM), or an error if it could
// not be stopped at all.
func (p *Proc) Stop(timeout time.Duration) error {
	exitErr, err := p.stop(timeout)
	if err != nil {
		return err
	}
	return exitErr
}

// stop returns the exit error and, separately, a failure to stop.
func (p *Proc) stop(timeout time.Duration) (exitErr, err error) {
	if !p.Exited() {
		_ = p.proc.Signal(syscall.SIGTERM)
		t := time.NewTimer(timeout)
		select {
		case <-p.done:
		case <-t.C:
		}
		t.Stop()
	}
	if err := p.Kill(); err != nil {
		return nil, err
	}
	return p.err, nil
}

func (p *Proc) killGroup() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaping {
		return
	}
	// The leader is alive or an unreaped zombie: its pid, which is the
	// group id, cannot belong to anyone else.
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
}
