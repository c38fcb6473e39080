package fleet

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

const (
	master  = haav1.State_STATE_MASTER
	backup  = haav1.State_STATE_BACKUP
	fault   = haav1.State_STATE_FAULT
	seg     = "10.77.0.0/24"
	other   = "10.78.0.0/24"
	defA    = "aaaaaaaaaaaaaaaa"
	defB    = "bbbbbbbbbbbbbbbb"
	segWide = "10.77.0.0/16"
)

func in(node, name, segment string, vrid uint32, state haav1.State, def string) Instance {
	return Instance{Node: node, Name: name, Segment: segment, VRID: vrid, State: state, Definition: def}
}

func ni(node, instance string) *haav1.NodeInstance {
	return &haav1.NodeInstance{Node: node, Instance: instance}
}

func split(segment string, vrid uint32, masters ...*haav1.NodeInstance) *haav1.FleetIssue {
	return &haav1.FleetIssue{Kind: &haav1.FleetIssue_SplitBrain{SplitBrain: &haav1.SplitBrain{
		Segment: segment, Vrid: vrid, Masters: masters}}}
}

func collision(segment string, vrid uint32, ins ...*haav1.NodeInstance) *haav1.FleetIssue {
	return &haav1.FleetIssue{Kind: &haav1.FleetIssue_VridCollision{VridCollision: &haav1.VridCollision{
		Segment: segment, Vrid: vrid, Instances: ins}}}
}

func drift(node string) *haav1.FleetIssue {
	return &haav1.FleetIssue{Kind: &haav1.FleetIssue_Drift{Drift: &haav1.Drift{Node: node, Hash: "x"}}}
}

func text(l []*haav1.FleetIssue) string {
	var s []string
	for _, is := range l {
		s = append(s, prototext.MarshalOptions{}.Format(is))
	}
	return strings.Join(s, "\n")
}

func equal(a, b []*haav1.FleetIssue) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestDetect(t *testing.T) {
	for _, c := range []struct {
		name string
		ins  []Instance
		want []*haav1.FleetIssue
	}{
		{"nothing", nil, nil},
		{"one master, one backup", []Instance{
			in("lb1", "VI_1", seg, 51, master, defA),
			in("lb2", "VI_1", seg, 51, backup, defA),
		}, nil},
		{"split brain", []Instance{
			in("lb2", "VI_1", seg, 51, master, defA),
			in("lb1", "VI_1", seg, 51, master, defA),
			in("lb3", "VI_1", seg, 51, backup, defA),
		}, []*haav1.FleetIssue{split(seg, 51, ni("lb1", "VI_1"), ni("lb2", "VI_1"))}},
		{"masters on other segments or vrids are not a split brain", []Instance{
			in("lb1", "VI_1", seg, 51, master, defA),
			in("lb2", "VI_1", other, 51, master, defA),
			in("lb3", "VI_2", seg, 52, master, defB),
		}, nil},
		{"one node master twice is not a split brain", []Instance{
			in("lb1", "VI_1", seg, 51, master, defA),
			in("lb1", "VI_1b", seg, 51, master, defA),
			in("lb2", "VI_1", seg, 51, fault, defA),
		}, nil},
		{"unknown segment is ignored", []Instance{
			in("lb1", "VI_1", "", 51, master, defA),
			in("lb2", "VI_1", "", 51, master, defB),
			in("lb3", "VI_1", seg, 51, master, defA),
		}, nil},
		{"vrid collision lists every instance", []Instance{
			in("lb2", "VI_9", seg, 51, backup, defB),
			in("lb1", "VI_1", seg, 51, master, defA),
			in("lb3", "VI_1", seg, 51, backup, defA),
			in("lb3", "VI_1", seg, 51, backup, defA), // reported twice
		}, []*haav1.FleetIssue{collision(seg, 51, ni("lb1", "VI_1"), ni("lb2", "VI_9"), ni("lb3", "VI_1"))}},
		{"an unknown definition collides with nothing", []Instance{
			in("lb1", "VI_1", seg, 51, backup, defA),
			in("lb2", "VI_1", seg, 51, backup, ""),
		}, nil},
		{"both, sorted by segment, vrid, kind", []Instance{
			in("lb1", "VI_2", seg, 52, master, defA),
			in("lb2", "X", seg, 52, master, defB),
			in("lb1", "VI_1", seg, 51, master, defA),
			in("lb2", "VI_1", seg, 51, master, defA),
			in("lb1", "W", segWide, 7, master, defA),
			in("lb2", "W", segWide, 7, master, defA),
			in("lb1", "Z", "10.8.0.0/24", 9, master, defA),
			in("lb2", "Z", "10.8.0.0/24", 9, master, defA),
		}, []*haav1.FleetIssue{
			split("10.8.0.0/24", 9, ni("lb1", "Z"), ni("lb2", "Z")),
			split(segWide, 7, ni("lb1", "W"), ni("lb2", "W")),
			split(seg, 51, ni("lb1", "VI_1"), ni("lb2", "VI_1")),
			split(seg, 52, ni("lb1", "VI_2"), ni("lb2", "X")),
			collision(seg, 52, ni("lb1", "VI_2"), ni("lb2", "X")),
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Detect(c.ins); !equal(got, c.want) {
				t.Errorf("got\n%s\nwant\n%s", text(got), text(c.want))
			}
		})
	}
}

