package keepalived

import (
	"errors"
	"fmt"
	"path/filepath"
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

// virtual_routes and virtual_rules: converted line by line (interfaces
// renamed, no_track dropped with a warning, what haa does not take refused
// at its line).
func TestVirtualRoutesAndRulesConverted(t *testing.T) {
	src := instance(" virtual_routes {\n  10.1.0.0/16 via 10.0.0.1 dev eth0 no_track\n  blackhole 10.9.0.0/16\n }\n virtual_rules {\n  from 10.0.0.100/32 table 100 iif eth0\n }\n")
	cfg, warns := ok(t, src, Options{Interfaces: map[string]string{"eth0": "ens3"}})
	in := cfg.GetInstances()[0]
	if got := strings.Join(in.GetVirtualRoutes(), "|"); got != "10.1.0.0/16 via 10.0.0.1 dev ens3|blackhole 10.9.0.0/16" {
		t.Errorf("virtualRoutes %q", got)
	}
	// keepalived gives a rule without priority 16384 (and warns).
	if got := strings.Join(in.GetVirtualRules(), "|"); got != "from 10.0.0.100/32 table 100 iif ens3 priority 16384" {
		t.Errorf("virtualRules %q", got)
	}
	if !hasProblem(warns, 11, "virtual_rules", "keepalived gives it 16384") {
		t.Errorf("no warning for the rule's priority:\n%s", problemLines(warns))
	}
	if !hasProblem(warns, 8, "virtual_routes", "no_track is ignored") {
		t.Errorf("no warning for no_track:\n%s", problemLines(warns))
	}
	ps := fails(t, instance(" virtual_routes {\n  10.1.0.0/16 via 10.0.0.1 mtu 1400\n }\n"))
	if !hasProblem(ps, 8, "virtual_routes", `"mtu": not supported`) {
		t.Errorf("an unsupported word:\n%s", problemLines(ps))
	}
}

// virtual_server_group: converted into the virtual server's group, in
// whichever order the file defines them; a missing group makes keepalived
// ignore the virtual server, and haa too, loudly.
func TestVirtualServerGroupConverted(t *testing.T) {
	src := "virtual_server group web {\n lb_algo rr\n protocol TCP\n real_server 10.0.2.1 80 {\n  TCP_CHECK {\n  }\n }\n}\n" +
		"virtual_server_group web {\n 10.0.0.1 80\n 10.0.0.10-12 80\n fd00::1 80\n}\n" +
		"virtual_server_group marks {\n fwmark 7 inet\n fwmark 8\n}\n" +
		"virtual_server group marks {\n lb_algo rr\n lb_kind DR\n real_server 10.0.2.1 80 {\n }\n}\n" +
		"virtual_server group nothere {\n lb_algo rr\n}\n"
	_, _, err := Parse("t.conf", []byte(src), t.TempDir(), Options{})
	var ke *Error
	if !errors.As(err, &ke) || !strings.Contains(err.Error(), "t.conf:9: ") || !strings.Contains(err.Error(), "mixes IPv4 and IPv6 services") {
		t.Errorf("a group of both families: %v", err)
	}
	src = strings.Replace(src, " fd00::1 80\n", "", 1)
	cfg, warns := ok(t, src, Options{})
	vss := cfg.GetVirtualServers()
	if len(vss) != 2 {
		t.Fatalf("%d virtual servers, want 2 (the one of a missing group is not run)", len(vss))
	}
	if got := strings.Join(vss[0].GetGroup(), ","); got != "10.0.0.1:80,10.0.0.10-12:80" || vss[0].GetAddress() != "" {
		t.Errorf("group %q address %q", got, vss[0].GetAddress())
	}
	if got := strings.Join(vss[1].GetGroup(), ","); got != "fwmark 7,fwmark 8" {
		t.Errorf("fwmark group %q", got)
	}
	if !hasProblem(warns, 14, "virtual_server_group", "inet is ignored") {
		t.Errorf("no warning for the family:\n%s", problemLines(warns))
	}
	if !hasProblem(warns, 23, "virtual_server", "NOT RUN: there is no virtual_server_group nothere") {
		t.Errorf("no warning for the missing group:\n%s", problemLines(warns))
	}
	a, err := config.Resolve(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(a.VirtualServers[0].Keys()); n != 4 {
		t.Errorf("%d services, want 4", n)
	}
	if r := a.VirtualServers[1].Reals[0].Addr; r.Port() != 0 {
		t.Errorf("a DR fwmark group's real server programmed with port %d", r.Port())
	}
}

// auth_type AH is converted; as keepalived, it clears state MASTER (a new
// master needs an advert's sequence number first).
func TestAHConverted(t *testing.T) {
	cfg, warns := ok(t, instance(" state MASTER\n priority 100\n authentication {\n  auth_type AH\n  auth_pass s3cret\n }\n"), Options{})
	in := cfg.GetInstances()[0]
	if in.GetAuth().GetType() != "AH" || in.GetAuth().GetPassword() != "s3cret" || in.GetState() != "" {
		t.Errorf("auth %v, state %q", in.GetAuth(), in.GetState())
	}
	if !hasProblem(warns, 7, "state", "with auth_type AH keepalived clears state MASTER") {
		t.Errorf("no warning:\n%s", problemLines(warns))
	}
}

// Files from real deployments (testdata/wild), each also checked with
// keepalived 2.2.7's keepalived -t: every one converts into a valid
// configuration, with the warnings that keepalived's own messages match.
func TestWildFilesConvert(t *testing.T) {
	for _, tc := range []struct {
		file  string
		warns []string
	}{
		{"k8s-apiserver.conf", []string{"NOT TRACKED: vrrp_script check_apiserver"}},
		{"dual-stack-excluded.conf", []string{"no_track is ignored", "keepalived gives it 16384"}},
		{"cloud-eip.conf", []string{`"0.5" is not whole seconds`, "has no virtual_ipaddress"}},
		{"lvs-dr-director.conf", []string{"its check still connects to port 80", "does not know nb_get_retry in TCP_CHECK"}},
		{"haproxy-ah.conf", []string{"keepalived uses \"1a2b3c4d\"", "clears state MASTER"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			cfg, warns, err := Load(filepath.Join("testdata", "wild", tc.file), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := config.Resolve(cfg); err != nil {
				t.Fatalf("not a valid configuration: %v", err)
			}
			for _, w := range tc.warns {
				found := false
				for _, p := range warns {
					found = found || strings.Contains(p.Msg, w)
				}
				if !found {
					t.Errorf("no warning %q:\n%s", w, problemLines(warns))
				}
			}
		})
	}
}
