package vrrp

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

var (
	t0    = time.Unix(1_700_000_000, 0)
	self  = netip.MustParseAddr("10.77.0.2")
	lower = netip.MustParseAddr("10.77.0.1")
	upper = netip.MustParseAddr("10.77.0.3")
	vip1  = netip.MustParseAddr("10.77.0.100")
)

func cfg3(prio uint8) Config {
	return Config{Name: "VI_1", VRID: 51, Priority: prio, Version: 3, Interval: 100 * time.Millisecond,
		Preempt: true, Addrs: []netip.Addr{vip1}, Primary: self}
}

func adv(prio uint8) *Advert {
	return &Advert{Version: 3, VRID: 51, Priority: prio, Interval: 100 * time.Millisecond, Addrs: []netip.Addr{vip1}}
}

func at(d time.Duration) time.Time { return t0.Add(d) }

func step(in *Instance, now time.Time, ev Event) []Action {
	return append([]Action(nil), in.Step(now, ev)...)
}

func wantActs(t *testing.T, got []Action, want ...Action) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("actions:\n got  %#v\n want %#v", got, want)
	}
}

func wantDeadline(t *testing.T, in *Instance, want time.Time) {
	t.Helper()
	got, ok := in.Deadline()
	if !ok || !got.Equal(want) {
		t.Fatalf("deadline = %v (armed %v), want %v", got.Sub(t0), ok, want.Sub(t0))
	}
}

func TestStartupBackupThenMaster(t *testing.T) {
	in := NewInstance(cfg3(100))
	wantActs(t, step(in, t0, EvStart{LinkUp: true}), ActTransition{Init, Backup, CauseStartup})
	mdi := MasterDownInterval(3, 100, 100*time.Millisecond)
	wantDeadline(t, in, at(mdi))
	// Early timer delivery is ignored.
	wantActs(t, step(in, at(mdi-time.Millisecond), EvTimer{}))
	wantActs(t, step(in, at(mdi), EvTimer{}),
		ActAddVIPs{}, ActSend{100}, ActTransition{Backup, Master, CauseMasterDown})
	wantDeadline(t, in, at(mdi+100*time.Millisecond))
	wantActs(t, step(in, at(mdi+100*time.Millisecond), EvTimer{}), ActSend{100})
	wantDeadline(t, in, at(mdi+200*time.Millisecond))
}

func TestOwnerIsMasterAtOnce(t *testing.T) {
	in := NewInstance(cfg3(255))
	wantActs(t, step(in, t0, EvStart{LinkUp: true}),
		ActAddVIPs{}, ActSend{255}, ActTransition{Init, Master, CauseOwner})
	// Priority changes never touch the owner.
	wantActs(t, step(in, t0, EvTrack{Offset: -50}))
	if in.Priority() != 255 {
		t.Fatalf("owner priority changed to %d", in.Priority())
	}
}

// keepalived 2.2.7's `state MASTER` waits the master-down interval like a
// backup (measured in a namespace: 3.65 s with 1 s adverts either way).
func TestInitialMasterWaitsLikeKeepalived(t *testing.T) {
	c := cfg3(100)
	c.InitialMaster = true
	in := NewInstance(c)
	wantActs(t, step(in, t0, EvStart{LinkUp: true}), ActTransition{Init, Backup, CauseStartup})
	wantDeadline(t, in, at(MasterDownInterval(3, 100, 100*time.Millisecond)))
	// A higher priority master still wins.
	step(in, at(10*time.Millisecond), EvAdvert{Src: upper, Advert: adv(200)})
	wantDeadline(t, in, at(10*time.Millisecond+MasterDownInterval(3, 100, 100*time.Millisecond)))
}

func TestBackupResetsTimerOnAdvertAndAdoptsInterval(t *testing.T) {
	in := NewInstance(cfg3(100))
	step(in, t0, EvStart{LinkUp: true})
	a := adv(150)
	a.Interval = time.Second
	wantActs(t, step(in, at(time.Millisecond), EvAdvert{Src: upper, Advert: a}),
		ActMaster{Addr: upper, Priority: 150, Interval: time.Second})
	wantDeadline(t, in, at(time.Millisecond+MasterDownInterval(3, 100, time.Second)))
	// The same master again: no new ActMaster.
	wantActs(t, step(in, at(2*time.Millisecond), EvAdvert{Src: upper, Advert: a}))
}

