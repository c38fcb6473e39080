package ipvs

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haa-dev/haa/node/lvs"

	"github.com/moby/ipvs"

	"github.com/haa-dev/haa/deploy/lab"
)

// The conversion tests run everywhere; the kernel tests need IPVS.

func ipvsAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// ipvsDest is a nat destination at s of weight w.
func ipvsDest(s string, w int) lvs.Dest {
	return lvs.Dest{Addr: ipvsAP(s), DestAttrs: lvs.DestAttrs{Weight: w}}
}

// ipvsMaskBytes is the netmask as it goes on the wire: moby/ipvs writes the
// field in host order, the kernel reads it as a __be32.
func ipvsMaskBytes(v uint32) []byte {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return b[:]
}

func TestToIPVSService(t *testing.T) {
	tcp4 := lvs.Key{Addr: ipvsAP("10.1.2.3:80"), Proto: lvs.TCP}
	udp6 := lvs.Key{Addr: ipvsAP("[2001:db8::1]:53"), Proto: lvs.UDP}
	tests := []struct {
		name    string
		in      lvs.Service
		addr    net.IP
		port    uint16
		proto   uint16
		fwmark  uint32
		family  uint16
		flags   uint32
		timeout uint32
		mask    []byte // IPv4: the wire bytes
		plen    uint32 // IPv6: the prefix length
	}{
		{name: "tcp4 plain", in: lvs.Service{Key: tcp4, Scheduler: "wrr"},
			addr: net.IPv4(10, 1, 2, 3).To4(), port: 80, proto: 6, family: syscall.AF_INET,
			mask: []byte{255, 255, 255, 255}},
		{name: "tcp4 persistent /24", in: lvs.Service{Key: tcp4, Scheduler: "rr", Persistence: 300 * time.Second, PersistPrefix: 24},
			addr: net.IPv4(10, 1, 2, 3).To4(), port: 80, proto: 6, family: syscall.AF_INET,
			flags: 1, timeout: 300, mask: []byte{255, 255, 255, 0}},
		{name: "tcp4 persistent whole address, rounded up to seconds", in: lvs.Service{Key: tcp4, Scheduler: "sh", Persistence: 1500 * time.Millisecond},
			addr: net.IPv4(10, 1, 2, 3).To4(), port: 80, proto: 6, family: syscall.AF_INET,
			flags: 1, timeout: 2, mask: []byte{255, 255, 255, 255}},
		{name: "tcp4 persistent /1", in: lvs.Service{Key: tcp4, Scheduler: "lc", Persistence: time.Minute, PersistPrefix: 1},
			addr: net.IPv4(10, 1, 2, 3).To4(), port: 80, proto: 6, family: syscall.AF_INET,
			flags: 1, timeout: 60, mask: []byte{128, 0, 0, 0}},
		{name: "prefix ignored without persistence", in: lvs.Service{Key: tcp4, Scheduler: "wlc", PersistPrefix: 24},
			addr: net.IPv4(10, 1, 2, 3).To4(), port: 80, proto: 6, family: syscall.AF_INET,
			mask: []byte{255, 255, 255, 255}},
		{name: "udp6 plain", in: lvs.Service{Key: udp6, Scheduler: "wrr"},
			addr: net.ParseIP("2001:db8::1"), port: 53, proto: 17, family: syscall.AF_INET6, plen: 128},
		{name: "udp6 persistent /64", in: lvs.Service{Key: udp6, Scheduler: "wrr", Persistence: time.Hour, PersistPrefix: 64},
			addr: net.ParseIP("2001:db8::1"), port: 53, proto: 17, family: syscall.AF_INET6, flags: 1, timeout: 3600, plen: 64},
		{name: "sctp4", in: lvs.Service{Key: lvs.Key{Addr: ipvsAP("10.0.0.1:9"), Proto: lvs.SCTP}, Scheduler: "mh"},
			addr: net.IPv4(10, 0, 0, 1).To4(), port: 9, proto: 132, family: syscall.AF_INET, mask: []byte{255, 255, 255, 255}},
		{name: "fwmark4", in: lvs.Service{Key: lvs.Key{FWMark: 7}, Scheduler: "wrr", Forwarding: lvs.DirectRoute},
			fwmark: 7, family: syscall.AF_INET, mask: []byte{255, 255, 255, 255}},
		{name: "fwmark6 persistent", in: lvs.Service{Key: lvs.Key{FWMark: 0x100, V6: true}, Scheduler: "wrr", Persistence: time.Second, PersistPrefix: 48},
			fwmark: 0x100, family: syscall.AF_INET6, flags: 1, timeout: 1, plen: 48},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := toIPVSService(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Address.Equal(tt.addr) || (tt.addr == nil) != (got.Address == nil) {
				t.Errorf("Address %v, want %v", got.Address, tt.addr)
			}
			if tt.addr != nil && len(got.Address) != len(tt.addr) {
				t.Errorf("Address is %d bytes, want %d", len(got.Address), len(tt.addr))
			}
			if got.Port != tt.port || got.Protocol != tt.proto || got.FWMark != tt.fwmark || got.AddressFamily != tt.family {
				t.Errorf("port %d proto %d fwmark %d family %d, want %d %d %d %d",
					got.Port, got.Protocol, got.FWMark, got.AddressFamily, tt.port, tt.proto, tt.fwmark, tt.family)
			}
			if got.SchedName != tt.in.Scheduler {
				t.Errorf("SchedName %q, want %q", got.SchedName, tt.in.Scheduler)
			}
			if got.Flags != tt.flags || got.Timeout != tt.timeout {
				t.Errorf("flags %#x timeout %d, want %#x %d", got.Flags, got.Timeout, tt.flags, tt.timeout)
			}
			if tt.family == syscall.AF_INET {
				if b := ipvsMaskBytes(got.Netmask); string(b) != string(tt.mask) {
					t.Errorf("netmask bytes %v, want %v", b, tt.mask)
				}
			} else if got.Netmask != tt.plen {
				t.Errorf("netmask %d, want prefix length %d", got.Netmask, tt.plen)
			}
		})
	}
}

