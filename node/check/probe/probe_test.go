package probe

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/haa-dev/haa/node/check"

	"github.com/haa-dev/haa/deploy/lab"
	"github.com/miekg/dns"
)

// Timeouts of the probes under test: probes that must time out get a
// short one to keep the package quick, the others a long one they never
// need, even on a busy machine. The margin is generous for CI.
const (
	testTimeout = 400 * time.Millisecond
	longTimeout = 10 * time.Second
	margin      = 2 * time.Second
)

// spec returns a Spec of kind for target with the long timeout.
func spec(kind check.Kind, target netip.AddrPort) check.Spec {
	return check.Spec{Kind: kind, Target: target, Interval: longTimeout, Timeout: longTimeout, RetryDelay: time.Second, Rise: 1, Fall: 1}
}

// probeCase is one Probe and what it must say.
type probeCase struct {
	name   string
	spec   check.Spec
	ok     bool
	detail string // the Detail, or a prefix of it when it ends with "*"
	// slow: the probe runs with testTimeout and must take about that.
	// Every probe must end within its timeout and a margin.
	slow bool
}

// runCases runs the cases in parallel and returns when they are done.
func runCases(t *testing.T, cases []probeCase) {
	t.Helper()
	t.Run("cases", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				checkProbe(t, c)
			})
		}
	})
}

func checkProbe(t *testing.T, c probeCase) {
	t.Helper()
	if c.slow {
		c.spec.Timeout = testTimeout
	}
	start := time.Now()
	r := Probe(context.Background(), c.spec)
	took := time.Since(start)
	if r.OK != c.ok || !detailMatches(r.Detail, c.detail) {
		t.Errorf("Probe = OK %v %q, want OK %v %q", r.OK, r.Detail, c.ok, c.detail)
	}
	if c.spec.Kind != check.Exec && r.Weight != -1 {
		t.Errorf("Weight = %d, want -1", r.Weight)
	}
	if r.Duration <= 0 || r.Duration > took {
		t.Errorf("Duration = %v, want in (0, %v]", r.Duration, took)
	}
	if limit := c.spec.Timeout + margin; took > limit {
		t.Errorf("took %v, want at most %v", took, limit)
	}
	if c.slow && took < c.spec.Timeout-50*time.Millisecond {
		t.Errorf("took %v, want about the timeout %v", took, c.spec.Timeout)
	}
}

func detailMatches(got, want string) bool {
	if p, ok := strings.CutSuffix(want, "*"); ok {
		return strings.HasPrefix(got, p)
	}
	return got == want
}

// addrPort returns a's address and port.
func addrPort(t *testing.T, a net.Addr) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// refusedTCP returns a port bound on 127.0.0.1 but not listening: a
// connection to it is refused, and no other test can take the port.
func refusedTCP(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*syscall.SockaddrInet4).Port))
}

// closedUDP returns a UDP port of 127.0.0.1 that was free a moment ago: a
// datagram to it brings back port unreachable.
func closedUDP(t *testing.T) netip.AddrPort {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := addrPort(t, c.LocalAddr())
	c.Close()
	return ap
}

// hangingTCP returns the address of a listener whose accept queue is full:
// a connection attempt gets no answer at all.
func hangingTCP(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*syscall.SockaddrInet4).Port))
	for range 8 {
		c, err := net.DialTimeout("tcp", ap.String(), 500*time.Millisecond)
		if err != nil {
			return ap // the queue is full: SYNs are dropped
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("could not fill a listener's accept queue")
	return ap
}

// silentTCP returns the address of a listener that accepts connections
// and never says or reads anything.
func silentTCP(t *testing.T) netip.AddrPort {
	t.Helper()
	return serveTCP(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
}

// serveTCP runs handle for every connection to a new listener on
// 127.0.0.1 until the test ends.
func serveTCP(t *testing.T, handle func(net.Conn)) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return addrPort(t, l.Addr())
}

// serveUDP answers every datagram to a new socket on 127.0.0.1 with what
// reply returns (nil: no answer), after delay.
func serveUDP(t *testing.T, delay time.Duration, reply func([]byte) []byte) netip.AddrPort {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { c.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			if r := reply(slices.Clone(buf[:n])); r != nil {
				time.Sleep(delay)
				_, _ = c.WriteTo(r, from)
			}
		}
	}()
	return addrPort(t, c.LocalAddr())
}

