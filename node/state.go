package node

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"sigs.k8s.io/yaml"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// ConfigHash identifies a configuration: the sha256 of its deterministic
// protobuf encoding, 32 hex digits.
func ConfigHash(c *haav1.AgentConfig) string {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// state is what the agent keeps across restarts.
type state struct {
	Generation  uint64      `json:"generation"`
	Hash        string      `json:"hash"`
	Maintenance Maintenance `json:"maintenance"`
}

// Maintenance is the node's maintenance mode: while enabled no instance
// becomes master.
type Maintenance struct {
	Enabled bool      `json:"enabled"`
	Until   time.Time `json:"until,omitzero"` // zero: until turned off
}

// loadState reads the state file, if any. The first Apply keeps the stored
// generation when the configuration is the one stored, and counts one up
// otherwise (the file was edited while haad was down).
func (a *Agent) loadState() error {
	if a.stateFile == "" {
		return nil
	}
	b, err := os.ReadFile(a.stateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading state: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("state file %s is damaged (%v): remove it to start from generation 0", a.stateFile, err)
	}
	a.gen, a.hash = st.Generation, st.Hash
	if st.Maintenance.Enabled && (st.Maintenance.Until.IsZero() || time.Now().Before(st.Maintenance.Until)) {
		a.maint = st.Maintenance
		a.log.Warn("maintenance mode restored from the state file: no instance becomes master", "until", st.Maintenance.Until)
		a.armMaintenanceTTL()
	}
	return nil
}

// saveState writes the state file atomically. Called with a.mu held.
func (a *Agent) saveState() error {
	if a.stateFile == "" {
		return nil
	}
	b, err := json.MarshalIndent(state{Generation: a.gen, Hash: a.hash, Maintenance: a.maint}, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(a.stateFile, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing state: %w", err)
	}
	return nil
}

// writeConfigFile writes an applied configuration as YAML, atomically.
func writeConfigFile(path string, c *haav1.AgentConfig, gen uint64) error {
	js, err := protojson.MarshalOptions{Multiline: true}.Marshal(c)
	if err != nil {
		return err
	}
	y, err := yaml.JSONToYAML(js)
	if err != nil {
		return err
	}
	head := fmt.Sprintf("# Applied through the haad API (generation %d, %s).\n"+
		"# Edit and send SIGHUP, or use haactl apply; comments are not kept.\n",
		gen, time.Now().UTC().Format(time.RFC3339))
	return writeAtomic(path, append([]byte(head), y...), 0o600)
}

// writeAtomic replaces path with data: a temporary file in the same
// directory, fsync, rename, fsync of the directory. A crash leaves either
// the old or the new file, never a mix.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename: nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// PlanProto converts a Plan to its API form.
func PlanProto(p Plan) *haav1.Plan {
	out := &haav1.Plan{Added: p.Added, Removed: p.Removed, Unchanged: p.Unchanged}
	for _, c := range p.Changed {
		out.Changed = append(out.Changed, &haav1.InstanceChange{Name: c.Name, Fields: c.Fields, Restart: c.Restart})
	}
	return out
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
