// Package lvs programs virtual servers into the kernel. A pure diff turns
// the desired table and the programmed one into a plan that touches only
// what changed; a Backend (IPVS or nftables) carries the plan out.
package lvs

import (
	"context"
	"fmt"
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
var Schedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh"}

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

// Dest is a real server as programmed: weight 0 takes no new
// connections.
type Dest struct {
	Addr   netip.AddrPort
	Weight int
}

// VirtualServer is a service and its destinations, by address.
type VirtualServer struct {
	Service
	Dests map[netip.AddrPort]int // weight by real-server address
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
		return fmt.Sprintf("%s %s %s weight %d", o.Kind, o.Service.Key, o.Dest.Addr, o.Dest.Weight)
	}
	return fmt.Sprintf("%s %s", o.Kind, o.Service.Key)
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
// (nftables: IPv4 with a port). SupportsDests reports why vs's
// destinations cannot be programmed, in words that tell the user what to
// change.
type DestChecker interface {
	SupportsDests(vs *VirtualServer) error
}
