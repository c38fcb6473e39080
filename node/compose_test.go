package node

import (
	"strings"
	"testing"

	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// trackDoc is a fleet document with trackers and a sync group. lb1 runs
// VI_1 and VI_2 (and so VG_1, chk and up); lb2 runs VI_3 (and so drain).
const trackDoc = `kind: Fleet
nodes: [lb1, lb2]
trackers:
  - {name: chk, script: {command: [/usr/bin/pgrep, nginx]}, weight: -20}
  - {name: up, interface: {name: eth1}, weight: -50}
  - {name: drain, file: {path: /run/haa/drain}, weight: -1}
instances:
  - {name: VI_1, interface: eth0, vrid: 51, vips: ["10.77.0.140/24"], priorities: {lb1: 100}, track: [{tracker: chk}]}
  - {name: VI_2, interface: eth0, vrid: 52, vips: ["10.77.0.141/24"], priorities: {lb1: 90}}
  - {name: VI_3, interface: eth0, vrid: 53, vips: ["10.77.0.142/24"], priorities: {lb2: 90}, track: [{tracker: drain}]}
syncGroups:
  - {name: VG_1, instances: [VI_1, VI_2], track: [{tracker: up}]}
`

func trackLocal() *haav1.AgentConfig {
	return &haav1.AgentConfig{Name: "lb1",
		Trackers: []*haav1.Tracker{{Name: "own", Interface: &haav1.InterfaceCheck{Name: "eth2"}}},
		Instances: []*haav1.Instance{
			{Name: "OWN", Interface: "eth0", Vrid: 60, Vips: []string{"10.77.0.9/24"}, Track: []*haav1.TrackRef{{Tracker: "own"}}},
			{Name: "OWN2", Interface: "eth0", Vrid: 61, Vips: []string{"10.77.0.10/24"}},
		},
		SyncGroups: []*haav1.SyncGroup{{Name: "LG", Instances: []string{"OWN", "OWN2"}}},
	}
}

func TestComposeTrackersAndGroups(t *testing.T) {
	doc := parseDoc(t, trackDoc)
	if err := config.ValidateFleet(doc); err != nil {
		t.Fatal(err)
	}
	c, err := compose(trackLocal(), doc, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(namesOf(c.cfg.GetTrackers()), ","); got != "own,chk,up" {
		t.Errorf("trackers %s, want own,chk,up (drain is not tracked on lb1)", got)
	}
	if got := strings.Join(namesOf(c.cfg.GetSyncGroups()), ","); got != "LG,VG_1" {
		t.Errorf("sync groups %s, want LG,VG_1", got)
	}
	if c.nLocalTrackers != 1 || strings.Join(c.trackerPaths, " ") != "trackers[0] trackers[1]" ||
		c.nLocalGroups != 1 || strings.Join(c.groupPaths, " ") != "syncGroups[0]" {
		t.Errorf("composition %+v", c)
	}
	a, err := config.Resolve(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Instances) != 4 || len(a.Trackers) != 3 || len(a.SyncGroups) != 2 ||
		a.Instances[2].Track[0] != (config.TrackRef{Tracker: "chk", Weight: -20}) {
		t.Errorf("resolved %+v", a)
	}
	// The document's tracker the node does not run does not clash with
	// the node's own of the same name.
	lb2 := trackLocal()
	lb2.Name = "lb2"
	lb2.Trackers[0].Name = "chk"
	lb2.Instances[0].Track[0].Tracker = "chk"
	c2, err := compose(lb2, doc, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(namesOf(c2.cfg.GetTrackers()), ","); got != "chk,drain" || len(c2.cfg.GetSyncGroups()) != 1 {
		t.Errorf("lb2: trackers %s, groups %v", got, namesOf(c2.cfg.GetSyncGroups()))
	}
	// Without a document: the node's own.
	c3, err := compose(trackLocal(), nil, false)
	if err != nil || len(c3.cfg.GetTrackers()) != 1 || c3.nLocalTrackers != 1 || c3.nLocalGroups != 1 {
		t.Errorf("no document: %+v %v", c3, err)
	}
}

func TestComposeNameClashes(t *testing.T) {
	doc := parseDoc(t, trackDoc)
	local := trackLocal()
	// Clashes at other indexes on each side, to tell the paths apart.
	local.Trackers = append(local.Trackers, &haav1.Tracker{Name: "up", Interface: &haav1.InterfaceCheck{Name: "eth1"}})
	local.SyncGroups = append([]*haav1.SyncGroup{{Name: "X", Instances: []string{"OWN", "OWN2"}}}, local.SyncGroups...)
	local.SyncGroups[1].Name = "VG_1"
	local.SyncGroups[1].Instances = nil
	_, err := compose(local, doc, true)
	wantFields(t, err,
		`trackers[1].name: "up" is also a tracker of node lb1's own configuration (its trackers[1]): rename one, or remove it from the node's file`,
		`syncGroups[0].name: "VG_1" is also a sync group of node lb1's own configuration (its syncGroups[1]): rename one, or remove it from the node's file`,
	)
	_, err = compose(local, doc, false)
	wantFields(t, err,
		`trackers[1].name: "up" is also a tracker of the fleet document (trackers[1]): rename one, or remove it from the document`,
		`syncGroups[1].name: "VG_1" is also a sync group of the fleet document (syncGroups[0]): rename one, or remove it from the document`,
	)
	// All clashes at once, trackers first, as in the document.
	local.Instances[1].Name = "VI_2"
	_, err = compose(local, doc, true)
	wantFields(t, err,
		`trackers[1].name: "up" is also a tracker of node lb1's own configuration (its trackers[1]): rename one, or remove it from the node's file`,
		`instances[1].name: "VI_2" is also an instance of node lb1's own configuration (its instances[1]): rename one, or remove it from the node's file`,
		`syncGroups[0].name: "VG_1" is also a sync group of node lb1's own configuration (its syncGroups[1]): rename one, or remove it from the node's file`,
	)
}

func TestComposeRepathTrackersAndGroups(t *testing.T) {
	// A document with problems ValidateFleet would catch, applied as is,
	// to see the paths of the composed configuration's errors.
	doc := parseDoc(t, strings.NewReplacer(
		"weight: -20", "weight: -300",
		"track: [{tracker: chk}]", "track: [{tracker: chk}, {tracker: nope}]",
	).Replace(trackDoc))
	local := trackLocal()
	// The node's group takes VI_1 of the document: VG_1 then lists it
	// again.
	local.SyncGroups[0].Instances = []string{"OWN", "VI_1"}
	c, err := compose(local, doc, true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = config.Resolve(c.cfg)
	wantFields(t, c.repath(err, true),
		"trackers[0].weight: -300 is out of range -253..253",
		`instances[0].track[1].tracker: no tracker named "nope": define it under trackers, or fix the name`,
		"syncGroups[0].instances[0]: VI_1 is already in sync group LG (local.syncGroups[0]): an instance is in one sync group at most",
	)
	c, err = compose(local, doc, false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = config.Resolve(c.cfg)
	wantFields(t, c.repath(err, false),
		"fleet.trackers[0].weight: -300 is out of range -253..253",
		`fleet.instances[0].track[1].tracker: no tracker named "nope": define it under trackers, or fix the name`,
		"fleet.syncGroups[0].instances[0]: VI_1 is already in sync group LG (syncGroups[0]): an instance is in one sync group at most",
	)
}

func TestRepathRewritesTopLevelPathsOnly(t *testing.T) {
	c := composed{nLocal: 2, fleetPaths: []string{"instances[3]"},
		nLocalTrackers: 1, trackerPaths: []string{"trackers[4]", "trackers[7]"},
		nLocalGroups: 0, groupPaths: []string{"syncGroups[2]"}}
	err := &config.Error{Source: "src", Fields: []config.FieldError{
		{Path: "instances[2].vrid", Msg: "vrid 1 is already used on eth0 by instances[1]"},
		{Path: "trackers[2].name", Msg: `"x" is already used by trackers[0]`},
		{Path: "syncGroups[0].instances[1]", Msg: "VI_1 is already in sync group G (syncGroups[0])"},
		{Path: "instances[0].track[0].tracker", Msg: "x (trackers[1]) instances[9] fleet.instances[0]"},
		{Path: "name", Msg: "no paths here: sub.instances[0] xinstances[0]"},
	}}
	for _, c2 := range []struct {
		fleetSide bool
		want      []string
	}{
		{true, []string{
			"instances[3].vrid: vrid 1 is already used on eth0 by local.instances[1]",
			`trackers[7].name: "x" is already used by local.trackers[0]`,
			"syncGroups[2].instances[1]: VI_1 is already in sync group G (syncGroups[2])",
			"local.instances[0].track[0].tracker: x (trackers[4]) local.instances[9] fleet.instances[0]",
			"name: no paths here: sub.instances[0] xinstances[0]",
		}},
		{false, []string{
			"fleet.instances[3].vrid: vrid 1 is already used on eth0 by instances[1]",
			`fleet.trackers[7].name: "x" is already used by trackers[0]`,
			"fleet.syncGroups[2].instances[1]: VI_1 is already in sync group G (fleet.syncGroups[2])",
			"instances[0].track[0].tracker: x (fleet.trackers[4]) instances[9] fleet.instances[0]",
			"name: no paths here: sub.instances[0] xinstances[0]",
		}},
	} {
		out := c.repath(err, c2.fleetSide)
		if ce, ok := out.(*config.Error); !ok || ce.Source != "src" {
			t.Fatalf("repath returned %T %v", out, out)
		}
		wantFields(t, out, c2.want...)
	}
}

// wantFields asserts that err lists exactly these "path: message".
func wantFields(t *testing.T, err error, want ...string) {
	t.Helper()
	var got []string
	for _, f := range config.Fields(err) {
		got = append(got, f.String())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// The virtual servers a node directs are composed with its own; a name
// used by both is an error with the side's path, and a problem of a
// fleet virtual server is reported at its document path.
func TestComposeVirtualServers(t *testing.T) {
	doc := parseDoc(t, `kind: Fleet
nodes: [lb1, lb2]
instances:
  - {name: VI_1, interface: eth0, vrid: 51, vips: ["10.77.0.100/24"]}
virtualServers:
  - {name: web, address: "10.77.0.100:80", realServers: [{address: "10.77.1.1:80"}]}
  - {name: dns, address: "10.77.0.100:53", protocol: udp, realServers: [{address: "10.77.1.1:53"}], scheduler: fastest}
`)
	local := &haav1.AgentConfig{Name: "lb1", VirtualServers: []*haav1.VirtualServer{{Name: "own", Address: "10.77.0.9:80"}}}
	c, err := compose(local, doc, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := namesOf(c.cfg.GetVirtualServers()); strings.Join(got, ",") != "own,web,dns" || len(c.fleetVirtualServers()) != 2 {
		t.Fatalf("composed virtual servers %v", got)
	}
	_, err = config.Resolve(c.cfg)
	wantFields(t, c.repath(err, true), `virtualServers[1].scheduler: "fastest" is not a scheduler: use one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, fo, ovf`)
	local.VirtualServers[0].Name = "web"
	_, err = compose(local, doc, false)
	wantFields(t, err, `virtualServers[0].name: "web" is also a virtual server of the fleet document (virtualServers[0]): rename one, or remove it from the document`)
}
