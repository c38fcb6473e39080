// Package ctl is the client library of haad's API (haa.v1.AgentService),
// used by haactl. A Client talks to one agent (a fleet is a set of Clients,
// one per target, dialled with the same Options); the results are the API's
// proto messages. ctl prints nothing and never exits: errors are returned,
// gRPC status errors unchanged (status.Code works on them) or wrapped with
// the sentinels below, so a caller can tell the user what to do.
package ctl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// ErrNoAgent is returned by Dial when a unix socket target does not exist:
// no haad runs there (or it serves another socket).
var ErrNoAgent = errors.New("no haad listening")

// Target is a parsed agent address.
type Target struct {
	// Network is "unix" or "tcp".
	Network string
	// Address is the socket path or host:port.
	Address string
}

// String returns the canonical form: unix:///path (unix:path when
// relative) or host:port.
func (t Target) String() string {
	if t.Network == "unix" {
		if strings.HasPrefix(t.Address, "/") {
			return "unix://" + t.Address
		}
		return "unix:" + t.Address
	}
	return t.Address
}

// ParseTarget parses unix:///abs/path, unix:path, a bare absolute path,
// tcp://host:port or host:port.
func ParseTarget(s string) (Target, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return Target{}, errors.New("empty target: give unix:///run/haa/NAME.sock or host:port")
	case strings.HasPrefix(s, "unix://"):
		return unixTarget(s, strings.TrimPrefix(s, "unix://"))
	case strings.HasPrefix(s, "unix:"):
		return unixTarget(s, strings.TrimPrefix(s, "unix:"))
	case strings.HasPrefix(s, "/"):
		return unixTarget(s, s)
	}
	addr := strings.TrimPrefix(s, "tcp://")
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return Target{}, fmt.Errorf("target %q: want unix:///path/to/socket or host:port (e.g. 10.0.0.1:9651)", s)
	}
	return Target{Network: "tcp", Address: addr}, nil
}

func unixTarget(orig, path string) (Target, error) {
	if path == "" {
		return Target{}, fmt.Errorf("target %q: no socket path (want unix:///run/haa/NAME.sock)", orig)
	}
	return Target{Network: "unix", Address: path}, nil
}

// Option configures Dial.
type Option func(*dialOptions)

type dialOptions struct {
	caFile, certFile, keyFile, serverName string
	insecure                              bool
	grpcOpts                              []grpc.DialOption
}

func (o *dialOptions) tlsSet() bool {
	return o.caFile != "" || o.certFile != "" || o.keyFile != "" || o.serverName != ""
}

// WithCA verifies the agent's certificate with the PEM CA bundle in file
// instead of the system roots.
func WithCA(file string) Option { return func(o *dialOptions) { o.caFile = file } }

// WithClientCert presents the PEM certificate and key in these files (for
// an agent that requires mutual TLS).
func WithClientCert(certFile, keyFile string) Option {
	return func(o *dialOptions) { o.certFile, o.keyFile = certFile, keyFile }
}

// WithServerName checks the agent's certificate against name instead of
// the target's host.
func WithServerName(name string) Option { return func(o *dialOptions) { o.serverName = name } }

// Insecure talks plaintext to a TCP target (an agent whose listener is
// insecure: labs only). Unix sockets are always plaintext.
func Insecure() Option { return func(o *dialOptions) { o.insecure = true } }

// WithGRPCOptions adds dial options (interceptors, a user agent...).
func WithGRPCOptions(opts ...grpc.DialOption) Option {
	return func(o *dialOptions) { o.grpcOpts = append(o.grpcOpts, opts...) }
}

// Client is a connection to one agent.
type Client struct {
	target Target
	conn   *grpc.ClientConn
	api    haav1.AgentServiceClient
	fleet  haav1.FleetServiceClient
}

// Dial returns a client of the agent at target (see ParseTarget). A unix
// socket that does not exist is ErrNoAgent at once; otherwise connecting is
// lazy and an unreachable agent shows as codes.Unavailable on the first
// call. TCP uses TLS (system roots unless WithCA) unless Insecure.
func Dial(ctx context.Context, target string, opts ...Option) (*Client, error) {
	t, err := ParseTarget(target)
	if err != nil {
		return nil, err
	}
	var o dialOptions
	for _, opt := range opts {
		opt(&o)
	}
	var creds credentials.TransportCredentials
	var grpcTarget string
	switch t.Network {
	case "unix":
		if o.tlsSet() {
			return nil, fmt.Errorf("target %s: TLS options apply to TCP targets only; a unix socket is plaintext, guarded by its file permissions", t)
		}
		if err := checkSocket(t.Address); err != nil {
			return nil, err
		}
		creds = insecure.NewCredentials()
		grpcTarget = "unix:" + t.Address
	default:
		if o.insecure && o.tlsSet() {
			return nil, fmt.Errorf("target %s: Insecure (plaintext) contradicts the TLS options", t)
		}
		if o.insecure {
			creds = insecure.NewCredentials()
		} else {
			cfg, err := o.tlsConfig()
			if err != nil {
				return nil, err
			}
			creds = credentials.NewTLS(cfg)
		}
		grpcTarget = "dns:///" + t.Address
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(grpcTarget, append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		// Reconnect to a restarted agent within Watch's backoff, not
		// gRPC's default of 1s growing to 2 minutes.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: DefaultMinBackoff, Multiplier: 1.6, Jitter: 0.2, MaxDelay: DefaultMaxBackoff},
			MinConnectTimeout: 5 * time.Second,
		}),
	}, o.grpcOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", t, err)
	}
	return &Client{target: t, conn: conn, api: haav1.NewAgentServiceClient(conn), fleet: haav1.NewFleetServiceClient(conn)}, nil
}

// checkSocket fails early, with ErrNoAgent, when there is no socket file.
func checkSocket(path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w on %s: is haad running?", ErrNoAgent, path)
	case err != nil:
		return fmt.Errorf("socket %s: %w", path, err)
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("%s is not a socket: give the path of haad's API socket (api.socket in its configuration)", path)
	}
	return nil
}

func (o *dialOptions) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.serverName}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA bundle %s: no PEM certificate in it", o.caFile)
		}
		cfg.RootCAs = pool
	}
	if (o.certFile == "") != (o.keyFile == "") {
		return nil, errors.New("a client certificate needs both its certificate file and its key file")
	}
	if o.certFile != "" {
		cert, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Target returns the agent's address.
func (c *Client) Target() Target { return c.target }

// Close releases the connection.
func (c *Client) Close() error { return c.conn.Close() }
