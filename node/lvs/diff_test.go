package lvs

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func tcpKey(s string) Key {
	return Key{Addr: netip.MustParseAddrPort(s), Proto: TCP}
}

// vsOf builds a virtual server: dests as "addr:port=weight".
func vsOf(k Key, sched string, dests ...string) *VirtualServer {
	vs := &VirtualServer{Service: Service{Key: k, Scheduler: sched, Forwarding: NAT}, Dests: map[netip.AddrPort]int{}}
	for _, d := range dests {
		addr, w, _ := strings.Cut(d, "=")
		var weight int
		if _, err := fmt.Sscan(w, &weight); err != nil {
			panic(d)
		}
		vs.Dests[netip.MustParseAddrPort(addr)] = weight
	}
	return vs
}

func stateOf(vss ...*VirtualServer) State {
	s := State{}
	for _, vs := range vss {
		s[vs.Key] = vs
	}
	return s
}

// statesEqual compares two tables, a nil and an empty Dests map alike.
func statesEqual(a, b State) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok || (va == nil) != (vb == nil) {
			return false
		}
		if va == nil {
			continue
		}
		if va.Service != vb.Service || len(va.Dests) != len(vb.Dests) {
			return false
		}
		for addr, w := range va.Dests {
			if wb, ok := vb.Dests[addr]; !ok || wb != w {
				return false
			}
		}
	}
	return true
}

// copyKeepNil deep-copies s, nil entries included.
func copyKeepNil(s State) State {
	if s == nil {
		return nil
	}
	c := State{}
	for k, vs := range s {
		if vs == nil {
			c[k] = nil
			continue
		}
		c[k] = cloneVS(vs)
	}
	return c
}

func planStrings(p Plan) []string {
	out := make([]string, len(p))
	for i, op := range p {
		out[i] = op.String()
	}
	return out
}

