package vrrp

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	srcV4 = netip.MustParseAddr("10.0.0.1")
	srcV6 = netip.MustParseAddr("fe80::1")
)

// unhex decodes hex text, ignoring whitespace and lines starting with '#'.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	var clean strings.Builder
	for line := range strings.Lines(s) {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		clean.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(clean.String())
	if err != nil {
		t.Fatalf("bad hex: %v", err)
	}
	return b
}

func readHex(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return unhex(t, string(data))
}

// refChecksum is a deliberately naive RFC 1071 checksum, independent of the
// package's: add 16-bit words one at a time, carry around at every step.
func refChecksum(parts ...[]byte) uint16 {
	var all []byte
	for _, p := range parts {
		all = append(all, p...)
	}
	if len(all)%2 == 1 {
		all = append(all, 0)
	}
	var s uint32
	for i := 0; i < len(all); i += 2 {
		s += uint32(all[i])<<8 | uint32(all[i+1])
		if s > 0xffff {
			s -= 0xffff
		}
	}
	return ^uint16(s)
}

// refPseudoHeader builds the pseudo-header byte by byte as the RFCs draw it.
func refPseudoHeader(src, dst netip.Addr, n int) []byte {
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		return append(append(append([]byte{}, s[:]...), d[:]...), 0, Protocol, byte(n>>8), byte(n))
	}
	s, d := src.As16(), dst.As16()
	return append(append(append([]byte{}, s[:]...), d[:]...), 0, 0, byte(n>>8), byte(n), 0, 0, 0, Protocol)
}

// refFixChecksum rewrites the checksum of the VRRP message at the start of m
// with the reference implementation. It reports false when m is too broken
// to know which bytes the checksum covers.
func refFixChecksum(m []byte, src, dst netip.Addr, mode ChecksumMode) bool {
	if len(m) < 8 {
		return false
	}
	v := m[0] >> 4
	size := 4
	if src.Is6() {
		size = 16
	}
	n := 8 + int(m[3])*size
	if v == 2 {
		n += 8
	}
	if (v != 2 && v != 3) || n > len(m) {
		return false
	}
	m[6], m[7] = 0, 0
	var c uint16
	if v == 3 && !(src.Is4() && mode == ChecksumV2Compat) {
		c = refChecksum(refPseudoHeader(src, dst, n), m[:n])
	} else {
		c = refChecksum(m[:n])
	}
	binary.BigEndian.PutUint16(m[6:], c)
	return true
}

func advertEqual(a, b Advert) bool {
	return a.Version == b.Version && a.VRID == b.VRID && a.Priority == b.Priority &&
		a.Interval == b.Interval && slices.Equal(a.Addrs, b.Addrs) &&
		a.AuthType == b.AuthType && a.AuthData == b.AuthData
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func TestChecksum(t *testing.T) {
	// RFC 1071 section 3 example: the sum of these words is ddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := Checksum(b); got != ^uint16(0xddf2) {
		t.Errorf("Checksum(RFC 1071 example) = %#04x, want %#04x", got, ^uint16(0xddf2))
	}
	// Every length 0..40 (odd ones padded) against the reference.
	for n := 0; n <= 40; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(0xff - i*7)
		}
		if got, want := Checksum(b), refChecksum(b); got != want {
			t.Errorf("Checksum(%d bytes) = %#04x, want %#04x", n, got, want)
		}
	}
}

// goldenV2 is a VRRPv2 PASS advert. Checksum by hand, 16-bit words:
//
//	21 0a | c8 01 | 01 01 | 00 00 (checksum) | c0 a8 00 01 | "haa\0\0\0\0\0"
//	210a + c801 + 0101 + 0000 + c0a8 + 0001 + 6861 + 6100 + 0000 + 0000 = 0x27416
//	fold: 0x7416 + 0x2 = 0x7418; checksum = ^0x7418 = 0x8be7
var goldenV2 = struct {
	advert Advert
	hex    string
}{
	Advert{
		Version: 2, VRID: 10, Priority: 200, Interval: time.Second,
		Addrs:    addrs("192.168.0.1"),
		AuthType: AuthSimple, AuthData: [8]byte{'h', 'a', 'a'},
	},
	"21 0a c8 01 01 01 8b e7 c0 a8 00 01 68 61 61 00 00 00 00 00",
}

