package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"sigs.k8s.io/yaml"

	"github.com/haa-dev/haa/node/vip"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// FleetKind is the kind of a fleet document.
const FleetKind = "Fleet"

// LoadFleet reads, parses and validates a fleet document file. Its errors
// name the file.
func LoadFleet(path string) (*haav1.Fleet, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read fleet document: %w", err)
	}
	doc, err := ParseFleet(data)
	if err != nil {
		return nil, withSource(err, path)
	}
	if err := ValidateFleet(doc); err != nil {
		return nil, withSource(err, path)
	}
	return doc, nil
}

// ParseFleet decodes a fleet document, YAML or JSON in the protobuf JSON
// mapping of haa.v1.Fleet, as strictly as Parse: every unknown field and
// every value of the wrong type is reported with its path (e.g.
// "instances[0].overrides.lb2.interfac"). It does not validate: see
// ValidateFleet.
func ParseFleet(data []byte) (*haav1.Fleet, error) {
	doc := &haav1.Fleet{}
	if err := Unmarshal(data, doc); err != nil {
		return nil, err
	}
	return doc, nil
}

// IsFleet reports whether data, YAML or JSON, is a mapping whose top-level
// kind is "Fleet" (in any case, so that ValidateFleet can tell a
// misspelled "fleet" what to write). It never fails: anything it cannot
// read is not a fleet document.
func IsFleet(data []byte) bool {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return false
	}
	var top struct {
		Kind any `json:"kind"`
	}
	if err := json.NewDecoder(bytes.NewReader(js)).Decode(&top); err != nil {
		return false
	}
	k, ok := top.Kind.(string)
	return ok && strings.EqualFold(strings.TrimSpace(k), FleetKind)
}

// ValidateFleet checks a fleet document and returns an *Error listing every
// problem with its path in the document:
//
//   - kind is "Fleet";
//   - nodes is not empty, and its names are valid and unique;
//   - trackers are valid by the rules of an agent's own trackers;
//   - instance names are unique;
//   - the keys of priorities and overrides are nodes of the document, and
//     an override's node runs the instance; priorities are 1..255; an
//     instance with priorities has no priority of its own (it would apply
//     to no node);
//   - overrides do not set name, vrid or priority (priorities does);
//   - the instance each node runs (ForNode) is valid by the rules of an
//     agent's own instances. A problem of the instance's own fields is
//     reported once, at its path (instances[0].interface), not once per
//     node; a problem that only an override brings is reported under that
//     override (instances[0].overrides.lb2.interface);
//   - on each node, no two instances share a vrid on one interface, and no
//     VIP is used twice; reported once at the later instance, the message
//     naming every node it happens on;
//   - the track references of instances, overrides and sync groups name
//     trackers of the document (a node's own trackers are not known
//     where a document is validated);
//   - sync groups are valid by the rules of an agent's own, their
//     instances being the document's, and the instances of a group run on
//     the same nodes.
//
// Problems come in document order: kind, nodes, trackers, then per instance
// its own fields, name, priorities, overrides (sorted by node) and the
// per-node clashes, then the sync groups.
//
// An empty instances list is valid: applied, it removes every instance the
// previous document gave the nodes.
func ValidateFleet(doc *haav1.Fleet) error {
	var p problems
	validateFleet(&p, doc)
	return p.err("")
}

// ForNode returns the instances the document gives node, in document order,
// and the path of each in the document ("instances[3]"): those whose
// priorities name the node, or every instance without priorities. A node
// that is not in nodes gets none.
//
// Each instance is the FleetInstance's Instance fields (1..18), with
// priority = priorities[node] when set (else the instance's priority, or
// unset for the default), and then every field the node's override sets
// replacing the instance's: scalars, lists and messages (garp, auth) as a
// whole. An override's name, vrid and priority are ignored (ValidateFleet
// refuses them). Being proto3, an override cannot set a plain scalar back
// to its zero value (v3ChecksumAsV2: false, version: 0); optional fields
// (preempt) can. The instances are fresh copies.
func ForNode(doc *haav1.Fleet, node string) (ins []*haav1.Instance, paths []string) {
	if node == "" || !slices.Contains(doc.GetNodes(), node) {
		return nil, nil
	}
	for k, fi := range doc.GetInstances() {
		if !runsOn(fi, node) {
			continue
		}
		ins = append(ins, nodeInstance(fi, node))
		paths = append(paths, fmt.Sprintf("instances[%d]", k))
	}
	return ins, paths
}

