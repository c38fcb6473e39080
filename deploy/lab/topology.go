package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Defaults used by New for zero Options fields.
var (
	DefaultSubnet = netip.MustParsePrefix("10.77.0.0/24")
)

const (
	// DefaultNodes is the number of nodes when Options.Nodes is 0.
	DefaultNodes = 2
	// FirstClientHost is the host number of the first client: clients are
	// .200, .201, ... of the subnet; nodes are .1, .2, ...
	FirstClientHost = 200
	// Iface is the name of every node's and client's interface.
	Iface = "eth0"
	// Bridge is the name of the bridge inside the switch namespace.
	Bridge = "br0"

	// closeGrace is how long Close lets processes handle SIGTERM.
	closeGrace = 500 * time.Millisecond
	// killWait bounds every wait for a SIGKILLed process.
	killWait = 5 * time.Second
)

// Options describes a lab.
type Options struct {
	// Prefix starts every namespace name (PREFIX-sw, PREFIX-n1, PREFIX-c1).
	// Default: UniqueName("haa"). Two labs alive at once need different
	// prefixes; nothing else is shared between them.
	Prefix string
	// Nodes is the number of nodes (n1..nN at .1...N); 0 means DefaultNodes.
	Nodes int
	// Subnet is the IPv4 subnet of the LAN; zero means 10.77.0.0/24. Labs
	// never see each other, so all of them may use the same subnet.
	Subnet netip.Prefix
	// Clients is the number of clients (c1.. at .200...); 0 means 1, a
	// negative value means none.
	Clients int
}

// Lab is a LAN of nodes and clients: each one a namespace whose eth0 is a
// veth plugged into bridge br0 of the switch namespace. Nothing lives in the
// host's namespace.
type Lab struct {
	Prefix  string
	Subnet  netip.Prefix
	Switch  *NS
	Nodes   []*Node
	Clients []*Node

	mu     sync.Mutex
	closed bool
	procs  []*Proc
	spaces []*NS // every namespace created, in creation order
}

// Node is a node or a client of a lab. The embedded NS's Name is the
// namespace name (PREFIX-n1); Node.Name is the short name (n1).
type Node struct {
	*NS
	// Name is the short name: n1, n2, ... for nodes, c1, ... for clients.
	Name string
	// Addr is the address of eth0; Prefix is Addr with the subnet length.
	Addr   netip.Addr
	Prefix netip.Prefix
	// Addr6 is eth0's IPv6 address, fd77::HOST/64 (HOST: Addr's last
	// byte); LinkLocal its link-local one (EUI-64 of MAC). Both are
	// usable at once: DAD is off in the lab.
	Addr6, LinkLocal netip.Addr
	// Iface is the interface name inside the namespace, always eth0.
	Iface string
	// MAC is the fixed MAC address of eth0: 02:aa:00:00:00:NN for node NN,
	// 02:aa:00:00:01:NN for client NN.
	MAC net.HardwareAddr
	// Port is the name of the veth end attached to br0 in the switch
	// namespace (same as Name).
	Port string

	lab *Lab
}

// NewT is New for tests: it calls Require(t), fails t when the lab cannot be
// built, and closes the lab when t ends (also on failure).
func NewT(t testing.TB, opts Options) *Lab {
	t.Helper()
	Require(t)
	l, err := New(opts)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab %s close: %v", l.Prefix, err)
		}
	})
	return l
}

// New builds a lab. On error everything already created is removed.
func New(opts Options) (*Lab, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if opts.Prefix == "" {
		opts.Prefix = UniqueName("haa")
	}
	if opts.Nodes == 0 {
		opts.Nodes = DefaultNodes
	}
	if opts.Clients == 0 {
		opts.Clients = 1
	} else if opts.Clients < 0 {
		opts.Clients = 0
	}
	if !opts.Subnet.IsValid() {
		opts.Subnet = DefaultSubnet
	}
	subnet := opts.Subnet.Masked()
	if err := checkOptions(opts, subnet); err != nil {
		return nil, err
	}
	l := &Lab{Prefix: opts.Prefix, Subnet: subnet}
	if err := l.build(opts); err != nil {
		return nil, errors.Join(fmt.Errorf("lab %s: %w", opts.Prefix, err), l.Close())
	}
	return l, nil
}

