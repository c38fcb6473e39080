package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

func TestServiceName(t *testing.T) {
	if ServiceName != haav1.AgentService_ServiceDesc.ServiceName {
		t.Fatalf("ServiceName %q, generated %q", ServiceName, haav1.AgentService_ServiceDesc.ServiceName)
	}
}

func TestUnixSocket(t *testing.T) {
	a := startAPI(t, newFakeCore(), nil)
	fi, err := os.Stat(a.socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	if di, err := os.Stat(filepath.Dir(a.socket)); err != nil || di.Mode().Perm() != 0o755 {
		t.Fatalf("directory %v, %v: want 0755", di.Mode(), err)
	}
	if got := a.l.Addrs(); len(got) != 1 || got[0] != "unix://"+a.socket {
		t.Fatalf("Addrs %v", got)
	}

	// A second agent on the same socket is refused; the first keeps it.
	_, err = Listen(newServer(newFakeCore(), nil), nil, a.socket, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "another process serves on it") {
		t.Fatalf("second Listen: %v", err)
	}
	if _, err := a.client.GetNode(testCtx(t), &haav1.GetNodeRequest{}); err != nil {
		t.Fatalf("first agent after the refused second: %v", err)
	}

	// Stop removes the socket.
	if err := a.l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.socket); !os.IsNotExist(err) {
		t.Fatalf("socket left after Stop: %v", err)
	}
}

func TestStaleSocketIsReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "haa.sock")
	// A socket that nothing listens on any more, as a killed agent leaves.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	l, err := Listen(newServer(newFakeCore(), nil), nil, path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	if err := l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestSocketPathProblems(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		file:                                     "is not a socket",
		"relative.sock":                          "must be an absolute path",
		"/" + strings.Repeat("x", 120) + ".sock": "at most 107",
	} {
		_, err := Listen(newServer(newFakeCore(), nil), nil, path, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Listen(%s): %v, want %q", path, err, want)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Errorf("the file was touched: %q, %v", b, err)
	}
}

func TestHealth(t *testing.T) {
	a := startAPI(t, newFakeCore(), nil)
	h := healthpb.NewHealthClient(a.conn)
	ctx := testCtx(t)
	check := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		r, err := h.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetStatus()
	}
	for _, svc := range []string{"", ServiceName} {
		if got := check(svc); got != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("%q before SetServing: %v", svc, got)
		}
	}
	a.l.SetServing(true)
	for _, svc := range []string{"", ServiceName} {
		if got := check(svc); got != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("%q after SetServing: %v", svc, got)
		}
	}
	// Stopping reports NOT_SERVING, and SetServing cannot undo it.
	if err := a.l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.l.SetServing(true)
	r, err := a.l.health.Check(ctx, &healthpb.HealthCheckRequest{Service: ServiceName})
	if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("after Stop: %v, %v", r, err)
	}
}

func TestReflection(t *testing.T) {
	a := startAPI(t, newFakeCore(), nil)
	s, err := reflectionpb.NewServerReflectionClient(a.conn).ServerReflectionInfo(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	r, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, svc := range r.GetListServicesResponse().GetService() {
		names = append(names, svc.GetName())
	}
	for _, want := range []string{ServiceName, "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, lacks %s", names, want)
		}
	}
	// The schema itself is there: grpcurl can describe the service.
	if err := s.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: ServiceName}}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Recv(); err != nil || len(r.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Fatalf("file of %s: %v, %v", ServiceName, r, err)
	}
}

// pki is a CA and the certificates it signed, written as PEM files.
type pki struct {
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T, dir, name string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &pki{dir: dir, cert: cert, key: key}
	writePEM(t, ca.path(name+".crt"), "CERTIFICATE", der)
	return ca
}

func (ca *pki) path(name string) string { return filepath.Join(ca.dir, name) }

