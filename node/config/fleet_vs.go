package config

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/haa-dev/haa/node/lvs"
	"github.com/haa-dev/haa/node/vip"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// ForNodeVirtualServers returns the virtual servers the document gives
// node (those it directs: Directors), in document order, with the path of
// each in the document ("virtualServers[2]"). Each is the
// FleetVirtualServer's VirtualServer fields (1..20) with every field of
// the node's override replacing the virtual server's (its name ignored:
// ValidateFleet refuses it). The virtual servers are fresh copies.
func ForNodeVirtualServers(doc *haav1.Fleet, node string) (vss []*haav1.VirtualServer, paths []string) {
	if node == "" || !slices.Contains(doc.GetNodes(), node) {
		return nil, nil
	}
	for k, fv := range doc.GetVirtualServers() {
		if !slices.Contains(Directors(doc, fv), node) {
			continue
		}
		vss = append(vss, nodeVirtualServer(fv, node))
		paths = append(paths, fmt.Sprintf("virtualServers[%d]", k))
	}
	return vss, paths
}

// Directors are the nodes that balance fv: its directors, or else the
// nodes of the document that run an instance holding its address (in vips
// or excludedVips), in the order of the document's nodes.
func Directors(doc *haav1.Fleet, fv *haav1.FleetVirtualServer) []string {
	if len(fv.GetDirectors()) > 0 {
		return fv.GetDirectors()
	}
	ap, _ := parseAddrPort(fv.GetAddress(), false)
	if !ap.IsValid() {
		return nil
	}
	var out []string
	for _, node := range doc.GetNodes() {
		for _, fi := range doc.GetInstances() {
			if runsOn(fi, node) && holds(fi, ap.Addr()) && !slices.Contains(out, node) {
				out = append(out, node)
			}
		}
	}
	return out
}

// holds reports whether fi has a among its vips or excludedVips.
func holds(fi *haav1.FleetInstance, a netip.Addr) bool {
	for _, s := range append(slices.Clone(fi.GetVips()), fi.GetExcludedVips()...) {
		if v, err := vip.Parse(s); err == nil && v.Prefix.Addr() == a {
			return true
		}
	}
	return false
}

// baseVirtualServer copies fv's VirtualServer fields (1..20) into a new
// VirtualServer; directors and overrides (100, 101) are dropped.
func baseVirtualServer(fv *haav1.FleetVirtualServer) *haav1.VirtualServer {
	vs := &haav1.VirtualServer{}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(fv)
	if err == nil {
		err = proto.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, vs)
	}
	if err != nil {
		panic(fmt.Sprintf("copy fleet virtual server: %v", err)) // cannot happen
	}
	return vs
}

// nodeVirtualServer is the virtual server fv gives node.
func nodeVirtualServer(fv *haav1.FleetVirtualServer, node string) *haav1.VirtualServer {
	vs := baseVirtualServer(fv)
	if ov := fv.GetOverrides()[node]; ov != nil {
		ovc := proto.Clone(ov).(*haav1.VirtualServer)
		m, dst := ovc.ProtoReflect(), vs.ProtoReflect()
		m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			if fd.Name() == "name" {
				m.Clear(fd)
			} else {
				dst.Clear(fd)
			}
			return true
		})
		proto.Merge(vs, ovc)
	}
	return vs
}

// checkVirtualServers checks the document's virtual servers: each valid by
// the rules of an agent's own (names and services unique in the
// document), its directors and the keys of its overrides nodes of the
// document (an override's node a director), an override's name unset, a
// virtual server without directors only where an instance of the document
// holds its address; each director's version (with its override) valid.
func (c *fleetCheck) checkVirtualServers(p *problems) {
	seen := &vsSeen{names: map[string]int{}, keys: map[lvs.Key]int{}}
	for k, fv := range c.doc.GetVirtualServers() {
		path := fmt.Sprintf("virtualServers[%d]", k)
		base := baseVirtualServer(fv)
		resolveVirtualServer(p, path, k, base, "", seen)
		for i, d := range fv.GetDirectors() {
			switch {
			case !c.isNode[d]:
				p.add(fmt.Sprintf("%s.directors[%d]", path, i), "%q is not a node of the document: add it to nodes, or fix the name", d)
			case slices.Index(fv.GetDirectors(), d) < i:
				p.add(fmt.Sprintf("%s.directors[%d]", path, i), "%q is listed twice", d)
			}
		}
		directors := Directors(c.doc, fv)
		if len(directors) == 0 {
			what := "no instance of the document holds " + fv.GetAddress()
			if fv.GetAddress() == "" {
				what = "it has no address to find its instance by"
			}
			p.add(path+".directors", "required: %s; name the nodes that balance it, e.g. directors: [lb1, lb2]", what)
		}
		// What the virtual server's own fields bring, to tell an
		// override's own problems from them.
		var own problems
		if len(fv.GetOverrides()) > 0 {
			resolveVirtualServer(&own, path, k, base, "", &vsSeen{names: map[string]int{}, keys: map[lvs.Key]int{}})
		}
		keys := make([]string, 0, len(fv.GetOverrides()))
		for node := range fv.GetOverrides() {
			keys = append(keys, node)
		}
		sort.Strings(keys)
		for _, node := range keys {
			op := fmt.Sprintf("%s.overrides.%s", path, node)
			switch {
			case !c.isNode[node]:
				p.add(op, "%q is not a node of the document", node)
				continue
			case !slices.Contains(directors, node):
				p.add(op, "%s is not a director of this virtual server (directors: %v): an override of it does nothing", node, directors)
				continue
			case fv.GetOverrides()[node].GetName() != "":
				p.add(op+".name", "cannot be overridden: the virtual server has one name on every director")
				continue
			}
			// The override's problems alone, under its path.
			var q problems
			resolveVirtualServer(&q, path, k, nodeVirtualServer(fv, node), "", &vsSeen{names: map[string]int{}, keys: map[lvs.Key]int{}})
			for _, f := range q {
				if !slices.Contains(own, f) {
					p.add(op+f.Path[len(path):], "%s", f.Msg)
				}
			}
		}
	}
}

// VirtualServerName is the name a virtual server goes by: its name, or the
// default its service gives it ("10.0.0.100:80/tcp", "fwmark:7"); "" when
// it has neither (it is invalid).
func VirtualServerName(s *haav1.VirtualServer) string {
	if s.GetName() != "" {
		return s.GetName()
	}
	var p problems
	return resolveVirtualServer(&p, "virtualServers[0]", 0, s, "", &vsSeen{names: map[string]int{}, keys: map[lvs.Key]int{}}).Name
}
