package main

// chaos: the attacks on the API (6 to 10).

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"sigs.k8s.io/yaml"

	"github.com/haa-dev/haa/deploy/lab"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// chaosServerName is the name in n1's API certificate.
const chaosServerName = "haad.chaos"

// chaosPKI is a throw-away CA, n1's server certificate (10.77.0.1 and
// haad.chaos) and a client certificate, as PEM files.
type chaosPKI struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
	pool                                                 *x509.CertPool
}

func newChaosPKI(dir string) (chaosPKI, error) {
	var p chaosPKI
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return p, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "haalab chaos CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return p, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return p, err
	}
	p.pool = x509.NewCertPool()
	p.pool.AddCert(ca)
	write := func(name, typ string, der []byte) (string, error) {
		path := filepath.Join(dir, name)
		return path, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
	}
	issue := func(serial int64, tmpl *x509.Certificate, certName, keyName string) (string, string, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return "", "", err
		}
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(24*time.Hour)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return "", "", err
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return "", "", err
		}
		c, err := write(certName, "CERTIFICATE", der)
		if err != nil {
			return "", "", err
		}
		k, err := write(keyName, "EC PRIVATE KEY", kder)
		return c, k, err
	}
	if p.caFile, err = write("ca.pem", "CERTIFICATE", caDER); err != nil {
		return p, err
	}
	if p.serverCert, p.serverKey, err = issue(2, &x509.Certificate{Subject: pkix.Name{CommonName: chaosServerName},
		DNSNames: []string{chaosServerName}, IPAddresses: []net.IP{net.IPv4(10, 77, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, "server.pem", "server-key.pem"); err != nil {
		return p, err
	}
	if p.clientCert, p.clientKey, err = issue(3, &x509.Certificate{Subject: pkix.Name{CommonName: "operator"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, "client.pem", "client-key.pem"); err != nil {
		return p, err
	}
	return p, nil
}

// dialFromAttacker dials addr over TCP from c1's namespace.
func (x *chaosLab) dialFromAttacker(ctx context.Context, addr string) (net.Conn, error) {
	var c net.Conn
	err := x.attacker.Do(func() error {
		var err error
		c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
}

// tcpGetNode calls GetNode on n1's TCP listener from c1, with the client
// certificate or without, and returns the status code's name.
func (x *chaosLab) tcpGetNode(addr string, withCert bool) string {
	cfg := &tls.Config{RootCAs: x.pki.pool, ServerName: chaosServerName, MinVersion: tls.VersionTLS12}
	if withCert {
		cert, err := tls.LoadX509KeyPair(x.pki.clientCert, x.pki.clientKey)
		if err != nil {
			return "client certificate: " + err.Error()
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
		grpc.WithContextDialer(x.dialFromAttacker))
	if err != nil {
		return err.Error()
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(x.ctx, 5*time.Second)
	defer cancel()
	_, err = haav1.NewAgentServiceClient(cc).GetNode(ctx, &haav1.GetNodeRequest{})
	return status.Code(err).String()
}

// attackTLSConns: attack 6. From c1, open --conns TCP connections to n1's
// mutual-TLS API listener, none with a client certificate: the even ones
// complete the TLS handshake without one (the server asks for it; calls
// are then refused), the odd ones never start TLS (a stalled handshake).
// Hold them until --duration has passed, then close them.
func (x *chaosLab) attackTLSConns(r *chaosRow) error {
	n1 := x.nodes[0]
	addr := netip.AddrPortFrom(n1.n.Addr, chaosAPIPort).String()
	with, without := x.tcpGetNode(addr, true), x.tcpGetNode(addr, false)
	r.Notes = append(r.Notes, fmt.Sprintf("GetNode on %s from c1: with the client certificate %s, without %s", addr, with, without))
	if with != "OK" {
		r.Notes = append(r.Notes, "the listener does not answer a client with a certificate: the attack may measure nothing")
	}
	t0 := time.Now()
	deadline := t0.Add(x.o.duration)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var dialErrs int
	var dialErr error
	err := x.attacker.Do(func() error {
		d := &net.Dialer{Timeout: 2 * time.Second}
		for len(conns) < x.o.conns && time.Now().Before(deadline) && dialErrs < 100 {
			c, err := d.DialContext(x.ctx, "tcp", addr)
			if err != nil {
				dialErrs++
				if dialErr == nil {
					dialErr = err
				}
				continue
			}
			conns = append(conns, c)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// TLS handshakes without a client certificate on the even ones, 16 at
	// a time.
	var hsOK, hsFail atomic.Int64
	var hsErr atomic.Value
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(2) - 2)
				if i >= len(conns) || time.Now().After(deadline) {
					return
				}
				tc := tls.Client(conns[i], &tls.Config{RootCAs: x.pki.pool, ServerName: chaosServerName, MinVersion: tls.VersionTLS12})
				_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
				if err := tc.Handshake(); err != nil {
					hsFail.Add(1)
					hsErr.CompareAndSwap(nil, err.Error())
					continue
				}
				_ = tc.SetDeadline(time.Time{})
				conns[i] = tc
				hsOK.Add(1)
			}
		})
	}
	wg.Wait()
	opened := time.Since(t0)
	r.Rate = fmt.Sprintf("%.0f conn/s", float64(len(conns))/opened.Seconds())
	peak := readRes(n1.proc)
	note := fmt.Sprintf("%d connections open after %.2f s: %d completed TLS without a certificate (%d handshakes failed",
		len(conns), opened.Seconds(), hsOK.Load(), hsFail.Load())
	if e, ok := hsErr.Load().(string); ok {
		note += ": " + e
	}
	note += fmt.Sprintf("), %d never started TLS", len(conns)/2)
	if dialErrs > 0 {
		note += fmt.Sprintf("; %d connects failed (first: %v)", dialErrs, dialErr)
	}
	if peak.Err == nil {
		note += fmt.Sprintf("; n1's haad then held %d descriptors, %s, and %s", peak.FDs, mib(int64(peak.RSS)), x.established(addr))
	}
	r.Notes = append(r.Notes, note)
	if len(conns) < x.o.conns {
		r.Notes = append(r.Notes, fmt.Sprintf("only %d of %d connections could be opened", len(conns), x.o.conns))
	}
	if err := x.s.sleep(time.Until(deadline)); err != nil {
		return err
	}
	end := readRes(n1.proc)
	if end.Err == nil {
		r.Notes = append(r.Notes, fmt.Sprintf("at the end of the %v, before c1 closed them: n1 held %d descriptors, %s", x.o.duration, end.FDs, x.established(addr)))
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	r.Duration = time.Since(t0)
	// n1 may still hold connections c1 has closed (accepted late from its
	// backlog): the resources are measured once it has none left.
	t1 := time.Now()
	left := -1
	_ = lab.Poll(x.o.settle, 100*time.Millisecond, "n1 without connections on the port", func() (bool, error) {
		left = x.serverConns(addr)
		return left == 0 || x.s.err() != nil, nil
	})
	if left == 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("n1 had no connection left on the port %v after c1 closed them", time.Since(t1).Round(100*time.Millisecond)))
	} else {
		r.Notes = append(r.Notes, fmt.Sprintf("n1 still had %d connections on the port %v after c1 closed them", left, x.o.settle))
	}
	return nil
}

// serverConns counts n1's TCP connections on addr's port in any state but
// LISTEN and TIME-WAIT (accepted or in its backlog); -1 if unknown.
func (x *chaosLab) serverConns(addr string) int {
	_, port, _ := net.SplitHostPort(addr)
	out, err := x.nodes[0].n.Output("ss", "-Htan", "( sport = :"+port+" )")
	if err != nil {
		return -1
	}
	n := 0
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] != "LISTEN" && f[0] != "TIME-WAIT" {
			n++
		}
	}
	return n
}

// established counts the TCP connections n1 has established on addr's
// port (ss in its namespace), for the notes.
func (x *chaosLab) established(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	out, err := x.nodes[0].n.Output("ss", "-Htn", "state", "established", "( sport = :"+port+" )")
	if err != nil {
		return "established connections unknown (" + oneLine(err) + ")"
	}
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) != "" {
			n++
		}
	}
	return fmt.Sprintf("%d established connections on port %s (ss)", n, port)
}

// attackWatchers: attack 7. --streams connections to n2's unix socket, each
// with one WatchEvents stream that is never read (small flow-control
// windows, no BDP growth: the server's sends block), while n2's maintenance
// is turned on and off every 10 ms (events; n2 is a backup, so no
// transition), for --duration.
func (x *chaosLab) attackWatchers(r *chaosRow) error {
	n2 := x.nodes[1]
	ctx, cancel := context.WithCancel(x.ctx)
	defer cancel()
	var conns []*grpc.ClientConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	t0 := time.Now()
	deadline := t0.Add(x.o.duration)
	var openErr error
	for range x.o.streams {
		cc, err := grpc.NewClient("unix:"+n2.files.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
		if err != nil {
			openErr = err
			break
		}
		conns = append(conns, cc)
		st, err := haav1.NewAgentServiceClient(cc).WatchEvents(ctx, &haav1.WatchEventsRequest{})
		if err == nil {
			_, err = st.Header() // the subscription is in place; no Recv, ever
		}
		if err != nil {
			openErr = err
			break
		}
	}
	if openErr != nil {
		r.Notes = append(r.Notes, fmt.Sprintf("opening the streams: %v", openErr))
	}
	open := len(conns)
	if openErr != nil {
		open--
	}
	var toggles, failed int
	var toggleErr error
	on := false
	for time.Now().Before(deadline) && x.s.err() == nil {
		start := time.Now()
		cctx, ccancel := context.WithTimeout(x.ctx, 5*time.Second)
		_, err := n2.c.SetMaintenance(cctx, !on, 0)
		ccancel()
		if err != nil {
			failed++
			if toggleErr == nil {
				toggleErr = err
			}
		} else {
			on = !on
			toggles++
		}
		time.Sleep(time.Until(start.Add(10 * time.Millisecond)))
	}
	if on {
		cctx, ccancel := context.WithTimeout(x.ctx, 5*time.Second)
		if _, err := n2.c.SetMaintenance(cctx, false, 0); err != nil {
			r.Fail = append(r.Fail, "turning n2's maintenance off: "+oneLine(err))
		}
		ccancel()
	}
	peak := readRes(n2.proc)
	r.Rate = fmt.Sprintf("%d streams, %.0f events/s", open, float64(toggles)/time.Since(t0).Seconds())
	note := fmt.Sprintf("%d streams open on n2, never read; %d maintenance toggles on n2 (each a MaintenanceChanged event)", open, toggles)
	if failed > 0 {
		note += fmt.Sprintf(", %d failed (first: %v)", failed, oneLine(toggleErr))
		r.Fail = append(r.Fail, fmt.Sprintf("%d SetMaintenance calls failed", failed))
	}
	if peak.Err == nil {
		note += fmt.Sprintf("; at the end, streams still open, n2 held %s and %d descriptors", mib(int64(peak.RSS)), peak.FDs)
	}
	r.Notes = append(r.Notes, note)
	if open < x.o.streams {
		r.Fail = append(r.Fail, fmt.Sprintf("only %d of %d streams could be opened", open, x.o.streams))
	}
	cancel()
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	r.Duration = time.Since(t0)
	return nil
}

// rawCodec sends and receives messages as they are ([]byte): requests no
// client library would build.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.(*[]byte); ok {
		return *b, nil
	}
	return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// rawConn is a plain gRPC connection to node i's unix socket that sends
// and accepts large messages.
func (x *chaosLab) rawConn(i int) (*grpc.ClientConn, error) {
	return grpc.NewClient("unix:"+x.nodes[i].files.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20), grpc.MaxCallRecvMsgSize(64<<20)))
}

