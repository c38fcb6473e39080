package main

import (
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/lvs"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// The configuration ApplyConfig carries resolves to the same table the
// direct part programs, and the start configuration is valid.
func TestLVSAgentConfig(t *testing.T) {
	const services, dests = 300, 5
	for _, backend := range []string{"auto", "nftables"} {
		cfg := lvsAgentConfig(services, dests, backend)
		a, err := config.Resolve(cfg)
		if err != nil {
			t.Fatalf("%s: %v", backend, err)
		}
		if backend != "auto" && a.LBBackend != backend {
			t.Errorf("backend %q, want %q", a.LBBackend, backend)
		}
		want := lvsDesired(services, dests)
		if len(a.VirtualServers) != services {
			t.Fatalf("%d virtual servers, want %d", len(a.VirtualServers), services)
		}
		got := lvs.State{}
		for _, vs := range a.VirtualServers {
			if vs.Name != vs.Service.Key.String() {
				t.Errorf("virtual server named %q, want its key %s", vs.Name, vs.Service.Key)
			}
			v := &lvs.VirtualServer{Service: vs.Service, Dests: map[netip.AddrPort]lvs.DestAttrs{}}
			for _, rs := range vs.Reals {
				if rs.Check != nil {
					t.Errorf("%s %s has a health check", vs.Name, rs.Addr)
				}
				v.Dests[rs.Addr] = lvs.DestAttrs{Weight: rs.Weight}
			}
			got[vs.Service.Key] = v
		}
		if d := lvs.Diff(got, want); len(d) > 0 {
			t.Errorf("%s: the configuration differs from the direct table by %d op(s), first %s", backend, len(d), d[0])
		}
		start, err := config.Parse([]byte(lvsHaadStartConfig(backend)))
		if err != nil {
			t.Fatalf("start configuration %q: %v", lvsHaadStartConfig(backend), err)
		}
		if start.GetName() != "n1" || len(start.GetVirtualServers()) != 0 {
			t.Errorf("start configuration: %v", start)
		}
	}
	// 10,000 x 5 fits haad's default 4 MiB gRPC receive limit.
	if n := proto.Size(&haav1.ApplyConfigRequest{Config: lvsAgentConfig(10000, 5, "auto")}); n > 4<<20 {
		t.Errorf("the 10000 x 5 request is %d bytes, over gRPC's default 4 MiB", n)
	}
}

func TestLVSCheckList(t *testing.T) {
	const services, dests = 3, 2
	mk := func() *haav1.ListVirtualServersResponse {
		lr := &haav1.ListVirtualServersResponse{Backend: "nftables"}
		for i := range services {
			vs := &haav1.VirtualServerStatus{Name: "vs" + string(rune('a'+i)), Address: lvsVIP(i).String(), Protocol: "tcp",
				Scheduler: "wrr", Up: true}
			for j := range dests {
				w := uint32(j%3 + 1)
				vs.RealServers = append(vs.RealServers, &haav1.RealServerStatus{Address: lvsReal(i, j, dests).String(),
					Healthy: true, Programmed: true, Weight: w, ConfiguredWeight: w})
			}
			lr.VirtualServers = append(lr.VirtualServers, vs)
		}
		return lr
	}
	byAddr, err := lvsCheckList(mk(), services, dests)
	if err != nil {
		t.Fatal(err)
	}
	if byAddr[lvsVIP(1).String()] != "vsb" {
		t.Errorf("names by address: %v", byAddr)
	}
	for name, spoil := range map[string]func(*haav1.ListVirtualServersResponse){
		"missing":        func(lr *haav1.ListVirtualServersResponse) { lr.VirtualServers = lr.VirtualServers[1:] },
		"not programmed": func(lr *haav1.ListVirtualServersResponse) { lr.VirtualServers[2].RealServers[1].Programmed = false },
		"weight":         func(lr *haav1.ListVirtualServersResponse) { lr.VirtualServers[0].RealServers[0].Weight = 0 },
		"down":           func(lr *haav1.ListVirtualServersResponse) { lr.VirtualServers[1].Up = false },
	} {
		lr := mk()
		spoil(lr)
		if _, err := lvsCheckList(lr, services, dests); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseBenchLVSHaad(t *testing.T) {
	o, err := parseBenchLVS(nil, io.Discard)
	if err != nil || o.haad != "" {
		t.Fatalf("defaults: %+v, %v", o, err)
	}
	bin := filepath.Join(t.TempDir(), "haad")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if o, err = parseBenchLVS([]string{"--haad", bin}, io.Discard); err != nil || o.haad != bin {
		t.Fatalf("--haad %s: %+v, %v", bin, o, err)
	}
	if _, err := parseBenchLVS([]string{"--haad", filepath.Join(t.TempDir(), "none")}, io.Discard); !errors.Is(err, errUsage) {
		t.Errorf("--haad of a missing file: %v, want a usage error", err)
	}
}

func TestRenderLVSReportHaad(t *testing.T) {
	o := lvsOptions{services: 10000, dests: 5, backend: "auto", changes: 2, command: "haalab bench-lvs", haad: "/x/bin/haad"}
	rounds := []lvsRound{{backend: "nftables", full: 2 * time.Second, changes: []time.Duration{20 * time.Millisecond, 30 * time.Millisecond}}}
	hrounds := []lvsHaadRound{{backend: "nftables", apply: 4 * time.Second, list: 700 * time.Millisecond,
		changes: []time.Duration{10 * time.Millisecond, 60 * time.Millisecond}, stop: 150 * time.Millisecond,
		rssBefore: 20 << 20, rssAfter: 120 << 20, rssEnd: 150 << 20, hwm: 160 << 20, reqBytes: 1 << 20, listBytes: 3 << 20}}
	out := renderLVSReport(o, rounds, hrounds, time.Unix(0, 0).UTC())
	for _, want := range []string{
		"| through haad (API): ApplyConfig, full program from empty (validate + program + persist) | 1 | 4000 ms | 4000 ms | < 5 s | yes |",
		"| through haad (API): one SetRealServer{weight} in the full table | 2 | 35.00 ms | 60.00 ms | < 50 ms | no |",
		"| through haad (API): haad RSS growth by ApplyConfig | 100.0 MiB | 100.0 MiB |",
		"| through haad (API): haad peak RSS (VmHWM) | 160.0 MiB | 160.0 MiB |",
		"- round 1: 4000 ms; 700.0 ms; 35.00 ms / 60.00 ms; 150.0 ms",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if out := renderLVSReport(o, rounds, nil, time.Unix(0, 0).UTC()); strings.Contains(out, "through haad") {
		t.Errorf("report without --haad mentions haad:\n%s", out)
	}
}
