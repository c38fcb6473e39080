package notify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/haa-dev/haa/node/script"
)

// dir returns a fresh directory that script.Resolve accepts programs in.
func dir(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := script.Secure(d, os.Geteuid()); err != nil {
		t.Skipf("temporary directory not secure here: %v", err)
	}
	return d
}

// program writes a shell script and resolves it.
func program(t *testing.T, d, name, body string) *script.Command {
	t.Helper()
	p := filepath.Join(d, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	c, err := script.Resolve([]string{p}, "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// reports collects what a queue reports.
type reports struct {
	mu   sync.Mutex
	jobs []Job
	res  []script.Result
	more chan struct{} // a report arrived
}

func newReports() *reports { return &reports{more: make(chan struct{}, 1)} }

func (r *reports) report(j Job, res script.Result) {
	r.mu.Lock()
	r.jobs = append(r.jobs, j)
	r.res = append(r.res, res)
	r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default:
	}
}

func (r *reports) snapshot() ([]Job, []script.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.jobs), slices.Clone(r.res)
}

// wait waits for n reports.
func (r *reports) wait(t *testing.T, n int) ([]Job, []script.Result) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		if jobs, res := r.snapshot(); len(jobs) >= n {
			return jobs, res
		}
		select {
		case <-r.more:
		case <-deadline:
			jobs, _ := r.snapshot()
			t.Fatalf("%d reports, want %d", len(jobs), n)
		}
	}
}

// closeQueue closes q at the end of the test, killing what still runs.
func closeQueue(t *testing.T, q *Queue) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = q.Close(ctx)
	})
}

// job is a job running cmd with one argument.
func job(cmd *script.Command, arg string) Job {
	return Job{Type: "INSTANCE", Name: "VI_1", State: "MASTER", Priority: 100, Cmd: cmd, Args: []string{arg}, Timeout: 30 * time.Second}
}

func waitFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 && b[len(b)-1] == '\n' {
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never written", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

func TestJobs(t *testing.T) {
	master := &script.Command{Argv: []string{"/m"}}
	backup := &script.Command{Argv: []string{"/b"}}
	fault := &script.Command{Argv: []string{"/f"}}
	stop := &script.Command{Argv: []string{"/s"}}
	anyCmd := &script.Command{Argv: []string{"/any"}}
	full := &Spec{Master: master, Backup: backup, Fault: fault, Stop: stop, Any: anyCmd, Timeout: 5 * time.Second}
	anyOnly := &Spec{Any: anyCmd}
	for _, tc := range []struct {
		spec  *Spec
		typ   string
		state string
		prio  int
		want  []string // command and args of each job
	}{
		{nil, "INSTANCE", "MASTER", 100, nil},
		{&Spec{}, "INSTANCE", "MASTER", 100, nil},
		{full, "INSTANCE", "MASTER", 100, []string{"/m", "/any INSTANCE VI_1 MASTER 100"}},
		{full, "INSTANCE", "BACKUP", 90, []string{"/b", "/any INSTANCE VI_1 BACKUP 90"}},
		{full, "GROUP", "FAULT", 0, []string{"/f", "/any GROUP VI_1 FAULT 0"}},
		{full, "INSTANCE", "STOP", 100, []string{"/s", "/any INSTANCE VI_1 STOP 100"}},
		{anyOnly, "INSTANCE", "MASTER", 7, []string{"/any INSTANCE VI_1 MASTER 7"}},
		{&Spec{Fault: fault}, "INSTANCE", "MASTER", 7, nil},
		{&Spec{Fault: fault}, "INSTANCE", "FAULT", 7, []string{"/f"}},
	} {
		jobs := tc.spec.Jobs(tc.typ, "VI_1", tc.state, tc.prio)
		var got []string
		for _, j := range jobs {
			got = append(got, strings.Join(append(slices.Clone(j.Cmd.Argv), j.Args...), " "))
			if j.Type != tc.typ || j.Name != "VI_1" || j.State != tc.state || j.Priority != tc.prio {
				t.Errorf("%s %s: job %+v", tc.typ, tc.state, j)
			}
			want := DefaultTimeout
			if tc.spec == full {
				want = 5 * time.Second
			}
			if j.Timeout != want {
				t.Errorf("%s %s: timeout %v, want %v", tc.typ, tc.state, j.Timeout, want)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s %s: jobs %q, want %q", tc.typ, tc.state, got, tc.want)
		}
	}
}

func TestEnvAndArgs(t *testing.T) {
	d := dir(t)
	cmd := program(t, d, "any.sh", `echo "$HAA_TYPE $HAA_NAME $HAA_STATE $HAA_PRIORITY|$*"; exit 2`)
	r := newReports()
	q := NewQueue(r.report)
	closeQueue(t, q)
	q.Push((&Spec{Any: cmd}).Jobs("GROUP", "VG_1", "BACKUP", 0)...)
	jobs, res := r.wait(t, 1)
	if want := "GROUP VG_1 BACKUP 0|GROUP VG_1 BACKUP 0"; res[0].Output != want || res[0].Exit != 2 || res[0].Err != nil {
		t.Errorf("output %q exit %d err %v, want %q exit 2", res[0].Output, res[0].Exit, res[0].Err, want)
	}
	if jobs[0].Name != "VG_1" {
		t.Errorf("reported job %+v", jobs[0])
	}
}

// TestOrder pushes 1000 jobs from several goroutines and checks that they
// run, and are reported, in the order pushed.
func TestOrder(t *testing.T) {
	d := dir(t)
	out := filepath.Join(d, "out")
	cmd := program(t, d, "append.sh", fmt.Sprintf(`echo "$1" >> %s`, out))
	r := newReports()
	q := NewQueue(r.report)
	closeQueue(t, q)

	const goroutines, each = 8, 125
	var (
		mu    sync.Mutex // makes the recorded order the order of Push
		order []string
		wg    sync.WaitGroup
	)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				n := strconv.Itoa(g*each + i)
				mu.Lock()
				order = append(order, n)
				q.Push(job(cmd, n))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := q.Close(ctx); err != nil {
		t.Fatal(err)
	}
	jobs, res := r.snapshot()
	if len(jobs) != goroutines*each {
		t.Fatalf("%d reports, want %d", len(jobs), goroutines*each)
	}
	for i, j := range jobs {
		if j.Args[0] != order[i] || res[i].Exit != 0 || res[i].Err != nil {
			t.Fatalf("report %d: job %s exit %d err %v, want job %s exit 0", i, j.Args[0], res[i].Exit, res[i].Err, order[i])
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(b)); !slices.Equal(got, order) {
		t.Errorf("ran in another order than pushed (%d lines)", len(got))
	}
}

// TestOverflow checks that beyond the limit the oldest waiting jobs are
// dropped, reported as such in their place, and the others still run.
func TestOverflow(t *testing.T) {
	d := dir(t)
	release := filepath.Join(d, "release")
	started := filepath.Join(d, "started")
	slow := program(t, d, "slow.sh", fmt.Sprintf(`echo $$ > %s; while [ ! -e %s ]; do sleep 0.02; done`, started, release))
	fast := program(t, d, "fast.sh", `echo "$1"`)
	r := newReports()
	q := newQueue(r.report, runCommand, 3)
	closeQueue(t, q)

	q.Push(job(slow, "slow"))
	waitFile(t, started)
	for i := range 5 {
		q.Push(job(fast, strconv.Itoa(i)))
	}
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	jobs, res := r.wait(t, 6)
	var got []string
	for i, j := range jobs {
		switch {
		case errors.Is(res[i].Err, ErrDropped):
			if res[i].Exit != -1 {
				t.Errorf("dropped job %s: exit %d", j.Args[0], res[i].Exit)
			}
			got = append(got, j.Args[0]+" dropped")
		case res[i].Err == nil && res[i].Exit == 0:
			got = append(got, j.Args[0]+" ran")
		default:
			got = append(got, fmt.Sprintf("%s exit %d err %v", j.Args[0], res[i].Exit, res[i].Err))
		}
	}
	want := []string{"slow ran", "0 dropped", "1 dropped", "2 ran", "3 ran", "4 ran"}
	if !slices.Equal(got, want) {
		t.Errorf("reports %q, want %q", got, want)
	}
}

// TestPushNeverBlocks pushes more than MaxPending jobs while a slow job
// runs, then closes the queue with an expired context: the slow job is
// killed and every job is reported, in order.
func TestPushNeverBlocks(t *testing.T) {
	d := dir(t)
	started := filepath.Join(d, "started")
	slow := program(t, d, "slow.sh", fmt.Sprintf(`echo $$ > %s; exec sleep 60`, started))
	fast := program(t, d, "fast.sh", `exit 0`)
	r := newReports()
	q := NewQueue(r.report)
	closeQueue(t, q)

	q.Push(job(slow, "slow"))
	pid, err := strconv.Atoi(waitFile(t, started))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})

	const n = MaxPending + 500
	start := time.Now()
	for i := range n {
		q.Push(job(fast, strconv.Itoa(i)))
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("%d pushes took %v", n, took)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	start = time.Now()
	if err := q.Close(ctx); err == nil || !errors.Is(err, context.Canceled) {
		t.Errorf("Close with an expired context: %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("Close took %v", took)
	}
	if alive(pid) {
		t.Errorf("slow job (pid %d) still runs after Close", pid)
	}
	jobs, res := r.snapshot()
	if len(jobs) != n+1 {
		t.Fatalf("%d reports, want %d", len(jobs), n+1)
	}
	if jobs[0].Args[0] != "slow" || res[0].Exit != -1 || res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "closed before the command finished") {
		t.Errorf("slow job: exit %d err %v, want -1 and killed", res[0].Exit, res[0].Err)
	}
	for i := 1; i <= n; i++ {
		wantErr := ErrClosed
		if i <= n-MaxPending {
			wantErr = ErrDropped
		}
		if jobs[i].Args[0] != strconv.Itoa(i-1) || res[i].Exit != -1 || !errors.Is(res[i].Err, wantErr) {
			t.Fatalf("report %d: job %s exit %d err %v, want job %d exit -1 err %v", i, jobs[i].Args[0], res[i].Exit, res[i].Err, i-1, wantErr)
		}
	}
}

// TestCloseDrains checks that Close lets the queued jobs run, and that jobs
// pushed afterwards are reported as not run.
func TestCloseDrains(t *testing.T) {
	d := dir(t)
	cmd := program(t, d, "nap.sh", `sleep 0.05; echo "$1"`)
	r := newReports()
	q := NewQueue(r.report)
	for i := range 5 {
		q.Push(job(cmd, strconv.Itoa(i)))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := q.Close(ctx); err != nil {
		t.Fatal(err)
	}
	jobs, res := r.snapshot()
	if len(jobs) != 5 {
		t.Fatalf("%d reports after Close, want 5", len(jobs))
	}
	for i := range jobs {
		if res[i].Output != strconv.Itoa(i) || res[i].Exit != 0 || res[i].Err != nil {
			t.Errorf("job %d: output %q exit %d err %v", i, res[i].Output, res[i].Exit, res[i].Err)
		}
	}
	if err := q.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}

	q.Push(job(cmd, "late"))
	jobs, res = r.wait(t, 6)
	if jobs[5].Args[0] != "late" || res[5].Exit != -1 || !errors.Is(res[5].Err, ErrClosed) {
		t.Errorf("late job: %s exit %d err %v, want ErrClosed", jobs[5].Args[0], res[5].Exit, res[5].Err)
	}
}

func TestTimeout(t *testing.T) {
	d := dir(t)
	// The command forks a grandchild (a background sleep) and hangs: at
	// the timeout the whole process group is killed, grandchild included.
	pidFile := filepath.Join(d, "grandchild.pid")
	cmd := program(t, d, "hang.sh", `sleep 60 & echo $! > `+pidFile+`; exec sleep 60`)
	r := newReports()
	q := NewQueue(r.report)
	closeQueue(t, q)
	j := job(cmd, "x")
	j.Timeout = 2 * time.Second // time for the shell to fork under load
	q.Push(j, Job{Type: "INSTANCE", Name: "VI_1", State: "MASTER"})
	_, res := r.wait(t, 2)
	if !errors.Is(res[0].Err, script.ErrTimeout) || res[0].Exit != -1 {
		t.Errorf("exit %d err %v, want -1 and a timeout", res[0].Exit, res[0].Err)
	}
	if res[1].Exit != -1 || res[1].Err == nil {
		t.Errorf("job without a command: exit %d err %v", res[1].Exit, res[1].Err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err != nil || strings.Contains(string(st), ") Z ") {
			break // gone or a zombie of init
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the command's grandchild (pid %d) outlived its timeout", pid)
		}
	}
}
