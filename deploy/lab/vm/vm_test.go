package vm

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestModuleOrder: each module comes after those it depends on, once.
func TestModuleOrder(t *testing.T) {
	dep := `kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko
kernel/fs/netfs/netfs.ko:
kernel/net/9p/9pnet.ko:
kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/fs/overlayfs/overlay.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
`
	got, err := moduleOrder(strings.NewReader(dep), bootModules)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range got {
		names = append(names, moduleName(f))
	}
	if len(names) != 11 {
		t.Errorf("%d modules %v, want 11", len(names), names)
	}
	before := func(a, b string) {
		if i, j := slices.Index(names, a), slices.Index(names, b); i < 0 || j < 0 || i > j {
			t.Errorf("%s must load before %s: %v", a, b, names)
		}
	}
	before("virtio_ring", "virtio")
	before("virtio", "virtio_pci")
	before("virtio_pci_modern_dev", "virtio_pci")
	before("netfs", "fscache")
	before("fscache", "9p")
	before("9pnet", "9pnet_virtio")
	before("9pnet_virtio", "9p")
	if _, err := moduleOrder(strings.NewReader(dep), []string{"ip_vs"}); err == nil || !strings.Contains(err.Error(), "no module ip_vs") {
		t.Errorf("a missing module: %v", err)
	}
	if _, err := moduleOrder(strings.NewReader("a.ko: b.ko\nb.ko: a.ko\n"), []string{"a"}); err != nil {
		t.Errorf("a loop in modules.dep (each once): %v", err)
	}
}

// TestCPIO: the archive is what cpio itself reads back (when installed).
func TestCPIO(t *testing.T) {
	files := []cpioFile{
		{name: "bin", mode: modeDir | 0o755},
		{name: "bin/hello", mode: modeReg | 0o755, data: []byte("#!/bin/sh\necho hi\n")},
		{name: "odd", mode: modeReg | 0o644, data: []byte("12345")},
	}
	var buf bytes.Buffer
	if err := writeCPIO(&buf, files); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw)%4 != 0 || !bytes.HasPrefix(raw, []byte("070701")) || !bytes.Contains(raw, []byte("TRAILER!!!\x00")) {
		t.Fatalf("not a newc archive: %d bytes, %q...", len(raw), raw[:min(len(raw), 40)])
	}
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("no cpio to read the archive back")
	}
	dir := t.TempDir()
	cmd := exec.Command("cpio", "-id", "--quiet")
	cmd.Dir, cmd.Stdin = dir, bytes.NewReader(raw)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -id: %v: %s", err, out)
	}
	for _, f := range files[1:] {
		got, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil || !bytes.Equal(got, f.data) {
			t.Errorf("%s: %q, %v", f.name, got, err)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "bin/hello")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("bin/hello mode: %v, %v", st.Mode(), err)
	}
}

func TestShareWithSpaces(t *testing.T) {
	im := &Image{}
	if _, err := im.Run(t.Context(), Options{Share: "/tmp/a b"}); err == nil || !strings.Contains(err.Error(), "white space") {
		t.Errorf("a share with a space: %v", err)
	}
}
