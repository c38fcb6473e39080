package vrrp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// IPv4HeaderLen is the length of an IPv4 header without options.
const IPv4HeaderLen = 20

// TOSInternetControl is the TOS byte VRRP senders use (IP precedence 6,
// "internetwork control"); keepalived sends it.
const TOSInternetControl = 0xc0

// IPv4Header holds the IPv4 header fields VRRP cares about.
type IPv4Header struct {
	TOS, TTL, Protocol uint8
	ID                 uint16
	Src, Dst           netip.Addr
}

// ParseIPv4 splits an IPv4 packet, as a Linux raw IPv4 socket delivers it,
// into its header and payload. The payload is bounded by Total Length (taken
// in network byte order, as Linux delivers it) and shares b's memory, with
// its capacity capped so appending to it cannot overwrite b. Options
// (IHL > 5) are skipped; the header checksum is not verified (the kernel
// already has). Every error is a *DropError: DropTooShort for a truncated
// packet, DropAddrFamily for a version other than 4 or an inconsistent IHL
// or Total Length.
func ParseIPv4(b []byte) (IPv4Header, []byte, error) {
	if len(b) < IPv4HeaderLen {
		return IPv4Header{}, nil, dropf(DropTooShort, "%d bytes, shorter than an IPv4 header", len(b))
	}
	if v := b[0] >> 4; v != 4 {
		return IPv4Header{}, nil, dropf(DropAddrFamily, "IP version %d is not 4", v)
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < IPv4HeaderLen {
		return IPv4Header{}, nil, dropf(DropAddrFamily, "IPv4 header length %d is shorter than %d", ihl, IPv4HeaderLen)
	}
	if len(b) < ihl {
		return IPv4Header{}, nil, dropf(DropTooShort, "%d bytes, IPv4 header length says %d", len(b), ihl)
	}
	total := int(binary.BigEndian.Uint16(b[2:]))
	if total < ihl {
		return IPv4Header{}, nil, dropf(DropAddrFamily, "IPv4 total length %d is shorter than the header length %d", total, ihl)
	}
	if len(b) < total {
		return IPv4Header{}, nil, dropf(DropTooShort, "%d bytes, IPv4 total length says %d", len(b), total)
	}
	h := IPv4Header{
		TOS:      b[1],
		ID:       binary.BigEndian.Uint16(b[4:]),
		TTL:      b[8],
		Protocol: b[9],
		Src:      netip.AddrFrom4([4]byte(b[12:16])),
		Dst:      netip.AddrFrom4([4]byte(b[16:20])),
	}
	return h, b[ihl:total:total], nil
}

// AppendIPv4 appends a 20-byte IPv4 header (version 4, IHL 5, h's TOS, ID,
// TTL and Protocol, no fragmentation flags, header checksum computed)
// followed by payload to b. A Src or Dst that is not an IPv4 (or
// IPv4-mapped) address is written as 0.0.0.0; with IP_HDRINCL Linux fills in
// a zero source address. It panics if the packet would exceed 65535 bytes.
func AppendIPv4(b []byte, h IPv4Header, payload []byte) []byte {
	total := IPv4HeaderLen + len(payload)
	if total > 0xffff {
		panic(fmt.Sprintf("vrrp: AppendIPv4: %d-byte payload does not fit in an IPv4 packet", len(payload)))
	}
	start := len(b)
	b = append(b, make([]byte, IPv4HeaderLen)...)
	hdr := b[start:]
	hdr[0] = 4<<4 | IPv4HeaderLen/4
	hdr[1] = h.TOS
	binary.BigEndian.PutUint16(hdr[2:], uint16(total))
	binary.BigEndian.PutUint16(hdr[4:], h.ID)
	// hdr[6:8]: flags and fragment offset stay 0.
	hdr[8] = h.TTL
	hdr[9] = h.Protocol
	putAddr4(hdr[12:16], h.Src)
	putAddr4(hdr[16:20], h.Dst)
	binary.BigEndian.PutUint16(hdr[10:], Checksum(hdr))
	return append(b, payload...)
}

func putAddr4(dst []byte, a netip.Addr) {
	if a.Is4() || a.Is4In6() {
		a4 := a.As4()
		copy(dst, a4[:])
	}
}
