// Package gossip connects haa agents into a fleet over hashicorp/memberlist.
//
// Gossip informs and distributes; VRRP elects. Nothing learnt through gossip
// moves a virtual router: mastership is decided by VRRP adverts on each
// segment alone, and a node cut off from its gossip peers keeps running what
// it runs. Gossip tells every node who is in the fleet (alive, suspect, dead
// or left), what each member runs and how healthy it is, and carries the
// fleet document to nodes that missed an apply.
//
// What travels:
//   - memberlist node metadata: the node's GossipMeta (API address, version,
//     configuration and fleet generations and hashes), under 512 bytes,
//     updated when its name, API address or version change: the rest
//     changes at every apply and travels in the summary (NodeSummary.meta;
//     View prefers it), since every member relays every metadata change;
//   - broadcasts: the node's NodeSummary (health, instances, and its
//     virtual servers' health: the real servers its checks see down),
//     split into parts of about 1000 bytes so that each fits one UDP
//     packet, and sent again every RefreshInterval: every part for 30 s
//     after a change, then the first only (push/pull repairs a lost one);
//   - push/pull state (TCP): a GossipState with every complete summary the
//     node knows and, on join-type syncs only (the start-up join, a rejoin
//     after a partition, CatchUp), the fleet document the node offers. A
//     periodic push/pull never carries a document, so a rolling apply that
//     holds a newer document back is not overtaken.
//
// memberlist calls this package on its own goroutines; none of those calls
// blocks. What peers send reaches the Handler through a queue drained in
// order by one goroutine, so a slow Handler never holds up the protocol.
package gossip

