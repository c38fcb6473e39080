package lab

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// vrrpProto is VRRP's IP protocol number.
const vrrpProto = 112

// DropVRRP makes the namespace drop every VRRP packet it receives (an
// nftables table of its own, "haa_lab"), while everything else (gossip, the
// API, ARP) flows: a split brain of VRRP alone. The returned func removes
// the table again.
func (n *NS) DropVRRP() (undo func() error, err error) {
	h, err := netns.GetFromName(n.Name)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		return nil, err
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "haa_lab"})
	ch := c.AddChain(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{vrrpProto}},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("nftables in %s: %w", n.Name, err)
	}
	return func() error {
		h, err := netns.GetFromName(n.Name)
		if err != nil {
			return err
		}
		defer h.Close()
		c, err := nftables.New(nftables.WithNetNSFd(int(h)))
		if err != nil {
			return err
		}
		c.DelTable(t)
		if err := c.Flush(); err != nil && err != unix.ENOENT {
			return fmt.Errorf("nftables in %s: %w", n.Name, err)
		}
		return nil
	}, nil
}

// NFTSetAddrs returns the addresses in set of the inet table in the
// namespace; ok is false when the table does not exist.
func (n *NS) NFTSetAddrs(table, set string) (addrs []netip.Addr, ok bool, err error) {
	h, err := netns.GetFromName(n.Name)
	if err != nil {
		return nil, false, err
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		return nil, false, err
	}
	t, err := c.ListTableOfFamily(table, nftables.TableFamilyINet)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("nftables in %s: %w", n.Name, err)
	}
	s, err := c.GetSetByName(t, set)
	if err != nil {
		return nil, true, fmt.Errorf("nftables in %s: set %s: %w", n.Name, set, err)
	}
	es, err := c.GetSetElements(s)
	if err != nil {
		return nil, true, fmt.Errorf("nftables in %s: set %s: %w", n.Name, set, err)
	}
	for _, e := range es {
		if a, ok := netip.AddrFromSlice(e.Key); ok {
			addrs = append(addrs, a)
		}
	}
	return addrs, true, nil
}
