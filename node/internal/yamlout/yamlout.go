// Package yamlout writes JSON as block YAML, keeping the order of the
// keys (protojson's, which is the .proto order). It is what haad writes
// configurations with: many times faster than going through a generic
// YAML library, and the file reads in the order the reference documents.
//
// The input is JSON as encoding/json or protojson writes it; a top-level
// object's members may be written one at a time (Writer), so a large
// configuration is converted in pieces.
package yamlout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// FromJSON converts one JSON value (an object, at the top) to YAML.
func FromJSON(js []byte) ([]byte, error) {
	var w Writer
	w.b.Grow(2 * len(js))
	if err := w.Document(js); err != nil {
		return nil, err
	}
	return w.Bytes(), nil
}

// Writer builds a YAML document.
type Writer struct {
	b      bytes.Buffer
	fields int // top-level members written
}

// Bytes returns the document written so far.
func (w *Writer) Bytes() []byte {
	if w.fields == 0 && w.b.Len() == 0 {
		return []byte("{}\n")
	}
	return w.b.Bytes()
}

// Document writes a whole JSON value: an object's members at the top
// level, anything else as a scalar document.
func (w *Writer) Document(js []byte) error {
	p := parser{s: js}
	p.ws()
	if p.peek() != '{' {
		v, err := p.value()
		if err != nil {
			return err
		}
		if err := p.end(); err != nil {
			return err
		}
		w.scalar(v)
		w.b.WriteByte('\n')
		return nil
	}
	v, err := p.value()
	if err != nil {
		return err
	}
	if err := p.end(); err != nil {
		return err
	}
	for _, m := range v.(object) {
		w.member(m.key, m.val)
	}
	return nil
}

// Field writes one top-level member: key and its JSON value.
func (w *Writer) Field(key string, js []byte) error {
	p := parser{s: js}
	v, err := p.value()
	if err != nil {
		return err
	}
	if err := p.end(); err != nil {
		return err
	}
	w.member(key, v)
	return nil
}

// ListField writes the top-level member key whose value is the list of
// the given JSON values, converting each in turn (after calls each
// element: a long conversion may yield there).
func (w *Writer) ListField(key string, items [][]byte, after func()) error {
	w.key(key, 0)
	if len(items) == 0 {
		w.b.WriteString(" []\n")
		w.fields++
		return nil
	}
	w.b.WriteByte('\n')
	for _, js := range items {
		p := parser{s: js}
		v, err := p.value()
		if err != nil {
			return err
		}
		if err := p.end(); err != nil {
			return err
		}
		w.list([]any{v}, 1)
		if after != nil {
			after()
		}
	}
	w.fields++
	return nil
}

func (w *Writer) member(key string, v any) {
	w.key(key, 0)
	w.value(v, 0)
	w.fields++
}

type member struct {
	key string
	val any
}

// object keeps its members in order.
type object []member

// number is a JSON number as written.
type number string

func (w *Writer) indent(n int) {
	for range n {
		w.b.WriteString("  ")
	}
}

// object writes the members of o, each on its own line at depth, the
// first one without indentation when first is false (after "- ").
func (w *Writer) object(o object, depth int, first bool) {
	for i, m := range o {
		if i > 0 || first {
			w.indent(depth)
		}
		w.key(m.key, depth)
		w.value(m.val, depth)
	}
}

// value writes what follows "key:" (or "- ").
func (w *Writer) value(v any, depth int) {
	switch v := v.(type) {
	case object:
		if len(v) == 0 {
			w.b.WriteString(" {}\n")
			return
		}
		w.b.WriteByte('\n')
		w.object(v, depth+1, true)
	case []any:
		if len(v) == 0 {
			w.b.WriteString(" []\n")
			return
		}
		if allScalars(v) && len(v) <= 16 {
			w.b.WriteString(" [")
			for i, x := range v {
				if i > 0 {
					w.b.WriteString(", ")
				}
				w.scalar(x)
			}
			w.b.WriteString("]\n")
			return
		}
		w.b.WriteByte('\n')
		w.list(v, depth+1)
	default:
		w.b.WriteByte(' ')
		w.scalar(v)
		w.b.WriteByte('\n')
	}
}