// goldenV3 is a VRRPv3 IPv4 advert from 10.0.0.1 to 224.0.0.18, 100 ms
// (10 centiseconds), two addresses. RFC 5798 checksum by hand:
//
//	pseudo-header: 0a00 + 0001 + e000 + 0012 + 0070 (zero, protocol 112) + 0010 (length 16)
//	message:       3107 + 6402 + 000a + 0000 + 0a00 + 0064 + 0a00 + 0065
//	sum = 0x1946f; fold: 0x946f + 0x1 = 0x9470; checksum = ^0x9470 = 0x6b8f
//
// Over the message only (ChecksumV2Compat): sum 0xa9dc, checksum 0x5623.
var goldenV3 = struct {
	advert         Advert
	hex, compatHex string
}{
	Advert{Version: 3, VRID: 7, Priority: 100, Interval: 100 * time.Millisecond, Addrs: addrs("10.0.0.100", "10.0.0.101")},
	"31 07 64 02 00 0a 6b 8f 0a 00 00 64 0a 00 00 65",
	"31 07 64 02 00 0a 56 23 0a 00 00 64 0a 00 00 65",
}

func TestMarshalGolden(t *testing.T) {
	tests := []struct {
		name   string
		advert Advert
		mode   ChecksumMode
		want   string
	}{
		{"v2 PASS", goldenV2.advert, ChecksumRFC, goldenV2.hex},
		{"v2 ignores compat mode", goldenV2.advert, ChecksumV2Compat, goldenV2.hex},
		{"v3 IPv4 RFC", goldenV3.advert, ChecksumRFC, goldenV3.hex},
		{"v3 IPv4 v2-compat", goldenV3.advert, ChecksumV2Compat, goldenV3.compatHex},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := unhex(t, tt.want)
			got, err := tt.advert.Marshal(srcV4, GroupV4, tt.mode)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Marshal =\n%x\nwant\n%x", got, want)
			}
			// The hand-computed checksum agrees with the reference.
			pseudo := []byte(nil)
			if tt.advert.Version == 3 && tt.mode == ChecksumRFC {
				pseudo = refPseudoHeader(srcV4, GroupV4, len(want))
			}
			if c := refChecksum(pseudo, want); c != 0 {
				t.Errorf("reference checksum over the golden bytes = %#04x, want 0", c)
			}
			a, err := ParseAdvert(want, srcV4, GroupV4, tt.mode)
			if err != nil {
				t.Fatal(err)
			}
			if !advertEqual(a, tt.advert) {
				t.Errorf("ParseAdvert = %+v, want %+v", a, tt.advert)
			}
		})
	}
}

