package vrrp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// IPv6HeaderLen is the length of the fixed IPv6 header.
const IPv6HeaderLen = 40

// IPv6Header holds the IPv6 header fields VRRP cares about.
type IPv6Header struct {
	TrafficClass uint8
	HopLimit     uint8
	NextHeader   uint8
	Src, Dst     netip.Addr
}

// ParseIPv6 splits an IPv6 packet into its header and payload. A raw IPv6
// socket never delivers the header: the host's socket rebuilds it from
// what the kernel reports (source, destination, hop limit) so that both
// families go through the same receive checks. The payload is bounded by
// Payload Length and shares b's memory with its capacity capped.
// Extension headers are not walked (the kernel strips them before a raw
// socket of protocol 112 sees the packet): a Next Header other than VRRP
// or AH comes back as it is, for the caller to ignore. Every error is a
// *DropError.
func ParseIPv6(b []byte) (IPv6Header, []byte, error) {
	if len(b) < IPv6HeaderLen {
		return IPv6Header{}, nil, dropf(DropTooShort, "%d bytes, shorter than an IPv6 header", len(b))
	}
	if v := b[0] >> 4; v != 6 {
		return IPv6Header{}, nil, dropf(DropAddrFamily, "IP version %d is not 6", v)
	}
	n := int(binary.BigEndian.Uint16(b[4:]))
	if len(b) < IPv6HeaderLen+n {
		return IPv6Header{}, nil, dropf(DropTooShort, "%d bytes, IPv6 payload length says %d", len(b)-IPv6HeaderLen, n)
	}
	h := IPv6Header{
		TrafficClass: b[0]<<4 | b[1]>>4,
		NextHeader:   b[6],
		HopLimit:     b[7],
		Src:          netip.AddrFrom16([16]byte(b[8:24])),
		Dst:          netip.AddrFrom16([16]byte(b[24:40])),
	}
	end := IPv6HeaderLen + n
	return h, b[IPv6HeaderLen:end:end], nil
}

// AppendIPv6 appends a 40-byte IPv6 header (version 6, h's traffic class,
// next header and hop limit, flow label 0) followed by payload to b. It
// panics if the payload exceeds 65535 bytes or an address is not IPv6.
func AppendIPv6(b []byte, h IPv6Header, payload []byte) []byte {
	if len(payload) > 0xffff {
		panic(fmt.Sprintf("vrrp: AppendIPv6: %d-byte payload does not fit without a jumbogram", len(payload)))
	}
	if !h.Src.Is6() || !h.Dst.Is6() {
		panic(fmt.Sprintf("vrrp: AppendIPv6: %v -> %v is not IPv6", h.Src, h.Dst))
	}
	b = PutIPv6Header(b, h, len(payload))
	return append(b, payload...)
}

// PutIPv6Header appends the 40-byte IPv6 header of a packet of n payload
// bytes to b, allocating nothing when b has room.
func PutIPv6Header(b []byte, h IPv6Header, n int) []byte {
	var hdr [IPv6HeaderLen]byte
	hdr[0] = 6<<4 | h.TrafficClass>>4
	hdr[1] = h.TrafficClass << 4
	binary.BigEndian.PutUint16(hdr[4:], uint16(n))
	hdr[6] = h.NextHeader
	hdr[7] = h.HopLimit
	s, d := h.Src.As16(), h.Dst.As16()
	copy(hdr[8:24], s[:])
	copy(hdr[24:40], d[:])
	return append(b, hdr[:]...)
}

// ipHeader is what the receive path reads of either family's header.
type ipHeader struct {
	ttl, protocol uint8 // TTL or hop limit; protocol or next header
	src, dst      netip.Addr
}

// parseIP splits an IPv4 or IPv6 packet (by its version nibble).
func parseIP(b []byte) (ipHeader, []byte, error) {
	if len(b) > 0 && b[0]>>4 == 6 {
		h, p, err := ParseIPv6(b)
		return ipHeader{h.HopLimit, h.NextHeader, h.Src, h.Dst}, p, err
	}
	h, p, err := ParseIPv4(b)
	return ipHeader{h.TTL, h.Protocol, h.Src, h.Dst}, p, err
}