// runningConfig is node i's running configuration.
func (x *chaosLab) runningConfig(i int) (*haav1.AgentConfig, error) {
	ctx, cancel := context.WithTimeout(x.ctx, 10*time.Second)
	defer cancel()
	gc, err := x.nodes[i].c.Config(ctx)
	if err != nil {
		return nil, err
	}
	return gc.GetConfig(), nil
}

// malformedApplies: attack 8, a row per request, each sent raw to n1's
// unix socket: a 3 MB field value, an unknown field, undecodable bytes.
func (x *chaosLab) malformedApplies() []chaosAttack {
	req := func(id, name string, body func(base *haav1.AgentConfig) ([]byte, error)) chaosAttack {
		return chaosAttack{id: id, name: name, kind: kindAPI, run: func(r *chaosRow) error {
			base, err := x.runningConfig(0)
			if err != nil {
				return err
			}
			b, err := body(base)
			if err != nil {
				return err
			}
			return x.rawApply(r, b)
		}}
	}
	return []chaosAttack{
		req("8a", "API: ApplyConfig with a 3 MB field value (the node's name)", func(base *haav1.AgentConfig) ([]byte, error) {
			cfg := proto.Clone(base).(*haav1.AgentConfig)
			cfg.Name = strings.Repeat("a", 3<<20)
			return proto.Marshal(&haav1.ApplyConfigRequest{Config: cfg})
		}),
		req("8b", "API: ApplyConfig with an unknown protobuf field (the running configuration plus field 1000)", func(base *haav1.AgentConfig) ([]byte, error) {
			cfg, err := proto.Marshal(base)
			if err != nil {
				return nil, err
			}
			cfg = protowire.AppendTag(cfg, 1000, protowire.VarintType)
			cfg = protowire.AppendVarint(cfg, 1)
			b := protowire.AppendTag(nil, 1, protowire.BytesType) // ApplyConfigRequest.config
			return protowire.AppendBytes(b, cfg), nil
		}),
		req("8c", "API: ApplyConfig with undecodable bytes", func(*haav1.AgentConfig) ([]byte, error) {
			// Field 1, length-delimited, whose length runs past the end.
			return []byte{0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02, 0x03}, nil
		}),
	}
}