func TestToIPVSServiceErrors(t *testing.T) {
	tests := []struct {
		in   lvs.Service
		want string
	}{
		{lvs.Service{Scheduler: "rr"}, "no valid address"},
		{lvs.Service{Key: lvs.Key{Addr: ipvsAP("10.0.0.1:80")}, Scheduler: "rr"}, "protocol"},
		{lvs.Service{Key: lvs.Key{Addr: ipvsAP("10.0.0.1:80"), Proto: 1}, Scheduler: "rr"}, "protocol"},
		{lvs.Service{Key: lvs.Key{FWMark: 3, Addr: ipvsAP("10.0.0.1:80")}, Scheduler: "rr"}, "fwmark"},
		{lvs.Service{Key: lvs.Key{FWMark: 3, Proto: lvs.TCP}, Scheduler: "rr"}, "fwmark"},
		{lvs.Service{Key: lvs.Key{Addr: ipvsAP("[::ffff:10.0.0.1]:80"), Proto: lvs.TCP}, Scheduler: "rr"}, "no valid address"},
		{lvs.Service{Key: lvs.Key{Addr: ipvsAP("10.0.0.1:80"), Proto: lvs.TCP}, Scheduler: "rr", Persistence: time.Second, PersistPrefix: 33}, "prefix"},
		{lvs.Service{Key: lvs.Key{Addr: ipvsAP("[2001:db8::1]:80"), Proto: lvs.TCP}, Scheduler: "rr", Persistence: time.Second, PersistPrefix: 129}, "prefix"},
		{lvs.Service{Key: lvs.Key{Addr: ipvsAP("10.0.0.1:80"), Proto: lvs.TCP}, Scheduler: "rr", Persistence: time.Second, PersistPrefix: -1}, "prefix"},
		{lvs.Service{Key: lvs.Key{Addr: ipvsAP("10.0.0.1:80"), Proto: lvs.TCP}, Scheduler: "rr", Persistence: time.Duration(1<<33) * time.Second}, "too long"},
	}
	for _, tt := range tests {
		_, err := toIPVSService(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("toIPVSService(%+v): err %v, want one containing %q", tt.in, err, tt.want)
		}
	}
}

