package host

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/haa-dev/haa/node/vip"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrNoInterface is wrapped when the interface of a vip.VIP does not exist.
var ErrNoInterface = errors.New("interface not found")

// VIPs adds, removes and checks virtual addresses through one netlink
// handle. It is safe for concurrent use: AddAll and DelAll run one at a time
// (netlink.Handle serialises requests on its socket anyway), so that the
// listing a DelAll makes is not interrupted by the changes of another.
type VIPs struct {
	h     netlinkOps
	owned *netlink.Handle // created by NewVIPs and closed by Close
	mu    sync.Mutex      // one AddAll or DelAll at a time
	// known are the links AddAll looked up, by name (under mu): a
	// takeover adds its addresses without a lookup first. A link
	// deleted since (its index is gone, ENODEV) is looked up again;
	// the kernel never gives a new link an old index (they only grow).
	known map[string]netlink.Link
}

// netlinkOps is what VIPs asks of netlink (*netlink.Handle).
type netlinkOps interface {
	LinkByName(name string) (netlink.Link, error)
	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
	AddrAdd(link netlink.Link, addr *netlink.Addr) error
	AddrDel(link netlink.Link, addr *netlink.Addr) error
}

// NewVIPs returns the VIPs working through h, or, when h is nil, through a new
// netlink handle in the network namespace of the calling thread.
func NewVIPs(h *netlink.Handle) *VIPs {
	if h != nil {
		return &VIPs{h: h}
	}
	nh, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		// A zero Handle opens a socket per request in the caller's
		// namespace: slower, but it works.
		return &VIPs{h: &netlink.Handle{}}
	}
	return &VIPs{h: nh, owned: nh}
}

// Close releases the netlink handle if NewVIPs created it; a handle passed to
// NewVIPs stays open.
func (m *VIPs) Close() error {
	if m.owned != nil {
		m.owned.Close()
	}
	return nil
}

// Add adds v on v.Dev, or on iface when v.Dev is empty (see AddAll).
func (m *VIPs) Add(iface string, v vip.VIP) error { return m.AddAll(iface, []vip.VIP{v}) }

// Del removes v from v.Dev, or from iface when v.Dev is empty (see DelAll).
func (m *VIPs) Del(iface string, v vip.VIP) error { return m.DelAll(iface, []vip.VIP{v}) }

// AddAll adds each of vs on its v.Dev, or on iface when v.Dev is empty. An
// address already present (same address and prefix length) is not an
// error. IPv6 addresses are added with IFA_F_NODAD so they are usable at
// once. It costs one request per address, and a link lookup the first
// time a device is seen: it does not list addresses. Every address is tried; the errors are
// joined.
func (m *VIPs) AddAll(iface string, vs []vip.VIP) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	links := linkCache{m: m}
	var errs []error
	for _, v := range vs {
		dev := v.Device(iface)
		if err := v.ValidateOn(dev); err != nil {
			errs = append(errs, err)
			continue
		}
		link, cached := m.known[dev]
		if !cached {
			var err error
			if link, err = links.get(dev, v); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		err := m.h.AddrAdd(link, toNetlink(v, true))
		if cached && errors.Is(err, unix.ENODEV) { // deleted and perhaps created again
			delete(m.known, dev)
			if link, err = links.get(dev, v); err != nil {
				errs = append(errs, err)
				continue
			}
			err = m.h.AddrAdd(link, toNetlink(v, true))
		}
		if err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("vip %s: add on %s: %w", v.Prefix, dev, err))
			continue
		}
		if m.known == nil {
			m.known = map[string]netlink.Link{}
		}
		m.known[dev] = link
	}
	return errors.Join(errs...)
}

// Warm looks up the links of vs (on iface when v.Dev is empty) for a
// later AddAll, which then sends the kernel nothing but the addresses (a
// backup's takeover). A link that is missing is skipped.
func (m *VIPs) Warm(iface string, vs []vip.VIP) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, v := range vs {
		dev := v.Device(iface)
		if _, ok := m.known[dev]; ok {
			continue
		}
		if link, err := m.link(dev, v); err == nil {
			if m.known == nil {
				m.known = map[string]netlink.Link{}
			}
			m.known[dev] = link
		}
	}
}

