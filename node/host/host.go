// Package host is the agent's access to the machine it runs on: links and
// their events, addresses, VRRP sockets, gratuitous ARP and unsolicited
// neighbour advertisement senders, sysctls and the precise timer. Every
// subsystem of the agent takes what it needs of it through a small
// interface of its own; Linux is the real thing (netlink, raw sockets,
// /proc/sys), and package hosttest is an in-memory fake with which whole
// agents run in one test process under testing/synctest.
//
// Nothing here decides anything: it carries out what it is asked and says
// what the kernel answered.
package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/haa-dev/haa/node/garp"
	"github.com/haa-dev/haa/node/vip"
	"github.com/haa-dev/haa/node/vrrp"
)

// Link is a network interface as the agent sees it.
type Link struct {
	Index int
	// Up: administratively up and running (carrier).
	Up bool
}

// LinkEvent is a change of a link.
type LinkEvent struct {
	Name  string
	Index int
	// Up is false for a link that went down or was deleted.
	Up bool
	// Resync: the subscription was renewed (netlink dropped it); the
	// events that follow list every link afresh.
	Resync bool
}

// Addr is one IPv4 address of a device.
type Addr struct {
	Prefix netip.Prefix
	// Secondary: the kernel holds it as a secondary address of its subnet.
	Secondary bool
}

// VRRPConn is the VRRP socket of one interface: it sends adverts, receives
// whole IP packets and joins the multicast group.
type VRRPConn interface {
	vrrp.Sender
	vrrp.Reader
	JoinGroup(g netip.Addr) error
	LeaveGroup(g netip.Addr) error
	// Index is the interface index the socket is bound to.
	Index() int
	Close() error
}

// Announcer announces addresses on one device: gratuitous ARP for IPv4,
// unsolicited neighbour advertisements for IPv6.
type Announcer interface {
	vrrp.Announcer
	Close() error
}

// ErrNoLink is wrapped when a named link does not exist.
var ErrNoLink = errors.New("no such interface")

// Linux is the host haad runs on, through netlink, raw sockets and
// /proc/sys. It is safe for concurrent use.
type Linux struct {
	log     *slog.Logger
	vips    *VIPs
	parents vmacParents
	accept  acceptFilter
}

// NewLinux returns the host in the caller's network namespace.
func NewLinux(log *slog.Logger) *Linux {
	if log == nil {
		log = slog.Default()
	}
	return &Linux{log: log, vips: NewVIPs(nil)}
}

// Close releases the netlink handle.
func (l *Linux) Close() error { return l.vips.Close() }

// Link returns the named link.
func (l *Linux) Link(name string) (Link, error) {
	lk, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return Link{}, fmt.Errorf("interface %s: %w", name, ErrNoLink)
		}
		return Link{}, fmt.Errorf("interface %s: %w", name, err)
	}
	return Link{Index: lk.Attrs().Index, Up: isUp(lk.Attrs())}, nil
}

// Addrs returns a device's IPv4 addresses with their prefix lengths,
// secondary ones included, in the kernel's order.
func (l *Linux) Addrs(dev string) ([]Addr, error) {
	lk, err := netlink.LinkByName(dev)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", dev, err)
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(lk, netlink.FAMILY_V4) })
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) { // still changing: the best we have
		return nil, fmt.Errorf("addresses of %s: %w", dev, err)
	}
	out := make([]Addr, 0, len(addrs))
	for _, ad := range addrs {
		ip, ok := netip.AddrFromSlice(ad.IP.To4())
		if !ok {
			continue
		}
		ones, _ := ad.Mask.Size()
		out = append(out, Addr{Prefix: netip.PrefixFrom(ip, ones), Secondary: ad.Flags&unix.IFA_F_SECONDARY != 0})
	}
	return out, nil
}

// Addrs6 returns a device's usable IPv6 addresses (not tentative: DAD
// has passed or is off), link-local ones included, in the kernel's order.
func (l *Linux) Addrs6(dev string) ([]netip.Prefix, error) {
	lk, err := netlink.LinkByName(dev)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", dev, err)
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(lk, netlink.FAMILY_V6) })
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("IPv6 addresses of %s: %w", dev, err)
	}
	var out []netip.Prefix
	for _, ad := range addrs {
		ip, ok := netip.AddrFromSlice(ad.IP)
		if !ok || ip.Is4In6() || ad.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
			continue
		}
		ones, _ := ad.Mask.Size()
		out = append(out, netip.PrefixFrom(ip, ones))
	}
	return out, nil
}

// dumpBudget bounds how long a netlink dump is retried while the kernel
// reports it interrupted (the table changed while it was read).
const dumpBudget = time.Second

