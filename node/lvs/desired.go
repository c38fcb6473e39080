package lvs

import "net/netip"

// Real is what decides a real server's programmed weight.
type Real struct {
	Addr    netip.AddrPort
	Weight  int  // configured
	Healthy bool // as its checks decide
	// Dynamic is the weight a dynamic exec check set; -1: none.
	Dynamic int
	// Drained: weight 0 until enabled. Override, when >= 0, is an
	// operator's weight (both from the API).
	Drained  bool
	Override int
	// Thresholds are its connection limits (unset: not haad's).
	Thresholds Thresholds
}

// Effective is the weight the real server takes connections with while it
// is healthy: drained 0, else the operator's, else the dynamic check's,
// else the configured one.
func (r Real) Effective() int {
	switch {
	case r.Drained:
		return 0
	case r.Override >= 0:
		return r.Override
	case r.Dynamic >= 0:
		return r.Dynamic
	}
	return r.Weight
}

// Group is one virtual server's configuration and its real servers'
// health: the input of Desired.
type Group struct {
	Service    Service
	Reals      []Real
	Sorry      netip.AddrPort // zero: none
	Quorum     int
	Hysteresis int
	// Inhibit keeps failed real servers with weight 0 instead of
	// removing them.
	Inhibit bool
}

// Outcome is what Desired decided for one virtual server.
type Outcome struct {
	VS *VirtualServer
	// Up: quorum is reached. HealthyWeight is what it is judged on.
	Up            bool
	HealthyWeight int
	// SorryActive: the sorry server takes the connections.
	SorryActive bool
}

// Desired returns the destinations g should have, given whether its
// quorum was up before (a new virtual server starts up, as keepalived's).
// With hysteresis H, an up service goes down below Quorum-H and a down one
// comes up at Quorum+H. A failed real server is removed, or kept at weight
// 0 with Inhibit. While the service is down, the sorry server (if any)
// takes the connections in place of the real servers: those that would be
// removed are, and with Inhibit they all stay at weight 0 beside it, as
// keepalived keeps them (ipvswrapper.c ipvs_cmd turns their removal into
// weight 0); without a sorry server the healthy ones stay.
func Desired(g Group, wasUp bool) Outcome {
	hw := 0
	for _, r := range g.Reals {
		if r.Healthy {
			hw += r.Effective()
		}
	}
	up := hw >= g.Quorum+g.Hysteresis
	if wasUp {
		up = hw >= g.Quorum-g.Hysteresis
	}
	vs := &VirtualServer{Service: g.Service, Dests: map[netip.AddrPort]DestAttrs{}}
	out := Outcome{VS: vs, Up: up, HealthyWeight: hw}
	fwd := g.Service.Forwarding
	sorry := !up && g.Sorry.IsValid()
	for _, r := range g.Reals {
		switch {
		case r.Healthy && !sorry:
			vs.Dests[r.Addr] = DestAttrs{Weight: r.Effective(), Forwarding: fwd, Thresholds: r.Thresholds}
		case g.Inhibit:
			vs.Dests[r.Addr] = DestAttrs{Forwarding: fwd, Thresholds: r.Thresholds}
		}
	}
	if sorry {
		vs.Dests[g.Sorry] = DestAttrs{Weight: 1, Forwarding: fwd}
		out.SorryActive = true
	}
	return out
}
