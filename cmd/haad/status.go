package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/haa-dev/haa/node"
	"github.com/haa-dev/haa/node/vrrp"
)

// instanceDump is one instance in the SIGUSR1 status file (keepalived's
// SIGJSON equivalent, until the API serves it).
type instanceDump struct {
	Name            string            `json:"name"`
	Interface       string            `json:"interface"`
	VRID            uint8             `json:"vrid"`
	State           string            `json:"state"`
	Priority        uint8             `json:"priority"`
	EffPriority     uint8             `json:"effectivePriority"`
	Master          string            `json:"master,omitempty"`
	AdvertInterval  string            `json:"advertInterval"`
	LastTransition  time.Time         `json:"lastTransition"`
	LastCause       string            `json:"lastCause,omitempty"`
	AdvertsSent     uint64            `json:"advertsSent"`
	AdvertsReceived uint64            `json:"advertsReceived"`
	GARPsSent       uint64            `json:"garpsSent"`
	Transitions     uint64            `json:"transitions"`
	Drops           map[string]uint64 `json:"drops"`
	TimerSlipMax    string            `json:"timerSlipMax"`
}

// writeStatus writes every instance's state and counters as JSON, atomically.
func writeStatus(agent *node.Agent, path string) error {
	var out []instanceDump
	for _, in := range agent.Instances() {
		st, s := in.Status, in.Stats
		d := instanceDump{
			Name: st.Name, Interface: in.Config.Interface, VRID: in.Config.VRRP.VRID,
			State: st.State.String(), Priority: in.Config.VRRP.Priority, EffPriority: st.Priority,
			AdvertInterval: st.MasterInterval.String(), LastTransition: st.LastChange, LastCause: string(st.LastCause),
			AdvertsSent: s.AdvertsSent.Load(), AdvertsReceived: s.AdvertsReceived.Load(),
			GARPsSent: s.GARPsSent.Load(), Transitions: s.Transitions.Load(),
			Drops:        map[string]uint64{},
			TimerSlipMax: time.Duration(s.TimerSlipMax.Load()).String(),
		}
		if st.MasterAddr.IsValid() {
			d.Master = st.MasterAddr.String()
		}
		for _, r := range vrrp.DropReasons() {
			if n := s.Drops(r); n > 0 {
				d.Drops[r.String()] = n
			}
		}
		out = append(out, d)
	}
	ifaces := map[string]map[string]uint64{}
	for name, drops := range agent.VRRP().InterfaceDrops() {
		m := map[string]uint64{}
		for r, n := range drops {
			m[r.String()] = n
		}
		ifaces[name] = m
	}
	b, err := json.MarshalIndent(map[string]any{"instances": out, "interfaceDrops": ifaces}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'), 0o644)
}

// writeFileAtomic writes data to path through a temporary file of its own
// in the same directory, renamed over path: a reader sees the old file or
// the new one, and writers at the same time (two SIGUSR1 in a row) never
// share a temporary file. (node/internal/atomicfile is not importable
// from here.)
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil { // CreateTemp makes it 0600
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
