package keepalived

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// What a configuration may read. A keepalived.conf of a thousand virtual
// servers is a few hundred kilobytes; these limits are far above what a
// real configuration needs and far below what would exhaust haad's
// memory. They make a mistake (`include /dev/zero`, a log file, a glob
// matching more than meant, a file included from everywhere) an error at
// the include instead of haad running out of memory.
const (
	// MaxFileBytes is the largest file read: the top-level file or one
	// included file.
	MaxFileBytes = 4 << 20
	// MaxTotalBytes bounds the bytes of a file and everything it
	// includes, a file included several times counting each time.
	MaxTotalBytes = 16 << 20
	// MaxFiles bounds the files read for one configuration, a file
	// included several times counting each time (includes of includes
	// multiply).
	MaxFiles = 10000
	// MaxWords bounds the words (keywords, values, braces) of a
	// configuration with its includes, what its memory grows with: a real
	// configuration has a word every 10 bytes or so, 16 MiB of one-letter
	// words would have 8 million.
	MaxWords = 2_000_000
)

var (
	// ErrNotRegular is wrapped by Load's error when the file is not a
	// regular file (a device such as /dev/zero, a FIFO such as a shell's
	// <(...) or /dev/stdin on a pipe, a socket, a directory): such a file
	// may never end, or block the reader. Included files are refused the
	// same way, as a Problem at the include.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge is wrapped by Load's error when the file is larger than
	// MaxFileBytes.
	ErrTooLarge = errors.New("file too large")
)

// limits are the bounds of one conversion (tests lower them); zero fields
// are the defaults.
type limits struct {
	file, total int64
	files       int
	words       int32
}

func (l limits) orDefaults() limits {
	if l.file <= 0 {
		l.file = MaxFileBytes
	}
	if l.total <= 0 {
		l.total = MaxTotalBytes
	}
	if l.files <= 0 {
		l.files = MaxFiles
	}
	if l.words <= 0 {
		l.words = MaxWords
	}
	return l
}

// sourceFiles is where a configuration and its includes are read from:
// the host's file system (hostFiles), or in tests a directory standing
// for it. Paths are as the configuration gives them.
type sourceFiles interface {
	Glob(pattern string) ([]string, error)
	// Stat follows symbolic links.
	Stat(name string) (fs.FileInfo, error)
	// Open opens name for reading without blocking, even on a FIFO
	// nobody writes to.
	Open(name string) (fs.File, error)
}

// hostFiles is the host's file system.
type hostFiles struct{}

func (hostFiles) Glob(pattern string) ([]string, error) { return filepath.Glob(pattern) }
func (hostFiles) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }

// Open opens with O_NONBLOCK: opening a FIFO for reading otherwise waits
// for a writer (on a regular file the flag does nothing).
func (hostFiles) Open(name string) (fs.File, error) {
	return os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

// readError is why a file was not read; Error is the message of Load.
type readError struct {
	path string
	err  error // ErrNotRegular, ErrTooLarge or an I/O error
	mode fs.FileMode
	// size is the file's size, or for a file that grew while read a
	// lower bound; limit what it was read with.
	size, limit int64
}

func (e *readError) Error() string {
	switch e.err {
	case ErrNotRegular:
		return fmt.Sprintf("%s is not a regular file but %s, which haa does not read as a configuration (it may never end, or block): save the configuration in a regular file and give that file", e.path, fileKind(e.mode))
	case ErrTooLarge:
		return fmt.Sprintf("%s is %s, more than the %s a keepalived configuration file may have: is it the file you meant? If so, split it into files and include them from it", e.path, size(e.size), size(e.limit))
	}
	return e.err.Error()
}

func (e *readError) Unwrap() error { return e.err }

// fileKind names what a file that is not regular is.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO (named pipe)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "a special file (" + m.Type().String() + ")"
}

// size writes a byte count for messages: "4 MiB", "5242881 bytes".
func size(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// readLimited reads the regular file path, of at most limit bytes. A file
// that is not regular is refused before it is opened (opening a device can
// do something); one that is turned into one between the check and the
// open is refused after. Errors are *readError.
func readLimited(fsys sourceFiles, path string, limit int64) ([]byte, error) {
	st, err := fsys.Stat(path)
	if err != nil {
		return nil, &readError{path: path, err: err}
	}
	if !st.Mode().IsRegular() {
		return nil, &readError{path: path, err: ErrNotRegular, mode: st.Mode()}
	}
	if st.Size() > limit {
		return nil, &readError{path: path, err: ErrTooLarge, size: st.Size(), limit: limit}
	}
	f, err := fsys.Open(path)
	if err != nil {
		return nil, &readError{path: path, err: err}
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && !st.Mode().IsRegular() {
		return nil, &readError{path: path, err: ErrNotRegular, mode: st.Mode()}
	}
	// Room for the size Stat gave at once (io.ReadAll would grow its
	// buffer, zeroing and copying, a tenth of reading a large file).
	buf := bytes.NewBuffer(make([]byte, 0, min(st.Size(), limit)+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(f, limit+1)); err != nil {
		return nil, &readError{path: path, err: err}
	}
	data := buf.Bytes()
	if int64(len(data)) > limit {
		return nil, &readError{path: path, err: ErrTooLarge, size: int64(len(data)), limit: limit}
	}
	return data, nil
}