func TestBackupPreemptsLowerMaster(t *testing.T) {
	in := NewInstance(cfg3(200))
	step(in, t0, EvStart{LinkUp: true})
	// Lower-priority adverts are discarded, and the master that sent one
	// is preempted after the skew time rather than the master-down
	// interval; later adverts do not push the deadline back.
	wantActs(t, step(in, at(50*time.Millisecond), EvAdvert{Src: upper, Advert: adv(100)}))
	due := at(50*time.Millisecond + SkewTime(3, 200, 100*time.Millisecond))
	wantDeadline(t, in, due)
	wantActs(t, step(in, at(60*time.Millisecond), EvAdvert{Src: upper, Advert: adv(100)}))
	wantDeadline(t, in, due)
	acts := step(in, due, EvTimer{})
	if in.State() != Master || len(acts) != 3 {
		t.Fatalf("did not preempt: state %v actions %v", in.State(), acts)
	}
}

func TestNoPreemptKeepsLowerMaster(t *testing.T) {
	c := cfg3(200)
	c.Preempt = false
	in := NewInstance(c)
	step(in, t0, EvStart{LinkUp: true})
	step(in, at(50*time.Millisecond), EvAdvert{Src: upper, Advert: adv(100)})
	wantDeadline(t, in, at(50*time.Millisecond+MasterDownInterval(3, 200, 100*time.Millisecond)))
}

// keepalived's preempt_delay also runs from the moment a lower master is
// first seen, not only from start-up.
func TestPreemptDelayFromFirstLowerMaster(t *testing.T) {
	c := cfg3(200)
	c.PreemptDelay = 10 * time.Second
	in := NewInstance(c)
	step(in, t0, EvStart{LinkUp: true})
	// A higher master for 20 s, then it drops to 100 (trackers).
	for s := time.Duration(0); s <= 20*time.Second; s += time.Second {
		step(in, at(s), EvAdvert{Src: upper, Advert: adv(250)})
	}
	step(in, at(21*time.Second), EvAdvert{Src: upper, Advert: adv(100)})
	mdi := MasterDownInterval(3, 200, 100*time.Millisecond)
	wantDeadline(t, in, at(21*time.Second+mdi)) // accepted: the delay runs
	step(in, at(30*time.Second), EvAdvert{Src: upper, Advert: adv(100)})
	wantDeadline(t, in, at(30*time.Second+mdi))
	step(in, at(31*time.Second+time.Millisecond), EvAdvert{Src: upper, Advert: adv(100)})
	wantDeadline(t, in, at(30*time.Second+mdi)) // delay over: discarded, we preempt
}

func TestAddressOwnerListMismatchIsProcessed(t *testing.T) {
	in := NewInstance(cfg3(100))
	step(in, t0, EvStart{LinkUp: true})
	a := adv(255)
	a.Addrs = []netip.Addr{netip.MustParseAddr("10.77.0.200")}
	acts := step(in, at(time.Millisecond), EvAdvert{Src: upper, Advert: a})
	if len(acts) != 1 || acts[0].(ActMaster).Priority != 255 {
		t.Fatalf("owner advert with another address list: %#v", acts)
	}
	// Duplicates do not make lists equal.
	if sameAddrs([]netip.Addr{vip1, vip1}, []netip.Addr{vip1, upper}) {
		t.Fatal("[x x] equals [x y]")
	}
}

func TestReconfigureInPlace(t *testing.T) {
	in := masterAt(t, cfg3(100))
	c := cfg3(150)
	c.Preempt = false
	c.VRID = 99 // not changeable in place: ignored
	wantActs(t, step(in, at(time.Second), EvReconfigure{Config: c}), ActSend{150})
	if in.Priority() != 150 || in.Config().Preempt || in.Config().VRID != 51 || in.State() != Master {
		t.Fatalf("after reconfigure: prio %d cfg %+v state %v", in.Priority(), in.Config(), in.State())
	}
}

