package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// haactl log-level against a real haad: it reads and changes the level of
// the running agent, and the log follows at once.
func TestLogLevelAtRuntime(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1)
	n := c.lab.Nodes[0]
	p, err := n.StartHaad(c.dir, c.bin, c.config(n, instance{name: "VI_1", vrid: 51, prio: 200}),
		"--log-level", "info", "--status-file", c.statusPath(n))
	if err != nil {
		t.Fatal(err)
	}
	c.procs[n] = p
	c.api(n) // the socket exists
	bin := haactl(t)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"--target", "unix://" + n.HaadFiles(c.dir).Socket}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("haactl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	logText := func() string {
		b, err := os.ReadFile(n.HaadFiles(c.dir).Log)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	if out := run("log-level"); out != "info\n" {
		t.Fatalf("haactl log-level: %q, want info", out)
	}
	c.statusDoc(n) // SIGUSR1: "status written" at info
	if got := strings.Count(logText(), "status written"); got != 1 {
		t.Fatalf("%d 'status written' lines at info, want 1", got)
	}

	if out := run("log-level", "error"); out != "Log level error (was info), until haad restarts.\n" {
		t.Fatalf("haactl log-level error: %q", out)
	}
	if !strings.Contains(logText(), `msg="log level changed" level=error previous=info`) {
		t.Errorf("the change is not in the log:\n%s", tail(logText(), 5))
	}
	c.statusDoc(n) // at error: the status is written, the info line is not
	if got := strings.Count(logText(), "status written"); got != 1 {
		t.Fatalf("%d 'status written' lines after the level went to error, want still 1", got)
	}
	if out := run("log-level", "-o", "json"); out != "{\n  \"level\": \"error\"\n}\n" {
		t.Errorf("haactl log-level -o json: %q", out)
	}

	if out := run("log-level", "info"); out != "Log level info (was error), until haad restarts.\n" {
		t.Fatalf("haactl log-level info: %q", out)
	}
	c.statusDoc(n)
	if got := strings.Count(logText(), "status written"); got != 2 {
		t.Fatalf("%d 'status written' lines back at info, want 2", got)
	}
	if out, err := exec.Command(bin, "--target", "unix://"+n.HaadFiles(c.dir).Socket, "log-level", "loud").CombinedOutput(); err == nil ||
		!strings.Contains(string(out), `log level "loud": want debug, info, warn, error`) {
		t.Errorf("haactl log-level loud: %v\n%s", err, out)
	}
}