// runsOn reports whether node runs fi, node being one of the document's.
func runsOn(fi *haav1.FleetInstance, node string) bool {
	if len(fi.GetPriorities()) == 0 {
		return true
	}
	_, ok := fi.GetPriorities()[node]
	return ok
}

// baseInstance copies fi's Instance fields (1..18, same numbers and types)
// into a new Instance; priorities and overrides (100, 101) are not
// Instance fields and are dropped.
func baseInstance(fi *haav1.FleetInstance) *haav1.Instance {
	in := &haav1.Instance{}
	if fi == nil {
		return in
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(fi)
	if err == nil {
		err = proto.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, in)
	}
	if err != nil {
		// Cannot happen for messages of the generated types.
		panic(fmt.Sprintf("copy fleet instance: %v", err))
	}
	return in
}

// notOverridable are the Instance fields an override may not set.
var notOverridable = map[protoreflect.Name]bool{"name": true, "vrid": true, "priority": true}

// nodeInstance is the instance fi gives node.
func nodeInstance(fi *haav1.FleetInstance, node string) *haav1.Instance {
	in := baseInstance(fi)
	if prio, ok := fi.GetPriorities()[node]; ok {
		in.Priority = proto.Uint32(prio)
	}
	if ov := fi.GetOverrides()[node]; ov != nil {
		ovc := proto.Clone(ov).(*haav1.Instance)
		m, dst := ovc.ProtoReflect(), in.ProtoReflect()
		m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			if notOverridable[fd.Name()] {
				m.Clear(fd)
			} else {
				dst.Clear(fd)
			}
			return true
		})
		proto.Merge(in, ovc)
	}
	return in
}

// ForNodeExtras returns what node runs of the document besides its
// instances (ForNode), fresh copies in document order with their paths in
// the document ("trackers[2]", "syncGroups[0]"): the sync groups whose
// instances all run on the node, and the trackers that the instances node
// runs (overrides included) or those groups track. A tracker no one tracks
// on the node is not run there. A node that is not in nodes gets none.
func ForNodeExtras(doc *haav1.Fleet, node string) (trackers []*haav1.Tracker, groups []*haav1.SyncGroup, trackerPaths, groupPaths []string) {
	ins, _ := ForNode(doc, node)
	if len(ins) == 0 {
		return nil, nil, nil, nil
	}
	running := map[string]bool{}
	tracked := map[string]bool{}
	for _, in := range ins {
		running[in.GetName()] = true
		for _, r := range in.GetTrack() {
			tracked[r.GetTracker()] = true
		}
	}
	for k, g := range doc.GetSyncGroups() {
		all := len(g.GetInstances()) > 0
		for _, name := range g.GetInstances() {
			all = all && running[name]
		}
		if !all {
			continue
		}
		for _, r := range g.GetTrack() {
			tracked[r.GetTracker()] = true
		}
		groups = append(groups, proto.Clone(g).(*haav1.SyncGroup))
		groupPaths = append(groupPaths, fmt.Sprintf("syncGroups[%d]", k))
	}
	for k, t := range doc.GetTrackers() {
		if t.GetName() != "" && tracked[t.GetName()] {
			trackers = append(trackers, proto.Clone(t).(*haav1.Tracker))
			trackerPaths = append(trackerPaths, fmt.Sprintf("trackers[%d]", k))
		}
	}
	return trackers, groups, trackerPaths, groupPaths
}

// hashLen is the length of InstancesHash and DocumentHash, in hex digits.
const hashLen = 32

// definitionLen is the length of Definition, in hex digits.
const definitionLen = 16

var deterministic = proto.MarshalOptions{Deterministic: true}

