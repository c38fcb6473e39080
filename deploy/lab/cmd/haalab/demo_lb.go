package main

// The demo's second part: haad as a load balancer. The three nodes are
// also directors of one virtual server, the VIP's port 80, spread over
// three real-server namespaces (lab clients c2..c4) running small HTTP
// servers in this process. LVS-NAT on one LAN: the directors forward
// (ip_forward=1, no redirects) and the real servers route the client's
// address through a second VIP of the same VRRP instance, so their replies
// always go back through the current master, where conntrack undoes the
// DNAT, and follow it when it moves.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/haa-dev/haa/ctl"
	"github.com/haa-dev/haa/deploy/lab"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

var (
	// demoGW is the second VIP: the real servers' gateway to the client.
	demoGW = netip.MustParseAddr("10.77.0.254")
)

const (
	demoVSName        = "web"
	demoVSPort        = 80
	demoRSPort        = 8080
	demoRealServers   = 3
	demoRequests      = 30
	demoCheckInterval = 200 * time.Millisecond
	demoFall          = 2
	demoRise          = 1
	// demoRequestTimeout bounds one request while the directors fail
	// over: a connection sent to the powered-off master is given up
	// quickly instead of waiting for TCP's 1 s SYN retransmission.
	demoRequestTimeout = 200 * time.Millisecond
	// demoRequestEvery paces the requests during the failover.
	demoRequestEvery = 5 * time.Millisecond
)

// demoLBConfig is the virtual server part of every director's haad
// configuration.
func demoLBConfig(vip netip.Addr, reals []netip.AddrPort) string {
	var b strings.Builder
	fmt.Fprintf(&b, "virtualServers:\n  - name: %s\n    address: %s\n    scheduler: wrr\n", demoVSName, netip.AddrPortFrom(vip, demoVSPort))
	fmt.Fprintf(&b, "    check:\n      http: {path: /health}\n      interval: %s\n      timeout: %s\n      retryDelay: %s\n      fall: %d\n      rise: %d\n      jitter: 0s\n",
		demoCheckInterval, demoCheckInterval, demoCheckInterval, demoFall, demoRise)
	b.WriteString("    realServers:\n")
	for _, r := range reals {
		fmt.Fprintf(&b, "      - address: %s\n", r)
	}
	return b.String()
}

// demoConfig is a director's whole haad configuration.
func (d *demo) demoConfig(n *lab.Node, prio int) string {
	return haadConfig(n.Name, demoInstance(prio)) + demoLBConfig(demoVIP, d.lb.addrs())
}

// startHaad starts a director's haad with the VRRP instance and the
// virtual server.
func (d *demo) startHaad(n *lab.Node, prio int) (*lab.Proc, error) {
	return n.StartHaad(d.dir, d.haad.bin, d.demoConfig(n, prio),
		"--status-file", statusPath(d.dir, n), "--log-level", "info")
}

// demoLB is the load-balancing part's state.
type demoLB struct {
	reals  []*lab.Responder
	client *http.Client

	// Results for the summary.
	spread, spreadDown string
	downAfter          time.Duration
	outage             time.Duration
	failed, sent       int
	from, to           string
}

func (lb *demoLB) addrs() []netip.AddrPort {
	var a []netip.AddrPort
	for _, r := range lb.reals {
		a = append(a, r.Addr())
	}
	return a
}

// buildLB prepares the load balancing in a built lab: the directors
// forward, the real servers route the client through the gateway VIP and
// serve HTTP.
func (d *demo) buildLB() error {
	for _, n := range d.l.Nodes {
		for _, kv := range [][2]string{{"net/ipv4/ip_forward", "1"}, {"net/ipv4/conf/all/send_redirects", "0"},
			{"net/ipv4/conf/" + lab.Iface + "/send_redirects", "0"}} {
			if err := n.WriteSysctl(kv[0], kv[1]); err != nil {
				return err
			}
		}
	}
	user := d.l.Clients[0]
	for i, n := range d.l.Clients[1 : 1+demoRealServers] {
		if err := n.IP("route", "add", user.Addr.String()+"/32", "via", demoGW.String()); err != nil {
			return err
		}
		for _, p := range []string{"net/ipv4/conf/all/accept_redirects", "net/ipv4/conf/" + lab.Iface + "/accept_redirects"} {
			if err := n.WriteSysctl(p, "0"); err != nil {
				return err
			}
		}
		rs, err := n.Respond(demoRSPort, fmt.Sprintf("rs%d", i+1))
		if err != nil {
			return err
		}
		d.lb.reals = append(d.lb.reals, rs)
	}
	d.lb.client = user.HTTPClient(2 * time.Second)
	return nil
}

