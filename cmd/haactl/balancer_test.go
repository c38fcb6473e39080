package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"sigs.k8s.io/yaml"

	"github.com/haa-dev/haa/ctl/ctltest"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// serveLB is the node n1 of newFake balancing three virtual servers with
// ipvs: web (up; a healthy, a failed and a drained real server), dns (its
// quorum lost, the sorry server active) and mail (fwmark, no check).
func serveLB(t *testing.T) (*ctltest.Agent, string) {
	fake := newFake(t)
	ago := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(time.Now().Add(-d)) }
	fake.Backend = "ipvs"
	fake.Node.LbBackend, fake.Node.LbBackendReason = "ipvs", "ip_vs module loaded"
	fake.VirtualServers = []*haav1.VirtualServerStatus{{
		Name: "web", Address: "10.77.0.100:80", Protocol: "tcp", Scheduler: "wlc", Forwarding: "nat",
		Up: true, Quorum: 100, HealthyWeight: 300, SorryServer: "10.77.9.9:80",
		RealServers: []*haav1.RealServerStatus{{
			Address: "10.77.1.1:80", Healthy: true, ConfiguredWeight: 100, Weight: 100, Programmed: true,
			Check: "http", LastResult: "ok", Since: ago(2*time.Hour + 5*time.Minute + 30*time.Second),
			ActiveConnections: proto.Uint64(12), InactiveConnections: proto.Uint64(40),
		}, {
			Address: "10.77.1.2:80", ConfiguredWeight: 100,
			Check: "tcp", LastResult: "dial tcp 10.77.1.2:80: connect: connection refused", Since: ago(3*time.Minute + 30*time.Second),
		}, {
			Address: "10.77.1.3:8080", Healthy: true, ConfiguredWeight: 200, Weight: 0, Programmed: true, Drained: true,
			Check: "http", LastResult: "HTTP 200", Since: ago(26*time.Hour + 30*time.Second),
			ActiveConnections: proto.Uint64(3), InactiveConnections: proto.Uint64(0),
		}},
	}, {
		Name: "dns", Address: "10.77.0.100:53", Protocol: "udp", Scheduler: "rr", Forwarding: "dr",
		Quorum: 1, SorryServer: "10.77.9.9:53", SorryActive: true,
		RealServers: []*haav1.RealServerStatus{{
			Address: "10.77.2.1:53", ConfiguredWeight: 1, Programmed: true,
			Check: "dns", LastResult: "timeout after 1s", Since: ago(5*time.Minute + 30*time.Second),
			ActiveConnections: proto.Uint64(0), InactiveConnections: proto.Uint64(0),
		}},
	}, {
		Name: "mail", Fwmark: 7, Scheduler: "sh", Forwarding: "tunnel", Up: true, Quorum: 1, HealthyWeight: 1,
		RealServers: []*haav1.RealServerStatus{{
			Address: "10.77.3.1:25", Healthy: true, ConfiguredWeight: 1, Weight: 1, Programmed: true, Check: "none",
		}},
	}}
	return fake, ctltest.Serve(t, fake).Target
}

