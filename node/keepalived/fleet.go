package keepalived

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/vip"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Fleet merges the agent configurations of several nodes (each with its
// Name set) into one Fleet document: instances matched by name (same vrid,
// interface, vips, auth, interval, version... else an error naming both
// files' values); per-node priority in priorities, per-node differences
// (interface, unicastPeers, sourceAddress, state, track, notify) in
// overrides; trackers and sync groups merged when identical (else an
// error); nodes = the names; virtual servers merged by name, their
// directors the nodes whose file has them (mergeVirtualServers).
//
// What the nodes of one virtual router must agree on is what goes on the
// wire: vrid, version, advertisement interval, authentication, multicast
// group, checksum mode and the VIP addresses. Everything else an instance
// sets (interface, VIP devices and labels, peers, source address, state,
// preemption, gratuitous ARPs, tracking, notify commands) may differ per
// node and becomes an override where it does. files names the file of each
// configuration, for messages.
func Fleet(cfgs []*haav1.AgentConfig, files []string) (*haav1.Fleet, error) {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	file := func(i int) string {
		if i < len(files) && files[i] != "" {
			return files[i]
		}
		return fmt.Sprintf("configuration %d", i+1)
	}
	if len(cfgs) == 0 {
		return nil, errors.New("no configuration to merge: give the files of the nodes")
	}
	doc := &haav1.Fleet{Kind: config.FleetKind}
	nodeOf := map[string]int{}
	for i, cfg := range cfgs {
		name := cfg.GetName()
		switch j, dup := nodeOf[name]; {
		case name == "":
			add("%s: the node has no name: set router_id in its global_defs, or name it (haactl import --node)", file(i))
		case dup:
			add("%s and %s are both named %q: give each node its own name (router_id, or haactl import --node)", file(j), file(i), name)
		default:
			nodeOf[name] = i
			doc.Nodes = append(doc.Nodes, name)
		}
	}

	// Instances, in the order they first appear.
	type member struct {
		node string
		i    int
		in   *haav1.Instance
	}
	var order []string
	byName := map[string][]member{}
	for i, cfg := range cfgs {
		for _, in := range cfg.GetInstances() {
			if _, seen := byName[in.GetName()]; !seen {
				order = append(order, in.GetName())
			}
			byName[in.GetName()] = append(byName[in.GetName()], member{cfg.GetName(), i, in})
		}
	}
	for _, name := range order {
		ms := byName[name]
		first := ms[0]
		for _, m := range ms[1:] {
			if m.i == first.i {
				add("%s defines instance %s twice: rename one", file(m.i), name)
				continue
			}
			for _, w := range wireFields {
				a, b := w.get(first.in), w.get(m.in)
				if a != b {
					add("instance %s: %s is %s in %s but %s in %s: the nodes of one virtual router must agree; make them the same", name, w.name, a, file(first.i), b, file(m.i))
				}
			}
		}
		base := proto.Clone(first.in).(*haav1.Instance)
		base.Priority = nil
		vals := make([]*haav1.Instance, len(ms))
		nodes := make([]string, len(ms))
		for j, m := range ms {
			vals[j], nodes[j] = m.in, m.node
		}
		overrides := splitCommon(base, vals, nodes, map[protoreflect.Name]bool{"name": true, "priority": true})
		fi := fleetInstance(base)
		fi.Priorities = map[string]uint32{}
		for _, m := range ms {
			p := uint32(config.DefaultPriority)
			if m.in.Priority != nil {
				p = m.in.GetPriority()
			}
			fi.Priorities[m.node] = p
		}
		if len(overrides) > 0 {
			fi.Overrides = overrides
		}
		doc.Instances = append(doc.Instances, fi)
	}

	// Trackers and sync groups: one of each name, the same on every node.
	type src struct {
		i int
		m proto.Message
	}
	trackers := map[string]src{}
	for i, cfg := range cfgs {
		for _, t := range cfg.GetTrackers() {
			if old, ok := trackers[t.GetName()]; ok {
				if !proto.Equal(old.m, t) {
					add("tracker %s is %s in %s but %s in %s: make its definitions (vrrp_script, vrrp_track_file, ...) the same on every node, or give them different names", t.GetName(), compact(old.m), file(old.i), compact(t), file(i))
				}
				continue
			}
			trackers[t.GetName()] = src{i, t}
			doc.Trackers = append(doc.Trackers, proto.Clone(t).(*haav1.Tracker))
		}
	}
	groups := map[string]src{}
	for i, cfg := range cfgs {
		for _, g := range cfg.GetSyncGroups() {
			if old, ok := groups[g.GetName()]; ok {
				if !proto.Equal(old.m, g) {
					add("sync group %s is %s in %s but %s in %s: make the vrrp_sync_group blocks the same on every node", g.GetName(), compact(old.m), file(old.i), compact(g), file(i))
				}
				continue
			}
			groups[g.GetName()] = src{i, g}
			doc.SyncGroups = append(doc.SyncGroups, proto.Clone(g).(*haav1.SyncGroup))
		}
	}
	mergeVirtualServers(doc, cfgs, file, add)
	if len(probs) > 0 {
		return nil, errors.New(strings.Join(probs, "\n"))
	}
	if err := config.ValidateFleet(doc); err != nil {
		return nil, fmt.Errorf("the merged Fleet document is not valid (fix the keepalived files accordingly): %w", err)
	}
	return doc, nil
}

