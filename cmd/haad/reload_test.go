package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haa-dev/haa/node"
	"github.com/haa-dev/haa/node/host/hosttest"
)

// A reload whose configuration runs but whose state file cannot be written
// is logged as a reload that took, with a warning, not as a failed one; and
// systemd's STATUS says both.
func TestReloadAppliedButStateNotWritten(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "haad.yaml")
	if err := os.WriteFile(cfgPath, []byte("name: n1\ninstances:\n  - {name: VI_1, interface: eth0, vrid: 51, advertInterval: 0.1s, vips: [10.77.0.100/24]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(dir, "state")
	h := hosttest.NewNetwork().NewHost("n1")
	h.AddLink("eth0", "lan", "10.77.0.1/24")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	agent, err := node.New(node.WithHost(h), node.WithLogger(log), node.WithStateFile(filepath.Join(stateDir, "n1.state.json")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		agent.Shutdown(ctx)
	})
	src := source{path: cfgPath}
	cfg, resolved, err := src.loadResolved(logWarnings(log))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.Apply(context.Background(), cfg, node.ApplyOptions{Resolved: resolved}); err != nil {
		t.Fatal(err)
	}
	// The state file's directory becomes a file: the state cannot be
	// written any more (even by root).
	if err := os.RemoveAll(stateDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stateDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	err = reload(agent, src, cfg, log)
	out := logs.String()
	if strings.Contains(out, "reload failed") || !strings.Contains(out, "level=WARN") ||
		!strings.Contains(out, "reloaded, but") || !strings.Contains(out, "writing state") {
		t.Errorf("logs:\n%s", out)
	}
	if err == nil || !strings.HasPrefix(err.Error(), "reloaded, but") || !strings.Contains(err.Error(), "writing state") {
		t.Errorf("reload returned %v, want the status of a reload that took, with its problem", err)
	}
	if _, err := agent.Instance("VI_1"); err != nil {
		t.Errorf("VI_1 after the reload: %v", err)
	}
	// A reload that works says nothing of the kind.
	if err := os.Remove(stateDir); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	if err := reload(agent, src, cfg, log); err != nil || !strings.Contains(logs.String(), "msg=reloaded") {
		t.Errorf("reload: %v\n%s", err, logs.String())
	}
}
