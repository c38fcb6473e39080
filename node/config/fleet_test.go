package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// fleetExample is the fleet document of the issue, verbatim.
const fleetExample = `kind: Fleet
nodes: [lb1, lb2]
instances:
  - name: VI_1
    interface: eth0
    vrid: 51
    advertInterval: 1s
    vips: ["192.168.55.140/24"]
    priorities: {lb1: 100, lb2: 80}
  - name: VI_2
    interface: eth0
    vrid: 52
    advertInterval: 1s
    vips: ["192.168.55.141/24"]
    priorities: {lb1: 80, lb2: 100}
`

func mustFleet(t *testing.T, y string) *haav1.Fleet {
	t.Helper()
	doc, err := ParseFleet([]byte(y))
	if err != nil {
		t.Fatalf("ParseFleet: %v\n%s", err, y)
	}
	return doc
}

func TestFleetIssueExample(t *testing.T) {
	doc := mustFleet(t, fleetExample)
	if err := ValidateFleet(doc); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		node  string
		prios []uint32
	}{{"lb1", []uint32{100, 80}}, {"lb2", []uint32{80, 100}}} {
		ins, paths := ForNode(doc, c.node)
		if len(ins) != 2 || len(paths) != 2 || paths[0] != "instances[0]" || paths[1] != "instances[1]" {
			t.Fatalf("%s: %d instances, paths %v", c.node, len(ins), paths)
		}
		for k, in := range ins {
			want := &haav1.Instance{Name: "VI_" + string(rune('1'+k)), Interface: "eth0", Vrid: uint32(51 + k),
				Priority: proto.Uint32(c.prios[k]), Vips: []string{[]string{"192.168.55.140/24", "192.168.55.141/24"}[k]}}
			got := proto.Clone(in).(*haav1.Instance)
			if got.GetAdvertInterval().AsDuration() != time.Second {
				t.Errorf("%s %s: advertInterval %v", c.node, in.GetName(), got.GetAdvertInterval())
			}
			got.AdvertInterval = nil
			if !proto.Equal(got, want) {
				t.Errorf("%s: instance %d = %v, want %v", c.node, k, got, want)
			}
		}
		// What a node runs passes the rules of its own configuration.
		a, err := Resolve(&haav1.AgentConfig{Name: c.node, Instances: ins})
		if err != nil {
			t.Fatalf("%s: %v", c.node, err)
		}
		if a.Instances[0].VRRP.Priority != uint8(c.prios[0]) || a.Instances[1].VRRP.Priority != uint8(c.prios[1]) {
			t.Errorf("%s: resolved priorities %d, %d", c.node, a.Instances[0].VRRP.Priority, a.Instances[1].VRRP.Priority)
		}
	}
	if ins, paths := ForNode(doc, "lb3"); ins != nil || paths != nil {
		t.Errorf("lb3 gets %v %v", ins, paths)
	}
	if ins, _ := ForNode(doc, ""); ins != nil {
		t.Errorf("the empty node gets %v", ins)
	}
}

