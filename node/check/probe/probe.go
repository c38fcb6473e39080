package probe

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/haa-dev/haa/node/check"

	"github.com/miekg/dns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// MaxBody is how much of an HTTP response body a check reads: Digest and
// Regex apply to at most this much.
const MaxBody = 1 << 20

// maxReads bounds the datagrams a dns or ping check reads while it waits
// for its own reply among others (each read is also bounded by the
// deadline).
const maxReads = 64

// maxPingReads is the same for ping: a raw ICMP socket sees every echo
// reply of the host, those of many checks in flight included.
const maxPingReads = 4096

// timeoutError is the cause of a probe's context ending at its Timeout.
type timeoutError struct{ d time.Duration }

func (e timeoutError) Error() string { return "timeout after " + e.d.String() }

// probe is one running check: its context, ending at the Timeout, and the
// Spec.
type probe struct {
	ctx context.Context
	s   check.Spec
}

// Probe runs one check of s and returns its outcome. It gives up after
// s.Timeout (when > 0) or when ctx ends, whichever comes first. Duration
// is always set; Weight is -1 unless a dynamic exec check sets it.
func Probe(ctx context.Context, s check.Spec) check.Result {
	start := time.Now()
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, s.Timeout, timeoutError{s.Timeout})
		defer cancel()
	}
	p := probe{ctx: ctx, s: s}
	var r check.Result
	switch s.Kind {
	case check.TCP:
		r = p.tcp()
	case check.HTTP, check.HTTPS:
		r = p.http()
	case check.SMTP:
		r = p.smtp()
	case check.DNS:
		r = p.dns()
	case check.UDP:
		r = p.udp()
	case check.Ping:
		r = p.ping()
	case check.Exec:
		r = p.exec()
	default:
		r = check.Result{Detail: fmt.Sprintf("unknown check kind %q", s.Kind)}
	}
	if !r.OK || s.Kind != check.Exec {
		r.Weight = -1
	}
	r.Duration = time.Since(start)
	return r
}

// ok returns a healthy Result saying detail.
func ok(detail string) check.Result { return check.Result{OK: true, Weight: -1, Detail: detail} }

// fail returns a failed Result saying detail.
func fail(detail string) check.Result { return check.Result{Weight: -1, Detail: detail} }

// failErr returns a failed Result describing err, prefixed with what was
// being done when it is not a timeout, a refusal or a cancellation.
func (p probe) failErr(what string, err error) check.Result {
	d, plain := p.describe(err)
	if !plain && what != "" {
		d = what + ": " + d
	}
	return fail(d)
}

// describe returns err in a few words, and whether those words speak for
// themselves (timeout, refused, canceled) without saying what failed.
func (p probe) describe(err error) (string, bool) {
	// The cause is read once: read twice, a deadline passing between the
	// reads made a timeout "canceled: timeout after ..." (seen in CI under
	// the race detector).
	cause := context.Cause(p.ctx)
	var te timeoutError
	switch {
	case errors.As(cause, &te):
		return te.Error(), true
	case cause != nil:
		if cause != context.Canceled {
			return "canceled: " + cause.Error(), true
		}
		return "canceled", true
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return timeoutError{p.s.Timeout}.Error(), true
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused", true
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset", true
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable", true
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable", true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed", false
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error(), false
	}
	return err.Error(), false
}

// dial connects to the target with network ("tcp" or "udp") until the
// probe's context ends.
func (p probe) dial(network string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(p.ctx, network, p.s.Target.String())
}

// bind makes c's I/O end with the probe: at its deadline, or at once when
// its context is canceled. The returned func undoes the latter.
func (p probe) bind(c interface{ SetDeadline(time.Time) error }) (stop func() bool) {
	if d, ok := p.ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	return context.AfterFunc(p.ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
}

// tcp connects and closes at once.
func (p probe) tcp() check.Result {
	c, err := p.dial("tcp")
	if err != nil {
		return p.failErr("connect", err)
	}
	_ = c.Close()
	return ok("connected")
}

// hostPort returns the target as a URL host: the address, with the port
// unless it is the scheme's default.
func (p probe) hostPort() string {
	a := p.s.Target
	if (p.s.Kind == check.HTTP && a.Port() == 80) || (p.s.Kind == check.HTTPS && a.Port() == 443) {
		if a.Addr().Unmap().Is6() {
			return "[" + a.Addr().String() + "]"
		}
		return a.Addr().Unmap().String()
	}
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()).String()
}

