package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// trackExample is the agent configuration of issue 5, verbatim, with a VI_2
// on the same interface so that the sync group resolves.
const trackExample = `
trackers:
  - name: chk_nginx
    script: {command: ["/usr/bin/pgrep", "-x", "nginx"], interval: 1s, timeout: 2s, rise: 1, fall: 2}
    weight: -20
  - name: uplink
    interface: {name: eth1}
    weight: -50
  - name: drain_flag
    file: {path: /run/haa/drain}
    weight: -1
instances:
  - name: VI_1
    interface: eth0
    vrid: 51
    priority: 100
    vips: ["10.77.0.100/24"]
    track: [{tracker: chk_nginx}, {tracker: uplink}, {tracker: drain_flag, weight: -10}]
    notify:
      master: ["/etc/haa/notify.sh", "master"]
      backup: ["/etc/haa/notify.sh", "backup"]
      fault:  ["/etc/haa/notify.sh", "fault"]
      any:    ["/etc/haa/notify-all.sh"]
  - name: VI_2
    interface: eth0
    vrid: 52
    vips: ["10.77.0.101/24"]
syncGroups:
  - name: VG_1
    instances: [VI_1, VI_2]
`

func TestTrackIssueExample(t *testing.T) {
	cfg, err := Parse([]byte("name: n1\n" + trackExample))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Resolve(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Trackers) != 3 {
		t.Fatalf("%d trackers", len(a.Trackers))
	}
	chk, up, drain := a.Trackers[0], a.Trackers[1], a.Trackers[2]
	wantScript := &Script{Command: []string{"/usr/bin/pgrep", "-x", "nginx"}, Interval: time.Second, Timeout: 2 * time.Second, Rise: 1, Fall: 2}
	if chk.Name != "chk_nginx" || chk.Kind != KindScript || chk.Weight != -20 || !reflect.DeepEqual(chk.Script, wantScript) ||
		chk.Spec != cfg.Trackers[0] || chk.Iface != "" || chk.File != "" || chk.Process != nil {
		t.Errorf("chk_nginx = %+v script %+v", chk, chk.Script)
	}
	if up.Name != "uplink" || up.Kind != KindInterface || up.Iface != "eth1" || up.Weight != -50 || up.Script != nil {
		t.Errorf("uplink = %+v", up)
	}
	if drain.Name != "drain_flag" || drain.Kind != KindFile || drain.File != "/run/haa/drain" || drain.Weight != -1 {
		t.Errorf("drain_flag = %+v", drain)
	}
	v1 := a.Instances[0]
	wantTrack := []TrackRef{{"chk_nginx", -20}, {"uplink", -50}, {"drain_flag", -10}}
	if !reflect.DeepEqual(v1.Track, wantTrack) {
		t.Errorf("VI_1 track = %+v, want %+v", v1.Track, wantTrack)
	}
	wantNotify := &Notify{Master: []string{"/etc/haa/notify.sh", "master"}, Backup: []string{"/etc/haa/notify.sh", "backup"},
		Fault: []string{"/etc/haa/notify.sh", "fault"}, Any: []string{"/etc/haa/notify-all.sh"}, Timeout: 30 * time.Second}
	if !reflect.DeepEqual(v1.Notify, wantNotify) {
		t.Errorf("VI_1 notify = %+v, want %+v", v1.Notify, wantNotify)
	}
	if v2 := a.Instances[1]; v2.Track != nil || v2.Notify != nil {
		t.Errorf("VI_2 tracks %v, notifies %v", v2.Track, v2.Notify)
	}
	if len(a.SyncGroups) != 1 {
		t.Fatalf("sync groups %+v", a.SyncGroups)
	}
	if g := a.SyncGroups[0]; g.Name != "VG_1" || strings.Join(g.Instances, ",") != "VI_1,VI_2" || g.Notify != nil || g.Track != nil ||
		g.Spec != cfg.SyncGroups[0] {
		t.Errorf("VG_1 = %+v", g)
	}
}