// list writes a block sequence at depth: an object's first member on the
// dash's line, anything else as after a key.
func (w *Writer) list(a []any, depth int) {
	for _, x := range a {
		w.indent(depth)
		w.b.WriteByte('-')
		if o, ok := x.(object); ok && len(o) > 0 {
			w.b.WriteByte(' ')
			w.object(o, depth+1, false)
			continue
		}
		w.value(x, depth)
	}
}

func allScalars(a []any) bool {
	for _, x := range a {
		switch x.(type) {
		case object, []any:
			return false
		}
	}
	return true
}

// maxImplicitKey is the longest key YAML takes without "? " (1024
// characters, with room for the quotes).
const maxImplicitKey = 1000

// key writes "key:" of a mapping whose keys are at depth.
func (w *Writer) key(k string, depth int) {
	start := w.b.Len()
	w.str(k)
	if utf8.RuneCount(w.b.Bytes()[start:]) <= maxImplicitKey {
		w.b.WriteByte(':')
		return
	}
	w.b.Truncate(start)
	w.b.WriteString("? ")
	w.str(k)
	w.b.WriteByte('\n')
	w.indent(depth)
	w.b.WriteByte(':')
}

func (w *Writer) scalar(v any) {
	switch v := v.(type) {
	case nil:
		w.b.WriteString("null")
	case bool:
		w.b.WriteString(strconv.FormatBool(v))
	case number:
		w.b.WriteString(string(v))
	case string:
		w.str(v)
	}
}

// str writes s plain when no YAML reader can take it for anything but
// that string, double-quoted otherwise.
func (w *Writer) str(s string) {
	if plain(s) {
		w.b.WriteString(s)
		return
	}
	w.b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			w.b.WriteString(`\"`)
		case r == '\\':
			w.b.WriteString(`\\`)
		case r == '\n':
			w.b.WriteString(`\n`)
		case r == '\t':
			w.b.WriteString(`\t`)
		case r == '\r':
			w.b.WriteString(`\r`)
		case r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == 0x2028 || r == 0x2029 || r == 0xfeff || r == 0xfffe || r == 0xffff:
			// Not printable in YAML (C0, DEL, C1 with NEL, U+FFFE and
			// U+FFFF), a line separator or the byte order mark.
			fmt.Fprintf(&w.b, `\u%04x`, r)
		default:
			w.b.WriteRune(r)
		}
	}
	w.b.WriteByte('"')
}

// plain reports whether s may be written as a plain scalar: a conservative
// set of characters (letters, digits, _ . / @ + - and single colons
// between others), starting with a letter, digit, _ . or /, and nothing a
// YAML 1.1 or 1.2 reader may take for a number, a bool, null, a date or
// sexagesimal.
func plain(s string) bool {
	if s == "" || !plainStart(s[0]) {
		return false
	}
	digitsOnly := true // digits, '_', ':', '.' (and a sign or dot first)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ':':
			if i == len(s)-1 || s[i+1] == ':' {
				return false
			}
		case isAlnum(c) || c == '_' || c == '.' || c == '/' || c == '@' || c == '+' || c == '-':
		default:
			return false
		}
		if !(c >= '0' && c <= '9' || c == '_' || c == ':' || c == '.') {
			digitsOnly = false
		}
	}
	if digitsOnly || isFloat(s) || isDate(s) || len(s) > 1 && s[0] == '0' && (s[1]|0x20 == 'x' || s[1]|0x20 == 'o' || s[1]|0x20 == 'b') {
		return false
	}
	switch lower(s) {
	case "true", "false", "yes", "no", "on", "off", "y", "n", "null", ".inf", ".nan":
		return false
	}
	return true
}

