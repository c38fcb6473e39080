package server

import (
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
)

// limits bound what the clients of one listener can hold of the agent:
// connections (each a file descriptor and buffers), calls, event streams.
// Each listener has its own gRPC server and limits, so that however many
// clients crowd the TCP listener, the unix socket still answers.
type limits struct {
	// conns is how many connections are served at once; more wait in
	// the kernel's accept queue until one closes.
	conns int
	// handshake bounds a new connection's TLS handshake and HTTP/2
	// preface: a client that connects and says nothing frees its place.
	handshake time.Duration
	// streams is how many calls one connection runs at once.
	streams uint32
	// idle closes a connection that has had no call for that long. An
	// open event stream is a call: a watcher's connection is never idle.
	idle time.Duration
	// keepaliveMin is the shortest interval between a client's pings;
	// pings on a connection without calls are refused too.
	keepaliveMin time.Duration
	// watchers is how many WatchEvents streams are open at once.
	watchers int
	// stalled ends a stream whose client reads nothing for that long:
	// its events would otherwise wait in the agent's memory for ever.
	stalled time.Duration
}

// defaultLimits are the limits of a listener on network (unix or tcp).
func defaultLimits(network string) limits {
	l := limits{conns: 256, handshake: 10 * time.Second, streams: 64, idle: 5 * time.Minute,
		keepaliveMin: 10 * time.Second, watchers: 32, stalled: 30 * time.Second}
	if network == "unix" {
		l.conns = 64 // root's haactl, a few at a time
	}
	return l
}

// watchMethod is the call that streams events for as long as the client
// stays.
const watchMethod = "/" + ServiceName + "/WatchEvents"

// guardStreams is a listener's stream interceptor: at most lim.watchers
// event streams at once, and every server stream ends when its client reads
// nothing for lim.stalled.
func guardStreams(addr string, lim limits) grpc.StreamServerInterceptor {
	var watchers atomic.Int64
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if info.FullMethod == watchMethod {
			if watchers.Add(1) > int64(lim.watchers) {
				watchers.Add(-1)
				return tooManyWatchers(addr, lim.watchers)
			}
			defer watchers.Add(-1)
		}
		if info.IsServerStream && lim.stalled > 0 {
			ts := newTimedStream(ss, lim.stalled)
			defer ts.close()
			ss = ts
		}
		return h(srv, ss)
	}
}

// timedStream bounds how long SendMsg waits for a client that reads
// nothing. grpc-go's SendMsg blocks while the client's flow-control window
// is full, and nothing but the end of the stream unblocks it; so each
// message is sent from a goroutine of the stream's own while SendMsg
// waits, at most timeout. Past it, SendMsg returns Unavailable: the
// handler returns it, grpc-go ends the stream, and the blocked send returns
// too. The agent never waits: its event log does not block appenders.
type timedStream struct {
	grpc.ServerStream
	timeout time.Duration
	msgs    chan any   // to the sending goroutine, one at a time
	sent    chan error // its result
	timer   *time.Timer
	stuck   bool
}

func newTimedStream(ss grpc.ServerStream, timeout time.Duration) *timedStream {
	t := &timedStream{ServerStream: ss, timeout: timeout, msgs: make(chan any), sent: make(chan error, 1)}
	go func() {
		for m := range t.msgs {
			t.sent <- ss.SendMsg(m)
		}
	}()
	return t
}

// SendMsg sends m, or gives up after the timeout. It is called from the
// handler's goroutine only, as grpc-go's SendMsg is.
func (t *timedStream) SendMsg(m any) error {
	if t.stuck {
		return slowReader(t.timeout)
	}
	t.msgs <- m // the goroutine waits: the previous send returned
	if t.timer == nil {
		t.timer = time.NewTimer(t.timeout)
	} else {
		t.timer.Reset(t.timeout)
	}
	select {
	case err := <-t.sent:
		t.timer.Stop()
		return err
	case <-t.timer.C:
		t.stuck = true
		return slowReader(t.timeout)
	}
}

// close ends the sending goroutine once its last send returns.
func (t *timedStream) close() {
	close(t.msgs)
	if t.timer != nil {
		t.timer.Stop()
	}
}
