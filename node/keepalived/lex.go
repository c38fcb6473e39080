package keepalived

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"
)

// maxIncludeDepth bounds include nesting (keepalived has no documented
// limit; a deeper chain is almost certainly a loop the path check missed,
// e.g. through symbolic links).
const maxIncludeDepth = 16

// token is one word of a configuration file: a keyword, a value, or a
// brace. Words are separated by white space; { and } are words of their
// own even when written against another word (`real_server 10.0.0.1 80{`).
//
// A configuration can have millions of tokens: they are kept small (the
// file name is shared by the tokens of a file).
type token struct {
	text   string
	file   *string // the file's name
	lineNo int32   // the line in the file
	seq    int32   // position in the token stream, across includes
	line   int32   // physical line number, unique across files: tokens of one line share it
	quoted bool    // written "between double quotes" (the quotes are not in text)
}

// pos is where t is.
func (t token) pos() Pos {
	if t.file == nil {
		return Pos{Line: int(t.lineNo)}
	}
	return Pos{*t.file, int(t.lineNo)}
}

// brace reports whether t is the unquoted brace b ("{" or "}").
func (t token) brace(b string) bool { return !t.quoted && t.text == b }

// lexer turns files into one token stream, expanding include lines.
type lexer struct {
	r     *report
	seq   int32
	lines int32
	stack []string // the files being read, as cleaned absolute paths

	out []token // the tokens read

	// fs is where includes are read (nil: the host's file system), within
	// lim (zero: the defaults); read and files count the bytes and the
	// files read so far, the top-level file included.
	fs    sourceFiles
	lim   limits
	read  int64
	files int
	// full is set once the configuration has more than lim.words words:
	// the rest is not read.
	full bool
}

func (lx *lexer) fsys() sourceFiles {
	if lx.fs == nil {
		return hostFiles{}
	}
	return lx.fs
}

// file lexes the contents of one file and what it includes; dir is the
// directory include patterns are relative to. It returns every token read
// by lx so far.
func (lx *lexer) file(name string, data []byte, dir string) []token {
	lx.lexFile(name, data, dir)
	return lx.out
}