func TestMarshalV3IPv6(t *testing.T) {
	a := Advert{Version: 3, VRID: 9, Priority: 254, Interval: time.Second, Addrs: addrs("fe80::100", "2001:db8::100")}
	for _, mode := range []ChecksumMode{ChecksumRFC, ChecksumV2Compat} {
		got, err := a.Marshal(srcV6, GroupV6, mode)
		if err != nil {
			t.Fatal(err)
		}
		want := unhex(t, `31 09 fe 02 00 64 00 00
			fe 80 00 00 00 00 00 00 00 00 00 00 00 00 01 00
			20 01 0d b8 00 00 00 00 00 00 00 00 00 00 01 00`)
		// IPv6 always uses the pseudo-header, whatever the mode.
		binary.BigEndian.PutUint16(want[6:], refChecksum(refPseudoHeader(srcV6, GroupV6, len(want)), want))
		if !bytes.Equal(got, want) {
			t.Fatalf("mode %d: Marshal =\n%x\nwant\n%x", mode, got, want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	many := make([]netip.Addr, MaxAddrs)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
	}
	tests := []struct {
		name     string
		advert   Advert
		src, dst netip.Addr
	}{
		{"v2 no addrs", Advert{Version: 2, VRID: 1, Priority: 100, Interval: time.Second}, srcV4, GroupV4},
		{"v2 max interval owner", Advert{Version: 2, VRID: 255, Priority: 255, Interval: 255 * time.Second, Addrs: addrs("10.0.0.9"), AuthType: AuthAH, AuthData: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}}, srcV4, GroupV4},
		{"v2 unicast 255 addrs", Advert{Version: 2, VRID: 3, Priority: 0, Interval: time.Second, Addrs: many}, srcV4, netip.MustParseAddr("10.0.0.2")},
		{"v3 min interval", Advert{Version: 3, VRID: 1, Priority: 1, Interval: 10 * time.Millisecond, Addrs: addrs("10.0.0.9")}, srcV4, GroupV4},
		{"v3 max interval", Advert{Version: 3, VRID: 2, Priority: 100, Interval: 40950 * time.Millisecond, Addrs: addrs("10.0.0.9")}, srcV4, GroupV4},
		{"v3 IPv4-mapped src", Advert{Version: 3, VRID: 2, Priority: 100, Interval: time.Second, Addrs: addrs("10.0.0.9")}, netip.MustParseAddr("::ffff:10.0.0.1"), GroupV4},
		{"v3 IPv6", Advert{Version: 3, VRID: 200, Priority: 100, Interval: 3 * time.Second, Addrs: addrs("fe80::1", "2001:db8::1", "::ffff:1.2.3.4")}, srcV6, GroupV6},
		{"v3 IPv6 255 addrs", Advert{Version: 3, VRID: 200, Priority: 100, Interval: 3 * time.Second, Addrs: func() []netip.Addr {
			out := make([]netip.Addr, MaxAddrs)
			for i := range out {
				out[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)})
			}
			return out
		}()}, srcV6, GroupV6},
	}
	for _, tt := range tests {
		for _, mode := range []ChecksumMode{ChecksumRFC, ChecksumV2Compat} {
			t.Run(tt.name, func(t *testing.T) {
				prefix := []byte("prefix")
				b, err := tt.advert.AppendMarshal(slices.Clone(prefix), tt.src, tt.dst, mode)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(b, prefix) {
					t.Fatalf("AppendMarshal clobbered the prefix: %q", b)
				}
				m, err := tt.advert.Marshal(tt.src, tt.dst, mode)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b[len(prefix):], m) {
					t.Fatalf("AppendMarshal and Marshal differ")
				}
				got, err := ParseAdvert(m, tt.src, tt.dst, mode)
				if err != nil {
					t.Fatal(err)
				}
				if !advertEqual(got, tt.advert) {
					t.Errorf("round trip = %+v, want %+v", got, tt.advert)
				}
			})
		}
	}
}

