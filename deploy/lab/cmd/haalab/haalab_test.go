package main

import (
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
	"github.com/haa-dev/haa/node/config"
)

func TestBound(t *testing.T) {
	for _, tc := range []struct {
		version, prio int
		interval      time.Duration
		want          time.Duration
	}{
		{2, 100, time.Second, 3609375 * time.Microsecond},
		{3, 100, 100 * time.Millisecond, 360937500 * time.Nanosecond},
		{3, 100, 10 * time.Millisecond, 36093750 * time.Nanosecond},
		{3, 150, 100 * time.Millisecond, 341406250 * time.Nanosecond},
		{3, 255, 10 * time.Millisecond, 30039062 * time.Nanosecond},
	} {
		if got := bound(tc.version, tc.prio, tc.interval); got != tc.want {
			t.Errorf("bound(v%d, prio %d, %v) = %v, want %v", tc.version, tc.prio, tc.interval, got, tc.want)
		}
	}
}

// The generated haad configuration is one haad accepts.
func TestHaadConfigValid(t *testing.T) {
	for _, st := range allSettings {
		if _, err := config.Parse([]byte(haadConfig("n1", st.instances(benchPrioMaster)))); err != nil {
			t.Errorf("%s: %v", st.Key, err)
		}
	}
	if _, err := config.Parse([]byte(haadConfig("n2", soakInstances(254, benchPrioBackup, soakInterval)))); err != nil {
		t.Errorf("soak: %v", err)
	}
}

// The generated keepalived configuration passes `keepalived -t`.
func TestKeepalivedConfigValid(t *testing.T) {
	bin, err := lab.KeepalivedPath()
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	check := func(name, conf string) {
		t.Helper()
		path := filepath.Join(dir, name+".conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, "-t", "-l", "-f", path).CombinedOutput(); err != nil {
			t.Errorf("%s: keepalived -t: %v\n%s\n%s", name, err, out, conf)
		}
	}
	for _, st := range allSettings {
		check(st.Key, keepalivedConfig("n1", st.instances(benchPrioMaster)))
	}
	check("soak", keepalivedConfig("n1", soakInstances(50, benchPrioMaster, soakInterval)))
	conf := keepalivedConfig("n1", allSettings[2].instances(200))
	for _, want := range []string{"vrrp_version 3", "advert_int 0.01", "state BACKUP", "priority 200"} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "authentication") {
		t.Errorf("v3 config with authentication:\n%s", conf)
	}
}

func TestSummarize(t *testing.T) {
	ts := []trial{
		{Failover: failover{Outage: 30 * time.Millisecond}},
		{Err: errors.New("boom")},
		{Failover: failover{Outage: 10 * time.Millisecond}},
		{Failover: failover{Outage: 40 * time.Millisecond}},
		{Failover: failover{Outage: 20 * time.Millisecond}},
	}
	got := summarize(ts)
	want := outageStats{N: 4, Failed: 1, Median: 25 * time.Millisecond, Min: 10 * time.Millisecond, Max: 40 * time.Millisecond}
	if got != want {
		t.Fatalf("summarize = %+v, want %+v", got, want)
	}
	if got := summarize(ts[:1]); got.Median != 30*time.Millisecond {
		t.Fatalf("one trial: %+v", got)
	}
	if got := summarize(nil); got.N != 0 {
		t.Fatalf("no trial: %+v", got)
	}
}