// retryDump runs a netlink dump again while it is interrupted: a dump
// that changed under the kernel's feet is incomplete, not failed. While
// addresses change thousands of times a second nearly every dump is
// interrupted: after dumpBudget it returns the last one with
// netlink.ErrDumpInterrupted, for the caller to use as the best the kernel
// can say (a lookup) or to distrust (what is absent may be there).
func retryDump[T any](dump func() (T, error)) (T, error) {
	start := time.Now()
	for try := 0; ; try++ {
		out, err := dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || time.Since(start) >= dumpBudget {
			return out, err
		}
		if try >= 10 {
			time.Sleep(time.Millisecond) // let the change settle
		}
	}
}

// AddVIPs adds each of vs on its v.Dev, or on iface (see VIPs.AddAll).
func (l *Linux) AddVIPs(iface string, vs []vip.VIP) error { return l.vips.AddAll(iface, vs) }

// WarmVIPs prepares a later AddVIPs of vs (see VIPs.Warm).
func (l *Linux) WarmVIPs(iface string, vs []vip.VIP) { l.vips.Warm(iface, vs) }

// DelVIPs removes each of vs from its v.Dev, or from iface (see
// VIPs.DelAll).
func (l *Linux) DelVIPs(iface string, vs []vip.VIP) error { return l.vips.DelAll(iface, vs) }

// DelStaleVIPs is DelVIPs that says which addresses were there (see
// VIPs.DelPresent): what an earlier run left, at an instance's start.
func (l *Linux) DelStaleVIPs(iface string, vs []vip.VIP) ([]netip.Prefix, error) {
	return l.vips.DelPresent(iface, vs)
}

// ListenVRRP opens the VRRP socket of an interface, IPv4's or (v6)
// IPv6's.
func (l *Linux) ListenVRRP(iface string, v6 bool) (VRRPConn, error) {
	if v6 {
		c, err := ListenSocket6(iface)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	c, err := ListenSocket(iface)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Announcer opens the gratuitous ARP / NA sender of a device.
func (l *Linux) Announcer(dev string) (Announcer, error) {
	s, err := garp.Open(dev)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// PromoteSecondaries makes the kernel keep the other addresses of a subnet
// when one is removed (as keepalived does): without it, removing a VIP that
// became the subnet's primary address takes the other VIPs with it.
func (l *Linux) PromoteSecondaries(dev string) error {
	return os.WriteFile("/proc/sys/net/ipv4/conf/"+dev+"/promote_secondaries", []byte("1"), 0o644)
}

// IPv4Forwarding reports net.ipv4.ip_forward.
func (l *Linux) IPv4Forwarding() (bool, error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(b)) != "0", nil
}

// PreciseTimer returns a timer that fires on time even when the process
// is busy (a timerfd): the master-down timer, which failover hangs on.
func (l *Linux) PreciseTimer() (vrrp.Timer, error) { return NewPreciseTimer() }

// WatchLinks follows link changes through netlink until ctx ends: every
// link once at start, then each change. A subscription that netlink drops
// (e.g. ENOBUFS) is renewed, with a Resync event before the full list. The
// channel is closed when ctx ends.
func (l *Linux) WatchLinks(ctx context.Context) (<-chan LinkEvent, error) {
	ch, err := l.subscribe(ctx)
	if err != nil {
		return nil, fmt.Errorf("subscribing to link changes: %w", err)
	}
	out := make(chan LinkEvent, 256)
	go func() {
		defer close(out)
		for {
			for u := range ch {
				attrs := u.Attrs()
				ev := LinkEvent{Name: attrs.Name, Index: attrs.Index, Up: isUp(attrs) && u.Header.Type != unix.RTM_DELLINK}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
			// The channel closed: ctx ended, or netlink dropped us.
			for ctx.Err() == nil {
				if ch, err = l.subscribe(ctx); err == nil {
					l.log.Warn("link monitor restarted")
					select {
					case out <- LinkEvent{Resync: true}:
					case <-ctx.Done():
					}
					break
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			if ctx.Err() != nil {
				return
			}
		}
	}()
	return out, nil
}

func (l *Linux) subscribe(ctx context.Context) (chan netlink.LinkUpdate, error) {
	ch := make(chan netlink.LinkUpdate, 256)
	err := netlink.LinkSubscribeWithOptions(ch, ctx.Done(), netlink.LinkSubscribeOptions{
		ListExisting:      true,
		ReceiveBufferSize: 1 << 20,
		ErrorCallback: func(err error) {
			if ctx.Err() == nil { // closing the socket at shutdown is not news
				l.log.Error("link monitor", "err", err)
			}
		},
	})
	return ch, err
}

func isUp(attrs *netlink.LinkAttrs) bool {
	return attrs.Flags&net.FlagUp != 0 && attrs.RawFlags&unix.IFF_RUNNING != 0
}
