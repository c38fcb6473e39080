package lvs_test

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/haa-dev/haa/node/lvs"
	"github.com/haa-dev/haa/node/lvs/lvstest"
)

// copyKeepNil deep-copies s, nil entries included.
func copyKeepNil(s lvs.State) lvs.State {
	if s == nil {
		return nil
	}
	c := lvs.State{}
	for k, vs := range s {
		if vs == nil {
			c[k] = nil
			continue
		}
		c[k] = vs.Clone()
	}
	return c
}

func TestDiff(t *testing.T) {
	a := lvstest.TCPKey("10.0.0.1:80")
	b := lvstest.TCPKey("10.0.0.2:80")
	c := lvstest.TCPKey("10.0.0.10:443") // sorts between a and b as a string
	fw := lvs.Key{FWMark: 7}
	tests := []struct {
		name            string
		actual, desired lvs.State
		want            []string
	}{
		{"both empty", nil, lvs.State{}, nil},
		{"no change", lvstest.StateOf(lvstest.VS(a, "wrr", "10.1.0.1:80=1")), lvstest.StateOf(lvstest.VS(a, "wrr", "10.1.0.1:80=1")), nil},
		{"empty to N", nil, lvstest.StateOf(
			lvstest.VS(b, "rr", "10.1.0.2:80=1", "10.1.0.1:80=2"),
			lvstest.VS(a, "wrr", "10.1.0.3:80=3"),
			lvstest.VS(c, "sh"),
		), []string{
			"add-service 10.0.0.10:443/tcp", // "10.0.0.10" < "10.0.0.1:"
			"add-service 10.0.0.1:80/tcp",
			"add-service 10.0.0.2:80/tcp",
			"add-dest 10.0.0.1:80/tcp 10.1.0.3:80 weight 3",
			"add-dest 10.0.0.2:80/tcp 10.1.0.1:80 weight 2",
			"add-dest 10.0.0.2:80/tcp 10.1.0.2:80 weight 1",
		}},
		{"N to empty", lvstest.StateOf(
			lvstest.VS(b, "rr", "10.1.0.2:80=1"),
			lvstest.VS(a, "wrr", "10.1.0.3:80=3"),
		), nil, []string{
			"delete-service 10.0.0.1:80/tcp",
			"delete-service 10.0.0.2:80/tcp",
		}},
		{"weight change touches one op",
			lvstest.StateOf(lvstest.VS(a, "wrr", "10.1.0.1:80=1", "10.1.0.2:80=1"), lvstest.VS(b, "wrr", "10.1.0.1:80=1")),
			lvstest.StateOf(lvstest.VS(a, "wrr", "10.1.0.1:80=1", "10.1.0.2:80=5"), lvstest.VS(b, "wrr", "10.1.0.1:80=1")),
			[]string{"update-dest 10.0.0.1:80/tcp 10.1.0.2:80 weight 5"}},
		{"weight to zero is an update",
			lvstest.StateOf(lvstest.VS(a, "wrr", "10.1.0.1:80=1")),
			lvstest.StateOf(lvstest.VS(a, "wrr", "10.1.0.1:80=0")),
			[]string{"update-dest 10.0.0.1:80/tcp 10.1.0.1:80 weight 0"}},
		{"scheduler change is one update-service",
			lvstest.StateOf(lvstest.VS(a, "wrr", "10.1.0.1:80=1", "10.1.0.2:80=1")),
			lvstest.StateOf(lvstest.VS(a, "sh", "10.1.0.1:80=1", "10.1.0.2:80=1")),
			[]string{"update-service 10.0.0.1:80/tcp"}},
		{"dest add, remove and update in order",
			lvstest.StateOf(lvstest.VS(a, "wrr", "10.1.0.1:80=1", "10.1.0.2:80=1", "10.1.0.3:80=1")),
			lvstest.StateOf(lvstest.VS(a, "wrr", "10.1.0.4:80=1", "10.1.0.2:80=3", "10.1.0.0:80=1")),
			[]string{
				"delete-dest 10.0.0.1:80/tcp 10.1.0.1:80 weight 1",
				"delete-dest 10.0.0.1:80/tcp 10.1.0.3:80 weight 1",
				"update-dest 10.0.0.1:80/tcp 10.1.0.2:80 weight 3",
				"add-dest 10.0.0.1:80/tcp 10.1.0.0:80 weight 1",
				"add-dest 10.0.0.1:80/tcp 10.1.0.4:80 weight 1",
			}},
		{"removals first across services",
			lvstest.StateOf(lvstest.VS(a, "wrr", "10.1.0.9:80=1"), lvstest.VS(b, "wrr")),
			lvstest.StateOf(lvstest.VS(c, "wrr", "10.1.0.9:80=1"), lvstest.VS(b, "wrr", "10.1.0.9:80=2")),
			[]string{
				"delete-service 10.0.0.1:80/tcp",
				"add-service 10.0.0.10:443/tcp",
				"add-dest 10.0.0.10:443/tcp 10.1.0.9:80 weight 1",
				"add-dest 10.0.0.2:80/tcp 10.1.0.9:80 weight 2",
			}},
		{"fwmark and persistence",
			lvstest.StateOf(lvstest.VS(fw, "sh", "10.1.0.1:80=1")),
			func() lvs.State {
				vs := lvstest.VS(fw, "sh", "10.1.0.1:80=1")
				vs.Persistence = time.Minute
				return lvstest.StateOf(vs)
			}(),
			[]string{"update-service fwmark:7"}},
		{"nil entries are absent",
			lvs.State{a: nil},
			lvs.State{b: nil, c: lvstest.VS(c, "rr")},
			[]string{"add-service 10.0.0.10:443/tcp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			actualCopy := copyKeepNil(tt.actual)
			desiredCopy := copyKeepNil(tt.desired)
			got := lvs.Diff(tt.actual, tt.desired).Strings()
			if len(got) == 0 {
				got = nil
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Diff:\n got %q\nwant %q", got, tt.want)
			}
			if !reflect.DeepEqual(tt.actual, actualCopy) || !reflect.DeepEqual(tt.desired, desiredCopy) {
				t.Fatal("Diff changed its inputs")
			}
			// Deterministic.
			for range 5 {
				if again := lvs.Diff(tt.actual, tt.desired).Strings(); !reflect.DeepEqual(again, lvs.Diff(tt.actual, tt.desired).Strings()) {
					t.Fatalf("Diff is not deterministic: %q", again)
				}
			}
			// Applying the plan to actual yields desired.
			s := tt.actual.Clone()
			if s == nil {
				s = lvs.State{}
			}
			lvs.Apply(s, lvs.Diff(tt.actual, tt.desired))
			if !s.Equal(tt.desired.Clone()) {
				t.Fatalf("Apply(actual, lvs.Diff) = %v, want %v", s.String(), tt.desired.String())
			}
			// And then nothing is left to do.
			if p := lvs.Diff(s, tt.desired); len(p) != 0 {
				t.Fatalf("Diff after Apply: %q", p.Strings())
			}
		})
	}
}

