package vrrp

import (
	"fmt"
	"net/netip"
	"time"
)

// State of a VRRP instance.
type State int

// States. Init is also the state after shutdown.
const (
	Init State = iota
	Backup
	Master
	Fault
)

func (s State) String() string {
	switch s {
	case Init:
		return "INIT"
	case Backup:
		return "BACKUP"
	case Master:
		return "MASTER"
	case Fault:
		return "FAULT"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Cause says why a transition happened.
type Cause string

// Transition causes.
const (
	CauseStartup         Cause = "startup"
	CauseOwner           Cause = "address_owner"
	CauseMasterDown      Cause = "master_down_timer"
	CauseHigherPriority  Cause = "higher_priority_advert"
	CauseLinkDown        Cause = "interface_down"
	CauseLinkUp          Cause = "interface_up"
	CauseShutdown        Cause = "shutdown"
	CausePriorityChanged Cause = "priority_changed"
	CauseFailover        Cause = "failover_requested"
	CauseMaintenance     Cause = "maintenance"
	CauseTrackFault      Cause = "tracker_failed"
	CauseFaultCleared    Cause = "fault_cleared"
	CauseSyncGroup       Cause = "sync_group"
)

// Config is what the state machine needs to know about an instance. The
// runner fills in Primary (the source address) before Start.
type Config struct {
	Name         string
	VRID         uint8
	Priority     uint8 // configured priority, 1..255
	Version      int   // 2 or 3
	Interval     time.Duration
	Preempt      bool
	PreemptDelay time.Duration
	// InitialMaster is keepalived's `state MASTER`. keepalived 2.2.7 lets
	// the election decide even then (measured: MASTER and BACKUP both take
	// the VIP a master-down interval after start), and so does haa: it is
	// kept for the status only.
	InitialMaster bool
	// Addrs are the virtual addresses carried in adverts and compared with
	// received ones.
	Addrs    []netip.Addr
	AuthType uint8
	AuthData [8]byte
	// Primary is this node's address on the instance's interface: the
	// source of adverts and the tie-breaker at equal priority.
	Primary netip.Addr
	// Gated: the instance is a member of a sync group. When its
	// master-down timer expires it does not become master but wants to
	// (ActSync), and becomes master on EvSyncMaster, once every member of
	// the group wants to.
	Gated bool
}

// Event is an input to Instance.Step.
type Event interface{ event() }

// Events.
type (
	// EvStart starts the instance; LinkUp says whether its interface is up.
	EvStart struct{ LinkUp bool }
	// EvAdvert is an advert that passed the packet-level checks.
	EvAdvert struct {
		Src    netip.Addr
		Advert *Advert
		// Checked says the receive side ran Check on it already, with
		// this instance's configuration (an interface does, before it
		// hands an advert over): not run twice per advert.
		Checked bool
	}
	// EvTimer fires when Deadline has passed.
	EvTimer struct{}
	// EvLink reports the interface going up or down.
	EvLink struct{ Up bool }
	// EvShutdown stops the instance, handing over if it is master.
	EvShutdown struct{}
	// EvTrack is the trackers' verdict: Offset is added to the configured
	// priority (the result clamped to 1..254; 255 never moves), and a
	// non-empty Fault puts the instance in FAULT for that reason until it
	// is cleared.
	EvTrack struct {
		Offset int
		Fault  string
	}
	// EvSyncFault puts a sync group member in FAULT because another
	// member is (Reason), or releases it (Reason empty).
	EvSyncFault struct{ Reason string }
	// EvSyncMaster makes a sync group member that wants to be master (its
	// master-down timer expired) master: every member wants to.
	EvSyncMaster struct{}
	// EvSyncBackup makes a sync group member that is master hand over:
	// another member had to become backup.
	EvSyncBackup struct{}
	// EvResync asks for the instance's state and its ActSync again, in
	// order with everything it reports (a sync group learning its members).
	EvResync struct{}
	// EvReconfigure changes what can change without a restart: priority,
	// preempt, preempt delay. VRID, version, interval and addresses
	// cannot change in place.
	EvReconfigure struct{ Config Config }
	// EvHold puts the instance on hold (maintenance): a master hands over
	// and a held instance never becomes master, until released.
	EvHold struct{ On bool }
	// EvFailover makes a master hand over and then accept the new master
	// whatever its priority (no preemption) until it is master again.
	EvFailover struct{}
	// EvAnnounce asks a master to re-announce its addresses (one GARP
	// burst), e.g. once a split brain seen through gossip is over. Ignored
	// in any other state.
	EvAnnounce struct{}
)

func (EvStart) event()       {}
func (EvAdvert) event()      {}
func (EvTimer) event()       {}
func (EvLink) event()        {}
func (EvShutdown) event()    {}
func (EvTrack) event()       {}
func (EvSyncFault) event()   {}
func (EvSyncMaster) event()  {}
func (EvSyncBackup) event()  {}
func (EvResync) event()      {}
func (EvReconfigure) event() {}
func (EvHold) event()        {}
func (EvFailover) event()    {}
func (EvAnnounce) event()    {}

// Action is an output of Instance.Step for the runner to carry out, in order.
type Action interface{ action() }

// Actions.
type (
	// ActSend sends an advert with the given priority.
	ActSend struct{ Priority uint8 }
	// ActAddVIPs adds the virtual addresses and announces them (GARP).
	ActAddVIPs struct{}
	// ActDelVIPs removes the virtual addresses and stops announcing them.
	ActDelVIPs struct{}
	// ActAnnounce re-announces the addresses (one GARP burst) while
	// master: after a conflict, so the LAN's ARP caches point here.
	ActAnnounce struct{}
	// ActTransition reports a state change.
	ActTransition struct {
		From, To State
		Cause    Cause
	}
	// ActDrop reports a discarded advert.
	ActDrop struct {
		Reason DropReason
		Detail string
	}
	// ActMaster reports the master now seen (a backup learning it).
	ActMaster struct {
		Addr     netip.Addr
		Priority uint8
		Interval time.Duration
	}
	// ActSync reports, for the sync group, whether the instance wants to
	// become master (a gated backup whose timer expired) and whether it is
	// in FAULT for a reason of its own (not the group's). Emitted, last,
	// by every Step that changes either.
	ActSync struct{ Want, OwnFault bool }
	// ActState reports the current state (EvResync).
	ActState struct{ State State }
)

func (ActSend) action()       {}
func (ActAddVIPs) action()    {}
func (ActDelVIPs) action()    {}
func (ActAnnounce) action()   {}
func (ActTransition) action() {}
func (ActDrop) action()       {}
func (ActMaster) action()     {}
func (ActSync) action()       {}
func (ActState) action()      {}

// Instance is the pure VRRP state machine of RFC 5798 section 6 (and RFC
// 3768 for v2). It does no I/O and never reads the clock: time comes in with
// every Step, and the runner arms one timer at Deadline.
type Instance struct {
	cfg      Config
	state    State
	priority uint8 // effective priority

	deadline time.Time // zero: no timer
	// masterInterval is the interval of the current master (v3 backups
	// adopt it); the local interval otherwise.
	masterInterval time.Duration
	masterAddr     netip.Addr
	masterPrio     uint8
	preemptAfter   time.Time
	// lowerMaster: a backup currently hears a master below its priority
	// (the preempt delay runs from when it first did, as in keepalived).
	lowerMaster bool
	// forcedAt is when a master last answered a lower-priority master.
	forcedAt time.Time
	// stopAnsweredAt is when a master last answered a priority-0 advert.
	stopAnsweredAt time.Time
	// held: maintenance, never master. yield: after a requested failover,
	// accept the new master whatever its priority.
	held, yield bool

	// Fault sources: the link, the trackers, the sync group.
	linkDown   bool
	trackFault string
	syncFault  string
	offset     int // the trackers' offset to the configured priority
	// want: a gated backup whose master-down timer expired.
	want bool
	// What the last ActSync said.
	sentWant, sentOwnFault bool

	acts []Action
}

// NewInstance returns an instance in Init. cfg must be valid.
func NewInstance(cfg Config) *Instance {
	return &Instance{cfg: cfg, priority: cfg.Priority, masterInterval: cfg.Interval}
}

// SetInitialTrack sets the trackers' verdict before the instance starts
// (see EvTrack), so it starts with it.
func (in *Instance) SetInitialTrack(offset int, fault string) {
	in.offset, in.trackFault = offset, fault
	in.priority = in.effective()
}

// SetInitialSyncFault sets a sync group fault before the instance starts.
func (in *Instance) SetInitialSyncFault(reason string) { in.syncFault = reason }

// FaultReason says why the instance is (or would be) in FAULT: "interface
// down", the trackers' or the sync group's reason; "" when nothing is wrong.
func (in *Instance) FaultReason() string {
	switch {
	case in.linkDown:
		return "interface down"
	case in.trackFault != "":
		return in.trackFault
	}
	return in.syncFault
}

// Wants reports whether a gated backup wants to become master.
func (in *Instance) Wants() bool { return in.want }

// ownFault: in FAULT (or would be) for a reason of its own.
func (in *Instance) ownFault() bool { return in.linkDown || in.trackFault != "" }

// State returns the current state.
func (in *Instance) State() State { return in.state }

// Priority returns the effective priority.
func (in *Instance) Priority() uint8 { return in.priority }

// Held reports why the instance is kept from becoming master: "maintenance",
// "failover" (it yields to the master it handed over to), or "".
func (in *Instance) Held() string {
	switch {
	case in.held:
		return "maintenance"
	case in.yield:
		return "failover"
	}
	return ""
}

// Config returns the configuration.
func (in *Instance) Config() Config { return in.cfg }

// Deadline returns when the runner must deliver EvTimer; ok is false when no
// timer is armed.
func (in *Instance) Deadline() (t time.Time, ok bool) { return in.deadline, !in.deadline.IsZero() }

// MasterInterval is the advert interval in use: the master's as adopted by a
// v3 backup, or the local one.
func (in *Instance) MasterInterval() time.Duration { return in.masterInterval }

// MasterAddr is the address of the master as last seen (this node's own
// primary address while master).
func (in *Instance) MasterAddr() netip.Addr { return in.masterAddr }

// Step feeds one event at time now and returns the actions to carry out. The
// returned slice is reused by the next Step.
func (in *Instance) Step(now time.Time, ev Event) []Action {
	in.acts = in.acts[:0]
	switch e := ev.(type) {
	case EvStart:
		in.start(now, e.LinkUp)
	case EvAdvert:
		in.advert(now, e.Src, e.Advert, e.Checked)
	case EvTimer:
		in.timer(now)
	case EvLink:
		in.link(now, e.Up)
	case EvShutdown:
		in.shutdown()
	case EvTrack:
		in.offset = e.Offset
		in.updatePriority(now)
		in.setFault(now, &in.trackFault, e.Fault, CauseTrackFault)
	case EvSyncFault:
		in.setFault(now, &in.syncFault, e.Reason, CauseSyncGroup)
	case EvSyncMaster:
		if in.state == Backup && in.want && !in.held && in.FaultReason() == "" {
			in.becomeMaster(now, CauseSyncGroup)
		}
	case EvSyncBackup:
		if in.state == Master {
			in.handOver(now, CauseSyncGroup)
		}
	case EvResync:
		in.emit(ActState{State: in.state})
		in.sentWant, in.sentOwnFault = !in.want, !in.ownFault() // force ActSync below
	case EvReconfigure:
		in.reconfigure(now, e.Config)
	case EvHold:
		in.hold(now, e.On)
	case EvFailover:
		if in.state == Master {
			in.yield = true
			in.handOver(now, CauseFailover)
		}
	case EvAnnounce:
		if in.state == Master {
			in.emit(ActAnnounce{})
		}
	}
	return in.finish()
}

// StepAdvert is Step of EvAdvert{src, a, checked}, without the event's
// interface: what the receive path calls for every advert, allocating
// nothing (a pointer in an interface passed to Step goes to the heap).
func (in *Instance) StepAdvert(now time.Time, src netip.Addr, a *Advert, checked bool) []Action {
	in.acts = in.acts[:0]
	in.advert(now, src, a, checked)
	return in.finish()
}

// finish ends a step: what every event may change.
func (in *Instance) finish() []Action {
	if in.state != Backup {
		in.want = false
	}
	if in.cfg.Gated { // only sync group members report (not on every advert of the others)
		if own := in.ownFault(); in.want != in.sentWant || own != in.sentOwnFault {
			in.sentWant, in.sentOwnFault = in.want, own
			in.emit(ActSync{Want: in.want, OwnFault: own})
		}
	}
	return in.acts
}

func (in *Instance) emit(a Action) { in.acts = append(in.acts, a) }

func (in *Instance) transition(to State, cause Cause) {
	from := in.state
	in.state = to
	in.emit(ActTransition{From: from, To: to, Cause: cause})
}

func (in *Instance) mdi() time.Duration {
	return MasterDownInterval(in.cfg.Version, in.priority, in.masterInterval)
}

func (in *Instance) skew() time.Duration {
	return SkewTime(in.cfg.Version, in.priority, in.masterInterval)
}

func (in *Instance) start(now time.Time, up bool) {
	if in.state != Init {
		return
	}
	in.preemptAfter = now.Add(in.cfg.PreemptDelay)
	in.linkDown = !up
	switch {
	case in.linkDown:
		in.transition(Fault, CauseLinkDown)
	case in.trackFault != "":
		in.transition(Fault, CauseTrackFault)
	case in.syncFault != "":
		in.transition(Fault, CauseSyncGroup)
	default:
		in.enterInitial(now, CauseStartup)
	}
}

// enterInitial is RFC 5798 6.4.1: the owner becomes master at once, others
// wait for the master-down timer as backups.
func (in *Instance) enterInitial(now time.Time, cause Cause) {
	in.masterInterval = in.cfg.Interval
	if in.priority == PriorityOwner && !in.held && !in.cfg.Gated {
		in.becomeMaster(now, CauseOwner)
		return
	}
	in.transition(Backup, cause)
	in.masterAddr = netip.Addr{}
	if in.priority == PriorityOwner && !in.held {
		in.want = true // gated owner: master as soon as the group agrees
		in.deadline = time.Time{}
		return
	}
	in.deadline = now.Add(in.mdi())
}

func (in *Instance) becomeMaster(now time.Time, cause Cause) {
	in.yield = false
	// Addresses and their GARPs first: they are what clients wait for;
	// the advert to the other routers follows microseconds later.
	in.emit(ActAddVIPs{})
	in.emit(ActSend{Priority: in.priority})
	in.transition(Master, cause)
	in.masterAddr = in.cfg.Primary
	in.masterPrio = in.priority
	in.masterInterval = in.cfg.Interval
	in.deadline = now.Add(in.cfg.Interval)
}

func (in *Instance) becomeBackup(now time.Time, cause Cause) {
	if in.state == Master {
		in.emit(ActDelVIPs{})
	}
	in.transition(Backup, cause)
	in.deadline = now.Add(in.mdi())
}

func (in *Instance) timer(now time.Time) {
	if in.deadline.IsZero() || now.Before(in.deadline) {
		return
	}
	switch in.state {
	case Backup:
		if in.held {
			in.deadline = now.Add(in.mdi())
			return
		}
		if in.cfg.Gated {
			// The group decides (EvSyncMaster); an accepted advert
			// withdraws the wish and re-arms the timer.
			in.want = true
			in.deadline = time.Time{}
			return
		}
		in.becomeMaster(now, CauseMasterDown)
	case Master:
		in.emit(ActSend{Priority: in.priority})
		in.deadline = in.deadline.Add(in.cfg.Interval)
		if !in.deadline.After(now) { // we were stalled: do not burst
			in.deadline = now.Add(in.cfg.Interval)
		}
	default:
		in.deadline = time.Time{}
	}
}

// Check applies the receive checks that need only the advert and the
// instance's configuration (RFC 5798 7.1, RFC 3768 7.1): its own advert
// looped back, version, v2 authentication and interval, the address list.
// It returns why the advert must be dropped (DropNone: it must not); it
// allocates nothing (CheckDetail says why in words). The interface's
// receive loop runs it before an advert is queued (junk never takes a
// genuine advert's place), the instance again when it handles one.
func Check(cfg *Config, src netip.Addr, a *Advert) DropReason {
	switch {
	case src == cfg.Primary:
		return DropOwnPacket
	case a.Version != cfg.Version:
		return DropVersion
	case a.Version == 2 && a.AuthType != cfg.AuthType:
		return DropAuthType
	case a.Version == 2 && a.AuthType == AuthSimple && a.AuthData != cfg.AuthData:
		return DropAuthFailure
	case a.Version == 2 && a.Interval != cfg.Interval:
		return DropInterval
	// RFC 5798 7.1: a differing address list is a misconfiguration; the
	// packet is dropped unless it comes from the address owner.
	case a.Priority != PriorityOwner && !sameAddrs(a.Addrs, cfg.Addrs):
		return DropAddrList
	}
	return DropNone
}

// CheckDetail says in words why Check dropped a.
func CheckDetail(r DropReason, cfg *Config, a *Advert) string {
	switch r {
	case DropVersion:
		return fmt.Sprintf("version %d, configured %d", a.Version, cfg.Version)
	case DropAuthType:
		return fmt.Sprintf("auth type %d, configured %d", a.AuthType, cfg.AuthType)
	case DropAuthFailure:
		return "password mismatch"
	case DropInterval:
		return fmt.Sprintf("interval %v, configured %v", a.Interval, cfg.Interval)
	case DropAddrList:
		return fmt.Sprintf("addresses %v, configured %v", a.Addrs, cfg.Addrs)
	}
	return ""
}

// sameAddrs compares two address lists as sets.
func sameAddrs(a, b []netip.Addr) bool {
	return len(a) == len(b) && subset(a, b) && subset(b, a)
}

func subset(a, b []netip.Addr) bool {
outer:
	for _, x := range a {
		for _, y := range b {
			if x == y {
				continue outer
			}
		}
		return false
	}
	return true
}

func (in *Instance) advert(now time.Time, src netip.Addr, a *Advert, checked bool) {
	if checked {
		// Check reads only what cannot change in place (version,
		// authentication, interval, addresses): its verdict stands.
	} else if r := Check(&in.cfg, src, a); r != DropNone {
		in.emit(ActDrop{Reason: r, Detail: CheckDetail(r, &in.cfg, a)})
		return
	}
	switch in.state {
	case Backup:
		in.backupAdvert(now, src, a)
	case Master:
		in.masterAdvert(now, src, a)
	}
}

// backupAdvert is RFC 5798 6.4.2.
func (in *Instance) backupAdvert(now time.Time, src netip.Addr, a *Advert) {
	if a.Priority == PriorityStop {
		// The master we follow is leaving. The same from anyone else is
		// not news about our master (a third node, misconfigured or
		// hostile, would make us take over from a master that still
		// speaks): discard it.
		if !in.masterAddr.IsValid() || src == in.masterAddr {
			in.deadline = now.Add(in.skew())
		}
		return
	}
	lower := a.Priority < in.priority
	if lower && in.masterAddr.IsValid() && src != in.masterAddr && in.masterPrio >= in.priority {
		// A lower advert from someone other than the master we follow,
		// which is above us: discard it (RFC 5798 6.4.2). A third node
		// below us, misconfigured or hostile, must not make us preempt a
		// master that is still speaking.
		return
	}
	if lower && !in.lowerMaster {
		// keepalived's preempt_delay: after start-up, or after first
		// seeing a lower-priority master, wait before preempting.
		in.preemptAfter = maxTime(in.preemptAfter, now.Add(in.cfg.PreemptDelay))
	}
	in.lowerMaster = lower
	if !in.cfg.Preempt || in.yield || in.held || !lower || now.Before(in.preemptAfter) {
		if in.cfg.Version == 3 {
			in.masterInterval = a.Interval
		}
		if src != in.masterAddr || a.Priority != in.masterPrio {
			in.masterAddr, in.masterPrio = src, a.Priority
			in.emit(ActMaster{Addr: src, Priority: a.Priority, Interval: in.masterInterval})
		}
		in.want = false
		in.deadline = now.Add(in.mdi())
		return
	}
	// Otherwise discard (RFC 5798 6.4.2) and preempt. The RFC lets the
	// master-down timer run out; the master has told us it is below us,
	// so waiting the skew time is enough (the highest backup still goes
	// first): a master whose check failed is replaced in a fraction of
	// an interval instead of three.
	if !in.want {
		if d := now.Add(in.skew()); in.deadline.IsZero() || d.Before(in.deadline) {
			in.deadline = d
		}
	}
}

// masterAdvert is RFC 5798 6.4.3.
func (in *Instance) masterAdvert(now time.Time, src netip.Addr, a *Advert) {
	if a.Priority == PriorityStop {
		// Tell the backups at once that a master remains, but at most
		// every quarter interval: a flood of priority-0 adverts must not
		// make us a flood of our own.
		if in.stopAnsweredAt.IsZero() || now.Sub(in.stopAnsweredAt) >= in.cfg.Interval/4 {
			in.stopAnsweredAt = now
			in.emit(ActSend{Priority: in.priority})
			in.deadline = now.Add(in.cfg.Interval)
		}
		return
	}
	if a.Priority > in.priority || (a.Priority == in.priority && addrGreater(src, in.cfg.Primary)) {
		if in.cfg.Version == 3 {
			in.masterInterval = a.Interval
		}
		in.masterAddr, in.masterPrio = src, a.Priority
		// One last advert with our priority: if two masters meet after a
		// split brain, the winner hears it and re-announces the addresses
		// (below), whichever of the two spoke first. Without it the LAN's
		// ARP caches may keep pointing at the loser.
		in.emit(ActSend{Priority: in.priority})
		in.becomeBackup(now, CauseHigherPriority)
		in.emit(ActMaster{Addr: src, Priority: a.Priority, Interval: in.masterInterval})
		return
	}
	// Another master below us (a split brain healing): force the election
	// with an advert now and re-announce the addresses so the LAN's ARP
	// caches point here, as keepalived does; at most once per master-down
	// interval.
	if in.forcedAt.IsZero() || now.Sub(in.forcedAt) >= in.mdi() {
		in.forcedAt = now
		in.emit(ActSend{Priority: in.priority})
		in.emit(ActAnnounce{})
		in.deadline = now.Add(in.cfg.Interval)
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func addrGreater(a, b netip.Addr) bool { return a.Compare(b) > 0 }

func (in *Instance) link(now time.Time, up bool) {
	in.linkDown = !up
	cause := CauseLinkUp
	if !up {
		cause = CauseLinkDown
	}
	in.refault(now, cause)
}

// setFault sets one fault source and enters or leaves FAULT accordingly.
func (in *Instance) setFault(now time.Time, field *string, reason string, cause Cause) {
	if *field == reason {
		return
	}
	*field = reason
	if reason == "" {
		cause = CauseFaultCleared
	}
	in.refault(now, cause)
}

// refault enters FAULT while any fault source is set, and leaves it (as a
// backup, or master at once if the address owner) when none is.
func (in *Instance) refault(now time.Time, cause Cause) {
	faulty := in.FaultReason() != ""
	switch {
	case faulty && in.state != Fault && in.state != Init:
		if in.state == Master {
			if !in.linkDown {
				// Hand over at once rather than after the master-down
				// interval: the link still carries adverts.
				in.emit(ActSend{Priority: PriorityStop})
			}
			in.emit(ActDelVIPs{})
		}
		in.transition(Fault, cause)
		in.deadline = time.Time{}
		in.masterAddr = netip.Addr{}
	case !faulty && in.state == Fault:
		in.preemptAfter = now.Add(in.cfg.PreemptDelay)
		in.lowerMaster = false
		in.enterInitial(now, cause)
	}
}

// reconfigure applies the changes that need no restart. A new configured
// priority replaces the effective one (trackers re-apply their weights).
func (in *Instance) reconfigure(now time.Time, c Config) {
	old := in.cfg
	c.VRID, c.Version, c.Interval, c.Addrs = old.VRID, old.Version, old.Interval, old.Addrs
	c.AuthType, c.AuthData, c.Primary = old.AuthType, old.AuthData, old.Primary
	in.cfg = c
	if c.Priority != old.Priority {
		in.updatePriority(now)
	}
	if old.Gated && !c.Gated {
		if in.state == Backup && in.want && !in.held {
			in.becomeMaster(now, CauseMasterDown) // its timer had expired
		}
		in.setFault(now, &in.syncFault, "", CauseSyncGroup) // no group to fault it any more
	}
}

// handOver leaves mastership on request: a priority-0 advert makes the
// backups take over after their skew time.
func (in *Instance) handOver(now time.Time, cause Cause) {
	in.emit(ActSend{Priority: PriorityStop})
	in.emit(ActDelVIPs{})
	in.transition(Backup, cause)
	in.masterAddr = netip.Addr{}
	in.deadline = now.Add(in.mdi())
}

func (in *Instance) hold(now time.Time, on bool) {
	in.held = on
	if on && in.state == Master {
		in.handOver(now, CauseMaintenance)
	}
	// Released: a backup's running master-down timer decides as usual.
}

func (in *Instance) shutdown() {
	if in.state == Master {
		in.emit(ActSend{Priority: PriorityStop})
		in.emit(ActDelVIPs{})
	}
	if in.state != Init {
		in.transition(Init, CauseShutdown)
	}
	in.deadline = time.Time{}
}

// effective is the configured priority moved by the trackers' offset and
// clamped to 1..254; the configured 255 (owner) never moves.
func (in *Instance) effective() uint8 {
	if in.cfg.Priority == PriorityOwner {
		return PriorityOwner
	}
	return uint8(max(1, min(int(in.cfg.Priority)+in.offset, PriorityOwner-1)))
}

// updatePriority applies a change of the effective priority.
func (in *Instance) updatePriority(now time.Time) {
	p := in.effective()
	if p == in.priority {
		return
	}
	old := in.priority
	in.priority = p
	switch in.state {
	case Master:
		// Tell the backups at once; a backup with a higher priority now
		// preempts on its own (RFC behaviour, as keepalived).
		in.emit(ActSend{Priority: p})
		in.deadline = now.Add(in.cfg.Interval)
	case Backup:
		// A raised priority may now exceed the master's: with preempt on,
		// do not wait a whole master-down interval to take over.
		if p > old && in.cfg.Preempt && in.masterAddr.IsValid() && p > in.masterPrio && !now.Before(in.preemptAfter) {
			in.deadline = now.Add(in.skew())
		}
	}
}