// wireField is an instance property the nodes of a virtual router must
// agree on, as text for messages (with haa's default when unset).
type wireField struct {
	name string
	get  func(*haav1.Instance) string
}

var wireFields = []wireField{
	{"virtual_router_id", func(in *haav1.Instance) string { return fmt.Sprint(in.GetVrid()) }},
	{"the VRRP version", func(in *haav1.Instance) string {
		if in.GetVersion() == 0 {
			return fmt.Sprint(config.DefaultVersion)
		}
		return fmt.Sprint(in.GetVersion())
	}},
	{"advert_int", func(in *haav1.Instance) string {
		if in.GetAdvertInterval() == nil {
			return secs(config.DefaultInterval)
		}
		return secs(in.GetAdvertInterval().AsDuration())
	}},
	{"the authentication", func(in *haav1.Instance) string {
		a := in.GetAuth()
		if a == nil || a.GetType() == "" || strings.EqualFold(a.GetType(), "NONE") {
			return "none"
		}
		return fmt.Sprintf("%s %q", a.GetType(), a.GetPassword())
	}},
	{"the multicast group", func(in *haav1.Instance) string {
		if len(in.GetUnicastPeers()) > 0 {
			return "unicast"
		}
		if in.GetMulticastGroup() == "" {
			return "224.0.0.18"
		}
		return in.GetMulticastGroup()
	}},
	{"v3_checksum_as_v2", func(in *haav1.Instance) string { return fmt.Sprint(in.GetV3ChecksumAsV2()) }},
	{"the virtual addresses", func(in *haav1.Instance) string {
		var addrs []string
		for _, s := range in.GetVips() {
			if v, err := vip.Parse(s); err == nil {
				addrs = append(addrs, v.Prefix.Addr().String())
			} else {
				addrs = append(addrs, s)
			}
		}
		slices.SortFunc(addrs, func(a, b string) int {
			x, e1 := netip.ParseAddr(a)
			y, e2 := netip.ParseAddr(b)
			if e1 == nil && e2 == nil {
				return x.Compare(y)
			}
			return strings.Compare(a, b)
		})
		return "[" + strings.Join(addrs, " ") + "]"
	}},
}

// only returns a message of in's type with just field fd of in.
func only[M proto.Message](in M, fd protoreflect.FieldDescriptor) M {
	out := in.ProtoReflect().New()
	if m := in.ProtoReflect(); m.Has(fd) {
		out.Set(fd, m.Get(fd))
	}
	return out.Interface().(M)
}

// commonValue picks the document-wide value of a field from the nodes'
// values: unset when any node leaves it unset (an override cannot unset a
// field), else the most common value (the first on a tie).
func commonValue[M proto.Message](vals []M, fd protoreflect.FieldDescriptor) M {
	for _, v := range vals {
		if !v.ProtoReflect().Has(fd) {
			return vals[0].ProtoReflect().New().Interface().(M)
		}
	}
	best, bestN := vals[0], 0
	for _, v := range vals {
		n := 0
		for _, w := range vals {
			if proto.Equal(v, w) {
				n++
			}
		}
		if n > bestN {
			best, bestN = v, n
		}
	}
	return best
}

