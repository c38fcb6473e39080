package vm

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// bootModules are what the initramfs loads to reach the host's root: the
// virtio PCI transport, 9p over virtio, and overlayfs. Their dependencies
// come from modules.dep.
var bootModules = []string{"virtio_pci", "9pnet_virtio", "9p", "overlay"}

// initScript is the initramfs's /init (busybox sh). It mounts the host's
// root read-only over 9p under a tmpfs overlay, the share read-write at
// its own path, binds the kernel's modules (extracted on the host under
// the cache) at /lib/modules, loads ip_vs (crc32c_generic first), and runs the share's run.sh in that root,
// its output on the second serial port; then it records the exit status
// in the share and powers off. Parameters come from the kernel command
// line (haa.share=, haa.modules=).
const initScript = `#!/bin/busybox sh
/bin/busybox mkdir -p /bin /proc /sys /dev /host /rw /newroot
/bin/busybox --install -s /bin
rm -f /bin/modprobe
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
fail() { echo "haa-vm: $*" > /dev/ttyS1; echo "haa-vm: $*"; poweroff -f; }
for a in $(cat /proc/cmdline); do
	case "$a" in
	haa.share=*) SHARE="${a#haa.share=}" ;;
	haa.modules=*) MODULES="${a#haa.modules=}" ;;
	esac
done
for m in $(cat /modules.list); do insmod "/mod/$m" || fail "insmod $m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose host /host || fail "mounting the host's root (9p) failed"
mount -t tmpfs -o size=75% tmpfs /rw || fail "tmpfs failed"
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /newroot || fail "overlay failed"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 share "/newroot$SHARE" || fail "mounting the share $SHARE failed"
KVER="$(uname -r)"
mkdir -p "/newroot/lib/modules/$KVER"
mount --bind "/newroot$MODULES" "/newroot/lib/modules/$KVER" || fail "binding the modules failed"
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs tmpfs /newroot/dev/shm
mount -t tmpfs tmpfs /newroot/tmp
mount -t tmpfs tmpfs /newroot/run
mount -t cgroup2 cgroup2 /newroot/sys/fs/cgroup 2>/dev/null
mount -t bpf bpf /newroot/sys/fs/bpf 2>/dev/null
stty -F /newroot/dev/ttyS1 raw -echo 2>/dev/null
hostname haa-vm
chroot /newroot /bin/sh -c 'ip link set lo up; modprobe -a crc32c_generic ip_vs; cd "$0" && exec /bin/sh "$0/run.sh"' "$SHARE" > /newroot/dev/ttyS1 2>&1 < /dev/null
echo $? > "/newroot$SHARE/rc"
sync
umount "/newroot$SHARE"
poweroff -f
`

// modprobeScript is the initramfs's /sbin/modprobe: the kernel's module
// autoloading (a scheduler for ipvsadm, veth for ip link) runs it in the
// initramfs's root, so it hands over to the real modprobe in the new root.
const modprobeScript = `#!/bin/busybox sh
exec /bin/busybox chroot /newroot /sbin/modprobe "$@"
`

// moduleOrder returns the files (relative to the modules directory) of
// want and their dependencies, each after those it depends on, from the
// text of modules.dep.
func moduleOrder(dep io.Reader, want []string) ([]string, error) {
	deps := map[string][]string{} // file -> its dependencies
	byName := map[string]string{} // module name -> file
	sc := bufio.NewScanner(dep)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		file, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[file] = strings.Fields(rest)
		byName[moduleName(file)] = file
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var out []string
	seen := map[string]bool{}
	var visit func(file string, depth int) error
	visit = func(file string, depth int) error {
		if seen[file] {
			return nil
		}
		if depth > 64 {
			return fmt.Errorf("modules.dep: dependency loop at %s", file)
		}
		seen[file] = true
		// modules.dep lists a module's dependencies deepest last; load
		// them deepest first.
		ds := deps[file]
		for i := len(ds) - 1; i >= 0; i-- {
			if err := visit(ds[i], depth+1); err != nil {
				return err
			}
		}
		out = append(out, file)
		return nil
	}
	for _, name := range want {
		file, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("modules.dep: no module %s", name)
		}
		if err := visit(file, 0); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// moduleName is the module a file of modules.dep holds: kernel/fs/9p/9p.ko
// -> 9p (dashes and underscores are the same to the kernel).
func moduleName(file string) string {
	base := path.Base(file)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		base = strings.TrimSuffix(base, ext)
	}
	return strings.ReplaceAll(strings.TrimSuffix(base, ".ko"), "-", "_")
}

// cpioFile is one entry of the initramfs.
type cpioFile struct {
	name string
	mode uint32 // type and permission bits (cpio's c_mode)
	data []byte
}

const (
	modeDir = 0o040000
	modeReg = 0o100000
)

// writeCPIO writes files as a "newc" cpio archive (what the kernel
// unpacks as an initramfs), gzip-compressed.
func writeCPIO(w io.Writer, files []cpioFile) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(zw)
	ino := 1
	entry := func(name string, mode uint32, data []byte) error {
		nlink := 1
		if mode&modeDir != 0 {
			nlink = 2
		}
		hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
		ino++
		if _, err := bw.WriteString(hdr + name + "\x00"); err != nil {
			return err
		}
		if err := pad4(bw, len(hdr)+len(name)+1); err != nil {
			return err
		}
		if _, err := bw.Write(data); err != nil {
			return err
		}
		return pad4(bw, len(data))
	}
	for _, f := range files {
		if err := entry(f.name, f.mode, f.data); err != nil {
			return err
		}
	}
	if err := entry("TRAILER!!!", 0, nil); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return zw.Close()
}

func pad4(w io.Writer, n int) error {
	if r := n % 4; r != 0 {
		_, err := w.Write(make([]byte, 4-r))
		return err
	}
	return nil
}

// initramfsFiles are the initramfs of the kernel whose modules are in
// modDir: busybox, /init, /sbin/modprobe and the boot modules with the
// order to load them in (modules.list).
func initramfsFiles(busybox, modDir string) ([]cpioFile, error) {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return nil, err
	}
	dep, err := os.Open(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer dep.Close()
	order, err := moduleOrder(dep, bootModules)
	if err != nil {
		return nil, err
	}
	files := []cpioFile{
		{name: "bin", mode: modeDir | 0o755},
		{name: "sbin", mode: modeDir | 0o755},
		{name: "mod", mode: modeDir | 0o755},
		{name: "bin/busybox", mode: modeReg | 0o755, data: bb},
		{name: "init", mode: modeReg | 0o755, data: []byte(initScript)},
		{name: "sbin/modprobe", mode: modeReg | 0o755, data: []byte(modprobeScript)},
	}
	var list strings.Builder
	for _, file := range order {
		if strings.HasSuffix(file, ".xz") || strings.HasSuffix(file, ".zst") || strings.HasSuffix(file, ".gz") {
			return nil, fmt.Errorf("module %s is compressed: busybox insmod takes plain .ko files", file)
		}
		data, err := os.ReadFile(filepath.Join(modDir, file))
		if err != nil {
			return nil, err
		}
		name := path.Base(file)
		files = append(files, cpioFile{name: "mod/" + name, mode: modeReg | 0o644, data: data})
		list.WriteString(name + "\n")
	}
	files = append(files, cpioFile{name: "modules.list", mode: modeReg | 0o644, data: []byte(list.String())})
	return files, nil
}

// filesHash is a short hash of the archive's contents.
func filesHash(files []cpioFile) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s %o %d\n", f.name, f.mode, len(f.data))
		h.Write(f.data)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}
