package vrrp

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func ahAdvert(t *testing.T, src netip.Addr) []byte {
	t.Helper()
	a := Advert{Version: 2, VRID: 51, Priority: 100, Interval: time.Second, AuthType: AuthAH, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.100")}}
	msg, err := a.Marshal(src, GroupV4, ChecksumRFC)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// The AH header keepalived sends: sealed by one instance, opened by
// another with the same password; a changed byte, another password, another
// SPI or an old sequence number is refused; the TTL counts unless unicast.
func TestAHSealOpen(t *testing.T) {
	src := netip.MustParseAddr("10.0.0.1")
	key := [AuthDataLen]byte{'s', 'e', 'c', 'r', 'e', 't'}
	msg := ahAdvert(t, src)
	h := IPv4Header{TOS: TOSInternetControl, TTL: 255, ID: 7, Src: src, Dst: GroupV4}
	tx, rx := NewAH(key, false), NewAH(key, false)
	pkt := tx.Seal(nil, h, msg)
	if len(pkt) != IPv4HeaderLen+AHLen+len(msg) || pkt[9] != ProtocolAH || pkt[IPv4HeaderLen] != Protocol || pkt[IPv4HeaderLen+1] != 4 {
		t.Fatalf("packet % x", pkt)
	}
	if Checksum(pkt[:IPv4HeaderLen]) != 0 {
		t.Error("IP header checksum wrong")
	}
	if err := rx.Open(pkt, src); err != nil {
		t.Fatalf("open: %v", err)
	}
	if got, ok := SplitAH(pkt[IPv4HeaderLen:]); !ok || string(got) != string(msg) {
		t.Fatalf("SplitAH: %v", ok)
	}
	// The same packet again: a replay.
	if err := rx.Open(pkt, src); !isDrop(err, DropAuthFailure) {
		t.Errorf("replay: %v", err)
	}
	// The next one passes; the receiver's counter follows, and its own
	// next advert goes on from there (a new master after the old).
	pkt2 := tx.Seal(nil, h, msg)
	if err := rx.Open(pkt2, src); err != nil || rx.Seq() != 2 || rx.next() != 3 {
		t.Errorf("next advert: %v, seq %d", err, rx.Seq())
	}
	for name, mutate := range map[string]func(p []byte){
		"advert changed": func(p []byte) { p[len(p)-1] ^= 1 },
		"TTL changed":    func(p []byte) { p[8] = 254 },
		"ID changed":     func(p []byte) { p[5] ^= 1 },
	} {
		p := tx.Seal(nil, h, msg)
		mutate(p)
		if err := NewAH(key, false).Open(p, src); !isDrop(err, DropAuthFailure) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// TOS, fragment offset and checksum are not covered.
	p := tx.Seal(nil, h, msg)
	p[1], p[10] = 0, p[10]^0xff
	if err := NewAH(key, false).Open(p, src); err != nil {
		t.Errorf("mutable fields changed: %v", err)
	}
	if err := NewAH([AuthDataLen]byte{'o', 't', 'h', 'e', 'r'}, false).Open(tx.Seal(nil, h, msg), src); !isDrop(err, DropAuthFailure) {
		t.Errorf("another password: %v", err)
	}
	if err := NewAH(key, false).Open(tx.Seal(nil, h, msg), netip.MustParseAddr("10.0.0.9")); !isDrop(err, DropAuthFailure) {
		t.Errorf("SPI not the source: %v", err)
	}
	// Unicast: the TTL is not covered.
	utx, urx := NewAH(key, true), NewAH(key, true)
	up := utx.Seal(nil, h, msg)
	up[8] = 64
	if err := urx.Open(up, src); err != nil {
		t.Errorf("unicast, TTL changed: %v", err)
	}
}

func isDrop(err error, r DropReason) bool {
	var de *DropError
	return errors.As(err, &de) && de.Reason == r
}

// An AH instance takes only adverts with an AH header, and the others
// only adverts without: each is dropped and counted (auth_type).
func TestIfaceAHMatchesTheInstance(t *testing.T) {
	src := netip.MustParseAddr("10.0.0.1")
	key := [AuthDataLen]byte{'k'}
	msg := ahAdvert(t, src)
	h := IPv4Header{TOS: TOSInternetControl, TTL: 255, ID: 1, Src: src, Dst: GroupV4}
	sealed := NewAH(key, false).Seal(nil, h, msg)
	h.Protocol = Protocol
	plain := AppendIPv4(nil, h, msg)

	for _, tc := range []struct {
		name     string
		auth     uint8
		pkt      []byte
		received bool
	}{
		{"AH instance, AH advert", AuthAH, sealed, true},
		{"AH instance, plain advert", AuthAH, plain, false},
		{"plain instance, AH advert", AuthSimple, sealed, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Name: "VI_1", VRID: 51, Priority: 50, Version: 2, Interval: time.Second, AuthType: tc.auth, AuthData: key,
				Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.100")}, Primary: netip.MustParseAddr("10.0.0.2")}
			r := NewRunner(RunnerConfig{Config: cfg, Interface: "eth0", Group: GroupV4}, nopSender{}, nil, nil, nil, nil)
			i := NewIface("eth0", nil)
			if err := i.Add(r); err != nil {
				t.Fatal(err)
			}
			i.Handle(tc.pkt)
			drops := r.Stats().Drops(DropAuthType)
			if got := drops == 0; got != tc.received {
				t.Errorf("received %v (auth_type drops %d), want %v", got, drops, tc.received)
			}
		})
	}
}

type nopSender struct{}

func (nopSender) Send(src, dst netip.Addr, msg []byte) error { return nil }

// An AH advert reaches its instance although its source's protocol-112
// adverts come through the priority lane (the lane carries 112 only).
func TestIfaceAHNotSkippedForTheLane(t *testing.T) {
	src := netip.MustParseAddr("10.0.0.1")
	key := [AuthDataLen]byte{'k'}
	h := IPv4Header{TOS: TOSInternetControl, TTL: 255, ID: 1, Src: src, Dst: GroupV4}
	sealed := NewAH(key, false).Seal(nil, h, ahAdvert(t, src))
	cfg := Config{Name: "VI_1", VRID: 51, Priority: 50, Version: 2, Interval: time.Second, AuthType: AuthAH, AuthData: key,
		Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.100")}, Primary: netip.MustParseAddr("10.0.0.2")}
	r := NewRunner(RunnerConfig{Config: cfg, Interface: "eth0", Group: GroupV4}, nopSender{}, nil, nil, nil, nil)
	i := NewIface("eth0", nil)
	if err := i.Add(r); err != nil {
		t.Fatal(err)
	}
	i.laneSrcs.Store(&[]netip.Addr{src}) // src's adverts come through the lane
	i.Handle(sealed)
	if n := len(r.mb.take(nil)); n != 1 {
		t.Fatalf("%d adverts delivered, want the AH one", n)
	}
}

// An AH instance's adverts carry no password: the key of the ICV never
// leaves the node (keepalived sends zeros there).
func TestAHAdvertCarriesNoPassword(t *testing.T) {
	key := [AuthDataLen]byte{'s', '3', 'c', 'r', 'e', 't'}
	cfg := Config{Name: "VI_1", VRID: 51, Priority: 100, Version: 2, Interval: time.Second, AuthType: AuthAH, AuthData: key,
		Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.100")}, Primary: netip.MustParseAddr("10.0.0.2")}
	var ps packetCapture
	r := NewRunner(RunnerConfig{Config: cfg, Interface: "eth0", Group: GroupV4}, &ps, nil, nil, nil, nil)
	r.sendAdvert(time.Now(), 100)
	if len(ps.pkts) != 1 {
		t.Fatalf("%d packets sent", len(ps.pkts))
	}
	pkt := ps.pkts[0]
	if strings.Contains(string(pkt), "s3cret") {
		t.Fatalf("the password is in the packet: % x", pkt)
	}
	msg, ok := SplitAH(pkt[IPv4HeaderLen:])
	if !ok || msg[4] != AuthAH {
		t.Fatalf("not an AH advert: % x", pkt)
	}
	if err := NewAH(key, false).Open(pkt, cfg.Primary); err != nil {
		t.Fatalf("the peer cannot open it: %v", err)
	}
}

type packetCapture struct{ pkts [][]byte }

func (p *packetCapture) Send(src, dst netip.Addr, msg []byte) error { return errors.New("not AH") }
func (p *packetCapture) SendPacket(dst netip.Addr, pkt []byte) error {
	p.pkts = append(p.pkts, slices.Clone(pkt))
	return nil
}
