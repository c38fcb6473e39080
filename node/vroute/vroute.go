// Package vroute is the routes and policy rules that follow an instance's
// mastership (keepalived's virtual_routes and virtual_rules): it parses
// and checks their syntax, a subset of ip-route(8) and ip-rule(8) as
// keepalived reads it. It is pure: package node/host adds and removes them
// through netlink.
package vroute

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by every error about a malformed route or rule.
var ErrInvalid = errors.New("invalid route or rule")

// Error is a syntax error in one route or rule. It unwraps to ErrInvalid.
type Error struct {
	Input string
	Msg   string
}

func (e *Error) Error() string { return fmt.Sprintf("%q: %s", e.Input, e.Msg) }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *Error) Unwrap() error { return ErrInvalid }

// Route types other than unicast (rtnetlink's RTN_*).
const (
	TypeUnicast     = ""
	TypeBlackhole   = "blackhole"
	TypeUnreachable = "unreachable"
	TypeProhibit    = "prohibit"
	TypeThrow       = "throw"
)

// Tables by name, as in /etc/iproute2/rt_tables.
var tables = map[string]int{"default": 253, "main": 254, "local": 255}

// Route is one virtual route. Zero values of the optional fields mean "not
// given". Values returned by ParseRoute are canonical and comparable.
type Route struct {
	Dst    netip.Prefix // masked; default is 0.0.0.0/0 or ::/0
	Type   string       // TypeUnicast ... TypeThrow
	Via    netip.Addr
	Dev    string
	Src    netip.Addr
	Table  int // 0: main
	Metric int
	Scope  int // -1: the kernel's choice (link without a gateway, else global)
	Proto  int // 0: boot, as ip route add
	OnLink bool
}

// Is6 reports whether r is an IPv6 route.
func (r Route) Is6() bool { return r.Dst.Addr().Is6() }

