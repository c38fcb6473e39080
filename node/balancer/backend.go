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
	v, reason, err := Decide(requested)
	if err != nil {
		return nil, "", err
	}
	if v.Name() == "ipvs" {
		b, err = chooseIPVS(opts)
	} else {
		b, err = chooseNFT(opts)
	}
	return b, reason, err
}

// Validator is what checking a configuration against a backend takes: its
// name and what it supports, without opening it.
type Validator interface {
	Name() string
	Supports(s Service) error
}

// Decide says which backend Choose opens for requested and why, loading
// the ip_vs module first as Choose does, and returns that backend's
// Validator (a DestChecker too where the backend restricts real servers)
// without opening it; an error when requested cannot be had here.
func Decide(requested string) (Validator, string, error) {
	switch requested {
	case "", "auto", "ipvs", "nftables":
	default:
		return nil, "", fmt.Errorf("unknown load-balancing backend %q: use auto, ipvs or nftables", requested)
	}
	if requested != "nftables" && !hasIPVS() {
		chooseLoadIPVS()
	}
	if requested == "ipvs" && !hasIPVS() {
		return nil, "", fmt.Errorf("loadBalancer.backend is ipvs but the kernel has no IPVS (%s missing): load the ip_vs module (modprobe ip_vs) or set loadBalancer.backend: nftables (or auto)", chooseProcIPVS)
	}
	name, reason := Preferred(requested)
	if name == "ipvs" {
		return (*IPVS)(nil), reason, nil
	}
	return (*NFTables)(nil), reason, nil
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
