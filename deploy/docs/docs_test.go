package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

const root = "../.."

func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// withoutCode drops fenced code blocks, whose text is not markdown.
func withoutCode(doc string) string {
	var out []string
	fenced := false
	for _, l := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// anchors lists the ids GitHub gives a document's headings.
func anchors(doc string) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(withoutCode(doc), "\n") {
		if !strings.HasPrefix(l, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(l, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteByte('-')
			}
		}
		out[b.String()] = true
	}
	return out
}

var linkRE = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestLinks checks every relative link of the documents: the file exists
// and, for a markdown file, so does the heading the #anchor names.
func TestLinks(t *testing.T) {
	docs, err := filepath.Glob("*.md")
	if err != nil || len(docs) == 0 {
		t.Fatalf("no documents: %v", err)
	}
	for _, name := range docs {
		doc := readDoc(t, name)
		for _, m := range linkRE.FindAllStringSubmatch(withoutCode(doc), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, frag, _ := strings.Cut(target, "#")
			path := name
			if file != "" {
				path = filepath.Join(filepath.Dir(name), file)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s: link %s: %v", name, target, err)
				continue
			}
			if frag == "" || !strings.HasSuffix(path, ".md") {
				continue
			}
			if !anchors(readDoc(t, path))[frag] {
				t.Errorf("%s: link %s: no heading #%s in %s", name, target, frag, path)
			}
		}
	}
}

var (
	metricLiteralRE = regexp.MustCompile(`"(haa_[a-z0-9_]+)"`)
	metricNameRE    = regexp.MustCompile(`\bhaa_[a-z0-9_]+`)
)

// exported lists the metric names haad's code registers: the string
// literals "haa_..." of node/metrics and server.
func exported(t *testing.T) []string {
	t.Helper()
	set := map[string]bool{}
	for _, dir := range []string{"node/metrics", "server"} {
		files, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			for _, m := range metricLiteralRE.FindAllStringSubmatch(readDoc(t, f), -1) {
				set[m[1]] = true
			}
		}
	}
	var out []string
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// TestMetricNames checks that the operations guide's metric table lists
// exactly the metrics haad exports, and that every haa_ name the guide
// uses (in PromQL too) is one of them.
func TestMetricNames(t *testing.T) {
	code := exported(t)
	if len(code) == 0 {
		t.Fatal("no haa_ metric found in node/metrics or server")
	}
	doc := readDoc(t, "operations.md")
	var table []string
	for _, l := range strings.Split(doc, "\n") {
		if m := regexp.MustCompile("^\\| `(haa_[a-z0-9_]+)` \\|").FindStringSubmatch(l); m != nil {
			table = append(table, m[1])
		}
	}
	sort.Strings(table)
	if !slices.Equal(table, code) {
		t.Errorf("operations.md's metric table lists\n  %v\nhaad exports\n  %v", table, code)
	}
	for _, n := range metricNameRE.FindAllString(doc, -1) {
		base := n
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if b, ok := strings.CutSuffix(n, suffix); ok && slices.Contains(code, b) {
				base = b
			}
		}
		if !slices.Contains(code, base) {
			t.Errorf("operations.md uses %s, which haad does not export", n)
		}
	}
}

// TestBenchmarkHeadlines checks that every measurement benchmarks.md
// quotes is in the README's tables, so the headlines cannot drift from
// them.
func TestBenchmarkHeadlines(t *testing.T) {
	readme := readDoc(t, filepath.Join(root, "README.md"))
	doc := readDoc(t, "benchmarks.md")
	re := regexp.MustCompile(`\d[\d,]*(\.\d+)? (ms|µs|s)\b`)
	n := 0
	for _, m := range re.FindAllString(doc, -1) {
		if m == "1 s" || m == "5 s" || m == "1 ms" || m == "5 ms" || m == "10 ms" || m == "100 ms" || m == "50 ms" {
			continue // targets and advert intervals, written differently in the README
		}
		n++
		if !strings.Contains(readme, m) {
			t.Errorf("benchmarks.md quotes %q, which README.md's benchmark tables do not have", m)
		}
	}
	if n == 0 {
		t.Error("benchmarks.md quotes no measurement")
	}
}