// http GETs the path, checks the status, then the body's digest and regex.
func (p probe) http() check.Result {
	h := p.s.HTTP
	if h == nil {
		h = &check.HTTPSpec{}
	}
	path := h.Path
	if path == "" {
		path = "/"
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            (&net.Dialer{}).DialContext,
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	defer tr.CloseIdleConnections()
	scheme := "http"
	if p.s.Kind == check.HTTPS {
		scheme = "https"
		conf, err := tlsConfig(h, p.s.Target.Addr())
		if err != nil {
			return fail(err.Error())
		}
		tr.TLSClientConfig = conf
	}
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(p.ctx, http.MethodGet, scheme+"://"+p.hostPort()+path, nil)
	if err != nil {
		return fail("bad url: " + err.Error())
	}
	if h.Host != "" {
		req.Host = h.Host
	}
	req.Header.Set("User-Agent", "haa-check")
	resp, err := client.Do(req)
	if err != nil {
		var ce *tls.CertificateVerificationError
		if errors.As(err, &ce) && ce.Err != nil {
			return fail("tls: " + ce.Err.Error())
		}
		var ue *url.Error
		if errors.As(err, &ue) && ue.Err != nil {
			err = ue.Err // without "Get \"https://...\"", which the check knows
		}
		return p.failErr("get", err)
	}
	defer resp.Body.Close()
	if !codeOK(h.Codes, resp.StatusCode) {
		return fail(fmt.Sprintf("status %d (want %s)", resp.StatusCode, wantCodes(h.Codes)))
	}
	detail := fmt.Sprintf("status %d", resp.StatusCode)
	if h.Digest == "" && h.Regex == nil {
		return ok(detail)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil {
		return p.failErr("body", err)
	}
	if h.Digest != "" {
		sum := md5.Sum(body)
		if got := hex.EncodeToString(sum[:]); got != strings.ToLower(h.Digest) {
			return fail(fmt.Sprintf("digest %s (want %s)", short(got), short(h.Digest)))
		}
	}
	if h.Regex != nil && !h.Regex.Match(body) {
		return fail("body does not match " + h.Regex.String())
	}
	return ok(detail)
}

// short abbreviates a digest for a Detail.
func short(digest string) string {
	if len(digest) <= 8 {
		return digest
	}
	return digest[:8] + "..."
}

// codeOK reports whether code is one of codes (empty: 200..299).
func codeOK(codes []int, code int) bool {
	if len(codes) == 0 {
		return code >= 200 && code <= 299
	}
	for _, c := range codes {
		if c == code {
			return true
		}
	}
	return false
}

// wantCodes lists the healthy status codes for a Detail.
func wantCodes(codes []int) string {
	if len(codes) == 0 {
		return "200-299"
	}
	s := make([]string, len(codes))
	for i, c := range codes {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ", ")
}

// tlsConfig returns the TLS settings of an https check of addr.
func tlsConfig(h *check.HTTPSpec, addr netip.Addr) (*tls.Config, error) {
	name := h.ServerName
	if name == "" && h.Host != "" {
		name = h.Host
		if host, _, err := net.SplitHostPort(h.Host); err == nil {
			name = host
		}
	}
	if name == "" {
		name = addr.Unmap().String()
	}
	// Without TLSVerify, any certificate will do: keepalived's SSL_GET
	// default, as a check by address rarely matches a certificate.
	conf := &tls.Config{InsecureSkipVerify: !h.TLSVerify, ServerName: name}
	if h.CAFile != "" && h.TLSVerify {
		pem, err := os.ReadFile(h.CAFile)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("ca file %s: %v", h.CAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca file %s: no PEM certificate", h.CAFile)
		}
		conf.RootCAs = pool
	}
	return conf, nil
}

// smtp reads the greeting, says HELO and QUIT.
func (p probe) smtp() check.Result {
	helo := "haa"
	if p.s.SMTP != nil && p.s.SMTP.Helo != "" {
		helo = p.s.SMTP.Helo
	}
	c, err := p.dial("tcp")
	if err != nil {
		return p.failErr("connect", err)
	}
	defer c.Close()
	stop := p.bind(c)
	defer stop()
	r := textproto.NewReader(bufio.NewReader(newLimitedReader(c)))
	code, err := readReply(r)
	if err != nil {
		return p.failErr("greeting", err)
	}
	if code/100 != 2 {
		return fail(fmt.Sprintf("greeting %d", code))
	}
	if _, err := io.WriteString(c, "HELO "+helo+"\r\n"); err != nil {
		return p.failErr("helo", err)
	}
	code, err = readReply(r)
	if err != nil {
		return p.failErr("helo", err)
	}
	if code/100 != 2 {
		return fail(fmt.Sprintf("helo %d", code))
	}
	_, _ = io.WriteString(c, "QUIT\r\n")
	return ok(fmt.Sprintf("helo %d", code))
}

// readReply reads one (possibly multi-line) SMTP reply and returns its
// code.
func readReply(r *textproto.Reader) (int, error) {
	code, _, err := r.ReadResponse(0)
	var pe textproto.ProtocolError
	if errors.As(err, &pe) {
		return 0, errors.New("not an check.SMTP reply")
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		// A multi-line reply whose lines disagree: keep the first code.
		return te.Code, nil
	}
	return code, err
}

// limitedReader bounds what an SMTP check reads from a server that never
// stops talking.
type limitedReader struct {
	r io.Reader
	n int
}

func newLimitedReader(r io.Reader) *limitedReader { return &limitedReader{r: r, n: 64 << 10} }

func (l *limitedReader) Read(b []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("reply too long")
	}
	if len(b) > l.n {
		b = b[:l.n]
	}
	n, err := l.r.Read(b)
	l.n -= n
	return n, err
}

// dns asks the question over UDP and wants rcode NOERROR.
func (p probe) dns() check.Result {
	typ, name := "SOA", "."
	if p.s.DNS != nil {
		if p.s.DNS.Type != "" {
			typ = p.s.DNS.Type
		}
		if p.s.DNS.Name != "" {
			name = dns.Fqdn(p.s.DNS.Name)
		}
	}
	qtype, known := dns.StringToType[strings.ToUpper(typ)]
	if !known {
		return fail("unknown query type " + typ)
	}
	c, err := p.dial("udp")
	if err != nil {
		return p.failErr("connect", err)
	}
	defer c.Close()
	stop := p.bind(c)
	defer stop()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	co := &dns.Conn{Conn: c, UDPSize: dns.DefaultMsgSize}
	if err := co.WriteMsg(m); err != nil {
		return p.failErr("send", err)
	}
	var bad error // the last datagram that was not a check.DNS message
	for range maxReads {
		reply, err := co.ReadMsg()
		if err != nil {
			if reply != nil || errors.Is(err, dns.ErrShortRead) {
				bad = err
				continue // not a check.DNS message: wait for a good one
			}
			if bad != nil && errors.Is(err, os.ErrDeadlineExceeded) {
				return fail("bad reply: " + bad.Error())
			}
			return p.failErr("reply", err)
		}
		if reply.Id != m.Id || !reply.Response {
			continue
		}
		if reply.Rcode != dns.RcodeSuccess {
			return fail("rcode " + rcodeName(reply.Rcode))
		}
		return ok(fmt.Sprintf("rcode NOERROR, %d answers", len(reply.Answer)))
	}
	return fail("no matching reply")
}

// rcodeName names a DNS response code.
func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return strconv.Itoa(rc)
}

