// Package script runs the external programs of a configuration (tracker
// scripts, notify commands) safely, the way keepalived does with
// enable_script_security:
//
//   - Resolve checks a command once, when a configuration is applied: the
//     program must exist, be an executable regular file, and be writable by
//     nobody but root or the user it runs as (Secure), as must every
//     directory above it; the user it runs as must exist.
//   - Command.Run runs it with a fixed PATH, stdin from /dev/null, in its own
//     process group, kills the whole group on timeout, and keeps only the
//     first lines of its output.
package script

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

// Path is the PATH every command runs with.
const Path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// MaxLines and MaxBytes bound the output kept of a run (Result.Output).
const (
	MaxLines = 5
	MaxBytes = 1024
)

// waitDelay is how long Run waits for the output pipe to close once the
// program has exited or been killed: a process that left the program's
// process group (setsid) may still hold it open.
const waitDelay = time.Second

// ErrTimeout is the error (wrapped) of a run that was killed because it
// outlived its timeout.
var ErrTimeout = errors.New("timed out")

// Command is a checked command, ready to run. Build it with Resolve; a
// Command built directly runs Argv as haad's own user, unchecked.
type Command struct {
	// Argv is the program and its arguments. Argv[0] is the absolute,
	// symlink-resolved path of the program: the file that was checked is
	// the file that runs.
	Argv []string
	// User is the user the command runs as, as configured ("" = haad's
	// own user, normally root).
	User string

	name string              // argv[0] as configured: what the program sees as its name
	cred *syscall.Credential // nil: run as haad's own user
}

// Resolve checks a command and returns it ready to run. argv[0] is the
// program: an absolute path, or a bare name looked up in haad's PATH. The
// program must exist, be an executable regular file and be secure (see
// Secure) for the user it runs as. user is "name", "name:group" (names or
// numeric ids) or "" to run as haad's own user.
//
// Errors are plain messages without a field path, saying what to change.
func Resolve(argv []string, user string) (*Command, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("no program: the command's first element must be the program to run")
	}
	name := argv[0]
	prog := name
	if !strings.Contains(prog, "/") {
		p, err := exec.LookPath(prog)
		if err != nil || !filepath.IsAbs(p) {
			return nil, fmt.Errorf("program %q not found in PATH (%s): give its absolute path", prog, os.Getenv("PATH"))
		}
		prog = p
	} else if !filepath.IsAbs(prog) {
		return nil, fmt.Errorf("program path %q is relative: give its absolute path", prog)
	}
	cred, uid, err := lookupUser(user)
	if err != nil {
		return nil, err
	}
	path, err := filepath.EvalSymlinks(prog)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("program %s does not exist: install it or correct the path", prog)
		}
		return nil, fmt.Errorf("cannot check program %s: %w", prog, err)
	}
	shown := path
	if path != prog {
		shown = fmt.Sprintf("%s (the target of %s)", path, prog)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return nil, fmt.Errorf("cannot check program %s: %w", shown, err)
	}
	mode := st.Mode & 0o7777
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
	case syscall.S_IFDIR:
		return nil, fmt.Errorf("%s is a directory, not a program: give the path of the program in it", shown)
	default:
		return nil, fmt.Errorf("%s is not a regular file: give the path of a program", shown)
	}
	if mode&0o111 == 0 {
		return nil, fmt.Errorf("%s is not executable (mode %04o): run chmod +x %s", shown, mode, path)
	}
	if cred != nil && cred.Uid != 0 && !executableBy(&st, cred) {
		return nil, fmt.Errorf("%s is not executable by user %s (mode %04o, owner uid %d, group %d): run chmod +x %s or run it as another user",
			shown, user, mode, st.Uid, st.Gid, path)
	}
	if err := Secure(path, uid); err != nil {
		if path != prog {
			return nil, fmt.Errorf("%w (%s resolves to %s)", err, prog, path)
		}
		return nil, err
	}
	// A shell running a command line (sh -c "..."): the programs the line
	// names by absolute path must be as safe as a program run directly.
	if isShell(path) && len(argv) >= 3 && argv[1] == "-c" {
		for _, p := range shellPrograms(argv[2]) {
			if _, err := os.Stat(p); err != nil {
				continue // not there: the line fails when it runs, as it would in keepalived
			}
			if err := Secure(p, uid); err != nil {
				return nil, fmt.Errorf("%w (run by the shell command line %q)", err, argv[2])
			}
		}
	}
	return &Command{
		Argv: append([]string{path}, argv[1:]...),
		User: user,
		name: name,
		cred: cred,
	}, nil
}