// splitCommon sets base's fields (but those skip names) to the value
// common to vals (each node's message, in members order) and returns the
// per-node overrides of the fields whose value differs, by node.
func splitCommon[M proto.Message](base M, vals []M, nodes []string, skip map[protoreflect.Name]bool) map[string]M {
	overrides := map[string]M{}
	bm := base.ProtoReflect()
	fields := bm.Descriptor().Fields()
	for k := 0; k < fields.Len(); k++ {
		fd := fields.Get(k)
		if skip[fd.Name()] {
			continue
		}
		each := make([]M, len(vals)) // each node's value alone
		for j, v := range vals {
			each[j] = only(v, fd)
		}
		pick := commonValue(each, fd)
		bm.Clear(fd)
		if pm := pick.ProtoReflect(); pm.Has(fd) {
			bm.Set(fd, pm.Get(fd))
		}
		for j := range vals {
			if proto.Equal(each[j], pick) {
				continue
			}
			ov, ok := overrides[nodes[j]]
			if !ok {
				ov = base.ProtoReflect().New().Interface().(M)
				overrides[nodes[j]] = ov
			}
			ov.ProtoReflect().Set(fd, each[j].ProtoReflect().Get(fd))
		}
	}
	return overrides
}

// fleetInstance copies an Instance into a FleetInstance: fields 1..18 are
// the same in both (numbers, types and meaning).
func fleetInstance(in *haav1.Instance) *haav1.FleetInstance {
	fi := &haav1.FleetInstance{}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(in)
	if err == nil {
		err = proto.Unmarshal(b, fi)
	}
	if err != nil {
		panic(fmt.Sprintf("copy instance: %v", err)) // cannot happen: same fields
	}
	return fi
}

// compact renders a message for an error message.
func compact(m proto.Message) string {
	b, err := protojson.MarshalOptions{}.Marshal(m)
	if err != nil {
		return fmt.Sprint(m)
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

// mergeVirtualServers adds the configurations' virtual servers to doc, one
// per name, in the order they first appear: the fields the directors
// agree on in the entry, the others in per-director overrides; the service
// itself (address, fwmark, protocol, group) must be the same everywhere.
// The nodes whose file has it are its directors, written out unless they
// are the default (the nodes running the instance holding its address).
func mergeVirtualServers(doc *haav1.Fleet, cfgs []*haav1.AgentConfig, file func(int) string, add func(string, ...any)) {
	type member struct {
		node string
		i    int
		vs   *haav1.VirtualServer
	}
	var order []string
	byName := map[string][]member{}
	for i, cfg := range cfgs {
		for _, vs := range cfg.GetVirtualServers() {
			name := config.VirtualServerName(vs) // converted ones have the default
			if _, seen := byName[name]; !seen {
				order = append(order, name)
			}
			byName[name] = append(byName[name], member{cfg.GetName(), i, vs})
		}
	}
	service := func(vs *haav1.VirtualServer) string {
		return fmt.Sprintf("%s %s fwmark %d group %v", vs.GetAddress(), vs.GetProtocol(), vs.GetFwmark(), vs.GetGroup())
	}
	for _, name := range order {
		ms := byName[name]
		first := ms[0]
		for _, m := range ms[1:] {
			if a, b := service(first.vs), service(m.vs); a != b {
				add("virtual server %s is %s in %s but %s in %s: the directors of one virtual server balance one service; make them the same, or name them differently", name, a, file(first.i), b, file(m.i))
			}
		}
		base := proto.Clone(first.vs).(*haav1.VirtualServer)
		vals := make([]*haav1.VirtualServer, len(ms))
		nodes := make([]string, len(ms))
		for j, m := range ms {
			vals[j], nodes[j] = m.vs, m.node
		}
		overrides := splitCommon(base, vals, nodes, map[protoreflect.Name]bool{"name": true})
		fv := fleetVirtualServer(base)
		if len(overrides) > 0 {
			fv.Overrides = overrides
		}
		if !slices.Equal(config.Directors(doc, fv), nodes) {
			fv.Directors = nodes
		}
		doc.VirtualServers = append(doc.VirtualServers, fv)
	}
}

// fleetVirtualServer copies a VirtualServer into a FleetVirtualServer:
// fields 1..20 are the same in both.
func fleetVirtualServer(vs *haav1.VirtualServer) *haav1.FleetVirtualServer {
	fv := &haav1.FleetVirtualServer{}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(vs)
	if err == nil {
		err = proto.Unmarshal(b, fv)
	}
	if err != nil {
		panic(fmt.Sprintf("copy virtual server: %v", err)) // cannot happen: same fields
	}
	return fv
}
