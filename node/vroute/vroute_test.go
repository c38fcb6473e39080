package vroute

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseRoute(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Route
		str  string
	}{
		{"10.1.0.0/16 via 10.0.0.1", Route{Dst: netip.MustParsePrefix("10.1.0.0/16"), Via: netip.MustParseAddr("10.0.0.1"), Scope: -1}, "10.1.0.0/16 via 10.0.0.1"},
		{"src 10.0.0.100 to 10.2.0.0/16 dev eth1 table 100 metric 5 scope link proto static onlink", Route{Dst: netip.MustParsePrefix("10.2.0.0/16"), Src: netip.MustParseAddr("10.0.0.100"), Dev: "eth1", Table: 100, Metric: 5, Scope: 253, Proto: 4, OnLink: true},
			"10.2.0.0/16 dev eth1 src 10.0.0.100 table 100 metric 5 scope 253 protocol 4 onlink"},
		{"default gw 10.0.0.254 table main", Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.0.0.254"), Table: 254, Scope: -1}, "default via 10.0.0.254 table 254"},
		{"default via fd00::1", Route{Dst: netip.MustParsePrefix("::/0"), Via: netip.MustParseAddr("fd00::1"), Scope: -1}, "default via fd00::1"},
		{"blackhole 10.9.0.0/16", Route{Dst: netip.MustParsePrefix("10.9.0.0/16"), Type: TypeBlackhole, Scope: -1}, "blackhole 10.9.0.0/16"},
		{"10.3.0.1", Route{Dst: netip.MustParsePrefix("10.3.0.1/32"), Scope: -1}, "10.3.0.1/32"},
		{"10.4.1.7/16 dev eth0", Route{Dst: netip.MustParsePrefix("10.4.0.0/16"), Dev: "eth0", Scope: -1}, "10.4.0.0/16 dev eth0"},
	} {
		got, err := ParseRoute(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%q = %+v, want %+v", tc.in, got, tc.want)
		}
		if got.String() != tc.str {
			t.Errorf("%q: String() = %q, want %q", tc.in, got.String(), tc.str)
		}
		if again, err := ParseRoute(got.String()); err != nil || again != got {
			t.Errorf("%q: String() does not parse back: %+v %v", tc.in, again, err)
		}
	}
	for _, tc := range []struct{ in, msg string }{
		{"", "empty"},
		{"via 10.0.0.1", "no destination"},
		{"10.1.0.0/16 via fd00::1", "not of the destination's family"},
		{"blackhole 10.1.0.0/16 dev eth0", "has no gateway or device"},
		{"10.1.0.0/16 mtu 1400", `"mtu": not supported`},
		{"10.1.0.0/16 table foo", "names from rt_tables are not read"},
		{"10.1.0.0/16 via", "via needs a value"},
		{"10.1.0.0/33", "is not ADDR or ADDR/LEN"},
	} {
		_, err := ParseRoute(tc.in)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.msg)
		}
	}
	r, _ := ParseRoute("10.1.0.0/16")
	if r.Device("eth0") != "eth0" {
		t.Errorf("a route without via or dev goes on the instance's interface")
	}
	r, _ = ParseRoute("10.1.0.0/16 via 10.0.0.1")
	if r.Device("eth0") != "" {
		t.Errorf("a route with via lets the kernel find the device")
	}
}

func TestParseRule(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Rule
		str  string
	}{
		{"from 10.0.0.100/32 table 100", Rule{From: netip.MustParsePrefix("10.0.0.100/32"), Action: ActionTable, Table: 100, Priority: -1}, "from 10.0.0.100/32 table 100"},
		{"from all to 10.2.0.0/16 iif eth0 fwmark 0x10/0xff priority 100 lookup main", Rule{To: netip.MustParsePrefix("10.2.0.0/16"), Iif: "eth0", Mark: 16, Mask: 255, HasMark: true, Priority: 100, Action: ActionTable, Table: 254},
			"to 10.2.0.0/16 iif eth0 fwmark 0x10/0xff priority 100 table 254"},
		{"inet6 fwmark 3 type blackhole", Rule{V6: true, Mark: 3, Mask: 0xffffffff, HasMark: true, Priority: -1, Action: ActionBlackhole}, "inet6 fwmark 0x3/0xffffffff blackhole"},
		{"from fd00::/64 priority 10 goto 20", Rule{From: netip.MustParsePrefix("fd00::/64"), V6: true, Priority: 10, Action: ActionGoto, Goto: 20}, "from fd00::/64 priority 10 goto 20"},
	} {
		got, err := ParseRule(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%q = %+v, want %+v", tc.in, got, tc.want)
		}
		if got.String() != tc.str {
			t.Errorf("%q: String() = %q, want %q", tc.in, got.String(), tc.str)
		}
		if again, err := ParseRule(got.String()); err != nil || again != got {
			t.Errorf("%q: String() does not parse back: %+v %v", tc.in, again, err)
		}
	}
	for _, tc := range []struct{ in, msg string }{
		{"from 10.0.0.1", "no action"},
		{"from 10.0.0.1 table 1 goto 5", "one action per rule"},
		{"from 10.0.0.1 goto 5", "needs a priority below it"},
		{"from 10.0.0.1 to fd00::1 table 1", "one family per rule"},
		{"from 10.0.0.1 table 1 uidrange 1-2", `"uidrange": not supported`},
	} {
		_, err := ParseRule(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.msg)
		}
	}
}