import (
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"google.golang.org/protobuf/proto"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// DefaultPort is the gossip port (TCP and UDP) when an address has none.
const DefaultPort = 7946

const (
	defaultRefresh = 5 * time.Second
	// fullRefreshFor is how long after a change every part of a summary
	// is broadcast again at each refresh; after it, only its first part.
	fullRefreshFor   = 30 * time.Second
	defaultReconnect = 2 * time.Second
	defaultForget    = 24 * time.Hour
	// maxRejoins bounds the failed members tried in one reconnect round
	// (each try can take up to memberlist's TCPTimeout).
	maxRejoins = 3
	// metaWait is how long UpdateNode waits for its broadcast to finish
	// (all retransmits): the update is queued before it waits, so gossip
	// does not wait (0 would wait forever).
	metaWait = time.Millisecond
)

var (
	// ErrUnknownMember is wrapped when a node is not a member gossip knows.
	ErrUnknownMember = errors.New("not a known gossip member")
	// ErrShutdown is returned by calls that need a running Gossip.
	ErrShutdown = errors.New("gossip is shut down")
)

// Config configures Start.
type Config struct {
	// Name is the node's name in the fleet (AgentConfig.name).
	Name string
	// Bind is the address to listen on, host:port (IP address; port
	// default 7946; port 0 picks a free one). Empty: 0.0.0.0:7946.
	Bind string
	// Advertise is the address the others reach this node at, host[:port]
	// (port default: the bound one). Empty: the bound address, or a private
	// address of the host when bound to 0.0.0.0.
	Advertise string
	// Join lists members to join at start (host, host:port), retried every
	// ReconnectInterval while no other member is alive.
	Join []string
	// Key encrypts and authenticates gossip (16, 24 or 32 bytes; see
	// LoadKey). Nil: clear text.
	Key []byte
	// Label separates fleets sharing a network: only members with the same
	// label hear each other.
	Label string
	// Log receives this package's and memberlist's messages. Nil: discard.
	Log *slog.Logger
	// Transport replaces memberlist's UDP/TCP transport on Bind (tests:
	// memberlist.MockNetwork). Either one is wrapped to count bytes.
	Transport memberlist.Transport
	// Tune changes memberlist's configuration last (tests: short timers).
	Tune func(*memberlist.Config)
	// RefreshInterval is how often the node's summary is broadcast again
	// unchanged. Default 5s.
	RefreshInterval time.Duration
	// ReconnectInterval is how often failed members are rejoined and, while
	// the node is alone, the Join list is tried again. Default 2s.
	ReconnectInterval time.Duration
	// Forget is how long dead and departed members stay in View.
	// Default 24h.
	Forget time.Duration
}

// Local is what this node contributes. Its methods are called from
// memberlist goroutines: they must be fast and never block.
type Local interface {
	// Meta is the node's metadata. Encoded, it must stay under 512 bytes;
	// otherwise the api field is truncated (and a warning logged).
	Meta() *haav1.GossipMeta
	// Offer is the document offered to peers on join-type syncs; nil: none.
	// Gossip does not modify it.
	Offer() *haav1.Fleet
}

// Handler hears from peers. Its methods are called in order, never
// concurrently, from one goroutine of the gossip package and without gossip
// locks held, so they may call back into Gossip (not Leave or Shutdown).
type Handler interface {
	// Offered passes the document a peer offered on a join-type sync
	// (start-up join, rejoin, CatchUp, or the peer joining this node). It
	// may be older than the one stored: the Handler decides. from is the
	// peer's name. When the Handler falls behind, only the newest document
	// of each peer is kept; none is dropped. The Handler owns doc.
	Offered(from string, doc *haav1.Fleet)
	// Changed says members, metadata or summaries changed. Calls coalesce:
	// one call may stand for many changes.
	Changed()
}

// View is the fleet as this node sees it.
type View struct {
	Self    string
	Members []Member // sorted by name, this node included
}

// Member is one node of the fleet.
type Member struct {
	Name  string
	Addr  string // gossip address, host:port
	State haav1.MemberState
	Since time.Time // when it entered State (this node's clock)
	// Meta is its last known metadata (nil if none or undecodable).
	Meta *haav1.GossipMeta
	// Summary is its last complete summary (parts merged: Part and Parts
	// are zero), nil if none yet. For this node, the last SetSummary.
	// Shared with every View: do not modify it.
	Summary *haav1.NodeSummary
	// Heard is when this node last received that summary from its owner
	// (this node's clock); for this node, the last SetSummary.
	Heard time.Time
}

// Stats counts gossip traffic since Start.
type Stats struct {
	BytesSent, BytesReceived uint64
	// Rejected counts what was dropped, by reason: "key" (wrong or missing
	// key), "label" (another label), "malformed" (undecodable haa message).
	Rejected map[string]uint64
	Since    time.Time
	Alive    int // members alive or suspect, this node included
}

// Gossip is this node's membership in the fleet.
type Gossip struct {
	name    string
	cfg     Config
	log     *slog.Logger
	local   Local
	started time.Time

	ml atomic.Pointer[memberlist.Memberlist] // set once Create returns
	// updateMu serialises memberlist.UpdateNode, which is not safe to
	// call from two goroutines (the publish loop and Leave: the race
	// detector saw its reads and aliveNode's writes of the local state).
	updateMu sync.Mutex
	tr       *countingTransport
	bq       *memberlist.TransmitLimitedQueue // own broadcasts
	hq       *handlerQueue                    // nil without a Handler
	rej      *rejections

	mu        sync.Mutex
	members   map[string]*member
	sums      map[string]*peerSummary // peers' summaries by node
	own       *haav1.NodeSummary      // last SetSummary, complete
	ownMsgs   [][]byte                // its parts, encoded GossipMessages
	ownHeard  time.Time
	joinFails int  // consecutive failed tries of the Join list
	oversize  bool // a part of the own summary does not fit a packet

	metaCh chan struct{} // UpdateMeta requests (capacity 1)
	done   chan struct{} // closed by Shutdown
	wg     sync.WaitGroup

	stateMu sync.Mutex // serialises Leave and Shutdown
	closed  bool

	// Push/pull merges, by kind (tests).
	joinMerges, periodicMerges atomic.Uint64
	leaving                    atomic.Bool // Leave under way: the metadata says so
}

type member struct {
	addr  string
	state haav1.MemberState // ALIVE, DEAD or LEFT (SUSPECT: see suspectSince)
	since time.Time
	meta  *haav1.GossipMeta
	// suspectSince is when this node's probes of it failed (memberlist's
	// log line: memberlist hands out no race-free copy of its node states);
	// zero once a probe succeeds or its state changes.
	suspectSince time.Time
	tried        time.Time // last rejoin attempt
}

// Start creates this node's memberlist, listening on cfg.Bind (or on
// cfg.Transport), and starts joining cfg.Join in the background: a failure
// to join is logged and retried, not returned. Errors are about the
// configuration or the listening address.
func Start(cfg Config, local Local, h Handler) (*Gossip, error) {
	if cfg.Name == "" {
		return nil, errors.New("node name is empty: set name in the agent configuration")
	}
	if local == nil {
		return nil, errors.New("gossip.Start: nil Local")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = defaultRefresh
	}
	if cfg.ReconnectInterval <= 0 {
		cfg.ReconnectInterval = defaultReconnect
	}
	if cfg.Forget <= 0 {
		cfg.Forget = defaultForget
	}
	bindHost, bindPort, err := splitAddr(cfg.Bind, DefaultPort)
	if err != nil {
		return nil, fmt.Errorf("bind %q: %w", cfg.Bind, err)
	}
	if bindHost == "" {
		bindHost = "0.0.0.0"
	}
	var advHost string
	advPort := -1
	if cfg.Advertise != "" {
		advHost, advPort, err = splitAddr(cfg.Advertise, -1)
		if err == nil && advHost == "" {
			err = errors.New("host is missing")
		}
		if err != nil {
			return nil, fmt.Errorf("advertise %q: %w", cfg.Advertise, err)
		}
	}
	if cfg.Key != nil {
		switch len(cfg.Key) {
		case 16, 24, 32:
		default:
			return nil, fmt.Errorf("key is %d bytes, want 16, 24 or 32: generate one with `haactl keygen`", len(cfg.Key))
		}
	}
	if len(cfg.Label) > memberlist.LabelMaxSize {
		return nil, fmt.Errorf("label is %d bytes, at most %d allowed: choose a shorter gossip label", len(cfg.Label), memberlist.LabelMaxSize)
	}

	g := &Gossip{
		name:    cfg.Name,
		cfg:     cfg,
		log:     cfg.Log,
		local:   local,
		started: time.Now(),
		rej:     newRejections(),
		members: map[string]*member{},
		sums:    map[string]*peerSummary{},
		metaCh:  make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	if h != nil {
		g.hq = newHandlerQueue()
	}
	g.bq = &memberlist.TransmitLimitedQueue{
		NumNodes: func() int {
			if ml := g.ml.Load(); ml != nil {
				return ml.NumMembers()
			}
			return 1
		},
	}
	logger := log.New(&logWriter{log: g.log, rej: g.rej, suspect: g.suspect}, "", 0)

	inner := cfg.Transport
	if inner == nil {
		nt, err := newNetTransport(bindHost, bindPort, logger)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w: check gossip.bind (an address of this host, a free port)",
				net.JoinHostPort(bindHost, strconv.Itoa(bindPort)), err)
		}
		if bindPort == 0 {
			bindPort = nt.GetAutoBindPort()
		}
		inner = nt
	}
	g.tr = newCountingTransport(inner)

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	mc.BindAddr, mc.BindPort = bindHost, bindPort
	mc.AdvertiseAddr, mc.AdvertisePort = advHost, advPort
	if advPort < 0 {
		mc.AdvertisePort = bindPort
	}
	if cfg.Key != nil {
		mc.SecretKey = append([]byte(nil), cfg.Key...)
	}
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	// Packets are small and the LAN fast: memberlist's LZW compression
	// (a new coder per packet) was a sixth of an idle agent's processor.
	mc.EnableCompression = false
	mc.Label = cfg.Label
	mc.Delegate = (*delegate)(g)
	mc.Events = (*events)(g)
	mc.Ping = (*pings)(g)
	mc.Logger = logger
	mc.Transport = g.tr
	g.bq.RetransmitMult = mc.RetransmitMult
	if cfg.Tune != nil {
		cfg.Tune(mc)
		g.bq.RetransmitMult = mc.RetransmitMult
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = g.tr.Shutdown()
		hint := "check gossip.bind and gossip.advertise"
		if advHost == "" {
			hint = "set gossip.advertise to the address the other nodes reach this one at"
		}
		return nil, fmt.Errorf("start on %s: %w: %s", net.JoinHostPort(bindHost, strconv.Itoa(bindPort)), err, hint)
	}
	g.ml.Store(ml)

	if g.hq != nil {
		go g.hq.run(h, g.done) // not waited for by Shutdown: see Shutdown
	}
	g.wg.Add(2)
	go g.publishLoop()
	go g.reconnectLoop()
	return g, nil
}