func TestMarshalErrors(t *testing.T) {
	v2 := func(f func(*Advert)) Advert {
		a := Advert{Version: 2, VRID: 1, Priority: 100, Interval: time.Second, Addrs: addrs("10.0.0.9")}
		f(&a)
		return a
	}
	v3 := func(f func(*Advert)) Advert {
		a := Advert{Version: 3, VRID: 1, Priority: 100, Interval: time.Second, Addrs: addrs("10.0.0.9")}
		f(&a)
		return a
	}
	tests := []struct {
		name     string
		advert   Advert
		src, dst netip.Addr
		want     string
	}{
		{"version", v2(func(a *Advert) { a.Version = 4 }), srcV4, GroupV4, "vrrp: advert version 4 is not 2 or 3"},
		{"vrid 0", v2(func(a *Advert) { a.VRID = 0 }), srcV4, GroupV4, "vrrp: vrid 0 out of range 1..255"},
		{"v2 fractional", v2(func(a *Advert) { a.Interval = 1500 * time.Millisecond }), srcV4, GroupV4, "vrrp: v2 advert interval 1.5s is not a whole number of seconds"},
		{"v2 zero", v2(func(a *Advert) { a.Interval = 0 }), srcV4, GroupV4, "vrrp: v2 advert interval 0s out of range 1s..4m15s"},
		{"v2 too long", v2(func(a *Advert) { a.Interval = 256 * time.Second }), srcV4, GroupV4, "vrrp: v2 advert interval 4m16s out of range 1s..4m15s"},
		{"v2 negative", v2(func(a *Advert) { a.Interval = -time.Second }), srcV4, GroupV4, "vrrp: v2 advert interval -1s out of range 1s..4m15s"},
		{"v2 IPv6", v2(func(a *Advert) { a.Addrs = addrs("fe80::9") }), srcV6, GroupV6, "vrrp: v2 advert needs an IPv4 source, got fe80::1"},
		{"v3 15ms", v3(func(a *Advert) { a.Interval = 15 * time.Millisecond }), srcV4, GroupV4, "vrrp: v3 advert interval 15ms is not a multiple of 10ms"},
		{"v3 zero", v3(func(a *Advert) { a.Interval = 0 }), srcV4, GroupV4, "vrrp: v3 advert interval 0s out of range 10ms..40.95s"},
		{"v3 41s", v3(func(a *Advert) { a.Interval = 41 * time.Second }), srcV4, GroupV4, "vrrp: v3 advert interval 41s out of range 10ms..40.95s"},
		{"v3 auth", v3(func(a *Advert) { a.AuthType = AuthSimple }), srcV4, GroupV4, "vrrp: v3 advert carries v2 authentication (auth type 1): VRRPv3 has none"},
		{"v3 auth data", v3(func(a *Advert) { a.AuthData[0] = 'x' }), srcV4, GroupV4, "vrrp: v3 advert carries v2 authentication (auth type 0): VRRPv3 has none"},
		{"invalid src", v3(func(*Advert) {}), netip.Addr{}, GroupV4, "vrrp: source address invalid IP is not a usable IPv4 or IPv6 address"},
		{"unspecified src", v3(func(*Advert) {}), netip.IPv4Unspecified(), GroupV4, "vrrp: source address 0.0.0.0 is not a usable IPv4 or IPv6 address"},
		{"dst family", v3(func(*Advert) {}), srcV4, GroupV6, "vrrp: destination address ff02::12 is not of the same family as the source 10.0.0.1"},
		{"invalid dst", v3(func(*Advert) {}), srcV4, netip.Addr{}, "vrrp: destination address invalid IP is not of the same family as the source 10.0.0.1"},
		{"IPv6 addr in IPv4", v3(func(a *Advert) { a.Addrs = addrs("10.0.0.9", "2001:db8::9") }), srcV4, GroupV4, "vrrp: address 2001:db8::9 is not IPv4 like the source 10.0.0.1"},
		{"IPv4 addr in IPv6", v3(func(*Advert) {}), srcV6, GroupV6, "vrrp: address 10.0.0.9 is not IPv6 like the source fe80::1"},
		{"invalid addr", v3(func(a *Advert) { a.Addrs = []netip.Addr{{}} }), srcV4, GroupV4, "vrrp: address invalid IP is not IPv4 like the source 10.0.0.1"},
		{"256 addrs", v3(func(a *Advert) { a.Addrs = make([]netip.Addr, 256) }), srcV4, GroupV4, "vrrp: advert has 256 addresses, at most 255 fit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte{1, 2, 3}
			b, err := tt.advert.AppendMarshal(prefix, tt.src, tt.dst, ChecksumRFC)
			if err == nil {
				t.Fatalf("AppendMarshal succeeded: %x", b)
			}
			if err.Error() != tt.want {
				t.Errorf("error %q, want %q", err, tt.want)
			}
			if !errors.Is(err, ErrInvalidAdvert) {
				t.Errorf("error %v does not wrap ErrInvalidAdvert", err)
			}
			if !bytes.Equal(b, prefix) {
				t.Errorf("AppendMarshal returned %x on error, want the input %x", b, prefix)
			}
		})
	}
}