// rawApply sends the bytes b as an ApplyConfigRequest to n1 and records
// the status code (expected InvalidArgument).
func (x *chaosLab) rawApply(r *chaosRow, b []byte) error {
	cc, err := x.rawConn(0)
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(x.ctx, 30*time.Second)
	defer cancel()
	var resp []byte
	t0 := time.Now()
	err = cc.Invoke(ctx, "/haa.v1.AgentService/ApplyConfig", &b, &resp, grpc.ForceCodec(rawCodec{}))
	r.Duration = time.Since(t0)
	r.WantCode = "InvalidArgument"
	r.Code = status.Code(err).String()
	msg := status.Convert(err).Message()
	note := fmt.Sprintf("a %s request; answered %s in %v", sizeString(len(b)), r.Code, r.Duration.Round(time.Millisecond))
	if err != nil {
		note += fmt.Sprintf(", a %s message: %q", sizeString(len(msg)), clip(msg, 160))
	} else {
		var ar haav1.ApplyConfigResponse
		if uerr := proto.Unmarshal(resp, &ar); uerr == nil {
			note += fmt.Sprintf(": applied %v, changed %v, generation %d", ar.GetApplied(), ar.GetChanged(), ar.GetGeneration())
		}
	}
	r.Notes = append(r.Notes, note)
	return nil
}

