package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// kaExample returns the path of one of the keepalived.conf examples:
// node/keepalived's copies of ../shared/keepalived-examples, so that the
// tests run anywhere.
func kaExample(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join("..", "..", "node", "keepalived", "testdata", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("keepalived example %s: %v", name, err)
	}
	return p
}

// haad --check --keepalived-config: the file converts, validates and its
// programs exist, or every problem is listed; no root needed.
func TestKeepalivedCheck(t *testing.T) {
	run1 := func(args ...string) (int, string) {
		var stderr bytes.Buffer
		code := run(args, &stderr)
		return code, stderr.String()
	}

	a := kaExample(t, "03-dual-master-node-a.conf")
	code, stderr := run1("--check", "--keepalived-config", a)
	if want := regexp.MustCompile(`(?m)^haad: ` + regexp.QuoteMeta(a) + ` is valid \(2 instances, 0 virtual servers, \d+ warnings\)\n\z`); code != exitOK || !want.MatchString(stderr) {
		t.Errorf("03: exit %d, stderr:\n%s", code, stderr)
	}

	// Warnings: file, line, keyword, what to do.
	full := kaExample(t, "01-full-sample.conf")
	code, stderr = run1("--check", "--keepalived-config", full)
	if code != exitOK || !strings.Contains(stderr, "haad: warning: "+full+":14: vrrp_strict: ") ||
		!strings.Contains(stderr, "haad: warning: "+full+":4: notification_email: ") ||
		!strings.Contains(stderr, "haad: "+full+" is valid (1 instances, 0 virtual servers, ") {
		t.Errorf("01: exit %d, stderr:\n%s", code, stderr)
	}
	for _, l := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
		if !strings.HasPrefix(l, "haad: warning: "+full+":") && !strings.HasPrefix(l, "haad: "+full+" is valid") &&
			!strings.HasPrefix(l, "haad: warning: interface ") { // this host may have no eth0
			t.Errorf("01: unexpected line %q", l)
		}
	}

	// A misspelled keyword: the file, the line and the keyword, exit 2, with
	// --check and without (refused before anything touches the network).
	typo := kaExample(t, "07-typo-must-error.conf")
	for _, args := range [][]string{{"--check", "--keepalived-config", typo}, {"--keepalived-config", typo}} {
		code, stderr = run1(args...)
		prefix := "haad: invalid keepalived configuration " + typo + " (1 problem):\n" + typo + ":7: vrp_script: "
		if code != exitConfig || !strings.HasPrefix(stderr, prefix) || strings.Count(stderr, "\n") != 2 {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant exit 2 and:\n%s...", args, code, stderr, prefix)
		}
	}

	// Errors and warnings together: both shown.
	both := filepath.Join(t.TempDir(), "both.conf")
	if err := os.WriteFile(both, []byte("global_defs {\n notification_email_from a@b\n}\nvrrp_instance VI_1 {\n interface lo\n virtual_router_id 7\n priorty 100\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stderr = run1("--check", "--keepalived-config", both)
	if code != exitConfig || !strings.Contains(stderr, "haad: warning: "+both+":2: notification_email_from: ") || !strings.Contains(stderr, both+":7: priorty: ") {
		t.Errorf("errors and warnings: exit %d, stderr:\n%s", code, stderr)
	}

	// The programs it runs must exist here, as with --config.
	nginx := kaExample(t, "02-master-with-nginx-check.conf")
	code, stderr = run1("--check", "--keepalived-config", nginx)
	if code != exitConfig || !strings.Contains(stderr, nginx+" (converted from keepalived") ||
		!strings.Contains(stderr, "/etc/keepalived/check_nginx_alive_or_not.sh") {
		t.Errorf("02: exit %d, stderr:\n%s", code, stderr)
	}

	// Values haa refuses, after the conversion.
	bad := filepath.Join(t.TempDir(), "bad.conf")
	if err := os.WriteFile(bad, []byte("vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 300\n    virtual_ipaddress {\n        10.0.0.1\n    }\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, stderr = run1("--check", "--keepalived-config", bad); code != exitConfig || !strings.Contains(stderr, "300") {
		t.Errorf("vrid 300: exit %d, stderr:\n%s", code, stderr)
	}

	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--config", "/etc/haa/haad.yaml", "--keepalived-config", a}, "haad: --config and --keepalived-config: give one of them\n"},
		{[]string{"--keepalived-config", filepath.Join(t.TempDir(), "missing.conf")}, "haad: read keepalived configuration: "},
		{[]string{"--check", a}, fmt.Sprintf("haad: unexpected argument %q: give the file with --config or --keepalived-config\n", a)},
	} {
		if code, stderr = run1(tc.args...); code != exitConfig || !strings.HasPrefix(stderr, tc.err) {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant exit 2 and:\n%s", tc.args, code, stderr, tc.err)
		}
	}
}

// newDualMasterLab is a lab on the subnet of the keepalived examples'
// VIPs (192.168.55.140 and .141), two nodes.
func newDualMasterLab(t *testing.T) *cluster {
	t.Helper()
	l := lab.NewT(t, lab.Options{Prefix: lab.UniqueName("hk"), Nodes: 2, Subnet: fleetSubnet})
	c := &cluster{t: t, lab: l, dir: t.TempDir(), bin: haad(t), procs: map[*lab.Node]*lab.Proc{}}
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
	})
	return c
}

