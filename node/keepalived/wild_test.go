package keepalived

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/haa-dev/haa/node/config"
)

// Round two of keepalived.conf files from real deployments: what
// keepalived 2.2.7 runs and haa used to refuse or read differently.

// A real server of a fwmark DR service with a port and an HTTP_GET:
// keepalived clears the port in IPVS only, its checker keeps :80.
func TestFwmarkRealServerPortKeptByItsCheck(t *testing.T) {
	src := "virtual_server fwmark 7 {\n lb_algo rr\n lb_kind DR\n real_server 172.16.0.11 80 {\n  HTTP_GET {\n   url {\n    path /health\n   }\n  }\n }\n real_server 172.16.0.12 80 {\n  TCP_CHECK {\n  }\n }\n}\n"
	cfg, warns := ok(t, src, Options{})
	a, err := config.Resolve(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range a.VirtualServers[0].Reals {
		if r.Addr.Port() != 0 {
			t.Errorf("real server %d programmed with port %d, want none (0)", i, r.Addr.Port())
		}
		if r.Check == nil || r.Check.Target.Port() != 80 {
			t.Errorf("real server %d: check %+v, want it on port 80", i, r.Check)
		}
	}
	if !hasProblem(warns, 4, "real_server", "programs this real server without its port", "still connects to port 80") {
		t.Errorf("no warning that the port is cleared for IPVS only:\n%s", problemLines(warns))
	}
	for _, p := range warns {
		if strings.Contains(p.Msg, "write real_server 172.16.0.11\n") || strings.Contains(p.Msg, "write real_server 172.16.0.11;") || strings.HasSuffix(p.Msg, "write real_server 172.16.0.11") {
			t.Errorf("the advice suggests dropping the port: %s", p)
		}
	}
}

// unicast_src_ip and mcast_src_ip are one setting in keepalived: the
// last one wins, silently when they agree.
func TestSourceAddressLastOneWins(t *testing.T) {
	cfg, warns := ok(t, instance(" mcast_src_ip 10.0.0.1\n unicast_src_ip 10.0.0.1\n unicast_peer {\n  10.0.0.2\n }\n"), Options{})
	if got := cfg.GetInstances()[0].GetSourceAddress(); got != "10.0.0.1" {
		t.Errorf("sourceAddress %q, want 10.0.0.1", got)
	}
	if len(warns) != 0 {
		t.Errorf("the same address twice is not worth a warning:\n%s", problemLines(warns))
	}
	cfg, warns = ok(t, instance(" unicast_src_ip 10.0.0.1\n mcast_src_ip 10.0.0.3\n"), Options{})
	if got := cfg.GetInstances()[0].GetSourceAddress(); got != "10.0.0.3" {
		t.Errorf("sourceAddress %q, want the last one, 10.0.0.3", got)
	}
	if !hasProblem(warns, 8, "mcast_src_ip", "the last one wins", "10.0.0.1 at line 7") {
		t.Errorf("no warning naming both lines:\n%s", problemLines(warns))
	}
}

// persistence_timeout without a value is IPVS's default, 360 s.
func TestPersistenceTimeoutWithoutValueIs360s(t *testing.T) {
	cfg, _ := ok(t, "virtual_server 10.0.0.1 80 {\n lb_algo rr\n protocol TCP\n persistence_timeout\n real_server 10.0.0.2 80 {\n }\n}\n", Options{})
	if got := cfg.GetVirtualServers()[0].GetPersistenceTimeout().AsDuration(); got != 360*time.Second {
		t.Errorf("persistenceTimeout %v, want 6m0s", got)
	}
}

// HTTP_GET and SSL_GET retry after 3 s by default (check_http.c); the
// other checkers after 1 s.
func TestHTTPCheckRetriesAfter3sByDefault(t *testing.T) {
	for _, tc := range []struct {
		checker string
		want    time.Duration
	}{
		{"HTTP_GET {\n   url {\n    path /\n   }\n  }", 3 * time.Second},
		{"SSL_GET {\n   url {\n    path /\n   }\n  }", 3 * time.Second},
		{"HTTP_GET {\n   url {\n    path /\n   }\n   delay_before_retry 2\n  }", 2 * time.Second},
		{"TCP_CHECK {\n  }", time.Second},
	} {
		kind, _, _ := strings.Cut(tc.checker, " ")
		t.Run(kind, func(t *testing.T) {
			cfg, _ := ok(t, "virtual_server 10.0.0.1 80 {\n lb_algo rr\n protocol TCP\n real_server 10.0.0.2 80 {\n  "+tc.checker+"\n }\n}\n", Options{})
			a, err := config.Resolve(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := a.VirtualServers[0].Reals[0].Check.RetryDelay; got != tc.want {
				t.Errorf("retry delay %v, want %v", got, tc.want)
			}
		})
	}
}

// nb_get_retry is HTTP_GET's: elsewhere keepalived reports an unknown
// keyword and ignores it, and so does haa, with the line.
func TestNbGetRetryOutsideHTTPIsIgnored(t *testing.T) {
	cfg, warns := ok(t, "virtual_server 10.0.0.1 80 {\n lb_algo rr\n protocol TCP\n real_server 10.0.0.2 80 {\n  TCP_CHECK {\n   nb_get_retry 5\n  }\n }\n}\n", Options{})
	a, err := config.Resolve(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.VirtualServers[0].Reals[0].Check.Fall; got != 2 {
		t.Errorf("fall %d, want keepalived's 2 (retry 1): nb_get_retry must not set it", got)
	}
	if !hasProblem(warns, 6, "nb_get_retry", "in TCP_CHECK", "ignores it") {
		t.Errorf("no warning at the line:\n%s", problemLines(warns))
	}
	// In HTTP_GET it is retry's old name.
	cfg, _ = ok(t, "virtual_server 10.0.0.1 80 {\n lb_algo rr\n protocol TCP\n real_server 10.0.0.2 80 {\n  HTTP_GET {\n   url {\n    path /\n   }\n   nb_get_retry 5\n  }\n }\n}\n", Options{})
	if a, err = config.Resolve(cfg); err != nil {
		t.Fatal(err)
	}
	if got := a.VirtualServers[0].Reals[0].Check.Fall; got != 6 {
		t.Errorf("HTTP_GET nb_get_retry 5: fall %d, want 6", got)
	}
}

// A vrrp_script defined after the instance that tracks it: keepalived
// 2.2.7 does not find it ("not found, ignoring") and runs untracked; so
// does haa, loudly, with both lines.
func TestScriptDefinedAfterItsInstanceIsNotTracked(t *testing.T) {
	src := instance(" track_script {\n  chk_nginx\n }\n") + "vrrp_script chk_nginx {\n script \"/bin/true\"\n weight -20\n}\n"
	cfg, warns := ok(t, src, Options{})
	if n := len(cfg.GetInstances()[0].GetTrack()); n != 0 {
		t.Errorf("the instance tracks %d trackers, want none, as keepalived", n)
	}
	if n := len(cfg.GetTrackers()); n != 0 {
		t.Errorf("%d trackers converted, want none (keepalived runs none)", n)
	}
	if !hasProblem(warns, 8, "track_script", "NOT TRACKED", "defined at line 11", "not found, ignoring", "move vrrp_script chk_nginx above") {
		t.Errorf("no loud warning with both lines:\n%s", problemLines(warns))
	}
	// Defined before: tracked, as ever.
	src = "vrrp_script chk_nginx {\n script \"/bin/true\"\n weight -20\n}\n" + instance(" track_script {\n  chk_nginx\n }\n")
	cfg, _ = ok(t, src, Options{})
	if n := len(cfg.GetInstances()[0].GetTrack()); n != 1 {
		t.Errorf("defined before: %d trackers, want 1", n)
	}
}

// A vrrp_script interval keepalived cannot parse is ignored with a
// warning, and the default kept.
func TestScriptIntervalNotWholeSecondsIsIgnored(t *testing.T) {
	src := "vrrp_script chk {\n script \"/bin/true\"\n interval 0.5\n timeout 1.5\n}\n" + instance(" track_script {\n  chk\n }\n")
	cfg, warns := ok(t, src, Options{})
	sc := cfg.GetTrackers()[0].GetScript()
	if sc.GetInterval() != nil || sc.GetTimeout() != nil {
		t.Errorf("interval %v timeout %v, want the defaults (unset)", sc.GetInterval(), sc.GetTimeout())
	}
	if !hasProblem(warns, 3, "interval", `"0.5" is not whole seconds`, "keeps its default, 1 second") ||
		!hasProblem(warns, 4, "timeout", `"1.5" is not whole seconds`, "the interval") {
		t.Errorf("no warnings:\n%s", problemLines(warns))
	}
}

// virtual_ipaddress_excluded: held by the master, not advertised; IPv6
// addresses in an IPv4 instance are its common use.
func TestExcludedAddressesConverted(t *testing.T) {
	src := "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 7\n virtual_ipaddress {\n  10.0.0.100/24\n }\n virtual_ipaddress_excluded {\n  10.0.0.101/24 dev eth1\n  2001:db8::100/64\n }\n}\n"
	cfg, _ := ok(t, src, Options{Interfaces: map[string]string{"eth1": "ens4"}})
	in := cfg.GetInstances()[0]
	if got := strings.Join(in.GetExcludedVips(), ","); got != "10.0.0.101/24 dev ens4,2001:db8::100/64" {
		t.Errorf("excludedVips %q", got)
	}
	if got := strings.Join(in.GetVips(), ","); got != "10.0.0.100/24" {
		t.Errorf("vips %q", got)
	}
	// IPv6 stays refused in virtual_ipaddress (it would be advertised).
	ps := fails(t, "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 7\n virtual_ipaddress {\n  2001:db8::100/64\n }\n}\n")
	if !hasProblem(ps, 5, "virtual_ipaddress", "no IPv6 VIPs") {
		t.Errorf("IPv6 in virtual_ipaddress:\n%s", problemLines(ps))
	}
}

// An instance without virtual_ipaddress: the election alone, as
// keepalived runs it (VRRPv2), or with no_virtual_ipaddress (VRRPv3).
func TestInstanceWithoutAddressesConverted(t *testing.T) {
	base := "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 7\n notify_master \"/bin/true\"\n%s}\n"
	cfg, warns := ok(t, fmt.Sprintf(base, ""), Options{})
	if in := cfg.GetInstances()[0]; len(in.GetVips()) != 0 || in.GetVersion() != 2 || in.GetNoVips() {
		t.Errorf("v2 without addresses: %v", in)
	}
	if !hasProblem(warns, 1, "vrrp_instance", "has no virtual_ipaddress", "at least one is sensible") {
		t.Errorf("no warning:\n%s", problemLines(warns))
	}
	ps := fails(t, fmt.Sprintf(base, " version 3\n"))
	if !hasProblem(ps, 1, "vrrp_instance", "with VRRPv3 keepalived refuses it", "no_virtual_ipaddress") {
		t.Errorf("v3 without addresses:\n%s", problemLines(ps))
	}
	cfg, warns = ok(t, fmt.Sprintf(base, " version 3\n no_virtual_ipaddress\n"), Options{})
	if in := cfg.GetInstances()[0]; !in.GetNoVips() || in.GetVersion() != 3 {
		t.Errorf("v3 with no_virtual_ipaddress: %v", in)
	}
	if len(warns) != 0 {
		t.Errorf("warnings:\n%s", problemLines(warns))
	}
	ps = fails(t, "global_defs {\n vrrp_strict\n}\n"+fmt.Sprintf(base, " no_virtual_ipaddress\n"))
	if !hasProblem(ps, 4, "vrrp_instance", "with strict mode keepalived refuses it") {
		t.Errorf("strict without addresses:\n%s", problemLines(ps))
	}
}
