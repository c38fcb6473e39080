package ipvs

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"

	"github.com/moby/ipvs"
)

// fakeKernel is an IPVS table in memory that answers as the kernel does
// (net/netfilter/ipvs/ip_vs_ctl.c: EEXIST for what exists, ESRCH for a
// service that does not, ENOENT for a destination that does not) and counts the calls that change it and those that
// read it.
type fakeKernel struct {
	svcs    []*fakeSvc
	changes []string // the calls that changed the table, in order
	reads   int
	closed  bool
}

type fakeSvc struct {
	s     ipvs.Service
	dests []*ipvs.Destination
}

// fakeSvcKey identifies a service as the kernel does.
func fakeSvcKey(s *ipvs.Service) string {
	if s.FWMark != 0 {
		return fmt.Sprintf("fwm %d/%d", s.FWMark, s.AddressFamily)
	}
	return fmt.Sprintf("%d %s:%d/%d", s.AddressFamily, net.IP(s.Address), s.Port, s.Protocol)
}

func fakeDestKey(d *ipvs.Destination) string {
	return net.JoinHostPort(net.IP(d.Address).String(), fmt.Sprint(d.Port))
}

func (f *fakeKernel) find(s *ipvs.Service) *fakeSvc {
	for _, fs := range f.svcs {
		if fakeSvcKey(&fs.s) == fakeSvcKey(s) {
			return fs
		}
	}
	return nil
}

func (fs *fakeSvc) dest(d *ipvs.Destination) int {
	return slices.IndexFunc(fs.dests, func(x *ipvs.Destination) bool { return fakeDestKey(x) == fakeDestKey(d) })
}

func (f *fakeKernel) NewService(s *ipvs.Service) error {
	if f.find(s) != nil {
		return syscall.EEXIST
	}
	c := *s
	c.Flags |= ipvsSvcHashed
	f.svcs = append(f.svcs, &fakeSvc{s: c})
	f.changes = append(f.changes, "add-service "+fakeSvcKey(s))
	return nil
}

func (f *fakeKernel) UpdateService(s *ipvs.Service) error {
	fs := f.find(s)
	if fs == nil {
		return syscall.ESRCH
	}
	fs.s = *s
	fs.s.Flags |= ipvsSvcHashed
	f.changes = append(f.changes, "update-service "+fakeSvcKey(s))
	return nil
}

func (f *fakeKernel) DelService(s *ipvs.Service) error {
	fs := f.find(s)
	if fs == nil {
		return syscall.ESRCH
	}
	f.svcs = slices.DeleteFunc(f.svcs, func(x *fakeSvc) bool { return x == fs })
	f.changes = append(f.changes, "delete-service "+fakeSvcKey(s))
	return nil
}

func (f *fakeKernel) GetService(s *ipvs.Service) (*ipvs.Service, error) {
	f.reads++
	fs := f.find(s)
	if fs == nil {
		return nil, syscall.ESRCH
	}
	c := fs.s
	return &c, nil
}

func (f *fakeKernel) GetServices() ([]*ipvs.Service, error) {
	f.reads++
	out := make([]*ipvs.Service, 0, len(f.svcs))
	for _, fs := range f.svcs {
		c := fs.s
		out = append(out, &c)
	}
	return out, nil
}

func (f *fakeKernel) NewDestination(s *ipvs.Service, d *ipvs.Destination) error {
	fs := f.find(s)
	if fs == nil {
		return syscall.ESRCH
	}
	if fs.dest(d) >= 0 {
		return syscall.EEXIST
	}
	c := *d
	c.AddressFamily = s.AddressFamily
	fs.dests = append(fs.dests, &c)
	f.changes = append(f.changes, fmt.Sprintf("add-dest %s %s weight %d", fakeSvcKey(s), fakeDestKey(d), d.Weight))
	return nil
}

func (f *fakeKernel) UpdateDestination(s *ipvs.Service, d *ipvs.Destination) error {
	fs := f.find(s)
	if fs == nil {
		return syscall.ESRCH
	}
	i := fs.dest(d)
	if i < 0 {
		return syscall.ENOENT
	}
	c := *d
	c.AddressFamily = s.AddressFamily
	fs.dests[i] = &c
	f.changes = append(f.changes, fmt.Sprintf("update-dest %s %s weight %d", fakeSvcKey(s), fakeDestKey(d), d.Weight))
	return nil
}

func (f *fakeKernel) DelDestination(s *ipvs.Service, d *ipvs.Destination) error {
	fs := f.find(s)
	if fs == nil {
		return syscall.ESRCH
	}
	i := fs.dest(d)
	if i < 0 {
		return syscall.ENOENT
	}
	fs.dests = slices.Delete(fs.dests, i, i+1)
	f.changes = append(f.changes, fmt.Sprintf("delete-dest %s %s", fakeSvcKey(s), fakeDestKey(d)))
	return nil
}

func (f *fakeKernel) GetDestinations(s *ipvs.Service) ([]*ipvs.Destination, error) {
	f.reads++
	fs := f.find(s)
	if fs == nil {
		return nil, syscall.ESRCH
	}
	out := make([]*ipvs.Destination, 0, len(fs.dests))
	for _, d := range fs.dests {
		c := *d
		out = append(out, &c)
	}
	return out, nil
}

func (f *fakeKernel) Flush() error {
	f.svcs = nil
	f.changes = append(f.changes, "flush")
	return nil
}

func (f *fakeKernel) Close() { f.closed = true }

// dest returns the kernel's destination at ap of the service s, or nil.
func (f *fakeKernel) destOf(s *ipvs.Service, ap netip.AddrPort) *ipvs.Destination {
	fs := f.find(s)
	if fs == nil {
		return nil
	}
	for _, d := range fs.dests {
		if a, err := fromIPVSDestAddr(d); err == nil && a == ap {
			return d
		}
	}
	return nil
}
