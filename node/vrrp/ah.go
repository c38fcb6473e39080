package vrrp

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync/atomic"
)

// IPsec AH authentication of VRRPv2 adverts as keepalived implements it
// (auth_type AH; RFC 2338 had it, RFC 3768 removed it): the advert travels
// in an IPv4 packet of protocol 51 whose 24-byte AH header carries
//
//   - next header 112 (VRRP), payload length 4 (six 32-bit words, minus 2);
//   - SPI: the sender's IPv4 address;
//   - a sequence number, one more with every advert a node sends, and
//     taken over from the adverts it receives (one counter per instance),
//     so that a new master goes on from its predecessor's;
//   - the ICV: HMAC-MD5 keyed with the 8 bytes of the password (zero
//     padded), truncated to 96 bits, over the IP header with its mutable
//     fields zeroed (TOS, fragment offset, checksum, and the TTL for
//     unicast adverts), the AH header with a zero ICV, and the advert.
//
// The advert itself says auth type 2 with zero authentication data. A
// receiver drops an advert whose ICV or SPI is wrong, or whose sequence
// number is not above the last one it saw (a replay). keepalived's
// vrrp.c: vrrp_build_ipsecah, vrrp_update_pkt, vrrp_in_chk_ipsecah.

// ProtocolAH is the IP protocol number of IPsec AH.
const ProtocolAH = 51

// AHLen is the length of the AH header keepalived sends.
const AHLen = 24

// ahICVLen is the ICV's length: HMAC-MD5 truncated to 96 bits.
const ahICVLen = 12

// AH is one instance's AH authentication: its key and sequence number.
// Its methods are safe for concurrent use.
type AH struct {
	key     [AuthDataLen]byte
	unicast bool // the TTL is not covered (keepalived's rule for unicast)
	seq     atomic.Uint32
}

// NewAH returns the AH authentication of an instance with password key
// (AuthData: at most 8 bytes, zero padded), unicast or multicast.
func NewAH(key [AuthDataLen]byte, unicast bool) *AH {
	return &AH{key: key, unicast: unicast}
}

// Seq is the last sequence number sent or accepted.
func (a *AH) Seq() uint32 { return a.seq.Load() }

// next is the sequence number of the next advert sent.
func (a *AH) next() uint32 {
	for {
		s := a.seq.Load()
		n := s + 1
		if s >= 0xfffffffd { // keepalived stops there (136 years at 1 s)
			n = s
		}
		if a.seq.CompareAndSwap(s, n) {
			return n
		}
	}
}

// accept takes seq if it is above the last one; false for a replay.
func (a *AH) accept(seq uint32) bool {
	for {
		s := a.seq.Load()
		if seq <= s {
			return false
		}
		if a.seq.CompareAndSwap(s, seq) {
			return true
		}
	}
}

// Seal appends to b the IPv4 packet of the VRRPv2 advert msg with its AH
// header: h's TOS, ID, TTL and addresses (its Protocol is set to 51; an ID
// of 0 would be replaced by the kernel after the ICV is made, so it must
// not be 0).
func (a *AH) Seal(b []byte, h IPv4Header, msg []byte) []byte {
	h.Protocol = ProtocolAH
	start := len(b)
	var ah [AHLen]byte
	ah[0] = Protocol
	ah[1] = AHLen/4 - 2
	src := h.Src.As4()
	copy(ah[4:8], src[:])
	binary.BigEndian.PutUint32(ah[8:12], a.next())
	body := make([]byte, 0, AHLen+len(msg))
	body = append(append(body, ah[:]...), msg...)
	b = AppendIPv4(b, h, body)
	pkt := b[start:]
	icv := a.icv(pkt, IPv4HeaderLen)
	copy(pkt[IPv4HeaderLen+12:], icv[:ahICVLen])
	return b
}

// icv computes the ICV of pkt, an IPv4 packet with an ihl-byte header and
// an AH header after it, as if its mutable fields and ICV were zero.
func (a *AH) icv(pkt []byte, ihl int) [md5.Size]byte {
	hdr := make([]byte, ihl+AHLen)
	copy(hdr, pkt[:ihl+AHLen])
	hdr[1] = 0            // TOS
	hdr[6], hdr[7] = 0, 0 // flags and fragment offset
	hdr[10], hdr[11] = 0, 0
	if a.unicast {
		hdr[8] = 0 // TTL
	}
	clear(hdr[ihl+12 : ihl+AHLen])
	m := hmac.New(md5.New, a.key[:])
	m.Write(hdr)
	m.Write(pkt[ihl+AHLen:])
	var out [md5.Size]byte
	m.Sum(out[:0])
	return out
}

// SplitAH returns the VRRP message of an AH payload (what follows the IP
// header of a protocol-51 packet), or ok false when it is not one: too
// short, or AH for another protocol (not VRRP's business: ignored).
func SplitAH(payload []byte) (msg []byte, ok bool) {
	if len(payload) < AHLen || payload[0] != Protocol || int(payload[1]) != AHLen/4-2 {
		return nil, false
	}
	return payload[AHLen:], true
}

// Open checks the AH header of pkt, a whole IPv4 packet from src of
// protocol 51 carrying a VRRP advert: its ICV, its SPI (src) and its
// sequence number, which becomes the last one seen. The error says why it
// was refused (a *DropError: DropAuthFailure).
func (a *AH) Open(pkt []byte, src netip.Addr) error {
	ihl := int(pkt[0]&0x0f) * 4
	if len(pkt) < ihl+AHLen {
		return dropf(DropTooShort, "%d bytes, too short for an AH header", len(pkt))
	}
	ah := pkt[ihl : ihl+AHLen]
	icv := a.icv(pkt, ihl)
	if subtle.ConstantTimeCompare(icv[:ahICVLen], ah[12:AHLen]) != 1 {
		return dropf(DropAuthFailure, "IPsec AH: wrong ICV (another password, or the packet was changed)")
	}
	if spi := [4]byte(ah[4:8]); spi != src.As4() {
		return dropf(DropAuthFailure, "IPsec AH: SPI %v is not the source address %s", netip.AddrFrom4(spi), src)
	}
	if seq := binary.BigEndian.Uint32(ah[8:12]); !a.accept(seq) {
		return dropf(DropAuthFailure, "IPsec AH: sequence number %d already seen (last %d): a replay, or a restarted peer", seq, a.Seq())
	}
	return nil
}

// String names the authentication for messages.
func (a *AH) String() string { return fmt.Sprintf("IPsec AH (seq %d)", a.Seq()) }
