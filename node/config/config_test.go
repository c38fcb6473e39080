package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/haa-dev/haa/node/vrrp"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// issueExample is the agent configuration of the issue, verbatim.
const issueExample = `
name: n1
api:
  socket: /run/haa/n1.sock      # served from the API issue on
instances:
  - name: VI_1
    interface: eth0
    vrid: 51
    priority: 200
    version: 3                  # 2 or 3; default 3
    advertInterval: 0.1s        # v3: 10 ms steps; v2: whole seconds
    preempt: true               # default true; false = keepalived's nopreempt
    preemptDelay: 0s
    vips: ["10.77.0.100/24", "10.77.0.101/24"]
  - name: VI_2
    interface: eth0
    vrid: 52
    priority: 100
    version: 2
    advertInterval: 1s
    auth: {type: PASS, password: "1111"}
    unicastPeers: ["10.77.0.2"] # empty: multicast to 224.0.0.18 (group configurable)
    vips: ["10.77.0.110/24"]
`

func TestIssueExample(t *testing.T) {
	cfg, err := Parse([]byte(issueExample))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Resolve(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "n1" || a.Socket != "/run/haa/n1.sock" || len(a.Instances) != 2 {
		t.Fatalf("agent %+v", a)
	}
	v1, v2 := a.Instances[0], a.Instances[1]
	if v1.VRRP.VRID != 51 || v1.VRRP.Priority != 200 || v1.VRRP.Version != 3 || v1.VRRP.Interval != 100*time.Millisecond ||
		!v1.VRRP.Preempt || len(v1.VIPs) != 2 || v1.Group != vrrp.GroupV4 || len(v1.Peers) != 0 {
		t.Errorf("VI_1 resolved to %+v", v1)
	}
	if v1.GARP != (vrrp.GARPConfig{Delay: 5 * time.Second, Repeat: 5, RefreshRepeat: 1}) {
		t.Errorf("VI_1 GARP defaults %+v", v1.GARP)
	}
	if v2.VRRP.Version != 2 || v2.VRRP.Interval != time.Second || v2.VRRP.AuthType != vrrp.AuthSimple ||
		string(v2.VRRP.AuthData[:4]) != "1111" || v2.Peers[0] != netip.MustParseAddr("10.77.0.2") {
		t.Errorf("VI_2 resolved to %+v", v2)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse([]byte("name: x\ninstances: [{name: a, interface: eth0, vrid: 1, vips: [10.0.0.1]}]"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Resolve(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in := a.Instances[0]
	if in.VRRP.Priority != 100 || in.VRRP.Version != 3 || in.VRRP.Interval != time.Second || !in.VRRP.Preempt ||
		in.VIPs[0].Prefix != netip.MustParsePrefix("10.0.0.1/32") || a.Socket != "/run/haa/x.sock" {
		t.Fatalf("defaults: %+v socket %s", in, a.Socket)
	}
}

func TestDurationsAcceptGoSyntax(t *testing.T) {
	for in, want := range map[string]time.Duration{"0.1s": 100 * time.Millisecond, "100ms": 100 * time.Millisecond, "1s": time.Second, "1m": time.Minute} {
		cfg, err := Parse([]byte("instances: [{advertInterval: " + in + "}]"))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got := cfg.Instances[0].GetAdvertInterval().AsDuration(); got != want {
			t.Errorf("%s parsed as %v", in, got)
		}
	}
}

// wantProblems asserts that err lists exactly these "path: message" prefixes.
func wantProblems(t *testing.T, err error, want ...string) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %v is not ErrInvalid", err)
	}
	got := Fields(err)
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(got), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i].String(), w) {
			t.Errorf("problem %d = %q, want prefix %q", i, got[i].String(), w)
		}
	}
}

func TestParseReportsEveryUnknownFieldAndType(t *testing.T) {
	_, err := Parse([]byte(`
name: n1
colour: blue
instances:
  - name: VI_1
    advert_int: 1
    vrid: "x"
    priority: -3
    preempt: yes-please
    advertInterval: 1
    auth: {typ: PASS, password: 1111}
    unicastPeers: []
`))
	wantProblems(t, err,
		"colour: unknown field",
		`instances[0].advertInterval: duration 1 needs a unit`,
		`instances[0].advert_int: unknown field "advert_int" (did you mean "advertInterval"?)`,
		`instances[0].auth.password: expected a string, got the number 1111: quote it ("1111")`,
		`instances[0].auth.typ: unknown field "typ" (did you mean "type"?)`,
		`instances[0].preempt: expected true or false`,
		`instances[0].priority: expected a whole number >= 0, got -3`,
		`instances[0].unicastPeers: empty list`,
		`instances[0].vrid: expected a whole number, got the string "x"`,
	)
}

