package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Responder is a small HTTP server listening in a node's namespace that
// answers every request with its body: a real server for load-balancing
// tests and demos. It can be stopped (connections refused) and started
// again.
type Responder struct {
	Node *Node
	Port uint16
	Body string
	// Echo: the answer is "BODY LOCAL REMOTE", the connection's two ends
	// as the server sees them (see RespondEcho).
	Echo bool

	mu   sync.Mutex
	srv  *http.Server
	done chan struct{}
}

// Respond starts a Responder on 0.0.0.0:port in n's namespace.
func (n *Node) Respond(port uint16, body string) (*Responder, error) {
	r := &Responder{Node: n, Port: port, Body: body}
	return r, r.Start()
}

// RespondEcho is Respond, answering "BODY LOCAL REMOTE": LOCAL is the
// address and port the client's connection arrived at (a VIP on lo for an
// LVS-DR real server, its own address behind LVS-NAT), REMOTE the client
// as the server sees it (its own address unless something translated it).
func (n *Node) RespondEcho(port uint16, body string) (*Responder, error) {
	r := &Responder{Node: n, Port: port, Body: body, Echo: true}
	return r, r.Start()
}

// Addr is where the Responder listens: the node's address and its port.
func (r *Responder) Addr() netip.AddrPort { return netip.AddrPortFrom(r.Node.Addr, r.Port) }

// Start listens again after Stop.
func (r *Responder) Start() error {
	var ln net.Listener
	err := r.Node.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", r.Port))
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: HTTP server: %w", r.Node.NS.Name, err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if !r.Echo {
				_, _ = io.WriteString(w, r.Body)
				return
			}
			local, _ := req.Context().Value(http.LocalAddrContextKey).(net.Addr)
			_, _ = fmt.Fprintf(w, "%s %v %s", r.Body, local, req.RemoteAddr)
		})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	r.mu.Lock()
	r.srv, r.done = srv, done
	r.mu.Unlock()
	return nil
}

// Serving reports whether it listens (started and not stopped).
func (r *Responder) Serving() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.srv != nil
}

// Stop closes the listener and every connection: connections are refused
// from now on.
func (r *Responder) Stop() {
	r.mu.Lock()
	srv, done := r.srv, r.done
	r.srv = nil
	r.mu.Unlock()
	if srv == nil {
		return
	}
	_ = srv.Close()
	<-done
}

// HTTPClient returns a client whose connections are made from inside n's
// namespace, a new connection for every request.
func (n *NS) HTTPClient(timeout time.Duration) *http.Client {
	return n.HTTPClientFrom(netip.Addr{}, timeout)
}

// HTTPClientFrom is HTTPClient with connections from the source address
// src (one of the namespace's addresses; the zero Addr: the kernel's
// choice), so that one namespace can be many clients. The source port is
// still chosen at connect (IP_BIND_ADDRESS_NO_PORT), as without a source
// address: one chosen at bind is random and soon reuses the port of a
// recent connection to the same server, which IPVS then sends where that
// connection went, without scheduling it.
func (n *NS) HTTPClientFrom(src netip.Addr, timeout time.Duration) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := &net.Dialer{Timeout: timeout}
		if src.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
			d.Control = func(_, _ string, c syscall.RawConn) error {
				var serr error
				err := c.Control(func(fd uintptr) {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
				})
				return errors.Join(err, serr)
			}
		}
		var c net.Conn
		err := n.Do(func() error {
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true, Proxy: nil}}
}

// GetBody GETs url and returns the body of a 200 answer.
func GetBody(ctx context.Context, c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), nil
}