func TestTrackerDefaults(t *testing.T) {
	cfg, err := Parse([]byte(`
name: n1
trackers:
  - {name: s, script: {command: [check]}}
  - {name: s2, script: {command: [check], interval: 5s, user: "nginx:www-data"}}
  - {name: p, process: {name: nginx}}
  - {name: p2, process: {name: nginx, args: [-g, daemon off;], quorum: 2, quorumMax: 4, interval: 250ms}}
  - {name: f, file: {path: /run/x}, weight: -254}
  - {name: i, interface: {name: eth1}, weight: 253}
instances:
  - name: VI_1
    interface: eth0
    vrid: 1
    vips: [10.0.0.1/24]
    track: [{tracker: f, weight: 254}, {tracker: s, weight: 0}, {tracker: i, weight: -253}]
    notify: {stop: [/bin/stop], timeout: 1h, user: "1000:1000"}
  - {name: VI_2, interface: eth0, vrid: 2, vips: [10.0.0.2/24]}
syncGroups:
  - name: G
    instances: [VI_2, VI_1]
    notify: {any: [/bin/log]}
    track: [{tracker: p}, {tracker: p2, weight: 7}]
`))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Resolve(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr := a.Trackers
	if got, want := *tr[0].Script, (Script{Command: []string{"check"}, Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1}); !reflect.DeepEqual(got, want) {
		t.Errorf("script defaults %+v, want %+v", got, want)
	}
	if got, want := *tr[1].Script, (Script{Command: []string{"check"}, Interval: 5 * time.Second, Timeout: 5 * time.Second, Rise: 1, Fall: 1, User: "nginx:www-data"}); !reflect.DeepEqual(got, want) {
		t.Errorf("timeout defaults to the interval: %+v, want %+v", got, want)
	}
	if got, want := *tr[2].Process, (Process{Name: "nginx", Quorum: 1, Interval: time.Second}); !reflect.DeepEqual(got, want) {
		t.Errorf("process defaults %+v, want %+v", got, want)
	}
	if got, want := *tr[3].Process, (Process{Name: "nginx", Args: []string{"-g", "daemon off;"}, Quorum: 2, QuorumMax: 4, Interval: 250 * time.Millisecond}); !reflect.DeepEqual(got, want) {
		t.Errorf("process %+v, want %+v", got, want)
	}
	if tr[4].Weight != -254 || tr[5].Weight != 253 {
		t.Errorf("weights %d %d", tr[4].Weight, tr[5].Weight)
	}
	if got, want := a.Instances[0].Track, []TrackRef{{"f", 254}, {"s", 0}, {"i", -253}}; !reflect.DeepEqual(got, want) {
		t.Errorf("track %+v, want %+v", got, want)
	}
	if got, want := *a.Instances[0].Notify, (Notify{Stop: []string{"/bin/stop"}, Timeout: time.Hour, User: "1000:1000"}); !reflect.DeepEqual(got, want) {
		t.Errorf("notify %+v, want %+v", got, want)
	}
	g := a.SyncGroups[0]
	if g.Notify == nil || g.Notify.Timeout != 30*time.Second || !reflect.DeepEqual(g.Track, []TrackRef{{"p", 0}, {"p2", 7}}) {
		t.Errorf("group %+v notify %+v", g, g.Notify)
	}
}

const trackInst = "  - {name: VI_1, interface: eth0, vrid: 1, vips: [10.0.0.1/24]}\n  - {name: VI_2, interface: eth0, vrid: 2, vips: [10.0.0.2/24]}\n"

func TestTrackValidation(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       []string // exact "path: message", in order
	}{
		{"tracker name and kind", `
trackers:
  - {script: {command: [x]}}
  - {name: "a b", interface: {name: eth1}}
  - {name: ok}
  - {name: ok, script: {command: [x]}, file: {path: /x}, process: {name: x}}
`, []string{
			"trackers[0].name: required: give the tracker a name such as chk_nginx",
			`trackers[1].name: "a b" is not a valid name: use letters, digits, and _ . : - (at most 63)`,
			"trackers[2]: no check: set exactly one of script, interface, file, process",
			`trackers[3].name: "ok" is already used by trackers[2]: each tracker needs its own name`,
			"trackers[3]: sets script, file, process: set exactly one of script, interface, file, process",
		}},
		{"weights", `
trackers:
  - {name: s, script: {command: [x]}, weight: -254}
  - {name: i, interface: {name: eth1}, weight: 254}
  - {name: p, process: {name: x}, weight: 300}
  - {name: f, file: {path: /x}, weight: 255}
  - {name: f2, file: {path: /x}, weight: -254}
`, []string{
			"trackers[0].weight: -254 is out of range -253..253",
			"trackers[1].weight: 254 is out of range -253..253",
			"trackers[2].weight: 300 is out of range -253..253",
			"trackers[3].weight: 255 is out of range -254..254 (multiplied by the file's number)",
		}},
		{"script", `
trackers:
  - {name: a, script: {}}
  - {name: b, script: {command: [""], interval: 5ms, timeout: 0s, rise: 101, fall: 1000, user: "a b"}}
  - {name: c, script: {command: [" "], interval: 1h1s, timeout: 61m, user: "nginx:"}}
  - {name: d, script: {command: ["/usr/bin/pgrep -x nginx"], interval: 0s, timeout: -1s}}
  - {name: e, script: {command: ["/opt/my check", "arg"], interval: 10ms, timeout: 1h, rise: 100, fall: 100, user: "nginx:www-data"}}
  - {name: f, script: {command: [pgrep, ""], interval: 1h, user: "0:0"}}
`, []string{
			`trackers[0].script.command: required: the program and its arguments, e.g. ["/usr/bin/pgrep", "-x", "nginx"]`,
			"trackers[1].script.command[0]: empty: give the program to run (an absolute path, or a name looked up in PATH)",
			"trackers[1].script.interval: 5ms is out of range 10ms..1h (leave it out for 1s)",
			"trackers[1].script.timeout: 0s is out of range: more than 0s and at most 1h (leave it out for the interval)",
			"trackers[1].script.rise: 101 is out of range 1..100",
			"trackers[1].script.fall: 1000 is out of range 1..100",
			`trackers[1].script.user: "a b" is not a user: write "name" or "name:group" (names or numeric ids), or leave it out to run as root`,
			"trackers[2].script.command[0]: empty: give the program to run (an absolute path, or a name looked up in PATH)",
			"trackers[2].script.interval: 1h0m1s is out of range 10ms..1h (leave it out for 1s)",
			"trackers[2].script.timeout: 1h1m is out of range: more than 0s and at most 1h (leave it out for the interval)",
			`trackers[2].script.user: "nginx:" is not a user: write "name" or "name:group" (names or numeric ids), or leave it out to run as root`,
			`trackers[3].script.command[0]: "/usr/bin/pgrep -x nginx" is one string: list the program and each argument separately, e.g. ["/usr/bin/pgrep", "-x", "nginx"], or run a shell: ["/bin/sh", "-c", "/usr/bin/pgrep -x nginx"]`,
			"trackers[3].script.interval: 0s is out of range 10ms..1h (leave it out for 1s)",
			"trackers[3].script.timeout: -1s is out of range: more than 0s and at most 1h (leave it out for the interval)",
		}},
		{"interface, file, process", `
trackers:
  - {name: a, interface: {}}
  - {name: b, interface: {name: "eth0/1"}}
  - {name: c, interface: {name: "a-very-long-name0"}}
  - {name: d, file: {}}
  - {name: e, file: {path: run/haa/drain}}
  - {name: f, file: {path: "/run//haa/./drain/"}}
  - {name: g, process: {}}
  - {name: h, process: {name: /usr/sbin/nginx, quorum: 3, quorumMax: 2, interval: 2h}}
  - {name: i, process: {name: nginx, quorumMax: 1, interval: 9ms}}
  - {name: j, process: {name: nginx, quorum: 2, quorumMax: 2, args: [""]}}
`, []string{
			"trackers[0].interface.name: required: the interface to follow, e.g. eth1",
			`trackers[1].interface.name: "eth0/1" is not a valid interface name`,
			`trackers[2].interface.name: "a-very-long-name0" is not a valid interface name`,
			"trackers[3].file.path: required: the file to read, e.g. /run/haa/drain",
			`trackers[4].file.path: "run/haa/drain" must be an absolute path`,
			`trackers[5].file.path: "/run//haa/./drain/" is not a clean path: write "/run/haa/drain"`,
			"trackers[6].process.name: required: the process name, e.g. nginx",
			`trackers[7].process.name: "/usr/sbin/nginx" is a path: give the process name (as ps -e shows it, or the base name of its program), e.g. "nginx"`,
			"trackers[7].process.quorumMax: 2 is below quorum 3: set it to at least 3, or leave it out for no upper limit",
			"trackers[7].process.interval: 2h is out of range 10ms..1h (leave it out for 1s)",
			"trackers[8].process.interval: 9ms is out of range 10ms..1h (leave it out for 1s)",
		}},
		{"instance track and notify", `
trackers:
  - {name: s, script: {command: [x]}, weight: -20}
  - {name: f, file: {path: /x}}
  - {name: broken, script: {command: [x]}, file: {path: /x}}
instances:
  - name: VI_1
    interface: eth0
    vrid: 1
    vips: [10.0.0.1/24]
    track: [{tracker: s, weight: 254}, {tracker: f, weight: -255}, {tracker: nope}, {tracker: s}, {}, {tracker: broken, weight: 999}, {tracker: f, weight: 254}]
    notify: {master: [""], backup: [/x, ""], fault: ["/bin/x y"], any: [notify-all], timeout: 0s, user: ":g"}
  - {name: VI_2, interface: eth0, vrid: 2, vips: [10.0.0.2/24], notify: {timeout: 2h}}
`, []string{
			"trackers[2]: sets script, file: set exactly one of script, interface, file, process",
			"instances[0].track[0].weight: 254 is out of range -253..253 for s, a script tracker",
			"instances[0].track[1].weight: -255 is out of range -254..254 for f, a file tracker (multiplied by the file's number)",
			`instances[0].track[2].tracker: no tracker named "nope": define it under trackers, or fix the name`,
			`instances[0].track[3].tracker: "s" is listed twice: remove one`,
			"instances[0].track[4].tracker: required: the name of a tracker, e.g. chk_nginx",
			`instances[0].track[6].tracker: "f" is listed twice: remove one`,
			"instances[0].notify.master[0]: empty: give the program to run (an absolute path, or a name looked up in PATH)",
			`instances[0].notify.fault[0]: "/bin/x y" is one string: list the program and each argument separately, e.g. ["/bin/x", "y"], or run a shell: ["/bin/sh", "-c", "/bin/x y"]`,
			"instances[0].notify.timeout: 0s is out of range: more than 0s and at most 1h (leave it out for 30s)",
			`instances[0].notify.user: ":g" is not a user: write "name" or "name:group" (names or numeric ids), or leave it out to run as root`,
			"instances[1].notify.timeout: 2h is out of range: more than 0s and at most 1h (leave it out for 30s)",
		}},
		{"sync groups", `
trackers:
  - {name: s, script: {command: [x]}}
instances:
` + trackInst + `  - {name: VI_3, interface: eth0, vrid: 3, vips: [10.0.0.3/24]}
syncGroups:
  - {name: G, instances: [VI_1, VI_1, VI_9, ""]}
  - {name: G, instances: [VI_1]}
  - {instances: []}
  - name: "bad name"
    instances: [VI_2, VI_3]
    notify: {stop: [""]}
    track: [{tracker: s, weight: 300}, {tracker: zz}]
  - {name: H, instances: [VI_3, VI_2]}
`, []string{
			`syncGroups[0].instances[1]: "VI_1" is listed twice: remove one`,
			`syncGroups[0].instances[2]: no instance named "VI_9" in this configuration: list instances of this configuration by name`,
			"syncGroups[0].instances[3]: empty: give the name of an instance of this configuration",
			`syncGroups[1].name: "G" is already used by syncGroups[0]: each sync group needs its own name`,
			`syncGroups[1].instances: only "VI_1": a sync group needs at least two instances (an instance alone needs no group: remove it)`,
			"syncGroups[1].instances[0]: VI_1 is already in sync group G (syncGroups[0]): an instance is in one sync group at most",
			"syncGroups[2].name: required: give the group a name such as VG_1",
			"syncGroups[2].instances: required: the names of the instances that change state together, at least two, e.g. [VI_1, VI_2]",
			`syncGroups[3].name: "bad name" is not a valid name: use letters, digits, and _ . : - (at most 63)`,
			"syncGroups[3].notify.stop[0]: empty: give the program to run (an absolute path, or a name looked up in PATH)",
			"syncGroups[3].track[0].weight: 300 is out of range -253..253 for s, a script tracker",
			`syncGroups[3].track[1].tracker: no tracker named "zz": define it under trackers, or fix the name`,
			`syncGroups[4].instances[0]: VI_3 is already in sync group syncGroups[3]: an instance is in one sync group at most`,
			`syncGroups[4].instances[1]: VI_2 is already in sync group syncGroups[3]: an instance is in one sync group at most`,
		}},
		{"document order", `
name: "bad name"
trackers: [{name: t}]
instances:
  - {name: VI_1, interface: eth0, vrid: 1, vips: [10.0.0.1/24], track: [{tracker: x}]}
  - {name: VI_1, interface: eth0, vrid: 2, vips: [10.0.0.2/24]}
syncGroups: [{name: G, instances: [VI_1]}]
`, []string{
			`name: "bad name" is not a valid name: use letters, digits, and _ . : - (at most 63)`,
			"trackers[0]: no check: set exactly one of script, interface, file, process",
			`instances[0].track[0].tracker: no tracker named "x": define it under trackers, or fix the name`,
			`instances[1].name: "VI_1" is already used by instances[0]`,
			`syncGroups[0].instances: only "VI_1": a sync group needs at least two instances (an instance alone needs no group: remove it)`,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			y := c.yaml
			if !strings.HasPrefix(strings.TrimSpace(y), "name:") {
				y = "name: n1\n" + y
			}
			cfg, err := Parse([]byte(y))
			if err != nil {
				t.Fatal(err)
			}
			wantExactly(t, Validate(cfg), c.want...)
		})
	}
}

