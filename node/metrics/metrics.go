// Package metrics exposes the agent's state as Prometheus metrics: a
// collector that reads the agent's snapshots at every scrape (no state of
// its own, so a metric can never disagree with the API), the registry
// haad serves and its HTTP handler, which writes the load balancer's
// per-real-server families straight in the text format (a table of tens
// of thousands of real servers is scraped in tens of milliseconds).
//
// Names follow Prometheus conventions: the haa_ prefix, base units
// (seconds), _total for counters. The set is documented in deploy/docs.
package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/haa-dev/haa/node"
	"github.com/haa-dev/haa/node/balancer"
	"github.com/haa-dev/haa/node/fleet"
	"github.com/haa-dev/haa/node/tracking"
	"github.com/haa-dev/haa/node/vrrp"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Source is what the collector reads of the agent (AgentSource). Every
// method reads a snapshot: a scrape never waits for an apply or for the
// kernel.
type Source interface {
	Node() node.NodeInfo
	Instances() []node.InstanceStatus
	Trackers() []tracking.TrackerState
	InterfaceDrops() map[string]map[vrrp.DropReason]uint64
	// LoadBalancer is the load balancer's snapshot (no connection
	// counts: a scrape never asks the kernel).
	LoadBalancer() *balancer.Snapshot
	FleetStatus() fleet.Status
}

// AgentSource is the Source of an agent.
func AgentSource(a *node.Agent) Source { return agentSource{a} }

type agentSource struct{ *node.Agent }

func (s agentSource) Trackers() []tracking.TrackerState { return s.Tracking().Snapshot().Trackers }

func (s agentSource) InterfaceDrops() map[string]map[vrrp.DropReason]uint64 {
	return s.VRRP().InterfaceDrops()
}

func (s agentSource) LoadBalancer() *balancer.Snapshot { return s.Balancer().Status() }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// The metrics, by name.
var (
	instanceState = desc("haa_instance_state",
		"VRRP state of the instance: 1 for the current state, 0 for the others.", "vrrp_instance", "state")
	instanceInfo = desc("haa_instance_info",
		"Always 1: what the instance runs on, as labels (its interface, address family ipv4 or ipv6, vrid, and virtual MAC interface, empty without one).",
		"vrrp_instance", "interface", "family", "vrid", "vmac_interface")
	instancePriority = desc("haa_instance_priority",
		"Configured VRRP priority of the instance.", "vrrp_instance")
	instanceEffPriority = desc("haa_instance_effective_priority",
		"VRRP priority the instance advertises, after its trackers.", "vrrp_instance")
	instanceTransitions = desc("haa_instance_transitions_total",
		"State changes of the instance since it started.", "vrrp_instance")
	advertsSent = desc("haa_instance_adverts_sent_total",
		"VRRP adverts the instance sent.", "vrrp_instance")
	advertsReceived = desc("haa_instance_adverts_received_total",
		"VRRP adverts the instance received and handled.", "vrrp_instance")
	packetsDropped = desc("haa_instance_packets_dropped_total",
		"VRRP packets for the instance that were discarded, by reason.", "vrrp_instance", "reason")
	interfaceDropped = desc("haa_interface_packets_dropped_total",
		"VRRP packets an interface discarded before they reached an instance (e.g. unknown_vrid: another virtual router, or a vrid configured on one node only), by reason.", "interface", "reason")
	garpsSent = desc("haa_instance_garps_sent_total",
		"Gratuitous ARPs the instance sent for its virtual addresses.", "vrrp_instance")
	timerSlip = desc("haa_instance_timer_slip_seconds",
		"How late the instance's protocol timers fired: a master's advert timer, a backup's master-down timer.", "vrrp_instance", "timer")
	trackerUp = desc("haa_tracker_up",
		"Whether the tracker is OK (1) or failed (0).", "tracker")
	gossipMembers = desc("haa_gossip_members",
		"Members of the fleet as this node sees them (itself included), by gossip state.", "state")
	gossipMemberHealthy = desc("haa_gossip_member_healthy",
		"Whether the member reports itself healthy (1) or not (0).", "node")
	configGeneration = desc("haa_config_generation",
		"Generation of the running configuration: +1 at every change.")
	buildInfo = desc("haa_build_info",
		"Always 1; the labels say which haad runs.", "version")
)

