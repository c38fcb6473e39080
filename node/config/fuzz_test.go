package config

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/node/internal/yamlout"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// yamlSeeds are documents to start fuzzing from: the examples of deploy/,
// the conversions of node/keepalived's examples, and every string of this
// package's tests that looks like YAML or JSON (read from the test
// sources, so that a new test's document seeds the fuzzers too).
func yamlSeeds(f *testing.F) [][]byte {
	var out [][]byte
	for _, pattern := range []string{"../../deploy/examples/*.yaml", "../keepalived/testdata/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			out = append(out, b)
		}
	}
	tests, _ := filepath.Glob("*_test.go")
	fset := token.NewFileSet()
	for _, p := range tests {
		file, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			f.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err == nil && (strings.Contains(s, ": ") || strings.Contains(s, ":\n") || strings.HasPrefix(s, "{")) {
				out = append(out, []byte(s))
			}
			return true
		})
	}
	return append(out, nil, []byte("{"), []byte("instances: [{}]"), []byte("- a"))
}

// writeYAML writes m as haad writes a configuration: protojson, then
// yamlout.
func writeYAML(t *testing.T, m proto.Message) []byte {
	t.Helper()
	js, err := protojson.Marshal(m)
	if err != nil {
		t.Fatalf("valid, but cannot be written as JSON: %v\n%v", err, m)
	}
	y, err := yamlout.FromJSON(js)
	if err != nil {
		t.Fatalf("valid, but cannot be written as YAML: %v\n%s", err, js)
	}
	return y
}

// invalid checks that err is an *Error listing at least one problem.
func invalid(t *testing.T, what string, err error) {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) || !errors.Is(err, ErrInvalid) || len(ce.Fields) == 0 {
		t.Fatalf("%s: %v (%T), want an *Error with its problems", what, err, err)
	}
}

// FuzzAgentConfig: Parse either fails with an *Error or gives a
// configuration that Resolve does not modify; one that validates, written
// back as haad writes it (protojson, then yamlout), parses again into the
// same message, validates again and has the same Hash. The input is also
// read as the protobuf encoding of an AgentConfig (what the API receives):
// one that validates must survive the same round trip, since haad writes
// what it is sent to its configuration file.
func FuzzAgentConfig(f *testing.F) {
	for _, s := range yamlSeeds(f) {
		f.Add(s)
		if cfg, err := Parse(s); err == nil {
			b, _ := proto.Marshal(cfg)
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if cfg, err := Parse(data); err != nil {
			invalid(t, "Parse", err)
		} else {
			agentRoundTrip(t, cfg)
		}
		var cfg haav1.AgentConfig
		if wire.Unmarshal(data, &cfg) == nil {
			agentRoundTrip(t, &cfg)
		}
	})
}

// wire decodes the protobuf encoding as the API does, but without unknown
// fields (the JSON mapping has no place for them).
var wire = proto.UnmarshalOptions{DiscardUnknown: true}

func agentRoundTrip(t *testing.T, cfg *haav1.AgentConfig) {
	t.Helper()
	h := Hash(cfg)
	_, err := Resolve(cfg)
	if Hash(cfg) != h {
		t.Fatal("Resolve modified the configuration")
	}
	if err != nil {
		invalid(t, "Resolve", err)
		return
	}
	y := writeYAML(t, cfg)
	back, err := Parse(y)
	if err != nil {
		t.Fatalf("the written configuration does not parse: %v\n%s", err, y)
	}
	if !proto.Equal(back, cfg) {
		t.Fatalf("written and parsed again, the configuration differs:\n%v\n%v\n%s", cfg, back, y)
	}
	if err := Validate(back); err != nil {
		t.Fatalf("written and parsed again, the configuration is not valid: %v\n%s", err, y)
	}
	if Hash(back) != h {
		t.Fatal("written and parsed again, the configuration has another hash")
	}
}

// FuzzFleetDocument: ParseFleet either fails with an *Error or gives a
// document that ValidateFleet does not modify; one that validates,
// written back as YAML, parses again into the same document, validates
// again, is still a fleet document (IsFleet), and has the same
// DocumentHash and per-node hashes. The input is also read as the
// protobuf encoding of a Fleet (what haactl apply sends, what gossip
// carries), with the same property.
func FuzzFleetDocument(f *testing.F) {
	for _, s := range yamlSeeds(f) {
		f.Add(s)
		if doc, err := ParseFleet(s); err == nil {
			b, _ := proto.Marshal(doc)
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if doc, err := ParseFleet(data); err != nil {
			invalid(t, "ParseFleet", err)
		} else {
			fleetRoundTrip(t, doc)
		}
		var doc haav1.Fleet
		if wire.Unmarshal(data, &doc) == nil {
			fleetRoundTrip(t, &doc)
		}
	})
}

func fleetRoundTrip(t *testing.T, doc *haav1.Fleet) {
	t.Helper()
	h := DocumentHash(doc)
	err := ValidateFleet(doc)
	if DocumentHash(doc) != h {
		t.Fatal("ValidateFleet modified the document")
	}
	if err != nil {
		invalid(t, "ValidateFleet", err)
		return
	}
	y := writeYAML(t, doc)
	back, err := ParseFleet(y)
	if err != nil {
		t.Fatalf("the written document does not parse: %v\n%s", err, y)
	}
	if !proto.Equal(back, doc) {
		t.Fatalf("written and parsed again, the document differs:\n%v\n%v\n%s", doc, back, y)
	}
	if err := ValidateFleet(back); err != nil {
		t.Fatalf("written and parsed again, the document is not valid: %v\n%s", err, y)
	}
	if !IsFleet(y) {
		t.Fatalf("the written document is not a fleet document:\n%s", y)
	}
	if DocumentHash(back) != h {
		t.Fatal("written and parsed again, the document has another hash")
	}
	for _, n := range doc.GetNodes() {
		if FleetNodeHash(back, n) != FleetNodeHash(doc, n) {
			t.Fatalf("written and parsed again, node %s's hash differs", n)
		}
	}
}