func TestDiffOpServices(t *testing.T) {
	a := lvstest.TCPKey("10.0.0.1:80")
	actual := lvstest.StateOf(lvstest.VS(a, "wrr", "10.1.0.1:80=1"))
	desired := lvstest.StateOf(lvstest.VS(a, "sh", "10.1.0.2:80=1"))
	// The Service of a dest op is that of the side it comes from, and the
	// map key wins over an inconsistent Service.Key.
	desired[a].Key = lvstest.TCPKey("10.9.9.9:1")
	p := lvs.Diff(actual, desired)
	if len(p) != 3 {
		t.Fatalf("plan %q", p.Strings())
	}
	if p[0].Kind != lvs.DeleteDest || p[0].Service.Scheduler != "wrr" || p[0].Service.Key != a {
		t.Fatalf("delete-dest op %+v", p[0])
	}
	for _, op := range p[1:] {
		if op.Service.Scheduler != "sh" || op.Service.Key != a {
			t.Fatalf("op %+v", op)
		}
	}
}

func TestApplyLenient(t *testing.T) {
	a := lvstest.TCPKey("10.0.0.1:80")
	svc := lvs.Service{Key: a, Scheduler: "rr"}
	d1 := netip.MustParseAddrPort("10.1.0.1:80")
	s := lvs.State{}
	lvs.Apply(s, lvs.Plan{
		{Kind: lvs.AddDest, Service: svc, Dest: lvs.Dest{Addr: d1, DestAttrs: lvs.DestAttrs{Weight: 2}}}, // creates the service
		{Kind: lvs.AddService, Service: lvs.Service{Key: a, Scheduler: "wrr"}},                           // keeps the dests
		{Kind: lvs.DeleteDest, Service: svc, Dest: lvs.Dest{Addr: netip.MustParseAddrPort("10.1.0.9:80")}},
		{Kind: lvs.DeleteService, Service: lvs.Service{Key: lvstest.TCPKey("10.0.0.9:80")}},
	})
	want := lvstest.StateOf(lvstest.VS(a, "wrr", "10.1.0.1:80=2"))
	if !s.Equal(want) {
		t.Fatalf("got %v want %v", s.String(), want.String())
	}
	lvs.Apply(s, lvs.Plan{{Kind: lvs.DeleteService, Service: svc}})
	if len(s) != 0 {
		t.Fatalf("not deleted: %v", s.String())
	}
}