// attack300VIPs: attack 9, first row. The running configuration plus an
// instance with 300 VIPs (an advert carries at most 255): expected refused
// with InvalidArgument naming the field. If applied, it is removed again.
func (x *chaosLab) attack300VIPs(r *chaosRow) error {
	base, err := x.runningConfig(0)
	if err != nil {
		return err
	}
	want := proto.Clone(base).(*haav1.AgentConfig)
	big := chaosInstance("VI_300", chaosVRIDBig)
	for i := range 300 {
		big.Vips = append(big.Vips, fmt.Sprintf("10.80.%d.%d/32", i/250, 1+i%250))
	}
	want.Instances = append(want.Instances, big)
	cc, err := x.rawConn(0)
	if err != nil {
		return err
	}
	defer cc.Close()
	api := haav1.NewAgentServiceClient(cc)
	ctx, cancel := context.WithTimeout(x.ctx, 60*time.Second)
	defer cancel()
	t0 := time.Now()
	resp, err := api.ApplyConfig(ctx, &haav1.ApplyConfigRequest{Config: want})
	r.Duration = time.Since(t0)
	r.WantCode = "InvalidArgument"
	r.Code = status.Code(err).String()
	if err != nil {
		fields := violations(err)
		r.Notes = append(r.Notes, fmt.Sprintf("answered %s: %q; fields %v", r.Code, clip(status.Convert(err).Message(), 200), fields))
		path := false
		for _, f := range fields {
			path = path || strings.Contains(f, "vips")
		}
		if r.Code == "InvalidArgument" && !path {
			r.Fail = append(r.Fail, "refused without the field path of the VIPs in the BadRequest detail")
		}
		return nil
	}
	r.Notes = append(r.Notes, fmt.Sprintf("applied as generation %d (applied %v): removed again", resp.GetGeneration(), resp.GetApplied()))
	if _, err := api.ApplyConfig(ctx, &haav1.ApplyConfigRequest{Config: base}); err != nil {
		return fmt.Errorf("removing VI_300 again: %w", err)
	}
	return nil
}

