// Package instances is the agent's VRRP instances: one vrrp.Runner per
// configured instance, the socket and demultiplexer of each interface they
// use, the gratuitous ARP senders of their devices and their virtual
// addresses.
//
// A Set owns all of it. Its writers are the agent's apply (Prepare, then
// Stop, Update and Start in that order), the link monitor (LinkChanged),
// maintenance (Hold) and shutdown; they serialise on the Set's own lock,
// under which host calls (sockets, netlink) run. Readers never take that
// lock: after every change the Set publishes an immutable Snapshot of its
// instances, and each runner publishes its own status (vrrp.Runner.Status).
//
// Every runner notice becomes an event here (state_changed, vips_changed,
// garp_sent, master_changed, priority_changed, packets_dropped rate-limited
// to one per instance and reason every 10 s, error) and is handed to
// Deps.Observe (tracking, the fleet publisher) on the runner's goroutine.
package instances

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/host"
	"github.com/haa-dev/haa/node/vip"
	"github.com/haa-dev/haa/node/vroute"
	"github.com/haa-dev/haa/node/vrrp"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
	"google.golang.org/protobuf/proto"
)

// Errors (test with errors.Is).
var (
	ErrNotFound   = errors.New("no such instance")
	ErrNotMaster  = errors.New("not master")
	ErrNoTakeover = errors.New("no other node took over")
)

// Host is what the instances need of the machine.
type Host interface {
	Link(name string) (host.Link, error)
	Addrs(dev string) ([]host.Addr, error)
	AddVIPs(iface string, vs []vip.VIP) error
	DelVIPs(iface string, vs []vip.VIP) error
	// DelStaleVIPs is DelVIPs saying which were there.
	DelStaleVIPs(iface string, vs []vip.VIP) ([]netip.Prefix, error)
	// WarmVIPs prepares a later AddVIPs of vs (a backup's takeover).
	WarmVIPs(iface string, vs []vip.VIP)
	// AddRouting and DelRouting add and remove virtual routes and rules
	// (iface: the instance's interface, the device of a route without
	// one).
	AddRouting(iface string, routes []vroute.Route, rules []vroute.Rule) error
	DelRouting(iface string, routes []vroute.Route, rules []vroute.Rule) error
	// ListenVRRP opens the VRRP socket of an interface, for IPv6
	// instances (v6) or IPv4 ones.
	ListenVRRP(iface string, v6 bool) (host.VRRPConn, error)
	// Addrs6 lists a device's usable IPv6 addresses, link-local ones
	// included.
	Addrs6(dev string) ([]netip.Prefix, error)
	Announcer(dev string) (host.Announcer, error)
	PromoteSecondaries(dev string) error
	PreciseTimer() (vrrp.Timer, error)
	// AddVMAC creates (or keeps) an instance's virtual MAC interface;
	// DelVMAC removes it.
	AddVMAC(m host.VMAC) error
	DelVMAC(name, parent string) error
	// SetAcceptBlocked makes the packets to (and from) addrs dropped,
	// for owner (none: owner blocks nothing): acceptMode false.
	SetAcceptBlocked(owner string, addrs []netip.Addr) error
}

// Events receives the instances' events. Append must not block.
type Events interface {
	Append(e *haav1.Event) *haav1.Event
}

// Verdict is what a starting instance begins with: the trackers' offset
// and fault, and its sync group's fault ("": none).
type Verdict struct {
	Offset            int
	Fault, GroupFault string
}

// Deps are what a Set is built with.
type Deps struct {
	Log    *slog.Logger
	Host   Host
	Events Events
	// Observe receives every notice of every instance, on the runner's
	// goroutine (and, for drops found before delivery, the interface's
	// receive goroutine): it must not block.
	Observe func(vrrp.Notice)
}

// Instance is one running instance. Its fields do not change; its state
// is the runner's (Status, Stats).
type Instance struct {
	Config config.Instance
	// Segment is the network of the source address on the interface
	// (e.g. 10.77.0.0/24): which nodes its adverts reach. Invalid when
	// the address is not on the interface.
	Segment netip.Prefix
	// Definition identifies the virtual router (config.Definition).
	Definition string

	runner *vrrp.Runner
}