// TestServiceRoundTrip: what goes out comes back, for services in the form
// Read returns them (PersistPrefix the netmask's length when persistent, 0
// otherwise; forwarding nat: it lives on the destinations).
func TestServiceRoundTrip(t *testing.T) {
	svcs := []lvs.Service{
		{Key: lvs.Key{Addr: ipvsAP("10.1.2.3:80"), Proto: lvs.TCP}, Scheduler: "wrr"},
		{Key: lvs.Key{Addr: ipvsAP("10.1.2.3:80"), Proto: lvs.TCP}, Scheduler: "rr", Persistence: 300 * time.Second, PersistPrefix: 24},
		{Key: lvs.Key{Addr: ipvsAP("10.1.2.3:80"), Proto: lvs.TCP}, Scheduler: "rr", Persistence: 300 * time.Second, PersistPrefix: 32},
		{Key: lvs.Key{Addr: ipvsAP("10.1.2.3:443"), Proto: lvs.TCP}, Scheduler: "sh", Persistence: time.Second, PersistPrefix: 17},
		{Key: lvs.Key{Addr: ipvsAP("[2001:db8::1]:53"), Proto: lvs.UDP}, Scheduler: "lblc"},
		{Key: lvs.Key{Addr: ipvsAP("[2001:db8::1]:53"), Proto: lvs.UDP}, Scheduler: "lblcr", Persistence: time.Minute, PersistPrefix: 56},
		{Key: lvs.Key{Addr: ipvsAP("[2001:db8::1]:53"), Proto: lvs.SCTP}, Scheduler: "dh", Persistence: time.Minute, PersistPrefix: 128},
		{Key: lvs.Key{FWMark: 1}, Scheduler: "sed"},
		{Key: lvs.Key{FWMark: 0xffffffff, V6: true}, Scheduler: "nq", Persistence: 30 * 24 * time.Hour, PersistPrefix: 64},
	}
	for _, s := range svcs {
		is, err := toIPVSService(s)
		if err != nil {
			t.Fatalf("%s: %v", s.Key, err)
		}
		// The kernel adds IP_VS_SVC_F_HASHED when it hands the service back.
		is.Flags |= 0x0002
		back, err := fromIPVSService(is)
		if err != nil {
			t.Fatalf("%s: %v", s.Key, err)
		}
		if back != s {
			t.Errorf("round trip of %s:\n got %+v\nwant %+v", s.Key, back, s)
		}
	}
}

func TestFromIPVSKey(t *testing.T) {
	// IPv4 addresses come back as 4 bytes (moby/ipvs cuts them) but accept
	// 16-byte forms too.
	for _, ip := range []net.IP{net.IPv4(10, 9, 8, 7).To4(), net.IPv4(10, 9, 8, 7)} {
		k, err := fromIPVSKey(&ipvs.Service{AddressFamily: syscall.AF_INET, Address: ip, Port: 8080, Protocol: 6})
		if err != nil {
			t.Fatal(err)
		}
		if want := (lvs.Key{Addr: ipvsAP("10.9.8.7:8080"), Proto: lvs.TCP}); k != want {
			t.Errorf("key %+v, want %+v", k, want)
		}
	}
	k, err := fromIPVSKey(&ipvs.Service{AddressFamily: syscall.AF_INET6, Address: net.ParseIP("2001:db8::5"), Port: 443, Protocol: 132})
	if err != nil || k != (lvs.Key{Addr: ipvsAP("[2001:db8::5]:443"), Proto: lvs.SCTP}) {
		t.Errorf("v6 key %+v, %v", k, err)
	}
	// An IPv6 service on a v4-mapped address stays IPv6.
	k, err = fromIPVSKey(&ipvs.Service{AddressFamily: syscall.AF_INET6, Address: net.ParseIP("::ffff:10.0.0.1").To16(), Port: 1, Protocol: 6})
	if err != nil || !k.Addr.Addr().Is6() {
		t.Errorf("v4-mapped v6 key %+v, %v: want an IPv6 address", k, err)
	}
	k, err = fromIPVSKey(&ipvs.Service{AddressFamily: syscall.AF_INET6, FWMark: 9})
	if err != nil || k != (lvs.Key{FWMark: 9, V6: true}) {
		t.Errorf("fwmark6 key %+v, %v", k, err)
	}
	for _, bad := range []*ipvs.Service{
		{AddressFamily: syscall.AF_INET, Address: net.IPv4(10, 0, 0, 1).To4(), Port: 1, Protocol: 1}, // icmp
		{AddressFamily: syscall.AF_INET, Address: net.IPv4(10, 0, 0, 1).To4(), Port: 1, Protocol: 6 + 256},
		{AddressFamily: 99, FWMark: 1},
		{AddressFamily: syscall.AF_INET, Address: net.ParseIP("2001:db8::1"), Port: 1, Protocol: 6},
		{AddressFamily: syscall.AF_INET, Port: 1, Protocol: 6},
	} {
		if k, err := fromIPVSKey(bad); err == nil {
			t.Errorf("fromIPVSKey(%+v) = %+v, want an error", bad, k)
		}
	}
}

