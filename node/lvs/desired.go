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
	// Inhibit keeps it at weight 0 when it fails (and while the sorry
	// server takes over) instead of removing it.
	Inhibit bool
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
	Service Service
	Reals   []Real
	Sorry   netip.AddrPort // zero: none
	// SorryForwarding is how packets reach the sorry server: the
	// service's, or its own (keepalived's sorry_server_lvs_method).
	SorryForwarding Forwarding
	// SorryInhibit keeps the sorry server at weight 0 while the service
	// is up instead of removing it (keepalived's sorry_server_inhibit).
	SorryInhibit bool
	Quorum       int
	Hysteresis   int
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
// 0 when it inhibits. While the service is down, the sorry server (if any)
// takes the connections in place of the real servers: they are removed,
// or those that inhibit stay at weight 0 beside it, as keepalived keeps
// them (ipwrapper.c perform_quorum_state removes them, and ipvswrapper.c
// ipvs_cmd turns the removal of an inhibited one into weight 0); without
// a sorry server the healthy ones stay. While the service is up, the sorry
// server is out, or at weight 0 with SorryInhibit.
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
		case r.Inhibit:
			vs.Dests[r.Addr] = DestAttrs{Forwarding: fwd, Thresholds: r.Thresholds}
		}
	}
	switch {
	case sorry:
		vs.Dests[g.Sorry] = DestAttrs{Weight: 1, Forwarding: g.SorryForwarding}
		out.SorryActive = true
	case g.Sorry.IsValid() && g.SorryInhibit:
		vs.Dests[g.Sorry] = DestAttrs{Weight: 0, Forwarding: g.SorryForwarding}
	}
	return out
}
