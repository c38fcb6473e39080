package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/haa-dev/haa/node"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// insecureTCP is a plaintext TCP listener on a free port.
var insecureTCP = &haav1.ApiConfig{Tcp: &haav1.TcpListener{Listen: "127.0.0.1:0", Insecure: true}}

func dialInsecure(t *testing.T, target string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// holdConn opens a connection to addr that says nothing, once the server
// accepted it (it sent its HTTP/2 settings).
func holdConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [9]byte // an HTTP/2 frame header
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("connection not accepted: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	return c
}

// Connections beyond a listener's limit wait, not accepted, and the unix
// socket (a listener of its own) keeps answering; when one leaves, the
// next is served.
func TestConnectionLimit(t *testing.T) {
	core := newFakeCore()
	core.info.Name = "n1"
	a := startAPIWith(t, core, insecureTCP, nil, func(l *Listeners) { l.tcpLimits.conns = 3 })
	addr := tcpAddr(t, a.l)
	var held []net.Conn
	for range 3 {
		held = append(held, holdConn(t, addr))
	}
	client := haav1.NewAgentServiceClient(dialInsecure(t, addr))
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err := client.GetNode(ctx, &haav1.GetNodeRequest{}, grpc.WaitForReady(true))
	wantCode(t, err, codes.DeadlineExceeded)

	if _, err := a.client.GetNode(testCtx(t), &haav1.GetNodeRequest{}); err != nil {
		t.Fatalf("the unix socket while TCP is full: %v", err)
	}

	held[0].Close()
	if _, err := client.GetNode(testCtx(t), &haav1.GetNodeRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("once a connection left: %v", err)
	}
}

// A connection that never finishes its handshake (here: never sends the
// HTTP/2 preface) is closed after the handshake timeout: it does not keep
// its place.
func TestHandshakeTimeout(t *testing.T) {
	a := startAPIWith(t, newFakeCore(), insecureTCP, nil, func(l *Listeners) { l.tcpLimits.handshake = 200 * time.Millisecond })
	c := holdConn(t, tcpAddr(t, a.l))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("the silent connection was not closed: %v", err)
	}
}

// openWatcher opens an event stream and waits until it is in place.
func openWatcher(t *testing.T, ctx context.Context, c haav1.AgentServiceClient, since *uint64) grpc.ServerStreamingClient[haav1.WatchEventsResponse] {
	t.Helper()
	s, err := c.WatchEvents(ctx, &haav1.WatchEventsRequest{SinceSeq: since})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Header(); err != nil {
		t.Fatal(err)
	}
	return s
}

// A listener serves a bounded number of watchers; one more is told
// ResourceExhausted and what to do; once one leaves, a new one is served.
func TestWatcherLimit(t *testing.T) {
	core := newFakeCore()
	a := startAPIWith(t, core, nil, nil, func(l *Listeners) { l.unixLimits.watchers = 2 })
	ctx, cancel := context.WithCancel(testCtx(t))
	first := openWatcher(t, ctx, a.client, nil)
	openWatcher(t, testCtx(t), a.client, nil)

	s, err := a.client.WatchEvents(testCtx(t), &haav1.WatchEventsRequest{})
	if err == nil {
		_, err = s.Recv()
	}
	wantCode(t, err, codes.ResourceExhausted, "2 event watchers", "end the watchers you no longer need")
	if _, err := a.client.GetNode(testCtx(t), &haav1.GetNodeRequest{}); err != nil {
		t.Fatalf("other calls: %v", err)
	}

	cancel()
	_, err = first.Recv()
	wantCode(t, err, codes.Canceled)
	deadline := time.Now().Add(5 * time.Second)
	for {
		// Refused, the stream ends at once (its headers too).
		s, err := a.client.WatchEvents(testCtx(t), &haav1.WatchEventsRequest{})
		if err == nil {
			_, err = s.Header()
		}
		if err == nil {
			appendEvents(core.events, 1)
			_, err = s.Recv()
		}
		if err == nil {
			break
		}
		if status.Code(err) != codes.ResourceExhausted || time.Now().After(deadline) {
			t.Fatalf("a new watcher once one left: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A watcher that reads nothing for long is ended (Unavailable), without
// holding anything up: it reads what was sent before, then is told to
// reconnect, and resumes without a gap.
func TestStalledWatcherEnds(t *testing.T) {
	core := newFakeCore()
	core.events = node.NewEventLog(2000)
	a := startAPIWith(t, core, nil, nil, func(l *Listeners) { l.unixLimits.stalled = 200 * time.Millisecond })
	s := openWatcher(t, testCtx(t), a.client, nil)
	pad := strings.Repeat("x", 10000)
	for i := range 500 { // 5 MB: far more than the flow-control windows
		core.events.Append(&haav1.Event{Instance: fmt.Sprintf("VI_%d", i), Kind: &haav1.Event_Error{Error: &haav1.InstanceError{Message: pad}}})
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(a.logs.String(), "method=/haa.v1.AgentService/WatchEvents") {
		if time.Now().After(deadline) {
			t.Fatalf("the stalled stream did not end on the server:\n%s", a.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(a.logs.String(), "code=Unavailable") {
		t.Errorf("stream ended with:\n%s", a.logs)
	}
	var last uint64
	for {
		r, err := s.Recv()
		if err != nil {
			wantCode(t, err, codes.Unavailable, "read nothing for 200ms", "reconnect with since_seq")
			break
		}
		if r.GetEvent().GetSeq() != last+1 {
			t.Fatalf("event %d after %d", r.GetEvent().GetSeq(), last)
		}
		last = r.GetEvent().GetSeq()
	}
	if last == 0 || last >= 500 {
		t.Fatalf("read %d events before the end, want some but not all", last)
	}
	resumed := openWatcher(t, testCtx(t), a.client, &last)
	if r, err := resumed.Recv(); err != nil || r.GetEvent().GetSeq() != last+1 {
		t.Fatalf("resumed: %v, %v; want event %d", r, err, last+1)
	}
}

// A connection without calls is closed once idle; one with a watcher is
// not, however long no event comes.
func TestIdleConnectionsClose(t *testing.T) {
	core := newFakeCore()
	a := startAPIWith(t, core, nil, nil, func(l *Listeners) { l.unixLimits.idle = 300 * time.Millisecond })
	idle := dialInsecure(t, "unix://"+a.socket)
	if _, err := haav1.NewAgentServiceClient(idle).GetNode(testCtx(t), &haav1.GetNodeRequest{}); err != nil {
		t.Fatal(err)
	}
	w := openWatcher(t, testCtx(t), a.client, nil)

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if !idle.WaitForStateChange(ctx, connectivity.Ready) {
		t.Fatal("the idle connection is still open")
	}
	time.Sleep(500 * time.Millisecond) // the watcher's connection is older than idle too
	if s := a.conn.GetState(); s != connectivity.Ready {
		t.Errorf("the watcher's connection is %v", s)
	}
	appendEvents(core.events, 1)
	if _, err := w.Recv(); err != nil {
		t.Fatalf("the watcher: %v", err)
	}
}