func plainStart(c byte) bool { return isAlnum(c) || c == '_' || c == '.' || c == '/' }

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// isFloat: something like 1e5, 1.5e-3, inf or NaN (with a sign or not).
func isFloat(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
			switch lower(strings.TrimLeft(s, "+-")) {
			case "inf", "nan":
			default:
				if !strings.EqualFold(strings.TrimLeft(s, "+-"), "infinity") {
					return false
				}
			}
			break
		}
	}
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// isDate: YYYY-M-D at the start.
func isDate(s string) bool {
	digits := func(s string, n int) (string, bool) {
		i := 0
		for i < len(s) && i < n && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return s[i:], i > 0 && (n != 4 || i == 4)
	}
	r, ok := digits(s, 4)
	if !ok || len(r) == 0 || r[0] != '-' {
		return false
	}
	r, ok = digits(r[1:], 2)
	if !ok || len(r) == 0 || r[0] != '-' {
		return false
	}
	_, ok = digits(r[1:], 2)
	return ok
}

func lower(s string) string {
	if len(s) > 5 {
		return ""
	}
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

// parser reads one JSON value from s.
type parser struct {
	s []byte
	i int
}

var errSyntax = errors.New("yamlout: invalid JSON")

func (p *parser) ws() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\n' || p.s[p.i] == '\t' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *parser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *parser) end() error {
	p.ws()
	if p.i != len(p.s) {
		return fmt.Errorf("yamlout: more than one JSON value")
	}
	return nil
}

func (p *parser) value() (any, error) {
	p.ws()
	switch c := p.peek(); {
	case c == '{':
		p.i++
		var o object
		p.ws()
		if p.peek() == '}' {
			p.i++
			return o, nil
		}
		for {
			p.ws()
			k, err := p.str()
			if err != nil {
				return nil, err
			}
			p.ws()
			if p.peek() != ':' {
				return nil, errSyntax
			}
			p.i++
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			o = append(o, member{k, v})
			p.ws()
			switch p.peek() {
			case ',':
				p.i++
			case '}':
				p.i++
				return o, nil
			default:
				return nil, errSyntax
			}
		}
	case c == '[':
		p.i++
		a := []any{}
		p.ws()
		if p.peek() == ']' {
			p.i++
			return a, nil
		}
		for {
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			a = append(a, v)
			p.ws()
			switch p.peek() {
			case ',':
				p.i++
			case ']':
				p.i++
				return a, nil
			default:
				return nil, errSyntax
			}
		}
	case c == '"':
		return p.str()
	case c == 't' && bytes.HasPrefix(p.s[p.i:], []byte("true")):
		p.i += 4
		return true, nil
	case c == 'f' && bytes.HasPrefix(p.s[p.i:], []byte("false")):
		p.i += 5
		return false, nil
	case c == 'n' && bytes.HasPrefix(p.s[p.i:], []byte("null")):
		p.i += 4
		return nil, nil
	case c == '-' || c >= '0' && c <= '9':
		start := p.i
		for p.i < len(p.s) && bytes.IndexByte([]byte("+-.eE0123456789"), p.s[p.i]) >= 0 {
			p.i++
		}
		n := string(p.s[start:p.i])
		if !json.Valid([]byte(n)) {
			return nil, errSyntax
		}
		return number(n), nil
	}
	return nil, errSyntax
}

// str reads a JSON string.
func (p *parser) str() (string, error) {
	if p.peek() != '"' {
		return "", errSyntax
	}
	start := p.i
	p.i++
	escaped := false
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == '\\':
			escaped = true
			p.i += 2
			continue
		case c == '"':
			p.i++
			if !escaped {
				return string(p.s[start+1 : p.i-1]), nil
			}
			var s string
			if err := json.Unmarshal(p.s[start:p.i], &s); err != nil {
				return "", err
			}
			return s, nil
		case c < 0x20:
			return "", errSyntax
		}
		p.i++
	}
	return "", errSyntax
}
