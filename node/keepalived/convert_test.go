package keepalived

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// instance is a minimal valid vrrp_instance with extra lines.
func instance(extra string) string {
	return "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 7\n virtual_ipaddress {\n  10.0.0.100/24\n }\n" + extra + "}\n"
}

// ok converts src, which must convert, and checks that the result is a
// valid haa configuration.
func ok(t *testing.T, src string, opts Options) (*haav1.AgentConfig, []Problem) {
	t.Helper()
	cfg, warns, err := Parse("t.conf", []byte(src), t.TempDir(), opts)
	if err != nil {
		t.Fatalf("conversion failed:\n%v", err)
	}
	if err := config.Validate(cfg); err != nil {
		t.Fatalf("converted configuration not valid: %v", err)
	}
	return cfg, warns
}

// fails converts src, which must fail, and returns its problems.
func fails(t *testing.T, src string) []Problem {
	t.Helper()
	cfg, warns, err := Parse("t.conf", []byte(src), t.TempDir(), Options{})
	if err == nil {
		t.Fatalf("converted without error: %v (warnings %v)", cfg, warns)
	}
	ke, isKE := err.(*Error)
	if !isKE {
		t.Fatalf("error %T, want *Error", err)
	}
	return ke.Problems
}

// hasProblem reports whether ps has one at line with keyword kw whose
// message contains each of msgs.
func hasProblem(ps []Problem, line int, kw string, msgs ...string) bool {
	for _, p := range ps {
		if p.Pos.Line != line || p.Keyword != kw {
			continue
		}
		all := true
		for _, m := range msgs {
			all = all && strings.Contains(p.Msg, m)
		}
		if all {
			return true
		}
	}
	return false
}

func TestUnknownKeywords(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		line      int
		kw        string
		msg       []string
	}{
		{"in an instance", instance(" priorty 100\n"), 7, "priorty", []string{"unknown keyword in vrrp_instance VI_1", "did you mean priority?", "fix the spelling"}},
		{"in authentication", instance(" authentication {\n  auth_tpye PASS\n  auth_pass x\n }\n"), 8, "auth_tpye", []string{"unknown keyword in authentication", "did you mean auth_type?"}},
		{"in global_defs", "global_defs {\n  router_idd lb1\n}\n" + instance(""), 2, "router_idd", []string{"unknown keyword in global_defs", "router_id?"}},
		{"in a url", "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  HTTP_GET {\n   url {\n    path /\n    stauts_code 200\n   }\n  }\n }\n}\n", 6, "stauts_code", []string{"unknown keyword in url", "status_code?"}},
		{"in a real server", "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  TCP_CHEK {\n  }\n }\n}\n", 3, "TCP_CHEK", []string{"unknown keyword in real_server 10.0.0.2 80", "TCP_CHECK?", "and its block"}},
		{"quoted keyword", instance(" \"priority\" 100\n"), 7, "priority", []string{"cannot be quoted"}},
		{"top level", "vrrp_instanc VI_1 {\n}\n", 1, "vrrp_instanc", []string{"unknown top-level keyword", "vrrp_instance?"}},
		{"no suggestion", instance(" frobnicate\n"), 7, "frobnicate", []string{"unknown keyword in vrrp_instance VI_1: fix the spelling, or remove the line"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := fails(t, tc.src)
			if !hasProblem(ps, tc.line, tc.kw, tc.msg...) {
				t.Errorf("problems:\n%swant line %d %s %q", problemLines(ps), tc.line, tc.kw, tc.msg)
			}
		})
	}
}