func checkOptions(opts Options, subnet netip.Prefix) error {
	if opts.Nodes < 0 {
		return fmt.Errorf("lab: Nodes %d must not be negative", opts.Nodes)
	}
	if opts.Nodes >= FirstClientHost {
		return fmt.Errorf("lab: %d nodes would reach the client addresses (.%d): at most %d nodes", opts.Nodes, FirstClientHost, FirstClientHost-1)
	}
	if !subnet.Addr().Is4() {
		return fmt.Errorf("lab: subnet %s: only IPv4 subnets are supported", subnet)
	}
	hosts := 1<<(32-subnet.Bits()) - 2 // without network and broadcast
	if last := FirstClientHost + opts.Clients - 1; opts.Clients > 0 && last > hosts {
		return fmt.Errorf("lab: subnet %s too small for %d clients from .%d: use a /24 or larger", subnet, opts.Clients, FirstClientHost)
	}
	if opts.Nodes > hosts {
		return fmt.Errorf("lab: subnet %s too small for %d nodes", subnet, opts.Nodes)
	}
	return nil
}

// HostAddr returns the i-th address of the subnet (network address + i).
func HostAddr(subnet netip.Prefix, i int) netip.Addr {
	b := subnet.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(i)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func (l *Lab) newNS(name string) (*NS, error) {
	ns, err := NewNS(name)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.spaces = append(l.spaces, ns)
	l.mu.Unlock()
	return ns, nil
}

func (l *Lab) build(opts Options) error {
	sw, err := l.newNS(opts.Prefix + "-sw")
	if err != nil {
		return err
	}
	l.Switch = sw
	// br_netfilter, when loaded on the host, makes bridged frames traverse
	// the switch namespace's iptables/arptables hooks (its per-namespace
	// sysctls default to 1). The switch is a plain wire: turn that off.
	for _, k := range []string{"iptables", "ip6tables", "arptables"} {
		path := "net/bridge/bridge-nf-call-" + k
		if _, err := sw.ReadSysctl(path); err == nil {
			if err := sw.WriteSysctl(path, "0"); err != nil {
				return err
			}
		}
	}
	// STP off and forward delay 0: ports forward as soon as their carrier
	// is up (also after LinkUp). Multicast snooping off: VRRP adverts
	// (224.0.0.18) and IGMP reach every port without a querier.
	if err := sw.IP("link", "add", Bridge, "type", "bridge",
		"stp_state", "0", "forward_delay", "0", "mcast_snooping", "0"); err != nil {
		return err
	}
	swh, err := sw.Handle()
	if err != nil {
		return err
	}
	defer swh.Close()
	br, err := swh.LinkByName(Bridge)
	if err != nil {
		return err
	}
	if err := swh.LinkSetUp(br); err != nil {
		return fmt.Errorf("%s: set %s up: %w", sw.Name, Bridge, err)
	}
	for i := 1; i <= opts.Nodes; i++ {
		n, err := l.addMember(swh, br, opts.Prefix, fmt.Sprintf("n%d", i), HostAddr(l.Subnet, i),
			net.HardwareAddr{0x02, 0xaa, 0, 0, 0, byte(i)})
		if err != nil {
			return err
		}
		l.Nodes = append(l.Nodes, n)
	}
	for i := 1; i <= opts.Clients; i++ {
		n, err := l.addMember(swh, br, opts.Prefix, fmt.Sprintf("c%d", i), HostAddr(l.Subnet, FirstClientHost+i-1),
			net.HardwareAddr{0x02, 0xaa, 0, 0, 1, byte(i)})
		if err != nil {
			return err
		}
		l.Clients = append(l.Clients, n)
	}
	return nil
}

// memberSysctls pins the ARP-related settings of a node or client to the
// Linux defaults. A new namespace inherits IPv4 settings from the host's
// (net.core.devconf_inherit_init_net=0), so a host with, say,
// drop_gratuitous_arp=1 or arp_ignore=1 would otherwise leak into the lab.
// With these values an existing neighbour entry is overridden at once by a
// gratuitous ARP (even within locktime), while unsolicited ARP does not
// create new entries (arp_accept=0), as on a stock Linux box.
var memberSysctls = []struct{ key, value string }{
	{"drop_gratuitous_arp", "0"},
	{"arp_accept", "0"},
	{"arp_ignore", "0"},
	{"arp_announce", "0"},
	{"arp_filter", "0"},
	{"rp_filter", "0"},
}

// addMember makes a node or a client: its namespace, a veth pair from the
// switch's bridge br (swh: a netlink handle in the switch) to its eth0 with
// mac and addr. Netlink in this process: no ip command is run.
func (l *Lab) addMember(swh *netlink.Handle, br netlink.Link, prefix, name string, addr netip.Addr, mac net.HardwareAddr) (*Node, error) {
	ns, err := l.newNS(prefix + "-" + name)
	if err != nil {
		return nil, err
	}
	n := &Node{
		NS:     ns,
		Name:   name,
		Addr:   addr,
		Prefix: netip.PrefixFrom(addr, l.Subnet.Bits()),
		Iface:  Iface,
		MAC:    mac,
		Port:   name,
		lab:    l,
	}
	for _, dev := range []string{"all", "default"} {
		for _, s := range memberSysctls {
			if err := ns.WriteSysctl("net/ipv4/conf/"+dev+"/"+s.key, s.value); err != nil {
				return nil, err
			}
		}
		// IPv6 addresses usable at once (no DAD wait of a second or two
		// after the link comes up): the lab's addresses are unique.
		if err := ns.WriteSysctl("net/ipv6/conf/"+dev+"/accept_dad", "0"); err != nil {
			return nil, err
		}
	}
	a4 := addr.As4()
	n.Addr6 = netip.AddrFrom16([16]byte{0: 0xfd, 1: 0x77, 15: a4[3]})
	n.LinkLocal = linkLocal(mac)
	// The pair is created inside the switch namespace with its peer moved
	// straight into the member's: no interface ever appears on the host.
	nsh, err := netns.GetFromName(ns.Name)
	if err != nil {
		return nil, err
	}
	defer nsh.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: n.Port, MasterIndex: br.Attrs().Index},
		PeerName: n.Iface, PeerHardwareAddr: mac, PeerNamespace: netlink.NsFd(nsh)}
	if err := swh.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("%s: add veth %s (peer %s in %s): %w", l.Switch.Name, n.Port, n.Iface, ns.Name, err)
	}
	if err := swh.LinkSetUp(veth); err != nil {
		return nil, fmt.Errorf("%s: set %s up: %w", l.Switch.Name, n.Port, err)
	}
	h, link, err := n.handle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: prefixNet(n.Prefix)}); err != nil {
		return nil, fmt.Errorf("%s: add %s to %s: %w", ns.Name, n.Prefix, n.Iface, err)
	}
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(n.Addr6, 64)), Flags: unix.IFA_F_NODAD}); err != nil {
		return nil, fmt.Errorf("%s: add %s to %s: %w", ns.Name, n.Addr6, n.Iface, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("%s: set %s up: %w", ns.Name, n.Iface, err)
	}
	return n, nil
}