func TestProbeTCP(t *testing.T) {
	t.Parallel()
	up := serveTCP(t, func(net.Conn) {})
	runCases(t, []probeCase{
		{name: "ok", spec: spec(check.TCP, up), ok: true, detail: "connected"},
		{name: "refused", spec: spec(check.TCP, refusedTCP(t)), detail: "connection refused"},
		{name: "hanging", spec: spec(check.TCP, hangingTCP(t)), detail: "timeout after 400ms", slow: true},
	})
}

func TestProbeHTTP(t *testing.T) {
	t.Parallel()
	const body = "hello, all is well\n"
	sum := md5.Sum([]byte(body))
	digest := hex.EncodeToString(sum[:])
	var mu sync.Mutex
	var hosts []string
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hosts = append(hosts, r.Host)
		mu.Unlock()
		io.WriteString(w, body)
	})
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(testTimeout + 300*time.Millisecond):
			io.WriteString(w, body)
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		// More than MaxBody: the check reads MaxBody, then stops.
		w.Write([]byte(strings.Repeat("x", MaxBody)))
		w.Write([]byte("ok"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	target := addrPort(t, srv.Listener.Addr())

	with := func(h check.HTTPSpec) check.Spec {
		s := spec(check.HTTP, target)
		s.HTTP = &h
		return s
	}
	runCases(t, []probeCase{
		{name: "ok", spec: with(check.HTTPSpec{Path: "/"}), ok: true, detail: "status 200"},
		{name: "no spec", spec: spec(check.HTTP, target), ok: true, detail: "status 200"},
		{name: "digest and regex", spec: with(check.HTTPSpec{Path: "/", Digest: digest, Regex: regexp.MustCompile(`all is \w+`)}), ok: true, detail: "status 200"},
		{name: "upper-case digest", spec: with(check.HTTPSpec{Path: "/", Digest: strings.ToUpper(digest)}), ok: true, detail: "status 200"},
		{name: "status", spec: with(check.HTTPSpec{Path: "/down"}), detail: "status 503 (want 200-299)"},
		{name: "codes", spec: with(check.HTTPSpec{Path: "/down", Codes: []int{200, 204}}), detail: "status 503 (want 200, 204)"},
		{name: "code 503 wanted", spec: with(check.HTTPSpec{Path: "/down", Codes: []int{503}}), ok: true, detail: "status 503"},
		{name: "redirect not followed", spec: with(check.HTTPSpec{Path: "/moved"}), detail: "status 301 (want 200-299)"},
		{name: "redirect wanted", spec: with(check.HTTPSpec{Path: "/moved", Codes: []int{301}}), ok: true, detail: "status 301"},
		{name: "digest", spec: with(check.HTTPSpec{Path: "/", Digest: "0123456789abcdef0123456789abcdef"}),
			detail: fmt.Sprintf("digest %s... (want 01234567...)", digest[:8])},
		{name: "regex", spec: with(check.HTTPSpec{Path: "/", Regex: regexp.MustCompile(`^ok`)}), detail: "body does not match ^ok"},
		{name: "body limit", spec: with(check.HTTPSpec{Path: "/big", Regex: regexp.MustCompile(`ok`)}), detail: "body does not match ok"},
		{name: "not found", spec: with(check.HTTPSpec{Path: "/nothing/here"}), detail: "status 404 (want 200-299)"},
		{name: "refused", spec: spec(check.HTTP, refusedTCP(t)), detail: "connection refused"},
		{name: "slow", spec: with(check.HTTPSpec{Path: "/slow"}), detail: "timeout after 400ms", slow: true},
		{name: "hanging", spec: spec(check.HTTP, silentTCP(t)), detail: "timeout after 400ms", slow: true},
		{name: "no connect", spec: spec(check.HTTP, hangingTCP(t)), detail: "timeout after 400ms", slow: true},
		{name: "not http", spec: spec(check.HTTP, serveTCP(t, func(c net.Conn) {
			bufio.NewReader(c).ReadString('\n')
			io.WriteString(c, "SSH-2.0-x\r\n\r\n")
		})), detail: "get: *"},
	})

	t.Run("host header", func(t *testing.T) {
		mu.Lock()
		hosts = nil
		mu.Unlock()
		checkProbe(t, probeCase{spec: with(check.HTTPSpec{Path: "/"}), ok: true, detail: "status 200"})
		checkProbe(t, probeCase{spec: with(check.HTTPSpec{Path: "/", Host: "www.example.com"}), ok: true, detail: "status 200"})
		mu.Lock()
		defer mu.Unlock()
		if want := []string{target.String(), "www.example.com"}; !slices.Equal(hosts, want) {
			t.Errorf("Host headers %q, want %q", hosts, want)
		}
	})
}

func TestProbeHTTPS(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secure ok")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshakes
	t.Cleanup(srv.Close)
	target := addrPort(t, srv.Listener.Addr())
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(t.TempDir(), "junk.pem")
	if err := os.WriteFile(notPEM, []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	with := func(h check.HTTPSpec) check.Spec {
		s := spec(check.HTTPS, target)
		h.Path = "/"
		s.HTTP = &h
		return s
	}
	runCases(t, []probeCase{
		{name: "verify off", spec: with(check.HTTPSpec{Regex: regexp.MustCompile(`^secure`)}), ok: true, detail: "status 200"},
		{name: "verify on", spec: with(check.HTTPSpec{TLSVerify: true}), detail: "tls: x509: certificate signed by unknown authority"},
		{name: "verify with ca", spec: with(check.HTTPSpec{TLSVerify: true, CAFile: ca}), ok: true, detail: "status 200"},
		// httptest's certificate is for example.com and 127.0.0.1.
		{name: "server name from host", spec: with(check.HTTPSpec{TLSVerify: true, CAFile: ca, Host: "example.com:8443"}), ok: true, detail: "status 200"},
		{name: "wrong server name", spec: with(check.HTTPSpec{TLSVerify: true, CAFile: ca, ServerName: "other.example.org"}), detail: "tls: x509: certificate is valid for example.com*"},
		{name: "missing ca file", spec: with(check.HTTPSpec{TLSVerify: true, CAFile: ca + ".missing"}), detail: "ca file " + ca + ".missing: no such file or directory"},
		{name: "bad ca file", spec: with(check.HTTPSpec{TLSVerify: true, CAFile: notPEM}), detail: "ca file " + notPEM + ": no PEM certificate"},
		{name: "plain http server", spec: spec(check.HTTPS, serveTCP(t, func(c net.Conn) {
			io.WriteString(c, "HTTP/1.0 400 Bad Request\r\n\r\n")
		})), detail: "get: *"},
		{name: "refused", spec: spec(check.HTTPS, refusedTCP(t)), detail: "connection refused"},
		{name: "hanging", spec: spec(check.HTTPS, silentTCP(t)), detail: "timeout after 400ms", slow: true},
	})
}

// smtpServer runs a tiny SMTP server: greeting, then a reply to each
// command. It records the commands.
type smtpServer struct {
	greeting string        // with CRLFs
	helo     string        // reply to HELO, with CRLF
	delay    time.Duration // before the greeting
	mu       sync.Mutex
	got      []string
}

func (s *smtpServer) serve(c net.Conn) {
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	io.WriteString(c, s.greeting)
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		s.mu.Lock()
		s.got = append(s.got, line)
		s.mu.Unlock()
		if strings.HasPrefix(line, "QUIT") {
			io.WriteString(c, "221 bye\r\n")
			return
		}
		io.WriteString(c, s.helo)
	}
}

func TestProbeSMTP(t *testing.T) {
	t.Parallel()
	good := &smtpServer{greeting: "220-mail.example.com ESMTP\r\n220 welcome\r\n", helo: "250 mail.example.com\r\n"}
	goodAddr := serveTCP(t, good.serve)
	with := func(target netip.AddrPort) check.Spec {
		s := spec(check.SMTP, target)
		s.SMTP = &check.SMTPSpec{Helo: "lb1.example.com"}
		return s
	}
	runCases(t, []probeCase{
		{name: "ok", spec: with(goodAddr), ok: true, detail: "helo 250"},
		{name: "greeting 554", spec: with(serveTCP(t, (&smtpServer{greeting: "554 go away\r\n", helo: "250 ok\r\n"}).serve)), detail: "greeting 554"},
		{name: "helo 550", spec: with(serveTCP(t, (&smtpServer{greeting: "220 hi\r\n", helo: "550 no\r\n"}).serve)), detail: "helo 550"},
		{name: "not smtp", spec: with(serveTCP(t, (&smtpServer{greeting: "hello there\r\n"}).serve)), detail: "greeting: not an check.SMTP reply"},
		{name: "closed", spec: with(serveTCP(t, func(net.Conn) {})), detail: "greeting: connection closed"},
		{name: "refused", spec: with(refusedTCP(t)), detail: "connection refused"},
		{name: "slow", spec: with(serveTCP(t, (&smtpServer{greeting: "220 hi\r\n", helo: "250 ok\r\n", delay: testTimeout + 300*time.Millisecond}).serve)), detail: "timeout after 400ms", slow: true},
		{name: "hanging", spec: with(silentTCP(t)), detail: "timeout after 400ms", slow: true},
		{name: "no helo reply", spec: with(serveTCP(t, func(c net.Conn) {
			io.WriteString(c, "220 hi\r\n")
			io.Copy(io.Discard, c)
		})), detail: "timeout after 400ms", slow: true},
	})
	t.Run("conversation", func(t *testing.T) {
		good.mu.Lock()
		defer good.mu.Unlock()
		// The "ok" case ran above.
		if len(good.got) < 2 || good.got[0] != "HELO lb1.example.com\r\n" || good.got[1] != "QUIT\r\n" {
			t.Errorf("server got %q, want HELO lb1.example.com, QUIT", good.got)
		}
	})
}

// serveDNS runs a miekg/dns server on 127.0.0.1: ok. answers, fail.
// gets SERVFAIL, slow. answers after the timeout, anything else NXDOMAIN.
func serveDNS(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) }, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		switch q.Question[0].Name {
		case "ok.example.":
			rr, _ := dns.NewRR("ok.example. 60 IN A 192.0.2.1")
			m.Answer = append(m.Answer, rr)
		case "empty.example.":
		case "fail.example.":
			m.Rcode = dns.RcodeServerFailure
		case "slow.example.":
			time.Sleep(testTimeout + 300*time.Millisecond)
		default:
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})}
	served := make(chan error, 1)
	go func() { served <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-served:
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown() })
	return addrPort(t, pc.LocalAddr())
}