func TestPreemptDelay(t *testing.T) {
	c := cfg3(200)
	c.PreemptDelay = 10 * time.Second
	in := NewInstance(c)
	step(in, t0, EvStart{LinkUp: true})
	// Within the delay a lower master is accepted like with nopreempt.
	step(in, at(time.Second), EvAdvert{Src: upper, Advert: adv(100)})
	wantDeadline(t, in, at(time.Second+MasterDownInterval(3, 200, 100*time.Millisecond)))
	// After it, discarded.
	step(in, at(11*time.Second), EvAdvert{Src: upper, Advert: adv(100)})
	wantDeadline(t, in, at(time.Second+MasterDownInterval(3, 200, 100*time.Millisecond)))
}

func TestBackupPriorityZeroUsesSkew(t *testing.T) {
	in := NewInstance(cfg3(100))
	step(in, t0, EvStart{LinkUp: true})
	step(in, at(10*time.Millisecond), EvAdvert{Src: upper, Advert: adv(0)})
	wantDeadline(t, in, at(10*time.Millisecond+SkewTime(3, 100, 100*time.Millisecond)))
}

// A priority-0 advert from anyone but the master a backup follows is
// discarded: it says nothing about that master (a flood of them from a
// third node made the backup take over 55 times in 20 s).
func TestBackupIgnoresPriorityZeroFromAThirdNode(t *testing.T) {
	in := NewInstance(cfg3(100))
	step(in, t0, EvStart{LinkUp: true})
	step(in, at(10*time.Millisecond), EvAdvert{Src: upper, Advert: adv(200)})
	mdi := MasterDownInterval(3, 100, 100*time.Millisecond)
	step(in, at(20*time.Millisecond), EvAdvert{Src: lower, Advert: adv(0)})
	wantDeadline(t, in, at(10*time.Millisecond+mdi))
	step(in, at(30*time.Millisecond), EvAdvert{Src: upper, Advert: adv(0)})
	wantDeadline(t, in, at(30*time.Millisecond+SkewTime(3, 100, 100*time.Millisecond)))
}

func masterAt(t *testing.T, c Config) *Instance {
	t.Helper()
	in := NewInstance(c)
	step(in, t0, EvStart{LinkUp: true})
	d, _ := in.Deadline()
	step(in, d, EvTimer{})
	if in.State() != Master {
		t.Fatalf("not master")
	}
	return in
}

func TestMasterYieldsToHigherPriority(t *testing.T) {
	in := masterAt(t, cfg3(100))
	now := at(time.Second)
	wantActs(t, step(in, now, EvAdvert{Src: lower, Advert: adv(150)}),
		ActSend{100}, ActDelVIPs{}, ActTransition{Master, Backup, CauseHigherPriority},
		ActMaster{Addr: lower, Priority: 150, Interval: 100 * time.Millisecond})
	wantDeadline(t, in, now.Add(MasterDownInterval(3, 100, 100*time.Millisecond)))
}

func TestMasterTieBreakOnPrimaryAddress(t *testing.T) {
	in := masterAt(t, cfg3(100))
	// Equal priority from a lower address: we stay master (and force the
	// election).
	wantActs(t, step(in, at(time.Second), EvAdvert{Src: lower, Advert: adv(100)}), ActSend{100}, ActAnnounce{})
	if in.State() != Master {
		t.Fatal("yielded to a lower address")
	}
	// Equal priority from a higher address: we yield.
	step(in, at(time.Second), EvAdvert{Src: upper, Advert: adv(100)})
	if in.State() != Backup {
		t.Fatal("did not yield to a higher address")
	}
}

// A master hearing a lower master (a split brain healing) forces the
// election at once and re-announces its addresses, at most once per
// master-down interval, as keepalived does.
func TestMasterAnswersLowerMasterAndPriorityZero(t *testing.T) {
	in := masterAt(t, cfg3(100))
	wantActs(t, step(in, at(time.Second), EvAdvert{Src: upper, Advert: adv(50)}), ActSend{100}, ActAnnounce{})
	wantActs(t, step(in, at(time.Second+100*time.Millisecond), EvAdvert{Src: upper, Advert: adv(50)}))
	mdi := MasterDownInterval(3, 100, 100*time.Millisecond)
	wantActs(t, step(in, at(time.Second+mdi), EvAdvert{Src: upper, Advert: adv(50)}), ActSend{100}, ActAnnounce{})
	if in.State() != Master {
		t.Fatal("left master for a lower priority")
	}
	wantActs(t, step(in, at(time.Second), EvAdvert{Src: upper, Advert: adv(0)}), ActSend{100})
	wantDeadline(t, in, at(time.Second+100*time.Millisecond))
	// A flood of priority 0 is answered at most every quarter interval.
	for k := time.Duration(1); k < 25; k++ {
		wantActs(t, step(in, at(time.Second+k*time.Millisecond), EvAdvert{Src: upper, Advert: adv(0)}))
	}
	wantActs(t, step(in, at(time.Second+25*time.Millisecond), EvAdvert{Src: upper, Advert: adv(0)}), ActSend{100})
}