func TestValidateReportsEveryProblemWithItsPath(t *testing.T) {
	cfg, err := Parse([]byte(`
name: "bad name"
api: {socket: relative.sock}
instances:
  - name: VI_1
    interface: eth0
    vrid: 300
    priority: 0
    version: 4
    vips: ["10.0.0.1/33"]
  - name: VI_1
    interface: eth0
    vrid: 51
    version: 2
    advertInterval: 0.5s
    auth: {type: PASS, password: "123456789"}
    unicastPeers: ["10.0.0.2", "10.0.0.2", "224.0.0.5"]
    vips: ["10.0.0.2/24"]
    state: PRIMARY
    preempt: false
    preemptDelay: 5s
    garp: {refresh: 10ms}
  - name: VI_3
    interface: eth0
    vrid: 51
    advertInterval: 15ms
    auth: {type: AH}
    vips: ["10.0.0.2/24", "fe80::1/64"]
`))
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, Validate(cfg),
		`name: "bad name" is not a valid name`,
		`api.socket: "relative.sock" must be an absolute path`,
		`instances[0].vrid: 300 is out of range 1..255`,
		`instances[0].priority: 0 is out of range 1..255`,
		`instances[0].version: 4 is not a VRRP version`,
		`instances[0].vips[0]: vip "10.0.0.1/33"`,
		`instances[1].advertInterval: 500ms: VRRPv2 needs whole seconds`,
		`instances[1].preemptDelay: has no effect with preempt: false`,
		`instances[1].state: "PRIMARY": use MASTER or BACKUP`,
		`instances[1].auth.password: 9 characters`,
		`instances[1].unicastPeers[1]: 10.0.0.2 is listed twice`,
		`instances[1].unicastPeers[2]: 224.0.0.5 is not a unicast address`,
		`instances[1].vips[0]: 10.0.0.2 is also a unicast peer`,
		`instances[1].garp.refresh: 10ms is too short`,
		`instances[1].name: "VI_1" is already used by instances[0]`,
		`instances[2].advertInterval: 15ms: VRRPv3 needs 10ms..40.95s in steps of 10ms`,
		`instances[2].vips[1]: fe80::1 is ipv6 in an ipv4 instance: one family per instance`,
		`instances[2].auth.type: authentication exists only in VRRPv2`,
		`instances[2].vrid: vrid 51 is already used on eth0 by instances[1]`,
		`instances[2].vips[0]: 10.0.0.2 is already a VIP of VI_1`,
	)
}