func TestParseTrackFields(t *testing.T) {
	_, err := Parse([]byte(`
trackers:
  - name: a
    script: {command: /bin/true, interval: 1, rise: -1}
    weight: "x"
    interfase: {name: eth0}
instances:
  - track: [{tracker: a, wieght: 3}]
    notify: {master: /bin/x, timeout: 5}
syncGroups:
  - {instances: VI_1}
`))
	wantProblems(t, err,
		`instances[0].notify.master: expected a list, got the string "/bin/x"`,
		`instances[0].notify.timeout: duration 5 needs a unit`,
		`instances[0].track[0].wieght: unknown field "wieght" (did you mean "weight"?)`,
		`syncGroups[0].instances: expected a list, got the string "VI_1"`,
		`trackers[0].interfase: unknown field "interfase" (did you mean "interface"?)`,
		`trackers[0].script.command: expected a list, got the string "/bin/true"`,
		`trackers[0].script.interval: duration 1 needs a unit`,
		`trackers[0].script.rise: expected a whole number >= 0, got -1`,
		`trackers[0].weight: expected a whole number, got the string "x"`,
	)
}

// fleetTrack is a fleet document with trackers and a sync group: VI_1 and
// VI_2 run on lb1 and lb2, VI_3 on lb3 only.
const fleetTrack = `kind: Fleet
nodes: [lb1, lb2, lb3]
trackers:
  - {name: chk_nginx, script: {command: [/usr/bin/pgrep, -x, nginx], fall: 2}, weight: -20}
  - {name: uplink, interface: {name: eth1}, weight: -50}
  - {name: drain, file: {path: /run/haa/drain}, weight: -1}
  - {name: unused, process: {name: nginx}}
  - {name: lb3_only, interface: {name: eth2}}
instances:
  - name: VI_1
    interface: eth0
    vrid: 51
    vips: [10.0.0.1/24]
    priorities: {lb1: 100, lb2: 90}
    track: [{tracker: chk_nginx}]
    notify: {master: [/etc/haa/notify.sh, master]}
    overrides: {lb2: {track: [{tracker: drain, weight: -10}]}}
  - {name: VI_2, interface: eth0, vrid: 52, vips: [10.0.0.2/24], priorities: {lb1: 90, lb2: 100}}
  - {name: VI_3, interface: eth0, vrid: 53, vips: [10.0.0.3/24], priorities: {lb3: 100}, track: [{tracker: lb3_only}]}
syncGroups:
  - {name: VG_1, instances: [VI_1, VI_2], track: [{tracker: uplink}], notify: {any: [/etc/haa/group.sh]}}
`

