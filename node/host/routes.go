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

// ProtoKeepalived is the routing protocol number virtual routes and rules
// carry unless they name one (RTPROT_KEEPALIVED, "keepalived" in
// rt_protos, as keepalived stamps its own): what haad removes is only
// what it added, never a route of the host that looks the same.
const ProtoKeepalived = 18

// AddRouting adds an instance's virtual routes and rules as keepalived
// does: a route is added beside one of the same destination, table and
// metric (NLM_F_CREATE alone: it goes first, the host's stays), an
// identical one already there is kept; each carries ProtoKeepalived. iface
// is the instance's interface: the device of a route without via or dev.
// Every route and rule is tried; the errors are joined.
func (l *Linux) AddRouting(iface string, routes []vroute.Route, rules []vroute.Rule) error {
	var errs []error
	for _, r := range routes {
		nr, err := netlinkRoute(r, iface, false)
		if err == nil {
			err = netlink.RouteAddEcmp(nr)
		}
		if err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("virtual route %s: add: %w (check its gateway and device on this node)", r, err))
		}
	}
	for _, r := range rules {
		if err := netlink.RuleAdd(netlinkRule(r)); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("virtual rule %s: add: %w (check its table and interfaces on this node)", r, err))
		}
	}
	return errors.Join(errs...)
}

// DelRouting removes an instance's virtual rules, then its routes, those
// that carry its protocol only; what is not there is no error.
func (l *Linux) DelRouting(iface string, routes []vroute.Route, rules []vroute.Rule) error {
	var errs []error
	for _, r := range rules {
		err := netlink.RuleDel(netlinkRule(r))
		if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("virtual rule %s: delete: %w", r, err))
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
	proto := r.Proto
	if proto == 0 {
		proto = ProtoKeepalived
	}
	nr := &netlink.Route{
		Dst:      ipNet(r.Dst),
		Table:    r.TableID(),
		Priority: r.Metric,
		Protocol: netlink.RouteProtocol(proto),
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
	// keepalived's scope is universe unless the route names one (ip
	// route would make a device route link scope).
	switch {
	case del:
		nr.Scope = unix.RT_SCOPE_NOWHERE // any scope (as ip route del); the protocol must match
	case r.Scope >= 0:
		nr.Scope = netlink.Scope(r.Scope)
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
	nr.Protocol = ProtoKeepalived // added and matched on delete: only ours go
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
