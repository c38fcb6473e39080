package node

import (
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/internal/yamlout"
)

// The configuration written in pieces is the one written at once, and
// reads back as itself.
func TestConfigYAML(t *testing.T) {
	c := parseConfig(t, `name: n1
api: {socket: /run/haa/n1.sock}
trackers: [{name: up, interface: {name: eth1}, weight: -20}]
instances:
  - {name: VI_1, interface: eth0, vrid: 51, priority: 200, advertInterval: 0.1s, vips: ["10.77.0.100/24", "10.77.0.101/24 label eth0:vip"], track: [{tracker: up}]}
  - {name: VI_2, interface: eth0, vrid: 52, auth: {type: PASS, password: "1111"}, unicastPeers: [10.77.0.2], vips: [10.77.0.110]}
syncGroups: [{name: G, instances: [VI_1, VI_2]}]
`)
	big := bigConfig(300, 3)
	c.VirtualServers = big.VirtualServers
	js, err := protojson.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := yamlout.FromJSON(js)
	if err != nil {
		t.Fatal(err)
	}
	pieces, err := configYAML(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(pieces) != string(whole) {
		t.Fatalf("in pieces:\n%.2000s\nat once:\n%.2000s", pieces, whole)
	}
	back, err := config.Parse(pieces)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(back, c) {
		t.Fatal("the written configuration does not read back as itself")
	}
}
