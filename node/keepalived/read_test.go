package keepalived

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// loaded is what Load returned.
type loaded struct {
	cfg   *haav1.AgentConfig
	warns []Problem
	err   error
}

// loadWithin runs Load and fails the test when it has not returned after
// a few seconds (reading a FIFO or a device that never ends).
func loadWithin(t *testing.T, path string) loaded {
	t.Helper()
	done := make(chan loaded, 1)
	go func() {
		cfg, warns, err := Load(path, Options{})
		done <- loaded{cfg, warns, err}
	}()
	select {
	case r := <-done:
		return r
	case <-time.After(5 * time.Second):
		t.Fatalf("Load(%s) still reading after 5s", path)
		return loaded{}
	}
}

// mkfifo makes a FIFO nobody writes to, and on cleanup opens it for
// writing once so that a reader blocked on it (the bug) returns.
func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	t.Cleanup(func() {
		if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
}

// oneProblem checks err is an *Error of exactly one problem, at file:line
// of keyword kw, whose message has every one of msgs.
func oneProblem(t *testing.T, err error, file string, line int, kw string, msgs ...string) {
	t.Helper()
	var ke *Error
	if !errors.As(err, &ke) {
		t.Fatalf("error %v (%T), want an *Error", err, err)
	}
	if len(ke.Problems) != 1 {
		t.Fatalf("%d problems, want 1:\n%s", len(ke.Problems), problemLines(ke.Problems))
	}
	p := ke.Problems[0]
	if p.Pos != (Pos{file, line}) || p.Keyword != kw {
		t.Errorf("problem at %v (%q), want %s:%d (%q): %s", p.Pos, p.Keyword, file, line, kw, p)
	}
	for _, m := range msgs {
		if !strings.Contains(p.Msg, m) {
			t.Errorf("problem %q\nwant it to contain %q", p.Msg, m)
		}
	}
}

// An include of a file that is not regular is an error at the include,
// naming the file, found without opening it: /dev/zero never ends, a FIFO
// blocks its reader.
func TestIncludeNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.conf")
	mkfifo(t, fifo)
	for _, tc := range []struct{ name, path, kind string }{
		{"device", "/dev/zero", "a character device"},
		{"FIFO", fifo, "a FIFO"},
		{"FIFO by glob", filepath.Join(dir, "fifo.*"), "a FIFO"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "device" {
				if _, err := os.Stat(tc.path); err != nil {
					t.Skipf("no %s: %v", tc.path, err)
				}
			}
			main := filepath.Join(t.TempDir(), "keepalived.conf")
			writeFile(t, main, "global_defs {\n  router_id lb1\n}\ninclude "+tc.path+"\n")
			r := loadWithin(t, main)
			target := strings.Replace(tc.path, "fifo.*", "fifo.conf", 1)
			oneProblem(t, r.err, main, 4, "include", target+" is not a regular file but "+tc.kind, "include a regular file")
		})
	}
}

// The top-level file must be a regular file too.
func TestLoadNotRegular(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "keepalived.conf")
	mkfifo(t, fifo)
	for _, path := range []string{fifo, "/dev/zero"} {
		r := loadWithin(t, path)
		if !errors.Is(r.err, ErrNotRegular) || !strings.Contains(r.err.Error(), path+" is not a regular file") {
			t.Errorf("Load(%s): %v, want ErrNotRegular naming the file", path, r.err)
		}
		var ke *Error
		if errors.As(r.err, &ke) {
			t.Errorf("Load(%s): an *Error, want a read error", path)
		}
	}
}

// sparse makes a file of n bytes that takes no room on disk.
func sparse(t *testing.T, path string, n int64) {
	t.Helper()
	writeFile(t, path, "")
	if err := os.Truncate(path, n); err != nil {
		t.Fatal(err)
	}
}

