package config

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/haa-dev/haa/node/vrrp"
)

// An instance with IPv6 vips runs VRRPv3 over IPv6: group ff02::12,
// IPv6 peers and source.
func TestIPv6Instance(t *testing.T) {
	a, err := resolveYAML(t, "  - {name: VI_6, interface: eth0, vrid: 51, vips: [fe80::100/64, fd77::100/64]}\n"+
		"  - {name: VI_4, interface: eth0, vrid: 51, vips: [10.0.0.1/24]}\n"+
		"  - {name: U6, interface: eth0, vrid: 52, vips: [fd77::101/64], unicastPeers: [fd77::2], sourceAddress: fd77::1}\n"+
		"  - {name: N6, interface: eth0, vrid: 53, family: ipv6, noVips: true}\n")
	if err != nil {
		t.Fatal(err)
	}
	v6, v4, u6, n6 := a.Instances[0], a.Instances[1], a.Instances[2], a.Instances[3]
	if !v6.IPv6() || v6.Group != vrrp.GroupV6 || v6.VRRP.Version != 3 {
		t.Errorf("VI_6: family %s, group %v, version %d", v6.Family, v6.Group, v6.VRRP.Version)
	}
	if v4.IPv6() || v4.Group != vrrp.GroupV4 {
		t.Errorf("VI_4 (same vrid, other family: allowed): family %s, group %v", v4.Family, v4.Group)
	}
	if !u6.IPv6() || len(u6.Peers) != 1 || u6.VRRP.Primary != netip.MustParseAddr("fd77::1") {
		t.Errorf("U6: %+v", u6)
	}
	if !n6.IPv6() || len(n6.VIPs) != 0 {
		t.Errorf("N6: family %s", n6.Family)
	}
	if !v6.Accept || v6.VMAC != nil {
		t.Errorf("defaults: accept %v (want keepalived's true), vmac %+v", v6.Accept, v6.VMAC)
	}
}

// Every mistake of family is named with its path.
func TestIPv6InstanceErrors(t *testing.T) {
	for _, tc := range []struct{ y, want string }{
		{"{name: A, interface: eth0, vrid: 1, vips: [fd77::1/64, 10.0.0.1/24]}", "instances[0].vips[1]: 10.0.0.1 is ipv4 in an ipv6 instance: one family per instance"},
		{"{name: A, interface: eth0, vrid: 1, version: 2, vips: [fd77::1/64]}", "instances[0].version: 2 with IPv6 addresses: VRRPv2 is IPv4 only"},
		{"{name: A, interface: eth0, vrid: 1, vips: [fd77::1/64], unicastPeers: [10.0.0.2]}", "instances[0].unicastPeers[0]: 10.0.0.2 is ipv4 and the instance ipv6"},
		{"{name: A, interface: eth0, vrid: 1, vips: [fd77::1/64], sourceAddress: 10.0.0.2}", "instances[0].sourceAddress: \"10.0.0.2\" is not a unicast ipv6 address"},
		{"{name: A, interface: eth0, vrid: 1, vips: [fd77::1/64], multicastGroup: 224.0.0.18}", "instances[0].multicastGroup: \"224.0.0.18\" is not a link-local IPv6 multicast address"},
		{"{name: A, interface: eth0, vrid: 1, vips: [fd77::1/64], multicastGroup: ff05::12}", "instances[0].multicastGroup: \"ff05::12\" is not a link-local IPv6 multicast address"},
		{"{name: A, interface: eth0, vrid: 1, family: ipv5, vips: [10.0.0.1/24]}", "instances[0].family: \"ipv5\": use ipv4 or ipv6"},
		{"{name: A, interface: eth0, vrid: 1, family: ipv4, vips: [fd77::1/64]}", "instances[0].vips[0]: fd77::1 is ipv6 in an ipv4 instance"},
		{"{name: A, interface: eth0, vrid: 1, vips: [fd77::1/64], v3ChecksumAsV2: true}", "instances[0].v3ChecksumAsV2: only for IPv4"},
		{"{name: A, interface: eth0, vrid: 1, vips: [fd77::1/64]}\n  - {name: B, interface: eth0, vrid: 1, vips: [fd77::2/64]}", "instances[1].vrid: vrid 1 is already used on eth0 by instances[0] (ipv6)"},
		{"{name: A, interface: eth0, vrid: 1, vips: [10.0.0.1/24], vmac: {name: this-name-is-too-long}}", "instances[0].vmac.name: \"this-name-is-too-long\" is not a valid interface name"},
		{"{name: A, interface: eth0, vrid: 1, vips: [10.0.0.1/24], vmac: {name: eth0}}", "instances[0].vmac.name: \"eth0\" is the instance's interface"},
		{"{name: A, interface: eth0, vrid: 1, vips: [10.0.0.1/24], vmac: {}}\n  - {name: B, interface: eth1, vrid: 1, vips: [10.0.1.1/24], vmac: {}}", "instances[1].vmac.name: vrrp.1 is already the virtual MAC interface of instances[0]"},
	} {
		_, err := resolveYAML(t, "  - "+tc.y+"\n")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.y, err, tc.want)
		}
	}
}