func TestBadValues(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		line      int
		kw        string
		msg       string
	}{
		{"vrid out of range", strings.Replace(instance(""), "virtual_router_id 7", "virtual_router_id 300", 1), 3, "virtual_router_id", `"300" is not a whole number 1..255`},
		{"priority not a number", instance(" priority high\n"), 7, "priority", `"high" is not a whole number 1..255`},
		{"state in lower case", instance(" state master\n"), 7, "state", "write MASTER or BACKUP, in capitals"},
		{"AH", instance(" authentication {\n  auth_type AH\n  auth_pass x\n }\n"), 8, "auth_type", "AH authentication is obsolete"},
		{"advert_int 0", instance(" advert_int 0\n"), 7, "advert_int", "must be more than 0"},
		{"advert_int text", instance(" advert_int fast\n"), 7, "advert_int", `"fast" is not a number of seconds`},
		{"weight reverse", "vrrp_script chk {\n script /bin/true\n weight 10 reverse\n}\n" + instance(" track_script {\n  chk\n }\n"), 3, "weight", "no reversed weights"},
		{"weight too big", "vrrp_script chk {\n script /bin/true\n weight 300\n}\n" + instance(" track_script {\n  chk\n }\n"), 3, "weight", "-253..253"},
		{"missing script", instance(" track_script {\n  chk_nope\n }\n"), 8, "track_script", `no vrrp_script named "chk_nope"`},
		{"script is a file", "vrrp_track_file f {\n file /run/f\n}\n" + instance(" track_script {\n  f\n }\n"), 11, "track_script", "f is a vrrp_track_file, not a vrrp_script"},
		{"no script line", "vrrp_script chk {\n interval 2\n}\n" + instance(" track_script {\n  chk\n }\n"), 1, "vrrp_script", "has no script"},
		{"duplicate keyword", instance(" priority 100\n priority 90\n"), 8, "priority", "given twice in vrrp_instance VI_1 (first at line 7): keep one"},
		{"no interface", "vrrp_instance VI_1 {\n virtual_router_id 7\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n", 1, "vrrp_instance", "has no interface: add interface eth0"},
		{"no vrid", "vrrp_instance VI_1 {\n interface eth0\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n", 1, "vrrp_instance", "has no virtual_router_id"},
		{"no vips", "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 7\n}\n", 1, "vrrp_instance", "has no virtual address"},
		{"bad vip", instance(" virtual_ipaddress {\n  10.0.0.300/24\n }\n"), 8, "virtual_ipaddress", `"10.0.0.300" is not an IP address`},
		{"vip option", instance(" virtual_ipaddress {\n  10.0.0.5/24 dev eth0 no_track\n }\n"), 8, "virtual_ipaddress", "not supported: remove it"},
		{"ipv6 vip", instance(" virtual_ipaddress {\n  fd00::5/64\n }\n"), 8, "virtual_ipaddress", "no IPv6 VIPs"},
		{"duplicate instance", instance("") + instance(""), 8, "vrrp_instance", "vrrp_instance VI_1 is already defined at line 1"},
		{"virtual_routes", instance(" virtual_routes {\n  10.1.0.0/16 via 10.0.0.1\n }\n"), 7, "virtual_routes", "notify_master"},
		{"sync group of one", instance("") + "vrrp_sync_group G {\n group {\n  VI_1\n }\n}\n", 10, "group", "at least two instances"},
		{"sync group unknown member", instance("") + "vrrp_sync_group G {\n group {\n  VI_1\n  VI_9\n }\n}\n", 11, "group", `no vrrp_instance named "VI_9"`},
		{"notify users differ", instance(" notify_master \"/bin/m\" alice\n notify_backup \"/bin/b\" bob\n"), 8, "notify_backup", "runs as bob but notify_master runs as alice"},
		{"strict unicast", "global_defs {\n vrrp_strict\n}\n" + instance(" unicast_peer {\n  10.0.0.2\n }\n"), 10, "unicast_peer", "refuses unicast peers"},
		{"validation backstop", "global_defs {\n router_id \"bad name!\"\n}\n" + instance(""), 2, "router_id", "not a valid haa configuration (name:"},
		{"typo does not cascade", strings.Replace(instance(""), "virtual_ipaddress {", "virtual_ipadress {", 1), 4, "virtual_ipadress", "did you mean virtual_ipaddress?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := fails(t, tc.src)
			if !hasProblem(ps, tc.line, tc.kw, tc.msg) {
				t.Errorf("problems:\n%swant line %d %s %q", problemLines(ps), tc.line, tc.kw, tc.msg)
			}
		})
	}
}

// Every error message says what to change: it has a remedy after its
// description ("...: write ...", "...: remove ...", ...).
func TestErrorsSayWhatToDo(t *testing.T) {
	srcs := []string{
		instance(" priorty 100\n state master\n advert_int -1\n authentication {\n  auth_type AH\n }\n track_script {\n  x weight 1 reverse\n  y\n }\n"),
		"virtual_server 10.0.0.1 {\n}\nvirtual_server group G {\n}\nvirtual_server 10.0.0.1 80 {\n lb_kind dr\n lb_algo foo\n protocol tcp\n real_server 10.0.0.2 80 {\n  TCP_CHECK {\n   connect_ip 10.0.0.9\n  }\n  MISC_CHECK {\n  }\n }\n}\n",
		"vrrp_script {\n}\nvrrp_track_process p {\n quorum_max 0\n}\n",
	}
	verbs := []string{"write", "remove", "add", "fix", "rename", "keep", "give", "use", "change", "list", "define", "make", "move", "check", "put", "track", "delete", "flatten", "start", "set"}
	for _, src := range srcs {
		for _, p := range fails(t, src) {
			ok := false
			low := strings.ToLower(p.Msg)
			for _, v := range verbs {
				ok = ok || strings.Contains(low, ": "+v) || strings.Contains(low, "; "+v) || strings.Contains(low, ", "+v) || strings.Contains(low, "("+v)
			}
			if !ok {
				t.Errorf("%v: does not say what to change", p)
			}
		}
	}
}

