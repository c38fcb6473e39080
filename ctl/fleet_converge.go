package ctl

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Converged checks whether VRRP has settled for the instances of doc, from
// every node's instances (ListInstances, by node name; the nodes missing
// from byNode are not judged). It returns what has not converged, one
// problem per line, e.g. "VI_1: two masters: lb1, lb2", "VI_2: no master",
// "VI_1: lb2 (priority 100) should be master, lb1 (80) is"; nil when all
// has. For each instance of the document, among the nodes that run an
// instance of that name now (during a rolling apply some still run the
// previous document's):
//   - none is INIT (still starting);
//   - exactly one is MASTER;
//   - if the node that should be master preempts (preempt, default true),
//     the master is the node with the highest effective priority among
//     those not in FAULT and not held as backup (maintenance, failover).
//     With equal priorities either is right: VRRP keeps the master it has
//     (the highest source address only wins between two masters).
//
// An instance that no node runs yet is not judged.
func Converged(byNode map[string][]*haav1.InstanceStatus, doc *haav1.Fleet) []string {
	nodes := slices.Sorted(maps.Keys(byNode))
	var problems []string
	for _, fi := range doc.GetInstances() {
		name := fi.GetName()
		type run struct {
			node string
			in   *haav1.InstanceStatus
		}
		var runs []run
		for _, n := range nodes {
			for _, in := range byNode[n] {
				if in.GetName() == name {
					runs = append(runs, run{n, in})
					break
				}
			}
		}
		if len(runs) == 0 {
			continue
		}
		var masters, inits []string
		var master *run
		var best *run
		for i, r := range runs {
			switch r.in.GetState() {
			case haav1.State_STATE_MASTER:
				masters = append(masters, r.node)
				master = &runs[i]
			case haav1.State_STATE_INIT:
				inits = append(inits, r.node)
			}
			if r.in.GetState() == haav1.State_STATE_FAULT || r.in.GetState() == haav1.State_STATE_INIT || r.in.GetHold() != "" {
				continue
			}
			if best == nil || better(r.in, best.in) {
				best = &runs[i]
			}
		}
		if len(inits) > 0 {
			problems = append(problems, fmt.Sprintf("%s: %s still INIT", name, strings.Join(inits, ", ")))
		}
		switch len(masters) {
		case 0:
			problems = append(problems, name+": no master")
		case 1:
			if best != nil && best.node != master.node && best.in.GetEffectivePriority() > master.in.GetEffectivePriority() &&
				preempts(doc, best.node, name) {
				problems = append(problems, fmt.Sprintf("%s: %s (priority %d) should be master, %s (%d) is",
					name, best.node, best.in.GetEffectivePriority(), master.node, master.in.GetEffectivePriority()))
			}
		case 2:
			problems = append(problems, fmt.Sprintf("%s: two masters: %s", name, strings.Join(masters, ", ")))
		default:
			problems = append(problems, fmt.Sprintf("%s: %d masters: %s", name, len(masters), strings.Join(masters, ", ")))
		}
	}
	return problems
}

// better orders the candidates for master: the highest effective
// priority, then the highest source address.
func better(a, b *haav1.InstanceStatus) bool {
	if a.GetEffectivePriority() != b.GetEffectivePriority() {
		return a.GetEffectivePriority() > b.GetEffectivePriority()
	}
	aa, _ := netip.ParseAddr(a.GetSourceAddress())
	ba, _ := netip.ParseAddr(b.GetSourceAddress())
	return aa.Compare(ba) > 0
}

// preempts tells whether node's instance name preempts a lower-priority
// master, according to doc (true when the document does not give the node
// that instance: it runs a configuration of its own, preempting by
// default).
func preempts(doc *haav1.Fleet, node, name string) bool {
	ins, _ := config.ForNode(doc, node)
	for _, in := range ins {
		if in.GetName() == name {
			return in.Preempt == nil || in.GetPreempt()
		}
	}
	return true
}

// VirtualServersConverged checks whether every director runs the virtual
// servers the document gives it as the document says, from each node's
// virtual servers (ListVirtualServers, by node name; the nodes missing
// from byNode are not judged). A director has converged when each of its
// virtual servers is there, with the document's service (address or
// mark, protocol, scheduler, forwarding) and real servers, and every real
// server that is healthy, neither drained nor given a weight by an
// operator, of a virtual server that is up, is in the kernel's table at
// the document's weight (at any weight under an exec check, which may set
// it). Health is the checks' business, not the
// rollout's: an unhealthy real server is not judged. It returns one
// problem per line, e.g. "web: lb2 has not programmed it", "web: lb1
// programs 10.0.0.2:80 at weight 0, the document says 3"; nil when all
// has converged.
func VirtualServersConverged(byNode map[string][]*haav1.VirtualServerStatus, doc *haav1.Fleet) []string {
	return wantVirtualServers(doc, slices.Collect(maps.Keys(byNode))).converged(byNode)
}

