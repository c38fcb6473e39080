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
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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
	err := tlsClient(t, addr, ca, "", "")
	wantCode(t, err, codes.Unauthenticated, "client certificate")
	// A certificate of another CA: Unauthenticated too, not a transport error.
	wantCode(t, tlsClient(t, addr, ca, strangerCert, strangerKey), codes.Unauthenticated, "client certificate")
	// Streams are guarded too.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: func() *x509.CertPool { p := x509.NewCertPool(); p.AddCert(ca.cert); return p }()})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s, err := haav1.NewAgentServiceClient(conn).WatchEvents(testCtx(t), &haav1.WatchEventsRequest{})
	if err == nil {
		_, err = s.Recv()
	}
	wantCode(t, err, codes.Unauthenticated)
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
