package main

// bench-lvs: how long the load balancer's backend takes to program a large
// table of virtual servers from empty, to change one real server's weight
// in it, and what the table costs in memory, in a fresh network namespace.
// With --haad, the same table again through a real haad's API, as an
// operator sees it: ApplyConfig, ListVirtualServers, SetRealServer, stop.

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/moby/ipvs"
	"github.com/vishvananda/netns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/deploy/lab"
	"github.com/haa-dev/haa/node/balancer"
	"github.com/haa-dev/haa/node/lvs"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// The targets of issue 6 at 10,000 services x 5 real servers.
const (
	lvsTargetFull   = 5 * time.Second
	lvsTargetChange = 50 * time.Millisecond
)

// lvsOptions are bench-lvs's flags.
type lvsOptions struct {
	services, dests int
	backend         string
	rounds, changes int
	out             string
	command         string
	// haad is the haad binary (absolute); empty: no "through haad" part.
	haad string
}

func parseBenchLVS(args []string, stderr io.Writer) (lvsOptions, error) {
	fs := flag.NewFlagSet("haalab bench-lvs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o lvsOptions
	fs.IntVar(&o.services, "services", 10000, "virtual servers (10.x.y.z:80/tcp, wrr)")
	fs.IntVar(&o.dests, "dests", 5, "real servers per virtual server")
	fs.StringVar(&o.backend, "backend", "auto", "backend: auto, nftables or ipvs")
	fs.IntVar(&o.rounds, "rounds", 3, "full programs, each in a fresh namespace")
	fs.IntVar(&o.changes, "changes", 20, "single weight changes per round")
	fs.StringVar(&o.out, "out", "out/bench-lvs.md", "Markdown report to write")
	fs.StringVar(&o.haad, "haad", "", "haad binary: also apply the table through a running haad's API (empty: skip)")
	if err := parseFlags(fs, "bench-lvs", args); err != nil {
		return o, err
	}
	switch {
	case o.services < 1 || o.services > 100000:
		return o, usageErrorf("bench-lvs: --services %d: use 1..100000", o.services)
	case o.dests < 1 || o.dests > 64:
		return o, usageErrorf("bench-lvs: --dests %d: use 1..64", o.dests)
	case o.services*o.dests > 1000000:
		return o, usageErrorf("bench-lvs: --services x --dests = %d: at most 1000000 real servers", o.services*o.dests)
	case o.rounds < 1 || o.rounds > 100:
		return o, usageErrorf("bench-lvs: --rounds %d: use 1..100", o.rounds)
	case o.changes < 1 || o.changes > 10000:
		return o, usageErrorf("bench-lvs: --changes %d: use 1..10000", o.changes)
	}
	switch o.backend {
	case "auto", "nftables", "ipvs":
	default:
		return o, usageErrorf("bench-lvs: --backend %q: use auto, nftables or ipvs", o.backend)
	}
	if o.haad != "" {
		abs, err := filepath.Abs(o.haad)
		if err != nil {
			return o, usageErrorf("bench-lvs: --haad %s: %v", o.haad, err)
		}
		if fi, err := os.Stat(abs); err != nil || fi.IsDir() {
			return o, usageErrorf("bench-lvs: --haad %s: not a file (make build)", o.haad)
		}
		o.haad = abs
	}
	return o, nil
}

// lvsVIP is virtual server i's address: 10.1.0.0 onwards (never in
// 10.200.0.0/16 and up, where the real servers are).
func lvsVIP(i int) netip.AddrPort {
	n := uint32(10)<<24 | uint32(1)<<16 + uint32(i)
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), 80)
}

// lvsReal is real server j of virtual server i: 10.200.0.1 onwards, every
// one distinct.
func lvsReal(i, j, dests int) netip.AddrPort {
	n := uint32(10)<<24 | uint32(200)<<16 + uint32(i*dests+j+1)
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), 8080)
}

// lvsDesired is the benchmark's table: services wrr virtual servers over
// NAT, dests real servers each with weights 1, 2, 3, 1, 2, ...
func lvsDesired(services, dests int) lvs.State {
	st := make(lvs.State, services)
	for i := range services {
		k := lvs.Key{Addr: lvsVIP(i), Proto: lvs.TCP}
		vs := &lvs.VirtualServer{
			Service: lvs.Service{Key: k, Scheduler: "wrr", Forwarding: lvs.NAT},
			Dests:   make(map[netip.AddrPort]lvs.DestAttrs, dests),
		}
		for j := range dests {
			vs.Dests[lvsReal(i, j, dests)] = lvs.DestAttrs{Weight: j%3 + 1}
		}
		st[k] = vs
	}
	return st
}

