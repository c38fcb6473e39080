package config

import (
	"strings"
	"testing"
)

const fleetLB = `kind: Fleet
nodes: [lb1, lb2, lb3]
instances:
  - name: VI_1
    interface: eth0
    vrid: 51
    vips: ["10.77.0.100/24"]
    priorities: {lb1: 200, lb2: 100}
virtualServers:
  - name: web
    address: 10.77.0.100:80
    realServers: [{address: "10.77.1.1:80"}, {address: "10.77.1.2:80"}]
    overrides:
      lb2: {scheduler: rr}
  - name: mail
    fwmark: 7
    directors: [lb3]
    realServers: [{address: "10.77.1.3"}]
`

// The fleet's virtual servers go to their directors: by default the nodes
// that run the instance holding the address (the LVS pair), or those
// named; an override changes one director's copy only.
func TestFleetVirtualServersForNode(t *testing.T) {
	doc := mustFleet(t, fleetLB)
	if err := ValidateFleet(doc); err != nil {
		t.Fatal(err)
	}
	for node, want := range map[string]string{"lb1": "web", "lb2": "web", "lb3": "mail"} {
		vss, paths := ForNodeVirtualServers(doc, node)
		if len(vss) != 1 || vss[0].GetName() != want {
			t.Fatalf("%s: %v (%v), want %s", node, vss, paths, want)
		}
	}
	lb1, _ := ForNodeVirtualServers(doc, "lb1")
	lb2, paths := ForNodeVirtualServers(doc, "lb2")
	if lb1[0].GetScheduler() != "" || lb2[0].GetScheduler() != "rr" || len(lb2[0].GetRealServers()) != 2 || paths[0] != "virtualServers[0]" {
		t.Fatalf("lb1 %v, lb2 %v (%v): want the override on lb2 only", lb1[0], lb2[0], paths)
	}
	// The node's hash covers them: a change of a virtual server is drift.
	before := FleetNodeHash(doc, "lb1")
	doc.VirtualServers[0].Scheduler = "wlc"
	if FleetNodeHash(doc, "lb1") == before {
		t.Fatal("the node hash ignores a virtual server's change")
	}
	ins, _ := ForNode(doc, "lb1")
	doc.VirtualServers = nil
	if FleetNodeHash(doc, "lb1") != InstancesHash(ins) {
		t.Fatal("without virtual servers the node hash is not the instances' as before")
	}
}

// Every mistake of a fleet's virtual servers with its path.
func TestFleetVirtualServersValidate(t *testing.T) {
	for _, tc := range []struct{ y, want string }{
		{"  - {name: web, address: 10.77.0.100:80, directors: [lb9]}", "virtualServers[0].directors[0]: \"lb9\" is not a node of the document"},
		{"  - {name: web, address: 10.77.0.100:80, directors: [lb1, lb1]}", "virtualServers[0].directors[1]: \"lb1\" is listed twice"},
		{"  - {name: mail, fwmark: 7}", "virtualServers[0].directors: required: it has no address to find its instance by"},
		{"  - {name: web, address: 10.77.0.99:80}", "virtualServers[0].directors: required: no instance of the document holds 10.77.0.99:80"},
		{"  - {name: web, address: 10.77.0.100:80, scheduler: fastest}", "virtualServers[0].scheduler: "},
		{"  - {name: web, address: 10.77.0.100:80, overrides: {lb3: {scheduler: rr}}}", "virtualServers[0].overrides.lb3: lb3 is not a director of this virtual server"},
		{"  - {name: web, address: 10.77.0.100:80, overrides: {lb2: {name: other}}}", "virtualServers[0].overrides.lb2.name: cannot be overridden"},
		{"  - {name: web, address: 10.77.0.100:80, overrides: {lb2: {scheduler: fastest}}}", "virtualServers[0].overrides.lb2.scheduler: "},
		{"  - {name: web, address: 10.77.0.100:80}\n  - {name: web, address: 10.77.0.100:443}", "virtualServers[1].name: \"web\" is already used by virtualServers[0]"},
	} {
		doc := strings.SplitN(fleetLB, "virtualServers:\n", 2)[0] + "virtualServers:\n" + tc.y + "\n"
		err := ValidateFleet(mustFleet(t, doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.y, err, tc.want)
		}
	}
}
