package checkers

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/haa-dev/haa/node/track"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want brief
	}{
		{filepath.Join(dir, "missing"), brief{true, 0, "no such file (reads as 0)"}},
		{write("empty", ""), brief{true, 0, "empty file (reads as 0)"}},
		{write("blank", " \n\t\n"), brief{true, 0, "empty file (reads as 0)"}},
		{write("three", "3\n"), brief{false, 3, "value 3"}},
		{write("spaces", "  42 and more\nlines\n"), brief{false, 42, "value 42"}},
		{write("negative", "-7"), brief{false, -7, "value -7"}},
		{write("plus", "+2"), brief{false, 2, "value 2"}},
		{write("zero", "0\n"), brief{true, 0, "value 0"}},
		{write("word", "drain\n"), brief{true, 0, `not a number: "drain" (reads as 0)`}},
		{write("suffix", "12abc"), brief{true, 0, `not a number: "12abc" (reads as 0)`}},
		{write("long", "abcdefghijklmnopqrstuvwxyz"), brief{true, 0, `not a number: "abcdefghijklmnopqrst..." (reads as 0)`}},
		{write("huge", "99999999999999999999999"), brief{false, math.MaxInt, fmt.Sprintf("value %d", math.MaxInt)}},
		{fifo, brief{true, 0, "not a regular file (reads as 0)"}},
		{dir, brief{true, 0, "not a regular file (reads as 0)"}},
	}
	for _, tt := range tests {
		before := time.Now()
		r := ReadFile(tt.path)
		if b := (brief{r.OK, r.Value, r.Detail}); b != tt.want {
			t.Errorf("ReadFile(%s) = %+v, want %+v", filepath.Base(tt.path), b, tt.want)
		}
		if r.Since.Before(before) {
			t.Errorf("ReadFile(%s): Since %v is not now", filepath.Base(tt.path), r.Since)
		}
	}
}

// await waits for a report with the value and detail, skipping others
// (a file being written may be seen empty first).
func await(t *testing.T, rep *reports, value int, detail string) track.Result {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case r := <-rep.ch:
			if r.Value == value && r.Detail == detail {
				return r
			}
		case <-timeout:
			t.Fatalf("no report of value %d (%s) within 10s; reports: %v", value, detail, briefs(rep.all()))
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "drain")
	writeFile(t, filepath.Join(dir, "other"), "1") // not the tracked file
	fds := openFDs(t)
	// An hour's poll: only inotify can see the changes in time.
	rep, stop := start(t, &File{Path: path, Poll: time.Hour}, true)

	r := await(t, rep, 0, "no such file (reads as 0)")
	if !r.OK {
		t.Errorf("missing file: %+v, want OK", r)
	}
	writeFile(t, path, "3\n")
	if r := await(t, rep, 3, "value 3"); r.OK {
		t.Errorf("value 3: %+v, want not OK", r)
	}
	writeFile(t, path, "0\n")
	zero := await(t, rep, 0, "value 0")
	writeFile(t, path, "junk\n")
	if r := await(t, rep, 0, `not a number: "junk" (reads as 0)`); !r.Since.Equal(zero.Since) {
		t.Errorf("Since changed with the value unchanged: %v, then %v", zero.Since, r.Since)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	await(t, rep, 0, "no such file (reads as 0)")

	// Renamed over, as editors and atomic writers do.
	writeFile(t, path, "5")
	await(t, rep, 5, "value 5")
	tmp := filepath.Join(dir, ".drain.tmp")
	writeFile(t, tmp, "7")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	await(t, rep, 7, "value 7")
	// Renamed away.
	if err := os.Rename(path, tmp); err != nil {
		t.Fatal(err)
	}
	await(t, rep, 0, "no such file (reads as 0)")

	// Other files of the directory do not cause reads.
	n := len(rep.all())
	writeFile(t, filepath.Join(dir, "other"), "2")
	time.Sleep(100 * time.Millisecond)
	if got := len(rep.all()); got != n {
		t.Errorf("%d reports after another file changed, want none", got-n)
	}

	stop()
	if got := openFDs(t); got != fds {
		t.Errorf("%d open file descriptors after Run returned, %d before", got, fds)
	}
}

func TestFileDirectoryLater(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "haa")
	path := filepath.Join(dir, "drain")
	rep, stop := start(t, &File{Path: path, Poll: time.Hour}, true)
	await(t, rep, 0, "no such file (reads as 0)")

	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "2")
	await(t, rep, 2, "value 2") // within a second or so
	writeFile(t, path, "4")
	await(t, rep, 4, "value 4")

	// The directory removed, then created again.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	await(t, rep, 0, "no such file (reads as 0)")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "6")
	await(t, rep, 6, "value 6")
	time.Sleep(1500 * time.Millisecond) // watched again by now
	writeFile(t, path, "8")
	await(t, rep, 8, "value 8")
	stop()
}

func TestFilePoll(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "drain")
	writeFile(t, path, "1")
	rep, stop := start(t, &File{Path: path, Poll: 100 * time.Millisecond}, true)
	await(t, rep, 1, "value 1")

	// Written and kept open: no event inotify watches for, the poll reads it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("9"); err != nil {
		t.Fatal(err)
	}
	await(t, rep, 9, "value 9")
	stop()
}

// openFDs counts the test process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	// The runtime's poller keeps descriptors once it first runs: make sure
	// it did before counting.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	w.Close()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(entries)
}
