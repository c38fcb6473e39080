package syncgroup

import (
	"reflect"
	"testing"

	"github.com/haa-dev/haa/node/vrrp"
)

func want(t *testing.T, got []Command, exp ...Command) {
	t.Helper()
	if len(got) == 0 && len(exp) == 0 {
		return
	}
	if !reflect.DeepEqual(got, exp) {
		t.Fatalf("commands:\n got  %+v\n want %+v", got, exp)
	}
}

func started(t *testing.T) *Group {
	g := New("VG_1", []string{"VI_1", "VI_2"})
	// A new group tells each member its fault state once, none included
	// (a member may still carry a fault from a group it was in before).
	want(t, g.Transition("VI_1", vrrp.Init, vrrp.Backup, vrrp.CauseStartup),
		Command{Instance: "VI_1", Kind: Fault}, Command{Instance: "VI_2", Kind: Fault})
	want(t, g.Transition("VI_2", vrrp.Init, vrrp.Backup, vrrp.CauseStartup), Command{Instance: "VI_2", Kind: Fault})
	if g.State() != vrrp.Backup {
		t.Fatalf("state %v", g.State())
	}
	return g
}

func TestMasterOnlyWhenEveryMemberWants(t *testing.T) {
	g := started(t)
	want(t, g.Sync("VI_1", true, false))
	// VI_2 still hears a master: nothing.
	want(t, g.Sync("VI_2", false, false))
	want(t, g.Sync("VI_2", true, false),
		Command{Instance: "VI_1", Kind: Master}, Command{Instance: "VI_2", Kind: Master})
	g.Transition("VI_1", vrrp.Backup, vrrp.Master, vrrp.CauseSyncGroup)
	if g.State() != vrrp.Backup {
		t.Fatalf("half master: state %v, want the last whole state BACKUP", g.State())
	}
	g.Transition("VI_2", vrrp.Backup, vrrp.Master, vrrp.CauseSyncGroup)
	if g.State() != vrrp.Master {
		t.Fatalf("state %v", g.State())
	}
}

func TestMemberThatLeavesMasterTakesTheOthers(t *testing.T) {
	g := started(t)
	g.Sync("VI_1", true, false)
	g.Sync("VI_2", true, false)
	g.Transition("VI_1", vrrp.Backup, vrrp.Master, vrrp.CauseSyncGroup)
	g.Transition("VI_2", vrrp.Backup, vrrp.Master, vrrp.CauseSyncGroup)
	want(t, g.Transition("VI_1", vrrp.Master, vrrp.Backup, vrrp.CauseHigherPriority),
		Command{Instance: "VI_2", Kind: Backup})
	// The follower's own move is no new reason.
	want(t, g.Transition("VI_2", vrrp.Master, vrrp.Backup, vrrp.CauseSyncGroup))
	// A member wanting again alone does not make the group master.
	want(t, g.Sync("VI_2", true, false))
}

func TestFaultTakesTheGroup(t *testing.T) {
	g := started(t)
	g.Sync("VI_1", true, false)
	g.Sync("VI_2", true, false)
	g.Transition("VI_1", vrrp.Backup, vrrp.Master, vrrp.CauseSyncGroup)
	g.Transition("VI_2", vrrp.Backup, vrrp.Master, vrrp.CauseSyncGroup)
	want(t, g.Transition("VI_1", vrrp.Master, vrrp.Fault, vrrp.CauseTrackFault))
	want(t, g.Sync("VI_1", false, true),
		Command{Instance: "VI_2", Kind: Fault, Reason: "sync group VG_1: VI_1 in FAULT"})
	g.Transition("VI_2", vrrp.Master, vrrp.Fault, vrrp.CauseSyncGroup)
	if g.State() != vrrp.Fault {
		t.Fatalf("state %v", g.State())
	}
	// Both faulty of their own: each is held by the other.
	want(t, g.Sync("VI_2", false, true),
		Command{Instance: "VI_1", Kind: Fault, Reason: "sync group VG_1: VI_2 in FAULT"})
	want(t, g.Sync("VI_1", false, false),
		Command{Instance: "VI_2", Kind: Fault, Reason: ""})
	want(t, g.Sync("VI_2", false, false),
		Command{Instance: "VI_1", Kind: Fault, Reason: ""})
	// Recovered: backups, then master together.
	g.Transition("VI_1", vrrp.Fault, vrrp.Backup, vrrp.CauseFaultCleared)
	g.Transition("VI_2", vrrp.Fault, vrrp.Backup, vrrp.CauseFaultCleared)
	g.Sync("VI_1", true, false)
	want(t, g.Sync("VI_2", true, false),
		Command{Instance: "VI_1", Kind: Master}, Command{Instance: "VI_2", Kind: Master})
}

func TestStoppedMemberBlocksMastership(t *testing.T) {
	g := started(t)
	g.Sync("VI_1", true, false)
	want(t, g.Transition("VI_2", vrrp.Backup, vrrp.Init, vrrp.CauseShutdown), Command{Instance: "VI_2", Kind: Fault})
	want(t, g.Sync("VI_1", true, false))
	g.Transition("VI_1", vrrp.Backup, vrrp.Init, vrrp.CauseShutdown)
	if g.State() != vrrp.Init {
		t.Fatalf("state %v, want INIT once all stopped", g.State())
	}
	// Unknown instances are ignored.
	want(t, g.Sync("VI_9", true, true))
}

func TestStoppingMasterTakesTheOthers(t *testing.T) {
	g := started(t)
	g.Sync("VI_1", true, false)
	g.Sync("VI_2", true, false)
	g.Transition("VI_1", vrrp.Backup, vrrp.Master, vrrp.CauseSyncGroup)
	g.Transition("VI_2", vrrp.Backup, vrrp.Master, vrrp.CauseSyncGroup)
	// VI_1 restarts (a configuration change): the peer's group can only
	// take over as a whole, so VI_2 hands over too.
	want(t, g.Transition("VI_1", vrrp.Master, vrrp.Init, vrrp.CauseShutdown),
		Command{Instance: "VI_1", Kind: Fault}, Command{Instance: "VI_2", Kind: Backup})
}

func TestRestartedMemberStartsWithTheGroupFault(t *testing.T) {
	g := started(t)
	g.Sync("VI_2", false, true)
	if r := g.Reason("VI_1"); r != "sync group VG_1: VI_2 in FAULT" {
		t.Fatalf("reason for VI_1: %q", r)
	}
	if r := g.Reason("VI_2"); r != "" {
		t.Fatalf("reason for VI_2 itself: %q", r)
	}
	// VI_1 restarts: told again.
	g.Transition("VI_1", vrrp.Fault, vrrp.Init, vrrp.CauseShutdown)
	want(t, g.Transition("VI_1", vrrp.Init, vrrp.Fault, vrrp.CauseSyncGroup),
		Command{Instance: "VI_1", Kind: Fault, Reason: "sync group VG_1: VI_2 in FAULT"})
}