func TestInstanceSemantics(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		check     func(in *haav1.Instance) string // "" when right
		warnKw    string                          // a warning expected at this keyword ("" none)
	}{
		{"keepalived default version 2", instance(""), func(in *haav1.Instance) string {
			return want(in.GetVersion() == 2 && in.GetAdvertInterval().AsDuration() == time.Second && in.Priority == nil, "version 2, advert 1s, no priority")
		}, ""},
		{"global vrrp_version", "global_defs {\n vrrp_version 3\n}\n" + instance(" advert_int 0.5\n"), func(in *haav1.Instance) string {
			return want(in.GetVersion() == 3 && in.GetAdvertInterval().AsDuration() == 500*time.Millisecond, "version 3, advert 0.5s")
		}, ""},
		{"v2 advert_int rounds up", instance(" advert_int 1.5\n"), func(in *haav1.Instance) string {
			return want(in.GetAdvertInterval().AsDuration() == 2*time.Second, "advert 2s")
		}, "advert_int"},
		{"v2 advert_int rounds to 1 at least", instance(" advert_int 0.2\n"), func(in *haav1.Instance) string {
			return want(in.GetAdvertInterval().AsDuration() == time.Second, "advert 1s")
		}, "advert_int"},
		{"v2 advert_int at most 255", instance(" advert_int 300\n"), func(in *haav1.Instance) string {
			return want(in.GetAdvertInterval().AsDuration() == 255*time.Second, "advert 255s")
		}, "advert_int"},
		{"v3 advert_int to 10ms", instance(" version 3\n advert_int 0.123\n"), func(in *haav1.Instance) string {
			return want(in.GetAdvertInterval().AsDuration() == 120*time.Millisecond, "advert 0.12s")
		}, "advert_int"},
		{"auth_pass truncated to 8", instance(" authentication {\n  auth_type PASS\n  auth_pass 0123456789\n }\n"), func(in *haav1.Instance) string {
			return want(in.GetAuth().GetPassword() == "01234567" && in.GetAuth().GetType() == "PASS", "password 01234567")
		}, "auth_pass"},
		{"auth ignored with v3", instance(" version 3\n authentication {\n  auth_type PASS\n  auth_pass x\n }\n"), func(in *haav1.Instance) string {
			return want(in.GetAuth() == nil, "no auth")
		}, "authentication"},
		{"state MASTER without priority is the owner", instance(" state MASTER\n"), func(in *haav1.Instance) string {
			return want(in.GetState() == "MASTER" && in.GetPriority() == 255, "MASTER 255")
		}, "state"},
		{"state MASTER with its priority", instance(" state MASTER\n priority 150\n"), func(in *haav1.Instance) string {
			return want(in.GetState() == "MASTER" && in.GetPriority() == 150, "MASTER 150")
		}, ""},
		{"BACKUP is the default state", instance(" state BACKUP\n priority 90\n"), func(in *haav1.Instance) string {
			return want(in.GetState() == "" && in.GetPriority() == 90, "no state, 90")
		}, ""},
		{"nopreempt", instance(" state BACKUP\n nopreempt\n"), func(in *haav1.Instance) string {
			return want(in.Preempt != nil && !in.GetPreempt(), "preempt false")
		}, ""},
		{"nopreempt cleared by state MASTER", instance(" state MASTER\n priority 100\n nopreempt\n"), func(in *haav1.Instance) string {
			return want(in.Preempt == nil, "preempt unset")
		}, "nopreempt"},
		{"preempt_delay", instance(" preempt_delay 30\n"), func(in *haav1.Instance) string {
			return want(in.GetPreemptDelay().AsDuration() == 30*time.Second, "preemptDelay 30s")
		}, ""},
		{"preempt_delay cleared with nopreempt", instance(" nopreempt\n preempt_delay 30\n"), func(in *haav1.Instance) string {
			return want(in.PreemptDelay == nil && !in.GetPreempt(), "no preemptDelay")
		}, "preempt_delay"},
		{"strict mode", "global_defs {\n vrrp_strict\n}\n" + instance(" state MASTER\n priority 100\n authentication {\n  auth_type PASS\n  auth_pass x\n }\n"), func(in *haav1.Instance) string {
			return want(in.GetState() == "" && in.GetAuth() == nil, "BACKUP, no auth")
		}, "state"},
		{"vrrp_mcast_group4", "global_defs {\n vrrp_mcast_group4 224.0.0.99\n}\n" + instance(""), func(in *haav1.Instance) string {
			return want(in.GetMulticastGroup() == "224.0.0.99", "group 224.0.0.99")
		}, ""},
		{"vrrp_mcast_group4 not with unicast", "global_defs {\n vrrp_mcast_group4 224.0.0.99\n}\n" + instance(" unicast_src_ip 10.0.0.1\n unicast_peer {\n  10.0.0.2\n  10.0.0.3\n }\n"), func(in *haav1.Instance) string {
			return want(in.GetMulticastGroup() == "" && in.GetSourceAddress() == "10.0.0.1" && fmt.Sprint(in.GetUnicastPeers()) == "[10.0.0.2 10.0.0.3]", "unicast")
		}, ""},
		{"garp from global_defs", "global_defs {\n vrrp_garp_master_delay 10\n vrrp_garp_master_repeat 5\n vrrp_garp_interval 0.001\n}\n" + instance(" garp_master_refresh 60\n"), func(in *haav1.Instance) string {
			g := in.GetGarp()
			return want(g.GetDelay().AsDuration() == 10*time.Second && g.Repeat == nil && g.GetInterval().AsDuration() == time.Millisecond && g.GetRefresh().AsDuration() == time.Minute, "garp delay 10s, interval 1ms, refresh 60s, repeat default")
		}, ""},
		{"notify", instance(" notify_master \"/etc/keepalived/notify.sh master\" nobody nogroup\n notify /bin/n nobody nogroup\n notify_stop \"/bin/s\" nobody nogroup\n"), func(in *haav1.Instance) string {
			n := in.GetNotify()
			return want(fmt.Sprint(n.GetMaster()) == "[/etc/keepalived/notify.sh master]" && fmt.Sprint(n.GetAny()) == "[/bin/n]" && fmt.Sprint(n.GetStop()) == "[/bin/s]" && n.GetUser() == "nobody:nogroup", "notify commands, user nobody:nogroup")
		}, "notify"}, // an unquoted command followed by words: they are its user
		{"script_user for notify", "global_defs {\n script_user haa\n}\n" + instance(" notify_master /bin/m\n"), func(in *haav1.Instance) string {
			return want(in.GetNotify().GetUser() == "haa", "user haa")
		}, ""},
		{"excluded addresses", instance(" virtual_ipaddress_excluded {\n  10.0.0.101/24\n }\n"), func(in *haav1.Instance) string {
			return want(fmt.Sprint(in.GetVips()) == "[10.0.0.100/24 10.0.0.101/24]", "two vips")
		}, "virtual_ipaddress_excluded"},
		{"default_interface", "global_defs {\n default_interface eth9\n}\n" + strings.Replace(instance(""), " interface eth0\n", "", 1), func(in *haav1.Instance) string {
			return want(in.GetInterface() == "eth9", "eth9")
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, warns := ok(t, tc.src, Options{})
			if msg := tc.check(cfg.GetInstances()[0]); msg != "" {
				t.Errorf("want %s, got %s", msg, protojson.Format(cfg.GetInstances()[0]))
			}
			got := ""
			for _, w := range warns {
				if w.Keyword == tc.warnKw {
					got = w.Keyword
				}
			}
			if got != tc.warnKw {
				t.Errorf("want a warning at %q, got:\n%s", tc.warnKw, problemLines(warns))
			}
		})
	}
}