func TestClone(t *testing.T) {
	a := lvstest.TCPKey("10.0.0.1:80")
	s := lvstest.StateOf(lvstest.VS(a, "wrr", "10.1.0.1:80=1"))
	s[lvstest.TCPKey("10.0.0.2:80")] = nil
	c := s.Clone()
	if len(c) != 1 {
		t.Fatalf("clone %v", c.String())
	}
	c[a].Dests[netip.MustParseAddrPort("10.1.0.1:80")] = lvs.DestAttrs{Weight: 9}
	c[a].Scheduler = "rr"
	if s[a].Dests[netip.MustParseAddrPort("10.1.0.1:80")].Weight != 1 || s[a].Scheduler != "wrr" {
		t.Fatal("clone shares data with the original")
	}
	if lvs.State(nil).Clone() != nil {
		t.Fatal("nil clone")
	}
	if (lvs.State{a: {}}).Clone()[a].Dests == nil {
		t.Fatal("clone leaves a nil Dests map")
	}
}

// TestDiffLarge checks the plan of a big table and that a single weight
// change stays a single op (the lead diffs 10,000 services on every check
// result).
func TestDiffLarge(t *testing.T) {
	desired := lvstest.BigState(2000, 5)
	p := lvs.Diff(nil, desired)
	if want := 2000 * 6; len(p) != want {
		t.Fatalf("plan of %d ops, want %d", len(p), want)
	}
	s := lvs.State{}
	lvs.Apply(s, p)
	if !s.Equal(desired) {
		t.Fatal("Apply(empty, lvs.Diff) != desired")
	}
	changed := desired.Clone()
	for _, vs := range changed {
		for addr := range vs.Dests {
			vs.Dests[addr] = lvs.DestAttrs{Weight: 7}
			break
		}
		break
	}
	if p := lvs.Diff(s, changed); len(p) != 1 || p[0].Kind != lvs.UpdateDest {
		t.Fatalf("one weight change: %q", p.Strings())
	}
}

// BenchmarkDiffOneChange diffs 10,000 services of 5 real servers with one
// weight changed.
func BenchmarkDiffOneChange(b *testing.B) {
	actual := lvstest.BigState(10000, 5)
	desired := actual.Clone()
	for _, vs := range desired {
		for addr := range vs.Dests {
			vs.Dests[addr] = lvs.DestAttrs{Weight: 100}
			break
		}
		break
	}
	b.ResetTimer()
	for b.Loop() {
		if p := lvs.Diff(actual, desired); len(p) != 1 {
			b.Fatal(len(p))
		}
	}
}

// BenchmarkDiffFromEmpty diffs 10,000 services of 5 real servers from
// nothing.
func BenchmarkDiffFromEmpty(b *testing.B) {
	desired := lvstest.BigState(10000, 5)
	for b.Loop() {
		lvs.Diff(nil, desired)
	}
}

