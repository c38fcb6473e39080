// Package packaging holds the tests of the Debian package (nfpm.yaml, built
// by make deb) and of the systemd files it installs.
package packaging

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// root is the module's root, from this package's directory.
const root = "../.."

// unit parses a systemd unit file: the values of each key, by section.
func unit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: %q is not KEY=value in a section", path, line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The unit: Type=notify, only CAP_NET_ADMIN and CAP_NET_RAW, and the paths
// haad writes to writable.
func TestUnitFile(t *testing.T) {
	u := unit(t, filepath.Join(root, "deploy/systemd/haad.service"))
	svc := u["Service"]
	one := func(key, want string) {
		t.Helper()
		if got := svc[key]; len(got) != 1 || got[0] != want {
			t.Errorf("%s=%q, want exactly %q", key, got, want)
		}
	}
	one("Type", "notify")
	one("ExecStart", "/usr/sbin/haad --config /etc/haa/haad.yaml")
	one("ExecReload", "/bin/kill -HUP $MAINPID")
	one("Restart", "on-failure")
	one("NoNewPrivileges", "yes")
	one("ProtectSystem", "strict")
	one("StateDirectory", "haa")
	if len(svc["RestartSec"]) != 1 {
		t.Errorf("RestartSec=%q, want one", svc["RestartSec"])
	}
	for _, key := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		var caps []string
		for _, v := range svc[key] {
			caps = append(caps, strings.Fields(v)...)
		}
		slices.Sort(caps)
		if !slices.Equal(caps, []string{"CAP_NET_ADMIN", "CAP_NET_RAW"}) {
			t.Errorf("%s: %q, want only CAP_NET_ADMIN and CAP_NET_RAW", key, caps)
		}
	}
	for _, key := range []string{"User", "DynamicUser", "RuntimeDirectory", "PermissionsStartOnly"} {
		if v, ok := svc[key]; ok {
			t.Errorf("%s=%q: haad runs as root with two capabilities; /run/haa comes from tmpfiles.d", key, v)
		}
	}
	var rw []string
	for _, v := range svc["ReadWritePaths"] {
		rw = append(rw, strings.Fields(v)...)
	}
	for _, p := range []string{"/etc/haa", "/var/lib/haa", "/run/haa"} {
		if !slices.Contains(rw, p) {
			t.Errorf("ReadWritePaths %q lacks %s", rw, p)
		}
	}
	if got := u["Install"]["WantedBy"]; !slices.Equal(got, []string{"multi-user.target"}) {
		t.Errorf("WantedBy=%q", got)
	}

	b, err := os.ReadFile(filepath.Join(root, "deploy/systemd/haa.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var entries []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			entries = append(entries, strings.Join(strings.Fields(l), " "))
		}
	}
	if !slices.Equal(entries, []string{"d /run/haa 0750 root root -"}) {
		t.Errorf("tmpfiles entries %q, want the socket directory /run/haa", entries)
	}
}

// paths are what the package must hold.
var paths = []string{
	"/usr/sbin/haad",
	"/usr/bin/haactl",
	"/usr/lib/systemd/system/haad.service",
	"/usr/lib/tmpfiles.d/haa.conf",
	"/usr/share/haa/haad.yaml",
	"/usr/share/doc/haa/examples/haad.yaml",
	"/usr/share/doc/haa/examples/fleet.yaml",
	"/usr/share/bash-completion/completions/haactl",
	"/usr/share/zsh/vendor-completions/_haactl",
	"/usr/share/fish/vendor_completions.d/haactl.fish",
}

