package main

import (
	"errors"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/vrrp"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

func TestParseChaos(t *testing.T) {
	o, err := parseChaos(nil, io.Discard)
	if err != nil || o.duration != 20*time.Second || o.conns != 2000 || o.streams != 50 || o.dryRuns != 20 ||
		!slices.Equal(o.vips, []int{20000, 9900}) || o.maxPackets != 10000000 || o.out != "out/chaos.md" || len(o.attacks) != 10 {
		t.Fatalf("defaults: %+v, %v", o, err)
	}
	o, err = parseChaos([]string{"--duration", "5s", "--attacks", "2, 9", "--conns", "10"}, io.Discard)
	if err != nil || o.duration != 5*time.Second || o.conns != 10 || len(o.attacks) != 2 || !o.attacks[2] || !o.attacks[9] {
		t.Fatalf("--duration 5s --attacks 2,9: %+v, %v", o, err)
	}
	for _, args := range [][]string{
		{"--duration", "0s"}, {"--duration", "1h"}, {"--max-packets", "0"}, {"--conns", "0"}, {"--streams", "5000"},
		{"--dry-runs", "0"}, {"--vips", "0"}, {"--vips", "30000"}, {"--vips", "100,x"}, {"--attacks", "11"}, {"--attacks", "1,x"}, {"extra"},
	} {
		if _, err := parseChaos(args, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("%q: err %v, want a usage error", args, err)
		}
	}
	// Attack 4 runs last among the floods, attack 9 last of all.
	if i4, i5 := slices.Index(chaosAttackIDs, 4), slices.Index(chaosAttackIDs, 5); i4 < i5 || i4 > slices.Index(chaosAttackIDs, 6) {
		t.Errorf("attack order %v: 4 must follow every other flood", chaosAttackIDs)
	}
	if chaosAttackIDs[len(chaosAttackIDs)-1] != 9 {
		t.Errorf("attack order %v: 9 (SIGTERM) must be last", chaosAttackIDs)
	}
}

func testChaosLab(t *testing.T) *chaosLab {
	t.Helper()
	x := &chaosLab{o: chaosOptions{vips: []int{20000, 9900}}, attacker: &lab.Node{Name: "c1", Addr: netip.MustParseAddr("10.77.0.200"), Iface: "eth0"},
		pki: chaosPKI{caFile: "/tmp/ca.pem", serverCert: "/tmp/server.pem", serverKey: "/tmp/server-key.pem"}}
	for i, prio := range []int{chaosPrioMaster, chaosPrioBackup} {
		n := &lab.Node{Name: chaosNodeNames[i], Addr: netip.AddrFrom4([4]byte{10, 77, 0, byte(i + 1)}), Iface: "eth0"}
		x.nodes[i] = &chaosNode{n: n, prio: prio}
	}
	return x
}

// The nodes' configurations and attack 9's large table are ones haad
// accepts (parsed and validated as the agent does).
func TestChaosConfigsValid(t *testing.T) {
	x := testChaosLab(t)
	for i := range x.nodes {
		conf := x.haadConfig(i)
		cfg, err := config.Parse([]byte(conf))
		if err != nil {
			t.Fatalf("node %d: %v\n%s", i, err, conf)
		}
		if err := config.Validate(cfg); err != nil {
			t.Errorf("node %d: %v\n%s", i, err, conf)
		}
		if got := cfg.GetApi().GetTcp() != nil; got != (i == 0) {
			t.Errorf("node %d: TCP API %v", i, got)
		}
	}
	base, _ := config.Parse([]byte(x.haadConfig(0)))
	want, set := x.manyVIPs(base, 20000)
	if len(set) != 20000 || len(want.GetInstances()) != 2+200 {
		t.Fatalf("large table: %d VIPs, %d instances", len(set), len(want.GetInstances()))
	}
	vrids := map[uint32]bool{}
	for _, in := range want.GetInstances() {
		if vrids[in.GetVrid()] || len(in.GetVips()) > chaosVIPsPerInstance {
			t.Errorf("instance %s: vrid %d (dup %v), %d VIPs", in.GetName(), in.GetVrid(), vrids[in.GetVrid()], len(in.GetVips()))
		}
		vrids[in.GetVrid()] = true
	}
	// Valid but for its size, which haad may bound: a small one validates.
	small, set := x.manyVIPs(base, 250)
	if len(set) != 250 || len(small.GetInstances()) != 2+3 {
		t.Fatalf("small table: %d VIPs, %d instances", len(set), len(small.GetInstances()))
	}
	if err := config.Validate(small); err != nil {
		t.Errorf("small table: %v", err)
	}
}

// Each flood's packets are what the attack says: parsed the way haad
// parses them, they fail the checks they are meant to fail.
func TestChaosPackets(t *testing.T) {
	x := testChaosLab(t)
	parse := func(p []byte) (vrrp.IPv4Header, vrrp.Advert, vrrp.DropReason) {
		t.Helper()
		h, payload, err := vrrp.ParseIPv4(p)
		if err != nil {
			t.Fatalf("IPv4: %v", err)
		}
		a, err := vrrp.ParseAdvert(payload, h.Src, h.Dst, vrrp.ChecksumRFC)
		var de *vrrp.DropError
		if errors.As(err, &de) {
			return h, a, de.Reason
		}
		if err != nil {
			t.Fatal(err)
		}
		return h, a, vrrp.DropNone
	}
	m := x.malformedPackets()
	if _, _, r := parse(m[0]); r != vrrp.DropTooShort {
		t.Errorf("truncated: %v", r)
	}
	if _, _, r := parse(m[1]); r != vrrp.DropChecksum {
		t.Errorf("bad checksum: %v", r)
	}
	if h, a, r := parse(m[2]); r != vrrp.DropNone || h.TTL != 254 || a.VRID != chaosVRIDv3 {
		t.Errorf("TTL 254: ttl %d, %v, %+v", h.TTL, r, a)
	}
	if h, a, r := parse(x.wrongVersionPackets()[0]); r != vrrp.DropNone || a.Version != 2 || a.VRID != chaosVRIDv3 || h.TTL != 255 || h.Src != x.attacker.Addr {
		t.Errorf("wrong version: %v %+v %+v", r, h, a)
	}
	for i, p := range x.mismatchPackets() {
		if _, a, r := parse(p); r != vrrp.DropNone || a.Priority != 254 {
			t.Errorf("mismatch %d: %v %+v", i, r, a)
		}
	}
	for _, prio := range []uint8{0, 254} {
		for _, p := range x.priorityPackets(prio) {
			if _, a, r := parse(p); r != vrrp.DropNone || a.Priority != prio || len(a.Addrs) != 1 {
				t.Errorf("priority %d: %v %+v", prio, r, a)
			}
		}
	}
	u := x.unknownVRIDPackets()
	if len(u) != 253 {
		t.Errorf("%d unknown vrids", len(u))
	}
	for _, p := range u {
		if _, a, _ := parse(p); a.VRID == chaosVRIDv3 || a.VRID == chaosVRIDv2 {
			t.Errorf("unknown vrid flood carries vrid %d", a.VRID)
		}
	}
}

func TestInterfaceDrops(t *testing.T) {
	text := `# HELP haa_interface_packets_dropped_total x
# TYPE haa_interface_packets_dropped_total counter
haa_interface_packets_dropped_total{interface="eth0",reason="unknown_vrid"} 1.2345e+06
haa_interface_packets_dropped_total{interface="eth1",reason="unknown_vrid"} 5
haa_interface_packets_dropped_total{interface="eth0",reason="too_short"} 7
haa_instance_packets_dropped_total{reason="ttl",vrrp_instance="VI_3"} 9
`
	got := interfaceDrops(text)
	if len(got) != 2 || got["unknown_vrid"] != 1234505 || got["too_short"] != 7 {
		t.Fatalf("interfaceDrops = %v", got)
	}
	d := dropDelta(map[string]uint64{"a": 5, "b": 1}, map[string]uint64{"a": 5, "b": 4, "c": 2})
	if len(d) != 2 || d["b"] != 3 || d["c"] != 2 {
		t.Fatalf("dropDelta = %v", d)
	}
}

func TestRenderChaos(t *testing.T) {
	// ms is 100 calls: 97 of 1 ms, then v (their p99 is v[1]).
	ms := func(v ...int) latencies {
		var l latencies
		for i := range 100 - len(v) {
			l.add(time.Duration(i)*time.Millisecond, time.Millisecond, nil)
		}
		for i, m := range v {
			l.add(time.Duration(i)*time.Millisecond, time.Duration(m)*time.Millisecond, nil)
		}
		return l
	}
	fast := ms(1, 1, 2)
	res := func(rssMiB, fds int) resUsage { return resUsage{RSS: uint64(rssMiB) << 20, FDs: fds} }
	ok := [2]resUsage{res(28, 18), res(27, 17)}
	quiet := [2]time.Duration{100 * time.Millisecond, time.Second} // n1 kept sending
	rows := []chaosRow{
		{ID: "1", Name: "malformed", Kind: kindFlood, Rate: "50.1k pkt/s", Duration: 20 * time.Second, Trans: [2]int64{0, 0},
			Drops: [2]map[string]uint64{{"ttl": 300000, "checksum": 299000}, {"ttl": 290000}},
			Lat:   [2]latencies{fast, fast}, Floor: fast, Before: ok, After: ok, Watched: true, Silence: quiet},
		{ID: "2", Name: "v2 at v3", Kind: kindFlood, Rate: "60.0k pkt/s", Duration: 20 * time.Second, Trans: [2]int64{0, 2},
			Lat: [2]latencies{fast, ms(1, 30, 30)}, Floor: fast, Before: ok, After: [2]resUsage{res(28, 40), res(60, 17)}, Watched: true, Silence: quiet},
		// The machine stalled: n1 silent past n2's master-down interval,
		// the reference server as slow as haad.
		{ID: "3", Name: "stalled", Kind: kindFlood, Duration: 20 * time.Second, Trans: [2]int64{0, 2},
			Lat: [2]latencies{ms(1, 30, 30), fast}, Floor: ms(1, 25, 800), Before: ok, After: ok,
			Watched: true, Silence: [2]time.Duration{900 * time.Millisecond, time.Second}},
		{ID: "4b", Name: "priority 254 | foreign", Kind: kindProtocol, Duration: 20 * time.Second, Trans: [2]int64{2, 0},
			Lat: [2]latencies{fast, fast}, Before: ok, After: ok},
		{ID: "8c", Name: "undecodable", Kind: kindAPI, Duration: time.Millisecond, Trans: [2]int64{0, 0}, Code: "Internal", WantCode: "InvalidArgument",
			Lat: [2]latencies{fast, fast}, Before: ok, After: ok, Notes: []string{"answered Internal"}},
		{ID: "9b", Name: "many VIPs", Kind: kindAPI, Trans: [2]int64{-1, -1}, Err: errors.New("lab | broke"),
			Before: ok, After: [2]resUsage{{Err: errors.New("exited")}, res(27, 17)}},
	}
	out := renderChaos(chaosOptions{command: "haalab chaos", duration: 20 * time.Second, maxPackets: 10, settle: 10 * time.Second},
		machine{cpus: 2, kernel: "6.1"}, rows, [3]latencies{fast, fast, fast}, time.Minute)
	for _, want := range []string{
		"| 1 | malformed | 50.1k pkt/s | 20.0 s | 0 / 0 | ttl 300.0k / 290.0k, checksum 299.0k / 0 | 2.00 ms / 2.00 ms (ref 2.00 ms) | 28.0 -> 28.0 MiB, 18 -> 18 FDs | 27.0 -> 27.0 MiB, 17 -> 17 FDs | pass |",
		"| 2 | v2 at v3 | 60.0k pkt/s | 20.0 s | 0 / 2 | none | 2.00 ms / 30.00 ms (ref 2.00 ms) |",
		"**FAIL**: false transitions: 2 on n2 while n1 kept sending (longest silence 100.0 ms); API p99 on n2 30.00 ms > 20ms; n1 descriptors 18 -> 40 (more than +8); n2 RSS 27.0 MiB -> 60.0 MiB (more than +20.0 MiB) |",
		"| **INCONCLUSIVE**: 2 transitions on n2 after the machine stalled: n1 silent on the wire for 900.0 ms / 1000 ms (n2 takes over after 360.9 ms / 3609 ms), the reference server's worst round trip 800.0 ms; API p99 on n1 30.00 ms > 20ms, but the machine's own (the reference server's) was 800.0 ms |",
		"| 4b | priority 254 / foreign | - | 20.0 s | 2 / 0 |",
		"| pass (protocol: expected takeover) |",
		"| 8c | undecodable | - | 1.00 ms | 0 / 0 |",
		"**FAIL**: answered Internal, want InvalidArgument |",
		"| 9b | many VIPs | - | - | ? / ? | none | n/a / n/a | 28.0 -> ? MiB, 18 -> ? FDs |",
		"**FAIL**: could not run: lab / broke |",
		"  - answered Internal\n",
		"At rest, for 3s before the first attack: GetNode p99 n1 2.00 ms, n2 2.00 ms, ref 2.00 ms.",
		"2 of 6 rows meet their targets; failing: 2, 8c, 9b; inconclusive",
		"see each verdict): 3.\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if n := chaosFailed(rows); n != 4 {
		t.Errorf("chaosFailed = %d, want 4 (3 failed, 1 inconclusive)", n)
	}
	// The master's own timers late, the machine answering: haad's fault.
	r := rows[2]
	r.Floor, r.Lat, r.Slip = fast, [2]latencies{fast, fast}, [2]time.Duration{850 * time.Millisecond, 0}
	if f, _ := r.verdict(); len(f) != 1 || !strings.Contains(f[0], "the master stopped sending under the attack: n1 silent on the wire for 900.0 ms") {
		t.Errorf("master stalled: %q", f)
	}
	// The worst since start predates the attack, but the histogram saw
	// the timers late: haad's fault too.
	r.Slip, r.SlipLate, r.SlipSum = [2]time.Duration{}, [2]uint64{3, 0}, [2]time.Duration{700 * time.Millisecond, 0}
	if f, _ := r.verdict(); len(f) != 1 || !strings.Contains(f[0], "its timers more than 100 ms late 3 times, 700.0 ms in all") {
		t.Errorf("master stalled (histogram): %q", f)
	}
	// Neither late: the adverts were lost on the way.
	r.Slip, r.SlipLate, r.SlipSum = [2]time.Duration{}, [2]uint64{}, [2]time.Duration{time.Millisecond, 0}
	if f, u := r.verdict(); len(f) != 0 || len(u) != 1 || !strings.Contains(u[0], "lost on the LAN") {
		t.Errorf("adverts lost: %q, %q", f, u)
	}
	// Too few calls for a p99: shown, not judged.
	few := chaosRow{Kind: kindAPI, Lat: [2]latencies{{d: []time.Duration{50 * time.Millisecond}}, fast}, Floor: fast}
	if f, u := few.verdict(); len(f)+len(u) != 0 {
		t.Errorf("one slow call judged: %q %q", f, u)
	}
	// A slow API beyond the machine's own delay by more than the target
	// fails even on a slow machine.
	slow := chaosRow{Kind: kindAPI, Lat: [2]latencies{ms(1, 60, 60), fast}, Floor: ms(1, 25, 25)}
	if f, _ := slow.verdict(); len(f) != 1 || !strings.Contains(f[0], "API p99 on n1 60.00 ms > the reference's 25.00 ms + 20ms") {
		t.Errorf("slow API: %q", f)
	}
}

func TestTimerSlips(t *testing.T) {
	text := `haa_instance_timer_slip_seconds_bucket{timer="advert",vrrp_instance="VI_3",le="0.05"} 90
haa_instance_timer_slip_seconds_bucket{timer="advert",vrrp_instance="VI_3",le="0.1"} 95
haa_instance_timer_slip_seconds_bucket{timer="advert",vrrp_instance="VI_3",le="+Inf"} 100
haa_instance_timer_slip_seconds_sum{timer="advert",vrrp_instance="VI_3"} 1.5
haa_instance_timer_slip_seconds_count{timer="advert",vrrp_instance="VI_3"} 100
haa_instance_timer_slip_seconds_bucket{timer="master_down",vrrp_instance="VI_3",le="0.1"} 2
haa_instance_timer_slip_seconds_sum{timer="master_down",vrrp_instance="VI_3"} 0.5
haa_instance_timer_slip_seconds_count{timer="master_down",vrrp_instance="VI_3"} 2
haa_instance_timer_slip_seconds_count{timer="advert",vrrp_instance="VI_2"} 7
`
	got := timerSlips(text, "VI_3")
	if got != (slipHist{count: 102, within100ms: 97, sum: 2 * time.Second}) {
		t.Fatalf("timerSlips = %+v", got)
	}
}

func TestLongestGap(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ts := []time.Time{at(250), at(50), at(150), at(900), at(-100)}
	if g := longestGap(ts, at(0), at(1000)); g != 650*time.Millisecond {
		t.Errorf("longestGap = %v, want 650ms", g)
	}
	if g := longestGap(nil, at(0), at(1000)); g != time.Second {
		t.Errorf("longestGap of nothing = %v, want the window", g)
	}
}

// The InstanceStatus states read as the report names them.
func TestStateName(t *testing.T) {
	if got := stateName(haav1.State_STATE_MASTER); got != "MASTER" {
		t.Fatalf("stateName = %q", got)
	}
}
