package lvs

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/haa-dev/haa/node/internal/pace"
)

// Diff returns the plan that turns the programmed table actual into
// desired, touching only what differs. It is pure and deterministic:
// services are visited in the order of their Key strings, destinations in
// address order. The plan removes first (every DeleteDest and
// DeleteService), then adds or updates services, then adds or updates
// destinations, so an address that moves between services never collides
// with itself. A service whose settings differ is one UpdateService; a
// destination that does not satisfy its desired attributes
// (DestAttrs.Satisfies: weight, forwarding, thresholds haad sets) is one
// UpdateDest. Nil entries count as absent.
func Diff(actual, desired State) Plan {
	// Only the services that change are sorted and walked in order: one
	// weight change among 10,000 services costs a map lookup per service.
	var keys []Key
	var pc pace.Pacer
	for k, a := range actual {
		pc.Yield()
		if a == nil {
			continue
		}
		if d := desired[k]; d == nil || !sameVS(a, d, k) {
			keys = append(keys, k)
		}
	}
	for k, d := range desired {
		if d != nil && actual[k] == nil {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	sortKeys(keys)

	// At most a service op and one per destination, on either side.
	n := 0
	for _, k := range keys {
		n += 1
		if a := actual[k]; a != nil {
			n += len(a.Dests)
		}
		if d := desired[k]; d != nil {
			n += len(d.Dests)
		}
	}
	plan := make(Plan, 0, n)
	// 1. Removals.
	for _, k := range keys {
		a, d := actual[k], desired[k]
		switch {
		case a == nil:
		case d == nil:
			plan = append(plan, Op{Kind: DeleteService, Service: withKey(a.Service, k)})
		default:
			svc := withKey(a.Service, k)
			for _, addr := range SortedAddrs(a.Dests) {
				if _, ok := d.Dests[addr]; !ok {
					plan = append(plan, Op{Kind: DeleteDest, Service: svc, Dest: Dest{Addr: addr, DestAttrs: a.Dests[addr]}})
				}
			}
		}
	}
	// 2. Services added or changed.
	for _, k := range keys {
		a, d := actual[k], desired[k]
		switch {
		case d == nil:
		case a == nil:
			plan = append(plan, Op{Kind: AddService, Service: withKey(d.Service, k)})
		case withKey(a.Service, k) != withKey(d.Service, k):
			plan = append(plan, Op{Kind: UpdateService, Service: withKey(d.Service, k)})
		}
	}
	// 3. Destinations added or changed.
	for _, k := range keys {
		pc.Yield()
		a, d := actual[k], desired[k]
		if d == nil {
			continue
		}
		svc := withKey(d.Service, k)
		addrs := SortedAddrs(d.Dests)
		if a == nil {
			for _, addr := range addrs {
				plan = append(plan, Op{Kind: AddDest, Service: svc, Dest: Dest{Addr: addr, DestAttrs: d.Dests[addr]}})
			}
			continue
		}
		for _, addr := range addrs {
			if have, ok := a.Dests[addr]; ok && !have.Satisfies(d.Dests[addr]) {
				plan = append(plan, Op{Kind: UpdateDest, Service: svc, Dest: Dest{Addr: addr, DestAttrs: updated(have, d.Dests[addr])}})
			}
		}
		for _, addr := range addrs {
			if _, ok := a.Dests[addr]; !ok {
				plan = append(plan, Op{Kind: AddDest, Service: svc, Dest: Dest{Addr: addr, DestAttrs: d.Dests[addr]}})
			}
		}
	}
	return plan
}

// Adopt returns the ops that take a service the kernel already holds
// (have) to what a plan meant to build from nothing: the service of its
// AddService (add) with the destinations of its AddDest ops for that
// service (adds). It is Diff of the two, so a service found in place costs
// only what differs: its settings updated, destinations the plan does not
// add removed, those it adds updated where they differ or added.
func Adopt(have *VirtualServer, add Service, adds []Dest) Plan {
	want := &VirtualServer{Service: add, Dests: make(map[netip.AddrPort]DestAttrs, len(adds))}
	for _, d := range adds {
		want.Dests[d.Addr] = d.DestAttrs
	}
	return Diff(State{add.Key: have}, State{add.Key: want})
}

// updated is what an UpdateDest programs to take have to want: want, but
// thresholds haad set itself (have's) and no longer wants go back to none
// (set to 0) rather than being left as they are.
func updated(have, want DestAttrs) DestAttrs {
	if !want.Thresholds.Set && have.Thresholds.Set {
		want.Thresholds = Thresholds{Set: true}
	}
	return want
}

// sameVS reports whether a and d (both under key k) need no op.
func sameVS(a, d *VirtualServer, k Key) bool {
	if withKey(a.Service, k) != withKey(d.Service, k) || len(a.Dests) != len(d.Dests) {
		return false
	}
	for addr, have := range a.Dests {
		if want, ok := d.Dests[addr]; !ok || !have.Satisfies(want) {
			return false
		}
	}
	return true
}

// Clone returns a deep copy of s: changing the copy (or applying a plan to
// it) never changes s. Nil entries are left out; every copied
// VirtualServer has a non-nil Dests map.
func (s State) Clone() State {
	if s == nil {
		return nil
	}
	c := make(State, len(s))
	for k, vs := range s {
		if vs == nil {
			continue
		}
		c[k] = vs.Clone()
	}
	return c
}

// Clone returns a copy of vs that shares nothing with it.
func (vs *VirtualServer) Clone() *VirtualServer {
	d := make(map[netip.AddrPort]DestAttrs, len(vs.Dests))
	maps.Copy(d, vs.Dests)
	return &VirtualServer{Service: vs.Service, Dests: d}
}

// Apply carries out p on the in-memory table s, as a backend does on the
// kernel: after a successful Backend.Apply(ctx, p), Apply(programmed, p)
// keeps a copy of what is programmed without reading it back. It changes s
// and the VirtualServers in it in place (Clone first to keep the
// original). It is lenient like a reconciler: adding a service that exists
// updates its settings and keeps its destinations, a destination op on a
// missing service creates it (from Op.Service), deleting what is missing
// does nothing.
func Apply(s State, p Plan) {
	var pc pace.Pacer
	for _, op := range p {
		applyOp(s, op)
		pc.Yield()
	}
}

func applyOp(s State, op Op) {
	k := op.Service.Key
	switch op.Kind {
	case AddService, UpdateService:
		if vs := s[k]; vs != nil {
			vs.Service = op.Service
			return
		}
		s[k] = &VirtualServer{Service: op.Service, Dests: map[netip.AddrPort]DestAttrs{}}
	case DeleteService:
		delete(s, k)
	case AddDest, UpdateDest:
		vs := s[k]
		if vs == nil {
			vs = &VirtualServer{Service: op.Service, Dests: map[netip.AddrPort]DestAttrs{}}
			s[k] = vs
		}
		if vs.Dests == nil {
			vs.Dests = map[netip.AddrPort]DestAttrs{}
		}
		vs.Dests[op.Dest.Addr] = op.Dest.DestAttrs
	case DeleteDest:
		if vs := s[k]; vs != nil {
			delete(vs.Dests, op.Dest.Addr)
		}
	}
}

func withKey(s Service, k Key) Service {
	s.Key = k
	return s
}

// Keys returns the table's keys in a fixed order (by their text).
func (s State) Keys() []Key {
	keys := make([]Key, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sortKeys(keys)
	return keys
}

func sortKeys(keys []Key) {
	type keyed struct {
		k Key
		s string
	}
	ks := make([]keyed, len(keys))
	var pc pace.Pacer
	for i, k := range keys {
		ks[i] = keyed{k, k.String()}
		pc.Yield()
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		if c := strings.Compare(a.s, b.s); c != 0 {
			return c
		}
		// Distinct keys with the same string (inconsistent ones, such as a
		// fwmark key with an address): any fixed order.
		if c := cmp.Compare(a.k.FWMark, b.k.FWMark); c != 0 {
			return c
		}
		if c := cmp.Compare(a.k.Proto, b.k.Proto); c != 0 {
			return c
		}
		if a.k.V6 != b.k.V6 {
			if a.k.V6 {
				return 1
			}
			return -1
		}
		return a.k.Addr.Compare(b.k.Addr)
	})
	for i := range ks {
		keys[i] = ks[i].k
	}
}

// SortedAddrs returns the addresses of a destination map in order.
func SortedAddrs[V any](m map[netip.AddrPort]V) []netip.AddrPort {
	addrs := make([]netip.AddrPort, 0, len(m))
	for a := range m {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, netip.AddrPort.Compare)
	return addrs
}

// Equal reports whether two tables hold the same virtual servers, a nil
// and an empty Dests map alike.
func (a State) Equal(b State) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok || (va == nil) != (vb == nil) {
			return false
		}
		if va == nil {
			continue
		}
		if va.Service != vb.Service || len(va.Dests) != len(vb.Dests) {
			return false
		}
		for addr, d := range va.Dests {
			if db, ok := vb.Dests[addr]; !ok || db != d {
				return false
			}
		}
	}
	return true
}

// String lists the table in key order, for logs and test failures.
func (s State) String() string {
	var b strings.Builder
	for _, k := range s.Keys() {
		vs := s[k]
		if vs == nil {
			fmt.Fprintf(&b, "%s: nil; ", k)
			continue
		}
		fmt.Fprintf(&b, "%s %s %s [", k, vs.Scheduler, vs.Forwarding)
		for _, a := range SortedAddrs(vs.Dests) {
			d := vs.Dests[a]
			fmt.Fprintf(&b, " %s=%d%s", a, d.Weight, d.suffix(vs.Forwarding))
		}
		b.WriteString(" ]; ")
	}
	return b.String()
}

// Strings returns the plan's operations as text, in order.
func (p Plan) Strings() []string {
	out := make([]string, len(p))
	for i, op := range p {
		out[i] = op.String()
	}
	return out
}
