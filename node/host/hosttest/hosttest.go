// Package hosttest is an in-memory host for whole agents in one test
// process: links attached to shared segments, addresses, VRRP sockets that
// carry real packets (IPv4 header included, TTL 255) between the hosts of
// a segment, gratuitous ARP recorders and link events. It runs under
// testing/synctest: every wait is on a channel, timers are Go timers.
//
// It stands in for package host's Linux in tests of the logic above it;
// the namespace suites (cmd/haad) prove the real thing.
package hosttest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/haa-dev/haa/node/host"
	"github.com/haa-dev/haa/node/internal/fifo"
	"github.com/haa-dev/haa/node/vip"
	"github.com/haa-dev/haa/node/vroute"
	"github.com/haa-dev/haa/node/vrrp"
)

// Network is a set of segments (broadcast domains) that the hosts' links
// attach to.
type Network struct {
	mu    sync.Mutex
	links map[string][]*link // by segment
	cut   map[[2]*Host]bool  // host pairs that cannot reach each other
}

// NewNetwork returns an empty network.
func NewNetwork() *Network {
	return &Network{links: map[string][]*link{}, cut: map[[2]*Host]bool{}}
}

// Partition cuts (or heals) the path between two hosts, both ways.
func (n *Network) Partition(a, b *Host, cut bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[[2]*Host{a, b}] = cut
	n.cut[[2]*Host{b, a}] = cut
}

// Host is one machine: its links, the VIPs added to them, what it
// announced. It implements node.Host.
type Host struct {
	net  *Network
	name string

	mu         sync.Mutex
	links      map[string]*link
	nextIndex  int
	vips       map[string][]vip.VIP // by device
	routes     map[vroute.Route]bool
	rules      map[vroute.Rule]bool
	announced  map[netip.Addr]int // gratuitous ARPs per address
	watchers   []*fifo.Queue[host.LinkEvent]
	forwarding bool
	vipDelay   time.Duration           // each AddVIPs and DelVIPs takes this long
	blocked    map[string][]netip.Addr // by instance: acceptMode false
}

// SetVIPDelay makes every AddVIPs and DelVIPs take d, as thousands of
// addresses take the kernel.
func (h *Host) SetVIPDelay(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.vipDelay = d
}

// delayVIPs waits, outside the lock, as long as a change of the addresses
// takes (nothing when they are as wished already).
func (h *Host) delayVIPs(iface string, vs []vip.VIP, add bool) {
	h.mu.Lock()
	d := h.vipDelay
	change := slices.ContainsFunc(vs, func(v vip.VIP) bool {
		dev := v.Device(iface)
		has := slices.ContainsFunc(h.vips[dev], func(x vip.VIP) bool { return x.Prefix == v.Prefix })
		return has != add && h.links[dev] != nil
	})
	h.mu.Unlock()
	if change {
		time.Sleep(d)
	}
}

type link struct {
	host    *Host
	name    string
	index   int
	up      bool
	segment string
	addrs   []netip.Prefix
	conns   []*conn
}

// NewHost returns a host with no links.
func (n *Network) NewHost(name string) *Host {
	return &Host{net: n, name: name, links: map[string]*link{}, nextIndex: 2, vips: map[string][]vip.VIP{},
		announced: map[netip.Addr]int{}, forwarding: true}
}

// AddLink gives the host an interface named name, up, on segment, with
// addrs as its own addresses (e.g. 10.77.0.1/24).
func (h *Host) AddLink(name, segment string, addrs ...string) {
	h.mu.Lock()
	l := &link{host: h, name: name, index: h.nextIndex, up: true, segment: segment}
	h.nextIndex++
	for _, a := range addrs {
		l.addrs = append(l.addrs, netip.MustParsePrefix(a))
	}
	h.links[name] = l
	h.mu.Unlock()
	h.net.mu.Lock()
	h.net.links[segment] = append(h.net.links[segment], l)
	h.net.mu.Unlock()
	h.event(host.LinkEvent{Name: name, Index: l.index, Up: true})
}

// SetLink takes a link down or up; the agent hears of it as from netlink.
func (h *Host) SetLink(name string, up bool) {
	h.mu.Lock()
	l := h.links[name]
	if l == nil || l.up == up {
		h.mu.Unlock()
		return
	}
	l.up = up
	ev := host.LinkEvent{Name: name, Index: l.index, Up: up}
	h.mu.Unlock()
	h.event(ev)
}

