package nft

import (
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/haa-dev/haa/node/internal/pace"
	"github.com/haa-dev/haa/node/lvs"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The nftables layout (table ip haa_lvs), in nft syntax:
//
//	table ip haa_lvs {
//		map services {    # virtual servers by address; the comment: scheduler [prefix N]
//			type ipv4_addr . inet_proto . inet_service : verdict
//			elements = { 10.0.0.1 . tcp . 80 comment "wrr" : jump vs_0, ... }
//		}
//		map fwmarks {     # virtual servers by firewall mark
//			type mark : verdict
//			elements = { 0x00000007 comment "sh" : jump vs_1 }
//		}
//		map targets_0 {   # the slots of vs_0 .. vs_255: vs number . slot : real server . weight
//			type integer . integer : ipv4_addr . inet_service . integer
//			elements = { 0 . 0 : 10.1.0.1 . 80 . 3, 0 . 1 : 10.1.0.1 . 80 . 3,
//			             0 . 2 : 10.1.0.1 . 80 . 3, 0 . 3 : 10.1.0.2 . 80 . 1,
//			             0 . 4 : 10.1.0.3 . 80 . 1, 0 . 5 : 10.1.0.4 . 80 . 0,
//			             1 . 0 : 10.1.0.1 . 80 . 2, 1 . 1 : 10.1.0.5 . 81 . 2, ... }
//		}
//		chain prerouting {
//			type nat hook prerouting priority dstnat; policy accept;
//			meta mark vmap @fwmarks
//			ip daddr . meta l4proto . th dport vmap @services
//		}
//		chain output {    # clients on the director itself
//			type nat hook output priority -100; policy accept;
//			meta mark vmap @fwmarks
//			ip daddr . meta l4proto . th dport vmap @services
//		}
//		chain vs_0 {      # wrr 3:1:1 (and a real server of weight 0)
//			dnat to 0 . numgen inc mod 5 map @targets_0
//		}
//		chain vs_1 {      # sh
//			dnat to 1 . jhash ip saddr mod 2 seed 0x1234abcd map @targets_0
//		}
//		chain vs_2 {      # no real server with weight > 0
//			drop comment "no real server with weight > 0"
//		}
//	}
//
// Each virtual server has a chain vs_<n> of ONE rule that DNATs a new
// connection to the real server of a slot: numgen inc (rr, wrr) or a jhash
// of the client address (sh), modulo the number of slots. A real server
// takes weight/gcd(weights) consecutive slots (wrr, sh; scaled down to
// about 1000 slots when they would be more) or one (rr); weight 0 takes
// none. Slots are elements "n . slot" of a map shared by 256
// virtual servers (targets_<n/256>); a real server of weight 0 has one
// element past the last slot, where the rule never looks. The data of an
// element is the DNAT target and the real server's weight (unused by the
// DNAT): with the scheduler in the services/fwmarks element comment, Read
// reconstructs the whole table from the kernel. fwmarks is looked up
// before services, as IPVS looks up fwmark services first.
//
// A change of a virtual server's real servers replaces its elements and,
// when its number of slots changes, its chain's rule (flush chain + add
// rule) in one transaction; no other chain is touched.
//
// Why maps shared by 256 and not one anonymous map per rule, nor one map
// for all: the kernel finds a set by a linear search of the table's sets
// (one anonymous map per rule made programming 10,000 virtual servers
// quadratic, 12-20 s), and binding a rule's lookup to a map walks all of the
// map's elements (one map for all: minutes).
const (
	nftTableName   = "haa_lvs"
	nftServicesM   = "services"
	nftFWMarksM    = "fwmarks"
	nftTargetsM    = "targets_" // + group number
	nftChainPre    = "prerouting"
	nftChainOut    = "output"
	nftChainVS     = "vs_" // + virtual server number
	nftGroupSize   = 256   // virtual servers per targets map
	nftElemsPerMsg = 256   // set elements per netlink message: a nested attribute holds at most 64 KiB
	nftElemSize    = 64    // about what a set element takes in a message

	// nftBatchServices and nftBatchBytes bound one transaction (one
	// sendmsg); bigger plans are split into several.
	nftBatchServices = 1000
	nftBatchBytes    = 2 << 20
	nftSocketBuffer  = 8 << 20
	// nftTimeout bounds one transaction when ctx has no deadline.
	nftTimeout = 30 * time.Second

	nftMaxWeight = 65535
	nftMaxDests  = 65535
	// nftMaxSlots bounds the slots (map elements) of one virtual server.
	nftMaxSlots = 1000
)

var (
	nftTable       = &nftables.Table{Name: nftTableName, Family: nftables.TableFamilyIPv4}
	nftServiceType = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	nftSlotType    = nftables.MustConcatSetType(nftables.TypeInteger, nftables.TypeInteger)
	nftTargetType  = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService, nftables.TypeInteger)
)

// Backend is the Backend that balances with nftables DNAT in its own table
// "ip haa_lvs": IPv4, forwarding nat, schedulers rr, wrr and sh. Safe for
// concurrent use.
type Backend struct {
	mu       sync.Mutex
	netns    int // a dup of the WithNetNS fd, or -1
	read     *nftables.Conn
	sock     *netlink.Conn // nil after a broken transaction: redialled
	raw      syscall.RawConn
	maxBatch int
	seq      uint32
	setID    uint32
	closed   bool

	// capture marshals: the library buffers messages on it, its test
	// dialer hands them over on Flush.
	capture  *nftables.Conn
	captured []netlink.Message

	// What is programmed, kept after every transaction (re-read after a
	// failed one).
	cur    lvs.State
	num    map[lvs.Key]uint32 // the chain number of each service
	free   nftNums            // numbers below next not in use
	next   uint32
	groups map[uint32]bool // targets maps that exist
	table  bool
	stale  bool // re-read before the next lvs.Apply
}

// Option configures New.
type Option func(*nftConfig)

type nftConfig struct {
	netns int
}