func TestFleetTrackersAndGroups(t *testing.T) {
	doc := mustFleet(t, fleetTrack)
	if err := ValidateFleet(doc); err != nil {
		t.Fatal(err)
	}
	// The instances carry their track and notify fields (17, 18).
	lb1, _ := ForNode(doc, "lb1")
	if len(lb1[0].GetTrack()) != 1 || lb1[0].GetTrack()[0].GetTracker() != "chk_nginx" ||
		strings.Join(lb1[0].GetNotify().GetMaster(), " ") != "/etc/haa/notify.sh master" {
		t.Errorf("lb1 VI_1 = %v", lb1[0])
	}
	lb2, _ := ForNode(doc, "lb2")
	if len(lb2[0].GetTrack()) != 1 || lb2[0].GetTrack()[0].GetTracker() != "drain" || lb2[0].GetTrack()[0].GetWeight() != -10 {
		t.Errorf("lb2 VI_1 track = %v, want the override's", lb2[0].GetTrack())
	}
	names := func(ts []*haav1.Tracker) string {
		var s []string
		for _, t := range ts {
			s = append(s, t.GetName())
		}
		return strings.Join(s, ",")
	}
	for _, c := range []struct {
		node, trackers, tpaths, groups, gpaths string
	}{
		{"lb1", "chk_nginx,uplink", "trackers[0] trackers[1]", "VG_1", "syncGroups[0]"},
		{"lb2", "uplink,drain", "trackers[1] trackers[2]", "VG_1", "syncGroups[0]"},
		{"lb3", "lb3_only", "trackers[4]", "", ""},
		{"lb9", "", "", "", ""},
		{"", "", "", "", ""},
	} {
		ts, gs, tp, gp := ForNodeExtras(doc, c.node)
		var gn []string
		for _, g := range gs {
			gn = append(gn, g.GetName())
		}
		if names(ts) != c.trackers || strings.Join(tp, " ") != c.tpaths || strings.Join(gn, ",") != c.groups || strings.Join(gp, " ") != c.gpaths {
			t.Errorf("%s: trackers %s at %v, groups %v at %v; want %s at %s, %s at %s", c.node, names(ts), tp, gn, gp,
				c.trackers, c.tpaths, c.groups, c.gpaths)
		}
		// What a node runs passes the rules of its own configuration.
		ins, _ := ForNode(doc, c.node)
		if _, err := Resolve(&haav1.AgentConfig{Name: "x", Instances: ins, Trackers: ts, SyncGroups: gs}); err != nil {
			t.Errorf("%s: %v", c.node, err)
		}
	}
	// Fresh copies.
	ts, gs, _, _ := ForNodeExtras(doc, "lb1")
	ts[0].Weight = 5
	gs[0].Instances[0] = "changed"
	if doc.Trackers[0].GetWeight() != -20 || doc.SyncGroups[0].Instances[0] != "VI_1" {
		t.Errorf("ForNodeExtras shares memory with the document")
	}
	if ts, gs, tp, gp := ForNodeExtras(nil, "lb1"); ts != nil || gs != nil || tp != nil || gp != nil {
		t.Errorf("nil document gives %v %v", ts, gs)
	}
}

