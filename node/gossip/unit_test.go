package gossip

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"google.golang.org/protobuf/proto"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// bare is a Gossip without memberlist, for the merge logic.
func bare() *Gossip {
	return &Gossip{name: "me", log: slog.New(slog.DiscardHandler), rej: newRejections(),
		members: map[string]*member{}, sums: map[string]*peerSummary{}, hq: newHandlerQueue()}
}

func encodeMsg(t *testing.T, s *haav1.NodeSummary) []byte {
	t.Helper()
	b, err := proto.Marshal(&haav1.GossipMessage{Kind: &haav1.GossipMessage_Summary{Summary: s}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func held(g *Gossip, node string) (*haav1.NodeSummary, time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ps := g.sums[node]
	if ps == nil {
		return nil, time.Time{}
	}
	return ps.complete, ps.heard
}

func TestSplitSummary(t *testing.T) {
	small := bigSummary("n", 1, 2)
	if p := splitSummary(small); len(p) != 1 || p[0].GetParts() != 1 || len(p[0].GetInstances()) != 2 {
		t.Fatalf("small summary: %d parts", len(p))
	}
	s := bigSummary("n", 1, 100)
	parts := splitSummary(s)
	var got []*haav1.InstanceSummary
	for i, p := range parts {
		if p.GetPart() != uint32(i) || p.GetParts() != uint32(len(parts)) {
			t.Errorf("part %d says %d/%d", i, p.GetPart(), p.GetParts())
		}
		if p.GetNode() != "n" || p.GetIncarnation() != 7 || p.GetSeq() != 1 || !p.GetHealth().GetHealthy() || p.GetTime() == nil {
			t.Errorf("part %d lacks the header fields: %v", i, p)
		}
		if n := len(encodeMsg(t, p)); n > maxPartBytes {
			t.Errorf("part %d is %d bytes, more than %d", i, n, maxPartBytes)
		}
		got = append(got, p.GetInstances()...)
	}
	if len(got) != 100 {
		t.Fatalf("parts hold %d instances, want 100", len(got))
	}
	for i := range got {
		if !proto.Equal(got[i], s.Instances[i]) {
			t.Fatalf("instance %d out of order", i)
		}
	}
}

func TestMergeSummary(t *testing.T) {
	g := bare()
	d := (*delegate)(g)
	s := bigSummary("p", 5, 80)
	parts := splitSummary(s)
	if len(parts) < 3 {
		t.Fatalf("%d parts", len(parts))
	}
	// Out of order; incomplete until the last one.
	for i := len(parts) - 1; i >= 1; i-- {
		d.NotifyMsg(encodeMsg(t, parts[i]))
		d.NotifyMsg(encodeMsg(t, parts[i])) // duplicates do no harm
	}
	if c, _ := held(g, "p"); c != nil {
		t.Fatal("incomplete summary stored")
	}
	d.NotifyMsg(encodeMsg(t, parts[0]))
	c, heard := held(g, "p")
	if !proto.Equal(c, s) {
		t.Fatalf("assembled summary differs: %d instances, part %d/%d", len(c.GetInstances()), c.GetPart(), c.GetParts())
	}

	// The same (incarnation, seq) again: Heard moves, from a broadcast only.
	time.Sleep(2 * time.Millisecond)
	d.NotifyMsg(encodeMsg(t, parts[1]))
	c2, heard2 := held(g, "p")
	if c2 != c || !heard2.After(heard) {
		t.Errorf("a repeated part: summary replaced %v, heard moved %v", c2 != c, heard2.After(heard))
	}
	st, _ := proto.Marshal(&haav1.GossipState{Summaries: []*haav1.NodeSummary{{Node: "q"}, s}})
	d.MergeRemoteState(st, false)
	if _, heard3 := held(g, "p"); !heard3.Equal(heard2) {
		t.Error("a push/pull relay of the same summary moved Heard")
	}

	// Older seqs are ignored, whole or in parts.
	old := bigSummary("p", 4, 1)
	d.NotifyMsg(encodeMsg(t, old))
	for _, p := range splitSummary(bigSummary("p", 3, 80)) {
		d.NotifyMsg(encodeMsg(t, p))
	}
	if c, _ := held(g, "p"); c.GetSeq() != 5 {
		t.Fatalf("an older summary replaced seq 5: seq %d", c.GetSeq())
	}
	// A newer incarnation wins whatever its seq.
	restarted := bigSummary("p", 1, 1)
	restarted.Incarnation = 8
	d.NotifyMsg(encodeMsg(t, restarted))
	if c, _ := held(g, "p"); c.GetIncarnation() != 8 {
		t.Fatal("a restarted node's summary was ignored")
	}
	// Parts of a newer summary replace the parts being assembled.
	s9, s10 := bigSummary("p", 9, 80), bigSummary("p", 10, 80)
	s9.Incarnation, s10.Incarnation = 8, 8
	p9, p10 := splitSummary(s9), splitSummary(s10)
	d.NotifyMsg(encodeMsg(t, p9[0]))
	for _, p := range p10 {
		d.NotifyMsg(encodeMsg(t, p))
	}
	for _, p := range p9[1:] {
		d.NotifyMsg(encodeMsg(t, p))
	}
	if c, _ := held(g, "p"); c.GetSeq() != 10 || len(c.GetInstances()) != 80 {
		t.Fatalf("held seq %d with %d instances, want seq 10", c.GetSeq(), len(c.GetInstances()))
	}

	// Own summaries relayed back and garbage are not stored; garbage counts.
	d.NotifyMsg(encodeMsg(t, bigSummary("me", 99, 1)))
	if c, _ := held(g, "me"); c != nil {
		t.Error("own summary stored from a peer")
	}
	d.NotifyMsg([]byte{0xff, 0xff, 0xff})
	d.NotifyMsg(encodeMsg(t, &haav1.NodeSummary{Node: "p", Seq: 11, Part: 3, Parts: 2}))
	d.MergeRemoteState([]byte{0xff}, true)
	if n := g.rej.counts()["malformed"]; n != 3 {
		t.Errorf("malformed = %d, want 3", n)
	}
}

func TestLocalState(t *testing.T) {
	g := bare()
	l := &fakeLocal{}
	l.setDoc(4)
	g.local = l
	d := (*delegate)(g)
	decode := func(b []byte) *haav1.GossipState {
		var st haav1.GossipState
		if err := proto.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		return &st
	}
	st := decode(d.LocalState(true))
	if st.GetDocument().GetGeneration() != 4 || len(st.GetSummaries()) != 1 || st.GetSummaries()[0].GetNode() != "me" {
		t.Fatalf("join state before any summary: %v", st)
	}
	if st := decode(d.LocalState(false)); st.GetDocument() != nil {
		t.Error("a periodic push/pull carries the document")
	}
	g.own = bigSummary("me", 3, 2)
	d.NotifyMsg(encodeMsg(t, bigSummary("p", 1, 2)))
	st = decode(d.LocalState(false))
	if len(st.GetSummaries()) != 2 || st.GetSummaries()[0].GetSeq() != 3 || st.GetSummaries()[1].GetNode() != "p" {
		t.Fatalf("summaries in state: %v", st.GetSummaries())
	}

	// The receiving side: Offered only on a join, from the first summary's node.
	d.MergeRemoteState(d.LocalState(true), false)
	b := bare()
	b.name = "other"
	(*delegate)(b).MergeRemoteState(d.LocalState(true), false)
	if len(b.hq.items) != 0 && b.hq.items[len(b.hq.items)-1].doc != nil {
		t.Error("periodic merge queued a document")
	}
	(*delegate)(b).MergeRemoteState(d.LocalState(true), true)
	it := b.hq.items[len(b.hq.items)-1]
	if it.from != "me" || it.doc.GetGeneration() != 4 {
		t.Errorf("join merge queued %+v", it)
	}
	if c, _ := held(b, "me"); c.GetSeq() != 3 {
		t.Error("summaries not merged from push/pull")
	}
}

func TestHandlerQueue(t *testing.T) {
	q := newHandlerQueue()
	q.changed()
	q.changed()
	q.offered("a", fleetDoc(2))
	q.offered("b", fleetDoc(1))
	q.offered("a", fleetDoc(3))
	q.offered("a", fleetDoc(1)) // older: kept 3
	q.changed()
	q.changed()
	var got []string
	for {
		it, ok := q.pop()
		if !ok {
			break
		}
		if it.doc == nil {
			got = append(got, "changed")
		} else {
			got = append(got, it.from+"@"+string(rune('0'+it.doc.GetGeneration())))
		}
	}
	want := "changed a@3 b@1 changed"
	if strings.Join(got, " ") != want {
		t.Errorf("queue delivered %q, want %q", strings.Join(got, " "), want)
	}

	// run delivers in order and stops at done.
	h := &recHandler{}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() { q.run(h, done); close(stopped) }()
	q.offered("a", fleetDoc(7))
	q.changed()
	waitFor(t, "delivery", time.Second, func() bool { return h.changed() == 1 })
	if o := h.offered(); len(o) != 1 || o[0] != (offer{"a", 7}) {
		t.Errorf("offers %v", o)
	}
	close(done)
	<-stopped
}

func TestEncodeMeta(t *testing.T) {
	g := bare()
	m := &haav1.GossipMeta{Name: "lb1", Api: "unix:///" + strings.Repeat("é", 400), Version: "1.0", FleetHash: strings.Repeat("f", 32)}
	b := g.encodeMeta(m, memberlist.MetaMaxSize)
	if len(b) == 0 || len(b) > memberlist.MetaMaxSize {
		t.Fatalf("encoded %d bytes", len(b))
	}
	var back haav1.GossipMeta
	if err := proto.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.GetName() != "lb1" || back.GetFleetHash() != m.FleetHash || !strings.HasPrefix(m.Api, back.GetApi()) || back.GetApi() == "" {
		t.Errorf("truncated meta: %v", &back)
	}
	if m.Api == back.GetApi() {
		t.Error("api not truncated")
	}
	small := &haav1.GossipMeta{Name: "lb1", Api: "10.0.0.1:9443"}
	if b := g.encodeMeta(small, memberlist.MetaMaxSize); !proto.Equal(decodeMeta(t, b), small) {
		t.Error("small meta changed")
	}
	if g.encodeMeta(nil, 512) != nil {
		t.Error("nil meta encoded")
	}
}

func decodeMeta(t *testing.T, b []byte) *haav1.GossipMeta {
	var m haav1.GossipMeta
	if err := proto.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

func TestLogWriter(t *testing.T) {
	log, logs := newLogRec(t)
	rej := newRejections()
	var suspected []string
	w := &logWriter{log: log, rej: rej, suspect: func(n string) { suspected = append(suspected, n) }}
	lines := []string{
		"[DEBUG] memberlist: Stream connection from=127.0.0.1:1",
		"[WARN] memberlist: Refuting a suspect message (from: b)",
		"[ERR] memberlist: discarding packet with unacceptable label \"x\": from=127.0.0.1:2",
		"[ERR] memberlist: discarding stream with unacceptable label \"x\": from=127.0.0.1:2",
		"[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=127.0.0.1:3",
		"[ERR] memberlist: failed to receive: No installed keys could decrypt the message from=127.0.0.1:3",
		"[ERR] memberlist: failed to receive: encryption is configured but remote state is not encrypted from=127.0.0.1:4",
		"[ERR] memberlist: Push/Pull with b failed: remote error: no installed keys could decrypt the message",
		"[INFO] memberlist: Suspect lb2 has failed, no acks received",
		"[WARN] memberlist: Binding to public address without encryption!",
		"Err: Could not set the deadline: x",
	}
	for _, l := range lines {
		if _, err := w.Write([]byte(l + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	c := rej.counts()
	if c["label"] != 2 || c["key"] != 3 {
		t.Errorf("counts %v, want label 2, key 3", c)
	}
	if len(suspected) != 1 || suspected[0] != "lb2" {
		t.Errorf("suspected %v", suspected)
	}
	got := strings.Join(logs(), "\n")
	for _, want := range []string{
		"DEBUG Stream connection from=127.0.0.1:1 component=memberlist",
		"WARN Refuting a suspect message (from: b) component=memberlist",
		"WARN gossip from a peer rejected: its label differs",
		"WARN gossip from a peer rejected: its key differs",
		"INFO Suspect lb2 has failed, no acks received",
		"WARN Binding to public address without encryption! component=memberlist",
		"ERROR Could not set the deadline: x",
		"ERROR Push/Pull with b failed: remote error",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "reason=key"); n != 1 {
		t.Errorf("%d key rejection lines, want 1 (rate limited)", n)
	}
	// After the period, one line with the count of those not logged.
	rej.hit(log, "key", "again", time.Now().Add(rejectLogEvery+time.Second))
	if got := logs()[len(logs())-1]; !strings.Contains(got, "rejected=4") || !strings.Contains(got, "not_logged=2") {
		t.Errorf("line after the period: %s", got)
	}
}

func TestStartErrors(t *testing.T) {
	l := &fakeLocal{meta: &haav1.GossipMeta{Name: "n"}}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "node name is empty"},
		{Config{Name: "n", Bind: "lb1:7946"}, `bind "lb1:7946": host must be an IP address`},
		{Config{Name: "n", Bind: "10.0.0.1:99999"}, "port"},
		{Config{Name: "n", Bind: "127.0.0.1:0", Advertise: ":7946"}, "host is missing"},
		{Config{Name: "n", Bind: "127.0.0.1:0", Key: []byte("short")}, "key is 5 bytes, want 16, 24 or 32"},
		{Config{Name: "n", Bind: "127.0.0.1:0", Label: strings.Repeat("x", 300)}, "label is 300 bytes"},
		{Config{Name: "n", Bind: "192.0.2.1:0"}, "listen on 192.0.2.1:0"},
	} {
		g, err := Start(tc.cfg, l, nil)
		if err == nil {
			_ = g.Shutdown()
			t.Errorf("Start(%+v) succeeded", tc.cfg)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start(%+v) = %v, want it to say %q", tc.cfg, err, tc.want)
		}
	}
}

func TestSplitAddr(t *testing.T) {
	for _, tc := range []struct {
		in   string
		host string
		port int
	}{
		{"", "", 7946},
		{"10.0.0.1", "10.0.0.1", 7946},
		{"10.0.0.1:8000", "10.0.0.1", 8000},
		{":8000", "", 8000},
		{"::1", "::1", 7946},
		{"[::1]", "::1", 7946},
		{"[fd00::1]:0", "fd00::1", 0},
	} {
		h, p, err := splitAddr(tc.in, DefaultPort)
		if err != nil || h != tc.host || p != tc.port {
			t.Errorf("splitAddr(%q) = %q, %d, %v; want %q, %d", tc.in, h, p, err, tc.host, tc.port)
		}
	}
}

func TestKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode fs.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, n := range []int{16, 24, 32} {
		k := make([]byte, n)
		for i := range k {
			k[i] = byte(i)
		}
		p := write("good", "  \n"+b64(k)+"\n\n", 0o600)
		got, err := LoadKey(p)
		if err != nil || string(got) != string(k) {
			t.Errorf("LoadKey(%d-byte key) = %x, %v", n, got, err)
		}
	}
	k := NewKey()
	got, err := LoadKey(write("new", k+"\n", 0o400))
	if err != nil || len(got) != 32 {
		t.Errorf("LoadKey(NewKey()) = %d bytes, %v", len(got), err)
	}
	if NewKey() == k {
		t.Error("NewKey repeats")
	}
	for _, tc := range []struct {
		name, content string
		mode          fs.FileMode
		want          string
	}{
		{"open", k, 0o644, "chmod 600 " + filepath.Join(dir, "open")},
		{"group", k, 0o640, "accessible by group or others"},
		{"short", b64([]byte("0123456789")), 0o600, "10-byte key, want 16, 24 or 32 bytes"},
		{"notb64", "this is not base64!", 0o600, "does not hold a base64 key"},
		{"empty", " \n", 0o600, "is empty"},
	} {
		_, err := LoadKey(write(tc.name, tc.content, tc.mode))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadKey(%s) = %v, want %q", tc.name, err, tc.want)
		}
		if err != nil && !strings.Contains(err.Error(), "haactl keygen") && !strings.Contains(err.Error(), "chmod") {
			t.Errorf("LoadKey(%s) does not say what to do: %v", tc.name, err)
		}
	}
	if _, err := LoadKey(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadKey(missing) = %v", err)
	}

	for bind, want := range map[string]bool{
		"127.0.0.1:7946": true, "127.1.2.3": true, "[::1]:7946": true, "::1": true,
		"": false, "0.0.0.0:7946": false, ":7946": false, "10.0.0.1:7946": false, "localhost:7946": false,
	} {
		if got := IsLoopback(bind); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", bind, got, want)
		}
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestSetSummaryOversize(t *testing.T) {
	g := bare()
	log, logs := newLogRec(t)
	g.log = log
	g.bq = &memberlist.TransmitLimitedQueue{NumNodes: func() int { return 2 }, RetransmitMult: 4}
	s := bigSummary("ignored", 1, 1)
	for i := range 100 {
		s.Instances[0].Vips = append(s.Instances[0].Vips, fmt.Sprintf("10.1.%d.1/32", i))
	}
	g.SetSummary(s)
	s.Seq = 2
	g.SetSummary(s)
	if n := strings.Count(strings.Join(logs(), "\n"), "too large for a gossip packet"); n != 1 {
		t.Errorf("%d oversize warnings, want 1", n)
	}
	if g.own.GetNode() != "me" || g.bq.NumQueued() != 1 {
		t.Errorf("own summary node %q, %d queued", g.own.GetNode(), g.bq.NumQueued())
	}
}

// A director's summary with thousands of virtual servers' health is split
// into parts that each fit a packet, and assembled back whole.
func TestSplitSummaryVirtualServers(t *testing.T) {
	s := bigSummary("n", 1, 3)
	for i := range 3000 {
		h := &haav1.VirtualServerHealth{Name: fmt.Sprintf("vs%d", i), RealServers: 5, SetHash: uint32(i * 7919)}
		if i%100 == 0 {
			h.Down = []string{fmt.Sprintf("10.200.%d.%d:8080", i/256, i%256)}
		}
		s.VirtualServers = append(s.VirtualServers, h)
	}
	parts := splitSummary(s)
	if len(parts) < 30 {
		t.Fatalf("%d parts for 3000 virtual servers", len(parts))
	}
	for i, p := range parts {
		if n := len(encodeMsg(t, p)); n > maxPartBytes+maxPartSlack {
			t.Fatalf("part %d is %d bytes", i, n)
		}
	}
	g := bare()
	d := (*delegate)(g)
	for _, p := range parts {
		d.NotifyMsg(encodeMsg(t, p))
	}
	if c, _ := held(g, "n"); !proto.Equal(c, s) {
		t.Fatalf("assembled summary differs: %d instances, %d virtual servers", len(c.GetInstances()), len(c.GetVirtualServers()))
	}
}
