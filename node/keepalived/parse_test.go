package keepalived

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// lexParse runs the lexer and the parser on src (file "t.conf", includes
// relative to dir) and returns the statements and the errors.
func lexParse(t *testing.T, src, dir string) ([]*stmt, []Problem) {
	t.Helper()
	var r report
	lx := &lexer{r: &r}
	toks := lx.file("t.conf", []byte(src), dir)
	sts := parse(toks, &r)
	return sts, sorted(r.errs)
}

// render writes statements back in a canonical form: kw args {…}; quoted
// words in double quotes.
func render(sts []*stmt) string {
	var b strings.Builder
	for i, st := range sts {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(word(st.kw))
		for _, a := range st.args {
			b.WriteString(" " + word(a))
		}
		if st.hasBlock {
			b.WriteString(" {" + render(st.block) + "}")
		}
	}
	return b.String()
}

func word(t token) string {
	if t.quoted {
		return `"` + t.text + `"`
	}
	return t.text
}

func TestParseForms(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"comment after value", "priority 100 # the priority\n", "priority 100"},
		{"bang comment after value", "priority 100 ! the priority\n", "priority 100"},
		{"comment lines", "! a\n# b\n   ! c\npriority 1\n", "priority 1"},
		// keepalived 2.2 cuts the line at a # or ! anywhere outside
		// quotes, even inside a word.
		{"comment char inside a word", "path /index.html#top\n", "path /index.html"},
		{"comment char glued to a number", "virtual_router_id 51#c\n", "virtual_router_id 51"},
		{"bang inside a word", "auth_pass pa!ss\n", "auth_pass pa"},
		{"comment char glued to a brace", "vrrp_instance VI_1 {# x\n}\n", "vrrp_instance VI_1 {}"},
		{"comment inside quotes", `script "echo 'a # b' ! c"` + "\n", `script "echo 'a # b' ! c"`},
		{"quotes inside a word", `auth_pass x"y#z"w` + "\n", `auth_pass x "y#z" w`},
		{"backslash kept", `auth_pass a\b` + "\n", `auth_pass a\b`},
		{"escaped comment char inside quotes", `auth_pass "a\#b"` + "\n", `auth_pass "a\#b"`},
		// keepalived 2.2.7 drops the \ of \# and \! and still cuts the
		// line there (see lexer.line); TestEscapedComment checks the
		// warning.
		{"escaped hash", `auth_pass pa\#ss` + "\n", "auth_pass pa"},
		{"escaped bang", `auth_pass pa\!ss more` + "\n", "auth_pass pa"},
		{"escaped backslash then hash", `auth_pass a\\#b` + "\n", `auth_pass a\\`},
		{"quoted string with spaces", `script "/bin/check --flag x"`, `script "/bin/check --flag x"`},
		{"escaped quote in quotes", `script "echo \"hi\""`, `script "echo "hi""`},
		{"empty quotes", `auth_pass ""`, `auth_pass ""`},
		{"brace glued to a value", "real_server 10.0.0.1 80{\nweight 1\n}", "real_server 10.0.0.1 80 {weight 1}"},
		{"brace on the next line", "vrrp_instance VI_1\n{\n  state MASTER\n}\n", "vrrp_instance VI_1 {state MASTER}"},
		{"block on one line", "group { VI_1 VI_2 }", "group {VI_1 VI_2}"},
		{"close brace after a value", "url {\n path /\n status_code 200 }\n", "url {path /; status_code 200}"},
		{"glued braces", "a{b}", "a {b}"},
		{"statements end at the line", "a 1\nb 2 3\n", "a 1; b 2 3"},
		{"nested blocks", "vs 1 { rs 2 { HTTP_GET { url { path / } } } }", "vs 1 {rs 2 {HTTP_GET {url {path /}}}}"},
		{"CRLF", "priority 100\r\nstate MASTER\r\n", "priority 100; state MASTER"},
		{"tabs", "\tpriority\t100\t\n", "priority 100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sts, errs := lexParse(t, tc.src, t.TempDir())
			if len(errs) > 0 {
				t.Fatalf("errors: %v", errs)
			}
			if got := render(sts); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	deep := strings.Repeat("a {\n", maxDepth+1) + strings.Repeat("}\n", maxDepth+1)
	for _, tc := range []struct {
		name, src string
		want      []string // each error, as "line: text it contains"
	}{
		{"extra close brace", "a {\n}\n}\n", []string{"t.conf:3: } closes no block"}},
		{"missing close brace", "x 1\nvrrp_instance VI_1 {\n  state MASTER\n", []string{"t.conf:2: vrrp_instance: the block opened here is never closed: add the }"}},
		{"two unclosed", "a {\nb {\n", []string{"t.conf:1: a: the block opened here is never closed", "t.conf:2: b: the block opened here is never closed"}},
		{"brace without keyword", "{\n}\n", []string{"t.conf:1: { without a keyword"}},
		{"too deep", deep, []string{"t.conf:9: a: blocks nested more than 8 deep"}},
		{"unterminated quote", "script \"/bin/x\n", []string{`t.conf:1: the quoted string "\"/bin/x" is not closed: add the closing "`}},
		{"parameter", "$IF=eth0\n", []string{"t.conf:1: keepalived parameters ($IF=eth0) are not supported"}},
		{"parameter use", "interface $IF\n", []string{"t.conf:1: keepalived parameters ($IF) are not supported"}},
		{"conditional", "@lb1 priority 100\n", []string{"t.conf:1: conditional configuration (@lb1) is not supported"}},
		{"include without file", "include\n", []string{"t.conf:1: include: no file given"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := lexParse(t, tc.src, t.TempDir())
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d errors %v, want %d", len(errs), errs, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(errs[i].String(), w) {
					t.Errorf("error %d: got %q, want it to start with %q", i, errs[i], w)
				}
			}
		})
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestInclude(t *testing.T) {
	dir := t.TempDir()
	// Globs expand in sorted order; a relative include is relative to the
	// including file's directory (conf.d/b.conf includes sub/c.conf of
	// conf.d).
	writeFile(t, filepath.Join(dir, "conf.d/b.conf"), "b 2\ninclude sub/*.conf\n")
	writeFile(t, filepath.Join(dir, "conf.d/a.conf"), "a 1 # from a\n")
	writeFile(t, filepath.Join(dir, "conf.d/sub/c.conf"), "c {\n 3\n}\n")
	writeFile(t, filepath.Join(dir, "conf.d/notes.txt"), "not included\n")
	var r report
	lx := &lexer{r: &r}
	toks := lx.file(filepath.Join(dir, "main.conf"), []byte("first 0\ninclude conf.d/*.conf\nlast 9\n"), dir)
	sts := parse(toks, &r)
	if len(r.errs) > 0 {
		t.Fatal(sorted(r.errs))
	}
	if got, want := render(sts), "first 0; a 1; b 2; c {3}; last 9"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// Positions name the included files.
	if got, want := sts[3].kw.pos(), (Pos{filepath.Join(dir, "conf.d/sub/c.conf"), 1}); got != want {
		t.Errorf("position of c: %v, want %v", got, want)
	}
	if got, want := sts[4].kw.pos(), (Pos{filepath.Join(dir, "main.conf"), 3}); got != want {
		t.Errorf("position of last: %v, want %v", got, want)
	}

	// An absolute include.
	_, errs := lexParse(t, "include "+filepath.Join(dir, "conf.d/a.conf")+"\n", t.TempDir())
	if len(errs) > 0 {
		t.Errorf("absolute include: %v", errs)
	}
}

func TestIncludeErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "loop.conf"), "x 1\ninclude loop.conf\n")
	writeFile(t, filepath.Join(dir, "a.conf"), "include b.conf\n")
	writeFile(t, filepath.Join(dir, "b.conf"), "include a.conf\n")
	for _, tc := range []struct{ name, src, want string }{
		{"no such file", "include nothing.conf\n", "t.conf:1: include: " + filepath.Join(dir, "nothing.conf") + " does not exist: fix the path"},
		{"bad pattern", "include [\n", `t.conf:1: include: "[" is not a valid glob pattern`},
		{"self include", "include loop.conf\n", "loop.conf:2: include: " + filepath.Join(dir, "loop.conf") + " includes itself"},
		{"include cycle", "include a.conf\n", "b.conf:1: include: " + filepath.Join(dir, "a.conf") + " includes itself"},
		{"directory", "include .\n", "t.conf:1: include: " + dir + " is a directory"},
		{"brace", "include x {\n}\n", "t.conf:1: include: include takes no block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := lexParse(t, tc.src, dir)
			if len(errs) == 0 {
				t.Fatal("no error")
			}
			found := false
			for _, e := range errs {
				found = found || strings.Contains(e.String(), tc.want)
			}
			if !found {
				t.Errorf("errors %v\nwant one containing %q", errs, tc.want)
			}
		})
	}
}

