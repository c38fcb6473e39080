package gossip

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

const (
	alive = haav1.MemberState_MEMBER_STATE_ALIVE
	dead  = haav1.MemberState_MEMBER_STATE_DEAD
	left  = haav1.MemberState_MEMBER_STATE_LEFT
)

func TestMembership(t *testing.T) {
	n := newTestNet(t, "a", "b", "c")
	a := n.start("a", "", nil)
	b := n.start("b", "a", nil)
	c := n.start("c", "a", nil)
	for _, nd := range []*testNode{a, b, c} {
		waitFor(t, nd.name+" sees a, b and c alive", 5*time.Second, func() bool { return allAlive(nd.g, "a", "b", "c") })
	}
	v := b.g.View()
	if v.Self != "b" || len(v.Members) != 3 || v.Members[0].Name != "a" || v.Members[2].Name != "c" {
		t.Fatalf("view of b: %+v", v)
	}
	ma := v.Members[0]
	if ma.Addr != a.addr || ma.Meta.GetApi() != "a:9443" || ma.Since.IsZero() {
		t.Errorf("b's view of a: addr %s meta %v since %v; want addr %s, api a:9443", ma.Addr, ma.Meta, ma.Since, a.addr)
	}
	if st := a.g.Stats(); st.Alive != 3 {
		t.Errorf("a.Stats().Alive = %d, want 3", st.Alive)
	}
	if b.h.changed() == 0 {
		t.Error("b's Handler never heard Changed")
	}

	// c leaves: the others see LEFT.
	if err := c.g.Leave(time.Second); err != nil {
		t.Fatalf("c.Leave: %v", err)
	}
	n.drain(c)
	for _, nd := range []*testNode{a, b} {
		waitFor(t, nd.name+" sees c left", 5*time.Second, func() bool { return stateOf(nd.g, "c") == left })
	}
	// Leave and Shutdown again do nothing.
	if err := c.g.Leave(time.Second); err != nil {
		t.Errorf("second Leave: %v", err)
	}
	if err := c.g.Shutdown(); err != nil {
		t.Errorf("Shutdown after Leave: %v", err)
	}
	if err := c.g.CatchUp("a"); err != ErrShutdown {
		t.Errorf("CatchUp after Shutdown = %v, want ErrShutdown", err)
	}

	// b fails: a sees it DEAD, and keeps it in View with its last meta.
	n.kill("b")
	waitFor(t, "a sees b dead", 5*time.Second, func() bool { return stateOf(a.g, "b") == dead })
	mb, _ := memberOf(a.g, "b")
	if mb.Meta.GetApi() != "b:9443" {
		t.Errorf("a's view of dead b lost its meta: %v", mb.Meta)
	}
	if st := a.g.Stats(); st.Alive != 1 {
		t.Errorf("a.Stats().Alive = %d, want 1", st.Alive)
	}
}

func TestForget(t *testing.T) {
	n := newTestNet(t, "a", "b")
	a := n.start("a", "", func(c *Config) { c.Forget = 100 * time.Millisecond })
	b := n.start("b", "a", nil)
	waitFor(t, "a sees b", 5*time.Second, func() bool { return allAlive(a.g, "b") })
	if err := b.g.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	n.drain(b)
	waitFor(t, "a forgets b", 5*time.Second, func() bool { _, ok := memberOf(a.g, "b"); return !ok })
}

// cutTransport is a test transport that can be cut off from peers.
type cutTransport struct {
	memberlist.NodeAwareTransport
	mu  sync.Mutex
	cut bool
}

func (c *cutTransport) setCut(v bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = v
}

func (c *cutTransport) isCut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut
}