func want(cond bool, what string) string {
	if cond {
		return ""
	}
	return what
}

func TestTracking(t *testing.T) {
	src := `
vrrp_script chk_weighted {
    script "/usr/bin/pgrep -x nginx"
    interval 2
    timeout 3
    weight -20
    rise 2
    fall 3
    user www-data www-data
}
vrrp_script chk_unused {
    script /bin/true
}
vrrp_track_file drain {
    file /run/drain
}
vrrp_track_process nginx {
    process /usr/sbin/nginx
    quorum 2
    weight 10
}
` + instance(`
    track_script {
        chk_weighted weight -30
    }
    track_interface {
        eth1 weight -10
        eth2
    }
    track_file {
        drain
    }
    track_process {
        nginx
    }
`)
	cfg, warns := ok(t, src, Options{})
	in := cfg.GetInstances()[0]
	if got := fmt.Sprint(trackList(in.GetTrack())); got != "[chk_weighted:-30 if_eth1:-10 if_eth2 drain nginx]" {
		t.Errorf("track %s", got)
	}
	var names []string
	for _, tr := range cfg.GetTrackers() {
		names = append(names, tr.GetName())
	}
	// File order; the unused script is not converted.
	if got := fmt.Sprint(names); got != "[chk_weighted drain nginx if_eth1 if_eth2]" {
		t.Errorf("trackers %s", got)
	}
	sc := cfg.GetTrackers()[0]
	if s := sc.GetScript(); fmt.Sprint(s.GetCommand()) != "[/usr/bin/pgrep -x nginx]" || s.GetInterval().AsDuration() != 2*time.Second ||
		s.GetTimeout().AsDuration() != 3*time.Second || s.GetRise() != 2 || s.GetFall() != 3 || s.GetUser() != "www-data:www-data" || sc.GetWeight() != -20 {
		t.Errorf("script tracker %v", sc)
	}
	if f := cfg.GetTrackers()[1]; f.GetFile().GetPath() != "/run/drain" || f.GetWeight() != 1 {
		t.Errorf("file tracker %v: keepalived's default weight 1", f)
	}
	if p := cfg.GetTrackers()[2]; p.GetProcess().GetName() != "nginx" || p.GetProcess().GetQuorum() != 2 || p.GetWeight() != 10 {
		t.Errorf("process tracker %v", p)
	}
	if !hasProblem(warns, 11, "vrrp_script", "chk_unused is tracked by no instance") {
		t.Errorf("no warning for the unused script:\n%s", problemLines(warns))
	}
	if !hasProblem(warns, 18, "process", `tracked as "nginx"`) {
		t.Errorf("no warning for the process path:\n%s", problemLines(warns))
	}
}