// WithNetNS makes the backend program the network namespace of the open
// file descriptor fd (for tests and benchmarks). The backend keeps its own
// duplicate: the caller may close fd once New returns.
func WithNetNS(fd int) Option {
	return func(c *nftConfig) { c.netns = fd }
}

var _ lvs.Backend = (*Backend)(nil)

// New opens the backend. It deletes a leftover haa_lvs table: a
// restarted agent programs its virtual servers from empty, so nothing of a
// previous (or crashed) run lingers with stale real servers.
func New(opts ...Option) (*Backend, error) {
	cfg := nftConfig{netns: -1}
	for _, o := range opts {
		o(&cfg)
	}
	n := &Backend{netns: -1}
	n.reset()
	if cfg.netns >= 0 {
		fd, err := unix.FcntlInt(uintptr(cfg.netns), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("nftables: network namespace fd %d: %w", cfg.netns, err)
		}
		n.netns = fd
	}
	copts := []nftables.ConnOption{nftables.AsLasting()}
	if n.netns >= 0 {
		copts = append(copts, nftables.WithNetNSFd(n.netns))
	}
	read, err := nftables.New(copts...)
	if err != nil {
		n.closeFD()
		return nil, fmt.Errorf("nftables: %w", err)
	}
	n.read = read
	n.capture, _ = nftables.New(nftables.WithTestDial(n.captureMsgs), nftables.AsLasting())
	if err := n.dial(); err != nil {
		_ = n.Close()
		return nil, err
	}
	tables, err := n.read.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		_ = n.Close()
		return nil, fmt.Errorf("nftables: list tables: %w", err)
	}
	if slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == nftTableName }) {
		b := newNFTBatch()
		b.add(n, "delete the leftover table "+nftTableName, func(c *nftables.Conn) { c.DelTable(nftTable) })
		if err := n.send(context.Background(), b.parts); err != nil {
			_ = n.Close()
			return nil, err
		}
	}
	return n, nil
}

// reset forgets what is programmed: nothing is.
func (n *Backend) reset() {
	n.cur, n.num, n.free, n.next, n.groups, n.table = lvs.State{}, map[lvs.Key]uint32{}, nil, 0, map[uint32]bool{}, false
}

// dial opens the netlink socket that carries the transactions. It is ours
// rather than the library's so that only the last message of a batch asks
// for an acknowledgement (the kernel reports every failed message anyway)
// and rules are not echoed back: thousands of acknowledgements and echoes
// would overflow the receive buffer.
func (n *Backend) dial() error {
	sock, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: max(n.netns, 0)})
	if err != nil {
		return fmt.Errorf("nftables: netlink: %w", err)
	}
	raw, err := sock.SyscallConn()
	if err != nil {
		_ = sock.Close()
		return fmt.Errorf("nftables: netlink: %w", err)
	}
	sndbuf := 0
	cerr := raw.Control(func(fd uintptr) {
		s := int(fd)
		// The FORCE variants (CAP_NET_ADMIN, which programming nftables
		// needs anyway) go beyond net.core.[rw]mem_max.
		if unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, nftSocketBuffer) != nil {
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF, nftSocketBuffer)
		}
		if unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, nftSocketBuffer) != nil {
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, nftSocketBuffer)
		}
		// An error carries only the failed message's header, plus the
		// kernel's explanation when it has one.
		_ = unix.SetsockoptInt(s, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
		_ = unix.SetsockoptInt(s, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
		sndbuf, _ = unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF)
	})
	if cerr != nil {
		_ = sock.Close()
		return fmt.Errorf("nftables: netlink: %w", cerr)
	}
	n.sock, n.raw = sock, raw
	// The kernel refuses a message longer than the send buffer.
	n.maxBatch = max(min(nftBatchBytes, sndbuf-64<<10), 64<<10)
	return nil
}

// Name implements Backend.
func (*Backend) Name() string { return "nftables" }

// Supports implements Backend: IPv4 NAT with rr, wrr or sh, without
// persistence. (Apply also wants a port on every real server, which
// fwmark services do not imply.)
func (*Backend) Supports(s lvs.Service) error {
	if s.Key.Is6() {
		return errors.New("IPv6 virtual servers need the ipvs backend: the nftables backend balances IPv4 only")
	}
	if s.Forwarding != lvs.NAT {
		return fmt.Errorf("forwarding %s needs the ipvs backend: set loadBalancer.backend: ipvs where the kernel has IPVS, or use forwarding nat", s.Forwarding)
	}
	switch s.Scheduler {
	case "rr", "wrr", "sh":
	default:
		return fmt.Errorf("scheduler %s is not available with the nftables backend: use rr, wrr or sh, or the ipvs backend", s.Scheduler)
	}
	if s.Persistence != 0 {
		return errors.New("persistence needs the ipvs backend; with nftables, scheduler sh keeps each client on one real server")
	}
	if s.Key.FWMark == 0 {
		if !s.Key.Addr.Addr().Is4() {
			return fmt.Errorf("address %s is not IPv4: the nftables backend balances IPv4 only", s.Key.Addr.Addr())
		}
		switch s.Key.Proto {
		case lvs.TCP, lvs.UDP, lvs.SCTP:
		default:
			return fmt.Errorf("protocol %s is not supported by the nftables backend: use tcp, udp or sctp", s.Key.Proto)
		}
		if s.Key.Addr.Port() == 0 {
			return errors.New("a virtual server on port 0 (every port) needs the ipvs backend")
		}
	}
	return nil
}

// SupportsDests implements DestChecker.
func (*Backend) SupportsDests(vs *lvs.VirtualServer) error { return nftCheckDests(vs) }

