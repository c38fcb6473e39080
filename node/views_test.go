package node

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/lvs"
	"github.com/haa-dev/haa/node/track"
)

// Trackers reports each running tracker's own state, by name, whatever
// weight the instances give it.
func TestTrackers(t *testing.T) {
	run := func(name, kind string, weight int, r track.Result) *trackerRun {
		return &trackerRun{cfg: config.Tracker{Name: name, Kind: kind, Weight: weight}, result: r}
	}
	a := &Agent{}
	a.tracking.runs = map[string]*trackerRun{
		"zz":    run("zz", "script", -20, track.Result{OK: true, Detail: "exit status 0"}),
		"drain": run("drain", "file", -1, track.Result{OK: true, Value: 3}), // lowers the priority: failed
		"aa":    run("aa", "interface", 0, track.Result{OK: false, Detail: "link down"}),
		"extra": run("extra", "file", 5, track.Result{OK: true, Value: 3}), // raises it: OK
	}
	got := a.Trackers()
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

// CheckDurations has the latest check's duration of every real server
// with a check, once it ran.
func TestCheckDurations(t *testing.T) {
	a := lbAgent(t, &fakeBackend{state: lvs.State{}})
	if d := a.CheckDurations(); len(d) != 0 {
		t.Fatalf("durations before any configuration: %v", d)
	}
	ln := listener(t)
	rs := netip.MustParseAddrPort(ln.Addr().String())
	doc := fmt.Sprintf(`virtualServers:
  - name: web
    address: 10.9.0.1:80
    check: {tcp: {}, interval: 100ms, timeout: 100ms, jitter: 0s}
    realServers: [{address: "%s"}]
  - name: plain
    address: 10.9.0.2:80
    realServers: [{address: "10.9.0.3:80"}]
`, rs)
	if _, err := a.Apply(context.Background(), lbConfig(t, doc), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the check's duration", func() bool { return a.CheckDurations()["web"][rs.String()] > 0 })
	if d := a.CheckDurations(); len(d) != 1 || len(d["web"]) != 1 {
		t.Fatalf("durations %v: a real server without a check has none", d)
	}
}