func TestDiff(t *testing.T) {
	a := tcpKey("10.0.0.1:80")
	b := tcpKey("10.0.0.2:80")
	c := tcpKey("10.0.0.10:443") // sorts between a and b as a string
	fw := Key{FWMark: 7}
	tests := []struct {
		name            string
		actual, desired State
		want            []string
	}{
		{"both empty", nil, State{}, nil},
		{"no change", stateOf(vsOf(a, "wrr", "10.1.0.1:80=1")), stateOf(vsOf(a, "wrr", "10.1.0.1:80=1")), nil},
		{"empty to N", nil, stateOf(
			vsOf(b, "rr", "10.1.0.2:80=1", "10.1.0.1:80=2"),
			vsOf(a, "wrr", "10.1.0.3:80=3"),
			vsOf(c, "sh"),
		), []string{
			"add-service 10.0.0.10:443/tcp", // "10.0.0.10" < "10.0.0.1:"
			"add-service 10.0.0.1:80/tcp",
			"add-service 10.0.0.2:80/tcp",
			"add-dest 10.0.0.1:80/tcp 10.1.0.3:80 weight 3",
			"add-dest 10.0.0.2:80/tcp 10.1.0.1:80 weight 2",
			"add-dest 10.0.0.2:80/tcp 10.1.0.2:80 weight 1",
		}},
		{"N to empty", stateOf(
			vsOf(b, "rr", "10.1.0.2:80=1"),
			vsOf(a, "wrr", "10.1.0.3:80=3"),
		), nil, []string{
			"delete-service 10.0.0.1:80/tcp",
			"delete-service 10.0.0.2:80/tcp",
		}},
		{"weight change touches one op",
			stateOf(vsOf(a, "wrr", "10.1.0.1:80=1", "10.1.0.2:80=1"), vsOf(b, "wrr", "10.1.0.1:80=1")),
			stateOf(vsOf(a, "wrr", "10.1.0.1:80=1", "10.1.0.2:80=5"), vsOf(b, "wrr", "10.1.0.1:80=1")),
			[]string{"update-dest 10.0.0.1:80/tcp 10.1.0.2:80 weight 5"}},
		{"weight to zero is an update",
			stateOf(vsOf(a, "wrr", "10.1.0.1:80=1")),
			stateOf(vsOf(a, "wrr", "10.1.0.1:80=0")),
			[]string{"update-dest 10.0.0.1:80/tcp 10.1.0.1:80 weight 0"}},
		{"scheduler change is one update-service",
			stateOf(vsOf(a, "wrr", "10.1.0.1:80=1", "10.1.0.2:80=1")),
			stateOf(vsOf(a, "sh", "10.1.0.1:80=1", "10.1.0.2:80=1")),
			[]string{"update-service 10.0.0.1:80/tcp"}},
		{"dest add, remove and update in order",
			stateOf(vsOf(a, "wrr", "10.1.0.1:80=1", "10.1.0.2:80=1", "10.1.0.3:80=1")),
			stateOf(vsOf(a, "wrr", "10.1.0.4:80=1", "10.1.0.2:80=3", "10.1.0.0:80=1")),
			[]string{
				"delete-dest 10.0.0.1:80/tcp 10.1.0.1:80 weight 1",
				"delete-dest 10.0.0.1:80/tcp 10.1.0.3:80 weight 1",
				"update-dest 10.0.0.1:80/tcp 10.1.0.2:80 weight 3",
				"add-dest 10.0.0.1:80/tcp 10.1.0.0:80 weight 1",
				"add-dest 10.0.0.1:80/tcp 10.1.0.4:80 weight 1",
			}},
		{"removals first across services",
			stateOf(vsOf(a, "wrr", "10.1.0.9:80=1"), vsOf(b, "wrr")),
			stateOf(vsOf(c, "wrr", "10.1.0.9:80=1"), vsOf(b, "wrr", "10.1.0.9:80=2")),
			[]string{
				"delete-service 10.0.0.1:80/tcp",
				"add-service 10.0.0.10:443/tcp",
				"add-dest 10.0.0.10:443/tcp 10.1.0.9:80 weight 1",
				"add-dest 10.0.0.2:80/tcp 10.1.0.9:80 weight 2",
			}},
		{"fwmark and persistence",
			stateOf(vsOf(fw, "sh", "10.1.0.1:80=1")),
			func() State {
				vs := vsOf(fw, "sh", "10.1.0.1:80=1")
				vs.Persistence = time.Minute
				return stateOf(vs)
			}(),
			[]string{"update-service fwmark:7"}},
		{"nil entries are absent",
			State{a: nil},
			State{b: nil, c: vsOf(c, "rr")},
			[]string{"add-service 10.0.0.10:443/tcp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			actualCopy := copyKeepNil(tt.actual)
			desiredCopy := copyKeepNil(tt.desired)
			got := planStrings(Diff(tt.actual, tt.desired))
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
				if again := planStrings(Diff(tt.actual, tt.desired)); !reflect.DeepEqual(again, planStrings(Diff(tt.actual, tt.desired))) {
					t.Fatalf("Diff is not deterministic: %q", again)
				}
			}
			// Applying the plan to actual yields desired.
			s := tt.actual.Clone()
			if s == nil {
				s = State{}
			}
			Apply(s, Diff(tt.actual, tt.desired))
			if !statesEqual(s, tt.desired.Clone()) {
				t.Fatalf("Apply(actual, Diff) = %v, want %v", dump(s), dump(tt.desired))
			}
			// And then nothing is left to do.
			if p := Diff(s, tt.desired); len(p) != 0 {
				t.Fatalf("Diff after Apply: %q", planStrings(p))
			}
		})
	}
}

func TestDiffOpServices(t *testing.T) {
	a := tcpKey("10.0.0.1:80")
	actual := stateOf(vsOf(a, "wrr", "10.1.0.1:80=1"))
	desired := stateOf(vsOf(a, "sh", "10.1.0.2:80=1"))
	// The Service of a dest op is that of the side it comes from, and the
	// map key wins over an inconsistent Service.Key.
	desired[a].Key = tcpKey("10.9.9.9:1")
	p := Diff(actual, desired)
	if len(p) != 3 {
		t.Fatalf("plan %q", planStrings(p))
	}
	if p[0].Kind != DeleteDest || p[0].Service.Scheduler != "wrr" || p[0].Service.Key != a {
		t.Fatalf("delete-dest op %+v", p[0])
	}
	for _, op := range p[1:] {
		if op.Service.Scheduler != "sh" || op.Service.Key != a {
			t.Fatalf("op %+v", op)
		}
	}
}

func TestApplyLenient(t *testing.T) {
	a := tcpKey("10.0.0.1:80")
	svc := Service{Key: a, Scheduler: "rr"}
	d1 := netip.MustParseAddrPort("10.1.0.1:80")
	s := State{}
	Apply(s, Plan{
		{Kind: AddDest, Service: svc, Dest: Dest{Addr: d1, Weight: 2}}, // creates the service
		{Kind: AddService, Service: Service{Key: a, Scheduler: "wrr"}}, // keeps the dests
		{Kind: DeleteDest, Service: svc, Dest: Dest{Addr: netip.MustParseAddrPort("10.1.0.9:80")}},
		{Kind: DeleteService, Service: Service{Key: tcpKey("10.0.0.9:80")}},
	})
	want := stateOf(vsOf(a, "wrr", "10.1.0.1:80=2"))
	if !statesEqual(s, want) {
		t.Fatalf("got %v want %v", dump(s), dump(want))
	}
	Apply(s, Plan{{Kind: DeleteService, Service: svc}})
	if len(s) != 0 {
		t.Fatalf("not deleted: %v", dump(s))
	}
}

