package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"sigs.k8s.io/yaml"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Load reads, parses and validates an agent configuration file.
func Load(path string) (*haav1.AgentConfig, error) {
	cfg, _, err := LoadResolved(path)
	return cfg, err
}

// LoadResolved is Load that also returns the configuration resolved (what
// Resolve returns for it), so that its caller need not resolve it again.
func LoadResolved(path string) (*haav1.AgentConfig, *Agent, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read configuration: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, nil, withSource(err, path)
	}
	a, err := Resolve(cfg)
	if err != nil {
		return nil, nil, withSource(err, path)
	}
	return cfg, a, nil
}

func withSource(err error, src string) error {
	if ce, ok := err.(*Error); ok {
		ce.Source = src
	}
	return err
}

// Parse decodes YAML or JSON into an AgentConfig. It reports every unknown
// field and every value of the wrong type with its path. Durations accept
// Go's syntax ("100ms", "1m30s") as well as protobuf's ("0.1s").
func Parse(data []byte) (*haav1.AgentConfig, error) {
	cfg := &haav1.AgentConfig{}
	if err := Unmarshal(data, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Unmarshal decodes YAML or JSON in the protobuf JSON mapping into m, with
// the same checks as Parse.
func Unmarshal(data []byte, m protoMessage) error {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return &Error{Fields: []FieldError{{Msg: "not valid YAML: " + err.Error()}}}
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return &Error{Fields: []FieldError{{Msg: "not valid YAML/JSON: " + err.Error()}}}
	}
	if doc == nil {
		doc = map[string]any{}
	}
	var p problems
	doc = normalize(&p, "", doc, m.ProtoReflect().Descriptor())
	if err := p.err(""); err != nil {
		return err
	}
	js, err = json.Marshal(doc)
	if err != nil {
		return err
	}
	if err := protojson.Unmarshal(js, m); err != nil {
		// normalize catches what users write wrong; this is a backstop.
		return &Error{Fields: []FieldError{{Msg: err.Error()}}}
	}
	return nil
}

type protoMessage interface {
	ProtoReflect() protoreflect.Message
}

// normalize walks a decoded JSON value along a message descriptor. It records
// unknown fields and type mismatches, and rewrites durations into protobuf's
// JSON form. It returns the rewritten value.
func normalize(p *problems, path string, v any, md protoreflect.MessageDescriptor) any {
	if md.FullName() == "google.protobuf.Duration" {
		return normalizeDuration(p, path, v)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		p.add(path, "expected an object (mapping), got %s", describe(v))
		return v
	}
	fields := md.Fields()
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fp := join(path, k)
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByName(protoreflect.Name(k))
		}
		if fd == nil {
			msg := fmt.Sprintf("unknown field %q", k)
			if s := suggest(k, fields); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			p.add(fp, "%s", msg)
			continue
		}
		obj[k] = normalizeField(p, fp, obj[k], fd)
	}
	return obj
}

func normalizeField(p *problems, path string, v any, fd protoreflect.FieldDescriptor) any {
	if v == nil {
		return v // JSON null: the field's default
	}
	if fd.IsList() {
		arr, ok := v.([]any)
		if !ok {
			p.add(path, "expected a list, got %s", describe(v))
			return v
		}
		if len(arr) == 0 && fd.JSONName() == "unicastPeers" {
			// A template that rendered no peers must not silently turn
			// a unicast setup into multicast.
			p.add(path, "empty list: list the peers, or remove the field to use multicast")
		}
		for i := range arr {
			arr[i] = normalizeValue(p, fmt.Sprintf("%s[%d]", path, i), arr[i], fd)
		}
		return arr
	}
	if fd.IsMap() {
		obj, ok := v.(map[string]any)
		if !ok {
			p.add(path, "expected a mapping, got %s", describe(v))
			return v
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys) // problems in a stable order
		for _, k := range keys {
			obj[k] = normalizeValue(p, join(path, k), obj[k], fd.MapValue())
		}
		return obj
	}
	return normalizeValue(p, path, v, fd)
}

func normalizeValue(p *problems, path string, v any, fd protoreflect.FieldDescriptor) any {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return normalize(p, path, v, fd.Message())
	case protoreflect.StringKind, protoreflect.BytesKind:
		switch x := v.(type) {
		case string:
		case json.Number:
			p.add(path, "expected a string, got the number %s: quote it (%q)", x, x.String())
		default:
			p.add(path, "expected a string, got %s", describe(v))
		}
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			p.add(path, "expected true or false, got %s", describe(v))
		}
	case protoreflect.EnumKind:
		if _, ok := v.(string); !ok {
			p.add(path, "expected a name, got %s", describe(v))
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		if _, ok := v.(json.Number); !ok {
			p.add(path, "expected a number, got %s", describe(v))
		}
	default: // integers
		n, ok := v.(json.Number)
		if !ok {
			p.add(path, "expected a whole number, got %s", describe(v))
			return v
		}
		unsigned := fd.Kind() == protoreflect.Uint32Kind || fd.Kind() == protoreflect.Uint64Kind ||
			fd.Kind() == protoreflect.Fixed32Kind || fd.Kind() == protoreflect.Fixed64Kind
		bits := 64
		if k := fd.Kind(); k == protoreflect.Uint32Kind || k == protoreflect.Int32Kind ||
			k == protoreflect.Sint32Kind || k == protoreflect.Fixed32Kind || k == protoreflect.Sfixed32Kind {
			bits = 32
		}
		var err error
		if unsigned {
			_, err = strconv.ParseUint(n.String(), 10, bits)
		} else {
			_, err = strconv.ParseInt(n.String(), 10, bits)
		}
		if err != nil {
			what := "a whole number"
			if unsigned {
				what = "a whole number >= 0"
			}
			p.add(path, "expected %s, got %s", what, n.String())
		}
	}
	return v
}

// normalizeDuration accepts "1s", "0.1s", "100ms", "1m30s" and returns the
// protobuf JSON form.
func normalizeDuration(p *problems, path string, v any) any {
	s, ok := v.(string)
	if !ok {
		if n, isNum := v.(json.Number); isNum {
			p.add(path, "duration %s needs a unit, e.g. \"%ss\" or \"%sms\"", n, n, n)
		} else {
			p.add(path, "expected a duration such as \"1s\" or \"100ms\", got %s", describe(v))
		}
		return v
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		p.add(path, "%q is not a duration: write e.g. \"1s\", \"0.1s\" or \"100ms\"", s)
		return v
	}
	sec := d / time.Second
	frac := d % time.Second
	if frac < 0 {
		frac = -frac
	}
	sign := ""
	if d < 0 && sec == 0 {
		sign = "-"
	}
	return fmt.Sprintf("%s%d.%09ds", sign, sec, frac)
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", x)
	case json.Number:
		return "the number " + x.String()
	case bool:
		return strconv.FormatBool(x)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// suggest returns the field name closest to a misspelled key, if close.
func suggest(k string, fields protoreflect.FieldDescriptors) string {
	best, bestD := "", 3
	lk := strings.ToLower(k)
	for i := 0; i < fields.Len(); i++ {
		name := fields.Get(i).JSONName()
		ln := strings.ToLower(name)
		squashed := strings.ReplaceAll(lk, "_", "")
		if ln == lk || squashed == ln || (len(squashed) >= 4 && strings.HasPrefix(ln, squashed)) {
			return name
		}
		if d := EditDistance(lk, ln); d < bestD {
			best, bestD = name, d
		}
	}
	return best
}

// EditDistance is the Levenshtein distance of a and b: what the "did you
// mean" hints of configuration errors rank candidates by.
func EditDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
