package main

import (
	"regexp"
	"strings"
)

// fieldFacts are what a field's comment says about it, in the comment
// conventions of proto/haa/v1: "Default X." (or "X (default)"), "Unit:
// X.", a range such as "1..255", and "keepalived: KEYWORD.".
type fieldFacts struct {
	Default    string
	Unit       string // "Unit: X." as written
	Range      string // the first "A..B" outside the default
	Keepalived string
}

var (
	// "Default 5s.", "Default: the host name.", "Port default 7946." but
	// not "(default)" nor "keepalived's default".
	defaultRE = regexp.MustCompile(`(?:^|[\s(])(?:[Dd]efault)(?::\s+|\s+)`)
	// `tcp (default), udp`, `"auto" (default)`, `BACKUP (default).`
	defaultMarkRE = regexp.MustCompile(`("[^"]*"|[\w./:-]+) \(default\)`)
	unitRE        = regexp.MustCompile(`(?:^|\s)Unit:\s+`)
	keepalivedRE  = regexp.MustCompile(`(?:^|\s)keepalived:\s+`)
	requiredRE    = regexp.MustCompile(`(?:^|[.;]\s+)Required\b`)
	unsetRE       = regexp.MustCompile(`(?:^|\s)[Uu]nset:\s+`)
	rangeRE       = regexp.MustCompile(`(^|[^\w.])(-?\d+\.\.-?\d+)`)
)

// extractFacts reads a field comment (its lines joined by spaces).
func extractFacts(text string) fieldFacts {
	var f fieldFacts
	rest := text
	if m := defaultMarkRE.FindStringSubmatch(text); m != nil {
		f.Default = m[1]
		rest = strings.Replace(rest, m[0], "", 1)
	} else if loc := defaultRE.FindStringIndex(text); loc != nil {
		v, n := clause(text[loc[1]:], true)
		f.Default = v
		// "Port default 7946.": the default of the port.
		if before := strings.TrimSpace(text[:loc[0]]); before != "" && !strings.HasSuffix(before, ".") {
			if i := strings.LastIndexAny(before, " ("); i+1 < len(before) {
				f.Default = strings.ToLower(before[i+1:]) + " " + v
			}
		}
		rest = text[:loc[0]] + " " + text[loc[1]+n:]
	}
	if f.Default == "" {
		// "Required." or "Required unless ...": no default.
		if loc := requiredRE.FindStringIndex(text); loc != nil {
			v, _ := clause(text[loc[1]-len("Required"):], false)
			f.Default = strings.ToLower(v[:1]) + v[1:]
		}
	}
	f.Default = unquote(f.Default)
	if loc := unitRE.FindStringIndex(text); loc != nil {
		f.Unit, _ = clause(text[loc[1]:], false)
	}
	var kas []string
	for _, loc := range keepalivedRE.FindAllStringIndex(text, -1) {
		if v, _ := clause(text[loc[1]:], false); v != "" {
			kas = append(kas, v)
		}
	}
	f.Keepalived = strings.Join(kas, "; ")
	if m := rangeRE.FindStringSubmatch(rest); m != nil {
		f.Range = m[2]
	}
	return f
}

// clause returns the text up to the end of its sentence: a ". " or a
// final ".", outside quotes and parentheses. With short, a ", ", "; " or
// ": " ends it too ("Default 3s, at most the interval"). It also returns
// how many bytes of s it consumed.
func clause(s string, short bool) (string, int) {
	depth, quoted := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '(':
			depth++
		case c == ')':
			if depth > 0 {
				depth--
			}
		case depth > 0:
		case c == '.' && (i+1 == len(s) || s[i+1] == ' '):
			return strings.TrimSpace(s[:i]), i + 1
		case short && (c == ',' || c == ';' || c == ':') && (i+1 == len(s) || s[i+1] == ' '):
			return strings.TrimSpace(s[:i]), i + 1
		}
	}
	return strings.TrimSpace(s), len(s)
}

// stripFacts removes from a field comment the sentences whose content the
// table shows in its own columns: "keepalived: KEYWORD.", "Default X." and
// "Unset: X." (a default followed by more, as in "Default 3s, at most the
// interval.", stays).
func stripFacts(text string) string {
	for _, re := range []*regexp.Regexp{keepalivedRE, defaultRE, unsetRE} {
		short := re != keepalivedRE
		for off := 0; off < len(text); {
			loc := re.FindStringIndex(text[off:])
			if loc == nil {
				break
			}
			start, after := off+loc[0], off+loc[1]
			_, n := clause(text[after:], short)
			end := after + n
			before := strings.TrimSpace(text[:start])
			sentence := before == "" || strings.HasSuffix(before, ".")
			whole := end == len(text) && !strings.ContainsAny(text[end-1:end], ",;:") ||
				end < len(text) && text[end-1] == '.'
			if !sentence || !whole {
				off = after // "Port default 7946.", "Default 3s, at most ...": keep
				continue
			}
			text = strings.TrimSpace(before + " " + strings.TrimSpace(text[end:]))
			off = len(before)
		}
	}
	return text
}

// unquote removes the quotes around a default that is one quoted string.
func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' && !strings.Contains(s[1:len(s)-1], `"`) {
		return s[1 : len(s)-1]
	}
	return s
}

var valueRE = regexp.MustCompile(`^[\w./:*@-]+$`)

// codeIfValue formats a default: a single value as code, prose as it is.
func codeIfValue(s string) string {
	if valueRE.MatchString(s) && s != "empty" && s != "none" {
		return "`" + s + "`"
	}
	return mdText(s)
}

var keywordRE = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*\*?`)

// codeKeywords formats keepalived keywords ("lb_algo / lvs_sched") as code.
func codeKeywords(s string) string {
	return keywordRE.ReplaceAllString(s, "`$0`")
}

// asRef recognises a FleetInstance comment "As Instance.vrid." and returns
// the message and field it refers to.
var asRefRE = regexp.MustCompile(`^As (\w+)\.(\w+)\b`)

func asRef(text string) (msg, field string, ok bool) {
	m := asRefRE.FindStringSubmatch(text)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}