func TestGetVirtualServers(t *testing.T) {
	fake, target := serveLB(t)
	want := `backend: ipvs
NAME  ADDRESS             SCHED  FWD     UP         HEALTHY/QUORUM
  -> REAL SERVER     HEALTH  WEIGHT   OVERRIDE  CHECK  LAST RESULT                                         SINCE  CONNS
web   10.77.0.100:80/tcp  wlc    nat     yes        300/100
  -> 10.77.1.1:80    up      100/100  -         http   ok                                                  2h5m   12/40
  -> 10.77.1.2:80    down    -/100    -         tcp    dial tcp 10.77.1.2:80: connect: connection refused  3m     -
  -> 10.77.1.3:8080  up      0/200    drained   http   HTTP 200                                            1d2h   3/0
dns   10.77.0.100:53/udp  rr     dr      no, sorry  0/1
  -> 10.77.2.1:53    down    0/1      -         dns    timeout after 1s                                    5m     0/0
mail  fwmark:7            sh     tunnel  yes        1/1
  -> 10.77.3.1:25    up      1/1      -         none   -                                                   -      -
`
	for _, alias := range []string{"virtual-servers", "vs", "virtualservers"} {
		wantOut(t, haactl(t, target, "", "get", alias), want)
	}

	wantResp := &haav1.ListVirtualServersResponse{VirtualServers: fake.VirtualServers, Backend: "ipvs"}
	for _, format := range []string{"json", "yaml"} {
		r := haactl(t, target, "", "get", "vs", "-o", format)
		wantOK(t, r)
		js := []byte(r.out)
		if format == "yaml" {
			var err error
			if js, err = yaml.YAMLToJSON(js); err != nil {
				t.Fatal(err)
			}
		}
		got := &haav1.ListVirtualServersResponse{}
		if err := protojson.Unmarshal(js, got); err != nil || !proto.Equal(got, wantResp) {
			t.Errorf("-o %s: %v\n%s", format, err, r.out)
		}
		for _, s := range []string{"virtualServers", "realServers", "healthyWeight", "sorryActive", "activeConnections", "fwmark", "backend"} {
			if !strings.Contains(r.out, s) {
				t.Errorf("-o %s: no %q in\n%s", format, s, r.out)
			}
		}
	}

	// Nothing to balance: said on stderr, not an error.
	fake.Update(func(a *ctltest.Agent) { a.VirtualServers, a.Backend = nil, "" })
	r := haactl(t, target, "", "get", "vs")
	if r.code != 0 || r.out != "" || r.err != "No virtual servers: the configuration has none (haactl get config).\n" {
		t.Errorf("none: %+v", r)
	}
	wantOut(t, haactl(t, target, "", "get", "vs", "-o", "json"), "{}\n")

	// An older haad.
	fake.Update(func(a *ctltest.Agent) {
		a.Errors = map[string]error{"ListVirtualServers": status.Error(codes.Unimplemented, "unknown method ListVirtualServers")}
	})
	wantFail(t, haactl(t, target, "", "get", "vs"), 1,
		"haactl: haad at "+target+" does not implement this call (is it older than haactl?): unknown method ListVirtualServers\n")
}

func TestDescribeVirtualServer(t *testing.T) {
	fake, target := serveLB(t)
	wantOut(t, haactl(t, target, "", "describe", "virtual-server", "web"), `Name:          web
Address:       10.77.0.100:80/tcp
Scheduler:     wlc
Forwarding:    nat
Up:            yes: healthy weight 300 >= quorum 100
Sorry server:  10.77.9.9:80, standby (used when the quorum is lost)
Backend:       ipvs
Real servers:
  ADDRESS         HEALTH  WEIGHT   OVERRIDE  CHECK  LAST RESULT                                         SINCE  CONNS
  10.77.1.1:80    up      100/100  -         http   ok                                                  2h5m   12/40
  10.77.1.2:80    down    -/100    -         tcp    dial tcp 10.77.1.2:80: connect: connection refused  3m     -
  10.77.1.3:8080  up      0/200    drained   http   HTTP 200                                            1d2h   3/0
`)
	r := haactl(t, target, "", "describe", "vs", "dns")
	wantOK(t, r)
	for _, s := range []string{"Up:            no: healthy weight 0 < quorum 1\n",
		"Sorry server:  10.77.9.9:53, active: it takes the connections\n",
		"  10.77.2.1:53  down    0/1     -         dns    timeout after 1s  5m     0/0\n"} {
		if !strings.Contains(r.out, s) {
			t.Errorf("dns: no %q in\n%s", s, r.out)
		}
	}
	r = haactl(t, target, "", "describe", "vs", "mail", "-o", "json")
	wantOK(t, r)
	got := &haav1.VirtualServerStatus{}
	if err := protojson.Unmarshal([]byte(r.out), got); err != nil || !proto.Equal(got, fake.VirtualServers[2]) {
		t.Errorf("-o json: %v\n%s", err, r.out)
	}
	wantFail(t, haactl(t, target, "", "describe", "vs", "smtp"), 1,
		"haactl: no virtual server \"smtp\": haactl get vs lists the virtual servers and their real servers\n")
	wantFail(t, haactl(t, target, "", "describe", "vs"), 2,
		"haactl: accepts 1 arg(s), received 0\nsee 'haactl describe virtual-server --help'\n")
}