func TestParseAdvertDrops(t *testing.T) {
	v2 := unhex(t, goldenV2.hex)
	v3 := unhex(t, goldenV3.hex)
	v3compat := unhex(t, goldenV3.compatHex)
	v3v6, err := (&Advert{Version: 3, VRID: 9, Priority: 100, Interval: time.Second, Addrs: addrs("fe80::100")}).Marshal(srcV6, GroupV6, ChecksumRFC)
	if err != nil {
		t.Fatal(err)
	}
	// edit copies m, applies f and, when fix is set, repairs the checksum
	// so that only the intended check can fail.
	edit := func(m []byte, fix bool, src, dst netip.Addr, f func([]byte)) []byte {
		m = slices.Clone(m)
		f(m)
		if fix && !refFixChecksum(m, src, dst, ChecksumRFC) {
			t.Fatalf("cannot fix checksum of %x", m)
		}
		return m
	}
	tests := []struct {
		name     string
		b        []byte
		src, dst netip.Addr
		mode     ChecksumMode
		want     DropReason
	}{
		{"invalid src", v3, netip.Addr{}, GroupV4, ChecksumRFC, DropAddrFamily},
		{"unspecified src", v3, netip.IPv4Unspecified(), GroupV4, ChecksumRFC, DropAddrFamily},
		{"unspecified IPv6 src", v3v6, netip.IPv6Unspecified(), GroupV6, ChecksumRFC, DropAddrFamily},
		{"dst other family", v3, srcV4, GroupV6, ChecksumRFC, DropAddrFamily},
		{"invalid dst", v3, srcV4, netip.Addr{}, ChecksumRFC, DropAddrFamily},
		{"empty", nil, srcV4, GroupV4, ChecksumRFC, DropTooShort},
		{"7 bytes", v3[:7], srcV4, GroupV4, ChecksumRFC, DropTooShort},
		{"v2 without auth data", v2[:len(v2)-1], srcV4, GroupV4, ChecksumRFC, DropTooShort},
		{"v2 count too high", edit(v2, false, srcV4, GroupV4, func(m []byte) { m[3] = 2 }), srcV4, GroupV4, ChecksumRFC, DropTooShort},
		{"v3 one address missing", v3[:12], srcV4, GroupV4, ChecksumRFC, DropTooShort},
		{"v3 IPv4 message from IPv6", v3, srcV6, GroupV6, ChecksumRFC, DropTooShort},
		{"version 0", edit(v3, false, srcV4, GroupV4, func(m []byte) { m[0] = 0x01 }), srcV4, GroupV4, ChecksumRFC, DropVersion},
		{"version 1", edit(v3, false, srcV4, GroupV4, func(m []byte) { m[0] = 0x11 }), srcV4, GroupV4, ChecksumRFC, DropVersion},
		{"version 4", edit(v3, false, srcV4, GroupV4, func(m []byte) { m[0] = 0x41 }), srcV4, GroupV4, ChecksumRFC, DropVersion},
		{"v2 from IPv6", edit(v3v6, false, srcV6, GroupV6, func(m []byte) { m[0] = 0x21 }), srcV6, GroupV6, ChecksumRFC, DropVersion},
		{"type 0", edit(v2, true, srcV4, GroupV4, func(m []byte) { m[0] = 0x20 }), srcV4, GroupV4, ChecksumRFC, DropType},
		{"type 2", edit(v3, true, srcV4, GroupV4, func(m []byte) { m[0] = 0x32 }), srcV4, GroupV4, ChecksumRFC, DropType},
		{"v2 bit flip", edit(v2, false, srcV4, GroupV4, func(m []byte) { m[11] ^= 1 }), srcV4, GroupV4, ChecksumRFC, DropChecksum},
		{"v2 auth data flip", edit(v2, false, srcV4, GroupV4, func(m []byte) { m[19] ^= 0x80 }), srcV4, GroupV4, ChecksumRFC, DropChecksum},
		{"v3 bit flip", edit(v3, false, srcV4, GroupV4, func(m []byte) { m[2] ^= 1 }), srcV4, GroupV4, ChecksumRFC, DropChecksum},
		{"v3 v2-style checksum in RFC mode", v3compat, srcV4, GroupV4, ChecksumRFC, DropChecksum},
		{"v3 RFC checksum in compat mode", v3, srcV4, GroupV4, ChecksumV2Compat, DropChecksum},
		{"v3 other src", v3, netip.MustParseAddr("10.0.0.2"), GroupV4, ChecksumRFC, DropChecksum},
		{"v3 other dst", v3, srcV4, netip.MustParseAddr("10.0.0.3"), ChecksumRFC, DropChecksum},
		{"v3 IPv6 other src", v3v6, netip.MustParseAddr("fe80::2"), GroupV6, ChecksumV2Compat, DropChecksum},
		{"v2 vrid 0", edit(v2, true, srcV4, GroupV4, func(m []byte) { m[1] = 0 }), srcV4, GroupV4, ChecksumRFC, DropUnknownVRID},
		{"v2 interval 0", edit(v2, true, srcV4, GroupV4, func(m []byte) { m[5] = 0 }), srcV4, GroupV4, ChecksumRFC, DropInterval},
		{"v3 interval 0", edit(v3, true, srcV4, GroupV4, func(m []byte) { m[4], m[5] = 0xf0, 0 }), srcV4, GroupV4, ChecksumRFC, DropInterval},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseAdvert(tt.b, tt.src, tt.dst, tt.mode)
			var de *DropError
			if !errors.As(err, &de) {
				t.Fatalf("ParseAdvert = %+v, %v; want a *DropError %v", a, err, tt.want)
			}
			if de.Reason != tt.want {
				t.Errorf("reason %v (%v), want %v", de.Reason, err, tt.want)
			}
			if de.Detail == "" {
				t.Errorf("no detail in %v", err)
			}
		})
	}
	// Every reason ParseAdvert can give is covered above.
	covered := map[DropReason]bool{}
	for _, tt := range tests {
		covered[tt.want] = true
	}
	for _, r := range []DropReason{DropAddrFamily, DropTooShort, DropVersion, DropType, DropChecksum, DropUnknownVRID, DropInterval} {
		if !covered[r] {
			t.Errorf("no test for %v", r)
		}
	}
}

