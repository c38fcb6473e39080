package config

import (
	"fmt"
	"testing"
)

// Unicast peers change in place while the instance stays unicast (and an
// IPv6 instance keeps its first peer, which picks its source address);
// turning unicast on or off is a restart.
func TestDiffUnicastPeersInPlace(t *testing.T) {
	const head = "name: n1\ngossip: {bind: \"127.0.0.1:7946\"}\ninstances:\n"
	running := resolveInstances(t, head+`
  - {name: add, interface: eth0, vrid: 1, vips: [10.0.0.1], unicastPeers: [10.0.0.5]}
  - {name: fleet, interface: eth0, vrid: 2, vips: [10.0.0.2], unicastPeers: [10.0.0.5]}
  - {name: toMulticast, interface: eth0, vrid: 3, vips: [10.0.0.3], unicastPeers: [10.0.0.5]}
  - {name: toUnicast, interface: eth0, vrid: 4, vips: [10.0.0.4]}
  - {name: v6, interface: eth0, vrid: 5, vips: ["fd00::1"], unicastPeers: ["fd00::5"]}
  - {name: v6same, interface: eth0, vrid: 6, vips: ["fd00::2"], unicastPeers: ["fd00::5"]}
`)
	desired := resolveInstances(t, head+`
  - {name: add, interface: eth0, vrid: 1, vips: [10.0.0.1], unicastPeers: [10.0.0.5, 10.0.0.6]}
  - {name: fleet, interface: eth0, vrid: 2, vips: [10.0.0.2], unicastPeersFromFleet: true}
  - {name: toMulticast, interface: eth0, vrid: 3, vips: [10.0.0.3]}
  - {name: toUnicast, interface: eth0, vrid: 4, vips: [10.0.0.4], unicastPeersFromFleet: true}
  - {name: v6, interface: eth0, vrid: 5, vips: ["fd00::1"], unicastPeers: ["fd00::6"]}
  - {name: v6same, interface: eth0, vrid: 6, vips: ["fd00::2"], unicastPeers: ["fd00::5", "fd00::6"]}
`)
	got := fmt.Sprintf("%+v", Diff(running, desired).Changed)
	want := "[{Name:add Fields:[unicastPeers] Restart:false} {Name:fleet Fields:[unicastPeers unicastPeersFromFleet] Restart:false} " +
		"{Name:toMulticast Fields:[unicastPeers] Restart:true} {Name:toUnicast Fields:[unicastPeersFromFleet] Restart:true} " +
		"{Name:v6 Fields:[unicastPeers] Restart:true} {Name:v6same Fields:[unicastPeers] Restart:false}]"
	if got != want {
		t.Fatalf("changes\n got  %s\n want %s", got, want)
	}
}

// unicastPeersFromFleet needs gossip, and excludes a multicast group.
func TestUnicastPeersFromFleetNeedsGossip(t *testing.T) {
	cfg, err := Parse([]byte(`name: n1
instances:
  - {name: VI_1, interface: eth0, vrid: 1, vips: [10.0.0.1], unicastPeersFromFleet: true, multicastGroup: 224.0.0.19}
`))
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, Validate(cfg),
		`instances[0].multicastGroup: set together with unicastPeersFromFleet: use one or the other`,
		`instances[0].unicastPeersFromFleet: the peers come from the fleet's gossip, and this node has none`)
}

// keepIfPeersSeeUp is bounded: 1s..1h.
func TestKeepIfPeersSeeUpRange(t *testing.T) {
	cfg, err := Parse([]byte(`name: n1
virtualServers:
  - {address: "10.0.0.1:80", keepIfPeersSeeUp: 500ms, realServers: [{address: "10.0.1.1:80"}]}
  - {address: "10.0.0.2:80", keepIfPeersSeeUp: 2h, realServers: [{address: "10.0.1.1:80"}]}
  - {address: "10.0.0.3:80", keepIfPeersSeeUp: 30s, realServers: [{address: "10.0.1.1:80"}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, Validate(cfg),
		`virtualServers[0].keepIfPeersSeeUp: 500ms is out of range 1s..1h`,
		`virtualServers[1].keepIfPeersSeeUp: 2h is out of range 1s..1h`)
}
