package gossip

import (
	"fmt"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/memberlist"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// fuzzGossip is a Gossip without memberlist holding some state: peer p's
// complete summary (incarnation 1, seq 5) and the first of three parts of
// its next one, so that "the state did not change" says something.
func fuzzGossip(t *testing.T) *Gossip {
	g := &Gossip{name: "me", log: slog.New(slog.DiscardHandler), rej: newRejections(), tr: &countingTransport{},
		members: map[string]*member{}, sums: map[string]*peerSummary{}, hq: newHandlerQueue()}
	d := (*delegate)(g)
	d.NotifyMsg(fuzzMsg(t, genSummary("p", 1, 5, 0, 0)))
	d.NotifyMsg(fuzzMsg(t, genSummary("p", 1, 6, 0, 3)))
	if ps := g.sums["p"]; ps == nil || ps.complete == nil || ps.pending == nil {
		t.Fatal("set-up: p's summary not held")
	}
	return g
}

func fuzzMsg(t *testing.T, s *haav1.NodeSummary) []byte {
	b, err := proto.Marshal(&haav1.GossipMessage{Kind: &haav1.GossipMessage_Summary{Summary: s}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// genSummary is part `part` of `parts` of node's summary (inc, seq), with
// instances that depend on all of these: the same part is always the same
// message, and an assembled summary can be checked.
func genSummary(node string, inc, seq uint64, part, parts uint32) *haav1.NodeSummary {
	s := &haav1.NodeSummary{Node: node, Incarnation: inc, Seq: seq, Part: part, Parts: parts,
		Time: timestamppb.New(time.Unix(int64(seq), 0)), Health: &haav1.NodeHealth{Healthy: seq%2 == 0}}
	for i := range 1 + int(part%3) {
		s.Instances = append(s.Instances, &haav1.InstanceSummary{Name: fmt.Sprintf("%d.%d/%d/%d.%d", inc, seq, part, parts, i)})
	}
	return s
}

// wantAssembled is the summary the parts of genSummary assemble into.
func wantAssembled(node string, inc, seq uint64, parts uint32) *haav1.NodeSummary {
	want := genSummary(node, inc, seq, 0, 0)
	want.Instances = nil
	for p := range parts {
		want.Instances = append(want.Instances, genSummary(node, inc, seq, p, parts).GetInstances()...)
	}
	return want
}

// held is what the Gossip holds of one peer, to compare before and after.
type heldState struct {
	complete *haav1.NodeSummary
	heard    time.Time
	pending  *assembly
	have     int
}

type gossipState struct {
	sums     map[string]heldState
	members  int
	queued   int // Handler calls queued
	rejected uint64
}

func heldOf(g *Gossip) gossipState {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := gossipState{sums: map[string]heldState{}, members: len(g.members), rejected: g.Stats().Rejected["malformed"]}
	for n, ps := range g.sums {
		h := heldState{complete: ps.complete, heard: ps.heard, pending: ps.pending}
		if ps.pending != nil {
			h.have = ps.pending.have
		}
		st.sums[n] = h
	}
	g.hq.mu.Lock()
	st.queued = len(g.hq.items)
	g.hq.mu.Unlock()
	return st
}

// sameHeld reports whether nothing held of node changed.
func (a gossipState) sameHeld(b gossipState, node string) bool {
	x, okx := a.sums[node]
	y, oky := b.sums[node]
	return okx == oky && x == y
}

// checkInvariants checks what must hold of the summaries whatever peers
// sent: none of this node's or of no node; a complete summary is whole
// (no part numbers); an assembly is of a newer summary than the one held,
// is consistent and not yet complete.
func checkInvariants(t *testing.T, g *Gossip) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	for n, ps := range g.sums {
		if n == g.name || n == "" {
			t.Fatalf("summary held for node %q", n)
		}
		if c := ps.complete; c != nil && (c.GetNode() != n || c.GetPart() != 0 || c.GetParts() != 0) {
			t.Fatalf("complete summary of %s: node %q part %d/%d", n, c.GetNode(), c.GetPart(), c.GetParts())
		}
		a := ps.pending
		if a == nil {
			continue
		}
		if len(a.parts) < 2 || len(a.parts) > maxParts || a.have >= len(a.parts) {
			t.Fatalf("assembly of %s: %d of %d parts", n, a.have, len(a.parts))
		}
		if ps.complete != nil && !keyOf(ps.complete).less(a.k) {
			t.Fatalf("assembly of %s: %v, not newer than the held %v", n, a.k, keyOf(ps.complete))
		}
		have := 0
		for i, p := range a.parts {
			if p == nil {
				continue
			}
			have++
			if p.GetNode() != n || keyOf(p) != a.k || int(p.GetPart()) != i || int(p.GetParts()) != len(a.parts) {
				t.Fatalf("assembly of %s %v: slot %d holds part %d/%d of %s %v", n, a.k, i, p.GetPart(), p.GetParts(), p.GetNode(), keyOf(p))
			}
		}
		if have != a.have {
			t.Fatalf("assembly of %s: have %d, %d parts held", n, a.have, have)
		}
	}
}

// rejectedSummary says whether a decoded summary must be rejected, by the
// rules of the wire format (not by calling validSummary).
func rejectedSummary(s *haav1.NodeSummary) bool {
	return s.GetNode() == "" || s.GetParts() > maxParts || (s.GetParts() > 0 && s.GetPart() >= s.GetParts())
}

func summarySeeds(f *testing.F) [][]byte {
	var out [][]byte
	add := func(s *haav1.NodeSummary) {
		b, err := proto.Marshal(&haav1.GossipMessage{Kind: &haav1.GossipMessage_Summary{Summary: s}})
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	add(genSummary("p", 1, 7, 0, 0))
	add(genSummary("p", 1, 6, 1, 3))
	add(genSummary("p", 1, 6, 2, 3))
	add(genSummary("p", 1, 4, 0, 0))
	add(genSummary("q", 0, 0, 0, 1))
	add(genSummary("me", 9, 9, 0, 0))
	add(genSummary("", 1, 1, 0, 0))
	add(genSummary("p", 1, 8, 3, 2))
	add(genSummary("p", 1, 8, 0, maxParts+1))
	for _, p := range splitSummary(bigSummary("r", 2, 40)) {
		add(p)
	}
	return append(out, nil, []byte{0xff, 0xff, 0xff}, []byte{0x0a, 0x00}, []byte{0x12, 0x02, 0x08, 0x01})
}

// FuzzNotifyMsg feeds one broadcast to a Gossip holding some state. An
// undecodable message or an invalid summary is counted as rejected
// ("malformed") and changes nothing; a message of an unknown kind or this
// node's own summary changes nothing and is not counted; a valid summary
// is not counted and keeps the held summaries consistent.
func FuzzNotifyMsg(f *testing.F) {
	for _, s := range summarySeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		g := fuzzGossip(t)
		before := heldOf(g)
		var m haav1.GossipMessage
		decodeErr := proto.Unmarshal(b, &m)
		(*delegate)(g).NotifyMsg(b)
		after := heldOf(g)
		checkInvariants(t, g)
		s := m.GetSummary()
		rejected := decodeErr == nil && s != nil && rejectedSummary(s)
		if decodeErr != nil || rejected {
			if after.rejected != before.rejected+1 {
				t.Fatalf("rejected (%v), counted %d times", decodeErr, after.rejected-before.rejected)
			}
		} else if after.rejected != before.rejected {
			t.Fatalf("accepted, but counted as rejected")
		}
		if decodeErr != nil || rejected || s == nil || s.GetNode() == "me" {
			if !equalStates(before, after.withRejected(before.rejected)) {
				t.Fatalf("a message dropped (%v, summary %v) changed the state", decodeErr, s)
			}
			return
		}
		for n := range before.sums {
			if n != s.GetNode() && !before.sameHeld(after, n) {
				t.Fatalf("a summary of %s changed what is held of %s", s.GetNode(), n)
			}
		}
		if len(after.sums) > len(before.sums)+1 {
			t.Fatalf("one summary added %d nodes", len(after.sums)-len(before.sums))
		}
	})
}

func equalStates(a, b gossipState) bool {
	if len(a.sums) != len(b.sums) || a.members != b.members || a.queued != b.queued || a.rejected != b.rejected {
		return false
	}
	for n := range a.sums {
		if !a.sameHeld(b, n) {
			return false
		}
	}
	return true
}

// FuzzMergeRemoteState feeds one push/pull state to a Gossip holding some
// state. An undecodable state is counted as rejected and changes nothing;
// a decodable one is not counted, and its summaries that are invalid, this
// node's or a name only change nothing held of their node; a document is
// offered only on a join, from the node of the first summary.
func FuzzMergeRemoteState(f *testing.F) {
	for _, b := range summarySeeds(f) {
		var m haav1.GossipMessage
		if proto.Unmarshal(b, &m) == nil && m.GetSummary() != nil {
			st, _ := proto.Marshal(&haav1.GossipState{Summaries: []*haav1.NodeSummary{{Node: "q"}, m.GetSummary()}})
			f.Add(st, false)
		}
		f.Add(b, true)
	}
	doc, _ := proto.Marshal(&haav1.GossipState{Summaries: []*haav1.NodeSummary{{Node: "q"}, genSummary("q", 3, 1, 0, 0)},
		Document: &haav1.Fleet{Kind: "Fleet", Generation: 4, Nodes: []string{"q", "me"}}})
	f.Add(doc, true)
	f.Add(doc, false)
	f.Fuzz(func(t *testing.T, b []byte, join bool) {
		g := fuzzGossip(t)
		before := heldOf(g)
		var st haav1.GossipState
		decodeErr := proto.Unmarshal(b, &st)
		(*delegate)(g).MergeRemoteState(b, join)
		after := heldOf(g)
		checkInvariants(t, g)
		if decodeErr != nil {
			if after.rejected != before.rejected+1 || !equalStates(before, after.withRejected(before.rejected)) {
				t.Fatalf("an undecodable state (%v): counted %d times, state changed %v", decodeErr, after.rejected-before.rejected, !equalStates(before, after.withRejected(before.rejected)))
			}
			return
		}
		wantRejected := before.rejected
		if slices.ContainsFunc(st.GetSummaries(), rejectedSummary) {
			wantRejected++ // once per state
		}
		if after.rejected != wantRejected {
			t.Fatalf("a decodable state counted %d times as rejected, want %d", after.rejected-before.rejected, wantRejected-before.rejected)
		}
		merged := map[string]bool{} // nodes with a summary that may be merged
		for _, s := range st.GetSummaries() {
			if !rejectedSummary(s) && s.GetNode() != "me" && (s.GetIncarnation() != 0 || s.GetSeq() != 0) {
				merged[s.GetNode()] = true
			}
		}
		for n := range after.sums {
			if !merged[n] && !before.sameHeld(after, n) {
				t.Fatalf("what is held of %s changed, but the state has no valid summary of it", n)
			}
		}
		g.hq.mu.Lock()
		items := slices.Clone(g.hq.items)
		g.hq.mu.Unlock()
		var offered []hitem
		for _, it := range items {
			if it.doc != nil {
				offered = append(offered, it)
			}
		}
		from := ""
		if len(st.GetSummaries()) > 0 {
			from = st.GetSummaries()[0].GetNode()
		}
		want := join && st.GetDocument() != nil && from != "me" && from != ""
		switch {
		case !want && len(offered) > 0:
			t.Fatalf("a document offered (join %v, from %q)", join, from)
		case want && (len(offered) != 1 || offered[0].from != from || !proto.Equal(offered[0].doc, st.GetDocument())):
			t.Fatalf("offered %v, want the document from %q", offered, from)
		}
	})
}

func (s gossipState) withRejected(n uint64) gossipState {
	s.rejected = n
	return s
}

// FuzzSummaryMerge sends a peer's summaries, whole or in parts, in any
// order, by broadcast or push/pull (see the op bytes below), and checks
// after each: what is held of a node only moves to a newer summary, and is
// exactly the summary sent (a whole one) or the parts of one assembled in
// order. At the end, a newer summary sent in parts in reverse order must
// be assembled whatever came before: nothing gets stuck.
func FuzzSummaryMerge(f *testing.F) {
	f.Add([]byte{0, 1, 5, 0, 0, 0, 0, 1, 6, 3, 2, 0, 0, 1, 6, 3, 0, 0, 0, 1, 6, 3, 1, 1})
	f.Add([]byte{0, 1, 5, 3, 0, 0, 0, 1, 5, 4, 1, 0, 0, 1, 5, 3, 1, 0, 0, 1, 5, 3, 2, 0, 0, 1, 4, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 2, 2, 1, 2, 1, 0, 2, 3, 0, 0, 0, 1})
	f.Add([]byte{0, 1, 1, 2, 0, 0, 0, 1, 2, 2, 1, 0, 0, 1, 1, 2, 1, 0, 0, 1, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		g := &Gossip{name: "me", log: slog.New(slog.DiscardHandler), rej: newRejections(), tr: &countingTransport{},
			members: map[string]*member{}, sums: map[string]*peerSummary{}, hq: newHandlerQueue()}
		d := (*delegate)(g)
		nodes := []string{"a", "b", "me"}
		var maxInc uint64
		for i := 0; i+6 <= len(ops) && i < 6*200; i += 6 {
			op := ops[i : i+6]
			node := nodes[int(op[0])%len(nodes)]
			inc, seq := uint64(op[1]%4), uint64(op[2]%8)
			parts, part := uint32(op[3]%6), uint32(op[4]%6)
			if parts > 0 {
				part %= parts
			}
			pushPull := op[5]&1 != 0
			maxInc = max(maxInc, inc)
			s := genSummary(node, inc, seq, part, parts)
			before := heldOf(g)
			if pushPull {
				b, _ := proto.Marshal(&haav1.GossipState{Summaries: []*haav1.NodeSummary{s}})
				d.MergeRemoteState(b, false)
			} else {
				d.NotifyMsg(fuzzMsg(t, s))
			}
			after := heldOf(g)
			checkInvariants(t, g)
			for n := range after.sums {
				if n != node && !before.sameHeld(after, n) {
					t.Fatalf("op %d: a summary of %s changed what is held of %s", i/6, node, n)
				}
			}
			if node == "me" || (pushPull && inc == 0 && seq == 0) {
				if !before.sameHeld(after, node) {
					t.Fatalf("op %d: a summary that is ignored changed what is held of %s", i/6, node)
				}
				continue
			}
			was, now := before.sums[node], after.sums[node]
			if now.complete == was.complete {
				if pushPull && !now.heard.Equal(was.heard) {
					t.Fatalf("op %d: a push/pull relay moved Heard", i/6)
				}
				continue
			}
			if was.complete != nil && !keyOf(was.complete).less(keyOf(now.complete)) {
				t.Fatalf("op %d: the summary of %s went from %v to %v", i/6, node, keyOf(was.complete), keyOf(now.complete))
			}
			if keyOf(now.complete) != keyOf(s) {
				t.Fatalf("op %d: sending %v made %v held", i/6, keyOf(s), keyOf(now.complete))
			}
			want := proto.Clone(s).(*haav1.NodeSummary)
			want.Part, want.Parts = 0, 0
			if parts > 1 {
				want = wantAssembled(node, inc, seq, parts)
			}
			if !proto.Equal(now.complete, want) {
				t.Fatalf("op %d: held\n%v\nwant\n%v", i/6, now.complete, want)
			}
		}
		// Nothing stuck: a newer summary in parts, last part first.
		newer := maxInc + 1
		for p := int32(4); p >= 0; p-- {
			d.NotifyMsg(fuzzMsg(t, genSummary("a", newer, 0, uint32(p), 5)))
		}
		checkInvariants(t, g)
		if c := g.sums["a"].complete; !proto.Equal(c, wantAssembled("a", newer, 0, 5)) {
			t.Fatalf("a newer summary in parts was not assembled: held %v", c)
		}
		if n := g.Stats().Rejected["malformed"]; n != 0 {
			t.Fatalf("%d valid summaries counted as rejected", n)
		}
	})
}

// FuzzGossipMeta decodes member metadata as the member events do, and
// encodes metadata within a limit as NodeMeta does. Undecodable metadata
// is no metadata (and no departure said); encoded metadata fits the limit,
// is the metadata itself when it fits, else the metadata with its api
// address cut (a prefix, valid UTF-8) when that fits, else only the name,
// else nothing.
func FuzzGossipMeta(f *testing.F) {
	for _, m := range []*haav1.GossipMeta{
		{Name: "lb1", Api: "10.0.0.1:9443", Version: "1.0", FleetHash: "0123456789abcdef0123456789abcdef", Leaving: true},
		{Name: "lb1", Api: "unix:///" + string(make([]byte, 400)) + "é"},
		{},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(memberlist.MetaMaxSize))
		f.Add(b, uint16(20))
	}
	f.Add([]byte{0xff}, uint16(512))
	f.Fuzz(func(t *testing.T, b []byte, limit uint16) {
		g := &Gossip{name: "me", log: slog.New(slog.DiscardHandler), rej: newRejections(), tr: &countingTransport{},
			members: map[string]*member{}, sums: map[string]*peerSummary{}, hq: newHandlerQueue()}
		var m haav1.GossipMeta
		decodeErr := proto.Unmarshal(b, &m)
		n := &memberlist.Node{Name: "p", Addr: net.IPv4(10, 0, 0, 1), Port: 7946, Meta: b}
		g.memberEvent(n, haav1.MemberState_MEMBER_STATE_ALIVE)
		got := g.members["p"].meta
		switch {
		case len(b) == 0 || decodeErr != nil:
			if got != nil {
				t.Fatalf("undecodable metadata (%v) kept: %v", decodeErr, got)
			}
		case !proto.Equal(got, &m):
			t.Fatalf("metadata %v, want %v", got, &m)
		}
		if saidLeaving(n) != (len(b) > 0 && decodeErr == nil && m.GetLeaving()) {
			t.Fatalf("saidLeaving %v for %v (%v)", saidLeaving(n), &m, decodeErr)
		}
		if decodeErr != nil {
			return
		}

		out := g.encodeMeta(&m, int(limit))
		if len(out) > int(limit) {
			t.Fatalf("%d bytes encoded, limit %d", len(out), limit)
		}
		noAPI := proto.Clone(&m).(*haav1.GossipMeta)
		noAPI.Api = ""
		nameOnly := &haav1.GossipMeta{Name: m.GetName()}
		var back haav1.GossipMeta
		if err := proto.Unmarshal(out, &back); err != nil {
			t.Fatalf("encoded metadata does not decode: %v", err)
		}
		switch {
		case proto.Size(&m) <= int(limit):
			if !proto.Equal(&back, &m) {
				t.Fatalf("metadata that fits changed: %v, want %v", &back, &m)
			}
		case proto.Size(noAPI) <= int(limit):
			cut := proto.Clone(&back).(*haav1.GossipMeta)
			cut.Api = ""
			if !proto.Equal(cut, noAPI) || len(back.GetApi()) >= len(m.GetApi()) || m.GetApi()[:len(back.GetApi())] != back.GetApi() || !utf8.ValidString(back.GetApi()) {
				t.Fatalf("api cut: %v, from %v", &back, &m)
			}
		case proto.Size(nameOnly) <= int(limit):
			if !proto.Equal(&back, nameOnly) {
				t.Fatalf("too large even without api: %v, want only the name", &back)
			}
		default:
			if out != nil {
				t.Fatalf("nothing fits %d bytes, yet %d encoded", limit, len(out))
			}
		}
	})
}