// closeLB stops the real servers.
func (d *demo) closeLB() {
	for _, rs := range d.lb.reals {
		rs.Stop()
	}
	if d.lb.client != nil {
		d.lb.client.CloseIdleConnections()
	}
}

// get makes one request to the virtual server from the client, on a new
// connection, and returns the body: the real server's name.
func (d *demo) get(timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(d.s.ctx, timeout)
	defer cancel()
	return lab.GetBody(ctx, d.lb.client, d.vsURL())
}

func (d *demo) vsURL() string {
	return fmt.Sprintf("http://%s/", netip.AddrPortFrom(demoVIP, demoVSPort))
}

// requests makes n requests one after the other and counts the answers;
// any failed request is an error.
func (d *demo) requests(n int) (map[string]int, error) {
	got := map[string]int{}
	for i := range n {
		body, err := d.get(2 * time.Second)
		if err != nil {
			return got, fmt.Errorf("request %d of %d to %s failed: %w (answers so far: %s)", i+1, n, d.vsURL(), err, countsString(got, d.lbNames()))
		}
		got[body]++
	}
	return got, nil
}

func (d *demo) lbNames() []string {
	var names []string
	for _, rs := range d.lb.reals {
		names = append(names, rs.Body)
	}
	return names
}

// countsString formats answer counts in the order of names, then any
// unexpected answer: "rs1 10, rs2 10, rs3 10".
func countsString(got map[string]int, names []string) string {
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %d", n, got[n]))
	}
	var other []string
	for k := range got {
		if !slices.Contains(names, k) {
			other = append(other, k)
		}
	}
	slices.Sort(other)
	for _, k := range other {
		parts = append(parts, fmt.Sprintf("%q %d", k, got[k]))
	}
	return strings.Join(parts, ", ")
}

// evenSpread tells whether got is total requests spread evenly over
// exactly the names in over, and nothing else.
func evenSpread(got map[string]int, over []string, total int) bool {
	if len(over) == 0 || total%len(over) != 0 || len(got) != len(over) {
		return false
	}
	for _, n := range over {
		if got[n] != total/len(over) {
			return false
		}
	}
	return true
}

// master is the node holding the VIP.
func (d *demo) master() (*lab.Node, error) {
	hs, err := d.l.Holders(demoVIP)
	if err != nil {
		return nil, err
	}
	if len(hs) != 1 {
		return nil, fmt.Errorf("%s is held by %d nodes (%s), want 1", demoVIP, len(hs), lab.Names(hs))
	}
	return hs[0], nil
}

// virtualServer asks a director's haad for the demo's virtual server.
func (d *demo) virtualServer(n *lab.Node) (*haav1.VirtualServerStatus, string, error) {
	ctx, cancel := context.WithTimeout(d.s.ctx, 3*time.Second)
	defer cancel()
	c, err := ctl.Dial(ctx, "unix://"+n.HaadFiles(d.dir).Socket)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", n.Name, err)
	}
	defer c.Close()
	r, err := c.VirtualServers(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("%s: ListVirtualServers: %w", n.Name, err)
	}
	for _, vs := range r.GetVirtualServers() {
		if vs.GetName() == demoVSName {
			return vs, r.GetBackend(), nil
		}
	}
	return nil, "", fmt.Errorf("%s: no virtual server %s", n.Name, demoVSName)
}

// waitReals polls a director's haad until every real server's health is
// as in want (by address), and returns the virtual server.
func (d *demo) waitReals(n *lab.Node, want map[netip.AddrPort]bool, timeout time.Duration) (*haav1.VirtualServerStatus, string, error) {
	var vs *haav1.VirtualServerStatus
	var backend string
	err := lab.Poll(timeout, 20*time.Millisecond, n.Name+"'s real servers "+healthString(want), func() (bool, error) {
		var err error
		vs, backend, err = d.virtualServer(n)
		if err != nil {
			return false, err
		}
		for _, rs := range vs.GetRealServers() {
			a, err := netip.ParseAddrPort(rs.GetAddress())
			if err != nil {
				return false, err
			}
			if h, ok := want[a]; ok && (rs.GetHealthy() != h || rs.GetProgrammed() != h) {
				return false, nil
			}
		}
		return true, nil
	})
	return vs, backend, err
}