func TestProbeDNS(t *testing.T) {
	t.Parallel()
	target := serveDNS(t)
	ask := func(target netip.AddrPort, typ, name string) check.Spec {
		s := spec(check.DNS, target)
		s.DNS = &check.DNSSpec{Type: typ, Name: name}
		return s
	}
	runCases(t, []probeCase{
		{name: "ok", spec: ask(target, "A", "ok.example."), ok: true, detail: "rcode NOERROR, 1 answers"},
		{name: "no answer", spec: ask(target, "SOA", "empty.example."), ok: true, detail: "rcode NOERROR, 0 answers"},
		{name: "name without dot", spec: ask(target, "A", "ok.example"), ok: true, detail: "rcode NOERROR, 1 answers"},
		{name: "servfail", spec: ask(target, "A", "fail.example."), detail: "rcode SERVFAIL"},
		{name: "nxdomain", spec: ask(target, "A", "nope.example."), detail: "rcode NXDOMAIN"},
		{name: "bad type", spec: ask(target, "BOGUS", "ok.example."), detail: "unknown query type BOGUS"},
		{name: "refused", spec: ask(closedUDP(t), "SOA", "."), detail: "connection refused"},
		{name: "slow", spec: ask(target, "A", "slow.example."), detail: "timeout after 400ms", slow: true},
		{name: "hanging", spec: ask(serveUDP(t, 0, func([]byte) []byte { return nil }), "SOA", "."), detail: "timeout after 400ms", slow: true},
		{name: "garbage", spec: ask(serveUDP(t, 0, func([]byte) []byte { return []byte("garbage") }), "SOA", "."), detail: "bad reply: dns: short read", slow: true},
	})
}

