package ipvs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/haa-dev/haa/node/lvs"

	"github.com/moby/ipvs"
)

// ProcFile exists when the kernel has IPVS (the ip_vs module loaded or
// built in).
const ProcFile = "/proc/net/ip_vs"

// ipvsSvcPersistent is IP_VS_SVC_F_PERSISTENT (include/uapi/linux/ip_vs.h).
// The kernel adds others when read back (IP_VS_SVC_F_HASHED): only this one
// means anything to the model.
const ipvsSvcPersistent = 0x0001

// ipvsSvcHashed is IP_VS_SVC_F_HASHED: the kernel sets it on every service
// it holds.
const ipvsSvcHashed = 0x0002

// handle is what the backend needs of the kernel's IPVS table: moby/ipvs's
// Handle, or a fake kernel in tests. Errors of the kernel are
// syscall.Errno (EEXIST; ESRCH for a missing service, ENOENT for a missing
// destination).
type handle interface {
	NewService(*ipvs.Service) error
	UpdateService(*ipvs.Service) error
	DelService(*ipvs.Service) error
	GetService(*ipvs.Service) (*ipvs.Service, error)
	GetServices() ([]*ipvs.Service, error)
	NewDestination(*ipvs.Service, *ipvs.Destination) error
	UpdateDestination(*ipvs.Service, *ipvs.Destination) error
	DelDestination(*ipvs.Service, *ipvs.Destination) error
	GetDestinations(*ipvs.Service) ([]*ipvs.Destination, error)
	Flush() error
	Close()
}

// Backend programs virtual servers into the kernel's IPVS table through its
// generic netlink family (github.com/moby/ipvs). It implements lvs.Backend and
// Counter. Every method is safe for concurrent use: the calls share one
// netlink socket and are serialised.
//
// It owns what the model says of a service and a destination, and nothing
// else: an update carries what the kernel holds that haad does not set (a
// service's scheduler flags and persistence engine; a destination's
// thresholds when haad sets none), read from the kernel first.
type Backend struct {
	log *slog.Logger
	mu  sync.Mutex
	h   handle
	// w sends runs of adds and deletes in batches (nil: one by one
	// through h).
	w cmdRunner
	// fwd remembers the forwarding method of services this backend
	// programmed: IPVS keeps it per destination, so a service without
	// destinations would otherwise read back as nat.
	fwd map[lvs.Key]lvs.Forwarding
}

// Option configures New.
type Option func(*ipvsConfig)

type ipvsConfig struct {
	netns string
	log   *slog.Logger
}

// WithLogger logs what the backend decides on its own (a service found
// in the table and taken over) to l.
func WithLogger(l *slog.Logger) Option {
	return func(c *ipvsConfig) { c.log = l }
}

// WithNetNS programs the IPVS table of the network namespace at path
// (for example /var/run/netns/NAME) instead of the caller's.
func WithNetNS(path string) Option {
	return func(c *ipvsConfig) { c.netns = path }
}

// New opens the kernel's IPVS table. It fails when the kernel has no
// IPVS (ProcFile missing), saying what to do about it.
func New(opts ...Option) (*Backend, error) {
	var c ipvsConfig
	for _, o := range opts {
		o(&c)
	}
	if _, err := os.Stat(ProcFile); err != nil {
		return nil, fmt.Errorf("the kernel has no IPVS (%s missing): load the ip_vs module (modprobe ip_vs) or use the nftables backend", ProcFile)
	}
	h, err := ipvs.New(c.netns)
	if err != nil {
		if c.netns != "" {
			return nil, fmt.Errorf("opening IPVS in the network namespace %s: %w", c.netns, err)
		}
		return nil, fmt.Errorf("opening IPVS: %w", err)
	}
	w, err := newWriter(c.netns)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("opening IPVS: %w", err)
	}
	b := newBackend(h, c.log)
	b.w = w
	return b, nil
}

// cmdRunner carries out write commands in batches (writer.run).
type cmdRunner interface {
	run([]cmd) ([]error, error)
	close() error
}

