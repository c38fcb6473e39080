package keepalived

import (
	"strings"
	"testing"
)

// IPv6 instances, use_vmac, vmac_xmit_base, accept, no_accept,
// native_ipv6, vrrp_mcast_group6 and IPv6 unicast peers convert with
// keepalived's meaning.
func TestIPv6AndVMACConverted(t *testing.T) {
	src := `global_defs {
  vrrp_mcast_group6 ff02::13
}
vrrp_instance V6 {
  interface eth0
  virtual_router_id 51
  use_vmac vrrp6.51
  no_accept
  virtual_ipaddress {
    fe80::100/64
    fd77::100/64
    10.0.0.5/24
  }
}
vrrp_instance U6 {
  interface eth0
  virtual_router_id 52
  version 2
  use_vmac
  unicast_peer {
    fd77::2
  }
  virtual_ipaddress {
    fd77::101/64
  }
}
vrrp_instance N6 {
  interface eth0
  virtual_router_id 53
  native_ipv6
  accept
  no_virtual_ipaddress
}
`
	cfg, warns := ok(t, src, Options{})
	ins := cfg.GetInstances()
	v6, u6, n6 := ins[0], ins[1], ins[2]
	if v6.GetFamily() != "ipv6" || v6.GetVersion() != 3 || strings.Join(v6.GetVips(), ",") != "fe80::100/64,fd77::100/64" {
		t.Errorf("V6: family %q version %d vips %v", v6.GetFamily(), v6.GetVersion(), v6.GetVips())
	}
	if v6.GetVmac().GetName() != "vrrp6.51" || v6.AcceptMode == nil || v6.GetAcceptMode() || v6.GetMulticastGroup() != "ff02::13" {
		t.Errorf("V6: vmac %v accept %v group %q", v6.GetVmac(), v6.AcceptMode, v6.GetMulticastGroup())
	}
	if !hasProblem(warns, 12, "virtual_ipaddress", "10.0.0.5 is IPv4 in an IPv6 instance", "address family must match") {
		t.Errorf("the IPv4 address of V6:\n%s", problemLines(warns))
	}
	if u6.GetVersion() != 3 || !u6.GetVmac().GetXmitBase() || u6.GetUnicastPeers()[0] != "fd77::2" {
		t.Errorf("U6: version %d (v2 with IPv6: keepalived runs 3) vmac %v peers %v", u6.GetVersion(), u6.GetVmac(), u6.GetUnicastPeers())
	}
	if !hasProblem(warns, 18, "version", "VRRPv2 is IPv4 only") || !hasProblem(warns, 19, "use_vmac", "vmac_xmit_base") {
		t.Errorf("U6 warnings:\n%s", problemLines(warns))
	}
	if n6.GetFamily() != "ipv6" || !n6.GetNoVips() || !n6.GetAcceptMode() {
		t.Errorf("N6: %v", n6)
	}
	// A global first address: keepalived warns and goes on; in strict
	// mode it refuses the instance.
	_, warns = ok(t, "vrrp_instance A {\n interface eth0\n virtual_router_id 7\n virtual_ipaddress {\n  fd77::100/64\n }\n}\n", Options{})
	if !hasProblem(warns, 5, "virtual_ipaddress", "should be link-local") {
		t.Errorf("global first address:\n%s", problemLines(warns))
	}
	_, warns = ok(t, "vrrp_instance A {\n interface eth0\n strict_mode\n virtual_router_id 7\n virtual_ipaddress {\n  fd77::100/64\n }\n}\n", Options{})
	if !hasProblem(warns, 6, "virtual_ipaddress", "must be link-local", "runs the instance as written") {
		t.Errorf("strict mode, global first address:\n%s", problemLines(warns))
	}
	// Strict mode resets vmac_xmit_base, and accept with VRRPv2.
	cfg, warns = ok(t, "global_defs {\n vrrp_strict\n}\n"+instance(" use_vmac\n vmac_xmit_base\n accept\n"), Options{})
	if in := cfg.GetInstances()[0]; in.GetVmac().GetXmitBase() || in.AcceptMode == nil || in.GetAcceptMode() {
		t.Errorf("strict mode: vmac %v, acceptMode %v", in.GetVmac(), in.AcceptMode)
	}
	if !hasProblem(warns, 11, "vmac_xmit_base", "resets vmac_xmit_base") || !hasProblem(warns, 12, "accept", "VRRPv2 has no accept mode") {
		t.Errorf("strict mode warnings:\n%s", problemLines(warns))
	}
	// Strict mode: no_accept unless the address owner.
	cfg, _ = ok(t, "global_defs {\n vrrp_strict\n}\n"+instance(""), Options{})
	if in := cfg.GetInstances()[0]; in.AcceptMode == nil || in.GetAcceptMode() {
		t.Errorf("strict mode: acceptMode %v, want false", in.AcceptMode)
	}
}
