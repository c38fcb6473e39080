package keepalived

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// maxIncludeDepth bounds include nesting (keepalived has no documented
// limit; a deeper chain is almost certainly a loop the path check missed,
// e.g. through symbolic links).
const maxIncludeDepth = 16

// token is one word of a configuration file: a keyword, a value, or a
// brace. Words are separated by white space; { and } are words of their
// own even when written against another word (`real_server 10.0.0.1 80{`).
type token struct {
	text   string
	quoted bool // written "between double quotes" (the quotes are not in text)
	pos    Pos
	seq    int // position in the token stream, across includes
	line   int // physical line number, unique across files: tokens of one line share it
}

// brace reports whether t is the unquoted brace b ("{" or "}").
func (t token) brace(b string) bool { return !t.quoted && t.text == b }

// lexer turns files into one token stream, expanding include lines.
type lexer struct {
	r     *report
	seq   int
	lines int
	stack []string // the files being read, as cleaned absolute paths
}

// file lexes the contents of one file; dir is the directory include
// patterns are relative to.
func (lx *lexer) file(name string, data []byte, dir string) []token {
	var out []token
	for i, raw := range bytes.Split(data, []byte("\n")) {
		line := strings.TrimSuffix(string(raw), "\r")
		toks := lx.line(name, i+1, line)
		if len(toks) == 0 {
			continue
		}
		if first := toks[0]; !first.quoted && first.text == "include" {
			out = append(out, lx.include(first, toks[1:], dir)...)
			continue
		}
		out = append(out, toks...)
	}
	return out
}

// line lexes one line, as keepalived 2.2 reads it (decomment, then
// alloc_strvec):
//
//   - a ! or # outside double quotes starts a comment that runs to the end
//     of the line, wherever it is, even inside a word: `auth_pass pa#ss` is
//     "pa" and `virtual_router_id 51#c` is 51;
//   - keepalived's documented escapes \# and \! do not escape in 2.2: the
//     line is decommented twice (the processes that run VRRP and the
//     checkers read the copy of the configuration that the parent process
//     writes after a first pass), so \# loses its backslash the first time
//     and starts a comment the second. `auth_pass pa\#ss` is "pa" and
//     `virtual_router_id 5\#1` is 5 (checked with keepalived 2.2.7's
//     configuration dump); the conversion reads them so, with a warning;
//   - "double quotes" make one word of the text between them, and a " opens
//     one even inside a word (`a"b c"` is a and "b c"); \" stands for a "
//     inside it (commands are split later, with their own quoting rules).
func (lx *lexer) line(file string, n int, s string) []token {
	lx.lines++
	var toks []token
	add := func(text string, quoted bool) {
		lx.seq++
		toks = append(toks, token{text: text, quoted: quoted, pos: Pos{file, n}, seq: lx.seq, line: lx.lines})
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case isSpace(c):
			i++
		case c == '!' || c == '#':
			return lx.special(toks)
		case c == '\\' && i+1 < len(s) && (s[i+1] == '#' || s[i+1] == '!'):
			lx.escapedComment(toks, file, n, s[i:i+2])
			return lx.special(toks)
		case c == '{' || c == '}':
			add(string(c), false)
			i++
		case c == '"':
			var b strings.Builder
			j := i + 1
			closed := false
			for j < len(s) {
				if s[j] == '\\' && j+1 < len(s) && s[j+1] == '"' {
					b.WriteByte('"')
					j += 2
					continue
				}
				if s[j] == '"' {
					closed = true
					break
				}
				b.WriteByte(s[j])
				j++
			}
			add(b.String(), true)
			if !closed {
				lx.r.errorf(toks[len(toks)-1], "", "the quoted string %q is not closed: add the closing \" on the same line", "\""+b.String())
				return lx.special(toks)
			}
			i = j + 1
		default:
			// A word ends at white space, a brace, a quote or a comment
			// (\# and \! included); \\ is two characters of the word
			// (\\#: a backslash, then a comment), as in decomment.
			j := i
			for j < len(s) && !isSpace(s[j]) && !strings.ContainsRune("{}\"!#", rune(s[j])) {
				if s[j] == '\\' && j+1 < len(s) {
					if s[j+1] == '#' || s[j+1] == '!' {
						break
					}
					if s[j+1] == '\\' {
						j++
					}
				}
				j++
			}
			add(s[i:j], false)
			i = j
		}
	}
	return lx.special(toks)
}