func TestValidateFleetTrackersAndGroups(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       []string
	}{
		{"issue tracker rules", `kind: Fleet
nodes: [lb1, lb2]
trackers:
  - {name: a, script: {command: [x], interval: 5ms}}
  - {name: a, interface: {name: eth1}, file: {path: x}}
`, []string{
			"trackers[0].script.interval: 5ms is out of range 10ms..1h (leave it out for 1s)",
			`trackers[1].name: "a" is already used by trackers[0]: each tracker needs its own name`,
			"trackers[1]: sets interface, file: set exactly one of script, interface, file, process",
			`trackers[1].file.path: "x" must be an absolute path`,
		}},
		{"references name the document's trackers", `kind: Fleet
nodes: [lb1, lb2]
trackers: [{name: t, file: {path: /x}}]
instances:
  - name: VI_1
    interface: eth0
    vrid: 1
    vips: [10.0.0.1/24]
    track: [{tracker: own}, {tracker: t, weight: 300}]
    overrides: {lb2: {track: [{tracker: other}], notify: {fault: [""]}}}
  - {name: VI_2, interface: eth0, vrid: 2, vips: [10.0.0.2/24]}
syncGroups:
  - {name: G, instances: [VI_1, VI_2], track: [{tracker: nope}]}
`, []string{
			`instances[0].track[0].tracker: no tracker named "own" in the document: define it under the document's trackers (a document cannot use a node's own trackers), or fix the name`,
			"instances[0].track[1].weight: 300 is out of range -254..254 for t, a file tracker (multiplied by the file's number)",
			`instances[0].overrides.lb2.track[0].tracker: no tracker named "other" in the document: define it under the document's trackers (a document cannot use a node's own trackers), or fix the name`,
			"instances[0].overrides.lb2.notify.fault[0]: empty: give the program to run (an absolute path, or a name looked up in PATH)",
			`syncGroups[0].track[0].tracker: no tracker named "nope" in the document: define it under the document's trackers (a document cannot use a node's own trackers), or fix the name`,
		}},
		{"base track overridden on every node", `kind: Fleet
nodes: [lb1, lb2]
trackers: [{name: t, file: {path: /x}}]
instances:
  - {name: VI_1, interface: eth0, vrid: 1, vips: [10.0.0.1/24], track: [{tracker: own}],
     overrides: {lb1: {track: [{tracker: t}]}, lb2: {track: []}}}
`, []string{
			// An empty list does not override (proto3): lb2 runs the base.
			`instances[0].track[0].tracker: no tracker named "own" in the document: define it under the document's trackers (a document cannot use a node's own trackers), or fix the name`,
		}},
		{"sync groups", `kind: Fleet
nodes: [lb1, lb2, lb3]
instances:
  - {name: VI_1, interface: eth0, vrid: 1, vips: [10.0.0.1/24], priorities: {lb1: 100, lb2: 90}}
  - {name: VI_2, interface: eth0, vrid: 2, vips: [10.0.0.2/24], priorities: {lb1: 100, lb2: 90}}
  - {name: VI_3, interface: eth0, vrid: 3, vips: [10.0.0.3/24]}
  - {name: VI_4, interface: eth0, vrid: 4, vips: [10.0.0.4/24], priorities: {lb2: 100}}
  - {name: VI_5, interface: eth0, vrid: 5, vips: [10.0.0.5/24], priorities: {lb2: 100}}
syncGroups:
  - {name: VG_1, instances: [VI_1, VI_2, VI_3, VI_9]}
  - {name: VG_1, instances: [VI_2, VI_4]}
  - {name: VG_3, instances: [VI_5]}
`, []string{
			`syncGroups[0].instances[3]: no instance named "VI_9" in the document: list instances of the document by name`,
			"syncGroups[0]: VI_1 does not run on lb3 but VI_3 does: a sync group's instances must run on the same nodes (give them priorities for the same nodes)",
			`syncGroups[1].name: "VG_1" is already used by syncGroups[0]: each sync group needs its own name`,
			"syncGroups[1].instances[0]: VI_2 is already in sync group VG_1 (syncGroups[0]): an instance is in one sync group at most",
			"syncGroups[1]: VI_4 does not run on lb1 but VI_2 does: a sync group's instances must run on the same nodes (give them priorities for the same nodes)",
			`syncGroups[2].instances: only "VI_5": a sync group needs at least two instances (an instance alone needs no group: remove it)`,
		}},
		{"order: nodes, trackers, instances, groups", `
nodes: [lb1]
trackers: [{name: t}]
instances:
  - {name: VI_1, interface: eth0, vrid: 1, vips: [10.0.0.1/24], track: [{tracker: x}]}
syncGroups: [{name: G, instances: [VI_1]}]
`, []string{
			"kind: want Fleet: start the document with kind: Fleet",
			"trackers[0]: no check: set exactly one of script, interface, file, process",
			`instances[0].track[0].tracker: no tracker named "x" in the document: define it under the document's trackers (a document cannot use a node's own trackers), or fix the name`,
			`syncGroups[0].instances: only "VI_1": a sync group needs at least two instances (an instance alone needs no group: remove it)`,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantExactly(t, ValidateFleet(mustFleet(t, c.yaml)), c.want...)
		})
	}
}