// dualMaster checks the active/active pair of the examples 03 and 04 on
// n1 and n2, started by start: each node holds its VIP; n1 stopped, n2
// holds both; n1 back, it takes its VIP back (preemption).
func (c *cluster) dualMaster(start func(n *lab.Node)) {
	t := c.t
	t.Helper()
	n1, n2 := c.lab.Nodes[0], c.lab.Nodes[1]
	start(n1)
	start(n2)
	// state MASTER waits one master-down interval (3.6 s with 1 s v2
	// adverts), as keepalived does.
	c.waitHolder(vip140, n1, 10*time.Second)
	c.waitHolder(vip141, n2, 10*time.Second)
	c.stableHolder(vip140, n1, time.Second)
	c.stableHolder(vip141, n2, 500*time.Millisecond)
	if st := c.status(n1)["VI_2"]; st.State != "BACKUP" || st.Master != n2.Addr.String() || st.Priority != 80 {
		t.Fatalf("n1 VI_2 %+v, want BACKUP of n2 at priority 80", st)
	}
	if st := c.status(n2)["VI_1"]; st.State != "BACKUP" || st.Master != n1.Addr.String() || st.Priority != 80 {
		t.Fatalf("n2 VI_1 %+v, want BACKUP of n1 at priority 80", st)
	}
	for _, n := range []*lab.Node{n1, n2} {
		for name, st := range c.status(n) {
			if len(st.Drops) != 0 {
				t.Fatalf("%s %s drops adverts: %v", n.Name, name, st.Drops)
			}
		}
	}

	// n1 stops: it hands VI_1 over, n2 holds both VIPs.
	if err := c.procs[n1].Stop(5 * time.Second); err != nil {
		t.Fatalf("haad on n1 did not exit cleanly on SIGTERM: %v", err)
	}
	c.waitHolder(vip140, n2, 5*time.Second)
	c.stableHolder(vip141, n2, 300*time.Millisecond)

	// n1 comes back and preempts VI_1 (priority 100 over 80); VI_2 stays.
	start(n1)
	c.waitHolder(vip140, n1, 10*time.Second)
	c.stableHolder(vip141, n2, 500*time.Millisecond)
	c.stableHolder(vip140, n1, 500*time.Millisecond)
}

// The round trip: haactl import converts the dual-master pair's files
// (ens33 renamed eth0), and haad runs the YAML.
func TestKeepalivedImportedDualMaster(t *testing.T) {
	t.Parallel()
	c := newDualMasterLab(t)
	ctlBin := haactl(t)
	files := map[string]string{"n1": kaExample(t, "03-dual-master-node-a.conf"), "n2": kaExample(t, "04-dual-master-node-b.conf")}
	yamls := map[string]string{}
	for node, file := range files {
		cmd := exec.Command(ctlBin, "import", file, "--node", node, "--interface", "ens33=eth0")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("haactl import %s: %v\n%s", file, err, &stderr)
		}
		if !strings.HasPrefix(string(out), "# converted from "+file+" by haactl import\n") || strings.Contains(string(out), "ens33") {
			t.Fatalf("haactl import %s:\n%s", file, out)
		}
		yamls[node] = string(out)
	}
	c.dualMaster(func(n *lab.Node) {
		t.Helper()
		p, err := n.StartHaad(c.dir, c.bin, yamls[n.Name], "--log-level", "debug", "--status-file", c.statusPath(n))
		if err != nil {
			t.Fatal(err)
		}
		c.procs[n] = p
	})
}

