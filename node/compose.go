package node

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// composed is a node's running configuration: its own (local) configuration
// with the instances, trackers and sync groups the fleet document gives it
// appended.
type composed struct {
	cfg    *haav1.AgentConfig
	nLocal int
	// fleetPaths[i] is where instance nLocal+i comes from in the document.
	fleetPaths []string
	// The same for trackers, sync groups and virtual servers.
	nLocalTrackers, nLocalGroups, nLocalVS int
	trackerPaths, groupPaths, vsPaths      []string
}

// fleetVirtualServers returns the virtual servers that come from the
// fleet, in document order.
func (c composed) fleetVirtualServers() []*haav1.VirtualServer {
	return c.cfg.GetVirtualServers()[c.nLocalVS:]
}

// fleetNames returns the names of the instances that come from the fleet.
func (c composed) fleetNames() []string {
	var out []string
	for _, in := range c.cfg.GetInstances()[c.nLocal:] {
		out = append(out, in.GetName())
	}
	return out
}

// nodeName is the name a configuration gives the node: the host name when
// it gives none, as config.Resolve decides.
func nodeName(local *haav1.AgentConfig) string {
	if local.GetName() != "" {
		return local.GetName()
	}
	h, _ := os.Hostname()
	return h
}

// compose appends the document's instances for this node to local, and the
// trackers and sync groups of the document the node runs (ForNodeExtras).
// A name of an instance, tracker or sync group used by both is an error
// (reported from the side being applied: fleet paths when fleetSide, local
// paths otherwise).
func compose(local *haav1.AgentConfig, doc *haav1.Fleet, fleetSide bool) (composed, error) {
	out := composed{cfg: local, nLocal: len(local.GetInstances()),
		nLocalTrackers: len(local.GetTrackers()), nLocalGroups: len(local.GetSyncGroups()),
		nLocalVS: len(local.GetVirtualServers())}
	if doc == nil {
		return out, nil // local itself: nothing modifies a composition
	}
	out.cfg = proto.Clone(local).(*haav1.AgentConfig)
	node := nodeName(local)
	ins, paths := config.ForNode(doc, node)
	trackers, groups, trackerPaths, groupPaths := config.ForNodeExtras(doc, node)
	vss, vsPaths := config.ForNodeVirtualServers(doc, node)
	var fields []config.FieldError
	clash := func(what, list string, localNames, fleetNames []string, fleetPaths []string) {
		at := map[string]int{}
		for j, name := range localNames {
			if _, dup := at[name]; !dup {
				at[name] = j
			}
		}
		for k, name := range fleetNames {
			j, dup := at[name]
			if !dup {
				continue
			}
			if fleetSide {
				fields = append(fields, config.FieldError{Path: fleetPaths[k] + ".name",
					Msg: fmt.Sprintf("%q is also %s of node %s's own configuration (its %s[%d]): rename one, or remove it from the node's file",
						name, what, node, list, j)})
			} else {
				fields = append(fields, config.FieldError{Path: fmt.Sprintf("%s[%d].name", list, j),
					Msg: fmt.Sprintf("%q is also %s of the fleet document (%s): rename one, or remove it from the document",
						name, what, fleetPaths[k])})
			}
		}
	}
	clash("a tracker", "trackers", namesOf(local.GetTrackers()), namesOf(trackers), trackerPaths)
	clash("an instance", "instances", namesOf(local.GetInstances()), namesOf(ins), paths)
	clash("a sync group", "syncGroups", namesOf(local.GetSyncGroups()), namesOf(groups), groupPaths)
	clash("a virtual server", "virtualServers", namesOf(local.GetVirtualServers()), namesOf(vss), vsPaths)
	if len(fields) > 0 {
		return composed{}, &config.Error{Fields: fields}
	}
	out.cfg.Instances = append(out.cfg.Instances, ins...)
	out.fleetPaths = paths
	out.cfg.Trackers = append(out.cfg.Trackers, trackers...)
	out.trackerPaths = trackerPaths
	out.cfg.SyncGroups = append(out.cfg.SyncGroups, groups...)
	out.groupPaths = groupPaths
	out.cfg.VirtualServers = append(out.cfg.VirtualServers, vss...)
	out.vsPaths = vsPaths
	return out, nil
}