func (h *Host) event(ev host.LinkEvent) {
	h.mu.Lock()
	ws := slices.Clone(h.watchers)
	h.mu.Unlock()
	for _, w := range ws {
		w.Push(ev)
	}
}

// VIPs returns the VIPs on a device.
func (h *Host) VIPs(dev string) []vip.VIP {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.vips[dev])
}

// Holds reports whether addr is a VIP on any device of the host.
func (h *Host) Holds(addr string) bool {
	a := netip.MustParseAddr(addr)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, vs := range h.vips {
		for _, v := range vs {
			if v.Prefix.Addr() == a {
				return true
			}
		}
	}
	return false
}

// Announced is how many gratuitous ARPs the host sent for addr.
func (h *Host) Announced(addr string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.announced[netip.MustParseAddr(addr)]
}

// SetForwarding sets what IPv4Forwarding reports.
func (h *Host) SetForwarding(on bool) {
	h.mu.Lock()
	h.forwarding = on
	h.mu.Unlock()
}

// Link implements node.Host.
func (h *Host) Link(name string) (host.Link, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	l := h.links[name]
	if l == nil {
		return host.Link{}, fmt.Errorf("interface %s: %w", name, host.ErrNoLink)
	}
	return host.Link{Index: l.index, Up: l.up}, nil
}

// Addrs implements node.Host: the link's own addresses, then its IPv4
// VIPs (secondary when a subnet already has one).
func (h *Host) Addrs(dev string) ([]host.Addr, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	l := h.links[dev]
	if l == nil {
		return nil, fmt.Errorf("interface %s: %w", dev, host.ErrNoLink)
	}
	var out []host.Addr
	for _, p := range l.addrs {
		if p.Addr().Is4() {
			out = append(out, host.Addr{Prefix: p})
		}
	}
	for _, v := range h.vips[dev] {
		if !v.Prefix.Addr().Is4() {
			continue
		}
		sec := slices.ContainsFunc(out, func(a host.Addr) bool { return a.Prefix.Masked() == v.Prefix.Masked() })
		out = append(out, host.Addr{Prefix: v.Prefix, Secondary: sec})
	}
	return out, nil
}

// AddVMAC implements node.Host: a link of the parent's segment, up,
// with the link-local address if given.
func (h *Host) AddVMAC(m host.VMAC) error {
	h.mu.Lock()
	p := h.links[m.Parent]
	_, exists := h.links[m.Name]
	h.mu.Unlock()
	if p == nil {
		return fmt.Errorf("virtual MAC %s: parent %s: %w", m.Name, m.Parent, host.ErrNoLink)
	}
	if exists {
		return nil
	}
	h.AddLink(m.Name, p.segment)
	return nil
}

// DelVMAC implements node.Host.
func (h *Host) DelVMAC(name, _ string) error {
	h.mu.Lock()
	l := h.links[name]
	delete(h.links, name)
	h.mu.Unlock()
	if l == nil {
		return nil
	}
	h.net.mu.Lock()
	h.net.links[l.segment] = slices.DeleteFunc(h.net.links[l.segment], func(x *link) bool { return x == l })
	h.net.mu.Unlock()
	h.event(host.LinkEvent{Name: name, Index: l.index, Up: false})
	return nil
}

// SetAcceptBlocked implements node.Host: it records what is blocked.
func (h *Host) SetAcceptBlocked(owner string, addrs []netip.Addr) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.blocked == nil {
		h.blocked = map[string][]netip.Addr{}
	}
	if len(addrs) == 0 {
		delete(h.blocked, owner)
	} else {
		h.blocked[owner] = slices.Clone(addrs)
	}
	return nil
}

// Blocked returns the addresses the host blocks (acceptMode false),
// whoever blocks them, in no order.
func (h *Host) Blocked() []netip.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []netip.Addr
	for _, as := range h.blocked {
		out = append(out, as...)
	}
	return out
}

// HasLink reports whether the host has the named link.
func (h *Host) HasLink(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.links[name] != nil
}

// Addrs6 implements node.Host: the link's own IPv6 addresses, then its
// IPv6 VIPs.
func (h *Host) Addrs6(dev string) ([]netip.Prefix, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	l := h.links[dev]
	if l == nil {
		return nil, fmt.Errorf("interface %s: %w", dev, host.ErrNoLink)
	}
	var out []netip.Prefix
	for _, p := range l.addrs {
		if p.Addr().Is6() {
			out = append(out, p)
		}
	}
	for _, v := range h.vips[dev] {
		if v.Prefix.Addr().Is6() {
			out = append(out, v.Prefix)
		}
	}
	return out, nil
}