// TestAdoptPlansOnlyWhatDiffers: a service a plan adds but the kernel
// holds is taken to what the plan builds with only the ops that differ.
func TestAdoptPlansOnlyWhatDiffers(t *testing.T) {
	k := lvstest.TCPKey("10.0.0.1:80")
	have := lvstest.VS(k, "rr", "10.1.0.1:80=1", "10.1.0.2:80=5", "10.1.0.4:80=1")
	want := lvstest.VS(k, "wrr", "10.1.0.2:80=2", "10.1.0.3:80=1", "10.1.0.4:80=1")
	p := lvs.Diff(nil, lvstest.StateOf(want)) // the plan from nothing
	var adds []lvs.Dest
	for _, op := range p[1:] {
		adds = append(adds, op.Dest)
	}
	got := lvs.Adopt(have, p[0].Service, adds).Strings()
	wantPlan := []string{
		"delete-dest 10.0.0.1:80/tcp 10.1.0.1:80 weight 1",
		"update-service 10.0.0.1:80/tcp",
		"update-dest 10.0.0.1:80/tcp 10.1.0.2:80 weight 2",
		"add-dest 10.0.0.1:80/tcp 10.1.0.3:80 weight 1",
	}
	if !reflect.DeepEqual(got, wantPlan) {
		t.Fatalf("Adopt:\n got %q\nwant %q", got, wantPlan)
	}
}

// TestDiffThresholdsHaadDoesNotSet: thresholds the configuration does not
// set are not haad's: a table read from the kernel with ipvsadm's needs no
// op, a weight change carries them unset (the backend keeps the kernel's),
// and thresholds haad set and no longer wants are cleared.
func TestDiffThresholdsHaadDoesNotSet(t *testing.T) {
	k := lvstest.TCPKey("10.0.0.1:80")
	a := netip.MustParseAddrPort("10.1.0.1:80")
	vs := func(d lvs.DestAttrs) lvs.State {
		v := lvstest.VS(k, "wrr")
		v.Dests[a] = d
		return lvstest.StateOf(v)
	}
	ipvsadm := lvs.Thresholds{Upper: 100, Lower: 50} // as Read gives them
	mine := lvs.Thresholds{Upper: 100, Lower: 50, Set: true}
	for _, tt := range []struct {
		name          string
		actual, want  lvs.DestAttrs
		plan          []string
		thresholdsSet bool
	}{
		{"others' thresholds stay", lvs.DestAttrs{Weight: 1, Thresholds: ipvsadm}, lvs.DestAttrs{Weight: 1}, nil, false},
		{"a weight change leaves them to the backend", lvs.DestAttrs{Weight: 1, Thresholds: ipvsadm}, lvs.DestAttrs{Weight: 0},
			[]string{"update-dest 10.0.0.1:80/tcp 10.1.0.1:80 weight 0"}, false},
		{"haad's, read back the same", lvs.DestAttrs{Weight: 1, Thresholds: ipvsadm}, lvs.DestAttrs{Weight: 1, Thresholds: mine}, nil, true},
		{"haad's, changed", lvs.DestAttrs{Weight: 1, Thresholds: mine}, lvs.DestAttrs{Weight: 1, Thresholds: lvs.Thresholds{Upper: 10, Set: true}},
			[]string{"update-dest 10.0.0.1:80/tcp 10.1.0.1:80 weight 1 thresholds 10/0"}, true},
		{"haad's, no longer wanted: cleared", lvs.DestAttrs{Weight: 1, Thresholds: mine}, lvs.DestAttrs{Weight: 1},
			[]string{"update-dest 10.0.0.1:80/tcp 10.1.0.1:80 weight 1 thresholds 0/0"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := lvs.Diff(vs(tt.actual), vs(tt.want))
			if got := p.Strings(); !reflect.DeepEqual(got, tt.plan) && (len(got) != 0 || tt.plan != nil) {
				t.Fatalf("plan %q, want %q", got, tt.plan)
			}
			if len(p) == 1 && p[0].Dest.Thresholds.Set != tt.thresholdsSet {
				t.Errorf("the update sets thresholds: %v, want %v", p[0].Dest.Thresholds.Set, tt.thresholdsSet)
			}
			s := vs(tt.actual)
			lvs.Apply(s, p)
			if again := lvs.Diff(s, vs(tt.want)); len(again) != 0 {
				t.Errorf("plan after the plan: %q", again.Strings())
			}
		})
	}
}