// splitAddr parses host[:port]; host must be an IP address or empty.
// defPort is the port when s has none.
func splitAddr(s string, defPort int) (host string, port int, err error) {
	if s == "" {
		return "", defPort, nil
	}
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		// No port (or an IPv6 address without brackets).
		h, p = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), ""
	}
	if h != "" {
		ip, err := netip.ParseAddr(h)
		if err != nil {
			return "", 0, fmt.Errorf("host must be an IP address (like 10.0.0.1:%d), not %q", DefaultPort, h)
		}
		h = ip.String()
	}
	if p == "" {
		return h, defPort, nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number in 0..65535", p)
	}
	return h, n, nil
}

// newNetTransport listens on host:port, retrying a few times when port 0
// gave a TCP port whose UDP twin is taken.
func newNetTransport(host string, port int, logger *log.Logger) (*memberlist.NetTransport, error) {
	tries := 1
	if port == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var nt *memberlist.NetTransport
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{host}, BindPort: port, Logger: logger,
		})
		if err == nil {
			return nt, nil
		}
	}
	return nil, err
}

// SetSummary sets this node's summary and broadcasts it. The caller fills
// incarnation, seq (higher for every new summary of a run) and time; Node is
// set to this node's name. A summary too large for a packet is split into
// parts, each carrying a subset of the instances; peers assemble them. The
// summary is broadcast again every RefreshInterval until the next call.
func (g *Gossip) SetSummary(s *haav1.NodeSummary) {
	c := proto.Clone(s).(*haav1.NodeSummary)
	c.Node, c.Part, c.Parts = g.name, 0, 0
	parts := splitSummary(c)
	msgs := make([][]byte, 0, len(parts))
	largest := 0
	for _, p := range parts {
		b, err := proto.Marshal(&haav1.GossipMessage{Kind: &haav1.GossipMessage_Summary{Summary: p}})
		if err != nil {
			g.log.Error("encoding the node summary failed: not gossiped", "err", err)
			return
		}
		largest = max(largest, len(b))
		msgs = append(msgs, b)
	}
	oversize := largest > maxPartBytes+maxPartSlack
	g.mu.Lock()
	g.own, g.ownMsgs, g.ownHeard = c, msgs, time.Now()
	warn := oversize && !g.oversize
	g.oversize = oversize
	g.mu.Unlock()
	if warn {
		g.log.Warn("an instance's summary is too large for a gossip packet (too many VIPs?): peers get the node's summary by push/pull only, every 30s",
			"bytes", largest)
	}
	g.queueOwn(msgs)
}

