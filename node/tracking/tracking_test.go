package tracking

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/host"
	"github.com/haa-dev/haa/node/notify"
	"github.com/haa-dev/haa/node/script"
	"github.com/haa-dev/haa/node/syncgroup"
	"github.com/haa-dev/haa/node/track"
	"github.com/haa-dev/haa/node/vrrp"
)

// The verdict of an instance: its own trackers with their weights, its
// group's, and the other members' weights (not their faults, which come
// through the group).
func TestVerdict(t *testing.T) {
	run := func(kind track.Kind, weight int, r track.Result) *trackerRun {
		return &trackerRun{cfg: config.Tracker{Kind: kind, Weight: weight}, result: r}
	}
	tr := &Manager{
		runs: map[string]*trackerRun{
			"chk":    run("script", -20, track.Result{OK: false, Detail: "exit status 1"}),
			"uplink": run("interface", 0, track.Result{OK: true, Detail: "link up"}),
			"drain":  run("file", -1, track.Result{OK: true, Value: 3}),
			"db":     run("script", 0, track.Result{OK: false, Detail: "exit status 2"}),
			"bonus":  run("process", 15, track.Result{OK: true}),
		},
		views: map[string]*tracked{
			"VI_1": {refs: []config.TrackRef{{Tracker: "chk", Weight: -20}, {Tracker: "uplink"}, {Tracker: "drain", Weight: -10}}},
			"VI_2": {refs: []config.TrackRef{{Tracker: "db"}}},
			"VI_3": {refs: []config.TrackRef{{Tracker: "bonus", Weight: 15}}},
		},
	}
	gr := &groupRun{cfg: config.SyncGroup{Name: "VG_1", Instances: []string{"VI_1", "VI_2"},
		Track: []config.TrackRef{{Tracker: "bonus", Weight: 5}}}, g: syncgroup.New("VG_1", []string{"VI_1", "VI_2"})}
	tr.memberOf = map[string]*groupRun{"VI_1": gr, "VI_2": gr}

	offset, fault, views := tr.verdictLocked("VI_1")
	// -20 (chk) + 0 (uplink) + 3*-10 (drain) + 5 (group's bonus); db is
	// VI_2's: weight 0, so nothing to add and its fault is the group's.
	if offset != -45 || fault != "" {
		t.Fatalf("VI_1: offset %d fault %q, want -45 and none", offset, fault)
	}
	var names []string
	for _, v := range views {
		names = append(names, v.Name)
	}
	if want := []string{"chk", "uplink", "drain", "bonus", "db"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("VI_1 trackers %v, want %v", names, want)
	}
	if v := views[2]; v.OK || v.Delta != -30 {
		t.Errorf("drain as VI_1 sees it: %+v", v)
	}
	if v := views[4]; !v.ViaGroup || v.Fault {
		t.Errorf("db as VI_1 sees it: %+v", v)
	}
	offset, fault, _ = tr.verdictLocked("VI_2")
	if offset != -45 || fault != "tracker db failed: exit status 2" { // the group moves together
		t.Fatalf("VI_2: offset %d fault %q", offset, fault)
	}
	offset, fault, _ = tr.verdictLocked("VI_3")
	if offset != 15 || fault != "" {
		t.Fatalf("VI_3: offset %d fault %q", offset, fault)
	}
}