func TestParseAdvertLenient(t *testing.T) {
	// Trailing bytes are ignored, reserved bits of v3 too.
	b := append(unhex(t, goldenV3.hex), 0xde, 0xad)
	b[4] |= 0xf0
	refFixChecksum(b, srcV4, GroupV4, ChecksumRFC)
	a, err := ParseAdvert(b, srcV4, GroupV4, ChecksumRFC)
	if err != nil {
		t.Fatal(err)
	}
	if !advertEqual(a, goldenV3.advert) {
		t.Errorf("got %+v, want %+v", a, goldenV3.advert)
	}
	// The result does not share memory with b.
	clear(b)
	if !advertEqual(a, goldenV3.advert) {
		t.Errorf("after clearing the input: %+v", a)
	}
}

func TestChecksumZero(t *testing.T) {
	// Choose the last auth word so that the message sums to 0xffff: its
	// checksum is then 0x0000, and 0xffff (the other ones' complement zero)
	// in the field must be accepted too.
	a := goldenV2.advert
	m, err := a.Marshal(srcV4, GroupV4, ChecksumRFC)
	if err != nil {
		t.Fatal(err)
	}
	m[6], m[7] = 0, 0
	s := ^refChecksum(m) // folded ones' sum, last auth word is 0
	w := 0xffff - s
	a.AuthData[6], a.AuthData[7] = byte(w>>8), byte(w)
	if m, err = a.Marshal(srcV4, GroupV4, ChecksumRFC); err != nil {
		t.Fatal(err)
	}
	if c := binary.BigEndian.Uint16(m[6:]); c != 0 {
		t.Fatalf("checksum %#04x, want 0", c)
	}
	for _, c := range []uint16{0x0000, 0xffff} {
		binary.BigEndian.PutUint16(m[6:], c)
		if _, err := ParseAdvert(m, srcV4, GroupV4, ChecksumRFC); err != nil {
			t.Errorf("checksum field %#04x: %v", c, err)
		}
	}
}

func TestUnmarshalReuses(t *testing.T) {
	b := unhex(t, goldenV3.hex)
	a := Advert{Addrs: make([]netip.Addr, 0, 8)}
	p := &a.Addrs[:1][0]
	if err := a.Unmarshal(b, srcV4, GroupV4, ChecksumRFC); err != nil {
		t.Fatal(err)
	}
	if &a.Addrs[0] != p {
		t.Error("Unmarshal did not reuse the Addrs capacity")
	}
	if !advertEqual(a, goldenV3.advert) {
		t.Errorf("got %+v", a)
	}
	if err := a.Unmarshal(b[:9], srcV4, GroupV4, ChecksumRFC); err == nil {
		t.Fatal("truncated advert accepted")
	}
	if a.Version != 0 || len(a.Addrs) != 0 || cap(a.Addrs) != 8 {
		t.Errorf("after an error: %+v, cap %d", a, cap(a.Addrs))
	}
}

