package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/haa-dev/haa/node/internal/atomicfile"
	"github.com/haa-dev/haa/node/internal/pace"
	"github.com/haa-dev/haa/node/internal/yamlout"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// stateFile is where the agent keeps what survives a restart: the
// configuration generation and hash, and the maintenance mode ("": not
// kept).
type stateFile string

// state is the content of the state file.
type state struct {
	Generation  uint64      `json:"generation"`
	Hash        string      `json:"hash"`
	Maintenance Maintenance `json:"maintenance"`
}

// load reads the state file, if any. The first Apply keeps the stored
// generation when the configuration is the one stored, and counts one up
// otherwise (the file was edited while haad was down).
func (f stateFile) load() (state, error) {
	if f == "" {
		return state{}, nil
	}
	b, err := os.ReadFile(string(f))
	if errors.Is(err, os.ErrNotExist) {
		return state{}, nil
	}
	if err != nil {
		return state{}, fmt.Errorf("reading state: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return state{}, fmt.Errorf("state file %s is damaged (%v): remove it to start from generation 0", string(f), err)
	}
	return st, nil
}

// save writes the state file atomically.
func (f stateFile) save(gen uint64, hash string, m Maintenance) error {
	if f == "" {
		return nil
	}
	b, err := json.MarshalIndent(state{Generation: gen, Hash: hash, Maintenance: m}, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(string(f), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing state: %w", err)
	}
	return nil
}

// writeConfigFile writes an applied configuration as YAML, atomically.
func writeConfigFile(path string, c *haav1.AgentConfig, gen uint64) error {
	y, err := configYAML(c)
	if err != nil {
		return err
	}
	head := fmt.Sprintf("# Applied through the haad API (generation %d, %s).\n"+
		"# Edit and send SIGHUP, or use haactl apply; comments are not kept.\n",
		gen, time.Now().UTC().Format(time.RFC3339))
	return atomicfile.Write(path, append([]byte(head), y...), 0o600)
}

// configYAML is c as YAML, its fields in .proto order. Lists of messages
// (instances, virtual servers) are converted an element at a time, giving
// way between them: a configuration of tens of thousands of real servers
// never holds a processor for long.
func configYAML(c *haav1.AgentConfig) ([]byte, error) {
	var w yamlout.Writer
	var p pace.Pacer
	m := c.ProtoReflect()
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		if fd.IsList() && fd.Message() != nil {
			list := m.Get(fd).List()
			items := make([][]byte, list.Len())
			for k := range items {
				b, err := protojson.Marshal(list.Get(k).Message().Interface())
				if err != nil {
					return nil, err
				}
				items[k] = b
				p.Yield()
			}
			if err := w.ListField(fd.JSONName(), items, p.Yield); err != nil {
				return nil, err
			}
			continue
		}
		one := m.Type().New()
		one.Set(fd, m.Get(fd))
		js, err := protojson.Marshal(one.Interface())
		if err != nil {
			return nil, err
		}
		if err := w.Document(js); err != nil {
			return nil, err
		}
	}
	return w.Bytes(), nil
}
