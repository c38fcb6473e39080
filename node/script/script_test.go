package script

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// secureDir returns a fresh directory that Secure accepts for haad's own
// user (skipping the test when the temporary directory's ancestors are not
// secure on this machine).
func secureDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := Secure(d, os.Geteuid()); err != nil {
		t.Skipf("temporary directory not secure here: %v", err)
	}
	return d
}

// writeFile writes a file and sets its mode exactly (no umask).
func writeFile(t *testing.T, path, body string, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	chmod(t, path, mode)
	return path
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// nonRootGroup gives path a group other than root (gid 4242 when the test
// runs as root), skipping when that is impossible.
func nonRootGroup(t *testing.T, path string) int {
	t.Helper()
	if os.Geteuid() == 0 {
		if err := os.Lchown(path, -1, 4242); err != nil {
			t.Fatal(err)
		}
		return 4242
	}
	if os.Getegid() == 0 {
		t.Skip("needs root or a primary group other than root")
	}
	return os.Getegid()
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not contain %q", err, p)
		}
	}
}

const okScript = "#!/bin/sh\nexit 0\n"

func TestResolveFound(t *testing.T) {
	d := secureDir(t)
	p := writeFile(t, filepath.Join(d, "chk.sh"), okScript, 0o755)
	c, err := Resolve([]string{p, "a", "b"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Argv, " "); got != p+" a b" {
		t.Errorf("Argv = %q, want %q", got, p+" a b")
	}
	if c.User != "" || c.cred != nil {
		t.Errorf("User %q cred %v, want none", c.User, c.cred)
	}
	// A root-owned group-writable file is fine when the group is root.
	if os.Getegid() == 0 {
		chmod(t, p, 0o775)
		if _, err := Resolve([]string{p}, ""); err != nil {
			t.Errorf("group root may write: %v", err)
		}
	}
}

func TestResolveSymlink(t *testing.T) {
	d := secureDir(t)
	target := writeFile(t, filepath.Join(d, "real.sh"), okScript, 0o755)
	link := filepath.Join(d, "link.sh")
	if err := os.Symlink("real.sh", link); err != nil {
		t.Fatal(err)
	}
	c, err := Resolve([]string{link}, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Argv[0] != target {
		t.Errorf("Argv[0] = %q, want the target %q", c.Argv[0], target)
	}

	bad := writeFile(t, filepath.Join(d, "bad.sh"), okScript, 0o757)
	badLink := filepath.Join(d, "badlink.sh")
	if err := os.Symlink(bad, badLink); err != nil {
		t.Fatal(err)
	}
	_, err = Resolve([]string{badLink}, "")
	wantErr(t, err, bad+" is writable by everyone (mode 0757): run chmod o-w "+bad, "resolves to")
}

func TestResolveNotFound(t *testing.T) {
	d := secureDir(t)
	_, err := Resolve([]string{filepath.Join(d, "missing.sh")}, "")
	wantErr(t, err, "program "+filepath.Join(d, "missing.sh")+" does not exist")

	_, err = Resolve(nil, "")
	wantErr(t, err, "no program")
	_, err = Resolve([]string{""}, "")
	wantErr(t, err, "no program")
	_, err = Resolve([]string{"./chk.sh"}, "")
	wantErr(t, err, `program path "./chk.sh" is relative: give its absolute path`)
}

func TestResolvePATH(t *testing.T) {
	d := secureDir(t)
	p := writeFile(t, filepath.Join(d, "haa-chk"), okScript, 0o755)
	t.Setenv("PATH", d)
	c, err := Resolve([]string{"haa-chk", "x"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Argv[0] != p || c.Argv[1] != "x" {
		t.Errorf("Argv = %q, want [%s x]", c.Argv, p)
	}
	_, err = Resolve([]string{"haa-nonesuch"}, "")
	wantErr(t, err, fmt.Sprintf(`program "haa-nonesuch" not found in PATH (%s): give its absolute path`, d))
}

func TestResolveNotAProgram(t *testing.T) {
	d := secureDir(t)
	_, err := Resolve([]string{d}, "")
	wantErr(t, err, d+" is a directory, not a program")

	p := writeFile(t, filepath.Join(d, "data"), okScript, 0o644)
	_, err = Resolve([]string{p}, "")
	wantErr(t, err, p+" is not executable (mode 0644): run chmod +x "+p)

	if _, err := Resolve([]string{"/dev/null"}, ""); err == nil {
		t.Error("/dev/null accepted as a program")
	}
}

func TestResolveInsecureFile(t *testing.T) {
	d := secureDir(t)
	for _, tc := range []struct {
		mode       os.FileMode
		otherGroup bool
		want       string // "" = accepted
	}{
		{0o755, false, ""},
		{0o700, false, ""},
		{0o757, false, "is writable by everyone (mode 0757): run chmod o-w "},
		{0o777, false, "is writable by everyone (mode 0777): run chmod o-w "},
		{0o775, true, "is writable by group %d (mode 0775): run chmod g-w "},
		{0o777, true, "is writable by group %d and by everyone (mode 0777): run chmod go-w "},
		{0o755, true, ""},
	} {
		name := fmt.Sprintf("%04o-group-%v", tc.mode, tc.otherGroup)
		t.Run(name, func(t *testing.T) {
			p := writeFile(t, filepath.Join(d, name), okScript, 0o755)
			gid := 0
			if tc.otherGroup {
				gid = nonRootGroup(t, p)
			} else if os.Getegid() != 0 && tc.mode&0o020 != 0 {
				t.Skip("needs files created with group root")
			}
			want := tc.want
			if strings.Contains(want, "%d") {
				want = fmt.Sprintf(want, gid)
			}
			chmod(t, p, tc.mode)
			_, err := Resolve([]string{p}, "")
			if want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, p+" "+want+p)
		})
	}
}

func TestResolveInsecureDir(t *testing.T) {
	d := secureDir(t)
	open := filepath.Join(d, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	chmod(t, open, 0o777)
	p := writeFile(t, filepath.Join(open, "chk.sh"), okScript, 0o755)
	_, err := Resolve([]string{p}, "")
	wantErr(t, err, open+" is writable by everyone (mode 0777): run chmod o-w "+open)

	chmod(t, open, 0o775)
	gid := nonRootGroup(t, open)
	_, err = Resolve([]string{p}, "")
	wantErr(t, err, fmt.Sprintf("%s is writable by group %d (mode 0775): run chmod g-w %s", open, gid, open))

	// A sticky directory writable by everyone (like /tmp) is accepted.
	chmod(t, open, os.ModeSticky|0o777)
	if _, err := Resolve([]string{p}, ""); err != nil {
		t.Errorf("sticky directory refused: %v", err)
	}
}

func TestSecureOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files away")
	}
	d := secureDir(t)
	p := writeFile(t, filepath.Join(d, "chk.sh"), okScript, 0o755)
	if err := os.Chown(p, 4242, -1); err != nil {
		t.Fatal(err)
	}
	wantErr(t, Secure(p, 0), p+" is owned by uid 4242, not by root: run chown root "+p)
	if err := Secure(p, 4242); err != nil {
		t.Errorf("a file owned by the user it runs as: %v", err)
	}
	wantErr(t, Secure(p, 4243), "owned by uid 4242, not by root or uid 4243")
	if err := Secure(filepath.Join(d, "missing"), 0); err == nil {
		t.Error("missing file accepted")
	}
}

func TestResolveUser(t *testing.T) {
	_, err := Resolve([]string{"/bin/sh"}, "haa-no-such-user")
	wantErr(t, err, `no user "haa-no-such-user" on this node`)
	_, err = Resolve([]string{"/bin/sh"}, ":x")
	wantErr(t, err, `write "name" or "name:group"`)
	_, err = Resolve([]string{"/bin/sh"}, "nobody:")
	wantErr(t, err, `write "name" or "name:group"`)

	if os.Geteuid() != 0 {
		t.Skip("running as other users needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody here")
	}
	_, err = Resolve([]string{"/bin/sh"}, "nobody:haa-no-such-group")
	wantErr(t, err, `no group "haa-no-such-group" on this node`)
	_, err = Resolve([]string{"/bin/sh"}, "54321")
	wantErr(t, err, `uid 54321 has no entry`, `"54321:GROUP"`)

	c, err := Resolve([]string{"/bin/sh"}, "54321:54322")
	if err != nil {
		t.Fatal(err)
	}
	if c.cred.Uid != 54321 || c.cred.Gid != 54322 {
		t.Errorf("cred = %+v, want uid 54321 gid 54322", c.cred)
	}
	c, err = Resolve([]string{"/bin/sh"}, "nobody")
	if err != nil {
		t.Fatal(err)
	}
	if strconv.Itoa(int(c.cred.Uid)) != nobody.Uid || strconv.Itoa(int(c.cred.Gid)) != nobody.Gid || c.User != "nobody" {
		t.Errorf("cred = %+v, want nobody's ids %s:%s", c.cred, nobody.Uid, nobody.Gid)
	}

	// A program the user may not execute.
	d := secureDir(t)
	p := writeFile(t, filepath.Join(d, "private.sh"), okScript, 0o700)
	_, err = Resolve([]string{p}, "nobody")
	wantErr(t, err, "is not executable by user nobody", "run chmod +x "+p)
}

// resolve is Resolve failing the test on error.
func resolve(t *testing.T, user string, argv ...string) *Command {
	t.Helper()
	c, err := Resolve(argv, user)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sh(t *testing.T, script string) *Command {
	return resolve(t, "", "/bin/sh", "-c", script, "sh")
}

func TestRunExit(t *testing.T) {
	for _, tc := range []struct {
		script string
		exit   int
		err    string
	}{
		{"exit 0", 0, ""},
		{"exit 3", 3, ""},
		{"false", 1, ""},
		{"kill -9 $$", -1, "killed by signal 9"},
	} {
		r := sh(t, tc.script).Run(t.Context(), 10*time.Second, nil, nil)
		if r.Exit != tc.exit {
			t.Errorf("%s: exit %d, want %d (%v)", tc.script, r.Exit, tc.exit, r.Err)
		}
		if tc.err == "" && r.Err != nil || tc.err != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), tc.err)) {
			t.Errorf("%s: err %v, want %q", tc.script, r.Err, tc.err)
		}
		if r.Duration <= 0 {
			t.Errorf("%s: duration %v", tc.script, r.Duration)
		}
	}
}

