package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
)

func haactl(t *testing.T) string { return binary(t, "haactl") }

// The operator's path: haactl against real haad processes. Apply a
// configuration, watch a power-off, fail over, go into maintenance.
func TestHaactlEndToEnd(t *testing.T) {
	t.Parallel()
	c, n1, n2 := newPair(t)
	bin := haactl(t)
	target := func(n *lab.Node) string { return "unix://" + n.HaadFiles(c.dir).Socket }
	c.api(n1) // the sockets exist
	c.api(n2)
	run := func(n *lab.Node, args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"--target", target(n)}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("haactl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}

	// apply -f: add VI_2 on n1; the plan says VI_1 is unchanged.
	file := filepath.Join(c.dir, "new.yaml")
	cfg := c.config(n1, instance{name: "VI_1", vrid: 51, prio: 200},
		instance{name: "VI_2", vrid: 52, prio: 200, vips: []string{"10.77.0.101/24"}})
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := run(n1, "diff", "-f", file); !strings.Contains(out, "VI_2") {
		t.Fatalf("diff:\n%s", out)
	}
	out := run(n1, "apply", "-f", file)
	if !strings.Contains(out, "VI_2") || !strings.Contains(out, "VI_1") {
		t.Fatalf("apply:\n%s", out)
	}
	var list struct {
		Instances []struct{ Name, State string }
	}
	if err := json.Unmarshal([]byte(run(n1, "get", "instances", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Instances) != 2 {
		t.Fatalf("get instances: %+v", list)
	}
	// An invalid file: non-zero exit, every problem named.
	bad := filepath.Join(c.dir, "bad.yaml")
	os.WriteFile(bad, []byte("name: n1\ninstances: [{name: VI_1, interface: eth0, vrid: 300, vips: [10.77.0.100/24]}]\n"), 0o644)
	if out, err := exec.Command(bin, "--target", target(n1), "apply", "-f", bad).CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "instances[0].vrid: 300 is out of range 1..255") {
		t.Fatalf("invalid apply: %v\n%s", err, out)
	}

	// watch n2 while n1 is powered off.
	w := exec.Command(bin, "--target", target(n2), "watch", "-o", "json")
	stdout, _ := w.StdoutPipe()
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Process.Kill()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	time.Sleep(300 * time.Millisecond) // subscribed
	if _, err := c.lab.MeasureFailover(c.lab.Clients[0], vip, n1, c.procs[n1], 5*time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for seen := false; !seen; {
		select {
		case l := <-lines:
			seen = strings.Contains(l, `"to":"STATE_MASTER"`) || strings.Contains(l, `"to": "STATE_MASTER"`)
		case <-deadline:
			t.Fatal("haactl watch did not show n2 becoming master")
		}
	}

	// failover back and forth, then maintenance.
	if err := n1.PowerOn(); err != nil {
		t.Fatal(err)
	}
	c.start(n1, instance{name: "VI_1", vrid: 51, prio: 50})
	c.waitHolder(vip, n2, 5*time.Second)
	// The restarted n1 must be a backup hearing n2 before n2 hands over
	// (the killed haad's socket file is still there: do not trust it).
	err := lab.Poll(5*time.Second, 20*time.Millisecond, "n1 backup of n2", func() (bool, error) {
		st := c.status(n1)["VI_1"]
		return st.State == "BACKUP" && st.Master == n2.Addr.String(), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if out := run(n2, "failover", "VI_1"); !strings.Contains(out, n1.Addr.String()) {
		t.Fatalf("failover:\n%s", out)
	}
	c.waitHolder(vip, n1, 3*time.Second)
	run(n1, "maintenance", "on", "--ttl", "1s")
	c.waitHolder(vip, n2, 3*time.Second)
	if out := run(n1, "describe", "instance", "VI_1"); !strings.Contains(out, "maintenance") {
		t.Fatalf("describe during maintenance:\n%s", out)
	}
}