// namesOf returns the names of instances, trackers or sync groups.
func namesOf[T interface{ GetName() string }](list []T) []string {
	out := make([]string, len(list))
	for i, x := range list {
		out[i] = x.GetName()
	}
	return out
}

// topPathRE matches a path into one of the composed lists at the top of
// the configuration: at the start, or after a character that cannot be
// part of a path ("syncGroups[0].instances[1]" is not an instance's path).
var topPathRE = regexp.MustCompile(`(^|[^\w.])(instances|trackers|syncGroups|virtualServers)\[(\d+)\]`)

// repath rewrites the instance, tracker and sync group paths of a
// validation error of a composed configuration (instances[i] of the
// composition) into paths of what the user wrote: the document's
// ("instances[k]") and the node's own file ("local.instances[j]") when
// fleetSide, the file's ("instances[j]") and the document's
// ("fleet.instances[k]") otherwise.
func (c composed) repath(err error, fleetSide bool) error {
	var ce *config.Error
	if !errors.As(err, &ce) {
		return err
	}
	rewrite := func(s string) string {
		return topPathRE.ReplaceAllStringFunc(s, func(m string) string {
			sub := topPathRE.FindStringSubmatch(m)
			before, list, top := sub[1], sub[2], m[len(sub[1]):]
			i, _ := strconv.Atoi(sub[3])
			nLocal, paths := c.nLocal, c.fleetPaths
			switch list {
			case "trackers":
				nLocal, paths = c.nLocalTrackers, c.trackerPaths
			case "syncGroups":
				nLocal, paths = c.nLocalGroups, c.groupPaths
			case "virtualServers":
				nLocal, paths = c.nLocalVS, c.vsPaths
			}
			switch {
			case i >= nLocal && i-nLocal < len(paths):
				p := paths[i-nLocal]
				if !fleetSide {
					p = "fleet." + p
				}
				return before + p
			case fleetSide:
				return before + "local." + top
			}
			return m
		})
	}
	out := &config.Error{Source: ce.Source}
	for _, f := range ce.Fields {
		out.Fields = append(out.Fields, config.FieldError{Path: rewrite(f.Path), Msg: rewrite(f.Msg)})
	}
	return out
}

// checkSubnets reports the fleet instances' VIPs (instances from on) that
// lie outside every subnet of the device they go on: on a fleet, where one
// document serves many nodes, such a VIP is almost always a typo or the
// wrong node. (A node's own file may still put a VIP anywhere, as
// keepalived allows.)
func checkSubnets(h Host, want *config.Agent, from int) error {
	vips := map[netip.Addr]bool{}
	for _, in := range want.Instances {
		for _, v := range in.VIPs {
			vips[v.Prefix.Addr()] = true
		}
	}
	var fields []config.FieldError
	subnets := map[string][]netip.Prefix{}
	for i := from; i < len(want.Instances); i++ {
		in := want.Instances[i]
		for k, v := range in.VIPs {
			if v.Prefix.Addr().Is6() {
				continue // an excluded IPv6 address: Host.Addrs knows IPv4 subnets only
			}
			dev := v.Device(in.Interface)
			nets, ok := subnets[dev]
			if !ok {
				nets = deviceSubnets(h, dev, vips)
				subnets[dev] = nets
			}
			addr := v.Prefix.Addr()
			inside := false
			for _, n := range nets {
				inside = inside || n.Contains(addr)
			}
			if !inside {
				have := "no IPv4 address"
				if len(nets) > 0 {
					have = "subnets " + joinPrefixes(nets)
				}
				fields = append(fields, config.FieldError{Path: fmt.Sprintf("instances[%d].%s", i, in.VIPField(k)),
					Msg: fmt.Sprintf("%s is outside the subnets of %s on node %s (%s): use an address of its subnet, or name the device that has it (\"ADDR dev IF\")",
						addr, dev, want.Name, have)})
			}
		}
	}
	if len(fields) > 0 {
		return &config.Error{Fields: fields}
	}
	return nil
}

// deviceSubnets returns the IPv4 networks of a device's own addresses (not
// VIPs); none when the device is missing (checkNode reports that).
func deviceSubnets(h Host, dev string, vips map[netip.Addr]bool) []netip.Prefix {
	addrs, _ := h.Addrs(dev)
	var out []netip.Prefix
	for _, a := range addrs {
		if !vips[a.Prefix.Addr()] {
			out = append(out, a.Prefix.Masked())
		}
	}
	return out
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