// lvsRound is one fresh namespace: a full program, single weight
// changes, a full delete.
type lvsRound struct {
	backend, reason string
	// full = diff + apply.
	full, fullDiff time.Duration
	read           time.Duration
	changes        []time.Duration
	changeDiff     []time.Duration
	del            time.Duration
	// Memory after programming: the Go heap in use (after a GC), the
	// process's resident set, and the kernel's (whole machine) Slab and
	// MemAvailable changes since before programming, in bytes.
	heap, rss         uint64
	slab, unavailable int64
	ops               int
}

// runBenchLVS runs bench-lvs; command is the command line, for the report.
func runBenchLVS(s *session, command string, args []string, stderr io.Writer) error {
	o, err := parseBenchLVS(args, stderr)
	if err != nil {
		return err
	}
	o.command = command
	if err := lab.Available(); err != nil {
		return fmt.Errorf("bench-lvs needs network namespaces: %w", err)
	}
	fmt.Fprintf(s.out, "haa load-balancer benchmark: %d virtual servers x %d real servers, backend %s, %d round(s) of a full program and %d weight changes\n\n",
		o.services, o.dests, o.backend, o.rounds, o.changes)
	var rounds []lvsRound
	for r := range o.rounds {
		if err := s.err(); err != nil {
			return err
		}
		res, err := runLVSRound(s, o, r+1)
		if err != nil {
			return fmt.Errorf("round %d: %w", r+1, err)
		}
		rounds = append(rounds, res)
	}
	var hrounds []lvsHaadRound
	if o.haad != "" {
		fmt.Fprintf(s.out, "\nthrough haad (API): %s, the same table applied to a running agent\n\n", o.haad)
		for r := range o.rounds {
			if err := s.err(); err != nil {
				return err
			}
			res, err := runLVSHaadRound(s, o, r+1)
			if err != nil {
				return fmt.Errorf("through haad, round %d: %w", r+1, err)
			}
			hrounds = append(hrounds, res)
		}
	}
	report := renderLVSReport(o, rounds, hrounds, time.Now().UTC())
	if err := s.publish(report, o.out); err != nil {
		return err
	}
	return nil
}

