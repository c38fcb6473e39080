package ctl_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/ctl"
	"github.com/haa-dev/haa/ctl/ctltest"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    ctl.Target
		str     string
		wantErr string
	}{
		{in: "unix:///run/haa/n1.sock", want: ctl.Target{Network: "unix", Address: "/run/haa/n1.sock"}, str: "unix:///run/haa/n1.sock"},
		{in: "unix:/run/haa/n1.sock", want: ctl.Target{Network: "unix", Address: "/run/haa/n1.sock"}, str: "unix:///run/haa/n1.sock"},
		{in: "unix:n1.sock", want: ctl.Target{Network: "unix", Address: "n1.sock"}, str: "unix:n1.sock"},
		{in: "/run/haa/n1.sock", want: ctl.Target{Network: "unix", Address: "/run/haa/n1.sock"}, str: "unix:///run/haa/n1.sock"},
		{in: "10.0.0.1:9651", want: ctl.Target{Network: "tcp", Address: "10.0.0.1:9651"}, str: "10.0.0.1:9651"},
		{in: "tcp://[fd00::1]:9651", want: ctl.Target{Network: "tcp", Address: "[fd00::1]:9651"}, str: "[fd00::1]:9651"},
		{in: "n1.example:9651", want: ctl.Target{Network: "tcp", Address: "n1.example:9651"}, str: "n1.example:9651"},
		{in: "", wantErr: "empty target"},
		{in: "unix://", wantErr: "no socket path"},
		{in: "n1.example", wantErr: "want unix:///path/to/socket or host:port"},
	} {
		got, err := ctl.ParseTarget(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseTarget(%q) = %v, %v; want error %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want || got.String() != tc.str {
			t.Errorf("ParseTarget(%q) = %+v (%s), %v; want %+v (%s)", tc.in, got, got, err, tc.want, tc.str)
		}
	}
}

func TestDialErrors(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	_, err := ctl.Dial(ctx, "unix://"+dir+"/n1.sock")
	if !errors.Is(err, ctl.ErrNoAgent) || err.Error() != "no haad listening on "+dir+"/n1.sock: is haad running?" {
		t.Errorf("missing socket: %v", err)
	}
	file := filepath.Join(dir, "plain")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.Dial(ctx, file); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("regular file: %v", err)
	}
	srv := ctltest.Serve(t, &ctltest.Agent{})
	if _, err := ctl.Dial(ctx, srv.Target, ctl.WithCA("ca.pem")); err == nil || !strings.Contains(err.Error(), "TCP targets only") {
		t.Errorf("TLS on unix: %v", err)
	}
	if _, err := ctl.Dial(ctx, "127.0.0.1:1", ctl.Insecure(), ctl.WithServerName("x")); err == nil || !strings.Contains(err.Error(), "contradicts") {
		t.Errorf("insecure and TLS: %v", err)
	}
	if _, err := ctl.Dial(ctx, "127.0.0.1:1", ctl.WithClientCert("c.pem", "")); err == nil || !strings.Contains(err.Error(), "both") {
		t.Errorf("cert without key: %v", err)
	}
	if _, err := ctl.Dial(ctx, "127.0.0.1:1", ctl.WithCA(filepath.Join(dir, "none.pem"))); err == nil || !strings.Contains(err.Error(), "CA bundle") {
		t.Errorf("missing CA: %v", err)
	}
	// Nothing listens on port 1: Unavailable at the first call.
	c, err := ctl.Dial(ctx, "127.0.0.1:1", ctl.Insecure())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Node(ctx); status.Code(err) != codes.Unavailable {
		t.Errorf("unreachable: %v", err)
	}
}

func fixture() *ctltest.Agent {
	return &ctltest.Agent{
		Node: &haav1.Node{Name: "n1", Version: "test"},
		Instances: []*haav1.InstanceStatus{
			{Name: "VI_1", Interface: "eth0", Vrid: 51, State: haav1.State_STATE_MASTER},
			{Name: "VI_2", Interface: "eth0", Vrid: 52, State: haav1.State_STATE_BACKUP},
		},
		Config: &haav1.AgentConfig{Name: "n1", Instances: []*haav1.Instance{
			{Name: "VI_1", Interface: "eth0", Vrid: 51},
			{Name: "VI_2", Interface: "eth0", Vrid: 52},
		}},
		Generation: 3,
		NewMaster:  "10.0.0.2",
	}
}

