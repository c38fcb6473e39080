package config

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func resolveYAML(t *testing.T, y string) (*Agent, error) {
	t.Helper()
	raw, err := Parse([]byte("name: n1\ninstances:\n" + y))
	if err != nil {
		t.Fatal(err)
	}
	return Resolve(raw)
}

// excludedVips are held like vips but not advertised: no limit of 255,
// either family, paths of their own.
func TestExcludedVIPsHeldNotAdvertised(t *testing.T) {
	var many []string
	for i := range 300 {
		many = append(many, fmt.Sprintf("10.9.%d.%d/32", i/250, 1+i%250))
	}
	a, err := resolveYAML(t, "  - {name: VI_1, interface: eth0, vrid: 1, vips: [10.0.0.1/24], excludedVips: [2001:db8::1/64, "+strings.Join(many, ", ")+"]}\n")
	if err != nil {
		t.Fatal(err)
	}
	in := a.Instances[0]
	if len(in.VIPs) != 302 || in.Advertised != 1 {
		t.Fatalf("%d VIPs, %d advertised; want 302 and 1", len(in.VIPs), in.Advertised)
	}
	if len(in.VRRP.Addrs) != 1 || in.VRRP.Addrs[0] != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("advertised %v, want [10.0.0.1]", in.VRRP.Addrs)
	}
	if in.VIPs[1].Prefix != netip.MustParsePrefix("2001:db8::1/64") {
		t.Errorf("VIPs[1] = %v", in.VIPs[1])
	}
	if got := in.VIPField(0); got != "vips[0]" {
		t.Errorf("VIPField(0) = %q", got)
	}
	if got := in.VIPField(2); got != "excludedVips[1]" {
		t.Errorf("VIPField(2) = %q", got)
	}

	_, err = resolveYAML(t, "  - {name: VI_1, interface: eth0, vrid: 1, vips: [10.0.0.1/24], excludedVips: [10.0.0.1/24]}\n")
	if err == nil || !strings.Contains(err.Error(), "instances[0].excludedVips[0]: 10.0.0.1 is already a VIP of VI_1") {
		t.Errorf("an address in both lists: %v", err)
	}
	_, err = resolveYAML(t, "  - {name: VI_1, interface: eth0, vrid: 1, vips: [10.0.0.1/24], excludedVips: [not-an-address]}\n")
	if err == nil || !strings.Contains(err.Error(), "instances[0].excludedVips[0]: ") {
		t.Errorf("a bad excluded address: %v", err)
	}
}

// An instance without vips: the election only. VRRPv2 allows it, as
// keepalived; VRRPv3 wants noVips (keepalived's no_virtual_ipaddress).
func TestInstanceWithoutVIPs(t *testing.T) {
	for _, tc := range []struct {
		name, y, err string
	}{
		{"v2", "version: 2", ""},
		{"v2 with excluded", "version: 2, excludedVips: [10.0.0.5/24]", ""},
		{"v3", "version: 3", "instances[0].vips: required with version 3"},
		{"v3 with excluded", "excludedVips: [10.0.0.5/24]", "excludedVips are not listed: move one address to vips"},
		{"v3 noVips", "noVips: true", ""},
		{"noVips with vips", "noVips: true, vips: [10.0.0.1/24]", "instances[0].noVips: set, but vips lists 1 addresses"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := resolveYAML(t, "  - {name: VI_1, interface: eth0, vrid: 1, "+tc.y+"}\n")
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want %q", err, tc.err)
			case tc.err == "" && len(a.Instances[0].VRRP.Addrs) != 0:
				t.Errorf("advertised %v, want none", a.Instances[0].VRRP.Addrs)
			}
		})
	}
}
