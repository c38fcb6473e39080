package lvs

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
)

// chooseProcIPVS exists when the kernel has IPVS (a variable for tests).
var chooseProcIPVS = "/proc/net/ip_vs"

// chooseLoadIPVS asks the kernel to load the ip_vs module, as keepalived
// does at start: on most distributions it is there but not loaded until
// someone needs it (a variable for tests).
var chooseLoadIPVS = func() {
	if path, err := exec.LookPath("modprobe"); err == nil {
		_ = exec.Command(path, "-q", "ip_vs").Run()
	}
}

// chooseNewIPVS opens the IPVS backend (a variable for tests).
var chooseNewIPVS = func(opts ...IPVSOption) (Backend, error) { return NewIPVS(opts...) }

// Choose opens the load-balancing backend for loadBalancer.backend
// requested ("", "auto", "ipvs" or "nftables") and says why it is the one:
// "auto" (or "") takes IPVS where the kernel has it (/proc/net/ip_vs) and
// nftables DNAT elsewhere; an explicit choice is "configured", and ipvs
// without IPVS in the kernel is an error. opts configure the nftables
// backend; WithNetNS also points the IPVS backend at that namespace.
func Choose(requested string, opts ...NFTOption) (b Backend, reason string, err error) {
	if requested != "nftables" && !hasIPVS() {
		chooseLoadIPVS()
	}
	name, reason := Preferred(requested)
	switch {
	case requested != "" && requested != "auto" && requested != "ipvs" && requested != "nftables":
		return nil, "", fmt.Errorf("unknown load-balancing backend %q: use auto, ipvs or nftables", requested)
	case requested == "ipvs" && !hasIPVS():
		return nil, "", fmt.Errorf("loadBalancer.backend is ipvs but the kernel has no IPVS (%s missing): load the ip_vs module (modprobe ip_vs) or set loadBalancer.backend: nftables (or auto)", chooseProcIPVS)
	case name == "ipvs":
		b, err = chooseIPVS(opts)
	default:
		b, err = chooseNFT(opts)
	}
	return b, reason, err
}

// Preferred says which backend Choose opens for requested, and why,
// without opening it.
func Preferred(requested string) (name, reason string) {
	switch {
	case requested == "ipvs" || requested == "nftables":
		return requested, "configured"
	case hasIPVS():
		return "ipvs", "the kernel has IPVS (" + chooseProcIPVS + ")"
	}
	return "nftables", "the kernel has no IPVS (" + chooseProcIPVS + " missing): using nftables DNAT"
}

func hasIPVS() bool {
	_, err := os.Stat(chooseProcIPVS)
	return err == nil
}

func chooseNFT(opts []NFTOption) (Backend, error) {
	b, err := NewNFTables(opts...)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return b, nil
}

func chooseIPVS(opts []NFTOption) (Backend, error) {
	cfg := nftConfig{netns: -1}
	for _, o := range opts {
		o(&cfg)
	}
	var iopts []IPVSOption
	if cfg.netns >= 0 {
		iopts = append(iopts, WithIPVSNetNS("/proc/self/fd/"+strconv.Itoa(cfg.netns)))
	}
	b, err := chooseNewIPVS(iopts...)
	if err != nil {
		return nil, err
	}
	return b, nil
}