func dial(t *testing.T, target string) *ctl.Client {
	t.Helper()
	c, err := ctl.Dial(t.Context(), target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestCalls(t *testing.T) {
	ctx := t.Context()
	fake := fixture()
	c := dial(t, ctltest.Serve(t, fake).Target)

	n, err := c.Node(ctx)
	if err != nil || n.GetName() != "n1" || n.GetConfigGeneration() != 3 {
		t.Fatalf("Node = %v, %v", n, err)
	}
	ins, err := c.Instances(ctx)
	if err != nil || len(ins) != 2 || ins[1].GetName() != "VI_2" {
		t.Fatalf("Instances = %v, %v", ins, err)
	}
	if _, err := c.Instance(ctx, "VI_9"); status.Code(err) != codes.NotFound {
		t.Errorf("Instance(VI_9) = %v, want NotFound", err)
	}
	cfg, err := c.Config(ctx)
	if err != nil || cfg.GetGeneration() != 3 || len(cfg.GetConfig().GetInstances()) != 2 {
		t.Fatalf("Config = %v, %v", cfg, err)
	}

	desired := proto.Clone(cfg.GetConfig()).(*haav1.AgentConfig)
	desired.Instances[0].Vrid = 61
	desired.Instances = append(desired.Instances, &haav1.Instance{Name: "VI_3", Interface: "eth1", Vrid: 53})
	r, err := c.Apply(ctx, desired, ctl.DryRun())
	if err != nil || r.GetApplied() || r.GetGeneration() != 3 {
		t.Fatalf("dry run = %v, %v", r, err)
	}
	if p := r.GetPlan(); !slices.Equal(p.GetAdded(), []string{"VI_3"}) || len(p.GetChanged()) != 1 ||
		!p.GetChanged()[0].GetRestart() || !slices.Equal(p.GetUnchanged(), []string{"VI_2"}) {
		t.Errorf("plan = %v", p)
	}
	_, err = c.Apply(ctx, desired, ctl.IfGeneration(2))
	if !errors.Is(err, ctl.ErrStaleGeneration) || status.Code(err) != codes.FailedPrecondition {
		t.Errorf("stale generation: %v", err)
	}
	r, err = c.Apply(ctx, desired, ctl.IfGeneration(3))
	if err != nil || !r.GetApplied() || r.GetGeneration() != 4 {
		t.Fatalf("apply = %v, %v", r, err)
	}
	if reqs := fake.Applies(); len(reqs) != 3 || !reqs[0].GetDryRun() || reqs[0].ExpectedGeneration != nil || reqs[2].GetExpectedGeneration() != 3 {
		t.Errorf("requests = %v", reqs)
	}

	if nm, err := c.Failover(ctx, "VI_1", 3*time.Second); err != nil || nm != "10.0.0.2" {
		t.Errorf("Failover = %q, %v", nm, err)
	}
	if _, err := c.Failover(ctx, "VI_2", 0); !errors.Is(err, ctl.ErrNotMaster) || status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Failover(backup) = %v", err)
	}
	m, err := c.SetMaintenance(ctx, true, time.Minute)
	if err != nil || !m.GetEnabled() || m.GetUntil() == nil {
		t.Errorf("SetMaintenance = %v, %v", m, err)
	}
}

func TestErrorDetails(t *testing.T) {
	fake := fixture()
	fake.Validate = func(*haav1.AgentConfig) error {
		return ctltest.InvalidArgument("invalid configuration: 2 problems",
			"instances[0].vrid", "300 is out of range 1..255",
			"", "no instances")
	}
	c := dial(t, ctltest.Serve(t, fake).Target)
	_, err := c.Apply(t.Context(), &haav1.AgentConfig{})
	want := []ctl.FieldViolation{
		{Field: "instances[0].vrid", Description: "300 is out of range 1..255"},
		{Description: "no instances"},
	}
	if got := ctl.ErrorDetails(err); !slices.Equal(got, want) {
		t.Errorf("ErrorDetails = %v, want %v", got, want)
	}
	if got := want[0].String() + "|" + want[1].String(); got != "instances[0].vrid: 300 is out of range 1..255|no instances" {
		t.Errorf("String = %q", got)
	}
	if ctl.ErrorDetails(status.Error(codes.NotFound, "x")) != nil || ctl.ErrorDetails(errors.New("x")) != nil {
		t.Error("ErrorDetails of other errors should be nil")
	}
}

func stateEvent(inst string) *haav1.Event {
	return &haav1.Event{Instance: inst, Kind: &haav1.Event_StateChanged{StateChanged: &haav1.StateChanged{
		From: haav1.State_STATE_BACKUP, To: haav1.State_STATE_MASTER, Cause: "master_down_timer"}}}
}

func publish(fake *ctltest.Agent, n int) {
	for range n {
		fake.Publish(stateEvent("VI_1"))
	}
}

var errDone = errors.New("done")

// collect watches until it has n events.
func collect(t *testing.T, c *ctl.Client, since *uint64, n int, opts ...ctl.WatchOption) ([]uint64, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var seqs []uint64
	err := c.Watch(ctx, since, func(e *haav1.Event) error {
		seqs = append(seqs, e.GetSeq())
		if len(seqs) == n {
			return errDone
		}
		return nil
	}, append([]ctl.WatchOption{ctl.WatchBackoff(time.Millisecond, 20*time.Millisecond)}, opts...)...)
	if errors.Is(err, errDone) {
		err = nil
	}
	return seqs, err
}

func seqRange(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func sinces(ps []*uint64) []string {
	var out []string
	for _, p := range ps {
		if p == nil {
			out = append(out, "nil")
		} else {
			out = append(out, strconv.FormatUint(*p, 10))
		}
	}
	return out
}

// The fake breaks every stream after 3 events: Watch reconnects with the
// last seq seen and the caller sees 1..10 exactly once.
func TestWatchResumesAfterBrokenStream(t *testing.T) {
	fake := fixture()
	fake.BreakAfter = 3
	publish(fake, 10)
	c := dial(t, ctltest.Serve(t, fake).Target)

	var retries []ctl.Retry
	zero := uint64(0)
	seqs, err := collect(t, c, &zero, 10, ctl.OnRetry(func(r ctl.Retry) { retries = append(retries, r) }))
	if err != nil {
		t.Fatal(err)
	}
	if want := seqRange(1, 10); !slices.Equal(seqs, want) {
		t.Errorf("seqs = %v, want %v", seqs, want)
	}
	if got, want := sinces(fake.Watches()), []string{"0", "3", "6", "9"}; !slices.Equal(got, want) {
		t.Errorf("since_seq of the calls = %v, want %v", got, want)
	}
	if len(retries) != 3 || *retries[2].Resume != 9 || retries[2].Attempt != 1 || status.Code(retries[0].Err) != codes.Unavailable {
		t.Errorf("retries = %+v", retries)
	}
}

// Live events, and an agent that goes away (all connections cut) while
// events happen: Watch keeps retrying, then resumes where it was.
func TestWatchSurvivesAgentRestart(t *testing.T) {
	fake := fixture()
	srv := ctltest.Serve(t, fake)
	c := dial(t, srv.Target)

	got := make(chan uint64, 100)
	errc := make(chan error, 1)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	retried := make(chan struct{}, 100)
	go func() {
		errc <- c.Watch(ctx, nil, func(e *haav1.Event) error {
			got <- e.GetSeq()
			return nil
		}, ctl.WatchBackoff(time.Millisecond, 10*time.Millisecond), ctl.OnRetry(func(ctl.Retry) { retried <- struct{}{} }))
	}()
	// since nil: wait until the stream is up before publishing.
	waitFor(t, func() bool { return len(fake.Watches()) == 1 })
	publish(fake, 3)
	expect(t, got, seqRange(1, 3))

	srv.Stop()
	<-retried
	publish(fake, 4) // 4..7 while the agent is unreachable
	<-retried        // at least one failed attempt
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	publish(fake, 1)
	expect(t, got, seqRange(4, 8))
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch = %v, want context.Canceled", err)
	}
	if w := sinces(fake.Watches()); len(w) < 2 || w[0] != "nil" || w[len(w)-1] != "3" {
		t.Errorf("since_seq of the calls = %v", w)
	}
	select {
	case s := <-got:
		t.Errorf("unexpected event %d", s)
	default:
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

func expect(t *testing.T, got <-chan uint64, want []uint64) {
	t.Helper()
	for _, w := range want {
		select {
		case s := <-got:
			if s != w {
				t.Fatalf("got event %d, want %d", s, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("timed out waiting for event %d", w)
		}
	}
}

func TestWatchEventsLost(t *testing.T) {
	fake := fixture()
	fake.EventBuffer = 4
	publish(fake, 10) // keeps 7..10
	c := dial(t, ctltest.Serve(t, fake).Target)

	two := uint64(2)
	_, err := collect(t, c, &two, 1)
	var lost *ctl.EventsLostError
	if !errors.As(err, &lost) || !errors.Is(err, ctl.ErrEventsLost) || lost.After != 2 || lost.Oldest != 7 {
		t.Fatalf("Watch = %v, want events lost after 2, oldest 7", err)
	}
	if !strings.Contains(err.Error(), "events after seq 2 are no longer buffered on the node (the oldest it keeps is 7)") {
		t.Errorf("message: %v", err)
	}
	if status.Code(lost.Err) != codes.OutOfRange {
		t.Errorf("agent's error: %v", lost.Err)
	}

	// Falling behind while reconnecting: the stream breaks after 1 event,
	// and the agent drops the rest before the client is back.
	six := uint64(6)
	fake.Update(func(a *ctltest.Agent) { a.BreakAfter = 1 })
	_, err = collect(t, c, &six, 5, ctl.OnRetry(func(ctl.Retry) { publish(fake, 4) }))
	if !errors.As(err, &lost) || lost.After != 7 {
		t.Errorf("Watch = %v, want events lost after 7", err)
	}
}

func TestWatchGivesUp(t *testing.T) {
	fake := fixture()
	fake.Errors = map[string]error{"WatchEvents": status.Error(codes.Unauthenticated, "no client certificate")}
	c := dial(t, ctltest.Serve(t, fake).Target)
	if _, err := collect(t, c, nil, 1); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Watch = %v, want Unauthenticated at once", err)
	}
	if n := len(fake.Watches()); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

func TestEvents(t *testing.T) {
	fake := fixture()
	fake.EventBuffer = 5
	publish(fake, 12) // keeps 8..12
	c := dial(t, ctltest.Serve(t, fake).Target)
	ctx := t.Context()

	evs, err := c.Events(ctx, nil, 50*time.Millisecond)
	if got := seqsOf(evs); err != nil || !slices.Equal(got, seqRange(8, 12)) {
		t.Errorf("Events(nil) = %v, %v; want 8..12", got, err)
	}
	ten := uint64(10)
	evs, err = c.Events(ctx, &ten, 50*time.Millisecond)
	if got := seqsOf(evs); err != nil || !slices.Equal(got, seqRange(11, 12)) {
		t.Errorf("Events(10) = %v, %v; want 11..12", got, err)
	}
	twelve := uint64(12)
	if evs, err = c.Events(ctx, &twelve, 50*time.Millisecond); err != nil || len(evs) != 0 {
		t.Errorf("Events(12) = %v, %v; want none", seqsOf(evs), err)
	}
	three := uint64(3)
	if _, err = c.Events(ctx, &three, 50*time.Millisecond); !errors.Is(err, ctl.ErrEventsLost) {
		t.Errorf("Events(3) = %v, want events lost", err)
	}
}

func seqsOf(evs []*haav1.Event) []uint64 {
	var out []uint64
	for _, e := range evs {
		out = append(out, e.GetSeq())
	}
	return out
}

// Events resumes a broken stream too.
func TestEventsResumes(t *testing.T) {
	fake := fixture()
	fake.BreakAfter = 2
	publish(fake, 7)
	c := dial(t, ctltest.Serve(t, fake).Target)
	evs, err := c.Events(t.Context(), nil, 50*time.Millisecond)
	if got := seqsOf(evs); err != nil || !slices.Equal(got, seqRange(1, 7)) {
		t.Errorf("Events = %v, %v; want 1..7", got, err)
	}
	if got, want := sinces(fake.Watches()), []string{"0", "2", "4", "6"}; !slices.Equal(got, want) {
		t.Errorf("since_seq of the calls = %v, want %v", got, want)
	}
	fake.Update(func(a *ctltest.Agent) {
		a.Errors = map[string]error{"WatchEvents": status.Error(codes.Unavailable, "down")}
	})
	if _, err := c.Events(t.Context(), nil, 50*time.Millisecond); status.Code(err) != codes.Unavailable {
		t.Errorf("agent down: %v", err)
	}
}

func TestDialTLS(t *testing.T) {
	pki := ctltest.NewPKI(t)
	srv := ctltest.ServeTLS(t, fixture(), pki.ServerConfig(true))
	ctx := t.Context()
	call := func(opts ...ctl.Option) error {
		c, err := ctl.Dial(ctx, srv.Target, opts...)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Node(ctx)
		return err
	}
	if err := call(ctl.WithCA(pki.CAFile), ctl.WithClientCert(pki.CertFile, pki.KeyFile)); err != nil {
		t.Errorf("mutual TLS: %v", err)
	}
	// By name instead of address.
	if err := call(ctl.WithCA(pki.CAFile), ctl.WithClientCert(pki.CertFile, pki.KeyFile), ctl.WithServerName("haad.test")); err != nil {
		t.Errorf("server name: %v", err)
	}
	if err := call(ctl.WithCA(pki.CAFile), ctl.WithClientCert(pki.CertFile, pki.KeyFile), ctl.WithServerName("other.test")); status.Code(err) != codes.Unavailable {
		t.Errorf("wrong server name: %v", err)
	}
	// TLS 1.3: the client learns of the refusal when it reads or writes,
	// as "certificate required" or a broken connection.
	if err := call(ctl.WithCA(pki.CAFile)); status.Code(err) != codes.Unavailable {
		t.Errorf("no client certificate: %v", err)
	}
	if err := call(ctl.WithClientCert(pki.CertFile, pki.KeyFile)); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "x509") {
		t.Errorf("unknown CA: %v", err)
	}
	if err := call(ctl.Insecure()); status.Code(err) != codes.Unavailable {
		t.Errorf("plaintext to TLS: %v", err)
	}
}

// The agent restarts: its numbering starts again. Watch notices (GetNode:
// another pid and start time) and follows the new run from its first event
// instead of resuming at a seq that means something else now.
func TestWatchAgentRestart(t *testing.T) {
	fake := fixture()
	fake.Node.Pid = 100
	srv := ctltest.Serve(t, fake)
	c := dial(t, srv.Target)
	publish(fake, 5)

	got := make(chan uint64, 100)
	restarts := make(chan ctl.Restart, 10)
	errc := make(chan error, 1)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	zero := uint64(0)
	go func() {
		errc <- c.Watch(ctx, &zero, func(e *haav1.Event) error {
			got <- e.GetSeq()
			return nil
		}, ctl.WatchBackoff(time.Millisecond, 10*time.Millisecond),
			ctl.OnRestart(func(r ctl.Restart) error { restarts <- r; return nil }))
	}()
	expect(t, got, seqRange(1, 5))

	srv.Stop()
	fake.Reboot()
	publish(fake, 7) // the new run is past seq 5 already
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	expect(t, got, seqRange(1, 7))
	r := <-restarts
	if r.Previous.GetPid() != 100 || r.Current.GetPid() != 101 || r.LastSeq == nil || *r.LastSeq != 5 {
		t.Errorf("restart = %+v", r)
	}
	publish(fake, 1)
	expect(t, got, []uint64{8})
	cancel()
	<-errc

	// A caller that wants to stop there.
	stop := errors.New("restarted")
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	go func() {
		errc <- c.Watch(ctx, nil, func(e *haav1.Event) error {
			got <- e.GetSeq()
			return nil
		}, ctl.WatchBackoff(time.Millisecond, 10*time.Millisecond),
			ctl.OnRestart(func(ctl.Restart) error { return stop }))
	}()
	waitFor(t, func() bool { return len(fake.Watches()) == 3 })
	publish(fake, 1)
	expect(t, got, []uint64{9})
	srv.Stop()
	fake.Reboot()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != stop {
		t.Errorf("Watch = %v, want the error of OnRestart", err)
	}
}

func TestPartialAndLostMessages(t *testing.T) {
	fake := fixture()
	fake.Errors = map[string]error{
		"ApplyConfig": ctltest.Partial(codes.Internal, "configuration applied as generation 4, but: boom",
			&haav1.ApplyConfigResponse{Generation: 4, Applied: true}),
		// haad's words, without an ErrorInfo detail.
		"WatchEvents": status.Error(codes.OutOfRange, "events after 2 are gone, the oldest kept is 7: no such event"),
	}
	c := dial(t, ctltest.Serve(t, fake).Target)
	r, err := c.Apply(t.Context(), &haav1.AgentConfig{})
	if !errors.Is(err, ctl.ErrPartial) || status.Code(err) != codes.Internal || r.GetGeneration() != 4 {
		t.Errorf("Apply = %v, %v", r, err)
	}
	two := uint64(2)
	_, err = collect(t, c, &two, 1)
	var lost *ctl.EventsLostError
	if !errors.As(err, &lost) || lost.Oldest != 7 {
		t.Errorf("Watch = %v", err)
	}
}
