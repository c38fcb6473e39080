package keepalived

import "strings"

// splitCommand splits a command line into a program and its arguments as a
// POSIX shell splits plain words and quotes: white space separates words,
// '...' and "..." quote, a backslash escapes the next character. shell
// reports syntax such a split cannot express (operators, redirections,
// expansions, globs, comments, assignments), which needs a real shell.
func splitCommand(s string) (argv []string, shell bool) {
	var (
		cur     strings.Builder
		inWord  bool
		quote   byte // 0, '\'' or '"'
		wordPos int  // characters of the current word so far
	)
	end := func() {
		if inWord {
			argv = append(argv, cur.String())
			cur.Reset()
			inWord, wordPos = false, 0
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch quote {
		case '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
			continue
		case '"':
			switch c {
			case '"':
				quote = 0
			case '$', '`':
				shell = true
				cur.WriteByte(c)
			case '\\':
				if i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
					cur.WriteByte(s[i])
				} else {
					cur.WriteByte(c)
				}
			default:
				cur.WriteByte(c)
			}
			continue
		}
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			end()
		case c == '\'' || c == '"':
			quote, inWord = c, true
			wordPos++
		case c == '\\':
			if i+1 >= len(s) {
				shell = true
				break
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
			wordPos++
		case strings.IndexByte("|&;<>()$`*?[{}!", c) >= 0:
			shell = true
			cur.WriteByte(c)
			inWord = true
			wordPos++
		case (c == '#' || c == '~') && !inWord:
			shell = true // a comment, or a home directory
			cur.WriteByte(c)
			inWord = true
			wordPos++
		case c == '=' && len(argv) == 0 && !strings.ContainsAny(cur.String(), "/") && wordPos > 0:
			shell = true // VAR=value before the program
			cur.WriteByte(c)
			wordPos++
		default:
			cur.WriteByte(c)
			inWord = true
			wordPos++
		}
	}
	if quote != 0 {
		shell = true // let the shell report the unbalanced quote
	}
	end()
	return argv, shell
}

// shellFor returns the shell that runs s: bash for bash's [[ ]] test,
// else sh.
func shellFor(s string) string {
	if strings.Contains(s, "[[") || strings.Contains(s, "((") {
		return "/bin/bash"
	}
	return "/bin/sh"
}