// DelAll removes each of vs from its v.Dev, or from iface when v.Dev is
// empty. An absent address, or an absent interface, is not an error. It
// costs one link lookup per device, one request per address, and one
// address listing per device when an IPv4 address with a prefix shorter
// than /32 is among vs: O(N) requests for N addresses, and no listing at all
// for /32 and IPv6 addresses.
//
// When an address removed is the primary IPv4 address of its subnet and
// net.ipv4.conf.DEV.promote_secondaries is off, the kernel removes the
// secondary addresses of that subnet with it; DelAll adds back those that
// were not to be removed, so only vs disappear (the others are missing for
// a moment). Set promote_secondaries=1 to avoid even that. A /32 address
// has no secondaries (its subnet is itself), nor has an IPv6 address: for
// those the listing would only tell what is absent, which the kernel's
// answer to the request says as well.
func (m *VIPs) DelAll(iface string, vs []vip.VIP) error {
	_, err := m.delAll(iface, vs)
	return err
}

// DelPresent is DelAll that also says which of vs were there and are
// removed (the kernel deleted them), for the log of a start that removes
// what an earlier run left.
func (m *VIPs) DelPresent(iface string, vs []vip.VIP) ([]netip.Prefix, error) {
	return m.delAll(iface, vs)
}

func (m *VIPs) delAll(iface string, vs []vip.VIP) ([]netip.Prefix, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	links := linkCache{m: m}
	type devFam struct {
		dev string
		fam int
	}
	present := map[devFam]*listing{} // nil: unknown (the listing was interrupted)
	list := func(k devFam, link netlink.Link) (*listing, error) {
		if got, ok := present[k]; ok {
			return got, nil
		}
		addrs, err := retryDump(func() ([]netlink.Addr, error) { return m.h.AddrList(link, k.fam) })
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			present[k] = nil
			return nil, fmt.Errorf("list addresses of %s: %w", k.dev, err)
		}
		if err != nil { // interrupted: it may be incomplete, so delete blindly
			present[k] = nil
			return nil, nil
		}
		got := &listing{addrs: addrs, at: make(map[netip.Prefix]int, len(addrs))}
		for i, a := range addrs {
			if p, ok := prefixOf(a); ok {
				got.at[p] = i
			}
		}
		present[k] = got
		return got, nil
	}
	var errs []error
	var deleted []netip.Prefix
	removed := map[netip.Prefix]bool{}
	var restore []struct {
		link netlink.Link
		dev  string
		a    netlink.Addr
	}
	for _, v := range vs {
		dev := v.Device(iface)
		if !v.Prefix.IsValid() {
			errs = append(errs, v.Validate())
			continue
		}
		link, err := links.get(dev, v)
		if errors.Is(err, ErrNoInterface) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var got *listing
		if v.Prefix.Addr().Is4() && v.Prefix.Bits() < 32 {
			got, err = list(devFam{dev, netlink.FAMILY_V4}, link)
			if err != nil {
				errs = append(errs, fmt.Errorf("vip %s: %w", v.Prefix, err))
				continue
			}
		}
		if got != nil {
			i, ok := got.at[v.Prefix]
			if !ok {
				continue
			}
			if got.addrs[i].Flags&unix.IFA_F_SECONDARY == 0 {
				for _, sec := range secondariesOf(got.addrs, v.Prefix) {
					restore = append(restore, struct {
						link netlink.Link
						dev  string
						a    netlink.Addr
					}{link, dev, sec})
				}
			}
		}
		err = m.h.AddrDel(link, toNetlink(v, false))
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			errs = append(errs, fmt.Errorf("vip %s: delete from %s: %w", v.Prefix, dev, err))
			continue
		}
		if err == nil {
			deleted = append(deleted, v.Prefix)
		}
		removed[v.Prefix] = true
	}
	for _, r := range restore {
		if p, _ := prefixOf(r.a); removed[p] {
			continue
		}
		a := r.a
		a.Flags &^= unix.IFA_F_SECONDARY | unix.IFA_F_PERMANENT
		if a.Broadcast == nil {
			a.Broadcast = net.IPv4zero // keep it without one
		}
		if err := m.h.AddrAdd(r.link, &a); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("restore secondary %s on %s: %w", a.IPNet, r.dev, err))
		}
	}
	return deleted, errors.Join(errs...)
}

