package main

// The load balancer end to end: a client namespace reaches a VIP held by a
// haad director, whose virtual server spreads the connections over three
// real-server namespaces running small HTTP servers, through the backend
// the kernel calls for (IPVS where it has it, nftables DNAT elsewhere:
// this machine's kernel has no IPVS, make test-ipvs's VM has) and, on an
// IPVS kernel, through nftables forced as well. Health checks, the runtime
// API and the sorry server are exercised against real servers going away
// and coming back; the kernel's table is read from the backend in use.

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"github.com/haa-dev/haa/deploy/lab"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// rsPort is where the real servers (and the sorry server) listen.
const rsPort = 8080

// newRealServer starts an HTTP server answering body on rsPort in n's
// namespace, stopped when the test ends.
func newRealServer(t *testing.T, n *lab.Node, body string) *lab.Responder {
	t.Helper()
	r, err := n.Respond(rsPort, body)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

// client makes HTTP requests from a namespace, each on a new connection.
type client struct{ hc *http.Client }

func newClient(n *lab.Node) *client { return &client{hc: n.HTTPClient(3 * time.Second)} }

func (c *client) get(url string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return lab.GetBody(ctx, c.hc, url)
}

// spread makes n requests and counts the answers; any failed request
// fails the test.
func (c *client) spread(t *testing.T, url string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := range n {
		body, err := c.get(url)
		if err != nil {
			t.Fatalf("request %d of %d to %s failed: %v (answers so far: %v)", i+1, n, url, err, got)
		}
		got[body]++
	}
	return got
}

func sameCounts(got, want map[string]int) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

func listVS(t *testing.T, cl haav1.AgentServiceClient) *haav1.ListVirtualServersResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := cl.ListVirtualServers(ctx, &haav1.ListVirtualServersRequest{})
	if err != nil {
		t.Fatalf("ListVirtualServers: %v", err)
	}
	return r
}

func realOf(vs *haav1.VirtualServerStatus, addr netip.AddrPort) *haav1.RealServerStatus {
	for _, rs := range vs.GetRealServers() {
		if rs.GetAddress() == addr.String() {
			return rs
		}
	}
	return nil
}

func setRS(t *testing.T, cl haav1.AgentServiceClient, req *haav1.SetRealServerRequest) *haav1.RealServerStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := cl.SetRealServer(ctx, req)
	if err != nil {
		t.Fatalf("SetRealServer %v: %v", req, err)
	}
	return r.GetRealServer()
}

func realServerChanged(addr netip.AddrPort, cause string) func(*haav1.Event) bool {
	return func(e *haav1.Event) bool {
		rc := e.GetRealServerChanged()
		return rc != nil && rc.GetRealServer() == addr.String() && rc.GetCause() == cause
	}
}

func TestLoadBalancerNamespaces(t *testing.T) {
	t.Parallel()
	lab.Require(t)
	backends := []string{"auto"}
	if kernelHasIPVS() {
		backends = append(backends, "nftables") // both backends on one kernel
	}
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			testLoadBalancer(t, b)
		})
	}
}

// kernelHasIPVS reports whether the kernel has IPVS (ip_vs loaded or built
// in), which makes auto choose it.
func kernelHasIPVS() bool {
	_, err := os.Stat(lab.IPVSProcFile)
	return err == nil
}