func trackList(refs []*haav1.TrackRef) []string {
	var out []string
	for _, r := range refs {
		s := r.GetTracker()
		if r.Weight != nil {
			s += fmt.Sprintf(":%d", r.GetWeight())
		}
		out = append(out, s)
	}
	return out
}

// In a sync group without sync_group_tracking_weight, keepalived ignores
// weights: weighted scripts are dropped, interfaces tracked with weight 0.
func TestSyncGroupWeights(t *testing.T) {
	scripts := "vrrp_script w {\n script /bin/true\n weight 10\n}\nvrrp_script z {\n script /bin/true\n}\n"
	inst := func(name string, vrid int) string {
		return fmt.Sprintf("vrrp_instance %s {\n interface eth0\n virtual_router_id %d\n virtual_ipaddress {\n  10.0.0.%d\n }\n track_script {\n  w\n  z\n }\n track_interface {\n  eth1 weight 5\n }\n}\n", name, vrid, vrid)
	}
	group := "vrrp_sync_group G {\n group {\n  VI_1\n  VI_2\n }\n notify_master \"/bin/g master\"\n%s}\n"
	cfg, warns := ok(t, scripts+inst("VI_1", 1)+inst("VI_2", 2)+fmt.Sprintf(group, ""), Options{})
	for _, in := range cfg.GetInstances() {
		if got := fmt.Sprint(trackList(in.GetTrack())); got != "[z if_eth1:0]" {
			t.Errorf("%s track %s, want [z if_eth1:0]", in.GetName(), got)
		}
	}
	// 2 per instance, and w is tracked by no one in the end.
	if len(warns) != 5 || !hasProblem(warns, 1, "vrrp_script", "w is tracked by no instance") {
		t.Errorf("want 5 warnings:\n%s", problemLines(warns))
	}
	sg := cfg.GetSyncGroups()[0]
	if sg.GetName() != "G" || fmt.Sprint(sg.GetInstances()) != "[VI_1 VI_2]" || fmt.Sprint(sg.GetNotify().GetMaster()) != "[/bin/g master]" {
		t.Errorf("sync group %v", sg)
	}

	cfg, _ = ok(t, scripts+inst("VI_1", 1)+inst("VI_2", 2)+fmt.Sprintf(group, " sync_group_tracking_weight\n"), Options{})
	if got := fmt.Sprint(trackList(cfg.GetInstances()[0].GetTrack())); got != "[w z if_eth1:5]" {
		t.Errorf("with sync_group_tracking_weight: %s", got)
	}
}

func TestOptions(t *testing.T) {
	src := "global_defs {\n router_id lb1\n}\n" + instance(" interface ens33\n virtual_ipaddress {\n  10.0.0.5/24 dev ens33 label ens33:1\n  10.0.0.6/24 label ens33:2\n }\n track_interface {\n  ens34\n }\n")
	src = strings.Replace(src, " interface eth0\n", "", 1)
	cfg, _ := ok(t, src, Options{Name: "n1", Interfaces: map[string]string{"ens33": "eth0", "ens34": "eth1"}})
	in := cfg.GetInstances()[0]
	if cfg.GetName() != "n1" || in.GetInterface() != "eth0" {
		t.Errorf("name %s interface %s", cfg.GetName(), in.GetInterface())
	}
	if got := fmt.Sprint(in.GetVips()); got != "[10.0.0.100/24 10.0.0.5/24 dev eth0 label eth0:1 10.0.0.6/24 label eth0:2]" {
		t.Errorf("vips %s", got)
	}
	if got := fmt.Sprint(trackList(in.GetTrack())); got != "[if_eth1]" || cfg.GetTrackers()[0].GetInterface().GetName() != "eth1" {
		t.Errorf("track %s, trackers %v", got, cfg.GetTrackers())
	}
	cfg, _ = ok(t, src, Options{})
	if cfg.GetName() != "lb1" {
		t.Errorf("name %s, want the router_id", cfg.GetName())
	}
}

