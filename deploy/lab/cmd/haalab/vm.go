package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/haa-dev/haa/deploy/lab/vm"
)

// vmOptions are the flags of haalab vm.
type vmOptions struct {
	dir, kernel, share, script string
	timeout                    time.Duration
	cpus, memory               int
	prepare                    bool
	env                        []string
	command                    []string
}

// errExit carries a command's exit status out of haalab vm.
type errExit int

func (e errExit) Error() string {
	return fmt.Sprintf("the command in the VM exited with status %d", int(e))
}

func parseVM(args []string, stderr io.Writer) (vmOptions, error) {
	fs := flag.NewFlagSet("vm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: haalab vm [flags] [--] COMMAND [ARG...]
       haalab vm --prepare

Boots Debian's kernel (the one linux-image-amd64 depends on, which has IPVS)
under qemu with this machine's root file system read-only under a tmpfs
overlay, and runs COMMAND there as root, in the current directory, with
--share mounted read-write at its own path. The kernel and an initramfs are
cached under --dir (the first run downloads the kernel: apt-get download).
COMMAND's output is printed as it runs; haalab exits with its status.

`)
		fs.PrintDefaults()
	}
	var o vmOptions
	fs.StringVar(&o.dir, "dir", ".build/vm", "cache of kernels and initramfs")
	fs.StringVar(&o.kernel, "kernel", "", "kernel release (default: what linux-image-amd64 depends on, else the newest cached)")
	fs.StringVar(&o.share, "share", "out/vm", "host directory mounted read-write in the VM at the same path")
	fs.StringVar(&o.script, "script", "", "a shell script to run instead of COMMAND")
	fs.DurationVar(&o.timeout, "timeout", 20*time.Minute, "bound on the whole run, boot included")
	fs.IntVar(&o.cpus, "cpus", 2, "virtual CPUs")
	fs.IntVar(&o.memory, "memory", 2048, "memory in MiB")
	fs.BoolVar(&o.prepare, "prepare", false, "only download and cache the kernel and build the initramfs")
	fs.Func("env", "NAME=VALUE to set in the VM (repeatable); HAA_* variables of haalab's own environment pass by themselves", func(s string) error {
		if !strings.Contains(s, "=") {
			return errors.New("want NAME=VALUE")
		}
		o.env = append(o.env, s)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, usageErrorf("vm: %v", err)
	}
	o.command = fs.Args()
	switch {
	case o.prepare && (len(o.command) > 0 || o.script != ""):
		return o, usageErrorf("vm: --prepare takes no command")
	case !o.prepare && len(o.command) == 0 && o.script == "":
		return o, usageErrorf("vm: give a COMMAND or --script FILE")
	case len(o.command) > 0 && o.script != "":
		return o, usageErrorf("vm: give a COMMAND or --script FILE, not both")
	case o.timeout < 10*time.Second || o.timeout > 3*time.Hour:
		return o, usageErrorf("vm: --timeout %v: use 10s..3h", o.timeout)
	case o.cpus < 1 || o.cpus > 16:
		return o, usageErrorf("vm: --cpus %d: use 1..16", o.cpus)
	case o.memory < 256 || o.memory > 16384:
		return o, usageErrorf("vm: --memory %d: use 256..16384 (MiB)", o.memory)
	}
	return o, nil
}

func runVM(s *session, args []string, stdout, stderr io.Writer) error {
	o, err := parseVM(args, stderr)
	if err != nil {
		return err
	}
	t0 := time.Now()
	im, err := vm.Prepare(s.ctx, o.dir, o.kernel, func(format string, args ...any) {
		fmt.Fprintf(stderr, "haalab vm: "+format+"\n", args...)
	})
	if err != nil {
		return err
	}
	if o.prepare {
		fmt.Fprintf(stdout, "kernel %s\ninitramfs %s\nmodules %s\n", im.Kernel, im.Initrd, im.Modules)
		return nil
	}
	script, err := vmScript(o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "haalab vm: booting %s (prepared in %v)\n", im.Version, time.Since(t0).Round(time.Millisecond))
	t1 := time.Now()
	rc, err := im.Run(s.ctx, vm.Options{Share: o.share, Script: script, Output: stdout, Timeout: o.timeout, CPUs: o.cpus, MemoryMB: o.memory})
	fmt.Fprintf(stderr, "haalab vm: the VM ran for %v\n", time.Since(t1).Round(time.Millisecond))
	if err != nil {
		return err
	}
	if rc != 0 {
		return errExit(rc)
	}
	return nil
}

// vmScript is the script the VM runs: the environment, the directory, and
// the command or the script file.
func vmScript(o vmOptions) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/go/bin HOME=/root HAA_IN_VM=1\n")
	env := o.env
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "HAA_") {
			env = append([]string{kv}, env...)
		}
	}
	for _, kv := range env {
		name, val, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "export %s=%s\n", name, shellQuote(val))
	}
	fmt.Fprintf(&b, "cd %s || exit 125\n", shellQuote(wd))
	if o.script != "" {
		text, err := os.ReadFile(o.script)
		if err != nil {
			return "", err
		}
		abs, _ := filepath.Abs(o.script)
		fmt.Fprintf(&b, "# %s\n%s\n", abs, text)
		return b.String(), nil
	}
	var q []string
	for _, a := range o.command {
		q = append(q, shellQuote(a))
	}
	b.WriteString("exec " + strings.Join(q, " ") + "\n")
	return b.String(), nil
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
