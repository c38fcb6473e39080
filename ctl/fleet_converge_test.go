package ctl

import (
	"strings"
	"testing"

	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// A director has converged when its table holds the document's virtual
// servers and healthy real servers at the document's weights; unhealthy
// and drained real servers are not the rollout's to judge, nor are the
// nodes that direct nothing.
func TestVirtualServersConverged(t *testing.T) {
	doc, err := config.ParseFleet([]byte(`kind: Fleet
nodes: [lb1, lb2, lb3]
virtualServers:
  - name: web
    address: "10.0.0.10:80"
    directors: [lb1, lb2]
    realServers: [{address: "10.0.1.1:80", weight: 3}, {address: "10.0.1.2:80"}, {address: "10.0.1.3:80"}, {address: "10.0.1.4:80", weight: 5}]
    overrides:
      lb2: {scheduler: rr}
`))
	if err != nil {
		t.Fatal(err)
	}
	rs := func(addr string, cfg, weight uint32, programmed, healthy bool) *haav1.RealServerStatus {
		return &haav1.RealServerStatus{Address: addr, ConfiguredWeight: cfg, Weight: weight, Programmed: programmed, Healthy: healthy}
	}
	// An exec check may set the weight itself (dynamic).
	dyn := func(r *haav1.RealServerStatus) *haav1.RealServerStatus { r.Check = "exec"; return r }
	vs := func(sched string, reals ...*haav1.RealServerStatus) []*haav1.VirtualServerStatus {
		return []*haav1.VirtualServerStatus{{Name: "web", Address: "10.0.0.10:80", Protocol: "tcp", Scheduler: sched,
			Forwarding: "nat", Up: true, RealServers: reals}}
	}
	good := map[string][]*haav1.VirtualServerStatus{
		"lb1": vs("wrr", rs("10.0.1.1:80", 3, 3, true, true), rs("10.0.1.2:80", 1, 1, true, true), rs("10.0.1.3:80", 1, 0, false, false), dyn(rs("10.0.1.4:80", 5, 17, true, true))),
		"lb2": vs("rr", rs("10.0.1.1:80", 3, 3, true, true), rs("10.0.1.2:80", 1, 1, true, true), rs("10.0.1.3:80", 1, 1, true, true), rs("10.0.1.4:80", 5, 5, true, true)),
		"lb3": nil,
	}
	if got := VirtualServersConverged(good, doc); len(got) != 0 {
		t.Fatalf("converged fleet: %q", got)
	}
	bad := map[string][]*haav1.VirtualServerStatus{
		"lb1": vs("wrr", rs("10.0.1.1:80", 3, 0, true, true), rs("10.0.1.2:80", 1, 1, false, true), rs("10.0.1.4:80", 5, 17, true, true)),
		"lb2": vs("wrr"),
	}
	got := strings.Join(VirtualServersConverged(bad, doc), "\n")
	want := strings.Join([]string{
		"web: lb1 programs 10.0.1.1:80 at weight 0, the document says 3",
		"web: lb1 has not programmed 10.0.1.2:80",
		"web: lb1 lacks real server 10.0.1.3:80",
		"web: lb1 programs 10.0.1.4:80 at weight 17, the document says 5",
		"web: lb2 runs scheduler wrr, the document says rr",
	}, "\n")
	if got != want {
		t.Fatalf("problems\n got:\n%s\n want:\n%s", got, want)
	}
	if got := VirtualServersConverged(map[string][]*haav1.VirtualServerStatus{"lb1": nil}, doc); len(got) != 1 || got[0] != "web: lb1 has not programmed it" {
		t.Fatalf("missing: %q", got)
	}
}