func TestProbeUDP(t *testing.T) {
	t.Parallel()
	pong := serveUDP(t, 0, func(b []byte) []byte { return append([]byte("pong "), b...) })
	wrong := serveUDP(t, 0, func([]byte) []byte { return []byte("xyz") })
	slow := serveUDP(t, testTimeout+300*time.Millisecond, func([]byte) []byte { return []byte("pong") })
	silent := serveUDP(t, 0, func([]byte) []byte { return nil })
	with := func(target netip.AddrPort, payload, expect string) check.Spec {
		s := spec(check.UDP, target)
		s.UDP = &check.UDPSpec{Payload: []byte(payload)}
		if expect != "" {
			s.UDP.Expect = []byte(expect)
		}
		return s
	}
	runCases(t, []probeCase{
		{name: "reply", spec: with(pong, "ping", "pong"), ok: true, detail: "reply of 9 bytes"},
		{name: "reply not needed", spec: with(pong, "ping", ""), ok: true, detail: "reply of 9 bytes"},
		{name: "empty payload", spec: with(pong, "", "pong"), ok: true, detail: "reply of 5 bytes"},
		{name: "no spec", spec: spec(check.UDP, pong), ok: true, detail: "reply of 5 bytes"},
		{name: "wrong reply", spec: with(wrong, "ping", "pong"), detail: `reply "xyz" (want prefix "pong")`},
		{name: "refused", spec: with(closedUDP(t), "ping", ""), detail: "connection refused"},
		{name: "refused with expect", spec: with(closedUDP(t), "ping", "pong"), detail: "connection refused"},
		{name: "silent ok", spec: with(silent, "ping", ""), ok: true, detail: "no reply, no error", slow: true},
		{name: "hanging", spec: with(silent, "ping", "pong"), detail: "no reply (timeout after 400ms)", slow: true},
		{name: "slow", spec: with(slow, "ping", "pong"), detail: "no reply (timeout after 400ms)", slow: true},
	})
}