// A file larger than MaxFileBytes is refused by its size, included or at
// the top.
func TestFileTooLarge(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.conf")
	sparse(t, big, MaxFileBytes+1)
	main := filepath.Join(dir, "keepalived.conf")
	writeFile(t, main, "! the big file\ninclude big.conf\n")
	r := loadWithin(t, main)
	oneProblem(t, r.err, main, 2, "include", big+" is 4194305 bytes, more than the 4 MiB an included file may have")

	r = loadWithin(t, big)
	if !errors.Is(r.err, ErrTooLarge) || !strings.Contains(r.err.Error(), big+" is 4194305 bytes, more than the 4 MiB") {
		t.Errorf("Load(big): %v, want ErrTooLarge naming the file", r.err)
	}

	// Parse gets the bytes: the same limit.
	data := []byte(strings.Repeat("!\n", MaxFileBytes/2+1))
	_, _, err := Parse("big.conf", data, dir, Options{})
	oneProblem(t, err, "big.conf", 1, "", "more than the 4 MiB")

	// At the limit, it is read.
	if err := os.Truncate(big, MaxFileBytes); err != nil {
		t.Fatal(err)
	}
	writeFile(t, big, strings.Repeat(strings.Repeat("!", 1023)+"\n", MaxFileBytes/1024))
	if r := loadWithin(t, main); r.err != nil {
		t.Errorf("a file of 4 MiB: %v", r.err)
	}
}

// Files that are each small enough but add up to more than MaxTotalBytes:
// the include that goes over is an error.
func TestIncludesTotal(t *testing.T) {
	dir := t.TempDir()
	const part = 3 << 20
	writeFile(t, filepath.Join(dir, "part.conf"), strings.Repeat(strings.Repeat("#", 1023)+"\n", part/1024))
	main := filepath.Join(dir, "keepalived.conf")
	writeFile(t, main, strings.Repeat("include part.conf\n", 6))
	r := loadWithin(t, main)
	oneProblem(t, r.err, main, 6, "include", filepath.Join(dir, "part.conf")+" (3 MiB) would make the configuration more than 16 MiB", fmt.Sprintf("(%d bytes read before it", 5*part+6*len("include part.conf\n")))

	// Five are 15 MiB: read.
	writeFile(t, main, strings.Repeat("include part.conf\n", 5))
	if r := loadWithin(t, main); r.err != nil {
		t.Errorf("15 MiB in all: %v", r.err)
	}
}

// Includes of includes multiply: the files read are counted.
func TestIncludesFileCount(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "leaf.conf"), "")
	writeFile(t, filepath.Join(dir, "mid.conf"), strings.Repeat("include leaf.conf\n", 100))
	main := filepath.Join(dir, "keepalived.conf")
	// 1 + 100 + 100*100 files.
	writeFile(t, main, strings.Repeat("include mid.conf\n", 100))
	// After 99 includes of mid.conf (with its 100 each), 10000 files are
	// read: the 100th is refused.
	r := loadWithin(t, main)
	oneProblem(t, r.err, main, 100, "include", fmt.Sprintf("including %s would make more than %d files read", filepath.Join(dir, "mid.conf"), MaxFiles))
}

// A configuration of more words than MaxWords (here lowered) is refused at
// the first word over, and the rest is not read.
func TestWordLimit(t *testing.T) {
	src := strings.Repeat("a b c d\n", 10)
	_, _, _, err := parseFrom("t.conf", []byte(src), t.TempDir(), Options{}, hostFiles{}, limits{words: 21})
	oneProblem(t, err, "t.conf", 6, "", "more than 21 words")
}

// Past MaxErrors errors, the first MaxErrors are listed and a last problem
// says how many more there are.
func TestErrorsCapped(t *testing.T) {
	n := maxKept + 50
	_, _, err := Parse("t.conf", []byte(strings.Repeat("bogus_keyword\n", n)), t.TempDir(), Options{})
	var ke *Error
	if !errors.As(err, &ke) {
		t.Fatalf("error %v, want an *Error", err)
	}
	if len(ke.Problems) != MaxErrors+1 {
		t.Fatalf("%d problems, want %d", len(ke.Problems), MaxErrors+1)
	}
	last := ke.Problems[MaxErrors]
	want := fmt.Sprintf("and %d more errors from here on, not listed", n-MaxErrors)
	if last.Pos != (Pos{"t.conf", MaxErrors + 1}) || !strings.Contains(last.Msg, want) {
		t.Errorf("last problem %v, want at line %d: %q", last, MaxErrors+1, want)
	}
	for i, p := range ke.Problems[:MaxErrors] {
		if p.Pos.Line != i+1 || p.Keyword != "bogus_keyword" {
			t.Fatalf("problem %d: %v", i, p)
		}
	}
}