// InstancesHash identifies a set of instance specs: the first 32 hex digits
// of a SHA-256 over their deterministic protobuf encodings, sorted by name
// (then encoding), so that the order of ins does not matter. Equal specs
// give equal hashes; no instances give the hash of nothing, not "".
func InstancesHash(ins []*haav1.Instance) string {
	type item struct {
		name string
		b    []byte
	}
	items := make([]item, 0, len(ins))
	for _, in := range ins {
		b, err := deterministic.Marshal(in)
		if err != nil {
			panic(fmt.Sprintf("marshal instance: %v", err))
		}
		items = append(items, item{in.GetName(), b})
	}
	slices.SortFunc(items, func(a, b item) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return bytes.Compare(a.b, b.b)
	})
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, it := range items {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(it.b)))])
		h.Write(it.b)
	}
	return hex.EncodeToString(h.Sum(nil))[:hashLen]
}

// FleetNodeHash identifies what the document gives node: the
// InstancesHash of its instances, and of its virtual servers when it
// directs some (NodeHash). What that node runs from the fleet when it runs
// what it should.
func FleetNodeHash(doc *haav1.Fleet, node string) string {
	ins, _ := ForNode(doc, node)
	vss, _ := ForNodeVirtualServers(doc, node)
	return NodeHash(ins, vss)
}

// NodeHash is InstancesHash(ins), and, with virtual servers, a hash of
// both (a node without virtual servers keeps the hash it had before they
// could be in a document).
func NodeHash(ins []*haav1.Instance, vss []*haav1.VirtualServer) string {
	h := InstancesHash(ins)
	if len(vss) == 0 {
		return h
	}
	var b []byte
	for _, vs := range vss {
		m, err := deterministic.Marshal(vs)
		if err != nil {
			panic(fmt.Sprintf("marshal virtual server: %v", err))
		}
		b = binary.AppendUvarint(b, uint64(len(m)))
		b = append(b, m...)
	}
	sum := sha256.Sum256(append([]byte(h), b...))
	return hex.EncodeToString(sum[:])[:hashLen]
}