// executableBy reports whether the permission bits of a file let cred
// execute it.
func executableBy(st *syscall.Stat_t, cred *syscall.Credential) bool {
	switch {
	case st.Uid == cred.Uid:
		return st.Mode&0o100 != 0
	case st.Gid == cred.Gid:
		return st.Mode&0o010 != 0
	}
	for _, g := range cred.Groups {
		if g == st.Gid {
			return st.Mode&0o010 != 0
		}
	}
	return st.Mode&0o001 != 0
}

// lookupUser resolves a user specification. It returns the credential to
// run with (nil: haad's own) and the uid the command will run as.
func lookupUser(spec string) (*syscall.Credential, int, error) {
	if spec == "" {
		return nil, os.Geteuid(), nil
	}
	name, group, hasGroup := strings.Cut(spec, ":")
	if name == "" || (hasGroup && group == "") {
		return nil, 0, fmt.Errorf("user %q is incomplete: write \"name\" or \"name:group\"", spec)
	}
	var (
		uid, gid uint32
		groups   []uint32
		u        *user.User
	)
	if n, err := strconv.ParseUint(name, 10, 32); err == nil {
		uid = uint32(n)
		u, _ = user.LookupId(name)
		if u == nil && !hasGroup {
			return nil, 0, fmt.Errorf("uid %s has no entry in the user database of this node: give its group too (\"%s:GROUP\")", name, name)
		}
	} else {
		var err error
		if u, err = user.Lookup(name); err != nil {
			var unknown user.UnknownUserError
			if errors.As(err, &unknown) {
				return nil, 0, fmt.Errorf("no user %q on this node", name)
			}
			return nil, 0, fmt.Errorf("cannot look up user %q: %w", name, err)
		}
		n, err := strconv.ParseUint(u.Uid, 10, 32)
		if err != nil {
			return nil, 0, fmt.Errorf("user %q has a non-numeric uid %q", name, u.Uid)
		}
		uid = uint32(n)
	}
	if u != nil {
		if n, err := strconv.ParseUint(u.Gid, 10, 32); err == nil {
			gid = uint32(n)
		}
		if ids, err := u.GroupIds(); err == nil {
			for _, id := range ids {
				if n, err := strconv.ParseUint(id, 10, 32); err == nil {
					groups = append(groups, uint32(n))
				}
			}
		}
	}
	if hasGroup {
		if n, err := strconv.ParseUint(group, 10, 32); err == nil {
			gid = uint32(n)
		} else {
			g, err := user.LookupGroup(group)
			if err != nil {
				var unknown user.UnknownGroupError
				if errors.As(err, &unknown) {
					return nil, 0, fmt.Errorf("no group %q on this node", group)
				}
				return nil, 0, fmt.Errorf("cannot look up group %q: %w", group, err)
			}
			n, err := strconv.ParseUint(g.Gid, 10, 32)
			if err != nil {
				return nil, 0, fmt.Errorf("group %q has a non-numeric gid %q", group, g.Gid)
			}
			gid = uint32(n)
		}
	}
	if euid := os.Geteuid(); euid != 0 && int(uid) != euid {
		return nil, 0, fmt.Errorf("haad runs as uid %d, not root, so it cannot run commands as user %q: run haad as root or remove the user", euid, spec)
	}
	if int(uid) != os.Geteuid() {
		if missing := missingCaps(capSetuid, capSetgid, capKill); len(missing) > 0 {
			return nil, 0, fmt.Errorf("running commands as user %q needs %s, which haad does not have (its systemd unit grants only CAP_NET_ADMIN and CAP_NET_RAW): add them to CapabilityBoundingSet in a drop-in (see deploy/docs/operations.md) or remove the user",
				spec, strings.Join(missing, ", "))
		}
	}
	return &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}, int(uid), nil
}

// The capabilities that running a command as another user takes: setting
// its uid and gids, and killing its process group on timeout.
const (
	capKill   = 5
	capSetgid = 6
	capSetuid = 7
)

