package metrics

import (
	"compress/gzip"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/haa-dev/haa/node"
	"github.com/haa-dev/haa/node/balancer"
	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/fleet"
	"github.com/haa-dev/haa/node/tracking"
	"github.com/haa-dev/haa/node/vrrp"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// fake is a Source with fixed answers.
type fake struct {
	info      node.NodeInfo
	instances []node.InstanceStatus
	trackers  []tracking.TrackerState
	vss       []balancer.VirtualServer
	fleet     fleet.Status
	ifDrops   map[string]map[vrrp.DropReason]uint64
}

func (f *fake) Node() node.NodeInfo                                   { return f.info }
func (f *fake) Instances() []node.InstanceStatus                      { return f.instances }
func (f *fake) Trackers() []tracking.TrackerState                     { return f.trackers }
func (f *fake) InterfaceDrops() map[string]map[vrrp.DropReason]uint64 { return f.ifDrops }
func (f *fake) FleetStatus() fleet.Status                             { return f.fleet }
func (f *fake) LoadBalancer() *balancer.Snapshot {
	s := &balancer.Snapshot{}
	for i := range f.vss {
		s.VirtualServers = append(s.VirtualServers, &f.vss[i])
	}
	return s
}

func instance(name string, prio, eff uint8, st vrrp.State) node.InstanceStatus {
	return node.InstanceStatus{
		Config: config.Instance{VRRP: vrrp.Config{Name: name, Priority: prio}},
		Status: vrrp.Status{Name: name, State: st, Priority: eff},
		Stats:  &vrrp.Stats{},
	}
}

func newFake() *fake {
	vi1 := instance("VI_1", 200, 180, vrrp.Master)
	vi1.Stats.Transitions.Add(2)
	vi1.Stats.AdvertsSent.Add(50)
	vi1.Stats.AdvertsReceived.Add(3)
	vi1.Stats.GARPsSent.Add(5)
	vi1.Stats.Drop(vrrp.DropAuthFailure)
	vi1.Stats.Drop(vrrp.DropAuthFailure)
	vi1.Stats.TimerSlip(vrrp.TimerAdvert).Observe(200 * time.Microsecond)
	vi1.Stats.TimerSlip(vrrp.TimerAdvert).Observe(3 * time.Millisecond)
	vi1.Stats.TimerSlip(vrrp.TimerMasterDown).Observe(50 * time.Microsecond)
	vi1.Config.Interface, vi1.Config.Family, vi1.Config.VRRP.VRID = "eth0", config.FamilyIPv4, 51
	vi2 := instance("VI_2", 100, 100, vrrp.Backup)
	vi2.Config.Interface, vi2.Config.Family, vi2.Config.VRRP.VRID = "eth0", config.FamilyIPv6, 51
	vi2.Config.VMAC = &config.VMAC{Name: "vrrp.51"}
	healthy := &fleet.Health{Healthy: true}
	return &fake{
		ifDrops:   map[string]map[vrrp.DropReason]uint64{"eth0": {vrrp.DropUnknownVRID: 3}},
		info:      node.NodeInfo{Name: "n1", Version: "v1.2.3", Generation: 7},
		instances: []node.InstanceStatus{vi1, vi2},
		trackers:  []tracking.TrackerState{{Name: "gw", Kind: "script", OK: true}, {Name: "uplink", Kind: "interface"}},
		vss: []balancer.VirtualServer{{Name: "web", Up: true, Reals: []balancer.RealServer{
			{Addr: netip.MustParseAddrPort("10.0.0.1:80"), Healthy: true, Weight: 3, Programmed: true, Check: "tcp",
				LastDuration: 15 * time.Millisecond},
			{Addr: netip.MustParseAddrPort("10.0.0.2:80"), Healthy: false, Check: "none"},
		}}},
		fleet: fleet.Status{Node: "n1", Members: []fleet.Member{
			{Name: "n1", State: haav1.MemberState_MEMBER_STATE_ALIVE, Health: healthy},
			{Name: "n2", State: haav1.MemberState_MEMBER_STATE_ALIVE, Health: &fleet.Health{Problems: []string{"x"}}},
			{Name: "n3", State: haav1.MemberState_MEMBER_STATE_DEAD},
		}},
	}
}

// series renders a family's samples as "name{k=v,...} value" lines,
// sorted; histograms as their count, sum and buckets.
func series(mf *dto.MetricFamily) []string {
	var out []string
	for _, m := range mf.GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		name := mf.GetName() + "{" + strings.Join(ls, ",") + "}"
		switch mf.GetType() {
		case dto.MetricType_GAUGE:
			out = append(out, fmt.Sprintf("%s %g", name, m.GetGauge().GetValue()))
		case dto.MetricType_COUNTER:
			out = append(out, fmt.Sprintf("%s %g", name, m.GetCounter().GetValue()))
		case dto.MetricType_HISTOGRAM:
			h := m.GetHistogram()
			out = append(out, fmt.Sprintf("%s count=%d sum=%g", name, h.GetSampleCount(), h.GetSampleSum()))
			for _, b := range h.GetBucket() {
				out = append(out, fmt.Sprintf("%s le=%g %d", name, b.GetUpperBound(), b.GetCumulativeCount()))
			}
		}
	}
	sort.Strings(out)
	return out
}

