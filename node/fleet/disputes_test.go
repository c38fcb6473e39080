package fleet

import (
	"slices"
	"testing"

	"github.com/haa-dev/haa/node/gossip"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Directors that disagree about a real server make a dispute, with who
// sees it down and who up; agreement (up or down everywhere) does not.
func TestDisputes(t *testing.T) {
	got := Disputes([]Verdicts{
		{"lb1", "web", 7, []string{"10.0.1.2:80"}}, {"lb2", "web", 7, nil}, {"lb3", "web", 7, nil},
		{"lb4", "web", 9, nil}, // another set of real servers: not compared
		{"lb1", "dns", 5, []string{"10.0.1.9:53"}}, {"lb2", "dns", 5, []string{"10.0.1.9:53"}},
		{"lb2", "api", 3, []string{"10.0.1.5:80"}}, {"lb1", "api", 3, nil},
	})
	if len(got) != 2 {
		t.Fatalf("%d disputes, want 2: %v", len(got), got)
	}
	api, web := got[0].GetRealServerDisputed(), got[1].GetRealServerDisputed()
	if api.GetVirtualServer() != "api" || !slices.Equal(api.GetDownOn(), []string{"lb2"}) || !slices.Equal(api.GetUpOn(), []string{"lb1"}) {
		t.Errorf("api: %v", api)
	}
	if web.GetRealServer() != "10.0.1.2:80" || !slices.Equal(web.GetDownOn(), []string{"lb1"}) || !slices.Equal(web.GetUpOn(), []string{"lb2", "lb3"}) {
		t.Errorf("web: %v", web)
	}
	if k := Key(got[1]); k != "real_server_disputed/web/10.0.1.2:80" {
		t.Errorf("key %q", k)
	}
	var tr Tracker
	tr.Update(got)
	_, resolved := tr.Update(got[:1])
	if len(resolved) != 1 || !resolved[0].GetRealServerDisputed().GetResolved() {
		t.Errorf("resolved %v", resolved)
	}
}

// A virtual server with many real servers down comes in several summary
// entries of one name: they are merged, and compared as one.
func TestFleetVerdictsMergeChunks(t *testing.T) {
	vsh := func(down ...string) *haav1.VirtualServerHealth {
		return &haav1.VirtualServerHealth{Name: "web", SetHash: 7, Down: down}
	}
	self := &haav1.NodeSummary{Node: "lb1", VirtualServers: []*haav1.VirtualServerHealth{vsh("a:80", "b:80"), vsh("c:80")}}
	view := gossip.View{Self: "lb1", Members: []gossip.Member{
		{Name: "lb2", State: haav1.MemberState_MEMBER_STATE_ALIVE, Summary: &haav1.NodeSummary{Node: "lb2",
			VirtualServers: []*haav1.VirtualServerHealth{vsh("a:80"), vsh("b:80")}}},
	}}
	vs := fleetVerdicts(view, self)
	if len(vs) != 2 || !slices.Equal(vs[0].Down, []string{"a:80", "b:80", "c:80"}) || !slices.Equal(vs[1].Down, []string{"a:80", "b:80"}) {
		t.Fatalf("verdicts %+v", vs)
	}
	got := Disputes(vs)
	if len(got) != 1 || got[0].GetRealServerDisputed().GetRealServer() != "c:80" {
		t.Fatalf("disputes %v, want c:80 only (down on lb1, up on lb2)", got)
	}
}
