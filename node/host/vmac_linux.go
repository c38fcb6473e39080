package host

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VMAC is a virtual MAC interface to create: a macvlan of Parent (RFC
// 5798 7.3's 00:00:5e:00:0F:VRID on an interface of its own), as
// keepalived's use_vmac makes it.
type VMAC struct {
	Name, Parent string
	MAC          net.HardwareAddr
	// V6: for an IPv6 instance. An IPv4 instance's macvlan has IPv6
	// off (as keepalived makes it): it never sends a neighbour discovery
	// or MLD packet with the virtual MAC. An IPv6 one sends no router
	// solicitation; it has no address of its own (the adverts' link-local
	// source comes and goes with the VIPs, see instances).
	V6 bool
}

// vmacParents counts the VMACs of each parent interface and keeps the
// parent's sysctls as they were before the first, to put back after the
// last.
type vmacParents struct {
	mu    sync.Mutex
	count map[string]int
	saved map[string]map[string]string
	quiet map[string]bool // the virtual MAC interfaces of VMACTable
}

// The parent of a VMAC answers ARP only for its own addresses (the VIPs
// live on the macvlan: without this the parent would answer for them
// with its own MAC), and the macvlan only for its own, accepting packets
// from local addresses, as keepalived sets them. haad also sets the
// parent's arp_announce to 2: replies from a VIP may leave through the
// parent (its subnet's route comes first), and the parent's ARP requests
// for their next hop would otherwise carry the VIP as sender address
// with the parent's MAC, which moves the neighbours' entry for the VIP
// off the virtual MAC (seen in the lab; keepalived leaves it to the
// administrator).
var (
	vmacParentSysctls = [][2]string{{"arp_ignore", "1"}, {"arp_filter", "1"}, {"arp_announce", "2"}}
	vmacSysctls       = [][3]string{{"4", "arp_ignore", "1"}, {"4", "accept_local", "1"}, {"4", "rp_filter", "0"}, {"4", "promote_secondaries", "1"}}
	vmacSysctls6      = [][3]string{{"6", "accept_ra", "0"}, {"6", "router_solicitations", "0"}, {"6", "accept_dad", "0"}}
)

// AddVMAC creates the macvlan interface m (private mode, m.MAC), or keeps
// it if one of that name already has the parent and the MAC (an earlier
// run's), and brings it up. Another interface of that name is an error:
// haad never deletes what it did not make.
func (l *Linux) AddVMAC(m VMAC) (err error) {
	created := false
	defer func() {
		if err != nil && created {
			if lk, lerr := netlink.LinkByName(m.Name); lerr == nil {
				_ = netlink.LinkDel(lk)
			}
			_ = l.quietVMAC(m.Name, false)
		}
	}()
	parent, err := netlink.LinkByName(m.Parent)
	if err != nil {
		return fmt.Errorf("virtual MAC %s: parent %s: %w", m.Name, m.Parent, err)
	}
	lk, err := netlink.LinkByName(m.Name)
	switch {
	case err == nil:
		mv, ok := lk.(*netlink.Macvlan)
		if !ok || mv.ParentIndex != parent.Attrs().Index || !bytes.Equal(mv.HardwareAddr, m.MAC) {
			return fmt.Errorf("virtual MAC %s: an interface of that name exists and is not a macvlan of %s with MAC %s: delete it or name the virtual MAC otherwise (vmac.name)", m.Name, m.Parent, m.MAC)
		}
	default:
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("virtual MAC %s: %w", m.Name, err)
		}
		mv := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: m.Name, ParentIndex: parent.Attrs().Index, HardwareAddr: m.MAC},
			Mode: netlink.MACVLAN_MODE_PRIVATE}
		if err := netlink.LinkAdd(mv); err != nil {
			return fmt.Errorf("virtual MAC %s on %s: create the macvlan: %w", m.Name, m.Parent, err)
		}
		created = true
		if lk, err = netlink.LinkByName(m.Name); err != nil {
			return fmt.Errorf("virtual MAC %s: %w", m.Name, err)
		}
	}
	// No EUI-64 link-local of the virtual MAC (RFC 5798 7.4): the
	// adverts' source is the parent's, added below.
	if err := netlink.LinkSetIP6AddrGenMode(lk, 1 /* IN6_ADDR_GEN_MODE_NONE */); err != nil {
		l.log.Warn("virtual MAC: cannot turn off IPv6 address generation", "iface", m.Name, "err", err)
	}
	if err := l.vmacParentSysctls(m.Parent); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = l.restoreParentSysctls(m.Parent)
		}
	}()
	sysctls := vmacSysctls
	if m.V6 {
		sysctls = append(sysctls, vmacSysctls6...)
	} else {
		sysctls = append(sysctls, [3]string{"6", "disable_ipv6", "1"})
	}
	for _, s := range sysctls {
		if err := writeConf(s[0], m.Name, s[1], s[2]); err != nil {
			return fmt.Errorf("virtual MAC %s: %w", m.Name, err)
		}
	}
	// Quiet before it is up: the kernel reports its groups at once.
	if err := l.quietVMAC(m.Name, true); err != nil {
		return fmt.Errorf("virtual MAC %s: %w", m.Name, err)
	}
	if err := netlink.LinkSetUp(lk); err != nil {
		return fmt.Errorf("virtual MAC %s: set up: %w", m.Name, err)
	}
	return nil
}

