package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/ctl"
	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/keepalived"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// example returns the path of one of the keepalived.conf examples:
// node/keepalived's copies of ../shared/keepalived-examples, so that the
// tests run anywhere.
func example(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join("..", "..", "node", "keepalived", "testdata", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("keepalived example %s: %v", name, err)
	}
	return p
}

// noAgent is a target nothing listens on: import talks to no agent.
const noAgent = "unix:///nowhere.sock"

var warningLine = regexp.MustCompile(`^haactl: warning: \S+:\d+: .+$`)

// wantWarnings checks that stderr holds only warning lines, and those
// listed (by their start) among them.
func wantWarnings(t *testing.T, stderr string, want ...string) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
		if l != "" && !warningLine.MatchString(l) && !strings.HasPrefix(l, "haactl: warning: --interface ") {
			t.Errorf("stderr line is no warning: %q", l)
		}
	}
	for _, w := range want {
		if !strings.Contains(stderr, "haactl: warning: "+w) {
			t.Errorf("stderr lacks the warning %q:\n%s", w, stderr)
		}
	}
}

// splitHeader checks the comment that starts the output and returns the
// YAML after it.
func splitHeader(t *testing.T, out, source string) string {
	t.Helper()
	header := "# converted from " + source + " by haactl import\n"
	body, ok := strings.CutPrefix(out, header)
	if !ok {
		t.Fatalf("output does not start with %q:\n%s", header, out)
	}
	return body
}

func TestImportOneFile(t *testing.T) {
	file := example(t, "03-dual-master-node-a.conf")
	r := haactl(t, noAgent, "", "import", file, "--node", "n1", "--interface", "ens33=eth0")
	wantOK(t, r)
	wantWarnings(t, r.err)
	body := splitHeader(t, r.out, file)
	// Fields in the order of the .proto, as people write them.
	if !strings.HasPrefix(body, "name: n1\ninstances:\n- name: VI_1\n  interface: eth0\n  vrid: 51\n  priority: 100\n") {
		t.Errorf("YAML not in the .proto's order:\n%s", body)
	}
	got, err := config.Parse([]byte(r.out))
	if err != nil {
		t.Fatalf("the output does not parse: %v\n%s", err, r.out)
	}
	if err := config.Validate(got); err != nil {
		t.Fatalf("the output is not valid: %v", err)
	}
	want, _, err := keepalived.Load(file, keepalived.Options{Name: "n1", Interfaces: map[string]string{"ens33": "eth0"}})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Errorf("printed:\n%v\nkeepalived.Load:\n%v", got, want)
	}
	if len(got.GetInstances()) != 2 {
		t.Fatalf("instances: %v", got.GetInstances())
	}
	for i, w := range []struct {
		name     string
		vrid     uint32
		prio     uint32
		vip      string
		password string
	}{{"VI_1", 51, 100, "192.168.55.140", "1111"}, {"VI_2", 52, 80, "192.168.55.141", "1111"}} {
		in := got.GetInstances()[i]
		if in.GetName() != w.name || in.GetInterface() != "eth0" || in.GetVrid() != w.vrid || in.GetPriority() != w.prio ||
			in.GetVersion() != 2 || in.GetAdvertInterval().AsDuration().Seconds() != 1 ||
			len(in.GetVips()) != 1 || !strings.HasPrefix(in.GetVips()[0], w.vip) || in.GetAuth().GetPassword() != w.password {
			t.Errorf("instance %d: %v", i, in)
		}
	}

	// Without --node: the router_id; -o json: the message.
	r = haactl(t, noAgent, "", "import", file, "-o", "json")
	wantOK(t, r)
	cfg := &haav1.AgentConfig{}
	if err := protojson.Unmarshal([]byte(r.out), cfg); err != nil || cfg.GetName() != "keep_133" || cfg.GetInstances()[0].GetInterface() != "ens33" {
		t.Errorf("-o json: %v\n%s", err, r.out)
	}
	r2 := haactl(t, noAgent, "", "import", file, "-o", "yaml")
	wantOK(t, r2)
	if y, err := config.Parse([]byte(r2.out)); err != nil || !proto.Equal(y, cfg) {
		t.Errorf("-o yaml: %v\n%s", err, r2.out)
	}
	if r3 := haactl(t, noAgent, "", "import", file); r3.out != r2.out {
		t.Errorf("the default output is not -o yaml:\n%s", r3.out)
	}

	// Standard input.
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	r = haactl(t, noAgent, string(data), "import", "-")
	wantOK(t, r)
	if body := splitHeader(t, r.out, "-"); body != splitHeader(t, r2.out, file) {
		t.Errorf("from standard input:\n%s", body)
	}
}

