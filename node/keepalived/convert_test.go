package keepalived

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

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

// withUsers makes the users and groups of this machine, as notify lines
// see them, users and groups for the time of the test.
func withUsers(t *testing.T, users, groups []string) {
	t.Helper()
	u, g := userExists, groupExists
	t.Cleanup(func() { userExists, groupExists = u, g })
	userExists = func(name string) bool { return slices.Contains(users, name) }
	groupExists = func(name string) bool { return slices.Contains(groups, name) }
}

func TestBadValues(t *testing.T) {
	withUsers(t, []string{"alice", "bob"}, nil)
	for _, tc := range []struct {
		name, src string
		line      int
		kw        string
		msg       string
	}{
		{"vrid out of range", strings.Replace(instance(""), "virtual_router_id 7", "virtual_router_id 300", 1), 3, "virtual_router_id", `"300" is not a whole number 1..255`},
		{"priority not a number", instance(" priority high\n"), 7, "priority", `"high" is not a whole number 1..255`},
		{"state in lower case", instance(" state master\n"), 7, "state", "write MASTER or BACKUP, in capitals"},
		{"advert_int text", instance(" advert_int fast\n"), 7, "advert_int", `"fast" is not a number of seconds`},
		{"weight reverse", "vrrp_script chk {\n script /bin/true\n weight 10 reverse\n}\n" + instance(" track_script {\n  chk\n }\n"), 3, "weight", "no reversed weights"},
		{"weight too big", "vrrp_script chk {\n script /bin/true\n weight 300\n}\n" + instance(" track_script {\n  chk\n }\n"), 3, "weight", "-253..253"},
		{"missing script", instance(" track_script {\n  chk_nope\n }\n"), 8, "track_script", `no vrrp_script named "chk_nope"`},
		{"script is a file", "vrrp_track_file f {\n file /run/f\n}\n" + instance(" track_script {\n  f\n }\n"), 11, "track_script", "f is a vrrp_track_file, not a vrrp_script"},
		{"no script line", "vrrp_script chk {\n interval 2\n}\n" + instance(" track_script {\n  chk\n }\n"), 1, "vrrp_script", "has no script"},
		{"duplicate keyword", instance(" priority 100\n priority 90\n"), 8, "priority", "given twice in vrrp_instance VI_1 (first at line 7): keep one"},
		{"no interface", "vrrp_instance VI_1 {\n virtual_router_id 7\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n", 1, "vrrp_instance", "has no interface: add interface eth0"},
		{"no vrid", "vrrp_instance VI_1 {\n interface eth0\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n", 1, "vrrp_instance", "has no virtual_router_id"},
		{"bad vip", instance(" virtual_ipaddress {\n  10.0.0.300/24\n }\n"), 8, "virtual_ipaddress", `"10.0.0.300" is not an IP address`},
		{"vip option", instance(" virtual_ipaddress {\n  10.0.0.5/24 dev eth0 noprefixroute\n }\n"), 8, "virtual_ipaddress", `"10.0.0.5/24 dev eth0 noprefixroute": keepalived option "noprefixroute" is not supported by haa: remove it from this line`},
		{"preferred_lft without value", instance(" virtual_ipaddress {\n  10.0.0.5/24 preferred_lft\n }\n"), 8, "virtual_ipaddress", "preferred_lft needs a value, and keepalived leaves out an address without one: write preferred_lft forever (or 0), or remove preferred_lft"},
		{"duplicate instance", instance("") + instance(""), 8, "vrrp_instance", "vrrp_instance VI_1 is already defined at line 1"},
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
		instance(" virtual_ipaddress {\n  10.0.0.5/24 noprefixroute\n  10.0.0.300\n }\n virtual_ipaddress_excluded {\n  10.0.0.6\n }\n"),
		"virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  HTTP_GET {\n   url {\n    path /\n   }\n   url {\n    path /x\n   }\n  }\n }\n}\nvirtual_server fwmark 1 {\n lb_kind DR\n sorry_server 10.0.0.9\n}\n",
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
			if strings.Contains(low, ": remove it: fix") {
				t.Errorf("%v: says what to change twice", p)
			}
		}
	}
}

