package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// root is the repository root, seen from this package's directory.
const root = "../../.."

// TestDocsFresh regenerates config.md and api.md from the protos (through
// .tools/buf, as make docs does) and compares them with the committed ones.
func TestDocsFresh(t *testing.T) {
	buf := filepath.Join(root, ".tools/buf")
	if _, err := os.Stat(buf); err != nil {
		if testing.Short() {
			t.Skip("no .tools/buf (make tools installs it)")
		}
		t.Fatalf("%s not found: run make tools (make test does) to check that deploy/docs is fresh", buf)
	}
	fds, err := build(".tools/buf", root)
	if err != nil {
		t.Fatal(err)
	}
	m, err := newModel(fds, pkg)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := Generate(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"config.md", "api.md"} {
		want := string(docs[name])
		got, err := os.ReadFile(filepath.Join(root, "deploy/docs", name))
		if err != nil {
			t.Fatalf("%v: run make docs", err)
		}
		if string(got) != want {
			t.Errorf("deploy/docs/%s is stale: run make docs and commit it\n%s", name, firstDiff(string(got), want))
		}
	}
}

func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "first difference at line " + strconv.Itoa(i+1) + ":\n  file:      " + gl + "\n  generated: " + wl
		}
	}
	return ""
}

// TestConfigReferenceComplete checks config.md against the compiled
// schema (no buf needed): every message of config.proto has its section and
// every field its row there, by its YAML (JSON) name.
func TestConfigReferenceComplete(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "deploy/docs/config.md"))
	if err != nil {
		t.Fatal(err)
	}
	sections := splitSections(string(b))
	msgs := haav1.File_haa_v1_config_proto.Messages()
	for i := 0; i < msgs.Len(); i++ {
		md := msgs.Get(i)
		sec, ok := sections[string(md.Name())]
		if !ok {
			t.Errorf("config.md has no section ### %s", md.Name())
			continue
		}
		checkRows(t, "config.md", md, sec)
	}
}

// TestAPIReferenceComplete does the same for api.md: every service with
// each RPC, every message of agent.proto, fleet.proto and gossip.proto.
func TestAPIReferenceComplete(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "deploy/docs/api.md"))
	if err != nil {
		t.Fatal(err)
	}
	sections := splitSections(string(b))
	for _, fd := range []protoreflect.FileDescriptor{haav1.File_haa_v1_agent_proto, haav1.File_haa_v1_fleet_proto, haav1.File_haa_v1_gossip_proto} {
		for i := 0; i < fd.Services().Len(); i++ {
			s := fd.Services().Get(i)
			sec, ok := sections[string(s.Name())]
			if !ok {
				t.Errorf("api.md has no section ### %s", s.Name())
				continue
			}
			for j := 0; j < s.Methods().Len(); j++ {
				if name := s.Methods().Get(j).Name(); !strings.Contains(sec, "| `"+string(name)+"` |") {
					t.Errorf("api.md: %s has no row for rpc %s", s.Name(), name)
				}
			}
		}
		for i := 0; i < fd.Messages().Len(); i++ {
			md := fd.Messages().Get(i)
			sec, ok := sections[string(md.Name())]
			if !ok {
				t.Errorf("api.md has no section ### %s", md.Name())
				continue
			}
			checkRows(t, "api.md", md, sec)
		}
		for i := 0; i < fd.Enums().Len(); i++ {
			ed := fd.Enums().Get(i)
			sec, ok := sections[string(ed.Name())]
			if !ok {
				t.Errorf("api.md has no section ### %s", ed.Name())
				continue
			}
			for j := 0; j < ed.Values().Len(); j++ {
				if v := ed.Values().Get(j).Name(); !strings.Contains(sec, "| `"+string(v)+"` |") {
					t.Errorf("api.md: enum %s has no row for %s", ed.Name(), v)
				}
			}
		}
	}
}

func checkRows(t *testing.T, doc string, md protoreflect.MessageDescriptor, sec string) {
	t.Helper()
	for j := 0; j < md.Fields().Len(); j++ {
		f := md.Fields().Get(j)
		if !strings.Contains(sec, "\n| `"+f.JSONName()+"` |") {
			t.Errorf("%s: %s has no row for field %s (YAML/JSON %s)", doc, md.Name(), f.Name(), f.JSONName())
		}
	}
}

