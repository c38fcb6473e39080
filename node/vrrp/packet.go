package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Sizes of the parts of a VRRP message.
const (
	HeaderLen   = 8   // version/type, VRID, priority, count, auth type or rsvd+interval, checksum
	AuthDataLen = 8   // v2 only: authentication data after the addresses
	MaxAddrs    = 255 // the count field is one byte
)

// ErrInvalidAdvert is wrapped by every error Marshal and AppendMarshal return:
// the Advert (or the addresses passed with it) cannot be put on the wire.
var ErrInvalidAdvert = errors.New("vrrp: invalid advert")

type advertError struct{ msg string }

func (e *advertError) Error() string { return "vrrp: " + e.msg }
func (e *advertError) Unwrap() error { return ErrInvalidAdvert }

func invalidf(format string, args ...any) error {
	return &advertError{msg: fmt.Sprintf(format, args...)}
}

func dropf(r DropReason, format string, args ...any) *DropError {
	return &DropError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// Marshal encodes a as a VRRP message (without the IP header) sent from src
// to dst. See AppendMarshal.
func (a *Advert) Marshal(src, dst netip.Addr, mode ChecksumMode) ([]byte, error) {
	return a.AppendMarshal(make([]byte, 0, a.wireLen(!src.Unmap().Is6())), src, dst, mode)
}

// AppendMarshal appends the VRRP message for a, sent from src to dst, to b
// and returns the extended slice. It does not allocate when b has room.
//
// The address family follows src (an IPv4-mapped IPv6 src counts as IPv4):
// every address in a.Addrs and dst must be of the same family, and version 2
// needs IPv4. The v2 checksum covers the message only; the v3 checksum also
// covers the IPv4/IPv6 pseudo-header, except for IPv4 with ChecksumV2Compat.
// Zones of IPv6 addresses are not encoded. On error b is returned unchanged
// and the error wraps ErrInvalidAdvert.
func (a *Advert) AppendMarshal(b []byte, src, dst netip.Addr, mode ChecksumMode) ([]byte, error) {
	src, dst = src.Unmap(), dst.Unmap()
	field, err := a.check(src, dst)
	if err != nil {
		return b, err
	}
	is4 := src.Is4()
	start := len(b)
	n := a.wireLen(is4)
	b = slices.Grow(b, n)[:start+n]
	m := b[start:]
	m[0] = byte(a.Version<<4 | TypeAdvertisement)
	m[1] = a.VRID
	m[2] = a.Priority
	m[3] = byte(len(a.Addrs))
	if a.Version == 2 {
		m[4] = a.AuthType
		m[5] = byte(field)
	} else {
		binary.BigEndian.PutUint16(m[4:], field) // rsvd nibble is 0
	}
	m[6], m[7] = 0, 0
	off := HeaderLen
	for _, ad := range a.Addrs {
		if is4 {
			a4 := ad.As4()
			off += copy(m[off:], a4[:])
		} else {
			a16 := ad.As16()
			off += copy(m[off:], a16[:])
		}
	}
	if a.Version == 2 {
		copy(m[off:], a.AuthData[:])
	}
	var s uint64
	if usesPseudoHeader(a.Version, is4, mode) {
		s = pseudoHeaderSum(src, dst, n)
	}
	binary.BigEndian.PutUint16(m[6:], ^fold(sum(s, m)))
	return b, nil
}

// wireLen is the length of the message for a's addresses in the given family.
func (a *Advert) wireLen(is4 bool) int {
	size := 16
	if is4 {
		size = 4
	}
	n := HeaderLen + size*len(a.Addrs)
	if a.Version == 2 {
		n += AuthDataLen
	}
	return n
}

// check validates a for sending from src to dst (both already unmapped) and
// returns the 16-bit field carrying the interval: whole seconds for v2 (in the
// low byte), centiseconds for v3.
func (a *Advert) check(src, dst netip.Addr) (uint16, error) {
	if a.Version != 2 && a.Version != 3 {
		return 0, invalidf("advert version %d is not 2 or 3", a.Version)
	}
	if a.VRID == 0 {
		return 0, invalidf("vrid 0 out of range 1..255")
	}
	if !src.IsValid() || src.IsUnspecified() {
		return 0, invalidf("source address %v is not a usable IPv4 or IPv6 address", src)
	}
	if !dst.IsValid() || dst.Is4() != src.Is4() {
		return 0, invalidf("destination address %v is not of the same family as the source %v", dst, src)
	}
	if a.Version == 2 && !src.Is4() {
		return 0, invalidf("v2 advert needs an IPv4 source, got %v", src)
	}
	if len(a.Addrs) > MaxAddrs {
		return 0, invalidf("advert has %d addresses, at most %d fit", len(a.Addrs), MaxAddrs)
	}
	for _, ad := range a.Addrs {
		if src.Is4() && !ad.Is4() {
			return 0, invalidf("address %v is not IPv4 like the source %v", ad, src)
		}
		if src.Is6() && !ad.Is6() {
			return 0, invalidf("address %v is not IPv6 like the source %v", ad, src)
		}
	}
	if a.Version == 2 {
		if a.Interval%time.Second != 0 {
			return 0, invalidf("v2 advert interval %v is not a whole number of seconds", a.Interval)
		}
		if a.Interval < MinIntervalV2 || a.Interval > MaxIntervalV2 {
			return 0, invalidf("v2 advert interval %v out of range %v..%v", a.Interval, MinIntervalV2, MaxIntervalV2)
		}
		return uint16(a.Interval / time.Second), nil
	}
	if a.AuthType != AuthNone || a.AuthData != [AuthDataLen]byte{} {
		return 0, invalidf("v3 advert carries v2 authentication (auth type %d): VRRPv3 has none", a.AuthType)
	}
	if a.Interval%MinIntervalV3 != 0 {
		return 0, invalidf("v3 advert interval %v is not a multiple of 10ms", a.Interval)
	}
	if a.Interval < MinIntervalV3 || a.Interval > MaxIntervalV3 {
		return 0, invalidf("v3 advert interval %v out of range %v..%v", a.Interval, MinIntervalV3, MaxIntervalV3)
	}
	return uint16(a.Interval / MinIntervalV3), nil
}

// ParseAdvert decodes the VRRP message b (the IP payload) received from src
// for dst and applies the receive checks that concern the message itself:
// address family, length, version, type and checksum (see AppendMarshal for
// the checksum rules of mode). It also drops VRID 0 (DropUnknownVRID: no
// instance can have it) and an advertisement interval of 0 (DropInterval).
// Bytes after the declared length are ignored. Every error is a *DropError.
// The result does not refer to b.
func ParseAdvert(b []byte, src, dst netip.Addr, mode ChecksumMode) (Advert, error) {
	var a Advert
	err := a.Unmarshal(b, src, dst, mode)
	return a, err
}

// Unmarshal is ParseAdvert decoding into a, reusing the capacity of a.Addrs so
// that a receive loop does not allocate: the previous contents of a.Addrs are
// overwritten. On error a is reset (keeping that capacity).
func (a *Advert) Unmarshal(b []byte, src, dst netip.Addr, mode ChecksumMode) error {
	*a = Advert{Addrs: a.Addrs[:0]}
	src, dst = src.Unmap(), dst.Unmap()
	if !src.IsValid() || src.IsUnspecified() {
		return dropf(DropAddrFamily, "source address %v is not a usable IPv4 or IPv6 address", src)
	}
	if !dst.IsValid() || dst.Is4() != src.Is4() {
		return dropf(DropAddrFamily, "destination address %v is not of the same family as the source %v", dst, src)
	}
	if len(b) < HeaderLen {
		return dropf(DropTooShort, "%d bytes, shorter than the %d-byte header", len(b), HeaderLen)
	}
	version := int(b[0] >> 4)
	if version != 2 && version != 3 {
		return dropf(DropVersion, "version %d is not 2 or 3", version)
	}
	is4 := src.Is4()
	if version == 2 && !is4 {
		return dropf(DropVersion, "v2 advert from IPv6 source %v", src)
	}
	if t := b[0] & 0x0f; t != TypeAdvertisement {
		return dropf(DropType, "type %d is not %d (advertisement)", t, TypeAdvertisement)
	}
	count := int(b[3])
	size := 4
	if !is4 {
		size = 16
	}
	n := HeaderLen + count*size
	if version == 2 {
		n += AuthDataLen
	}
	if len(b) < n {
		return dropf(DropTooShort, "%d bytes, v%d advert with %d addresses needs %d", len(b), version, count, n)
	}
	m := b[:n]
	var s uint64
	if usesPseudoHeader(version, is4, mode) {
		s = pseudoHeaderSum(src, dst, n)
	}
	if fold(sum(s, m)) != 0xffff {
		return dropf(DropChecksum, "v%d checksum %#04x does not match", version, binary.BigEndian.Uint16(m[6:]))
	}
	if m[1] == 0 {
		return dropf(DropUnknownVRID, "vrid 0 is reserved")
	}
	var interval time.Duration
	if version == 2 {
		interval = time.Duration(m[5]) * time.Second
	} else {
		interval = time.Duration(binary.BigEndian.Uint16(m[4:])&0x0fff) * MinIntervalV3
	}
	if interval == 0 {
		return dropf(DropInterval, "advertisement interval 0")
	}

	addrs := a.Addrs
	if cap(addrs) < count {
		addrs = make([]netip.Addr, 0, count)
	}
	off := HeaderLen
	for range count {
		if is4 {
			addrs = append(addrs, netip.AddrFrom4([4]byte(m[off:off+4])))
		} else {
			addrs = append(addrs, netip.AddrFrom16([16]byte(m[off:off+16])))
		}
		off += size
	}
	*a = Advert{
		Version:  version,
		VRID:     m[1],
		Priority: m[2],
		Interval: interval,
		Addrs:    addrs,
	}
	if version == 2 {
		a.AuthType = m[4]
		a.AuthData = [AuthDataLen]byte(m[off : off+AuthDataLen])
	}
	return nil
}

// usesPseudoHeader reports whether the checksum of a message covers the
// IPv4/IPv6 pseudo-header.
func usesPseudoHeader(version int, is4 bool, mode ChecksumMode) bool {
	return version == 3 && !(is4 && mode == ChecksumV2Compat)
}

// pseudoHeaderSum is the one's complement sum (unfolded) of the pseudo-header
// for a VRRP message of length n. IPv4 (RFC 768 style): src, dst, zero,
// protocol, 16-bit length. IPv6 (RFC 8200 8.1): src, dst, 32-bit length, 24
// zero bits, next header. Both sum to the same words.
func pseudoHeaderSum(src, dst netip.Addr, n int) uint64 {
	s := uint64(Protocol) + uint64(n)
	if src.Is4() {
		a, b := src.As4(), dst.As4()
		return sum(sum(s, a[:]), b[:])
	}
	a, b := src.As16(), dst.As16()
	return sum(sum(s, a[:]), b[:])
}

// Checksum returns the internet checksum (RFC 1071) of b: the one's
// complement of the one's complement sum of its 16-bit big-endian words, an
// odd last byte padded with zero. A buffer that includes a correct checksum
// field yields 0.
func Checksum(b []byte) uint16 {
	return ^fold(sum(0, b))
}

// sum adds the 16-bit big-endian words of b to acc without folding. b is
// consumed four bytes at a time: a 32-bit word is congruent to the sum of its
// two halves modulo 0xffff. acc stays far from overflow for any b a uint64
// can index sensibly (2^32 words).
func sum(acc uint64, b []byte) uint64 {
	for len(b) >= 8 {
		acc += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	if len(b) >= 4 {
		acc += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	return acc
}

// fold reduces a one's complement sum to 16 bits.
func fold(acc uint64) uint16 {
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}