// newBackend is a backend over h (a fake kernel in tests) that logs to l
// (nil: nowhere).
func newBackend(h handle, l *slog.Logger) *Backend {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &Backend{log: l, h: h, fwd: map[lvs.Key]lvs.Forwarding{}}
}

// Name returns "ipvs".
func (*Backend) Name() string { return "ipvs" }

// Supports accepts every service of the model: all schedulers of
// Schedulers, every forwarding method, persistence, IPv4 and IPv6. It only
// refuses what the model itself forbids (an unknown scheduler, a key that is
// neither an address nor a mark, an out-of-range prefix).
func (*Backend) Supports(s lvs.Service) error {
	if !slices.Contains(lvs.Schedulers, s.Scheduler) {
		return fmt.Errorf("scheduler %q is unknown: use one of %v", s.Scheduler, lvs.Schedulers)
	}
	if err := ipvsCheckKey(s.Key); err != nil {
		return err
	}
	switch s.Forwarding {
	case lvs.NAT, lvs.DirectRoute, lvs.Tunnel:
	default:
		return fmt.Errorf("forwarding %s is unknown: use nat, dr or tunnel", s.Forwarding)
	}
	if s.Persistence < 0 {
		return fmt.Errorf("persistence %v is negative", s.Persistence)
	}
	if s.Persistence > 0 && s.Persistence/time.Second > time.Duration(^uint32(0)) {
		return fmt.Errorf("persistence %v is too long for IPVS", s.Persistence)
	}
	bits := 32
	if s.Key.Is6() {
		bits = 128
	}
	if s.PersistPrefix < 0 || s.PersistPrefix > bits {
		return fmt.Errorf("persistence prefix /%d: use 1..%d (0: a whole address)", s.PersistPrefix, bits)
	}
	return nil
}

func ipvsCheckKey(k lvs.Key) error {
	if k.FWMark != 0 {
		if k.Addr.IsValid() || k.Proto != 0 {
			return fmt.Errorf("virtual server %s: a fwmark service has no address nor protocol", k)
		}
		return nil
	}
	if !k.Addr.IsValid() || k.Addr.Addr().Is4In6() {
		return fmt.Errorf("virtual server %s: no valid address", k)
	}
	switch k.Proto {
	case lvs.TCP, lvs.UDP, lvs.SCTP:
	default:
		return fmt.Errorf("virtual server %s: protocol %s is not tcp, udp or sctp", k, k.Proto)
	}
	return nil
}

// Apply carries out p op by op, in order. It stops at the first error,
// which names the operation; the programmed state is then what Read says.
// Deleting a service deletes its destinations (the kernel does). IPVS
// keeps the forwarding method per destination: each destination is
// programmed with its own (lvs.DestAttrs.Forwarding), so a service whose
// method changes needs an UpdateDest for each (lvs.Diff makes them).
//
// Like keepalived (ipvswrapper.c ipvs_talk), it takes the kernel as it
// finds it rather than failing on it: a service to add that the kernel
// already holds (left by a haad that crashed, or added by hand) is taken
// over in the same pass, as the plan would have built it (lvs.Adopt: its
// settings updated, destinations the plan does not add removed, the
// others updated or added); a destination to add that exists is updated;
// one to update that is missing is added; what is to be deleted and is
// already gone is done.
func (b *Backend) Apply(ctx context.Context, p lvs.Plan) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h == nil {
		return errors.New("ipvs: backend closed")
	}
	a := &applier{b: b}
	one := func(i int) error {
		op := p[i]
		if op.Kind == lvs.AddDest && a.adopted[op.Service.Key] {
			return nil // programmed when its service was taken over
		}
		err := a.apply(op)
		if op.Kind == lvs.AddService && errors.Is(err, syscall.EEXIST) {
			err = a.adopt(op, p[i+1:])
		}
		if err != nil {
			return fmt.Errorf("ipvs: %s: %w", op, err)
		}
		return nil
	}
	for i := 0; i < len(p); {
		if err := ctx.Err(); err != nil {
			return err
		}
		j := i
		for b.w != nil && j < len(p) && batched(p[j].Kind) {
			j++
		}
		if j-i < 2 {
			if err := one(i); err != nil {
				return err
			}
			i++
			continue
		}
		// A run of adds and deletes goes to the kernel in batches; what
		// fails there (a service that exists, a destination already
		// gone...) is done again one by one, as above, which handles
		// those cases or says what went wrong.
		failed, err := a.batch(p[i:j])
		if err != nil {
			return err
		}
		for _, k := range failed {
			if err := one(i + k); err != nil {
				return err
			}
		}
		i = j
	}
	return nil
}

