package node

import (
	"strings"
	"testing"

	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

const testDoc = `kind: Fleet
nodes: [lb1, lb2]
instances:
  - {name: VI_1, interface: eth0, vrid: 51, vips: ["10.77.0.140/24"], priorities: {lb1: 100, lb2: 80}}
  - {name: VI_2, interface: eth0, vrid: 52, vips: ["10.77.0.141/24"], priorities: {lb2: 100}}
`

func parseDoc(t *testing.T, y string) *haav1.Fleet {
	t.Helper()
	d, err := config.ParseFleet([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestComposeAndRepath(t *testing.T) {
	doc := parseDoc(t, testDoc)
	local := &haav1.AgentConfig{Name: "lb1", Instances: []*haav1.Instance{
		{Name: "OWN", Interface: "eth0", Vrid: 51, Vips: []string{"10.77.0.9/24"}}}}
	c, err := compose(local, doc, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.fleetNames(); strings.Join(got, ",") != "VI_1" {
		t.Fatalf("lb1 runs %v of the document, want VI_1", got)
	}
	// The local instance and VI_1 share vrid 51 on eth0: the error names
	// the document's path when the document is applied, the file's
	// otherwise.
	_, err = config.Resolve(c.cfg)
	fleetSide := config.Fields(c.repath(err, true))
	if len(fleetSide) != 1 || fleetSide[0].Path != "instances[0].vrid" || !strings.Contains(fleetSide[0].Msg, "local.instances[0]") {
		t.Fatalf("fleet side: %v", fleetSide)
	}
	c2, _ := compose(local, doc, false)
	_, err = config.Resolve(c2.cfg)
	localSide := config.Fields(c2.repath(err, false))
	if len(localSide) != 1 || localSide[0].Path != "fleet.instances[0].vrid" {
		t.Fatalf("local side: %v", localSide)
	}
	// A name in both is refused from the side being applied.
	local.Instances[0].Name = "VI_1"
	if _, err := compose(local, doc, true); err == nil || config.Fields(err)[0].Path != "instances[0].name" {
		t.Fatalf("name clash, fleet side: %v", err)
	}
	if _, err := compose(local, doc, false); err == nil || config.Fields(err)[0].Path != "instances[0].name" ||
		!strings.Contains(err.Error(), "fleet document") {
		t.Fatalf("name clash, local side: %v", err)
	}
}