// runLVSRound programs the table into a backend chosen in a new namespace,
// changes single weights, reads the table back, deletes it, and removes the
// namespace.
func runLVSRound(s *session, o lvsOptions, n int) (res lvsRound, err error) {
	ns, err := lab.NewNS(lab.UniqueName("hlvs"))
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := ns.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("removing namespace %s: %w", ns.Name, cerr))
		}
	}()
	h, err := netns.GetFromName(ns.Name)
	if err != nil {
		return res, err
	}
	defer h.Close()
	// Choose inside the namespace too: a backend that opens its sockets in
	// the caller's namespace (ipvs) then programs this one, never the host.
	var b lvs.Backend
	if err := ns.Do(func() error {
		var err error
		b, res.reason, err = balancer.Choose(o.backend, balancer.WithNetNS(int(h)))
		return err
	}); err != nil {
		return res, fmt.Errorf("choosing the %s backend: %w", o.backend, err)
	}
	defer func() {
		if cerr := b.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing the backend: %w", cerr))
		}
	}()
	res.backend = b.Name()
	ctx := s.ctx

	desired := lvsDesired(o.services, o.dests)
	for _, vs := range desired {
		if err := b.Supports(vs.Service); err != nil {
			return res, fmt.Errorf("%s: %w", vs.Key, err)
		}
		break // all alike
	}
	memBefore, err := readMeminfo()
	if err != nil {
		return res, err
	}
	runtime.GC()

	// Full program from empty.
	t0 := time.Now()
	plan := lvs.Diff(lvs.State{}, desired)
	res.fullDiff = time.Since(t0)
	if err := b.Apply(ctx, plan); err != nil {
		return res, fmt.Errorf("programming %d virtual servers: %w", o.services, err)
	}
	res.full = time.Since(t0)
	res.ops = len(plan)
	plan = nil
	memAfter, err := readMeminfo()
	if err != nil {
		return res, err
	}
	runtime.GC()
	var mstats runtime.MemStats
	runtime.ReadMemStats(&mstats)
	res.heap = mstats.HeapInuse
	res.rss = selfRSS()
	res.slab = (memAfter["Slab"] - memBefore["Slab"]) << 10
	res.unavailable = (memBefore["MemAvailable"] - memAfter["MemAvailable"]) << 10
	s.say("round %d (%s): %d virtual servers x %d real servers programmed in %v (Diff %v, %d ops)",
		n, res.backend, o.services, o.dests, res.full.Round(time.Millisecond), res.fullDiff.Round(100*time.Microsecond), res.ops)

	// Read back: what the kernel holds is the table.
	t0 = time.Now()
	got, err := b.Read(ctx)
	res.read = time.Since(t0)
	if err != nil {
		return res, fmt.Errorf("reading the table back: %w", err)
	}
	if d := lvs.Diff(got, desired); len(d) > 0 {
		return res, fmt.Errorf("the table read back differs from the programmed one by %d op(s), first: %s", len(d), d[0])
	}
	got = nil

	// Single weight changes at random places in the full table.
	for range o.changes {
		if err := s.err(); err != nil {
			return res, err
		}
		i := rand.IntN(o.services)
		k := lvs.Key{Addr: lvsVIP(i), Proto: lvs.TCP}
		cur := desired[k]
		next := cur.Clone()
		a := lvsReal(i, rand.IntN(o.dests), o.dests)
		next.Dests[a] = lvs.DestAttrs{Weight: next.Dests[a].Weight%10 + 1}
		t0 := time.Now()
		p := lvs.Diff(lvs.State{k: cur}, lvs.State{k: next})
		dd := time.Since(t0)
		if err := b.Apply(ctx, p); err != nil {
			return res, fmt.Errorf("changing a weight of %s: %w", k, err)
		}
		res.changes = append(res.changes, time.Since(t0))
		res.changeDiff = append(res.changeDiff, dd)
		if len(p) != 1 || p[0].Kind != lvs.UpdateDest {
			return res, fmt.Errorf("a weight change of %s made a plan of %d op(s), want one %s: %v", k, len(p), lvs.UpdateDest, p)
		}
		desired[k] = next
	}
	sorted := slices.Clone(res.changes)
	s.say("round %d: %d weight changes, median %s, max %s", n, len(res.changes), lvsDur(median(sorted)), lvsDur(slices.Max(sorted)))
	if got, err = b.Read(ctx); err != nil {
		return res, fmt.Errorf("reading the table back after the changes: %w", err)
	}
	if d := lvs.Diff(got, desired); len(d) > 0 {
		return res, fmt.Errorf("after the weight changes the table read back differs by %d op(s), first: %s", len(d), d[0])
	}
	got = nil

	// Delete everything.
	t0 = time.Now()
	if err := b.Apply(ctx, lvs.Diff(desired, lvs.State{})); err != nil {
		return res, fmt.Errorf("deleting every virtual server: %w", err)
	}
	res.del = time.Since(t0)
	if got, err = b.Read(ctx); err != nil {
		return res, fmt.Errorf("reading the table back after deleting it: %w", err)
	}
	if len(got) > 0 {
		return res, fmt.Errorf("%d virtual server(s) left after deleting every one", len(got))
	}
	s.say("round %d: deleted in %v", n, res.del.Round(time.Millisecond))
	return res, nil
}

// lvsHaadRound is one fresh lab of one node running haad: the table
// applied through the API, listed, single weights set, haad stopped.
type lvsHaadRound struct {
	backend string
	// apply: the ApplyConfig call, as the client sees it; reqBytes its
	// request's size.
	apply      time.Duration
	reqBytes   int
	generation uint64
	// list: the ListVirtualServers call; listBytes its response's size.
	list      time.Duration
	listBytes int
	changes   []time.Duration
	// stop: SIGTERM to exit, which removes the table.
	stop time.Duration
	// haad's VmRSS before ApplyConfig, after it, and at the end (after
	// the list and the changes); hwm its peak (VmHWM) then; in bytes.
	rssBefore, rssAfter, rssEnd, hwm uint64
}

