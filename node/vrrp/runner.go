package vrrp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Sender sends the VRRP message msg from src to dst (the runner's view of a
// raw socket).
type Sender interface {
	Send(src, dst netip.Addr, msg []byte) error
}

// PacketSender sends a whole IPv4 packet the runner built (an advert with
// its AH header) to dst. A Sender that is one carries AH instances.
type PacketSender interface {
	SendPacket(dst netip.Addr, pkt []byte) error
}

// Addresses adds and removes an instance's virtual addresses.
type Addresses interface {
	Add() error
	Del() error
}

// QuickAddresses is Addresses that can tell its set is small: the kernel
// adds it in well under a millisecond. The runner adds such a set itself
// at takeover, before its first advert and gratuitous ARP, when its worker
// is idle: keepalived's order, without the two goroutine hand-offs the
// worker costs (about a millisecond of outage on a busy host, make
// bench-failover).
type QuickAddresses interface {
	Addresses
	Quick() bool
}

// Announcer announces an address on the link (gratuitous ARP).
type Announcer interface {
	Announce(addr netip.Addr) error
}

// RunnerConfig is an instance's configuration as the runner needs it.
type RunnerConfig struct {
	Config
	Interface string
	Group     netip.Addr   // multicast destination
	Peers     []netip.Addr // unicast destinations at start (SetPeers changes them)
	// Unicast: adverts go to the peers, even while there are none (the
	// fleet's peers come and go); false: to Group. Set when Peers is not
	// empty.
	Unicast  bool
	Checksum ChecksumMode
	GARP     GARPConfig
	// Excluded are addresses the master holds and announces with Addrs
	// but does not advertise (keepalived's virtual_ipaddress_excluded).
	Excluded []netip.Addr
}

// NoticeKind says what a Notice reports.
type NoticeKind int

// Notice kinds.
const (
	NoticeTransition NoticeKind = iota
	NoticeMaster                // the master seen by a backup changed
	NoticeDrop
	NoticeGARP
	NoticeError
	NoticePriority
	NoticeVIPs // VIPs added (Added) or removed
	// NoticeSync: whether the instance wants to become master (Want) and
	// is in FAULT for a reason of its own (OwnFault), for its sync group.
	NoticeSync
	// NoticeState reports the current state (To) on request (Resync).
	NoticeState
)

// Notice reports something that happened to an instance. The notify
// function is called synchronously from the instance's goroutine (and, for
// drops found before delivery, from the interface's receive goroutine): it
// must not block and must be safe for concurrent use.
type Notice struct {
	Time     time.Time
	Instance string
	Kind     NoticeKind
	From, To State
	Cause    Cause
	Drop     DropReason
	Detail   string
	Addr     netip.Addr
	Priority uint8
	Err      error
	Added    bool
	Want     bool
	OwnFault bool
	// Count is, for NoticeDrop, the packets dropped for Drop since the
	// last NoticeDrop of that reason (reported at most every 10 s).
	Count uint64
}

// Stats are an instance's counters.
type Stats struct {
	AdvertsSent     atomic.Uint64
	AdvertsReceived atomic.Uint64
	GARPsSent       atomic.Uint64
	Transitions     atomic.Uint64
	BecameMaster    atomic.Uint64
	SendErrors      atomic.Uint64
	drops           [numDropReasons]atomic.Uint64
	// TimerSlipMax is the largest delay, in nanoseconds, between a timer's
	// deadline and the moment it was handled.
	TimerSlipMax atomic.Int64
	slips        [numTimerKinds]SlipHistogram
}

// TimerSlip returns the histogram of how late one kind of timer fired.
func (s *Stats) TimerSlip(k TimerKind) *SlipHistogram {
	if k < 0 || k >= numTimerKinds {
		return &SlipHistogram{}
	}
	return &s.slips[k]
}

// Drop counts one dropped packet.
func (s *Stats) Drop(r DropReason) { s.DropN(r, 1) }

// DropN counts n dropped packets.
func (s *Stats) DropN(r DropReason, n uint64) {
	if r > DropNone && r < numDropReasons {
		s.drops[r].Add(n)
	}
}

// Drops returns the count for one reason.
func (s *Stats) Drops(r DropReason) uint64 {
	if r > DropNone && r < numDropReasons {
		return s.drops[r].Load()
	}
	return 0
}

// Status is a snapshot of a running instance.
type Status struct {
	Name           string
	State          State
	Priority       uint8 // effective
	MasterAddr     netip.Addr
	MasterInterval time.Duration
	LastChange     time.Time
	LastFrom       State
	LastCause      Cause
	VIPError       string // why the VIPs could not be added, while master
	Held           string // "maintenance", "failover" or ""
	VIPsHeld       bool
	FaultReason    string // why it is (or would be) in FAULT; "" if nothing is wrong
	Want           bool   // a sync group member waiting for its group to become master
	OwnFault       bool   // in FAULT (or would be) for a reason of its own, not its group's
}

type inAdvert struct {
	src netip.Addr
	adv *Advert
	at  time.Time
}

// Runner drives one Instance: it delivers packets, timer expiries and
// control events to it from a single goroutine and carries out its actions.
type Runner struct {
	rc   RunnerConfig
	in   *Instance
	send Sender
	// ah is the instance's IPsec AH authentication (AuthType AuthAH),
	// else nil; ahID numbers the IP packets it sends (never 0: the
	// kernel would fill it in after the ICV is made).
	ah     *AH
	ahID   uint16
	addrs  Addresses
	garp   Announcer
	log    *slog.Logger
	notify func(Notice)

	mb *mailbox // adverts waiting: the latest of each source
	// followed is the source of the master the instance follows (zero
	// when none), set as it changes, for the receive side (mailbox room,
	// the interface's lane).
	followed atomic.Pointer[netip.Addr]
	// onFollow, set by the Iface the runner is attached to, is called on
	// the Run goroutine when followed changes.
	onFollow atomic.Pointer[func()]
	// peers are the unicast destinations now (SetPeers), read by the
	// send and receive sides.
	peers    atomic.Pointer[[]netip.Addr]
	batch    []inAdvert // the Run goroutine's buffer for them
	ctl      chan Event
	done     chan struct{}
	stopOnce sync.Once

	stats Stats
	// unreported counts, per reason, the drops since the last NoticeDrop.
	unreported [numDropReasons]atomic.Uint64
	// dropLogged holds, per reason, when a drop was last logged (unix ns):
	// a misconfigured peer is logged every dropLogEvery, not per packet.
	dropLogged [numDropReasons]atomic.Int64

	// status is published by the Run goroutine after every change;
	// readers load it without waiting (Status, Watch).
	status atomic.Pointer[statusCell]
	st     Status // the Run goroutine's copy (the constructor's before Run)

	garpPlan []time.Time // pending GARP rounds, ascending

	timer Timer // protocol deadlines; default a time.Timer

	// The addresses are added and removed by a worker goroutine (see
	// vipWorker): a large set never delays an advert.
	vipWish chan vipWish   // the latest wish not yet taken (capacity 1)
	vipDone chan vipResult // what the worker did

	// mu serialises the instance's events: the Run goroutine's (timers,
	// control, the VIP worker's reports, queued adverts) and the adverts
	// an interface hands over at once (receive). What follows is owned by
	// whoever holds it.
	mu   sync.Mutex
	live bool // Run has started the instance and not stopped it: receive may step it

	precise, coarse Timer       // the protocol timer: a backup's, a master's
	armed           time.Time   // the deadline the armed timer fires at; zero: none
	armedT          Timer       // the armed one, nil: none
	garpTimer       *time.Timer // the next GARP round
	garpArmed       time.Time

	vipErr       error  // the last VIP add failed: retried at every advert
	vipsHeld     bool   // added (or being retried) and announced
	vipSeq       uint64 // the latest wish
	vipReported  uint64 // the latest wish the worker reported on
	vipAdd       bool   // what the latest wish asks
	sendLogged   time.Time
	advertCache  map[advertKey][]byte
	updateConfig chan RunnerConfig
}

// statusCell is one published status; next is closed when a newer one is
// published.
type statusCell struct {
	st   Status
	next chan struct{}
}

type advertKey struct {
	prio uint8
	dst  netip.Addr
}

// NewRunner returns a runner; Run starts it. notify may be nil.
func NewRunner(rc RunnerConfig, send Sender, addrs Addresses, garp Announcer, log *slog.Logger, notify func(Notice), opts ...RunnerOption) *Runner {
	if log == nil {
		log = slog.Default()
	}
	if notify == nil {
		notify = func(Notice) {}
	}
	r := &Runner{
		rc: rc, in: NewInstance(rc.Config), send: send, addrs: addrs, garp: garp,
		log:          log.With("instance", rc.Name, "vrid", rc.VRID, "iface", rc.Interface),
		notify:       notify,
		mb:           newMailbox(),
		ctl:          make(chan Event, 16),
		done:         make(chan struct{}),
		advertCache:  map[advertKey][]byte{},
		updateConfig: make(chan RunnerConfig, 1),
		vipWish:      make(chan vipWish, 1),
		vipDone:      make(chan vipResult, 1),
	}
	r.rc.Unicast = rc.Unicast || len(rc.Peers) > 0
	peers := slices.Clone(rc.Peers)
	r.peers.Store(&peers)
	r.st = Status{Name: rc.Name, State: Init, Priority: rc.Priority}
	if rc.Version == 2 && rc.AuthType == AuthAH {
		r.ah = NewAH(rc.AuthData, r.rc.Unicast)
	}
	for _, o := range opts {
		o(r)
	}
	r.status.Store(&statusCell{st: r.st, next: make(chan struct{})})
	if r.timer == nil {
		r.timer = newGoTimer()
	}
	return r
}

// Peers returns the unicast destinations now. Do not modify them.
func (r *Runner) Peers() []netip.Addr { return *r.peers.Load() }

// SetPeers changes a unicast instance's destinations in place: the next
// advert goes to peers, and their adverts keep their room in the mailbox
// and on the interface's priority lane. The state does not change. It
// does nothing for a multicast instance. It never waits for the runner.
func (r *Runner) SetPeers(peers []netip.Addr) {
	if !r.rc.Unicast {
		return
	}
	peers = slices.Clone(peers)
	old := r.Peers()
	if slices.Equal(old, peers) {
		return
	}
	r.log.Info("unicast peers changed", "from", old, "to", peers)
	r.peers.Store(&peers)
	if f := r.onFollow.Load(); f != nil {
		(*f)() // the lane carries the peers' sources
	}
}

// Config returns the runner's configuration.
func (r *Runner) Config() RunnerConfig { return r.rc }

// Stats returns the live counters.
func (r *Runner) Stats() *Stats { return &r.stats }

// Status returns a snapshot of the instance. It never waits.
func (r *Runner) Status() Status { return r.status.Load().st }

// Watch returns the status now and a channel that is closed when it
// changes (call Watch again for the new one). It never waits.
func (r *Runner) Watch() (Status, <-chan struct{}) {
	c := r.status.Load()
	return c.st, c.next
}

// publish makes st the status readers see, if it changed. Only the Run
// goroutine calls it.
func (r *Runner) publish(st Status) {
	old := r.status.Load()
	if old.st == st {
		return
	}
	r.status.Store(&statusCell{st: st, next: make(chan struct{})})
	close(old.next)
}

// Deliver hands an advert received now to the instance; see DeliverAt.
func (r *Runner) Deliver(src netip.Addr, a *Advert) { r.DeliverAt(src, a, time.Now()) }

// DeliverAt hands an advert that arrived at at to the instance without
// blocking. It replaces an advert of the same source still waiting; when
// too many sources wait already it is dropped and counted, unless it comes
// from the master the instance follows or a unicast peer (see mailbox).
func (r *Runner) DeliverAt(src netip.Addr, a *Advert, at time.Time) {
	if !r.mb.put(inAdvert{src, a, at}, r.protectedSource) {
		r.stats.Drop(DropQueueFull)
	}
}

// follow records the master the instance follows and tells the interface.
func (r *Runner) follow(src netip.Addr) {
	if p := r.followed.Load(); p != nil && *p == src {
		return
	}
	r.followed.Store(&src)
	if f := r.onFollow.Load(); f != nil {
		(*f)()
	}
}

// Followed returns the source of the master the instance follows, or the
// zero Addr.
func (r *Runner) Followed() netip.Addr {
	if p := r.followed.Load(); p != nil {
		return *p
	}
	return netip.Addr{}
}

// DropPacket counts a packet for this instance dropped before delivery.
func (r *Runner) DropPacket(reason DropReason, detail string) {
	r.dropped(time.Now(), reason, detail)
}

const dropLogEvery = 10 * time.Second

func (r *Runner) dropped(now time.Time, reason DropReason, detail string) {
	r.drop(now, reason, func() string { return detail })
}

// dropAdvert counts an advert Check dropped before it was queued; its
// detail is worded only when it is logged or reported.
func (r *Runner) dropAdvert(now time.Time, reason DropReason, a *Advert) {
	r.drop(now, reason, func() string { return CheckDetail(reason, &r.rc.Config, a) })
}

// drop counts a dropped packet. It takes no lock and builds nothing per
// packet: the drop is logged, and reported as a notice with the count
// since the last one, at most every dropLogEvery per reason.
func (r *Runner) drop(now time.Time, reason DropReason, detail func() string) {
	r.stats.Drop(reason)
	if reason <= DropNone || reason >= numDropReasons {
		return
	}
	r.unreported[reason].Add(1)
	last := r.dropLogged[reason].Load()
	if now.UnixNano()-last < int64(dropLogEvery) || !r.dropLogged[reason].CompareAndSwap(last, now.UnixNano()) {
		return
	}
	d := detail()
	r.log.Warn("advert dropped (logged at most every 10s per reason; see the drop counters)",
		"reason", reason.String(), "detail", d, "count", r.stats.Drops(reason))
	r.notify(Notice{Time: now, Instance: r.rc.Name, Kind: NoticeDrop, Drop: reason, Detail: d,
		Count: r.unreported[reason].Swap(0)})
}

// Link reports the interface state.
func (r *Runner) Link(up bool) { r.control(EvLink{Up: up}) }

// SetTrack hands the trackers' verdict to the instance (see EvTrack).
func (r *Runner) SetTrack(offset int, fault string) {
	r.control(EvTrack{Offset: offset, Fault: fault})
}

// SyncFault puts a sync group member in FAULT for reason, or releases it.
func (r *Runner) SyncFault(reason string) { r.control(EvSyncFault{Reason: reason}) }

// SyncMaster makes a sync group member that wants to be master master.
func (r *Runner) SyncMaster() { r.control(EvSyncMaster{}) }

// SyncBackup makes a sync group member that is master hand over.
func (r *Runner) SyncBackup() { r.control(EvSyncBackup{}) }

// Resync makes the runner report its state (NoticeState) and, for a sync
// group member, its NoticeSync again, in order with its other notices.
func (r *Runner) Resync() { r.control(EvResync{}) }

// Hold puts the instance on hold (maintenance) or releases it.
func (r *Runner) Hold(on bool) { r.control(EvHold{On: on}) }

// Failover makes a master hand over to another node.
func (r *Runner) Failover() { r.control(EvFailover{}) }

// Announce makes a master re-announce its addresses (one GARP burst).
func (r *Runner) Announce() { r.control(EvAnnounce{}) }

func (r *Runner) control(ev Event) {
	select {
	case r.ctl <- ev:
	case <-r.done:
	}
}

// Update applies a new configuration that differs only in what can change
// in place (priority, preempt, preempt delay, initial state, GARP timing).
func (r *Runner) Update(rc RunnerConfig) {
	select {
	case <-r.updateConfig: // replace an update not yet applied
	default:
	}
	select {
	case r.updateConfig <- rc:
	case <-r.done:
	}
}

// Shutdown hands over (priority 0 advert if master), removes the VIPs and
// stops the runner. It returns when Run has returned or ctx is done.
func (r *Runner) Shutdown(ctx context.Context) error {
	var err error
	r.stopOnce.Do(func() {
		select {
		case r.ctl <- EvShutdown{}:
		case <-r.done:
		case <-ctx.Done():
			err = ctx.Err()
		}
	})
	if err != nil {
		return err
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done is closed when Run has returned.
func (r *Runner) Done() <-chan struct{} { return r.done }

// Run runs the instance until Shutdown (or ctx is cancelled, which also
// shuts it down). linkUp is the interface state at start.
func (r *Runner) Run(ctx context.Context, linkUp bool) {
	defer close(r.done)
	go r.vipWorker()
	defer r.finishVIPs() // after the last removal: Done means they are gone
	// Two clocks: the master-down timer of a backup is what failover
	// latency hangs on, so it uses the precise timer (a timerfd on Linux);
	// a master's advert timer uses a cheap Go timer. (A master on the
	// timerfd slipped less on a busy host, 4-7 ms against 12-33 ms at
	// 10 ms adverts, but cost twice the CPU: 26-35 % against 14 % at
	// 50 x 10 ms, bench-cpu 2026-12-07 17:23.)
	r.mu.Lock()
	r.precise, r.coarse = r.timer, newGoTimer()
	r.garpTimer = time.NewTimer(time.Hour)
	r.garpTimer.Stop()
	precise, coarse, garpTimer := r.precise, r.coarse, r.garpTimer
	r.do(time.Now(), EvStart{LinkUp: linkUp})
	r.live = true
	r.mu.Unlock()
	defer precise.Close()
	defer coarse.Close()
	defer garpTimer.Stop()

	for {
		select {
		case <-r.mb.wake:
			r.mu.Lock()
			r.handleAdverts()
			r.mu.Unlock()
		case res := <-r.vipDone:
			r.mu.Lock()
			r.vipReport(time.Now(), res)
			r.apply(time.Now(), nil)
			r.rearmGARP()
			r.mu.Unlock()
		case <-precise.C():
			r.mu.Lock()
			r.timerFired(r.armedT == precise)
			r.mu.Unlock()
		case <-coarse.C():
			r.mu.Lock()
			r.timerFired(r.armedT == coarse)
			r.mu.Unlock()
		case <-garpTimer.C:
			r.mu.Lock()
			r.garpArmed = time.Time{}
			r.garpDue(time.Now())
			r.rearmGARP()
			r.mu.Unlock()
		case rc := <-r.updateConfig:
			r.mu.Lock()
			r.rc.GARP = rc.GARP
			r.do(time.Now(), EvReconfigure{Config: rc.Config})
			r.mu.Unlock()
		case ev := <-r.ctl:
			if r.event(ev) {
				return // the instance is in Init: handed over, VIPs removed
			}
		case <-ctx.Done():
			r.event(EvShutdown{})
			return
		}
	}
}

// event feeds the instance a control event under mu; true when it was
// the shutdown (no advert is stepped after it).
func (r *Runner) event(ev Event) (stopped bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.do(time.Now(), ev)
	if _, stopped = ev.(EvShutdown); stopped {
		r.live = false
	}
	return stopped
}

// do feeds the instance one event and carries out what it decides. Called
// with mu held.
func (r *Runner) do(now time.Time, ev Event) { r.carryOut(now, r.in.Step(now, ev)) }

// carryOut carries out a step's actions and arms the timers for what
// follows. Called with mu held.
func (r *Runner) carryOut(now time.Time, acts []Action) {
	r.apply(now, acts)
	r.rearm()
	r.rearmGARP()
}

// receive hands the instance an advert that passed the receive checks at
// once, on the receiving goroutine: no queue, no hand-off to the Run
// goroutine (which cost a goroutine wake-up per advert, more than the rest
// of the work). false: the runner is not running (not started yet, or
// stopped); the caller queues it (DeliverAt) or drops it.
func (r *Runner) receive(src netip.Addr, a *Advert, at time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.live {
		return false
	}
	r.stats.AdvertsReceived.Add(1)
	r.carryOut(at, r.in.StepAdvert(at, src, a, true))
	return true
}

// rearm arms the protocol timer for the instance's deadline. Called with
// mu held.
func (r *Runner) rearm() {
	d, ok := r.in.Deadline()
	want := r.coarse
	if r.in.State() == Backup {
		want = r.precise
	}
	switch {
	case !ok:
		if r.armedT != nil {
			r.armedT.Stop()
			r.armedT, r.armed = nil, time.Time{}
		}
		return
	case r.armedT == want && !r.armed.After(d):
		// A backup's deadline moves with every advert. A timer that
		// can be moved later cheaply is; another is left at the older
		// deadline, where Step ignores its early tick and it is armed
		// again for the new one.
		if x, ok := want.(Extender); ok && d.After(r.armed) {
			x.Extend(d)
			r.armed = d
		}
		return
	}
	if r.armedT != nil && r.armedT != want {
		r.armedT.Stop()
	}
	r.armedT, r.armed = want, d
	want.Reset(time.Until(d))
}

// rearmGARP arms the GARP timer for the next round planned. Called with
// mu held.
func (r *Runner) rearmGARP() {
	if len(r.garpPlan) == 0 {
		if !r.garpArmed.IsZero() {
			r.garpTimer.Stop()
			r.garpArmed = time.Time{}
		}
		return
	}
	if next := r.garpPlan[0]; !next.Equal(r.garpArmed) {
		r.garpArmed = next
		r.garpTimer.Reset(time.Until(next))
	}
}

// timerFired handles a tick of the protocol timer that was armed (current)
// or a stale one from a timer since replaced. Called with mu held.
func (r *Runner) timerFired(current bool) {
	if !current {
		return
	}
	r.armed, r.armedT = time.Time{}, nil
	now := time.Now()
	if d, ok := r.in.Deadline(); ok && !now.Before(d) {
		slip := now.Sub(d)
		if slip > time.Duration(r.stats.TimerSlipMax.Load()) {
			r.stats.TimerSlipMax.Store(int64(slip))
		}
		switch r.in.State() {
		case Master:
			r.stats.slips[TimerAdvert].Observe(slip)
		case Backup:
			r.stats.slips[TimerMasterDown].Observe(slip)
		}
	}
	// Adverts that arrived before the deadline count first: after a
	// scheduling stall both may be ready, and select picks at random.
	// (What waits is at most one advert per source: bounded work, so a
	// flood never delays the timer for long.)
	r.handleAdverts()
	r.do(time.Now(), EvTimer{})
}

// handleAdverts hands the instance the adverts waiting in the mailbox, in
// the order they arrived. Called with mu held.
func (r *Runner) handleAdverts() {
	r.batch = r.mb.take(r.batch)
	slices.SortFunc(r.batch, func(x, y inAdvert) int { return x.at.Compare(y.at) })
	for _, m := range r.batch {
		r.stats.AdvertsReceived.Add(1)
		r.do(m.at, EvAdvert{Src: m.src, Advert: m.adv})
	}
	clear(r.batch)
}

func (r *Runner) apply(now time.Time, acts []Action) {
	// Transitions first: a takeover's addresses may be added in this
	// step (QuickAddresses), and nobody (the status, the events) should
	// see them held by a backup.
	for _, a := range acts {
		if a, ok := a.(ActTransition); ok {
			r.stats.Transitions.Add(1)
			if a.To == Master {
				r.stats.BecameMaster.Add(1)
			}
			r.st.LastChange, r.st.LastFrom, r.st.LastCause = now, a.From, a.Cause
			r.log.Info("state change", "from", a.From.String(), "state", a.To.String(), "cause", string(a.Cause), "priority", r.in.Priority())
			r.notify(Notice{Time: now, Instance: r.rc.Name, Kind: NoticeTransition, From: a.From, To: a.To, Cause: a.Cause, Priority: r.in.Priority()})
		}
	}
	for _, a := range acts {
		switch a := a.(type) {
		case ActSend:
			r.sendAdvert(now, a.Priority)
			if r.vipErr != nil && r.in.State() == Master && r.vipReported == r.vipSeq {
				r.wishVIPs(true) // retry at every advert until it works
			}
		case ActAddVIPs:
			r.garpPlan = r.garpPlan[:0]
			if q, ok := r.addrs.(QuickAddresses); ok && q.Quick() && r.vipReported == r.vipSeq {
				r.vipSeq++
				r.vipAdd = true
				r.refreshStatus() // MASTER before the addresses are there
				err := q.Add()
				r.vipReport(time.Now(), vipResult{vipWish: vipWish{seq: r.vipSeq, add: true}, err: err})
			} else {
				r.wishVIPs(true) // announced once added (vipReport)
			}
		case ActAnnounce:
			r.planGARP(now, 0)
			r.garpDue(now)
		case ActDelVIPs:
			r.garpPlan = r.garpPlan[:0]
			r.vipErr = nil
			r.wishVIPs(false)
		case ActDrop:
			r.dropped(now, a.Reason, a.Detail)
		case ActMaster:
			r.follow(a.Addr)
			r.notify(Notice{Time: now, Instance: r.rc.Name, Kind: NoticeMaster, Addr: a.Addr, Priority: a.Priority})
		case ActState:
			r.notify(Notice{Time: now, Instance: r.rc.Name, Kind: NoticeState, To: a.State, Priority: r.in.Priority()})
		case ActSync:
			r.notify(Notice{Time: now, Instance: r.rc.Name, Kind: NoticeSync, Want: a.Want, OwnFault: a.OwnFault,
				Priority: r.in.Priority()})
		}
	}
	prevPrio := r.st.Priority
	r.refreshStatus()
	if prevPrio != r.in.Priority() {
		r.notify(Notice{Time: now, Instance: r.rc.Name, Kind: NoticePriority, Priority: r.in.Priority()})
	}
}

// refreshStatus publishes the instance's state as it is now.
func (r *Runner) refreshStatus() {
	r.st.VIPError = ""
	if r.vipErr != nil {
		r.st.VIPError = r.vipErr.Error()
	}
	r.st.State = r.in.State()
	r.st.Held = r.in.Held()
	r.st.VIPsHeld = r.vipsHeld
	r.st.Priority = r.in.Priority()
	r.st.MasterAddr = r.in.MasterAddr()
	r.st.MasterInterval = r.in.MasterInterval()
	r.st.FaultReason = r.in.FaultReason()
	r.st.Want = r.in.Wants()
	r.st.OwnFault = r.in.ownFault()
	r.publish(r.st)
}

type vipWish struct {
	seq uint64
	add bool
}

type vipResult struct {
	vipWish
	err error
}

// vipWorker adds or removes the addresses as wished, one wish at a time,
// until vipWish is closed. Adding or removing thousands of addresses
// takes the kernel seconds: done here, it never delays an advert, so the
// backups never see a silent master while it adds them.
func (r *Runner) vipWorker() {
	defer close(r.vipDone)
	for w := range r.vipWish {
		res := vipResult{vipWish: w}
		if w.add {
			res.err = r.addrs.Add()
		} else {
			res.err = r.addrs.Del()
		}
		r.vipDone <- res
	}
}

// wishVIPs asks the worker to add (or remove) the addresses, replacing a
// wish it has not taken yet.
func (r *Runner) wishVIPs(add bool) {
	r.vipSeq++
	r.vipAdd = add
	select {
	case <-r.vipWish:
	default:
	}
	r.vipWish <- vipWish{seq: r.vipSeq, add: add} // room: only Run sends
}

// vipReport handles what the worker did. An add is announced (GARP) and
// reported once the addresses are there; a failure is reported, kept in
// the status and retried at every advert while master. What a later wish
// overrides is ignored.
func (r *Runner) vipReport(now time.Time, res vipResult) {
	r.vipReported = res.seq
	if res.seq != r.vipSeq {
		return
	}
	if !res.add {
		if res.err != nil {
			r.log.Error("removing virtual addresses failed", "err", res.err)
			r.notify(Notice{Time: now, Instance: r.rc.Name, Kind: NoticeError, Err: res.err, Detail: "delete VIPs"})
		}
		if r.vipsHeld {
			r.vipsHeld = false
			r.notify(Notice{Time: now, Instance: r.rc.Name, Kind: NoticeVIPs})
		}
		return
	}
	if res.err != nil && r.vipErr == nil {
		r.log.Error("adding virtual addresses failed: retrying at every advert", "err", res.err)
		r.notify(Notice{Time: now, Instance: r.rc.Name, Kind: NoticeError, Err: res.err, Detail: "add VIPs"})
	}
	if res.err == nil && r.vipErr != nil {
		r.log.Info("virtual addresses added after a failure")
	}
	r.vipErr = res.err
	if !r.vipsHeld {
		r.vipsHeld = true
		// The announcements first: the clients wait for them, not for
		// the event.
		r.planGARP(now, r.rc.GARP.Delay)
		r.garpDue(now)
		r.notify(Notice{Time: now, Instance: r.rc.Name, Kind: NoticeVIPs, Added: true})
	}
}

// finishVIPs waits for the worker to carry out the last wish (the
// removal, at shutdown) and stops it.
func (r *Runner) finishVIPs() {
	close(r.vipWish)
	for res := range r.vipDone {
		r.mu.Lock()
		r.vipReport(time.Now(), res)
		r.mu.Unlock()
	}
	r.mu.Lock()
	r.garpPlan = r.garpPlan[:0]
	r.apply(time.Now(), nil)
	r.mu.Unlock()
}

// message returns the advert for a priority and destination; adverts never
// change while the runner lives, so each is built once.
func (r *Runner) message(prio uint8, dst netip.Addr) ([]byte, error) {
	k := advertKey{prio, dst}
	if msg, ok := r.advertCache[k]; ok {
		return msg, nil
	}
	a := Advert{
		Version: r.rc.Version, VRID: r.rc.VRID, Priority: prio, Interval: r.rc.Interval,
		Addrs: r.rc.Addrs, AuthType: r.rc.AuthType,
	}
	if r.rc.AuthType == AuthSimple {
		// Only PASS carries the password; AH's is the HMAC key and
		// never leaves the node (keepalived sends zeros).
		a.AuthData = r.rc.AuthData
	}
	msg, err := a.Marshal(r.rc.Primary, dst, r.rc.Checksum)
	if err == nil {
		r.advertCache[k] = msg
	}
	return msg, err
}

// sendMessage sends an advert to dst: as it is, or sealed with its AH
// header.
func (r *Runner) sendMessage(dst netip.Addr, msg []byte) error {
	if r.ah == nil {
		return r.send.Send(r.rc.Primary, dst, msg)
	}
	ps, ok := r.send.(PacketSender)
	if !ok {
		return fmt.Errorf("IPsec AH: this socket cannot send whole IP packets: run the instance with auth PASS or none here")
	}
	if r.ahID++; r.ahID == 0 {
		r.ahID = 1
	}
	var buf [IPv4HeaderLen + AHLen + HeaderLen + AuthDataLen + 4*MaxAddrs]byte
	pkt := r.ah.Seal(buf[:0], IPv4Header{TOS: TOSInternetControl, TTL: 255, ID: r.ahID, Src: r.rc.Primary, Dst: dst}, msg)
	return ps.SendPacket(dst, pkt)
}

func (r *Runner) sendAdvert(now time.Time, prio uint8) {
	send := func(dst netip.Addr) {
		msg, err := r.message(prio, dst)
		if err == nil {
			err = r.sendMessage(dst, msg)
		}
		if err != nil {
			r.stats.SendErrors.Add(1)
			if now.Sub(r.sendLogged) >= dropLogEvery { // do not flood the log
				r.sendLogged = now
				r.log.Warn("sending advert failed (logged at most every 10s)", "dst", dst, "err", err,
					"errors", r.stats.SendErrors.Load())
			}
			return
		}
		r.stats.AdvertsSent.Add(1)
	}
	if !r.rc.Unicast {
		send(r.rc.Group)
		return
	}
	for _, p := range r.Peers() {
		send(p)
	}
}

// planGARP schedules a burst of Repeat rounds now (spaced by Interval) and,
// if delay > 0, the same again after delay, keeping the plan in time order.
func (r *Runner) planGARP(now time.Time, delay time.Duration) {
	g := r.rc.GARP
	burst := func(at time.Time, n int) {
		for k := 0; k < n; k++ {
			r.garpPlan = append(r.garpPlan, at.Add(time.Duration(k)*g.Interval))
		}
	}
	burst(now, max(g.Repeat, 1))
	if delay > 0 {
		burst(now.Add(delay), max(g.Repeat, 1))
	}
	slices.SortFunc(r.garpPlan, func(a, b time.Time) int { return a.Compare(b) })
}

// garpDue sends the GARP rounds that are due and, when the plan runs out
// while master with a refresh set, plans the next refresh.
func (r *Runner) garpDue(now time.Time) {
	for len(r.garpPlan) > 0 && !r.garpPlan[0].After(now) {
		r.garpPlan = r.garpPlan[1:]
		for _, addrs := range [2][]netip.Addr{r.rc.Addrs, r.rc.Excluded} {
			for _, a := range addrs {
				if err := r.garp.Announce(a); err != nil {
					r.log.Warn("gratuitous ARP failed", "addr", a, "err", err)
					continue
				}
				r.stats.GARPsSent.Add(1)
			}
		}
		r.notify(Notice{Time: now, Instance: r.rc.Name, Kind: NoticeGARP})
	}
	if len(r.garpPlan) == 0 && r.in.State() == Master && r.rc.GARP.Refresh > 0 {
		for k := 0; k < max(r.rc.GARP.RefreshRepeat, 1); k++ {
			r.garpPlan = append(r.garpPlan, now.Add(r.rc.GARP.Refresh+time.Duration(k)*r.rc.GARP.Interval))
		}
	}
}
