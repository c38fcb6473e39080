package main

// The kernel's load-balancing table as the tests read it: through the
// backend haad uses (IPVS over netlink, or the nftables table haa_lvs),
// never through haad's own view.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/haa-dev/haa/deploy/lab"
	"github.com/haa-dev/haa/node/lvs"
	"github.com/haa-dev/haa/node/lvs/ipvs"
	"github.com/haa-dev/haa/node/lvs/nft"
)

// kernelVS is a virtual server as the kernel's table holds it.
type kernelVS struct {
	Sched   string
	Fwd     string
	Persist time.Duration
	Dests   map[string]int // weight by real server "ADDR:PORT"
}

// kernelTable is a namespace's load-balancing table, by "ADDR:PORT/PROTO".
type kernelTable map[string]kernelVS

// fromState is the test's view of a backend's table.
func fromState(st lvs.State) kernelTable {
	kt := kernelTable{}
	for k, vs := range st {
		d := map[string]int{}
		for a, da := range vs.Dests {
			d[a.String()] = da.Weight
		}
		kt[k.String()] = kernelVS{Sched: vs.Scheduler, Fwd: vs.Forwarding.String(), Persist: vs.Persistence, Dests: d}
	}
	return kt
}

func (kt kernelTable) equal(o kernelTable) bool {
	return maps.EqualFunc(kt, o, func(a, b kernelVS) bool {
		return a.Sched == b.Sched && a.Fwd == b.Fwd && a.Persist == b.Persist && maps.Equal(a.Dests, b.Dests)
	})
}

func (kt kernelTable) String() string {
	if len(kt) == 0 {
		return "(empty)"
	}
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(kt)) {
		vs := kt[k]
		s := fmt.Sprintf("%s %s %s", k, vs.Sched, vs.Fwd)
		if vs.Persist > 0 {
			s += " persistent " + vs.Persist.String()
		}
		for _, d := range slices.Sorted(maps.Keys(vs.Dests)) {
			s += fmt.Sprintf(" %s=%d", d, vs.Dests[d])
		}
		lines = append(lines, s)
	}
	return strings.Join(lines, "; ")
}

// tableReader reads a namespace's table through the backend haad uses
// there: ipvs (a netlink socket in the namespace) or nftables (its haa_lvs
// table, read without touching it).
type tableReader struct {
	backend string
	read    func(context.Context) (lvs.State, error)
}

func openTable(t *testing.T, n *lab.Node, backend string) *tableReader {
	t.Helper()
	switch backend {
	case "ipvs":
		b, err := ipvs.New(ipvs.WithNetNS("/run/netns/" + n.NS.Name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return &tableReader{backend: backend, read: b.Read}
	case "nftables":
		h, err := netns.GetFromName(n.NS.Name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return &tableReader{backend: backend, read: func(ctx context.Context) (lvs.State, error) {
			return nft.Inspect(ctx, nft.WithNetNS(int(h)))
		}}
	}
	t.Fatalf("no table reader for the backend %q", backend)
	return nil
}

func (r *tableReader) get(t *testing.T) kernelTable {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := r.read(ctx)
	if err != nil {
		t.Fatalf("reading the %s table: %v", r.backend, err)
	}
	return fromState(st)
}

// wait polls the table every 10 ms until it is want, for timeout at most,
// and returns when it saw it. A read that fails is tried again: the
// kernel holds IPVS's lock while it loads a scheduler's module for the
// agent (seconds under the VM's emulation).
func (r *tableReader) wait(t *testing.T, what string, want kernelTable, timeout time.Duration) time.Time {
	t.Helper()
	var got kernelTable
	var seen time.Time
	var rerr error
	err := lab.Poll(timeout, 10*time.Millisecond, what, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		st, err := r.read(ctx)
		if rerr = err; err != nil {
			return false, nil
		}
		got, seen = fromState(st), time.Now()
		return got.equal(want), nil
	})
	if err != nil {
		t.Fatalf("%v (last read error: %v):\n got  %s\n want %s", err, rerr, got, want)
	}
	return seen
}
