package ctl_test

import (
	"errors"
	"slices"
	"strconv"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/ctl"
	"github.com/haa-dev/haa/ctl/ctltest"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

func lbFixture() *ctltest.Agent {
	fake := fixture()
	fake.Backend = "nftables"
	fake.VirtualServers = []*haav1.VirtualServerStatus{{
		Name: "web", Address: "10.0.0.100:80", Protocol: "tcp", Scheduler: "rr", Forwarding: "nat", Up: true, Quorum: 1, HealthyWeight: 3,
		RealServers: []*haav1.RealServerStatus{
			{Address: "10.0.1.1:80", Healthy: true, ConfiguredWeight: 1, Weight: 1, Programmed: true, Check: "tcp"},
			{Address: "10.0.1.2:80", Healthy: true, ConfiguredWeight: 2, Weight: 2, Programmed: true, Check: "tcp"},
			{Address: "10.0.1.2:8080", ConfiguredWeight: 2, Check: "tcp", LastResult: "connection refused"},
		},
	}}
	return fake
}

func TestVirtualServers(t *testing.T) {
	ctx := t.Context()
	fake := lbFixture()
	c := dial(t, ctltest.Serve(t, fake).Target)

	r, err := c.VirtualServers(ctx)
	if err != nil || r.GetBackend() != "nftables" || len(r.GetVirtualServers()) != 1 ||
		!proto.Equal(r.GetVirtualServers()[0], fake.VirtualServers[0]) {
		t.Fatalf("VirtualServers = %v, %v", r, err)
	}

	rs, err := c.SetRealServer(ctx, "web", "10.0.1.1:80", ctl.Drain())
	if err != nil || rs.GetAddress() != "10.0.1.1:80" || !rs.GetDrained() || rs.GetWeight() != 0 || rs.GetConfiguredWeight() != 1 {
		t.Errorf("Drain = %v, %v", rs, err)
	}
	rs, err = c.SetRealServer(ctx, "web", "10.0.1.1:80", ctl.Weight(7))
	if err != nil || rs.GetDrained() || rs.WeightOverride == nil || rs.GetWeightOverride() != 7 || rs.GetWeight() != 7 {
		t.Errorf("Weight(7) = %v, %v", rs, err)
	}
	rs, err = c.SetRealServer(ctx, "web", "10.0.1.1:80", ctl.Enable())
	if err != nil || rs.GetDrained() || rs.WeightOverride != nil || rs.GetWeight() != 1 {
		t.Errorf("Enable = %v, %v", rs, err)
	}
	// A weight of 0 is an override too, not "unset".
	rs, err = c.SetRealServer(ctx, "web", "10.0.1.1:80", ctl.Weight(0))
	if err != nil || rs.WeightOverride == nil || rs.GetWeightOverride() != 0 || rs.GetWeight() != 0 {
		t.Errorf("Weight(0) = %v, %v", rs, err)
	}
	var got []string
	for _, req := range fake.RealServerSets() {
		got = append(got, req.GetVirtualServer()+" "+req.GetRealServer()+" "+actionOf(req))
	}
	if want := []string{"web 10.0.1.1:80 drain", "web 10.0.1.1:80 weight 7", "web 10.0.1.1:80 enable", "web 10.0.1.1:80 weight 0"}; !slices.Equal(got, want) {
		t.Errorf("requests = %q, want %q", got, want)
	}

	// ADDR alone: only when one real server has it.
	if rs, err := c.SetRealServer(ctx, "web", "10.0.1.1", ctl.Enable()); err != nil || rs.GetAddress() != "10.0.1.1:80" {
		t.Errorf("by address = %v, %v", rs, err)
	}
	for _, tc := range []struct{ vs, rs string }{{"db", "10.0.1.1:80"}, {"web", "10.0.1.9:80"}, {"web", "10.0.1.2"}} {
		_, err := c.SetRealServer(ctx, tc.vs, tc.rs, ctl.Drain())
		if !errors.Is(err, ctl.ErrNotFound) || status.Code(err) != codes.NotFound {
			t.Errorf("SetRealServer(%s, %s) = %v, want ErrNotFound", tc.vs, tc.rs, err)
		}
	}
	_, err = c.SetRealServer(ctx, "web", "10.0.1.1:80", ctl.Weight(65536))
	if status.Code(err) != codes.InvalidArgument || errors.Is(err, ctl.ErrNotFound) ||
		!slices.Equal(ctl.ErrorDetails(err), []ctl.FieldViolation{{Field: "weight", Description: "out of range 0..65535"}}) {
		t.Errorf("Weight(65536) = %v", err)
	}

	// No action: refused before anything is sent.
	n := len(fake.RealServerSets())
	if _, err := c.SetRealServer(ctx, "web", "10.0.1.1:80", ctl.RealServerAction{}); err == nil {
		t.Error("SetRealServer without an action succeeded")
	}
	if len(fake.RealServerSets()) != n {
		t.Error("SetRealServer without an action sent a request")
	}
	for _, tc := range []struct {
		a    ctl.RealServerAction
		want string
	}{{ctl.Drain(), "drain"}, {ctl.Enable(), "enable"}, {ctl.Weight(5), "weight 5"}, {ctl.RealServerAction{}, "none"}} {
		if got := tc.a.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}

	// Each change is an event.
	evs, err := c.Events(ctx, nil, 0)
	if err != nil || len(evs) != 5 {
		t.Fatalf("Events = %d, %v", len(evs), err)
	}
	if rc := evs[0].GetRealServerChanged(); rc.GetVirtualServer() != "web" || rc.GetRealServer() != "10.0.1.1:80" ||
		rc.GetCause() != "drained" || rc.GetWeight() != 0 || !rc.GetHealthy() {
		t.Errorf("first event = %v", evs[0])
	}
}

func actionOf(req *haav1.SetRealServerRequest) string {
	switch a := req.GetAction().(type) {
	case *haav1.SetRealServerRequest_Drain:
		if a.Drain {
			return "drain"
		}
	case *haav1.SetRealServerRequest_Enable:
		if a.Enable {
			return "enable"
		}
	case *haav1.SetRealServerRequest_Weight:
		return "weight " + strconv.FormatUint(uint64(a.Weight), 10)
	}
	return "?"
}

func TestVirtualServersUnimplemented(t *testing.T) {
	fake := fixture()
	fake.Errors = map[string]error{"ListVirtualServers": status.Error(codes.Unimplemented, "this agent has no load balancer")}
	c := dial(t, ctltest.Serve(t, fake).Target)
	if _, err := c.VirtualServers(t.Context()); status.Code(err) != codes.Unimplemented {
		t.Errorf("VirtualServers = %v", err)
	}
}
