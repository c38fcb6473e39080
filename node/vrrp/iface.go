package vrrp

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Reader is the receive side of a VRRP socket: one whole IP packet per
// read, with its arrival time.
type Reader interface {
	ReadPacket(b []byte) (int, time.Time, error)
}

// Lane is a second receive path of an interface that carries only the
// packets of chosen sources (a kernel filter on a socket of its own): a
// flood from anyone else fills the main socket's buffer, never the lane's.
type Lane interface {
	Reader
	// SetSources replaces the sources the lane carries.
	SetSources(srcs []netip.Addr) error
}

// Iface demultiplexes the packets of one interface's socket to the
// instances on that interface, by VRID. Packets that cannot be attributed
// to an instance are counted on the Iface.
//
// With a lane (ServeLane), the adverts of the masters the instances follow
// and of their unicast peers come through the lane, and the main socket's
// copies are skipped: however hard a third node floods the interface,
// those adverts never wait behind its packets or get lost with them.
type Iface struct {
	name string
	log  *slog.Logger

	mu      sync.Mutex                   // serialises Add, Remove and the lane's sources
	runners atomic.Pointer[[256]*Runner] // by VRID; replaced, never changed: read without a lock

	lane     Lane
	laneSrcs atomic.Pointer[[]netip.Addr] // the sources the lane carries; nil: no lane
	// laneSince is when the lane last took its sources: a main-socket
	// packet of a lane source that arrived before was queued there before
	// the kernel filters moved it (the lane never saw it), and is handled.
	laneSince atomic.Pointer[time.Time]

	stats Stats
}

// NewIface returns a demultiplexer for the named interface.
func NewIface(name string, log *slog.Logger) *Iface {
	if log == nil {
		log = slog.Default()
	}
	i := &Iface{name: name, log: log.With("iface", name)}
	i.runners.Store(new([256]*Runner))
	return i
}

// Stats counts the packets dropped before an instance was known.
func (i *Iface) Stats() *Stats { return &i.stats }

// Add attaches a runner; its VRID must be free on the interface.
func (i *Iface) Add(r *Runner) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	rs := *i.runners.Load()
	if rs[r.rc.VRID] != nil {
		return fmt.Errorf("vrid %d already runs on %s", r.rc.VRID, i.name)
	}
	rs[r.rc.VRID] = r
	i.runners.Store(&rs)
	hook := i.refreshLane
	r.onFollow.Store(&hook)
	i.refreshLaneLocked()
	return nil
}

// Remove detaches the runner of a VRID.
func (i *Iface) Remove(vrid uint8) {
	i.mu.Lock()
	defer i.mu.Unlock()
	rs := *i.runners.Load()
	if r := rs[vrid]; r != nil {
		r.onFollow.Store(nil)
	}
	rs[vrid] = nil
	i.runners.Store(&rs)
	i.refreshLaneLocked()
}

// Serve reads packets until the reader is closed.
func (i *Iface) Serve(rd Reader) error { return i.serve(rd, false) }

// ServeLane reads the lane's packets until it is closed. Call it once,
// before the instances' adverts matter (Serve may run already).
func (i *Iface) ServeLane(l Lane) error {
	i.mu.Lock()
	i.lane = l
	i.refreshLaneLocked()
	i.mu.Unlock()
	return i.serve(l, true)
}

// refreshLane gives the lane the sources it must carry now.
func (i *Iface) refreshLane() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.refreshLaneLocked()
}

func (i *Iface) refreshLaneLocked() {
	if i.lane == nil {
		return
	}
	var srcs []netip.Addr
	for _, r := range i.runners.Load() {
		if r == nil {
			continue
		}
		if a := r.Followed(); a.IsValid() && !slices.Contains(srcs, a) {
			srcs = append(srcs, a)
		}
		for _, p := range r.Peers() {
			if !slices.Contains(srcs, p) {
				srcs = append(srcs, p)
			}
		}
	}
	slices.SortFunc(srcs, netip.Addr.Compare)
	if cur := i.laneSrcs.Load(); cur != nil && slices.Equal(*cur, srcs) {
		return
	}
	// The lane first: a packet of a new source may come twice for a
	// moment (harmless), never not at all.
	if err := i.lane.SetSources(srcs); err != nil {
		i.log.Warn("the priority lane cannot carry the masters' adverts: they share the main socket", "err", err)
		i.laneSrcs.Store(nil)
		return
	}
	since := time.Now()
	i.laneSince.Store(&since)
	i.laneSrcs.Store(&srcs)
}

// onLane reports whether src's packets come through the lane, for a
// packet that arrived at at: those the main socket had queued before the
// lane took src are not the lane's.
func (i *Iface) onLane(src netip.Addr, at time.Time) bool {
	p := i.laneSrcs.Load()
	if p == nil || !slices.Contains(*p, src) {
		return false
	}
	since := i.laneSince.Load()
	return since == nil || !at.Before(*since)
}

// overflowCounter is a Reader that knows how many packets its socket's
// full buffer dropped (a uint32 that wraps).
type overflowCounter interface{ Overflows() uint32 }