var capNames = map[int]string{capKill: "CAP_KILL", capSetgid: "CAP_SETGID", capSetuid: "CAP_SETUID"}

// missingCaps returns the names of the capabilities this process lacks
// (from CapEff in /proc/self/status); none when that cannot be read.
func missingCaps(caps ...int) []string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		hex, ok := strings.CutPrefix(line, "CapEff:")
		if !ok {
			continue
		}
		eff, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err != nil {
			return nil
		}
		var missing []string
		for _, c := range caps {
			if eff&(1<<c) == 0 {
				missing = append(missing, capNames[c])
			}
		}
		return missing
	}
	return nil
}

// Secure reports why running path as uid would be unsafe (keepalived's
// enable_script_security), or nil when it is safe. Symlinks are resolved
// first; then the file and every directory above it must be owned by root or
// by uid, and writable by nobody else: no group write unless the group is
// root (gid 0), no write by others. A directory with the sticky bit (like
// /tmp) may be writable by anyone.
func Secure(path string, uid int) error {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s does not exist: install it or correct the path", path)
		}
		return fmt.Errorf("cannot check %s: %w", path, err)
	}
	if resolved, err = filepath.Abs(resolved); err != nil {
		return fmt.Errorf("cannot check %s: %w", path, err)
	}
	for p := resolved; ; p = filepath.Dir(p) {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return fmt.Errorf("cannot check %s: %w", p, err)
		}
		if err := secureOne(p, &st, uid); err != nil {
			return err
		}
		if p == "/" || p == "." {
			return nil
		}
	}
}

// secureOne checks one component of a path for Secure.
func secureOne(p string, st *syscall.Stat_t, uid int) error {
	if st.Uid != 0 && int64(st.Uid) != int64(uid) {
		also := ""
		if uid != 0 {
			also = fmt.Sprintf(" or uid %d (the user it runs as)", uid)
		}
		return fmt.Errorf("%s is owned by uid %d, not by root%s: run chown root %s", p, st.Uid, also, p)
	}
	mode := st.Mode & 0o7777
	if st.Mode&syscall.S_IFMT == syscall.S_IFDIR && mode&syscall.S_ISVTX != 0 {
		return nil // like /tmp: others cannot replace what is not theirs
	}
	groupW := mode&0o020 != 0 && st.Gid != 0
	otherW := mode&0o002 != 0
	switch {
	case groupW && otherW:
		return fmt.Errorf("%s is writable by group %d and by everyone (mode %04o): run chmod go-w %s", p, st.Gid, mode, p)
	case groupW:
		return fmt.Errorf("%s is writable by group %d (mode %04o): run chmod g-w %s", p, st.Gid, mode, p)
	case otherW:
		return fmt.Errorf("%s is writable by everyone (mode %04o): run chmod o-w %s", p, mode, p)
	}
	return nil
}

// Result is the outcome of one run.
type Result struct {
	// Exit is the exit status; -1 when the program did not start, was
	// killed or timed out.
	Exit int
	// Duration is how long it ran.
	Duration time.Duration
	// Output is the start of its output (stdout and stderr interleaved):
	// at most MaxLines lines and MaxBytes bytes, valid UTF-8, without the
	// final newline.
	Output string
	// Err is nil when the program ran to its end, whatever its exit
	// status; ErrTimeout (wrapped) when it was killed on timeout; why it
	// was killed when ctx ended or when a signal (not from Run) killed it;
	// the start error when it did not start.
	Err error
}

