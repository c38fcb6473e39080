// Package lvs programs virtual servers into the kernel. A pure diff turns
// the desired table and the programmed one into a plan that touches only
// what changed; a Backend (IPVS or nftables) carries the plan out.
package lvs

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"strconv"
	"time"
)

// Protocol is a virtual server's transport protocol, as its IP protocol
// number.
type Protocol uint8

// The protocols of address-based virtual servers.
const (
	TCP  Protocol = 6
	UDP  Protocol = 17
	SCTP Protocol = 132
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case SCTP:
		return "sctp"
	}
	return fmt.Sprintf("proto-%d", uint8(p))
}

// ParseProtocol parses "tcp", "udp" or "sctp".
func ParseProtocol(s string) (Protocol, bool) {
	switch s {
	case "tcp":
		return TCP, true
	case "udp":
		return UDP, true
	case "sctp":
		return SCTP, true
	}
	return 0, false
}

// Forwarding is how packets reach a real server.
type Forwarding uint8

// The forwarding methods.
const (
	NAT Forwarding = iota
	DirectRoute
	Tunnel
)

func (f Forwarding) String() string {
	switch f {
	case NAT:
		return "nat"
	case DirectRoute:
		return "dr"
	case Tunnel:
		return "tunnel"
	}
	return fmt.Sprintf("forwarding-%d", uint8(f))
}

// ParseForwarding parses "nat", "dr" or "tunnel".
func ParseForwarding(s string) (Forwarding, bool) {
	switch s {
	case "nat":
		return NAT, true
	case "dr":
		return DirectRoute, true
	case "tunnel":
		return Tunnel, true
	}
	return 0, false
}

// Schedulers are the IPVS schedulers a virtual server may name.
var Schedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf"}

// Key identifies a virtual server in the kernel: an address, port and
// protocol, or a firewall mark (of IPv4 packets, or IPv6 when V6).
type Key struct {
	Addr   netip.AddrPort // zero for fwmark services
	Proto  Protocol       // zero for fwmark services
	FWMark uint32
	V6     bool // fwmark services only
}

func (k Key) String() string {
	if k.FWMark != 0 {
		if k.V6 {
			return "fwmark:" + strconv.FormatUint(uint64(k.FWMark), 10) + "/ipv6"
		}
		return "fwmark:" + strconv.FormatUint(uint64(k.FWMark), 10)
	}
	return k.Addr.String() + "/" + k.Proto.String()
}

// Is6 reports whether the service balances IPv6.
func (k Key) Is6() bool {
	if k.FWMark != 0 {
		return k.V6
	}
	return k.Addr.Addr().Is6()
}

// Service is a virtual server's own settings.
type Service struct {
	Key        Key
	Scheduler  string // one of Schedulers
	Forwarding Forwarding
	// Persistence keeps a client on one real server this long after its
	// last connection; 0: none. PersistPrefix is the client prefix length
	// that counts as one client (0: a whole address).
	Persistence   time.Duration
	PersistPrefix int
}

// Thresholds are IPVS's connection limits of a destination: it takes no
// new connections once it has Upper connections (active and inactive), and
// takes them again below Lower (Upper 0: no limit; Lower 0: below three
// quarters of Upper). The kernel refuses a Lower above Upper.
type Thresholds struct {
	Upper, Lower uint32
	// Set: haad sets them. Unset, they are not haad's: an update leaves
	// what the kernel holds (set with ipvsadm, say) and a new destination
	// has none. A table read from the kernel leaves Set false.
	Set bool
}

// DestAttrs are how a destination is programmed.
type DestAttrs struct {
	// Weight 0 takes no new connections.
	Weight int
	// Forwarding is the destination's own method: IPVS keeps it per
	// destination. It is its service's, but for a sorry server with its
	// own (keepalived's sorry_server_lvs_method).
	Forwarding Forwarding
	Thresholds Thresholds
}

// Satisfies reports whether a destination programmed with a needs no
// change to be want: the same weight and forwarding, and the thresholds
// when want sets them. Thresholds that are not haad's (want's unset) are
// left alone, unless haad set them itself (a's Set) and they are not
// zero: those it clears.
func (a DestAttrs) Satisfies(want DestAttrs) bool {
	if a.Weight != want.Weight || a.Forwarding != want.Forwarding {
		return false
	}
	if want.Thresholds.Set {
		return a.Thresholds.Upper == want.Thresholds.Upper && a.Thresholds.Lower == want.Thresholds.Lower
	}
	return !a.Thresholds.Set || (a.Thresholds.Upper == 0 && a.Thresholds.Lower == 0)
}

// Dest is a destination of an Op: a real server's address and how it is
// programmed.
type Dest struct {
	Addr netip.AddrPort
	DestAttrs
}