// testLoadBalancer runs the scenario with loadBalancer.backend requested
// (auto or nftables).
func testLoadBalancer(t *testing.T, requested string) {
	l := lab.NewT(t, lab.Options{Prefix: lab.UniqueName("lb"), Nodes: 1, Clients: 5})
	c := &cluster{t: t, lab: l, dir: t.TempDir(), bin: haad(t), procs: map[*lab.Node]*lab.Proc{}}
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
	})
	director, user := l.Nodes[0], l.Clients[0]
	// LVS-NAT on one LAN: the director forwards, and the real servers send
	// their replies to the client through it (where conntrack undoes the
	// DNAT), never straight to the client.
	for _, kv := range [][2]string{{"net/ipv4/ip_forward", "1"}, {"net/ipv4/conf/all/send_redirects", "0"},
		{"net/ipv4/conf/eth0/send_redirects", "0"}} {
		if err := director.WriteSysctl(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	var reals []*lab.Responder
	for i, n := range l.Clients[1:4] {
		if err := n.AddRoute(netip.PrefixFrom(user.Addr, 32), director.Addr); err != nil {
			t.Fatal(err)
		}
		if err := n.WriteSysctl("net/ipv4/conf/all/accept_redirects", "0"); err != nil {
			t.Fatal(err)
		}
		reals = append(reals, newRealServer(t, n, fmt.Sprintf("rs%d", i+1)))
	}
	sorryNS := l.Clients[4]
	if err := sorryNS.AddRoute(netip.PrefixFrom(user.Addr, 32), director.Addr); err != nil {
		t.Fatal(err)
	}
	sorry := newRealServer(t, sorryNS, "sorry")

	// A check every second with a timeout of 1 s (an HTTP check can take
	// more than 300 ms under the IPVS VM's emulation); a failed one is
	// retried every retryDelay.
	const (
		fall       = 3
		rise       = 2
		retryDelay = 150 * time.Millisecond
	)
	top := fmt.Sprintf(`virtualServers:
  - name: web
    address: %s:80
    scheduler: wrr
    sorryServer: %s
    check:
      http: {path: /health}
      interval: 1s
      timeout: 1s
      retryDelay: %s
      fall: %d
      rise: %d
      jitter: 0s
    realServers:
      - address: %s
      - {address: %s, notifyDown: [/bin/true]}
      - address: %s
loadBalancer: {backend: %s}
`, vip, sorry.Addr(), retryDelay, fall, rise, reals[0].Addr(), reals[1].Addr(), reals[2].Addr(), requested)
	c.startTop(director, top, instance{name: "VI_1", vrid: 61, prio: 200})
	c.waitHolder(vip, director, 10*time.Second)
	// The API serves once the configuration runs: slow on a loaded VM.
	if err := lab.WaitAPI(c.procs[director], director.HaadFiles(c.dir).Socket, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	api := c.api(director)
	w := c.watch(api, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	nodeResp, err := api.GetNode(ctx, &haav1.GetNodeRequest{})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	// haad loads ip_vs where it can: the kernel is asked after its start.
	backend, reason := "nftables", "the kernel has no IPVS"
	switch {
	case requested == "nftables":
		reason = "configured"
	case kernelHasIPVS():
		backend, reason = "ipvs", "the kernel has IPVS"
	}
	if got, why := nodeResp.GetNode().GetLbBackend(), nodeResp.GetNode().GetLbBackendReason(); got != backend || !strings.Contains(why, reason) {
		t.Fatalf("GetNode backend %q (%q), want %s (%s)", got, why, backend, reason)
	}
	table := openTable(t, director, backend)
	key := netip.AddrPortFrom(vip, 80).String() + "/tcp"
	// wantTable asserts the kernel's real servers of the virtual server
	// and their weights: nat, as the nftables backend reads it back.
	vsWith := func(weights map[*lab.Responder]int) kernelTable {
		d := map[string]int{}
		for r, w := range weights {
			d[r.Addr().String()] = w
		}
		return kernelTable{key: {Sched: "wrr", Fwd: "nat", Dests: d}}
	}
	wantTable := func(what string, weights map[*lab.Responder]int) {
		t.Helper()
		table.wait(t, what, vsWith(weights), 5*time.Second)
	}
	// haveTable: the table is already so (an event says it is programmed).
	haveTable := func(what string, weights map[*lab.Responder]int) {
		t.Helper()
		if got, want := table.get(t), vsWith(weights); !got.equal(want) {
			t.Errorf("the %s table at the event %s: %s, want %s", backend, what, got, want)
		}
	}
	wantTable("the virtual server programmed", map[*lab.Responder]int{reals[0]: 1, reals[1]: 1, reals[2]: 1})

	url := fmt.Sprintf("http://%s/", netip.AddrPortFrom(vip, 80))
	cl := newClient(user)

	// Equal weights: wrr takes each server in turn.
	if got := cl.spread(t, url, 30); !sameCounts(got, map[string]int{"rs1": 10, "rs2": 10, "rs3": 10}) {
		t.Errorf("30 requests with weights 1:1:1 went %v, want 10 each", got)
	}

	// Runtime weights, drain and enable, without a reload.
	if rs := setRS(t, api, &haav1.SetRealServerRequest{VirtualServer: "web", RealServer: reals[0].Addr().String(),
		Action: &haav1.SetRealServerRequest_Weight{Weight: 3}}); rs.GetWeight() != 3 || rs.GetWeightOverride() != 3 {
		t.Errorf("after weight 3: %v", rs)
	}
	w.waitFor(t, "a weight event", realServerChanged(reals[0].Addr(), "weight"))
	wantTable("rs1 at weight 3", map[*lab.Responder]int{reals[0]: 3, reals[1]: 1, reals[2]: 1})
	if got := cl.spread(t, url, 50); !sameCounts(got, map[string]int{"rs1": 30, "rs2": 10, "rs3": 10}) {
		t.Errorf("50 requests with weights 3:1:1 went %v, want 30/10/10", got)
	}
	if rs := setRS(t, api, &haav1.SetRealServerRequest{VirtualServer: "web", RealServer: reals[2].Addr().String(),
		Action: &haav1.SetRealServerRequest_Drain{Drain: true}}); rs.GetWeight() != 0 || !rs.GetDrained() || !rs.GetProgrammed() {
		t.Errorf("after drain: %v", rs)
	}
	w.waitFor(t, "a drain event", realServerChanged(reals[2].Addr(), "drained"))
	wantTable("rs3 drained", map[*lab.Responder]int{reals[0]: 3, reals[1]: 1, reals[2]: 0})
	if got := cl.spread(t, url, 40); !sameCounts(got, map[string]int{"rs1": 30, "rs2": 10}) {
		t.Errorf("40 requests with rs3 drained went %v, want 30/10/0", got)
	}
	for _, rs := range []*lab.Responder{reals[0], reals[2]} {
		setRS(t, api, &haav1.SetRealServerRequest{VirtualServer: "web", RealServer: rs.Addr().String(),
			Action: &haav1.SetRealServerRequest_Enable{Enable: true}})
	}
	if got := cl.spread(t, url, 30); !sameCounts(got, map[string]int{"rs1": 10, "rs2": 10, "rs3": 10}) {
		t.Errorf("30 requests after enable went %v, want 10 each", got)
	}

	// A real server stops: after `fall` failed checks it is removed, and
	// from then on no request fails.
	stopped := time.Now()
	reals[1].Stop()
	down := w.waitFor(t, "rs2 down", realServerChanged(reals[1].Addr(), "down"))
	if at := down.GetTime().AsTime(); at.Sub(stopped) < (fall-1)*retryDelay {
		t.Errorf("rs2 removed %s after it stopped: before %d failed checks %s apart", at.Sub(stopped), fall, retryDelay)
	}
	wantTable("rs2 removed", map[*lab.Responder]int{reals[0]: 1, reals[2]: 1})
	if d := down.GetRealServerChanged().GetDetail(); !strings.Contains(d, "refused") {
		t.Errorf("down event detail %q, want the failed check's reason (connection refused)", d)
	}
	if got := cl.spread(t, url, 30); !sameCounts(got, map[string]int{"rs1": 15, "rs3": 15}) {
		t.Errorf("30 requests with rs2 down went %v, want 15/0/15", got)
	}
	vs := listVS(t, api).GetVirtualServers()[0]
	if rs := realOf(vs, reals[1].Addr()); rs.GetHealthy() || rs.GetProgrammed() || !strings.Contains(rs.GetLastResult(), "refused") {
		t.Errorf("rs2 while down: %v", rs)
	}
	w.waitFor(t, "rs2's notifyDown ran", func(e *haav1.Event) bool {
		r := e.GetNotifyRan().GetResult()
		return r.GetType() == "REAL_SERVER" && r.GetName() == "web/"+reals[1].Addr().String() && r.GetState() == "DOWN" && r.GetExitCode() == 0
	})

	// It comes back: after `rise` good checks it takes connections again.
	if err := reals[1].Start(); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "rs2 up", realServerChanged(reals[1].Addr(), "up"))
	if got := cl.spread(t, url, 30); !sameCounts(got, map[string]int{"rs1": 10, "rs2": 10, "rs3": 10}) {
		t.Errorf("30 requests with rs2 back went %v, want 10 each", got)
	}

	// Every real server down: quorum is lost and the sorry server answers.
	for _, rs := range reals {
		rs.Stop()
	}
	w.waitFor(t, "quorum lost", func(e *haav1.Event) bool {
		vc := e.GetVirtualServerChanged()
		return vc != nil && !vc.GetUp() && vc.GetSorry()
	})
	haveTable("quorum lost", map[*lab.Responder]int{sorry: 1})
	if got := cl.spread(t, url, 10); !sameCounts(got, map[string]int{"sorry": 10}) {
		t.Errorf("10 requests with every real server down went %v, want the sorry server", got)
	}
	vs = listVS(t, api).GetVirtualServers()[0]
	if vs.GetUp() || !vs.GetSorryActive() || vs.GetHealthyWeight() != 0 {
		t.Errorf("virtual server with every real server down: %v", vs)
	}
	// One comes back: quorum again, the sorry server steps aside.
	if err := reals[0].Start(); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "quorum back", func(e *haav1.Event) bool {
		vc := e.GetVirtualServerChanged()
		return vc != nil && vc.GetUp() && !vc.GetSorry()
	})
	haveTable("quorum back", map[*lab.Responder]int{reals[0]: 1})
	if got := cl.spread(t, url, 10); !sameCounts(got, map[string]int{"rs1": 10}) {
		t.Errorf("10 requests with rs1 back went %v, want rs1 only", got)
	}

	// A clean stop removes what haad programmed.
	if err := c.procs[director].Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := table.get(t); len(got) != 0 {
		t.Errorf("the %s table after haad stopped: %s, want empty", backend, got)
	}
	if tables := nftTables(t, director); slices.Contains(tables, "haa_lvs") {
		t.Errorf("nftables tables after haad stopped: %v, want haa_lvs gone", tables)
	}
}

// nftTables lists the nftables tables of a namespace.
func nftTables(t *testing.T, n *lab.Node) []string {
	t.Helper()
	h, err := netns.GetFromName(n.NS.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	conn, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := conn.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range ts {
		names = append(names, tb.Name)
	}
	return names
}