func (c *cutTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return c.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (c *cutTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if c.isCut() {
		return time.Now(), nil // lost
	}
	return c.NodeAwareTransport.WriteToAddress(b, a)
}

func (c *cutTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return c.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (c *cutTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if c.isCut() {
		return nil, errors.New("network unreachable")
	}
	return c.NodeAwareTransport.DialAddressTimeout(a, timeout)
}

func TestRejoinAfterPartition(t *testing.T) {
	// a and b lose each other long enough for memberlist to forget the
	// other; the reconnect loop joins them again once the network is back.
	n := newTestNet(t, "a", "b")
	cuts := map[string]*cutTransport{}
	partitionable := func(name string) func(*Config) {
		return func(c *Config) {
			ct := &cutTransport{NodeAwareTransport: n.nodes[name].tr}
			cuts[name] = ct
			c.Transport = ct
			c.Tune = func(mc *memberlist.Config) { fastTune(mc); mc.GossipToTheDeadTime = 100 * time.Millisecond }
		}
	}
	a := n.start("a", "", partitionable("a"))
	b := n.start("b", "a", partitionable("b"))
	waitFor(t, "a and b see each other", 5*time.Second, func() bool { return allAlive(a.g, "b") && allAlive(b.g, "a") })
	cuts["a"].setCut(true)
	cuts["b"].setCut(true)
	waitFor(t, "a and b see each other dead", 5*time.Second, func() bool {
		return stateOf(a.g, "b") == dead && stateOf(b.g, "a") == dead
	})
	time.Sleep(200 * time.Millisecond) // past GossipToTheDeadTime: memberlist gives up on the other
	cuts["a"].setCut(false)
	cuts["b"].setCut(false)
	waitFor(t, "a and b see each other again", 5*time.Second, func() bool { return allAlive(a.g, "b") && allAlive(b.g, "a") })
}

func TestUpdateMeta(t *testing.T) {
	n := newTestNet(t, "a", "b", "c")
	a := n.start("a", "", nil)
	b := n.start("b", "a", nil)
	c := n.start("c", "a", nil)
	waitFor(t, "c sees everyone", 5*time.Second, func() bool { return allAlive(c.g, "a", "b", "c") })
	a.local.setAPI("10.0.0.1:9443")
	a.g.UpdateMeta()
	for _, nd := range []*testNode{b, c} {
		waitFor(t, nd.name+" sees a's new api", 5*time.Second, func() bool {
			m, _ := memberOf(nd.g, "a")
			return m.Meta.GetApi() == "10.0.0.1:9443"
		})
	}
}

// bigSummary has many instances, far more than one packet holds.
func bigSummary(node string, seq uint64, instances int) *haav1.NodeSummary {
	s := &haav1.NodeSummary{Node: node, Incarnation: 7, Seq: seq, Time: timestamppb.New(time.Unix(1700000000, 0)),
		Health: &haav1.NodeHealth{Healthy: true, Problems: []string{"none"}}}
	for i := range instances {
		s.Instances = append(s.Instances, &haav1.InstanceSummary{
			Name: fmt.Sprintf("VI_%03d", i), Interface: "eth0", Vrid: uint32(i%255 + 1), Segment: "10.77.0.0/24",
			State: haav1.State_STATE_BACKUP, Priority: 100,
			Vips:       []string{fmt.Sprintf("10.77.0.%d/24", i%250), fmt.Sprintf("fd00::%x/64", i)},
			Definition: "0123456789abcdef", FromFleet: true,
		})
	}
	return s
}

func TestSummaryParts(t *testing.T) {
	n := newTestNet(t, "a", "b", "c")
	a := n.start("a", "", nil)
	b := n.start("b", "a", nil)
	c := n.start("c", "a", nil)
	waitFor(t, "c sees everyone", 5*time.Second, func() bool { return allAlive(c.g, "a", "b", "c") })

	s := bigSummary("a", 1, 60)
	if parts := splitSummary(s); len(parts) < 3 {
		t.Fatalf("60 instances split into %d parts, want several", len(parts))
	}
	a.g.SetSummary(s)
	for _, nd := range []*testNode{b, c} {
		waitFor(t, nd.name+" has a's summary", 5*time.Second, func() bool {
			m, _ := memberOf(nd.g, "a")
			return m.Summary.GetSeq() == 1
		})
		m, _ := memberOf(nd.g, "a")
		if !proto.Equal(m.Summary, s) {
			t.Errorf("%s's copy of a's summary differs:\n got %d instances, part %d/%d\nwant %d instances",
				nd.name, len(m.Summary.GetInstances()), m.Summary.GetPart(), m.Summary.GetParts(), len(s.Instances))
		}
		if m.Heard.IsZero() {
			t.Errorf("%s: Heard not set", nd.name)
		}
	}
	// The periodic refresh (same seq) moves Heard.
	m1, _ := memberOf(b.g, "a")
	waitFor(t, "b hears a's summary again", 5*time.Second, func() bool {
		m, _ := memberOf(b.g, "a")
		return m.Heard.After(m1.Heard)
	})
	// A newer, small one replaces it.
	a.g.SetSummary(bigSummary("a", 2, 1))
	waitFor(t, "b has seq 2", 5*time.Second, func() bool {
		m, _ := memberOf(b.g, "a")
		return m.Summary.GetSeq() == 2 && len(m.Summary.GetInstances()) == 1
	})
	// Own summary in own view.
	if m, _ := memberOf(a.g, "a"); m.Summary.GetSeq() != 2 || m.Heard.IsZero() {
		t.Errorf("a's own summary in its view: %v", m.Summary)
	}
	// A node joining later gets the summaries by push/pull, of a and of b.
	b.g.SetSummary(bigSummary("b", 5, 2))
	waitFor(t, "c has b's summary", 5*time.Second, func() bool {
		m, _ := memberOf(c.g, "b")
		return m.Summary.GetSeq() == 5
	})
}

func TestSummaryByPushPull(t *testing.T) {
	n := newTestNet(t, "a", "b", "c")
	a := n.start("a", "", nil)
	b := n.start("b", "a", nil)
	waitFor(t, "a sees b", 5*time.Second, func() bool { return allAlive(a.g, "b") })
	b.g.SetSummary(bigSummary("b", 3, 40))
	waitFor(t, "a has b's summary", 5*time.Second, func() bool {
		m, _ := memberOf(a.g, "b")
		return m.Summary.GetSeq() == 3
	})
	// c joins a: a's push/pull carries b's summary (complete, one piece).
	c := n.start("c", "a", func(c *Config) { c.RefreshInterval = time.Hour })
	waitFor(t, "c has b's summary", 5*time.Second, func() bool {
		m, _ := memberOf(c.g, "b")
		return m.Summary.GetSeq() == 3 && len(m.Summary.GetInstances()) == 40
	})
}

func TestAntiEntropyOnJoin(t *testing.T) {
	n := newTestNet(t, "a", "b", "c")
	n.nodes["a"].local.setDoc(2)
	n.nodes["b"].local.setDoc(2)
	n.nodes["c"].local.setDoc(1)
	a := n.start("a", "", nil)
	b := n.start("b", "a", nil)
	waitFor(t, "a sees b", 5*time.Second, func() bool { return allAlive(a.g, "b") })
	// Both sides of the join hear the other's document.
	waitFor(t, "b offered a's doc", 5*time.Second, func() bool { return b.h.hasOffer(offer{"a", 2}) })
	waitFor(t, "a offered b's doc", 5*time.Second, func() bool { return a.h.hasOffer(offer{"b", 2}) })

	// c starts later, with an older document: its join brings a's.
	c := n.start("c", "a", nil)
	waitFor(t, "c offered a's newer doc", 5*time.Second, func() bool { return c.h.hasOffer(offer{"a", 2}) })
	waitFor(t, "a offered c's older doc", 5*time.Second, func() bool { return a.h.hasOffer(offer{"c", 1}) })
	for _, o := range c.h.offered() {
		if o.from == "c" {
			t.Errorf("c was offered its own document: %v", o)
		}
	}
	// A node without a document offers none.
	if a.g.joinMerges.Load() == 0 {
		t.Error("no join merge counted")
	}
}

func TestPeriodicPushPullOffersNothing(t *testing.T) {
	n := newTestNet(t, "a", "b")
	periodic := func(c *Config) {
		c.Tune = func(mc *memberlist.Config) { fastTune(mc); mc.PushPullInterval = 20 * time.Millisecond }
	}
	n.nodes["a"].local.setDoc(2)
	a := n.start("a", "", periodic)
	b := n.start("b", "a", periodic)
	waitFor(t, "b offered a's doc on join", 5*time.Second, func() bool { return b.h.hasOffer(offer{"a", 2}) })

	// A rolling apply: a now stores and offers 3. Periodic push/pulls must
	// not carry it to b.
	a.local.setDoc(3)
	before := b.g.periodicMerges.Load()
	waitFor(t, "periodic push/pulls", 5*time.Second, func() bool { return b.g.periodicMerges.Load() >= before+5 })
	if b.h.hasOffer(offer{"a", 3}) {
		t.Fatal("a periodic push/pull offered a document")
	}
	// CatchUp is a join-type sync: it does.
	if err := b.g.CatchUp("a"); err != nil {
		t.Fatalf("CatchUp: %v", err)
	}
	waitFor(t, "b offered a's doc 3 after CatchUp", 5*time.Second, func() bool { return b.h.hasOffer(offer{"a", 3}) })

	if err := b.g.CatchUp("zz"); err == nil || !strings.Contains(err.Error(), "zz") {
		t.Errorf("CatchUp(unknown) = %v", err)
	}
	if err := b.g.CatchUp("b"); err == nil {
		t.Error("CatchUp(self) succeeded")
	}
}

func TestWrongKeyAndLabelRejected(t *testing.T) {
	k1 := []byte("0123456789abcdef0123456789abcdef")
	k2 := []byte("fedcba9876543210fedcba9876543210")
	n := newTestNet(t, "a", "b", "x", "y")
	with := func(key []byte, label string) func(*Config) {
		return func(c *Config) { c.Key, c.Label = key, label }
	}
	a := n.start("a", "", with(k1, "prod"))
	n.start("b", "a", with(k1, "prod"))
	waitFor(t, "a sees b", 5*time.Second, func() bool { return allAlive(a.g, "b") })

	x := n.start("x", "a", with(k2, "prod"))
	waitFor(t, "a rejects x's key", 5*time.Second, func() bool { return a.g.Stats().Rejected["key"] >= 2 })
	y := n.start("y", "a", with(k1, "lab"))
	waitFor(t, "a rejects y's label", 5*time.Second, func() bool { return a.g.Stats().Rejected["label"] >= 2 })

	// x fails to read a's answer too.
	waitFor(t, "x counts a's answer as another key", 5*time.Second, func() bool { return x.g.Stats().Rejected["key"] >= 1 })
	for _, name := range []string{"x", "y"} {
		if _, ok := memberOf(a.g, name); ok {
			t.Errorf("a let %s in", name)
		}
	}
	if len(x.g.View().Members) != 1 || len(y.g.View().Members) != 1 {
		t.Errorf("x or y joined: %v, %v", x.g.View().Members, y.g.View().Members)
	}
	if st := a.g.Stats(); st.Rejected["malformed"] != 0 {
		t.Errorf("malformed = %d", st.Rejected["malformed"])
	}
	// Rejections are logged once, then at most every 10s.
	var keyLines, labelLines int
	for _, l := range a.logs() {
		if strings.Contains(l, "reason=key") {
			keyLines++
		}
		if strings.Contains(l, "reason=label") {
			labelLines++
		}
	}
	if keyLines != 1 || labelLines != 1 {
		t.Errorf("a logged %d key and %d label rejections, want 1 each (rate limited); logs:\n%s",
			keyLines, labelLines, strings.Join(a.logs(), "\n"))
	}
}

// TestRealSockets runs two nodes over UDP and TCP on 127.0.0.1 with a key
// and a label, and a third with another key.
func TestRealSockets(t *testing.T) {
	key := []byte("0123456789abcdef")
	start := func(name string, key []byte, join ...string) *Gossip {
		t.Helper()
		log, _ := newLogRec(t)
		g, err := Start(Config{Name: name, Bind: "127.0.0.1:0", Join: join, Key: key, Label: "t", Log: log,
			Tune: fastTune, ReconnectInterval: 50 * time.Millisecond}, &fakeLocal{meta: &haav1.GossipMeta{Name: name}}, &recHandler{})
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() { _ = g.Shutdown() })
		return g
	}
	a := start("a", key)
	addr := a.ml.Load().LocalNode().Address()
	if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
		t.Fatalf("a advertises %s", addr)
	}
	b := start("b", key, addr)
	waitFor(t, "a and b see each other", 5*time.Second, func() bool { return allAlive(a, "b") && allAlive(b, "a") })
	b.SetSummary(bigSummary("b", 1, 30))
	waitFor(t, "a has b's summary", 5*time.Second, func() bool {
		m, _ := memberOf(a, "b")
		return len(m.Summary.GetInstances()) == 30
	})
	s1 := a.Stats()
	if s1.BytesSent == 0 || s1.BytesReceived == 0 {
		t.Fatalf("byte counters: %+v", s1)
	}
	waitFor(t, "byte counters grow", 5*time.Second, func() bool {
		s := a.Stats()
		return s.BytesSent > s1.BytesSent && s.BytesReceived > s1.BytesReceived
	})

	x := start("x", []byte("fedcba9876543210"), addr)
	waitFor(t, "a rejects x", 5*time.Second, func() bool { return a.Stats().Rejected["key"] >= 1 })
	if _, ok := memberOf(a, "x"); ok || len(x.View().Members) != 1 {
		t.Error("x with another key joined")
	}

	if err := b.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a sees b left", 5*time.Second, func() bool { return stateOf(a, "b") == left })
}

