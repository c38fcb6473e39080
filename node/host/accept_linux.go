package host

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// AcceptTable is the nftables table (family inet) through which haad
// drops the packets addressed to the VIPs of masters without Accept_Mode
// (RFC 5798 6.1; keepalived's no_accept), and those they would send from
// them. Neighbour discovery for the addresses still flows (an IPv6 VIP
// must answer neighbour solicitations), as ARP does (not IP).
const AcceptTable = "haa_accept"

// acceptFilter is the table's content: the addresses blocked, by owner
// (an instance). Each change rewrites the whole table in one
// transaction: there are few addresses, and nothing is ever half done.
type acceptFilter struct {
	mu      sync.Mutex
	byOwner map[string][]netip.Addr
}

// SetAcceptBlocked makes the addresses owner blocks exactly addrs (none:
// owner blocks nothing) and rewrites the table; the table is deleted when
// nothing is blocked.
func (l *Linux) SetAcceptBlocked(owner string, addrs []netip.Addr) error {
	f := &l.accept
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byOwner == nil {
		f.byOwner = map[string][]netip.Addr{}
	}
	prev, had := f.byOwner[owner]
	if len(addrs) == 0 {
		delete(f.byOwner, owner)
	} else {
		f.byOwner[owner] = slices.Clone(addrs)
	}
	var all []netip.Addr
	for _, o := range slices.Sorted(maps.Keys(f.byOwner)) {
		all = append(all, f.byOwner[o]...)
	}
	if err := writeAcceptTable(all); err != nil {
		if had {
			f.byOwner[owner] = prev
		} else {
			delete(f.byOwner, owner)
		}
		return fmt.Errorf("nftables table inet %s (acceptMode false): %w", AcceptTable, err)
	}
	return nil
}

// ClearAcceptTable deletes the table an earlier run may have left.
func ClearAcceptTable() error { return writeAcceptTable(nil) }

var acceptTable = &nftables.Table{Family: nftables.TableFamilyINet, Name: AcceptTable}

// writeAcceptTable replaces the table by one blocking addrs (nothing:
// no table), in one transaction (rewriteTable).
func writeAcceptTable(addrs []netip.Addr) error {
	if len(addrs) == 0 {
		return rewriteTable(acceptTable, nil)
	}
	return rewriteTable(acceptTable, func(c *nftables.Conn) error { return buildAcceptTable(c, addrs) })
}

// rewriteTable replaces table t by what build adds to it (nil: no table)
// in one transaction: the table is added (a no-op if it exists), deleted
// and built anew. Nothing is ignored: an error (such as ENOENT for an
// expression the kernel lacks) means the table is as it was.
func rewriteTable(t *nftables.Table, build func(c *nftables.Conn) error) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	c.AddTable(t)
	c.DelTable(t)
	if build != nil {
		if err := build(c); err != nil {
			return err
		}
	}
	return c.Flush()
}

func buildAcceptTable(c *nftables.Conn, addrs []netip.Addr) error {
	t := c.AddTable(acceptTable)
	v4 := &nftables.Set{Table: t, Name: "vips4", KeyType: nftables.TypeIPAddr}
	v6 := &nftables.Set{Table: t, Name: "vips6", KeyType: nftables.TypeIP6Addr}
	var e4, e6 []nftables.SetElement
	for _, a := range addrs {
		if a.Is4() {
			e4 = append(e4, nftables.SetElement{Key: a.AsSlice()})
		} else {
			e6 = append(e6, nftables.SetElement{Key: a.AsSlice()})
		}
	}
	if err := c.AddSet(v4, e4); err != nil {
		return err
	}
	if err := c.AddSet(v6, e6); err != nil {
		return err
	}
	prio := nftables.ChainPriorityRef(*nftables.ChainPriorityFilter - 1)
	for _, dir := range []struct {
		name string
		hook *nftables.ChainHook
		off4 uint32 // of the address in the IPv4 header: 16 daddr, 12 saddr
		off6 uint32 // in the IPv6 header: 24 daddr, 8 saddr
	}{{"in", nftables.ChainHookInput, 16, 24}, {"out", nftables.ChainHookOutput, 12, 8}} {
		ch := c.AddChain(&nftables.Chain{Name: dir.name, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: dir.hook, Priority: prio})
		// Neighbour solicitations and advertisements for (and from)
		// an IPv6 VIP pass.
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{135}, ToData: []byte{136}},
			&expr.Verdict{Kind: expr.VerdictAccept},
		}})
		for _, f := range []struct {
			proto  byte
			off    uint32
			length uint32
			set    *nftables.Set
		}{{unix.NFPROTO_IPV4, dir.off4, 4, v4}, {unix.NFPROTO_IPV6, dir.off6, 16, v6}} {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
				&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{f.proto}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: f.off, Len: f.length},
				&expr.Lookup{SourceRegister: 1, SetName: f.set.Name, SetID: f.set.ID},
				&expr.Counter{},
				&expr.Verdict{Kind: expr.VerdictDrop},
			}})
		}
	}
	return nil
}
