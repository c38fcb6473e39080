package keepalived

import (
	"testing"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// TestNonUTF8Paths: a string that is not UTF-8 is reported at its full
// path, and only it.
func TestNonUTF8Paths(t *testing.T) {
	cfg := &haav1.AgentConfig{Name: "ok", VirtualServers: []*haav1.VirtualServer{{Address: "1.2.3.4:80"}, {Address: "x", RealServers: []*haav1.RealServer{{Address: "\xff"}}}}}
	got := nonUTF8(nil, "", cfg.ProtoReflect())
	if len(got) != 1 || got[0].Path != "virtualServers[1].realServers[0].address" {
		t.Fatalf("%+v", got)
	}
}