// lvsAgentConfig is the benchmark's table as a haad configuration: node
// n1, the virtual servers of lvsDesired (wrr, nat, tcp by default), no
// health check (every real server stays healthy).
func lvsAgentConfig(services, dests int, backend string) *haav1.AgentConfig {
	cfg := &haav1.AgentConfig{Name: "n1", VirtualServers: make([]*haav1.VirtualServer, services)}
	if backend != "auto" {
		cfg.LoadBalancer = &haav1.LoadBalancer{Backend: backend}
	}
	for i := range services {
		vs := &haav1.VirtualServer{Address: lvsVIP(i).String(), Scheduler: "wrr",
			RealServers: make([]*haav1.RealServer, dests)}
		for j := range dests {
			vs.RealServers[j] = &haav1.RealServer{Address: lvsReal(i, j, dests).String(), Weight: proto.Uint32(uint32(j%3 + 1))}
		}
		cfg.VirtualServers[i] = vs
	}
	return cfg
}

// lvsHaadStartConfig is the configuration haad starts with: the node's
// name (and the backend when one is asked for: it is chosen at start).
func lvsHaadStartConfig(backend string) string {
	if backend == "auto" {
		return "name: n1\n"
	}
	return fmt.Sprintf("name: n1\nloadBalancer: {backend: %s}\n", backend)
}

