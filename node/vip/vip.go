// Package vip is the virtual addresses of VRRP instances: it parses and
// checks keepalived's virtual_ipaddress syntax. It is pure: package
// node/host adds and removes the addresses through netlink.
package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by every error about a malformed VIP: a bad
// virtual_ipaddress string, or a VIP whose fields do not fit together or do
// not fit the interface it is added to.
var ErrInvalid = errors.New("invalid vip")

// MaxNameLen is the longest interface name or address label the kernel
// accepts (IFNAMSIZ - 1).
const MaxNameLen = 15

// VIP is a virtual address of a VRRP instance, as written in keepalived's
// virtual_ipaddress block. The zero values of the optional fields mean "not
// given". VIP is comparable; values returned by Parse are canonical, so two
// spellings of the same address compare equal.
type VIP struct {
	// Prefix is the address and its prefix length, e.g. 10.0.0.100/24. The
	// host bits are kept: they are the address.
	Prefix netip.Prefix
	// Dev is the interface to add the address on when it is not the
	// instance's interface.
	Dev string
	// Label is the IPv4 address label (ip addr ... label eth0:vip). It
	// must start with the interface name and be at most 15 bytes: iproute2
	// and keepalived's users expect the eth0:N alias convention (the kernel
	// itself would take any label).
	Label string
	// Broadcast is the IPv4 broadcast address. Unset: none, as keepalived
	// and `ip addr add` without brd do.
	Broadcast netip.Addr
	// Scope is "", host, link, global, site, nowhere or a number 0..255.
	// "" means global; Parse stores "" for global, the name of a named
	// scope given as a number, and other numbers in decimal. The kernel
	// derives the scope of an IPv6 address from the address and ignores
	// this field for IPv6.
	Scope string
}

// Scopes by name, as in /etc/iproute2/rt_scopes.
var scopes = map[string]uint8{
	"global":  0,
	"site":    200,
	"link":    253,
	"host":    254,
	"nowhere": 255,
}

// Keywords of keepalived's syntax that haa does not implement; named so the
// error says "not supported" instead of "unknown".
var unsupported = map[string]bool{
	"peer": true, "home": true, "-nodad": true, "mngtmpaddr": true,
	"noprefixroute": true, "autojoin": true, "no_track": true,
	"preferred_lft": true, "use_vmac": true, "track_group": true,
}

// Error is a VIP syntax or consistency error. It unwraps to ErrInvalid.
type Error struct {
	Input string // the string given to Parse, or the VIP's String()
	Msg   string
}

func (e *Error) Error() string { return fmt.Sprintf("vip %q: %s", e.Input, e.Msg) }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *Error) Unwrap() error { return ErrInvalid }

// Parse parses one entry of keepalived's virtual_ipaddress block:
//
//	ADDR[/LEN] [dev IF] [label L] [brd B] [scope S]
//
// Without /LEN an IPv4 address is a /32 and an IPv6 address a /128, as in
// keepalived. "broadcast" is accepted for "brd". Keywords may come in any
// order, each at most once.
func Parse(s string) (VIP, error) {
	in := strings.TrimSpace(s)
	fail := func(format string, args ...any) (VIP, error) {
		return VIP{}, &Error{Input: in, Msg: fmt.Sprintf(format, args...)}
	}
	tok := strings.Fields(in)
	if len(tok) == 0 {
		return fail("empty: expected ADDR[/LEN] [dev IF] [label L] [brd B] [scope S]")
	}

	var v VIP
	p, msg := parsePrefix(tok[0])
	if msg != "" {
		return fail("%s", msg)
	}
	v.Prefix = p

	seen := map[string]bool{}
	for i := 1; i < len(tok); i += 2 {
		key := strings.ToLower(tok[i])
		if key == "broadcast" {
			key = "brd"
		}
		switch key {
		case "dev", "label", "brd", "scope":
		default:
			if unsupported[key] {
				return fail("keepalived option %q is not supported", tok[i])
			}
			return fail("unknown keyword %q: expected dev, label, brd or scope", tok[i])
		}
		if seen[key] {
			return fail("%q given twice", key)
		}
		seen[key] = true
		if i+1 >= len(tok) {
			return fail("%q needs a value: %s", tok[i], expects[key])
		}
		val := tok[i+1]
		switch key {
		case "dev":
			if m := checkName(val); m != "" {
				return fail("dev %q: %s", val, m)
			}
			v.Dev = val
		case "label":
			v.Label = val
		case "brd":
			b, err := netip.ParseAddr(val)
			if err != nil || b.Zone() != "" {
				return fail("brd %q: expected an IPv4 address", val)
			}
			v.Broadcast = b
		case "scope":
			sc, ok := canonicalScope(val)
			if !ok {
				return fail("scope %q: %s", val, expects["scope"])
			}
			v.Scope = sc
		}
	}
	if err := v.validate(in, v.Dev); err != nil {
		return VIP{}, err
	}
	return v, nil
}

var expects = map[string]string{
	"dev":   "expected an interface name",
	"label": "expected a label starting with the interface name, e.g. eth0:vip",
	"brd":   "expected an IPv4 address",
	"scope": "expected host, link, global, site, nowhere or a number 0..255",
}