// Every example of the issue converts on its own, and the result is a
// valid configuration; what haa does not support is a warning naming the
// file, the line and the keyword.
func TestImportExamples(t *testing.T) {
	for _, tc := range []struct {
		file     string
		warnings []string // FILE:LINE: KEYWORD
	}{
		{"01-full-sample.conf", []string{":4: notification_email: ", ":10: smtp_server: ", ":14: vrrp_strict: "}},
		{"02-master-with-nginx-check.conf", nil},
		{"03-dual-master-node-a.conf", nil},
		{"04-dual-master-node-b.conf", nil},
		{"05-ipvs-http-get.conf", []string{":4: notification_email: ", ":8: smtp_server: "}},
		{"06-scripts-fall-rise.conf", nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			file := example(t, tc.file)
			r := haactl(t, noAgent, "", "import", file)
			wantOK(t, r)
			var ws []string
			for _, w := range tc.warnings {
				ws = append(ws, file+w)
			}
			wantWarnings(t, r.err, ws...)
			splitHeader(t, r.out, file)
			cfg, err := config.Parse([]byte(r.out))
			if err != nil {
				t.Fatalf("the output does not parse: %v\n%s", err, r.out)
			}
			if err := config.Validate(cfg); err != nil {
				t.Fatalf("the output is not valid: %v\n%s", err, r.out)
			}
			if len(cfg.GetInstances()) == 0 {
				t.Fatalf("no instance:\n%s", r.out)
			}
			if tc.file == "05-ipvs-http-get.conf" && len(cfg.GetVirtualServers()) != 1 {
				t.Errorf("virtual servers: %v", cfg.GetVirtualServers())
			}
		})
	}
}

// A misspelled keyword: exit 1, the file, the line and the keyword, and
// nothing on standard output.
func TestImportTypo(t *testing.T) {
	file := example(t, "07-typo-must-error.conf")
	r := haactl(t, noAgent, "", "import", file)
	prefix := "haactl: cannot convert " + file + " (1 problem), nothing was printed:\n" + file + ":7: vrp_script: "
	if r.code != 1 || r.out != "" || !strings.HasPrefix(r.err, prefix) || strings.Count(r.err, "\n") != 2 {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant exit 1 and:\n%s...", r.code, r.out, r.err, prefix)
	}

	// Every problem of every file, also when several fail.
	other := writeFile(t, "other.conf", "vrrp_instance VI_9 {\n    interface eth0\n    virtual_router_id 9\n    priorty 100\n    virtual_ipaddress {\n        10.0.0.9/24\n    }\n}\n")
	r = haactl(t, noAgent, "", "import", example(t, "03-dual-master-node-a.conf"), file, other, "--node", "a,b,c")
	prefix = "haactl: cannot convert " + file + ", " + other + " (2 problems), nothing was printed:\n" + file + ":7: vrp_script: "
	if r.code != 1 || r.out != "" || !strings.HasPrefix(r.err, prefix) || !strings.Contains(r.err, "\n"+other+":4: priorty: ") {
		t.Errorf("two files with errors: exit %d, stderr:\n%s", r.code, r.err)
	}

	missing := filepath.Join(t.TempDir(), "missing.conf")
	r = haactl(t, noAgent, "", "import", missing)
	if r.code != 1 || r.out != "" || !strings.HasPrefix(r.err, "haactl: cannot convert "+missing+" (1 problem), nothing was printed:\n") ||
		!strings.Contains(r.err, missing) {
		t.Errorf("missing file: exit %d, stderr:\n%s", r.code, r.err)
	}
}

// A file with errors: its warnings are shown too (they used to be
// hidden until the errors were fixed).
func TestImportShowsWarningsWithErrors(t *testing.T) {
	file := writeFile(t, "k.conf", "global_defs {\n    notification_email_from a@b\n}\nvrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 7\n    priorty 100\n    virtual_ipaddress {\n        10.0.0.1\n    }\n}\n")
	r := haactl(t, noAgent, "", "import", file)
	if r.code != 1 || r.out != "" || !strings.Contains(r.err, file+":7: priorty: ") ||
		!strings.Contains(r.err, "haactl: warning: "+file+":2: notification_email_from: ") {
		t.Errorf("exit %d, stderr:\n%s\nwant the error at line 7 and the warning at line 2", r.code, r.err)
	}
}