func TestShutdownSendsPriorityZero(t *testing.T) {
	in := masterAt(t, cfg3(100))
	wantActs(t, step(in, at(time.Second), EvShutdown{}),
		ActSend{0}, ActDelVIPs{}, ActTransition{Master, Init, CauseShutdown})
	if _, ok := in.Deadline(); ok {
		t.Fatal("timer armed after shutdown")
	}
	// A backup leaves silently.
	b := NewInstance(cfg3(100))
	step(b, t0, EvStart{LinkUp: true})
	wantActs(t, step(b, at(time.Second), EvShutdown{}), ActTransition{Backup, Init, CauseShutdown})
}

func TestLinkDownFaultAndBack(t *testing.T) {
	in := masterAt(t, cfg3(100))
	wantActs(t, step(in, at(time.Second), EvLink{Up: false}),
		ActDelVIPs{}, ActTransition{Master, Fault, CauseLinkDown})
	// Adverts and timers do nothing in fault.
	wantActs(t, step(in, at(2*time.Second), EvAdvert{Src: upper, Advert: adv(50)}))
	wantActs(t, step(in, at(2*time.Second), EvTimer{}))
	wantActs(t, step(in, at(3*time.Second), EvLink{Up: true}), ActTransition{Fault, Backup, CauseLinkUp})
	wantDeadline(t, in, at(3*time.Second+MasterDownInterval(3, 100, 100*time.Millisecond)))
	// Starting with the link down goes straight to fault.
	f := NewInstance(cfg3(100))
	wantActs(t, step(f, t0, EvStart{LinkUp: false}), ActTransition{Init, Fault, CauseLinkDown})
}

func TestReceiveChecksDropAndNeverChangeState(t *testing.T) {
	v2 := cfg3(100)
	v2.Version, v2.Interval, v2.AuthType = 2, time.Second, AuthSimple
	copy(v2.AuthData[:], "1111")
	good := func() *Advert {
		a := &Advert{Version: 2, VRID: 51, Priority: 250, Interval: time.Second, Addrs: []netip.Addr{vip1}, AuthType: AuthSimple}
		copy(a.AuthData[:], "1111")
		return a
	}
	for _, tc := range []struct {
		name   string
		mutate func(a *Advert)
		src    netip.Addr
		want   DropReason
	}{
		{"version", func(a *Advert) { a.Version = 3 }, upper, DropVersion},
		{"auth type", func(a *Advert) { a.AuthType = AuthNone }, upper, DropAuthType},
		{"password", func(a *Advert) { copy(a.AuthData[:], "2222") }, upper, DropAuthFailure},
		{"interval", func(a *Advert) { a.Interval = 2 * time.Second }, upper, DropInterval},
		{"addresses", func(a *Advert) { a.Addrs = []netip.Addr{netip.MustParseAddr("10.77.0.200")} }, upper, DropAddrList},
		{"extra address", func(a *Advert) { a.Addrs = append(a.Addrs, netip.MustParseAddr("10.77.0.200")) }, upper, DropAddrList},
		{"own packet", func(a *Advert) {}, self, DropOwnPacket},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, st := range []State{Backup, Master} {
				var in *Instance
				if st == Master {
					in = masterAt(t, v2)
				} else {
					in = NewInstance(v2)
					step(in, t0, EvStart{LinkUp: true})
				}
				before, _ := in.Deadline()
				a := good()
				tc.mutate(a)
				acts := step(in, at(500*time.Millisecond), EvAdvert{Src: tc.src, Advert: a})
				if len(acts) != 1 || acts[0].(ActDrop).Reason != tc.want {
					t.Fatalf("%v: actions %#v, want one drop %v", st, acts, tc.want)
				}
				after, _ := in.Deadline()
				if in.State() != st || !after.Equal(before) {
					t.Fatalf("%v: state or timer changed by a dropped packet", st)
				}
			}
		})
	}
	// The good advert is accepted (and preempts the v2 master).
	in := masterAt(t, v2)
	step(in, at(time.Second), EvAdvert{Src: upper, Advert: good()})
	if in.State() != Backup {
		t.Fatal("valid v2 advert with higher priority not accepted")
	}
}

