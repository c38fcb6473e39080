package instances

import (
	"fmt"
	"sync"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/host"
	"github.com/haa-dev/haa/node/vrrp"
)

// ifaceKey names an interface's socket: IPv4 and IPv6 instances have
// one each (VRIDs are per family: RFC 5798 5.2.3).
type ifaceKey struct {
	name string
	v6   bool
}

// iface is the shared per-interface state: one socket and its
// demultiplexer, for every instance of a family on the interface.
type iface struct {
	key   ifaceKey
	name  string
	conn  host.VRRPConn
	demux *vrrp.Iface
	refs  int
	done  chan struct{} // closed when the receive loops have returned
	// loops are the receive loops; ah: the IPsec AH loop runs (started
	// for the first AH instance on the interface). Both under Set.mu.
	loops *sync.WaitGroup
	ah    bool
}

// serveAH starts receiving the interface's IPsec AH packets, once, for an
// instance with AH authentication. Called with Set.mu held.
func (s *Set) serveAH(ifc *iface) error {
	if ifc.ah {
		return nil
	}
	l, ok := ifc.conn.(interface{ ListenAH() (vrrp.Reader, error) })
	if !ok {
		return fmt.Errorf("interface %s: this host cannot receive IPsec AH packets: use auth PASS or none for the instances on it", ifc.name)
	}
	rd, err := l.ListenAH()
	if err != nil {
		return fmt.Errorf("IPsec AH socket on %s: %w", ifc.name, err)
	}
	ifc.ah = true
	ifc.loops.Go(func() {
		if err := ifc.demux.Serve(rd); err != nil {
			s.log.Error("VRRP receive loop (IPsec AH) stopped", "iface", ifc.name, "err", err)
		}
	})
	return nil
}

// acquireIface returns the interface's socket, opening it for the first
// instance on it. Called with mu held (one writer at a time): the socket
// is opened outside ifmu, which readers take.
func (s *Set) acquireIface(name string, v6 bool) (*iface, error) {
	key := ifaceKey{name, v6}
	s.ifmu.Lock()
	if ifc := s.ifaces[key]; ifc != nil {
		ifc.refs++
		s.ifmu.Unlock()
		return ifc, nil
	}
	s.ifmu.Unlock()
	conn, err := s.host.ListenVRRP(name, v6)
	if err != nil {
		return nil, err
	}
	if !v6 {
		s.promoteSecondaries(name)
	}
	loops := &sync.WaitGroup{}
	ifc := &iface{key: key, name: name, conn: conn, demux: vrrp.NewIface(name, s.log), refs: 1, done: make(chan struct{}), loops: loops}
	loops.Go(func() {
		if err := ifc.demux.Serve(conn); err != nil {
			s.log.Error("VRRP receive loop stopped", "iface", name, "err", err)
		}
	})
	// The priority lane: the adverts of the masters the instances follow
	// never share a buffer with a flood (host.Socket has one).
	if l, ok := conn.(interface{ Lane() vrrp.Lane }); ok {
		loops.Go(func() {
			if err := ifc.demux.ServeLane(l.Lane()); err != nil {
				s.log.Error("VRRP receive loop (priority lane) stopped", "iface", name, "err", err)
			}
		})
	}
	go func() {
		loops.Wait()
		close(ifc.done)
	}()
	s.ifmu.Lock()
	s.ifaces[key] = ifc
	s.ifmu.Unlock()
	return ifc, nil
}

// releaseIface detaches a stopped instance from its interface.
func (s *Set) releaseIface(c config.Instance) {
	s.ifmu.RLock()
	ifc := s.ifaces[ifaceKey{c.SocketDevice(), c.IPv6()}]
	s.ifmu.RUnlock()
	if ifc == nil {
		return
	}
	ifc.demux.Remove(c.VRRP.VRID)
	if !c.Unicast() {
		_ = ifc.conn.LeaveGroup(c.Group)
	}
	s.releaseIfaceRef(ifc)
}

// releaseIfaceRef closes the socket when its last instance is gone.
func (s *Set) releaseIfaceRef(ifc *iface) {
	s.ifmu.Lock()
	ifc.refs--
	last := ifc.refs == 0
	if last {
		delete(s.ifaces, ifc.key)
	}
	s.ifmu.Unlock()
	if last {
		ifc.conn.Close()
		<-ifc.done
	}
}
