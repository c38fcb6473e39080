package gossip

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"google.golang.org/protobuf/proto"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// fakeLocal is a settable Local.
type fakeLocal struct {
	mu   sync.Mutex
	meta *haav1.GossipMeta
	doc  *haav1.Fleet
}

func (l *fakeLocal) Meta() *haav1.GossipMeta {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.meta
}

func (l *fakeLocal) Offer() *haav1.Fleet {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.doc
}

func (l *fakeLocal) setAPI(api string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := proto.Clone(l.meta).(*haav1.GossipMeta)
	m.Api = api
	l.meta = m
}

func (l *fakeLocal) setDoc(gen uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.doc = fleetDoc(gen)
}

func fleetDoc(gen uint64) *haav1.Fleet {
	if gen == 0 {
		return nil
	}
	return &haav1.Fleet{Kind: "Fleet", Generation: gen, Nodes: []string{"a", "b", "c"}}
}

// offer is one recorded Offered call.
type offer struct {
	from string
	gen  uint64
}

// recHandler records Handler calls; while gate is open (non-nil, not
// closed) every call waits for it.
type recHandler struct {
	mu      sync.Mutex
	offers  []offer
	changes int
	gate    chan struct{}
	calls   int // calls entered
}

func (h *recHandler) wait() {
	h.mu.Lock()
	h.calls++
	gate := h.gate
	h.mu.Unlock()
	if gate != nil {
		<-gate
	}
}

func (h *recHandler) Offered(from string, doc *haav1.Fleet) {
	h.wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.offers = append(h.offers, offer{from, doc.GetGeneration()})
}

func (h *recHandler) Changed() {
	h.wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.changes++
}

func (h *recHandler) offered() []offer {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]offer(nil), h.offers...)
}

func (h *recHandler) hasOffer(o offer) bool {
	for _, x := range h.offered() {
		if x == o {
			return true
		}
	}
	return false
}

func (h *recHandler) changed() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changes
}

// logRec is an slog handler recording messages (and writing them to the
// test log with -v).
type logRec struct {
	t   *testing.T
	mu  *sync.Mutex
	rec *[]string
}

func newLogRec(t *testing.T) (*slog.Logger, func() []string) {
	var mu sync.Mutex
	var rec []string
	l := slog.New(&logRec{t: t, mu: &mu, rec: &rec})
	return l, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), rec...)
	}
}

func (h *logRec) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRec) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	h.mu.Lock()
	*h.rec = append(*h.rec, b.String())
	h.mu.Unlock()
	if testing.Verbose() && r.Level >= slog.LevelInfo {
		h.t.Log(b.String())
	}
	return nil
}
func (h *logRec) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRec) WithGroup(string) slog.Handler      { return h }

// fastTune makes memberlist quick: failures are detected within a second,
// and there is no periodic push/pull (every push/pull is a join).
func fastTune(c *memberlist.Config) {
	c.ProbeInterval = 50 * time.Millisecond
	c.ProbeTimeout = 25 * time.Millisecond
	c.GossipInterval = 10 * time.Millisecond
	c.PushPullInterval = time.Hour
	c.TCPTimeout = time.Second
	c.GossipToTheDeadTime = time.Second
}

// testNet is a set of in-memory nodes (memberlist.MockNetwork).
type testNet struct {
	t     *testing.T
	mnet  *memberlist.MockNetwork
	nodes map[string]*testNode
}

type testNode struct {
	name    string
	g       *Gossip
	local   *fakeLocal
	h       *recHandler
	mock    *memberlist.MockTransport
	tr      memberlist.NodeAwareTransport // what Start gets
	addr    string
	logs    func() []string
	drained bool
}

// newTestNet creates the transports of every node up front (MockNetwork
// is not safe for concurrent use).
func newTestNet(t *testing.T, names ...string) *testNet {
	n := &testNet{t: t, mnet: &memberlist.MockNetwork{}, nodes: map[string]*testNode{}}
	for _, name := range names {
		mock := n.mnet.NewTransport(name)
		ip, port, err := mock.FinalAdvertiseAddr("", 0)
		if err != nil {
			t.Fatal(err)
		}
		n.nodes[name] = &testNode{name: name, mock: mock, tr: newAsyncTransport(mock), addr: net.JoinHostPort(ip.String(), strconv.Itoa(port)),
			local: &fakeLocal{meta: &haav1.GossipMeta{Name: name, Api: name + ":9443"}}, h: &recHandler{}}
	}
	t.Cleanup(func() {
		for _, nd := range n.nodes {
			if nd.g != nil {
				_ = nd.g.Shutdown()
			}
			n.drain(nd)
		}
		// The drainers keep running: a memberlist goroutine still busy at
		// Shutdown (a probe's TCP fallback) may yet send.
	})
	return n
}

// start starts a node joining the first node named (unless it is that
// node), after mod changed its configuration.
func (n *testNet) start(name string, join string, mod func(*Config)) *testNode {
	n.t.Helper()
	nd := n.nodes[name]
	log, logs := newLogRec(n.t)
	nd.logs = logs
	cfg := Config{
		Name: name, Transport: nd.tr, Tune: fastTune, Log: log,
		RefreshInterval: 50 * time.Millisecond, ReconnectInterval: 50 * time.Millisecond,
	}
	if join != "" {
		cfg.Join = []string{n.nodes[join].addr}
	}
	if mod != nil {
		mod(&cfg)
	}
	g, err := Start(cfg, nd.local, nd.h)
	if err != nil {
		n.t.Fatalf("start %s: %v", name, err)
	}
	nd.g = g
	return nd
}

// kill stops a node without leaving; its transport then swallows what the
// others send it, like a dead host.
func (n *testNet) kill(name string) {
	nd := n.nodes[name]
	if err := nd.g.Shutdown(); err != nil {
		n.t.Fatal(err)
	}
	n.drain(nd)
}

// drain swallows, for good, what is sent to a stopped node's transport
// (MockTransport channels are unbuffered: senders would block forever).
func (n *testNet) drain(nd *testNode) {
	if nd.drained {
		return
	}
	nd.drained = true
	go func() {
		for {
			select {
			case <-nd.mock.PacketCh():
			case c := <-nd.mock.StreamCh():
				_ = c.Close()
			}
		}
	}()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// memberOf returns node's view of name.
func memberOf(g *Gossip, name string) (Member, bool) {
	for _, m := range g.View().Members {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

func stateOf(g *Gossip, name string) haav1.MemberState {
	m, _ := memberOf(g, name)
	return m.State
}

func allAlive(g *Gossip, names ...string) bool {
	for _, n := range names {
		if stateOf(g, n) != haav1.MemberState_MEMBER_STATE_ALIVE {
			return false
		}
	}
	return true
}

// asyncTransport sends a MockTransport's packets from a goroutine of its
// own, dropping them when too many wait, like UDP: with the mock's
// unbuffered channels, two nodes answering each other's pings at once
// would otherwise block each other's packet loop for good.
type asyncTransport struct {
	*memberlist.MockTransport
	out chan outPacket
}

type outPacket struct {
	b []byte
	a memberlist.Address
}

func newAsyncTransport(m *memberlist.MockTransport) *asyncTransport {
	t := &asyncTransport{MockTransport: m, out: make(chan outPacket, 256)}
	go func() {
		for p := range t.out {
			_, _ = t.MockTransport.WriteToAddress(p.b, p.a)
		}
	}()
	return t
}

func (t *asyncTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *asyncTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	select {
	case t.out <- outPacket{append([]byte(nil), b...), a}:
	default: // lost
	}
	return time.Now(), nil
}