func TestPriorityChanges(t *testing.T) {
	in := masterAt(t, cfg3(100))
	wantActs(t, step(in, at(time.Second), EvTrack{Offset: -20}), ActSend{80})
	// Clamped to 1..254.
	step(in, at(time.Second), EvTrack{Offset: -200})
	if in.Priority() != 1 {
		t.Fatalf("priority %d, want clamped to 1", in.Priority())
	}
	// A backup raised above the master preempts after skew, not MDI.
	b := NewInstance(cfg3(100))
	step(b, t0, EvStart{LinkUp: true})
	step(b, at(10*time.Millisecond), EvAdvert{Src: upper, Advert: adv(150)})
	step(b, at(20*time.Millisecond), EvTrack{Offset: 100})
	wantDeadline(t, b, at(20*time.Millisecond+SkewTime(3, 200, 100*time.Millisecond)))
}

func TestMasterTimerDoesNotBurstAfterStall(t *testing.T) {
	in := masterAt(t, cfg3(100))
	d, _ := in.Deadline()
	// Delivered 1 s late: one advert, next one a full interval later.
	late := d.Add(time.Second)
	wantActs(t, step(in, late, EvTimer{}), ActSend{100})
	wantDeadline(t, in, late.Add(100*time.Millisecond))
}

func TestMaintenanceHold(t *testing.T) {
	in := masterAt(t, cfg3(100))
	wantActs(t, step(in, at(time.Second), EvHold{On: true}),
		ActSend{0}, ActDelVIPs{}, ActTransition{Master, Backup, CauseMaintenance})
	// Nobody else: the timer fires again and again, the instance stays backup.
	for i := 0; i < 5; i++ {
		d, _ := in.Deadline()
		wantActs(t, step(in, d, EvTimer{}))
	}
	if in.State() != Backup || in.Held() != "maintenance" {
		t.Fatalf("state %v held %q", in.State(), in.Held())
	}
	// Even a lower master is accepted.
	step(in, at(time.Minute), EvAdvert{Src: upper, Advert: adv(50)})
	wantDeadline(t, in, at(time.Minute+MasterDownInterval(3, 100, 100*time.Millisecond)))
	// Released: the next master-down expiry makes it master.
	step(in, at(time.Minute), EvHold{On: false})
	d, _ := in.Deadline()
	if acts := step(in, d, EvTimer{}); in.State() != Master || len(acts) != 3 {
		t.Fatalf("not master after release: %v", acts)
	}
	// An owner on hold starts as backup.
	o := NewInstance(cfg3(255))
	step(o, t0, EvHold{On: true})
	wantActs(t, step(o, t0, EvStart{LinkUp: true}), ActTransition{Init, Backup, CauseStartup})
}

func TestFailoverYieldsUntilMasterAgain(t *testing.T) {
	in := masterAt(t, cfg3(200))
	wantActs(t, step(in, at(time.Second), EvFailover{}),
		ActSend{0}, ActDelVIPs{}, ActTransition{Master, Backup, CauseFailover})
	// The new master has a lower priority: accepted, no preemption.
	for s := 2 * time.Second; s < 10*time.Second; s += 100 * time.Millisecond {
		step(in, at(s), EvAdvert{Src: upper, Advert: adv(100)})
	}
	if in.State() != Backup || in.Held() != "failover" {
		t.Fatalf("preempted back after a failover: %v", in.State())
	}
	// The new master dies: we take over, and the yield ends.
	d, _ := in.Deadline()
	step(in, d, EvTimer{})
	if in.State() != Master || in.Held() != "" {
		t.Fatalf("state %v held %q", in.State(), in.Held())
	}
	// Failover of a backup does nothing.
	b := NewInstance(cfg3(100))
	step(b, t0, EvStart{LinkUp: true})
	wantActs(t, step(b, t0, EvFailover{}))
}