// gather scrapes src through Handler, as Prometheus does (gzipped), and
// parses what it serves.
func gather(t *testing.T, src Source) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	Handler(NewRegistry(src), src, HandlerOptions{}).ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("scrape: %d %v", rec.Code, rec.Header())
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	out, err := parser.TextToMetricFamilies(zr)
	if err != nil {
		t.Fatal(err)
	}
	mfs := make([]*dto.MetricFamily, 0, len(out))
	for _, mf := range out {
		mfs = append(mfs, mf)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "haa_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
	return out
}

func TestCollectorEveryFamily(t *testing.T) {
	f := newFake()
	got := gather(t, f)
	want := map[string][]string{
		"haa_instance_state": {
			"haa_instance_state{state=backup,vrrp_instance=VI_1} 0", "haa_instance_state{state=backup,vrrp_instance=VI_2} 1",
			"haa_instance_state{state=fault,vrrp_instance=VI_1} 0", "haa_instance_state{state=fault,vrrp_instance=VI_2} 0",
			"haa_instance_state{state=init,vrrp_instance=VI_1} 0", "haa_instance_state{state=init,vrrp_instance=VI_2} 0",
			"haa_instance_state{state=master,vrrp_instance=VI_1} 1", "haa_instance_state{state=master,vrrp_instance=VI_2} 0",
		},
		"haa_instance_priority":           {"haa_instance_priority{vrrp_instance=VI_1} 200", "haa_instance_priority{vrrp_instance=VI_2} 100"},
		"haa_instance_effective_priority": {"haa_instance_effective_priority{vrrp_instance=VI_1} 180", "haa_instance_effective_priority{vrrp_instance=VI_2} 100"},
		"haa_instance_transitions_total":  {"haa_instance_transitions_total{vrrp_instance=VI_1} 2", "haa_instance_transitions_total{vrrp_instance=VI_2} 0"},
		"haa_instance_adverts_sent_total": {"haa_instance_adverts_sent_total{vrrp_instance=VI_1} 50", "haa_instance_adverts_sent_total{vrrp_instance=VI_2} 0"},
		"haa_instance_adverts_received_total": {
			"haa_instance_adverts_received_total{vrrp_instance=VI_1} 3", "haa_instance_adverts_received_total{vrrp_instance=VI_2} 0"},
		"haa_instance_garps_sent_total": {"haa_instance_garps_sent_total{vrrp_instance=VI_1} 5", "haa_instance_garps_sent_total{vrrp_instance=VI_2} 0"},
		"haa_tracker_up":                {"haa_tracker_up{tracker=gw} 1", "haa_tracker_up{tracker=uplink} 0"},
		"haa_virtual_server_up":         {"haa_virtual_server_up{virtual_server=web} 1"},
		"haa_real_server_healthy": {
			"haa_real_server_healthy{real_server=10.0.0.1:80,virtual_server=web} 1",
			"haa_real_server_healthy{real_server=10.0.0.2:80,virtual_server=web} 0"},
		"haa_real_server_weight": {
			"haa_real_server_weight{real_server=10.0.0.1:80,virtual_server=web} 3",
			"haa_real_server_weight{real_server=10.0.0.2:80,virtual_server=web} 0"},
		"haa_check_duration_seconds": {"haa_check_duration_seconds{real_server=10.0.0.1:80,virtual_server=web} 0.015"},
		"haa_gossip_members": {"haa_gossip_members{state=alive} 2", "haa_gossip_members{state=dead} 1",
			"haa_gossip_members{state=left} 0", "haa_gossip_members{state=suspect} 0"},
		"haa_gossip_member_healthy": {"haa_gossip_member_healthy{node=n1} 1", "haa_gossip_member_healthy{node=n2} 0"},
		"haa_config_generation":     {"haa_config_generation{} 7"},
		"haa_build_info":            {"haa_build_info{version=v1.2.3} 1"},
		"haa_instance_info": {"haa_instance_info{family=ipv4,interface=eth0,vmac_interface=,vrid=51,vrrp_instance=VI_1} 1",
			"haa_instance_info{family=ipv6,interface=eth0,vmac_interface=vrrp.51,vrid=51,vrrp_instance=VI_2} 1"},
	}
	for name, w := range want {
		mf := got[name]
		if mf == nil {
			t.Errorf("%s missing", name)
			continue
		}
		if s := series(mf); !slices.Equal(s, w) {
			t.Errorf("%s:\n got %q\nwant %q", name, s, w)
		}
	}

	// Every drop reason of every instance, named as the API names them.
	drops := series(got["haa_instance_packets_dropped_total"])
	if n := 2 * len(vrrp.DropReasons()); len(drops) != n {
		t.Errorf("%d drop series, want %d: %q", len(drops), n, drops)
	}
	for _, s := range []string{
		"haa_instance_packets_dropped_total{reason=auth_failure,vrrp_instance=VI_1} 2",
		"haa_instance_packets_dropped_total{reason=ttl,vrrp_instance=VI_1} 0",
		"haa_instance_packets_dropped_total{reason=queue_full,vrrp_instance=VI_2} 0",
	} {
		if !slices.Contains(drops, s) {
			t.Errorf("no %s in %q", s, drops)
		}
	}

	// Drops before any instance, per interface: a vrid no instance has.
	if ifd := series(got["haa_interface_packets_dropped_total"]); len(ifd) != len(vrrp.DropReasons()) ||
		!slices.Contains(ifd, "haa_interface_packets_dropped_total{interface=eth0,reason=unknown_vrid} 3") {
		t.Errorf("interface drops: %q", ifd)
	}

	// The timer slip histogram: per instance and timer, buckets 100µs..100ms.
	slip := series(got["haa_instance_timer_slip_seconds"])
	for _, s := range []string{
		"haa_instance_timer_slip_seconds{timer=advert,vrrp_instance=VI_1} count=2 sum=0.0032",
		"haa_instance_timer_slip_seconds{timer=advert,vrrp_instance=VI_1} le=0.0001 0",
		"haa_instance_timer_slip_seconds{timer=advert,vrrp_instance=VI_1} le=0.00025 1",
		"haa_instance_timer_slip_seconds{timer=advert,vrrp_instance=VI_1} le=0.005 2",
		"haa_instance_timer_slip_seconds{timer=advert,vrrp_instance=VI_1} le=0.1 2",
		"haa_instance_timer_slip_seconds{timer=master_down,vrrp_instance=VI_1} count=1 sum=5e-05",
		"haa_instance_timer_slip_seconds{timer=master_down,vrrp_instance=VI_2} count=0 sum=0",
	} {
		if !slices.Contains(slip, s) {
			t.Errorf("no %s in %q", s, slip)
		}
	}
	// The text format adds the +Inf bucket to the configured ones.
	if h := got["haa_instance_timer_slip_seconds"].GetMetric()[0].GetHistogram(); len(h.GetBucket()) != len(vrrp.SlipBuckets)+1 {
		t.Errorf("%d buckets, want %d and +Inf", len(h.GetBucket()), len(vrrp.SlipBuckets))
	}

	// The Go runtime and the process.
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total"} {
		if got[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
}

// Before the first configuration there is nothing but the node itself.
func TestCollectorEmptyAgent(t *testing.T) {
	got := gather(t, &fake{info: node.NodeInfo{Version: "dev"}, fleet: fleet.Status{}})
	for _, name := range []string{"haa_config_generation", "haa_build_info"} {
		if got[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	for name := range got {
		if strings.HasPrefix(name, "haa_") && name != "haa_config_generation" && name != "haa_build_info" {
			t.Errorf("%s without any configuration: %q", name, series(got[name]))
		}
	}
}
