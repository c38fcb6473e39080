// Package vm boots Debian's kernel under qemu (software emulation) with the
// host's root file system mounted read-only under a tmpfs overlay, and runs
// a shell script in it: the host's programs (keepalived, ipvsadm, iproute2,
// test binaries built on the host) run on a kernel that has what this
// machine's lacks, IPVS first.
//
// Prepare downloads the kernel package that linux-image-amd64 depends on,
// extracts it under a cache directory, indexes its modules (depmod) and
// builds a busybox initramfs; the next Prepare finds them there. Run boots
// that kernel, runs the script as root with the share directory mounted
// read-write at its own path (the way results come back), streams the
// script's output, and returns its exit status. KVM is not used: it does
// not work on the machines this runs on (TCG: a boot takes 3-11 s).
package vm

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Image is a prepared kernel: its files in the cache.
type Image struct {
	// Version is the kernel's release (uname -r), e.g. 6.1.0-57-amd64.
	Version string
	// Kernel is the vmlinuz; Initrd the initramfs; Modules the directory
	// of its modules (lib/modules/VERSION), depmod'ed.
	Kernel, Initrd, Modules string
}

// tools are the host programs Prepare and Run need, with the Debian
// package of each: the error for a missing one names it.
var tools = []struct{ path, pkg string }{
	{"/usr/bin/qemu-system-x86_64", "qemu-system-x86"},
	{"/bin/busybox", "busybox-static"},
	{"/usr/sbin/depmod", "kmod"},
	{"/usr/bin/apt-get", "apt"},
	{"/usr/bin/dpkg-deb", "dpkg"},
}

// CheckTools reports the missing programs, naming their packages.
func CheckTools() error {
	var missing, pkgs []string
	for _, t := range tools {
		if _, err := os.Stat(t.path); err != nil {
			missing = append(missing, t.path)
			pkgs = append(pkgs, t.pkg)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the VM needs %s: apt-get install --no-install-recommends %s",
			strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	if err := staticBinary("/bin/busybox"); err != nil {
		return fmt.Errorf("/bin/busybox: %w: the initramfs needs the static one (apt-get install busybox-static)", err)
	}
	return nil
}

// staticBinary fails when path is dynamically linked.
func staticBinary(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("dynamically linked")
		}
	}
	return nil
}

// Prepare returns the image cached in dir, first making it when it is not
// there: version "" takes the kernel that Debian's linux-image-amd64
// depends on, or, offline, the newest already in dir. logf reports the
// slow steps.
func Prepare(ctx context.Context, dir, version string, logf func(format string, args ...any)) (*Image, error) {
	if err := CheckTools(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if version == "" {
		version, err = currentKernel(ctx)
		if err != nil {
			cached := cachedKernels(dir)
			if len(cached) == 0 {
				return nil, err
			}
			version = cached[len(cached)-1]
			logf("%v; using the cached kernel %s", err, version)
		}
	}
	root := filepath.Join(dir, version)
	im := &Image{
		Version: version,
		Kernel:  filepath.Join(root, "boot", "vmlinuz-"+version),
		Modules: filepath.Join(root, "lib", "modules", version),
	}
	if _, err := os.Stat(filepath.Join(root, ".complete")); err != nil {
		if err := fetchKernel(ctx, dir, version, logf); err != nil {
			return nil, err
		}
	}
	files, err := initramfsFiles("/bin/busybox", im.Modules)
	if err != nil {
		return nil, fmt.Errorf("the initramfs: %w", err)
	}
	im.Initrd = filepath.Join(root, "initrd-"+filesHash(files)+".gz")
	if _, err := os.Stat(im.Initrd); err == nil {
		return im, nil
	}
	tmp := im.Initrd + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return nil, err
	}
	err = writeCPIO(f, files)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, im.Initrd)
	}
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("writing the initramfs: %w", err)
	}
	return im, nil
}

var kernelPkg = regexp.MustCompile(`Depends: linux-image-([0-9][^\s]*-amd64)\b`)

// currentKernel is the release linux-image-amd64 depends on.
func currentKernel(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", "linux-image-amd64").CombinedOutput()
	if m := kernelPkg.FindSubmatch(out); err == nil && m != nil {
		return string(m[1]), nil
	}
	return "", fmt.Errorf("which kernel linux-image-amd64 depends on: apt-cache depends linux-image-amd64: %v %s (run apt-get update?)", err, bytes.TrimSpace(out))
}

// cachedKernels are the complete kernels in dir, oldest name first.
func cachedKernels(dir string) []string {
	ms, _ := filepath.Glob(filepath.Join(dir, "*", ".complete"))
	var out []string
	for _, m := range ms {
		out = append(out, filepath.Base(filepath.Dir(m)))
	}
	return out
}