// requireRoot skips a test that needs raw sockets unless running as root,
// or fails it when HAA_REQUIRE_NETNS=1.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv(lab.RequireEnv) == "1" {
			t.Fatalf("ICMP echo needs root and %s=1", lab.RequireEnv)
		}
		t.Skip("ICMP echo needs root")
	}
}

func TestProbePing(t *testing.T) {
	requireRoot(t)
	runCases(t, []probeCase{
		{name: "ok", spec: spec(check.Ping, netip.MustParseAddrPort("127.0.0.1:0")), ok: true, detail: "echo reply"},
		{name: "mapped", spec: spec(check.Ping, netip.MustParseAddrPort("[::ffff:127.0.0.1]:0")), ok: true, detail: "echo reply"},
	})
	t.Run("ipv6", func(t *testing.T) {
		if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
			t.Skipf("no IPv6 loopback: %v", err)
		} else {
			c.Close()
		}
		checkProbe(t, probeCase{spec: spec(check.Ping, netip.MustParseAddrPort("[::1]:0")), ok: true, detail: "echo reply"})
	})
}

// TestProbePingNoReply pings in a namespace whose kernel ignores echo
// requests, and an address it has no route to.
func TestProbePingNoReply(t *testing.T) {
	lab.Require(t)
	ns, err := lab.NewNS(lab.UniqueName("chkping"))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := ns.WriteSysctl("net/ipv4/icmp_echo_ignore_all", "1"); err != nil {
		t.Fatal(err)
	}
	cases := []probeCase{
		{name: "ignored", spec: spec(check.Ping, netip.MustParseAddrPort("127.0.0.1:0")), detail: "timeout after 400ms", slow: true},
		{name: "no route", spec: spec(check.Ping, netip.MustParseAddrPort("10.213.77.1:0")), detail: "network unreachable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := ns.Do(func() error { checkProbe(t, c); return nil }); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// fakeExec is a Runner that returns code and detail, or blocks until ctx
// ends when hang is set. It records the environment and timeout it got.
type fakeExec struct {
	code   int
	detail string
	hang   bool
	env    []string
	tmo    time.Duration
}

func (f *fakeExec) Run(ctx context.Context, timeout time.Duration, env []string) (int, string) {
	f.env, f.tmo = env, timeout
	if f.hang {
		<-ctx.Done()
		return -1, "killed"
	}
	return f.code, f.detail
}

func TestProbeExec(t *testing.T) {
	target := netip.MustParseAddrPort("192.0.2.7:8080")
	for _, c := range []struct {
		name    string
		run     *fakeExec
		dynamic bool
		ok      bool
		weight  int
		detail  string
	}{
		{"exit 0", &fakeExec{code: 0}, false, true, -1, "exit 0"},
		{"exit 1", &fakeExec{code: 1}, false, false, -1, "exit 1"},
		{"exit 2 not dynamic", &fakeExec{code: 2}, false, false, -1, "exit 2"},
		{"exit 1 with detail", &fakeExec{code: 1, detail: "no such file"}, false, false, -1, "exit 1: no such file"},
		{"not started", &fakeExec{code: -1, detail: "fork/exec /x: permission denied"}, false, false, -1, "fork/exec /x: permission denied"},
		{"not started, no detail", &fakeExec{code: -1}, false, false, -1, "did not run"},
		{"dynamic 0", &fakeExec{code: 0}, true, true, -1, "exit 0"},
		{"dynamic 1", &fakeExec{code: 1}, true, false, -1, "exit 1"},
		{"dynamic 2", &fakeExec{code: 2}, true, true, 0, "exit 2 (weight 0)"},
		{"dynamic 5", &fakeExec{code: 5}, true, true, 3, "exit 5 (weight 3)"},
		{"dynamic 255", &fakeExec{code: 255}, true, true, 253, "exit 255 (weight 253)"},
		{"dynamic killed", &fakeExec{code: -1, detail: "killed by signal 9"}, true, false, -1, "killed by signal 9"},
		{"hanging", &fakeExec{hang: true}, false, false, -1, "timeout after 3s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := check.Spec{Kind: check.Exec, Target: target, Interval: 5 * time.Second, Timeout: 3 * time.Second,
					Exec: &check.ExecSpec{Run: c.run, Dynamic: c.dynamic}}
				r := Probe(context.Background(), s)
				if r.OK != c.ok || r.Weight != c.weight || r.Detail != c.detail {
					t.Errorf("Probe = %+v, want OK %v Weight %d Detail %q", r, c.ok, c.weight, c.detail)
				}
				want := time.Duration(0)
				if c.run.hang {
					want = 3 * time.Second
				}
				if r.Duration != want {
					t.Errorf("Duration = %v, want %v", r.Duration, want)
				}
				if env := []string{"HAA_RS_ADDRESS=192.0.2.7", "HAA_RS_PORT=8080"}; !slices.Equal(c.run.env, env) {
					t.Errorf("env %q, want %q", c.run.env, env)
				}
				if c.run.tmo != 3*time.Second {
					t.Errorf("timeout %v, want 3s", c.run.tmo)
				}
			})
		})
	}
}

func TestProbeCanceled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(context.Background())
		time.AfterFunc(time.Second, func() { cancel(errors.New("scheduler closed")) })
		r := Probe(ctx, check.Spec{Kind: check.Exec, Timeout: 3 * time.Second, Exec: &check.ExecSpec{Run: &fakeExec{hang: true}}})
		if r.OK || r.Detail != "killed" || r.Duration != time.Second {
			t.Errorf("Probe = %+v, want failed after 1s, the runner's detail", r)
		}
	})
	// A network check canceled from outside says so.
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(50*time.Millisecond, func() { cancel(errors.New("scheduler closed")) })
	s := spec(check.SMTP, silentTCP(t))
	s.Timeout = 5 * time.Second
	start := time.Now()
	r := Probe(ctx, s)
	if r.OK || r.Detail != "canceled: scheduler closed" || time.Since(start) > margin {
		t.Errorf("Probe = %+v after %v, want canceled at once", r, time.Since(start))
	}
}

func TestProbeUnknownKind(t *testing.T) {
	r := Probe(context.Background(), check.Spec{Kind: "gopher", Timeout: time.Second})
	if r.OK || r.Detail != `unknown check kind "gopher"` || r.Weight != -1 {
		t.Errorf("Probe = %+v", r)
	}
}