// A file that keepalived's grammar accepts but whose values haa refuses:
// exit 1 with the problem, nothing printed.
func TestImportInvalidValues(t *testing.T) {
	file := writeFile(t, "k.conf", `vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 300
    priority 100
    virtual_ipaddress {
        10.0.0.1
    }
}
`)
	r := haactl(t, noAgent, "", "import", file)
	if r.code != 1 || r.out != "" || !strings.Contains(r.err, "300") || !strings.HasPrefix(r.err, "haactl: ") {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.err)
	}
}

// Includes, relative to the including file, with globs.
func TestImportInclude(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"keepalived.conf": "global_defs {\n    router_id lb1\n}\ninclude conf.d/*.conf\n",
		"conf.d/a.conf":   "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 1\n    virtual_ipaddress {\n        10.0.0.1/24\n    }\n}\n",
		"conf.d/b.conf":   "vrrp_instance VI_2 {\n    interface eth0\n    virtual_router_id 2\n    virtual_ipaddress {\n        10.0.0.2/24\n    }\n}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := haactl(t, noAgent, "", "import", filepath.Join(dir, "keepalived.conf"))
	wantOK(t, r)
	cfg, err := config.Parse([]byte(r.out))
	if err != nil || cfg.GetName() != "lb1" || len(cfg.GetInstances()) != 2 ||
		cfg.GetInstances()[0].GetName() != "VI_1" || cfg.GetInstances()[1].GetName() != "VI_2" {
		t.Errorf("%v\n%s", err, r.out)
	}
}

// Two nodes' files: one fleet document, the priorities per node.
func TestImportFleet(t *testing.T) {
	a, b := example(t, "03-dual-master-node-a.conf"), example(t, "04-dual-master-node-b.conf")
	for _, tc := range []struct {
		args   []string
		n1, n2 string
		iface  string
	}{
		{[]string{"--node", "lb1,lb2", "--interface", "ens33=eth0"}, "lb1", "lb2", "eth0"},
		{nil, "keep_133", "keep_134", "ens33"},
	} {
		r := haactl(t, noAgent, "", append([]string{"import", a, b}, tc.args...)...)
		wantOK(t, r)
		wantWarnings(t, r.err)
		body := splitHeader(t, r.out, a+", "+b)
		if want := fmt.Sprintf("kind: Fleet\nnodes:\n- %s\n- %s\ninstances:\n- name: VI_1\n", tc.n1, tc.n2); !strings.HasPrefix(body, want) {
			t.Errorf("document does not start with\n%s\ngot:\n%s", want, body)
		}
		doc, err := config.ParseFleet([]byte(r.out))
		if err != nil {
			t.Fatalf("%v\n%s", err, r.out)
		}
		if err := config.ValidateFleet(doc); err != nil {
			t.Fatalf("not a valid fleet document: %v\n%s", err, r.out)
		}
		if len(doc.GetInstances()) != 2 {
			t.Fatalf("instances:\n%s", r.out)
		}
		for i, want := range []map[string]uint32{{tc.n1: 100, tc.n2: 80}, {tc.n1: 80, tc.n2: 100}} {
			in := doc.GetInstances()[i]
			if got := in.GetPriorities(); len(got) != 2 || got[tc.n1] != want[tc.n1] || got[tc.n2] != want[tc.n2] {
				t.Errorf("%s priorities %v, want %v", in.GetName(), got, want)
			}
			if in.GetInterface() != tc.iface || in.GetVrid() != uint32(51+i) {
				t.Errorf("instance %d: %v", i, in)
			}
		}
		// -o json: the same document.
		rj := haactl(t, noAgent, "", append([]string{"import", a, b, "-o", "json"}, tc.args...)...)
		wantOK(t, rj)
		dj := &haav1.Fleet{}
		if err := protojson.Unmarshal([]byte(rj.out), dj); err != nil || !proto.Equal(dj, doc) {
			t.Errorf("-o json: %v\n%s", err, rj.out)
		}
	}

	// Virtual servers do not go into fleet documents: import per node.
	r := haactl(t, noAgent, "", "import", example(t, "05-ipvs-http-get.conf"), example(t, "06-scripts-fall-rise.conf"), "--node", "a,b")
	if r.code != 1 || r.out != "" || !strings.Contains(r.err, "haactl: cannot merge ") {
		t.Errorf("virtual servers in a fleet: exit %d, stderr:\n%s", r.code, r.err)
	}
	// Same router_id, no --node.
	wantFail(t, haactl(t, noAgent, "", "import", example(t, "05-ipvs-http-get.conf"), example(t, "06-scripts-fall-rise.conf")), 2,
		"haactl: "+example(t, "05-ipvs-http-get.conf")+" and "+example(t, "06-scripts-fall-rise.conf")+
			" have the same router_id node1: name the nodes with --node, one per file in the same order\nsee 'haactl import --help'\n")
	// No router_id, no --node.
	anon := writeFile(t, "anon.conf", "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n    virtual_ipaddress {\n        10.0.0.1/24\n    }\n}\n")
	wantFail(t, haactl(t, noAgent, "", "import", a, anon), 2,
		"haactl: "+anon+" has no router_id in global_defs: name the nodes with --node, one per file in the same order\nsee 'haactl import --help'\n")
}