// gone says that what was to be deleted is not there: the kernel answers
// ESRCH for a service it does not hold, ENOENT for a destination.
func gone(err error) bool { return errors.Is(err, syscall.ESRCH) || errors.Is(err, syscall.ENOENT) }

// batched says which operations Apply sends in batches: those that need
// nothing read from the kernel first.
func batched(k lvs.OpKind) bool {
	switch k {
	case lvs.AddService, lvs.DeleteService, lvs.AddDest, lvs.DeleteDest:
		return true
	}
	return false
}

// batch sends ops (batched kinds only) through the writer and returns the
// indexes of those the kernel refused. An error is the socket's own: what
// became of the ops is unknown (Read says).
func (a *applier) batch(ops lvs.Plan) (failed []int, err error) {
	b := a.b
	cmds := make([]cmd, len(ops))
	for i, op := range ops {
		svc, err := toIPVSService(op.Service)
		if err != nil {
			return nil, fmt.Errorf("ipvs: %s: %w", op, err)
		}
		cmds[i].svc = svc
		switch op.Kind {
		case lvs.AddService:
			cmds[i].cmd = ipvsCmdNewService
		case lvs.DeleteService:
			cmds[i].cmd = ipvsCmdDelService
		default:
			d, err := toIPVSDest(op.Service, op.Dest)
			if err != nil {
				return nil, fmt.Errorf("ipvs: %s: %w", op, err)
			}
			cmds[i].dest = d
			cmds[i].cmd = ipvsCmdNewDest
			if op.Kind == lvs.DeleteDest {
				cmds[i].cmd = ipvsCmdDelDest
			}
		}
	}
	errs, err := b.w.run(cmds)
	if err != nil {
		return nil, fmt.Errorf("ipvs: %d operations sent in batches: %w", len(ops), err)
	}
	for i, e := range errs {
		if e != nil {
			failed = append(failed, i)
			continue
		}
		switch k := ops[i].Service.Key; ops[i].Kind {
		case lvs.AddService:
			b.fwd[k] = ops[i].Service.Forwarding
		case lvs.DeleteService:
			delete(b.fwd, k)
			delete(a.kept, k)
		}
	}
	return failed, nil
}

// applier carries out one plan.
type applier struct {
	b *Backend
	// kept are the destinations of services as the kernel held them when
	// an update first needed them (read once per service and plan): what
	// an update carries that haad does not set.
	kept map[lvs.Key]map[netip.AddrPort]*ipvs.Destination
	// adds are the plan's AddDest ops by service, indexed at the first
	// service taken over; adopted are the services taken over, whose
	// AddDest ops are done.
	adds    map[lvs.Key][]lvs.Dest
	adopted map[lvs.Key]bool
}