// WarmVIPs implements node.Host: nothing to prepare.
func (h *Host) WarmVIPs(string, []vip.VIP) {}

// AddVIPs implements node.Host.
func (h *Host) AddVIPs(iface string, vs []vip.VIP) error {
	h.delayVIPs(iface, vs, true)
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	for _, v := range vs {
		dev := v.Device(iface)
		if h.links[dev] == nil {
			errs = append(errs, fmt.Errorf("vip %s: %w: %q", v.Prefix, host.ErrNoInterface, dev))
			continue
		}
		if !slices.ContainsFunc(h.vips[dev], func(x vip.VIP) bool { return x.Prefix == v.Prefix }) {
			h.vips[dev] = append(h.vips[dev], v)
		}
	}
	return errors.Join(errs...)
}

// DelVIPs implements node.Host.
func (h *Host) DelVIPs(iface string, vs []vip.VIP) error {
	h.delayVIPs(iface, vs, false)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, v := range vs {
		dev := v.Device(iface)
		h.vips[dev] = slices.DeleteFunc(h.vips[dev], func(x vip.VIP) bool { return x.Prefix == v.Prefix })
	}
	return nil
}

// DelStaleVIPs implements node.Host: DelVIPs, saying which were there.
func (h *Host) DelStaleVIPs(iface string, vs []vip.VIP) ([]netip.Prefix, error) {
	h.mu.Lock()
	var there []netip.Prefix
	for _, v := range vs {
		if slices.ContainsFunc(h.vips[v.Device(iface)], func(x vip.VIP) bool { return x.Prefix == v.Prefix }) {
			there = append(there, v.Prefix)
		}
	}
	h.mu.Unlock()
	return there, h.DelVIPs(iface, vs)
}

// AddRouting implements node.Host: the routes and rules are remembered
// (Routing reports them).
func (h *Host) AddRouting(iface string, routes []vroute.Route, rules []vroute.Rule) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.routes == nil {
		h.routes, h.rules = map[vroute.Route]bool{}, map[vroute.Rule]bool{}
	}
	for _, r := range routes {
		h.routes[r] = true
	}
	for _, r := range rules {
		h.rules[r] = true
	}
	return nil
}

// DelRouting implements node.Host.
func (h *Host) DelRouting(iface string, routes []vroute.Route, rules []vroute.Rule) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range routes {
		delete(h.routes, r)
	}
	for _, r := range rules {
		delete(h.rules, r)
	}
	return nil
}

// Routing reports how many virtual routes and rules the host holds.
func (h *Host) Routing() (routes, rules int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.routes), len(h.rules)
}

// PromoteSecondaries implements node.Host.
func (h *Host) PromoteSecondaries(string) error { return nil }

// IPv4Forwarding implements node.Host.
func (h *Host) IPv4Forwarding() (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.forwarding, nil
}

// PreciseTimer implements node.Host with a Go timer (fake time under
// synctest).
func (h *Host) PreciseTimer() (vrrp.Timer, error) {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return goTimer{t}, nil
}

type goTimer struct{ t *time.Timer }

func (g goTimer) C() <-chan time.Time   { return g.t.C }
func (g goTimer) Reset(d time.Duration) { g.t.Reset(d) }
func (g goTimer) Stop()                 { g.t.Stop() }
func (g goTimer) Close() error          { g.t.Stop(); return nil }

// Announcer implements node.Host: it records what is announced.
func (h *Host) Announcer(dev string) (host.Announcer, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.links[dev] == nil {
		return nil, fmt.Errorf("interface %s: %w", dev, host.ErrNoLink)
	}
	return announcer{h}, nil
}

type announcer struct{ h *Host }

func (a announcer) Announce(addr netip.Addr) error {
	a.h.mu.Lock()
	a.h.announced[addr]++
	a.h.mu.Unlock()
	return nil
}

func (a announcer) Close() error { return nil }