// use_vmac: the RFC 5798 MAC of the family, keepalived's default name,
// the VIPs of the family on it, the others on the interface.
func TestVMAC(t *testing.T) {
	a, err := resolveYAML(t, "  - {name: V4, interface: eth0, vrid: 51, vips: [10.0.0.1/24], excludedVips: [fd77::1/64, 10.0.0.2/24 dev eth1], vmac: {}}\n"+
		"  - {name: V6, interface: eth0, vrid: 51, vips: [fe80::1/64], vmac: {name: vrrp6.51, xmitBase: true}, acceptMode: false}\n"+
		"  - {name: U4, interface: eth0, vrid: 52, vips: [10.0.0.3/24], unicastPeers: [10.0.0.9], vmac: {}}\n")
	if err != nil {
		t.Fatal(err)
	}
	v4, v6, u4 := a.Instances[0], a.Instances[1], a.Instances[2]
	if v4.VMAC.Name != "vrrp.51" || v4.VMAC.MAC.String() != (net.HardwareAddr{0, 0, 0x5e, 0, 1, 51}).String() || v4.SocketDevice() != "vrrp.51" {
		t.Errorf("V4 vmac %+v, socket on %s", v4.VMAC, v4.SocketDevice())
	}
	held := v4.HeldVIPs()
	if held[0].Dev != "vrrp.51" || held[1].Dev != "" || held[2].Dev != "eth1" {
		t.Errorf("V4 held on %q %q %q: want vrrp.51, the interface (other family), eth1", held[0].Dev, held[1].Dev, held[2].Dev)
	}
	if v6.VMAC.MAC.String() != "00:00:5e:00:02:33" || v6.SocketDevice() != "eth0" || v6.Accept {
		t.Errorf("V6 vmac %+v, socket on %s, accept %v", v6.VMAC, v6.SocketDevice(), v6.Accept)
	}
	if !u4.VMAC.XmitBase {
		t.Errorf("unicast with a vmac sends from the interface (as keepalived forces it)")
	}
}

// The fleet document carries an IPv6 dual-master pair with virtual MACs:
// every node gets the family, the vmac and the accept mode; a mistake is
// reported with the document's path.
func TestFleetIPv6VMAC(t *testing.T) {
	doc := mustFleet(t, `kind: Fleet
nodes: [lb1, lb2]
instances:
  - name: VI_6
    interface: eth0
    vrid: 51
    vips: ["fe80::100/64", "fd77::100/64"]
    vmac: {}
    acceptMode: false
    priorities: {lb1: 200, lb2: 100}
`)
	if err := ValidateFleet(doc); err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{"lb1", "lb2"} {
		ins, _ := ForNode(doc, node)
		if len(ins) != 1 || ins[0].GetVmac() == nil || ins[0].AcceptMode == nil || ins[0].GetAcceptMode() {
			t.Fatalf("%s: %v", node, ins)
		}
	}
	bad := mustFleet(t, "kind: Fleet\nnodes: [lb1]\ninstances:\n  - {name: VI_6, interface: eth0, vrid: 51, version: 2, vips: [\"fd77::100/64\"]}\n")
	if err := ValidateFleet(bad); err == nil || !strings.Contains(err.Error(), "instances[0].version: 2 with IPv6 addresses") {
		t.Fatalf("v2 with IPv6 in a fleet document: %v", err)
	}
}

// IPv4 and IPv6 instances of one VRID, both with the default virtual MAC
// name: the IPv6 one is vrrp6.VRID, keepalived's fallback.
func TestVMACDefaultNamePerFamily(t *testing.T) {
	a, err := resolveYAML(t, "  - {name: V4, interface: eth0, vrid: 51, vips: [10.0.0.1/24], vmac: {}}\n"+
		"  - {name: V6, interface: eth0, vrid: 51, vips: [fe80::1/64], vmac: {}}\n")
	if err != nil {
		t.Fatal(err)
	}
	if a.Instances[0].VMAC.Name != "vrrp.51" || a.Instances[1].VMAC.Name != "vrrp6.51" {
		t.Fatalf("names %s, %s; want vrrp.51, vrrp6.51", a.Instances[0].VMAC.Name, a.Instances[1].VMAC.Name)
	}
}
