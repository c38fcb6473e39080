//go:build linux

package keepalived

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/internal/yamlout"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// The fuzzed configuration lives at fuzzMain, in a temporary directory
// that stands for /: nothing outside it is read or written.
const (
	fuzzDir  = "/etc/keepalived"
	fuzzMain = fuzzDir + "/keepalived.conf"
)

// fuzzLimits are lower than the defaults, so that small inputs reach
// them; the code that applies them is the same.
var fuzzLimits = limits{file: 64 << 10, total: 256 << 10, files: 200}

// rootFiles reads a directory as if it were /, through os.Root: a path,
// a glob or a symbolic link that leads out of it fails.
type rootFiles struct{ root *os.Root }

// rel is name (absolute: the lexer joins relative includes to their
// directory) relative to the root; ".." at the top stays at the top.
func (rf rootFiles) rel(name string) string {
	r := strings.TrimPrefix(filepath.Clean("/"+name), "/")
	if r == "" {
		return "."
	}
	return r
}

// Glob is filepath.Glob within the root. (fs.Glob on root.FS() would
// open a FIFO matched by a directory part of the pattern, and block.)
func (rf rootFiles) Glob(pattern string) ([]string, error) {
	rel := rf.rel(pattern)
	if _, err := path.Match(rel, ""); err != nil {
		return nil, err
	}
	found := []string{"."}
	for _, part := range strings.Split(rel, "/") {
		var next []string
		for _, d := range found {
			if !strings.ContainsAny(part, `*?[\`) {
				if p := path.Join(d, part); rf.exists(p) {
					next = append(next, p)
				}
				continue
			}
			if st, err := rf.root.Stat(d); err != nil || !st.IsDir() {
				continue
			}
			dir, err := rf.root.Open(d)
			if err != nil {
				continue
			}
			names, _ := dir.Readdirnames(-1)
			dir.Close()
			slices.Sort(names)
			for _, n := range names {
				if ok, _ := path.Match(part, n); ok {
					next = append(next, path.Join(d, n))
				}
			}
		}
		found = next
	}
	for i, m := range found {
		found[i] = path.Join("/", m)
	}
	return found, nil
}

func (rf rootFiles) exists(rel string) bool {
	_, err := rf.root.Lstat(rel)
	return err == nil
}

func (rf rootFiles) Stat(name string) (fs.FileInfo, error) { return rf.root.Stat(rf.rel(name)) }

func (rf rootFiles) Open(name string) (fs.File, error) {
	return rf.root.OpenFile(rf.rel(name), os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

// archFile is one file of a fuzz input.
type archFile struct {
	kind, name string // kind: "" (a regular file), fifo, big, dir, link
	data       []byte
}

// splitArchive reads a fuzz input: the main file, then files each after
// a line "-- NAME --", NAME relative to /etc/keepalived (or absolute).
// NAME may start with fifo: (a FIFO), big: (a sparse file over the size
// limit), dir: (a directory) or link: (a symbolic link to the first line
// of the data).
func splitArchive(data []byte) (main []byte, files []archFile) {
	cur := &main
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		l := strings.TrimSuffix(string(line), "\n")
		if name, ok := strings.CutPrefix(l, "-- "); ok && strings.HasSuffix(name, " --") {
			name = strings.TrimSuffix(name, " --")
			f := archFile{name: name}
			if k, n, ok := strings.Cut(name, ":"); ok && slices.Contains([]string{"fifo", "big", "dir", "link"}, k) {
				f.kind, f.name = k, n
			}
			files = append(files, f)
			cur = &files[len(files)-1].data
			continue
		}
		*cur = append(*cur, line...)
	}
	return main, files
}

// writeArchive creates the files under root; a file that cannot be
// created (a name used twice, a parent that is a file) is left out.
func writeArchive(t *testing.T, root *os.Root, main []byte, files []archFile) {
	rf := rootFiles{root}
	mkParent := func(rel string) bool { return root.MkdirAll(filepath.Dir(rel), 0o755) == nil }
	if rel := rf.rel(fuzzMain); !mkParent(rel) || root.WriteFile(rel, main, 0o644) != nil {
		t.Fatal("cannot write the main file")
	}
	for _, f := range files {
		name := f.name
		if !filepath.IsAbs(name) {
			name = filepath.Join(fuzzDir, name)
		}
		rel := rf.rel(name)
		// The first of a name wins: writing to a FIFO made before
		// would block.
		if rel == "." || rf.exists(rel) || !mkParent(rel) {
			continue
		}
		switch f.kind {
		case "":
			_ = root.WriteFile(rel, f.data, 0o644)
		case "dir":
			_ = root.MkdirAll(rel, 0o755)
		case "link":
			target, _, _ := strings.Cut(string(f.data), "\n")
			_ = root.Symlink(target, rel)
		case "big":
			if w, err := root.OpenFile(rel, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				_ = w.Truncate(fuzzLimits.file + 1)
				w.Close()
			}
		case "fifo":
			// In the parent opened through the root: a parent that is
			// a symbolic link out of it was refused.
			d, err := root.Open(filepath.Dir(rel))
			if err != nil {
				continue
			}
			_ = syscall.Mknodat(int(d.Fd()), filepath.Base(rel), syscall.S_IFIFO|0o644, 0)
			d.Close()
		}
	}
}

// FuzzKeepalived converts a keepalived.conf and the files it includes
// (see splitArchive), written to a temporary directory read as / (an
// input of one file is converted in an empty directory). Nothing
// panics or blocks (FIFOs included); an error is an *Error whose every
// problem is at a line of a file that was read (or a read error of the
// main file itself); a conversion is deterministic, passes
// config.Validate, and reads back the same from the YAML haactl import
// writes; warnings have their place too.
func FuzzKeepalived(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.conf")
	shared, _ := filepath.Glob(filepath.Join(sharedExamples, "*.conf"))
	for _, p := range append(seeds, shared...) {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "", "", "")
	}
	for _, s := range []string{
		"global_defs {\n router_id lb1\n}\ninclude conf.d/*.conf\n-- conf.d/10-vi.conf --\n" + instance("") +
			"-- conf.d/20-chk.conf --\nvrrp_script chk {\n script \"/usr/bin/pgrep nginx\"\n}\n",
		"include a.conf\n-- a.conf --\ninclude b.conf\n-- b.conf --\ninclude a.conf\n",
		"include /dev/zero\ninclude fifo\ninclude big\n-- fifo:fifo --\n-- big:big --\n",
		"include sub\ninclude l*\n-- dir:sub --\n-- link:loop --\nloop\n-- link:out --\n../../../../etc/passwd\n-- link:abs --\n/etc/passwd\n",
		"include x\ninclude x\ninclude x\ninclude x\n-- x --\ninclude y\ninclude y\ninclude y\ninclude y\n-- y --\n! y\n",
		"include /../../../etc/*\ninclude ../../*/*\ninclude [\n",
		instance(" track_script {\n  chk\n }\n") + "vrrp_script chk {\n script \"killall -0 nginx && exit 0\"\n}\n",
	} {
		f.Add([]byte(s), "", "", "")
	}
	f.Add([]byte("! caf\xe9\n"+instance(" notify_master \"/etc/keepalived/caf\xe9.sh\"\n")), "", "", "")
	f.Add([]byte(instance("")), "lb1", "eth0", "ens33")
	f.Add([]byte(instance("")), "bad name!", "eth0", "a/b")

	// Inputs of one file read nothing but what they include, which does
	// not exist: an empty directory serves them all, without writing.
	empty, err := os.OpenRoot(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { empty.Close() })

	f.Fuzz(func(t *testing.T, data []byte, name, ifFrom, ifTo string) {
		main, files := splitArchive(data)
		opts := Options{Name: name, Interfaces: map[string]string{ifFrom: ifTo}}
		rf := rootFiles{empty}
		convert := func() (*haav1.AgentConfig, []Problem, error) {
			cfg, _, warns, err := parseFrom(fuzzMain, main, fuzzDir, opts, rf, fuzzLimits)
			return cfg, warns, err
		}
		if len(files) > 0 {
			root, err := os.OpenRoot(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			writeArchive(t, root, main, files)
			rf = rootFiles{root}
			convert = func() (*haav1.AgentConfig, []Problem, error) {
				cfg, _, warns, err := load(fuzzMain, opts, rf, fuzzLimits)
				return cfg, warns, err
			}
		}

		cfg, warns, err := convert()
		cfg2, warns2, err2 := convert()
		if fmt.Sprint(err) != fmt.Sprint(err2) || !proto.Equal(cfg, cfg2) || !slices.Equal(warns, warns2) {
			t.Fatalf("two conversions differ:\n%v\n%v\n%v\n--- and\n%v\n%v\n%v", err, warns, cfg, err2, warns2, cfg2)
		}
		if err != nil {
			if cfg != nil || warns != nil {
				t.Fatalf("error %v with a configuration or warnings", err)
			}
			var ke *Error
			if !errors.As(err, &ke) {
				var re *readError
				if !errors.As(err, &re) || re.path != fuzzMain {
					t.Fatalf("error %v (%T): neither an *Error nor a read error of the main file", err, err)
				}
				return
			}
			if len(ke.Problems) == 0 {
				t.Fatal("an *Error without problems")
			}
			placed(t, rf, main, ke.Problems)
			return
		}
		placed(t, rf, main, warns)
		if cfg == nil {
			t.Fatal("no error and no configuration")
		}
		if err := config.Validate(cfg); err != nil {
			t.Fatalf("converted without an error, but not valid: %v\n%v", err, cfg)
		}
		js, err := protojson.Marshal(cfg)
		if err != nil {
			t.Fatalf("protojson: %v", err)
		}
		y, err := yamlout.FromJSON(js)
		if err != nil {
			t.Fatalf("yamlout: %v\n%s", err, js)
		}
		back, err := config.Parse(y)
		if err != nil || !proto.Equal(back, cfg) {
			t.Fatalf("the YAML of the conversion reads back as %v, %v\n%s", back, err, y)
		}
		fleetOfTwins(t, cfg)
	})
}

// fleetOfTwins merges the conversion as the file of two nodes: they agree
// on everything, so Fleet succeeds and gives each node the instances and
// the virtual servers of the file.
func fleetOfTwins(t *testing.T, cfg *haav1.AgentConfig) {
	t.Helper()
	a, b := proto.Clone(cfg).(*haav1.AgentConfig), proto.Clone(cfg).(*haav1.AgentConfig)
	a.Name, b.Name = "n1", "n2"
	doc, err := Fleet([]*haav1.AgentConfig{a, b}, []string{"a.conf", "b.conf"})
	if err != nil {
		t.Fatalf("Fleet of two identical nodes: %v\n%v", err, cfg)
	}
	if err := config.ValidateFleet(doc); err != nil {
		t.Fatalf("Fleet returned an invalid document: %v", err)
	}
	for _, n := range []string{"n1", "n2"} {
		ins, _ := config.ForNode(doc, n)
		if len(ins) != len(cfg.GetInstances()) {
			t.Fatalf("node %s runs %d instances, want %d", n, len(ins), len(cfg.GetInstances()))
		}
		for i, in := range ins {
			want := proto.Clone(cfg.GetInstances()[i]).(*haav1.Instance)
			if want.Priority == nil {
				want.Priority = proto.Uint32(config.DefaultPriority)
			}
			if !proto.Equal(in, want) {
				t.Fatalf("node %s runs\n%v\nwant\n%v", n, in, want)
			}
		}
		vss, _ := config.ForNodeVirtualServers(doc, n)
		if len(vss) != len(cfg.GetVirtualServers()) {
			t.Fatalf("node %s directs %d virtual servers, want %d", n, len(vss), len(cfg.GetVirtualServers()))
		}
		for i, vs := range vss {
			if !proto.Equal(vs, cfg.GetVirtualServers()[i]) {
				t.Fatalf("node %s directs\n%v\nwant\n%v", n, vs, cfg.GetVirtualServers()[i])
			}
		}
	}
}

// placed checks that every problem is at a line of a file that was read:
// the main file (main), or a regular file of the archive (by the path it
// was included by).
func placed(t *testing.T, rf rootFiles, main []byte, ps []Problem) {
	t.Helper()
	for _, p := range ps {
		if p.Msg == "" {
			t.Errorf("problem without a message at %v", p.Pos)
		}
		data := main
		if p.Pos.File != fuzzMain {
			if st, err := rf.Stat(p.Pos.File); err != nil || !st.Mode().IsRegular() {
				t.Fatalf("problem in %q, not a file read: %v", p.Pos.File, p)
			}
			var err error
			if data, err = rf.root.ReadFile(rf.rel(p.Pos.File)); err != nil {
				t.Fatal(err)
			}
		}
		if lines := bytes.Count(data, []byte("\n")) + 1; p.Pos.Line < 1 || p.Pos.Line > lines {
			t.Fatalf("problem at line %d of a file of %d lines: %v", p.Pos.Line, lines, p)
		}
	}
}

// FuzzSplitCommand: a command without shell syntax splits into words
// that, each quoted again, split back into the same words.
func FuzzSplitCommand(f *testing.F) {
	for _, s := range []string{
		`/usr/bin/pgrep -x nginx`, `"/opt/my check" --a 'b c' d\ e`, `killall -0 nginx && exit 0`,
		`a"b"'c'`, `x\`, `"unclosed`, `VAR=1 cmd`, `/bin/a=b`, `''`, `"\$x\"\\"`, `~/x #y`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		argv, shell := splitCommand(s)
		if shell {
			return
		}
		quoted := make([]string, len(argv))
		for i, a := range argv {
			quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		again, shell := splitCommand(strings.Join(quoted, " "))
		if shell || !slices.Equal(again, argv) {
			t.Fatalf("%q splits into %q; quoted again, %q (shell %v)", s, argv, again, shell)
		}
	})
}
