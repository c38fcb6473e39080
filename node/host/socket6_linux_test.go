package host

import (
	"net/netip"
	"testing"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
	"github.com/haa-dev/haa/node/vrrp"
)

// A real IPv6 VRRP socket pair across a veth: an advert sent from a
// link-local address to ff02::12 arrives behind a rebuilt IPv6 header
// with its source, destination and hop limit 255, and the checksum
// (pseudo-header included) verifies; a unicast one likewise.
func TestSocket6SendReceive(t *testing.T) {
	lab.Require(t)
	var nss []*lab.NS
	for _, p := range []string{"haa6A", "haa6B"} {
		ns, err := lab.NewNS(lab.UniqueName(p))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := ns.Close(); err != nil {
				t.Errorf("delete namespace: %v", err)
			}
		})
		nss = append(nss, ns)
	}
	must(t, nss[0].IP("link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", nss[1].Name))
	lls := []string{"fe80::2", "fe80::1"}
	for k, ns := range nss {
		must(t, ns.WriteSysctl("net/ipv6/conf/eth0/accept_dad", "0"))
		must(t, ns.WriteSysctl("net/ipv6/conf/eth0/addr_gen_mode", "1"))
		must(t, ns.IP("addr", "add", lls[k]+"/64", "dev", "eth0", "nodad"))
		must(t, ns.IP("link", "set", "eth0", "up"))
	}
	var rx, tx *Socket6
	for k, s := range []**Socket6{&rx, &tx} {
		must(t, nss[k].Do(func() error {
			var err error
			*s, err = ListenSocket6("eth0")
			return err
		}))
		t.Cleanup(func() { (*s).Close() })
	}
	must(t, rx.JoinGroup(vrrp.GroupV6))
	src, dst := netip.MustParseAddr(lls[1]), netip.MustParseAddr(lls[0])
	vips := []netip.Addr{netip.MustParseAddr("fe80::100"), netip.MustParseAddr("fd77::100")}
	for _, to := range []netip.Addr{vrrp.GroupV6, dst} {
		a := vrrp.Advert{Version: 3, VRID: 51, Priority: 100, Interval: time.Second, Addrs: vips}
		msg, err := a.Marshal(src, to, vrrp.ChecksumRFC)
		if err != nil {
			t.Fatal(err)
		}
		sent := time.Now()
		// The link-local address may need a moment after the link is up.
		deadline := time.Now().Add(5 * time.Second)
		for {
			if err = tx.Send(src, to, msg); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("send to %v: %v", to, err)
		}
		buf := make([]byte, 2048)
		must(t, rx.f.SetReadDeadline(time.Now().Add(5*time.Second)))
		n, at, err := rx.ReadPacket(buf)
		if err != nil {
			t.Fatalf("read (to %v): %v", to, err)
		}
		h, payload, err := vrrp.ParseIPv6(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		if h.Src != src || h.Dst != to || h.HopLimit != 255 || h.NextHeader != vrrp.Protocol {
			t.Errorf("header %+v, want %v -> %v, hop limit 255, next header 112", h, src, to)
		}
		got, err := vrrp.ParseAdvert(payload, h.Src, h.Dst, vrrp.ChecksumRFC)
		if err != nil {
			t.Fatalf("advert to %v: %v", to, err)
		}
		if got.VRID != 51 || len(got.Addrs) != 2 || got.Addrs[0] != vips[0] {
			t.Errorf("advert %+v", got)
		}
		if at.Before(sent.Add(-time.Second)) || at.After(time.Now()) {
			t.Errorf("arrival %v not between the send and now", at)
		}
	}
}
