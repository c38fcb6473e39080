package host

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/haa-dev/haa/node/vroute"
)

// AddRouting adds an instance's virtual routes (replacing a route of the
// same destination, table and metric, as keepalived does) and rules (an
// identical rule already there is kept). iface is the instance's
// interface: the device of a route without via or dev. Every route and
// rule is tried; the errors are joined.
func (l *Linux) AddRouting(iface string, routes []vroute.Route, rules []vroute.Rule) error {
	var errs []error
	for _, r := range routes {
		nr, err := netlinkRoute(r, iface, false)
		if err == nil {
			err = netlink.RouteReplace(nr)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("virtual route %s: add: %w", r, err))
		}
	}
	for _, r := range rules {
		if err := netlink.RuleAdd(netlinkRule(r)); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("virtual rule %s: add: %w", r, err))
		}
	}
	return errors.Join(errs...)
}

// DelRouting removes an instance's virtual rules, then its routes; what is
// not there is no error.
func (l *Linux) DelRouting(iface string, routes []vroute.Route, rules []vroute.Rule) error {
	var errs []error
	for _, r := range rules {
		// The kernel deletes one matching rule per request: repeat
		// (bounded) in case an earlier run added it twice.
		for range 8 {
			err := netlink.RuleDel(netlinkRule(r))
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
				break
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("virtual rule %s: delete: %w", r, err))
				break
			}
		}
	}
	for _, r := range routes {
		nr, err := netlinkRoute(r, iface, true)
		if errors.Is(err, ErrNoInterface) {
			continue // its device is gone, and the route with it
		}
		if err == nil {
			err = netlink.RouteDel(nr)
		}
		if err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("virtual route %s: delete: %w", r, err))
		}
	}
	return errors.Join(errs...)
}

// netlinkRoute converts r as `ip route replace` (or, del, `ip route del`)
// would send it.
func netlinkRoute(r vroute.Route, iface string, del bool) (*netlink.Route, error) {
	nr := &netlink.Route{
		Dst:      ipNet(r.Dst),
		Table:    r.TableID(),
		Priority: r.Metric,
		Protocol: netlink.RouteProtocol(r.Proto),
		Family:   netlink.FAMILY_V4,
		Type:     unix.RTN_UNICAST,
	}
	if r.Is6() {
		nr.Family = netlink.FAMILY_V6
	}
	switch r.Type {
	case vroute.TypeBlackhole:
		nr.Type = unix.RTN_BLACKHOLE
	case vroute.TypeUnreachable:
		nr.Type = unix.RTN_UNREACHABLE
	case vroute.TypeProhibit:
		nr.Type = unix.RTN_PROHIBIT
	case vroute.TypeThrow:
		nr.Type = unix.RTN_THROW
	}
	if dev := r.Device(iface); dev != "" {
		link, err := netlink.LinkByName(dev)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
				return nil, fmt.Errorf("%w: %q", ErrNoInterface, dev)
			}
			return nil, fmt.Errorf("look up interface %q: %w", dev, err)
		}
		nr.LinkIndex = link.Attrs().Index
	}
	if r.Via.IsValid() {
		nr.Gw = net.IP(r.Via.AsSlice())
	}
	if r.Src.IsValid() {
		nr.Src = net.IP(r.Src.AsSlice())
	}
	if r.OnLink {
		nr.Flags |= int(netlink.FLAG_ONLINK)
	}
	switch {
	case del:
		nr.Scope = unix.RT_SCOPE_NOWHERE // any scope (as ip route del)
		nr.Protocol = 0                  // any protocol
	case r.Scope >= 0:
		nr.Scope = netlink.Scope(r.Scope)
	case r.Type == vroute.TypeUnicast && !r.Via.IsValid():
		nr.Scope = netlink.SCOPE_LINK // as ip route add: a device route
	}
	return nr, nil
}

// netlinkRule converts r as `ip rule add` would send it.
func netlinkRule(r vroute.Rule) *netlink.Rule {
	nr := netlink.NewRule()
	nr.Family = netlink.FAMILY_V4
	if r.V6 {
		nr.Family = netlink.FAMILY_V6
	}
	if r.From.IsValid() {
		nr.Src = ipNet(r.From)
	}
	if r.To.IsValid() {
		nr.Dst = ipNet(r.To)
	}
	nr.Priority = r.Priority
	nr.IifName, nr.OifName = r.Iif, r.Oif
	if r.HasMark {
		mask := r.Mask
		nr.Mark, nr.Mask = r.Mark, &mask
	}
	// rtm_type carries the action (FR_ACT_*: the RTN_ numbers).
	switch r.Action {
	case vroute.ActionTable:
		nr.Table = r.Table
		nr.Type = unix.FR_ACT_TO_TBL
	case vroute.ActionGoto:
		nr.Goto = r.Goto
		nr.Type = unix.FR_ACT_GOTO
	case vroute.ActionNop:
		nr.Type = unix.FR_ACT_NOP
	case vroute.ActionBlackhole:
		nr.Type = unix.FR_ACT_BLACKHOLE
	case vroute.ActionUnreachable:
		nr.Type = unix.FR_ACT_UNREACHABLE
	case vroute.ActionProhibit:
		nr.Type = unix.FR_ACT_PROHIBIT
	}
	return nr
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
