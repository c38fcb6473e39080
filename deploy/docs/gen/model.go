package main

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/types/descriptorpb"
)

// The descriptor paths of SourceCodeInfo (descriptor.proto's field numbers).
const (
	fileMessageType = 4
	fileEnumType    = 5
	fileService     = 6
	messageField    = 2
	messageNested   = 3
	enumValue       = 2
	serviceMethod   = 2
)

// model indexes the haa.v1 files of a descriptor set with their comments.
type model struct {
	pkg      string
	files    []*descriptorpb.FileDescriptorProto
	messages map[string]*message // by full name without the leading dot
	enums    map[string]*enum
	services []*service
}

type message struct {
	name    string // full name: haa.v1.Instance
	file    string // haa/v1/config.proto
	desc    *descriptorpb.DescriptorProto
	comment string
	fields  []*field
	mapKey  *field // map entries only
	mapVal  *field
}

type field struct {
	desc      *descriptorpb.FieldDescriptorProto
	comment   string
	inherited bool // the comment of the field above (one comment for both)
	line      int  // 0-based line of its declaration
	endLine   int
}

type enum struct {
	name    string
	file    string
	comment string
	values  []enumVal
}

type enumVal struct {
	name    string
	number  int32
	comment string
}

type service struct {
	name    string
	file    string
	comment string
	methods []method
}

type method struct {
	name, in, out           string
	clientStream, srvStream bool
	comment                 string
}

// short is a full name without its package: haa.v1.Instance -> Instance.
func (m *model) short(full string) string {
	return strings.TrimPrefix(strings.TrimPrefix(full, "."), m.pkg+".")
}

func newModel(fds *descriptorpb.FileDescriptorSet, pkg string) (*model, error) {
	m := &model{pkg: pkg, messages: map[string]*message{}, enums: map[string]*enum{}}
	for _, f := range fds.GetFile() {
		if f.GetPackage() != pkg {
			continue
		}
		if f.GetSourceCodeInfo() == nil {
			return nil, fmt.Errorf("%s: no source code info in the descriptor set (built with --exclude-source-info?)", f.GetName())
		}
		m.files = append(m.files, f)
		loc := locations(f)
		for i, d := range f.GetMessageType() {
			m.addMessage(f, loc, pkg, d, []int32{fileMessageType, int32(i)})
		}
		for i, e := range f.GetEnumType() {
			m.addEnum(f, loc, pkg, e, []int32{fileEnumType, int32(i)})
		}
		for i, s := range f.GetService() {
			path := []int32{fileService, int32(i)}
			sv := &service{name: s.GetName(), file: f.GetName(), comment: loc.comment(path)}
			for j, md := range s.GetMethod() {
				sv.methods = append(sv.methods, method{
					name:         md.GetName(),
					in:           strings.TrimPrefix(md.GetInputType(), "."),
					out:          strings.TrimPrefix(md.GetOutputType(), "."),
					clientStream: md.GetClientStreaming(),
					srvStream:    md.GetServerStreaming(),
					comment:      loc.comment(append(append([]int32{}, path...), serviceMethod, int32(j))),
				})
			}
			m.services = append(m.services, sv)
		}
	}
	if len(m.files) == 0 {
		return nil, fmt.Errorf("no file of package %s in the descriptor set", pkg)
	}
	return m, nil
}

func (m *model) addMessage(f *descriptorpb.FileDescriptorProto, loc locIndex, prefix string, d *descriptorpb.DescriptorProto, path []int32) {
	msg := &message{name: prefix + "." + d.GetName(), file: f.GetName(), desc: d, comment: loc.comment(path)}
	for i, fd := range d.GetField() {
		fp := append(append([]int32{}, path...), messageField, int32(i))
		fl := &field{desc: fd, comment: loc.comment(fp), line: -1, endLine: -1}
		if l := loc[key(fp)]; l != nil && len(l.GetSpan()) >= 3 {
			sp := l.GetSpan()
			fl.line, fl.endLine = int(sp[0]), int(sp[0])
			if len(sp) == 4 {
				fl.endLine = int(sp[2])
			}
		}
		msg.fields = append(msg.fields, fl)
	}
	// A field without a comment right below a commented one of the same
	// type shares its comment ("Commands run when ...: quorum_up,
	// quorum_down" above both fields).
	for i := 1; i < len(msg.fields); i++ {
		prev, cur := msg.fields[i-1], msg.fields[i]
		if cur.comment == "" && prev.comment != "" && cur.line >= 0 && cur.line == prev.endLine+1 &&
			sameType(prev.desc, cur.desc) {
			cur.comment, cur.inherited = prev.comment, true
		}
	}
	if d.GetOptions().GetMapEntry() {
		msg.mapKey, msg.mapVal = msg.fields[0], msg.fields[1]
	}
	m.messages[msg.name] = msg
	for i, n := range d.GetNestedType() {
		m.addMessage(f, loc, msg.name, n, append(append([]int32{}, path...), messageNested, int32(i)))
	}
}