// runLVSHaadRound starts haad in a new one-node lab, applies the table
// through its API and checks it, sets single weights, stops haad and
// removes the lab.
func runLVSHaadRound(s *session, o lvsOptions, n int) (res lvsHaadRound, err error) {
	l, err := s.newLab(lab.Options{Prefix: lab.UniqueName("hlvh"), Nodes: 1, Clients: -1})
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := s.closeLab(l); cerr != nil {
			err = errors.Join(err, fmt.Errorf("removing lab %s: %w", l.Prefix, cerr))
		}
	}()
	dir, err := os.MkdirTemp("", "haalab-lvs")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	node := l.Nodes[0]
	files := node.HaadFiles(dir)
	p, err := node.StartHaad(dir, o.haad, lvsHaadStartConfig(o.backend), "--log-level", "info")
	if err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = p.Stop(5 * time.Second)
		}
		if err != nil {
			err = fmt.Errorf("%w (haad's log: %s)", err, lvsLogTail(files.Log))
		}
	}()
	if err := lab.WaitAPI(p, files.Socket, 10*time.Second); err != nil {
		return res, err
	}
	conn, err := grpc.NewClient("unix://"+files.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30), grpc.MaxCallSendMsgSize(1<<30)))
	if err != nil {
		return res, err
	}
	defer conn.Close()
	api := haav1.NewAgentServiceClient(conn)
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Minute)
	defer cancel()

	// Connected, the node configured and the backend chosen: the
	// connection is warm before anything is timed.
	var node0 *haav1.GetNodeResponse
	if err := lab.Poll(10*time.Second, 20*time.Millisecond, "haad's GetNode", func() (bool, error) {
		var err error
		node0, err = api.GetNode(ctx, &haav1.GetNodeRequest{})
		return err == nil, nil
	}); err != nil {
		return res, err
	}
	if pid := node0.GetNode().GetPid(); int(pid) != p.Pid() {
		return res, fmt.Errorf("GetNode says pid %d, haad is pid %d", pid, p.Pid())
	}
	res.backend = node0.GetNode().GetLbBackend()
	res.rssBefore, _ = procMem(p.Pid(), "VmRSS")

	// ApplyConfig: validation, programming and persisting, through the
	// agent.
	cfg := lvsAgentConfig(o.services, o.dests, o.backend)
	req := &haav1.ApplyConfigRequest{Config: cfg}
	res.reqBytes = proto.Size(req)
	t0 := time.Now()
	ar, err := api.ApplyConfig(ctx, req)
	res.apply = time.Since(t0)
	if err != nil {
		return res, fmt.Errorf("ApplyConfig of %d virtual servers (%.1f MiB): %w", o.services, float64(res.reqBytes)/(1<<20), err)
	}
	if !ar.GetApplied() {
		return res, fmt.Errorf("ApplyConfig of %d virtual servers: not applied: %v", o.services, ar)
	}
	res.generation = ar.GetGeneration()
	res.rssAfter, _ = procMem(p.Pid(), "VmRSS")
	s.say("through haad, round %d: ApplyConfig of %d virtual servers x %d real servers (%.1f MiB) took %v, generation %d; haad RSS %s -> %s",
		n, o.services, o.dests, float64(res.reqBytes)/(1<<20), res.apply.Round(time.Millisecond), res.generation,
		mib(int64(res.rssBefore)), mib(int64(res.rssAfter)))

	// The kernel holds them (straight from netlink, not through haad).
	if k, _, err := lvsKernelServices(node.NS.Name, res.backend); err != nil {
		return res, fmt.Errorf("reading the kernel's table: %w", err)
	} else if k != o.services {
		return res, fmt.Errorf("the kernel's %s table holds %d virtual servers, want %d", res.backend, k, o.services)
	}

	// ListVirtualServers: every one there, every real server programmed.
	t0 = time.Now()
	lr, err := api.ListVirtualServers(ctx, &haav1.ListVirtualServersRequest{})
	res.list = time.Since(t0)
	if err != nil {
		return res, fmt.Errorf("ListVirtualServers: %w", err)
	}
	res.listBytes = proto.Size(lr)
	if lr.GetBackend() != res.backend {
		return res, fmt.Errorf("ListVirtualServers says backend %q, GetNode %q", lr.GetBackend(), res.backend)
	}
	byAddr, err := lvsCheckList(lr, o.services, o.dests)
	if err != nil {
		return res, err
	}
	s.say("through haad, round %d: ListVirtualServers returned %d virtual servers (%.1f MiB) in %v, all %d real servers programmed",
		n, len(lr.GetVirtualServers()), float64(res.listBytes)/(1<<20), res.list.Round(time.Millisecond), o.services*o.dests)
	lr = nil

	// SetRealServer: one weight at a time, at random virtual servers.
	for c := range o.changes {
		if err := s.err(); err != nil {
			return res, err
		}
		i, j := rand.IntN(o.services), rand.IntN(o.dests)
		name := byAddr[lvsVIP(i).String()]
		addr := lvsReal(i, j, o.dests).String()
		w := uint32(10 + c%1000) // never a configured weight (1..3)
		t0 := time.Now()
		sr, err := api.SetRealServer(ctx, &haav1.SetRealServerRequest{VirtualServer: name, RealServer: addr,
			Action: &haav1.SetRealServerRequest_Weight{Weight: w}})
		d := time.Since(t0)
		if err != nil {
			return res, fmt.Errorf("SetRealServer %s %s weight %d: %w", name, addr, w, err)
		}
		rs := sr.GetRealServer()
		if rs.GetAddress() != addr || rs.GetWeight() != w || !rs.GetProgrammed() || rs.GetWeightOverride() != w {
			return res, fmt.Errorf("SetRealServer %s %s weight %d returned %v, want weight %d programmed", name, addr, w, rs, w)
		}
		res.changes = append(res.changes, d)
	}
	sorted := slices.Clone(res.changes)
	s.say("through haad, round %d: %d SetRealServer calls, median %s, max %s", n, len(res.changes),
		lvsDur(median(sorted)), lvsDur(slices.Max(sorted)))
	res.rssEnd, _ = procMem(p.Pid(), "VmRSS")
	res.hwm, _ = procMem(p.Pid(), "VmHWM")

	// Stop: SIGTERM; haad removes what it programmed and exits.
	t0 = time.Now()
	serr := p.Stop(30 * time.Second)
	res.stop = time.Since(t0)
	stopped = true
	if serr != nil {
		return res, fmt.Errorf("haad stopped with %v after SIGTERM", serr)
	}
	k, table, err := lvsKernelServices(node.NS.Name, res.backend)
	if err != nil {
		return res, fmt.Errorf("reading the kernel's table after haad stopped: %w", err)
	}
	if k != 0 || table {
		return res, fmt.Errorf("after haad stopped the kernel holds %d virtual server(s) (nftables table %s present: %v)", k, lvsNFTTable, table)
	}
	s.say("through haad, round %d: haad stopped (SIGTERM, table removed) in %v", n, res.stop.Round(time.Millisecond))
	return res, nil
}