// linkLocal is the EUI-64 link-local address of mac (RFC 4291 2.5.1).
func linkLocal(mac net.HardwareAddr) netip.Addr {
	return netip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80,
		8: mac[0] ^ 2, 9: mac[1], 10: mac[2], 11: 0xff, 12: 0xfe, 13: mac[3], 14: mac[4], 15: mac[5]})
}

// prefixNet is p as a *net.IPNet.
func prefixNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}

// Close stops every process the lab started (SIGTERM, SIGKILL after a short
// grace), kills whatever else still runs inside its namespaces, and deletes
// the namespaces. It is idempotent; later calls return nil.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	procs := l.procs
	spaces := l.spaces
	l.mu.Unlock()

	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.stop(closeGrace); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Members first: deleting them removes the veth pairs, then the switch.
	for i := len(spaces) - 1; i >= 0; i-- {
		ns := spaces[i]
		if err := ns.KillAll(killWait); err != nil {
			errs = append(errs, err)
		}
		if err := ns.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// All returns the nodes followed by the clients.
func (l *Lab) All() []*Node {
	return append(append([]*Node(nil), l.Nodes...), l.Clients...)
}

// handle opens a netlink handle in the node's namespace and looks up eth0.
func (n *Node) handle() (*netlink.Handle, netlink.Link, error) {
	h, err := n.Handle()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", n.NS.Name, err)
	}
	link, err := h.LinkByName(n.Iface)
	if err != nil {
		h.Close()
		return nil, nil, fmt.Errorf("%s: %s: %w", n.NS.Name, n.Iface, err)
	}
	return h, link, nil
}