func TestVirtualServerDefaults(t *testing.T) {
	src := `
virtual_server 10.0.0.10 443 {
    lb_algo wrr
    lb_kind NAT
    protocol TCP
    real_server 10.0.0.11 8443 {
        TCP_CHECK {
        }
    }
    real_server 10.0.0.12 8443 {
        weight 3
        MISC_CHECK {
            misc_path "/usr/local/bin/check.sh --fast"
            misc_dynamic
        }
    }
    real_server 10.0.0.13 8443 {
        DNS_CHECK {
            type A
            name example.com
        }
    }
}
`
	cfg, warns := ok(t, src, Options{})
	vs := cfg.GetVirtualServers()[0]
	if vs.GetAddress() != "10.0.0.10:443" || vs.GetScheduler() != "wrr" || vs.GetForwarding() != "nat" || vs.GetProtocol() != "" {
		t.Errorf("virtual server %v", vs)
	}
	if cfg.GetLoadBalancer().GetBackend() != "ipvs" {
		t.Errorf("backend %v, want ipvs (keepalived's)", cfg.GetLoadBalancer())
	}
	tcp := vs.GetRealServers()[0].GetCheck()
	// keepalived's defaults: delay_loop 60s, connect_timeout 5s, retry 1.
	if tcp.GetTcp() == nil || tcp.GetInterval().AsDuration() != time.Minute || tcp.GetTimeout().AsDuration() != 5*time.Second || tcp.GetFall() != 2 || tcp.RetryDelay != nil {
		t.Errorf("tcp check %v", tcp)
	}
	misc := vs.GetRealServers()[1].GetCheck()
	// MISC_CHECK: retry 0, timeout delay_loop.
	if fmt.Sprint(misc.GetExec().GetCommand()) != "[/usr/local/bin/check.sh --fast]" || !misc.GetExec().GetDynamic() ||
		misc.GetFall() != 0 || misc.GetTimeout().AsDuration() != time.Minute {
		t.Errorf("misc check %v", misc)
	}
	dns := vs.GetRealServers()[2].GetCheck()
	// DNS_CHECK: retry 3, delay_before_retry delay_loop.
	if dns.GetDns().GetType() != "A" || dns.GetFall() != 4 || dns.GetRetryDelay().AsDuration() != time.Minute {
		t.Errorf("dns check %v", dns)
	}
	if len(warns) != 0 {
		t.Errorf("warnings:\n%s", problemLines(warns))
	}
}

func TestVirtualServerKeepalivedRules(t *testing.T) {
	src := `
virtual_server 10.0.0.10 80 {
    delay_loop 2
    lb_kind DR
    quorum 5
    hysteresis 9
    sorry_server 10.0.0.99 8080
    connect_timeout 10
    real_server 10.0.0.11 8080 {
        inhibit_on_failure
        HTTP_GET {
            url {
                path /health
                status_code 200-299
                digest 9b3a0c85a887a256d6939da88aabd8cd
            }
            url {
                path /other
            }
            virtualhost www.example.com
        }
    }
    real_server 10.0.0.12 80 {
    }
}
`
	cfg, warns := ok(t, src, Options{})
	vs := cfg.GetVirtualServers()[0]
	if vs.GetScheduler() != "wlc" {
		t.Errorf("scheduler %q, want keepalived's wlc", vs.GetScheduler())
	}
	if vs.GetSorryServer() != "10.0.0.99:80" || vs.GetRealServers()[0].GetAddress() != "10.0.0.11:80" {
		t.Errorf("DR ports not reset to the service's: %v", vs)
	}
	if vs.GetQuorum() != 2 || vs.GetHysteresis() != 1 || !vs.GetInhibitOnFailure() {
		t.Errorf("quorum %d hysteresis %d inhibit %v", vs.GetQuorum(), vs.GetHysteresis(), vs.GetInhibitOnFailure())
	}
	hc := vs.GetRealServers()[0].GetCheck()
	if h := hc.GetHttp(); h.GetPath() != "/health" || len(h.GetStatusCodes()) != 0 || h.GetHost() != "www.example.com" || h.GetDigest() == "" {
		t.Errorf("http check %v", hc)
	}
	if hc.GetInterval().AsDuration() != 2*time.Second || hc.GetTimeout().AsDuration() != 2*time.Second {
		t.Errorf("timeout not capped at the interval: %v", hc)
	}
	for _, w := range []struct {
		line int
		kw   string
	}{{2, "virtual_server"}, {5, "quorum"}, {6, "hysteresis"}, {7, "sorry_server"}, {8, "connect_timeout"}, {9, "real_server"}, {10, "inhibit_on_failure"}, {17, "url"}} {
		if !hasProblem(warns, w.line, w.kw) {
			t.Errorf("no warning at line %d %s:\n%s", w.line, w.kw, problemLines(warns))
		}
	}
}

func TestVirtualServerErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		line      int
		kw, msg   string
	}{
		{"two checkers", "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  TCP_CHECK {\n  }\n  HTTP_GET {\n   url {\n    path /\n   }\n  }\n }\n}\n", 5, "HTTP_GET", "one health check per real server"},
		{"group", "virtual_server group G {\n}\n", 1, "virtual_server", "no virtual server groups"},
		{"no port", "virtual_server 10.0.0.1 {\n}\n", 1, "virtual_server", "needs a port"},
		{"lb_kind case", "virtual_server 10.0.0.1 80 {\n lb_kind dr\n}\n", 2, "lb_kind", "write NAT, DR or TUN"},
		{"scheduler", "virtual_server 10.0.0.1 80 {\n lb_algo fastest\n}\n", 2, "lb_algo", "not an IPVS scheduler"},
		{"aliases twice", "virtual_server 10.0.0.1 80 {\n lb_algo rr\n lvs_sched wrr\n}\n", 3, "lvs_sched", "lb_algo and lvs_sched are the same"},
		{"http without url", "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  HTTP_GET {\n  }\n }\n}\n", 3, "HTTP_GET", "no url block"},
		{"smtp host", "virtual_server 10.0.0.1 25 {\n real_server 10.0.0.2 25 {\n  SMTP_CHECK {\n   host {\n    connect_ip 10.0.0.3\n   }\n  }\n }\n}\n", 4, "host", "haa checks the real server itself"},
		{"udp binary", "virtual_server 10.0.0.1 53 {\n protocol UDP\n real_server 10.0.0.2 53 {\n  UDP_CHECK {\n   payload 00ff\n  }\n }\n}\n", 5, "payload", "not text"},
		{"bfd", "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  BFD_CHECK {\n  }\n }\n}\n", 3, "BFD_CHECK", "no BFD"},
		{"granularity", "virtual_server 10.0.0.1 80 {\n persistence_timeout 60\n persistence_granularity 255.0.255.0\n}\n", 3, "persistence_granularity", "not a netmask"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := fails(t, tc.src)
			if !hasProblem(ps, tc.line, tc.kw, tc.msg) {
				t.Errorf("problems:\n%swant line %d %s %q", problemLines(ps), tc.line, tc.kw, tc.msg)
			}
		})
	}
}

func TestVirtualServerMore(t *testing.T) {
	src := `
virtual_server fwmark 7 {
    delay_loop 10
    lb_algo sh
    lvs_method NAT
    persistence_timeout 300
    persistence_granularity 255.255.255.0
    quorum_up "/bin/up now"
    quorum_down /bin/down
    real_server 10.0.0.11 80 {
        notify_up "/bin/rs up"
        notify_down "/bin/rs down"
        SSL_GET {
            url {
                path /
                status_code 200 301-302
            }
            connect_port 8443
            retry 0
            delay_before_retry 3
            warmup 20
        }
    }
    real_server 10.0.0.12 80 {
        UDP_CHECK {
            payload 68 65 6c 6c 6f
            require_reply 6f6b
        }
    }
}
`
	cfg, warns := ok(t, src, Options{})
	vs := cfg.GetVirtualServers()[0]
	if vs.GetFwmark() != 7 || vs.GetPersistenceTimeout().AsDuration() != 300*time.Second || vs.GetPersistencePrefix() != 24 ||
		fmt.Sprint(vs.GetQuorumUp()) != "[/bin/up now]" || fmt.Sprint(vs.GetQuorumDown()) != "[/bin/down]" {
		t.Errorf("virtual server %v", vs)
	}
	rs := vs.GetRealServers()[0]
	hc := rs.GetCheck()
	if fmt.Sprint(rs.GetNotifyUp()) != "[/bin/rs up]" || hc.GetHttps() == nil || fmt.Sprint(hc.GetHttps().GetStatusCodes()) != "[200 301 302]" ||
		hc.GetPort() != 8443 || hc.GetFall() != 0 || hc.GetRetryDelay().AsDuration() != 3*time.Second || hc.GetJitter().AsDuration() != 10*time.Second {
		t.Errorf("ssl check %v", hc)
	}
	udp := vs.GetRealServers()[1].GetCheck().GetUdp()
	if udp.GetPayload() != "hello" || udp.GetExpect() != "ok" {
		t.Errorf("udp check %v", udp)
	}
	if !hasProblem(warns, 21, "warmup", "longer than the check interval") {
		t.Errorf("no warmup warning:\n%s", problemLines(warns))
	}
}

