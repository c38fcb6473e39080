package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An invalid file is refused at start with every problem and exit code 2,
// before anything touches the network (no root needed).
func TestInvalidConfigExitsWithEveryProblem(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	bad := `
name: n1
instances:
  - name: VI_1
    interface: eth0
    vrid: 300
    priority: 0
    advertInterval: 0.5s
    version: 2
    vips: ["10.77.0.100/24"]
    colour: red
`
	if err := os.WriteFile(p, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if code := run([]string{"--config", p}, &stderr); code != exitConfig {
		t.Fatalf("exit code %d, want %d; stderr:\n%s", code, exitConfig, &stderr)
	}
	// Unknown fields are reported first (the file cannot be decoded), then
	// fixing them shows the semantic problems.
	if !strings.Contains(stderr.String(), `instances[0].colour: unknown field "colour"`) {
		t.Fatalf("stderr does not name the unknown field:\n%s", &stderr)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(bad, "    colour: red\n", "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if code := run([]string{"--config", p}, &stderr); code != exitConfig {
		t.Fatalf("exit code %d, want %d", code, exitConfig)
	}
	for _, want := range []string{
		p, "3 problems",
		"instances[0].vrid: 300 is out of range 1..255",
		"instances[0].priority: 0 is out of range 1..255",
		"instances[0].advertInterval: 500ms: VRRPv2 needs whole seconds",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, &stderr)
		}
	}
}

func TestCheckFlag(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ok.yaml")
	if err := os.WriteFile(p, []byte("name: n1\ninstances: [{name: VI_1, interface: eth0, vrid: 1, vips: [10.0.0.1]}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if code := run([]string{"--config", p, "--check"}, &stderr); code != exitOK {
		t.Fatalf("--check on a valid file: exit %d: %s", code, &stderr)
	}
	if code := run([]string{"--config", filepath.Join(t.TempDir(), "missing.yaml")}, &stderr); code != exitConfig {
		t.Fatalf("missing file: exit %d", code)
	}
}

// TestCheckVirtualServerCommands: --check resolves the virtual servers'
// programs too (notify and exec checks), as a start would.
func TestCheckVirtualServerCommands(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lb.yaml")
	doc := `name: n1
virtualServers:
  - address: 10.0.0.1:80
    quorumUp: [/nonexistent/quorum-up.sh]
    realServers:
      - address: 10.0.1.1
        notifyDown: [/nonexistent/down.sh]
        check: {exec: {command: [/nonexistent/check.sh]}}
`
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if code := run([]string{"--config", p, "--check"}, &stderr); code != exitConfig {
		t.Fatalf("--check with missing programs: exit %d: %s", code, &stderr)
	}
	for _, path := range []string{"virtualServers[0].quorumUp[0]", "virtualServers[0].realServers[0].notifyDown[0]",
		"virtualServers[0].realServers[0].check.exec.command[0]"} {
		if !strings.Contains(stderr.String(), path) {
			t.Errorf("--check does not report %s:\n%s", path, &stderr)
		}
	}
}
