package server

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/haa-dev/haa/node"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// levelCore is a fake core whose log level can change.
type levelCore struct {
	*fakeCore
	lv    slog.LevelVar
	calls []string
}

func (c *levelCore) Level() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return node.LogLevelName(c.lv.Level())
}

func (c *levelCore) Set(level string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, level)
	lv, err := node.ParseLogLevel(level)
	if err != nil {
		return "", err
	}
	prev := c.lv.Level()
	c.lv.Set(lv)
	return node.LogLevelName(prev), nil
}

func TestSetLogLevel(t *testing.T) {
	core := &levelCore{fakeCore: newFakeCore()}
	client := serveCore(t, core)
	ctx := testCtx(t)

	resp, err := client.SetLogLevel(ctx, &haav1.SetLogLevelRequest{Level: "DEBUG"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetLevel() != "debug" || resp.GetPrevious() != "info" {
		t.Fatalf("response %v, want debug (previous info)", resp)
	}
	resp, err = client.SetLogLevel(ctx, &haav1.SetLogLevelRequest{Level: "warn"})
	if err != nil || resp.GetLevel() != "warn" || resp.GetPrevious() != "debug" {
		t.Fatalf("response %v, %v; want warn (previous debug)", resp, err)
	}

	for _, bad := range []string{"", "verbose", "info+2"} {
		_, err = client.SetLogLevel(ctx, &haav1.SetLogLevelRequest{Level: bad})
		st := wantCode(t, err, codes.InvalidArgument, "level", "debug, info, warn, error")
		if v := violations(t, st); len(v) != 1 || v[0].GetField() != "level" {
			t.Errorf("level %q: violations %v", bad, v)
		}
	}
	n, err := client.GetNode(ctx, &haav1.GetNodeRequest{})
	if err != nil || n.GetNode().GetLogLevel() != "warn" {
		t.Fatalf("GetNode: %v, %v; want log_level warn", n, err)
	}
	core.do(func() {
		if len(core.calls) != 2 {
			t.Errorf("the core was asked %q: a bad level must not reach it", core.calls)
		}
	})
}

func TestSetLogLevelUnimplemented(t *testing.T) {
	a := startAPI(t, newFakeCore(), nil)
	_, err := a.client.SetLogLevel(testCtx(t), &haav1.SetLogLevelRequest{Level: "debug"})
	wantCode(t, err, codes.Unimplemented, "log level")
}

// serveCore serves the API of any Core on a unix socket and returns a
// client of it.
func serveCore(t *testing.T, core Core) haav1.AgentServiceClient {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	socket := filepath.Join(t.TempDir(), "haa.sock")
	l, err := Listen(newServer(core, log), nil, socket, log)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- l.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := l.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return haav1.NewAgentServiceClient(conn)
}