func parsePrefix(s string) (netip.Prefix, string) {
	addrPart, lenPart, hasLen := strings.Cut(s, "/")
	a, err := netip.ParseAddr(addrPart)
	if err != nil {
		return netip.Prefix{}, fmt.Sprintf("%q is not an IP address: expected ADDR[/LEN], e.g. 10.0.0.100/24", addrPart)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Sprintf("%q: zones are not allowed, use dev", addrPart)
	}
	if a.Is4In6() {
		return netip.Prefix{}, fmt.Sprintf("%q is an IPv4-mapped IPv6 address: write %s", addrPart, a.Unmap())
	}
	bits := a.BitLen()
	if hasLen {
		n, err := strconv.Atoi(lenPart)
		if err != nil || lenPart == "" || lenPart[0] == '+' || lenPart[0] == '-' {
			return netip.Prefix{}, fmt.Sprintf("prefix length %q is not a number 0..%d", lenPart, bits)
		}
		if n > bits {
			return netip.Prefix{}, fmt.Sprintf("prefix length %d out of range 0..%d", n, bits)
		}
		bits = n
	}
	return netip.PrefixFrom(a, bits), ""
}

// canonicalScope returns the canonical spelling of a scope: "" for global
// (the default), the name if the scope has one, else its decimal number.
func canonicalScope(s string) (string, bool) {
	n, ok := scopes[strings.ToLower(s)]
	if !ok && s != "" {
		u, err := strconv.ParseUint(s, 0, 8)
		if err != nil {
			return "", false
		}
		n = uint8(u)
	}
	if n == 0 {
		return "", true
	}
	for name, num := range scopes {
		if num == n {
			return name, true
		}
	}
	return strconv.Itoa(int(n)), true
}

// scopeNum returns the numeric scope of a canonical or non-canonical scope.
func scopeNum(s string) (uint8, bool) {
	c, ok := canonicalScope(s)
	if !ok || c == "" {
		return 0, ok
	}
	if n, ok := scopes[c]; ok {
		return n, true
	}
	n, err := strconv.ParseUint(c, 10, 8)
	return uint8(n), err == nil
}

func checkName(s string) string {
	switch {
	case s == "":
		return "empty interface name"
	case len(s) > MaxNameLen:
		return fmt.Sprintf("interface names are at most %d bytes", MaxNameLen)
	case s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n"):
		return "not a valid interface name"
	}
	return ""
}

// Validate checks that the fields of v fit together: a valid prefix, an
// IPv4 broadcast address and label only on an IPv4 address, a known scope,
// and, when Dev is set, a label that starts with it. The label rule against
// the instance's interface is checked by ValidateOn.
func (v VIP) Validate() error {
	return v.validate(v.String(), v.Dev)
}

// ValidateOn is Validate for v added on the interface dev: a label must
// also start with dev's name.
func (v VIP) ValidateOn(dev string) error {
	return v.validate(v.String(), dev)
}

// ScopeNumber is the kernel's number of v's scope (0: global).
func (v VIP) ScopeNumber() uint8 {
	n, _ := scopeNum(v.Scope)
	return n
}

func (v VIP) validate(in, dev string) error {
	fail := func(format string, args ...any) error {
		return &Error{Input: in, Msg: fmt.Sprintf(format, args...)}
	}
	if !v.Prefix.IsValid() {
		return fail("no address: expected ADDR[/LEN]")
	}
	a := v.Prefix.Addr()
	switch {
	case a.Zone() != "":
		return fail("%s: zones are not allowed, use dev", a)
	case a.Is4In6():
		return fail("%s is an IPv4-mapped IPv6 address: write %s", a, a.Unmap())
	case a.IsUnspecified():
		return fail("%s is the unspecified address: expected a unicast address", a)
	case a.IsMulticast():
		return fail("%s is a multicast address: expected a unicast address", a)
	}
	if v.Dev != "" {
		if m := checkName(v.Dev); m != "" {
			return fail("dev %q: %s", v.Dev, m)
		}
	}
	if v.Broadcast.IsValid() {
		if !a.Is4() {
			return fail("brd %s: broadcast addresses exist only for IPv4", v.Broadcast)
		}
		if !v.Broadcast.Is4() {
			return fail("brd %s: expected an IPv4 address", v.Broadcast)
		}
	}
	if v.Label != "" {
		if !a.Is4() {
			return fail("label %q: address labels exist only for IPv4", v.Label)
		}
		if m := checkLabel(v.Label, dev); m != "" {
			return fail("%s", m)
		}
	}
	if _, ok := scopeNum(v.Scope); !ok {
		return fail("scope %q: %s", v.Scope, expects["scope"])
	}
	return nil
}

// checkLabel checks a label for interface dev ("" when not known yet: only
// the length is checked).
func checkLabel(label, dev string) string {
	if len(label) > MaxNameLen {
		return fmt.Sprintf("label %q is longer than %d bytes", label, MaxNameLen)
	}
	if dev != "" && !strings.HasPrefix(label, dev) {
		return fmt.Sprintf("label %q must start with the interface name %q, e.g. %s:vip", label, dev, dev)
	}
	return ""
}

// Device returns the interface the address goes on: Dev if set, else iface
// (the instance's interface). Gratuitous ARPs for v go out on it too.
func (v VIP) Device(iface string) string {
	if v.Dev != "" {
		return v.Dev
	}
	return iface
}

// String returns the canonical form of v, which Parse accepts:
// ADDR/LEN [dev IF] [label L] [brd B] [scope S].
func (v VIP) String() string {
	var b strings.Builder
	b.WriteString(v.Prefix.String())
	if v.Dev != "" {
		b.WriteString(" dev ")
		b.WriteString(v.Dev)
	}
	if v.Label != "" {
		b.WriteString(" label ")
		b.WriteString(v.Label)
	}
	if v.Broadcast.IsValid() {
		b.WriteString(" brd ")
		b.WriteString(v.Broadcast.String())
	}
	if v.Scope != "" {
		b.WriteString(" scope ")
		if c, ok := canonicalScope(v.Scope); ok {
			b.WriteString(c)
		} else {
			b.WriteString(v.Scope)
		}
	}
	return b.String()
}