func TestCPUTicksOwnProcess(t *testing.T) {
	// Burn a little CPU so the counter is not zero.
	deadline := time.Now().Add(50 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	n, err := cpuTicks(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no CPU time for this process")
	}
	if n, _, err := cpuStat(os.Getpid()); err != nil || n < uint64(10*time.Millisecond) {
		t.Fatalf("cpuStat of this process = %d, %v; want at least the 50 ms it burnt (10 ms)", n, err)
	}
	before := cpuSample{at: time.Unix(0, 0), ns: map[int]uint64{1: 100e7, 2: 50e7}}
	after := cpuSample{at: time.Unix(10, 0), ns: map[int]uint64{1: 150e7, 3: 10e7}}
	if got := cpuPercent(before, after); got != 6 { // (0.5 + 0.1) s / 10 s
		t.Fatalf("cpuPercent = %v, want 6", got)
	}
}

func TestParseBench(t *testing.T) {
	o, err := parseBench([]string{"--quick"}, io.Discard)
	if err != nil || o.trials != 3 || o.soak != 20*time.Second || len(o.settings) != len(allSettings) {
		t.Fatalf("--quick: %+v, %v", o, err)
	}
	o, err = parseBench([]string{"--quick", "--trials", "5", "--settings", "10ms"}, io.Discard)
	if err != nil || o.trials != 5 || len(o.settings) != 1 || o.settings[0].Interval != 10*time.Millisecond {
		t.Fatalf("--quick --trials 5: %+v, %v", o, err)
	}
	for _, args := range [][]string{{"--trials", "0"}, {"--instances", "255"}, {"--settings", "5s"}, {"extra"}} {
		if _, err := parseBench(args, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("%q: err %v, want a usage error", args, err)
		}
	}
}

func TestParseBenchAPI(t *testing.T) {
	o, err := parseBenchAPI([]string{"--haad", "bin/haad", "--transitions", "200"}, io.Discard)
	if err != nil || o.transitions != 200 || o.services != 5000 || o.dests != 5 || o.backend != "nftables" || o.reads != 2000 {
		t.Fatalf("defaults: %+v, %v", o, err)
	}
	if o, err := parseBenchAPI([]string{"--services", "0"}, io.Discard); err != nil || o.services != 0 {
		t.Fatalf("--services 0 (skip the large apply): %+v, %v", o, err)
	}
	for _, args := range [][]string{{"--services", "-1"}, {"--dests", "0"}, {"--backend", "xdp"}, {"--reads", "0"},
		{"--services", "100000", "--dests", "64"}, {"--transitions", "0"}, {"extra"}} {
		if _, err := parseBenchAPI(args, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("%q: err %v, want a usage error", args, err)
		}
	}
}

func TestRenderAPIApply(t *testing.T) {
	ms := func(v ...int) latencies {
		var l latencies
		for i, m := range v {
			l.add(time.Duration(i)*time.Millisecond, time.Duration(m)*time.Millisecond, nil)
		}
		return l
	}
	slow := ms(1, 1, 1, 4000)
	slow.add(5*time.Second, 30*time.Second, errors.New("context deadline exceeded"))
	r := apiApplyResult{services: 5000, dests: 5, backend: "nftables", reqBytes: 3 << 20,
		restNode: ms(1, 1, 2), restList: ms(1), restScrape: ms(3),
		node: slow, list: ms(1, 2, 3), scrape: ms(10, 60),
		loadedNode: ms(1, 300), loadedList: ms(1), loadedScrape: ms(340), loadedBytes: 2048,
		apply: 9 * time.Second, del: 2 * time.Second, haactl: 10 * time.Second, yamlBytes: 3 << 19}
	out := renderAPIApply(r)
	for _, want := range []string{
		"| GetNode at rest | 3 | 1.00 ms | 2.00 ms | 2.00 ms | - | - |",
		"| GetNode during apply | 5 (1 failed) | 1.00 ms | 30000 ms | 30000 ms | p99 <= 5ms, max <= 50ms | no |",
		"| ListInstances during apply | 3 | 2.00 ms | 3.00 ms | 3.00 ms | p99 <= 5ms, max <= 50ms | yes |",
		"| /metrics scrape during apply | 2 | 60.00 ms | 60.00 ms | 60.00 ms | max <= 50ms | no |",
		"ApplyConfig of 5000 x 5 from empty through ctl, the reads going: **9.00 s** (the longest GetNode\n  started at +5.00 s",
		"`haactl apply -f` of the same table from empty",
		"included): **10.00 s**",
		"(a 1.5 MiB YAML file; process",
		"| GetNode, table loaded (after the apply), scrapes going | 2 | 300.0 ms | 300.0 ms | 300.0 ms | - | - |",
		"scrape of the table loaded: 2.0 KiB",
		"First failed GetNode during the apply: context deadline exceeded",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	r.haactl, r.haactlNote = 0, "no haactl next to bin/haad (--haactl)"
	if out := renderAPIApply(r); !strings.Contains(out, "haactl apply -f not timed: no haactl next to bin/haad") {
		t.Errorf("report without haactl:\n%s", out)
	}
}

func TestRenderReport(t *testing.T) {
	st := allSettings[1]
	res := []settingResult{{Setting: st, Trials: map[string][]trial{
		"haad":       {{N: 1, Failover: failover{Outage: 362 * time.Millisecond}}, {N: 2, Err: errors.New("x | y")}},
		"keepalived": {{N: 1, Failover: failover{Outage: 364 * time.Millisecond}}},
	}}}
	soaks := []soakResult{{Daemon: "haad", Instances: 50, Interval: soakInterval, Duration: time.Minute, CPUMaster: 1.5,
		SlipMaster: time.Millisecond, SlipBackup: 0, SlipMasterBefore: time.Millisecond}}
	out := renderReport(benchOptions{command: "haalab bench-failover", trials: 2}, machine{cpus: 2, kernel: "6.1"}, res, soaks)
	for _, want := range []string{
		"| 100 ms (VRRPv3) | 360.9 ms | 362.0 ms |",
		"| yes | yes (+1.1 ms) | yes (failed trials: haad 1, keepalived 0) |",
		"trial 2: x / y",
		"| haad | 50 | 10ms | 1m0s | 0 | 0 | 1.50 % |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestCommandLine(t *testing.T) {
	got := commandLine([]string{"bin/haalab", "bench-failover", "--out", "my report.md", "--x", "it's"})
	want := `bin/haalab bench-failover --out 'my report.md' --x 'it'\''s'`
	if got != want {
		t.Fatalf("commandLine = %s, want %s", got, want)
	}
}

// The demo's director configuration, VRRP and virtual server, is one haad
// accepts.
func TestDemoConfigValid(t *testing.T) {
	reals := []netip.AddrPort{netip.MustParseAddrPort("10.77.0.201:8080"), netip.MustParseAddrPort("10.77.0.202:8080")}
	conf := haadConfig("n1", demoInstance(200)) + demoLBConfig(demoVIP, reals)
	if _, err := config.Parse([]byte(conf)); err != nil {
		t.Errorf("%v\n%s", err, conf)
	}
}

func TestDemoSpreadHelpers(t *testing.T) {
	names := []string{"rs1", "rs2", "rs3"}
	got := map[string]int{"rs1": 15, "rs3": 15}
	if s := countsString(got, names); s != "rs1 15, rs2 0, rs3 15" {
		t.Errorf("countsString = %q", s)
	}
	if s := countsString(map[string]int{"rs1": 1, "x": 2}, names[:1]); s != `rs1 1, "x" 2` {
		t.Errorf("countsString with an unknown answer = %q", s)
	}
	if !evenSpread(got, []string{"rs1", "rs3"}, 30) {
		t.Error("15/15 over rs1, rs3 is even")
	}
	for _, bad := range []map[string]int{{"rs1": 16, "rs3": 14}, {"rs1": 15, "rs2": 0, "rs3": 15}, {"rs1": 30}} {
		if evenSpread(bad, []string{"rs1", "rs3"}, 30) {
			t.Errorf("%v is not an even spread over rs1, rs3", bad)
		}
	}
}

func TestRequestOutage(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	fail := errors.New("timeout")
	rs := []reqResult{
		{start: at(0), end: at(1)},
		{start: at(5), end: at(6)},
		{start: at(10), end: at(210), err: fail}, // the power-off at 8
		{start: at(210), end: at(410), err: fail},
		{start: at(410), end: at(411)},
		{start: at(415), end: at(416)},
	}
	if o, f := requestOutage(rs, at(8)); o != 405*time.Millisecond || f != 2 {
		t.Errorf("requestOutage = %v, %d failed; want 405ms, 2", o, f)
	}
	if o, f := requestOutage(rs[:2], at(8)); o != 0 || f != 0 {
		t.Errorf("requestOutage of the requests before = %v, %d; want 0, 0", o, f)
	}
}
