package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/haa-dev/haa/node/check"
	"github.com/haa-dev/haa/node/lvs"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// lvsExample uses every field of the load-balancing configuration.
const lvsExample = `
name: lb1
instances:
  - {name: VI_1, interface: eth0, vrid: 51, vips: [10.77.0.100/24]}
loadBalancer: {backend: nftables, maxConcurrentChecks: 200}
virtualServers:
  - name: web
    address: 10.77.0.100:80
    protocol: tcp
    scheduler: wrr
    forwarding: nat
    persistenceTimeout: 5m
    persistencePrefix: 24
    sorryServer: 10.77.1.250:8080
    quorum: 2
    hysteresis: 1
    inhibitOnFailure: true
    check:
      http: {path: /health, statusCodes: [200, 204], host: www.example.com, digest: 9E107D9D372BB6826BD81D3542A419D6, regex: "^ok"}
      interval: 2s
      timeout: 1s
      rise: 2
      fall: 3
      retryDelay: 500ms
      jitter: 0s
    quorumUp: [/etc/haa/vs.sh, up]
    quorumDown: [/etc/haa/vs.sh, down]
    realServers:
      - {address: "10.77.1.1:8080", weight: 3, notifyUp: [/etc/haa/rs.sh, up], notifyDown: [/etc/haa/rs.sh, down]}
      - {address: 10.77.1.2, weight: 0}
      - address: 10.77.1.3:8080
        check: {tcp: {}, port: 9000}
  - address: "[fd00::100]:443"
    scheduler: sh
    persistenceTimeout: 1h
    check: {https: {tlsVerify: true, serverName: www.example.com, caFile: /etc/haa/ca.pem}}
    realServers: [{address: "fd00::1"}, {address: "[fd00::2]:8443"}]
  - fwmark: 7
    forwarding: dr
    scheduler: RR
    persistenceTimeout: 30s
    check: {exec: {command: [/etc/haa/check.sh, --quick], user: "nobody:nogroup", dynamic: true}}
    realServers: [{address: "fd00::11"}, {address: "[fd00::12]"}]
  - address: 10.77.0.100:53
    protocol: UDP
    check: {dns: {type: a, name: example.com}}
    realServers: [{address: 10.77.2.1}]
  - address: 10.77.0.100:25
    check: {smtp: {}}
    realServers: [{address: 10.77.3.1}]
  - address: 10.77.0.100:161
    protocol: udp
    check: {udp: {payload: ping, expect: pong}}
    realServers: [{address: 10.77.4.1}]
  - name: icmp
    address: 10.77.0.100:5000
    protocol: sctp
    forwarding: tunnel
    check: {ping: {}}
    realServers: [{address: 10.77.5.1}]
  - address: 10.77.0.100:25
    protocol: udp
    sorryServer: 10.77.9.9:25
`