func nftCheckDests(vs *lvs.VirtualServer) error {
	if len(vs.Dests) > nftMaxDests {
		return fmt.Errorf("%d real servers: the nftables backend takes at most %d per virtual server", len(vs.Dests), nftMaxDests)
	}
	var errs []error
	bad := func(addr netip.AddrPort, attr, format string, args ...any) {
		errs = append(errs, &lvs.DestError{Addr: addr, Attr: attr, Err: fmt.Errorf(format, args...)})
	}
	for _, addr := range lvs.SortedAddrs(vs.Dests) {
		d := vs.Dests[addr]
		switch {
		case !addr.Addr().Is4():
			bad(addr, lvs.AttrAddress, "not IPv4: the nftables backend balances IPv4 only")
		case addr.Port() == 0:
			bad(addr, lvs.AttrAddress, "needs a port with the nftables backend (its DNAT sets the destination port)")
		}
		if d.Weight < 0 || d.Weight > nftMaxWeight {
			bad(addr, lvs.AttrWeight, "weight %d out of range 0..%d", d.Weight, nftMaxWeight)
		}
		if d.Forwarding != lvs.NAT {
			bad(addr, lvs.AttrForwarding, "forwarding %s needs the ipvs backend: the nftables backend forwards by DNAT (nat)", d.Forwarding)
		}
		if t := d.Thresholds; t.Upper != 0 || t.Lower != 0 {
			bad(addr, lvs.AttrThresholds, "connection thresholds need the ipvs backend: the nftables backend does not count connections; remove them, or set loadBalancer.backend: ipvs")
		}
	}
	return errors.Join(errs...)
}

// nftChange is what Apply does to one service: old and new are the
// programmed and the wanted virtual server (nil: absent).
type nftChange struct {
	key      lvs.Key
	old, new *lvs.VirtualServer
	num      uint32
}

// Apply implements Backend. The plan is first checked as a whole (Supports,
// real servers) and refused before anything is programmed. It is then
// carried out in transactions of at most nftBatchServices services, each
// atomic; after an error those before the failed one stay programmed (Read
// tells). Deleting the last service deletes the table.
func (n *Backend) Apply(ctx context.Context, p lvs.Plan) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("nftables: backend closed")
	}
	if len(p) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if n.stale {
		if err := n.resync(); err != nil {
			return err
		}
	}

	// What each touched service becomes, in the order of the plan.
	work := lvs.State{}
	seen := map[lvs.Key]bool{}
	var order []lvs.Key
	var pc pace.Pacer // a large plan gives way now and then
	for _, op := range p {
		pc.Yield()
		k := op.Service.Key
		if !seen[k] {
			seen[k] = true
			order = append(order, k)
			if vs := n.cur[k]; vs != nil {
				work[k] = vs.Clone()
			}
		}
		lvs.Apply(work, lvs.Plan{op})
	}
	changes := make([]nftChange, 0, len(order))
	size := len(n.cur)
	for _, k := range order {
		pc.Yield()
		c := nftChange{key: k, old: n.cur[k], new: work[k]}
		if c.new != nil {
			c.new.Key = k
			if err := n.Supports(c.new.Service); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			if err := nftCheckDests(c.new); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		switch {
		case c.old == nil && c.new == nil:
			continue
		case c.old == nil:
			size++
		case c.new == nil:
			size--
		case vsEqual(c.old, c.new):
			continue
		}
		changes = append(changes, c)
	}
	if len(changes) == 0 {
		return nil
	}

	if size == 0 {
		// Everything goes: drop the table, rules, maps and all.
		b := newNFTBatch()
		b.add(n, "delete table "+nftTableName, func(c *nftables.Conn) { c.DelTable(nftTable) })
		if err := n.send(ctx, b.parts); err != nil {
			n.afterError()
			return err
		}
		n.reset()
		return nil
	}

	b := newNFTBatch()
	for _, c := range changes {
		pc.Yield()
		if b.services >= nftBatchServices || b.size >= n.maxBatch {
			if err := n.commit(ctx, b); err != nil {
				return err
			}
			b = newNFTBatch()
		}
		n.build(b, c)
	}
	return n.commit(ctx, b)
}

// commit sends a batch and, once the kernel took it, records its changes.
func (n *Backend) commit(ctx context.Context, b *nftBatch) error {
	if len(b.changes) == 0 {
		return nil
	}
	var prelude []nftPart
	if !n.table {
		prelude = append(prelude, n.prelude())
	}
	for _, g := range b.newGroups {
		prelude = append(prelude, n.groupMap(g))
	}
	if err := ctx.Err(); err != nil {
		n.afterError() // numbers were taken
		return err
	}
	if err := n.send(ctx, slices.Concat(prelude, b.finish(n))); err != nil {
		n.afterError()
		return err
	}
	n.table = true
	for _, g := range b.newGroups {
		n.groups[g] = true
	}
	for _, c := range b.changes {
		if c.new == nil {
			delete(n.cur, c.key)
			delete(n.num, c.key)
			heap.Push(&n.free, c.num) // reusable from the next transaction on
			continue
		}
		n.cur[c.key] = c.new
		n.num[c.key] = c.num
	}
	return nil
}

func (n *Backend) afterError() {
	if err := n.resync(); err != nil {
		n.stale = true
	}
}

// resync re-reads what is programmed.
func (n *Backend) resync() error {
	snap, err := n.readLocked()
	if err != nil {
		return err
	}
	n.cur, n.num, n.groups, n.table, n.stale = snap.state, snap.nums, snap.groups, snap.table, false
	n.next = 0
	used := map[uint32]bool{}
	for _, c := range snap.nums {
		used[c] = true
		n.next = max(n.next, c+1)
	}
	n.free = nil
	for c := range n.next {
		if !used[c] {
			n.free = append(n.free, c)
		}
	}
	heap.Init(&n.free)
	return nil
}

// alloc returns the smallest free chain number, so that numbers (and
// targets maps) stay dense however often services come and go.
func (n *Backend) alloc() uint32 {
	if n.free.Len() > 0 {
		return heap.Pop(&n.free).(uint32)
	}
	n.next++
	return n.next - 1
}

// nftNums is a min-heap of chain numbers.
type nftNums []uint32