func TestAllocations(t *testing.T) {
	b := unhex(t, goldenV3.hex)
	pkt := readHex(t, "keepalived-2.2.7-v3.hex")
	var a Advert
	buf := make([]byte, 0, 64)
	tests := []struct {
		name string
		max  float64
		fn   func()
	}{
		{"Unmarshal", 0, func() { _ = a.Unmarshal(b, srcV4, GroupV4, ChecksumRFC) }},
		{"ParseAdvert", 1, func() { _, _ = ParseAdvert(b, srcV4, GroupV4, ChecksumRFC) }},
		{"AppendMarshal", 0, func() { _, _ = goldenV3.advert.AppendMarshal(buf[:0], srcV4, GroupV4, ChecksumRFC) }},
		{"ParseIPv4", 0, func() { _, _, _ = ParseIPv4(pkt) }},
		{"AppendIPv4", 0, func() { _ = AppendIPv4(buf[:0], IPv4Header{TTL: 255, Protocol: Protocol, Src: srcV4, Dst: GroupV4}, b) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.fn); n > tt.max {
			t.Errorf("%s: %v allocations, want <= %v", tt.name, n, tt.max)
		}
	}
}

// TestKeepalivedCapture decodes adverts captured from keepalived 2.2.7 (see
// the comment at the top of each file) and re-encodes them byte for byte.
func TestKeepalivedCapture(t *testing.T) {
	tests := []struct {
		file string
		want Advert
		id   uint16
	}{
		{"keepalived-2.2.7-v2-pass.hex", Advert{
			Version: 2, VRID: 51, Priority: 150, Interval: time.Second,
			Addrs: addrs("10.77.0.100"), AuthType: AuthSimple, AuthData: [8]byte{'1', '1', '1', '1'},
		}, 1},
		{"keepalived-2.2.7-v3.hex", Advert{
			Version: 3, VRID: 52, Priority: 150, Interval: 100 * time.Millisecond,
			Addrs: addrs("10.77.0.110", "10.77.0.111"),
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			pkt := readHex(t, tt.file)
			h, payload, err := ParseIPv4(pkt)
			if err != nil {
				t.Fatal(err)
			}
			wantH := IPv4Header{
				TOS: TOSInternetControl, TTL: 255, Protocol: Protocol, ID: tt.id,
				Src: netip.MustParseAddr("10.77.0.1"), Dst: GroupV4,
			}
			if h != wantH {
				t.Errorf("IPv4 header %+v, want %+v", h, wantH)
			}
			// keepalived sets neither DF nor a fragment offset.
			if ff := binary.BigEndian.Uint16(pkt[6:]); ff != 0 {
				t.Errorf("flags/fragment offset %#04x, want 0", ff)
			}
			// keepalived's IPv4 v3 checksum is the RFC one (with the
			// pseudo-header) unless v3_checksum_as_v2 is set.
			a, err := ParseAdvert(payload, h.Src, h.Dst, ChecksumRFC)
			if err != nil {
				t.Fatal(err)
			}
			if !advertEqual(a, tt.want) {
				t.Errorf("advert %+v, want %+v", a, tt.want)
			}
			if tt.want.Version == 3 {
				if _, err := ParseAdvert(payload, h.Src, h.Dst, ChecksumV2Compat); err == nil {
					t.Error("the RFC checksum of keepalived's v3 advert passed in v2-compat mode")
				}
			}
			m, err := a.Marshal(h.Src, h.Dst, ChecksumRFC)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m, payload) {
				t.Errorf("re-marshalled VRRP message\n%x\nwant\n%x", m, payload)
			}
			// Every IP header field keepalived sets is one AppendIPv4 can
			// reproduce: the whole packet comes back identical.
			if got := AppendIPv4(nil, h, m); !bytes.Equal(got, pkt) {
				t.Errorf("AppendIPv4 =\n%x\nwant\n%x", got, pkt)
			}
		})
	}
}

// fuzzSeeds are whole IPv4 packets.
func fuzzSeeds(t testing.TB) [][]byte {
	ip := func(m string, src netip.Addr) []byte {
		return AppendIPv4(nil, IPv4Header{TOS: TOSInternetControl, TTL: 255, Protocol: Protocol, ID: 7, Src: src, Dst: GroupV4}, unhex(t, m))
	}
	v6, err := (&Advert{Version: 3, VRID: 9, Priority: 100, Interval: time.Second, Addrs: addrs("fe80::100", "2001:db8::1")}).Marshal(srcV6, GroupV6, ChecksumRFC)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{
		ip(goldenV2.hex, srcV4),
		ip(goldenV3.hex, srcV4),
		ip(goldenV3.compatHex, srcV4),
		readHex(t, "keepalived-2.2.7-v2-pass.hex"),
		readHex(t, "keepalived-2.2.7-v3.hex"),
		v6, // a bare VRRP message, for the IPv6 pass
		{},
		{0x45},
	}
}