// escapedComment warns about \# or \! (esc) outside quotes, which
// keepalived 2.2 reads as the start of a comment (see line); toks are the
// words of the line before it.
func (lx *lexer) escapedComment(toks []token, file string, n int, esc string) {
	at := token{pos: Pos{file, n}, seq: lx.seq, line: lx.lines}
	kw := ""
	if len(toks) > 0 {
		at, kw = toks[0], toks[0].text
	}
	lx.r.warnf(at, kw, "%s does not escape the %s in keepalived 2.2: it drops the \\ and the rest of the line is still a comment, so the line ends before %s, here as in keepalived; to keep a %s in a value, write the value in double quotes (e.g. \"pa%sss\")", esc, esc[1:], esc, esc[1:], esc[1:])
}

// special reports keepalived's preprocessor features, which haa does not
// implement: conditional lines (@name), parameters ($NAME) and sequences
// (~SEQ). Reading such a line as plain configuration would be a guess, so
// it is an error, and the line's words (but its braces) are dropped so that
// one problem gives one error.
func (lx *lexer) special(toks []token) []token {
	if len(toks) == 0 {
		return toks
	}
	bad := ""
	var at token
	switch first := toks[0]; {
	case !first.quoted && strings.HasPrefix(first.text, "@"):
		bad, at = fmt.Sprintf("conditional configuration (%s) is not supported: keep the lines meant for this node without the @ prefix and delete the others", first.text), first
	default:
		for _, t := range toks {
			switch {
			case t.quoted:
			case strings.HasPrefix(t.text, "$"):
				bad, at = fmt.Sprintf("keepalived parameters (%s) are not supported: write the value itself (in double quotes if it is a value that starts with $)", t.text), t
			case strings.HasPrefix(t.text, "~SEQ"):
				bad, at = fmt.Sprintf("sequences (%s) are not supported: write the lines out", t.text), t
			}
			if bad != "" {
				break
			}
		}
	}
	if bad == "" {
		return toks
	}
	lx.r.errorf(at, "", "%s", bad)
	var keep []token
	for _, t := range toks {
		if t.brace("{") || t.brace("}") {
			keep = append(keep, t)
		}
	}
	return keep
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r' }

// include expands `include PATTERN...`: every file matching each glob
// pattern, in sorted order (filepath.Glob), a relative pattern being
// relative to the directory of the including file. keepalived logs "Config
// files missing" for an include that matches nothing and goes on: a glob
// pattern that matches nothing (an empty conf.d/*.conf) is a warning, a
// plain path to a file that does not exist an error (a file that was meant
// to be there, and whose part of the configuration would be lost).
func (lx *lexer) include(kw token, patterns []token, dir string) []token {
	if len(patterns) == 0 {
		lx.r.errorf(kw, "include", "no file given: write include FILE or include GLOB, e.g. include /etc/keepalived/conf.d/*.conf")
		return nil
	}
	var out []token
	for _, p := range patterns {
		if p.brace("{") || p.brace("}") {
			lx.r.errorf(p, "include", "include takes no block: put it on a line of its own, e.g. include /etc/keepalived/conf.d/*.conf")
			continue
		}
		pattern := p.text
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(dir, pattern)
		}
		matches, err := filepath.Glob(pattern)
		if err != nil {
			lx.r.errorf(p, "include", "%q is not a valid glob pattern (%v): fix the pattern", p.text, err)
			continue
		}
		if len(matches) == 0 {
			if isGlob(p.text) {
				lx.r.warnf(p, "include", "no file matches %q (looked for %s): keepalived logs \"Config files missing\" and goes on without it, and so does this conversion; fix the pattern, or remove the include if nothing is to be included", p.text, pattern)
			} else {
				lx.r.errorf(p, "include", "%s does not exist: fix the path, or remove the include", pattern)
			}
			continue
		}
		for _, m := range matches {
			out = append(out, lx.includeFile(p, m)...)
		}
	}
	return out
}

// isGlob reports whether an include pattern has glob characters.
func isGlob(pattern string) bool { return strings.ContainsAny(pattern, "*?[") }

func (lx *lexer) includeFile(at token, path string) []token {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = filepath.Clean(path)
	}
	for _, f := range lx.stack {
		if f == abs {
			lx.r.errorf(at, "include", "%s includes itself (through %s): remove the include that closes the loop", path, strings.Join(lx.stack, " -> "))
			return nil
		}
	}
	if len(lx.stack) >= maxIncludeDepth {
		lx.r.errorf(at, "include", "includes nested more than %d deep (%s): flatten them, or remove an include loop", maxIncludeDepth, strings.Join(lx.stack, " -> "))
		return nil
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		lx.r.errorf(at, "include", "%s is a directory: include the files in it, e.g. include %s", path, filepath.Join(path, "*.conf"))
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		lx.r.errorf(at, "include", "cannot read %s: %v: fix the path or the file's permissions", path, err)
		return nil
	}
	lx.stack = append(lx.stack, abs)
	defer func() { lx.stack = lx.stack[:len(lx.stack)-1] }()
	return lx.file(path, data, filepath.Dir(path))
}