func TestMasterOf(t *testing.T) {
	ins := []Instance{
		in("lb1", "VI_1", seg, 51, master, defA),
		in("lb2", "VI_1", seg, 51, backup, defA),
		in("lb1", "VI_2", seg, 52, master, defA),
		in("lb2", "VI_2", seg, 52, master, defA),
		in("lb3", "VI_1", other, 51, master, defA),
		in("lb1", "A", seg, 53, master, defA),
		in("lb1", "B", seg, 53, master, defA),
	}
	for _, c := range []struct {
		segment string
		vrid    uint32
		want    string
	}{{seg, 51, "lb1"}, {seg, 52, ""}, {other, 51, "lb3"}, {seg, 53, "lb1"}, {seg, 54, ""}} {
		if got := MasterOf(ins, c.segment, c.vrid); got != c.want {
			t.Errorf("MasterOf(%s, %d) = %q, want %q", c.segment, c.vrid, got, c.want)
		}
	}
}

func TestKey(t *testing.T) {
	for _, c := range []struct {
		is   *haav1.FleetIssue
		want string
	}{
		{split(seg, 51, ni("lb1", "VI_1")), "split_brain/10.77.0.0/24/51"},
		{split(seg, 51, ni("lb3", "VI_1")), "split_brain/10.77.0.0/24/51"},
		{collision(seg, 51), "vrid_collision/10.77.0.0/24/51"},
		{drift("lb2"), "drift/lb2"},
		{&haav1.FleetIssue{}, ""},
		{nil, ""},
	} {
		if got := Key(c.is); got != c.want {
			t.Errorf("Key(%v) = %q, want %q", c.is, got, c.want)
		}
	}
}

func resolvedSplit(segment string, vrid uint32, masters ...*haav1.NodeInstance) *haav1.FleetIssue {
	is := split(segment, vrid, masters...)
	is.GetSplitBrain().Resolved = true
	return is
}

func TestTracker(t *testing.T) {
	sb12 := split(seg, 51, ni("lb1", "VI_1"), ni("lb2", "VI_1"))
	sb123 := split(seg, 51, ni("lb1", "VI_1"), ni("lb2", "VI_1"), ni("lb3", "VI_1"))
	col := collision(seg, 52, ni("lb1", "VI_2"), ni("lb2", "X"))
	resolvedCol := proto.Clone(col).(*haav1.FleetIssue)
	resolvedCol.GetVridCollision().Resolved = true
	resolvedDrift := drift("lb2")
	resolvedDrift.GetDrift().Resolved = true

	var tr Tracker
	for i, step := range []struct {
		cur                []*haav1.FleetIssue
		appeared, resolved []*haav1.FleetIssue
	}{
		{nil, nil, nil},
		{[]*haav1.FleetIssue{sb12}, []*haav1.FleetIssue{sb12}, nil},
		{[]*haav1.FleetIssue{sb12}, nil, nil}, // still there
		// A third master: the same split brain, not a new one.
		{[]*haav1.FleetIssue{sb123, col, col, {}}, []*haav1.FleetIssue{col}, nil},
		// Over: the last form seen, resolved; Master left to the caller.
		{[]*haav1.FleetIssue{col, drift("lb2")}, []*haav1.FleetIssue{drift("lb2")},
			[]*haav1.FleetIssue{resolvedSplit(seg, 51, ni("lb1", "VI_1"), ni("lb2", "VI_1"), ni("lb3", "VI_1"))}},
		// Everything over at once: sorted by key.
		{nil, nil, []*haav1.FleetIssue{resolvedDrift, resolvedCol}},
		{nil, nil, nil},
		// Back again: appears again.
		{[]*haav1.FleetIssue{sb12}, []*haav1.FleetIssue{sb12}, nil},
	} {
		appeared, resolved := tr.Update(step.cur)
		if !equal(appeared, step.appeared) {
			t.Errorf("step %d: appeared\n%s\nwant\n%s", i, text(appeared), text(step.appeared))
		}
		if !equal(resolved, step.resolved) {
			t.Errorf("step %d: resolved\n%s\nwant\n%s", i, text(resolved), text(step.resolved))
		}
	}
}

func TestTrackerKeepsCopies(t *testing.T) {
	var tr Tracker
	is := split(seg, 51, ni("lb1", "VI_1"), ni("lb2", "VI_1"))
	tr.Update([]*haav1.FleetIssue{is})
	is.GetSplitBrain().Masters = nil // the caller reuses its issue
	_, resolved := tr.Update(nil)
	if len(resolved) != 1 || len(resolved[0].GetSplitBrain().GetMasters()) != 2 {
		t.Fatalf("resolved %v", resolved)
	}
	if is.GetSplitBrain().GetResolved() {
		t.Errorf("Update changed the caller's issue")
	}
}

func TestDetectThenTrack(t *testing.T) {
	var tr Tracker
	both := []Instance{in("lb1", "VI_1", seg, 51, master, defA), in("lb2", "VI_1", seg, 51, master, defA)}
	appeared, _ := tr.Update(Detect(both))
	if len(appeared) != 1 || appeared[0].GetSplitBrain() == nil {
		t.Fatalf("appeared %v", appeared)
	}
	healed := []Instance{in("lb1", "VI_1", seg, 51, master, defA), in("lb2", "VI_1", seg, 51, backup, defA)}
	_, resolved := tr.Update(Detect(healed))
	if len(resolved) != 1 {
		t.Fatalf("resolved %v", resolved)
	}
	sb := resolved[0].GetSplitBrain()
	sb.Master = MasterOf(healed, sb.GetSegment(), sb.GetVrid())
	if !sb.GetResolved() || sb.GetMaster() != "lb1" || len(sb.GetMasters()) != 2 {
		t.Errorf("resolved %v", sb)
	}
}