// violations lists the field paths of a BadRequest detail.
func violations(err error) []string {
	var out []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, v.GetField())
			}
		}
	}
	return out
}

// chaosInstance is an instance of n1 with no peer: master after its
// master-down interval.
func chaosInstance(name string, vrid int) *haav1.Instance {
	return &haav1.Instance{Name: name, Interface: "eth0", Vrid: uint32(vrid), Priority: proto.Uint32(chaosPrioMaster),
		Version: 3, AdvertInterval: durationpb.New(time.Second)}
}

// chaosVIPsPerInstance and chaosMaxVIPs size attack 9's large table.
const chaosVIPsPerInstance = 100

var chaosMaxVIPs = chaosVIPsPerInstance * len(chaosBigVRIDs())

// chaosBigVRIDs are the vrids free for attack 9's instances.
func chaosBigVRIDs() []int {
	var out []int
	for v := 1; v <= 255; v++ {
		switch v {
		case chaosVRIDv3, chaosVRIDv2, chaosVRIDDry, chaosVRIDBig:
			continue
		}
		out = append(out, v)
	}
	return out
}

func chaosBigInstances(vips int) int {
	return (vips + chaosVIPsPerInstance - 1) / chaosVIPsPerInstance
}

// chaosBigVIP is the i-th VIP of the large table: 10.100.0.1 onwards.
func chaosBigVIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(100 + i/(250*250)), byte(i / 250 % 250), byte(1 + i%250)})
}

// manyVIPs is the large configuration: base plus the instances.
func (x *chaosLab) manyVIPs(base *haav1.AgentConfig, vips int) (*haav1.AgentConfig, map[netip.Addr]bool) {
	want := proto.Clone(base).(*haav1.AgentConfig)
	vrids := chaosBigVRIDs()
	set := map[netip.Addr]bool{}
	for k := range chaosBigInstances(vips) {
		in := chaosInstance(fmt.Sprintf("VB_%03d", vrids[k]), vrids[k])
		for j := k * chaosVIPsPerInstance; j < min((k+1)*chaosVIPsPerInstance, vips); j++ {
			a := chaosBigVIP(j)
			set[a] = true
			in.Vips = append(in.Vips, a.String()+"/32")
		}
		want.Instances = append(want.Instances, in)
	}
	return want, set
}

// countVIPs counts the addresses of set on n1's eth0 (-1: the dump was
// interrupted by a change, or failed).
func (x *chaosLab) countVIPs(set map[netip.Addr]bool) (int, error) {
	h, err := x.nodes[0].n.Handle()
	if err != nil {
		return -1, err
	}
	defer h.Close()
	link, err := h.LinkByName(x.nodes[0].n.Iface)
	if err != nil {
		return -1, err
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_V4)
	if errors.Is(err, netlink.ErrDumpInterrupted) {
		return -1, nil
	}
	if err != nil {
		return -1, err
	}
	n := 0
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && set[ip] {
			n++
		}
	}
	return n, nil
}

// waitVIPs waits until want addresses of set are on n1's eth0, for limit
// at most, and returns how long it took (from t0) or how many there were.
func (x *chaosLab) waitVIPs(set map[netip.Addr]bool, want int, t0 time.Time, limit time.Duration) (time.Duration, int, error) {
	last := -1
	err := lab.Poll(limit-time.Since(t0), 200*time.Millisecond, fmt.Sprintf("%d VIPs on n1's eth0", want), func() (bool, error) {
		if err := x.s.err(); err != nil {
			return false, err
		}
		n, err := x.countVIPs(set)
		if err != nil {
			return false, err
		}
		if n >= 0 {
			last = n
		}
		return n == want, nil
	})
	return time.Since(t0), last, err
}