func (i *Iface) serve(rd Reader, lane bool) error {
	buf := make([]byte, 65536)
	var adv Advert // decoded into, packet after packet: its addresses' room is reused
	oc, _ := rd.(overflowCounter)
	var overflows uint32
	var lastErr time.Time
	for {
		n, at, err := rd.ReadPacket(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || errors.Is(err, io.EOF) {
				return nil
			}
			// A transient error (ENOBUFS, ENETDOWN...) must not stop
			// reception for good: every backup would become master.
			if time.Since(lastErr) > 10*time.Second {
				i.log.Warn("reading VRRP packets failed: retrying", "err", err)
			}
			lastErr = time.Now()
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if oc != nil {
			if o := oc.Overflows(); o != overflows {
				i.stats.DropN(DropSocketFull, uint64(o-overflows))
				overflows = o
			}
		}
		i.handle(buf[:n], at, lane, &adv)
	}
}

// Handle is HandleAt for a packet that arrived now.
func (i *Iface) Handle(pkt []byte) { i.HandleAt(pkt, time.Now()) }

// HandleAt runs the receive checks of RFC 5798 7.1 that need no instance
// state on one IP packet that arrived at at, and delivers the advert to its
// instance. Every discarded packet is counted with its reason.
func (i *Iface) HandleAt(pkt []byte, at time.Time) {
	var a Advert
	i.handle(pkt, at, false, &a)
}

// handle is HandleAt decoding into a, whose contents it overwrites. An
// advert that passes is stepped at once by its runner, on this goroutine,
// and not kept.
func (i *Iface) handle(pkt []byte, at time.Time, lane bool, a *Advert) {
	h, payload, err := parseIP(pkt)
	if err != nil {
		i.drop(nil, err)
		return
	}
	viaAH := false
	switch h.protocol {
	case Protocol:
		if !lane && i.onLane(h.src, at) {
			return // its copy came through the lane
		}
	case ProtocolAH:
		if h.src.Is6() {
			return // keepalived's AH is IPv4's (VRRPv2)
		}
		// The lane carries protocol 112 only: AH adverts come through
		// their own socket, whatever their source.
		msg, ok := SplitAH(payload)
		if !ok {
			return // AH for another protocol: not VRRP's
		}
		payload, viaAH = msg, true
	default:
		return
	}
	var r *Runner
	if len(payload) >= 2 {
		r = i.runners.Load()[payload[1]]
	}
	// An AH instance takes adverts with an AH header only, the others
	// without (as keepalived); the AH header is checked first (a
	// failure says nothing else is to be trusted).
	if r != nil && (r.ah != nil) != viaAH {
		r.drop(at, DropAuthType, func() string {
			if viaAH {
				return fmt.Sprintf("IPsec AH advert from %s, and this instance has no AH", h.src)
			}
			return fmt.Sprintf("advert without IPsec AH from %s, and this instance wants AH", h.src)
		})
		return
	}
	if r != nil && viaAH {
		if err := r.ah.Open(pkt, h.src); err != nil {
			i.drop(r, err)
			return
		}
	}
	// keepalived sends unicast IPv6 adverts with the kernel's default hop
	// limit and checks 255 only for multicast ones: so does haad (an
	// IPv6 unicast instance hears only its peers' unicast adverts).
	if h.ttl != 255 && !(h.src.Is6() && r != nil && r.rc.Unicast && !h.dst.IsMulticast()) {
		if r == nil {
			i.stats.Drop(DropTTL)
			return
		}
		r.drop(at, DropTTL, func() string { return fmt.Sprintf("%s %d from %s", hopName(h.src), h.ttl, h.src) })
		return
	}
	mode := ChecksumRFC
	if r != nil {
		mode = r.rc.Checksum
	}
	if err := a.Unmarshal(payload, h.src, h.dst, mode); err != nil {
		i.drop(r, err)
		return
	}
	if r == nil {
		i.stats.Drop(DropUnknownVRID)
		return
	}
	// Like keepalived: a unicast instance ignores multicast adverts (a
	// neighbouring cluster with the same VRID) and a multicast instance
	// ignores unicast ones.
	if unicast := r.rc.Unicast; unicast == h.dst.IsMulticast() || (!unicast && h.dst != r.rc.Group) {
		r.drop(at, DropDestination, func() string { return fmt.Sprintf("to %s from %s", h.dst, h.src) })
		return
	}
	// Every check the packet alone decides runs before it is queued: a
	// flood of junk never reaches the instance's mailbox. (The version,
	// authentication, interval and addresses of a runner never change:
	// changing them restarts the instance.)
	if reason := Check(&r.rc.Config, h.src, a); reason != DropNone {
		r.dropAdvert(at, reason, a)
		return
	}
	if r.receive(h.src, a, at) {
		return
	}
	// Not running yet: queued for Run (only what is queued goes to the
	// heap).
	delivered := *a
	delivered.Addrs = slices.Clone(a.Addrs)
	r.DeliverAt(h.src, &delivered, at)
}

// hopName names the TTL field of src's family.
func hopName(src netip.Addr) string {
	if src.Is6() {
		return "hop limit"
	}
	return "TTL"
}

func (i *Iface) drop(r *Runner, err error) {
	var de *DropError
	if !errors.As(err, &de) {
		de = &DropError{Reason: DropAddrFamily, Detail: err.Error()}
	}
	if r != nil {
		r.DropPacket(de.Reason, de.Detail)
		return
	}
	i.stats.Drop(de.Reason)
}

// Each calls fn for every attached runner.
func (i *Iface) Each(fn func(*Runner)) {
	for _, r := range i.runners.Load() {
		if r != nil {
			fn(r)
		}
	}
}