// udp sends the payload and waits for a reply (or an ICMP error).
func (p probe) udp() check.Result {
	var payload, expect []byte
	if p.s.UDP != nil {
		payload, expect = p.s.UDP.Payload, p.s.UDP.Expect
	}
	c, err := p.dial("udp")
	if err != nil {
		return p.failErr("connect", err)
	}
	defer c.Close()
	stop := p.bind(c)
	defer stop()
	if _, err := c.Write(payload); err != nil {
		return p.failErr("send", err)
	}
	buf := make([]byte, 64<<10)
	n, err := c.Read(buf)
	if err != nil {
		var te timeoutError
		timedOut := errors.Is(err, os.ErrDeadlineExceeded) &&
			(p.ctx.Err() == nil || errors.As(context.Cause(p.ctx), &te))
		if timedOut && expect == nil {
			return ok("no reply, no error")
		}
		if timedOut {
			return fail("no reply (" + timeoutError{p.s.Timeout}.Error() + ")")
		}
		return p.failErr("reply", err)
	}
	reply := buf[:n]
	if expect != nil && !bytes.HasPrefix(reply, expect) {
		return fail(fmt.Sprintf("reply %q (want prefix %q)", clip(reply, len(expect)+16), expect))
	}
	return ok(fmt.Sprintf("reply of %d bytes", n))
}