func TestAnnounceOnlyWhileMaster(t *testing.T) {
	in := masterAt(t, cfg3(200))
	wantActs(t, step(in, at(time.Second), EvAnnounce{}), ActAnnounce{})
	b := NewInstance(cfg3(100))
	step(b, t0, EvStart{LinkUp: true})
	wantActs(t, step(b, t0, EvAnnounce{}))
}

func TestTrackerFaultAndOffset(t *testing.T) {
	in := masterAt(t, cfg3(100))
	// A failed weight-0 tracker: hand over at once (the link works), FAULT.
	wantActs(t, step(in, at(time.Second), EvTrack{Fault: "tracker chk failed"}),
		ActSend{PriorityStop}, ActDelVIPs{}, ActTransition{Master, Fault, CauseTrackFault})
	if in.FaultReason() != "tracker chk failed" {
		t.Fatalf("fault reason %q", in.FaultReason())
	}
	// The link goes down and the tracker recovers: still FAULT (link).
	wantActs(t, step(in, at(2*time.Second), EvLink{Up: false}))
	wantActs(t, step(in, at(3*time.Second), EvTrack{Offset: -10}))
	if in.State() != Fault || in.FaultReason() != "interface down" || in.Priority() != 90 {
		t.Fatalf("state %v reason %q priority %d", in.State(), in.FaultReason(), in.Priority())
	}
	// Link back: backup with the tracked priority.
	wantActs(t, step(in, at(4*time.Second), EvLink{Up: true}), ActTransition{Fault, Backup, CauseLinkUp})
	wantDeadline(t, in, at(4*time.Second+MasterDownInterval(3, 90, 100*time.Millisecond)))
	// A fault cleared by the tracker itself says so.
	step(in, at(5*time.Second), EvTrack{Fault: "x"})
	wantActs(t, step(in, at(6*time.Second), EvTrack{}), ActTransition{Fault, Backup, CauseFaultCleared})
	if in.Priority() != 100 {
		t.Fatalf("priority %d after the offset cleared", in.Priority())
	}
}

// The effective priority: configured plus the trackers' offset, kept within
// 1..254; the owner's 255 never moves (a fault still counts for it).
func TestEffectivePriority(t *testing.T) {
	tests := []struct {
		name   string
		base   uint8
		offset int
		want   uint8
	}{
		{"no trackers", 100, 0, 100},
		{"sum", 100, -20 + 10 - 5, 85},
		{"clamped to 1", 100, -253, 1},
		{"clamped to 1 from 1", 1, -1, 1},
		{"clamped to 254", 200, 100, 254},
		{"254 from below", 250, 4, 254},
		{"large file delta clamped", 100, 508 - 253, 254},
		{"255 never changes", 255, -100, 255},
		{"255 never changes up", 255, 100, 255},
	}
	for _, tt := range tests {
		in := NewInstance(cfg3(tt.base))
		in.SetInitialTrack(tt.offset, "")
		if got := in.Priority(); got != tt.want {
			t.Errorf("%s: priority %d with offset %d = %d, want %d", tt.name, tt.base, tt.offset, got, tt.want)
		}
		in.SetInitialTrack(tt.offset, "tracker x failed")
		if in.Priority() != tt.want || in.FaultReason() != "tracker x failed" {
			t.Errorf("%s: with a fault: priority %d, reason %q", tt.name, in.Priority(), in.FaultReason())
		}
	}
}

func TestStartsInFaultWithFailedTracker(t *testing.T) {
	in := NewInstance(cfg3(100))
	in.SetInitialTrack(-20, "tracker chk failed")
	wantActs(t, step(in, t0, EvStart{LinkUp: true}), ActTransition{Init, Fault, CauseTrackFault})
	if in.Priority() != 80 {
		t.Fatalf("priority %d, want 80", in.Priority())
	}
	// The owner's priority never moves, but a fault still counts.
	o := NewInstance(cfg3(255))
	o.SetInitialTrack(-100, "")
	wantActs(t, step(o, t0, EvStart{LinkUp: true}), ActAddVIPs{}, ActSend{255}, ActTransition{Init, Master, CauseOwner})
	wantActs(t, step(o, t0, EvTrack{Offset: 20, Fault: "f"}),
		ActSend{PriorityStop}, ActDelVIPs{}, ActTransition{Master, Fault, CauseTrackFault})
	if o.Priority() != 255 {
		t.Fatalf("owner priority %d", o.Priority())
	}
}