func TestSplitCommand(t *testing.T) {
	for _, tc := range []struct {
		in    string
		argv  []string
		shell bool
	}{
		{"/usr/bin/pgrep -x nginx", []string{"/usr/bin/pgrep", "-x", "nginx"}, false},
		{"  /bin/check   a  ", []string{"/bin/check", "a"}, false},
		{`/bin/echo 'a b' "c d" e\ f`, []string{"/bin/echo", "a b", "c d", "e f"}, false},
		{`/bin/echo "a \"q\" \\ b"`, []string{"/bin/echo", `a "q" \ b`}, false},
		{`/bin/echo ''`, []string{"/bin/echo", ""}, false},
		{"/bin/check --opt=1", []string{"/bin/check", "--opt=1"}, false},
		{"killall -0 nginx && exit 0 || exit 1", nil, true},
		{"[[ -f /x ]] && exit 1", nil, true},
		{"pidof nginx > /dev/null", nil, true},
		{"echo $HOME", nil, true},
		{`echo "$HOME"`, nil, true},
		{"echo `date`", nil, true},
		{"ls *.conf", nil, true},
		{"a; b", nil, true},
		{"FOO=1 /bin/x", nil, true},
		{"~/bin/x", nil, true},
		{"echo 'unterminated", nil, true},
		{"! pidof x", nil, true},
	} {
		argv, shell := splitCommand(tc.in)
		if shell != tc.shell {
			t.Errorf("%q: shell %v, want %v", tc.in, shell, tc.shell)
			continue
		}
		if !tc.shell && strings.Join(argv, "\x00") != strings.Join(tc.argv, "\x00") {
			t.Errorf("%q: %q, want %q", tc.in, argv, tc.argv)
		}
	}
	if got := shellFor("[[ -f x ]]"); got != "/bin/bash" {
		t.Errorf("shellFor [[: %s", got)
	}
	if got := shellFor("a && b"); got != "/bin/sh" {
		t.Errorf("shellFor &&: %s", got)
	}
}

// \# and \! are no escapes in keepalived 2.2 (checked with keepalived
// 2.2.7: `auth_pass pa\#ss` is "pa"): the line ends there, with a warning
// that says how to keep the character.
func TestEscapedComment(t *testing.T) {
	var r report
	lx := &lexer{r: &r}
	toks := lx.file("t.conf", []byte("x 1\nauth_pass pa\\#ss\n\\!y\n"), t.TempDir())
	if got := render(parse(toks, &r)); got != "x 1; auth_pass pa" {
		t.Errorf("got %s", got)
	}
	ws := sorted(r.warns)
	if len(r.errs) > 0 || len(ws) != 2 {
		t.Fatalf("errors %v, warnings %v", sorted(r.errs), ws)
	}
	for i, w := range []string{
		`t.conf:2: auth_pass: \# does not escape the # in keepalived 2.2: it drops the \ and the rest of the line is still a comment, so the line ends before \#, here as in keepalived; to keep a # in a value, write the value in double quotes (e.g. "pa#ss")`,
		`t.conf:3: \! does not escape the !`,
	} {
		if !strings.HasPrefix(ws[i].String(), w) {
			t.Errorf("warning %d: %s\nwant %s...", i, ws[i], w)
		}
	}
}

// keepalived goes on without an include that matches nothing ("Config
// files missing"): a glob that matches nothing is a warning.
func TestIncludeGlobMatchesNothing(t *testing.T) {
	dir := t.TempDir()
	var r report
	lx := &lexer{r: &r}
	toks := lx.file(filepath.Join(dir, "main.conf"), []byte("a 1\ninclude conf.d/*.conf\nb 2\n"), dir)
	if got := render(parse(toks, &r)); got != "a 1; b 2" {
		t.Errorf("got %s", got)
	}
	ws := sorted(r.warns)
	want := filepath.Join(dir, "main.conf") + `:2: include: no file matches "conf.d/*.conf" (looked for ` + filepath.Join(dir, "conf.d/*.conf") + `): keepalived logs "Config files missing" and goes on without it, and so does this conversion`
	if len(r.errs) > 0 || len(ws) != 1 || !strings.HasPrefix(ws[0].String(), want) {
		t.Errorf("errors %v, warnings %v\nwant the warning %s...", sorted(r.errs), ws, want)
	}
}

// Text that is not UTF-8 (a Latin-1 file) would convert into a
// configuration that cannot be written as YAML or sent over the API: an
// error at its line. Comments are not looked at.
func TestNotUTF8(t *testing.T) {
	src := "! Configuration de l'\xe9quipe r\xe9seau\n" + instance(" notify_master \"/etc/keepalived/bascule-\xe9t\xe9.sh\"\n")
	_, _, err := Parse("t.conf", []byte(src), t.TempDir(), Options{})
	oneProblem(t, err, "t.conf", 8, "", `"/etc/keepalived/bascule-\xe9t\xe9.sh" is not UTF-8 text: save the file as UTF-8`)

	// In UTF-8, it converts.
	utf := strings.ReplaceAll(src, "\xe9", "é")
	if _, _, err := Parse("t.conf", []byte(utf), t.TempDir(), Options{}); err != nil {
		t.Fatal(err)
	}
	// An interface renamed to something that is not UTF-8.
	_, _, err = Parse("t.conf", []byte(utf), t.TempDir(), Options{Interfaces: map[string]string{"eth0": "\xe9th0"}})
	oneProblem(t, err, "t.conf", 3, "interface", `instances[0].interface: "\xe9th0" is not UTF-8 text`)
}