func TestToIPVSDest(t *testing.T) {
	s4 := lvs.Service{Key: lvs.Key{Addr: ipvsAP("10.0.0.1:80"), Proto: lvs.TCP}, Scheduler: "wrr"}
	for _, tt := range []struct {
		fwd   lvs.Forwarding
		flags uint32
	}{{lvs.NAT, ipvs.ConnectionFlagMasq}, {lvs.DirectRoute, ipvs.ConnectionFlagDirectRoute}, {lvs.Tunnel, ipvs.ConnectionFlagTunnel}} {
		// The destination's own method counts, whatever its service's.
		d, err := toIPVSDest(s4, lvs.Dest{Addr: ipvsAP("10.200.0.7:8080"), DestAttrs: lvs.DestAttrs{Weight: 3, Forwarding: tt.fwd}})
		if err != nil {
			t.Fatal(err)
		}
		if !d.Address.Equal(net.IPv4(10, 200, 0, 7)) || len(d.Address) != 4 || d.Port != 8080 || d.Weight != 3 ||
			d.ConnectionFlags != tt.flags || d.AddressFamily != syscall.AF_INET || d.UpperThreshold != 0 || d.LowerThreshold != 0 {
			t.Errorf("%s: %+v", tt.fwd, d)
		}
		if f := fromIPVSFlags(d.ConnectionFlags); f != tt.fwd {
			t.Errorf("flags %#x read back as %s, want %s", d.ConnectionFlags, f, tt.fwd)
		}
	}
	// Thresholds go as they are.
	d, err := toIPVSDest(s4, lvs.Dest{Addr: ipvsAP("10.200.0.7:8080"), DestAttrs: lvs.DestAttrs{Weight: 1,
		Thresholds: lvs.Thresholds{Upper: 100, Lower: 80, Set: true}}})
	if err != nil || d.UpperThreshold != 100 || d.LowerThreshold != 80 {
		t.Errorf("thresholds: %+v, %v", d, err)
	}
	// A v4-mapped real server of an IPv4 service is IPv4.
	d, err = toIPVSDest(s4, ipvsDest("[::ffff:10.200.0.8]:80", 0))
	if err != nil || len(d.Address) != 4 || d.Weight != 0 {
		t.Errorf("v4-mapped: %+v, %v", d, err)
	}
	// Fwmark services: the family is the key's, a port 0 stays 0.
	d, err = toIPVSDest(lvs.Service{Key: lvs.Key{FWMark: 5, V6: true}, Scheduler: "rr"}, ipvsDest("[2001:db8::9]:0", 65535))
	if err != nil || d.AddressFamily != syscall.AF_INET6 || d.Port != 0 || len(d.Address) != 16 || d.Weight != 65535 {
		t.Errorf("fwmark6: %+v, %v", d, err)
	}
	for _, bad := range []struct {
		s lvs.Service
		d lvs.Dest
	}{
		{s4, ipvsDest("[2001:db8::1]:80", 1)},
		{lvs.Service{Key: lvs.Key{FWMark: 5}, Scheduler: "rr"}, ipvsDest("[2001:db8::1]:80", 1)},
		{lvs.Service{Key: lvs.Key{FWMark: 5, V6: true}, Scheduler: "rr"}, ipvsDest("10.0.0.1:80", 1)},
		{s4, ipvsDest("10.0.0.2:80", -1)},
		{s4, ipvsDest("10.0.0.2:80", 65536)},
		{s4, lvs.Dest{DestAttrs: lvs.DestAttrs{Weight: 1}}},
	} {
		if d, err := toIPVSDest(bad.s, bad.d); err == nil {
			t.Errorf("toIPVSDest(%s, %+v) = %+v, want an error", bad.s.Key, bad.d, d)
		}
	}
}

func TestFromIPVSFlags(t *testing.T) {
	for flags, want := range map[uint32]lvs.Forwarding{
		0x0000: lvs.NAT,
		0x0001: lvs.NAT, // local node (old kernels)
		0x0002: lvs.Tunnel,
		0x0003: lvs.DirectRoute,
		0x0083: lvs.DirectRoute, // with IP_VS_CONN_F_NOOUTPUT
		0x0080: lvs.NAT,
	} {
		if got := fromIPVSFlags(flags); got != want {
			t.Errorf("fromIPVSFlags(%#x) = %s, want %s", flags, got, want)
		}
	}
}