func TestLoadFleet(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "fleet.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	unknown := filepath.Join(dir, "unknown.yaml")
	for p, y := range map[string]string{
		good:    fleetExample,
		bad:     strings.Replace(fleetExample, "lb2: 80", "lb3: 80", 1),
		unknown: "kind: Fleet\nnode: [lb1]\n",
	} {
		if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	doc, err := LoadFleet(good)
	if err != nil || len(doc.GetInstances()) != 2 {
		t.Fatalf("LoadFleet: %v %v", doc, err)
	}
	_, err = LoadFleet(bad)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("error %v does not name the file", err)
	}
	wantProblems(t, err, "instances[0].priorities.lb3: lb3 is not in nodes (lb1, lb2): add it to nodes or remove it")
	_, err = LoadFleet(unknown)
	if err == nil || !strings.Contains(err.Error(), unknown) {
		t.Fatalf("error %v does not name the file", err)
	}
	wantProblems(t, err, `node: unknown field "node" (did you mean "nodes"?)`)
	if _, err := LoadFleet(filepath.Join(dir, "missing.yaml")); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing file: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestIsFleet(t *testing.T) {
	for in, want := range map[string]bool{
		fleetExample:                     true,
		"kind: Fleet":                    true,
		`{"kind": "Fleet", "nodes": []}`: true,
		"kind: fleet":                    true, // ValidateFleet then says what to write
		"# comment\nkind: Fleet\n":       true,
		issueExample:                     false,
		"":                               false,
		"kind:":                          false,
		"kind: Fleets":                   false,
		"kind: 3":                        false,
		"kind: [Fleet]":                  false,
		"kind: {kind: Fleet}":            false,
		"- kind: Fleet":                  false,
		"nodes: {kind: Fleet}":           false,
		"Fleet":                          false,
		"{":                              false,
		":::\n\t- [":                     false,
		"\x00\xff\xfe":                   false,
		"kind: Fleet\n  bad: indent":     false,
		`"kind"`:                         false,
		"null":                           false,
	} {
		if got := IsFleet([]byte(in)); got != want {
			t.Errorf("IsFleet(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestParseFleetReportsEveryUnknownFieldAndType(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown fields", `
kind: Fleet
nodes: [lb1, lb2]
colour: blue
instances:
  - name: VI_1
    interfac: eth0
    priorities: {lb1: "high", lb2: -1}
    overrides: {lb2: {interfac: ens4, vrid: "x"}}
`, []string{
			`colour: unknown field "colour"`,
			`instances[0].interfac: unknown field "interfac" (did you mean "interface"?)`,
			`instances[0].overrides.lb2.interfac: unknown field "interfac" (did you mean "interface"?)`,
			`instances[0].overrides.lb2.vrid: expected a whole number, got the string "x"`,
			`instances[0].priorities.lb1: expected a whole number, got the string "high"`,
			`instances[0].priorities.lb2: expected a whole number >= 0, got -1`,
		}},
		{"wrong shapes", `
kind: 1
generation: "two"
nodes: lb1
instances: {name: VI_1}
`, []string{
			`generation: expected a whole number, got the string "two"`,
			`instances: expected a list, got a mapping`,
			`kind: expected a string, got the number 1: quote it ("1")`,
			`nodes: expected a list, got the string "lb1"`,
		}},
		{"maps", `
kind: Fleet
instances:
  - priorities: [lb1]
    overrides: {lb2: ens4, lb3: {advertInterval: 1}}
`, []string{
			`instances[0].overrides.lb2: expected an object (mapping), got the string "ens4"`,
			`instances[0].overrides.lb3.advertInterval: duration 1 needs a unit`,
			`instances[0].priorities: expected a mapping, got a list`,
		}},
		{"not yaml", "kind: Fleet\n\tnodes: [", []string{"not valid YAML"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc, err := ParseFleet([]byte(c.yaml))
			if doc != nil {
				t.Errorf("ParseFleet returned a document with the error")
			}
			wantProblems(t, err, c.want...)
		})
	}
}

// two is a valid two-node document to vary.
const two = `
kind: Fleet
nodes: [lb1, lb2]
instances:
`

func TestValidateFleet(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       []string // exact "path: message", in order; none: valid
	}{
		{"issue example", fleetExample, nil},
		{"empty instances remove every fleet instance", two + "  []\n", nil},
		{"no instances at all", "kind: Fleet\nnodes: [lb1]\n", nil},
		{"kind missing", "nodes: [lb1]\n", []string{
			"kind: want Fleet: start the document with kind: Fleet"}},
		{"kind other", "kind: Agent\nnodes: [lb1]\n", []string{
			`kind: want Fleet, got "Agent"`}},
		{"kind case", "kind: fleet\nnodes: [lb1]\n", []string{
			`kind: want Fleet, got "fleet"`}},
		{"nodes missing", "kind: Fleet\n", []string{
			"nodes: required: the names of the nodes that run the fleet (their configuration's name), e.g. [lb1, lb2]"}},
		{"nodes invalid and duplicate", `kind: Fleet
nodes: [lb1, "lb 2", lb1, ""]
`, []string{
			`nodes[1]: "lb 2" is not a valid node name: use letters, digits, and _ . : - (at most 63)`,
			`nodes[2]: "lb1" is already listed (nodes[0]): remove one`,
			`nodes[3]: empty: give the node's name (its configuration's name)`,
		}},
		{"duplicate instance name", two + `
  - {name: VI_1, interface: eth0, vrid: 51, vips: [10.0.0.1/24]}
  - {name: VI_1, interface: eth0, vrid: 52, vips: [10.0.0.2/24]}
`, []string{
			`instances[1].name: "VI_1" is already used by instances[0]: each instance of the fleet needs its own name`}},
		{"unknown node in priorities", two + `
  - {name: VI_1, interface: eth0, vrid: 51, vips: [10.0.0.1/24], priorities: {lb1: 100, lb3: 90}}
`, []string{
			"instances[0].priorities.lb3: lb3 is not in nodes (lb1, lb2): add it to nodes or remove it"}},
		{"priority out of range", two + `
  - {name: VI_1, interface: eth0, vrid: 51, vips: [10.0.0.1/24], priorities: {lb1: 0, lb2: 256}}
`, []string{
			"instances[0].priorities.lb1: 0 is out of range 1..255 (255 only for the address owner)",
			"instances[0].priorities.lb2: 256 is out of range 1..255 (255 only for the address owner)"}},
		{"default priority out of range, once", two + `
  - {name: VI_1, interface: eth0, vrid: 51, vips: [10.0.0.1/24], priority: 300}
`, []string{
			"instances[0].priority: 300 is out of range 1..255 (255 only for the address owner)"}},
		{"default priority with priorities", two + `
  - {name: VI_1, interface: eth0, vrid: 51, vips: [10.0.0.1/24], priority: 300, priorities: {lb1: 100}}
`, []string{
			"instances[0].priority: has no effect: the instance runs only on the nodes of priorities, with their priority: remove it, or set the priority there"}},
		{"unknown node in overrides", two + `
  - {name: VI_1, interface: eth0, vrid: 51, vips: [10.0.0.1/24], overrides: {lb3: {interface: ens4}}}
`, []string{
			"instances[0].overrides.lb3: lb3 is not in nodes (lb1, lb2): add it to nodes or remove it"}},
		{"override of a node that does not run the instance", two + `
  - {name: VI_1, interface: eth0, vrid: 51, vips: [10.0.0.1/24], priorities: {lb1: 100}, overrides: {lb2: {interface: ens4}}}
`, []string{
			"instances[0].overrides.lb2: lb2 does not run VI_1 (priorities lists lb1): add lb2 to priorities, or remove this override"}},
		{"override of name, vrid, priority", two + `
  - name: VI_1
    interface: eth0
    vrid: 51
    vips: [10.0.0.1/24]
    overrides: {lb2: {name: VI_X, vrid: 52, priority: 90, interface: ens4}}
`, []string{
			"instances[0].overrides.lb2.name: the name is the same on every node: set it in instances[0].name, not per node",
			"instances[0].overrides.lb2.vrid: the vrid is shared by every node of the virtual router: set it in instances[0].vrid, not per node",
			"instances[0].overrides.lb2.priority: set the node's priority in instances[0].priorities.lb2 instead",
		}},
		{"base errors once, not per node", two + `
  - {name: VI_1, vrid: 300, version: 2, advertInterval: 100ms, vips: [10.0.0.1/33]}
`, []string{
			"instances[0].interface: required: the interface the instance runs on, e.g. eth0",
			"instances[0].vrid: 300 is out of range 1..255",
			"instances[0].advertInterval: 100ms: VRRPv2 needs whole seconds 1s..255s (use version: 3 for shorter intervals)",
			`instances[0].vips[0]: vip "10.0.0.1/33": prefix length 33 out of range 0..32`,
		}},
		{"base field overridden on every node", two + `
  - {name: VI_1, vrid: 51, vips: [10.0.0.1/24], overrides: {lb1: {interface: eth1}, lb2: {interface: ens4}}}
`, nil},
		{"base error only on nodes without override", two + `
  - {name: VI_1, vrid: 51, vips: [10.0.0.1/24], overrides: {lb2: {interface: ens4}}}
`, []string{
			"instances[0].interface: required: the interface the instance runs on, e.g. eth0"}},
		{"bad value from an override", two + `
  - name: VI_1
    interface: eth0
    vrid: 51
    vips: [10.0.0.1/24]
    overrides:
      lb2: {interface: "a/b", unicastPeers: ["10.0.0.9", "x"], version: 4}
`, []string{
			`instances[0].overrides.lb2.interface: "a/b" is not a valid interface name`,
			"instances[0].overrides.lb2.version: 4 is not a VRRP version: use 2 or 3",
			`instances[0].overrides.lb2.unicastPeers[1]: "x" is not an IP address`,
		}},
		{"problem an override brings to another field", two + `
  - name: VI_1
    interface: eth0
    vrid: 51
    advertInterval: 0.5s
    vips: [10.0.0.1/24]
    overrides:
      lb2: {unicastPeers: ["10.0.0.1"], version: 2}
`, []string{
			"instances[0].overrides.lb2: on lb2, advertInterval: 500ms: VRRPv2 needs whole seconds 1s..255s (use version: 3 for shorter intervals)",
			"instances[0].overrides.lb2: on lb2, vips[0]: 10.0.0.1 is also a unicast peer or the source address: a VIP must be an address of its own",
		}},
		{"duplicate vrid on an interface after overrides", two + `
  - {name: VI_1, interface: eth0, vrid: 51, vips: [10.0.0.1/24]}
  - {name: VI_2, interface: eth1, vrid: 51, vips: [10.0.1.1/24], overrides: {lb1: {interface: eth0}}}
`, []string{
			"instances[1].vrid: vrid 51 is already used on eth0 by VI_1 (node lb1): each virtual router on an interface needs its own vrid"}},
		{"duplicate vrid on every node", two + `
  - {name: VI_1, interface: eth0, vrid: 51, vips: [10.0.0.1/24]}
  - {name: VI_2, interface: eth0, vrid: 51, vips: [10.0.0.2/24]}
`, []string{
			"instances[1].vrid: vrid 51 is already used on eth0 by VI_1 (nodes lb1, lb2): each virtual router on an interface needs its own vrid"}},
		{"same vrid on other interfaces or other nodes", two + `
  - {name: VI_1, interface: eth0, vrid: 51, vips: [10.0.0.1/24]}
  - {name: VI_2, interface: eth1, vrid: 51, vips: [10.0.1.1/24]}
  - {name: VI_3, interface: eth2, vrid: 52, vips: [10.0.2.1/24], priorities: {lb1: 100}}
  - {name: VI_4, interface: eth2, vrid: 52, vips: [10.0.2.1/24], priorities: {lb2: 100}}
`, nil},
		{"duplicate VIP on a node", two + `
  - {name: VI_1, interface: eth0, vrid: 51, vips: [10.0.0.1/24]}
  - {name: VI_2, interface: eth0, vrid: 52, vips: [10.0.0.2/24, "10.0.0.1/24 dev eth1"], priorities: {lb2: 100}}
  - {name: VI_3, interface: eth0, vrid: 53, vips: [10.0.0.3/24], overrides: {lb1: {vips: [10.0.0.3/24, 10.0.0.1]}}}
`, []string{
			"instances[1].vips[1]: 10.0.0.1 is already a VIP of VI_1 (node lb2): each address belongs to one virtual router",
			"instances[2].overrides.lb1.vips[1]: 10.0.0.1 is already a VIP of VI_1 (node lb1): each address belongs to one virtual router",
		}},
		{"VIP twice in one instance", two + `
  - {name: VI_1, interface: eth0, vrid: 51, vips: [10.0.0.1/24, 10.0.0.1/32]}
`, []string{
			"instances[0].vips[1]: 10.0.0.1 is listed twice (nodes lb1, lb2): remove one"}},
		{"every problem at once", `
nodes: [lb1, lb2, lb1]
instances:
  - name: VI_1
    interface: eth0
    vrid: 51
    vips: ["192.168.55.140/24"]
    priorities: {lb1: 100, lb2: 80, lb3: 0}
    overrides: {lb2: {interface: "way-too-long-name0", vrid: 9}}
  - name: VI_1
    vrid: 51
    vips: ["192.168.55.140/24"]
    auth: {type: PASS, password: "123"}
`, []string{
			`kind: want Fleet: start the document with kind: Fleet`,
			`nodes[2]: "lb1" is already listed (nodes[0]): remove one`,
			"instances[0].priorities.lb3: lb3 is not in nodes (lb1, lb2): add it to nodes or remove it",
			"instances[0].priorities.lb3: 0 is out of range 1..255 (255 only for the address owner)",
			"instances[0].overrides.lb2.vrid: the vrid is shared by every node of the virtual router: set it in instances[0].vrid, not per node",
			`instances[0].overrides.lb2.interface: "way-too-long-name0" is not a valid interface name`,
			"instances[1].interface: required: the interface the instance runs on, e.g. eth0",
			"instances[1].auth.type: authentication exists only in VRRPv2: set version: 2, or remove auth",
			`instances[1].name: "VI_1" is already used by instances[0]: each instance of the fleet needs its own name`,
			"instances[1].vips[0]: 192.168.55.140 is already a VIP of VI_1 (nodes lb1, lb2): each address belongs to one virtual router",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateFleet(mustFleet(t, c.yaml))
			if c.want == nil {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			wantExactly(t, err, c.want...)
		})
	}
}

// wantExactly asserts that err lists exactly these "path: message".
func wantExactly(t *testing.T, err error, want ...string) {
	t.Helper()
	got := Fields(err)
	var gs []string
	for _, f := range got {
		gs = append(gs, f.String())
	}
	if strings.Join(gs, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n  %s\nwant:\n  %s", strings.Join(gs, "\n  "), strings.Join(want, "\n  "))
	}
	if _, ok := err.(*Error); !ok {
		t.Fatalf("error %T is not *Error", err)
	}
	wantProblems(t, err, want...)
}

func TestValidateFleetNil(t *testing.T) {
	wantExactly(t, ValidateFleet(nil),
		"kind: want Fleet: start the document with kind: Fleet",
		"nodes: required: the names of the nodes that run the fleet (their configuration's name), e.g. [lb1, lb2]")
}

func TestForNode(t *testing.T) {
	doc := mustFleet(t, `
kind: Fleet
nodes: [lb1, lb2, lb3]
instances:
  - name: ALL
    interface: eth0
    vrid: 1
    vips: [10.0.0.1/24, 10.0.0.2/24]
    unicastPeers: [10.0.0.11, 10.0.0.12]
    garp: {repeat: 3, delay: 2s}
    overrides:
      lb2:
        interface: ens4
        unicastPeers: ["10.0.0.1"]
        vips: [10.0.0.9/24]
        garp: {refresh: 10s}
        preempt: false
        name: IGNORED
        vrid: 99
        priority: 7
  - name: DEFAULT
    interface: eth0
    vrid: 2
    priority: 150
    vips: [10.0.0.3/24]
  - name: ONLY_LB2
    interface: eth0
    vrid: 3
    vips: [10.0.0.4/24]
    priorities: {lb2: 90}
  - name: LB1_LB3
    interface: eth0
    vrid: 4
    vips: [10.0.0.5/24]
    priorities: {lb3: 10, lb1: 20, lb9: 30}
`)
	names := func(ins []*haav1.Instance) string {
		var s []string
		for _, in := range ins {
			s = append(s, in.GetName())
		}
		return strings.Join(s, ",")
	}
	for _, c := range []struct {
		node, names, paths string
	}{
		{"lb1", "ALL,DEFAULT,LB1_LB3", "instances[0] instances[1] instances[3]"},
		{"lb2", "ALL,DEFAULT,ONLY_LB2", "instances[0] instances[1] instances[2]"},
		{"lb3", "ALL,DEFAULT,LB1_LB3", "instances[0] instances[1] instances[3]"},
		{"lb9", "", ""}, // in priorities, not in nodes
	} {
		ins, paths := ForNode(doc, c.node)
		if names(ins) != c.names || strings.Join(paths, " ") != c.paths {
			t.Errorf("%s: %s at %v, want %s at %s", c.node, names(ins), paths, c.names, c.paths)
		}
	}

	lb1, _ := ForNode(doc, "lb1")
	lb2, _ := ForNode(doc, "lb2")
	// Without an override, the instance's fields; no priority: the default.
	if in := lb1[0]; in.Interface != "eth0" || in.Priority != nil || in.Preempt != nil ||
		strings.Join(in.Vips, " ") != "10.0.0.1/24 10.0.0.2/24" || len(in.UnicastPeers) != 2 ||
		in.GetGarp().GetRepeat() != 3 || in.GetGarp().GetDelay().AsDuration() != 2*time.Second {
		t.Errorf("lb1 ALL = %v", in)
	}
	// Overrides replace whole fields; name, vrid and priority stay.
	want := &haav1.Instance{Name: "ALL", Interface: "ens4", Vrid: 1, Vips: []string{"10.0.0.9/24"},
		UnicastPeers: []string{"10.0.0.1"}, Preempt: proto.Bool(false)}
	got := proto.Clone(lb2[0]).(*haav1.Instance)
	if got.GetGarp().GetRefresh().AsDuration() != 10*time.Second || got.GetGarp().Repeat != nil || got.GetGarp().Delay != nil {
		t.Errorf("lb2 ALL garp = %v, want the override's only", got.GetGarp())
	}
	got.Garp = nil
	if !proto.Equal(got, want) {
		t.Errorf("lb2 ALL = %v, want %v", got, want)
	}
	// The instance's priority for every node; priorities for the listed.
	if lb1[1].GetPriority() != 150 || lb2[1].GetPriority() != 150 || lb2[2].GetPriority() != 90 || lb1[2].GetPriority() != 20 {
		t.Errorf("priorities: lb1 %v %v, lb2 %v %v", lb1[1], lb1[2], lb2[1], lb2[2])
	}
	// Fresh copies: changing them leaves the document alone.
	lb2[0].Vips[0] = "changed"
	lb2[0].Garp.Refresh = nil
	lb1[0].Garp.Repeat = proto.Uint32(1)
	again, _ := ForNode(doc, "lb2")
	if again[0].Vips[0] != "10.0.0.9/24" || again[0].GetGarp().GetRefresh() == nil {
		t.Errorf("ForNode shares memory with the document: %v", again[0])
	}
	if doc.Instances[0].Garp.GetRepeat() != 3 || doc.Instances[0].Overrides["lb2"].GetName() != "IGNORED" {
		t.Errorf("document changed: %v", doc.Instances[0])
	}
	if ins, _ := ForNode(nil, "lb1"); ins != nil {
		t.Errorf("nil document gives %v", ins)
	}
}

var hexRE = regexp.MustCompile(`^[0-9a-f]+$`)

func TestInstancesHash(t *testing.T) {
	doc := mustFleet(t, fleetExample)
	lb1, _ := ForNode(doc, "lb1")
	lb2, _ := ForNode(doc, "lb2")
	h := InstancesHash(lb1)
	if len(h) != 32 || !hexRE.MatchString(h) {
		t.Fatalf("hash %q is not 32 hex digits", h)
	}
	if got := InstancesHash([]*haav1.Instance{lb1[1], lb1[0]}); got != h {
		t.Errorf("order changes the hash: %s != %s", got, h)
	}
	if got := FleetNodeHash(doc, "lb1"); got != h {
		t.Errorf("FleetNodeHash %s != InstancesHash(ForNode) %s", got, h)
	}
	if InstancesHash(lb2) == h {
		t.Errorf("lb1 and lb2 run different priorities but hash equal")
	}
	// A copy through YAML and back hashes the same.
	again, _ := ForNode(mustFleet(t, fleetExample), "lb1")
	if InstancesHash(again) != h {
		t.Errorf("the same document parsed twice hashes differently")
	}
	changed := proto.Clone(lb1[0]).(*haav1.Instance)
	changed.AdvertInterval.Nanos = 1e7
	if InstancesHash([]*haav1.Instance{changed, lb1[1]}) == h {
		t.Errorf("a changed interval does not change the hash")
	}
	if InstancesHash(lb1[:1]) == h {
		t.Errorf("a removed instance does not change the hash")
	}
	none := InstancesHash(nil)
	if len(none) != 32 || none != InstancesHash([]*haav1.Instance{}) || none != FleetNodeHash(doc, "lb3") {
		t.Errorf("no instances: %q", none)
	}
	// Same names (an invalid set) still do not depend on order.
	a, b := &haav1.Instance{Name: "X", Vrid: 1}, &haav1.Instance{Name: "X", Vrid: 2}
	if InstancesHash([]*haav1.Instance{a, b}) != InstancesHash([]*haav1.Instance{b, a}) {
		t.Errorf("equal names: order changes the hash")
	}
}

func TestDocumentHash(t *testing.T) {
	doc := mustFleet(t, fleetExample)
	h := DocumentHash(doc)
	if len(h) != 32 || !hexRE.MatchString(h) {
		t.Fatalf("hash %q is not 32 hex digits", h)
	}
	doc.Generation = 7
	if DocumentHash(doc) != h {
		t.Errorf("the generation changes the hash")
	}
	if doc.Generation != 7 {
		t.Errorf("DocumentHash modified the document")
	}
	// Map order in the file does not matter.
	reordered := mustFleet(t, strings.Replace(fleetExample, "{lb1: 100, lb2: 80}", "{lb2: 80, lb1: 100}", 1))
	if DocumentHash(reordered) != h {
		t.Errorf("map order changes the hash")
	}
	changed := mustFleet(t, strings.Replace(fleetExample, "lb2: 80", "lb2: 81", 1))
	if DocumentHash(changed) == h {
		t.Errorf("a changed priority does not change the hash")
	}
	if DocumentHash(nil) != DocumentHash(&haav1.Fleet{Generation: 3}) {
		t.Errorf("nil and empty documents differ")
	}
}

func TestDefinition(t *testing.T) {
	base := &haav1.Instance{Name: "VI_1", Interface: "eth0", Vrid: 51, Vips: []string{"10.0.0.1/24", "10.0.0.2/24"}}
	d := Definition(base)
	if len(d) != 16 || !hexRE.MatchString(d) {
		t.Fatalf("definition %q is not 16 hex digits", d)
	}
	same := []*haav1.Instance{
		{Name: "other", Interface: "ens4", Vrid: 51, Vips: []string{"10.0.0.2/24", "10.0.0.1/24"}, Priority: proto.Uint32(80)},
		{Vrid: 51, Version: 3, Vips: []string{"10.0.0.1/24", "10.0.0.2/24"}},
		{Vrid: 51, Vips: []string{" 10.0.0.1/24 dev eth1 label eth1:v", "10.0.0.2"}}, // local details
	}
	for _, in := range same {
		if got := Definition(in); got != d {
			t.Errorf("Definition(%v) = %s, want %s", in, got, d)
		}
	}
	different := []*haav1.Instance{
		{Vrid: 52, Vips: []string{"10.0.0.1/24", "10.0.0.2/24"}},
		{Vrid: 51, Version: 2, Vips: []string{"10.0.0.1/24", "10.0.0.2/24"}},
		{Vrid: 51, Vips: []string{"10.0.0.1/24"}},
		{Vrid: 51, Vips: []string{"10.0.0.1/24", "10.0.0.3/24"}},
		{Vrid: 51, Vips: []string{"10.0.0.1/24", "10.0.0.2/24", "10.0.0.2/24"}},
		{Vrid: 51, Vips: []string{"10.0.0.1/24", "not an address"}},
	}
	for _, in := range different {
		if got := Definition(in); got == d {
			t.Errorf("Definition(%v) = %s, the same as %v", in, got, base)
		}
	}
}

func TestValidateFleetNilEntries(t *testing.T) {
	doc := &haav1.Fleet{Kind: "Fleet", Nodes: []string{"lb1"}, Instances: []*haav1.FleetInstance{
		nil,
		{Name: "VI_1", Interface: "eth0", Vrid: 1, Vips: []string{"10.0.0.1/24"}, Overrides: map[string]*haav1.Instance{"lb1": nil}},
	}}
	wantExactly(t, ValidateFleet(doc),
		"instances[0].name: required: give the instance a name such as VI_1",
		"instances[0].interface: required: the interface the instance runs on, e.g. eth0",
		"instances[0].vrid: required: a virtual router id 1..255 shared by the nodes of this virtual router",
		`instances[0].vips: required with version 3: at least one virtual address, e.g. ["10.0.0.100/24"] (a VRRPv3 advert lists at least one, RFC 5798); for an election without addresses (notify scripts only), set noVips: true (keepalived's no_virtual_ipaddress), or use version: 2`,
	)
	ins, _ := ForNode(doc, "lb1")
	if len(ins) != 2 || ins[1].GetInterface() != "eth0" {
		t.Errorf("ForNode = %v", ins)
	}
}

// FuzzParseFleet: whatever the input, nothing panics, and a document that
// parses can be validated, split per node and hashed.
func FuzzParseFleet(f *testing.F) {
	for _, s := range []string{fleetExample, "kind: Fleet", "", "{", "kind: Fleet\ninstances: [{overrides: {a: {}}}]",
		"kind: Fleet\nnodes: [a]\ninstances: [{name: x, priorities: {a: 1}, overrides: {a: {garp: {repeat: 2}}}}]", fleetTrack} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		isFleet := IsFleet(data)
		doc, err := ParseFleet(data)
		if err != nil {
			return
		}
		_ = ValidateFleet(doc)
		_ = DocumentHash(doc)
		for _, n := range append(doc.GetNodes(), "x") {
			ins, paths := ForNode(doc, n)
			if len(ins) != len(paths) {
				t.Fatalf("%d instances, %d paths", len(ins), len(paths))
			}
			_ = FleetNodeHash(doc, n)
			ts, gs, tp, gp := ForNodeExtras(doc, n)
			if len(ts) != len(tp) || len(gs) != len(gp) {
				t.Fatalf("%d trackers, %d paths; %d groups, %d paths", len(ts), len(tp), len(gs), len(gp))
			}
			for _, in := range ins {
				_ = Definition(in)
			}
		}
		if isFleet != strings.EqualFold(strings.TrimSpace(doc.GetKind()), "Fleet") {
			t.Fatalf("IsFleet %v for kind %q", isFleet, doc.GetKind())
		}
	})
}

func TestExampleFleetDocument(t *testing.T) {
	if _, err := LoadFleet("../../deploy/examples/fleet.yaml"); err != nil {
		t.Fatal(err)
	}
}
