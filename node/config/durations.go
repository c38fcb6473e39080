package config

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
)

// checkDurations reports every google.protobuf.Duration in m, at any
// depth, that is not a valid duration (nanos out of range, or of another
// sign than seconds): YAML cannot write one, so a configuration holding it
// could be applied but never saved or read back. path is m's (JSON names,
// "" for the document).
func checkDurations(p *problems, m protoreflect.Message, path string) {
	checkDurationsAt(p, m, &pathNode{name: path, index: -1})
}

// pathNode is a field path made only for a problem, from the element up:
// a path written out for every message of a large configuration (tens of
// thousands of real servers) was a third of its validation.
type pathNode struct {
	parent *pathNode
	name   string // the field's JSON name (the root: its whole path)
	index  int    // the list element's, or -1
	key    string // the map entry's, when mapKey
	mapKey bool
}

func (n *pathNode) String() string {
	var s string
	if n.parent != nil {
		s = n.parent.String()
	}
	if s != "" && n.name != "" {
		s += "."
	}
	s += n.name
	switch {
	case n.mapKey:
		s += "." + n.key
	case n.index >= 0:
		s += fmt.Sprintf("[%d]", n.index)
	}
	return s
}

func checkDurationsAt(p *problems, m protoreflect.Message, path *pathNode) {
	fds := m.Descriptor().Fields()
	for i := range fds.Len() {
		fd := fds.Get(i)
		md := fd.Message()
		if fd.IsMap() {
			md = fd.MapValue().Message()
		}
		if md == nil || !m.Has(fd) {
			continue
		}
		v := m.Get(fd)
		switch {
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				checkDuration(p, l.Get(i).Message(), &pathNode{parent: path, name: fd.JSONName(), index: i})
			}
		case fd.IsMap():
			mv := v.Map()
			var keys []protoreflect.MapKey
			mv.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k)
				return true
			})
			slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return strings.Compare(a.String(), b.String()) })
			for _, k := range keys {
				checkDuration(p, mv.Get(k).Message(), &pathNode{parent: path, name: fd.JSONName(), index: -1, key: k.String(), mapKey: true})
			}
		default:
			checkDuration(p, v.Message(), &pathNode{parent: path, name: fd.JSONName(), index: -1})
		}
	}
}

func checkDuration(p *problems, m protoreflect.Message, path *pathNode) {
	d, ok := m.Interface().(*durationpb.Duration)
	if !ok {
		checkDurationsAt(p, m, path)
		return
	}
	if err := d.CheckValid(); err != nil {
		p.add(path.String(), "not a valid duration (%d s and %d ns): write it as a string such as \"1.5s\"", d.GetSeconds(), d.GetNanos())
	}
}