func TestFromIPVS(t *testing.T) {
	is := &ipvs.Service{AddressFamily: syscall.AF_INET, Address: net.IPv4(10, 1, 1, 1).To4(), Port: 80, Protocol: 6,
		SchedName: "wrr", Flags: 0x0002, Netmask: binary.NativeEndian.Uint32([]byte{255, 255, 255, 255})}
	dests := []*ipvs.Destination{
		{Address: net.IPv4(10, 200, 0, 3).To4(), Port: 8080, Weight: 5, ConnectionFlags: 0x0002, AddressFamily: syscall.AF_INET},
		{Address: net.IPv4(10, 200, 0, 1), Port: 8080, Weight: 0, ConnectionFlags: 0x0083, AddressFamily: syscall.AF_INET},
		{Address: net.IPv4(10, 200, 0, 2).To4(), Port: 8081, Weight: 65535, ConnectionFlags: 0x0002, AddressFamily: syscall.AF_INET,
			UpperThreshold: 100, LowerThreshold: 10},
	}
	vs, err := fromIPVS(is, dests)
	if err != nil {
		t.Fatal(err)
	}
	want := &lvs.VirtualServer{
		Service: lvs.Service{Key: lvs.Key{Addr: ipvsAP("10.1.1.1:80"), Proto: lvs.TCP}, Scheduler: "wrr", Forwarding: lvs.DirectRoute},
		Dests: map[netip.AddrPort]lvs.DestAttrs{
			ipvsAP("10.200.0.1:8080"): {Weight: 0, Forwarding: lvs.DirectRoute},
			ipvsAP("10.200.0.2:8081"): {Weight: 65535, Forwarding: lvs.Tunnel, Thresholds: lvs.Thresholds{Upper: 100, Lower: 10}},
			ipvsAP("10.200.0.3:8080"): {Weight: 5, Forwarding: lvs.Tunnel},
		},
	}
	if !reflect.DeepEqual(vs, want) {
		t.Errorf("fromIPVS:\n got %+v\nwant %+v", vs, want)
	}
	// No destinations: nat, an empty (not nil) map.
	vs, err = fromIPVS(is, nil)
	if err != nil || vs.Forwarding != lvs.NAT || vs.Dests == nil || len(vs.Dests) != 0 {
		t.Errorf("no destinations: %+v, %v", vs, err)
	}
	if _, err := fromIPVS(is, []*ipvs.Destination{{Address: net.IPv4(10, 0, 0, 1), AddressFamily: 77}}); err == nil {
		t.Error("a destination of an unknown family: no error")
	}
}

// TestToFromIPVS: a whole virtual server through the conversions.
func TestToFromIPVS(t *testing.T) {
	for _, fwd := range []lvs.Forwarding{lvs.NAT, lvs.DirectRoute, lvs.Tunnel} {
		in := &lvs.VirtualServer{
			Service: lvs.Service{Key: lvs.Key{Addr: ipvsAP("[2001:db8::10]:443"), Proto: lvs.TCP}, Scheduler: "wlc", Forwarding: fwd,
				Persistence: 10 * time.Minute, PersistPrefix: 64},
			Dests: map[netip.AddrPort]lvs.DestAttrs{ipvsAP("[2001:db8:1::1]:8443"): {Weight: 1, Forwarding: fwd},
				ipvsAP("[2001:db8:1::2]:8443"): {Weight: 0, Forwarding: fwd, Thresholds: lvs.Thresholds{Upper: 5}}},
		}
		is, err := toIPVSService(in.Service)
		if err != nil {
			t.Fatal(err)
		}
		var ds []*ipvs.Destination
		for a, da := range in.Dests {
			d, err := toIPVSDest(in.Service, lvs.Dest{Addr: a, DestAttrs: da})
			if err != nil {
				t.Fatal(err)
			}
			ds = append(ds, d)
		}
		out, err := fromIPVS(is, ds)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(out, in) {
			t.Errorf("%s:\n got %+v\nwant %+v", fwd, out, in)
		}
	}
}

func TestIPVSSupports(t *testing.T) {
	b := &Backend{} // Supports needs no kernel
	k4 := lvs.Key{Addr: ipvsAP("10.0.0.1:80"), Proto: lvs.TCP}
	for _, sched := range lvs.Schedulers {
		for _, fwd := range []lvs.Forwarding{lvs.NAT, lvs.DirectRoute, lvs.Tunnel} {
			for _, k := range []lvs.Key{k4, {Addr: ipvsAP("[2001:db8::1]:80"), Proto: lvs.UDP}, {FWMark: 1}, {FWMark: 2, V6: true}} {
				s := lvs.Service{Key: k, Scheduler: sched, Forwarding: fwd, Persistence: time.Minute, PersistPrefix: 24}
				if err := b.Supports(s); err != nil {
					t.Errorf("Supports(%s %s %s): %v", k, sched, fwd, err)
				}
			}
		}
	}
	for _, bad := range []struct {
		s    lvs.Service
		want string
	}{
		{lvs.Service{Key: k4, Scheduler: "fifo"}, `scheduler "fifo"`},
		{lvs.Service{Key: k4, Scheduler: "rr", Forwarding: 9}, "forwarding"},
		{lvs.Service{Key: lvs.Key{Addr: ipvsAP("10.0.0.1:80")}, Scheduler: "rr"}, "protocol"},
		{lvs.Service{Key: k4, Scheduler: "rr", Persistence: -time.Second}, "negative"},
		{lvs.Service{Key: k4, Scheduler: "rr", Persistence: time.Second, PersistPrefix: 40}, "prefix"},
	} {
		if err := b.Supports(bad.s); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Supports(%+v): %v, want an error containing %q", bad.s, err, bad.want)
		}
	}
	if b.Name() != "ipvs" {
		t.Errorf("Name %q", b.Name())
	}
}

