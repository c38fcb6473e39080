// Package lvstest builds virtual-server tables for the tests of node/lvs
// and its backends.
package lvstest

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/haa-dev/haa/node/lvs"
)

// TCPKey is the key of a TCP virtual server at s ("ADDR:PORT").
func TCPKey(s string) lvs.Key {
	return lvs.Key{Addr: netip.MustParseAddrPort(s), Proto: lvs.TCP}
}

// VS builds a nat virtual server: dests as "addr:port=weight".
func VS(k lvs.Key, sched string, dests ...string) *lvs.VirtualServer {
	vs := &lvs.VirtualServer{Service: lvs.Service{Key: k, Scheduler: sched, Forwarding: lvs.NAT}, Dests: map[netip.AddrPort]lvs.DestAttrs{}}
	for _, d := range dests {
		addr, w, _ := strings.Cut(d, "=")
		var weight int
		if _, err := fmt.Sscan(w, &weight); err != nil {
			panic(d)
		}
		vs.Dests[netip.MustParseAddrPort(addr)] = lvs.DestAttrs{Weight: weight, Forwarding: lvs.NAT}
	}
	return vs
}

// Dests builds a destination map of forwarding fwd: "addr:port=weight".
func Dests(fwd lvs.Forwarding, dests ...string) map[netip.AddrPort]lvs.DestAttrs {
	m := map[netip.AddrPort]lvs.DestAttrs{}
	for _, d := range dests {
		addr, w, _ := strings.Cut(d, "=")
		var weight int
		if _, err := fmt.Sscan(w, &weight); err != nil {
			panic(d)
		}
		m[netip.MustParseAddrPort(addr)] = lvs.DestAttrs{Weight: weight, Forwarding: fwd}
	}
	return m
}

// Weights returns the weights of a destination map.
func Weights(m map[netip.AddrPort]lvs.DestAttrs) map[netip.AddrPort]int {
	if m == nil {
		return nil
	}
	out := make(map[netip.AddrPort]int, len(m))
	for a, d := range m {
		out[a] = d.Weight
	}
	return out
}

// StateOf is the table of vss.
func StateOf(vss ...*lvs.VirtualServer) lvs.State {
	s := lvs.State{}
	for _, vs := range vss {
		s[vs.Key] = vs
	}
	return s
}

// BigState returns n wrr services of dests destinations each: VIPs
// 10.x.y.z:80/tcp from 10.1.0.1 on, destinations in 10.200.0.0/16.
func BigState(n, dests int) lvs.State {
	s := make(lvs.State, n)
	for i := range n {
		v := 0x0a010001 + i
		k := lvs.Key{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 80), Proto: lvs.TCP}
		vs := &lvs.VirtualServer{Service: lvs.Service{Key: k, Scheduler: "wrr", Forwarding: lvs.NAT}, Dests: make(map[netip.AddrPort]lvs.DestAttrs, dests)}
		for j := range dests {
			d := (i*dests + j) % 65000
			vs.Dests[netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 200, byte(d >> 8), byte(d)}), uint16(8080+j))] = lvs.DestAttrs{Weight: 1 + j%3}
		}
		s[k] = vs
	}
	return s
}
