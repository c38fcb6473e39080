package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// notifySocket is a stand-in for systemd's notification socket.
type notifySocket struct {
	t    *testing.T
	conn *net.UnixConn
}

func listenNotify(t *testing.T, name string) *notifySocket {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &notifySocket{t: t, conn: c}
}

// next returns the next message's assignments, by variable.
func (s *notifySocket) next(timeout time.Duration) map[string]string {
	s.t.Helper()
	buf := make([]byte, 4096)
	if err := s.conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		s.t.Fatal(err)
	}
	n, err := s.conn.Read(buf)
	if err != nil {
		s.t.Fatalf("no notification within %v: %v", timeout, err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(buf[:n]), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			s.t.Fatalf("notification %q: line %q is not VAR=value", buf[:n], line)
		}
		m[k] = v
	}
	return m
}

// The notifier without root: a path and an abstract socket, and nothing at
// all without $NOTIFY_SOCKET.
func TestSDNotifier(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, name := range []string{
		filepath.Join(t.TempDir(), "notify.sock"),
		fmt.Sprintf("@haa-test-notify-%d-%d", os.Getpid(), time.Now().UnixNano()),
	} {
		s := listenNotify(t, name)
		t.Setenv(notifyEnv, name)
		sd := newSDNotifier(log)
		if v, ok := os.LookupEnv(notifyEnv); ok {
			t.Errorf("$%s still set (%q): the commands haad runs would inherit it", notifyEnv, v)
		}
		sd.stopping()
		if m := s.next(time.Second); m["STOPPING"] != "1" || m["STATUS"] == "" {
			t.Errorf("%s: got %v, want STOPPING=1 and a STATUS", name, m)
		}
		sd.reloading()
		if m := s.next(time.Second); m["RELOADING"] != "1" || m["MONOTONIC_USEC"] == "" || m["MONOTONIC_USEC"] == "0" {
			t.Errorf("%s: got %v, want RELOADING=1 with MONOTONIC_USEC", name, m)
		}
	}
	t.Setenv(notifyEnv, "")
	newSDNotifier(log).stopping() // no socket: nothing, no panic
	var nilNotifier *sdNotifier
	nilNotifier.stopping()
}

// The real haad under a stand-in for systemd: READY=1 comes once the API
// socket exists, RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 at
// SIGTERM, and nothing before READY.
func TestSDNotifyReadyReloadStop(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1)
	n := c.lab.Nodes[0]
	files := n.HaadFiles(c.dir)
	s := listenNotify(t, filepath.Join(c.dir, "notify.sock"))
	if err := os.WriteFile(files.Config, []byte(c.config(n, instance{name: "VI_1", vrid: 51, prio: 200})), 0o644); err != nil {
		t.Fatal(err)
	}
	// env sets $NOTIFY_SOCKET for haad alone (t.Setenv would forbid
	// t.Parallel); it execs into haad, so the pid is haad's.
	p, err := n.Start(files.Log, "env", notifyEnv+"="+filepath.Join(c.dir, "notify.sock"), c.bin,
		"--config", files.Config, "--state-file", files.State, "--fleet-file", files.Fleet, "--socket", files.Socket,
		"--status-file", c.statusPath(n))
	if err != nil {
		t.Fatal(err)
	}
	c.procs[n] = p

	m := s.next(10 * time.Second)
	if m["READY"] != "1" {
		t.Fatalf("first notification %v, want READY=1", m)
	}
	if _, err := os.Stat(files.Socket); err != nil {
		t.Fatalf("READY=1 before the API socket exists: %v", err)
	}
	if st := m["STATUS"]; !strings.Contains(st, "running 1 instances") || !strings.Contains(st, files.Socket) {
		t.Errorf("STATUS=%q, want the instances and the API address", st)
	}
	if _, err := c.api(n).GetNode(t.Context(), &haav1.GetNodeRequest{}); err != nil {
		t.Fatalf("the API does not answer after READY=1: %v", err)
	}

	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if m = s.next(5 * time.Second); m["RELOADING"] != "1" || m["MONOTONIC_USEC"] == "" {
		t.Fatalf("after SIGHUP: %v, want RELOADING=1 with MONOTONIC_USEC", m)
	}
	if m = s.next(5 * time.Second); m["READY"] != "1" {
		t.Fatalf("after the reload: %v, want READY=1", m)
	}

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if m = s.next(5 * time.Second); m["STOPPING"] != "1" {
		t.Fatalf("after SIGTERM: %v, want STOPPING=1", m)
	}
	select {
	case <-p.Done():
		if err := p.Wait(); err != nil {
			t.Fatalf("haad exited with %v after SIGTERM", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("haad did not exit within 10s of SIGTERM")
	}
	if err := s.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, err := s.conn.Read(make([]byte, 4096)); err == nil {
		t.Errorf("a notification after STOPPING=1 (%d bytes)", n)
	}
}
