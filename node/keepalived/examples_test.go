package keepalived

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// sharedExamples is where the example files come from; testdata holds
// copies so that the tests run anywhere.
const sharedExamples = "../../../shared/keepalived-examples"

// toYAML renders m as haactl prints configurations.
func toYAML(t *testing.T, m proto.Message) []byte {
	t.Helper()
	js, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.JSONToYAML(js)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// warningCounts are the warnings each example must give, by keyword.
var warningCounts = map[string]map[string]int{
	"01-full-sample.conf": {
		"notification_email": 1, "notification_email_from": 1, "smtp_server": 1, "smtp_connect_timeout": 1,
		"vrrp_skip_check_adv_addr": 1, "vrrp_strict": 1, "vrrp_gna_interval": 1,
		"state": 1, "authentication": 1, // strict mode: BACKUP, no authentication
	},
	"02-master-with-nginx-check.conf": {},
	"03-dual-master-node-a.conf":      {},
	"04-dual-master-node-b.conf":      {},
	"05-ipvs-http-get.conf": {
		"notification_email": 1, "notification_email_from": 1, "smtp_server": 1, "smtp_connect_timeout": 1,
	},
	"06-scripts-fall-rise.conf": {"script": 2, "track_interface": 1},
}

func TestExamples(t *testing.T) {
	for name, wantWarn := range warningCounts {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name)
			cfg, warns, err := Load(path, Options{})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			got := map[string]int{}
			for _, w := range warns {
				got[w.Keyword]++
				if w.Pos.File != path || w.Pos.Line < 1 {
					t.Errorf("warning without its place: %v", w)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(wantWarn) {
				t.Errorf("warnings by keyword %v, want %v:\n%s", got, wantWarn, problemLines(warns))
			}
			if err := config.Validate(cfg); err != nil {
				t.Errorf("the converted configuration is not valid: %v", err)
			}
			var b bytes.Buffer
			fmt.Fprintf(&b, "# converted from %s\n", name)
			for _, w := range warns {
				w.Pos.File = filepath.Base(w.Pos.File)
				fmt.Fprintf(&b, "# warning: %s\n", w)
			}
			b.Write(toYAML(t, cfg))
			checkGolden(t, filepath.Join("testdata", strings.TrimSuffix(name, ".conf")+".yaml"), b.Bytes())
		})
	}
}

func problemLines(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString("  " + p.String() + "\n")
	}
	return b.String()
}

func TestExampleTypo(t *testing.T) {
	path := filepath.Join("testdata", "07-typo-must-error.conf")
	cfg, warns, err := Load(path, Options{})
	if cfg != nil || warns != nil {
		t.Errorf("an error returns nothing else: %v %v", cfg, warns)
	}
	ke, ok := err.(*Error)
	if !ok {
		t.Fatalf("error %T %v, want *Error", err, err)
	}
	if len(ke.Problems) != 1 {
		t.Fatalf("%d problems, want exactly one:\n%s", len(ke.Problems), problemLines(ke.Problems))
	}
	// vrp_script is on line 7 of the file (the design note said 6).
	p := ke.Problems[0]
	if p.Pos != (Pos{path, 7}) || p.Keyword != "vrp_script" {
		t.Errorf("problem %v, want %s:7 at vrp_script", p, path)
	}
	for _, s := range []string{path + ":7: vrp_script: unknown top-level keyword", "did you mean vrrp_script?", "fix the spelling"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

// The copies in testdata are those of the shared examples.
func TestExamplesAreTheShared(t *testing.T) {
	shared, _ := filepath.Glob(filepath.Join(sharedExamples, "*.conf"))
	if len(shared) == 0 {
		t.Skip("no shared examples here")
	}
	for _, f := range shared {
		a, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join("testdata", filepath.Base(f)))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("testdata/%s is not a copy of %s: cp it", filepath.Base(f), f)
		}
	}
}

func TestFleetDualMaster(t *testing.T) {
	var cfgs []*haav1.AgentConfig
	files := []string{"testdata/03-dual-master-node-a.conf", "testdata/04-dual-master-node-b.conf"}
	for _, f := range files {
		cfg, _, err := Load(f, Options{})
		if err != nil {
			t.Fatal(err)
		}
		cfgs = append(cfgs, cfg)
	}
	doc, err := Fleet(cfgs, files)
	if err != nil {
		t.Fatal(err)
	}
	if err := config.ValidateFleet(doc); err != nil {
		t.Fatalf("not a valid Fleet document: %v", err)
	}
	if got := fmt.Sprint(doc.GetNodes()); got != "[keep_133 keep_134]" {
		t.Errorf("nodes %s", got)
	}
	want := map[string]string{
		"VI_1": "map[keep_133:100 keep_134:80]",
		"VI_2": "map[keep_133:80 keep_134:100]",
	}
	for _, fi := range doc.GetInstances() {
		if got := fmt.Sprint(fi.GetPriorities()); got != want[fi.GetName()] {
			t.Errorf("%s priorities %s, want %s", fi.GetName(), got, want[fi.GetName()])
		}
	}
	// Each node runs its instances as its own file says.
	for i, node := range doc.GetNodes() {
		ins, _ := config.ForNode(doc, node)
		if len(ins) != 2 {
			t.Fatalf("%s runs %d instances", node, len(ins))
		}
		for k, in := range ins {
			if own := cfgs[i].GetInstances()[k]; !proto.Equal(in, own) {
				t.Errorf("%s: %s is\n%v\nin the document, want\n%v", node, in.GetName(), in, own)
			}
		}
	}
	checkGolden(t, "testdata/fleet-03-04.yaml", append([]byte("# haactl import 03-dual-master-node-a.conf 04-dual-master-node-b.conf\n"), toYAML(t, doc)...))
}
