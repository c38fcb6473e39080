package balancer

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"

	"github.com/haa-dev/haa/node/lvs"
	"github.com/haa-dev/haa/node/lvs/ipvs"
	"github.com/haa-dev/haa/node/lvs/nft"
)

// kernel is how the backends are found and opened: the real kernel by
// default (linuxKernel), a temporary file and fakes in tests.
type kernel struct {
	// procIPVS exists when the kernel has IPVS.
	procIPVS string
	// loadIPVS asks the kernel to load the ip_vs module, as keepalived
	// does at start: on most distributions it is there but not loaded
	// until someone needs it.
	loadIPVS func()
	// newIPVS opens IPVS in the namespace at netns ("": haad's own),
	// logging to l.
	newIPVS func(netns string, l *slog.Logger) (lvs.Backend, error)
	newNFT  func(opts ...nft.Option) (lvs.Backend, error)
}

var linuxKernel = kernel{
	procIPVS: ipvs.ProcFile,
	loadIPVS: func() {
		if path, err := exec.LookPath("modprobe"); err == nil {
			_ = exec.Command(path, "-q", "ip_vs").Run()
		}
	},
	newIPVS: func(netns string, l *slog.Logger) (lvs.Backend, error) {
		opts := []ipvs.Option{ipvs.WithLogger(l)}
		if netns != "" {
			opts = append(opts, ipvs.WithNetNS(netns))
		}
		b, err := ipvs.New(opts...)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return b, nil
	},
	newNFT: func(opts ...nft.Option) (lvs.Backend, error) {
		b, err := nft.New(opts...)
		if err != nil {
			return nil, err
		}
		return b, nil
	},
}

// ChooseOption configures Choose.
type ChooseOption func(*chooseConfig)

type chooseConfig struct {
	netns int
	log   *slog.Logger
}

// WithNetNS makes either backend program the network namespace of the open
// file descriptor fd instead of haad's own (tests and benchmarks).
func WithNetNS(fd int) ChooseOption { return func(c *chooseConfig) { c.netns = fd } }

// WithLogger makes the backend log what it decides on its own (ipvs: a
// service found in the table and taken over) to l.
func WithLogger(l *slog.Logger) ChooseOption { return func(c *chooseConfig) { c.log = l } }

// Choose opens the load-balancing backend for loadBalancer.backend
// requested ("", "auto", "ipvs" or "nftables") and says why it is the one:
// "auto" (or "") takes IPVS where the kernel has it (/proc/net/ip_vs) and
// nftables DNAT elsewhere; an explicit choice is "configured", and ipvs
// without IPVS in the kernel is an error.
func Choose(requested string, opts ...ChooseOption) (lvs.Backend, string, error) {
	return linuxKernel.choose(requested, opts...)
}

// Decide says which backend Choose opens for requested and why, loading
// the ip_vs module first as Choose does, and returns that backend's
// Validator (a DestChecker too where the backend restricts real servers)
// without opening it; an error when requested cannot be had here.
func Decide(requested string) (lvs.Validator, string, error) { return linuxKernel.decide(requested) }

// Preferred says which backend Choose opens for requested, and why,
// without opening it.
func Preferred(requested string) (name, reason string) { return linuxKernel.preferred(requested) }

func (k kernel) choose(requested string, opts ...ChooseOption) (lvs.Backend, string, error) {
	v, reason, err := k.decide(requested)
	if err != nil {
		return nil, "", err
	}
	cfg := chooseConfig{netns: -1}
	for _, o := range opts {
		o(&cfg)
	}
	var b lvs.Backend
	if v.Name() == "ipvs" {
		netns := ""
		if cfg.netns >= 0 {
			netns = "/proc/self/fd/" + strconv.Itoa(cfg.netns)
		}
		b, err = k.newIPVS(netns, cfg.log)
	} else {
		var nopts []nft.Option
		if cfg.netns >= 0 {
			nopts = append(nopts, nft.WithNetNS(cfg.netns))
		}
		b, err = k.newNFT(nopts...)
	}
	if err != nil {
		return nil, "", err
	}
	return b, reason, nil
}

func (k kernel) decide(requested string) (lvs.Validator, string, error) {
	switch requested {
	case "", "auto", "ipvs", "nftables":
	default:
		return nil, "", fmt.Errorf("unknown load-balancing backend %q: use auto, ipvs or nftables", requested)
	}
	if requested != "nftables" && !k.hasIPVS() {
		k.loadIPVS()
	}
	if requested == "ipvs" && !k.hasIPVS() {
		return nil, "", fmt.Errorf("loadBalancer.backend is ipvs but the kernel has no IPVS (%s missing): load the ip_vs module (modprobe ip_vs) or set loadBalancer.backend: nftables (or auto)", k.procIPVS)
	}
	name, reason := k.preferred(requested)
	if name == "ipvs" {
		return (*ipvs.Backend)(nil), reason, nil
	}
	return (*nft.Backend)(nil), reason, nil
}

func (k kernel) preferred(requested string) (name, reason string) {
	switch {
	case requested == "ipvs" || requested == "nftables":
		return requested, "configured"
	case k.hasIPVS():
		return "ipvs", "the kernel has IPVS (" + k.procIPVS + ")"
	}
	return "nftables", "the kernel has no IPVS (" + k.procIPVS + " missing): using nftables DNAT"
}

func (k kernel) hasIPVS() bool {
	_, err := os.Stat(k.procIPVS)
	return err == nil
}