func (h nftNums) Len() int           { return len(h) }
func (h nftNums) Less(i, j int) bool { return h[i] < h[j] }
func (h nftNums) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nftNums) Push(x any)        { *h = append(*h, x.(uint32)) }
func (h *nftNums) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func vsEqual(a, b *lvs.VirtualServer) bool {
	if a.Service != b.Service || len(a.Dests) != len(b.Dests) {
		return false
	}
	for addr, d := range a.Dests {
		if db, ok := b.Dests[addr]; !ok || db.Weight != d.Weight || db.Forwarding != d.Forwarding {
			return false
		}
	}
	return true
}

// nftBatch is one transaction being built.
type nftBatch struct {
	parts     []nftPart // chains and rules
	changes   []nftChange
	newGroups []uint32
	services  int
	size      int

	// Element changes of the shared maps, sent in bulk: deletions before the
	// chains change, additions after.
	vmapDel, vmapAdd map[string][]nftables.SetElement
	tgtDel, tgtAdd   map[uint32][]nftables.SetElement // by group
}

// nftPart is the messages of one step, with what to call it in an error.
type nftPart struct {
	label string
	msgs  []netlink.Message
	err   error // the library could not marshal it
}

func newNFTBatch() *nftBatch {
	return &nftBatch{
		vmapDel: map[string][]nftables.SetElement{},
		vmapAdd: map[string][]nftables.SetElement{},
		tgtDel:  map[uint32][]nftables.SetElement{},
		tgtAdd:  map[uint32][]nftables.SetElement{},
	}
}

func (b *nftBatch) add(n *Backend, label string, fn func(c *nftables.Conn)) {
	p := n.marshal(label, fn)
	b.parts = append(b.parts, p)
	for _, m := range p.msgs {
		b.size += unix.SizeofNlMsghdr + len(m.Data)
	}
}

func (b *nftBatch) vmapElem(m map[string][]nftables.SetElement, name string, e nftables.SetElement) {
	m[name] = append(m[name], e)
	b.size += nftElemSize
}

func (b *nftBatch) tgtElems(m map[uint32][]nftables.SetElement, group uint32, es []nftables.SetElement) {
	m[group] = append(m[group], es...)
	b.size += nftElemSize * len(es)
}

// finish returns all the batch's parts, the bulk element changes included.
func (b *nftBatch) finish(n *Backend) []nftPart {
	var pre, post []nftPart
	elems := func(list *[]nftPart, what string, set *nftables.Set, es []nftables.SetElement, del bool) {
		for chunk := range slices.Chunk(es, nftElemsPerMsg) {
			var err error
			p := n.marshal(what+" map "+set.Name, func(c *nftables.Conn) {
				if del {
					err = c.SetDeleteElements(set, chunk)
				} else {
					err = c.SetAddElements(set, chunk)
				}
			})
			if p.err == nil && err != nil {
				p.err = err
			}
			*list = append(*list, p)
		}
	}
	for _, name := range []string{nftServicesM, nftFWMarksM} {
		elems(&pre, "remove services from", nftSetRef(name), b.vmapDel[name], true)
		elems(&post, "add services to", nftSetRef(name), b.vmapAdd[name], false)
	}
	for _, g := range slices.Sorted(maps.Keys(b.tgtDel)) {
		elems(&pre, "remove real servers from", nftSetRef(nftGroupName(g)), b.tgtDel[g], true)
	}
	for _, g := range slices.Sorted(maps.Keys(b.tgtAdd)) {
		elems(&post, "add real servers to", nftSetRef(nftGroupName(g)), b.tgtAdd[g], false)
	}
	return slices.Concat(pre, b.parts, post)
}

func nftSetRef(name string) *nftables.Set {
	return &nftables.Set{Table: nftTable, Name: name}
}

func nftGroupName(g uint32) string {
	return nftTargetsM + strconv.FormatUint(uint64(g), 10)
}

// marshal returns the netlink messages that fn buffers on the capturing
// Conn.
func (n *Backend) marshal(label string, fn func(c *nftables.Conn)) nftPart {
	n.captured = nil
	fn(n.capture)
	if err := n.capture.Flush(); err != nil {
		// Only a marshalling error can get here: send reports it. The
		// library keeps such an error for good: start a fresh Conn.
		n.capture, _ = nftables.New(nftables.WithTestDial(n.captureMsgs), nftables.AsLasting())
		return nftPart{label: label, err: err}
	}
	msgs := n.captured
	n.captured = nil
	return nftPart{label: label, msgs: msgs}
}

// captureMsgs is the capturing Conn's test dialer.
func (n *Backend) captureMsgs(req []netlink.Message) ([]netlink.Message, error) {
	if req == nil { // the library waits for an acknowledgement per message
		return []netlink.Message{{Header: netlink.Header{Type: netlink.Error}, Data: make([]byte, 4)}}, nil
	}
	for _, m := range req {
		if t := m.Header.Type; t != unix.NFNL_MSG_BATCH_BEGIN && t != unix.NFNL_MSG_BATCH_END {
			n.captured = append(n.captured, m)
		}
	}
	return nil, nil
}

// prelude creates the table, its vmaps and base chains.
func (n *Backend) prelude() nftPart {
	return n.marshal("create table "+nftTableName, func(c *nftables.Conn) {
		t := c.AddTable(nftTable)
		services := &nftables.Set{Table: t, ID: n.nextSetID(), Name: nftServicesM, IsMap: true, Concatenation: true,
			KeyType: nftServiceType, DataType: nftables.TypeVerdict}
		fwmarks := &nftables.Set{Table: t, ID: n.nextSetID(), Name: nftFWMarksM, IsMap: true,
			KeyType: nftables.TypeMark, DataType: nftables.TypeVerdict, KeyByteOrder: binaryutil.NativeEndian}
		for _, s := range []*nftables.Set{services, fwmarks} {
			if err := c.AddSet(s, nil); err != nil {
				panic(err) // only on a programming error (anonymous and not constant)
			}
		}
		for _, hook := range []struct {
			name string
			num  *nftables.ChainHook
		}{{nftChainPre, nftables.ChainHookPrerouting}, {nftChainOut, nftables.ChainHookOutput}} {
			ch := c.AddChain(&nftables.Chain{Name: hook.name, Table: t, Type: nftables.ChainTypeNAT,
				Hooknum: hook.num, Priority: nftables.ChainPriorityNATDest})
			// meta mark vmap @fwmarks
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
				&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
				&expr.Lookup{SourceRegister: 1, IsDestRegSet: true, DestRegister: 0, SetName: fwmarks.Name, SetID: fwmarks.ID},
			}})
			// ip daddr . meta l4proto . th dport vmap @services
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 9},
				&expr.Payload{DestRegister: 10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Lookup{SourceRegister: 1, IsDestRegSet: true, DestRegister: 0, SetName: services.Name, SetID: services.ID},
			}})
		}
	})
}