// queueOwn queues the parts of the own summary, each replacing the same
// part of an older one still queued.
func (g *Gossip) queueOwn(msgs [][]byte) {
	for i, m := range msgs {
		g.bq.QueueBroadcast(&broadcast{name: "summary/" + strconv.Itoa(i), msg: m})
	}
}

// UpdateMeta tells the fleet that Local.Meta changed. It does not wait: the
// update goes out from a gossip goroutine (memberlist.UpdateNode).
func (g *Gossip) UpdateMeta() {
	select {
	case g.metaCh <- struct{}{}:
	default:
	}
}

// CatchUp syncs with a member now, the way a join does (push/pull with
// join=true): its document, if any, reaches Handler.Offered shortly after
// CatchUp returns. It blocks for one TCP exchange (at most memberlist's
// TCPTimeout, 10s by default).
func (g *Gossip) CatchUp(node string) error {
	if g.isClosed() {
		return ErrShutdown
	}
	if node == g.name {
		return fmt.Errorf("catch up with %s: it is this node", node)
	}
	g.mu.Lock()
	m := g.members[node]
	var addr string
	if m != nil {
		addr = m.addr
	}
	g.mu.Unlock()
	if m == nil {
		return fmt.Errorf("catch up with %s: %w", node, ErrUnknownMember)
	}
	if _, err := g.join([]string{addr}); err != nil {
		return fmt.Errorf("catch up with %s at %s: %w", node, addr, err)
	}
	return nil
}

