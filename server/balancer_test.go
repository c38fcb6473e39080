package server

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/haa-dev/haa/node/balancer"
	"github.com/haa-dev/haa/node/lvs"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

type rsCall struct {
	vs, rs string
	act    balancer.RealServerAction
}

// lbState is the fake core's load balancer.
type lbState struct {
	vss   []balancer.VirtualServer
	sets  []rsCall
	setFn func(vs, rs string) error
}

func (f *fakeCore) VirtualServers(context.Context) ([]balancer.VirtualServer, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lb.vss, "nftables"
}

func (f *fakeCore) SetRealServer(_ context.Context, vs, rs string, act balancer.RealServerAction) (balancer.RealServer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lb.sets = append(f.lb.sets, rsCall{vs, rs, act})
	if f.lb.setFn != nil {
		if err := f.lb.setFn(vs, rs); err != nil {
			return balancer.RealServer{}, err
		}
	}
	out := balancer.RealServer{Addr: netip.MustParseAddrPort(rs), Programmed: true, Drained: act.Drain, Override: -1}
	if act.Weight != nil {
		out.Weight = *act.Weight
	}
	return out, nil
}

func TestLoadBalancerAPI(t *testing.T) {
	core := newFakeCore()
	core.lb.vss = []balancer.VirtualServer{{Name: "web", Key: lvs.Key{Addr: netip.MustParseAddrPort("10.0.0.1:80"), Proto: lvs.TCP}}}
	core.lb.setFn = func(vs, rs string) error {
		switch {
		case vs != "web":
			return fmt.Errorf("virtual server %q: %w", vs, balancer.ErrNoVirtualServer)
		case rs != "10.0.1.1:80":
			return fmt.Errorf("virtual server web has no real server %q: %w", rs, balancer.ErrNoRealServer)
		}
		return nil
	}
	api := startAPI(t, core, nil)
	ctx := testCtx(t)

	list, err := api.client.ListVirtualServers(ctx, &haav1.ListVirtualServersRequest{})
	if err != nil || list.GetBackend() != "nftables" || len(list.GetVirtualServers()) != 1 {
		t.Fatalf("ListVirtualServers: %v, %v", list, err)
	}
	r, err := api.client.SetRealServer(ctx, &haav1.SetRealServerRequest{VirtualServer: "web", RealServer: "10.0.1.1:80",
		Action: &haav1.SetRealServerRequest_Weight{Weight: 7}})
	if err != nil || r.GetRealServer().GetWeight() != 7 {
		t.Fatalf("SetRealServer weight 7: %v, %v", r, err)
	}
	for _, tc := range []struct {
		name string
		req  *haav1.SetRealServerRequest
		code codes.Code
	}{
		{"no virtual server", &haav1.SetRealServerRequest{RealServer: "10.0.1.1:80", Action: &haav1.SetRealServerRequest_Drain{Drain: true}}, codes.InvalidArgument},
		{"no real server", &haav1.SetRealServerRequest{VirtualServer: "web", Action: &haav1.SetRealServerRequest_Drain{Drain: true}}, codes.InvalidArgument},
		{"no action", &haav1.SetRealServerRequest{VirtualServer: "web", RealServer: "10.0.1.1:80"}, codes.InvalidArgument},
		{"drain false", &haav1.SetRealServerRequest{VirtualServer: "web", RealServer: "10.0.1.1:80", Action: &haav1.SetRealServerRequest_Drain{}}, codes.InvalidArgument},
		{"weight too big", &haav1.SetRealServerRequest{VirtualServer: "web", RealServer: "10.0.1.1:80", Action: &haav1.SetRealServerRequest_Weight{Weight: 65536}}, codes.InvalidArgument},
		{"unknown virtual server", &haav1.SetRealServerRequest{VirtualServer: "api", RealServer: "10.0.1.1:80", Action: &haav1.SetRealServerRequest_Enable{Enable: true}}, codes.NotFound},
		{"unknown real server", &haav1.SetRealServerRequest{VirtualServer: "web", RealServer: "10.0.1.2:80", Action: &haav1.SetRealServerRequest_Enable{Enable: true}}, codes.NotFound},
	} {
		_, err := api.client.SetRealServer(ctx, tc.req)
		if status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
	core.mu.Lock()
	defer core.mu.Unlock()
	if n := len(core.lb.sets); n != 3 { // the weight, then the two NotFound ones: invalid requests never reach the agent
		t.Errorf("the agent saw %d SetRealServer calls, want 3: %v", n, core.lb.sets)
	}
}
