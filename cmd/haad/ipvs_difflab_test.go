package main

// The lab of the IPVS differential suite (ipvs_diff_test.go): a director
// whose IPVS table is read, and real servers that stop and start.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/ipvs"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/haa-dev/haa/deploy/lab"
)

// diffLab is a lab the files run in, one after the other: a director
// (n1: 10.77.0.1, fd77::1) and the real servers (c1: 10.77.0.200..209,
// fd77::200..209), as README.md describes.
type diffLab struct {
	l           *lab.Lab
	director    *lab.Node
	servers     map[netip.Addr]*diffServer
	h           *ipvs.Handle // the director's IPVS table
	ipvsadmPath string       // its path
	weights     string       // the real servers' weights (misc-weight.sh)
}

// newDiffLab builds a lab, gives it its addresses and starts every real
// server.
func newDiffLab(dir, ipvsadm string) (_ *diffLab, err error) {
	l, err := lab.New(lab.Options{Prefix: lab.UniqueName("dif"), Nodes: 1, Clients: 1})
	if err != nil {
		return nil, err
	}
	dl := &diffLab{l: l, director: l.Nodes[0], servers: map[netip.Addr]*diffServer{}, ipvsadmPath: ipvsadm,
		weights: filepath.Join(dir, "weights")}
	defer func() {
		if err != nil {
			err = errors.Join(err, dl.close())
		}
	}()
	srv := l.Clients[0]
	if err := os.MkdirAll(dl.weights, 0o755); err != nil {
		return nil, err
	}
	// IPv6 addresses usable at once: no duplicate address detection.
	for _, n := range []*lab.Node{dl.director, srv} {
		if err := n.WriteSysctl("net/ipv6/conf/eth0/accept_dad", "0"); err != nil {
			return nil, err
		}
	}
	// The lab gives the director fd77::1/64 (lab.Node.Addr6).
	if a := dl.director.Addr6.String(); a != "fd77::1" {
		return nil, fmt.Errorf("the director's IPv6 address is %s, the corpus expects fd77::1", a)
	}
	for i := range 10 {
		addrs := []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("fd77::%d/64", 200+i))}
		if i > 0 { // 10.77.0.200 is c1's own
			addrs = append(addrs, netip.PrefixFrom(lab.HostAddr(l.Subnet, 200+i), l.Subnet.Bits()))
		}
		for _, p := range addrs {
			if err := srv.AddAddr("eth0", p); err != nil {
				return nil, err
			}
		}
	}
	// The IPv6 addresses are tentative until the kernel's DAD work has
	// run (at once: accept_dad 0, but later under a loaded VM); a server
	// cannot listen on them until then.
	for _, n := range []*lab.Node{dl.director, srv} {
		if err := waitNotTentative(n); err != nil {
			return nil, err
		}
	}
	// A stopped UDP server answers ICMP port unreachable to every check.
	for _, kv := range [][2]string{{"net/ipv4/icmp_ratelimit", "0"}, {"net/ipv6/icmp/ratelimit", "0"}} {
		if err := srv.WriteSysctl(kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	for i := range 10 {
		for _, a := range []string{fmt.Sprintf("10.77.0.%d", 200+i), fmt.Sprintf("fd77::%d", 200+i)} {
			s := &diffServer{node: srv, addr: netip.MustParseAddr(a), weight: 2 + i, weights: dl.weights}
			dl.servers[s.addr] = s
			if err := s.start(); err != nil {
				return nil, err
			}
		}
	}
	if dl.h, err = ipvs.New(filepath.Join("/var/run/netns", dl.director.NS.Name)); err != nil {
		return nil, fmt.Errorf("IPVS in %s: %w", dl.director.NS.Name, err)
	}
	return dl, nil
}

// waitNotTentative waits until no IPv6 address of n's eth0 is tentative.
func waitNotTentative(n *lab.Node) error {
	h, err := n.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("%s: eth0: %w", n.NS.Name, err)
	}
	return lab.Poll(diffReady, 20*time.Millisecond, n.NS.Name+"'s IPv6 addresses out of DAD", func() (bool, error) {
		addrs, err := h.AddrList(link, netlink.FAMILY_V6)
		if errors.Is(err, netlink.ErrDumpInterrupted) {
			return false, nil // the addresses changed during the dump
		}
		if err != nil {
			return false, err
		}
		for _, a := range addrs {
			if a.Flags&unix.IFA_F_TENTATIVE != 0 {
				return false, nil
			}
		}
		return true, nil
	})
}

// close stops the servers and removes the lab.
func (dl *diffLab) close() error {
	for _, s := range dl.servers {
		s.stop()
	}
	if dl.h != nil {
		dl.h.Close()
	}
	return dl.l.Close()
}