// directorsWant is what the document gives each director, resolved (or
// why it cannot be).
type directorsWant map[string]directorWant

type directorWant struct {
	vss []config.VirtualServer
	err error
}

// wantVirtualServers resolves the virtual servers the document gives each
// of nodes (those that direct none are left out): once per rollout, not
// at every poll.
func wantVirtualServers(doc *haav1.Fleet, nodes []string) directorsWant {
	out := directorsWant{}
	for _, node := range nodes {
		vss, _ := config.ForNodeVirtualServers(doc, node)
		if len(vss) == 0 {
			continue
		}
		want, err := config.Resolve(&haav1.AgentConfig{Name: node, VirtualServers: vss})
		if err != nil {
			out[node] = directorWant{err: err}
			continue
		}
		out[node] = directorWant{vss: want.VirtualServers}
	}
	return out
}

// converged is VirtualServersConverged of the directors in byNode.
func (w directorsWant) converged(byNode map[string][]*haav1.VirtualServerStatus) []string {
	var problems []string
	for _, node := range slices.Sorted(maps.Keys(byNode)) {
		want, ok := w[node]
		switch {
		case !ok:
			continue
		case want.err != nil:
			// The node accepted it (with its own configuration beside).
			problems = append(problems, fmt.Sprintf("%s: its virtual servers cannot be checked here: %v", node, want.err))
			continue
		}
		have := map[string]*haav1.VirtualServerStatus{}
		for _, st := range byNode[node] {
			have[st.GetName()] = st
		}
		for _, vs := range want.vss {
			st := have[vs.Name]
			if st == nil {
				problems = append(problems, fmt.Sprintf("%s: %s has not programmed it", vs.Name, node))
				continue
			}
			if d := serviceDiff(vs, st); d != "" {
				problems = append(problems, fmt.Sprintf("%s: %s runs %s", vs.Name, node, d))
				continue
			}
			rss := map[string]*haav1.RealServerStatus{}
			for _, r := range st.GetRealServers() {
				rss[r.GetAddress()] = r
			}
			for _, r := range vs.Reals {
				addr := r.Addr.String()
				rs := rss[addr]
				switch {
				case rs == nil:
					problems = append(problems, fmt.Sprintf("%s: %s lacks real server %s", vs.Name, node, addr))
				case int(rs.GetConfiguredWeight()) != r.Weight:
					problems = append(problems, fmt.Sprintf("%s: %s has %s at configured weight %d, the document says %d", vs.Name, node, addr, rs.GetConfiguredWeight(), r.Weight))
				case !rs.GetHealthy() || rs.GetDrained() || rs.WeightOverride != nil || !st.GetUp() || st.GetSorryActive():
					// not the rollout's to judge
				case !rs.GetProgrammed():
					problems = append(problems, fmt.Sprintf("%s: %s has not programmed %s", vs.Name, node, addr))
				case rs.GetCheck() == "exec":
					// A dynamic exec check sets the weight itself.
				case int(rs.GetWeight()) != r.Weight:
					problems = append(problems, fmt.Sprintf("%s: %s programs %s at weight %d, the document says %d", vs.Name, node, addr, rs.GetWeight(), r.Weight))
				}
			}
		}
	}
	return problems
}

// serviceDiff says how a virtual server's status differs from its
// document's service ("" when it does not).
func serviceDiff(vs config.VirtualServer, st *haav1.VirtualServerStatus) string {
	k := vs.Service.Key
	switch {
	case k.FWMark != st.GetFwmark():
		return fmt.Sprintf("fwmark %d, the document says %d", st.GetFwmark(), k.FWMark)
	case k.FWMark == 0 && (st.GetAddress() != k.Addr.String() || st.GetProtocol() != k.Proto.String()):
		return fmt.Sprintf("%s %s, the document says %s %s", st.GetProtocol(), st.GetAddress(), k.Proto, k.Addr)
	case st.GetScheduler() != vs.Service.Scheduler:
		return fmt.Sprintf("scheduler %s, the document says %s", st.GetScheduler(), vs.Service.Scheduler)
	case st.GetForwarding() != vs.Service.Forwarding.String():
		return fmt.Sprintf("forwarding %s, the document says %s", st.GetForwarding(), vs.Service.Forwarding)
	}
	return ""
}