// groupMap creates a targets map.
func (n *Backend) groupMap(g uint32) nftPart {
	return n.marshal("create map "+nftGroupName(g), func(c *nftables.Conn) {
		s := &nftables.Set{Table: nftTable, ID: n.nextSetID(), Name: nftGroupName(g), IsMap: true, Concatenation: true,
			KeyType: nftSlotType, DataType: nftTargetType, KeyByteOrder: binaryutil.NativeEndian}
		if err := c.AddSet(s, nil); err != nil {
			panic(err) // only on a programming error
		}
	})
}

// nextSetID numbers the sets of a batch. (The library's own counter is a
// global without a lock.)
func (n *Backend) nextSetID() uint32 {
	n.setID++
	if n.setID == 0 {
		n.setID = 1
	}
	return n.setID
}

// build adds one service's change to the batch.
func (n *Backend) build(b *nftBatch, c nftChange) {
	num, ok := n.num[c.key]
	if !ok {
		num = n.alloc()
	}
	c.num = num
	b.changes = append(b.changes, c)
	b.services++
	g := num / nftGroupSize
	if c.new != nil && !n.groups[g] && !slices.Contains(b.newGroups, g) {
		b.newGroups = append(b.newGroups, g)
	}
	chain := &nftables.Chain{Name: nftChainVS + strconv.FormatUint(uint64(num), 10), Table: nftTable}
	vmap, vkey := nftServiceElemKey(c.key)
	jump := func(vs *lvs.VirtualServer) nftables.SetElement {
		return nftables.SetElement{Key: vkey, Comment: nftComment(vs.Service),
			VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: chain.Name}}
	}
	label := c.key.String() + " (chain " + chain.Name + ")"

	switch {
	case c.new == nil: // delete
		b.vmapElem(b.vmapDel, vmap, nftables.SetElement{Key: vkey})
		b.tgtElems(b.tgtDel, g, nftTargets(num, c.old))
		// Deleting the chain deletes its rule.
		b.add(n, "delete "+label, func(cc *nftables.Conn) { cc.DelChain(chain) })
		return
	case c.old == nil: // add
		b.vmapElem(b.vmapAdd, vmap, jump(c.new))
		b.tgtElems(b.tgtAdd, g, nftTargets(num, c.new))
		b.add(n, "add "+label, func(cc *nftables.Conn) {
			cc.AddChain(chain)
			nftAddRule(cc, chain, num, c.key, c.new)
		})
		return
	}
	// Update.
	if nftComment(c.old.Service) != nftComment(c.new.Service) {
		b.vmapElem(b.vmapDel, vmap, nftables.SetElement{Key: vkey})
		b.vmapElem(b.vmapAdd, vmap, jump(c.new))
	}
	del, add := nftElemDiff(nftTargets(num, c.old), nftTargets(num, c.new))
	b.tgtElems(b.tgtDel, g, del)
	b.tgtElems(b.tgtAdd, g, add)
	if nftRuleOf(c.old) == nftRuleOf(c.new) {
		return
	}
	b.add(n, "update "+label, func(cc *nftables.Conn) {
		cc.FlushChain(chain)
		nftAddRule(cc, chain, num, c.key, c.new)
	})
}