// FuzzParsePacket feeds whole IPv4 packets through ParseIPv4 and ParseAdvert
// in both checksum modes. Nothing may panic, every error must be a
// *DropError, and whatever parses must re-encode to the same message. The
// raw input is also tried as a VRRP message between IPv6 addresses, so the
// IPv6 layout gets fuzzed too.
func FuzzParsePacket(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		for _, mode := range []ChecksumMode{ChecksumRFC, ChecksumV2Compat} {
			fuzzAdvert(t, pkt, srcV6, GroupV6, mode)
		}
		h, payload, err := ParseIPv4(pkt)
		if err != nil {
			mustDrop(t, err)
			return
		}
		if len(payload) > len(pkt) {
			t.Fatalf("payload of %d bytes from a %d-byte packet", len(payload), len(pkt))
		}
		ip := AppendIPv4(nil, h, payload)
		h2, p2, err := ParseIPv4(ip)
		if err != nil || h2 != h || !bytes.Equal(p2, payload) {
			t.Fatalf("IPv4 round trip: %+v %x %v, want %+v %x", h2, p2, err, h, payload)
		}
		for _, mode := range []ChecksumMode{ChecksumRFC, ChecksumV2Compat} {
			fuzzAdvert(t, payload, h.Src, h.Dst, mode)
		}
	})
}

// fuzzAdvert parses m and checks that what parses re-encodes identically.
// A message that fails only its checksum gets the checksum repaired by the
// reference implementation and another try, so the fuzzer reaches the
// decoder behind the checksum.
func fuzzAdvert(t *testing.T, m []byte, src, dst netip.Addr, mode ChecksumMode) {
	t.Helper()
	a, err := ParseAdvert(m, src, dst, mode)
	if err == nil {
		checkReencode(t, a, m, src, dst, mode)
		return
	}
	mustDrop(t, err)
	var de *DropError
	if !errors.As(err, &de) || de.Reason != DropChecksum {
		return
	}
	fixed := slices.Clone(m)
	if !refFixChecksum(fixed, src, dst, mode) {
		t.Fatalf("ParseAdvert found a checksum to check in %x, the reference did not", m)
	}
	a, err = ParseAdvert(fixed, src, dst, mode)
	if err != nil {
		mustDrop(t, err)
		if errors.As(err, &de) && de.Reason == DropChecksum {
			t.Fatalf("checksum computed by the reference rejected: %v", err)
		}
		return
	}
	checkReencode(t, a, fixed, src, dst, mode)
}

func mustDrop(t *testing.T, err error) {
	t.Helper()
	var de *DropError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *DropError", err, err)
	}
}

// checkReencode marshals a (parsed from m) and checks it parses back to a and
// matches m except for the v3 reserved bits and the checksum field.
func checkReencode(t *testing.T, a Advert, m []byte, src, dst netip.Addr, mode ChecksumMode) {
	t.Helper()
	out, err := a.Marshal(src, dst, mode)
	if err != nil {
		t.Fatalf("Marshal of parsed %+v: %v", a, err)
	}
	b, err := ParseAdvert(out, src, dst, mode)
	if err != nil {
		t.Fatalf("ParseAdvert of re-marshalled %+v: %v", a, err)
	}
	if !advertEqual(a, b) {
		t.Fatalf("round trip %+v, want %+v", b, a)
	}
	if len(out) > len(m) {
		t.Fatalf("re-marshalled %d bytes from a %d-byte message", len(out), len(m))
	}
	want := slices.Clone(m[:len(out)])
	if a.Version == 3 {
		want[4] &= 0x0f
	}
	want[6], want[7] = out[6], out[7]
	if !bytes.Equal(out, want) {
		t.Fatalf("re-marshalled\n%x\nwant\n%x", out, want)
	}
}

func BenchmarkParseAdvert(b *testing.B) {
	m := unhex(b, goldenV3.hex)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseAdvert(m, srcV4, GroupV4, ChecksumRFC); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	m := unhex(b, goldenV3.hex)
	var a Advert
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Unmarshal(m, srcV4, GroupV4, ChecksumRFC); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePacket(b *testing.B) {
	pkt := readHex(b, "keepalived-2.2.7-v3.hex")
	var a Advert
	b.ReportAllocs()
	for b.Loop() {
		h, p, err := ParseIPv4(pkt)
		if err != nil {
			b.Fatal(err)
		}
		if err := a.Unmarshal(p, h.Src, h.Dst, ChecksumRFC); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendMarshal(b *testing.B) {
	buf := make([]byte, 0, 64)
	a := goldenV3.advert
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = a.AppendMarshal(buf[:0], srcV4, GroupV4, ChecksumRFC); err != nil {
			b.Fatal(err)
		}
	}
}
