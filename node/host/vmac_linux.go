package host

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VMAC is a virtual MAC interface to create: a macvlan of Parent (RFC
// 5798 7.3's 00:00:5e:00:0F:VRID on an interface of its own), as
// keepalived's use_vmac makes it.
type VMAC struct {
	Name, Parent string
	MAC          net.HardwareAddr
	// LinkLocal, for an IPv6 instance that sends from the macvlan: the
	// parent's link-local address, added to the macvlan (without DAD) as
	// the adverts' source. Invalid: none (IPv4, or sent from the parent).
	LinkLocal netip.Addr
}

// vmacParents counts the VMACs of each parent interface and keeps the
// parent's sysctls as they were before the first, to put back after the
// last.
type vmacParents struct {
	mu    sync.Mutex
	count map[string]int
	saved map[string]map[string]string
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
	vmacSysctls       = [][2]string{{"arp_ignore", "1"}, {"accept_local", "1"}, {"rp_filter", "0"}, {"promote_secondaries", "1"}}
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
	for _, s := range vmacSysctls {
		if err := writeConf(4, m.Name, s[0], s[1]); err != nil {
			return fmt.Errorf("virtual MAC %s: %w", m.Name, err)
		}
	}
	if err := netlink.LinkSetUp(lk); err != nil {
		return fmt.Errorf("virtual MAC %s: set up: %w", m.Name, err)
	}
	if m.LinkLocal.IsValid() {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: m.LinkLocal.AsSlice(), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}
		if err := netlink.AddrReplace(lk, a); err != nil {
			return fmt.Errorf("virtual MAC %s: add the link-local source %s: %w", m.Name, m.LinkLocal, err)
		}
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
	return errors.Join(err, l.restoreParentSysctls(parent))
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
			if v, err := readConf(4, parent, s[0]); err == nil {
				saved[s[0]] = v
			}
			if err := writeConf(4, parent, s[0], s[1]); err != nil {
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
		errs = append(errs, writeConf(4, parent, k, v))
	}
	delete(p.saved, parent)
	return errors.Join(errs...)
}

func confPath(family int, dev, key string) string {
	return fmt.Sprintf("/proc/sys/net/ipv%d/conf/%s/%s", family, dev, key)
}

func writeConf(family int, dev, key, value string) error {
	return os.WriteFile(confPath(family, dev, key), []byte(value), 0o644)
}

func readConf(family int, dev, key string) (string, error) {
	b, err := os.ReadFile(confPath(family, dev, key))
	return strings.TrimSpace(string(b)), err
}