// A fleet of files that disagree on the wire is refused, naming both.
func TestFleetErrors(t *testing.T) {
	load := func(src string) *haav1.AgentConfig {
		cfg, _ := ok(t, src, Options{})
		return cfg
	}
	a := load("global_defs {\n router_id a\n}\n" + instance(" priority 100\n"))
	b := load("global_defs {\n router_id b\n}\n" + strings.Replace(instance(" advert_int 2\n"), "virtual_router_id 7", "virtual_router_id 8", 1))
	_, err := Fleet([]*haav1.AgentConfig{a, b}, []string{"a.conf", "b.conf"})
	for _, s := range []string{"instance VI_1: virtual_router_id is 7 in a.conf but 8 in b.conf", "advert_int is 1s in a.conf but 2s in b.conf", "make them the same"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("error %v does not contain %q", err, s)
		}
	}
	c := load("global_defs {\n router_id a\n}\n" + instance(""))
	if _, err := Fleet([]*haav1.AgentConfig{a, c}, []string{"a.conf", "c.conf"}); err == nil || !strings.Contains(err.Error(), `a.conf and c.conf are both named "a"`) {
		t.Errorf("same names: %v", err)
	}
	v := load("global_defs {\n router_id v\n}\nvirtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n }\n}\n")
	if _, err := Fleet([]*haav1.AgentConfig{a, v}, []string{"a.conf", "v.conf"}); err == nil || !strings.Contains(err.Error(), "v.conf has 1 virtual_server block(s): a Fleet document has no virtual servers") {
		t.Errorf("virtual servers: %v", err)
	}
	// Per-node differences become overrides: interface, peers, source.
	d := load("global_defs {\n router_id d\n}\n" + strings.Replace(instance(" unicast_src_ip 10.0.0.2\n unicast_peer {\n  10.0.0.1\n }\n"), "interface eth0", "interface eth1", 1))
	e := load("global_defs {\n router_id e\n}\n" + instance(" unicast_src_ip 10.0.0.1\n unicast_peer {\n  10.0.0.2\n }\n"))
	doc, err := Fleet([]*haav1.AgentConfig{d, e}, []string{"d.conf", "e.conf"})
	if err != nil {
		t.Fatal(err)
	}
	fi := doc.GetInstances()[0]
	// A tie: the first node's value is the instance's.
	if ov := fi.GetOverrides()["e"]; fi.GetInterface() != "eth1" || ov.GetInterface() != "eth0" || fi.GetSourceAddress() != "10.0.0.2" ||
		ov.GetSourceAddress() != "10.0.0.1" || fmt.Sprint(ov.GetUnicastPeers()) != "[10.0.0.2]" || fi.GetOverrides()["d"] != nil {
		t.Errorf("overrides: %s", protojson.Format(fi))
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, _, err := Load(filepath.Join(t.TempDir(), "none.conf"), Options{})
	if err == nil {
		t.Fatal("no error")
	}
	if _, isKE := err.(*Error); isKE {
		t.Errorf("an I/O error is not an *Error: %v", err)
	}
}

// A misspelled keyword is one error: what it would have set is not
// reported missing too.
func TestTypoIsOneError(t *testing.T) {
	for _, src := range []string{
		strings.Replace(instance(""), "virtual_ipaddress {", "virtual_ipadress {", 1),
		strings.Replace(instance(""), "interface eth0", "interfce eth0", 1),
		strings.Replace(instance(""), "virtual_router_id 7", "virtual_router 7", 1),
		"vrrp_script chk {\n scirpt /bin/true\n}\n" + instance(" track_script {\n  chk\n }\n"),
		"vrrp_scirpt chk {\n script /bin/true\n}\n" + instance(" track_script {\n  chk\n }\n"),
		"virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  HTTP_GET {\n   ulr {\n    path /\n   }\n  }\n }\n}\n",
	} {
		if ps := fails(t, src); len(ps) != 1 {
			t.Errorf("%d problems, want 1:\n%s", len(ps), problemLines(ps))
		}
	}
}

func TestLoadWithIncludes(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "keepalived.conf"), "global_defs {\n  router_id lb1\n  enable_snmp_vrrp\n}\ninclude conf.d/*.conf\n")
	writeFile(t, filepath.Join(dir, "conf.d/10-scripts.conf"), "vrrp_script chk {\n  script \"/usr/bin/pgrep nginx\"\n}\n")
	writeFile(t, filepath.Join(dir, "conf.d/20-vi1.conf"), instance(" smtp_alert\n track_script {\n  chk\n }\n"))
	cfg, warns, err := Load(filepath.Join(dir, "keepalived.conf"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.GetName() != "lb1" || len(cfg.GetInstances()) != 1 || len(cfg.GetTrackers()) != 1 {
		t.Errorf("converted %v", cfg)
	}
	// Warnings in file order, each in its file.
	want := []string{
		filepath.Join(dir, "keepalived.conf") + ":3: enable_snmp_vrrp: ",
		filepath.Join(dir, "conf.d/20-vi1.conf") + ":7: smtp_alert: ",
	}
	if len(warns) != len(want) {
		t.Fatalf("warnings:\n%s", problemLines(warns))
	}
	for i, w := range want {
		if !strings.HasPrefix(warns[i].String(), w) {
			t.Errorf("warning %d: %s, want %s...", i, warns[i], w)
		}
	}

	// An error in an included file names that file.
	writeFile(t, filepath.Join(dir, "conf.d/30-bad.conf"), "vrrp_instance VI_2 {\n  prioirty 1\n}\n")
	_, _, err = Load(filepath.Join(dir, "keepalived.conf"), Options{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "conf.d/30-bad.conf")+":2: prioirty: unknown keyword") {
		t.Errorf("error %v", err)
	}
}