// adopt takes over the service of op (an AddService) that the kernel
// holds already: it programs what turns it into what the plan builds, rest
// being the ops after op.
func (a *applier) adopt(op lvs.Op, rest lvs.Plan) error {
	b := a.b
	k := op.Service.Key
	svc, err := toIPVSService(op.Service)
	if err != nil {
		return err
	}
	cur, err := b.h.GetService(svc)
	if err != nil {
		return fmt.Errorf("the kernel holds it already, and reading it: %w", err)
	}
	dests, err := b.h.GetDestinations(svc)
	if err != nil {
		return fmt.Errorf("the kernel holds it already, and reading its destinations: %w", err)
	}
	have, err := fromIPVS(cur, dests)
	if err != nil {
		return fmt.Errorf("the kernel holds it already, as something haad cannot express: %w", err)
	}
	if a.adds == nil {
		a.adds = map[lvs.Key][]lvs.Dest{}
		for _, o := range rest {
			if o.Kind == lvs.AddDest {
				a.adds[o.Service.Key] = append(a.adds[o.Service.Key], o.Dest)
			}
		}
		a.adopted = map[lvs.Key]bool{}
	}
	fix := lvs.Adopt(have, op.Service, a.adds[k])
	a.adopted[k] = true
	b.fwd[k] = op.Service.Forwarding
	for _, f := range fix {
		if err := a.apply(f); err != nil {
			return fmt.Errorf("the kernel holds it already, and taking it over: %s: %w", f, err)
		}
	}
	b.log.Info("virtual server already in the IPVS table: taken over and adjusted", "virtual_server", k.String(),
		"destinations_before", len(have.Dests), "changes", len(fix))
	return nil
}

