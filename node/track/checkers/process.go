package checkers

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/haa-dev/haa/node/track"
)

// Process is a tracker that counts the running processes of a program
// every Interval, reading Proc. A process matches when its comm (as in
// /proc/PID/comm) is Name, or when the base name of its argv[0] (from
// /proc/PID/cmdline) is; with Args, its next arguments must also be Args
// (a prefix: later arguments may follow). It is OK while at least Quorum
// processes match and, when QuorumMax is set, at most QuorumMax.
type Process struct {
	// Name is the program's name, e.g. nginx.
	Name string
	// Args are the first arguments a matching process has (none: any).
	Args []string
	// Quorum is the fewest matching processes that are OK (default 1).
	Quorum int
	// QuorumMax is the most matching processes that are OK (0: no limit).
	QuorumMax int
	// Interval is how often to count (default 1s).
	Interval time.Duration
	// Proc is the proc file system (default /proc).
	Proc string
}

// Run counts the processes at once and then every Interval until ctx
// ends, reporting when the count changes.
func (p *Process) Run(ctx context.Context, report func(track.Result)) {
	interval := p.Interval
	if interval <= 0 {
		interval = time.Second
	}
	rep := track.NewReporter(report)
	t := time.NewTicker(interval)
	defer t.Stop()
	for ctx.Err() == nil {
		rep.Send(p.check())
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}

// check counts the processes once.
func (p *Process) check() track.Result {
	quorum := max(p.Quorum, 1)
	need := fmt.Sprintf("need %d..", quorum)
	if p.QuorumMax > 0 {
		need += strconv.Itoa(p.QuorumMax)
	}
	n, err := p.count()
	if err != nil {
		return track.Result{Detail: fmt.Sprintf("cannot count processes: %v", err), Since: time.Now()}
	}
	noun := "processes"
	if n == 1 {
		noun = "process"
	}
	return track.Result{
		OK:     n >= quorum && (p.QuorumMax == 0 || n <= p.QuorumMax),
		Detail: fmt.Sprintf("%d %s (%s)", n, noun, need),
		Since:  time.Now(),
	}
}

// count returns how many processes match.
func (p *Process) count() (int, error) {
	proc := p.Proc
	if proc == "" {
		proc = "/proc"
	}
	entries, err := os.ReadDir(proc)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue // not a process
		}
		if p.matches(filepath.Join(proc, e.Name())) {
			n++
		}
	}
	return n, nil
}

// matches reports whether the process whose directory is dir matches. A
// process that vanishes while it is read does not.
func (p *Process) matches(dir string) bool {
	named := false
	if comm, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil {
		named = strings.TrimSuffix(string(comm), "\n") == p.Name
	}
	if named && len(p.Args) == 0 {
		return true
	}
	raw, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil || len(raw) == 0 {
		return false // gone, or a kernel thread
	}
	argv := strings.Split(string(bytes.TrimSuffix(raw, []byte{0})), "\x00")
	if !named && filepath.Base(argv[0]) != p.Name {
		return false
	}
	return len(argv) > len(p.Args) && slices.Equal(argv[1:len(p.Args)+1], p.Args)
}