// chaosVIPPhase bounds each phase of attack 9's large table (adding,
// removing, adding again): 3 x --duration.
func (x *chaosLab) chaosVIPPhase() time.Duration { return 3 * x.o.duration }

// applyAsync sends one ApplyConfig of cfg to n1, bounded by limit, and
// returns a channel with its error and the call's duration.
func (x *chaosLab) applyAsync(api haav1.AgentServiceClient, cfg *haav1.AgentConfig, limit time.Duration) <-chan applyDone {
	done := make(chan applyDone, 1)
	go func() {
		ctx, cancel := context.WithTimeout(x.ctx, limit)
		defer cancel()
		t0 := time.Now()
		resp, err := api.ApplyConfig(ctx, &haav1.ApplyConfigRequest{Config: cfg})
		done <- applyDone{resp: resp, err: err, took: time.Since(t0)}
	}()
	return done
}

type applyDone struct {
	resp *haav1.ApplyConfigResponse
	err  error
	took time.Duration
}

// attackManyVIPs: attack 9, second row. Apply the running configuration
// plus --vips VIPs over instances of 100 (no peer: n1 becomes their master
// after the master-down interval, 3.2 s) and time until every VIP is on
// eth0; then apply the configuration without them and time until none is
// left. Each phase waits 3 x --duration at most. The API is timed all along
// (the row's p99). Refused with InvalidArgument is a per-node maximum: the
// row then passes.
func (x *chaosLab) attackManyVIPs(r *chaosRow, vips int) error {
	base, err := x.runningConfig(0)
	if err != nil {
		return err
	}
	want, set := x.manyVIPs(base, vips)
	x.manyWant, x.manySet, x.manyReapply = want, set, false
	cc, err := x.rawConn(0)
	if err != nil {
		return err
	}
	defer cc.Close()
	api := haav1.NewAgentServiceClient(cc)
	phase := x.chaosVIPPhase()
	t0 := time.Now()
	defer func() { r.Duration = time.Since(t0) }()
	add := <-x.applyAsync(api, want, phase)
	r.Code = status.Code(add.err).String()
	if add.err != nil {
		r.Notes = append(r.Notes, fmt.Sprintf("a %s request, answered %s in %v: %q; fields %v", sizeString(proto.Size(want)), r.Code,
			add.took.Round(time.Millisecond), clip(status.Convert(add.err).Message(), 200), violations(add.err)))
		if r.Code != "InvalidArgument" {
			r.Fail = append(r.Fail, fmt.Sprintf("neither applied nor refused against a per-node maximum: %s", r.Code))
		}
		x.manyWant = nil
		return nil
	}
	x.s.say("  %d VIPs: ApplyConfig returned after %v (generation %d); waiting for them on eth0", len(set), add.took.Round(time.Millisecond), add.resp.GetGeneration())
	took, n, err := x.waitVIPs(set, len(set), t0, phase)
	r.Rate = fmt.Sprintf("%d VIPs in %.1f s", max(n, 0), took.Seconds())
	if err != nil {
		r.Fail = append(r.Fail, fmt.Sprintf("only %d of %d VIPs on eth0 after %v", n, len(set), phase))
		r.Notes = append(r.Notes, fmt.Sprintf("added: ApplyConfig (%s) returned after %v; %d of %d VIPs on eth0 after %v: SIGTERM next",
			sizeString(proto.Size(want)), add.took.Round(time.Millisecond), n, len(set), phase))
		return nil
	}
	r.Notes = append(r.Notes, fmt.Sprintf("added: ApplyConfig (%s) returned after %v, all %d VIPs on eth0 after %v (the instances become master after their master-down interval, 3.2 s)",
		sizeString(proto.Size(want)), add.took.Round(time.Millisecond), len(set), took.Round(10*time.Millisecond)))

	x.s.say("  removing them: ApplyConfig of the configuration before")
	t1 := time.Now()
	del := x.applyAsync(api, base, phase)
	took, n, err = x.waitVIPs(set, 0, t1, phase)
	if err != nil {
		r.Fail = append(r.Fail, fmt.Sprintf("%d of %d VIPs still on eth0 %v after the apply that removes them", n, len(set), phase))
		r.Notes = append(r.Notes, fmt.Sprintf("removed: after %v, %d of %d VIPs still on eth0 (%.0f removed per second) and the apply had not returned: SIGTERM next",
			phase, n, len(set), float64(len(set)-n)/phase.Seconds()))
		return nil
	}
	var d applyDone
	select {
	case d = <-del:
	case <-time.After(phase - time.Since(t1)):
		d = applyDone{err: fmt.Errorf("no answer %v after the VIPs were gone", phase), took: phase}
	}
	if d.err != nil {
		r.Fail = append(r.Fail, "the apply that removes the VIPs: "+oneLine(d.err))
	}
	r.Notes = append(r.Notes, fmt.Sprintf("removed: none left on eth0 after %v, the ApplyConfig returned after %v",
		took.Round(10*time.Millisecond), d.took.Round(time.Millisecond)))
	x.manyReapply = true
	return nil
}