// Name is the instance's name.
func (in *Instance) Name() string { return in.Config.VRRP.Name }

// Status is the instance's state now. It never waits.
func (in *Instance) Status() vrrp.Status { return in.runner.Status() }

// Stats are the instance's live counters.
func (in *Instance) Stats() *vrrp.Stats { return in.runner.Stats() }

// Runner is the instance's runner, for the subsystems that steer it
// (tracking).
func (in *Instance) Runner() *vrrp.Runner { return in.runner }

// On reports whether the instance is the virtual router vrid of segment.
func (in *Instance) On(segment string, vrid uint32) bool {
	return in.Segment.IsValid() && in.Segment.String() == segment && uint32(in.Config.VRRP.VRID) == vrid
}

// Snapshot is the running instances, by name. It is immutable.
type Snapshot struct {
	list   []*Instance
	byName map[string]*Instance
}

// List returns the instances sorted by name. Do not change it.
func (s *Snapshot) List() []*Instance { return s.list }

// Get returns one instance, or nil.
func (s *Snapshot) Get(name string) *Instance { return s.byName[name] }

// Set runs the instances of one agent.
type Set struct {
	log     *slog.Logger
	host    Host
	events  Events
	observe func(vrrp.Notice)

	ctx    context.Context // the runners' context: ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the runners

	// mu serialises the writers; readers use snap.
	mu      sync.Mutex
	running map[string]*Instance
	garps   map[string]host.Announcer // by device
	held    bool                      // maintenance: instances start on hold

	// linkMu guards lastLink, the link state last handed to the runners:
	// link events never wait for an apply.
	linkMu   sync.Mutex
	lastLink map[string]bool

	// ifmu guards ifaces: the runners' stops release them in parallel,
	// and InterfaceDrops must not wait for mu.
	ifmu   sync.RWMutex
	ifaces map[ifaceKey]*iface

	snap atomic.Pointer[Snapshot]

	// peersMu guards fleetPeers, the unicast peers the fleet gives the
	// instances with PeersFromFleet, by name (SetFleetPeers), and orders
	// the runners' SetPeers: never waits for an apply.
	peersMu    sync.Mutex
	fleetPeers map[string][]netip.Addr
}