// splitSections maps each "### Name" heading to the text up to the next
// heading.
func splitSections(doc string) map[string]string {
	out := map[string]string{}
	parts := strings.Split(doc, "\n### ")
	for _, p := range parts[1:] {
		name, body, _ := strings.Cut(p, "\n")
		if i := strings.Index(body, "\n## "); i >= 0 {
			body = body[:i]
		}
		out[name] = body
	}
	return out
}

func TestExtractFacts(t *testing.T) {
	for _, tc := range []struct {
		comment string
		want    fieldFacts
	}{
		{"Priority 1..255; 255 means this node owns the addresses. Default 100. keepalived: priority.",
			fieldFacts{Default: "100", Range: "1..255", Keepalived: "priority"}},
		{"Name of this node in the fleet. Default: the host name. keepalived: global_defs router_id.",
			fieldFacts{Default: "the host name", Keepalived: "global_defs router_id"}},
		{"tcp (default), udp or sctp. keepalived: protocol.", fieldFacts{Default: "tcp", Keepalived: "protocol"}},
		{`"ipvs" (the kernel's), "nftables" or "auto" (default): ipvs where the kernel has it.`, fieldFacts{Default: "auto"}},
		{"Initial state, MASTER or BACKUP (default). As in keepalived 2.2.7 the election decides. keepalived: state.",
			fieldFacts{Default: "BACKUP", Keepalived: "state"}},
		{"A check that takes longer has failed. Default 3s, at most the interval. keepalived: connect_timeout.",
			fieldFacts{Default: "3s", Keepalived: "connect_timeout"}},
		{"The first check waits. Default: the interval; 0s: none.", fieldFacts{Default: "the interval"}},
		{`Unique name. Default: "ADDR:PORT/PROTO" (e.g. "10.0.0.100:80/tcp") or "fwmark:N".`,
			fieldFacts{Default: `"ADDR:PORT/PROTO" (e.g. "10.0.0.100:80/tcp") or "fwmark:N"`}},
		{`Name asked. Default ".". keepalived: name.`, fieldFacts{Default: ".", Keepalived: "name"}},
		{"Status codes that count as healthy. Default: 200..299. keepalived: status_code.",
			fieldFacts{Default: "200..299", Keepalived: "status_code"}},
		{"host:port to listen on, e.g. \"10.77.0.1:7946\". Port default 7946.", fieldFacts{Default: "port 7946"}},
		{"-253..253 (file: -254..254, multiplied). Default 0: failure means FAULT.",
			fieldFacts{Default: "0", Range: "-253..253"}},
		{"Failed checks in a row. Default 1. keepalived: retry / nb_get_retry (+1).",
			fieldFacts{Default: "1", Keepalived: "retry / nb_get_retry (+1)"}},
		{"The key file. Required unless bind is a loopback address. Every node needs it.",
			fieldFacts{Default: "required unless bind is a loopback address"}},
		{"Prefix length. Unit: bits. Default 32.", fieldFacts{Default: "32", Unit: "bits"}},
		{"Commands run on state changes. keepalived: notify_*.", fieldFacts{Keepalived: "notify_*"}},
		{"Unique name, e.g. VI_1.", fieldFacts{}},
	} {
		if got := extractFacts(tc.comment); got != tc.want {
			t.Errorf("extractFacts(%q)\n got %+v\nwant %+v", tc.comment, got, tc.want)
		}
	}
}

func TestStripFacts(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Priority 1..255. Default 100. keepalived: priority.", "Priority 1..255."},
		{"Check this often. Default 5s. keepalived: delay_loop.", "Check this often."},
		// A default followed by more stays, as does one inside a sentence.
		{"Has failed. Default 3s, at most the interval. keepalived: connect_timeout.", "Has failed. Default 3s, at most the interval."},
		{`e.g. "10.77.0.1:7946". Port default 7946.`, `e.g. "10.77.0.1:7946". Port default 7946.`},
		{"Prometheus metrics over HTTP. Unset: none.", "Prometheus metrics over HTTP."},
		{"Default \"/\". keepalived: url path.", ""},
	} {
		if got := stripFacts(tc.in); got != tc.want {
			t.Errorf("stripFacts(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