// manyVIPsSIGTERM: attack 9, after the measurements: with the large table
// applied again (if it could be removed in time; else as it stands), stop
// n1's haad with SIGTERM; no VIP may be left on eth0.
func (x *chaosLab) manyVIPsSIGTERM(r *chaosRow) {
	if x.manyWant == nil {
		return
	}
	held := "as they stood"
	if x.manyReapply {
		x.s.say("  %d VIPs again, then SIGTERM to n1's haad", len(x.manySet))
		cc, err := x.rawConn(0)
		if err != nil {
			r.Fail = append(r.Fail, "SIGTERM check: "+oneLine(err))
			return
		}
		defer cc.Close()
		t0 := time.Now()
		if d := <-x.applyAsync(haav1.NewAgentServiceClient(cc), x.manyWant, x.chaosVIPPhase()); d.err != nil {
			r.Notes = append(r.Notes, "SIGTERM check: applying the VIPs again: "+oneLine(d.err))
		}
		_, n, _ := x.waitVIPs(x.manySet, len(x.manySet), t0, x.chaosVIPPhase())
		held = fmt.Sprintf("%d of %d VIPs on eth0", n, len(x.manySet))
	} else {
		n, _ := x.countVIPs(x.manySet)
		held = fmt.Sprintf("%d of %d VIPs on eth0, an apply still running", n, len(x.manySet))
		x.s.say("  SIGTERM to n1's haad")
	}
	t1 := time.Now()
	p := x.nodes[0].proc
	stopErr := p.Stop(x.chaosVIPPhase())
	stopped := time.Since(t1)
	left, err := x.countVIPs(x.manySet)
	for tries := 0; err == nil && left < 0 && tries < 100; tries++ { // a dump interrupted
		time.Sleep(10 * time.Millisecond)
		left, err = x.countVIPs(x.manySet)
	}
	if err != nil || left < 0 {
		r.Fail = append(r.Fail, fmt.Sprintf("after SIGTERM: reading eth0: %v", err))
		return
	}
	r.Notes = append(r.Notes, fmt.Sprintf("SIGTERM with %s: haad gone after %v (%s); %d VIPs left on eth0",
		held, stopped.Round(10*time.Millisecond), exitString(stopErr), left))
	if left > 0 {
		r.Fail = append(r.Fail, fmt.Sprintf("%d VIPs left on eth0 after SIGTERM", left))
	}
}

