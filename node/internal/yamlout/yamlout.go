// Package yamlout writes JSON as block YAML, keeping the order of the
// keys (protojson's, which is the .proto order). It is what haad writes
// configurations with: a few times faster than going through a generic
// YAML library, and the file reads in the order the reference documents.
package yamlout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// FromJSON converts one JSON value (an object, at the top) to YAML.
func FromJSON(js []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(js))
	d.UseNumber()
	v, err := parse(d)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("yamlout: more than one JSON value")
	}
	var b bytes.Buffer
	b.Grow(len(js) + len(js)/4)
	switch v := v.(type) {
	case object:
		if len(v) == 0 {
			b.WriteString("{}\n")
		}
		writeObject(&b, v, 0)
	default:
		writeScalar(&b, v)
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

type member struct {
	key string
	val any
}

// object keeps its members in order.
type object []member

func parse(d *json.Decoder) (any, error) {
	t, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch t := t.(type) {
	case json.Delim:
		switch t {
		case '{':
			var o object
			for d.More() {
				k, err := d.Token()
				if err != nil {
					return nil, err
				}
				v, err := parse(d)
				if err != nil {
					return nil, err
				}
				o = append(o, member{k.(string), v})
			}
			_, err := d.Token() // }
			return o, err
		case '[':
			a := []any{}
			for d.More() {
				v, err := parse(d)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			_, err := d.Token() // ]
			return a, err
		}
		return nil, fmt.Errorf("yamlout: unexpected %v", t)
	default:
		return t, nil // string, json.Number, bool, nil
	}
}

func indent(b *bytes.Buffer, n int) {
	for range n {
		b.WriteString("  ")
	}
}

// writeObject writes the members of o, each on its own line at depth.
func writeObject(b *bytes.Buffer, o object, depth int) {
	for i, m := range o {
		if i > 0 || depth > 0 {
			indent(b, depth)
		}
		writeKey(b, m.key, depth)
		writeValue(b, m.val, depth)
	}
}

// writeValue writes what follows "key:" (or "- ").
func writeValue(b *bytes.Buffer, v any, depth int) {
	switch v := v.(type) {
	case object:
		if len(v) == 0 {
			b.WriteString(" {}\n")
			return
		}
		b.WriteByte('\n')
		writeObject(b, v, depth+1)
	case []any:
		if len(v) == 0 {
			b.WriteString(" []\n")
			return
		}
		if allScalars(v) && len(v) <= 16 {
			b.WriteString(" [")
			for i, x := range v {
				if i > 0 {
					b.WriteString(", ")
				}
				writeScalar(b, x)
			}
			b.WriteString("]\n")
			return
		}
		b.WriteByte('\n')
		writeList(b, v, depth+1)
	default:
		b.WriteByte(' ')
		writeScalar(b, v)
		b.WriteByte('\n')
	}
}

// writeList writes a block sequence at depth.
func writeList(b *bytes.Buffer, a []any, depth int) {
	for _, x := range a {
		indent(b, depth)
		b.WriteByte('-')
		switch x := x.(type) {
		case object:
			if len(x) == 0 {
				b.WriteString(" {}\n")
				continue
			}
			b.WriteByte(' ')
			writeKey(b, x[0].key, depth+1)
			writeValue(b, x[0].val, depth+1)
			writeObject(b, x[1:], depth+1)
		case []any:
			writeValue(b, x, depth)
		default:
			b.WriteByte(' ')
			writeScalar(b, x)
			b.WriteByte('\n')
		}
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

// writeKey writes "key:" of a mapping whose keys are at depth.
func writeKey(b *bytes.Buffer, k string, depth int) {
	start := b.Len()
	writeString(b, k)
	if utf8.RuneCount(b.Bytes()[start:]) <= maxImplicitKey {
		b.WriteByte(':')
		return
	}
	b.Truncate(start)
	b.WriteString("? ")
	writeString(b, k)
	b.WriteByte('\n')
	indent(b, depth)
	b.WriteByte(':')
}

func writeScalar(b *bytes.Buffer, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case json.Number:
		b.WriteString(v.String())
	case string:
		writeString(b, v)
	}
}

// plainRE is a conservative plain scalar: no YAML indicator, no space.
var plainRE = regexp.MustCompile(`^[A-Za-z0-9_./][A-Za-z0-9_./@+-]*(:[A-Za-z0-9_./@+-]+)*$`)

// ambiguousRE matches what a YAML 1.1 or 1.2 reader may take for a number,
// a date or sexagesimal rather than a string.
var ambiguousRE = regexp.MustCompile(`^[-+.]?[0-9][0-9_:.]*([eE][-+]?[0-9]+)?$|^\d{4}-\d\d?-\d\d?|^0[xXoObB]|^[-+]?\.(inf|Inf|INF|nan|NaN|NAN)$`)

var reserved = map[string]bool{"true": true, "false": true, "yes": true, "no": true, "on": true, "off": true,
	"y": true, "n": true, "null": true, "~": true}

// writeString writes s plain when no YAML reader can take it for anything
// but that string, double-quoted otherwise.
func writeString(b *bytes.Buffer, s string) {
	if plainRE.MatchString(s) && !ambiguousRE.MatchString(s) && !reserved[strings.ToLower(s)] &&
		!strings.HasPrefix(s, "-") {
		b.WriteString(s)
		return
	}
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029 || r == 0xfeff:
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}