// TestHandlerBlocked checks a Handler that does not return holds up
// neither memberlist nor the delegates, and loses no document.
func TestHandlerBlocked(t *testing.T) {
	n := newTestNet(t, "a", "b", "c")
	gate := make(chan struct{})
	n.nodes["a"].h.gate = gate
	released := false
	release := func() {
		if !released {
			released = true
			n.nodes["a"].h.mu.Lock()
			n.nodes["a"].h.gate = nil
			n.nodes["a"].h.mu.Unlock()
			close(gate)
		}
	}
	t.Cleanup(release)
	n.nodes["b"].local.setDoc(5)
	a := n.start("a", "", nil)
	n.start("b", "a", nil)
	n.start("c", "a", nil)
	waitFor(t, "a's Handler is blocked", 5*time.Second, func() bool {
		a.h.mu.Lock()
		defer a.h.mu.Unlock()
		return a.h.calls > 0
	})
	// Membership goes on.
	waitFor(t, "a sees b and c while its Handler is blocked", 5*time.Second, func() bool { return allAlive(a.g, "a", "b", "c") })

	// A flood of documents and changes: every delegate call returns at once.
	d := (*delegate)(a.g)
	t0 := time.Now()
	for i := uint64(1); i <= 2000; i++ {
		st := &haav1.GossipState{Document: fleetDoc(i), Summaries: []*haav1.NodeSummary{{Node: "p"}}}
		buf, _ := proto.Marshal(st)
		d.MergeRemoteState(buf, true)
		(*events)(a.g).NotifyUpdate(&memberlist.Node{Name: "p", Addr: net.IPv4(127, 0, 0, 9), Port: 1})
	}
	if took := time.Since(t0); took > 2*time.Second {
		t.Errorf("2000 delegate calls took %v while the Handler was blocked", took)
	}
	a.g.hq.mu.Lock()
	queued := len(a.g.hq.items)
	a.g.hq.mu.Unlock()
	if queued > 8 {
		t.Errorf("queue holds %d entries, want a handful (documents per peer, coalesced changes)", queued)
	}

	release()
	waitFor(t, "a's Handler gets p's newest document", 5*time.Second, func() bool { return a.h.hasOffer(offer{"p", 2000}) })
	waitFor(t, "a's Handler gets b's document", 5*time.Second, func() bool { return a.h.hasOffer(offer{"b", 5}) })
	var fromP int
	for _, o := range a.h.offered() {
		if o.from == "p" {
			fromP++
		}
	}
	if fromP > 2 {
		t.Errorf("Handler got %d documents from p, want the newest only (and perhaps the first)", fromP)
	}
}