// An --interface rename that nothing uses is a warning: a typo would
// otherwise go unnoticed.
func TestImportUnusedRename(t *testing.T) {
	file := example(t, "03-dual-master-node-a.conf")
	r := haactl(t, noAgent, "", "import", file, "--interface", "ens33=eth0,ens34=eth1")
	wantOK(t, r)
	if want := "haactl: warning: --interface ens34=eth1: " + file + " uses no interface ens34\n"; r.err != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", r.err, want)
	}
}

func TestImportUsage(t *testing.T) {
	a, b := example(t, "03-dual-master-node-a.conf"), example(t, "04-dual-master-node-b.conf")
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{nil, "requires at least 1 arg(s), only received 0"},
		{[]string{a, b, "--node", "lb1"}, "--node: 1 name for 2 files: give one per file, in the same order"},
		{[]string{a, b, "--node", "lb1,lb1"}, "--node: lb1 twice: every node needs its own name"},
		{[]string{a, b, "--node", "lb1,"}, "--node: an empty name"},
		{[]string{a, "--interface", "ens33"}, "--interface \"ens33\": want OLD=NEW, e.g. ens33=eth0"},
		{[]string{a, "--interface", "ens33=eth0", "--interface", "ens33=eth1"}, "--interface: ens33 renamed twice, to eth0 and to eth1"},
		{[]string{"-", "-"}, "- (standard input) can be read only once"},
		{[]string{a, "--bogus"}, "unknown flag: --bogus"},
	} {
		r := haactl(t, noAgent, "", append([]string{"import"}, tc.args...)...)
		if want := "haactl: " + tc.err + "\nsee 'haactl import --help'\n"; r.code != 2 || r.err != want || r.out != "" {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant exit 2 and:\n%s", tc.args, r.code, r.err, want)
		}
	}
	if r := haactl(t, noAgent, "", "import", "--help"); r.code != 0 || !strings.Contains(r.out, "haactl import FILE...") {
		t.Errorf("--help: %+v", r)
	}
}

// endless is standard input that never ends (cat /dev/zero | haactl
// import -).
type endless struct{}

func (endless) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = '#'
	}
	return len(b), nil
}

// TestImportStdinIsBounded: import from standard input reads at most one
// byte past keepalived.MaxFileBytes and refuses the rest, instead of
// reading until memory runs out.
func TestImportStdinIsBounded(t *testing.T) {
	var out, errOut syncBuffer
	root := newRootCmd(&out, &errOut, ctl.Dial)
	root.SetIn(endless{})
	code := execute(t.Context(), root, []string{"--target", noAgent, "import", "-"}, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "<stdin>") || !strings.Contains(errOut.String(), "MiB") {
		t.Fatalf("exit %d, stderr:\n%.500s", code, errOut.String())
	}
}

// import --unsupported lists every keyword haa does not support, with
// what to do, and says which refuse a file.
func TestImportUnsupportedList(t *testing.T) {
	r := haactl(t, noAgent, "", "import", "--unsupported")
	if r.code != 0 || !strings.HasPrefix(r.out, "BLOCK") {
		t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", r.code, r.out, r.err)
	}
	for _, want := range []string{"bfd_instance", "REFUSED", "notification_email", "warned", "a second checker"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("the list has no %q", want)
		}
	}
	for _, l := range strings.Split(r.out, "\n") {
		if f := strings.Fields(l); len(f) > 1 && slices.Contains([]string{"virtual_routes", "virtual_rules", "virtual_ipaddress_excluded", "no_virtual_ipaddress"}, f[1]) {
			t.Errorf("the list names a keyword haa supports: %s", l)
		}
	}
	if r := haactl(t, noAgent, "", "import", "--unsupported", "k.conf"); r.code != 2 || !strings.Contains(r.err, "takes no file") {
		t.Errorf("with a file: exit %d, %s", r.code, r.err)
	}
}
