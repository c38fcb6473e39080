package vrrp

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"testing"
)

// goldenIPv4 is the header AppendIPv4 builds for the v2 golden advert,
// checksum by hand, 16-bit words:
//
//	45c0 (version 4, IHL 5, TOS c0) + 0028 (total length 40) + 1234 (ID) +
//	0000 (flags, offset) + ff70 (TTL 255, protocol 112) + 0000 (checksum) +
//	0a00 + 0001 (10.0.0.1) + e000 + 0012 (224.0.0.18)
//	= 0x2419f; fold: 0x419f + 0x2 = 0x41a1; checksum = ^0x41a1 = 0xbe5e
const goldenIPv4 = "45 c0 00 28 12 34 00 00 ff 70 be 5e 0a 00 00 01 e0 00 00 12"

func TestAppendIPv4Golden(t *testing.T) {
	payload := unhex(t, goldenV2.hex)
	h := IPv4Header{TOS: TOSInternetControl, TTL: 255, Protocol: Protocol, ID: 0x1234, Src: srcV4, Dst: GroupV4}
	prefix := []byte("pre")
	got := AppendIPv4(slices.Clone(prefix), h, payload)
	want := append(append(slices.Clone(prefix), unhex(t, goldenIPv4)...), payload...)
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendIPv4 =\n%x\nwant\n%x", got, want)
	}
	if c := refChecksum(got[3:23]); c != 0 {
		t.Errorf("reference header checksum %#04x, want 0", c)
	}
	h2, p2, err := ParseIPv4(got[len(prefix):])
	if err != nil {
		t.Fatal(err)
	}
	if h2 != h || !bytes.Equal(p2, payload) {
		t.Errorf("ParseIPv4 = %+v %x, want %+v %x", h2, p2, h, payload)
	}
}

func TestAppendIPv4Addresses(t *testing.T) {
	h := IPv4Header{TTL: 255, Protocol: Protocol, Src: netip.MustParseAddr("::ffff:10.0.0.1"), Dst: netip.Addr{}}
	b := AppendIPv4(nil, h, nil)
	if got, want := b[12:20], []byte{10, 0, 0, 1, 0, 0, 0, 0}; !bytes.Equal(got, want) {
		t.Errorf("addresses %v, want %v (mapped source unmapped, invalid destination zero)", got, want)
	}
	b = AppendIPv4(nil, IPv4Header{Src: srcV6, Dst: GroupV6}, nil)
	if got := b[12:20]; !bytes.Equal(got, make([]byte, 8)) {
		t.Errorf("IPv6 addresses written as %v, want zeros", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("AppendIPv4 with a 65516-byte payload did not panic")
		}
	}()
	AppendIPv4(nil, h, make([]byte, 0xffff-IPv4HeaderLen+1))
}

func TestParseIPv4(t *testing.T) {
	payload := unhex(t, goldenV3.hex)
	base := AppendIPv4(nil, IPv4Header{TOS: 0xc0, TTL: 255, Protocol: Protocol, ID: 1, Src: srcV4, Dst: GroupV4}, payload)

	t.Run("options skipped", func(t *testing.T) {
		// IHL 6: one 4-byte option (four NOPs) between header and payload.
		b := slices.Concat(base[:20], []byte{1, 1, 1, 1}, payload)
		b[0] = 0x46
		b[3] += 4
		_, p, err := ParseIPv4(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p, payload) {
			t.Errorf("payload %x, want %x", p, payload)
		}
	})
	t.Run("bounded by total length", func(t *testing.T) {
		b := append(slices.Clone(base), 0, 0, 0, 0) // Ethernet-style padding
		_, p, err := ParseIPv4(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p, payload) {
			t.Errorf("payload %x, want %x", p, payload)
		}
		if cap(p) != len(p) {
			t.Errorf("payload capacity %d reaches past total length %d", cap(p), len(p))
		}
	})
	t.Run("empty payload", func(t *testing.T) {
		_, p, err := ParseIPv4(base[:20:20])
		if err == nil {
			t.Fatalf("truncated packet accepted, payload %x", p)
		}
		b := slices.Clone(base[:20])
		b[2], b[3] = 0, 20
		if _, p, err = ParseIPv4(b); err != nil || len(p) != 0 {
			t.Errorf("header-only packet: %x, %v", p, err)
		}
	})

	set := func(f func(b []byte)) []byte {
		b := slices.Clone(base)
		f(b)
		return b
	}
	drops := []struct {
		name string
		b    []byte
		want DropReason
	}{
		{"empty", nil, DropTooShort},
		{"19 bytes", base[:19], DropTooShort},
		{"truncated payload", base[:len(base)-1], DropTooShort},
		{"options truncated", set(func(b []byte) { b[0] = 0x4f })[:40], DropTooShort},
		{"total length beyond the data", set(func(b []byte) { b[2], b[3] = 0xff, 0xff }), DropTooShort},
		{"version 6", set(func(b []byte) { b[0] = 0x65 }), DropAddrFamily},
		{"version 0", set(func(b []byte) { b[0] = 0x05 }), DropAddrFamily},
		{"IHL 4", set(func(b []byte) { b[0] = 0x44 }), DropAddrFamily},
		{"IHL 0", set(func(b []byte) { b[0] = 0x40 }), DropAddrFamily},
		{"total length below header", set(func(b []byte) { b[2], b[3] = 0, 19 }), DropAddrFamily},
		{"total length below options", set(func(b []byte) { b[0], b[2], b[3] = 0x46, 0, 20 }), DropAddrFamily},
	}
	for _, tt := range drops {
		t.Run(tt.name, func(t *testing.T) {
			h, p, err := ParseIPv4(tt.b)
			var de *DropError
			if !errors.As(err, &de) {
				t.Fatalf("ParseIPv4 = %+v %x %v, want a *DropError %v", h, p, err, tt.want)
			}
			if de.Reason != tt.want {
				t.Errorf("reason %v (%v), want %v", de.Reason, err, tt.want)
			}
		})
	}
}

func BenchmarkAppendIPv4(b *testing.B) {
	payload := unhex(b, goldenV3.hex)
	h := IPv4Header{TOS: TOSInternetControl, TTL: 255, Protocol: Protocol, Src: srcV4, Dst: GroupV4}
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendIPv4(buf[:0], h, payload)
	}
}
