package checkers

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// fakeProc is a directory shaped like /proc.
type fakeProc string

// add writes a process's comm (a newline is added) and cmdline (arguments
// joined and ended by NULs; none: an empty cmdline, as a kernel thread's).
func (p fakeProc) add(t *testing.T, pid, comm string, argv ...string) {
	t.Helper()
	dir := filepath.Join(string(p), pid)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmdline := ""
	if len(argv) > 0 {
		cmdline = strings.Join(argv, "\x00") + "\x00"
	}
	for name, content := range map[string]string{"comm": comm + "\n", "cmdline": cmdline} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (p fakeProc) remove(t *testing.T, pid string) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(string(p), pid)); err != nil {
		t.Fatal(err)
	}
}

func newFakeProc(t *testing.T) fakeProc {
	p := fakeProc(t.TempDir())
	p.add(t, "1", "systemd", "/sbin/init", "splash")
	p.add(t, "2", "kthreadd")
	p.add(t, "100", "nginx", "nginx: master process /usr/sbin/nginx") // rewritten cmdline
	p.add(t, "101", "nginx", "/usr/sbin/nginx", "-g", "daemon off;")
	p.add(t, "200", "python3", "/usr/bin/python3", "/opt/app.py", "--port", "80")
	p.add(t, "201", "python3", "/usr/bin/python3", "/opt/other.py")
	p.add(t, "300", "a-very-long-pr", "/opt/bin/a-very-long-program-name", "x")
	p.add(t, "400", "sh", "/bin/sh", "-c", "exec app")
	// Not processes, or vanished while read.
	if err := os.Mkdir(filepath.Join(string(p), "500"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(string(p), "cpuinfo"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("1", filepath.Join(string(p), "self")); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProcessCheck(t *testing.T) {
	proc := string(newFakeProc(t))
	tests := []struct {
		name string
		p    Process
		want brief
	}{
		{"comm", Process{Name: "nginx"}, brief{true, 0, "2 processes (need 1..)"}},
		{"comm, kernel thread", Process{Name: "kthreadd"}, brief{true, 0, "1 process (need 1..)"}},
		{"argv[0] base name", Process{Name: "init"}, brief{true, 0, "1 process (need 1..)"}},
		{"argv[0] beyond comm's 15 characters", Process{Name: "a-very-long-program-name"}, brief{true, 0, "1 process (need 1..)"}},
		{"none", Process{Name: "haproxy"}, brief{false, 0, "0 processes (need 1..)"}},
		{"args prefix", Process{Name: "python3", Args: []string{"/opt/app.py"}}, brief{true, 0, "1 process (need 1..)"}},
		{"args prefix of two", Process{Name: "python3", Args: []string{"/opt/app.py", "--port"}}, brief{true, 0, "1 process (need 1..)"}},
		{"all args", Process{Name: "python3", Args: []string{"/opt/app.py", "--port", "80"}}, brief{true, 0, "1 process (need 1..)"}},
		{"args too long", Process{Name: "python3", Args: []string{"/opt/app.py", "--port", "80", "x"}}, brief{false, 0, "0 processes (need 1..)"}},
		{"args differ", Process{Name: "python3", Args: []string{"--port"}}, brief{false, 0, "0 processes (need 1..)"}},
		{"args with a NUL-split argument", Process{Name: "sh", Args: []string{"-c", "exec app"}}, brief{true, 0, "1 process (need 1..)"}},
		{"args and comm", Process{Name: "nginx", Args: []string{"-g"}}, brief{true, 0, "1 process (need 1..)"}},
		{"args need a cmdline", Process{Name: "kthreadd", Args: []string{"x"}}, brief{false, 0, "0 processes (need 1..)"}},
		{"quorum met", Process{Name: "nginx", Quorum: 2}, brief{true, 0, "2 processes (need 2..)"}},
		{"quorum missed", Process{Name: "nginx", Quorum: 3}, brief{false, 0, "2 processes (need 3..)"}},
		{"quorum_max met", Process{Name: "nginx", Quorum: 1, QuorumMax: 2}, brief{true, 0, "2 processes (need 1..2)"}},
		{"quorum_max exceeded", Process{Name: "nginx", Quorum: 1, QuorumMax: 1}, brief{false, 0, "2 processes (need 1..1)"}},
		{"missing proc", Process{Name: "nginx", Proc: filepath.Join(proc, "nope")}, brief{}},
	}
	for _, tt := range tests {
		if tt.p.Proc == "" {
			tt.p.Proc = proc
		}
		got := tt.p.check()
		if tt.name == "missing proc" {
			if got.OK || !strings.HasPrefix(got.Detail, "cannot count processes: ") {
				t.Errorf("%s: %+v, want failed, cannot count", tt.name, got)
			}
			continue
		}
		if b := (brief{got.OK, got.Value, got.Detail}); b != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, b, tt.want)
		}
	}
}

func TestProcessRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		proc := newFakeProc(t)
		rep, stop := start(t, &Process{Name: "nginx", Quorum: 2, Interval: time.Second, Proc: string(proc)}, false)
		synctest.Wait()
		time.Sleep(1500 * time.Millisecond)
		proc.remove(t, "101") // seen at 2s
		time.Sleep(2 * time.Second)
		proc.add(t, "102", "nginx", "/usr/sbin/nginx") // seen at 4s
		proc.add(t, "103", "nginx", "/usr/sbin/nginx")
		time.Sleep(2 * time.Second)
		stop()

		got := rep.all()
		want := []brief{
			{true, 0, "2 processes (need 2..)"},
			{false, 0, "1 process (need 2..)"},
			{true, 0, "3 processes (need 2..)"},
		}
		if !slices.Equal(briefs(got), want) {
			t.Fatalf("reports:\n got %v\nwant %v", briefs(got), want)
		}
		for i, since := range []time.Duration{0, 2 * time.Second, 4 * time.Second} {
			if got[i].Since.Sub(t0) != since {
				t.Errorf("report %d: Since %v, want %v", i, got[i].Since.Sub(t0), since)
			}
		}
	})
}

func TestProcessReal(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &Process{Name: filepath.Base(exe)}
	r := p.check()
	if !r.OK || strings.HasPrefix(r.Detail, "0 ") {
		t.Errorf("the test process %q was not found: %+v", p.Name, r)
	}
}