func TestRunOutput(t *testing.T) {
	for _, tc := range []struct {
		name, script, want string
	}{
		{"lines", `for i in 1 2 3 4 5 6 7; do echo line$i; done`, "line1\nline2\nline3\nline4\nline5"},
		{"few", `echo a; echo b`, "a\nb"},
		{"stderr", `echo out; echo err >&2; echo out2`, "out\nerr\nout2"},
		{"bytes", `i=0; while [ $i -lt 300 ]; do printf 0123456789; i=$((i+1)); done`, strings.Repeat("0123456789", 103)[:MaxBytes]},
		{"cut rune", `i=0; while [ $i -lt 1023 ]; do printf a; i=$((i+1)); done; printf 'éé'`, strings.Repeat("a", 1023)},
		{"invalid", `printf 'a\377b'`, "a\uFFFDb"},
		{"none", `true`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := sh(t, tc.script).Run(t.Context(), 10*time.Second, nil, nil)
			if r.Err != nil || r.Exit != 0 {
				t.Fatalf("exit %d err %v", r.Exit, r.Err)
			}
			if r.Output != tc.want {
				t.Errorf("output %q, want %q", r.Output, tc.want)
			}
		})
	}
}

// TestRunFlood checks that a program writing far more than MaxBytes is not
// blocked: the rest is read and discarded.
func TestRunFlood(t *testing.T) {
	r := resolve(t, "", "/bin/sh", "-c", "head -c 20000000 /dev/zero; echo done >&2").Run(t.Context(), 20*time.Second, nil, nil)
	if r.Err != nil || r.Exit != 0 {
		t.Fatalf("exit %d err %v", r.Exit, r.Err)
	}
	if len(r.Output) != MaxBytes {
		t.Errorf("output %d bytes, want %d", len(r.Output), MaxBytes)
	}
}

