// Package syncgroup decides how the members of a VRRP sync group move
// together (keepalived's vrrp_sync_group). It is pure: the agent feeds it
// what the members' state machines report and carries out the commands it
// returns.
//
// The rules: the group becomes MASTER only when every member wants to (a
// member wants to when its master-down timer expired, see vrrp.Config.Gated,
// or is master already); a member that leaves MASTER for BACKUP by itself (a
// better master, a handover) takes the other masters with it; a member in
// FAULT for a reason of its own puts every other member in FAULT.
package syncgroup

import (
	"fmt"

	"github.com/haa-dev/haa/node/vrrp"
)

// Kind is what a Command asks of a member.
type Kind int

// Command kinds.
const (
	// Fault puts the member in FAULT for Reason, or releases it (Reason "").
	Fault Kind = iota
	// Backup makes a master member hand over.
	Backup
	// Master makes a member that wants to be master master.
	Master
)

func (k Kind) String() string {
	switch k {
	case Fault:
		return "fault"
	case Backup:
		return "backup"
	case Master:
		return "master"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Command is what the agent must tell one member.
type Command struct {
	Instance string
	Kind     Kind
	Reason   string // Fault only
}

// member is what the group knows of one member.
type member struct {
	state    vrrp.State
	want     bool
	ownFault bool
	fault    string // the group fault reason last sent to it; unsent: not yet
}

// unsent marks a member not told the group's fault yet: the next settle
// tells it, "" (no fault) included.
const unsent = "\x00unsent"

// Group is one sync group.
type Group struct {
	name    string
	members []string
	st      map[string]*member
	state   vrrp.State
}

// New returns a group of the named instances, all in Init.
func New(name string, instances []string) *Group {
	g := &Group{name: name, members: append([]string(nil), instances...), st: map[string]*member{}}
	for _, m := range instances {
		g.st[m] = &member{fault: unsent}
	}
	return g
}

// Name returns the group's name.
func (g *Group) Name() string { return g.name }

// Members returns the member instances.
func (g *Group) Members() []string { return append([]string(nil), g.members...) }

// State is the group's state: FAULT while a member is, MASTER when every
// member is master, BACKUP when every member is backup, INIT when every
// member stopped; otherwise (members moving) the last of those.
func (g *Group) State() vrrp.State { return g.state }

// Transition records a member's state change and returns the commands for
// the others.
func (g *Group) Transition(instance string, from, to vrrp.State, cause vrrp.Cause) []Command {
	m := g.st[instance]
	if m == nil {
		return nil
	}
	m.state = to
	if to != vrrp.Backup {
		m.want = false
	}
	if to == vrrp.Init {
		m.ownFault = false
	}
	if from == vrrp.Init || to == vrrp.Init {
		// A member (re)started or stopped: a new state machine, which
		// has not been told about the group's fault yet.
		m.fault = unsent
	}
	var cmds []Command
	// A master member that hands over or stops by itself takes the other
	// masters with it: the peer's group can only take over as a whole.
	if from == vrrp.Master && (to == vrrp.Backup || to == vrrp.Init) && cause != vrrp.CauseSyncGroup {
		for _, o := range g.members {
			if o != instance && g.st[o].state == vrrp.Master {
				cmds = append(cmds, Command{Instance: o, Kind: Backup})
			}
		}
	}
	return g.settle(cmds)
}

// Reason is the group fault reason for a member now ("" for none): what a
// restarted member starts with.
func (g *Group) Reason(instance string) string {
	for _, p := range g.members {
		if p != instance && g.st[p].ownFault {
			return fmt.Sprintf("sync group %s: %s in FAULT", g.name, p)
		}
	}
	return ""
}

// Sync records a member's wish to be master and whether it is in FAULT for
// a reason of its own (vrrp.NoticeSync), and returns the commands.
func (g *Group) Sync(instance string, want, ownFault bool) []Command {
	m := g.st[instance]
	if m == nil {
		return nil
	}
	m.want, m.ownFault = want, ownFault
	return g.settle(nil)
}

// settle adds the fault and go-ahead commands to cmds and updates State.
func (g *Group) settle(cmds []Command) []Command {
	faulty := ""
	for _, o := range g.members {
		if g.st[o].ownFault {
			faulty = o
			break
		}
	}
	var faults []Command
	for _, o := range g.members {
		m := g.st[o]
		if reason := g.Reason(o); reason != m.fault {
			m.fault = reason
			faults = append(faults, Command{Instance: o, Kind: Fault, Reason: reason})
		}
	}
	cmds = append(faults, cmds...)
	if faulty == "" {
		ready, waiting := true, false
		for _, o := range g.members {
			m := g.st[o]
			switch {
			case m.state == vrrp.Master:
			case m.state == vrrp.Backup && m.want:
				waiting = true
			default:
				ready = false
			}
		}
		if ready && waiting {
			for _, o := range g.members {
				if m := g.st[o]; m.state == vrrp.Backup && m.want {
					cmds = append(cmds, Command{Instance: o, Kind: Master})
				}
			}
		}
	}
	g.state = g.derive()
	return cmds
}

func (g *Group) derive() vrrp.State {
	count := map[vrrp.State]int{}
	for _, o := range g.members {
		count[g.st[o].state]++
	}
	switch n := len(g.members); {
	case count[vrrp.Fault] > 0:
		return vrrp.Fault
	case count[vrrp.Master] == n:
		return vrrp.Master
	case count[vrrp.Backup] == n:
		return vrrp.Backup
	case count[vrrp.Init] == n:
		return vrrp.Init
	}
	return g.state
}
