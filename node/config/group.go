package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/haa-dev/haa/node/lvs"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// MaxGroupServices bounds the kernel services one virtual server's group
// expands to.
const MaxGroupServices = 256

// groupEntry is one service of a virtual server group: an address and
// port, or a firewall mark.
type groupEntry struct {
	addr netip.AddrPort
	mark uint32
}

// parseGroupEntry parses one entry of VirtualServer.group: "ADDR:PORT",
// a range "FIRST-LAST:PORT" (LAST a whole address or, as keepalived
// writes it, the last byte: 10.0.0.10-20), "ADDR/LEN:PORT" (every address
// of the prefix), or "fwmark N". max bounds the services it may expand to.
func parseGroupEntry(s string, max int) ([]groupEntry, string) {
	s = strings.TrimSpace(s)
	if m, ok := strings.CutPrefix(s, "fwmark"); ok {
		n, err := strconv.ParseUint(strings.TrimSpace(m), 0, 32)
		if err != nil || n == 0 {
			return nil, fmt.Sprintf("%q: write fwmark N, N 1..%d", s, uint32(1<<32-1))
		}
		return []groupEntry{{mark: uint32(n)}}, ""
	}
	bad := fmt.Sprintf(`%q is not ADDR:PORT, FIRST-LAST:PORT, ADDR/LEN:PORT or fwmark N, e.g. "10.0.0.10-20:80"`, s)
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return nil, bad
	}
	host, ps := s[:i], s[i+1:]
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Sprintf("%q: port %q is not a number 1..65535", s, ps)
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	var first, last netip.Addr
	switch {
	case strings.Contains(host, "/"):
		p, err := netip.ParsePrefix(host)
		if err != nil {
			return nil, bad
		}
		if p != p.Masked() {
			// keepalived skips such an entry ("Address mask bits not
			// empty").
			return nil, fmt.Sprintf("%q: %s has bits set past its length: write %s", s, p, p.Masked())
		}
		first = p.Addr()
		last = lastOf(p)
	case strings.Contains(host, "-"):
		a, b, _ := strings.Cut(host, "-")
		if first, err = netip.ParseAddr(a); err != nil {
			return nil, bad
		}
		if last, err = netip.ParseAddr(b); err != nil {
			// keepalived's short form: the last byte (IPv4) or group
			// of 16 bits (IPv6) of the last address.
			bits := 8
			if first.Is6() {
				bits = 16
			}
			n, err := strconv.ParseUint(b, map[bool]int{true: 16, false: 10}[first.Is6()], bits)
			if err != nil {
				return nil, bad
			}
			raw := first.AsSlice()
			if first.Is6() {
				raw[14], raw[15] = byte(n>>8), byte(n)
			} else {
				raw[3] = byte(n)
			}
			last, _ = netip.AddrFromSlice(raw)
		}
	default:
		if first, err = netip.ParseAddr(host); err != nil {
			return nil, bad
		}
		last = first
	}
	switch {
	case first.Zone() != "" || first.Is4In6() || last.Is4() != first.Is4():
		return nil, bad
	case last.Less(first) || (strings.Contains(host, "-") && last == first):
		// keepalived wants the end of a range after its start.
		return nil, fmt.Sprintf("%q: the range must end after it starts (write one address as ADDR:PORT)", s)
	case first.IsUnspecified() || first.IsMulticast():
		return nil, fmt.Sprintf("%q: %s is not a unicast address", s, first)
	}
	var out []groupEntry
	for a := first; ; a = a.Next() {
		if len(out) == max {
			return nil, fmt.Sprintf("%q: more than %d services in the group: split the virtual server", s, MaxGroupServices)
		}
		out = append(out, groupEntry{addr: netip.AddrPortFrom(a, uint16(port))})
		if a == last {
			break
		}
	}
	return out, ""
}

// lastOf is the last address of p.
func lastOf(p netip.Prefix) netip.Addr {
	raw := p.Addr().AsSlice()
	for b := p.Bits(); b < len(raw)*8; b++ {
		raw[b/8] |= 0x80 >> (b % 8)
	}
	a, _ := netip.AddrFromSlice(raw)
	return a
}

// resolveGroup parses a virtual server's group (nil: none, or a problem).
func resolveGroup(p *problems, f func(string) string, s *haav1.VirtualServer) []groupEntry {
	if len(s.GetGroup()) == 0 {
		return nil
	}
	ok := true
	if s.GetAddress() != "" || s.GetFwmark() != 0 {
		p.add(f("group"), "set together with address or fwmark: the group lists every service, put them there")
		ok = false
	}
	var out []groupEntry
	seen := map[groupEntry]int{}
	for i, str := range s.GetGroup() {
		es, msg := parseGroupEntry(str, MaxGroupServices-len(out))
		if msg != "" {
			p.add(fmt.Sprintf("%s[%d]", f("group"), i), "%s", msg)
			ok = false
			continue
		}
		for _, e := range es {
			if j, dup := seen[e]; dup {
				p.add(fmt.Sprintf("%s[%d]", f("group"), i), "%s is already in group[%d]: list each service once", entryString(e), j)
				ok = false
				continue
			}
			seen[e] = i
			out = append(out, e)
		}
	}
	marks := 0
	for _, e := range out {
		if e.mark != 0 {
			marks++
		}
	}
	if marks > 0 && marks < len(out) {
		p.add(f("group"), "mixes addresses and fwmarks: haa keeps them in separate virtual servers (their real servers' ports differ); split the group in two")
		ok = false
	}
	if !ok {
		return nil
	}
	// Every address entry shares one port, unless nat and every real
	// server names its port: then each service maps to them alike.
	if marks == 0 {
		ports := map[uint16]bool{}
		for _, e := range out {
			ports[e.addr.Port()] = true
		}
		if len(ports) > 1 {
			nat := s.GetForwarding() == "" || strings.EqualFold(s.GetForwarding(), "nat")
			explicit := true
			for _, r := range s.GetRealServers() {
				ap, msg := parseAddrPort(r.GetAddress(), true)
				explicit = explicit && msg == "" && ap.Port() != 0
			}
			if !nat || !explicit {
				p.add(f("group"), "its services have %d different ports: a real server without its port, or dr/tunnel forwarding, would need one port per service; give every real server its port (with nat), or split the group by port", len(ports))
				return nil
			}
		}
	}
	return out
}

// groupKeys are the keys of group's services but the first (key), each
// checked against the other virtual servers'.
func groupKeys(p *problems, f func(string) string, i int, group []groupEntry, key lvs.Key, seen *vsSeen) []lvs.Key {
	for _, e := range group {
		if e.addr.IsValid() && e.addr.Addr().Is6() != key.Addr.Addr().Is6() {
			p.add(f("group"), "mixes IPv4 and IPv6 services: one family per virtual server; split the group by family")
			return nil
		}
	}
	var out []lvs.Key
	for k, e := range group {
		if k == 0 {
			continue
		}
		ak := lvs.Key{FWMark: e.mark, V6: key.V6}
		if e.mark == 0 {
			ak = lvs.Key{Addr: e.addr, Proto: key.Proto}
		}
		if j, dup := seen.keys[ak]; dup && j != i {
			p.add(f("group"), "%s is already the service of virtualServers[%d]", ak, j)
			continue
		}
		seen.keys[ak] = i
		out = append(out, ak)
	}
	return out
}

func entryString(e groupEntry) string {
	if e.mark != 0 {
		return fmt.Sprintf("fwmark %d", e.mark)
	}
	return e.addr.String()
}