func TestDrainEnableWeight(t *testing.T) {
	fake, target := serveLB(t)
	wantOut(t, haactl(t, target, "", "drain", "web", "10.77.1.1:80"), `ADDRESS       HEALTH  WEIGHT  OVERRIDE  CHECK  LAST RESULT  SINCE  CONNS
10.77.1.1:80  up      0/100   drained   http   ok           2h5m   12/40

Drained: 10.77.1.1:80 of web takes no new connections; its established ones go on (haactl enable web 10.77.1.1:80 undoes it).
`)
	// ADDR alone names the only real server of web with that address.
	wantOut(t, haactl(t, target, "", "weight", "web", "10.77.1.1", "50"), `ADDRESS       HEALTH  WEIGHT  OVERRIDE   CHECK  LAST RESULT  SINCE  CONNS
10.77.1.1:80  up      50/100  weight 50  http   ok           2h5m   12/40

Weight set: 10.77.1.1:80 of web has weight 50 instead of its configured 100 (haactl enable web 10.77.1.1:80 restores it).
`)
	wantOut(t, haactl(t, target, "", "enable", "web", "10.77.1.1:80"), `ADDRESS       HEALTH  WEIGHT   OVERRIDE  CHECK  LAST RESULT  SINCE  CONNS
10.77.1.1:80  up      100/100  -         http   ok           2h5m   12/40

Enabled: 10.77.1.1:80 of web has its configured weight 100 back.
`)
	r := haactl(t, target, "", "undrain", "web", "10.77.1.2:80")
	wantOK(t, r)
	if !strings.HasSuffix(r.out, "\nEnabled: 10.77.1.2:80 of web has its configured weight 100 back, once its health check passes (it is down).\n") {
		t.Errorf("enable a failed server:\n%s", r.out)
	}
	r = haactl(t, target, "", "weight", "web", "10.77.1.2:80", "0", "-o", "json")
	wantOK(t, r)
	got := &haav1.RealServerStatus{}
	if err := protojson.Unmarshal([]byte(r.out), got); err != nil || got.GetAddress() != "10.77.1.2:80" ||
		got.WeightOverride == nil || got.GetWeightOverride() != 0 || got.GetProgrammed() {
		t.Errorf("-o json: %v\n%s", err, r.out)
	}
	if !strings.Contains(r.out, `"weightOverride": 0`) {
		t.Errorf("-o json: an override of 0 must show:\n%s", r.out)
	}

	var sent []string
	for _, req := range fake.RealServerSets() {
		act := "?"
		switch a := req.GetAction().(type) {
		case *haav1.SetRealServerRequest_Drain:
			act = fmt.Sprint("drain=", a.Drain)
		case *haav1.SetRealServerRequest_Enable:
			act = fmt.Sprint("enable=", a.Enable)
		case *haav1.SetRealServerRequest_Weight:
			act = fmt.Sprint("weight=", a.Weight)
		}
		sent = append(sent, req.GetVirtualServer()+" "+req.GetRealServer()+" "+act)
	}
	if got, want := strings.Join(sent, "\n"), `web 10.77.1.1:80 drain=true
web 10.77.1.1 weight=50
web 10.77.1.1:80 enable=true
web 10.77.1.2:80 enable=true
web 10.77.1.2:80 weight=0`; got != want {
		t.Errorf("requests:\n%s\nwant:\n%s", got, want)
	}

	// The changes are events.
	r = haactl(t, target, "", "get", "events")
	wantOK(t, r)
	for _, s := range []string{
		"  1  -         real server 10.77.1.1:80 of web drained through the API (weight 0)\n",
		"  2  -         real server 10.77.1.1:80 of web re-weighted: set to 50 through the API (weight 50)\n",
		"  3  -         real server 10.77.1.1:80 of web enabled through the API (weight 100)\n",
		"  4  -         real server 10.77.1.2:80 of web enabled through the API (down, weight 0)\n",
	} {
		if !strings.Contains(r.out, s) {
			t.Errorf("events: no %q in\n%s", s, r.out)
		}
	}
}