func TestRunArgsEnv(t *testing.T) {
	c := sh(t, `echo "$1|$2|$FOO|$PATH|$HOME|$(pwd)"`)
	r := c.Run(t.Context(), 10*time.Second, []string{"a b", "c"}, []string{"FOO=bar"})
	if want := "a b|c|bar|" + Path + "||/"; r.Output != want || r.Err != nil {
		t.Errorf("output %q err %v, want %q", r.Output, r.Err, want)
	}
	if len(c.Argv) != 4 {
		t.Errorf("Run changed Argv: %q", c.Argv)
	}

	// The program sees the name it was configured with as argv[0], even
	// though the resolved file runs.
	t.Setenv("PATH", "/usr/bin:/bin")
	c = resolve(t, "", "cat", "/proc/self/cmdline")
	r = c.Run(t.Context(), 10*time.Second, nil, nil)
	if !strings.HasPrefix(r.Output, "cat\x00/proc/self/cmdline") {
		t.Errorf("cmdline %q, want cat as argv[0]", r.Output)
	}
}

func TestRunNotStarted(t *testing.T) {
	d := secureDir(t)
	p := writeFile(t, filepath.Join(d, "gone.sh"), okScript, 0o755)
	c := resolve(t, "", p)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	r := c.Run(t.Context(), 10*time.Second, nil, nil)
	if r.Exit != -1 || r.Err == nil || !strings.Contains(r.Err.Error(), "could not start "+p) {
		t.Errorf("exit %d err %v, want -1 and a start error", r.Exit, r.Err)
	}
	if r := (&Command{}).Run(t.Context(), time.Second, nil, nil); r.Exit != -1 || r.Err == nil {
		t.Errorf("empty command: exit %d err %v", r.Exit, r.Err)
	}
}

