package atomicfile

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestCleanRemovesInterruptedWrites: the temporary files an interrupted
// Write leaves are removed at start; other files, the file itself and
// other files' temporaries stay.
func TestCleanRemovesInterruptedWrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "haad[1].yaml") // glob characters in the name
	if err := Write(path, []byte("a: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{".haad[1].yaml.tmp123", ".haad[1].yaml.tmp9", ".state.json.tmp1", "haad[1].yaml.bak", ".haad1.yaml.tmp5"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	gone, err := Clean(path)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(gone)
	if want := []string{filepath.Join(dir, ".haad[1].yaml.tmp123"), filepath.Join(dir, ".haad[1].yaml.tmp9")}; !slices.Equal(gone, want) {
		t.Fatalf("removed %q, want %q", gone, want)
	}
	left, _ := os.ReadDir(dir)
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if want := []string{".haad1.yaml.tmp5", ".state.json.tmp1", "haad[1].yaml", "haad[1].yaml.bak"}; !slices.Equal(names, want) {
		t.Fatalf("left %q, want %q", names, want)
	}
	if gone, err := Clean(""); gone != nil || err != nil {
		t.Fatalf("Clean(\"\") = %v, %v", gone, err)
	}
}