// lvsCheckList checks a ListVirtualServers response against the
// benchmark's table and returns the virtual servers' names by address.
func lvsCheckList(lr *haav1.ListVirtualServersResponse, services, dests int) (map[string]string, error) {
	vss := lr.GetVirtualServers()
	if len(vss) != services {
		return nil, fmt.Errorf("ListVirtualServers returned %d virtual servers, want %d", len(vss), services)
	}
	byAddr := make(map[string]string, services)
	for i, vs := range vss {
		want := lvsVIP(i).String()
		if vs.GetAddress() != want || vs.GetProtocol() != "tcp" || vs.GetScheduler() != "wrr" || !vs.GetUp() {
			return nil, fmt.Errorf("virtual server %d: %s %s %s up %v, want %s tcp wrr up", i, vs.GetAddress(), vs.GetProtocol(),
				vs.GetScheduler(), vs.GetUp(), want)
		}
		rss := vs.GetRealServers()
		if len(rss) != dests {
			return nil, fmt.Errorf("virtual server %s: %d real servers, want %d", vs.GetName(), len(rss), dests)
		}
		for j, rs := range rss {
			w := uint32(j%3 + 1)
			if rs.GetAddress() != lvsReal(i, j, dests).String() || !rs.GetHealthy() || !rs.GetProgrammed() ||
				rs.GetWeight() != w || rs.GetConfiguredWeight() != w {
				return nil, fmt.Errorf("virtual server %s, real server %d: %v, want %s healthy, programmed with weight %d",
					vs.GetName(), j, rs, lvsReal(i, j, dests), w)
			}
		}
		byAddr[want] = vs.GetName()
	}
	return byAddr, nil
}

// lvsNFTTable is the nftables backend's table (node/lvs).
const lvsNFTTable = "haa_lvs"

// lvsKernelServices counts the virtual servers programmed in a namespace,
// read from the kernel without node/lvs (whose nftables backend would
// delete the table on opening it): the elements of the nftables map
// services of table haa_lvs, or the IPVS services. table: whether the
// nftables table exists.
func lvsKernelServices(nsName, backend string) (n int, table bool, err error) {
	switch backend {
	case "ipvs":
		h, err := ipvs.New("/run/netns/" + nsName)
		if err != nil {
			return 0, false, err
		}
		defer h.Close()
		svcs, err := h.GetServices()
		return len(svcs), false, err
	case "nftables":
		ns, err := netns.GetFromName(nsName)
		if err != nil {
			return 0, false, err
		}
		defer ns.Close()
		c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
		if err != nil {
			return 0, false, err
		}
		tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
		if err != nil {
			return 0, false, err
		}
		i := slices.IndexFunc(tables, func(t *nftables.Table) bool { return t.Name == lvsNFTTable })
		if i < 0 {
			return 0, false, nil
		}
		elems, err := c.GetSetElements(&nftables.Set{Table: tables[i], Name: "services"})
		return len(elems), true, err
	}
	return 0, false, fmt.Errorf("unknown backend %q", backend)
}

// lvsLogTail is the end of a log file, for error messages.
func lvsLogTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return path + ": " + err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return path + ": ..." + strings.Join(lines, " | ")
}

// readMeminfo returns /proc/meminfo's fields in kB.
func readMeminfo() (map[string]int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		if fs := strings.Fields(rest); len(fs) > 0 {
			if v, err := strconv.ParseInt(fs[0], 10, 64); err == nil {
				m[name] = v
			}
		}
	}
	return m, sc.Err()
}

// selfRSS is this process's resident set (VmRSS), in bytes; 0 if unknown.
func selfRSS() uint64 {
	v, _ := procMem(os.Getpid(), "VmRSS")
	return v
}

// procMem reads a memory field of /proc/PID/status (VmRSS, VmHWM), in
// bytes.
func procMem(pid int, field string) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// lvsDur formats a duration in milliseconds, or microseconds below one.
func lvsDur(d time.Duration) string {
	if d < time.Millisecond {
		return us(d)
	}
	return ms(d)
}

func mib(v int64) string { return fmt.Sprintf("%.1f MiB", float64(v)/(1<<20)) }

func medianInt(v []int64) int64 { return median(slices.Clone(v)) }