// nftSlots returns the slots of each real server with weight > 0, in
// address order: one (rr) or weight/gcd(weights) (wrr, sh). Past
// nftMaxSlots slots (weights like 100:99), wrr and sh weights are scaled
// down to about nftMaxSlots slots, each real server keeping at least one:
// the proportions are then right within a slot in nftMaxSlots.
func nftSlots(sched string, dests map[netip.AddrPort]lvs.DestAttrs) (addrs []netip.AddrPort, widths []uint32, total uint32) {
	g, sum := 0, 0
	for _, d := range dests {
		if w := d.Weight; w > 0 {
			g = gcd(g, w)
			sum += w
		}
	}
	width := func(w int) uint32 { return uint32(w / g) }
	switch {
	case sched == "rr":
		width = func(int) uint32 { return 1 }
	case g > 0 && sum/g > nftMaxSlots:
		width = func(w int) uint32 { return uint32(max(1, (w*nftMaxSlots+sum/2)/sum)) }
	}
	for _, addr := range lvs.SortedAddrs(dests) {
		if w := dests[addr].Weight; w > 0 {
			addrs = append(addrs, addr)
			widths = append(widths, width(w))
			total += widths[len(widths)-1]
		}
	}
	return addrs, widths, total
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// nftTargets returns the elements of a virtual server in its targets map:
// its slots, then one past them per real server of weight 0.
func nftTargets(num uint32, vs *lvs.VirtualServer) []nftables.SetElement {
	if len(vs.Dests) == 0 {
		return nil
	}
	addrs, widths, total := nftSlots(vs.Scheduler, vs.Dests)
	elems := make([]nftables.SetElement, 0, int(total)+len(vs.Dests)-len(addrs))
	var slot uint32
	for i, addr := range addrs {
		val := nftTargetVal(addr, vs.Dests[addr].Weight)
		for range widths[i] {
			elems = append(elems, nftables.SetElement{Key: nftSlotKey(num, slot), Val: val})
			slot++
		}
	}
	for _, addr := range lvs.SortedAddrs(vs.Dests) {
		if vs.Dests[addr].Weight <= 0 {
			elems = append(elems, nftables.SetElement{Key: nftSlotKey(num, slot), Val: nftTargetVal(addr, 0)})
			slot++
		}
	}
	return elems
}

// nftSlotKey is integer . integer, in host byte order like the registers
// that immediate and numgen/jhash fill.
func nftSlotKey(num, slot uint32) []byte {
	return binary.NativeEndian.AppendUint32(binary.NativeEndian.AppendUint32(make([]byte, 0, 8), num), slot)
}

// nftTargetVal is ipv4_addr . inet_service . integer, each padded to 4
// bytes: the DNAT target and the weight.
func nftTargetVal(addr netip.AddrPort, weight int) []byte {
	v := make([]byte, 12)
	a := addr.Addr().As4()
	copy(v, a[:])
	binary.BigEndian.PutUint16(v[4:], addr.Port())
	binary.NativeEndian.PutUint32(v[8:], uint32(weight))
	return v
}

// nftElemDiff returns the elements of old not in new and those of new not
// in old. An element whose data changes is deleted and added again, in one
// transaction.
func nftElemDiff(old, new []nftables.SetElement) (del, add []nftables.SetElement) {
	id := func(e nftables.SetElement) string { return string(e.Key) + string(e.Val) }
	inNew := make(map[string]bool, len(new))
	for _, e := range new {
		inNew[id(e)] = true
	}
	inOld := make(map[string]bool, len(old))
	for _, e := range old {
		inOld[id(e)] = true
		if !inNew[id(e)] {
			del = append(del, e)
		}
	}
	for _, e := range new {
		if !inOld[id(e)] {
			add = append(add, e)
		}
	}
	return del, add
}

// nftRule is what a virtual server's rule depends on besides its number
// and key, which never change.
type nftRule struct {
	sh    bool
	total uint32
}

func nftRuleOf(vs *lvs.VirtualServer) nftRule {
	_, _, total := nftSlots(vs.Scheduler, vs.Dests)
	return nftRule{sh: vs.Scheduler == "sh", total: total}
}

// nftSeed is the jhash seed of a sh service: derived from its key, so that
// every director with the same configuration sends a client to the same
// real server.
func nftSeed(k lvs.Key) uint32 {
	h := fnv.New32a()
	h.Write([]byte(k.String()))
	return max(h.Sum32(), 1)
}

// nftAddRule buffers the one rule of a virtual server's chain.
func nftAddRule(c *nftables.Conn, chain *nftables.Chain, num uint32, k lvs.Key, vs *lvs.VirtualServer) {
	r := nftRuleOf(vs)
	if r.total == 0 {
		// No real server takes connections: drop new ones, so that clients
		// see no answer (and retry) rather than a reset from the director
		// or an answer from a wrong server. Established connections keep
		// their DNAT in conntrack, as IPVS keeps them at weight 0.
		c.AddRule(&nftables.Rule{Table: nftTable, Chain: chain,
			Exprs:    []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}},
			UserData: userdata.AppendString(nil, userdata.TypeComment, "no real server with weight > 0"),
		})
		return
	}
	// The key n . slot: n in register 1, the slot in register 9 (the next
	// 32-bit register). The lookup overwrites them with the target address
	// (register 1), port (9) and weight (10).
	var exprs []expr.Any
	if r.sh {
		exprs = []expr.Any{
			&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}, // ip saddr
			&expr.Hash{SourceRegister: 9, DestRegister: 9, Length: 4, Modulus: r.total, Seed: nftSeed(k), Type: expr.HashTypeJenkins},
		}
	} else {
		exprs = []expr.Any{&expr.Numgen{Register: 9, Modulus: r.total, Type: unix.NFT_NG_INCREMENTAL}}
	}
	exprs = append(exprs,
		&expr.Immediate{Register: 1, Data: binary.NativeEndian.AppendUint32(nil, num)},
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: nftGroupName(num / nftGroupSize)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 9},
	)
	c.AddRule(&nftables.Rule{Table: nftTable, Chain: chain, Exprs: exprs})
}

// nftComment is the comment of a service's vmap element: what Read needs
// of the service besides its key. Forwarding is always nat and
// persistence 0; the persistence prefix means nothing then, but is kept so
// that the service reads back as it was given.
func nftComment(s lvs.Service) string {
	if s.PersistPrefix != 0 {
		return s.Scheduler + " prefix " + strconv.Itoa(s.PersistPrefix)
	}
	return s.Scheduler
}

func nftParseComment(k lvs.Key, c string) (lvs.Service, error) {
	s := lvs.Service{Key: k, Forwarding: lvs.NAT}
	f := strings.Fields(c)
	switch {
	case len(f) == 1:
	case len(f) == 3 && f[1] == "prefix":
		p, err := strconv.Atoi(f[2])
		if err != nil {
			return s, fmt.Errorf("comment %q", c)
		}
		s.PersistPrefix = p
	default:
		return s, fmt.Errorf("comment %q", c)
	}
	s.Scheduler = f[0]
	return s, nil
}

// nftServiceElemKey returns the vmap of a service and its element key.
func nftServiceElemKey(k lvs.Key) (string, []byte) {
	if k.FWMark != 0 {
		return nftFWMarksM, binary.NativeEndian.AppendUint32(nil, k.FWMark)
	}
	key := make([]byte, 12) // ipv4_addr . inet_proto . inet_service, each padded to 4 bytes
	a := k.Addr.Addr().As4()
	copy(key, a[:])
	key[4] = byte(k.Proto)
	binary.BigEndian.PutUint16(key[8:], k.Addr.Port())
	return nftServicesM, key
}