func TestForNodeCopiesTrackAndNotify(t *testing.T) {
	// Every Instance field but name, vrid and priority (which need their
	// own handling) comes from the FleetInstance field of the same name.
	fi := &haav1.FleetInstance{
		Track:  []*haav1.TrackRef{{Tracker: "a", Weight: proto.Int32(-3)}, {Tracker: "b"}},
		Notify: &haav1.Notify{Master: []string{"/m"}, Any: []string{"/a", "x"}, User: "u"},
	}
	in := baseInstance(fi)
	want := &haav1.Instance{Track: fi.Track, Notify: fi.Notify}
	if !proto.Equal(in, want) {
		t.Fatalf("baseInstance = %v, want %v", in, want)
	}
	// Field numbers and types agree for every Instance field.
	im := (&haav1.Instance{}).ProtoReflect().Descriptor().Fields()
	fm := (&haav1.FleetInstance{}).ProtoReflect().Descriptor().Fields()
	for i := 0; i < im.Len(); i++ {
		a := im.Get(i)
		b := fm.ByNumber(a.Number())
		if b == nil || b.Name() != a.Name() || b.Kind() != a.Kind() || b.Cardinality() != a.Cardinality() ||
			(a.Message() != nil && a.Message().FullName() != b.Message().FullName()) {
			t.Errorf("Instance field %d %s has no twin in FleetInstance: %v", a.Number(), a.Name(), b)
		}
	}
}

