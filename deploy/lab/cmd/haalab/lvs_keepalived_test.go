package main

import (
	"strings"
	"testing"

	"github.com/haa-dev/haa/node/keepalived"
)

func TestParseIPVS(t *testing.T) {
	text := `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  0A010000:0050 wrr 
  -> 0AC80001:1F90      Masq    1      0          0         
  -> 0AC80002:1F90      Masq    2      0          0         
FWM  00000007 rr 
`
	got, err := parseIPVS(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := kaTable{"TCP 0A010000:0050": {"0AC80001:1F90": 1, "0AC80002:1F90": 2}, "FWM 00000007": {}}
	if !got.equal(want) || got.dests() != 2 {
		t.Errorf("parsed %v", got)
	}
}

// TestKAScenario: the benchmark's file is what haad's converter reads as
// the table the benchmark waits for, at every step.
func TestKAScenario(t *testing.T) {
	sc := kaScenario{services: 30, dests: 5}
	sc.weight = map[[2]int]int{{15, 1}: 9}
	sc.moved = map[[2]int]bool{{0, 0}: true, {20, 4}: true}
	cfg, probs, err := keepalived.Parse("bench.conf", []byte(sc.conf()), t.TempDir(), keepalived.Options{})
	if err != nil || len(probs) != 0 {
		t.Fatalf("%v %v", err, probs)
	}
	tab := sc.table()
	if len(cfg.GetVirtualServers()) != 30 || len(tab) != 30 || tab.dests() != 150 {
		t.Fatalf("%d virtual servers, table %d/%d", len(cfg.GetVirtualServers()), len(tab), tab.dests())
	}
	for _, vs := range cfg.GetVirtualServers() {
		for _, rs := range vs.GetRealServers() {
			if rs.GetAddress() == movedReal(15, 1, 5).String() || rs.GetAddress() == lvsReal(0, 0, 5).String() {
				t.Errorf("real server %s should not be there", rs.GetAddress())
			}
		}
	}
	if w := tab["TCP "+hexAddrPort(lvsVIP(15))][hexAddrPort(lvsReal(15, 1, 5))]; w != 9 {
		t.Errorf("the changed weight is %d", w)
	}
	if _, ok := tab["TCP "+hexAddrPort(lvsVIP(0))][hexAddrPort(movedReal(0, 0, 5))]; !ok {
		t.Error("the moved real server is not in the table")
	}
}