// WatchLinks implements node.Host: every link, then each change, until
// ctx ends.
func (h *Host) WatchLinks(ctx context.Context) (<-chan host.LinkEvent, error) {
	q := fifo.New[host.LinkEvent]()
	h.mu.Lock()
	names := make([]string, 0, len(h.links))
	for n := range h.links {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		l := h.links[n]
		q.Push(host.LinkEvent{Name: n, Index: l.index, Up: l.up})
	}
	h.watchers = append(h.watchers, q)
	h.mu.Unlock()
	out := make(chan host.LinkEvent)
	go func() {
		defer close(out)
		for {
			evs, ok := q.Wait(ctx)
			if !ok {
				return
			}
			for _, ev := range evs {
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// ListenVRRP implements node.Host: a socket on the link that receives
// what the other hosts of its segment send, of one family.
func (h *Host) ListenVRRP(iface string, v6 bool) (host.VRRPConn, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	l := h.links[iface]
	if l == nil {
		return nil, fmt.Errorf("interface %s: %w", iface, host.ErrNoLink)
	}
	c := &conn{l: l, v6: v6, in: make(chan []byte, 256), done: make(chan struct{}), groups: map[netip.Addr]bool{}}
	l.conns = append(l.conns, c)
	return c, nil
}

// conn is a VRRP socket on a fake link.
type conn struct {
	l      *link
	v6     bool // an IPv6 socket: IPv6 packets only
	in     chan []byte
	done   chan struct{}
	once   sync.Once
	mu     sync.Mutex
	groups map[netip.Addr]bool
}

func (c *conn) Index() int { return c.l.index }

func (c *conn) JoinGroup(g netip.Addr) error {
	c.mu.Lock()
	c.groups[g] = true
	c.mu.Unlock()
	return nil
}

func (c *conn) LeaveGroup(g netip.Addr) error {
	c.mu.Lock()
	delete(c.groups, g)
	c.mu.Unlock()
	return nil
}

func (c *conn) joined(g netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.groups[g]
}

func (c *conn) Close() error {
	c.once.Do(func() {
		close(c.done)
		h := c.l.host
		h.mu.Lock()
		c.l.conns = slices.DeleteFunc(c.l.conns, func(x *conn) bool { return x == c })
		h.mu.Unlock()
	})
	return nil
}

// ReadPacket returns the next packet, with its IPv4 header, as a raw
// socket does.
func (c *conn) ReadPacket(b []byte) (int, time.Time, error) {
	select {
	case p := <-c.in:
		return copy(b, p), time.Now(), nil
	case <-c.done:
		return 0, time.Time{}, os.ErrClosed
	}
}

// ErrLinkDown is returned when sending on a link that is down.
var ErrLinkDown = errors.New("network is down")

// Send delivers msg, with an IPv4 header (TTL 255), to the sockets of the
// other hosts on the segment: those that joined dst, or whose link has
// the address dst. Nothing leaves or arrives on a link that is down.
func (c *conn) Send(src, dst netip.Addr, msg []byte) error {
	self := c.l.host
	self.mu.Lock()
	up := c.l.up
	self.mu.Unlock()
	if !up {
		return ErrLinkDown
	}
	if dst.Is6() != c.v6 {
		return fmt.Errorf("%s to %s on an IPv%d socket", src, dst, map[bool]int{false: 4, true: 6}[c.v6])
	}
	var pkt []byte
	if c.v6 {
		pkt = vrrp.AppendIPv6(nil, vrrp.IPv6Header{HopLimit: 255, NextHeader: vrrp.Protocol, Src: src, Dst: dst}, msg)
	} else {
		pkt = vrrp.AppendIPv4(nil, vrrp.IPv4Header{TOS: vrrp.TOSInternetControl, TTL: 255, Protocol: vrrp.Protocol,
			Src: src, Dst: dst}, msg)
	}
	n := self.net
	n.mu.Lock()
	peers := slices.Clone(n.links[c.l.segment])
	cut := func(to *Host) bool { return n.cut[[2]*Host{self, to}] }
	var dests []*conn
	for _, l := range peers {
		if l.host == self || cut(l.host) {
			continue
		}
		l.host.mu.Lock()
		if l.up && (dst.IsMulticast() || slices.ContainsFunc(l.addrs, func(p netip.Prefix) bool { return p.Addr() == dst })) {
			for _, rc := range l.conns {
				if rc.v6 == c.v6 && (!dst.IsMulticast() || rc.joined(dst)) {
					dests = append(dests, rc)
				}
			}
		}
		l.host.mu.Unlock()
	}
	n.mu.Unlock()
	for _, rc := range dests {
		select {
		case rc.in <- pkt:
		case <-rc.done:
		default: // the receiver is too far behind: dropped, as a full socket buffer does
		}
	}
	return nil
}
