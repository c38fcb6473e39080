package main

import (
	"strings"
	"testing"

	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// --check warns about interfaces that do not exist (as keepalived -t),
// once each, naming what uses them.
func TestCheckWarnsAboutMissingInterfaces(t *testing.T) {
	cfg := &haav1.AgentConfig{
		Trackers: []*haav1.Tracker{{Name: "uplink", Interface: &haav1.InterfaceCheck{Name: "bond9"}}},
		Instances: []*haav1.Instance{
			{Name: "a", Interface: "eth0", Vrid: 1, Vips: []string{"10.0.0.1/24", "10.0.1.1/24 dev eth7"}, Track: []*haav1.TrackRef{{Tracker: "uplink"}}},
			{Name: "b", Interface: "eth7", Vrid: 2, Vips: []string{"10.0.0.2/24"}},
		},
	}
	a, err := config.Resolve(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := missingInterfaces(a, func(name string) bool { return name == "eth0" })
	if len(got) != 2 {
		t.Fatalf("warnings %q, want 2 (eth7 once, bond9)", got)
	}
	if !strings.Contains(got[0], "interface eth7 (a virtual address of instance a) does not exist") ||
		!strings.Contains(got[1], "interface bond9 (tracker uplink) does not exist") {
		t.Errorf("warnings %q", got)
	}
	if n := len(missingInterfaces(a, func(string) bool { return true })); n != 0 {
		t.Errorf("%d warnings when every interface exists", n)
	}
}