// haad --keepalived-config runs the pair's files themselves (ens33 renamed
// eth0 in a copy). A configuration applied through the API runs until the
// next SIGHUP, which reads the keepalived file again; its warnings are
// logged; a file with an error is refused and the running configuration
// stays.
func TestKeepalivedConfigDualMaster(t *testing.T) {
	t.Parallel()
	c := newDualMasterLab(t)
	confs := map[string]string{}
	for node, name := range map[string]string{"n1": "03-dual-master-node-a.conf", "n2": "04-dual-master-node-b.conf"} {
		b, err := os.ReadFile(kaExample(t, name))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, bytes.ReplaceAll(b, []byte("ens33"), []byte("eth0")), 0o644); err != nil {
			t.Fatal(err)
		}
		confs[node] = p
	}
	start := func(n *lab.Node) {
		t.Helper()
		f := n.HaadFiles(c.dir)
		p, err := n.Start(f.Log, c.bin, "--keepalived-config", confs[n.Name], "--state-file", f.State, "--fleet-file", f.Fleet,
			"--socket", f.Socket, "--log-level", "debug", "--status-file", c.statusPath(n))
		if err != nil {
			t.Fatal(err)
		}
		c.procs[n] = p
	}
	c.dualMaster(start)

	n2 := c.lab.Nodes[1]
	log := func() string {
		b, err := os.ReadFile(n2.HaadFiles(c.dir).Log)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if l := log(); !strings.Contains(l, "running a keepalived configuration") || !strings.Contains(l, "node=keep_134") {
		t.Fatalf("n2's log does not say it runs a keepalived file:\n%s", tail(l, 20))
	}
	prio := func(want uint8, what string) {
		t.Helper()
		err := lab.Poll(5*time.Second, 50*time.Millisecond, what, func() (bool, error) {
			return c.status(n2)["VI_1"].EffPriority == want, nil
		})
		if err != nil {
			t.Fatalf("%v: %+v", err, c.status(n2)["VI_1"])
		}
	}

	// ApplyConfig: runs, but the keepalived file is not rewritten.
	orig, err := os.ReadFile(confs["n2"])
	if err != nil {
		t.Fatal(err)
	}
	api := c.api(n2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := api.GetConfig(ctx, &haav1.GetConfigRequest{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := got.GetConfig()
	if cfg.GetName() != "keep_134" || len(cfg.GetInstances()) != 2 || cfg.GetInstances()[0].GetVersion() != 2 {
		t.Fatalf("running configuration: %v", cfg)
	}
	p90 := uint32(90)
	cfg.GetInstances()[0].Priority = &p90
	if _, err := api.ApplyConfig(ctx, &haav1.ApplyConfigRequest{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	prio(90, "priority 90 from the API")
	if now, err := os.ReadFile(confs["n2"]); err != nil || !bytes.Equal(now, orig) {
		t.Fatalf("the keepalived file changed: %v\n%s", err, now)
	}
	if _, err := os.Stat(n2.HaadFiles(c.dir).Config); !os.IsNotExist(err) {
		t.Fatalf("a haa configuration file was written: %v", err)
	}

	// SIGHUP: the file again (priority 80), with a warning logged for an
	// added line haa does not support.
	withWarning := strings.Replace(string(orig), "   router_id keep_134\n", "   router_id keep_134\n   notification_email_from haa@example.com\n", 1)
	if err := os.WriteFile(confs["n2"], []byte(withWarning), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.procs[n2].Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	prio(80, "priority 80 from the file after SIGHUP")
	err = lab.Poll(3*time.Second, 20*time.Millisecond, "the warning in the log", func() (bool, error) {
		l := log()
		return strings.Contains(l, `msg="keepalived.conf warning"`) && strings.Contains(l, "line=6 keyword=notification_email_from"), nil
	})
	if err != nil {
		t.Fatalf("%v:\n%s", err, tail(log(), 20))
	}

	// A misspelled keyword: refused with file:line, the configuration stays.
	typo := withWarning + "\nvrrp_instance VI_3 {\n    interfac eth0\n}\n"
	if err := os.WriteFile(confs["n2"], []byte(typo), 0o644); err != nil {
		t.Fatal(err)
	}
	line := strings.Count(withWarning, "\n") + 3
	if err := c.procs[n2].Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s:%d: interfac", confs["n2"], line)
	err = lab.Poll(3*time.Second, 20*time.Millisecond, "the refusal in the log", func() (bool, error) {
		l := log()
		return strings.Contains(l, "reload refused") && strings.Contains(l, want), nil
	})
	if err != nil {
		t.Fatalf("%v (%s):\n%s", err, want, tail(log(), 20))
	}
	if st := c.status(n2); len(st) != 2 || st["VI_2"].State != "MASTER" {
		t.Fatalf("after the refused reload: %+v", st)
	}
	c.stableHolder(vip141, n2, 300*time.Millisecond)
}