// issue signs a certificate for name (a server when ips are given, else a
// client) and returns the paths of its certificate and key.
func (ca *pki) issue(t *testing.T, name string, ips ...netip.Addr) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if len(ips) > 0 {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		for _, ip := range ips {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = ca.path(name+".crt"), ca.path(name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tcpAddr returns the host:port of the API's TCP listener.
func tcpAddr(t *testing.T, l *Listeners) string {
	t.Helper()
	for _, a := range l.Addrs() {
		if rest, ok := strings.CutPrefix(a, "tcp://"); ok {
			return rest
		}
	}
	t.Fatalf("no TCP address in %v", l.Addrs())
	return ""
}

// tlsClient calls GetNode over TLS trusting ca, with the client certificate
// if certFile is set.
func tlsClient(t *testing.T, addr string, ca *pki, certFile, keyFile string) error {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := haav1.NewAgentServiceClient(conn).GetNode(ctx, &haav1.GetNodeRequest{})
	if err == nil && resp.GetNode().GetName() != "n1" {
		t.Errorf("node %v", resp)
	}
	return err
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "ca")
	other := newCA(t, t.TempDir(), "other-ca")
	srvCert, srvKey := ca.issue(t, "server", netip.MustParseAddr("127.0.0.1"))
	cliCert, cliKey := ca.issue(t, "haactl")
	strangerCert, strangerKey := other.issue(t, "stranger")

	core := newFakeCore()
	core.info.Name = "n1"
	a := startAPI(t, core, &haav1.ApiConfig{Tcp: &haav1.TcpListener{Listen: "127.0.0.1:0",
		Tls: &haav1.Tls{CertFile: srvCert, KeyFile: srvKey, ClientCaFile: ca.path("ca.crt")}}})
	addr := tcpAddr(t, a.l)
	if len(a.l.Addrs()) != 2 || !strings.HasPrefix(a.l.Addrs()[1], "tcp://127.0.0.1:") {
		t.Fatalf("Addrs %v", a.l.Addrs())
	}

	if err := tlsClient(t, addr, ca, cliCert, cliKey); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	// Without a certificate, or with another CA's, the connection fails
	// (TestMutualTLSRefusesHandshake): no call is made.
	wantCode(t, tlsClient(t, addr, ca, "", ""), codes.Unavailable)
	wantCode(t, tlsClient(t, addr, ca, strangerCert, strangerKey), codes.Unavailable)
	// The unix socket needs no certificate.
	if _, err := a.client.GetNode(testCtx(t), &haav1.GetNodeRequest{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(a.logs.String(), `peer="CN=haactl"`) {
		t.Errorf("the caller's certificate is not logged:\n%s", a.logs)
	}
	if strings.Contains(a.logs.String(), "level=WARN") {
		t.Errorf("warning with mutual TLS:\n%s", a.logs)
	}
}

func TestTLSWithoutClientCA(t *testing.T) {
	ca := newCA(t, t.TempDir(), "ca")
	srvCert, srvKey := ca.issue(t, "server", netip.MustParseAddr("127.0.0.1"))
	core := newFakeCore()
	core.info.Name = "n1"
	a := startAPI(t, core, &haav1.ApiConfig{Tcp: &haav1.TcpListener{Listen: "127.0.0.1:0",
		Tls: &haav1.Tls{CertFile: srvCert, KeyFile: srvKey}}})
	if err := tlsClient(t, tcpAddr(t, a.l), ca, "", ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(a.logs.String(), "without client certificates") {
		t.Errorf("no warning:\n%s", a.logs)
	}
}

func TestTLSFilesMissing(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "haa.sock")
	_, err := Listen(newServer(newFakeCore(), nil), &haav1.ApiConfig{Tcp: &haav1.TcpListener{Listen: "127.0.0.1:0",
		Tls: &haav1.Tls{CertFile: filepath.Join(dir, "no.crt"), KeyFile: filepath.Join(dir, "no.key")}}},
		socket, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "api.tcp.tls: loading certFile") {
		t.Fatalf("Listen: %v", err)
	}
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Errorf("the unix socket was left behind: %v", err)
	}
}

func TestInsecureTCP(t *testing.T) {
	core := newFakeCore()
	core.info.Name = "n1"
	a := startAPI(t, core, &haav1.ApiConfig{Tcp: &haav1.TcpListener{Listen: "127.0.0.1:0", Insecure: true}})
	conn, err := grpc.NewClient(tcpAddr(t, a.l), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := haav1.NewAgentServiceClient(conn).GetNode(testCtx(t), &haav1.GetNodeRequest{})
	if err != nil || resp.GetNode().GetName() != "n1" {
		t.Fatalf("GetNode: %v, %v", resp, err)
	}
	logs := a.logs.String()
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "WITHOUT TLS OR AUTHENTICATION") {
		t.Errorf("no loud warning:\n%s", logs)
	}
}

// With a client CA, a client without a certificate, or with one of another
// CA, is refused in the TLS handshake: it never gets an HTTP/2 connection
// (no server preface, no call), so it holds nothing on the agent.
func TestMutualTLSRefusesHandshake(t *testing.T) {
	ca := newCA(t, t.TempDir(), "ca")
	other := newCA(t, t.TempDir(), "other-ca")
	srvCert, srvKey := ca.issue(t, "server", netip.MustParseAddr("127.0.0.1"))
	strangerCert, strangerKey := other.issue(t, "stranger")
	a := startAPI(t, newFakeCore(), &haav1.ApiConfig{Tcp: &haav1.TcpListener{Listen: "127.0.0.1:0",
		Tls: &haav1.Tls{CertFile: srvCert, KeyFile: srvKey, ClientCaFile: ca.path("ca.crt")}}})
	addr := tcpAddr(t, a.l)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	stranger, err := tls.LoadX509KeyPair(strangerCert, strangerKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		certs []tls.Certificate
		max   uint16
	}{
		{"no certificate, TLS 1.2", nil, tls.VersionTLS12},
		{"no certificate, TLS 1.3", nil, tls.VersionTLS13},
		{"another CA's certificate, TLS 1.2", []tls.Certificate{stranger}, tls.VersionTLS12},
		{"another CA's certificate, TLS 1.3", []tls.Certificate{stranger}, tls.VersionTLS13},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			raw.SetDeadline(time.Now().Add(5 * time.Second))
			conn := tls.Client(raw, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", Certificates: c.certs, MaxVersion: c.max,
				NextProtos: []string{"h2"}})
			// A TLS 1.2 client fails in the handshake itself; a TLS 1.3
			// client finishes its part first, then reads the server's
			// alert instead of its HTTP/2 preface.
			err = conn.Handshake()
			if c.max == tls.VersionTLS12 && err == nil {
				t.Fatal("TLS 1.2 handshake succeeded")
			}
			if err == nil {
				var b [64]byte
				var n int
				n, err = conn.Read(b[:])
				if n > 0 {
					t.Fatalf("the server sent %d bytes (its HTTP/2 preface) to a client it should refuse", n)
				}
			}
			if err == nil || !strings.Contains(err.Error(), "remote error: tls:") {
				t.Fatalf("handshake: %v, want the server's alert", err)
			}
		})
	}
}

