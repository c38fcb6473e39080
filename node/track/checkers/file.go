package checkers

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/haa-dev/haa/node/track"

	"golang.org/x/sys/unix"
)

// File is a tracker that reads an integer from a file at start and
// whenever the file changes. The number is the first whitespace-separated
// token of the file; a missing or empty file reads as 0, and so does
// anything that is not a number (Detail says so), as in keepalived. The
// weight is applied by Contribute.
//
// Changes are seen through inotify on the file's directory (the file may
// be written in place, created, deleted or renamed over), and the file is
// read again every Poll as a safety net. While the directory does not
// exist, the file is read every second until it does.
type File struct {
	// Path is the file's absolute path.
	Path string
	// Poll is how often the file is read even without a change (default
	// 5s).
	Poll time.Duration
}

// fileEvents are the changes of the directory's entries that may change
// the file; dirGone are the events after which the watch no longer
// follows the directory at the file's path.
const (
	fileEvents = unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM
	dirGone    = unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_IGNORED | unix.IN_UNMOUNT
)

// maxFileRead is how much of the file is read: the number comes first.
const maxFileRead = 4096

// Run reads the file at once and then on every change until ctx ends,
// reporting when the number or Detail changes.
func (f *File) Run(ctx context.Context, report func(track.Result)) {
	poll := f.Poll
	if poll <= 0 {
		poll = 5 * time.Second
	}
	rep := track.NewReporter(report)
	read := func() { rep.Send(ReadFile(f.Path)) }
	dir, base := filepath.Dir(f.Path), filepath.Base(f.Path)
	for ctx.Err() == nil {
		w, err := watch(dir, base)
		read() // after the watch is in place: no change goes unseen
		if err == nil {
			f.follow(ctx, w, poll, read)
			w.close()
		}
		// The directory does not exist (yet), or it was removed or
		// renamed: look again in a second.
		track.Sleep(ctx, time.Second)
	}
}

// follow reads the file whenever w sees a change and every poll, until ctx
// ends or the watch is lost.
func (f *File) follow(ctx context.Context, w *watcher, poll time.Duration, read func()) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.done:
			return
		case <-w.changed:
			read()
		case <-t.C:
			read()
		}
	}
}

// ReadFile reads a file tracker's number once. OK is Value == 0 and Since
// is now.
func ReadFile(path string) track.Result {
	v, detail := readNumber(path)
	return track.Result{OK: v == 0, Value: v, Detail: detail, Since: time.Now()}
}

// readNumber reads the number in a file and describes it.
func readNumber(path string) (int, string) {
	// O_NONBLOCK: a FIFO at path must not block the tracker.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, "no such file (reads as 0)"
	}
	if err != nil {
		return 0, fmt.Sprintf("%v (reads as 0)", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		return 0, "not a regular file (reads as 0)"
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileRead))
	if err != nil {
		return 0, fmt.Sprintf("%v (reads as 0)", err)
	}
	fields := bytes.Fields(b)
	if len(fields) == 0 {
		return 0, "empty file (reads as 0)"
	}
	v, err := strconv.Atoi(string(fields[0]))
	if err != nil && !errors.Is(err, strconv.ErrRange) { // out of range: the nearest int
		tok := string(fields[0])
		if len(tok) > 20 {
			tok = tok[:20] + "..."
		}
		return 0, fmt.Sprintf("not a number: %q (reads as 0)", tok)
	}
	return v, fmt.Sprintf("value %d", v)
}

// watcher follows the entries of one directory with inotify, in its own
// goroutine.
type watcher struct {
	file    *os.File      // the inotify instance (non-blocking: Close wakes a Read)
	changed chan struct{} // the file may have changed (capacity 1)
	done    chan struct{} // closed when the watch is lost or closed
}

// watch starts following the entries named base in dir.
func watch(dir, base string) (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, fileEvents|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_ONLYDIR); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "inotify_add_watch", Path: dir, Err: err}
	}
	w := &watcher{
		file:    os.NewFile(uintptr(fd), "inotify"),
		changed: make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	go w.read(base)
	return w, nil
}

// read turns inotify events into signals on w.changed until the watch is
// lost or w.file is closed.
func (w *watcher) read(base string) {
	defer close(w.done)
	buf := make([]byte, 16*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := w.file.Read(buf)
		if err != nil {
			return
		}
		changed, gone := parseEvents(buf[:n], base)
		if changed {
			select {
			case w.changed <- struct{}{}:
			default: // a change is pending already
			}
		}
		if gone {
			return
		}
	}
}

// parseEvents reads a buffer of inotify events: changed when one is about
// base (or events were lost), gone when the directory is no longer
// watched.
func parseEvents(buf []byte, base string) (changed, gone bool) {
	// struct inotify_event: wd int32, mask uint32, cookie uint32, len
	// uint32, then len bytes of name, NUL-padded.
	for len(buf) >= unix.SizeofInotifyEvent {
		mask := binary.NativeEndian.Uint32(buf[4:])
		end := unix.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(buf[12:]))
		if end > len(buf) {
			break
		}
		name := string(bytes.TrimRight(buf[unix.SizeofInotifyEvent:end], "\x00"))
		switch {
		case mask&unix.IN_Q_OVERFLOW != 0:
			changed = true
		case mask&dirGone != 0:
			gone = true
		case mask&fileEvents != 0 && name == base:
			changed = true
		}
		buf = buf[end:]
	}
	return changed, gone
}

// close stops the watch and waits for its goroutine.
func (w *watcher) close() {
	w.file.Close()
	<-w.done
}