// DocumentHash identifies a fleet document's content: the first 32 hex
// digits of a SHA-256 over its deterministic protobuf encoding with the
// generation zeroed (the same document at another generation has the same
// hash). doc is not modified.
func DocumentHash(doc *haav1.Fleet) string {
	c := &haav1.Fleet{}
	if doc != nil {
		c = proto.Clone(doc).(*haav1.Fleet)
	}
	c.Generation = 0
	b, err := deterministic.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("marshal fleet document: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:hashLen]
}

// Definition identifies the virtual router an instance defines on the wire:
// the first 16 hex digits of a SHA-256 over its vrid, its VRRP version
// (default 3) and its VIP addresses, sorted. Two nodes running the same
// virtual router have the same definition whatever the order of their VIPs,
// their prefix lengths or devices (those are local; adverts carry only the
// addresses). A VIP that does not parse counts as its text.
func Definition(in *haav1.Instance) string {
	version := in.GetVersion()
	if version == 0 {
		version = DefaultVersion
	}
	addrs := make([]string, 0, len(in.GetVips()))
	for _, s := range in.GetVips() {
		if v, err := vip.Parse(s); err == nil {
			addrs = append(addrs, v.Prefix.Addr().String())
		} else {
			addrs = append(addrs, strings.TrimSpace(s))
		}
	}
	slices.Sort(addrs)
	sum := sha256.Sum256(fmt.Appendf(nil, "vrid=%d version=%d vips=%s", in.GetVrid(), version, strings.Join(addrs, ",")))
	return hex.EncodeToString(sum[:])[:definitionLen]
}

// fleetCheck is the state of ValidateFleet.
type fleetCheck struct {
	doc    *haav1.Fleet
	nodes  []string // the valid nodes, unique, in document order
	isNode map[string]bool
	// The document's trackers, which its instances and groups may track.
	trackers trackerSet
	// Per node, the instances it runs, for the per-node checks.
	placed map[string][]placement
	// Per instance, its problems in the order they are reported.
	perInstance []problems
	// Problems in what an override sets, by "i/node", until
	// checkOverrides reports them.
	overrideProblems map[string]*problems
}

// placement is one instance as one node runs it.
type placement struct {
	i    int // instances[i]
	in   *Instance
	spec *haav1.Instance
	vips string // path of its vips: the instance's or the override's
}

func validateFleet(p *problems, doc *haav1.Fleet) {
	if checkDurations(p, doc.ProtoReflect(), ""); len(*p) > 0 {
		return // the rest would convert them
	}
	switch k := doc.GetKind(); {
	case k == "":
		p.add("kind", "want Fleet: start the document with kind: Fleet")
	case k != FleetKind:
		p.add("kind", "want Fleet, got %q", k)
	}
	c := &fleetCheck{doc: doc, isNode: map[string]bool{}, placed: map[string][]placement{},
		perInstance: make([]problems, len(doc.GetInstances()))}
	c.checkNodes(p)
	_, c.trackers = resolveTrackers(p, "trackers", doc.GetTrackers())
	names := map[string]int{}
	for i, fi := range doc.GetInstances() {
		ip := &c.perInstance[i]
		c.checkInstance(ip, i, fi)
		if name := fi.GetName(); name != "" {
			if j, dup := names[name]; dup {
				ip.add(fmt.Sprintf("instances[%d].name", i), "%q is already used by instances[%d]: each instance of the fleet needs its own name", name, j)
			} else {
				names[name] = i
			}
		}
		c.checkPriorities(ip, i, fi)
		c.checkOverrides(ip, i, fi)
	}
	c.checkPerNode()
	for _, ip := range c.perInstance {
		*p = append(*p, ip...)
	}
	c.checkSyncGroups(p)
	c.checkVirtualServers(p)
}

// fleetMissingTracker ends the message of a reference to a tracker the
// document does not define.
const fleetMissingTracker = " in the document: define it under the document's trackers (a document cannot use a node's own trackers), or fix the name"

// checkSyncGroups checks the sync groups by the rules of an agent's own,
// and that the instances of each run on the same nodes (else a node would
// run part of a group).
func (c *fleetCheck) checkSyncGroups(p *problems) {
	instances := map[string]bool{}
	byName := map[string]*haav1.FleetInstance{}
	for _, fi := range c.doc.GetInstances() {
		if name := fi.GetName(); name != "" && byName[name] == nil {
			instances[name], byName[name] = true, fi
		}
	}
	resolveSyncGroups(p, "syncGroups", c.doc.GetSyncGroups(), instances, c.trackers, "the document", fleetMissingTracker,
		func(p *problems, g int, sg *haav1.SyncGroup) { c.sameNodes(p, g, sg, byName) })
}

// sameNodes reports each instance of group g that does not run on the
// nodes of its first instance, once, at the first node where they differ.
func (c *fleetCheck) sameNodes(p *problems, g int, sg *haav1.SyncGroup, byName map[string]*haav1.FleetInstance) {
	var first *haav1.FleetInstance
	seen := map[string]bool{}
	for _, name := range sg.GetInstances() {
		fi := byName[name]
		if fi == nil || seen[name] {
			continue
		}
		seen[name] = true
		if first == nil {
			first = fi
			continue
		}
		for _, n := range c.nodes {
			a, b := runsOn(first, n), runsOn(fi, n)
			if a == b {
				continue
			}
			on, off := first.GetName(), name
			if b {
				on, off = name, first.GetName()
			}
			p.add(fmt.Sprintf("syncGroups[%d]", g), "%s does not run on %s but %s does: a sync group's instances must run on the same nodes (give them priorities for the same nodes)",
				off, n, on)
			break
		}
	}
}

// checkNodes checks the node list and keeps the valid names.
func (c *fleetCheck) checkNodes(p *problems) {
	if len(c.doc.GetNodes()) == 0 {
		p.add("nodes", "required: the names of the nodes that run the fleet (their configuration's name), e.g. [lb1, lb2]")
	}
	seen := map[string]int{}
	for i, n := range c.doc.GetNodes() {
		path := fmt.Sprintf("nodes[%d]", i)
		if j, dup := seen[n]; dup {
			p.add(path, "%q is already listed (nodes[%d]): remove one", n, j)
			continue
		}
		seen[n] = i
		switch {
		case n == "":
			p.add(path, "empty: give the node's name (its configuration's name)")
		case !nameRE.MatchString(n):
			p.add(path, "%q is not a valid node name: use letters, digits, and _ . : - (at most 63)", n)
		default:
			c.nodes = append(c.nodes, n)
			c.isNode[n] = true
		}
	}
}

func (c *fleetCheck) unknownNode(ip *problems, path, n string) {
	ip.add(path, "%s is not in nodes (%s): add it to nodes or remove it", n, strings.Join(c.nodes, ", "))
}

// checkInstance validates the instance each node runs with the rules of an
// agent's own instances. A problem of the instance's own fields is
// reported once at its path; one an override brings, under the override.
// The override problems are kept for checkOverrides to report, after
// its own.
func (c *fleetCheck) checkInstance(ip *problems, i int, fi *haav1.FleetInstance) {
	path := fmt.Sprintf("instances[%d]", i)
	var running []string
	for _, n := range c.nodes {
		if runsOn(fi, n) {
			running = append(running, n)
		}
	}
	// The instance's own fields, reported as far as some node runs them
	// (a field every node overrides does not matter).
	var base problems
	resolveInstance(&base, path, baseInstance(fi), c.trackers, fleetMissingTracker)
	used := make([]bool, len(base))
	if len(running) == 0 {
		// Nobody runs it (checkPriorities says why): check it anyway.
		for k := range used {
			used[k] = true
		}
	}
	var extra problems
	for _, n := range running {
		spec := nodeInstance(fi, n)
		ov := fi.GetOverrides()[n]
		opath := path + ".overrides." + n
		_, ownPrio := fi.GetPriorities()[n]
		var np problems
		in := resolveInstance(&np, path, spec, c.trackers, fleetMissingTracker)
		for _, e := range np {
			rel := strings.TrimPrefix(e.Path, path+".")
			field := rel
			if k := strings.IndexAny(field, ".["); k >= 0 {
				field = field[:k]
			}
			switch k := slices.Index(base, e); {
			case field == "priority" && ownPrio:
				// Checked at priorities.NODE.
			case overrides(ov, field):
				c.overrideProblem(i, n).addOnce(opath+"."+rel, e.Msg)
			case k >= 0:
				used[k] = true
			case ov != nil:
				// Brought by an override of another field.
				c.overrideProblem(i, n).addOnce(opath, fmt.Sprintf("on %s, %s: %s", n, rel, e.Msg))
			default:
				// Not expected: without an override a node's instance
				// differs from the base only in its priority.
				extra.addOnce(e.Path, e.Msg)
			}
		}
		vipsPath := path + ".vips"
		if overrides(ov, "vips") {
			vipsPath = opath + ".vips"
		}
		c.placed[n] = append(c.placed[n], placement{i: i, in: in, spec: spec, vips: vipsPath})
	}
	for k, e := range base {
		if used[k] {
			*ip = append(*ip, e)
		}
	}
	*ip = append(*ip, extra...)
}

// overrideProblems holds the problems of instance i's override for a node
// (made on first use).
func (c *fleetCheck) overrideProblem(i int, node string) *problems {
	if c.overrideProblems == nil {
		c.overrideProblems = map[string]*problems{}
	}
	key := fmt.Sprintf("%d/%s", i, node)
	op := c.overrideProblems[key]
	if op == nil {
		op = &problems{}
		c.overrideProblems[key] = op
	}
	return op
}

// checkPriorities checks the keys and values of priorities.
func (c *fleetCheck) checkPriorities(ip *problems, i int, fi *haav1.FleetInstance) {
	path := fmt.Sprintf("instances[%d]", i)
	if fi != nil && fi.Priority != nil && len(fi.GetPriorities()) > 0 {
		ip.add(path+".priority", "has no effect: the instance runs only on the nodes of priorities, with their priority: remove it, or set the priority there")
	}
	for _, n := range sortedKeys(fi.GetPriorities()) {
		kp := path + ".priorities." + n
		if !c.isNode[n] {
			c.unknownNode(ip, kp, n)
		}
		if v := fi.GetPriorities()[n]; v < 1 || v > 255 {
			ip.add(kp, "%d is out of range 1..255 (255 only for the address owner)", v)
		}
	}
}

// checkOverrides checks the keys and fields of overrides, and reports the
// problems checkInstance found in what they set.
func (c *fleetCheck) checkOverrides(ip *problems, i int, fi *haav1.FleetInstance) {
	path := fmt.Sprintf("instances[%d]", i)
	for _, n := range sortedKeys(fi.GetOverrides()) {
		op := path + ".overrides." + n
		switch {
		case !c.isNode[n]:
			c.unknownNode(ip, op, n)
		case !runsOn(fi, n):
			ip.add(op, "%s does not run %s (priorities lists %s): add %s to priorities, or remove this override",
				n, instanceName(fi, i), strings.Join(sortedKeys(fi.GetPriorities()), ", "), n)
		}
		ov := fi.GetOverrides()[n]
		if ov.GetName() != "" {
			ip.add(op+".name", "the name is the same on every node: set it in %s.name, not per node", path)
		}
		if ov.GetVrid() != 0 {
			ip.add(op+".vrid", "the vrid is shared by every node of the virtual router: set it in %s.vrid, not per node", path)
		}
		if ov != nil && ov.Priority != nil {
			ip.add(op+".priority", "set the node's priority in %s.priorities.%s instead", path, n)
		}
		if found := c.overrideProblems[fmt.Sprintf("%d/%s", i, n)]; found != nil {
			*ip = append(*ip, *found...)
		}
	}
}

// conflict is one per-node clash (duplicate vrid or VIP), reported once
// with every node it occurs on.
type conflict struct {
	path, msg, tail string
	nodes           []string
}

// checkPerNode reports, per node, a vrid used twice on one interface and
// a VIP used twice, each at the path of the later instance.
func (c *fleetCheck) checkPerNode() {
	var conflicts []*conflict
	byKey := map[string]*conflict{}
	clash := func(path, msg, tail, node string) {
		key := path + "\x00" + msg
		cf := byKey[key]
		if cf == nil {
			cf = &conflict{path: path, msg: msg, tail: tail}
			byKey[key] = cf
			conflicts = append(conflicts, cf)
		}
		cf.nodes = append(cf.nodes, node)
	}
	name := func(j int) string { return instanceName(c.doc.GetInstances()[j], j) }
	for _, n := range c.nodes {
		vrids := map[string]int{}
		vips := map[netip.Addr]int{}
		for _, pl := range c.placed[n] {
			if pl.in.VRRP.VRID != 0 && pl.in.Interface != "" {
				key := fmt.Sprintf("%s/%d", pl.in.Interface, pl.in.VRRP.VRID)
				if j, dup := vrids[key]; dup {
					clash(fmt.Sprintf("instances[%d].vrid", pl.i),
						fmt.Sprintf("vrid %d is already used on %s by %s", pl.in.VRRP.VRID, pl.in.Interface, name(j)),
						"each virtual router on an interface needs its own vrid", n)
				} else {
					vrids[key] = pl.i
				}
			}
			for k, s := range pl.spec.GetVips() {
				v, err := vip.Parse(s)
				if err != nil {
					continue
				}
				a := v.Prefix.Addr()
				j, dup := vips[a]
				switch {
				case !dup:
					vips[a] = pl.i
				case j == pl.i:
					clash(fmt.Sprintf("%s[%d]", pl.vips, k), fmt.Sprintf("%s is listed twice", a), "remove one", n)
				default:
					clash(fmt.Sprintf("%s[%d]", pl.vips, k), fmt.Sprintf("%s is already a VIP of %s", a, name(j)),
						"each address belongs to one virtual router", n)
				}
			}
		}
	}
	for _, cf := range conflicts {
		who := "node " + cf.nodes[0]
		if len(cf.nodes) > 1 {
			who = "nodes " + strings.Join(cf.nodes, ", ")
		}
		c.perInstance[instanceIndex(cf.path)].add(cf.path, "%s (%s): %s", cf.msg, who, cf.tail)
	}
}

// overrides reports whether ov sets the Instance field with this JSON name.
func overrides(ov *haav1.Instance, jsonName string) bool {
	if ov == nil {
		return false
	}
	fd := ov.ProtoReflect().Descriptor().Fields().ByJSONName(jsonName)
	return fd != nil && ov.ProtoReflect().Has(fd)
}

// instanceName names instances[i] in a message: its name, or its path.
func instanceName(fi *haav1.FleetInstance, i int) string {
	if fi.GetName() != "" {
		return fi.GetName()
	}
	return fmt.Sprintf("instances[%d]", i)
}

// instanceIndex returns i of a path "instances[i]...".
func instanceIndex(path string) int {
	var i int
	fmt.Sscanf(path, "instances[%d]", &i)
	return i
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// addOnce adds a problem unless the same one is there.
func (p *problems) addOnce(path, msg string) {
	e := FieldError{Path: path, Msg: msg}
	if !slices.Contains(*p, e) {
		*p = append(*p, e)
	}
}
