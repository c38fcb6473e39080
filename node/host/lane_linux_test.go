package host

import (
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
	"github.com/haa-dev/haa/node/vrrp"
)

// socketPair is a receiving socket on eth0 in one namespace and a sending
// one on the other end of a veth pair in another.
type socketPair struct {
	rx, tx *Socket
}

func newSocketPair(t *testing.T) socketPair {
	t.Helper()
	lab.Require(t)
	var nss []*lab.NS
	for _, p := range []string{"haalaneA", "haalaneB"} {
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
	for k, ns := range nss {
		must(t, ns.IP("addr", "add", []string{"10.77.0.2/24", "10.77.0.1/24"}[k], "dev", "eth0"))
		must(t, ns.IP("link", "set", "eth0", "up"))
	}
	var p socketPair
	for k, s := range []**Socket{&p.rx, &p.tx} {
		must(t, nss[k].Do(func() error {
			var err error
			*s, err = ListenSocket("eth0")
			return err
		}))
		t.Cleanup(func() { (*s).Close() })
	}
	must(t, p.rx.JoinGroup(vrrp.GroupV4))
	return p
}

func advert(t *testing.T, src netip.Addr) []byte {
	t.Helper()
	msg, err := (&vrrp.Advert{Version: 3, VRID: 51, Priority: 100, Interval: time.Second,
		Addrs: []netip.Addr{netip.MustParseAddr("10.77.0.100")}}).Marshal(src, vrrp.GroupV4, vrrp.ChecksumRFC)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// sources reads packets from rd until none comes for a while and returns
// their sources, in order.
func sources(t *testing.T, f *os.File, rd func([]byte) (int, time.Time, error)) []netip.Addr {
	t.Helper()
	return readSources(t, f, rd, func(b []byte) (netip.Addr, error) {
		h, _, err := vrrp.ParseIPv4(b)
		return h.Src, err
	})
}

// readSources is sources with the IP header read by src.
func readSources(t *testing.T, f *os.File, rd func([]byte) (int, time.Time, error), src func([]byte) (netip.Addr, error)) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	buf := make([]byte, 2048)
	for {
		if err := f.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		n, _, err := rd(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		a, err := src(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
}

// TestLaneCarriesOnlyItsSources: the priority lane's kernel filter lets
// through the sources it is given and nothing else (at first nothing);
// the main socket gets everything else.
func TestLaneCarriesOnlyItsSources(t *testing.T) {
	p := newSocketPair(t)
	master, other := netip.MustParseAddr("10.77.0.1"), netip.MustParseAddr("10.77.0.66")
	send := func() {
		for _, src := range []netip.Addr{master, other, master} {
			must(t, p.tx.Send(src, vrrp.GroupV4, advert(t, src)))
		}
	}
	lane := p.rx.Lane()
	send()
	if got := sources(t, p.rx.lane, lane.ReadPacket); len(got) != 0 {
		t.Fatalf("a lane without sources carried %v", got)
	}
	if got := sources(t, p.rx.f, p.rx.ReadPacket); len(got) != 3 {
		t.Fatalf("the main socket got %v, want all 3", got)
	}
	must(t, lane.SetSources([]netip.Addr{master}))
	send()
	if got := sources(t, p.rx.lane, lane.ReadPacket); len(got) != 2 || got[0] != master || got[1] != master {
		t.Fatalf("the lane carried %v, want the master's two", got)
	}
	if got := sources(t, p.rx.f, p.rx.ReadPacket); len(got) != 1 || got[0] != other {
		t.Fatalf("the main socket got %v, want only the other's (the master's are the lane's)", got)
	}
	must(t, lane.SetSources(nil))
	send()
	if got := sources(t, p.rx.lane, lane.ReadPacket); len(got) != 0 {
		t.Fatalf("the emptied lane carried %v", got)
	}
	if got := sources(t, p.rx.f, p.rx.ReadPacket); len(got) != 3 {
		t.Fatalf("the main socket got %v, want all 3 again", got)
	}
}

// TestFullBufferDropsAreCounted: packets the kernel drops because the
// socket's buffer is full (a flood while haad is starved of CPU) are
// counted, as socket_full, on the interface.
func TestFullBufferDropsAreCounted(t *testing.T) {
	p := newSocketPair(t)
	src := netip.MustParseAddr("10.77.0.66")
	msg := advert(t, src)
	for range 50000 { // well past 4 MiB of buffer
		must(t, p.tx.Send(src, vrrp.GroupV4, msg))
	}
	time.Sleep(100 * time.Millisecond)
	ifc := vrrp.NewIface("eth0", nil)
	done := make(chan error, 1)
	go func() { done <- ifc.Serve(p.rx) }()
	// The kernel reports its drop count with the packets queued after
	// the drops: keep sending one now and then while the backlog drains.
	deadline := time.Now().Add(10 * time.Second)
	for ifc.Stats().Drops(vrrp.DropSocketFull) == 0 && time.Now().Before(deadline) {
		must(t, p.tx.Send(src, vrrp.GroupV4, msg))
		time.Sleep(10 * time.Millisecond)
	}
	p.rx.Close()
	<-done
	if n := ifc.Stats().Drops(vrrp.DropSocketFull); n < 10000 {
		t.Fatalf("%d socket_full drops counted after 50000 packets unread (%d read)", n, ifc.Stats().Drops(vrrp.DropUnknownVRID))
	}
}