func TestTrackNilEntries(t *testing.T) {
	cfg := &haav1.AgentConfig{Name: "n1",
		Trackers:   []*haav1.Tracker{nil},
		Instances:  []*haav1.Instance{{Name: "VI_1", Interface: "eth0", Vrid: 1, Vips: []string{"10.0.0.1/24"}, Track: []*haav1.TrackRef{nil}}},
		SyncGroups: []*haav1.SyncGroup{nil},
	}
	wantExactly(t, Validate(cfg),
		"trackers[0].name: required: give the tracker a name such as chk_nginx",
		"trackers[0]: no check: set exactly one of script, interface, file, process",
		"instances[0].track[0].tracker: required: the name of a tracker, e.g. chk_nginx",
		"syncGroups[0].name: required: give the group a name such as VG_1",
		"syncGroups[0].instances: required: the names of the instances that change state together, at least two, e.g. [VI_1, VI_2]",
	)
	doc := &haav1.Fleet{Kind: "Fleet", Nodes: []string{"lb1"}, Trackers: []*haav1.Tracker{nil},
		Instances:  []*haav1.FleetInstance{{Name: "VI_1", Interface: "eth0", Vrid: 1, Vips: []string{"10.0.0.1/24"}, Track: []*haav1.TrackRef{nil}}},
		SyncGroups: []*haav1.SyncGroup{nil, {Instances: []string{"VI_1"}}}}
	if err := ValidateFleet(doc); err == nil {
		t.Fatal("valid")
	}
	ts, gs, _, _ := ForNodeExtras(doc, "lb1")
	if len(ts) != 0 || len(gs) != 1 || gs[0].GetInstances()[0] != "VI_1" {
		t.Errorf("ForNodeExtras = %v %v", ts, gs)
	}
}

func TestDur(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Hour: "1h", 2 * time.Hour: "2h", 90 * time.Minute: "1h30m",
		time.Minute: "1m", 10 * time.Millisecond: "10ms", 61 * time.Second: "1m1s", time.Hour + time.Second: "1h0m1s", 0: "0s"} {
		if got := dur(d); got != want {
			t.Errorf("dur(%v) = %q, want %q", d, got, want)
		}
	}
}