// Programs are checked on the node, each problem at its path.
func TestResolveCommandsPaths(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.sh")
	bad := filepath.Join(dir, "bad.sh")
	for _, f := range []string{ok, bad} {
		if err := os.WriteFile(f, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(bad, 0o777); err != nil {
		t.Fatal(err)
	}
	c := &config.Agent{
		Trackers: []config.Tracker{
			{Name: "a", Kind: "script", Script: &config.Script{Command: []string{ok}}},
			{Name: "b", Kind: "script", Script: &config.Script{Command: []string{"no-such-program-haa"}}},
		},
		Instances:  []config.Instance{{Notify: &config.Notify{Master: []string{ok}, Fault: []string{bad, "x"}}}},
		SyncGroups: []config.SyncGroup{{Name: "G", Notify: &config.Notify{Any: []string{ok}}}},
	}
	c.Instances[0].VRRP.Name = "VI_1"
	_, err := ResolveCommands(c)
	fields := config.Fields(err)
	if len(fields) != 2 || fields[0].Path != "trackers[1].script.command[0]" || fields[1].Path != "instances[0].notify.fault[0]" {
		t.Fatalf("problems %v", fields)
	}
	if !strings.Contains(fields[1].Msg, "writable") {
		t.Errorf("insecure script: %q", fields[1].Msg)
	}
	if !strings.Contains(fields[0].Msg, "not found") {
		t.Errorf("missing program: %q", fields[0].Msg)
	}
	if err := os.Chmod(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	c.Trackers = c.Trackers[:1]
	cmds, err := ResolveCommands(c)
	if err != nil {
		t.Fatal(err)
	}
	if cmds.trackers["a"] == nil || cmds.notify["VI_1"].Fault == nil || cmds.groups["G"].Any == nil {
		t.Fatalf("resolved %+v", cmds)
	}
}

// TestNotifyResultsForgotten: the outcomes of an instance's notify
// commands are kept while it is configured and forgotten with it.
func TestNotifyResultsForgotten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		runner := notify.NewRunner(slog.New(slog.DiscardHandler), nil, notify.WithExec(func(context.Context, notify.Job) script.Result {
			return script.Result{}
		}))
		m := New(Deps{Log: slog.New(slog.DiscardHandler), Notify: runner})
		cfg := func(y string) *config.Agent {
			raw, err := config.Parse([]byte("name: n1\ninstances:\n" + y))
			if err != nil {
				t.Fatal(err)
			}
			c, err := config.Resolve(raw)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		commit := func(c *config.Agent) {
			ch, err := m.Prepare(c)
			if err != nil {
				t.Fatal(err)
			}
			m.Commit(ch)
		}
		commit(cfg("  - {name: VI_1, interface: eth0, vrid: 1, vips: [10.0.0.1], notify: {master: [/bin/true]}}\n" +
			"  - {name: VI_2, interface: eth0, vrid: 2, vips: [10.0.0.2], notify: {master: [/bin/true]}}\n"))
		for _, name := range []string{"VI_1", "VI_2"} {
			m.Observe(vrrp.Notice{Kind: vrrp.NoticeTransition, Instance: name, From: vrrp.Backup, To: vrrp.Master, Priority: 100})
		}
		synctest.Wait()
		if n := len(m.Snapshot().Instance("VI_1").Notifies); n != 1 {
			t.Fatalf("VI_1 has %d notify results, want 1", n)
		}
		commit(cfg("  - {name: VI_2, interface: eth0, vrid: 2, vips: [10.0.0.2], notify: {master: [/bin/true]}}\n"))
		synctest.Wait()
		m.mu.Lock()
		keys := slices.Collect(maps.Keys(m.results))
		m.mu.Unlock()
		if !slices.Equal(keys, []string{"INSTANCE/VI_2"}) {
			t.Errorf("results kept for %v, want VI_2's only", keys)
		}
		if n := len(m.Snapshot().Instance("VI_2").Notifies); n != 1 {
			t.Errorf("VI_2 has %d notify results, want 1", n)
		}
		if err := m.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := runner.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// The snapshot lists each running tracker's own state, by name, whatever
// weight the instances give it (the old Agent.Trackers).
func TestSnapshotTrackers(t *testing.T) {
	run := func(name string, kind track.Kind, weight int, r track.Result) *trackerRun {
		return &trackerRun{cfg: config.Tracker{Name: name, Kind: kind, Weight: weight}, result: r}
	}
	m := &Manager{runs: map[string]*trackerRun{
		"zz":    run("zz", track.KindScript, -20, track.Result{OK: true, Detail: "exit status 0"}),
		"drain": run("drain", track.KindFile, -1, track.Result{OK: true, Value: 3}), // lowers the priority: failed
		"aa":    run("aa", track.KindInterface, 0, track.Result{OK: false, Detail: "link down"}),
		"extra": run("extra", track.KindFile, 5, track.Result{OK: true, Value: 3}), // raises it: OK
	}}
	m.publishLocked()
	got := m.Snapshot().Trackers
	var names []string
	for _, tr := range got {
		names = append(names, fmt.Sprintf("%s/%s/%v", tr.Name, tr.Kind, tr.OK))
	}
	if want := "[aa/interface/false drain/file/false extra/file/true zz/script/true]"; fmt.Sprint(names) != want {
		t.Fatalf("trackers %v, want %s", names, want)
	}
	if got[0].Detail != "link down" {
		t.Errorf("detail %q", got[0].Detail)
	}
}

// TestLinkEventDuringCommit: a link event that comes between Commit's
// read of the host and its lock decides the new tracker's state.
func TestLinkEventDuringCommit(t *testing.T) {
	h := &slowHost{up: true, read: make(chan struct{}), release: make(chan struct{})}
	m := New(Deps{Log: slog.New(slog.DiscardHandler), Host: h})
	defer m.Close(context.Background())
	raw, err := config.Parse([]byte("name: n1\ntrackers: [{name: up, interface: {name: eth1}, weight: 0}]\n" +
		"instances: [{name: VI_1, interface: eth0, vrid: 1, vips: [10.0.0.1], track: [{tracker: up}]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Resolve(raw)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := m.Prepare(c)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		m.Commit(ch)
		close(done)
	}()
	<-h.read // Commit has read "up"
	m.LinkChanged(host.LinkEvent{Name: "eth1", Up: false})
	close(h.release)
	<-done
	if off, fault, _ := m.Initial("VI_1"); fault == "" {
		t.Fatalf("the link went down during the commit, the tracker says up (offset %d)", off)
	}
}

// slowHost answers Link once the test lets it.
type slowHost struct {
	up            bool
	read, release chan struct{}
	once          sync.Once
}

func (h *slowHost) Link(string) (host.Link, error) {
	h.once.Do(func() {
		close(h.read)
		<-h.release
	})
	return host.Link{Up: h.up}, nil
}