// TestVIPLimits: an instance with more VIPs than an advert carries is
// refused (the master would send nothing and every backup take over), and
// so is a node with more than MaxVIPsPerNode in all.
func TestVIPLimits(t *testing.T) {
	inst := func(name string, vrid, first, n int) *haav1.Instance {
		in := &haav1.Instance{Name: name, Interface: "eth0", Vrid: uint32(vrid)}
		for k := range n {
			i := first + k
			in.Vips = append(in.Vips, netip.AddrFrom4([4]byte{10, byte(100 + i>>16), byte(i >> 8), byte(i)}).String())
		}
		return in
	}
	cfg := &haav1.AgentConfig{Name: "n1", Instances: []*haav1.Instance{inst("big", 1, 0, 256)}}
	wantProblems(t, Validate(cfg), `instances[0].vips: 256 addresses: at most 255 fit in an advert`)

	cfg = &haav1.AgentConfig{Name: "n1"}
	for i := range MaxVIPsPerNode/255 + 1 {
		cfg.Instances = append(cfg.Instances, inst(fmt.Sprintf("VI_%d", i), i+1, i*255, 255))
	}
	last := len(cfg.Instances) - 1
	wantProblems(t, Validate(cfg), fmt.Sprintf("instances[%d].vips: this instance brings the node to %d virtual addresses: at most %d per node",
		last, len(cfg.Instances)*255, MaxVIPsPerNode))
	cfg.Instances = cfg.Instances[:last]
	if err := Validate(cfg); err != nil {
		t.Fatalf("%d VIPs: %v", last*255, err)
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "haad.yaml")
	if err := os.WriteFile(p, []byte("instances: [{name: a, interface: eth0, vrid: 0, vips: [10.0.0.1]}]"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "instances[0].vrid: required") {
		t.Fatalf("Load error %v", err)
	}
}

func TestShippedExampleIsValid(t *testing.T) {
	if _, err := Load("../../deploy/examples/haad.yaml"); err != nil {
		t.Fatal(err)
	}
}

func TestAPITCPListener(t *testing.T) {
	const inst = "\ninstances: [{name: a, interface: eth0, vrid: 1, vips: [10.0.0.1]}]\n"
	valid := []string{
		`api: {tcp: {listen: "10.0.0.1:9651", tls: {certFile: /etc/haa/tls.crt, keyFile: /etc/haa/tls.key}}}`,
		`api: {tcp: {listen: ":9651", tls: {certFile: /c, keyFile: /k, clientCaFile: /ca}}}`,
		`api: {tcp: {listen: "[fd00::1]:9651", tls: {certFile: /c, keyFile: /k}}}`,
		`api: {tcp: {listen: "localhost:9651", insecure: true}}`,
	}
	for _, y := range valid {
		cfg, err := Parse([]byte("name: n1\n" + y + inst))
		if err != nil {
			t.Fatalf("%s: %v", y, err)
		}
		if err := Validate(cfg); err != nil {
			t.Errorf("%s: %v", y, err)
		}
	}
	for _, c := range []struct {
		yaml string
		want []string
	}{
		{`api: {tcp: {listen: "10.0.0.1:9651"}}`,
			[]string{"api.tcp.tls: required unless api.tcp.insecure: true"}},
		{`api: {tcp: {tls: {certFile: /c, keyFile: /k}}}`,
			[]string{"api.tcp.listen: required: host:port"}},
		{`api: {tcp: {listen: "10.0.0.1", insecure: true}}`,
			[]string{`api.tcp.listen: "10.0.0.1" is not host:port`}},
		{`api: {tcp: {listen: "10.0.0.1:http", insecure: true}}`,
			[]string{`api.tcp.listen: "10.0.0.1:http": port "http" is not a number 1..65535`}},
		{`api: {tcp: {listen: "10.0.0.1:0", insecure: true}}`,
			[]string{`api.tcp.listen: "10.0.0.1:0": port "0" is not a number 1..65535`}},
		{`api: {tcp: {listen: "bad host:1", insecure: true}}`,
			[]string{`api.tcp.listen: "bad host:1": "bad host" is neither an IP address nor a host name`}},
		{`api: {tcp: {listen: ":9651", insecure: true, tls: {certFile: /c, keyFile: /k}}}`,
			[]string{"api.tcp.insecure: set together with tls"}},
		{`api: {tcp: {listen: ":9651", tls: {clientCaFile: /ca}}}`,
			[]string{"api.tcp.tls.certFile: required", "api.tcp.tls.keyFile: required", "api.tcp.tls.clientCaFile: needs certFile and keyFile"}},
		{`api: {tcp: {listen: ":9651", tls: {certFile: c.pem, keyFile: /k, clientCaFile: ca.pem}}}`,
			[]string{`api.tcp.tls.certFile: "c.pem" must be an absolute path`, `api.tcp.tls.clientCaFile: "ca.pem" must be an absolute path`}},
		{`api: {tcp: {}}`,
			[]string{"api.tcp.listen: required", "api.tcp.tls: required unless api.tcp.insecure: true"}},
	} {
		cfg, err := Parse([]byte("name: n1\n" + c.yaml + inst))
		if err != nil {
			t.Fatalf("%s: %v", c.yaml, err)
		}
		t.Run(c.yaml, func(t *testing.T) { wantProblems(t, Validate(cfg), c.want...) })
	}
}

func TestGossipValidation(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // paths with problems
	}{
		{"loopback needs no key", "gossip: {bind: 127.0.0.1:7946}", nil},
		{"key file", "gossip: {bind: 10.0.0.1:7946, keyFile: /etc/haa/gossip.key, join: [10.0.0.2, 'lb2:7946']}", nil},
		{"insecure", "gossip: {bind: 10.0.0.1, insecure: true}", nil},
		{"no key", "gossip: {bind: 10.0.0.1:7946}", []string{"gossip.keyFile"}},
		{"both", "gossip: {bind: 10.0.0.1:7946, keyFile: /k, insecure: true}", []string{"gossip.insecure"}},
		{"relative key", "gossip: {bind: 10.0.0.1:7946, keyFile: k}", []string{"gossip.keyFile"}},
		{"no bind", "gossip: {insecure: true}", []string{"gossip.bind"}},
		{"host name bind", "gossip: {bind: 'lb1:7946', insecure: true}", []string{"gossip.bind"}},
		{"bad port", "gossip: {bind: '10.0.0.1:99999', insecure: true}", []string{"gossip.bind"}},
		{"any needs advertise", "gossip: {bind: '0.0.0.0:7946', insecure: true}", []string{"gossip.advertise"}},
		{"bad join", "gossip: {bind: 127.0.0.1, join: ['a b:1']}", []string{"gossip.join[0]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte("name: lb1\n" + tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range Fields(Validate(cfg)) {
				got = append(got, f.Path)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("problems at %v, want %v: %v", got, tc.want, Validate(cfg))
			}
		})
	}
}