// Label values.
var (
	stateNames = []struct {
		s    vrrp.State
		name string
	}{{vrrp.Init, "init"}, {vrrp.Backup, "backup"}, {vrrp.Master, "master"}, {vrrp.Fault, "fault"}}
	memberStates = []struct {
		s    haav1.MemberState
		name string
	}{
		{haav1.MemberState_MEMBER_STATE_ALIVE, "alive"}, {haav1.MemberState_MEMBER_STATE_SUSPECT, "suspect"},
		{haav1.MemberState_MEMBER_STATE_DEAD, "dead"}, {haav1.MemberState_MEMBER_STATE_LEFT, "left"},
	}
)

// Collector is a prometheus.Collector over a Source.
type Collector struct {
	src Source
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns the collector of src.
func NewCollector(src Source) *Collector { return &Collector{src: src} }

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		instanceState, instanceInfo, instancePriority, instanceEffPriority, instanceTransitions, advertsSent, advertsReceived,
		packetsDropped, interfaceDropped, garpsSent, timerSlip, trackerUp, gossipMembers, gossipMemberHealthy,
		configGeneration, buildInfo,
	} {
		ch <- d
	}
}

// Collect reads the agent and sends every metric.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	m := emitter{ch}
	n := c.src.Node()
	m.gauge(configGeneration, float64(n.Generation))
	m.gauge(buildInfo, 1, n.Version)
	for _, in := range c.src.Instances() {
		c.instance(m, in)
	}
	for _, t := range c.src.Trackers() {
		m.gauge(trackerUp, bool01(t.OK), t.Name)
	}
	for iface, drops := range c.src.InterfaceDrops() {
		for _, r := range vrrp.DropReasons() {
			m.counter(interfaceDropped, drops[r], iface, r.String())
		}
	}
	c.fleet(m)
}

func (c *Collector) instance(m emitter, in node.InstanceStatus) {
	name := in.Config.VRRP.Name
	for _, s := range stateNames {
		m.gauge(instanceState, bool01(in.Status.State == s.s), name, s.name)
	}
	vmac := ""
	if in.Config.VMAC != nil {
		vmac = in.Config.VMAC.Name
	}
	m.gauge(instanceInfo, 1, name, in.Config.Interface, in.Config.Family, strconv.Itoa(int(in.Config.VRRP.VRID)), vmac)
	m.gauge(instancePriority, float64(in.Config.VRRP.Priority), name)
	m.gauge(instanceEffPriority, float64(in.Status.Priority), name)
	st := in.Stats
	if st == nil {
		return
	}
	m.counter(instanceTransitions, st.Transitions.Load(), name)
	m.counter(advertsSent, st.AdvertsSent.Load(), name)
	m.counter(advertsReceived, st.AdvertsReceived.Load(), name)
	m.counter(garpsSent, st.GARPsSent.Load(), name)
	for _, r := range vrrp.DropReasons() {
		m.counter(packetsDropped, st.Drops(r), name, r.String())
	}
	for _, k := range vrrp.TimerKinds() {
		s := st.TimerSlip(k).Snapshot()
		buckets := make(map[float64]uint64, len(s.Cumulative))
		for i, le := range vrrp.SlipBuckets {
			buckets[le.Seconds()] = s.Cumulative[i]
		}
		h, err := prometheus.NewConstHistogram(timerSlip, s.Count, s.Sum.Seconds(), buckets, name, k.String())
		m.put(timerSlip, h, err)
	}
}

func (c *Collector) fleet(m emitter) {
	f := c.src.FleetStatus()
	if len(f.Members) == 0 {
		return // no configuration yet
	}
	count := map[haav1.MemberState]int{}
	for _, mem := range f.Members {
		count[mem.State]++
		// A dead or departed member's last summary is stale: report
		// health only for members that are there.
		alive := mem.State == haav1.MemberState_MEMBER_STATE_ALIVE || mem.State == haav1.MemberState_MEMBER_STATE_SUSPECT
		if h := mem.Health; h != nil && alive {
			m.gauge(gossipMemberHealthy, bool01(h.Healthy), mem.Name)
		}
	}
	for _, s := range memberStates {
		m.gauge(gossipMembers, float64(count[s.s]), s.name)
	}
}

// emitter sends metrics; one that cannot be built is sent as invalid, so
// the scrape reports it and the others still go out.
type emitter struct{ ch chan<- prometheus.Metric }

func (e emitter) put(d *prometheus.Desc, m prometheus.Metric, err error) {
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	e.ch <- m
}

func (e emitter) gauge(d *prometheus.Desc, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, labels...)
	e.put(d, m, err)
}

func (e emitter) counter(d *prometheus.Desc, v uint64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	e.put(d, m, err)
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// NewRegistry returns a registry with the agent's collector, the Go runtime
// collector and the process collector. Nothing is registered globally.
func NewRegistry(src Source) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(src), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