// lexFile appends the tokens of one file, its includes expanded, to
// lx.out: one slice for the whole configuration, not one per file copied
// into its includer's.
func (lx *lexer) lexFile(name string, data []byte, dir string) {
	file := &name
	// About one token per 8 bytes of text (a keyword and a value, their
	// indentation): room for them at once, not a copy of everything read
	// so far each time the slice fills (a 10,000-virtual-server file
	// copied 300 MB so).
	lx.out = slices.Grow(lx.out, len(data)/8)
	// One string for the whole file (the tokens are slices of it), not
	// one per line.
	text := string(data)
	for n := int32(1); (len(text) > 0 || n == 1) && !lx.full && !lx.r.full(); n++ {
		line := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		line = strings.TrimSuffix(line, "\r")
		start := len(lx.out)
		lx.out = lx.line(file, n, line, lx.out) // the line's tokens, appended in place
		toks := lx.out[start:]
		if len(toks) == 0 {
			continue
		}
		if first := toks[0]; !first.quoted && first.text == "include" {
			args := slices.Clone(toks[1:])
			lx.out = lx.out[:start]
			lx.include(first, args, dir)
		}
	}
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
func (lx *lexer) line(file *string, n int32, s string, out []token) []token {
	lx.lines++
	start := len(out)
	toks := out
	// finish checks the line's tokens (toks[start:]) for the preprocessor.
	finish := func() []token {
		line := lx.special(toks[start:])
		if len(line) == len(toks)-start {
			return toks // as they are
		}
		return append(toks[:start], line...)
	}
	add := func(text string, quoted bool) {
		lx.seq++
		toks = append(toks, token{text: text, quoted: quoted, file: file, lineNo: n, seq: lx.seq, line: lx.lines})
		if limit := lx.lim.orDefaults().words; lx.seq > limit && !lx.full {
			lx.full = true
			lx.r.errorf(toks[len(toks)-1], "", "the configuration has more than %d words (keywords, values, braces) with what it includes, more than haa reads: is this, and every file included, a keepalived configuration? The rest is not read", limit)
		}
		if !utf8.ValidString(text) {
			// haa's configuration, its API and its YAML are UTF-8: a
			// Latin-1 value would convert into one nothing can write.
			lx.r.errorf(toks[len(toks)-1], "", "%q is not UTF-8 text: save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8); comments may stay as they are", text)
		}
	}
	for i := 0; i < len(s) && !lx.full; {
		c := s[i]
		switch {
		case isSpace(c):
			i++
		case c == '!' || c == '#':
			return finish()
		case c == '\\' && i+1 < len(s) && (s[i+1] == '#' || s[i+1] == '!'):
			lx.escapedComment(toks[start:], file, n, s[i:i+2])
			return finish()
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
				return finish()
			}
			i = j + 1
		default:
			// A word ends at white space, a brace, a quote or a comment
			// (\# and \! included); \\ is two characters of the word
			// (\\#: a backslash, then a comment), as in decomment.
			j := i
			for j < len(s) && !endsWord(s[j]) {
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
	return finish()
}

// escapedComment warns about \# or \! (esc) outside quotes, which
// keepalived 2.2 reads as the start of a comment (see line); toks are the
// words of the line before it.
func (lx *lexer) escapedComment(toks []token, file *string, n int32, esc string) {
	at := token{file: file, lineNo: n, seq: lx.seq, line: lx.lines}
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

// endsWord reports whether c ends a word: white space, a brace, a quote
// or a comment.
func endsWord(c byte) bool {
	switch c {
	case ' ', '\t', '\v', '\f', '\r', '{', '}', '"', '!', '#':
		return true
	}
	return false
}

// include expands `include PATTERN...`: every file matching each glob
// pattern, in sorted order (filepath.Glob), a relative pattern being
// relative to the directory of the including file. keepalived logs "Config
// files missing" for an include that matches nothing and goes on: a glob
// pattern that matches nothing (an empty conf.d/*.conf) is a warning, a
// plain path to a file that does not exist an error (a file that was meant
// to be there, and whose part of the configuration would be lost).
func (lx *lexer) include(kw token, patterns []token, dir string) {
	if len(patterns) == 0 {
		lx.r.errorf(kw, "include", "no file given: write include FILE or include GLOB, e.g. include /etc/keepalived/conf.d/*.conf")
		return
	}
	for _, p := range patterns {
		if p.brace("{") || p.brace("}") {
			lx.r.errorf(p, "include", "include takes no block: put it on a line of its own, e.g. include /etc/keepalived/conf.d/*.conf")
			continue
		}
		pattern := p.text
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(dir, pattern)
		}
		matches, err := lx.fsys().Glob(pattern)
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
			lx.includeFile(p, m)
		}
	}
}

// isGlob reports whether an include pattern has glob characters.
func isGlob(pattern string) bool { return strings.ContainsAny(pattern, "*?[") }

func (lx *lexer) includeFile(at token, path string) {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = filepath.Clean(path)
	}
	for _, f := range lx.stack {
		if f == abs {
			lx.r.errorf(at, "include", "%s includes itself (through %s): remove the include that closes the loop", path, strings.Join(lx.stack, " -> "))
			return
		}
	}
	if len(lx.stack) >= maxIncludeDepth {
		lx.r.errorf(at, "include", "includes nested more than %d deep (%s): flatten them, or remove an include loop", maxIncludeDepth, strings.Join(lx.stack, " -> "))
		return
	}
	data, ok := lx.readInclude(at, path)
	if !ok {
		return
	}
	lx.stack = append(lx.stack, abs)
	defer func() { lx.stack = lx.stack[:len(lx.stack)-1] }()
	lx.lexFile(path, data, filepath.Dir(path))
}

// readInclude reads the file path that the include at `at` names, within
// the limits; a file it cannot read is an error at the include.
func (lx *lexer) readInclude(at token, path string) ([]byte, bool) {
	lim := lx.lim.orDefaults()
	if lx.files >= lim.files {
		lx.r.errorf(at, "include", "including %s would make more than %d files read for this configuration (a file included N times counts N times): is a file included from many places, or a glob matching more than meant? Include each file once", path, lim.files)
		return nil, false
	}
	data, err := readLimited(lx.fsys(), path, min(lim.file, lim.total-lx.read))
	var re *readError
	switch {
	case err == nil:
		lx.read += int64(len(data))
		lx.files++
		return data, true
	case !errors.As(err, &re):
		lx.r.errorf(at, "include", "cannot read %s: %v: fix the path or the file's permissions", path, err)
	case re.err == ErrNotRegular && re.mode.IsDir():
		lx.r.errorf(at, "include", "%s is a directory: include the files in it, e.g. include %s", path, filepath.Join(path, "*.conf"))
	case re.err == ErrNotRegular:
		lx.r.errorf(at, "include", "%s is not a regular file but %s: haa reads configuration only from regular files (a device such as /dev/zero never ends, a FIFO can block): include a regular file, or remove the include", path, fileKind(re.mode))
	case re.err == ErrTooLarge && re.size > lim.file:
		lx.r.errorf(at, "include", "%s is %s, more than the %s an included file may have: is it the file you meant? If so, split it into smaller files and include those", path, size(re.size), size(lim.file))
	case re.err == ErrTooLarge:
		lx.r.errorf(at, "include", "%s (%s) would make the configuration more than %s with the files it includes (%s read before it, a file included N times counting N times): include fewer or smaller files; is a glob matching more than meant?", path, size(re.size), size(lim.total), size(lx.read))
	default:
		lx.r.errorf(at, "include", "cannot read %s: %v: fix the path or the file's permissions", path, re.err)
	}
	return nil, false
}