func TestGatedMemberWaitsForItsGroup(t *testing.T) {
	c := cfg3(100)
	c.Gated = true
	in := NewInstance(c)
	step(in, t0, EvStart{LinkUp: true})
	mdi := MasterDownInterval(3, 100, 100*time.Millisecond)
	// The timer expires: it wants to be master, no more.
	wantActs(t, step(in, at(mdi), EvTimer{}), ActSync{Want: true})
	if in.State() != Backup {
		t.Fatalf("gated member became %v by itself", in.State())
	}
	// A master appears: the wish is withdrawn, the timer re-armed.
	wantActs(t, step(in, at(mdi+time.Millisecond), EvAdvert{Src: upper, Advert: adv(150)}),
		ActMaster{Addr: upper, Priority: 150, Interval: 100 * time.Millisecond}, ActSync{})
	wantDeadline(t, in, at(mdi+time.Millisecond+mdi))
	// A stale go-ahead is ignored.
	wantActs(t, step(in, at(mdi+2*time.Millisecond), EvSyncMaster{}))
	// Expires again, the group agrees: master.
	step(in, at(2*mdi+time.Millisecond), EvTimer{})
	wantActs(t, step(in, at(2*mdi+2*time.Millisecond), EvSyncMaster{}),
		ActAddVIPs{}, ActSend{100}, ActTransition{Backup, Master, CauseSyncGroup}, ActSync{})
	// Another member had to become backup: hand over.
	wantActs(t, step(in, at(3*mdi), EvSyncBackup{}),
		ActSend{PriorityStop}, ActDelVIPs{}, ActTransition{Master, Backup, CauseSyncGroup})
	// Another member is in FAULT: so is this one, but not of its own.
	wantActs(t, step(in, at(3*mdi), EvSyncFault{Reason: "sync group VG_1: VI_2 in FAULT"}),
		ActTransition{Backup, Fault, CauseSyncGroup})
	// Its own link fails meanwhile: own fault reported.
	wantActs(t, step(in, at(3*mdi), EvLink{Up: false}), ActSync{OwnFault: true})
	wantActs(t, step(in, at(3*mdi), EvLink{Up: true}), ActSync{})
	wantActs(t, step(in, at(3*mdi), EvSyncFault{}), ActTransition{Fault, Backup, CauseFaultCleared})
}

func TestGatedOwnerWantsAtOnce(t *testing.T) {
	c := cfg3(255)
	c.Gated = true
	in := NewInstance(c)
	wantActs(t, step(in, t0, EvStart{LinkUp: true}), ActTransition{Init, Backup, CauseStartup}, ActSync{Want: true})
	wantActs(t, step(in, t0, EvSyncMaster{}), ActAddVIPs{}, ActSend{255}, ActTransition{Backup, Master, CauseSyncGroup}, ActSync{})
}

func TestResyncAndUngate(t *testing.T) {
	c := cfg3(100)
	c.Gated = true
	in := NewInstance(c)
	step(in, t0, EvStart{LinkUp: true})
	// Resync reports the state and the member's wish, even unchanged.
	wantActs(t, step(in, at(time.Millisecond), EvResync{}), ActState{State: Backup}, ActSync{})
	step(in, at(time.Millisecond), EvSyncFault{Reason: "sync group G: VI_2 in FAULT"})
	if in.State() != Fault {
		t.Fatalf("state %v", in.State())
	}
	// Leaving the group releases its fault.
	c.Gated = false
	wantActs(t, step(in, at(2*time.Millisecond), EvReconfigure{Config: c}), ActTransition{Fault, Backup, CauseFaultCleared})
	if in.FaultReason() != "" {
		t.Fatalf("fault reason %q after leaving the group", in.FaultReason())
	}
}