// TestHugeValuesAreShortenedInErrors: a value of megabytes is not echoed
// in full (a 3 MB field value came back twice, too big for a gRPC status).
func TestHugeValuesAreShortenedInErrors(t *testing.T) {
	huge := strings.Repeat("x", 3<<20)
	cfg := &haav1.AgentConfig{Name: "n1", Instances: []*haav1.Instance{{Name: huge, Interface: "eth0", Vrid: 1, Vips: []string{huge}}}}
	err := Validate(cfg)
	if err == nil {
		t.Fatal("accepted")
	}
	if n := len(err.Error()); n > 8<<10 {
		t.Fatalf("error of %d bytes", n)
	}
	for _, f := range Fields(err) {
		if len(f.Path)+len(f.Msg) > 2<<10 {
			t.Errorf("%s: %d bytes", f.Path, len(f.Msg))
		}
	}
	if !strings.Contains(err.Error(), "bytes more)") || !strings.Contains(err.Error(), "instances[0].name") {
		t.Errorf("error does not say what it cut or where: %.300s", err)
	}
	// Nor copied on the way: refusing a 3 MB name costs little memory.
	named := &haav1.AgentConfig{Name: huge}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if Validate(named) == nil {
		t.Fatal("a 3 MB name accepted")
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("refusing a 3 MB name allocated %d bytes", n)
	}
}

// TestInvalidDurationsAreRefused: a duration the API can carry but YAML
// cannot write (nanos out of range, signs that differ) is refused with its
// path: applied, the configuration could never be saved or read back.
func TestInvalidDurationsAreRefused(t *testing.T) {
	cfg := &haav1.AgentConfig{Name: "n1", Instances: []*haav1.Instance{{Name: "VI_1", Interface: "eth0", Vrid: 1,
		Vips: []string{"10.0.0.1/24"}, Garp: &haav1.Garp{Delay: &durationpb.Duration{Seconds: 2, Nanos: -1}},
		PreemptDelay: &durationpb.Duration{Nanos: 2e9}}}}
	wantProblems(t, Validate(cfg), `instances[0].preemptDelay: not a valid duration (0 s and 2000000000 ns)`,
		`instances[0].garp.delay: not a valid duration (2 s and -1 ns)`)
	doc := &haav1.Fleet{Kind: FleetKind, Nodes: []string{"lb1"}, Instances: []*haav1.FleetInstance{{Name: "VI_1",
		Interface: "eth0", Vrid: 1, Vips: []string{"10.0.0.1/24"},
		Overrides: map[string]*haav1.Instance{"lb1": {AdvertInterval: &durationpb.Duration{Seconds: 1, Nanos: 1e9}}}}}}
	wantProblems(t, ValidateFleet(doc), `instances[0].overrides.lb1.advertInterval: not a valid duration`)
}
