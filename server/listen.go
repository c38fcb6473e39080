package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// ServiceName is the AgentService's full name, as health checks use it.
const ServiceName = "haa.v1.AgentService"

// maxSocketPath is the longest unix socket path Linux accepts
// (sizeof(sun_path) - 1).
const maxSocketPath = 107

// Listeners serves one Server on the API's unix socket and, if configured,
// on a TCP listener. Each listener has its own gRPC server and limits: the
// unix socket is plaintext (access is the socket's mode, 0600), the TCP one
// TLS with optional client certificates.
type Listeners struct {
	srv    *Server
	log    *slog.Logger
	health *health.Server
	addrs  []string

	servers   []*grpc.Server
	listeners []net.Listener
	socket    string
	metrics   *APIMetrics // nil: calls are not counted

	unixLimits, tcpLimits limits
}

// Listen opens the API's listeners: the unix socket at socketPath (its
// directory created 0755, a stale socket replaced only if nothing answers on
// it, the socket itself 0600) and, if api.tcp is set, the TCP listener with
// TLS (client certificates required in the handshake when clientCaFile is
// set) or, with insecure, plaintext. Nothing is served until Serve. Health
// is NOT_SERVING until SetServing(true).
func Listen(srv *Server, api *haav1.ApiConfig, socketPath string, log *slog.Logger, opts ...ListenOption) (*Listeners, error) {
	if log == nil {
		log = slog.Default()
	}
	l := &Listeners{srv: srv, log: log, health: health.NewServer(),
		unixLimits: defaultLimits("unix"), tcpLimits: defaultLimits("tcp")}
	for _, o := range opts {
		o(l)
	}
	l.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	l.health.SetServingStatus(ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)

	ul, err := listenUnix(socketPath)
	if err != nil {
		return nil, err
	}
	l.socket = socketPath
	addr := "unix://" + socketPath
	l.add(netutil.LimitListener(ul, l.unixLimits.conns), addr, l.newGRPC(nil, addr, l.unixLimits))

	if tcp := api.GetTcp(); tcp != nil {
		if err := l.listenTCP(tcp); err != nil {
			l.closeListeners()
			return nil, err
		}
	}
	return l, nil
}

func (l *Listeners) add(ln net.Listener, addr string, gs *grpc.Server) {
	l.listeners = append(l.listeners, ln)
	l.addrs = append(l.addrs, addr)
	l.servers = append(l.servers, gs)
}

func (l *Listeners) listenTCP(tcp *haav1.TcpListener) error {
	if tcp.GetListen() == "" {
		return errors.New("api.tcp.listen is empty: give host:port")
	}
	var (
		creds     credentials.TransportCredentials
		clientCAs *x509.CertPool
	)
	switch {
	case tcp.GetInsecure():
		if tcp.GetTls() != nil {
			return errors.New("api.tcp: insecure and tls are both set: remove one of them")
		}
	default:
		cfg, err := serverTLS(tcp.GetTls())
		if err != nil {
			return err
		}
		creds = credentials.NewTLS(cfg)
		clientCAs = cfg.ClientCAs
	}
	ln, err := net.Listen("tcp", tcp.GetListen())
	if err != nil {
		return fmt.Errorf("API listener api.tcp.listen %s: %w", tcp.GetListen(), err)
	}
	addr := "tcp://" + ln.Addr().String()
	switch {
	case creds == nil:
		l.log.Warn("API on TCP WITHOUT TLS OR AUTHENTICATION (api.tcp.insecure): anyone who reaches this address controls the node; use only in a lab",
			"addr", addr)
	case clientCAs == nil:
		l.log.Warn("API on TCP with TLS but without client certificates: anyone who reaches this address controls the node; set api.tcp.tls.clientCaFile",
			"addr", addr)
	}
	l.add(netutil.LimitListener(ln, l.tcpLimits.conns), addr, l.newGRPC(creds, addr, l.tcpLimits))
	return nil
}

