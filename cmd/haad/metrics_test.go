package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/haa-dev/haa/deploy/lab"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// metricsListen is where every node serves its metrics: each namespace has
// its own loopback, so the nodes do not clash.
const metricsListen = "127.0.0.1:9650"

// startWithMetrics runs haad on n with the instance and metrics.listen.
func (c *cluster) startWithMetrics(n *lab.Node, in instance) {
	c.t.Helper()
	cfg := c.config(n, in) + "metrics: {listen: \"" + metricsListen + "\"}\n"
	p, err := n.StartHaad(c.dir, c.bin, cfg, "--log-level", "debug", "--status-file", c.statusPath(n))
	if err != nil {
		c.t.Fatal(err)
	}
	c.procs[n] = p
}

// scrape is one parsed scrape of a node's /metrics.
type scrape struct {
	text string
	mfs  map[string]*dto.MetricFamily
}

// scrape fetches a node's metrics from inside its namespace and parses them
// as Prometheus does (the text format, expfmt).
func (c *cluster) scrape(n *lab.Node) scrape {
	c.t.Helper()
	var text string
	err := lab.Poll(5*time.Second, 50*time.Millisecond, "the metrics of "+n.Name, func() (bool, error) {
		var err error
		text, err = newClient(n).get("http://" + metricsListen + "/metrics")
		return err == nil, nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		c.t.Fatalf("parsing the metrics of %s: %v\n%s", n.Name, err, text)
	}
	return scrape{text: text, mfs: mfs}
}

// value returns the gauge or counter of name whose labels include want
// (histograms: their sample count); ok is false if there is none.
func (s scrape) value(name string, want map[string]string) (float64, bool) {
	mf := s.mfs[name]
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && have[k] == v
		}
		if !match {
			continue
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// lines returns the scrape's sample lines of the haa_ families, without
// the many drop reasons that are 0, for the log.
func (s scrape) lines() string {
	var out []string
	for _, l := range strings.Split(s.text, "\n") {
		if strings.HasPrefix(l, "haa_") && !(strings.HasPrefix(l, "haa_instance_packets_dropped_total") && strings.HasSuffix(l, " 0")) &&
			!strings.Contains(l, "_bucket{") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// check asserts one sample against cond.
func (s scrape) check(t *testing.T, node, name string, labels map[string]string, what string, cond func(float64) bool) {
	t.Helper()
	v, ok := s.value(name, labels)
	if !ok {
		t.Errorf("%s: no %s%v", node, name, labels)
		return
	}
	if !cond(v) {
		t.Errorf("%s: %s%v = %v, want %s", node, name, labels, v, what)
	}
}

func eq(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
func atLeast(n float64) func(float64) bool {
	return func(v float64) bool { return v >= n }
}

// Two nodes serve metrics; the master's haad stops and the scrape of the
// node that took over shows the transition and its counters.
func TestMetricsAfterFailover(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2)
	n1, n2 := c.lab.Nodes[0], c.lab.Nodes[1]
	c.startWithMetrics(n1, instance{name: "VI_1", vrid: 51, prio: 200})
	c.startWithMetrics(n2, instance{name: "VI_1", vrid: 51, prio: 100})
	c.waitHolder(vip, n1, 5*time.Second)
	c.stableHolder(vip, n1, 300*time.Millisecond)

	vi1 := map[string]string{"vrrp_instance": "VI_1"}
	state := func(s string) map[string]string { return map[string]string{"vrrp_instance": "VI_1", "state": s} }
	before := c.scrape(n1)
	before.check(t, "n1", "haa_instance_state", state("master"), "1", eq(1))
	before.check(t, "n1", "haa_instance_timer_slip_seconds", map[string]string{"vrrp_instance": "VI_1", "timer": "advert"}, "> 0 advert timers", atLeast(1))
	b2 := c.scrape(n2)
	b2.check(t, "n2", "haa_instance_state", state("backup"), "1", eq(1))
	b2.check(t, "n2", "haa_instance_state", state("master"), "0", eq(0))
	b2.check(t, "n2", "haa_instance_adverts_received_total", vi1, "> 0", atLeast(1))

	// The API reports where the metrics are, and its calls are counted.
	a2 := c.api(n2)
	resp, err := a2.GetNode(context.Background(), &haav1.GetNodeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetNode().GetMetricsAddress(); got != "http://"+metricsListen+"/metrics" {
		t.Fatalf("GetNode metrics address %q", got)
	}

	// The failover: n1's haad stops (priority 0), n2 takes over.
	if err := c.procs[n1].Stop(5 * time.Second); err != nil {
		t.Fatalf("haad with metrics did not exit cleanly on SIGTERM: %v", err)
	}
	c.waitHolder(vip, n2, 3*time.Second)
	err = n1.Do(func() error {
		conn, err := net.DialTimeout("tcp", metricsListen, time.Second)
		if err == nil {
			conn.Close()
			t.Error("n1's metrics listener still open after haad stopped")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	var s scrape
	err = lab.Poll(3*time.Second, 50*time.Millisecond, "n2 master in its metrics", func() (bool, error) {
		s = c.scrape(n2)
		v, _ := s.value("haa_instance_state", state("master"))
		return v == 1, nil
	})
	if err != nil {
		t.Fatalf("%v:\n%s", err, s.lines())
	}
	t.Logf("n2 after the failover:\n%s", s.lines())
	for _, st := range []string{"init", "backup", "fault"} {
		s.check(t, "n2", "haa_instance_state", state(st), "0", eq(0))
	}
	s.check(t, "n2", "haa_instance_transitions_total", vi1, ">= 1", atLeast(1))
	s.check(t, "n2", "haa_instance_adverts_sent_total", vi1, "> 0", atLeast(1))
	s.check(t, "n2", "haa_instance_adverts_received_total", vi1, "> 0", atLeast(1))
	s.check(t, "n2", "haa_instance_garps_sent_total", vi1, "> 0", atLeast(1))
	s.check(t, "n2", "haa_instance_priority", vi1, "100", eq(100))
	s.check(t, "n2", "haa_instance_effective_priority", vi1, "100", eq(100))
	s.check(t, "n2", "haa_instance_packets_dropped_total", map[string]string{"vrrp_instance": "VI_1", "reason": "auth_failure"}, "0", eq(0))
	s.check(t, "n2", "haa_instance_timer_slip_seconds", map[string]string{"vrrp_instance": "VI_1", "timer": "master_down"}, ">= 1 master-down timer", atLeast(1))
	s.check(t, "n2", "haa_config_generation", nil, "1", eq(1))
	s.check(t, "n2", "haa_build_info", nil, "1", eq(1))
	s.check(t, "n2", "haa_gossip_members", map[string]string{"state": "alive"}, "1 (itself)", eq(1))
	s.check(t, "n2", "haa_api_requests_total", map[string]string{"method": "/haa.v1.AgentService/GetNode", "code": "OK"}, ">= 1", atLeast(1))
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if s.mfs[name] == nil {
			t.Errorf("n2: no %s", name)
		}
	}
}