// New returns a Set with no instances.
func New(d Deps) *Set {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Observe == nil {
		d.Observe = func(vrrp.Notice) {}
	}
	s := &Set{log: d.Log, host: d.Host, events: d.Events, observe: d.Observe,
		running: map[string]*Instance{}, ifaces: map[ifaceKey]*iface{}, garps: map[string]host.Announcer{},
		lastLink: map[string]bool{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.publish()
	return s
}

// Snapshot returns the running instances. It never waits.
func (s *Set) Snapshot() *Snapshot { return s.snap.Load() }

// publish makes the running instances the snapshot. Called with mu held
// (or before the Set is shared).
func (s *Set) publish() {
	snap := &Snapshot{byName: make(map[string]*Instance, len(s.running))}
	for name, in := range s.running {
		snap.list = append(snap.list, in)
		snap.byName[name] = in
	}
	slices.SortFunc(snap.list, func(a, b *Instance) int { return strings.Compare(a.Name(), b.Name()) })
	s.snap.Store(snap)
}

// Change is a prepared change of the running instances: the plan and
// what each instance to start needs of this node, resolved.
type Change struct {
	Plan config.Plan
	want map[string]config.Instance
	// ready are the instances to start (added and restarted), resolved.
	ready map[string]config.Instance
	anns  map[string]announcer
	stop  []string
	start []string
	// inPlace are the running instances that stay (changed in place or
	// not at all: a sync group joined or left changes them too).
	inPlace []string
}

// Prepare plans the change from the running instances to want and
// resolves, for each instance that will start, its source address and its
// GARP senders. It changes nothing that runs; every instance's problem is
// reported.
func (s *Set) Prepare(want []config.Instance) (*Change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	running := make([]config.Instance, 0, len(s.running))
	for _, in := range s.running {
		running = append(running, in.Config)
	}
	ch := &Change{Plan: config.Diff(running, want), want: map[string]config.Instance{},
		ready: map[string]config.Instance{}, anns: map[string]announcer{}}
	for _, in := range want {
		ch.want[in.VRRP.Name] = in
	}
	ch.stop = slices.Clone(ch.Plan.Removed)
	ch.inPlace = slices.Clone(ch.Plan.Unchanged)
	for _, c := range ch.Plan.Changed {
		if c.Restart {
			ch.start = append(ch.start, c.Name)
			ch.stop = append(ch.stop, c.Name)
		} else {
			ch.inPlace = append(ch.inPlace, c.Name)
		}
	}
	ch.start = append(ch.start, ch.Plan.Added...)
	// Every VIP of both configurations, so none is mistaken for an
	// interface's own address.
	vips := map[netip.Addr]bool{}
	for _, in := range append(running, want...) {
		for _, v := range in.VIPs {
			vips[v.Prefix.Addr()] = true
		}
	}
	var errs []error
	for _, name := range ch.start {
		c := ch.want[name]
		if !c.VRRP.Primary.IsValid() {
			p, err := s.primaryAddr(c, vips)
			if err != nil {
				errs = append(errs, fmt.Errorf("instance %s: %w", name, err))
				continue
			}
			c.VRRP.Primary = p
		}
		ann, err := s.announcer(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("instance %s: %w", name, err))
			continue
		}
		ch.ready[name], ch.anns[name] = c, ann
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("nothing applied: %w", err)
	}
	return ch, nil
}

// StopWait bounds how long Stop waits for the instances it stops. One
// that takes longer (a stuck kernel) goes on removing its addresses in the
// background; the apply goes on without it.
const StopWait = 15 * time.Second

// Stop stops the instances the change removes or restarts: masters send a
// priority-0 advert and remove their addresses. It returns once they
// stopped, ctx ended or StopWait passed.
func (s *Set) Stop(ctx context.Context, ch *Change) {
	ctx, cancel := context.WithTimeout(ctx, StopWait)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(ctx, ch.stop)
	s.publish()
}

// Update gives the instances that stay their new configuration (in place:
// no transition of their own).
func (s *Set) Update(ch *Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var updates []*Instance
	for _, name := range ch.inPlace {
		in := s.running[name]
		if in == nil {
			continue
		}
		next := ch.want[name]
		next.VRRP.Primary = in.Config.VRRP.Primary
		// A new Instance: a published one never changes.
		s.running[name] = &Instance{Config: next, Segment: in.Segment, Definition: in.Definition, runner: in.runner}
		if !proto.Equal(in.Config.Spec, next.Spec) || in.Config.VRRP.Gated != next.VRRP.Gated {
			updates = append(updates, s.running[name])
		}
	}
	s.publish() // first: the runners' notices of the change see it
	for _, in := range updates {
		in.runner.Update(runnerConfig(in.Config))
	}
	// Under peersMu, after the publish: a SetFleetPeers in flight either
	// ran before (and this sets the new configuration's peers) or runs
	// after, from the new snapshot.
	s.peersMu.Lock()
	for _, in := range updates {
		in.runner.SetPeers(s.peersOfLocked(in.Config))
	}
	s.peersMu.Unlock()
}

// SetFleetPeers gives the instances that take their unicast peers from
// the fleet (PeersFromFleet) the fleet's members that run them: by
// instance name, the source addresses of the other nodes' instances of
// that name, VRID and family. An instance's destinations change in place
// (vrrp.Runner.SetPeers). It never waits for an apply.
func (s *Set) SetFleetPeers(peers map[string][]netip.Addr) {
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	s.fleetPeers = peers
	for _, in := range s.Snapshot().List() {
		if in.Config.PeersFromFleet {
			in.runner.SetPeers(s.peersOfLocked(in.Config))
		}
	}
}

// peersOf is an instance's unicast destinations now: its own peers, then
// the fleet's (with PeersFromFleet), each once, sorted.
func (s *Set) peersOf(c config.Instance) []netip.Addr {
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	return s.peersOfLocked(c)
}

// peersOfLocked is peersOf, called with peersMu held.
func (s *Set) peersOfLocked(c config.Instance) []netip.Addr {
	out := slices.Clone(c.Peers)
	if c.PeersFromFleet {
		for _, p := range s.fleetPeers[c.VRRP.Name] {
			if !slices.Contains(out, p) && p != c.VRRP.Primary {
				out = append(out, p)
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Starting names the instances the change starts (added and restarted).
func (ch *Change) Starting() []string { return ch.start }

// Start starts the instances the change adds or restarts, each with its
// verdict (none when missing), on hold when in maintenance. Each instance
// that cannot start is reported; the others run.
func (s *Set) Start(ch *Change, verdicts map[string]Verdict) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, name := range ch.start {
		if err := s.startLocked(ch.ready[name], ch.anns[name], verdicts[name]); err != nil {
			errs = append(errs, fmt.Errorf("instance %s: %w", name, err))
		}
	}
	s.publish()
	return errors.Join(errs...)
}

func (s *Set) stopLocked(ctx context.Context, names []string) {
	var wg sync.WaitGroup
	stopped := map[string]config.Instance{}
	for _, name := range names {
		in := s.running[name]
		if in == nil {
			continue
		}
		delete(s.running, name)
		stopped[name] = in.Config
		wg.Go(func() {
			if err := in.runner.Shutdown(ctx); err != nil {
				s.log.Warn("instance did not stop in time", "instance", name, "err", err)
			}
			s.releaseIface(in.Config)
		})
	}
	wg.Wait()
	for _, name := range names {
		if c, ok := stopped[name]; ok && c.VMAC != nil {
			s.delVMAC(c)
		}
	}
}

// delVMAC removes an instance's virtual MAC interface and forgets its
// GARP sender (bound to the interface's index). Called with mu held.
func (s *Set) delVMAC(c config.Instance) {
	if a := s.garps[c.VMAC.Name]; a != nil {
		a.Close()
		delete(s.garps, c.VMAC.Name)
	}
	if err := s.host.DelVMAC(c.VMAC.Name, c.Interface); err != nil {
		s.log.Warn("cannot remove the virtual MAC interface", "instance", c.VRRP.Name, "iface", c.VMAC.Name, "err", err)
	}
}

func (s *Set) startLocked(c config.Instance, ann announcer, v Verdict) (err error) {
	if c.VMAC != nil {
		if err := s.addVMAC(c, ann); err != nil {
			return err
		}
		defer func() {
			if err != nil {
				s.delVMAC(c)
			}
		}()
	}
	// With a virtual MAC, adverts are sent and received on it (unless
	// xmitBase): the kernel hands a multicast frame whose source is a
	// local macvlan's MAC (every node's virtual MAC is the same) to that
	// macvlan only, not to its parent.
	ifc, err := s.acquireIface(c.SocketDevice(), c.IPv6())
	if err != nil {
		return err
	}
	joined := false
	defer func() {
		if err != nil {
			if joined {
				_ = ifc.conn.LeaveGroup(c.Group)
			}
			s.releaseIfaceRef(ifc)
		}
	}()
	if c.IPv6() && c.Advertised > 0 && !c.Unicast() && !c.VRRP.Addrs[0].IsLinkLocalUnicast() {
		s.log.Warn("the first address of an IPv6 instance should be link-local (RFC 5798 5.2.9): adverts list the vips as configured, as keepalived's do",
			"instance", c.VRRP.Name, "first", c.VRRP.Addrs[0])
	}
	if c.VRRP.AuthType == vrrp.AuthAH {
		if err := s.serveAH(ifc); err != nil {
			return err
		}
	}
	held := c.HeldVIPs()
	set := &vipSet{host: s.host, iface: c.Interface, vips: held, routes: c.Routes, rules: c.Rules}
	if c.SocketDevice() != c.Interface && c.IPv6() {
		// The adverts' link-local source must be on the interface they
		// leave from: the virtual MAC holds a copy of it while master
		// (a backup's would send MLD reports with the virtual MAC).
		src := vip.VIP{Prefix: netip.PrefixFrom(c.VRRP.Primary, 64), Dev: c.SocketDevice()}
		set.source = &src
		held = append(slices.Clone(held), src) // for the stale removal below
	}
	if !c.Accept && c.VRRP.Priority != vrrp.PriorityOwner {
		// RFC 5798 6.1: the address owner always accepts. One owner per
		// run of the instance: a restarted one's block never ends with
		// the late removal of its predecessor's.
		set.owner = fmt.Sprintf("%s@%p", c.VRRP.Name, set)
	}
	if len(c.Routes) > 0 || len(c.Rules) > 0 {
		if err := s.host.DelRouting(c.Interface, c.Routes, c.Rules); err != nil {
			return fmt.Errorf("removing stale virtual routes and rules: %w", err)
		}
	}
	// Restart safety: addresses left by a crashed agent are removed until
	// the protocol makes this node master again.
	stale, err := s.host.DelStaleVIPs(c.Interface, held)
	if err != nil {
		return fmt.Errorf("removing stale virtual addresses: %w", err)
	}
	s.host.WarmVIPs(c.Interface, held) // a takeover then only adds them
	if len(stale) > 0 {
		s.log.Warn("removed virtual addresses an earlier run left: this node holds them again when the protocol makes it master",
			"instance", c.VRRP.Name, "iface", c.Interface, "count", len(stale), "addresses", firstPrefixes(stale, 8))
	}
	for _, v := range held {
		if v.Dev != "" && v.Prefix.Addr().Is4() {
			s.promoteSecondaries(v.Dev)
		}
	}
	if !c.Unicast() {
		if err := ifc.conn.JoinGroup(c.Group); err != nil {
			return err
		}
		joined = true
	}
	timer, err := s.host.PreciseTimer()
	if err != nil {
		return err
	}
	ropts := []vrrp.RunnerOption{vrrp.WithTimer(timer), vrrp.WithTrack(v.Offset, v.Fault, v.GroupFault)}
	if s.held {
		ropts = append(ropts, vrrp.WithHold())
	}
	rc := runnerConfig(c)
	rc.Peers = s.peersOf(c)
	r := vrrp.NewRunner(rc, ifc.conn, set, ann, s.log, s.noticeFunc(c), ropts...)
	// Attach before reading the link state: a change in between reaches
	// the runner as an event instead of being lost.
	if err := ifc.demux.Add(r); err != nil {
		timer.Close()
		return err
	}
	lk, err := s.host.Link(c.SocketDevice())
	if err != nil {
		ifc.demux.Remove(c.VRRP.VRID)
		timer.Close()
		return err
	}
	s.running[c.VRRP.Name] = &Instance{Config: c, runner: r,
		Segment: s.segmentOf(c, c.VRRP.Primary), Definition: config.Definition(c.Spec)}
	s.wg.Go(func() { r.Run(s.ctx, lk.Up) })
	return nil
}

func runnerConfig(c config.Instance) vrrp.RunnerConfig {
	rc := vrrp.RunnerConfig{Config: c.VRRP, Interface: c.Interface, Group: c.Group,
		Peers: c.Peers, Unicast: c.Unicast(), Checksum: c.Checksum, GARP: c.GARP}
	for _, v := range c.VIPs[c.Advertised:] {
		rc.Excluded = append(rc.Excluded, v.Prefix.Addr())
	}
	return rc
}

// primaryAddr returns the source of an instance's adverts and its
// tie-breaker: for IPv4 the first address of the interface that is not a
// VIP; for IPv6 its first link-local address (RFC 5798 5.1.2.3), or, for
// unicast peers that are not link-local, its address in the first peer's
// network (a router forwards no packet from a link-local source; the
// peers then see the source they name).
func (s *Set) primaryAddr(c config.Instance, vips map[netip.Addr]bool) (netip.Addr, error) {
	name := c.Interface
	if c.IPv6() {
		addrs, err := s.host.Addrs6(name)
		if err != nil {
			return netip.Addr{}, err
		}
		if len(c.Peers) > 0 && !c.Peers[0].IsLinkLocalUnicast() {
			for _, p := range addrs {
				if ip := p.Addr(); !vips[ip] && !ip.IsLinkLocalUnicast() && p.Masked().Contains(c.Peers[0]) {
					return ip, nil
				}
			}
		}
		for _, p := range addrs {
			if ip := p.Addr(); ip.IsLinkLocalUnicast() && !vips[ip] {
				return ip, nil
			}
		}
		return netip.Addr{}, fmt.Errorf("interface %s has no usable IPv6 link-local address (IPv6 off, or DAD not finished): enable IPv6 on it or set sourceAddress", name)
	}
	addrs, err := s.host.Addrs(name)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, ad := range addrs {
		if ip := ad.Prefix.Addr(); !vips[ip] && !ad.Secondary {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no IPv4 address of its own: add one or set sourceAddress", name)
}

// segmentOf returns the network of addr on the instance's interface.
// An IPv6 instance's source is link-local, and fe80::/64 names no link:
// its segment is the smallest global IPv6 network of the interface that
// is not a VIP's (the same choice on every node of the link), none when
// the interface has no global address. Called with mu held.
func (s *Set) segmentOf(c config.Instance, addr netip.Addr) netip.Prefix {
	if c.IPv6() {
		vips := map[netip.Addr]bool{}
		for _, in := range s.running {
			for _, v := range in.Config.VIPs {
				vips[v.Prefix.Addr()] = true
			}
		}
		for _, v := range c.VIPs {
			vips[v.Prefix.Addr()] = true
		}
		addrs, _ := s.host.Addrs6(c.Interface)
		var best netip.Prefix
		for _, p := range addrs {
			a := p.Addr()
			if a.IsLinkLocalUnicast() || vips[a] {
				continue
			}
			if m := p.Masked(); !best.IsValid() || m.Addr().Less(best.Addr()) || (m.Addr() == best.Addr() && m.Bits() < best.Bits()) {
				best = m
			}
		}
		return best
	}
	addrs, _ := s.host.Addrs(c.Interface)
	for _, a := range addrs {
		if a.Prefix.Addr() == addr {
			return a.Prefix.Masked()
		}
	}
	return netip.Prefix{}
}

func (s *Set) promoteSecondaries(dev string) {
	if err := s.host.PromoteSecondaries(dev); err != nil {
		s.log.Warn("cannot enable promote_secondaries: removing one VIP may briefly remove others of its subnet", "iface", dev, "err", err)
	}
}

// addVMAC creates an instance's virtual MAC interface and gives ann the
// GARP sender of the VIPs that live on it. Called with mu held.
func (s *Set) addVMAC(c config.Instance, ann announcer) error {
	m := host.VMAC{Name: c.VMAC.Name, Parent: c.Interface, MAC: c.VMAC.MAC, V6: c.IPv6()}
	if err := s.host.AddVMAC(m); err != nil {
		return err
	}
	for _, v := range c.HeldVIPs() {
		if v.Dev != c.VMAC.Name {
			continue
		}
		a := s.garps[v.Dev]
		if a == nil {
			var err error
			if a, err = s.host.Announcer(v.Dev); err != nil {
				s.delVMAC(c)
				return fmt.Errorf("gratuitous ARP on %s: %w", v.Dev, err)
			}
			s.garps[v.Dev] = a
		}
		ann[v.Prefix.Addr()] = a
	}
	return nil
}

// announcer returns the GARP sender of an instance: each VIP is announced
// on the device it lives on (those on its virtual MAC interface, which
// does not exist yet, are added by addVMAC). Called with mu held.
func (s *Set) announcer(c config.Instance) (announcer, error) {
	ann := announcer{}
	for _, v := range c.HeldVIPs() {
		if c.VMAC != nil && v.Dev == c.VMAC.Name {
			continue
		}
		dev := v.Device(c.Interface)
		a := s.garps[dev]
		if a == nil {
			var err error
			if a, err = s.host.Announcer(dev); err != nil {
				return nil, fmt.Errorf("gratuitous ARP on %s: %w", dev, err)
			}
			s.garps[dev] = a
		}
		ann[v.Prefix.Addr()] = a
	}
	return ann, nil
}

// announcer maps each VIP to the sender of its device.
type announcer map[netip.Addr]host.Announcer

func (m announcer) Announce(addr netip.Addr) error {
	a := m[addr]
	if a == nil {
		return fmt.Errorf("no gratuitous ARP sender for %s", addr)
	}
	return a.Announce(addr)
}

// vipSet adds and removes one instance's VIPs, and its virtual routes and
// rules: after the addresses (a route may use one as its source), removed
// before them.
type vipSet struct {
	host   Host
	iface  string
	vips   []vip.VIP
	routes []vroute.Route
	rules  []vroute.Rule
	// owner: the instance's name when it does not accept packets to
	// its VIPs (acceptMode false): they are blocked while held.
	owner string
	// source, when set, is the adverts' source address, held on the
	// virtual MAC interface with the VIPs (before them, removed after
	// them), never blocked nor announced.
	source *vip.VIP
}

// quickSet bounds the sets the runner adds itself at takeover
// (vrrp.QuickAddresses): a netlink request each, well under a millisecond
// in all.
const quickSet = 16

// Quick implements vrrp.QuickAddresses: a few addresses, routes and rules,
// and no nftables transaction (acceptMode false) before them.
func (v *vipSet) Quick() bool {
	return v.owner == "" && len(v.vips)+len(v.routes)+len(v.rules) <= quickSet
}

func (v *vipSet) Add() error {
	var err error
	if v.source != nil {
		err = v.host.AddVIPs(v.iface, []vip.VIP{*v.source})
	}
	if v.owner != "" {
		// Blocked before they exist: no packet reaches them unblocked.
		addrs := make([]netip.Addr, len(v.vips))
		for i, x := range v.vips {
			addrs[i] = x.Prefix.Addr()
		}
		err = errors.Join(err, v.host.SetAcceptBlocked(v.owner, addrs))
	}
	err = errors.Join(err, v.host.AddVIPs(v.iface, v.vips))
	if len(v.routes) > 0 || len(v.rules) > 0 {
		err = errors.Join(err, v.host.AddRouting(v.iface, v.routes, v.rules))
	}
	return err
}

func (v *vipSet) Del() error {
	var err error
	if len(v.routes) > 0 || len(v.rules) > 0 {
		err = v.host.DelRouting(v.iface, v.routes, v.rules)
	}
	err = errors.Join(err, v.host.DelVIPs(v.iface, v.vips))
	if v.owner != "" {
		err = errors.Join(err, v.host.SetAcceptBlocked(v.owner, nil))
	}
	if v.source != nil {
		err = errors.Join(err, v.host.DelVIPs(v.iface, []vip.VIP{*v.source}))
	}
	return err
}

// Hold puts every instance on hold (maintenance: masters hand over, none
// becomes master) or releases them; instances started later follow.
func (s *Set) Hold(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = on
	for _, in := range s.running {
		in.runner.Hold(on)
	}
}

// Failover makes the instance's master hand over (priority-0 advert) and
// waits until another node is master (timeout <= 0: 10 s). The instance
// then keeps accepting the new master, whatever its priority, until it
// becomes master again by the protocol or by another failover.
func (s *Set) Failover(ctx context.Context, name string, timeout time.Duration) (netip.Addr, error) {
	in := s.Snapshot().Get(name)
	if in == nil {
		return netip.Addr{}, fmt.Errorf("instance %q: %w", name, ErrNotFound)
	}
	if st := in.Status(); st.State != vrrp.Master {
		return netip.Addr{}, fmt.Errorf("instance %s is %v here, only its master can fail over: %w", name, st.State, ErrNotMaster)
	}
	in.runner.Failover()
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	self := in.Config.VRRP.Primary
	for {
		st, changed := in.runner.Watch()
		if st.State == vrrp.Backup && st.MasterAddr.IsValid() && st.MasterAddr != self {
			return st.MasterAddr, nil
		}
		select {
		case <-ctx.Done():
			return netip.Addr{}, fmt.Errorf("instance %s handed over, but within %v %w (is a backup running?); it takes mastership back by itself: %w",
				name, timeout, ErrNoTakeover, ctx.Err())
		case <-changed:
		}
	}
}

// Announce makes this node's master of a virtual router send gratuitous
// ARPs (after a split brain: the clients the other master confused learn
// the right MAC again).
func (s *Set) Announce(segment string, vrid uint32) {
	for _, in := range s.Snapshot().List() {
		if in.On(segment, vrid) {
			s.log.Info("re-announcing the virtual addresses after the split brain", "instance", in.Name(), "vrid", vrid)
			in.runner.Announce()
		}
	}
}

// LinkChanged hands a link change to the instances of that interface. A
// deleted interface counts as down: the socket is bound to the old one, so
// its instances stay in FAULT until haad is restarted. A Resync event
// forgets what was last handed over.
func (s *Set) LinkChanged(ev host.LinkEvent) {
	s.linkMu.Lock()
	defer s.linkMu.Unlock()
	if ev.Resync {
		clear(s.lastLink)
		return
	}
	up := ev.Up
	s.ifmu.RLock()
	var ifcs []*iface
	for _, v6 := range []bool{false, true} {
		if ifc := s.ifaces[ifaceKey{ev.Name, v6}]; ifc != nil {
			ifcs = append(ifcs, ifc)
		}
	}
	s.ifmu.RUnlock()
	if len(ifcs) > 0 && ev.Index != ifcs[0].conn.Index() {
		if up {
			s.log.Error("interface was deleted and created again: its instances stay in FAULT; restart haad to use the new one",
				"iface", ev.Name)
		}
		up = false
	}
	if prev, seen := s.lastLink[ev.Name]; seen && prev == up {
		return
	}
	s.lastLink[ev.Name] = up
	if len(ifcs) == 0 {
		return
	}
	s.log.Info("link state", "iface", ev.Name, "up", up)
	for _, ifc := range ifcs {
		ifc.demux.Each(func(r *vrrp.Runner) { r.Link(up) })
	}
}

// InterfaceDrops returns, per interface, the packets dropped before an
// instance could be found (malformed, unknown VRID), by reason. It never
// waits for a writer.
func (s *Set) InterfaceDrops() map[string]map[vrrp.DropReason]uint64 {
	s.ifmu.RLock()
	defer s.ifmu.RUnlock()
	out := map[string]map[vrrp.DropReason]uint64{}
	for k, ifc := range s.ifaces {
		m := out[k.name]
		if m == nil {
			m = map[vrrp.DropReason]uint64{}
			out[k.name] = m
		}
		for _, r := range vrrp.DropReasons() {
			if n := ifc.demux.Stats().Drops(r); n > 0 {
				m[r] += n
			}
		}
	}
	return out
}

// Close stops every instance (masters hand over) and releases the
// sockets and senders. It returns ctx's error if the runners did not stop
// in time.
func (s *Set) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.running))
	for n := range s.running {
		names = append(names, n)
	}
	s.stopLocked(ctx, names)
	s.publish()
	s.cancel()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("waiting for instances to stop: %w", ctx.Err())
	}
	for dev, a := range s.garps {
		a.Close()
		delete(s.garps, dev)
	}
	return nil
}

// firstPrefixes lists the first n of ps, and how many more, for a log line.
func firstPrefixes(ps []netip.Prefix, n int) string {
	var b strings.Builder
	for i, p := range ps {
		if i == n {
			fmt.Fprintf(&b, " and %d more", len(ps)-n)
			break
		}
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}
