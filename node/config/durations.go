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
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		f := fd.JSONName()
		if path != "" {
			f = path + "." + f
		}
		md := fd.Message()
		if fd.IsMap() {
			md = fd.MapValue().Message()
		}
		if md == nil {
			return true
		}
		switch {
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				checkDuration(p, l.Get(i).Message(), fmt.Sprintf("%s[%d]", f, i))
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
				checkDuration(p, mv.Get(k).Message(), f+"."+k.String())
			}
		default:
			checkDuration(p, v.Message(), f)
		}
		return true
	})
}

func checkDuration(p *problems, m protoreflect.Message, path string) {
	d, ok := m.Interface().(*durationpb.Duration)
	if !ok {
		checkDurations(p, m, path)
		return
	}
	if err := d.CheckValid(); err != nil {
		p.add(path, "not a valid duration (%d s and %d ns): write it as a string such as \"1.5s\"", d.GetSeconds(), d.GetNanos())
	}
}
