package config

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"

	"github.com/haa-dev/haa/node/vip"
)

// Address families of an instance.
const (
	FamilyIPv4 = "ipv4"
	FamilyIPv6 = "ipv6"
)

// IPv6 reports whether the instance runs VRRP over IPv6.
func (in *Instance) IPv6() bool { return in.Family == FamilyIPv6 }

// Unicast reports whether the instance sends its adverts by unicast
// (to Peers, and to the fleet's peers with PeersFromFleet) rather than to
// its multicast Group.
func (in *Instance) Unicast() bool { return len(in.Peers) > 0 || in.PeersFromFleet }

// VIPDevice is the device the instance's VIPs live on when they name
// none: its VMAC interface, or its interface.
func (in *Instance) VIPDevice() string {
	if in.VMAC != nil {
		return in.VMAC.Name
	}
	return in.Interface
}

// SocketDevice is the device the instance's adverts are sent and
// received on: its VMAC interface unless xmitBase, or its interface.
func (in *Instance) SocketDevice() string {
	if in.VMAC != nil && !in.VMAC.XmitBase {
		return in.VMAC.Name
	}
	return in.Interface
}

// VMAC is a virtual MAC interface (a macvlan of the instance's
// interface).
type VMAC struct {
	Name     string
	MAC      net.HardwareAddr // 00:00:5e:00:01:VRID, or :02: for IPv6
	XmitBase bool
}

func familyOf(a netip.Addr) string {
	if a.Is4() || a.Is4In6() {
		return FamilyIPv4
	}
	return FamilyIPv6
}

// isIPv6 reports whether an instance's vips (or family) make it IPv6,
// before they are validated.
func isIPv6(s *haav1.Instance) bool {
	if f := strings.ToLower(s.GetFamily()); f != "" {
		return f == FamilyIPv6
	}
	for _, str := range s.GetVips() {
		v, err := vip.Parse(str)
		return err == nil && v.Prefix.Addr().Is6()
	}
	return false
}

// resolveFamily returns the instance's family: family if set (checked
// against the first vip), else the first vip's, else IPv4.
func resolveFamily(p *problems, f func(string) string, s *haav1.Instance) string {
	fam := strings.ToLower(s.GetFamily())
	switch fam {
	case "":
		if isIPv6(s) {
			return FamilyIPv6
		}
		return FamilyIPv4
	case FamilyIPv4, FamilyIPv6:
		return fam
	default:
		p.add(f("family"), "%q: use ipv4 or ipv6", s.GetFamily())
		return FamilyIPv4
	}
}

// resolveVMAC validates an instance's vmac.
func resolveVMAC(p *problems, f func(string) string, s *haav1.Instance, in *Instance) {
	m := s.GetVmac()
	if m == nil {
		return
	}
	v := &VMAC{Name: m.GetName(), XmitBase: m.GetXmitBase(),
		MAC: net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, in.VRRP.VRID}}
	if in.IPv6() {
		v.MAC[4] = 0x02
	}
	if v.Name == "" {
		v.Name = fmt.Sprintf("vrrp.%d", in.VRRP.VRID)
	}
	switch {
	case !ifaceRE.MatchString(v.Name):
		p.add(f("vmac.name"), "%q is not a valid interface name (at most 15 characters, no / or :)", v.Name)
	case v.Name == in.Interface:
		p.add(f("vmac.name"), "%q is the instance's interface: the virtual MAC needs an interface of its own", v.Name)
	}
	if in.Unicast() && !v.XmitBase {
		// keepalived forces it too: a unicast advert from the virtual
		// MAC would teach the switch a port for it on every node.
		v.XmitBase = true
	}
	for i, x := range in.VIPs {
		if x.Dev == v.Name {
			p.add(f(in.VIPField(i)), "names dev %s, the virtual MAC interface: leave dev out, the instance's addresses go there", v.Name)
		}
	}
	in.VMAC = v
}

// HeldVIPs returns the instance's VIPs as they are held: with a VMAC,
// those that name no device and are of the instance's family go on it
// (dev set); the others are as configured (the instance's interface).
func (in *Instance) HeldVIPs() []vip.VIP {
	if in.VMAC == nil {
		return in.VIPs
	}
	out := make([]vip.VIP, len(in.VIPs))
	for i, v := range in.VIPs {
		if v.Dev == "" && familyOf(v.Prefix.Addr()) == in.Family {
			v.Dev = in.VMAC.Name
		}
		out[i] = v
	}
	return out
}
