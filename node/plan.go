package node

import (
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/node/config"
)

// Plan is what applying a configuration changes: instance names by fate.
type Plan struct {
	Added     []string
	Removed   []string
	Changed   []string // restarted with the new configuration
	Unchanged []string // left running as they are: no transition, no VIP flap
}

// Empty reports whether applying changes nothing.
func (p Plan) Empty() bool {
	return len(p.Added) == 0 && len(p.Removed) == 0 && len(p.Changed) == 0
}

// Diff compares the running instances with the desired ones. It is pure.
func Diff(running, desired []config.Instance) Plan {
	var p Plan
	have := map[string]*config.Instance{}
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
			p.Changed = append(p.Changed, name)
		}
	}
	for _, r := range running {
		if !want[r.VRRP.Name] {
			p.Removed = append(p.Removed, r.VRRP.Name)
		}
	}
	for _, s := range [][]string{p.Added, p.Removed, p.Changed, p.Unchanged} {
		slices.Sort(s)
	}
	return p
}

func sortByName(s []InstanceStatus) {
	slices.SortFunc(s, func(a, b InstanceStatus) int { return strings.Compare(a.Config.VRRP.Name, b.Config.VRRP.Name) })
}