func exitString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// attackDryRuns: attack 10. haactl apply --dry-run of n1's running
// configuration plus one instance (a dry run that would start it reads
// eth0's addresses) --dry-runs times, while one `ip -batch` process in
// n1's namespace holds 1,000 extra addresses on eth0 (a dump takes several
// messages) and adds and removes another in a loop: dumps get interrupted.
func (x *chaosLab) attackDryRuns(r *chaosRow) error {
	if x.haactl == "" {
		return errors.New(x.noHaactl)
	}
	n1 := x.nodes[0]
	base, err := x.runningConfig(0)
	if err != nil {
		return err
	}
	want := proto.Clone(base).(*haav1.AgentConfig)
	dry := chaosInstance("VI_DRY", chaosVRIDDry)
	dry.Vips = []string{chaosVIPDry.String() + "/32"}
	want.Instances = append(want.Instances, dry)
	js, err := protojson.Marshal(want)
	if err != nil {
		return err
	}
	y, err := yaml.JSONToYAML(js)
	if err != nil {
		return err
	}
	file := filepath.Join(x.dir, "dry-run.yaml")
	if err := os.WriteFile(file, y, 0o644); err != nil {
		return err
	}

	churn := exec.Command("ip", "-n", n1.n.NS.Name, "-force", "-batch", "-")
	stdin, err := churn.StdinPipe()
	if err != nil {
		return err
	}
	var churnOut bytes.Buffer
	churn.Stdout, churn.Stderr = io.Discard, &limitedWriter{w: &churnOut, n: 4096}
	if err := churn.Start(); err != nil {
		return err
	}
	var extra strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&extra, "address add 10.79.%d.%d/32 dev eth0\n", i/250, 1+i%250)
	}
	stopChurn := make(chan struct{})
	var lines atomic.Int64
	churnDone := make(chan error, 1)
	go func() {
		if _, err := io.WriteString(stdin, extra.String()); err != nil {
			churnDone <- err
			return
		}
		for {
			select {
			case <-stopChurn:
				churnDone <- nil
				return
			default:
			}
			if _, err := io.WriteString(stdin, "address add 10.79.9.9/32 dev eth0\naddress del 10.79.9.9/32 dev eth0\n"); err != nil {
				churnDone <- err
				return
			}
			lines.Add(2)
		}
	}()
	stop := func() error {
		close(stopChurn)
		err := <-churnDone
		var del strings.Builder
		for i := range 1000 {
			fmt.Fprintf(&del, "address del 10.79.%d.%d/32 dev eth0\n", i/250, 1+i%250)
		}
		_, _ = io.WriteString(stdin, "address del 10.79.9.9/32 dev eth0\n"+del.String())
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- churn.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = churn.Process.Kill()
			<-done
		}
		return err
	}
	// Let the churn start: the 1,000 addresses are on eth0.
	time.Sleep(300 * time.Millisecond)

	t0 := time.Now()
	deadline := t0.Add(3 * x.o.duration)
	var runs, fails int
	var first string
	for runs < x.o.dryRuns && time.Now().Before(deadline) && x.s.err() == nil {
		ctx, cancel := context.WithTimeout(x.ctx, 30*time.Second)
		out, err := exec.CommandContext(ctx, x.haactl, "--target", "unix://"+n1.files.Socket, "apply", "-f", file, "--dry-run").CombinedOutput()
		cancel()
		runs++
		if err == nil && !strings.Contains(string(out), "Dry run: nothing applied") {
			err = errors.New("no dry-run summary in its output")
		}
		if err != nil {
			fails++
			if first == "" {
				first = fmt.Sprintf("run %d: %v: %s", runs, err, clip(strings.Join(strings.Fields(string(out)), " "), 300))
			}
		}
	}
	elapsed := time.Since(t0)
	changes := lines.Load()
	cerr := stop()
	r.Duration = elapsed
	r.Rate = fmt.Sprintf("%d dry runs; %.0f addr changes/s", runs, float64(changes)/elapsed.Seconds())
	note := fmt.Sprintf("%d of %d dry runs failed; meanwhile `ip -batch` added and removed an address %d times on n1's eth0 (1,000 extra addresses held)",
		fails, runs, changes/2)
	if first != "" {
		note += "; first failure: " + first
	}
	if cerr != nil {
		note += fmt.Sprintf("; the churn stopped early: %v %s", cerr, clip(churnOut.String(), 200))
	}
	r.Notes = append(r.Notes, note)
	if fails > 0 {
		r.Fail = append(r.Fail, fmt.Sprintf("%d of %d dry runs failed", fails, runs))
	}
	if runs < x.o.dryRuns {
		r.Fail = append(r.Fail, fmt.Sprintf("only %d of %d dry runs in %v", runs, x.o.dryRuns, 3*x.o.duration))
	}
	return nil
}

// limitedWriter keeps the first n bytes written to it.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(l.n, len(p))
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

// clip shortens s to n bytes.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// sizeString formats a byte count.
func sizeString(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}
