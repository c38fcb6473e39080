package main

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
)

// Two LVS-NAT directors and three real servers from one fleet document:
// the VRRP pair holds the VIP, both directors program the virtual server,
// and the real servers answer through the VIP (their route back to the
// client is the VIP: whoever holds it). A client opens a connection every
// 50 ms while the master is powered off: requests fail only between the
// power-off and the backup's takeover (plus one request's grace), none
// after.
func TestFleetDirectorFailoverWithTraffic(t *testing.T) {
	t.Parallel()
	f := newFleetClients(t, 2, 4)
	lb1, lb2 := f.lab.Nodes[0], f.lab.Nodes[1]
	user := f.lab.Clients[0]
	for _, d := range []*lab.Node{lb1, lb2} {
		for _, kv := range [][2]string{{"net/ipv4/ip_forward", "1"}, {"net/ipv4/conf/all/send_redirects", "0"},
			{"net/ipv4/conf/eth0/send_redirects", "0"}} {
			if err := d.WriteSysctl(kv[0], kv[1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	var reals []string
	for i, n := range f.lab.Clients[1:] {
		if err := n.AddRoute(netip.PrefixFrom(user.Addr, 32), vip140); err != nil {
			t.Fatal(err)
		}
		if err := n.WriteSysctl("net/ipv4/conf/all/accept_redirects", "0"); err != nil {
			t.Fatal(err)
		}
		r := newRealServer(t, n, fmt.Sprintf("rs%d", i+1))
		reals = append(reals, fmt.Sprintf("{address: %q}", r.Addr().String()))
	}
	doc := fmt.Sprintf(`kind: Fleet
nodes: [lb1, lb2]
instances:
  - {name: VI_1, interface: eth0, vrid: 51, advertInterval: 100ms, vips: ["%s/24"], priorities: {lb1: 200, lb2: 100}}
virtualServers:
  - name: web
    address: "%s:80"
    scheduler: rr
    check: {tcp: {}, interval: 1s, timeout: 1s}
    realServers: [%s]
`, vip140, vip140, strings.Join(reals, ", "))
	if out, code := f.haactl(lb1, "apply", "-f", f.writeDoc("fleet.yaml", doc), "--wait"); code != 0 {
		t.Fatalf("apply --wait: exit %d\n%s", code, out)
	}
	f.waitHolder(vip140, lb1, 10*time.Second)
	url := fmt.Sprintf("http://%s/", netip.AddrPortFrom(vip140, 80))
	got := newClient(user).spread(t, url, 6)
	if got["rs1"] != 2 || got["rs2"] != 2 || got["rs3"] != 2 {
		t.Fatalf("round robin through lb1: %v, want 2 each", got)
	}

	pr := startProber(t, newClient(user), url, 50*time.Millisecond)
	time.Sleep(time.Second)
	off := time.Now()
	if err := lb1.LinkDown(); err != nil { // its power cable pulled
		t.Fatal(err)
	}
	f.waitHolder(vip140, lb2, 5*time.Second)
	took := time.Now()
	time.Sleep(2 * time.Second)
	ps := pr.Stop()
	// A request that started just before the takeover may still have gone
	// to lb1: 150 ms of grace.
	n, outside, first := failed(ps, off, took.Add(150*time.Millisecond))
	var slowest time.Duration
	for _, p := range ps {
		slowest = max(slowest, p.end.Sub(p.at))
	}
	// A connection whose SYN went to the powered-off director is retried
	// by the client's TCP after 1 s, then answered through lb2.
	t.Logf("director failover: lb2 held the VIP %v after the power-off; %d of %d requests failed (none allowed outside the failover); slowest request %v",
		took.Sub(off).Round(time.Millisecond), n, len(ps), slowest.Round(time.Millisecond))
	if outside > 0 {
		t.Fatalf("%d requests failed outside the failover (first: %v)", outside, first)
	}
	if len(ps) < 40 {
		t.Fatalf("only %d requests in 3 s", len(ps))
	}
	if bound := 1500 * time.Millisecond; took.Sub(off) > bound {
		t.Fatalf("lb2 took the VIP %v after lb1's power-off, want within %v (master-down 360 ms at 100 ms adverts)", took.Sub(off), bound)
	}
	got = newClient(user).spread(t, url, 6)
	if got["rs1"] != 2 || got["rs2"] != 2 || got["rs3"] != 2 {
		t.Fatalf("round robin through lb2: %v, want 2 each", got)
	}
}