// clip returns at most n bytes of b.
func clip(b []byte, n int) []byte {
	n = max(n, 32)
	if len(b) > n {
		return b[:n]
	}
	return b
}

// ping sends one ICMP echo request and waits for its reply.
func (p probe) ping() check.Result {
	addr := p.s.Target.Addr().Unmap()
	network, listen := "ip4:icmp", "0.0.0.0"
	var typ, replyType icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	proto := 1
	if addr.Is6() {
		network, listen = "ip6:ipv6-icmp", "::"
		typ, replyType, proto = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply, 58
	}
	c, err := icmp.ListenPacket(network, listen)
	if err != nil {
		return p.failErr("icmp socket", err)
	}
	defer c.Close()
	stop := p.bind(c)
	defer stop()
	var token [12]byte
	_, _ = rand.Read(token[:])
	id, seq := int(binary.BigEndian.Uint16(token[0:2])), int(binary.BigEndian.Uint16(token[2:4]))
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: token[4:]}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return fail("echo: " + err.Error())
	}
	dst := &net.IPAddr{IP: addr.AsSlice(), Zone: addr.Zone()}
	if _, err := c.WriteTo(b, dst); err != nil {
		return p.failErr("send", err)
	}
	buf := make([]byte, 1500)
	for range maxPingReads {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return p.failErr("reply", err)
		}
		src, okAddr := from.(*net.IPAddr)
		if !okAddr {
			continue
		}
		if a, _ := netip.AddrFromSlice(src.IP); a.Unmap() != addr.WithZone("") {
			continue
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != replyType {
			continue
		}
		if e, isEcho := m.Body.(*icmp.Echo); isEcho && e.ID == id && e.Seq == seq && bytes.Equal(e.Data, token[4:]) {
			return ok("echo reply")
		}
	}
	return fail("no matching echo reply")
}

// exec runs the command with the real server's address and port.
func (p probe) exec() check.Result {
	if p.s.Exec == nil || p.s.Exec.Run == nil {
		return fail("no command")
	}
	env := []string{
		"HAA_RS_ADDRESS=" + p.s.Target.Addr().Unmap().String(),
		"HAA_RS_PORT=" + strconv.Itoa(int(p.s.Target.Port())),
	}
	code, detail := p.s.Exec.Run.Run(p.ctx, p.s.Timeout, env)
	var te timeoutError
	switch {
	case code < 0 && errors.As(context.Cause(p.ctx), &te):
		return fail(te.Error())
	case code < 0 && detail != "":
		return fail(detail)
	case code < 0:
		return fail("did not run")
	case code == 0:
		return ok("exit 0")
	}
	d := "exit " + strconv.Itoa(code)
	if p.s.Exec.Dynamic && code >= 2 && code <= 255 {
		return check.Result{OK: true, Weight: code - 2, Detail: fmt.Sprintf("%s (weight %d)", d, code-2)}
	}
	if detail != "" {
		d += ": " + detail
	}
	return fail(d)
}