func TestLVSExample(t *testing.T) {
	cfg, err := Parse([]byte(lvsExample))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Resolve(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a.LBBackend != "nftables" || a.MaxChecks != 200 {
		t.Errorf("load balancer %q %d", a.LBBackend, a.MaxChecks)
	}
	if len(a.VirtualServers) != 8 {
		t.Fatalf("%d virtual servers", len(a.VirtualServers))
	}
	ap := netip.MustParseAddrPort
	vss := a.VirtualServers
	for i, vs := range vss {
		if vs.Spec != cfg.VirtualServers[i] {
			t.Errorf("virtualServers[%d].Spec is not the configured message", i)
		}
		for k, rs := range vs.Reals {
			if rs.Spec != cfg.VirtualServers[i].RealServers[k] {
				t.Errorf("virtualServers[%d].realServers[%d].Spec is not the configured message", i, k)
			}
		}
	}

	web := vss[0]
	if re := web.Reals[0].Check.HTTP.Regex; re == nil || re.String() != "^ok" {
		t.Errorf("regex %v", re)
	}
	timing := check.Spec{Interval: 2 * time.Second, Timeout: time.Second, RetryDelay: 500 * time.Millisecond, Rise: 2, Fall: 3}
	httpCheck := func(target string) *check.Spec {
		s := timing
		s.Kind, s.Target = check.HTTP, ap(target)
		s.HTTP = &check.HTTPSpec{Path: "/health", Codes: []int{200, 204}, Host: "www.example.com", Digest: "9e107d9d372bb6826bd81d3542a419d6"}
		return &s
	}
	tcpCheck := timing
	tcpCheck.Kind, tcpCheck.Target = check.TCP, ap("10.77.1.3:9000")
	tcpCheck.Interval, tcpCheck.Timeout, tcpCheck.RetryDelay, tcpCheck.Jitter, tcpCheck.Rise, tcpCheck.Fall = 5*time.Second, 3*time.Second, time.Second, 5*time.Second, 1, 1
	wantWeb := VirtualServer{
		Name: "web",
		Service: lvs.Service{Key: lvs.Key{Addr: ap("10.77.0.100:80"), Proto: lvs.TCP}, Scheduler: "wrr", Forwarding: lvs.NAT,
			Persistence: 5 * time.Minute, PersistPrefix: 24},
		Sorry: ap("10.77.1.250:8080"), Quorum: 2, Hysteresis: 1, Inhibit: true,
		Reals: []RealServer{
			{Addr: ap("10.77.1.1:8080"), Weight: 3, Check: httpCheck("10.77.1.1:8080"),
				NotifyUp: []string{"/etc/haa/rs.sh", "up"}, NotifyDown: []string{"/etc/haa/rs.sh", "down"}, Inhibit: true},
			{Addr: ap("10.77.1.2:80"), Weight: 0, Check: httpCheck("10.77.1.2:80"), Inhibit: true},
			{Addr: ap("10.77.1.3:8080"), Weight: 1, Check: &tcpCheck, Inhibit: true},
		},
		QuorumUp: []string{"/etc/haa/vs.sh", "up"}, QuorumDown: []string{"/etc/haa/vs.sh", "down"},
	}
	wantEqualVS(t, web, wantWeb)

	defaults := func(kind check.Kind, target string) check.Spec {
		return check.Spec{Kind: kind, Target: ap(target), Interval: 5 * time.Second, Timeout: 3 * time.Second, RetryDelay: time.Second,
			Jitter: 5 * time.Second, Rise: 1, Fall: 1}
	}
	https := func(target string) *check.Spec {
		s := defaults(check.HTTPS, target)
		s.HTTP = &check.HTTPSpec{Path: "/", TLSVerify: true, ServerName: "www.example.com", CAFile: "/etc/haa/ca.pem"}
		return &s
	}
	wantEqualVS(t, vss[1], VirtualServer{
		Name: "[fd00::100]:443/tcp",
		Service: lvs.Service{Key: lvs.Key{Addr: ap("[fd00::100]:443"), Proto: lvs.TCP}, Scheduler: "sh", Forwarding: lvs.NAT,
			Persistence: time.Hour, PersistPrefix: 128},
		Quorum: 1,
		Reals: []RealServer{
			{Addr: ap("[fd00::1]:443"), Weight: 1, Check: https("[fd00::1]:443")},
			{Addr: ap("[fd00::2]:8443"), Weight: 1, Check: https("[fd00::2]:8443")},
		},
	})

	exec := func(target string) *check.Spec {
		s := defaults(check.Exec, target)
		s.Exec = &check.ExecSpec{Dynamic: true}
		return &s
	}
	cmd := []string{"/etc/haa/check.sh", "--quick"}
	wantEqualVS(t, vss[2], VirtualServer{
		Name:            "fwmark:7/ipv6",
		Service:         lvs.Service{Key: lvs.Key{FWMark: 7, V6: true}, Scheduler: "rr", Forwarding: lvs.DirectRoute, Persistence: 30 * time.Second, PersistPrefix: 128},
		SorryForwarding: lvs.DirectRoute,
		Quorum:          1,
		Reals: []RealServer{
			{Addr: ap("[fd00::11]:0"), Weight: 1, Check: exec("[fd00::11]:0"), ExecCommand: cmd, ExecUser: "nobody:nogroup"},
			{Addr: ap("[fd00::12]:0"), Weight: 1, Check: exec("[fd00::12]:0"), ExecCommand: cmd, ExecUser: "nobody:nogroup"},
		},
	})

	dns := defaults(check.DNS, "10.77.2.1:53")
	dns.DNS = &check.DNSSpec{Type: "A", Name: "example.com."}
	wantEqualVS(t, vss[3], VirtualServer{
		Name:    "10.77.0.100:53/udp",
		Service: lvs.Service{Key: lvs.Key{Addr: ap("10.77.0.100:53"), Proto: lvs.UDP}, Scheduler: "wrr"},
		Quorum:  1,
		Reals:   []RealServer{{Addr: ap("10.77.2.1:53"), Weight: 1, Check: &dns}},
	})
	smtp := defaults(check.SMTP, "10.77.3.1:25")
	smtp.SMTP = &check.SMTPSpec{Helo: "lb1"}
	if got := vss[4].Reals[0].Check; !reflect.DeepEqual(got, &smtp) {
		t.Errorf("smtp check %+v, want %+v", got, smtp)
	}
	udp := defaults(check.UDP, "10.77.4.1:161")
	udp.UDP = &check.UDPSpec{Payload: []byte("ping"), Expect: []byte("pong")}
	if got := vss[5].Reals[0].Check; !reflect.DeepEqual(got, &udp) {
		t.Errorf("udp check %+v, want %+v", got, udp)
	}
	ping := defaults(check.Ping, "10.77.5.1:5000")
	wantEqualVS(t, vss[6], VirtualServer{
		Name:            "icmp",
		Service:         lvs.Service{Key: lvs.Key{Addr: ap("10.77.0.100:5000"), Proto: lvs.SCTP}, Scheduler: "wrr", Forwarding: lvs.Tunnel},
		SorryForwarding: lvs.Tunnel,
		Quorum:          1,
		Reals:           []RealServer{{Addr: ap("10.77.5.1:5000"), Weight: 1, Check: &ping}},
	})
	wantEqualVS(t, vss[7], VirtualServer{
		Name:    "10.77.0.100:25/udp",
		Service: lvs.Service{Key: lvs.Key{Addr: ap("10.77.0.100:25"), Proto: lvs.UDP}, Scheduler: "wrr"},
		Sorry:   ap("10.77.9.9:25"),
		Quorum:  1,
	})
}

// wantEqualVS compares a resolved virtual server with want, whose Specs
// and HTTP regular expressions are not compared.
func wantEqualVS(t *testing.T, got, want VirtualServer) {
	t.Helper()
	got.Spec = nil
	got.Reals = slicesCloneReals(got.Reals)
	for i := range got.Reals {
		got.Reals[i].Spec = nil
		if c := got.Reals[i].Check; c != nil && c.HTTP != nil && c.HTTP.Regex != nil {
			cc, h := *c, *c.HTTP
			h.Regex = nil
			cc.HTTP = &h
			got.Reals[i].Check = &cc
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s resolved to\n  %+v\nwant\n  %+v", want.Name, got, want)
		for i := range min(len(got.Reals), len(want.Reals)) {
			if g, w := got.Reals[i], want.Reals[i]; !reflect.DeepEqual(g, w) {
				t.Errorf("  realServers[%d] = %+v check %+v\n  want %+v check %+v", i, g, g.Check, w, w.Check)
			}
		}
	}
}

func slicesCloneReals(r []RealServer) []RealServer {
	if r == nil {
		return nil
	}
	return append([]RealServer(nil), r...)
}

func TestLVSDefaults(t *testing.T) {
	cfg, err := Parse([]byte(`
name: n1
virtualServers:
  - address: "10.0.0.1:80"
    check: {tcp: {}, interval: 2s}
    realServers: [{address: 10.0.1.1}, {address: "10.0.1.2:8080", check: {tcp: {}, interval: 500ms, jitter: 100ms}}]
  - address: "10.0.0.1:53"
    check: {dns: {}}
    realServers: [{address: 10.0.1.1}]
  - address: "10.0.0.1:81"
    check: {http: {}}
    realServers: [{address: 10.0.1.1}]
  - fwmark: 1
    persistenceTimeout: 0s
    check: {tcp: {}, port: 80}
    realServers: [{address: 10.0.1.1}, {address: "10.0.1.2:8080"}]
  - {fwmark: 2, sorryServer: "[fd00::9]:80"}
  - {fwmark: 3}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Resolve(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a.LBBackend != "auto" || a.MaxChecks != 64 {
		t.Errorf("load balancer defaults %q %d", a.LBBackend, a.MaxChecks)
	}
	vs := a.VirtualServers[0]
	if vs.Name != "10.0.0.1:80/tcp" || vs.Service != (lvs.Service{Key: lvs.Key{Addr: netip.MustParseAddrPort("10.0.0.1:80"), Proto: lvs.TCP}, Scheduler: "wrr", Forwarding: lvs.NAT}) ||
		vs.Quorum != 1 || vs.Hysteresis != 0 || vs.Inhibit || vs.Sorry.IsValid() || vs.QuorumUp != nil || vs.QuorumDown != nil {
		t.Errorf("virtual server defaults %+v", vs)
	}
	rs := vs.Reals[0]
	if rs.Addr != netip.MustParseAddrPort("10.0.1.1:80") || rs.Weight != 1 || rs.NotifyUp != nil || rs.NotifyDown != nil || rs.ExecCommand != nil {
		t.Errorf("real server defaults %+v", rs)
	}
	want := check.Spec{Kind: check.TCP, Target: netip.MustParseAddrPort("10.0.1.1:80"), Interval: 2 * time.Second, Timeout: 2 * time.Second,
		RetryDelay: time.Second, Jitter: 2 * time.Second, Rise: 1, Fall: 1}
	if !reflect.DeepEqual(*rs.Check, want) {
		t.Errorf("timeout is at most the interval: %+v, want %+v", *rs.Check, want)
	}
	want = check.Spec{Kind: check.TCP, Target: netip.MustParseAddrPort("10.0.1.2:8080"), Interval: 500 * time.Millisecond, Timeout: 500 * time.Millisecond,
		RetryDelay: 500 * time.Millisecond, Jitter: 100 * time.Millisecond, Rise: 1, Fall: 1}
	if got := *vs.Reals[1].Check; !reflect.DeepEqual(got, want) {
		t.Errorf("own check with retry delay at most the interval: %+v, want %+v", got, want)
	}
	if got := a.VirtualServers[1].Reals[0].Check.DNS; *got != (check.DNSSpec{Type: "SOA", Name: "."}) {
		t.Errorf("dns defaults %+v", got)
	}
	if got := a.VirtualServers[2].Reals[0].Check.HTTP; !reflect.DeepEqual(*got, check.HTTPSpec{Path: "/"}) {
		t.Errorf("http defaults %+v", got)
	}
	fw := a.VirtualServers[3]
	if fw.Name != "fwmark:1" || fw.Service.Key != (lvs.Key{FWMark: 1}) || fw.Service.Persistence != 0 || fw.Service.PersistPrefix != 0 {
		t.Errorf("fwmark service %+v", fw)
	}
	if r := fw.Reals; r[0].Addr != netip.MustParseAddrPort("10.0.1.1:0") || r[0].Check.Target != netip.MustParseAddrPort("10.0.1.1:80") ||
		r[1].Addr != netip.MustParseAddrPort("10.0.1.2:8080") || r[1].Check.Target != netip.MustParseAddrPort("10.0.1.2:80") {
		t.Errorf("fwmark reals %+v %+v, checks %v %v", r[0], r[1], r[0].Check.Target, r[1].Check.Target)
	}
	if k := a.VirtualServers[4].Service.Key; k != (lvs.Key{FWMark: 2, V6: true}) || a.VirtualServers[4].Name != "fwmark:2/ipv6" {
		t.Errorf("a fwmark service without real servers takes its family from the sorry server: %+v", k)
	}
	if k := a.VirtualServers[5].Service.Key; k != (lvs.Key{FWMark: 3}) {
		t.Errorf("a fwmark service with no address at all is IPv4: %+v", k)
	}
}

func TestLVSLoadBalancer(t *testing.T) {
	for _, c := range []struct {
		lb      *haav1.LoadBalancer
		backend string
		max     int
	}{
		{nil, "auto", 64},
		{&haav1.LoadBalancer{}, "auto", 64},
		{&haav1.LoadBalancer{Backend: "auto", MaxConcurrentChecks: 1}, "auto", 1},
		{&haav1.LoadBalancer{Backend: "IPVS", MaxConcurrentChecks: 10000}, "ipvs", 10000},
		{&haav1.LoadBalancer{Backend: "nftables"}, "nftables", 64},
	} {
		a, err := Resolve(&haav1.AgentConfig{Name: "n1", LoadBalancer: c.lb})
		if err != nil {
			t.Fatal(err)
		}
		if a.LBBackend != c.backend || a.MaxChecks != c.max || a.VirtualServers != nil {
			t.Errorf("%v: backend %q max %d, want %q %d", c.lb, a.LBBackend, a.MaxChecks, c.backend, c.max)
		}
	}
}

// TestLVSChecksAreOwnedByEachRealServer: the node may fill in a real
// server's check (Exec.Run) without touching another's.
func TestLVSChecksAreOwnedByEachRealServer(t *testing.T) {
	cfg, err := Parse([]byte(`
name: n1
virtualServers:
  - address: "10.0.0.1:80"
    check: {exec: {command: [/bin/check]}}
    realServers: [{address: 10.0.1.1}, {address: 10.0.1.2}]
  - address: "10.0.0.1:81"
    check: {http: {statusCodes: [200]}}
    realServers: [{address: 10.0.1.1}, {address: 10.0.1.2}]
  - address: "10.0.0.1:82"
    check: {udp: {payload: x}}
    realServers: [{address: 10.0.1.1}, {address: 10.0.1.2}]
`))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Resolve(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := a.VirtualServers[0].Reals
	if r[0].Check == r[1].Check || r[0].Check.Exec == r[1].Check.Exec {
		t.Error("two real servers share an exec check")
	}
	h := a.VirtualServers[1].Reals
	if h[0].Check.HTTP == h[1].Check.HTTP || &h[0].Check.HTTP.Codes[0] == &h[1].Check.HTTP.Codes[0] {
		t.Error("two real servers share an http check")
	}
	u := a.VirtualServers[2].Reals
	if &u[0].Check.UDP.Payload[0] == &u[1].Check.UDP.Payload[0] {
		t.Error("two real servers share a udp payload")
	}
}

func TestLVSValidation(t *testing.T) {
	const notOne = `is one string: list the program and each argument separately, e.g. `
	for _, c := range []struct {
		name, yaml string
		want       []string // exact "path: message", in order
	}{
		{"service", `
virtualServers:
  - {}
  - {address: "10.0.0.1:80", fwmark: 1}
  - {address: 10.0.0.1}
  - {address: "10.0.0.1:0"}
  - {address: "fd00::1:80"}
  - {address: "[fe80::1%eth0]:80"}
  - {address: "[::ffff:10.0.0.1]:80"}
  - {address: "0.0.0.0:80"}
  - {address: "10.0.0.1:80", protocol: icmp}
  - {fwmark: 2, protocol: tcp}
  - {address: "10.0.0.1:80", protocol: TCP, name: "a b"}
  - {address: "10.0.0.1:80"}
  - {address: "10.0.0.1:80", protocol: udp, name: web}
  - {address: "10.0.0.2:80", name: web}
  - {fwmark: 2}
  - {name: "fwmark:3", address: "10.0.0.3:80"}
  - {fwmark: 3}
  - {address: "224.0.0.1:80"}
  - {address: "10.0.0.4:http"}
`, []string{
			`virtualServers[0]: no service: set address ("ADDR:PORT", e.g. "10.0.0.100:80"), fwmark or group`,
			"virtualServers[1]: sets address and fwmark: set one of them",
			`virtualServers[2].address: "10.0.0.1" has no port: write ADDR:PORT, e.g. "10.0.0.1:80"`,
			`virtualServers[3].address: "10.0.0.1:0": port "0" is not a number 1..65535`,
			`virtualServers[4].address: "fd00::1:80" has no port: write ADDR:PORT, e.g. "[fd00::1:80]:80"`,
			`virtualServers[5].address: "[fe80::1%eth0]:80": addresses with a zone (%eth0) are not supported`,
			`virtualServers[6].address: "[::ffff:10.0.0.1]:80": write the IPv4 address 10.0.0.1 as such`,
			`virtualServers[7].address: "0.0.0.0:80": 0.0.0.0 is not a unicast address`,
			`virtualServers[8].protocol: "icmp" is not a protocol: use tcp, udp or sctp`,
			"virtualServers[9].protocol: has no meaning with fwmark (the mark selects the packets, of any protocol): remove it",
			`virtualServers[10].name: "a b" is not a valid name: use letters, digits, and _ . : - (at most 63)`,
			"virtualServers[11].address: 10.0.0.1:80/tcp is already the service of virtualServers[10]: list its real servers there",
			`virtualServers[13].name: "web" is already used by virtualServers[12]: each virtual server needs its own name`,
			"virtualServers[14].fwmark: fwmark:2 is already the service of virtualServers[9]: list its real servers there",
			`virtualServers[16].name: no name given, and the default "fwmark:3" is already used by virtualServers[15]: set name`,
			`virtualServers[17].address: "224.0.0.1:80": 224.0.0.1 is not a unicast address`,
			`virtualServers[18].address: "10.0.0.4:http": port "http" is not a number 1..65535`,
		}},
		{"settings", `
virtualServers:
  - {address: "10.0.0.1:80", scheduler: fifo, forwarding: masq, persistenceTimeout: 500ms, persistencePrefix: 24, sorryServer: 10.0.0.9, quorum: 2, hysteresis: 2}
  - {address: "10.0.0.2:80", persistenceTimeout: 1.5s, persistencePrefix: 33, sorryServer: "[fd00::9]:80"}
  - {address: "[fd00::2]:80", persistenceTimeout: 721h, persistencePrefix: 129, sorryServer: "10.0.0.9:80", hysteresis: 1}
  - {address: "10.0.0.4:80", persistenceTimeout: 1h, persistencePrefix: 129}
  - {address: "10.0.0.5:80", persistenceTimeout: -1s}
  - address: "10.0.0.6:80"
    forwarding: dr
    sorryServer: "10.0.0.9:8080"
    realServers: [{address: "10.0.1.1:8080"}, {address: 10.0.1.2}, {address: "10.0.1.3:80"}]
  - {address: "10.0.0.7:80", sorryServer: "10.0.1.1:80", realServers: [{address: 10.0.1.1}]}
  - {address: "10.0.0.8:80", persistencePrefix: 24}
  - {address: "10.0.0.9:80", sorryServer: "x:80", persistenceTimeout: 720h, persistencePrefix: 1, quorum: 5, hysteresis: 4}
  - {fwmark: 4, forwarding: tunnel, sorryServer: "[fd00::9]:80", realServers: [{address: "10.0.1.1:8080"}]}
`, []string{
			`virtualServers[0].scheduler: "fifo" is not a scheduler: use one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, fo, ovf`,
			`virtualServers[0].forwarding: "masq" is not a forwarding method: use nat, dr or tunnel`,
			"virtualServers[0].persistenceTimeout: 500ms is out of range 1s..720h (0s or leave it out for none)",
			"virtualServers[0].hysteresis: 2 must be below quorum 2: the service goes down when the healthy weight falls below quorum - hysteresis",
			"virtualServers[1].persistenceTimeout: 1.5s: persistence counts whole seconds, e.g. 2s",
			"virtualServers[1].persistencePrefix: 33 is out of range 1..32 for IPv4",
			"virtualServers[1].sorryServer: fd00::9 is IPv6 but the virtual server's address is IPv4: the sorry server must be of the same family",
			"virtualServers[2].persistenceTimeout: 721h is out of range 1s..720h (0s or leave it out for none)",
			"virtualServers[2].persistencePrefix: 129 is out of range 1..128 for IPv6",
			"virtualServers[2].sorryServer: 10.0.0.9 is IPv4 but the virtual server's address is IPv6: the sorry server must be of the same family",
			"virtualServers[2].hysteresis: 1 must be below quorum 1: the service goes down when the healthy weight falls below quorum - hysteresis",
			"virtualServers[3].persistencePrefix: 129 is out of range 1..32 for IPv4",
			"virtualServers[4].persistenceTimeout: -1s is out of range 1s..720h (0s or leave it out for none)",
			"virtualServers[5].sorryServer: port 8080: dr forwarding cannot change the port (packets keep port 80): use port 80, or forwarding: nat",
			"virtualServers[5].realServers[0].address: port 8080: dr forwarding cannot change the port (packets keep port 80): leave the port out, or use forwarding: nat",
			"virtualServers[6].sorryServer: 10.0.1.1:80 is also realServers[0]: the sorry server takes over when the real servers are down, so it must be another server",
			"virtualServers[7].persistencePrefix: has no effect without persistenceTimeout: remove it, or set persistenceTimeout",
			`virtualServers[8].sorryServer: "x:80" is not ADDR or ADDR:PORT, e.g. "10.0.0.1", "10.0.0.1:8080" or "[fd00::1]:8080"`,
			"virtualServers[9].sorryServer: fd00::9 is IPv6 but realServers[0] is IPv4: the sorry server must be of the same family",
		}},
		{"real servers", `
virtualServers:
  - address: "10.0.0.1:80"
    realServers:
      - {}
      - {address: "10.0.1.1:99999"}
      - {address: "host:80"}
      - {address: "fd00::1"}
      - {address: 10.0.1.2, weight: 65536}
      - {address: "10.0.1.2:80"}
      - {address: 10.0.1.3, notifyUp: [""], notifyDown: ["/bin/x y"]}
      - {address: 10.0.1.4, weight: 0}
      - {address: "[10.0.1.5]"}
      - {address: "10.0.1.6:8080", weight: 65535}
  - fwmark: 1
    check: {tcp: {}}
    realServers: [{address: 10.0.2.1}, {address: "[fd00::2]:80"}, {address: "10.0.2.2:80"}, {address: 10.0.2.3, check: {ping: {}}}]
`, []string{
			`virtualServers[0].realServers[0].address: required: the real server's "ADDR:PORT", or "ADDR" for the virtual server's port`,
			`virtualServers[0].realServers[1].address: "10.0.1.1:99999": port "99999" is not a number 1..65535`,
			`virtualServers[0].realServers[2].address: "host:80" is not ADDR or ADDR:PORT, e.g. "10.0.0.1", "10.0.0.1:8080" or "[fd00::1]:8080"`,
			"virtualServers[0].realServers[3].address: fd00::1 is IPv6 but the virtual server's address is IPv4: the real servers of a virtual server are of its family",
			"virtualServers[0].realServers[4].weight: 65536 is out of range 0..65535 (0 takes no new connections)",
			"virtualServers[0].realServers[5].address: 10.0.1.2:80 is already realServers[4]: list each real server once",
			"virtualServers[0].realServers[6].notifyUp[0]: empty: give the program to run (an absolute path, or a name looked up in PATH)",
			`virtualServers[0].realServers[6].notifyDown[0]: "/bin/x y" ` + notOne + `["/bin/x", "y"], or run a shell: ["/bin/sh", "-c", "/bin/x y"]`,
			"virtualServers[1].realServers[0].address: 10.0.2.1 has no port for its tcp check: write ADDR:PORT, or set the check's port",
			"virtualServers[1].realServers[1].address: fd00::2 is IPv6 but realServers[0] is IPv4: the real servers of a virtual server are of its family",
		}},
		{"check timing", `
virtualServers:
  - address: "10.0.0.1:80"
    check: {}
    realServers:
      - {address: 10.0.1.1, check: {tcp: {}, http: {}, interval: 5ms, timeout: 0s, rise: 101, fall: 1000, retryDelay: 0s, jitter: -1s, port: 70000}}
      - {address: 10.0.1.2, check: {ping: {}, interval: 2s, timeout: 3s, retryDelay: 2500ms, jitter: 3s, port: 80}}
      - {address: 10.0.1.3, check: {tcp: {}, interval: 2h, timeout: 2h}}
      - {address: 10.0.1.4, check: {tcp: {}, interval: 1h, timeout: 1h, retryDelay: 1h, jitter: 1h, rise: 100, fall: 100, port: 65535}}
      - {address: 10.0.1.5, check: {tcp: {}, interval: 10ms, timeout: 10ms, retryDelay: 10ms, jitter: 0s}}
      - {address: 10.0.1.6, check: {tcp: {}, udp: {}, ping: {}, exec: {command: [x]}}}
`, []string{
			"virtualServers[0].realServers[0].check: sets tcp, http: set exactly one of tcp, http, https, smtp, dns, udp, ping, exec",
			"virtualServers[0].realServers[0].check.interval: 5ms is out of range 10ms..1h (leave it out for 5s)",
			"virtualServers[0].realServers[0].check.timeout: 0s is out of range: more than 0s and at most the interval (leave it out for 3s)",
			"virtualServers[0].realServers[0].check.rise: 101 is out of range 1..100",
			"virtualServers[0].realServers[0].check.fall: 1000 is out of range 1..100",
			"virtualServers[0].realServers[0].check.retryDelay: 0s is out of range: more than 0s and at most the interval (leave it out for 1s)",
			"virtualServers[0].realServers[0].check.jitter: -1s is out of range: 0s (none) up to the interval (leave it out for the interval)",
			"virtualServers[0].realServers[0].check.port: 70000 is out of range 1..65535 (leave it out for the real server's port)",
			"virtualServers[0].realServers[1].check.timeout: 3s is out of range: more than 0s and at most the interval 2s (leave it out for 2s)",
			"virtualServers[0].realServers[1].check.retryDelay: 2.5s is out of range: more than 0s and at most the interval 2s (leave it out for 1s)",
			"virtualServers[0].realServers[1].check.jitter: 3s is out of range: 0s (none) up to the interval 2s (leave it out for the interval)",
			"virtualServers[0].realServers[1].check.port: has no effect on a ping check: remove it",
			"virtualServers[0].realServers[2].check.interval: 2h is out of range 10ms..1h (leave it out for 5s)",
			"virtualServers[0].realServers[2].check.timeout: 2h is out of range: more than 0s and at most the interval (leave it out for 3s)",
			"virtualServers[0].realServers[5].check: sets tcp, udp, ping, exec: set exactly one of tcp, http, https, smtp, dns, udp, ping, exec",
			"virtualServers[0].check: no check: set exactly one of tcp, http, https, smtp, dns, udp, ping, exec",
		}},
		{"check kinds", `
virtualServers:
  - address: "10.0.0.1:80"
    realServers:
      - address: 10.0.1.1
        check: {http: {path: health, statusCodes: [99, 200, 600], host: "a b", digest: xyz, regex: "(", tlsVerify: true, serverName: x, caFile: /ca.pem}}
      - address: 10.0.1.2
        check: {https: {path: "/a b", digest: "9e107d9d372bb6826bd81d3542a419d", serverName: "a\tb", caFile: ca.pem}}
      - {address: 10.0.1.3, check: {https: {caFile: /etc/ca.pem}}}
      - {address: 10.0.1.4, check: {smtp: {heloName: "a b"}}}
      - {address: 10.0.1.5, check: {dns: {type: AXFR, name: "a..b"}}}
      - {address: 10.0.1.6, check: {exec: {}}}
      - {address: 10.0.1.7, check: {exec: {command: ["/bin/check rs"], user: "a b"}}}
      - {address: 10.0.1.8, check: {dns: {name: "` + strings.Repeat("a", 64) + `.com"}}}
      - {address: 10.0.1.9, check: {dns: {name: "` + strings.Repeat("a.", 127) + `b"}}}
      - {address: 10.0.1.10, check: {dns: {type: txt, name: "_sip._tcp.example.com."}}}
      - {address: 10.0.1.11, check: {https: {path: "/x?y=1", digest: "9E107D9D372BB6826BD81D3542A419D6", regex: "(?i)ok|ready", tlsVerify: true, caFile: /etc/ca.pem}}}
      - {address: 10.0.1.12, check: {exec: {command: ["x", ""], user: "0:0"}}}
`, []string{
			`virtualServers[0].realServers[0].check.http.path: "health" must start with "/", e.g. "/health"`,
			"virtualServers[0].realServers[0].check.http.statusCodes[0]: 99 is not an HTTP status code: 100..599",
			"virtualServers[0].realServers[0].check.http.statusCodes[2]: 600 is not an HTTP status code: 100..599",
			`virtualServers[0].realServers[0].check.http.host: "a b" is not a host name: no spaces or control characters`,
			`virtualServers[0].realServers[0].check.http.digest: "xyz" is not an MD5 digest: 32 hex digits, as md5sum or keepalived's genhash print`,
			`virtualServers[0].realServers[0].check.http.regex: "(" is not a regular expression (RE2 syntax): missing closing )`,
			"virtualServers[0].realServers[0].check.http.tlsVerify: only for https checks: check with https instead of http, or remove it",
			"virtualServers[0].realServers[0].check.http.serverName: only for https checks: check with https instead of http, or remove it",
			"virtualServers[0].realServers[0].check.http.caFile: only for https checks: check with https instead of http, or remove it",
			`virtualServers[0].realServers[1].check.https.path: "/a b" contains spaces or control characters: escape them, e.g. %20 for a space`,
			`virtualServers[0].realServers[1].check.https.digest: "9e107d9d372bb6826bd81d3542a419d" is not an MD5 digest: 32 hex digits, as md5sum or keepalived's genhash print`,
			`virtualServers[0].realServers[1].check.https.serverName: "a\tb" is not a host name: no spaces or control characters`,
			`virtualServers[0].realServers[1].check.https.caFile: "ca.pem" must be an absolute path`,
			"virtualServers[0].realServers[2].check.https.caFile: has no effect without tlsVerify: true: set it, or remove caFile",
			`virtualServers[0].realServers[3].check.smtp.heloName: "a b" is not a host name: no spaces or control characters`,
			`virtualServers[0].realServers[4].check.dns.type: "AXFR" is not a query type: use one of A, AAAA, NS, SOA, MX, TXT, PTR, CNAME, SRV`,
			`virtualServers[0].realServers[4].check.dns.name: "a..b" is not a domain name: labels of 1..63 characters without spaces, at most 253 in all`,
			`virtualServers[0].realServers[5].check.exec.command: required: the program and its arguments, e.g. ["/etc/haa/check-rs.sh", "--quick"] (it gets HAA_RS_ADDRESS and HAA_RS_PORT)`,
			`virtualServers[0].realServers[6].check.exec.command[0]: "/bin/check rs" ` + notOne + `["/bin/check", "rs"], or run a shell: ["/bin/sh", "-c", "/bin/check rs"]`,
			`virtualServers[0].realServers[6].check.exec.user: "a b" is not a user: write "name" or "name:group" (names or numeric ids), or leave it out to run as root`,
			`virtualServers[0].realServers[7].check.dns.name: "` + strings.Repeat("a", 64) + `.com" is not a domain name: labels of 1..63 characters without spaces, at most 253 in all`,
			`virtualServers[0].realServers[8].check.dns.name: "` + strings.Repeat("a.", 127) + `b" is not a domain name: labels of 1..63 characters without spaces, at most 253 in all`,
		}},
		{"commands and load balancer", `
loadBalancer: {backend: lvs, maxConcurrentChecks: 10001}
virtualServers:
  - {address: "10.0.0.1:80", quorumUp: [""], quorumDown: ["/bin/down now"]}
`, []string{
			"virtualServers[0].quorumUp[0]: empty: give the program to run (an absolute path, or a name looked up in PATH)",
			`virtualServers[0].quorumDown[0]: "/bin/down now" ` + notOne + `["/bin/down", "now"], or run a shell: ["/bin/sh", "-c", "/bin/down now"]`,
			`loadBalancer.backend: "lvs" is not a backend: use auto (ipvs where the kernel has it, else nftables), ipvs or nftables`,
			"loadBalancer.maxConcurrentChecks: 10001 is out of range 1..10000 (leave it out for 64)",
		}},
		{"field order", `
loadBalancer: {backend: x}
virtualServers:
  - name: "a b"
    address: "10.0.0.1"
    protocol: x
    scheduler: x
    forwarding: x
    persistenceTimeout: 1ms
    persistencePrefix: 99
    sorryServer: x
    hysteresis: 1
    realServers:
      - {address: x, weight: 70000, check: {}, notifyUp: [""], notifyDown: [""]}
      - {address: 10.0.1.1, check: {tcp: {}, port: 99999}}
    check: {ping: {}, interval: 0s}
    quorumUp: [""]
    quorumDown: [""]
instances:
  - {name: VI_1, interface: eth0, vrid: 1, vips: [10.0.0.1/24]}
syncGroups: [{name: G, instances: [VI_1]}]
`, []string{
			`syncGroups[0].instances: only "VI_1": a sync group needs at least two instances (an instance alone needs no group: remove it)`,
			`virtualServers[0].name: "a b" is not a valid name: use letters, digits, and _ . : - (at most 63)`,
			`virtualServers[0].address: "10.0.0.1" has no port: write ADDR:PORT, e.g. "10.0.0.1:80"`,
			`virtualServers[0].protocol: "x" is not a protocol: use tcp, udp or sctp`,
			`virtualServers[0].scheduler: "x" is not a scheduler: use one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, fo, ovf`,
			`virtualServers[0].forwarding: "x" is not a forwarding method: use nat, dr or tunnel`,
			"virtualServers[0].persistenceTimeout: 1ms is out of range 1s..720h (0s or leave it out for none)",
			"virtualServers[0].persistencePrefix: 99 is out of range 1..32 for IPv4",
			`virtualServers[0].sorryServer: "x" is not ADDR or ADDR:PORT, e.g. "10.0.0.1", "10.0.0.1:8080" or "[fd00::1]:8080"`,
			"virtualServers[0].hysteresis: 1 must be below quorum 1: the service goes down when the healthy weight falls below quorum - hysteresis",
			`virtualServers[0].realServers[0].address: "x" is not ADDR or ADDR:PORT, e.g. "10.0.0.1", "10.0.0.1:8080" or "[fd00::1]:8080"`,
			"virtualServers[0].realServers[0].weight: 70000 is out of range 0..65535 (0 takes no new connections)",
			"virtualServers[0].realServers[0].check: no check: set exactly one of tcp, http, https, smtp, dns, udp, ping, exec",
			"virtualServers[0].realServers[0].notifyUp[0]: empty: give the program to run (an absolute path, or a name looked up in PATH)",
			"virtualServers[0].realServers[0].notifyDown[0]: empty: give the program to run (an absolute path, or a name looked up in PATH)",
			"virtualServers[0].realServers[1].check.port: 99999 is out of range 1..65535 (leave it out for the real server's port)",
			"virtualServers[0].check.interval: 0s is out of range 10ms..1h (leave it out for 5s)",
			"virtualServers[0].quorumUp[0]: empty: give the program to run (an absolute path, or a name looked up in PATH)",
			"virtualServers[0].quorumDown[0]: empty: give the program to run (an absolute path, or a name looked up in PATH)",
			`loadBalancer.backend: "x" is not a backend: use auto (ipvs where the kernel has it, else nftables), ipvs or nftables`,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse([]byte("name: n1\n" + c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			wantExactly(t, Validate(cfg), c.want...)
		})
	}
}

func TestLVSNilEntries(t *testing.T) {
	cfg := &haav1.AgentConfig{Name: "n1",
		VirtualServers: []*haav1.VirtualServer{nil, {
			Address:     "10.0.0.1:80",
			RealServers: []*haav1.RealServer{nil, {Address: "10.0.0.2"}},
			Check:       &haav1.HealthCheck{Udp: &haav1.UdpCheck{Payload: strings.Repeat("x", MaxUDPPayload+1)}},
		}},
	}
	wantExactly(t, Validate(cfg),
		`virtualServers[0]: no service: set address ("ADDR:PORT", e.g. "10.0.0.100:80"), fwmark or group`,
		`virtualServers[1].realServers[0].address: required: the real server's "ADDR:PORT", or "ADDR" for the virtual server's port`,
		"virtualServers[1].check.udp.payload: 65508 bytes: a UDP datagram carries at most 65507",
	)
}

func TestParseLVSFields(t *testing.T) {
	_, err := Parse([]byte(`
loadBalancer: {backends: ipvs, maxConcurrentChecks: -1}
virtualServers:
  - address: 10.0.0.1:80
    quorum: "x"
    realServer: []
    realServers: [{address: 10.0.0.2, weight: -1, check: {tcp: {}, intervall: 1s, timeout: 3}}]
`))
	wantExactly(t, err,
		`loadBalancer.backends: unknown field "backends" (did you mean "backend"?)`,
		"loadBalancer.maxConcurrentChecks: expected a whole number >= 0, got -1",
		`virtualServers[0].quorum: expected a whole number, got the string "x"`,
		`virtualServers[0].realServer: unknown field "realServer" (did you mean "realServers"?)`,
		`virtualServers[0].realServers[0].check.intervall: unknown field "intervall" (did you mean "interval"?)`,
		`virtualServers[0].realServers[0].check.timeout: duration 3 needs a unit, e.g. "3s" or "3ms"`,
		"virtualServers[0].realServers[0].weight: expected a whole number >= 0, got -1",
	)
}

// TestLVSThresholds: a real server's connection limits are haad's when the
// configuration sets either; a lower one above the upper one (the kernel
// refuses it with ERANGE) is an error at its path.
func TestLVSThresholds(t *testing.T) {
	cfg, err := Parse([]byte(`
virtualServers:
  - address: 10.0.0.1:80
    realServers:
      - {address: 10.0.1.1}
      - {address: 10.0.1.2, upperThreshold: 100, lowerThreshold: 80}
      - {address: 10.0.1.3, upperThreshold: 100}
      - {address: 10.0.1.4, upperThreshold: 0}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Resolve(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []lvs.Thresholds{{}, {Upper: 100, Lower: 80, Set: true}, {Upper: 100, Set: true}, {Set: true}}
	for k, rs := range a.VirtualServers[0].Reals {
		if rs.Thresholds != want[k] {
			t.Errorf("realServers[%d] thresholds %+v, want %+v", k, rs.Thresholds, want[k])
		}
	}
	cfg, err = Parse([]byte(`
virtualServers:
  - address: 10.0.0.1:80
    realServers:
      - {address: 10.0.1.1, upperThreshold: 100, lowerThreshold: 101}
      - {address: 10.0.1.2, lowerThreshold: 10}
      - {address: 10.0.1.3, upperThreshold: 0, lowerThreshold: 1}
`))
	if err != nil {
		t.Fatal(err)
	}
	wantExactly(t, Validate(cfg),
		"virtualServers[0].realServers[0].lowerThreshold: 101 is above upperThreshold 100: IPVS refuses it; set it at most 100 (0: three quarters of the upper one)",
		"virtualServers[0].realServers[1].lowerThreshold: 10 without an upperThreshold: IPVS takes a server back below the lower threshold only after the upper one stopped it; set upperThreshold (at least 10), or remove lowerThreshold",
		"virtualServers[0].realServers[2].lowerThreshold: 1 without an upperThreshold: IPVS takes a server back below the lower threshold only after the upper one stopped it; set upperThreshold (at least 1), or remove lowerThreshold",
	)
}

// TestLVSSorryServerPortAsKeepalived: the sorry server's port is the one
// keepalived programs: a fwmark service's dr or tunnel sorry server keeps
// the packets' ports (port 0, a port given is cleared, as keepalived
// clears it), a nat one has the port given (none: the packets' ports); a
// sorry server of an address service without a port has the service's.
func TestLVSSorryServerPortAsKeepalived(t *testing.T) {
	cfg, err := Parse([]byte(`
virtualServers:
  - {fwmark: 1, forwarding: dr, sorryServer: "10.0.0.9:8080"}
  - {fwmark: 2, forwarding: tunnel, sorryServer: 10.0.0.9}
  - {fwmark: 3, sorryServer: "10.0.0.9:8080"}
  - {fwmark: 4, sorryServer: 10.0.0.9}
  - {address: "10.0.0.1:80", forwarding: dr, sorryServer: 10.0.0.9}
  - {address: "10.0.0.1:81", sorryServer: 10.0.0.9}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Resolve(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"10.0.0.9:0", "10.0.0.9:0", "10.0.0.9:8080", "10.0.0.9:0", "10.0.0.9:80", "10.0.0.9:81"} {
		if got := a.VirtualServers[i].Sorry.String(); got != want {
			t.Errorf("virtualServers[%d].sorryServer is %s, want %s", i, got, want)
		}
	}
}

// TestLVSKeepalivedSettings: the sorry server's own forwarding method and
// inhibit, a real server's own inhibitOnFailure (over the virtual
// server's), and flushing the table at start and stop; what has no effect
// is refused at its path.
func TestLVSKeepalivedSettings(t *testing.T) {
	cfg, err := Parse([]byte(`
loadBalancer: {backend: ipvs, flushOnStart: true, flushOnStop: true}
virtualServers:
  - address: 10.0.0.1:80
    inhibitOnFailure: true
    sorryServer: 10.0.0.9
    sorryServerForwarding: DR
    sorryServerInhibit: true
    realServers:
      - {address: 10.0.1.1:8080}
      - {address: 10.0.1.2:8080, inhibitOnFailure: false}
  - fwmark: 5
    sorryServer: "10.0.0.9:8080"
    sorryServerForwarding: tunnel
    realServers:
      - {address: 10.0.1.1:8080, inhibitOnFailure: true}
      - {address: 10.0.1.2:8080}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Resolve(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !a.FlushOnStart || !a.FlushOnStop {
		t.Errorf("flush at start %v, at stop %v", a.FlushOnStart, a.FlushOnStop)
	}
	v0, v1 := a.VirtualServers[0], a.VirtualServers[1]
	if v0.Sorry.String() != "10.0.0.9:80" || v0.SorryForwarding != lvs.DirectRoute || !v0.SorryInhibit || v0.Service.Forwarding != lvs.NAT {
		t.Errorf("virtualServers[0]: sorry %s %s inhibit %v, service %s", v0.Sorry, v0.SorryForwarding, v0.SorryInhibit, v0.Service.Forwarding)
	}
	if !v0.Reals[0].Inhibit || v0.Reals[1].Inhibit || !v1.Reals[0].Inhibit || v1.Reals[1].Inhibit {
		t.Errorf("inhibit: %v %v %v %v, want true false true false", v0.Reals[0].Inhibit, v0.Reals[1].Inhibit, v1.Reals[0].Inhibit, v1.Reals[1].Inhibit)
	}
	// A fwmark service's tunnel sorry server: the port is cleared, as
	// keepalived clears it.
	if v1.Sorry.String() != "10.0.0.9:0" || v1.SorryForwarding != lvs.Tunnel || v1.SorryInhibit {
		t.Errorf("virtualServers[1]: sorry %s %s inhibit %v", v1.Sorry, v1.SorryForwarding, v1.SorryInhibit)
	}

	cfg, err = Parse([]byte(`
virtualServers:
  - {address: 10.0.0.1:80, sorryServerForwarding: dr, sorryServerInhibit: true}
  - {address: 10.0.0.2:80, sorryServer: "10.0.0.9:8080", sorryServerForwarding: dr}
  - {address: 10.0.0.3:80, sorryServer: "10.0.0.9:8080", sorryServerForwarding: masq}
`))
	if err != nil {
		t.Fatal(err)
	}
	wantExactly(t, Validate(cfg),
		"virtualServers[0].sorryServerForwarding: has no effect without sorryServer: remove it, or set sorryServer",
		"virtualServers[0].sorryServerInhibit: has no effect without sorryServer: remove it, or set sorryServer",
		"virtualServers[1].sorryServer: port 8080: dr forwarding cannot change the port (packets keep port 80): use port 80, or sorryServerForwarding: nat",
		`virtualServers[2].sorryServerForwarding: "masq" is not a forwarding method: use nat, dr or tunnel`,
	)
}