// send carries out parts as one transaction and waits for the kernel's
// verdict on it.
func (n *Backend) send(ctx context.Context, parts []nftPart) error {
	total := 0
	for _, p := range parts {
		if p.err != nil {
			return fmt.Errorf("nftables: %s: %w", p.label, p.err)
		}
		total += len(p.msgs)
	}
	if total == 0 {
		return nil
	}
	if n.sock == nil {
		if err := n.dial(); err != nil {
			return err
		}
	}
	if n.seq > 1<<30 {
		n.seq = 0 // keep the spans below from wrapping
	}
	type span struct {
		first, last uint32
		label       string
	}
	spans := make([]span, 0, len(parts))
	size := 0
	for _, p := range parts {
		for _, m := range p.msgs {
			size += unix.SizeofNlMsghdr + len(m.Data) + 3
		}
	}
	batchHdr := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES}
	buf := make([]byte, 0, size+2*(unix.SizeofNlMsghdr+4))
	n.seq++
	begin := n.seq
	buf = nftAppendMsg(buf, unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, n.seq, batchHdr)
	var last uint32
	i := 0
	for _, p := range parts {
		s := span{first: n.seq + 1, label: p.label}
		for _, m := range p.msgs {
			i++
			n.seq++
			flags := uint16(m.Header.Flags) &^ (unix.NLM_F_ACK | unix.NLM_F_ECHO)
			if i == total {
				flags |= unix.NLM_F_ACK
				last = n.seq
			}
			buf = nftAppendMsg(buf, uint16(m.Header.Type), flags, n.seq, m.Data)
		}
		s.last = n.seq
		spans = append(spans, s)
	}
	n.seq++
	buf = nftAppendMsg(buf, unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, n.seq, batchHdr)

	broken := func(err error) error {
		// The socket may still get a late answer: start afresh next time.
		_ = n.sock.Close()
		n.sock, n.raw = nil, nil
		return fmt.Errorf("nftables: %w", err)
	}
	var werr error
	if err := n.raw.Write(func(fd uintptr) bool {
		werr = unix.Sendto(int(fd), buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return werr != unix.EAGAIN
	}); err != nil {
		return broken(err)
	}
	if werr != nil {
		return broken(fmt.Errorf("send a transaction of %d bytes: %w", len(buf), werr))
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(nftTimeout)
	}
	if err := n.sock.SetReadDeadline(deadline); err != nil {
		return broken(err)
	}
	var errs []error
	rbuf := make([]byte, 64<<10)
	for done := false; !done; {
		var nr int
		var rerr error
		if err := n.raw.Read(func(fd uintptr) bool {
			nr, _, rerr = unix.Recvfrom(int(fd), rbuf, 0)
			return rerr != unix.EAGAIN
		}); err != nil {
			return broken(fmt.Errorf("waiting for the kernel: %w", err))
		}
		if rerr != nil {
			return broken(fmt.Errorf("receive: %w", rerr))
		}
		msgs, err := syscall.ParseNetlinkMessage(rbuf[:nr])
		if err != nil {
			return broken(fmt.Errorf("receive: %w", err))
		}
		for _, m := range msgs {
			if m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4+unix.SizeofNlMsghdr {
				continue
			}
			errno := -int32(binary.NativeEndian.Uint32(m.Data))
			orig := m.Data[4:]
			typ := binary.NativeEndian.Uint16(orig[4:])
			seq := binary.NativeEndian.Uint32(orig[8:])
			if errno != 0 {
				label := "?"
				for _, s := range spans {
					if seq >= s.first && seq <= s.last {
						label = s.label
						break
					}
				}
				e := fmt.Errorf("%s: %s: %w", label, nftMsgName(typ), syscall.Errno(errno))
				if msg := nftExtAckMsg(m, orig); msg != "" {
					e = fmt.Errorf("%w (%s)", e, msg)
				}
				errs = append(errs, e)
			}
			// The last message asks for the acknowledgement; an error on
			// the batch markers (a failure of the whole batch) ends it too.
			if seq == last || seq == begin || seq == last+1 {
				done = true
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("nftables: transaction refused: %w", errors.Join(errs...))
	}
	return nil
}

func nftAppendMsg(buf []byte, typ, flags uint16, seq uint32, data []byte) []byte {
	buf = binary.NativeEndian.AppendUint32(buf, uint32(unix.SizeofNlMsghdr+len(data)))
	buf = binary.NativeEndian.AppendUint16(buf, typ)
	buf = binary.NativeEndian.AppendUint16(buf, flags)
	buf = binary.NativeEndian.AppendUint32(buf, seq)
	buf = binary.NativeEndian.AppendUint32(buf, 0) // port id: the kernel's
	buf = append(buf, data...)
	for len(buf)%4 != 0 {
		buf = append(buf, 0)
	}
	return buf
}

// nftExtAckMsg returns the kernel's explanation of an error
// (NLMSGERR_ATTR_MSG), if any: with NETLINK_CAP_ACK its attributes follow
// the header of the failed message.
func nftExtAckMsg(m syscall.NetlinkMessage, orig []byte) string {
	if m.Header.Flags&unix.NLM_F_ACK_TLVS == 0 || len(orig) < unix.SizeofNlMsghdr {
		return ""
	}
	ad, err := netlink.NewAttributeDecoder(orig[unix.SizeofNlMsghdr:])
	if err != nil {
		return ""
	}
	for ad.Next() {
		if ad.Type() == unix.NLMSGERR_ATTR_MSG {
			return ad.String()
		}
	}
	return ""
}

func nftMsgName(typ uint16) string {
	switch typ & 0xff {
	case unix.NFT_MSG_NEWTABLE:
		return "new table"
	case unix.NFT_MSG_DELTABLE:
		return "delete table"
	case unix.NFT_MSG_NEWCHAIN:
		return "new chain"
	case unix.NFT_MSG_DELCHAIN:
		return "delete chain"
	case unix.NFT_MSG_NEWRULE:
		return "new rule"
	case unix.NFT_MSG_DELRULE:
		return "delete rules"
	case unix.NFT_MSG_NEWSET:
		return "new map"
	case unix.NFT_MSG_NEWSETELEM:
		return "add elements"
	case unix.NFT_MSG_DELSETELEM:
		return "delete elements"
	}
	return fmt.Sprintf("message type %d", typ&0xff)
}

// Read implements Backend: the virtual servers of the haa_lvs table, from
// its maps (services and fwmarks: key, chain and scheduler; targets_*:
// real servers and weights).
func (n *Backend) Read(ctx context.Context) (lvs.State, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, errors.New("nftables: backend closed")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	snap, err := n.readLocked()
	return snap.state, err
}

// nftSnapshot is what is programmed, as read from the kernel.
type nftSnapshot struct {
	state  lvs.State
	nums   map[lvs.Key]uint32
	groups map[uint32]bool
	table  bool
}

func (n *Backend) readLocked() (nftSnapshot, error) {
	snap := nftSnapshot{state: lvs.State{}, nums: map[lvs.Key]uint32{}, groups: map[uint32]bool{}}
	fail := func(err error) (nftSnapshot, error) { return nftSnapshot{}, fmt.Errorf("nftables: %w", err) }
	tables, err := n.read.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return fail(fmt.Errorf("list tables: %w", err))
	}
	if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == nftTableName }) {
		return snap, nil
	}
	snap.table = true
	byNum := map[uint32]*lvs.VirtualServer{}
	for _, name := range []string{nftServicesM, nftFWMarksM} {
		elems, err := n.read.GetSetElements(nftSetRef(name))
		if err != nil {
			return fail(fmt.Errorf("read map %s: %w", name, err))
		}
		for _, e := range elems {
			k, err := nftParseServiceKey(name, e.Key)
			if err != nil {
				return fail(err)
			}
			chain, err := nftParseJump(e.Val)
			if err != nil {
				return fail(fmt.Errorf("map %s, %s: %w", name, k, err))
			}
			num, err := strconv.ParseUint(strings.TrimPrefix(chain, nftChainVS), 10, 32)
			if err != nil || !strings.HasPrefix(chain, nftChainVS) {
				return fail(fmt.Errorf("map %s, %s: jump to unexpected chain %q", name, k, chain))
			}
			svc, err := nftParseComment(k, e.Comment)
			if err != nil {
				return fail(fmt.Errorf("map %s, %s: %w", name, k, err))
			}
			vs := &lvs.VirtualServer{Service: svc, Dests: map[netip.AddrPort]lvs.DestAttrs{}}
			snap.state[k] = vs
			snap.nums[k] = uint32(num)
			byNum[uint32(num)] = vs
		}
	}
	sets, err := n.read.GetSets(nftTable)
	if err != nil {
		return fail(fmt.Errorf("list maps: %w", err))
	}
	for _, s := range sets {
		g, err := strconv.ParseUint(strings.TrimPrefix(s.Name, nftTargetsM), 10, 32)
		if err != nil || !strings.HasPrefix(s.Name, nftTargetsM) {
			continue
		}
		snap.groups[uint32(g)] = true
		elems, err := n.read.GetSetElements(nftSetRef(s.Name))
		if err != nil {
			return fail(fmt.Errorf("read map %s: %w", s.Name, err))
		}
		for _, e := range elems {
			num, addr, w, err := nftParseTarget(e)
			if err != nil {
				return fail(fmt.Errorf("map %s: %w", s.Name, err))
			}
			vs := byNum[num]
			if vs == nil || num/nftGroupSize != uint32(g) {
				return fail(fmt.Errorf("map %s: real server %s of %s%d, a chain no service jumps to", s.Name, addr, nftChainVS, num))
			}
			vs.Dests[addr] = lvs.DestAttrs{Weight: w, Forwarding: vs.Forwarding}
		}
	}
	return snap, nil
}

