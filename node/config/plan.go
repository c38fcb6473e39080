package config

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Plan is what applying a configuration changes.
type Plan struct {
	Added     []string
	Removed   []string
	Changed   []Change
	Unchanged []string // left running as they are: no transition, no VIP flap
	// VirtualServers is what changes of the virtual servers, by name
	// (DiffVirtualServers).
	VirtualServers VirtualServerPlan
}

// Proto is the plan in the API's terms (responses and events).
func (p Plan) Proto() *haav1.Plan {
	out := &haav1.Plan{Added: p.Added, Removed: p.Removed, Unchanged: p.Unchanged,
		VirtualServersAdded: p.VirtualServers.Added, VirtualServersRemoved: p.VirtualServers.Removed,
		VirtualServersChanged: p.VirtualServers.Changed}
	for _, c := range p.Changed {
		out.Changed = append(out.Changed, &haav1.InstanceChange{Name: c.Name, Fields: c.Fields, Restart: c.Restart})
	}
	return out
}

// VirtualServerPlan is what an apply changes of the virtual servers, by
// name.
type VirtualServerPlan struct {
	Added, Removed, Changed []string
}

// DiffVirtualServers compares the running virtual servers with the
// desired ones, by name. It is pure.
func DiffVirtualServers(running, desired []VirtualServer) VirtualServerPlan {
	var p VirtualServerPlan
	have := make(map[string]*haav1.VirtualServer, len(running))
	for _, vs := range running {
		have[vs.Name] = vs.Spec
	}
	want := make(map[string]bool, len(desired))
	for _, vs := range desired {
		want[vs.Name] = true
		switch spec, ok := have[vs.Name]; {
		case !ok:
			p.Added = append(p.Added, vs.Name)
		case !proto.Equal(spec, vs.Spec):
			p.Changed = append(p.Changed, vs.Name)
		}
	}
	for _, vs := range running {
		if !want[vs.Name] {
			p.Removed = append(p.Removed, vs.Name)
		}
	}
	slices.Sort(p.Added)
	slices.Sort(p.Removed)
	slices.Sort(p.Changed)
	return p
}

// Change is one instance whose configuration differs.
type Change struct {
	Name   string
	Fields []string // the differing fields, by JSON name
	// Restart: the instance is stopped (handing over if master) and
	// started again. Otherwise the change is applied in place, without a
	// transition of its own.
	Restart bool
}

// Empty reports whether applying changes nothing.
func (p Plan) Empty() bool {
	v := p.VirtualServers
	return len(p.Added) == 0 && len(p.Removed) == 0 && len(p.Changed) == 0 &&
		len(v.Added) == 0 && len(v.Removed) == 0 && len(v.Changed) == 0
}

// inPlaceFields are the fields a running instance takes without a restart.
var inPlaceFields = map[string]bool{"priority": true, "preempt": true, "preemptDelay": true, "state": true, "garp": true,
	"track": true, "notify": true}

// Diff compares the running instances with the desired ones. It is pure.
func Diff(running, desired []Instance) Plan {
	var p Plan
	have := map[string]*Instance{}
	for i := range running {
		have[running[i].VRRP.Name] = &running[i]
	}
	want := map[string]bool{}
	for _, d := range desired {
		name := d.VRRP.Name
		want[name] = true
		r, ok := have[name]
		switch {
		case !ok:
			p.Added = append(p.Added, name)
		case proto.Equal(r.Spec, d.Spec):
			p.Unchanged = append(p.Unchanged, name)
		default:
			c := Change{Name: name, Fields: changedFields(r.Spec, d.Spec)}
			for _, f := range c.Fields {
				c.Restart = c.Restart || !(inPlaceFields[f] || peersInPlace(f, r, &d))
			}
			// The address owner is master at once: becoming or ceasing to
			// be one is a restart.
			if (r.VRRP.Priority == 255) != (d.VRRP.Priority == 255) {
				c.Restart = true
			}
			p.Changed = append(p.Changed, c)
		}
	}
	for _, r := range running {
		if !want[r.VRRP.Name] {
			p.Removed = append(p.Removed, r.VRRP.Name)
		}
	}
	slices.Sort(p.Added)
	slices.Sort(p.Removed)
	slices.Sort(p.Unchanged)
	slices.SortFunc(p.Changed, func(a, b Change) int { return strings.Compare(a.Name, b.Name) })
	return p
}

// peersInPlace tells whether a change of field f, a unicast peers field,
// can be made in place: the instance stays unicast, and its source
// address (which for IPv6 follows the first peer) stays the same.
func peersInPlace(f string, was, next *Instance) bool {
	if f != "unicastPeers" && f != "unicastPeersFromFleet" {
		return false
	}
	if !was.Unicast() || !next.Unicast() {
		return false
	}
	first := func(in *Instance) netip.Addr {
		if len(in.Peers) == 0 {
			return netip.Addr{}
		}
		return in.Peers[0]
	}
	return !next.IPv6() || next.VRRP.Primary.IsValid() || first(was) == first(next)
}

// changedFields lists the top-level fields that differ, by JSON name.
func changedFields(a, b *haav1.Instance) []string {
	var out []string
	fields := a.ProtoReflect().Descriptor().Fields()
	ma, mb := a.ProtoReflect(), b.ProtoReflect()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if ma.Has(fd) != mb.Has(fd) || !ma.Get(fd).Equal(mb.Get(fd)) {
			out = append(out, fd.JSONName())
		}
	}
	return out
}

// Hash identifies a configuration: the sha256 of its deterministic
// protobuf encoding, 32 hex digits.
func Hash(c *haav1.AgentConfig) string {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