// join runs memberlist's Join (a push/pull with join=true with each
// address), giving up waiting at Shutdown.
func (g *Gossip) join(addrs []string) (int, error) {
	ml := g.ml.Load()
	type result struct {
		n   int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		n, err := ml.Join(addrs)
		ch <- result{n, err}
	}()
	select {
	case r := <-ch:
		return r.n, r.err
	case <-g.done:
		return 0, ErrShutdown
	}
}

// View returns the members, this node included, sorted by name.
func (g *Gossip) View() View {
	g.mu.Lock()
	defer g.mu.Unlock()
	v := View{Self: g.name, Members: make([]Member, 0, len(g.members))}
	for name, m := range g.members {
		mm := Member{Name: name, Addr: m.addr, State: m.state, Since: m.since}
		if m.meta != nil {
			mm.Meta = proto.Clone(m.meta).(*haav1.GossipMeta)
		}
		if m.state == haav1.MemberState_MEMBER_STATE_ALIVE && !m.suspectSince.IsZero() {
			mm.State, mm.Since = haav1.MemberState_MEMBER_STATE_SUSPECT, m.suspectSince
		}
		var s *haav1.NodeSummary
		if name == g.name {
			s, mm.Heard = g.own, g.ownHeard
		} else if ps := g.sums[name]; ps != nil {
			s, mm.Heard = ps.complete, ps.heard
		}
		if s != nil {
			mm.Summary = s // never modified once held (see peerSummary)
			if m := mm.Summary.GetMeta(); m != nil {
				mm.Meta = m // newer than memberlist's (see NodeSummary.meta)
			}
		}
		v.Members = append(v.Members, mm)
	}
	sort.Slice(v.Members, func(i, j int) bool { return v.Members[i].Name < v.Members[j].Name })
	return v
}

// Stats returns the traffic counters.
func (g *Gossip) Stats() Stats {
	st := Stats{
		BytesSent:     g.tr.sent.Load(),
		BytesReceived: g.tr.recv.Load(),
		Rejected:      g.rej.counts(),
		Since:         g.started,
	}
	if ml := g.ml.Load(); ml != nil {
		st.Alive = ml.NumMembers()
	}
	return st
}

// Leave tells the fleet this node leaves (the others see LEFT, not a
// failure), waiting up to timeout for the message to go out, then shuts
// down. Calling it again, or after Shutdown, does nothing.
func (g *Gossip) Leave(timeout time.Duration) error {
	g.stateMu.Lock()
	if g.closed {
		g.stateMu.Unlock()
		return nil
	}
	// Say so in the metadata first (half the time), so the others report
	// LEFT, not DEAD, when the node goes.
	ml := g.ml.Load()
	g.leaving.Store(true)
	g.updateMu.Lock()
	uerr := ml.UpdateNode(timeout / 2)
	g.updateMu.Unlock()
	if uerr != nil {
		g.log.Debug("announcing the leave", "err", uerr)
	}
	err := ml.Leave(timeout / 2)
	g.stateMu.Unlock()
	if err != nil {
		err = fmt.Errorf("leave: %w (the others will see this node fail instead of leave)", err)
	}
	return errors.Join(err, g.Shutdown())
}

// Shutdown stops gossip without telling the fleet (the others see this
// node fail). It stops every gossip goroutine; a Handler call in progress
// may still run to its end, but no other starts. Idempotent.
func (g *Gossip) Shutdown() error {
	g.stateMu.Lock()
	defer g.stateMu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	close(g.done)
	g.wg.Wait()
	return g.ml.Load().Shutdown()
}

func (g *Gossip) isClosed() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// changed queues a Handler.Changed call.
func (g *Gossip) changed() {
	if g.hq != nil {
		g.hq.changed()
	}
}

// publishLoop re-broadcasts the own summary every RefreshInterval and sends
// metadata updates.
func (g *Gossip) publishLoop() {
	defer g.wg.Done()
	t := time.NewTicker(g.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-g.done:
			return
		case <-t.C:
			g.mu.Lock()
			msgs := g.ownMsgs
			if len(msgs) > 1 && time.Since(g.ownHeard) > fullRefreshFor {
				// At rest: part 0 tells the peers the summary is current
				// (it refreshes their Heard); push/pull repairs a lost
				// part. Re-sending every part of a large summary (a
				// director's thousands of real servers) would cost each
				// node kilobytes a second for nothing.
				msgs = msgs[:1]
			}
			g.mu.Unlock()
			g.queueOwn(msgs)
		case <-g.metaCh:
			g.updateMu.Lock()
			_ = g.ml.Load().UpdateNode(metaWait) // only "timeout waiting for update broadcast"
			g.updateMu.Unlock()
		}
	}
}