// Run runs the command with args appended to Argv and env added to its
// environment, which is otherwise only PATH=Path. Stdin is /dev/null and
// the working directory is /. The program runs in its own process group;
// after timeout (none when timeout <= 0), or when ctx ends, the whole group
// gets SIGKILL, and Run returns promptly even if a process that left the
// group keeps the output open. Output beyond MaxBytes is read and
// discarded, so a chatty program never blocks.
func (c *Command) Run(ctx context.Context, timeout time.Duration, args []string, env []string) Result {
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		return Result{Exit: -1, Err: errors.New("no program to run")}
	}
	runCtx := ctx
	var timedOut error
	if timeout > 0 {
		timedOut = fmt.Errorf("%w after %s", ErrTimeout, timeout)
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeoutCause(ctx, timeout, timedOut)
		defer cancel()
	}
	argv := make([]string, 0, len(c.Argv)+len(args))
	argv = append(append(argv, c.Argv...), args...)
	cmd := exec.CommandContext(runCtx, argv[0], argv[1:]...)
	if c.name != "" {
		cmd.Args[0] = c.name
	}
	cmd.Env = append([]string{"PATH=" + Path}, env...)
	cmd.Dir = "/"
	var out capture
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: c.cred}
	var killed atomic.Bool
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		killed.Store(err == nil)
		return err
	}
	cmd.WaitDelay = waitDelay

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Result{Exit: -1, Duration: time.Since(start), Err: fmt.Errorf("could not start %s: %w", argv[0], err)}
	}
	err := cmd.Wait()
	r := Result{Exit: cmd.ProcessState.ExitCode(), Duration: time.Since(start), Output: out.String()}
	var exitErr *exec.ExitError
	switch {
	case killed.Load():
		r.Exit = -1
		if cause := context.Cause(runCtx); timedOut != nil && cause == timedOut {
			r.Err = timedOut
		} else {
			r.Err = fmt.Errorf("killed: %w", cause)
		}
	case errors.As(err, &exitErr):
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.Err = fmt.Errorf("killed by signal %d (%s)", int(ws.Signal()), ws.Signal())
		}
	case err == nil, errors.Is(err, exec.ErrWaitDelay):
		// It ran to its end. (With ErrWaitDelay, a process it left behind
		// kept the output open: the output was cut.)
	default:
		r.Err = err
	}
	return r
}

// capture keeps the first MaxBytes bytes written to it and discards the
// rest.
type capture struct {
	buf  []byte
	more bool // bytes were discarded
}

func (c *capture) Write(p []byte) (int, error) {
	room := MaxBytes - len(c.buf)
	if len(p) > room {
		c.more = true
		c.buf = append(c.buf, p[:room]...)
	} else {
		c.buf = append(c.buf, p...)
	}
	return len(p), nil
}

// String returns the kept output: at most MaxLines lines, valid UTF-8,
// without trailing newlines.
func (c *capture) String() string {
	b := c.buf
	if c.more {
		// Drop a character cut in its middle.
		for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
			if utf8.RuneStart(b[i]) {
				if !utf8.FullRune(b[i:]) {
					b = b[:i]
				}
				break
			}
		}
	}
	n, cut := 0, -1
	for i, ch := range b {
		if ch == '\n' {
			if n++; n == MaxLines {
				cut = i
				break
			}
		}
	}
	if cut >= 0 {
		b = b[:cut]
	}
	s := strings.TrimRight(string(bytes.ToValidUTF8(b, []byte("\uFFFD"))), "\r\n")
	for len(s) > MaxBytes { // replacement characters can make it longer
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// isShell reports whether path is a POSIX shell (sh, bash, dash).
func isShell(path string) bool {
	switch filepath.Base(path) {
	case "sh", "bash", "dash":
		return true
	}
	return false
}

// shellPrograms returns the absolute paths a shell command line runs as
// commands: the first word of the line and of every part after ; & | ( )
// or a newline, and after keywords such as then, do, else, !.
func shellPrograms(line string) []string {
	var out []string
	atCommand := true
	word := strings.Builder{}
	flush := func() {
		w := word.String()
		word.Reset()
		if w == "" {
			return
		}
		switch {
		case atCommand && strings.HasPrefix(w, "/"):
			out = append(out, w)
			atCommand = false
		case atCommand && (w == "then" || w == "do" || w == "else" || w == "elif" || w == "if" || w == "while" ||
			w == "until" || w == "!" || w == "exec" || w == "{" || w == "time"):
			// still at a command position
		case atCommand && strings.Contains(w, "=") && !strings.HasPrefix(w, "="):
			// VAR=value before the command
		default:
			atCommand = false
		}
	}
	for _, r := range line {
		switch r {
		case ' ', '\t':
			flush()
		case ';', '&', '|', '(', ')', '\n', '`':
			flush()
			atCommand = true
		default:
			word.WriteRune(r)
		}
	}
	flush()
	return out
}
