package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	pfx := netip.MustParsePrefix
	addr := netip.MustParseAddr
	tests := []struct {
		in   string
		want VIP
		str  string // canonical String()
	}{
		{"10.0.0.1", VIP{Prefix: pfx("10.0.0.1/32")}, "10.0.0.1/32"},
		{"10.0.0.1/24", VIP{Prefix: pfx("10.0.0.1/24")}, "10.0.0.1/24"},
		{"  10.0.0.1/0  ", VIP{Prefix: pfx("10.0.0.1/0")}, "10.0.0.1/0"},
		{"192.168.200.18/24 dev eth2 label eth2:1",
			VIP{Prefix: pfx("192.168.200.18/24"), Dev: "eth2", Label: "eth2:1"},
			"192.168.200.18/24 dev eth2 label eth2:1"},
		{"10.0.0.1/24 scope link brd 10.0.0.255 label eth0:x dev eth0",
			VIP{Prefix: pfx("10.0.0.1/24"), Dev: "eth0", Label: "eth0:x", Broadcast: addr("10.0.0.255"), Scope: "link"},
			"10.0.0.1/24 dev eth0 label eth0:x brd 10.0.0.255 scope link"},
		{"10.0.0.1 broadcast 10.0.0.255", VIP{Prefix: pfx("10.0.0.1/32"), Broadcast: addr("10.0.0.255")}, "10.0.0.1/32 brd 10.0.0.255"},
		{"10.0.0.1 label vip0", VIP{Prefix: pfx("10.0.0.1/32"), Label: "vip0"}, "10.0.0.1/32 label vip0"}, // checked against the interface by Add
		{"10.0.0.1 scope host", VIP{Prefix: pfx("10.0.0.1/32"), Scope: "host"}, "10.0.0.1/32 scope host"},
		{"10.0.0.1 scope HOST", VIP{Prefix: pfx("10.0.0.1/32"), Scope: "host"}, "10.0.0.1/32 scope host"},
		{"10.0.0.1 scope 254", VIP{Prefix: pfx("10.0.0.1/32"), Scope: "host"}, "10.0.0.1/32 scope host"},
		{"10.0.0.1 scope 7", VIP{Prefix: pfx("10.0.0.1/32"), Scope: "7"}, "10.0.0.1/32 scope 7"},
		{"10.0.0.1 scope global", VIP{Prefix: pfx("10.0.0.1/32")}, "10.0.0.1/32"},
		{"10.0.0.1 scope 0", VIP{Prefix: pfx("10.0.0.1/32")}, "10.0.0.1/32"},
		{"10.0.0.1 scope site", VIP{Prefix: pfx("10.0.0.1/32"), Scope: "site"}, "10.0.0.1/32 scope site"},
		{"10.0.0.1 DEV eth0", VIP{Prefix: pfx("10.0.0.1/32"), Dev: "eth0"}, "10.0.0.1/32 dev eth0"},
		{"fd00::1", VIP{Prefix: pfx("fd00::1/128")}, "fd00::1/128"},
		{"fd00::1/64 dev eth1", VIP{Prefix: pfx("fd00::1/64"), Dev: "eth1"}, "fd00::1/64 dev eth1"},
		{"FE80::1/64 scope link", VIP{Prefix: pfx("fe80::1/64"), Scope: "link"}, "fe80::1/64 scope link"},
		{"2001:db8::10/128", VIP{Prefix: pfx("2001:db8::10/128")}, "2001:db8::10/128"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Parse(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
		if s := got.String(); s != tt.str {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, s, tt.str)
		}
		again, err := Parse(got.String())
		if err != nil || again != got {
			t.Errorf("round trip of %q: Parse(%q) = %#v, %v", tt.in, got.String(), again, err)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("Parse(%q).Validate(): %v", tt.in, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string // substring of the error
	}{
		{"", "empty"},
		{"   ", "empty"},
		{"10.0.0.1/33", `vip "10.0.0.1/33": prefix length 33 out of range 0..32`},
		{"fd00::1/129", "prefix length 129 out of range 0..128"},
		{"10.0.0.1/", `prefix length "" is not a number 0..32`},
		{"10.0.0.1/-1", `prefix length "-1" is not a number`},
		{"10.0.0.1/+8", `prefix length "+8" is not a number`},
		{"10.0.0.1/x", `prefix length "x" is not a number`},
		{"10.0.0.256/24", `"10.0.0.256" is not an IP address`},
		{"eth0", `"eth0" is not an IP address`},
		{"fe80::1%eth0/64", "zones are not allowed"},
		{"::ffff:10.0.0.1", "IPv4-mapped IPv6 address: write 10.0.0.1"},
		{"0.0.0.0/0", "unspecified address"},
		{"::/0", "unspecified address"},
		{"224.0.0.18", "multicast"},
		{"ff02::12", "multicast"},
		{"10.0.0.1 dev", `"dev" needs a value: expected an interface name`},
		{"10.0.0.1 label", `"label" needs a value`},
		{"10.0.0.1 scope", `"scope" needs a value`},
		{"10.0.0.1 brd", `"brd" needs a value`},
		{"10.0.0.1 dev eth0 dev eth1", `"dev" given twice`},
		{"10.0.0.1 brd 10.0.0.255 broadcast 10.0.0.255", `"brd" given twice`},
		{"10.0.0.1 devv eth0", `unknown keyword "devv": expected dev, label, brd or scope`},
		{"10.0.0.1 eth0", `unknown keyword "eth0"`},
		{"10.0.0.1 peer 10.0.0.2", `keepalived option "peer" is not supported`},
		{"10.0.0.1 no_track", `keepalived option "no_track" is not supported`},
		{"10.0.0.1 dev eth0 label eth1:x", `label "eth1:x" must start with the interface name "eth0"`},
		{"10.0.0.1 dev eth0 label eth0:waytoolonglabel", "longer than 15 bytes"},
		{"10.0.0.1 dev averyveryverylongname", "interface names are at most 15 bytes"},
		{"10.0.0.1 dev eth0/1", "not a valid interface name"},
		{"10.0.0.1 brd fd00::ff", `brd fd00::ff: expected an IPv4 address`},
		{"10.0.0.1 brd 10.0.0.x", `brd "10.0.0.x": expected an IPv4 address`},
		{"fd00::1 brd 10.0.0.255", "broadcast addresses exist only for IPv4"},
		{"fd00::1 dev eth0 label eth0:x", "address labels exist only for IPv4"},
		{"10.0.0.1 scope galaxy", `scope "galaxy": expected host, link, global, site, nowhere or a number 0..255`},
		{"10.0.0.1 scope 256", `scope "256"`},
		{"10.0.0.1 scope -1", `scope "-1"`},
	}
	for _, tt := range tests {
		v, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) = %v, want error containing %q", tt.in, v, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) error %q, want it to contain %q", tt.in, err, tt.want)
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) error %q does not wrap ErrInvalid", tt.in, err)
		}
	}
}

