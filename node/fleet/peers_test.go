package fleet

import (
	"fmt"
	"testing"

	"github.com/haa-dev/haa/node/gossip"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// The fleet's peers of an instance are the live members' instances of the
// same name, VRID and family; dead and left members are not.
func TestPeers(t *testing.T) {
	in := func(name string, vrid uint32, family, src string) *haav1.InstanceSummary {
		return &haav1.InstanceSummary{Name: name, Vrid: vrid, Family: family, SourceAddress: src}
	}
	member := func(name string, st haav1.MemberState, ins ...*haav1.InstanceSummary) gossip.Member {
		return gossip.Member{Name: name, State: st, Summary: &haav1.NodeSummary{Node: name, Instances: ins}}
	}
	const alive, suspect, dead, left = haav1.MemberState_MEMBER_STATE_ALIVE, haav1.MemberState_MEMBER_STATE_SUSPECT,
		haav1.MemberState_MEMBER_STATE_DEAD, haav1.MemberState_MEMBER_STATE_LEFT
	self := &haav1.NodeSummary{Node: "lb1", Instances: []*haav1.InstanceSummary{
		in("VI_1", 51, "ipv4", "10.0.0.1"), in("VI_6", 51, "ipv6", "fe80::1"), in("alone", 9, "ipv4", "10.0.0.1")}}
	view := gossip.View{Self: "lb1", Members: []gossip.Member{
		member("lb1", alive, self.Instances...),
		member("lb2", alive, in("VI_1", 51, "ipv4", "10.0.0.2"), in("VI_6", 51, "ipv6", "fe80::2")),
		member("lb3", suspect, in("VI_1", 51, "ipv4", "10.0.0.3")),
		member("lb4", dead, in("VI_1", 51, "ipv4", "10.0.0.4")),
		member("lb5", left, in("VI_1", 51, "ipv4", "10.0.0.5")),
		member("lb6", alive, in("VI_1", 52, "ipv4", "10.0.0.6"), in("VI_6", 51, "ipv4", "10.0.0.6"), in("alone", 9, "ipv4", "")),
		member("lb7", alive),
	}}
	got := fmt.Sprint(Peers(view, self))
	if want := "map[VI_1:[10.0.0.2 10.0.0.3] VI_6:[fe80::2] alone:[]]"; got != want {
		t.Fatalf("peers\n got  %s\n want %s", got, want)
	}
}