func renderLVSReport(o lvsOptions, rounds []lvsRound, hrounds []lvsHaadRound, date time.Time) string {
	var b strings.Builder
	kernel := "unknown"
	if v, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(v))
	}
	backend, reason := "none", ""
	if len(rounds) > 0 {
		backend, reason = rounds[0].backend, rounds[0].reason
	}
	fmt.Fprintf(&b, "# Load-balancer benchmark: the %s backend\n\n", backend)
	fmt.Fprintf(&b, "- date: %s\n", date.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- machine: %d CPUs (nproc), Linux %s (uname -r)\n", runtime.NumCPU(), kernel)
	fmt.Fprintf(&b, "- backend: %s (--backend %s: %s)\n", backend, o.backend, reason)
	fmt.Fprintf(&b, "- command: `%s`\n\n", o.command)

	var full, fullDiff, read, del, changes, changeDiff []time.Duration
	var heap, rss, slab, unavail []int64
	ops := 0
	for _, r := range rounds {
		full = append(full, r.full)
		fullDiff = append(fullDiff, r.fullDiff)
		read = append(read, r.read)
		del = append(del, r.del)
		changes = append(changes, r.changes...)
		changeDiff = append(changeDiff, r.changeDiff...)
		heap = append(heap, int64(r.heap))
		rss = append(rss, int64(r.rss))
		slab = append(slab, r.slab)
		unavail = append(unavail, r.unavailable)
		ops = r.ops
	}
	fmt.Fprintf(&b, "## Programming %d virtual servers x %d real servers\n\n", o.services, o.dests)
	fmt.Fprintf(&b, "Per round, in a fresh network namespace: node/balancer.Choose picks the backend, then a table of %d virtual servers\n", o.services)
	fmt.Fprintf(&b, "(10.x.y.z:80/tcp, scheduler wrr, forwarding nat) with %d real servers each (10.200.x.y:8080, weights 1, 2, 3, 1, ...,\n", o.dests)
	b.WriteString("all distinct) is programmed from empty: Diff(empty, desired) and the backend's Apply, timed together (Diff's share\n")
	fmt.Fprintf(&b, "in brackets; %d ops). The table is read back and must equal the desired one. Then %d single weight changes at random\n", ops, o.changes)
	b.WriteString("virtual servers of the full table: Diff of that one virtual server (one update-dest op) and Apply, timed together;\n")
	b.WriteString("the table is read back and checked again, and finally deleted (Diff(desired, empty) and Apply).\n")
	fmt.Fprintf(&b, "%d round(s).\n\n", len(rounds))
	var hApply, hList, hChanges, hStop []time.Duration
	var hGrowth, hBefore, hEnd, hHWM []int64
	var reqBytes, listBytes int
	for _, r := range hrounds {
		hApply = append(hApply, r.apply)
		hList = append(hList, r.list)
		hChanges = append(hChanges, r.changes...)
		hStop = append(hStop, r.stop)
		hGrowth = append(hGrowth, int64(r.rssAfter)-int64(r.rssBefore))
		hBefore = append(hBefore, int64(r.rssBefore))
		hEnd = append(hEnd, int64(r.rssEnd))
		hHWM = append(hHWM, int64(r.hwm))
		reqBytes, listBytes = r.reqBytes, r.listBytes
	}
	if len(hrounds) > 0 {
		fmt.Fprintf(&b, "Through haad (API), as an operator sees it: per round a fresh lab of one node runs `%s` (backend %s)\n", o.haad, hrounds[0].backend)
		fmt.Fprintf(&b, "started with only `%s`, and haalab calls its API over the unix socket. One ApplyConfig\n", strings.ReplaceAll(strings.TrimSpace(lvsHaadStartConfig(o.backend)), "\n", "; "))
		fmt.Fprintf(&b, "(%.1f MiB) carries the same table as an AgentConfig (no health checks: every real server stays healthy), timed from\n", float64(reqBytes)/(1<<20))
		b.WriteString("the client: validation, programming into the kernel and persisting the configuration file. The kernel's table is then\n")
		b.WriteString("counted over netlink, and ListVirtualServers (timed, ")
		fmt.Fprintf(&b, "%.1f MiB) must list every virtual server, up, with every real server healthy and\n", float64(listBytes)/(1<<20))
		fmt.Fprintf(&b, "programmed with its configured weight. Then %d SetRealServer{weight: N} calls at random real servers, each a round trip\n", o.changes)
		b.WriteString("that reprograms one service; each reply must say weight N, programmed. Finally SIGTERM: haad removes its table (checked\n")
		b.WriteString("over netlink) and exits, timed from the signal to the exit.\n\n")
	}

	b.WriteString("| measure | n | median | max | target | met |\n| --- | ---: | ---: | ---: | ---: | :---: |\n")
	row := func(name string, v, diff []time.Duration, target time.Duration) {
		if len(v) == 0 {
			fmt.Fprintf(&b, "| %s | 0 | n/a | n/a | | |\n", name)
			return
		}
		v = slices.Clone(v)
		med, mx := median(v), slices.Max(v)
		medS := lvsDur(med)
		if diff != nil {
			medS += " (Diff " + lvsDur(median(slices.Clone(diff))) + ")"
		}
		tgt, met := "-", "-"
		if target > 0 {
			tgt, met = fmt.Sprintf("< %d ms", target.Milliseconds()), yesNo(mx < target)
			if target%time.Second == 0 {
				tgt = fmt.Sprintf("< %d s", target/time.Second)
			}
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s |\n", name, len(v), medS, lvsDur(mx), tgt, met)
	}
	row("full program from empty (Diff + Apply)", full, fullDiff, lvsTargetFull)
	row("one weight change in the full table (Diff + Apply)", changes, changeDiff, lvsTargetChange)
	row("Read of the whole table", read, nil, 0)
	row("delete everything (Diff + Apply)", del, nil, 0)
	if len(hrounds) > 0 {
		row("through haad (API): ApplyConfig, full program from empty (validate + program + persist)", hApply, nil, lvsTargetFull)
		row("through haad (API): one SetRealServer{weight} in the full table", hChanges, nil, lvsTargetChange)
		row("through haad (API): ListVirtualServers of the whole table", hList, nil, 0)
		row("through haad (API): stop (SIGTERM until exit; removes the table)", hStop, nil, 0)
	}
	if o.services != 10000 || o.dests != 5 {
		fmt.Fprintf(&b, "\nThe targets are issue 6's for 10,000 virtual servers x 5 real servers; this run used %d x %d.\n", o.services, o.dests)
	}

	b.WriteString("\nMemory after programming, over the rounds. Go heap: HeapInuse after a GC, which holds\n")
	b.WriteString("the benchmark's desired table as the agent would, and whatever the backend keeps. RSS: haalab's VmRSS. Kernel: the\n")
	b.WriteString("change of the whole machine's Slab and MemAvailable (/proc/meminfo) from before the program to after it: other\n")
	b.WriteString("activity on the machine shows up here too: MemAvailable moves with the page cache (a negative drop is memory\n")
	b.WriteString("freed elsewhere); Slab, where the kernel allocates the table's objects, is the steadier of the two.\n")
	if len(hrounds) > 0 {
		b.WriteString("Through haad (API): haad's own VmRSS (/proc/PID/status) once it runs with no virtual server, its growth from\n")
		b.WriteString("there to right after ApplyConfig returned (Go's garbage not yet collected included: what the operator sees), VmRSS\n")
		b.WriteString("after ListVirtualServers and the SetRealServer calls, and the peak (VmHWM) by then.\n")
	}
	b.WriteString("\n")
	b.WriteString("| measure | median | max |\n| --- | ---: | ---: |\n")
	mrow := func(name string, v []int64) {
		if len(v) == 0 {
			fmt.Fprintf(&b, "| %s | n/a | n/a |\n", name)
			return
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", name, mib(medianInt(v)), mib(slices.Max(v)))
	}
	mrow("Go heap in use", heap)
	mrow("process RSS", rss)
	mrow("kernel Slab growth", slab)
	mrow("kernel MemAvailable drop", unavail)
	if len(hrounds) > 0 {
		mrow("through haad (API): haad RSS before ApplyConfig", hBefore)
		mrow("through haad (API): haad RSS growth by ApplyConfig", hGrowth)
		mrow("through haad (API): haad RSS after ListVirtualServers and the changes", hEnd)
		mrow("through haad (API): haad peak RSS (VmHWM)", hHWM)
	}

	b.WriteString("\nEvery round (full program; delete; weight changes median / max):\n\n")
	for i, r := range rounds {
		c := slices.Clone(r.changes)
		fmt.Fprintf(&b, "- round %d: %s; %s; %s / %s\n", i+1, lvsDur(r.full), lvsDur(r.del), lvsDur(median(c)), lvsDur(slices.Max(c)))
	}
	if len(hrounds) > 0 {
		b.WriteString("\nThrough haad (API), every round (ApplyConfig; ListVirtualServers; SetRealServer median / max; stop):\n\n")
		for i, r := range hrounds {
			c := slices.Clone(r.changes)
			fmt.Fprintf(&b, "- round %d: %s; %s; %s / %s; %s\n", i+1, lvsDur(r.apply), lvsDur(r.list), lvsDur(median(c)), lvsDur(slices.Max(c)), lvsDur(r.stop))
		}
	}
	return b.String()
}
