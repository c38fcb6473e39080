package host

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/haa-dev/haa/node/vip"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrNoInterface is wrapped when the interface of a vip.VIP does not exist.
var ErrNoInterface = errors.New("interface not found")

// VIPs adds, removes and checks virtual addresses through one netlink
// handle. It is safe for concurrent use: netlink.Handle serialises requests
// on its socket.
type VIPs struct {
	h     *netlink.Handle
	owned bool // h was created by NewVIPs and is closed by Close
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
	return &VIPs{h: nh, owned: true}
}

// Close releases the netlink handle if NewVIPs created it; a handle passed to
// NewVIPs stays open.
func (m *VIPs) Close() error {
	if m.owned {
		m.h.Close()
	}
	return nil
}

// Add adds v on v.Dev, or on iface when v.Dev is empty. An address already
// present (same address and prefix length) is not an error. IPv6 addresses
// are added with IFA_F_NODAD so they are usable at once. Add does one link
// lookup and one address request: it does not list addresses.
func (m *VIPs) Add(iface string, v vip.VIP) error {
	dev := v.Device(iface)
	if err := v.ValidateOn(dev); err != nil {
		return err
	}
	link, err := m.link(dev, v)
	if err != nil {
		return err
	}
	if err := m.h.AddrAdd(link, toNetlink(v, true)); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("vip %s: add on %s: %w", v.Prefix, dev, err)
	}
	return nil
}

// Del removes v from v.Dev, or from iface when v.Dev is empty. An absent
// address, or an absent interface, is not an error.
//
// When the address is the primary IPv4 address of its subnet and
// net.ipv4.conf.DEV.promote_secondaries is off, the kernel removes the
// secondary addresses of that subnet with it; Del adds those back, so only v
// disappears (the others are missing for the time of two requests). Set
// promote_secondaries=1 to avoid even that.
func (m *VIPs) Del(iface string, v vip.VIP) error {
	dev := v.Device(iface)
	if !v.Prefix.IsValid() {
		return v.Validate()
	}
	link, err := m.link(dev, v)
	if errors.Is(err, ErrNoInterface) {
		return nil
	}
	if err != nil {
		return err
	}
	var restore []netlink.Addr
	if v.Prefix.Addr().Is4() {
		addrs, err := m.h.AddrList(link, netlink.FAMILY_V4)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return fmt.Errorf("vip %s: list addresses of %s: %w", v.Prefix, dev, err)
		}
		found := false
		for _, a := range addrs {
			if sameAddr(a, v.Prefix) {
				found = true
				if a.Flags&unix.IFA_F_SECONDARY == 0 {
					restore = secondariesOf(addrs, v.Prefix)
				}
				break
			}
		}
		if !found && err == nil {
			return nil
		}
	}
	if err := m.h.AddrDel(link, toNetlink(v, false)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("vip %s: delete from %s: %w", v.Prefix, dev, err)
	}
	var errs []error
	for _, a := range restore {
		a.Flags &^= unix.IFA_F_SECONDARY | unix.IFA_F_PERMANENT
		if a.Broadcast == nil {
			a.Broadcast = net.IPv4zero // keep it without one
		}
		if err := m.h.AddrAdd(link, &a); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("vip %s: restore secondary %s on %s: %w", v.Prefix, a.IPNet, dev, err))
		}
	}
	return errors.Join(errs...)
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
	addrs, err := m.h.AddrList(link, fam)
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
	if a.IPNet == nil {
		return false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return false
	}
	ones, _ := a.Mask.Size()
	return ip.Unmap() == p.Addr() && ones == p.Bits()
}

// secondariesOf returns the secondary addresses that the kernel treats as
// belonging to primary: same prefix length, same subnet.
func secondariesOf(addrs []netlink.Addr, primary netip.Prefix) []netlink.Addr {
	subnet := primary.Masked()
	var out []netlink.Addr
	for _, a := range addrs {
		if a.Flags&unix.IFA_F_SECONDARY == 0 || a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		if ones == primary.Bits() && subnet.Contains(ip.Unmap()) {
			out = append(out, a)
		}
	}
	return out
}