// fetchKernel downloads linux-image-VERSION, extracts it to dir/VERSION and
// indexes its modules. The package is deleted once extracted (70 MB;
// what stays is about 400 MB).
func fetchKernel(ctx context.Context, dir, version string, logf func(string, ...any)) error {
	pkg := "linux-image-" + version
	logf("downloading %s (apt-get download)", pkg)
	dl := filepath.Join(dir, "download")
	if err := os.RemoveAll(dl); err != nil {
		return err
	}
	if err := os.MkdirAll(dl, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dl)
	cmd := exec.CommandContext(ctx, "apt-get", "download", pkg)
	cmd.Dir = dl
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get download %s: %v: %s (run apt-get update first?)", pkg, err, lastLines(out, 5))
	}
	debs, _ := filepath.Glob(filepath.Join(dl, pkg+"_*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("apt-get download %s: expected one .deb, found %v", pkg, debs)
	}
	root := filepath.Join(dir, version)
	tmp := root + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	logf("extracting %s", filepath.Base(debs[0]))
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], tmp).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg-deb -x %s: %v: %s", debs[0], err, lastLines(out, 5))
	}
	if out, err := exec.CommandContext(ctx, "depmod", "-b", tmp, version).CombinedOutput(); err != nil {
		return fmt.Errorf("depmod -b %s %s: %v: %s", tmp, version, err, lastLines(out, 5))
	}
	if err := os.RemoveAll(root); err != nil {
		return err
	}
	if err := os.Rename(tmp, root); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, ".complete"), []byte(pkg+"\n"), 0o644)
}

// Options are a run's settings.
type Options struct {
	// Share is a host directory mounted read-write at the same path in the
	// VM; the script runs there (from Share/run.sh). Required.
	Share string
	// Script is the shell script (sh) to run, as root, in the host's file
	// system (read-only under a tmpfs overlay: writes stay in the VM but
	// for Share's).
	Script string
	// Output receives the script's output (stdout and stderr) as it runs.
	Output io.Writer
	// Timeout bounds the whole run, boot included (default 20 minutes).
	Timeout time.Duration
	// CPUs and MemoryMB size the VM (default 2 and 2048).
	CPUs, MemoryMB int
}

// ErrTimeout is wrapped when the VM did not finish in time.
var ErrTimeout = errors.New("the VM did not finish in time")

// Run boots im, runs o.Script in it and returns the script's exit status.
// An error means the VM itself failed (no status): the error carries the
// end of its console.
func (im *Image) Run(ctx context.Context, o Options) (int, error) {
	if o.Share == "" {
		return -1, errors.New("vm: no share directory")
	}
	share, err := filepath.Abs(o.Share)
	if err != nil {
		return -1, err
	}
	if strings.ContainsAny(share, " \t\n") {
		return -1, fmt.Errorf("vm: the share %q has white space in its path (the kernel command line cannot carry it)", share)
	}
	if o.Timeout <= 0 {
		o.Timeout = 20 * time.Minute
	}
	if o.CPUs <= 0 {
		o.CPUs = 2
	}
	if o.MemoryMB <= 0 {
		o.MemoryMB = 2048
	}
	if o.Output == nil {
		o.Output = io.Discard
	}
	if err := os.MkdirAll(share, 0o755); err != nil {
		return -1, err
	}
	rcFile := filepath.Join(share, "rc")
	os.Remove(rcFile)
	if err := os.WriteFile(filepath.Join(share, "run.sh"), []byte(o.Script), 0o755); err != nil {
		return -1, err
	}
	console := filepath.Join(share, "console.log")
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	args := []string{
		"-accel", "tcg", "-cpu", "max", "-smp", fmt.Sprint(o.CPUs), "-m", fmt.Sprint(o.MemoryMB),
		"-nodefaults", "-no-reboot", "-display", "none", "-monitor", "none",
		"-serial", "file:" + console, // ttyS0: the kernel's console
		"-serial", "stdio", // ttyS1: the script's output
		"-kernel", im.Kernel, "-initrd", im.Initrd,
		"-append", fmt.Sprintf("console=ttyS0 quiet loglevel=3 panic=-1 haa.share=%s haa.modules=%s", share, im.Modules),
		"-virtfs", "local,path=/,mount_tag=host,readonly=on,security_model=none,multidevs=remap",
		"-virtfs", "local,path=" + share + ",mount_tag=share,security_model=none,multidevs=remap",
	}
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	cmd.Stdout = o.Output
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	tail := func() string {
		b, _ := os.ReadFile(console)
		return lastLines(b, 15)
	}
	if ctx.Err() != nil && context.Cause(ctx) == context.DeadlineExceeded {
		return -1, fmt.Errorf("%w: killed after %v; its console ends:\n%s", ErrTimeout, o.Timeout, tail())
	}
	if err != nil {
		return -1, fmt.Errorf("qemu: %v: %s; the console ends:\n%s", err, lastLines(stderr.Bytes(), 5), tail())
	}
	b, err := os.ReadFile(rcFile)
	if err != nil {
		return -1, fmt.Errorf("the VM stopped before the script ended (no exit status); its console ends:\n%s", tail())
	}
	var rc int
	if _, err := fmt.Sscan(string(b), &rc); err != nil {
		return -1, fmt.Errorf("the script's exit status %q: %v", b, err)
	}
	return rc, nil
}

// lastLines is the end of out, n lines at most, carriage returns removed.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(out), "\r", ""), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