// reconnectLoop joins the Join list at once, then every ReconnectInterval
// forgets old departed members, tries the Join list again while the node is
// alone and rejoins failed members.
func (g *Gossip) reconnectLoop() {
	defer g.wg.Done()
	g.joinList()
	t := time.NewTicker(g.cfg.ReconnectInterval)
	defer t.Stop()
	for {
		select {
		case <-g.done:
			return
		case <-t.C:
		}
		g.forget(time.Now())
		if g.ml.Load().NumMembers() <= 1 {
			g.joinList()
		}
		g.rejoinFailed()
	}
}

// joinList tries the Join list (this node's own address left out).
func (g *Gossip) joinList() {
	g.mu.Lock()
	var self string
	if m := g.members[g.name]; m != nil {
		self = m.addr
	}
	g.mu.Unlock()
	var addrs []string
	for _, a := range g.cfg.Join {
		if a != "" && a != self && a != g.cfg.Bind && a != g.cfg.Advertise {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return
	}
	_, err := g.join(addrs)
	if errors.Is(err, ErrShutdown) {
		return
	}
	alive := g.ml.Load().NumMembers()
	if err == nil && alive > 1 {
		g.mu.Lock()
		g.joinFails = 0
		g.mu.Unlock()
		g.log.Info("joined the fleet", "join", addrs, "alive", alive)
		return
	}
	if err == nil {
		err = errors.New("no other member answered")
	}
	g.mu.Lock()
	g.joinFails++
	first := g.joinFails == 1
	g.mu.Unlock()
	if first {
		g.log.Warn("cannot join the fleet yet: retrying while alone", "join", addrs, "every", g.cfg.ReconnectInterval, "err", err)
	} else {
		g.log.Debug("joining the fleet failed", "join", addrs, "err", err)
	}
}

// rejoinFailed tries to join a few failed (not departed) members, those
// tried least recently first: it heals a partition both sides gave up on.
func (g *Gossip) rejoinFailed() {
	now := time.Now()
	type cand struct {
		name, addr string
		tried      time.Time
	}
	var cands []cand
	g.mu.Lock()
	for name, m := range g.members {
		if name != g.name && m.state == haav1.MemberState_MEMBER_STATE_DEAD && m.addr != "" {
			cands = append(cands, cand{name, m.addr, m.tried})
		}
	}
	sort.Slice(cands, func(i, j int) bool {
		if !cands[i].tried.Equal(cands[j].tried) {
			return cands[i].tried.Before(cands[j].tried)
		}
		return cands[i].name < cands[j].name
	})
	if len(cands) > maxRejoins {
		cands = cands[:maxRejoins]
	}
	for _, c := range cands {
		g.members[c.name].tried = now
	}
	g.mu.Unlock()
	for _, c := range cands {
		if g.isClosed() {
			return
		}
		if _, err := g.join([]string{c.addr}); err != nil {
			g.log.Debug("rejoining a failed member failed", "node", c.name, "addr", c.addr, "err", err)
			continue
		}
		g.log.Info("rejoined a failed member", "node", c.name, "addr", c.addr)
	}
}

// forget drops members dead or departed for longer than Forget, and the
// summaries of nodes no longer members that were not heard for as long.
func (g *Gossip) forget(now time.Time) {
	dropped := false
	g.mu.Lock()
	for name, m := range g.members {
		if name != g.name && m.state != haav1.MemberState_MEMBER_STATE_ALIVE && now.Sub(m.since) > g.cfg.Forget {
			delete(g.members, name)
			delete(g.sums, name)
			dropped = true
		}
	}
	for name, ps := range g.sums {
		if _, ok := g.members[name]; !ok && now.Sub(ps.heard) > g.cfg.Forget {
			delete(g.sums, name)
		}
	}
	g.mu.Unlock()
	if dropped {
		g.changed()
	}
}
