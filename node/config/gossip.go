package config

import (
	"net"
	"net/netip"
	"path/filepath"
	"strconv"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// DefaultGossipPort is memberlist's port, used when an address has none.
const DefaultGossipPort = 7946

// maxLabel is memberlist's limit on a label.
const maxLabel = 255

// GossipAddr splits a gossip address "HOST[:PORT]" (port default 7946).
func GossipAddr(s string) (host string, port int, err error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		// No port: the whole is the host.
		if _, perr := netip.ParseAddr(s); perr == nil || hostRE.MatchString(s) {
			return s, DefaultGossipPort, nil
		}
		return "", 0, err
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return "", 0, strconv.ErrRange
	}
	if _, perr := netip.ParseAddr(h); perr != nil && !hostRE.MatchString(h) {
		return "", 0, strconv.ErrSyntax
	}
	return h, int(n), nil
}

// validateGossip checks the gossip settings: an IP address to bind, and
// encryption unless the address is loopback or insecure says otherwise.
func validateGossip(p *problems, g *haav1.Gossip) {
	const path = "gossip"
	var bindIP netip.Addr
	switch host, _, err := GossipAddr(g.GetBind()); {
	case g.GetBind() == "":
		p.add(path+".bind", "required: the address to gossip on, e.g. \"10.0.0.1:7946\"")
	case err != nil:
		p.add(path+".bind", "%q is not ADDRESS[:PORT], e.g. \"10.0.0.1:7946\"", g.GetBind())
	default:
		ip, err := netip.ParseAddr(host)
		if err != nil {
			p.add(path+".bind", "%q: give an IP address of this node, not a host name", g.GetBind())
		}
		bindIP = ip
	}
	if a := g.GetAdvertise(); a != "" {
		host, _, err := GossipAddr(a)
		if _, perr := netip.ParseAddr(host); err != nil || perr != nil {
			p.add(path+".advertise", "%q is not ADDRESS[:PORT], e.g. \"203.0.113.7:7946\"", a)
		} else if ip, _ := netip.ParseAddr(host); ip.IsUnspecified() {
			p.add(path+".advertise", "%q: give the address the other nodes reach this one at", a)
		}
	} else if bindIP.IsValid() && bindIP.IsUnspecified() {
		p.add(path+".advertise", "required when bind is %s: the address the other nodes reach this one at", bindIP)
	}
	for i, j := range g.GetJoin() {
		if _, _, err := GossipAddr(j); err != nil {
			p.add(path+".join["+strconv.Itoa(i)+"]", "%q is not HOST[:PORT], e.g. \"10.0.0.2:7946\"", j)
		}
	}
	loopback := bindIP.IsValid() && bindIP.IsLoopback()
	switch kf := g.GetKeyFile(); {
	case kf != "" && g.GetInsecure():
		p.add(path+".insecure", "set together with keyFile: remove one of them (insecure means clear text)")
	case kf != "" && !filepath.IsAbs(kf):
		p.add(path+".keyFile", "%q must be an absolute path", kf)
	case kf == "" && !g.GetInsecure() && bindIP.IsValid() && !loopback:
		p.add(path+".keyFile", "required when bind is not a loopback address: create a key with `haactl keygen > /etc/haa/gossip.key; chmod 600 /etc/haa/gossip.key` and give the same one to every node, or set insecure: true (labs only)")
	}
	if len(g.GetLabel()) > maxLabel {
		p.add(path+".label", "%d bytes: at most %d", len(g.GetLabel()), maxLabel)
	}
}
