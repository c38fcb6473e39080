package config

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/haa-dev/haa/node/lvs"
)

func resolveVS(t *testing.T, y string) (*Agent, error) {
	t.Helper()
	raw, err := Parse([]byte("name: n1\nvirtualServers:\n" + y))
	if err != nil {
		t.Fatal(err)
	}
	return Resolve(raw)
}

// A group: the first service is the virtual server's, the others Also;
// ranges and prefixes expand; each service once across the node.
func TestVirtualServerGroup(t *testing.T) {
	a, err := resolveVS(t, `  - {group: ["10.0.0.1:80", "10.0.0.10-12:80", "10.0.1.0/31:80", "[fd00::1-3]:80"], realServers: [{address: 10.0.2.1}]}`+"\n")
	if err == nil {
		t.Fatalf("IPv4 and IPv6 in one group accepted: %+v", a.VirtualServers[0].Also)
	}
	a, err = resolveVS(t, `  - {group: ["10.0.0.1:80", "10.0.0.10-12:80", "10.0.1.0/31:80"], realServers: [{address: 10.0.2.1}]}`+"\n")
	if err != nil {
		t.Fatal(err)
	}
	vs := a.VirtualServers[0]
	var got []string
	for _, k := range vs.Keys() {
		got = append(got, k.String())
	}
	if want := "10.0.0.1:80/tcp 10.0.0.10:80/tcp 10.0.0.11:80/tcp 10.0.0.12:80/tcp 10.0.1.0:80/tcp 10.0.1.1:80/tcp"; strings.Join(got, " ") != want {
		t.Errorf("keys %q, want %q", strings.Join(got, " "), want)
	}
	if vs.Name != "10.0.0.1:80/tcp" || vs.Reals[0].Addr != netip.MustParseAddrPort("10.0.2.1:80") {
		t.Errorf("name %q, real server %v", vs.Name, vs.Reals[0].Addr)
	}
	a, err = resolveVS(t, `  - {name: marks, group: ["fwmark 1", "fwmark 0x2"], realServers: [{address: 10.0.2.1}]}`+"\n")
	if err != nil {
		t.Fatal(err)
	}
	if k := a.VirtualServers[0].Keys(); len(k) != 2 || k[1] != (lvs.Key{FWMark: 2}) {
		t.Errorf("fwmark group keys %v", k)
	}

	var big []string
	for i := range 300 {
		big = append(big, fmt.Sprintf("10.1.%d.%d:80", i/200, i%200+1))
	}
	for _, tc := range []struct{ y, msg string }{
		{`{group: ["10.0.0.1:80"], address: "10.0.0.2:80"}`, "virtualServers[0].group: set together with address or fwmark"},
		{`{group: ["10.0.0.1:80", "fwmark 3"]}`, "virtualServers[0].group: mixes addresses and fwmarks"},
		{`{group: ["10.0.0.1:80", "10.0.0.2:443"], realServers: [{address: 10.0.2.1}]}`, "its services have 2 different ports"},
		{`{group: ["10.0.0.1:80", "10.0.0.1:80"]}`, "virtualServers[0].group[1]: 10.0.0.1:80 is already in group[0]"},
		{`{group: ["10.0.0.9-1:80"]}`, "the range must end after it starts"},
		{`{group: ["10.0.0.9-9:80"]}`, "the range must end after it starts"},
		{`{group: ["10.0.0.9/29:80"]}`, "10.0.0.9/29 has bits set past its length: write 10.0.0.8/29"},
		{`{group: ["10.0.0.1"]}`, "is not ADDR:PORT, FIRST-LAST:PORT"},
		{`{group: ["10.0.0.0/16:80"]}`, "more than 256 services in the group"},
		{`{group: [` + strings.Join(big, ", ") + `]}`, "more than 256 services in the group"},
		{`{address: "10.0.0.5:80"}` + "\n  - " + `{group: ["10.0.0.4-6:80"]}`, "virtualServers[1].group: 10.0.0.5:80/tcp is already the service of virtualServers[0]"},
	} {
		_, err := resolveVS(t, "  - "+tc.y+"\n")
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: error %v, want %q", tc.y, err, tc.msg)
		}
	}
	// Different ports are fine with nat when every real server names its
	// port.
	if _, err := resolveVS(t, `  - {group: ["10.0.0.1:80", "10.0.0.2:443"], realServers: [{address: "10.0.2.1:8080"}]}`+"\n"); err != nil {
		t.Errorf("nat with explicit ports: %v", err)
	}
}