// ParseRoute parses one entry of keepalived's virtual_routes:
//
//	[src ADDR] [to] [TYPE] DEST [via|gw ADDR] [dev|oif IF] [table T]
//	[metric|priority|preference N] [scope S] [protocol|proto P] [onlink]
//
// DEST is ADDR[/LEN] or default; TYPE is unicast, blackhole, unreachable,
// prohibit or throw; T a number or main, local, default; S global,
// universe, site, link, host, nowhere or a number; P boot, static,
// kernel or a number. A route without via and dev gets the instance's
// interface (see Device).
func ParseRoute(s string) (Route, error) {
	r := Route{Scope: -1}
	bad := func(format string, args ...any) (Route, error) {
		return Route{}, &Error{Input: s, Msg: fmt.Sprintf(format, args...)}
	}
	w := strings.Fields(s)
	if len(w) == 0 {
		return bad("empty: write DEST [via GW] [dev IF], e.g. 10.1.0.0/16 via 10.0.0.1")
	}
	var dest string
	inet6 := false
	for ws := (words{w: w}); ; {
		kw, more := ws.next()
		if !more {
			break
		}
		switch kw {
		case "src", "via", "gw", "dev", "oif", "table", "metric", "priority", "preference", "scope", "protocol", "proto":
			v, ok := ws.next()
			if !ok {
				return bad("%s needs a value", kw)
			}
			switch kw {
			case "src", "via", "gw":
				a, err := netip.ParseAddr(v)
				if err != nil || a.Zone() != "" {
					return bad("%s %q is not an IP address", kw, v)
				}
				if kw == "src" {
					r.Src = a
				} else {
					r.Via = a
				}
			case "dev", "oif":
				if msg := checkName(v); msg != "" {
					return bad("dev %q: %s", v, msg)
				}
				r.Dev = v
			case "table":
				n, ok := tableNum(v)
				if !ok {
					return bad("table %q: write a number 1..%d or main, local, default (names from rt_tables are not read)", v, uint32(1<<32-1))
				}
				r.Table = n
			case "metric", "priority", "preference":
				n, err := strconv.ParseUint(v, 10, 32)
				if err != nil {
					return bad("%s %q is not a number 0..%d", kw, v, uint32(1<<32-1))
				}
				r.Metric = int(n)
			case "scope":
				n, ok := scopeNum(v)
				if !ok {
					return bad("scope %q: write global, site, link, host, nowhere or a number 0..255", v)
				}
				r.Scope = n
			case "protocol", "proto":
				n, ok := protoNum(v)
				if !ok {
					return bad("protocol %q: write boot, static, kernel or a number 0..255", v)
				}
				r.Proto = n
			}
		case "onlink":
			r.OnLink = true
		case "inet", "inet6":
			inet6 = kw == "inet6"
		case "to":
			// The next word is the destination (or its type).
		case TypeBlackhole, TypeUnreachable, TypeProhibit, TypeThrow, "unicast":
			if r.Type != "" || dest != "" {
				return bad("%s: the type comes once, before the destination", kw)
			}
			if kw != "unicast" {
				r.Type = kw
			}
		default:
			if dest != "" {
				return bad("%q: not supported (haa takes src, to, DEST, via, dev, table, metric, scope, protocol, onlink and the types blackhole, unreachable, prohibit, throw); remove it", kw)
			}
			dest = kw
		}
	}
	if dest == "" {
		return bad("no destination: write ADDR/LEN or default")
	}
	if dest == "default" || dest == "all" {
		// The family follows the gateway or source, else IPv4.
		r.Dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if inet6 || r.Via.Is6() || r.Src.Is6() {
			r.Dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
	} else {
		p, msg := parsePrefix(dest)
		if msg != "" {
			return bad("destination %q %s", dest, msg)
		}
		r.Dst = p.Masked()
	}
	is6 := r.Dst.Addr().Is6()
	for _, a := range []struct {
		name string
		a    netip.Addr
	}{{"via", r.Via}, {"src", r.Src}} {
		if a.a.IsValid() && a.a.Is6() != is6 {
			return bad("%s %s is not of the destination's family: one family per route", a.name, a.a)
		}
	}
	if r.Type != TypeUnicast && (r.Via.IsValid() || r.Dev != "") {
		return bad("a %s route has no gateway or device: remove via and dev", r.Type)
	}
	return r, nil
}

// Device is the device the route goes on: its dev, else the instance's
// interface iface for a unicast route without a gateway, else none (the
// kernel finds the gateway's).
func (r Route) Device(iface string) string {
	if r.Dev != "" || r.Type != TypeUnicast || r.Via.IsValid() {
		return r.Dev
	}
	return iface
}

// TableID is the kernel's table number (main when not given).
func (r Route) TableID() int {
	if r.Table == 0 {
		return tables["main"]
	}
	return r.Table
}

func (r Route) String() string {
	var b strings.Builder
	if r.Type != TypeUnicast {
		b.WriteString(r.Type + " ")
	}
	if r.Dst.Bits() == 0 {
		b.WriteString("default")
	} else {
		b.WriteString(r.Dst.String())
	}
	add := func(k, v string) { b.WriteString(" " + k + " " + v) }
	if r.Via.IsValid() {
		add("via", r.Via.String())
	}
	if r.Dev != "" {
		add("dev", r.Dev)
	}
	if r.Src.IsValid() {
		add("src", r.Src.String())
	}
	if r.Table != 0 {
		add("table", strconv.Itoa(r.Table))
	}
	if r.Metric != 0 {
		add("metric", strconv.Itoa(r.Metric))
	}
	if r.Scope >= 0 {
		add("scope", strconv.Itoa(r.Scope))
	}
	if r.Proto != 0 {
		add("protocol", strconv.Itoa(r.Proto))
	}
	if r.OnLink {
		b.WriteString(" onlink")
	}
	return b.String()
}

// Rule actions.
const (
	ActionTable       = "table"
	ActionGoto        = "goto"
	ActionNop         = "nop"
	ActionBlackhole   = "blackhole"
	ActionUnreachable = "unreachable"
	ActionProhibit    = "prohibit"
)

// Rule is one virtual policy rule. Values returned by ParseRule are
// canonical and comparable.
type Rule struct {
	From, To   netip.Prefix // unset: all
	V6         bool         // the family (from From/To; IPv4 without either)
	Action     string
	Table      int // ActionTable
	Goto       int // ActionGoto: the priority to go to
	Priority   int // -1: the kernel's choice
	Iif, Oif   string
	Mark, Mask uint32
	HasMark    bool
}

// ParseRule parses one entry of keepalived's virtual_rules:
//
//	[inet|inet6] [from PREFIX|all] [to PREFIX|all] [iif|dev IF] [oif IF]
//	[fwmark M[/MASK]] [priority|preference|order P]
//	table|lookup T | goto P | nop | blackhole | unreachable | prohibit
//
// M, MASK and numbers may be written in hex (0x...).
func ParseRule(s string) (Rule, error) {
	r := Rule{Priority: -1}
	bad := func(format string, args ...any) (Rule, error) {
		return Rule{}, &Error{Input: s, Msg: fmt.Sprintf(format, args...)}
	}
	w := strings.Fields(s)
	fam := 0 // 4, 6 or 0: not said
	setFam := func(f int) bool {
		if fam != 0 && fam != f {
			return false
		}
		fam = f
		return true
	}
	for ws := (words{w: w}); ; {
		kw, more := ws.next()
		if !more {
			break
		}
		setAction := func(a string) bool {
			if r.Action != "" {
				return false
			}
			r.Action = a
			return true
		}
		switch kw {
		case "inet":
			if !setFam(4) {
				return bad("inet with IPv6 addresses")
			}
		case "inet6":
			if !setFam(6) {
				return bad("inet6 with IPv4 addresses")
			}
		case "from", "to", "iif", "dev", "oif", "fwmark", "priority", "preference", "order", "table", "lookup", "goto":
			v, ok := ws.next()
			if !ok {
				return bad("%s needs a value", kw)
			}
			switch kw {
			case "from", "to":
				if v == "all" {
					continue
				}
				p, msg := parsePrefix(v)
				if msg != "" {
					return bad("%s %q %s", kw, v, msg)
				}
				f := 4
				if p.Addr().Is6() {
					f = 6
				}
				if !setFam(f) {
					return bad("%s %s: one family per rule", kw, v)
				}
				if kw == "from" {
					r.From = p.Masked()
				} else {
					r.To = p.Masked()
				}
			case "iif", "dev", "oif":
				if msg := checkName(v); msg != "" {
					return bad("%s %q: %s", kw, v, msg)
				}
				if kw == "oif" {
					r.Oif = v
				} else {
					r.Iif = v
				}
			case "fwmark":
				m, mask, ok := strings.Cut(v, "/")
				mv, err1 := strconv.ParseUint(m, 0, 32)
				mk, err2 := uint64(0xffffffff), error(nil)
				if ok {
					mk, err2 = strconv.ParseUint(mask, 0, 32)
				}
				if err1 != nil || err2 != nil {
					return bad("fwmark %q: write MARK or MARK/MASK (numbers, 0x for hex)", v)
				}
				r.Mark, r.Mask, r.HasMark = uint32(mv), uint32(mk), true
			case "priority", "preference", "order":
				n, err := strconv.ParseUint(v, 0, 32)
				if err != nil {
					return bad("%s %q is not a number", kw, v)
				}
				r.Priority = int(n)
			case "table", "lookup":
				n, ok := tableNum(v)
				if !ok {
					return bad("table %q: write a number or main, local, default (names from rt_tables are not read)", v)
				}
				if !setAction(ActionTable) {
					return bad("one action per rule (table, goto, nop, blackhole, unreachable, prohibit)")
				}
				r.Table = n
			case "goto":
				n, err := strconv.ParseUint(v, 0, 32)
				if err != nil {
					return bad("goto %q is not a rule priority", v)
				}
				if !setAction(ActionGoto) {
					return bad("one action per rule (table, goto, nop, blackhole, unreachable, prohibit)")
				}
				r.Goto = int(n)
			}
		case "type":
			// keepalived's "type blackhole": the action follows.
		case ActionNop, ActionBlackhole, ActionUnreachable, ActionProhibit:
			if !setAction(kw) {
				return bad("one action per rule (table, goto, nop, blackhole, unreachable, prohibit)")
			}
		default:
			return bad("%q: not supported (haa takes from, to, iif, oif, fwmark, priority and one action: table, goto, nop, blackhole, unreachable, prohibit); remove it", kw)
		}
	}
	switch {
	case r.Action == "":
		return bad("no action: add table T (or goto, nop, blackhole, unreachable, prohibit); keepalived ignores such a rule")
	case r.Action == ActionGoto && (r.Priority < 0 || r.Priority >= r.Goto):
		return bad("goto %d needs a priority below it (keepalived refuses it otherwise): add priority N", r.Goto)
	}
	r.V6 = fam == 6
	return r, nil
}

func (r Rule) String() string {
	var b strings.Builder
	add := func(k, v string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		if v != "" {
			b.WriteString(" " + v)
		}
	}
	if r.V6 && !r.From.IsValid() && !r.To.IsValid() {
		add("inet6", "")
	}
	if r.From.IsValid() {
		add("from", r.From.String())
	}
	if r.To.IsValid() {
		add("to", r.To.String())
	}
	if r.Iif != "" {
		add("iif", r.Iif)
	}
	if r.Oif != "" {
		add("oif", r.Oif)
	}
	if r.HasMark {
		add("fwmark", fmt.Sprintf("%#x/%#x", r.Mark, r.Mask))
	}
	if r.Priority >= 0 {
		add("priority", strconv.Itoa(r.Priority))
	}
	switch r.Action {
	case ActionTable:
		add("table", strconv.Itoa(r.Table))
	case ActionGoto:
		add("goto", strconv.Itoa(r.Goto))
	default:
		add(r.Action, "")
	}
	return b.String()
}

// words hands out the words of an entry one at a time: a keyword, then
// its value.
type words struct {
	w []string
	i int
}

// next is the next word; false at the end.
func (ws *words) next() (string, bool) {
	if ws.i >= len(ws.w) {
		return "", false
	}
	ws.i++
	return ws.w[ws.i-1], true
}

func parsePrefix(s string) (netip.Prefix, string) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, "is not ADDR or ADDR/LEN"
		}
		return netip.PrefixFrom(a, a.BitLen()), ""
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, "is not ADDR or ADDR/LEN"
	}
	return p, ""
}

func tableNum(s string) (int, bool) {
	if n, ok := tables[s]; ok {
		return n, true
	}
	n, err := strconv.ParseUint(s, 0, 32)
	if err != nil || n == 0 {
		return 0, false
	}
	return int(n), true
}

var scopeNames = map[string]int{"global": 0, "universe": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}

func scopeNum(s string) (int, bool) {
	if n, ok := scopeNames[s]; ok {
		return n, true
	}
	n, err := strconv.ParseUint(s, 0, 8)
	return int(n), err == nil
}

var protoNames = map[string]int{"unspec": 0, "redirect": 1, "kernel": 2, "boot": 3, "static": 4}

func protoNum(s string) (int, bool) {
	if n, ok := protoNames[s]; ok {
		return n, true
	}
	n, err := strconv.ParseUint(s, 0, 8)
	return int(n), err == nil
}

// checkName checks an interface name as the kernel takes it (at most 15
// bytes, no / or white space).
func checkName(s string) string {
	if len(s) > 15 || s == "." || s == ".." || strings.ContainsAny(s, "/:") {
		return "not an interface name (at most 15 characters, no / or :)"
	}
	return ""
}