// make deb builds the package; its contents, fields and conffiles are as
// deploy/packaging/nfpm.yaml says, and what it installs works.
func TestDebianPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both binaries and the package (make deb): not with -short")
	}
	for _, tool := range []string{"make", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is missing (apt-get install %s)", tool, tool)
			}
			t.Skipf("%s is missing: the package is built on Debian", tool)
		}
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	start := time.Now()
	cmd := exec.CommandContext(t.Context(), "make", "-C", root, "deb", "VERSION=v1.2.3-4-gabcdef0",
		"DEB_BUILD="+filepath.Join(dir, "build"), "DEB_OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make deb: %v\n%s", err, b)
	}
	t.Logf("make deb took %v", time.Since(start).Round(time.Second))
	debs, err := filepath.Glob(filepath.Join(out, "*.deb"))
	if err != nil || len(debs) != 1 {
		t.Fatalf("packages in %s: %q, %v; want one", out, debs, err)
	}
	deb := debs[0]
	if want := "haa_1.2.3+4.gabcdef0_" + runtime.GOARCH + ".deb"; filepath.Base(deb) != want {
		t.Errorf("package %s, want %s", filepath.Base(deb), want)
	}
	dpkg := func(args ...string) string {
		t.Helper()
		b, err := exec.Command("dpkg-deb", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg-deb %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return string(b)
	}

	// Contents: every path, executables executable.
	listing := dpkg("-c", deb)
	t.Logf("dpkg-deb -c:\n%s", listing)
	modes := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(listing), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c line %q", l)
		}
		modes[strings.TrimPrefix(f[5], ".")] = f[0]
	}
	for _, p := range paths {
		mode, ok := modes[p]
		switch {
		case !ok:
			t.Errorf("the package lacks %s", p)
		case !strings.HasPrefix(mode, "-"):
			t.Errorf("%s is %s, want a regular file", p, mode)
		case strings.Contains(p, "bin/") && mode != "-rwxr-xr-x":
			t.Errorf("%s is %s, want -rwxr-xr-x", p, mode)
		}
	}

	// Fields.
	for field, want := range map[string]string{
		"Package": "haa", "Version": "1.2.3+4.gabcdef0", "Architecture": runtime.GOARCH,
		"Section": "net", "Priority": "optional",
	} {
		if got := strings.TrimSpace(dpkg("-f", deb, field)); got != want {
			t.Errorf("%s: %q, want %q", field, got, want)
		}
	}
	for _, field := range []string{"Maintainer", "Description", "Homepage"} {
		if strings.TrimSpace(dpkg("-f", deb, field)) == "" {
			t.Errorf("no %s", field)
		}
	}
	// No conffile: haactl apply rewrites /etc/haa/haad.yaml, which postinst
	// creates from the template only when it is missing.
	if out, err := exec.Command("dpkg-deb", "-I", deb, "conffiles").CombinedOutput(); err == nil && strings.TrimSpace(string(out)) != "" {
		t.Errorf("conffiles %q, want none", out)
	}
	if post := dpkg("-I", deb, "postinst"); !strings.Contains(post, "install -m 0640 /usr/share/haa/haad.yaml /etc/haa/haad.yaml") {
		t.Errorf("postinst does not create /etc/haa/haad.yaml from the template:\n%s", post)
	}
	info := dpkg("-I", deb)
	for _, script := range []string{"postinst", "prerm", "postrm"} {
		if !strings.Contains(info, " "+script+" ") {
			t.Errorf("no %s script:\n%s", script, info)
		}
	}

	// What it installs: the unit and examples as in the tree, completions
	// that name haactl, a haad that validates the packaged configuration.
	x := filepath.Join(dir, "x")
	dpkg("-x", deb, x)
	for pkg, src := range map[string]string{
		"usr/lib/systemd/system/haad.service":   "deploy/systemd/haad.service",
		"usr/lib/tmpfiles.d/haa.conf":           "deploy/systemd/haa.conf",
		"usr/share/haa/haad.yaml":               "deploy/examples/haad.yaml",
		"usr/share/doc/haa/examples/fleet.yaml": "deploy/examples/fleet.yaml",
	} {
		a, err1 := os.ReadFile(filepath.Join(x, pkg))
		b, err2 := os.ReadFile(filepath.Join(root, src))
		if err1 != nil || err2 != nil || string(a) != string(b) {
			t.Errorf("/%s differs from %s (%v, %v)", pkg, src, err1, err2)
		}
	}
	for _, c := range paths[len(paths)-3:] {
		b, err := os.ReadFile(filepath.Join(x, c))
		if err != nil || !strings.Contains(string(b), "haactl") || len(b) < 1000 {
			t.Errorf("%s: %d bytes, %v: not haactl's completion", c, len(b), err)
		}
	}
	check := exec.Command(filepath.Join(x, "usr/sbin/haad"), "--check", "--config", filepath.Join(x, "usr/share/haa/haad.yaml"))
	if b, err := check.CombinedOutput(); err != nil || !strings.Contains(string(b), "is valid") {
		t.Errorf("packaged haad --check of the packaged configuration: %v\n%s", err, b)
	}
	if b, err := exec.Command(filepath.Join(x, "usr/bin/haactl"), "log-level", "--help").CombinedOutput(); err != nil ||
		!strings.Contains(string(b), "haactl log-level") {
		t.Errorf("packaged haactl log-level --help: %v\n%s", err, b)
	}
}