// LinkDown sets eth0 down inside the namespace: the node drops off the LAN
// at once (its "power cable" is pulled). Addresses stay configured.
func (n *Node) LinkDown() error {
	h, link, err := n.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	if err := h.LinkSetDown(link); err != nil {
		return fmt.Errorf("%s: set %s down: %w", n.NS.Name, n.Iface, err)
	}
	return nil
}

// LinkUp sets eth0 up again.
func (n *Node) LinkUp() error {
	h, link, err := n.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s: set %s up: %w", n.NS.Name, n.Iface, err)
	}
	return nil
}

// Addrs returns the addresses on eth0 (IPv4 and IPv6, link-local included).
func (n *Node) Addrs() ([]netip.Prefix, error) {
	h, link, err := n.handle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	list, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("%s: list addresses: %w", n.NS.Name, err)
	}
	out := make([]netip.Prefix, 0, len(list))
	for _, a := range list {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
	}
	return out, nil
}

// HasAddr reports whether a is configured on eth0 (any prefix length).
func (n *Node) HasAddr(a netip.Addr) (bool, error) {
	addrs, err := n.Addrs()
	if err != nil {
		return false, err
	}
	for _, p := range addrs {
		if p.Addr() == a.Unmap() {
			return true, nil
		}
	}
	return false, nil
}

// ErrNoNeighbor is returned by Neigh when the namespace has no usable
// neighbour entry for the address.
var ErrNoNeighbor = errors.New("no neighbour entry")

// Neigh returns the link-layer address the node's neighbour table (ARP
// cache) holds for ip on eth0. Entries being resolved or failed are
// ErrNoNeighbor.
func (n *Node) Neigh(ip netip.Addr) (net.HardwareAddr, error) {
	h, link, err := n.handle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	family := netlink.FAMILY_V4
	if !ip.Unmap().Is4() {
		family = netlink.FAMILY_V6
	}
	list, err := h.NeighList(link.Attrs().Index, family)
	if err != nil {
		return nil, fmt.Errorf("%s: list neighbours: %w", n.NS.Name, err)
	}
	const usable = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY |
		netlink.NUD_PROBE | netlink.NUD_PERMANENT | netlink.NUD_NOARP
	for _, e := range list {
		a, ok := netip.AddrFromSlice(e.IP)
		if !ok || a.Unmap() != ip.Unmap() {
			continue
		}
		if e.State&usable == 0 || len(e.HardwareAddr) == 0 {
			break
		}
		return e.HardwareAddr, nil
	}
	return nil, fmt.Errorf("%s: %s: %w", n.NS.Name, ip, ErrNoNeighbor)
}

// StaticNeighbours gives every member of the lab a permanent ARP entry for
// every other member's address. The kernel's ARP table is one for all
// namespaces, 1,024 entries at most by default (net.ipv4.neigh.default.
// gc_thresh3, the host's setting): a lab of a hundred nodes that all talk
// to each other (gossip) overflows it, and connections fail with "no route
// to host". Permanent entries do not count towards that limit. Only the
// members' own addresses get one: a VIP's owner changes, so VIPs are still
// resolved by ARP.
func (l *Lab) StaticNeighbours() error {
	all := l.All()
	for _, n := range all {
		h, link, err := n.handle()
		if err != nil {
			return err
		}
		for _, o := range all {
			if o == n {
				continue
			}
			err := h.NeighSet(&netlink.Neigh{LinkIndex: link.Attrs().Index, Family: netlink.FAMILY_V4,
				State: netlink.NUD_PERMANENT, IP: o.Addr.AsSlice(), HardwareAddr: o.MAC})
			if err != nil {
				h.Close()
				return fmt.Errorf("%s: neighbour %s: %w", n.NS.Name, o.Addr, err)
			}
		}
		h.Close()
	}
	return nil
}