func TestValidate(t *testing.T) {
	bad := []VIP{
		{},
		{Prefix: netip.MustParsePrefix("10.0.0.1/24"), Scope: "galaxy"},
		{Prefix: netip.MustParsePrefix("fd00::1/64"), Broadcast: netip.MustParseAddr("10.0.0.255")},
		{Prefix: netip.MustParsePrefix("10.0.0.1/24"), Broadcast: netip.MustParseAddr("fd00::ff")},
		{Prefix: netip.MustParsePrefix("10.0.0.1/24"), Dev: "eth0", Label: "lo:1"},
		{Prefix: netip.MustParsePrefix("224.0.0.1/32")},
	}
	for _, v := range bad {
		if err := v.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%#v.Validate() = %v, want ErrInvalid", v, err)
		}
	}
}

func TestDevice(t *testing.T) {
	v := VIP{Prefix: netip.MustParsePrefix("10.0.0.1/32")}
	if d := v.Device("eth0"); d != "eth0" {
		t.Errorf("Device = %q, want eth0", d)
	}
	v.Dev = "eth1"
	if d := v.Device("eth0"); d != "eth1" {
		t.Errorf("Device = %q, want eth1", d)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"10.0.0.1/24 dev eth0 label eth0:1 brd 10.0.0.255 scope link", "fd00::1/64", "10.0.0.1 scope 7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(v.String())
		if err != nil || again != v {
			t.Fatalf("Parse(%q) = %#v; Parse(%q) = %#v, %v", s, v, v.String(), again, err)
		}
	})
}

func ExampleParse() {
	v, err := Parse("192.168.200.18/24 dev eth2 label eth2:1")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(v.Prefix, v.Device("eth0"), v.Label)
	_, err = Parse("10.0.0.1/33")
	fmt.Println(err)
	// Output:
	// 192.168.200.18/24 eth2 eth2:1
	// vip "10.0.0.1/33": prefix length 33 out of range 0..32
}
