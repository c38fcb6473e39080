// Package check runs the health checks of real servers: TCP, HTTP(S),
// SMTP, DNS, UDP, ICMP echo and commands, each on its own schedule with
// rise and fall, a bounded number in flight at once.
package check

import (
	"context"
	"net/netip"
	"regexp"
	"time"
)

// Kind is the kind of a check.
type Kind string

// The kinds of checks.
const (
	TCP   Kind = "tcp"
	HTTP  Kind = "http"
	HTTPS Kind = "https"
	SMTP  Kind = "smtp"
	DNS   Kind = "dns"
	UDP   Kind = "udp"
	Ping  Kind = "ping"
	Exec  Kind = "exec"
)

// Spec is one validated check with its defaults filled in.
type Spec struct {
	Kind Kind
	// Target is where the check connects: the real server's address with
	// the check's port (ping and exec use the address, exec gets both).
	Target netip.AddrPort

	Interval   time.Duration // > 0
	Timeout    time.Duration // > 0, <= Interval
	RetryDelay time.Duration // after a failure that did not yet fall; > 0
	Jitter     time.Duration // first check after rand[0, Jitter); 0: at once
	Rise, Fall int           // >= 1

	HTTP *HTTPSpec // http, https
	SMTP *SMTPSpec
	DNS  *DNSSpec
	UDP  *UDPSpec
	Exec *ExecSpec
}

// HTTPSpec is what an http or https check asks and expects.
type HTTPSpec struct {
	Path   string         // starts with "/"
	Codes  []int          // empty: 200..299
	Host   string         // "": the target's address
	Digest string         // lower-case hex MD5 of the body; "": not checked
	Regex  *regexp.Regexp // nil: not checked
	// https only.
	TLSVerify  bool
	ServerName string // "": Host, or the address
	CAFile     string // "": the system's roots
}

// SMTPSpec is an smtp check's HELO name (never empty).
type SMTPSpec struct {
	Helo string
}

// DNSSpec is a dns check's question.
type DNSSpec struct {
	Type string // A, AAAA, NS, SOA, MX, TXT, PTR, CNAME, SRV
	Name string // fully qualified, ends with "."
}

// UDPSpec is a udp check's datagram and expected reply prefix (nil: no
// reply needed).
type UDPSpec struct {
	Payload []byte
	Expect  []byte
}

// ExecSpec is an exec check's command.
type ExecSpec struct {
	Run Runner
	// Dynamic: exit 0 healthy (configured weight), 1 failed, 2..255
	// healthy with weight code-2.
	Dynamic bool
}

// Runner runs an exec check's command with extra environment and returns
// its exit code (-1: did not start, killed or timed out) and a short
// description of what went wrong, if anything. The node passes a resolved
// script.Command; tests pass a fake.
type Runner interface {
	Run(ctx context.Context, timeout time.Duration, env []string) (code int, detail string)
}

// Result is the outcome of one check.
type Result struct {
	OK bool
	// Weight is set by a dynamic exec check (>= 0); -1 otherwise.
	Weight int
	// Detail says why it failed ("connection refused", "status 503",
	// "timeout after 3s"), or what it saw when OK ("status 200").
	Detail   string
	Duration time.Duration
}

// Status is a real server's health as the checks decide it.
type Status struct {
	Healthy bool
	Weight  int // from a dynamic exec check, -1: none
	Last    Result
	Since   time.Time // when Healthy last changed (or the check started)
}