// DelVMAC deletes the macvlan interface name made by AddVMAC (nothing if
// it is gone) and, after the last VMAC of parent, puts back the parent's
// sysctls.
func (l *Linux) DelVMAC(name, parent string) error {
	var err error
	if lk, lerr := netlink.LinkByName(name); lerr == nil {
		if _, ok := lk.(*netlink.Macvlan); ok {
			if derr := netlink.LinkDel(lk); derr != nil {
				err = fmt.Errorf("virtual MAC %s: delete: %w", name, derr)
			}
		}
	}
	return errors.Join(err, l.quietVMAC(name, false), l.restoreParentSysctls(parent))
}

func (l *Linux) vmacParentSysctls(parent string) error {
	p := &l.parents
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.count == nil {
		p.count, p.saved = map[string]int{}, map[string]map[string]string{}
	}
	if p.count[parent] == 0 {
		saved := map[string]string{}
		for _, s := range vmacParentSysctls {
			if v, err := readConf("4", parent, s[0]); err == nil {
				saved[s[0]] = v
			}
			if err := writeConf("4", parent, s[0], s[1]); err != nil {
				return fmt.Errorf("virtual MAC parent %s: %w", parent, err)
			}
		}
		p.saved[parent] = saved
	}
	p.count[parent]++
	return nil
}

func (l *Linux) restoreParentSysctls(parent string) error {
	p := &l.parents
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.count[parent] == 0 {
		return nil
	}
	if p.count[parent]--; p.count[parent] > 0 {
		return nil
	}
	var errs []error
	for k, v := range p.saved[parent] {
		errs = append(errs, writeConf("4", parent, k, v))
	}
	delete(p.saved, parent)
	return errors.Join(errs...)
}

func confPath(family, dev, key string) string {
	return "/proc/sys/net/ipv" + family + "/conf/" + dev + "/" + key
}

func writeConf(family, dev, key, value string) error {
	return os.WriteFile(confPath(family, dev, key), []byte(value), 0o644)
}

func readConf(family, dev, key string) (string, error) {
	b, err := os.ReadFile(confPath(family, dev, key))
	return strings.TrimSpace(string(b)), err
}

// VMACTable is the nftables table (family inet) through which haad keeps
// the virtual MAC interfaces quiet: it drops the IGMP and MLD reports and
// the router solicitations the kernel would send from them. Every node
// has the virtual MAC, and such a packet from a backup would teach the
// switch the virtual MAC's port, sending the master's traffic to the
// backup until its next advert (keepalived drops them likewise). The
// groups concerned are link-local ones, which switches flood anyway.
const VMACTable = "haa_vmac"

var vmacTable = &nftables.Table{Family: nftables.TableFamilyINet, Name: VMACTable}

// writeVMACTable replaces the table by one for the interfaces names
// (none: no table), in one transaction (rewriteTable).
func writeVMACTable(names []string) error {
	if len(names) == 0 {
		return rewriteTable(vmacTable, nil)
	}
	return rewriteTable(vmacTable, func(c *nftables.Conn) error {
		t := c.AddTable(vmacTable)
		ch := c.AddChain(&nftables.Chain{Name: "out", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter})
		for _, name := range names {
			oif := []expr.Any{
				&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifnameData(name)},
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			}
			rules := [][]expr.Any{
				{&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_IGMP}}},
				// MLD query, report, done (130-132), router solicitation
				// (133), MLDv2 report (143).
				{&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
					&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
					&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{130}, ToData: []byte{133}}},
				{&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
					&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{143}}},
			}
			for _, r := range rules {
				exprs := append(append(slices.Clone(oif), r...), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
				c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
			}
		}
		return nil
	})
}

// ifnameData is an interface name as nftables compares it (IFNAMSIZ
// bytes, zero-padded).
func ifnameData(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

// quietVMAC adds (on) or removes an interface from the table.
func (l *Linux) quietVMAC(name string, on bool) error {
	p := &l.parents
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.quiet == nil {
		p.quiet = map[string]bool{}
	}
	if p.quiet[name] == on {
		return nil
	}
	if on {
		p.quiet[name] = true
	} else {
		delete(p.quiet, name)
	}
	if err := writeVMACTable(slices.Sorted(maps.Keys(p.quiet))); err != nil {
		if on {
			delete(p.quiet, name)
		} else {
			p.quiet[name] = true
		}
		return fmt.Errorf("nftables table inet %s: %w", VMACTable, err)
	}
	return nil
}
