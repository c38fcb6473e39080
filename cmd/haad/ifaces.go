package main

import (
	"fmt"
	"net"

	"github.com/haa-dev/haa/node/config"
)

// missingInterfaces says, for --check, which interfaces the configuration
// names that do not exist here (exists reports one), once each, where
// first named. keepalived -t warns about them too; they are warnings, not
// errors: an interface may appear after the check (a VLAN, a bond, a
// container's veth).
func missingInterfaces(a *config.Agent, exists func(string) bool) []string {
	var out []string
	seen := map[string]bool{}
	note := func(name, where string) {
		if name == "" || seen[name] {
			return
		}
		seen[name] = true
		if !exists(name) {
			out = append(out, fmt.Sprintf("interface %s (%s) does not exist on this host: haad cannot run what uses it until it appears; create it, or correct the name", name, where))
		}
	}
	for _, in := range a.Instances {
		note(in.Interface, "instance "+in.VRRP.Name)
		for _, v := range in.VIPs {
			note(v.Dev, fmt.Sprintf("a virtual address of instance %s", in.VRRP.Name))
		}
		for _, r := range in.Routes {
			note(r.Dev, fmt.Sprintf("a virtual route of instance %s", in.VRRP.Name))
		}
	}
	for _, t := range a.Trackers {
		note(t.Iface, "tracker "+t.Name)
	}
	return out
}

// interfaceExists reports whether this host has an interface of that name.
func interfaceExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}