func sameType(a, b *descriptorpb.FieldDescriptorProto) bool {
	return a.GetType() == b.GetType() && a.GetTypeName() == b.GetTypeName() && a.GetLabel() == b.GetLabel()
}

func (m *model) addEnum(f *descriptorpb.FileDescriptorProto, loc locIndex, prefix string, e *descriptorpb.EnumDescriptorProto, path []int32) {
	en := &enum{name: prefix + "." + e.GetName(), file: f.GetName(), comment: loc.comment(path)}
	for i, v := range e.GetValue() {
		en.values = append(en.values, enumVal{
			name: v.GetName(), number: v.GetNumber(),
			comment: loc.comment(append(append([]int32{}, path...), enumValue, int32(i))),
		})
	}
	m.enums[en.name] = en
}

// messagesOf lists the top-level messages of a file in declaration order.
func (m *model) messagesOf(file string) []*message {
	var out []*message
	for _, msg := range m.messages {
		if msg.file == file && strings.Count(m.short(msg.name), ".") == 0 {
			out = append(out, msg)
		}
	}
	sort.Slice(out, func(i, j int) bool { return m.order(out[i]) < m.order(out[j]) })
	return out
}

func (m *model) enumsOf(file string) []*enum {
	var out []*enum
	for _, e := range m.enums {
		if e.file == file {
			out = append(out, e)
		}
	}
	// Declaration order: the position of each enum in its file.
	pos := map[string]int{}
	for _, f := range m.files {
		if f.GetName() == file {
			for i, e := range f.GetEnumType() {
				pos[m.pkg+"."+e.GetName()] = i
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return pos[out[i].name] < pos[out[j].name] })
	return out
}

// order is a message's position in its file.
func (m *model) order(msg *message) int {
	for _, f := range m.files {
		if f.GetName() != msg.file {
			continue
		}
		for i, d := range f.GetMessageType() {
			if d == msg.desc {
				return i
			}
		}
	}
	return 1 << 30
}

// refs lists the message and enum types a message's fields use, in field
// order (map entries resolved to their value type).
func (m *model) refs(msg *message) []string {
	var out []string
	for _, f := range msg.fields {
		t := strings.TrimPrefix(f.desc.GetTypeName(), ".")
		if t == "" {
			continue
		}
		if me := m.messages[t]; me != nil && me.mapVal != nil {
			t = strings.TrimPrefix(me.mapVal.desc.GetTypeName(), ".")
			if t == "" {
				continue
			}
		}
		out = append(out, t)
	}
	return out
}

// walk lists msg and every haa message reachable from it, depth first in
// field order, skipping those in seen (which it updates).
func (m *model) walk(name string, seen map[string]bool) []*message {
	msg := m.messages[name]
	if msg == nil || seen[name] {
		return nil
	}
	seen[name] = true
	out := []*message{msg}
	for _, r := range m.refs(msg) {
		out = append(out, m.walk(r, seen)...)
	}
	return out
}

// locIndex maps a descriptor path to its source location.
type locIndex map[string]*descriptorpb.SourceCodeInfo_Location

func key(path []int32) string { return fmt.Sprint(path) }

func locations(f *descriptorpb.FileDescriptorProto) locIndex {
	idx := locIndex{}
	for _, l := range f.GetSourceCodeInfo().GetLocation() {
		idx[key(l.GetPath())] = l
	}
	return idx
}

// comment is the leading comment (else the trailing one) of the element at
// path, its lines trimmed, paragraphs separated by a blank line.
func (idx locIndex) comment(path []int32) string {
	l := idx[key(path)]
	if l == nil {
		return ""
	}
	c := l.GetLeadingComments()
	if strings.TrimSpace(c) == "" {
		c = l.GetTrailingComments()
	}
	var paras []string
	var cur []string
	for _, line := range strings.Split(c, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			if len(cur) > 0 {
				paras = append(paras, strings.Join(cur, " "))
				cur = nil
			}
			continue
		}
		cur = append(cur, line)
	}
	if len(cur) > 0 {
		paras = append(paras, strings.Join(cur, " "))
	}
	return strings.Join(paras, "\n\n")
}