// listing is a device's addresses of one family, indexed.
type listing struct {
	addrs []netlink.Addr
	at    map[netip.Prefix]int
}

// linkCache looks each device up once.
type linkCache struct {
	m     *VIPs
	links map[string]netlink.Link
}

func (c *linkCache) get(dev string, v vip.VIP) (netlink.Link, error) {
	if l, ok := c.links[dev]; ok {
		return l, nil
	}
	l, err := c.m.link(dev, v)
	if err != nil {
		return nil, err // not cached: the error names the VIP
	}
	if c.links == nil {
		c.links = map[string]netlink.Link{}
	}
	c.links[dev] = l
	return l, nil
}

// Has reports whether v (its address and prefix length) is on v.Dev, or on
// iface when v.Dev is empty.
func (m *VIPs) Has(iface string, v vip.VIP) (bool, error) {
	dev := v.Device(iface)
	if !v.Prefix.IsValid() {
		return false, v.Validate()
	}
	link, err := m.link(dev, v)
	if err != nil {
		return false, err
	}
	fam := netlink.FAMILY_V4
	if v.Prefix.Addr().Is6() {
		fam = netlink.FAMILY_V6
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return m.h.AddrList(link, fam) })
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return false, fmt.Errorf("vip %s: list addresses of %s: %w", v.Prefix, dev, err)
	}
	for _, a := range addrs {
		if sameAddr(a, v.Prefix) {
			return true, nil
		}
	}
	return false, err
}

func (m *VIPs) link(dev string, v vip.VIP) (netlink.Link, error) {
	if dev == "" {
		return nil, &vip.Error{Input: v.String(), Msg: "no interface: set dev, or give the instance's interface"}
	}
	link, err := m.h.LinkByName(dev)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("vip %s: %w: %q", v.Prefix, ErrNoInterface, dev)
		}
		return nil, fmt.Errorf("vip %s: look up interface %q: %w", v.Prefix, dev, err)
	}
	return link, nil
}

// toNetlink converts v; full adds the attributes that only matter when
// adding (label, broadcast, nodad). Del matches on address and prefix
// length only, whatever the label.
func toNetlink(v vip.VIP, full bool) *netlink.Addr {
	a := v.Prefix.Addr()
	n := &netlink.Addr{IPNet: &net.IPNet{
		IP:   net.IP(a.AsSlice()),
		Mask: net.CIDRMask(v.Prefix.Bits(), a.BitLen()),
	}}
	if !full {
		return n
	}
	n.Scope = int(v.ScopeNumber())
	if a.Is4() {
		n.Label = v.Label
		// netlink computes a broadcast address when none is given; zero
		// means none, like keepalived.
		n.Broadcast = net.IPv4zero
		if v.Broadcast.IsValid() {
			n.Broadcast = net.IP(v.Broadcast.AsSlice())
		}
	} else {
		n.Flags = unix.IFA_F_NODAD
	}
	return n
}

func sameAddr(a netlink.Addr, p netip.Prefix) bool {
	q, ok := prefixOf(a)
	return ok && q == p
}

// prefixOf is a's address and prefix length.
func prefixOf(a netlink.Addr) (netip.Prefix, bool) {
	if a.IPNet == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := a.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones), true
}

// secondariesOf returns the secondary addresses that the kernel treats as
// belonging to primary: same prefix length, same subnet, in kernel order.
func secondariesOf(addrs []netlink.Addr, primary netip.Prefix) []netlink.Addr {
	subnet := primary.Masked()
	var out []netlink.Addr
	for _, a := range addrs {
		p, ok := prefixOf(a)
		if !ok || a.Flags&unix.IFA_F_SECONDARY == 0 {
			continue
		}
		if p.Bits() == primary.Bits() && subnet.Contains(p.Addr()) {
			out = append(out, a)
		}
	}
	return out
}