func TestClone(t *testing.T) {
	a := tcpKey("10.0.0.1:80")
	s := stateOf(vsOf(a, "wrr", "10.1.0.1:80=1"))
	s[tcpKey("10.0.0.2:80")] = nil
	c := s.Clone()
	if len(c) != 1 {
		t.Fatalf("clone %v", dump(c))
	}
	c[a].Dests[netip.MustParseAddrPort("10.1.0.1:80")] = 9
	c[a].Scheduler = "rr"
	if s[a].Dests[netip.MustParseAddrPort("10.1.0.1:80")] != 1 || s[a].Scheduler != "wrr" {
		t.Fatal("clone shares data with the original")
	}
	if State(nil).Clone() != nil {
		t.Fatal("nil clone")
	}
	if (State{a: {}}).Clone()[a].Dests == nil {
		t.Fatal("clone leaves a nil Dests map")
	}
}

// TestDiffLarge checks the plan of a big table and that a single weight
// change stays a single op (the lead diffs 10,000 services on every check
// result).
func TestDiffLarge(t *testing.T) {
	desired := bigState(2000, 5)
	p := Diff(nil, desired)
	if want := 2000 * 6; len(p) != want {
		t.Fatalf("plan of %d ops, want %d", len(p), want)
	}
	s := State{}
	Apply(s, p)
	if !statesEqual(s, desired) {
		t.Fatal("Apply(empty, Diff) != desired")
	}
	changed := desired.Clone()
	for _, vs := range changed {
		for addr := range vs.Dests {
			vs.Dests[addr] = 7
			break
		}
		break
	}
	if p := Diff(s, changed); len(p) != 1 || p[0].Kind != UpdateDest {
		t.Fatalf("one weight change: %q", planStrings(p))
	}
}

// bigState returns n wrr services of dests destinations each: VIPs
// 10.x.y.z:80/tcp from 10.1.0.1 on, destinations in 10.200.0.0/16.
func bigState(n, dests int) State {
	s := make(State, n)
	for i := range n {
		v := 0x0a010001 + i
		k := Key{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 80), Proto: TCP}
		vs := &VirtualServer{Service: Service{Key: k, Scheduler: "wrr", Forwarding: NAT}, Dests: make(map[netip.AddrPort]int, dests)}
		for j := range dests {
			d := (i*dests + j) % 65000
			vs.Dests[netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 200, byte(d >> 8), byte(d)}), uint16(8080+j))] = 1 + j%3
		}
		s[k] = vs
	}
	return s
}

func dump(s State) string {
	var b strings.Builder
	for _, k := range func() []Key {
		keys := make([]Key, 0, len(s))
		for k := range s {
			keys = append(keys, k)
		}
		sortKeys(keys)
		return keys
	}() {
		vs := s[k]
		if vs == nil {
			fmt.Fprintf(&b, "%s: nil; ", k)
			continue
		}
		fmt.Fprintf(&b, "%s %s %s [", k, vs.Scheduler, vs.Forwarding)
		for _, a := range sortedAddrs(vs.Dests) {
			fmt.Fprintf(&b, " %s=%d", a, vs.Dests[a])
		}
		b.WriteString(" ]; ")
	}
	return b.String()
}

// BenchmarkDiffOneChange diffs 10,000 services of 5 real servers with one
// weight changed.
func BenchmarkDiffOneChange(b *testing.B) {
	actual := bigState(10000, 5)
	desired := actual.Clone()
	for _, vs := range desired {
		for addr := range vs.Dests {
			vs.Dests[addr] = 100
			break
		}
		break
	}
	b.ResetTimer()
	for b.Loop() {
		if p := Diff(actual, desired); len(p) != 1 {
			b.Fatal(len(p))
		}
	}
}

// BenchmarkDiffFromEmpty diffs 10,000 services of 5 real servers from
// nothing.
func BenchmarkDiffFromEmpty(b *testing.B) {
	desired := bigState(10000, 5)
	for b.Loop() {
		Diff(nil, desired)
	}
}
