package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// fleetPeersDoc is a unicast pair whose peers come from gossip; lb3 runs
// the instance too when with3.
func fleetPeersDoc(with3 bool) string {
	prios := "{lb1: 200, lb2: 100}"
	if with3 {
		prios = "{lb1: 200, lb2: 100, lb3: 50}"
	}
	return fmt.Sprintf(`kind: Fleet
nodes: [lb1, lb2, lb3]
instances:
  - name: VI_1
    interface: eth0
    vrid: 51
    advertInterval: 1s
    vips: ["192.168.55.140/24"]
    unicastPeersFromFleet: true
    priorities: %s
`, prios)
}

// Unicast peers from gossip: the pair sends its adverts by unicast to the
// fleet members that run the instance, with no per-node list; a third
// node that starts running it is added to the master's destinations in
// place (it follows the master from the start: never master itself), and
// removed when its haad leaves the fleet; neither change makes lb1 or lb2
// change state.
func TestFleetUnicastPeersFromGossip(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 3)
	lb1, lb2, lb3 := f.lab.Nodes[0], f.lab.Nodes[1], f.lab.Nodes[2]
	instance := func(n *lab.Node) *haav1.InstanceStatus {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := f.api(n).GetInstance(ctx, &haav1.GetInstanceRequest{Name: "VI_1"})
		if err != nil {
			return nil
		}
		return resp.GetInstance()
	}
	peers := func(n *lab.Node) []string {
		in := instance(n)
		return in.GetUnicastPeers()
	}
	waitPeers := func(n *lab.Node, want ...*lab.Node) {
		t.Helper()
		var ws []string
		for _, w := range want {
			ws = append(ws, w.Addr.String())
		}
		if err := lab.Poll(10*time.Second, 50*time.Millisecond, fmt.Sprintf("%s's unicast peers %v", n.Name, ws), func() (bool, error) {
			return slices.Equal(peers(n), ws), nil
		}); err != nil {
			t.Fatalf("%v: it has %v", err, peers(n))
		}
	}

	if out, code := f.haactl(lb1, "apply", "-f", f.writeDoc("fleet.yaml", fleetPeersDoc(false))); code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	waitPeers(lb1, lb2)
	waitPeers(lb2, lb1)
	f.waitHolder(vip140, lb1, 10*time.Second)
	// lb2 follows lb1: it hears lb1's unicast adverts.
	if err := lab.Poll(10*time.Second, 50*time.Millisecond, "lb2 BACKUP", func() (bool, error) {
		return instance(lb2).GetState() == haav1.State_STATE_BACKUP, nil
	}); err != nil {
		t.Fatal(err)
	}
	if in := instance(lb1); !in.GetUnicastPeersFromFleet() || in.GetState() != haav1.State_STATE_MASTER {
		t.Fatalf("lb1: %v", in)
	}
	out, _ := f.haactl(lb1, "describe", "instance", "VI_1")
	t.Logf("haactl describe instance VI_1 (lb1):\n%s", out)
	since1, since2 := instance(lb1).GetLastTransition().GetTime().AsTime(), instance(lb2).GetLastTransition().GetTime().AsTime()

	// lb3 joins the virtual router.
	if out, code := f.haactl(lb1, "apply", "-f", f.writeDoc("fleet.yaml", fleetPeersDoc(true))); code != 0 {
		t.Fatalf("apply with lb3: exit %d\n%s", code, out)
	}
	waitPeers(lb1, lb2, lb3)
	waitPeers(lb3, lb1, lb2)
	// Well past lb3's master-down interval (3 x 1 s + skew).
	f.stableHolder(vip140, lb1, 5*time.Second)
	in3 := instance(lb3)
	if in3.GetState() != haav1.State_STATE_BACKUP || in3.GetLastTransition().GetFrom() != haav1.State_STATE_INIT {
		t.Fatalf("lb3 is %v, last transition %v: it should follow lb1 from the start", in3.GetState(), in3.GetLastTransition())
	}
	if in := instance(lb3); in.GetMasterAddress() != lb1.Addr.String() {
		t.Fatalf("lb3 follows %q, want lb1", in.GetMasterAddress())
	}

	// lb3 leaves the fleet (its haad stops: gossip's leave).
	if err := f.procs[lb3].Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitPeers(lb1, lb2)
	waitPeers(lb2, lb1)
	f.stableHolder(vip140, lb1, 2*time.Second)
	for n, since := range map[*lab.Node]time.Time{lb1: since1, lb2: since2} {
		if got := instance(n).GetLastTransition().GetTime().AsTime(); !got.Equal(since) {
			t.Errorf("%s changed state at %v while lb3 joined and left", n.Name, got)
		}
	}
}