func TestNewIPVSWithoutIPVS(t *testing.T) {
	if _, err := os.Stat(ProcFile); err == nil {
		t.Skipf("the kernel has IPVS (%s)", ProcFile)
	}
	b, err := New()
	if err == nil {
		b.Close()
		t.Fatal("New succeeded without IPVS")
	}
	for _, want := range []string{ProcFile, "modprobe ip_vs", "nftables"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestClosedIPVS(t *testing.T) {
	b := &Backend{fwd: map[lvs.Key]lvs.Forwarding{}}
	ctx := context.Background()
	if err := b.Apply(ctx, lvs.Plan{{Kind: lvs.AddService}}); err == nil {
		t.Error("Apply on a closed backend: no error")
	}
	if _, err := b.Read(ctx); err == nil {
		t.Error("Read on a closed backend: no error")
	}
	if _, err := b.Conns(ctx); err == nil {
		t.Error("Conns on a closed backend: no error")
	}
	if err := b.Close(); err != nil {
		t.Error(err)
	}
}

// requireIPVS skips kernel tests where the kernel has no IPVS (failing
// them when HAA_REQUIRE_IPVS=1, as make test-ipvs's VM sets), then
// requires namespaces.
func requireIPVS(t *testing.T) {
	t.Helper()
	lab.RequireIPVS(t)
}

// ipvsNS makes a namespace and an IPVS backend in it.
func ipvsNS(t *testing.T, prefix string) (*lab.NS, *Backend) {
	t.Helper()
	ns, err := lab.NewNS(lab.UniqueName(prefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	b, err := New(WithNetNS("/var/run/netns/" + ns.Name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return ns, b
}

// ipvsPlanFor is the plan that programs st from empty (written out here so
// these tests do not depend on Diff).
func ipvsPlanFor(st lvs.State) lvs.Plan {
	var p lvs.Plan
	for _, vs := range st {
		p = append(p, lvs.Op{Kind: lvs.AddService, Service: vs.Service})
		for a, d := range vs.Dests {
			p = append(p, lvs.Op{Kind: lvs.AddDest, Service: vs.Service, Dest: lvs.Dest{Addr: a, DestAttrs: d}})
		}
	}
	return p
}

func TestIPVSKernelProgram(t *testing.T) {
	requireIPVS(t)
	_, b := ipvsNS(t, "hipvs")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o2, o3 := rand.IntN(200)+20, rand.IntN(250)+1
	a := func(last, port int) netip.AddrPort {
		return netip.MustParseAddrPort(fmt.Sprintf("10.%d.%d.%d:%d", o2, o3, last, port))
	}
	want := lvs.State{}
	add := func(vs *lvs.VirtualServer) { want[vs.Key] = vs }
	nat := func(w int) lvs.DestAttrs { return lvs.DestAttrs{Weight: w} }
	dr := func(w int) lvs.DestAttrs { return lvs.DestAttrs{Weight: w, Forwarding: lvs.DirectRoute} }
	add(&lvs.VirtualServer{Service: lvs.Service{Key: lvs.Key{Addr: a(1, 80), Proto: lvs.TCP}, Scheduler: "wrr"},
		Dests: map[netip.AddrPort]lvs.DestAttrs{a(11, 8080): nat(3), a(12, 8080): nat(1), a(13, 8080): nat(0),
			a(15, 8080): {Weight: 1, Thresholds: lvs.Thresholds{Upper: 100, Lower: 50}}}})
	add(&lvs.VirtualServer{Service: lvs.Service{Key: lvs.Key{Addr: a(1, 53), Proto: lvs.UDP}, Scheduler: "rr", Forwarding: lvs.DirectRoute},
		Dests: map[netip.AddrPort]lvs.DestAttrs{a(11, 53): dr(1), a(12, 53): dr(1)}})
	add(&lvs.VirtualServer{Service: lvs.Service{Key: lvs.Key{Addr: a(2, 443), Proto: lvs.TCP}, Scheduler: "sh", Forwarding: lvs.Tunnel,
		Persistence: 300 * time.Second, PersistPrefix: 24}, Dests: map[netip.AddrPort]lvs.DestAttrs{a(21, 443): {Weight: 1, Forwarding: lvs.Tunnel}}})
	add(&lvs.VirtualServer{Service: lvs.Service{Key: lvs.Key{Addr: a(3, 80), Proto: lvs.TCP}, Scheduler: "wlc", Forwarding: lvs.DirectRoute},
		Dests: map[netip.AddrPort]lvs.DestAttrs{}}) // no destinations: forwarding remembered
	add(&lvs.VirtualServer{Service: lvs.Service{Key: lvs.Key{FWMark: uint32(o2)<<8 | uint32(o3)}, Scheduler: "wrr",
		Persistence: time.Minute, PersistPrefix: 32}, Dests: map[netip.AddrPort]lvs.DestAttrs{a(31, 0): nat(2)}})
	add(&lvs.VirtualServer{Service: lvs.Service{Key: lvs.Key{Addr: netip.MustParseAddrPort("[fd00::1]:80"), Proto: lvs.TCP}, Scheduler: "lc"},
		Dests: map[netip.AddrPort]lvs.DestAttrs{netip.MustParseAddrPort("[fd00::11]:80"): nat(1)}})
	for _, vs := range want {
		if err := b.Supports(vs.Service); err != nil {
			t.Fatalf("Supports(%s): %v", vs.Key, err)
		}
	}
	if err := b.Apply(ctx, ipvsPlanFor(want)); err != nil {
		t.Fatal(err)
	}
	read := func() lvs.State {
		t.Helper()
		got, err := b.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	// Read leaves thresholds unowned (Set false): the kernel cannot say
	// who set them.
	for _, vs := range want {
		for a, d := range vs.Dests {
			d.Thresholds.Set = false
			vs.Dests[a] = d
		}
	}
	if got := read(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Read after programming:\n got %s\nwant %s", ipvsDump(got), ipvsDump(want))
	}

	// A weight change, a scheduler and forwarding change (the service,
	// then each destination), a real server moved out and another in, a
	// weight change that leaves thresholds it does not set as they are.
	web := want[lvs.Key{Addr: a(1, 80), Proto: lvs.TCP}]
	dns := want[lvs.Key{Addr: a(1, 53), Proto: lvs.UDP}]
	newDNS := dns.Service
	newDNS.Scheduler, newDNS.Forwarding = "wrr", lvs.NAT
	p := lvs.Plan{
		{Kind: lvs.DeleteDest, Service: web.Service, Dest: lvs.Dest{Addr: a(13, 8080)}},
		{Kind: lvs.UpdateService, Service: newDNS},
		{Kind: lvs.UpdateDest, Service: newDNS, Dest: lvs.Dest{Addr: a(11, 53), DestAttrs: nat(1)}},
		{Kind: lvs.UpdateDest, Service: newDNS, Dest: lvs.Dest{Addr: a(12, 53), DestAttrs: nat(1)}},
		{Kind: lvs.UpdateDest, Service: web.Service, Dest: lvs.Dest{Addr: a(12, 8080), DestAttrs: nat(7)}},
		{Kind: lvs.UpdateDest, Service: web.Service, Dest: lvs.Dest{Addr: a(15, 8080), DestAttrs: nat(4)}},
		{Kind: lvs.AddDest, Service: web.Service, Dest: lvs.Dest{Addr: a(14, 8080), DestAttrs: nat(2)}},
	}
	if err := b.Apply(ctx, p); err != nil {
		t.Fatal(err)
	}
	delete(web.Dests, a(13, 8080))
	web.Dests[a(12, 8080)] = nat(7)
	web.Dests[a(14, 8080)] = nat(2)
	web.Dests[a(15, 8080)] = lvs.DestAttrs{Weight: 4, Thresholds: lvs.Thresholds{Upper: 100, Lower: 50}}
	dns.Service = newDNS
	dns.Dests[a(11, 53)], dns.Dests[a(12, 53)] = nat(1), nat(1)
	if got := read(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Read after the changes:\n got %s\nwant %s", ipvsDump(got), ipvsDump(want))
	}

	// Conns lists every destination (no traffic: zero).
	conns, err := b.Conns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range want {
		if len(conns[k]) != len(vs.Dests) {
			t.Errorf("Conns of %s: %v, want %d destinations", k, conns[k], len(vs.Dests))
		}
	}

	// Adding a service the kernel holds takes it over as the plan builds
	// it (here without destinations), in the same pass.
	if err := b.Apply(ctx, lvs.Plan{{Kind: lvs.AddService, Service: web.Service}}); err != nil {
		t.Errorf("adding an existing service: %v", err)
	}
	web.Dests = map[netip.AddrPort]lvs.DestAttrs{}
	if got := read(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Read after taking a service over:\n got %s\nwant %s", ipvsDump(got), ipvsDump(want))
	}

	// A failing op names itself.
	bad := lvs.Service{Key: lvs.Key{Addr: a(4, 80), Proto: lvs.TCP}, Scheduler: "no-such-scheduler"}
	err = b.Apply(ctx, lvs.Plan{{Kind: lvs.AddService, Service: bad}})
	if err == nil || !strings.Contains(err.Error(), "add-service "+bad.Key.String()) {
		t.Errorf("adding a service of an unknown scheduler: %v", err)
	}

	// Delete everything.
	var del lvs.Plan
	for _, vs := range want {
		del = append(del, lvs.Op{Kind: lvs.DeleteService, Service: vs.Service})
	}
	if err := b.Apply(ctx, del); err != nil {
		t.Fatal(err)
	}
	if got := read(); len(got) != 0 {
		t.Errorf("Read after deleting everything: %s", ipvsDump(got))
	}
}

// TestIPVSKernelConns: a client namespace connects through a director
// (ip_forward on, the VIP its client-side address) to a NAT virtual server
// whose real server is in a third namespace; Conns counts the connection.
func TestIPVSKernelConns(t *testing.T) {
	requireIPVS(t)
	dir, b := ipvsNS(t, "hipvd")
	var nss []*lab.NS
	for _, p := range []string{"hipvc", "hipvr"} {
		ns, err := lab.NewNS(lab.UniqueName(p))
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		nss = append(nss, ns)
	}
	cl, rs := nss[0], nss[1]
	o2, o3 := rand.IntN(200)+20, rand.IntN(250)+1
	front := fmt.Sprintf("10.%d.%d", o2, o3)        // client side
	back := fmt.Sprintf("10.%d.%d", o2, (o3+1)%256) // real-server side
	vip := front + ".1"
	for _, s := range []struct {
		ns   *lab.NS
		args []string
	}{
		{dir, []string{"link", "add", "c0", "type", "veth", "peer", "name", "eth0", "netns", cl.Name}},
		{dir, []string{"link", "add", "r0", "type", "veth", "peer", "name", "eth0", "netns", rs.Name}},
		{dir, []string{"addr", "add", vip + "/24", "dev", "c0"}},
		{dir, []string{"addr", "add", back + ".1/24", "dev", "r0"}},
		{dir, []string{"link", "set", "c0", "up"}},
		{dir, []string{"link", "set", "r0", "up"}},
		{cl, []string{"addr", "add", front + ".2/24", "dev", "eth0"}},
		{cl, []string{"link", "set", "eth0", "up"}},
		{rs, []string{"addr", "add", back + ".2/24", "dev", "eth0"}},
		{rs, []string{"link", "set", "eth0", "up"}},
		{rs, []string{"route", "add", "default", "via", back + ".1"}},
	} {
		if err := s.ns.IP(s.args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := dir.WriteSysctl("net/ipv4/ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	if err := rs.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", back+".2:8080")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc := lvs.Service{Key: lvs.Key{Addr: netip.MustParseAddrPort(vip + ":80"), Proto: lvs.TCP}, Scheduler: "rr"}
	dest := netip.MustParseAddrPort(back + ".2:8080")
	if err := b.Apply(ctx, lvs.Plan{{Kind: lvs.AddService, Service: svc}, {Kind: lvs.AddDest, Service: svc, Dest: lvs.Dest{Addr: dest, DestAttrs: lvs.DestAttrs{Weight: 1}}}}); err != nil {
		t.Fatal(err)
	}
	var c net.Conn
	if err := cl.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp4", vip+":80", 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("connecting to the virtual server: %v", err)
	}
	defer c.Close()
	if err := lab.Poll(10*time.Second, 50*time.Millisecond, "one active connection in lvs.Conns", func() (bool, error) {
		conns, err := b.Conns(ctx)
		if err != nil {
			return false, err
		}
		return conns[svc.Key][dest].Active == 1, nil
	}); err != nil {
		t.Fatal(err)
	}
}

func ipvsDump(st lvs.State) string {
	var b strings.Builder
	for k, vs := range st {
		fmt.Fprintf(&b, "\n  %s %+v dests %v", k, vs.Service, vs.Dests)
	}
	if b.Len() == 0 {
		return "(empty)"
	}
	return b.String()
}