// serverTLS loads the server's certificate and, if given, the CA that
// signs client certificates.
func serverTLS(t *haav1.Tls) (*tls.Config, error) {
	if t.GetCertFile() == "" || t.GetKeyFile() == "" {
		return nil, errors.New("api.tcp.tls: certFile and keyFile are required unless api.tcp.insecure: true")
	}
	cert, err := tls.LoadX509KeyPair(t.GetCertFile(), t.GetKeyFile())
	if err != nil {
		return nil, fmt.Errorf("api.tcp.tls: loading certFile %s and keyFile %s: %w", t.GetCertFile(), t.GetKeyFile(), err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if ca := t.GetClientCaFile(); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("api.tcp.tls.clientCaFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("api.tcp.tls.clientCaFile %s holds no PEM certificate", ca)
		}
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, pool
		// A client without a certificate this CA signed (for client
		// authentication) fails in the handshake: it never gets a
		// connection to hold (its buffers, a stream), let alone a call.
		// haactl tells its user to check --tls-cert and --tls-key.
	}
	return cfg, nil
}

// listenUnix listens on a unix socket at path with mode 0600, creating its
// directory and replacing a stale socket that nothing answers on.
//
// The socket never exists at path with another mode: it is created in a
// directory of its own (0700) next to path, made 0600 there, then linked
// into place (a link, unlike a rename, fails if something took path
// meanwhile). Setting the umask around the bind would do too, but the umask
// is the whole process's: the files and commands of the agent's other
// goroutines would get it meanwhile.
func listenUnix(path string) (net.Listener, error) {
	if path == "" || !filepath.IsAbs(path) {
		return nil, fmt.Errorf("API socket %q: must be an absolute path", path)
	}
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("API socket %s: path is %d bytes, unix sockets allow at most %d: set a shorter api.socket", path, len(path), maxSocketPath)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("API socket directory: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	private, err := os.MkdirTemp(dir, ".haad") // 0700
	if err != nil {
		return nil, fmt.Errorf("API socket %s: %w", path, err)
	}
	defer os.RemoveAll(private)
	tmp := filepath.Join(private, "s")
	if len(tmp) > maxSocketPath {
		return nil, fmt.Errorf("API socket %s: haad creates it first in %s, whose path is too long for a unix socket (%d bytes, at most %d): set an api.socket in a shorter directory",
			path, private, len(tmp), maxSocketPath)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("API socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false) // its name is path, removed by unixListener.Close
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("API socket %s: %w", path, err)
	}
	if err := os.Link(tmp, path); err != nil {
		ln.Close()
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("API socket %s: created by another process meanwhile (is haad starting twice for this node?)", path)
		}
		return nil, fmt.Errorf("API socket %s: %w", path, err)
	}
	return &unixListener{UnixListener: ln, path: path}, nil
}

// unixListener is a unix socket listening at path, removed when it closes.
type unixListener struct {
	*net.UnixListener
	path string
	once sync.Once
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() { os.Remove(l.path) })
	return err
}

func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

// removeStale removes a socket left by an agent that died, and refuses to
// touch one that a running agent answers on or a file that is not a socket.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("API socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("API socket %s exists and is not a socket: remove it or set another api.socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("API socket %s: another process serves on it (is haad already running for this node?)", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("API socket %s: cannot tell whether it is in use: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("API socket %s: removing the stale socket: %w", path, err)
	}
	return nil
}