func TestSuspect(t *testing.T) {
	n := newTestNet(t, "a", "b")
	slow := func(c *Config) {
		c.Tune = func(mc *memberlist.Config) { fastTune(mc); mc.SuspicionMult = 8 } // suspect for 400ms
	}
	a := n.start("a", "", slow)
	n.start("b", "a", slow)
	waitFor(t, "a sees b", 5*time.Second, func() bool { return allAlive(a.g, "b") })
	n.kill("b")
	waitFor(t, "a suspects b", 5*time.Second, func() bool {
		return stateOf(a.g, "b") == haav1.MemberState_MEMBER_STATE_SUSPECT
	})
	m, _ := memberOf(a.g, "b")
	if m.Since.IsZero() {
		t.Error("suspect without Since")
	}
	waitFor(t, "a declares b dead", 5*time.Second, func() bool { return stateOf(a.g, "b") == dead })
}

// TestShutdownStopsGoroutines checks Leave and Shutdown are quick (even
// right after UpdateMeta) and leave no goroutine behind.
func TestShutdownStopsGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	start := func(name string, join ...string) *Gossip {
		t.Helper()
		g, err := Start(Config{Name: name, Bind: "127.0.0.1:0", Join: join, Tune: fastTune, ReconnectInterval: 20 * time.Millisecond},
			&fakeLocal{meta: &haav1.GossipMeta{Name: name}, doc: fleetDoc(1)}, &recHandler{})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	a := start("a")
	b := start("b", a.ml.Load().LocalNode().Address())
	waitFor(t, "b joins a", 5*time.Second, func() bool { return allAlive(a, "b") })
	b.UpdateMeta()
	t0 := time.Now()
	// Leave returns once the leave is gossiped, long before its timeout
	// (the bound is generous: CI runs packages in parallel on 2 cores).
	if err := b.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took > 4*time.Second { // under the Leave timeout: it did not wait it out
		t.Errorf("Leave and Shutdown took %v", took)
	}
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after Shutdown, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}