func healthString(want map[netip.AddrPort]bool) string {
	var parts []string
	for a, h := range want {
		s := "down"
		if h {
			s = "up"
		}
		parts = append(parts, a.String()+" "+s)
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// running are the directors whose haad runs.
func (d *demo) running() []*lab.Node {
	var ns []*lab.Node
	for _, n := range d.l.Nodes {
		if p := d.procs[n]; p != nil && !p.Exited() {
			ns = append(ns, n)
		}
	}
	return ns
}

func (d *demo) lbBalance() error {
	m, err := d.master()
	if err != nil {
		return err
	}
	up := map[netip.AddrPort]bool{}
	for _, a := range d.lb.addrs() {
		up[a] = true
	}
	for _, n := range d.running() {
		if _, _, err := d.waitReals(n, up, 5*time.Second); err != nil {
			return errors.Join(err, d.exited())
		}
	}
	_, backend, err := d.virtualServer(m)
	if err != nil {
		return err
	}
	var reals []string
	for _, rs := range d.lb.reals {
		reals = append(reals, fmt.Sprintf("%s %s", rs.Body, rs.Addr()))
	}
	d.s.say("every director checks %s every %v (fall %d, rise %d) and reports them healthy; backend %s, master %s",
		strings.Join(reals, ", "), demoCheckInterval, demoFall, demoRise, backend, m.Name)
	got, err := d.requests(demoRequests)
	if err != nil {
		return err
	}
	d.lb.spread = countsString(got, d.lbNames())
	d.s.say("c1 makes %d requests to %s (a new connection each): answered by %s (wrr, equal weights: each in turn)",
		demoRequests, d.vsURL(), d.lb.spread)
	if !evenSpread(got, d.lbNames(), demoRequests) {
		return fmt.Errorf("%d requests went %s, want %d each", demoRequests, d.lb.spread, demoRequests/demoRealServers)
	}
	return nil
}

// lbDownServer is the real server the demo stops.
func (d *demo) lbDownServer() *lab.Responder { return d.lb.reals[1] }

func (d *demo) lbRealDown() error {
	m, err := d.master()
	if err != nil {
		return err
	}
	down := d.lbDownServer()
	stopped := time.Now()
	down.Stop()
	d.s.say("%s stopped (%s refuses connections)", down.Body, down.Addr())
	vs, _, err := d.waitReals(m, map[netip.AddrPort]bool{down.Addr(): false}, 5*time.Second)
	if err != nil {
		return err
	}
	d.lb.downAfter = time.Since(stopped)
	rs := realStatus(vs, down.Addr())
	d.s.say("%s (master) took %s out %s later, after %d failed checks: %q", m.Name, down.Body, ms(d.lb.downAfter), demoFall, rs.GetLastResult())
	var others []string
	for _, n := range d.running() {
		if n == m {
			continue
		}
		if _, _, err := d.waitReals(n, map[netip.AddrPort]bool{down.Addr(): false}, 5*time.Second); err != nil {
			return err
		}
		others = append(others, n.Name)
	}
	if len(others) > 0 {
		d.s.say("ListVirtualServers on %s shows %s down too (every director checks on its own)", strings.Join(others, ", "), down.Body)
	}
	got, err := d.requests(demoRequests)
	if err != nil {
		return err
	}
	d.lb.spreadDown = countsString(got, d.lbNames())
	d.s.say("c1 makes %d requests: none fails, answered by %s", demoRequests, d.lb.spreadDown)
	if rest := d.lbUp(); !evenSpread(got, rest, demoRequests) {
		return fmt.Errorf("%d requests with %s down went %s, want %d each over %s", demoRequests, down.Body, d.lb.spreadDown,
			demoRequests/len(rest), strings.Join(rest, ", "))
	}
	return nil
}

// lbUp names the real servers still serving.
func (d *demo) lbUp() []string {
	var names []string
	for _, rs := range d.lb.reals {
		if rs.Serving() {
			names = append(names, rs.Body)
		}
	}
	return names
}

func realStatus(vs *haav1.VirtualServerStatus, a netip.AddrPort) *haav1.RealServerStatus {
	for _, rs := range vs.GetRealServers() {
		if rs.GetAddress() == a.String() {
			return rs
		}
	}
	return nil
}

// reqResult is one request of the failover loop.
type reqResult struct {
	start, end time.Time
	body       string
	err        error
}

// requestLoop starts a request every demoRequestEvery (or as soon as the
// previous one ends, when it takes longer) until stop is closed.
func (d *demo) requestLoop(stop <-chan struct{}) <-chan []reqResult {
	out := make(chan []reqResult, 1)
	go func() {
		var rs []reqResult
		for {
			select {
			case <-stop:
				out <- rs
				return
			default:
			}
			t0 := time.Now()
			body, err := d.get(demoRequestTimeout)
			rs = append(rs, reqResult{start: t0, end: time.Now(), body: body, err: err})
			time.Sleep(time.Until(t0.Add(demoRequestEvery)))
		}
	}()
	return out
}

// requestOutage is the longest time without a successful request across
// at: from the end of the last success before the first failure at or
// after at, to the end of the next success. It also counts the failures.
func requestOutage(rs []reqResult, at time.Time) (outage time.Duration, failed int) {
	var last time.Time
	for _, r := range rs {
		if r.err != nil {
			failed++
			continue
		}
		if !last.IsZero() && r.end.After(at) {
			outage = max(outage, r.end.Sub(last))
		}
		last = r.end
	}
	return outage, failed
}

func (d *demo) lbFailover() error {
	m, err := d.master()
	if err != nil {
		return err
	}
	p := d.procs[m]
	if p == nil || p.Exited() {
		return fmt.Errorf("%s holds %s but its haad is not running", m.Name, demoVIP)
	}
	stop := make(chan struct{})
	results := d.requestLoop(stop)
	finish := func() []reqResult {
		if stop != nil {
			close(stop)
			stop = nil
		}
		return <-results
	}
	defer func() {
		if stop != nil {
			finish()
		}
	}()
	if err := d.s.sleep(300 * time.Millisecond); err != nil {
		return err
	}
	d.s.say("powering off %s, the master director (link down, haad SIGKILLed), while c1 starts a request every %v (%v timeout each)",
		m.Name, demoRequestEvery, demoRequestTimeout)
	at := time.Now()
	if err := lab.PowerOff(m, p); err != nil {
		return err
	}
	var next *lab.Node
	err = lab.Poll(5*time.Second, 10*time.Millisecond, "a new master of "+demoVIP.String(), func() (bool, error) {
		hs, err := d.l.Holders(demoVIP)
		if err != nil {
			return false, err
		}
		for _, h := range hs {
			if h != m {
				next = h
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	if hs, err := d.l.Holders(demoGW); err != nil || len(hs) != 1 || hs[0] != next {
		return errors.Join(err, fmt.Errorf("the real servers' gateway %s is held by %s, want %s", demoGW, lab.Names(hs), next.Name))
	}
	// Let the requests go on through the new master for a while.
	if err := d.s.sleep(time.Second); err != nil {
		return err
	}
	rs := finish()
	outage, failed := requestOutage(rs, at)
	after := map[string]int{}
	var lastErr error
	ok := 0
	for _, r := range rs {
		switch {
		case r.err != nil:
			lastErr = r.err
		case r.start.After(at):
			after[r.body]++
			ok++
		}
	}
	if ok == 0 {
		return fmt.Errorf("no request succeeded after the power-off of %s (%d failed, last: %v)", m.Name, failed, lastErr)
	}
	d.lb.outage, d.lb.failed, d.lb.sent, d.lb.from, d.lb.to = outage, failed, len(rs), m.Name, next.Name
	d.s.say("%s took over both VIPs; c1's requests got no answer for %s (%d of %d failed: the VRRP failover, bound %s, and requests sent to %s given up after %v each), then went on through %s: %s",
		next.Name, ms(outage), failed, len(rs), ms(bound(3, prioOf(next), demoInterval)), m.Name, demoRequestTimeout, next.Name, countsString(after, d.lbNames()))
	got, err := d.requests(demoRequests)
	if err != nil {
		return err
	}
	d.s.say("c1 makes %d requests through %s: none fails, answered by %s", demoRequests, next.Name, countsString(got, d.lbNames()))
	if rest := d.lbUp(); !evenSpread(got, rest, demoRequests) {
		return fmt.Errorf("%d requests through %s went %s, want %d each over %s", demoRequests, next.Name,
			countsString(got, d.lbNames()), demoRequests/len(rest), strings.Join(rest, ", "))
	}
	return nil
}

// prioOf is a node's VRRP priority in the demo.
func prioOf(n *lab.Node) int {
	for i, x := range []string{"n1", "n2", "n3"} {
		if n.Name == x {
			return demoPriorities[i]
		}
	}
	return 0
}