// VirtualServer is a service and its destinations, by address.
type VirtualServer struct {
	Service
	Dests map[netip.AddrPort]DestAttrs // by real-server address
}

// WithKey is a copy of vs as the service k: the same settings and
// destinations (a virtual server group's other services).
func (vs *VirtualServer) WithKey(k Key) *VirtualServer {
	c := *vs
	c.Key = k
	c.Dests = maps.Clone(vs.Dests)
	return &c
}

// State is a table of virtual servers.
type State map[Key]*VirtualServer

// OpKind is what an Op does.
type OpKind uint8

// The operations of a plan.
const (
	AddService OpKind = iota + 1
	UpdateService
	DeleteService // removes its destinations too
	AddDest
	UpdateDest
	DeleteDest
)

func (k OpKind) String() string {
	switch k {
	case AddService:
		return "add-service"
	case UpdateService:
		return "update-service"
	case DeleteService:
		return "delete-service"
	case AddDest:
		return "add-dest"
	case UpdateDest:
		return "update-dest"
	case DeleteDest:
		return "delete-dest"
	}
	return fmt.Sprintf("op-%d", uint8(k))
}

// Op is one change. Dest is set for the Dest kinds; Service always (for
// the Dest kinds, the service the destination belongs to).
type Op struct {
	Kind    OpKind
	Service Service
	Dest    Dest
}

func (o Op) String() string {
	switch o.Kind {
	case AddDest, UpdateDest, DeleteDest:
		s := fmt.Sprintf("%s %s %s weight %d", o.Kind, o.Service.Key, o.Dest.Addr, o.Dest.Weight)
		if o.Kind != DeleteDest {
			s += o.Dest.DestAttrs.suffix(o.Service.Forwarding)
		}
		return s
	}
	return fmt.Sprintf("%s %s", o.Kind, o.Service.Key)
}

// suffix is what a destination's text adds to its weight: a forwarding
// method other than its service's (svc), and thresholds haad sets.
func (a DestAttrs) suffix(svc Forwarding) string {
	var s string
	if a.Forwarding != svc {
		s += " " + a.Forwarding.String()
	}
	if t := a.Thresholds; t.Set {
		s += fmt.Sprintf(" thresholds %d/%d", t.Upper, t.Lower)
	}
	return s
}

// Plan is an ordered list of changes.
type Plan []Op

// Validator is what checking a configuration against a backend takes: its
// name and what it supports, without opening it.
type Validator interface {
	Name() string
	Supports(s Service) error
}

// Backend programs virtual servers into the kernel.
type Backend interface {
	// Name is "ipvs" or "nftables".
	Name() string
	// Supports reports why the backend cannot program s (nil: it can), in
	// words that tell the user what to change.
	Supports(s Service) error
	// Apply carries out a plan. After an error the programmed state is
	// unknown: Read tells it.
	Apply(ctx context.Context, p Plan) error
	// Read returns what is programmed: for ipvs every service of the
	// kernel, for nftables those of its own table.
	Read(ctx context.Context) (State, error)
	// Close removes nothing; it releases the backend's handles.
	Close() error
}

// Counter is implemented by backends that count connections per
// destination (ipvs).
type Counter interface {
	Conns(ctx context.Context) (map[Key]map[netip.AddrPort]Conns, error)
}

// Conns are a destination's connection counts.
type Conns struct {
	Active, Inactive uint64
}

// DestChecker is implemented by backends that restrict real servers too
// (nftables: IPv4 with a port, nat, no thresholds). SupportsDests reports
// why vs's destinations cannot be programmed, in words that tell the user
// what to change: a *DestError per destination at fault (joined with
// errors.Join when there are several), or an error about them all.
type DestChecker interface {
	SupportsDests(vs *VirtualServer) error
}

// The attributes a DestError can name.
const (
	AttrAddress    = "address"
	AttrWeight     = "weight"
	AttrForwarding = "forwarding"
	AttrThresholds = "thresholds"
)

// DestError is a destination a backend cannot program, and why: Attr is
// what is at fault (AttrAddress, AttrWeight, AttrForwarding,
// AttrThresholds), so that the caller can name the field to change.
type DestError struct {
	Addr netip.AddrPort
	Attr string
	Err  error
}

func (e *DestError) Error() string { return "real server " + e.Addr.String() + ": " + e.Err.Error() }

func (e *DestError) Unwrap() error { return e.Err }

// Flusher is implemented by backends that can empty the whole kernel
// table, others' services included (ipvs: keepalived's lvs_flush and
// lvs_flush_on_stop).
type Flusher interface {
	Flush(ctx context.Context) error
}