func TestInstanceSemantics(t *testing.T) {
	withUsers(t, []string{"nobody"}, []string{"nogroup"})
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
		// keepalived ignores advert_int outside 0.01..255 ("not valid")
		// and keeps 1 second, in both versions.
		{"v2 advert_int above 255 ignored", instance(" advert_int 300\n"), func(in *haav1.Instance) string {
			return want(in.GetAdvertInterval().AsDuration() == time.Second, "advert 1s")
		}, "advert_int"},
		{"v2 advert_int 255", instance(" advert_int 254.6\n"), func(in *haav1.Instance) string {
			return want(in.GetAdvertInterval().AsDuration() == 255*time.Second, "advert 255s")
		}, "advert_int"},
		{"advert_int 0 ignored", instance(" advert_int 0\n"), func(in *haav1.Instance) string {
			return want(in.GetAdvertInterval().AsDuration() == time.Second, "advert 1s")
		}, "advert_int"},
		{"advert_int negative ignored", instance(" advert_int -1\n"), func(in *haav1.Instance) string {
			return want(in.GetAdvertInterval().AsDuration() == time.Second, "advert 1s")
		}, "advert_int"},
		{"v3 advert_int below 0.01 ignored", instance(" version 3\n advert_int 0.005\n"), func(in *haav1.Instance) string {
			return want(in.GetAdvertInterval().AsDuration() == time.Second, "advert 1s")
		}, "advert_int"},
		{"v3 advert_int at most 40.95", instance(" version 3\n advert_int 100\n"), func(in *haav1.Instance) string {
			return want(in.GetAdvertInterval().AsDuration() == 40950*time.Millisecond, "advert 40.95s")
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
		{"empty excluded addresses", instance(" virtual_ipaddress_excluded {\n }\n"), func(in *haav1.Instance) string {
			return want(fmt.Sprint(in.GetVips()) == "[10.0.0.100/24]", "one vip")
		}, ""},
		// no_track and preferred_lft do not change who holds the address.
		{"no_track and preferred_lft", instance(" virtual_ipaddress {\n  10.0.0.5/24 no_track dev eth0 preferred_lft 0 label eth0:5\n }\n"), func(in *haav1.Instance) string {
			return want(fmt.Sprint(in.GetVips()) == "[10.0.0.100/24 10.0.0.5/24 dev eth0 label eth0:5]", "the vip without no_track and preferred_lft")
		}, "virtual_ipaddress"},
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
	if vs.GetQuorum() != 2 || vs.GetHysteresis() != 1 || vs.GetInhibitOnFailure() {
		t.Errorf("quorum %d hysteresis %d inhibit %v", vs.GetQuorum(), vs.GetHysteresis(), vs.GetInhibitOnFailure())
	}
	// keepalived's inhibit_on_failure of one real server is that real
	// server's own.
	if rss := vs.GetRealServers(); rss[0].InhibitOnFailure == nil || !rss[0].GetInhibitOnFailure() || rss[1].InhibitOnFailure != nil {
		t.Errorf("inhibit of the real servers: %v, %v", rss[0].InhibitOnFailure, rss[1].InhibitOnFailure)
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
	}{{2, "virtual_server"}, {5, "quorum"}, {6, "hysteresis"}, {7, "sorry_server"}, {8, "connect_timeout"}, {9, "real_server"}} {
		if !hasProblem(warns, w.line, w.kw) {
			t.Errorf("no warning at line %d %s:\n%s", w.line, w.kw, problemLines(warns))
		}
	}
	if hasProblem(warns, 10, "inhibit_on_failure") {
		t.Errorf("a real server's inhibit_on_failure is converted as it is:\n%s", problemLines(warns))
	}
}

func TestVirtualServerErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		line      int
		kw, msg   string
	}{
		{"second url", "virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.0.0.2 80 {\n  HTTP_GET {\n   url {\n    path /\n   }\n   url {\n    path /other\n   }\n  }\n }\n}\n", 8, "url", "a second url is not supported: haa checks one path per real server; keep the most telling one"},
		{"two checkers", "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  TCP_CHECK {\n  }\n  HTTP_GET {\n   url {\n    path /\n   }\n  }\n }\n}\n", 5, "HTTP_GET", "one health check per real server"},
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
	// Virtual servers are merged by name; the service must agree.
	v := &haav1.AgentConfig{Name: "v", VirtualServers: []*haav1.VirtualServer{{Name: "web", Address: "10.0.0.1:80"}}}
	w := &haav1.AgentConfig{Name: "w", VirtualServers: []*haav1.VirtualServer{{Name: "web", Address: "10.0.0.1:81"}}}
	if _, err := Fleet([]*haav1.AgentConfig{v, w}, []string{"v.conf", "w.conf"}); err == nil || !strings.Contains(err.Error(), "the directors of one virtual server balance one service") {
		t.Errorf("virtual servers of two services: %v", err)
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

// The rounding warnings of advert_int suggest a value that keepalived and
// haa take as it is: converting the suggestion gives the same interval
// without a warning.
func TestAdvertIntSuggestions(t *testing.T) {
	suggestion := regexp.MustCompile(`write advert_int ([^ ,;()]+)`)
	for _, tc := range []struct {
		version, value string
		want           time.Duration
	}{
		{"2", "1.5", 2 * time.Second},
		{"2", "2.5", 3 * time.Second},
		{"2", "0.2", time.Second},
		{"2", "300", time.Second},
		{"2", "0", time.Second},
		{"3", "0.123", 120 * time.Millisecond},
		{"3", "0.335", 340 * time.Millisecond},
		{"3", "100", 40950 * time.Millisecond},
		{"3", "0.001", time.Second},
	} {
		src := instance(" version " + tc.version + "\n advert_int " + tc.value + "\n")
		cfg, warns := ok(t, src, Options{})
		if got := cfg.GetInstances()[0].GetAdvertInterval().AsDuration(); got != tc.want {
			t.Errorf("v%s advert_int %s: %s, want %s", tc.version, tc.value, got, tc.want)
		}
		var msg string
		for _, w := range warns {
			if w.Keyword == "advert_int" {
				msg = w.Msg
			}
		}
		m := suggestion.FindStringSubmatch(msg)
		if m == nil {
			t.Errorf("v%s advert_int %s: no suggestion in %q", tc.version, tc.value, msg)
			continue
		}
		if strings.HasSuffix(m[1], "s") {
			t.Errorf("v%s advert_int %s: the suggestion %q has a unit keepalived does not take", tc.version, tc.value, m[1])
		}
		cfg, warns = ok(t, instance(" version "+tc.version+"\n advert_int "+m[1]+"\n"), Options{})
		if got := cfg.GetInstances()[0].GetAdvertInterval().AsDuration(); got != tc.want || len(warns) != 0 {
			t.Errorf("v%s advert_int %s (suggested for %s): %s, want %s without warning; warnings:\n%s", tc.version, m[1], tc.value, got, tc.want, problemLines(warns))
		}
	}
	_, warns := ok(t, instance(" advert_int 300\n"), Options{})
	if !hasProblem(warns, 7, "advert_int", `300 is outside 0.01..255 seconds: keepalived ignores it ("not valid") and advertises every second, and so does this conversion`) {
		t.Errorf("warnings:\n%s", problemLines(warns))
	}
}

// keepalived reads the words after an unquoted notify command as the user
// (and group) to run it as, and ignores the line when they do not exist.
func TestNotifyUser(t *testing.T) {
	withUsers(t, []string{"nobody"}, []string{"nogroup"})
	src := instance(" notify_master /etc/keepalived/notify.sh master\n notify_backup /etc/keepalived/notify.sh backup\n notify_fault \"/bin/f\" nobody nosuchgroup\n notify_stop /bin/s nobody nogroup\n")
	cfg, warns := ok(t, src, Options{})
	n := cfg.GetInstances()[0].GetNotify()
	if n.GetMaster() != nil || n.GetBackup() != nil || n.GetFault() != nil || fmt.Sprint(n.GetStop()) != "[/bin/s]" || n.GetUser() != "nobody:nogroup" {
		t.Errorf("notify %v: want only notify_stop, as nobody:nogroup", n)
	}
	for _, w := range []struct {
		line     int
		kw, text string
	}{
		{7, "notify_master", `keepalived reads "master" as the user to run the script as and, with no such user, ignores the line; this conversion ignores it too: to pass an argument, quote the whole command: notify_master "/etc/keepalived/notify.sh master"`},
		{8, "notify_backup", `keepalived reads "backup" as the user to run the script as and, with no such user, ignores the line; this conversion ignores it too: to pass an argument, quote the whole command: notify_backup "/etc/keepalived/notify.sh backup"`},
		{9, "notify_fault", `keepalived reads "nobody" "nosuchgroup" as the user and group to run the script as and, with no such group, ignores the line; this conversion ignores it too: to pass arguments, quote the whole command: notify_fault "/bin/f nobody nosuchgroup"`},
		{10, "notify_stop", `"/bin/s" runs as user "nobody:nogroup"`},
	} {
		found := false
		for _, p := range warns {
			found = found || p.Pos.Line == w.line && p.Keyword == w.kw && p.Msg == w.text || w.kw == "notify_stop" && p.Pos.Line == w.line && strings.HasPrefix(p.Msg, w.text)
		}
		if !found {
			t.Errorf("no warning at line %d %s: %s\ngot:\n%s", w.line, w.kw, w.text, problemLines(warns))
		}
	}
	if len(warns) != 4 {
		t.Errorf("want 4 warnings, got:\n%s", problemLines(warns))
	}
}

// A sync group of one instance: keepalived runs it; haa has none, so its
// lines go to the instance.
func TestSyncGroupOfOne(t *testing.T) {
	withUsers(t, nil, nil)
	src := "vrrp_script w {\n script /bin/true\n weight 10\n}\nvrrp_script g {\n script /bin/false\n}\n" +
		instance(" track_script {\n  w\n }\n notify_backup \"/bin/b\"\n") + // VI_1 at line 7
		"vrrp_sync_group G {\n group {\n  VI_1\n }\n notify_master \"/bin/gm\"\n notify \"/bin/any\"\n track_script {\n  g\n }\n}\n"
	cfg, warns := ok(t, src, Options{})
	if len(cfg.GetSyncGroups()) != 0 {
		t.Errorf("sync groups %v, want none", cfg.GetSyncGroups())
	}
	in := cfg.GetInstances()[0]
	n := in.GetNotify()
	if fmt.Sprint(n.GetMaster()) != "[/bin/gm]" || fmt.Sprint(n.GetBackup()) != "[/bin/b]" || fmt.Sprint(n.GetAny()) != "[/bin/any]" {
		t.Errorf("notify %v: want the group's master and any with the instance's backup", n)
	}
	// w has a weight, and VI_1 is still a sync group member for
	// keepalived: not tracked.
	if got := fmt.Sprint(trackList(in.GetTrack())); got != "[g]" {
		t.Errorf("track %s, want [g]", got)
	}
	if !hasProblem(warns, 19, "vrrp_sync_group", "vrrp_sync_group G has one instance (VI_1): keepalived warns and runs it; haa needs two instances or more in a group, so this conversion leaves the group out") ||
		!hasProblem(warns, 24, "notify", "the command gets INSTANCE VI_1 (not GROUP G) as its first arguments") ||
		!hasProblem(warns, 15, "track_script", "in sync group G (without sync_group_tracking_weight)") {
		t.Errorf("warnings:\n%s", problemLines(warns))
	}

	// The group and its instance both have a notify_master: refused.
	ps := fails(t, instance(" notify_master \"/bin/m\"\n")+"vrrp_sync_group G {\n group {\n  VI_1\n }\n notify_master \"/bin/gm\"\n}\n")
	if !hasProblem(ps, 13, "notify_master", "which has its own notify_master (line 7)", "combine the two commands") {
		t.Errorf("problems:\n%s", problemLines(ps))
	}
}

// The address owner (priority 255) tracks as in keepalived: what has a
// weight is not tracked (its priority cannot move), but a file of weight 1
// (tracked with weight 0) and processes.
func TestOwnerTracking(t *testing.T) {
	src := `vrrp_script sw {
    script /bin/true
    weight 10
}
vrrp_script s0 {
    script /bin/true
}
vrrp_track_file f1 {
    file /run/f1
}
track_file f5 {
    file /run/f5
    weight 5
}
vrrp_track_process p5 {
    process nginx
    weight 5
}
` + instance(`
    priority 255
    track_script {
        sw
        s0
    }
    track_interface {
        eth1 weight 5
        eth2
    }
    track_file {
        f1
        f5
    }
    track_process {
        p5
    }
`)
	cfg, warns := ok(t, src, Options{})
	if got := fmt.Sprint(trackList(cfg.GetInstances()[0].GetTrack())); got != "[s0 if_eth2 f1:0 p5]" {
		t.Errorf("track %s, want [s0 if_eth2 f1:0 p5]", got)
	}
	for _, w := range []struct {
		line int
		kw   string
		msg  string
	}{
		{28, "track_script", "for the address owner (priority 255) keepalived ignores tracking weights: keepalived does not track sw (weight 10) at all"},
		{32, "track_interface", "keepalived does not track eth1 (weight 5) at all"},
		{36, "track_file", "f1 is tracked with weight 0 (a non-zero number means FAULT), as keepalived does; write f1 weight 0 to say so, or give the instance a priority below 255"},
		{37, "track_file", "keepalived does not track f5 (weight 5) at all"},
	} {
		if !hasProblem(warns, w.line, w.kw, w.msg) {
			t.Errorf("no warning at line %d %s %q:\n%s", w.line, w.kw, w.msg, problemLines(warns))
		}
	}
}

// Sync group members track a process with its weight, and a file of
// weight 1 (even given) with weight 0, as keepalived 2.2.7.
func TestSyncGroupProcessAndFile(t *testing.T) {
	defs := "vrrp_track_process p5 {\n process nginx\n weight 5\n}\nvrrp_track_file f1 {\n file /run/f1\n weight 1\n}\n"
	inst := func(name string, vrid int) string {
		return fmt.Sprintf("vrrp_instance %s {\n interface eth0\n virtual_router_id %d\n virtual_ipaddress {\n  10.0.0.%d\n }\n track_process {\n  p5\n }\n track_file {\n  f1\n }\n}\n", name, vrid, vrid)
	}
	cfg, _ := ok(t, defs+inst("VI_1", 1)+inst("VI_2", 2)+"vrrp_sync_group G {\n group {\n  VI_1\n  VI_2\n }\n}\n", Options{})
	for _, in := range cfg.GetInstances() {
		if got := fmt.Sprint(trackList(in.GetTrack())); got != "[p5 f1:0]" {
			t.Errorf("%s track %s, want [p5 f1:0]", in.GetName(), got)
		}
	}
}

func TestNothingToRun(t *testing.T) {
	for _, src := range []string{"", "! only comments\n", "global_defs {\n router_id lb1\n}\nvrrp_script s {\n script /bin/true\n}\n"} {
		_, warns := ok(t, src, Options{})
		if !slices.Contains(warns, Problem{Pos{"t.conf", 1}, "", "nothing to run: no vrrp_instance or virtual_server"}) {
			t.Errorf("%q: warnings:\n%s", src, problemLines(warns))
		}
	}
	if _, warns := ok(t, instance(""), Options{}); len(warns) != 0 {
		t.Errorf("warnings:\n%s", problemLines(warns))
	}
}

// track_file NAME { ... } is keepalived's current name of vrrp_track_file.
func TestTopLevelTrackFile(t *testing.T) {
	cfg, _ := ok(t, "track_file drain {\n file /run/drain\n weight 2\n}\n"+instance(" track_file {\n  drain\n }\n"), Options{})
	tr := cfg.GetTrackers()
	if len(tr) != 1 || tr[0].GetName() != "drain" || tr[0].GetFile().GetPath() != "/run/drain" || tr[0].GetWeight() != 2 {
		t.Errorf("trackers %v", tr)
	}
	ps := fails(t, "track_file drain {\n weight 2\n}\n"+instance(" track_file {\n  drain\n }\n"))
	if !hasProblem(ps, 1, "track_file", "track_file drain has no file: add file /path/to/file") {
		t.Errorf("problems:\n%s", problemLines(ps))
	}
}

// keepalived 2.2: a virtual server's weight is the weight of its real
// servers that give none; no protocol is UDP.
func TestVirtualServerWeightAndProtocol(t *testing.T) {
	src := `virtual_server 10.0.0.10 80 {
    weight 5
    quorum 12
    lb_algo wrr
    real_server 10.0.0.11 80 {
    }
    real_server 10.0.0.12 80 {
        weight 2
    }
}
virtual_server fwmark 7 {
    lb_algo rr
    lb_kind DR
    sorry_server 10.0.0.99 8080
    real_server 10.0.0.11 80 {
    }
}
`
	cfg, warns := ok(t, src, Options{})
	vs := cfg.GetVirtualServers()[0]
	if vs.GetRealServers()[0].GetWeight() != 5 || vs.GetRealServers()[1].GetWeight() != 2 || vs.GetQuorum() != 7 {
		t.Errorf("weights %d %d quorum %d, want 5 2 7", vs.GetRealServers()[0].GetWeight(), vs.GetRealServers()[1].GetWeight(), vs.GetQuorum())
	}
	if vs.GetProtocol() != "udp" || cfg.GetVirtualServers()[1].GetProtocol() != "" {
		t.Errorf("protocols %q %q, want udp and none (fwmark)", vs.GetProtocol(), cfg.GetVirtualServers()[1].GetProtocol())
	}
	fw := cfg.GetVirtualServers()[1]
	if fw.GetRealServers()[0].GetAddress() != "10.0.0.11" || fw.GetSorryServer() != "10.0.0.99" {
		t.Errorf("fwmark DR service %v", fw)
	}
	for _, w := range []struct {
		line    int
		kw, msg string
	}{
		{1, "virtual_server", "keepalived defaults to UDP here; write protocol TCP if this service is TCP"},
		{3, "quorum", "12 is more than the real servers' weights add up to (7)"},
		{14, "sorry_server", "a fwmark service with DR forwarding keeps the packets' ports: keepalived clears this port (\"sorry server has port specified - clearing\") and programs port 0, and so does this conversion; write sorry_server 10.0.0.99"},
		{15, "real_server", "keepalived programs this real server without its port"},
	} {
		if !hasProblem(warns, w.line, w.kw, w.msg) {
			t.Errorf("no warning at line %d %s %q:\n%s", w.line, w.kw, w.msg, problemLines(warns))
		}
	}
	if hasProblem(warns, 11, "virtual_server", "UDP") {
		t.Errorf("a fwmark service has no protocol:\n%s", problemLines(warns))
	}
}

// An address owner in a sync group: keepalived applies the sync group's
// rule first (a weighted interface is tracked with weight 0, not dropped).
func TestOwnerInSyncGroup(t *testing.T) {
	withUsers(t, nil, nil)
	src := instance(" priority 255\n track_interface {\n  eth1 weight 5\n }\n") + "vrrp_sync_group G {\n group {\n  VI_1\n }\n}\n"
	cfg, warns := ok(t, src, Options{})
	if got := fmt.Sprint(trackList(cfg.GetInstances()[0].GetTrack())); got != "[if_eth1:0]" {
		t.Errorf("track %s, want [if_eth1:0]", got)
	}
	if !hasProblem(warns, 9, "track_interface", "in sync group G (without sync_group_tracking_weight) keepalived ignores weights: eth1 is tracked with weight 0") {
		t.Errorf("warnings:\n%s", problemLines(warns))
	}
}

// TestRealServerThresholdsConverted: uthreshold and lthreshold become the
// real server's upperThreshold and lowerThreshold (they used to be dropped
// with a warning saying to set them with ipvsadm, which any weight change
// of haad's then reset); a lower one above the upper one is an error at
// its line, as IPVS would refuse it.
func TestRealServerThresholdsConverted(t *testing.T) {
	cfg, warns := ok(t, `virtual_server 10.0.0.1 80 {
    protocol TCP
    lb_algo wrr
    real_server 10.0.0.2 80 {
        uthreshold 100
        lthreshold 80
    }
    real_server 10.0.0.3 80 {
    }
}
`, Options{})
	if len(warns) != 0 {
		t.Errorf("warnings:\n%s", problemLines(warns))
	}
	rss := cfg.GetVirtualServers()[0].GetRealServers()
	if rs := rss[0]; rs.UpperThreshold == nil || rs.GetUpperThreshold() != 100 || rs.LowerThreshold == nil || rs.GetLowerThreshold() != 80 {
		t.Errorf("thresholds of %v", rs)
	}
	if rs := rss[1]; rs.UpperThreshold != nil || rs.LowerThreshold != nil {
		t.Errorf("thresholds where the file gives none: %v", rs)
	}
	ps := fails(t, "virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.0.0.2 80 {\n  uthreshold 10\n  lthreshold 20\n }\n}\n")
	if !hasProblem(ps, 5, "lthreshold", "20 is above upperThreshold 10") {
		t.Errorf("problems:\n%s", problemLines(ps))
	}
}

// TestFwmarkSorryServerPortAsKeepalived: the sorry server of a fwmark
// service with DR or TUN forwarding is programmed without a port, as
// keepalived clears it (it was converted with its port, which haad then
// programmed, under a warning that said haa did not use it); without a
// port, DR and NAT are converted as keepalived runs them instead of being
// refused.
func TestFwmarkSorryServerPortAsKeepalived(t *testing.T) {
	for _, tc := range []struct {
		fwd, sorry, want string
		warn             bool
	}{
		{"DR", "10.0.0.99 8080", "10.0.0.99", true},
		{"TUN", "10.0.0.99 8080", "10.0.0.99", true},
		{"DR", "10.0.0.99", "10.0.0.99", false},
		{"NAT", "10.0.0.99 8080", "10.0.0.99:8080", false},
		{"NAT", "10.0.0.99", "10.0.0.99", false},
	} {
		t.Run(tc.fwd+" "+tc.sorry, func(t *testing.T) {
			src := fmt.Sprintf("virtual_server fwmark 7 {\n lb_algo rr\n lb_kind %s\n sorry_server %s\n real_server 10.0.0.11 80 {\n }\n}\n", tc.fwd, tc.sorry)
			cfg, warns := ok(t, src, Options{})
			if got := cfg.GetVirtualServers()[0].GetSorryServer(); got != tc.want {
				t.Errorf("sorryServer %q, want %q", got, tc.want)
			}
			if got := hasProblem(warns, 4, "sorry_server", "keepalived clears this port"); got != tc.warn {
				t.Errorf("warning about the port: %v, want %v:\n%s", got, tc.warn, problemLines(warns))
			}
			a, err := config.Resolve(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := a.VirtualServers[0].Sorry.Port(), uint16(0); tc.fwd != "NAT" && got != want {
				t.Errorf("programmed port %d, want 0", got)
			}
		})
	}
}

// TestKeepalivedSorryInhibitFlushConverted: sorry_server_inhibit,
// sorry_server_lvs_method, a real server's inhibit_on_failure [true|false],
// lvs_flush and lvs_flush_on_stop are converted (they used to be warned
// about and dropped); lvs_flush_on_stop VS is what haa does without it.
func TestKeepalivedSorryInhibitFlushConverted(t *testing.T) {
	cfg, warns := ok(t, `global_defs {
    lvs_flush
    lvs_flush_onstop
}
virtual_server 10.0.0.1 80 {
    protocol TCP
    lb_algo wrr
    lb_kind NAT
    inhibit_on_failure
    sorry_server 10.0.0.99 80
    sorry_server_inhibit
    sorry_server_lvs_method DR
    real_server 10.0.0.2 8080 {
        inhibit_on_failure false
    }
    real_server 10.0.0.3 8080 {
        inhibit_on_failure yes
    }
    real_server 10.0.0.4 8080 {
    }
}
`, Options{})
	if len(warns) != 0 {
		t.Errorf("warnings:\n%s", problemLines(warns))
	}
	lb := cfg.GetLoadBalancer()
	if !lb.GetFlushOnStart() || !lb.GetFlushOnStop() || lb.GetBackend() != "ipvs" {
		t.Errorf("load balancer %v", lb)
	}
	vs := cfg.GetVirtualServers()[0]
	if !vs.GetInhibitOnFailure() || !vs.GetSorryServerInhibit() || vs.GetSorryServerForwarding() != "dr" || vs.GetSorryServer() != "10.0.0.99:80" {
		t.Errorf("virtual server %v", vs)
	}
	rss := vs.GetRealServers()
	if rss[0].InhibitOnFailure == nil || rss[0].GetInhibitOnFailure() || !rss[1].GetInhibitOnFailure() || rss[2].InhibitOnFailure != nil {
		t.Errorf("real servers' inhibit: %v %v %v", rss[0].InhibitOnFailure, rss[1].InhibitOnFailure, rss[2].InhibitOnFailure)
	}
	a, err := config.Resolve(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if v := a.VirtualServers[0]; v.Reals[0].Inhibit || !v.Reals[1].Inhibit || !v.Reals[2].Inhibit {
		t.Errorf("resolved inhibit %v %v %v, want false true true", v.Reals[0].Inhibit, v.Reals[1].Inhibit, v.Reals[2].Inhibit)
	}

	// lvs_flush_on_stop VS: haa's own way; keywords before sorry_server
	// are ignored, as keepalived ignores them; a DR sorry server of a fwmark
	// service loses its port.
	cfg, warns = ok(t, `global_defs {
    lvs_flush_on_stop VS
}
virtual_server fwmark 3 {
    lb_algo rr
    sorry_server_inhibit
    sorry_server 10.0.0.99 8080
    sorry_server_lvs_method TUN
    real_server 10.0.0.2 80 {
    }
}
`, Options{})
	if lb := cfg.GetLoadBalancer(); lb.GetFlushOnStop() || lb.GetFlushOnStart() {
		t.Errorf("lvs_flush_on_stop VS: %v", lb)
	}
	vs = cfg.GetVirtualServers()[0]
	if vs.GetSorryServerInhibit() || vs.GetSorryServerForwarding() != "tunnel" || vs.GetSorryServer() != "10.0.0.99" {
		t.Errorf("virtual server %v", vs)
	}
	if !hasProblem(warns, 6, "sorry_server_inhibit", "no sorry_server before it: keepalived ignores it") ||
		!hasProblem(warns, 7, "sorry_server", "a fwmark service with TUN forwarding keeps the packets' ports") {
		t.Errorf("warnings:\n%s", problemLines(warns))
	}
	ps := fails(t, "global_defs {\n lvs_flush_on_stop ALL\n}\n")
	if !hasProblem(ps, 2, "lvs_flush_on_stop", "not a flush type") {
		t.Errorf("problems:\n%s", problemLines(ps))
	}
}

// Two LVS directors' files, each with the VIP's instance and the virtual
// server: one Fleet document, the virtual server once, what differs in an
// override, its directors the default (the nodes running the instance
// that holds its address); a virtual server of one file names its
// director.
func TestFleetMergesVirtualServers(t *testing.T) {
	load := func(src string) *haav1.AgentConfig {
		cfg, _ := ok(t, src, Options{})
		return cfg
	}
	vs := func(algo, extra string) string {
		return "virtual_server 10.0.0.100 80 {\n protocol TCP\n lb_algo " + algo + "\n real_server 10.0.1.1 80 {\n }\n real_server 10.0.1.2 80 {\n }\n}\n" + extra
	}
	lb1 := load("global_defs {\n router_id lb1\n}\n" + instance(" priority 200\n") + vs("wrr", ""))
	lb2 := load("global_defs {\n router_id lb2\n}\n" + instance(" priority 100\n") + vs("rr",
		"virtual_server 10.0.0.100 443 {\n protocol TCP\n real_server 10.0.1.1 443 {\n }\n}\n"))
	doc, err := Fleet([]*haav1.AgentConfig{lb1, lb2}, []string{"lb1.conf", "lb2.conf"})
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.GetVirtualServers()) != 2 {
		t.Fatalf("%d virtual servers, want 2: %v", len(doc.GetVirtualServers()), doc.GetVirtualServers())
	}
	web, tls := doc.GetVirtualServers()[0], doc.GetVirtualServers()[1]
	if len(web.GetDirectors()) != 0 || len(web.GetOverrides()) != 1 || web.GetOverrides()["lb2"].GetScheduler() != "rr" || web.GetScheduler() == "rr" {
		t.Errorf("the shared virtual server: %v", web)
	}
	if !slices.Equal(tls.GetDirectors(), []string{"lb2"}) {
		t.Errorf("lb2's own virtual server: directors %v, want [lb2]", tls.GetDirectors())
	}
	for _, c := range []*haav1.AgentConfig{lb1, lb2} {
		vss, _ := config.ForNodeVirtualServers(doc, c.GetName())
		if len(vss) != len(c.GetVirtualServers()) {
			t.Fatalf("%s directs %d, want %d", c.GetName(), len(vss), len(c.GetVirtualServers()))
		}
		for i, v := range vss {
			if !proto.Equal(v, c.GetVirtualServers()[i]) {
				t.Errorf("%s directs\n%v\nwant its file's\n%v", c.GetName(), v, c.GetVirtualServers()[i])
			}
		}
	}
}