// The socket appears at its path with mode 0600: it is never there with
// the umask's mode, waiting for a chmod (inotify sees it created, never
// changed), and Listen leaves the process umask and the directory as they
// were.
func TestSocketAppearsWithItsMode(t *testing.T) {
	dir := t.TempDir()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_ATTRIB|unix.IN_MOVED_TO); err != nil {
		t.Fatal(err)
	}
	umask := processUmask(t)
	path := filepath.Join(dir, "haa.sock")
	l, err := Listen(newServer(newFakeCore(), nil), nil, path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	fi, statErr := os.Lstat(path)
	if err := l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if statErr != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("right after Listen: %v, %v: want a socket with 0600", fi.Mode(), statErr)
	}
	if got := processUmask(t); got != umask {
		t.Errorf("umask %04o after Listen, was %04o", got, umask)
	}
	buf := make([]byte, 64<<10)
	n, err := unix.Read(fd, buf)
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for off := 0; off+unix.SizeofInotifyEvent <= n; {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
		off += unix.SizeofInotifyEvent + int(ev.Len)
		if name != "haa.sock" {
			continue
		}
		switch {
		case ev.Mask&unix.IN_ATTRIB != 0:
			events = append(events, "attrib")
		case ev.Mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
			events = append(events, "create")
		}
	}
	if fmt.Sprint(events) != "[create]" {
		t.Errorf("inotify events on the socket %v, want [create]: it must appear with its final mode", events)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left in the directory after Stop: %v", entries)
	}
}

// processUmask reads the umask without changing it.
func processUmask(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			m, err := strconv.ParseInt(strings.TrimSpace(v), 8, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(m)
		}
	}
	t.Fatal("no Umask in /proc/self/status")
	return 0
}