// fingerprint reads the director's table through netlink: every field
// ipvsadm -S shows, but the connection counters. Reading it costs no
// process, unlike ipvsadm.
func (dl *diffLab) fingerprint() (string, error) {
	svcs, err := dl.h.GetServices()
	if err != nil {
		return "", fmt.Errorf("reading the IPVS table: %w", err)
	}
	var lines []string
	for _, s := range svcs {
		key := fmt.Sprintf("%d %s %d %d %d", s.AddressFamily, s.Address, s.Protocol, s.Port, s.FWMark)
		lines = append(lines, fmt.Sprintf("%s %s %#x %d %#x %s", key, s.SchedName, s.Flags, s.Timeout, s.Netmask, s.PEName))
		ds, err := dl.h.GetDestinations(s)
		if err != nil {
			return "", fmt.Errorf("reading the real servers of %s: %w", key, err)
		}
		for _, d := range ds {
			lines = append(lines, fmt.Sprintf("%s > %s %d %d %#x %d %d", key, d.Address, d.Port, d.Weight, d.ConnectionFlags, d.UpperThreshold, d.LowerThreshold))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n"), nil
}

// snapshot is ipvsadm -S -n in the director's namespace, lines sorted.
// ipvsadm -S leaves connection thresholds out: a real server's are added
// to its -a line as -x UPPER -y LOWER (ipvsadm's options for them), read
// through netlink.
func (dl *diffLab) snapshot() ([]string, error) {
	out, err := dl.ipvsadm("-S", "-n")
	if err != nil {
		return nil, err
	}
	th, err := dl.thresholds()
	if err != nil {
		return nil, err
	}
	lines := []string{}
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		if f := strings.Fields(l); f[0] == "-a" {
			if r := slices.Index(f, "-r"); r > 0 && r+1 < len(f) {
				svc := slices.DeleteFunc(slices.Clone(f[1:r]), func(s string) bool { return s == "-6" })
				if x, ok := th[strings.Join(svc, " ")+" "+f[r+1]]; ok {
					l += " " + x
				}
			}
		}
		lines = append(lines, l)
	}
	slices.Sort(lines)
	return lines, nil
}

// thresholds returns the connection thresholds of the real servers that
// have any, by "SERVICE REAL-SERVER" as ipvsadm -S -n writes them (-t
// 10.77.0.100:80 10.77.0.200:8080, -f 3 [fd77::200]:0).
func (dl *diffLab) thresholds() (map[string]string, error) {
	svcs, err := dl.h.GetServices()
	if err != nil {
		return nil, fmt.Errorf("reading the IPVS table: %w", err)
	}
	th := map[string]string{}
	for _, s := range svcs {
		var key string
		switch a, _ := netip.AddrFromSlice(s.Address); {
		case s.FWMark != 0:
			key = fmt.Sprintf("-f %d", s.FWMark)
		case s.Protocol == syscall.IPPROTO_TCP:
			key = "-t " + netip.AddrPortFrom(a.Unmap(), s.Port).String()
		case s.Protocol == syscall.IPPROTO_UDP:
			key = "-u " + netip.AddrPortFrom(a.Unmap(), s.Port).String()
		default:
			key = "--sctp-service " + netip.AddrPortFrom(a.Unmap(), s.Port).String()
		}
		ds, err := dl.h.GetDestinations(s)
		if err != nil {
			return nil, fmt.Errorf("reading the real servers of %s: %w", key, err)
		}
		for _, d := range ds {
			if d.UpperThreshold == 0 && d.LowerThreshold == 0 {
				continue
			}
			a, _ := netip.AddrFromSlice(d.Address)
			th[key+" "+netip.AddrPortFrom(a.Unmap(), d.Port).String()] = fmt.Sprintf("-x %d -y %d", d.UpperThreshold, d.LowerThreshold)
		}
	}
	return th, nil
}

// ipvsadm runs ipvsadm in the director's namespace: forked from a thread
// that is in it (lab's Do), which costs no `ip netns exec`.
func (dl *diffLab) ipvsadm(args ...string) (string, error) {
	var out []byte
	err := dl.director.Do(func() error {
		var stderr bytes.Buffer
		cmd := exec.Command(dl.ipvsadmPath, args...)
		cmd.Stderr = &stderr
		var err error
		if out, err = cmd.Output(); err != nil {
			return fmt.Errorf("ipvsadm %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return nil
	})
	return string(out), err
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// diffServer is a real server of the lab: HTTP on ports 80 and 8080 (any
// path answers "ok") and a UDP echo on 5353, on one address of a
// namespace; while it serves, its weight is in the file weights/ADDR (for
// misc-weight.sh). It can be stopped (connections refused, ICMP port
// unreachable, no weight) and started again.
type diffServer struct {
	node    *lab.Node
	addr    netip.Addr
	weight  int
	weights string // the directory of weights

	mu   sync.Mutex
	srv  *http.Server
	udp  net.PacketConn
	done sync.WaitGroup
}

// start listens, unless it already does, then publishes its weight.
func (s *diffServer) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	var lns []net.Listener
	var udp net.PacketConn
	err := s.node.Do(func() error {
		for _, port := range []uint16{80, 8080} {
			ln, err := net.Listen("tcp", netip.AddrPortFrom(s.addr, port).String())
			if err != nil {
				return err
			}
			lns = append(lns, ln)
		}
		var err error
		udp, err = net.ListenPacket("udp", netip.AddrPortFrom(s.addr, 5353).String())
		return err
	})
	if err != nil {
		for _, ln := range lns {
			ln.Close()
		}
		return fmt.Errorf("real server %s: %w", s.addr, err)
	}
	s.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})}
	s.udp = udp
	for _, ln := range lns {
		s.done.Add(1)
		go func() {
			defer s.done.Done()
			_ = s.srv.Serve(ln)
		}()
	}
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		buf := make([]byte, 1500)
		for {
			n, from, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = udp.WriteTo(buf[:n], from)
		}
	}()
	// Written whole, then renamed into place: a check never reads half.
	path := filepath.Join(s.weights, s.addr.String())
	if err := os.WriteFile(path+".new", []byte(strconv.Itoa(s.weight)+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(path+".new", path)
}

// stop withdraws its weight, then closes its sockets and every
// connection.
func (s *diffServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return
	}
	_ = os.Remove(filepath.Join(s.weights, s.addr.String()))
	_ = s.srv.Close()
	_ = s.udp.Close()
	s.done.Wait()
	s.srv, s.udp = nil, nil
}