// readPID waits for a file holding a pid.
func readPID(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if pid, err2 := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && err2 == nil && pid > 0 {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// killOnCleanup kills pid at the end of the test if it is still there.
func killOnCleanup(t *testing.T, pid int) {
	t.Cleanup(func() {
		if alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// alive reports whether pid is a live process (not gone, not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	state := s[i+2]
	return state != 'Z' && state != 'X'
}

// waitDead waits until pid is no longer alive.
func waitDead(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still runs", what, pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunTimeoutKillsGroup(t *testing.T) {
	d := secureDir(t)
	pidFile := filepath.Join(d, "pids")
	// The shell starts a background sleep (its child), records both pids,
	// then runs a sleep of its own.
	c := sh(t, `sleep 60 & echo $! > "$1.child"; echo $$ > "$1"; wait`)
	start := time.Now()
	r := c.Run(t.Context(), 2*time.Second, []string{pidFile}, nil)
	took := time.Since(start)
	child, self := readPID(t, pidFile+".child"), readPID(t, pidFile)
	killOnCleanup(t, child)
	killOnCleanup(t, self)
	if !errors.Is(r.Err, ErrTimeout) || r.Exit != -1 {
		t.Fatalf("exit %d err %v, want -1 and ErrTimeout", r.Exit, r.Err)
	}
	if want := "timed out after 2s"; r.Err.Error() != want {
		t.Errorf("err %q, want %q", r.Err, want)
	}
	if took < 2*time.Second || took > 12*time.Second {
		t.Errorf("Run took %v for a 2s timeout", took)
	}
	waitDead(t, self, "the shell")
	waitDead(t, child, "the shell's sleep")
}

func TestRunCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(300*time.Millisecond, cancel)
	r := sh(t, "exec sleep 60").Run(ctx, time.Minute, nil, nil)
	if r.Exit != -1 || !errors.Is(r.Err, context.Canceled) || errors.Is(r.Err, ErrTimeout) {
		t.Errorf("exit %d err %v, want -1 and context.Canceled", r.Exit, r.Err)
	}
	if r.Duration > 10*time.Second {
		t.Errorf("took %v", r.Duration)
	}

	r = sh(t, "exit 0").Run(ctx, time.Minute, nil, nil) // ctx already done
	if r.Exit != -1 || r.Err == nil {
		t.Errorf("canceled ctx: exit %d err %v", r.Exit, r.Err)
	}
}

// TestRunEscapedHolder checks that Run returns soon after the program
// exits even when a process that left its group keeps the output open.
func TestRunEscapedHolder(t *testing.T) {
	if _, err := os.Stat("/usr/bin/setsid"); err != nil {
		t.Skip("no setsid here")
	}
	d := secureDir(t)
	pidFile := filepath.Join(d, "pid")
	c := sh(t, `setsid sh -c 'echo $$ > "$1"; exec sleep 60' sh "$1" & echo started`)
	start := time.Now()
	r := c.Run(t.Context(), time.Minute, []string{pidFile}, nil)
	took := time.Since(start)
	pid := readPID(t, pidFile)
	killOnCleanup(t, pid)
	if r.Exit != 0 || r.Err != nil {
		t.Errorf("exit %d err %v, want 0 and no error", r.Exit, r.Err)
	}
	if r.Output != "started" {
		t.Errorf("output %q", r.Output)
	}
	if took > 15*time.Second {
		t.Errorf("Run took %v", took)
	}
}

func TestRunAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running as another user needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody here")
	}
	r := resolve(t, "nobody", "/usr/bin/id", "-u").Run(t.Context(), 10*time.Second, nil, nil)
	if r.Err != nil || r.Exit != 0 || r.Output != nobody.Uid {
		t.Errorf("id -u: %q exit %d err %v, want %s", r.Output, r.Exit, r.Err, nobody.Uid)
	}
	r = resolve(t, "nobody", "/usr/bin/id", "-G").Run(t.Context(), 10*time.Second, nil, nil)
	for _, g := range strings.Fields(r.Output) {
		if g == "0" {
			t.Errorf("id -G %q: still in group root", r.Output)
		}
	}
	g, err := user.LookupGroupId(nobody.Gid)
	if err != nil {
		t.Skipf("nobody's group: %v", err)
	}
	r = resolve(t, "nobody:"+g.Name, "/usr/bin/id", "-g").Run(t.Context(), 10*time.Second, nil, nil)
	if r.Err != nil || r.Output != g.Gid {
		t.Errorf("id -g: %q err %v, want %s", r.Output, r.Err, g.Gid)
	}
	r = resolve(t, "root", "/usr/bin/id", "-u").Run(t.Context(), 10*time.Second, nil, nil)
	if r.Output != "0" {
		t.Errorf("as root: id -u %q", r.Output)
	}
}

// TestUserNeedsCapabilities: under systemd's two capabilities (the unit
// grants CAP_NET_ADMIN and CAP_NET_RAW only), a command with a user is
// refused when the configuration is resolved, with what to add, instead
// of failing at every run.
func TestUserNeedsCapabilities(t *testing.T) {
	if os.Getenv("HAA_CAPTEST") == "1" {
		_, err := Resolve([]string{"/bin/true"}, "nobody")
		fmt.Println("RESULT:", err)
		return
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and setpriv (util-linux)")
	}
	cmd := exec.Command(setpriv, "--bounding-set=-all,+net_admin,+net_raw", os.Args[0], "-test.run=^TestUserNeedsCapabilities$", "-test.v")
	cmd.Env = append(os.Environ(), "HAA_CAPTEST=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), "RESULT: running commands as user \"nobody\" needs CAP_SETUID, CAP_SETGID, CAP_KILL") {
		t.Errorf("with two capabilities: %s", out)
	}
	if _, err := Resolve([]string{"/bin/true"}, "nobody"); err != nil {
		t.Errorf("as root with every capability: %v", err)
	}
}

func TestShellPrograms(t *testing.T) {
	for line, want := range map[string][]string{
		"/etc/keepalived/check.sh; true":                           {"/etc/keepalived/check.sh"},
		"killall -0 nginx && exit 0 || exit 1":                     nil,
		"[[ -f /etc/keepalived/down ]] && exit 1 || /usr/bin/x -v": {"/usr/bin/x"},
		"if /bin/a; then /bin/b /bin/notrun; fi":                   {"/bin/a", "/bin/b"},
		"FOO=1 /opt/run.sh >/tmp/log 2>&1 | /usr/bin/logger":       {"/opt/run.sh", "/usr/bin/logger"},
	} {
		if got := shellPrograms(line); !slices.Equal(got, want) {
			t.Errorf("shellPrograms(%q) = %q, want %q", line, got, want)
		}
	}
}

// TestShellLineSecurity: a program named in a shell command line must be
// as safe as one run directly (keepalived's enable_script_security).
func TestShellLineSecurity(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the unsafe script is owned by another user")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	evil := filepath.Join(dir, "evil.sh")
	if err := os.WriteFile(evil, []byte("#!/bin/sh\nexit 0\n"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(evil, 0o777); err != nil { // writable by anyone
		t.Fatal(err)
	}
	if _, err := Resolve([]string{"/bin/sh", "-c", evil + "; true"}, ""); err == nil || !strings.Contains(err.Error(), "shell command line") {
		t.Errorf("a world-writable script in a shell line: %v, want refused", err)
	}
	if err := os.Chmod(evil, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve([]string{"/bin/sh", "-c", evil + "; true"}, ""); err != nil {
		t.Errorf("a safe script in a shell line: %v", err)
	}
}