func (a *applier) apply(op lvs.Op) error {
	b := a.b
	svc, err := toIPVSService(op.Service)
	if err != nil {
		return err
	}
	switch op.Kind {
	case lvs.AddService:
		if err := b.h.NewService(svc); err != nil {
			return err
		}
		b.fwd[op.Service.Key] = op.Service.Forwarding
	case lvs.UpdateService:
		if err := a.carryService(svc); err != nil {
			return err
		}
		if err := b.h.UpdateService(svc); err != nil {
			return err
		}
		b.fwd[op.Service.Key] = op.Service.Forwarding
	case lvs.DeleteService:
		if err := b.h.DelService(svc); err != nil && !gone(err) {
			return err
		}
		delete(b.fwd, op.Service.Key)
		delete(a.kept, op.Service.Key)
	case lvs.AddDest, lvs.UpdateDest, lvs.DeleteDest:
		d, err := toIPVSDest(op.Service, op.Dest)
		if err != nil {
			return err
		}
		switch op.Kind {
		case lvs.AddDest:
			err := b.h.NewDestination(svc, d)
			if !errors.Is(err, syscall.EEXIST) {
				return err
			}
			if err := a.carryDest(op, svc, d); err != nil {
				return err
			}
			return b.h.UpdateDestination(svc, d)
		case lvs.UpdateDest:
			if err := a.carryDest(op, svc, d); err != nil {
				return err
			}
			err := b.h.UpdateDestination(svc, d)
			if errors.Is(err, syscall.ENOENT) && b.h.NewDestination(svc, d) == nil {
				return nil
			}
			return err
		default:
			if err := b.h.DelDestination(svc, d); err != nil && !gone(err) {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown operation %d", op.Kind)
	}
	return nil
}

// carryService gives an update of svc what the kernel's service holds
// and the model does not say: its scheduler and one-packet flags and its
// persistence engine (moby/ipvs sends every field: left out, they would be
// cleared).
func (a *applier) carryService(svc *ipvs.Service) error {
	cur, err := a.b.h.GetService(svc)
	if err != nil {
		return fmt.Errorf("reading it first: %w", err)
	}
	svc.Flags |= cur.Flags &^ (ipvsSvcPersistent | ipvsSvcHashed)
	if svc.Flags&ipvsSvcPersistent != 0 {
		svc.PEName = cur.PEName
	}
	return nil
}

// carryDest gives an update of destination d the thresholds the kernel
// holds when haad sets none (moby/ipvs sends both: left out, they would be
// set to 0).
func (a *applier) carryDest(op lvs.Op, svc *ipvs.Service, d *ipvs.Destination) error {
	if op.Dest.Thresholds.Set {
		return nil
	}
	k := op.Service.Key
	held, ok := a.kept[k]
	if !ok {
		dests, err := a.b.h.GetDestinations(svc)
		if err != nil {
			return fmt.Errorf("reading its destinations first: %w", err)
		}
		held = make(map[netip.AddrPort]*ipvs.Destination, len(dests))
		for _, kd := range dests {
			if ap, err := fromIPVSDestAddr(kd); err == nil {
				held[ap] = kd
			}
		}
		if a.kept == nil {
			a.kept = map[lvs.Key]map[netip.AddrPort]*ipvs.Destination{}
		}
		a.kept[k] = held
	}
	if kd := held[netip.AddrPortFrom(op.Dest.Addr.Addr().Unmap(), op.Dest.Addr.Port())]; kd != nil {
		d.UpperThreshold, d.LowerThreshold = kd.UpperThreshold, kd.LowerThreshold
	}
	return nil
}

// Read returns every service of the kernel's IPVS table (in its namespace)
// with its destinations, whoever programmed them: the caller keeps the ones
// it owns. Each destination has its own forwarding method and thresholds
// (not haad's: Thresholds.Set is false). A service's forwarding method is
// the one this backend programmed, else its destinations' (the first by
// address when they differ), else nat. Services the model cannot express
// (an unknown protocol or address family) are left out.
func (b *Backend) Read(ctx context.Context) (lvs.State, error) {
	st := lvs.State{}
	err := b.each(ctx, func(s *ipvs.Service, k lvs.Key, dests []*ipvs.Destination) error {
		vs, err := fromIPVS(s, dests)
		if err != nil {
			return nil // not expressible in the model: not ours
		}
		if f, ok := b.fwd[k]; ok {
			vs.Forwarding = f
		}
		st[vs.Key] = vs
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// Conns returns the active and inactive connection counts of every
// destination of every service in the table.
func (b *Backend) Conns(ctx context.Context) (map[lvs.Key]map[netip.AddrPort]lvs.Conns, error) {
	out := map[lvs.Key]map[netip.AddrPort]lvs.Conns{}
	err := b.each(ctx, func(s *ipvs.Service, k lvs.Key, dests []*ipvs.Destination) error {
		m := map[netip.AddrPort]lvs.Conns{}
		for _, d := range dests {
			ap, err := fromIPVSDestAddr(d)
			if err != nil {
				continue
			}
			m[ap] = lvs.Conns{Active: uint64(max(0, d.ActiveConnections)), Inactive: uint64(max(0, d.InactiveConnections))}
		}
		out[k] = m
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// each calls fn for every service the model can key, with its
// destinations, holding the lock.
func (b *Backend) each(ctx context.Context, fn func(s *ipvs.Service, k lvs.Key, dests []*ipvs.Destination) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h == nil {
		return errors.New("ipvs: backend closed")
	}
	svcs, err := b.h.GetServices()
	if err != nil {
		return fmt.Errorf("ipvs: listing services: %w", err)
	}
	for _, s := range svcs {
		if err := ctx.Err(); err != nil {
			return err
		}
		k, err := fromIPVSKey(s)
		if err != nil {
			continue
		}
		dests, err := b.h.GetDestinations(s)
		if err != nil {
			return fmt.Errorf("ipvs: listing the real servers of %s: %w", k, err)
		}
		if err := fn(s, k, dests); err != nil {
			return err
		}
	}
	return nil
}

// Flush empties the kernel's IPVS table (in its namespace): every
// service, whoever programmed it (keepalived's lvs_flush).
func (b *Backend) Flush(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h == nil {
		return errors.New("ipvs: backend closed")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.h.Flush(); err != nil {
		return fmt.Errorf("ipvs: emptying the table: %w", err)
	}
	clear(b.fwd)
	return nil
}

// Close releases the netlink socket; the programmed services stay.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h != nil {
		b.h.Close()
		b.h = nil
	}
	if b.w != nil {
		b.w.close()
		b.w = nil
	}
	return nil
}

// family is the address family of a key (AF_INET or AF_INET6).
func ipvsFamily(k lvs.Key) uint16 {
	if k.Is6() {
		return syscall.AF_INET6
	}
	return syscall.AF_INET
}

// toIPVSService converts a service for the netlink calls. Persistence is
// rounded up to whole seconds (IPVS counts in seconds). The netmask is the
// persistence granularity: for IPv4 a mask in network byte order (what the
// kernel's __be32 field holds; moby/ipvs writes Netmask in host order, so
// the value is the mask's bytes read in host order), for IPv6 a prefix
// length; the whole address (/32, /128) when PersistPrefix is 0. The
// kernel refuses IPv6 services whose netmask is not 1..128 even without
// persistence.
func toIPVSService(s lvs.Service) (*ipvs.Service, error) {
	if err := ipvsCheckKey(s.Key); err != nil {
		return nil, err
	}
	v6 := s.Key.Is6()
	out := &ipvs.Service{
		AddressFamily: ipvsFamily(s.Key),
		SchedName:     s.Scheduler,
	}
	if s.Key.FWMark != 0 {
		out.FWMark = s.Key.FWMark
	} else {
		out.Address = net.IP(s.Key.Addr.Addr().AsSlice())
		out.Port = s.Key.Addr.Port()
		out.Protocol = uint16(s.Key.Proto)
	}
	bits := 32
	if v6 {
		bits = 128
	}
	prefix := bits
	if s.Persistence > 0 {
		secs := (s.Persistence + time.Second - 1) / time.Second
		if secs > time.Duration(^uint32(0)) {
			return nil, fmt.Errorf("persistence %v is too long for IPVS", s.Persistence)
		}
		out.Flags = ipvsSvcPersistent
		out.Timeout = uint32(secs)
		if s.PersistPrefix != 0 {
			prefix = s.PersistPrefix
		}
	}
	if prefix < 1 || prefix > bits {
		return nil, fmt.Errorf("persistence prefix /%d: use 1..%d", prefix, bits)
	}
	if v6 {
		out.Netmask = uint32(prefix)
	} else {
		var mask [4]byte
		binary.BigEndian.PutUint32(mask[:], ^uint32(0)<<(32-prefix))
		out.Netmask = binary.NativeEndian.Uint32(mask[:])
	}
	return out, nil
}

// toIPVSFlags is the destination connection flags of a forwarding method.
func toIPVSFlags(f lvs.Forwarding) uint32 {
	switch f {
	case lvs.DirectRoute:
		return ipvs.ConnectionFlagDirectRoute
	case lvs.Tunnel:
		return ipvs.ConnectionFlagTunnel
	}
	return ipvs.ConnectionFlagMasq
}

// fromIPVSFlags is the forwarding method of destination connection flags:
// masquerading (and the old kernels' local-node) is nat.
func fromIPVSFlags(flags uint32) lvs.Forwarding {
	switch flags & ipvs.ConnectionFlagFwdMask {
	case ipvs.ConnectionFlagDirectRoute:
		return lvs.DirectRoute
	case ipvs.ConnectionFlagTunnel:
		return lvs.Tunnel
	}
	return lvs.NAT
}

// toIPVSDest converts a destination of service s. Its address family must
// be the service's: moby/ipvs does not send a destination family, so the
// kernel takes the service's.
func toIPVSDest(s lvs.Service, d lvs.Dest) (*ipvs.Destination, error) {
	if !d.Addr.IsValid() {
		return nil, errors.New("real server without an address")
	}
	a := d.Addr.Addr().Unmap()
	if a.Is6() != s.Key.Is6() {
		return nil, fmt.Errorf("real server %s is not of the virtual server's address family", d.Addr)
	}
	if d.Weight < 0 || d.Weight > 65535 {
		return nil, fmt.Errorf("real server %s: weight %d outside 0..65535", d.Addr, d.Weight)
	}
	return &ipvs.Destination{
		Address:         net.IP(a.AsSlice()),
		Port:            d.Addr.Port(),
		Weight:          d.Weight,
		ConnectionFlags: toIPVSFlags(d.Forwarding),
		AddressFamily:   ipvsFamily(s.Key),
		UpperThreshold:  d.Thresholds.Upper,
		LowerThreshold:  d.Thresholds.Lower,
	}, nil
}

// ipFromIPVS converts a netlink address of the given family.
func ipFromIPVS(ip net.IP, fam uint16) (netip.Addr, error) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}, fmt.Errorf("bad address %v", ip)
	}
	switch fam {
	case syscall.AF_INET:
		a = a.Unmap()
		if !a.Is4() {
			return netip.Addr{}, fmt.Errorf("address %v is not IPv4", ip)
		}
	case syscall.AF_INET6:
		if !a.Is6() {
			a = netip.AddrFrom16(a.As16())
		}
	default:
		return netip.Addr{}, fmt.Errorf("address family %d", fam)
	}
	return a, nil
}

// fromIPVSKey is the model's key of a kernel service.
func fromIPVSKey(s *ipvs.Service) (lvs.Key, error) {
	if s.AddressFamily != syscall.AF_INET && s.AddressFamily != syscall.AF_INET6 {
		return lvs.Key{}, fmt.Errorf("address family %d", s.AddressFamily)
	}
	if s.FWMark != 0 {
		return lvs.Key{FWMark: s.FWMark, V6: s.AddressFamily == syscall.AF_INET6}, nil
	}
	a, err := ipFromIPVS(s.Address, s.AddressFamily)
	if err != nil {
		return lvs.Key{}, err
	}
	p := lvs.Protocol(s.Protocol)
	if s.Protocol > 255 || (p != lvs.TCP && p != lvs.UDP && p != lvs.SCTP) {
		return lvs.Key{}, fmt.Errorf("protocol %d", s.Protocol)
	}
	return lvs.Key{Addr: netip.AddrPortFrom(a, s.Port), Proto: p}, nil
}

// fromIPVSService is the model's service of a kernel one; forwarding is
// left nat (IPVS keeps it per destination: see fromIPVS). PersistPrefix
// reads back as the netmask's length, the whole address (/32, /128)
// included; 0 without persistence.
func fromIPVSService(s *ipvs.Service) (lvs.Service, error) {
	k, err := fromIPVSKey(s)
	if err != nil {
		return lvs.Service{}, err
	}
	out := lvs.Service{Key: k, Scheduler: s.SchedName, Forwarding: lvs.NAT}
	if s.Flags&ipvsSvcPersistent != 0 {
		out.Persistence = time.Duration(s.Timeout) * time.Second
		if k.Is6() {
			out.PersistPrefix = int(s.Netmask)
		} else {
			var mask [4]byte
			binary.NativeEndian.PutUint32(mask[:], s.Netmask)
			m := binary.BigEndian.Uint32(mask[:])
			ones := 0
			for m&(1<<31) != 0 {
				ones++
				m <<= 1
			}
			out.PersistPrefix = ones
		}
	}
	return out, nil
}

// fromIPVSDestAddr is a destination's address and port.
func fromIPVSDestAddr(d *ipvs.Destination) (netip.AddrPort, error) {
	a, err := ipFromIPVS(d.Address, d.AddressFamily)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(a, d.Port), nil
}

// fromIPVS is the model's virtual server of a kernel service and its
// destinations, each with its own forwarding method and thresholds. The
// service's forwarding method is the destinations' (the first by address
// when they differ), nat without destinations.
func fromIPVS(s *ipvs.Service, dests []*ipvs.Destination) (*lvs.VirtualServer, error) {
	svc, err := fromIPVSService(s)
	if err != nil {
		return nil, err
	}
	vs := &lvs.VirtualServer{Service: svc, Dests: make(map[netip.AddrPort]lvs.DestAttrs, len(dests))}
	var first netip.AddrPort
	for _, d := range dests {
		ap, err := fromIPVSDestAddr(d)
		if err != nil {
			return nil, fmt.Errorf("real server of %s: %w", svc.Key, err)
		}
		fwd := fromIPVSFlags(d.ConnectionFlags)
		vs.Dests[ap] = lvs.DestAttrs{Weight: d.Weight, Forwarding: fwd,
			Thresholds: lvs.Thresholds{Upper: d.UpperThreshold, Lower: d.LowerThreshold}}
		if !first.IsValid() || ap.Compare(first) < 0 {
			first = ap
			vs.Forwarding = fwd
		}
	}
	return vs, nil
}

var (
	_ lvs.Backend = (*Backend)(nil)
	_ lvs.Counter = (*Backend)(nil)
	_ lvs.Flusher = (*Backend)(nil)
)