func nftParseTarget(e nftables.SetElement) (num uint32, addr netip.AddrPort, weight int, err error) {
	if len(e.Key) != 8 || len(e.Val) != 12 {
		return 0, addr, 0, fmt.Errorf("element of %d+%d bytes", len(e.Key), len(e.Val))
	}
	addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte(e.Val[:4])), binary.BigEndian.Uint16(e.Val[4:]))
	return binary.NativeEndian.Uint32(e.Key), addr, int(binary.NativeEndian.Uint32(e.Val[8:])), nil
}

func nftParseServiceKey(m string, b []byte) (lvs.Key, error) {
	if m == nftFWMarksM {
		if len(b) != 4 {
			return lvs.Key{}, fmt.Errorf("map %s: key of %d bytes", m, len(b))
		}
		return lvs.Key{FWMark: binary.NativeEndian.Uint32(b)}, nil
	}
	if len(b) != 12 {
		return lvs.Key{}, fmt.Errorf("map %s: key of %d bytes", m, len(b))
	}
	return lvs.Key{
		Addr:  netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), binary.BigEndian.Uint16(b[8:])),
		Proto: lvs.Protocol(b[4]),
	}, nil
}

// nftParseJump returns the chain of a "jump" verdict element value (the
// library hands the nested verdict attributes over undecoded).
func nftParseJump(b []byte) (string, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return "", err
	}
	ad.ByteOrder = binary.BigEndian
	var code uint32
	var chain string
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_VERDICT_CODE:
			code = ad.Uint32()
		case unix.NFTA_VERDICT_CHAIN:
			chain = ad.String()
		}
	}
	if err := ad.Err(); err != nil {
		return "", err
	}
	if int32(code) != unix.NFT_JUMP || chain == "" {
		return "", fmt.Errorf("verdict %d %q, want a jump", int32(code), chain)
	}
	return chain, nil
}

// Close implements Backend: it releases the netlink sockets; what is
// programmed stays.
func (n *Backend) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	var errs []error
	if n.read != nil {
		errs = append(errs, n.read.CloseLasting())
	}
	if n.sock != nil {
		errs = append(errs, n.sock.Close())
		n.sock, n.raw = nil, nil
	}
	n.closeFD()
	return errors.Join(errs...)
}

func (n *Backend) closeFD() {
	if n.netns >= 0 {
		_ = unix.Close(n.netns)
		n.netns = -1
	}
}
