package vrrp

import (
	"net/netip"
	"time"
)

// Protocol is the IP protocol number of VRRP.
const Protocol = 112

// TypeAdvertisement is the only VRRP message type.
const TypeAdvertisement = 1

// Priorities with a meaning of their own.
const (
	PriorityStop  = 0   // the master is leaving
	PriorityOwner = 255 // the router owns the virtual addresses
)

// Authentication types of VRRPv2 (RFC 3768 5.3.6).
const (
	AuthNone   = 0
	AuthSimple = 1 // PASS: cleartext password in the auth data
	AuthAH     = 2 // IPsec AH (keepalived's): see ah.go
)

// Default multicast groups.
var (
	GroupV4 = netip.MustParseAddr("224.0.0.18")
	GroupV6 = netip.MustParseAddr("ff02::12")
)

// Advert is a decoded VRRP advertisement, version 2 or 3.
type Advert struct {
	Version  int // 2 or 3
	VRID     uint8
	Priority uint8
	// Interval is the advertisement interval carried by the packet: whole
	// seconds in v2, centiseconds (Max Adver Int) in v3.
	Interval time.Duration
	Addrs    []netip.Addr
	// v2 only.
	AuthType uint8
	AuthData [8]byte
}

// ChecksumMode selects how a v3 IPv4 checksum is computed.
type ChecksumMode int

const (
	// ChecksumRFC includes the IPv4/IPv6 pseudo-header (RFC 5798), always
	// used for v2-over-IPv4 semantics as RFC 3768 defines them.
	ChecksumRFC ChecksumMode = iota
	// ChecksumV2Compat computes a v3 IPv4 checksum over the VRRP message
	// only, like some vendors (keepalived's v3_checksum_as_v2).
	ChecksumV2Compat
)