// newGRPC returns the gRPC server of the listener at addr, with the
// AgentService, health and reflection, within lim.
func (l *Listeners) newGRPC(creds credentials.TransportCredentials, addr string, lim limits) *grpc.Server {
	unary := []grpc.UnaryServerInterceptor{l.logUnary, checkUnary}
	stream := []grpc.StreamServerInterceptor{l.logStream, guardStreams(addr, lim), checkStream}
	if m := l.metrics; m != nil {
		unary = append([]grpc.UnaryServerInterceptor{m.Unary()}, unary...)
		stream = append([]grpc.StreamServerInterceptor{m.Stream()}, stream...)
	}
	opts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(newCodec()),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.ConnectionTimeout(lim.handshake),
		grpc.MaxConcurrentStreams(lim.streams),
		// Event watchers stay connected for long: find the dead ones.
		// Connections without calls are closed after a while, and may
		// not ping.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second,
			MaxConnectionIdle: lim.idle}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: lim.keepaliveMin, PermitWithoutStream: false}),
	}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	gs := grpc.NewServer(opts...)
	haav1.RegisterAgentServiceServer(gs, l.srv)
	if l.srv.fleet != nil {
		haav1.RegisterFleetServiceServer(gs, l.srv.fleet)
	}
	healthpb.RegisterHealthServer(gs, l.health)
	reflection.Register(gs)
	if l.metrics != nil {
		l.metrics.register(gs)
	}
	return gs
}

// Addrs returns where the API listens: unix:///path, tcp://host:port.
func (l *Listeners) Addrs() []string { return append([]string(nil), l.addrs...) }

// SetServing sets the health of the API (service "" and
// haa.v1.AgentService): SERVING once the agent runs a configuration.
func (l *Listeners) SetServing(on bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if on {
		st = healthpb.HealthCheckResponse_SERVING
	}
	l.health.SetServingStatus("", st)
	l.health.SetServingStatus(ServiceName, st)
}

// Serve serves every listener until Stop. It returns nil after Stop, or as
// soon as a listener fails, with its error (the others go on serving).
func (l *Listeners) Serve() error {
	errc := make(chan error, len(l.servers))
	for i, gs := range l.servers {
		go func() {
			err := gs.Serve(l.listeners[i])
			if errors.Is(err, grpc.ErrServerStopped) {
				err = nil // Stop came first
			}
			if err != nil {
				err = fmt.Errorf("API on %s: %w", l.addrs[i], err)
			}
			errc <- err
		}()
	}
	for range l.servers {
		if err := <-errc; err != nil {
			return err
		}
	}
	return nil
}

// Stop reports NOT_SERVING, ends the event streams, lets calls in progress
// finish until ctx is done and then closes every connection. The unix
// socket is removed.
func (l *Listeners) Stop(ctx context.Context) error {
	l.health.Shutdown() // NOT_SERVING, and stays so
	l.srv.close()
	done := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for _, gs := range l.servers {
			wg.Go(gs.GracefulStop)
		}
		wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("API calls still running were cut off: %w", ctx.Err())
		for _, gs := range l.servers {
			gs.Stop()
		}
		<-done
	}
	l.closeListeners() // Stop closes them only if Serve ran
	return err
}

func (l *Listeners) closeListeners() {
	for _, ln := range l.listeners {
		ln.Close() // closing a unix listener removes its socket
	}
}

// mutating lists the calls that change the node: logged at info level.
var mutating = map[string]bool{
	"/" + ServiceName + "/ApplyConfig":    true,
	"/" + ServiceName + "/Failover":       true,
	"/" + ServiceName + "/SetMaintenance": true,
}

func (l *Listeners) logUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	l.logCall(ctx, info.FullMethod, start, err)
	return resp, err
}

func (l *Listeners) logStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	start := time.Now()
	err := h(srv, ss)
	l.logCall(ss.Context(), info.FullMethod, start, err)
	return err
}

func (l *Listeners) logCall(ctx context.Context, method string, start time.Time, err error) {
	level := slog.LevelDebug
	if mutating[method] {
		level = slog.LevelInfo
	}
	l.log.Log(ctx, level, "API call", "method", method, "peer", peerName(ctx),
		"code", status.Code(err).String(), "duration", time.Since(start))
}

// peerName names the caller: its certificate's subject over mutual TLS,
// else its address.
func peerName(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
		return ti.State.PeerCertificates[0].Subject.String()
	}
	if p.Addr == nil || p.Addr.Network() == "unix" {
		return "unix" // access to the socket is its mode: root
	}
	return p.Addr.String()
}
