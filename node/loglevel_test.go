package node

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a log destination safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestSet(t *testing.T) {
	var lv slog.LevelVar
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: &lv}))
	a := NewLogLevel(&lv, log)
	if got := a.Level(); got != "info" {
		t.Fatalf("Level() %q, want info", got)
	}

	log.Debug("before")
	prev, err := a.Set("debug")
	if err != nil || prev != "info" {
		t.Fatalf("Set(debug): %q, %v; want previous info", prev, err)
	}
	log.Debug("after")
	if got := a.Level(); got != "debug" {
		t.Errorf("Level() %q, want debug", got)
	}
	// Quieter: the change itself is still logged (at the level before it).
	if prev, err = a.Set("ERROR"); err != nil || prev != "debug" {
		t.Fatalf("Set(ERROR): %q, %v; want previous debug", prev, err)
	}
	log.Warn("hidden")
	out := logs.String()
	for _, want := range []string{"msg=after", "level=debug previous=info", "level=error previous=debug"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"msg=before", "msg=hidden"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("log has %q:\n%s", unwanted, out)
		}
	}

	_, err = a.Set("verbose")
	if !errors.Is(err, ErrUnknownLogLevel) || !strings.Contains(err.Error(), "debug, info, warn, error") {
		t.Errorf("Set(verbose): %v, want ErrUnknownLogLevel naming the levels", err)
	}
	if lv.Level() != slog.LevelError {
		t.Errorf("a refused level changed the level to %v", lv.Level())
	}
}

func TestSetLogLevelFixed(t *testing.T) {
	a := NewLogLevel(nil, slog.New(slog.DiscardHandler))
	if got := a.Level(); got != "" {
		t.Errorf("Level() %q without a LevelVar, want empty", got)
	}
	if _, err := a.Set("debug"); !errors.Is(err, ErrLogLevelFixed) {
		t.Errorf("Set without a LevelVar: %v, want ErrLogLevelFixed", err)
	}
}

func TestLogLevelNames(t *testing.T) {
	for _, name := range LogLevels {
		l, err := ParseLogLevel(strings.ToUpper(name))
		if err != nil || LogLevelName(l) != name {
			t.Errorf("%s: %v %v", name, LogLevelName(l), err)
		}
	}
	if got := LogLevelName(slog.LevelInfo + 2); got != "info+2" {
		t.Errorf("LogLevelName(info+2) = %q", got)
	}
}
