package fleet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDamagedFleetFile: a fleet file that does not hold a document, even
// in a well-formed wrapper, is refused with why and what to do.
func TestDamagedFleetFile(t *testing.T) {
	for _, tt := range []struct{ name, content, why string }{
		{"not JSON", "{", "unexpected end of JSON input"},
		{"not a document", `{"held": false, "document": {"instances": "many"}}`, `unexpected token "many"`},
		{"invalid document", `{"held": false, "document": {"instances": [{"name": "VI_1"}]}}`, "instances[0]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "fleet.json")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := New(Deps{File: path})
			if err == nil || !strings.Contains(err.Error(), "is damaged (") || !strings.Contains(err.Error(), tt.why) ||
				!strings.Contains(err.Error(), "remove it") {
				t.Fatalf("New with %s: %v, want it damaged because of %q", tt.name, err, tt.why)
			}
		})
	}
}