func TestRealServerErrors(t *testing.T) {
	fake, target := serveLB(t)
	wantFail(t, haactl(t, target, "", "drain", "webx", "10.77.1.1:80"), 1,
		"haactl: virtual server \"webx\": no such virtual server: the node has web, dns, mail (haactl get vs lists them)\n")
	wantFail(t, haactl(t, target, "", "drain", "web", "10.77.1.9:80"), 1,
		"haactl: virtual server web has no real server \"10.77.1.9:80\": no such real server: "+
			"the real servers of web are 10.77.1.1:80, 10.77.1.2:80, 10.77.1.3:8080 (give ADDR:PORT)\n")
	for _, w := range []string{"x", "65536", "1.5", "4294967296"} {
		wantFail(t, haactl(t, target, "", "weight", "web", "10.77.1.1:80", w), 2,
			"haactl: weight \""+w+"\": want a whole number 0..65535\nsee 'haactl weight --help'\n")
	}
	if r := haactl(t, target, "", "weight", "web", "10.77.1.1:80", "-1"); r.code != 2 {
		t.Errorf("weight -1: %+v", r)
	}
	wantFail(t, haactl(t, target, "", "drain", "web"), 2, "haactl: accepts 2 arg(s), received 1\nsee 'haactl drain --help'\n")
	wantFail(t, haactl(t, target, "", "weight", "web", "10.77.1.1:80"), 2, "haactl: accepts 3 arg(s), received 2\nsee 'haactl weight --help'\n")
	// Usage errors send nothing; the two NotFound did.
	if n := len(fake.RealServerSets()); n != 2 {
		t.Errorf("%d requests sent", n)
	}
	if r := haactl(t, target, "", "get", "events"); r.out != "" {
		t.Errorf("events after failures:\n%s", r.out)
	}

	fake.Update(func(a *ctltest.Agent) { a.VirtualServers = nil })
	wantFail(t, haactl(t, target, "", "enable", "web", "10.77.1.1:80"), 1,
		"haactl: virtual server \"web\": no such virtual server: the node has no virtual servers (haactl get config)\n")
	fake.Update(func(a *ctltest.Agent) {
		a.Errors = map[string]error{"SetRealServer": status.Error(codes.PermissionDenied, "read-only client")}
	})
	wantFail(t, haactl(t, target, "", "drain", "web", "10.77.1.1:80"), 1, "haactl: haad at "+target+" denied the call: read-only client\n")
}

func TestGetNodeBackend(t *testing.T) {
	fake, target := serveLB(t)
	r := haactl(t, target, "", "get", "node")
	if !strings.HasSuffix(r.out, "MAINTENANCE  off\nLB BACKEND   ipvs (ip_vs module loaded)\n") {
		t.Errorf("get node:\n%s", r.out)
	}
	fake.Update(func(a *ctltest.Agent) { a.Node.LbBackendReason = "" })
	if r := haactl(t, target, "", "get", "node"); !strings.HasSuffix(r.out, "LB BACKEND   ipvs\n") {
		t.Errorf("without a reason:\n%s", r.out)
	}
	fake.Update(func(a *ctltest.Agent) {
		a.Node.LogLevel, a.Node.MetricsAddress = "debug", "http://127.0.0.1:9650/metrics"
	})
	if r := haactl(t, target, "", "get", "node"); !strings.HasSuffix(r.out, "LOG LEVEL    debug\nMETRICS      http://127.0.0.1:9650/metrics\n") {
		t.Errorf("with a log level and metrics:\n%s", r.out)
	}
	r = haactl(t, target, "", "get", "node", "-o", "json")
	if !strings.Contains(r.out, `"lbBackend": "ipvs"`) {
		t.Errorf("-o json:\n%s", r.out)
	}
}

