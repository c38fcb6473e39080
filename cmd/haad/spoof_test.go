package main

import (
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/haa-dev/haa/deploy/lab"
	"github.com/haa-dev/haa/node/vrrp"
)

// rawSender sends hand-made IPv4 packets from inside a namespace.
type rawSender struct{ fd int }

func newRawSender(t *testing.T, n *lab.Node) *rawSender {
	t.Helper()
	var fd int
	err := n.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW) // implies IP_HDRINCL
		if err != nil {
			return err
		}
		return unix.BindToDevice(fd, n.Iface)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &rawSender{fd: fd}
}

func (s *rawSender) send(t *testing.T, pkt []byte, dst netip.Addr) {
	t.Helper()
	if err := unix.Sendto(s.fd, pkt, 0, &unix.SockaddrInet4{Addr: dst.As4()}); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// Malformed, spoofed and mismatched adverts, each claiming a priority that
// would win, are dropped and counted by reason; the master stays master and
// no transition happens.
func TestSpoofedAndMalformedPacketsAreDropped(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1)
	n1 := c.lab.Nodes[0]
	c.start(n1, instance{name: "VI_1", vrid: 51, prio: 100})
	c.waitHolder(vip, n1, 5*time.Second)
	// The VIP is added a moment before the transition is recorded.
	var before instanceDump
	if err := lab.Poll(5*time.Second, 20*time.Millisecond, "n1 reports MASTER", func() (bool, error) {
		before = c.status(n1)["VI_1"]
		return before.State == "MASTER", nil
	}); err != nil {
		t.Fatal(err)
	}

	attacker := c.lab.Clients[0]
	src := attacker.Addr
	group := vrrp.GroupV4
	good := func() vrrp.Advert {
		return vrrp.Advert{Version: 3, VRID: 51, Priority: 254, Interval: 100 * time.Millisecond, Addrs: []netip.Addr{vip}}
	}
	ip := func(ttl uint8, payload []byte) []byte {
		return vrrp.AppendIPv4(nil, vrrp.IPv4Header{TOS: 0xc0, TTL: ttl, Protocol: vrrp.Protocol, Src: src, Dst: group}, payload)
	}
	marshal := func(a vrrp.Advert) []byte {
		b, err := a.Marshal(src, group, vrrp.ChecksumRFC)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	s := newRawSender(t, attacker)

	const rounds = 20
	for range rounds {
		// Off-link injection: TTL 64.
		s.send(t, ip(64, marshal(good())), group)
		// Corrupted checksum.
		b := marshal(good())
		b[6] ^= 0xff
		s.send(t, ip(255, b), group)
		// Truncated.
		s.send(t, ip(255, marshal(good())[:6]), group)
		// v3 with the v2-style checksum (a peer misconfigured for v3_checksum_as_v2).
		compat, err := func() ([]byte, error) { a := good(); return a.Marshal(src, group, vrrp.ChecksumV2Compat) }()
		if err != nil {
			t.Fatal(err)
		}
		s.send(t, ip(255, compat), group)
		// Another address list.
		a := good()
		a.Addrs = []netip.Addr{netip.MustParseAddr("10.77.0.99")}
		s.send(t, ip(255, marshal(a)), group)
		// Version 2 at a v3 instance.
		a = good()
		a.Version, a.Interval, a.AuthType = 2, time.Second, vrrp.AuthNone
		s.send(t, ip(255, marshal(a)), group)
		// An unknown VRID.
		a = good()
		a.VRID = 99
		s.send(t, ip(255, marshal(a)), group)
		// Garbage.
		s.send(t, ip(255, []byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9}), group)
		time.Sleep(5 * time.Millisecond)
	}

	var doc statusDoc
	err := lab.Poll(5*time.Second, 50*time.Millisecond, "every drop counted", func() (bool, error) {
		doc = c.statusDoc(n1)
		d := doc.Instances[0].Drops
		return d["ttl"] >= rounds && d["checksum"] >= 2*rounds && d["too_short"] >= rounds &&
			d["addr_list"] >= rounds && d["version"] >= rounds &&
			doc.InterfaceDrops["eth0"]["unknown_vrid"] >= rounds, nil
	})
	if err != nil {
		t.Fatalf("%v: %+v", err, doc)
	}
	after := doc.Instances[0]
	if after.State != "MASTER" || after.Transitions != before.Transitions {
		t.Fatalf("state changed by dropped packets: before %+v after %+v", before, after)
	}
	c.stableHolder(vip, n1, 300*time.Millisecond)
	t.Logf("drops: instance %v, interface %v", after.Drops, doc.InterfaceDrops)
}