func TestBalancerEventText(t *testing.T) {
	rs := func(c *haav1.RealServerChanged) *haav1.Event {
		c.VirtualServer, c.RealServer = "web", "10.0.0.1:80"
		return &haav1.Event{Kind: &haav1.Event_RealServerChanged{RealServerChanged: c}}
	}
	vs := func(c *haav1.VirtualServerChanged) *haav1.Event {
		c.VirtualServer = "web"
		return &haav1.Event{Kind: &haav1.Event_VirtualServerChanged{VirtualServerChanged: c}}
	}
	for _, tc := range []struct {
		ev   *haav1.Event
		want string
	}{
		{rs(&haav1.RealServerChanged{Cause: "down", Detail: "connection refused"}),
			"real server 10.0.0.1:80 of web down: connection refused (weight 0)"},
		{rs(&haav1.RealServerChanged{Healthy: true, Weight: 100, Cause: "up"}),
			"real server 10.0.0.1:80 of web up (weight 100)"},
		{rs(&haav1.RealServerChanged{Healthy: true, Cause: "drained", Detail: "through the API"}),
			"real server 10.0.0.1:80 of web drained through the API (weight 0)"},
		{rs(&haav1.RealServerChanged{Healthy: true, Weight: 50, Cause: "weight", Detail: "set to 50 through the API"}),
			"real server 10.0.0.1:80 of web re-weighted: set to 50 through the API (weight 50)"},
		{rs(&haav1.RealServerChanged{Cause: "enabled", Detail: "through the API"}),
			"real server 10.0.0.1:80 of web enabled through the API (down, weight 0)"},
		{rs(&haav1.RealServerChanged{Detail: "HTTP 503\nService Unavailable"}),
			"real server 10.0.0.1:80 of web down: HTTP 503 Service Unavailable (weight 0)"},
		{vs(&haav1.VirtualServerChanged{Sorry: true}),
			"virtual server web lost its quorum (healthy weight 0): sorry server active"},
		{vs(&haav1.VirtualServerChanged{}),
			"virtual server web lost its quorum (healthy weight 0)"},
		{vs(&haav1.VirtualServerChanged{Up: true, HealthyWeight: 200}),
			"virtual server web has its quorum again (healthy weight 200)"},
	} {
		if got := describeEvent(tc.ev); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
}

func TestBalancerCompletion(t *testing.T) {
	_, target := serveLB(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"drain", ""}, "web\ndns\nmail\n:4\n"},
		{[]string{"drain", "d"}, "dns\n:4\n"},
		{[]string{"drain", "web", "10.77.1."}, "10.77.1.1:80\n10.77.1.2:80\n10.77.1.3:8080\n:4\n"},
		{[]string{"weight", "dns", ""}, "10.77.2.1:53\n:4\n"},
		{[]string{"weight", "web", "10.77.1.1:80", ""}, ":4\n"},
		{[]string{"enable", "nope", ""}, ":4\n"},
		{[]string{"describe", "vs", "m"}, "mail\n:4\n"},
		{[]string{"describe", "vs", "mail", ""}, ":4\n"},
	} {
		r := haactl(t, target, "", append([]string{"__complete"}, tc.args...)...)
		if r.code != 0 || !strings.HasPrefix(r.out, tc.want) {
			t.Errorf("%v: exit %d\n%s\nwant\n%s", tc.args, r.code, r.out, tc.want)
		}
	}
}

// TestDescribeVirtualServerThresholds: real servers with connection
// limits show them in a THRESHOLDS column (upper/lower); without any, the
// column is left out.
func TestDescribeVirtualServerThresholds(t *testing.T) {
	fake, target := serveLB(t)
	fake.Update(func(a *ctltest.Agent) {
		rss := a.VirtualServers[2].RealServers
		rss[0].UpperThreshold, rss[0].LowerThreshold = proto.Uint32(100), proto.Uint32(80)
		rss = append(rss, &haav1.RealServerStatus{Address: "10.77.3.2:25", Healthy: true, ConfiguredWeight: 1, Weight: 1,
			Programmed: true, Check: "none"})
		a.VirtualServers[2].RealServers = rss
	})
	r := haactl(t, target, "", "describe", "vs", "mail")
	wantOK(t, r)
	for _, s := range []string{
		"  ADDRESS       HEALTH  WEIGHT  OVERRIDE  CHECK  LAST RESULT  SINCE  CONNS  THRESHOLDS\n",
		"  10.77.3.1:25  up      1/1     -         none   -            -      -      100/80\n",
		"  10.77.3.2:25  up      1/1     -         none   -            -      -      -\n",
	} {
		if !strings.Contains(r.out, s) {
			t.Errorf("no %q in\n%s", s, r.out)
		}
	}
	if r := haactl(t, target, "", "describe", "vs", "web"); strings.Contains(r.out, "THRESHOLDS") {
		t.Errorf("web has no thresholds:\n%s", r.out)
	}
}
