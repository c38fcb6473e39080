package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/haa-dev/haa/node/check"
	"github.com/haa-dev/haa/node/internal/pace"
	"github.com/haa-dev/haa/node/lvs"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Load-balancing defaults and limits, as keepalived's where keepalived has
// one.
const (
	DefaultScheduler     = "wrr"
	DefaultBackend       = "auto"
	DefaultMaxChecks     = 64
	MaxConcurrentChecks  = 10000
	DefaultCheckInterval = 5 * time.Second // keepalived's delay_loop
	DefaultCheckTimeout  = 3 * time.Second // at most the interval
	DefaultRetryDelay    = time.Second     // at most the interval
	DefaultDNSType       = "SOA"
	DefaultDNSName       = "."
	MaxRealWeight        = 65535
	MaxPersistence       = 30 * 24 * time.Hour
	MaxKeepIfPeersSeeUp  = time.Hour
	// MaxUDPPayload is the largest datagram of a udp check (IPv4).
	MaxUDPPayload = 65507
)

// Backends are the values of loadBalancer.backend.
var Backends = []string{"auto", "ipvs", "nftables"}

// DNSTypes are the query types of a dns check.
var DNSTypes = []string{"A", "AAAA", "NS", "SOA", "MX", "TXT", "PTR", "CNAME", "SRV"}

// VirtualServer is one validated virtual server with its defaults filled
// in.
type VirtualServer struct {
	Name    string // as configured, or Service.Key.String()
	Service lvs.Service
	// Also are the group's other services (keepalived's
	// virtual_server_group): the kernel gets each with Service's settings
	// and the same destinations.
	Also  []lvs.Key
	Sorry netip.AddrPort // zero: none
	// SorryForwarding is the sorry server's forwarding method: its own,
	// or the virtual server's. SorryInhibit keeps it at weight 0 while the
	// service is up.
	SorryForwarding lvs.Forwarding
	SorryInhibit    bool
	// KeepIfPeersSeeUp keeps a real server this node's check sees down
	// while every other director sees it up, this long at most (0: the
	// check alone decides).
	KeepIfPeersSeeUp time.Duration
	Quorum           int // >= 1
	Hysteresis       int // < Quorum
	// Inhibit is the default of the real servers' (RealServer.Inhibit).
	Inhibit              bool
	Reals                []RealServer // configured order
	QuorumUp, QuorumDown []string     // nil: none
	// Spec is the virtual server as configured, to tell changed from
	// unchanged.
	Spec *haav1.VirtualServer
}

// Keys are the kernel services of the virtual server: Service's, then
// its group's others.
func (vs *VirtualServer) Keys() []lvs.Key {
	return append([]lvs.Key{vs.Service.Key}, vs.Also...)
}

// RealServer is one validated real server.
type RealServer struct {
	Addr   netip.AddrPort // port = the VS port when left out (0 for a fwmark service)
	Weight int            // 0..65535, default 1
	// Check is nil when the server is always healthy. Its Target is Addr
	// with the check's port, if it sets one. Exec.Run is nil: the node
	// resolves ExecCommand.
	Check                *check.Spec
	ExecCommand          []string // check kind exec
	ExecUser             string   // "" = root
	NotifyUp, NotifyDown []string // nil: none
	// Thresholds are its connection limits; unset when the configuration
	// sets none (haad then leaves the kernel's as they are).
	Thresholds lvs.Thresholds
	// Inhibit keeps it at weight 0 when it fails, instead of removing it:
	// its own inhibitOnFailure, else the virtual server's.
	Inhibit bool
	// Spec is the real server as configured.
	Spec *haav1.RealServer
}

// vsSeen are the names and services of the virtual servers before the
// one being resolved, by index.
type vsSeen struct {
	names map[string]int
	keys  map[lvs.Key]int
}

// resolveLVS validates the virtual servers and the load balancer of cfg
// into a, whose Name is the default HELO name of smtp checks.
func resolveLVS(p *problems, a *Agent, cfg *haav1.AgentConfig) {
	seen := &vsSeen{names: map[string]int{}, keys: map[lvs.Key]int{}}
	if n := len(cfg.GetVirtualServers()); n > 0 {
		a.VirtualServers = make([]VirtualServer, 0, n)
	}
	var pc pace.Pacer // tens of thousands of real servers: give way now and then
	for i, s := range cfg.GetVirtualServers() {
		vs := resolveVirtualServer(p, fmt.Sprintf("virtualServers[%d]", i), i, s, a.Name, seen)
		a.VirtualServers = append(a.VirtualServers, vs)
		pc.Yield()
	}
	lb := cfg.GetLoadBalancer()
	a.LBBackend = DefaultBackend
	if v := lb.GetBackend(); v != "" {
		if l := strings.ToLower(v); slices.Contains(Backends, l) {
			a.LBBackend = l
		} else {
			p.add("loadBalancer.backend", "%q is not a backend: use auto (ipvs where the kernel has it, else nftables), ipvs or nftables", v)
		}
	}
	a.FlushOnStart, a.FlushOnStop = lb.GetFlushOnStart(), lb.GetFlushOnStop()
	a.MaxChecks = DefaultMaxChecks
	if v := lb.GetMaxConcurrentChecks(); v != 0 {
		if v > MaxConcurrentChecks {
			p.add("loadBalancer.maxConcurrentChecks", "%d is out of range 1..%d (leave it out for %d)", v, MaxConcurrentChecks, DefaultMaxChecks)
		} else {
			a.MaxChecks = int(v)
		}
	}
}

// resolveVirtualServer validates virtual server i; problems come in the
// order of its fields.
func resolveVirtualServer(p *problems, path string, i int, s *haav1.VirtualServer, helo string, seen *vsSeen) VirtualServer {
	f := func(name string) string { return path + "." + name }
	vs := VirtualServer{Name: s.GetName(), Quorum: 1, Hysteresis: int(s.GetHysteresis()), Inhibit: s.GetInhibitOnFailure(),
		QuorumUp: nonEmpty(s.GetQuorumUp()), QuorumDown: nonEmpty(s.GetQuorumDown()), Spec: s}
	if vs.Name != "" {
		switch j, dup := seen.names[vs.Name]; {
		case !nameRE.MatchString(vs.Name):
			p.add(f("name"), "%q is not a valid name: use letters, digits, and _ . : - (at most 63)", vs.Name)
		case dup:
			p.add(f("name"), "%q is already used by virtualServers[%d]: each virtual server needs its own name", vs.Name, j)
		default:
			seen.names[vs.Name] = i
		}
	}

	// The service: an address, port and protocol, or a firewall mark; or
	// a group of them, whose first stands for the others below.
	svc := &vs.Service
	addrStr, mark := s.GetAddress(), s.GetFwmark()
	group := resolveGroup(p, f, s)
	if len(group) > 0 {
		if group[0].mark != 0 {
			mark = group[0].mark
		} else {
			addrStr = group[0].addr.String()
		}
	}
	switch {
	case addrStr == "" && mark == 0 && len(s.GetGroup()) == 0:
		p.add(path, `no service: set address ("ADDR:PORT", e.g. "10.0.0.100:80"), fwmark or group`)
	case addrStr != "" && mark != 0:
		p.add(path, "sets address and fwmark: set one of them")
	}
	var vsAddr netip.AddrPort
	if addrStr != "" {
		ap, msg := parseAddrPort(addrStr, false)
		if msg != "" {
			p.add(f("address"), "%s", msg)
		} else {
			vsAddr = ap
		}
	}
	isMark := mark != 0 && addrStr == ""
	proto, protoOK := lvs.TCP, true
	if v := s.GetProtocol(); v != "" {
		pr, ok := lvs.ParseProtocol(strings.ToLower(v))
		switch {
		case !ok:
			p.add(f("protocol"), "%q is not a protocol: use tcp, udp or sctp", v)
			protoOK = false
		case isMark:
			p.add(f("protocol"), "has no meaning with fwmark (the mark selects the packets, of any protocol): remove it")
		default:
			proto = pr
		}
	}

	// The real servers' addresses, parsed quietly first: a fwmark service
	// takes its family from them, and the sorry server must not be one.
	rss := s.GetRealServers()
	reals := make([]netip.AddrPort, len(rss)) // invalid where unparsable
	for k, r := range rss {
		if ap, msg := parseAddrPort(r.GetAddress(), true); msg == "" && r.GetAddress() != "" {
			if ap.Port() == 0 {
				ap = netip.AddrPortFrom(ap.Addr(), vsAddr.Port())
			}
			reals[k] = ap
		}
	}
	sorry, sorryMsg := netip.AddrPort{}, ""
	if v := s.GetSorryServer(); v != "" {
		sorry, sorryMsg = parseAddrPort(v, true)
	}
	// family is what the service balances, when known; famFrom says where
	// it comes from.
	var family netip.Addr
	famFrom := "the virtual server's address"
	if isMark {
		for k, ap := range reals {
			if ap.IsValid() {
				family, famFrom = ap.Addr(), fmt.Sprintf("realServers[%d]", k)
				break
			}
		}
		if !family.IsValid() && sorryMsg == "" && sorry.IsValid() {
			family, famFrom = sorry.Addr(), "the sorry server"
		}
	} else if vsAddr.IsValid() {
		family = vsAddr.Addr()
	}
	fam6 := family.IsValid() && family.Is6()
	keyOK := false
	switch {
	case isMark:
		svc.Key = lvs.Key{FWMark: mark, V6: fam6}
		keyOK = true
	case mark == 0 && vsAddr.IsValid() && protoOK:
		svc.Key = lvs.Key{Addr: vsAddr, Proto: proto}
		keyOK = true
	}
	keyDup := false
	if keyOK {
		keyPath := f("address")
		if isMark {
			keyPath = f("fwmark")
		}
		if j, dup := seen.keys[svc.Key]; dup {
			p.add(keyPath, "%s is already the service of virtualServers[%d]: list its real servers there", svc.Key, j)
			keyDup = true
		} else {
			seen.keys[svc.Key] = i
		}
	}
	if keyOK {
		vs.Also = groupKeys(p, f, i, group, svc.Key, seen)
	}
	if vs.Name == "" && keyOK {
		vs.Name = svc.Key.String()
		if j, dup := seen.names[vs.Name]; dup {
			if !keyDup {
				p.add(f("name"), "no name given, and the default %q is already used by virtualServers[%d]: set name", vs.Name, j)
			}
		} else {
			seen.names[vs.Name] = i
		}
	}

	svc.Scheduler = DefaultScheduler
	if v := s.GetScheduler(); v != "" {
		if l := strings.ToLower(v); slices.Contains(lvs.Schedulers, l) {
			svc.Scheduler = l
		} else {
			p.add(f("scheduler"), "%q is not a scheduler: use one of %s", v, strings.Join(lvs.Schedulers, ", "))
		}
	}
	fwdOK := true
	if v := s.GetForwarding(); v != "" {
		fw, ok := lvs.ParseForwarding(strings.ToLower(v))
		if ok {
			svc.Forwarding = fw
		} else {
			p.add(f("forwarding"), "%q is not a forwarding method: use nat, dr or tunnel", v)
			fwdOK = false
		}
	}
	// keepPort: dr and tunnel deliver packets unchanged, to the virtual
	// server's port.
	keepPort := fwdOK && svc.Forwarding != lvs.NAT && !isMark && vsAddr.IsValid()
	// The sorry server's own forwarding method, if it has one: its
	// problems come after the other fields', as its field does.
	var sorryLater problems
	vs.SorryForwarding, vs.SorryInhibit = svc.Forwarding, s.GetSorryServerInhibit()
	sorryFwdOK := fwdOK
	if v := s.GetSorryServerForwarding(); v != "" {
		fw, ok := lvs.ParseForwarding(strings.ToLower(v))
		switch {
		case !ok:
			sorryLater.add(f("sorryServerForwarding"), "%q is not a forwarding method: use nat, dr or tunnel", v)
			sorryFwdOK = false
		case s.GetSorryServer() == "":
			sorryLater.add(f("sorryServerForwarding"), "has no effect without sorryServer: remove it, or set sorryServer")
		default:
			vs.SorryForwarding, sorryFwdOK = fw, true
		}
	}
	if vs.SorryInhibit && s.GetSorryServer() == "" {
		sorryLater.add(f("sorryServerInhibit"), "has no effect without sorryServer: remove it, or set sorryServer")
		vs.SorryInhibit = false
	}
	sorryKeepsPort := sorryFwdOK && vs.SorryForwarding != lvs.NAT

	if k := s.GetKeepIfPeersSeeUp(); k != nil {
		switch d := k.AsDuration(); {
		case d < time.Second || d > MaxKeepIfPeersSeeUp:
			p.add(f("keepIfPeersSeeUp"), "%s is out of range 1s..%s (leave it out for keepalived's behaviour: the check alone decides)", dur(d), dur(MaxKeepIfPeersSeeUp))
		default:
			vs.KeepIfPeersSeeUp = d
		}
	}

	persist := s.GetPersistenceTimeout().AsDuration()
	if s.GetPersistenceTimeout() != nil {
		switch {
		case persist == 0:
		case persist < time.Second || persist > MaxPersistence:
			p.add(f("persistenceTimeout"), "%s is out of range 1s..%s (0s or leave it out for none)", dur(persist), dur(MaxPersistence))
		case persist%time.Second != 0:
			p.add(f("persistenceTimeout"), "%s: persistence counts whole seconds, e.g. %s", dur(persist), dur(persist.Round(time.Second)))
		default:
			svc.Persistence = persist
		}
	}
	bits := 32
	if fam6 {
		bits = 128
	}
	if v := s.GetPersistencePrefix(); v != 0 {
		switch {
		case persist == 0:
			p.add(f("persistencePrefix"), "has no effect without persistenceTimeout: remove it, or set persistenceTimeout")
		case int64(v) > int64(bits):
			p.add(f("persistencePrefix"), "%d is out of range 1..%d for %s", v, bits, famName(fam6))
		default:
			svc.PersistPrefix = int(v)
		}
	}
	if svc.Persistence > 0 && svc.PersistPrefix == 0 {
		svc.PersistPrefix = bits
	}

	if v := s.GetSorryServer(); v != "" {
		// Its port, as keepalived programs it (check_data.c
		// validate_check_config, ipvswrapper.c ipvs_cmd): left out, the
		// virtual server's; dr and tunnel to a fwmark service keep the
		// packets' ports, and keepalived clears a port given ("sorry
		// server has port specified - clearing"): port 0.
		switch {
		case sorryMsg != "":
		case isMark && sorryKeepsPort:
			sorry = netip.AddrPortFrom(sorry.Addr(), 0)
		case !isMark && sorry.Port() == 0:
			sorry = netip.AddrPortFrom(sorry.Addr(), vsAddr.Port())
		}
		switch k := slices.Index(reals, sorry); {
		case sorryMsg != "":
			p.add(f("sorryServer"), "%s", sorryMsg)
		case family.IsValid() && sorry.Addr().Is6() != fam6:
			p.add(f("sorryServer"), "%s is %s but %s is %s: the sorry server must be of the same family", sorry.Addr(), famName(!fam6), famFrom, famName(fam6))
		case sorryKeepsPort && !isMark && vsAddr.IsValid() && sorry.Port() != vsAddr.Port():
			field := "forwarding"
			if s.GetSorryServerForwarding() != "" {
				field = "sorryServerForwarding"
			}
			p.add(f("sorryServer"), "port %d: %s forwarding cannot change the port (packets keep port %d): use port %d, or %s: nat", sorry.Port(), vs.SorryForwarding, vsAddr.Port(), vsAddr.Port(), field)
		case k >= 0:
			p.add(f("sorryServer"), "%s is also realServers[%d]: the sorry server takes over when the real servers are down, so it must be another server", sorry, k)
		default:
			vs.Sorry = sorry
		}
	}

	if v := s.GetQuorum(); v != 0 {
		vs.Quorum = int(v)
	}
	if vs.Hysteresis >= vs.Quorum {
		p.add(f("hysteresis"), "%d must be below quorum %d: the service goes down when the healthy weight falls below quorum - hysteresis", vs.Hysteresis, vs.Quorum)
	}

	// The virtual server's check, the default of its real servers: its
	// problems are reported once, at its own place after the real servers.
	var vsCheckProblems problems
	vsCheck := resolveHealthCheck(&vsCheckProblems, f("check"), s.GetCheck(), helo)
	addrs := make(map[netip.AddrPort]int, len(rss))
	vs.Reals = make([]RealServer, 0, len(rss))
	for k, r := range rss {
		rp := path + ".realServers[" + strconv.Itoa(k) + "]"
		rs := RealServer{Weight: 1, NotifyUp: nonEmpty(r.GetNotifyUp()), NotifyDown: nonEmpty(r.GetNotifyDown()), Spec: r,
			Inhibit: vs.Inhibit}
		if r != nil && r.InhibitOnFailure != nil {
			rs.Inhibit = r.GetInhibitOnFailure()
		}
		var own problems
		hc := vsCheck
		if r.GetCheck() != nil {
			hc = resolveHealthCheck(&own, rp+".check", r.GetCheck(), helo)
		}
		ap := reals[k]
		switch j, dup := addrs[ap]; {
		case r.GetAddress() == "":
			p.add(rp+".address", `required: the real server's "ADDR:PORT", or "ADDR" for the virtual server's port`)
		case !ap.IsValid():
			_, msg := parseAddrPort(r.GetAddress(), true)
			p.add(rp+".address", "%s", msg)
		case family.IsValid() && ap.Addr().Is6() != fam6:
			p.add(rp+".address", "%s is %s but %s is %s: the real servers of a virtual server are of its family", ap.Addr(), famName(!fam6), famFrom, famName(fam6))
		case keepPort && ap.Port() != vsAddr.Port():
			p.add(rp+".address", "port %d: %s forwarding cannot change the port (packets keep port %d): leave the port out, or use forwarding: nat", ap.Port(), svc.Forwarding, vsAddr.Port())
		case dup:
			p.add(rp+".address", "%s is already realServers[%d]: list each real server once", ap, j)
		default:
			addrs[ap] = k
		}
		rs.Addr = ap
		if hc != nil && ap.IsValid() {
			rs.Check = hc.forReal(ap)
			rs.ExecCommand, rs.ExecUser = hc.execCmd, hc.execUser
			if isMark && rs.Check.Target.Port() == 0 && needsPort(rs.Check.Kind) {
				p.add(rp+".address", "%s has no port for its %s check: write ADDR:PORT, or set the check's port", ap.Addr(), rs.Check.Kind)
			}
		}
		if r != nil && r.Weight != nil {
			rs.Weight = int(r.GetWeight())
			if rs.Weight > MaxRealWeight {
				p.add(rp+".weight", "%d is out of range 0..%d (0 takes no new connections)", rs.Weight, MaxRealWeight)
			}
		}
		resolveThresholds(p, rp, r, &rs)
		*p = append(*p, own...)
		if rs.NotifyUp != nil {
			checkCommands(p, rp+".notifyUp", rs.NotifyUp)
		}
		if rs.NotifyDown != nil {
			checkCommands(p, rp+".notifyDown", rs.NotifyDown)
		}
		vs.Reals = append(vs.Reals, rs)
	}
	*p = append(*p, vsCheckProblems...)
	checkCommands(p, f("quorumUp"), vs.QuorumUp)
	checkCommands(p, f("quorumDown"), vs.QuorumDown)
	*p = append(*p, sorryLater...)
	return vs
}

// resolveThresholds validates a real server's connection limits: set when
// either is, the lower at most the upper (the kernel refuses the rest with
// ERANGE).
func resolveThresholds(p *problems, rp string, r *haav1.RealServer, rs *RealServer) {
	if r == nil || (r.UpperThreshold == nil && r.LowerThreshold == nil) {
		return
	}
	up, low := r.GetUpperThreshold(), r.GetLowerThreshold()
	switch {
	case low > up && up == 0:
		p.add(rp+".lowerThreshold", "%d without an upperThreshold: IPVS takes a server back below the lower threshold only after the upper one stopped it; set upperThreshold (at least %d), or remove lowerThreshold", low, low)
	case low > up:
		p.add(rp+".lowerThreshold", "%d is above upperThreshold %d: IPVS refuses it; set it at most %d (0: three quarters of the upper one)", low, up, up)
	default:
		rs.Thresholds = lvs.Thresholds{Upper: up, Lower: low, Set: true}
	}
}

// healthCheck is a validated check, not yet bound to a real server.
type healthCheck struct {
	spec     check.Spec // Target unset
	port     uint16     // 0: the real server's
	execCmd  []string
	execUser string
}

// forReal returns the check of the real server at addr, sharing nothing
// with other real servers' checks but the compiled regular expression.
func (hc *healthCheck) forReal(addr netip.AddrPort) *check.Spec {
	c := hc.spec
	port := hc.port
	if port == 0 {
		port = addr.Port()
	}
	c.Target = netip.AddrPortFrom(addr.Addr(), port)
	if c.HTTP != nil {
		h := *c.HTTP
		h.Codes = slices.Clone(h.Codes)
		c.HTTP = &h
	}
	if c.SMTP != nil {
		v := *c.SMTP
		c.SMTP = &v
	}
	if c.DNS != nil {
		v := *c.DNS
		c.DNS = &v
	}
	if c.UDP != nil {
		v := check.UDPSpec{Payload: slices.Clone(c.UDP.Payload), Expect: slices.Clone(c.UDP.Expect)}
		c.UDP = &v
	}
	if c.Exec != nil {
		v := *c.Exec
		c.Exec = &v
	}
	return &c
}

// needsPort reports whether a check of kind k connects to a port.
func needsPort(k check.Kind) bool {
	return k != check.Ping && k != check.Exec && k != ""
}

const checkKinds = "tcp, http, https, smtp, dns, udp, ping, exec"

// resolveHealthCheck validates a check (nil: none).
func resolveHealthCheck(p *problems, path string, s *haav1.HealthCheck, helo string) *healthCheck {
	if s == nil {
		return nil
	}
	f := func(name string) string { return path + "." + name }
	hc := &healthCheck{}
	c := &hc.spec
	var kinds []string
	for _, k := range []struct {
		kind check.Kind
		set  bool
	}{
		{check.TCP, s.GetTcp() != nil}, {check.HTTP, s.GetHttp() != nil}, {check.HTTPS, s.GetHttps() != nil},
		{check.SMTP, s.GetSmtp() != nil}, {check.DNS, s.GetDns() != nil}, {check.UDP, s.GetUdp() != nil},
		{check.Ping, s.GetPing() != nil}, {check.Exec, s.GetExec() != nil},
	} {
		if k.set {
			kinds = append(kinds, string(k.kind))
			c.Kind = k.kind
		}
	}
	switch len(kinds) {
	case 0:
		p.add(path, "no check: set exactly one of %s", checkKinds)
	case 1:
	default:
		c.Kind = ""
		p.add(path, "sets %s: set exactly one of %s", strings.Join(kinds, ", "), checkKinds)
	}

	if h := s.GetHttp(); h != nil {
		c.HTTP = resolveHTTPCheck(p, f("http"), h, false)
	}
	if h := s.GetHttps(); h != nil {
		c.HTTP = resolveHTTPCheck(p, f("https"), h, true)
	}
	if sm := s.GetSmtp(); sm != nil {
		c.SMTP = &check.SMTPSpec{Helo: helo}
		if v := sm.GetHeloName(); v != "" {
			if strings.ContainsFunc(v, badChar) {
				p.add(f("smtp.heloName"), "%q is not a host name: no spaces or control characters", v)
			}
			c.SMTP.Helo = v
		}
	}
	if d := s.GetDns(); d != nil {
		c.DNS = &check.DNSSpec{Type: DefaultDNSType, Name: DefaultDNSName}
		if v := d.GetType(); v != "" {
			if u := strings.ToUpper(v); slices.Contains(DNSTypes, u) {
				c.DNS.Type = u
			} else {
				p.add(f("dns.type"), "%q is not a query type: use one of %s", v, strings.Join(DNSTypes, ", "))
			}
		}
		if v := d.GetName(); v != "" {
			name, ok := fqdn(v)
			if !ok {
				p.add(f("dns.name"), "%q is not a domain name: labels of 1..63 characters without spaces, at most 253 in all", v)
			}
			c.DNS.Name = name
		}
	}
	if u := s.GetUdp(); u != nil {
		c.UDP = &check.UDPSpec{}
		if v := u.GetPayload(); v != "" {
			if len(v) > MaxUDPPayload {
				p.add(f("udp.payload"), "%d bytes: a UDP datagram carries at most %d", len(v), MaxUDPPayload)
			}
			c.UDP.Payload = []byte(v)
		}
		if v := u.GetExpect(); v != "" {
			c.UDP.Expect = []byte(v)
		}
	}
	if e := s.GetExec(); e != nil {
		c.Exec = &check.ExecSpec{Dynamic: e.GetDynamic()}
		hc.execCmd, hc.execUser = nonEmpty(e.GetCommand()), e.GetUser()
		if len(hc.execCmd) == 0 {
			p.add(f("exec.command"), `required: the program and its arguments, e.g. ["/etc/haa/check-rs.sh", "--quick"] (it gets HAA_RS_ADDRESS and HAA_RS_PORT)`)
		} else {
			checkCommand(p, f("exec.command"), hc.execCmd)
		}
		checkUser(p, f("exec.user"), hc.execUser)
	}

	c.Interval, c.Rise, c.Fall = DefaultCheckInterval, DefaultRise, DefaultFall
	ivOK := true
	if s.Interval != nil {
		c.Interval = s.GetInterval().AsDuration()
		if c.Interval < MinCheckInterval || c.Interval > MaxCheckInterval {
			p.add(f("interval"), "%s is out of range %s..%s (leave it out for %s)", dur(c.Interval), dur(MinCheckInterval), dur(MaxCheckInterval), dur(DefaultCheckInterval))
			ivOK = false
		}
	}
	// The bound of the other durations: the interval, or the largest one
	// when the interval is wrong (reported above).
	iv, ivName := c.Interval, "the interval "+dur(c.Interval)
	if !ivOK {
		iv, ivName = MaxCheckInterval, "the interval"
	}
	c.Timeout = min(DefaultCheckTimeout, iv)
	if s.Timeout != nil {
		c.Timeout = s.GetTimeout().AsDuration()
		if c.Timeout <= 0 || c.Timeout > iv {
			p.add(f("timeout"), "%s is out of range: more than 0s and at most %s (leave it out for %s)", dur(c.Timeout), ivName, dur(min(DefaultCheckTimeout, iv)))
		}
	}
	if v := s.GetRise(); v != 0 {
		c.Rise = int(v)
		if v > MaxRiseFall {
			p.add(f("rise"), "%d is out of range 1..%d", v, MaxRiseFall)
		}
	}
	if v := s.GetFall(); v != 0 {
		c.Fall = int(v)
		if v > MaxRiseFall {
			p.add(f("fall"), "%d is out of range 1..%d", v, MaxRiseFall)
		}
	}
	c.RetryDelay = min(DefaultRetryDelay, iv)
	if s.RetryDelay != nil {
		c.RetryDelay = s.GetRetryDelay().AsDuration()
		if c.RetryDelay <= 0 || c.RetryDelay > iv {
			p.add(f("retryDelay"), "%s is out of range: more than 0s and at most %s (leave it out for %s)", dur(c.RetryDelay), ivName, dur(min(DefaultRetryDelay, iv)))
		}
	}
	c.Jitter = c.Interval
	if s.Jitter != nil {
		c.Jitter = s.GetJitter().AsDuration()
		if c.Jitter < 0 || c.Jitter > iv {
			p.add(f("jitter"), "%s is out of range: 0s (none) up to %s (leave it out for the interval)", dur(c.Jitter), ivName)
		}
	}
	switch v := s.GetPort(); {
	case v == 0:
	case v > 65535:
		p.add(f("port"), "%d is out of range 1..65535 (leave it out for the real server's port)", v)
	case c.Kind == check.Ping:
		p.add(f("port"), "has no effect on a ping check: remove it")
	default:
		hc.port = uint16(v)
	}
	return hc
}

// resolveHTTPCheck validates an http (tls false) or https check.
func resolveHTTPCheck(p *problems, path string, h *haav1.HttpCheck, tls bool) *check.HTTPSpec {
	f := func(name string) string { return path + "." + name }
	hs := &check.HTTPSpec{Path: "/", Host: h.GetHost(), TLSVerify: h.GetTlsVerify(), ServerName: h.GetServerName(), CAFile: h.GetCaFile()}
	if v := h.GetPath(); v != "" {
		switch {
		case !strings.HasPrefix(v, "/"):
			p.add(f("path"), "%q must start with \"/\", e.g. %q", v, "/"+v)
		case strings.ContainsFunc(v, badChar):
			p.add(f("path"), "%q contains spaces or control characters: escape them, e.g. %%20 for a space", v)
		}
		hs.Path = v
	}
	for i, code := range h.GetStatusCodes() {
		if code < 100 || code > 599 {
			p.add(fmt.Sprintf("%s[%d]", f("statusCodes"), i), "%d is not an HTTP status code: 100..599", code)
			continue
		}
		hs.Codes = append(hs.Codes, int(code))
	}
	if strings.ContainsFunc(hs.Host, badChar) {
		p.add(f("host"), "%q is not a host name: no spaces or control characters", hs.Host)
	}
	if v := h.GetDigest(); v != "" {
		hs.Digest = strings.ToLower(v)
		if _, err := hex.DecodeString(hs.Digest); err != nil || len(hs.Digest) != 32 {
			p.add(f("digest"), "%q is not an MD5 digest: 32 hex digits, as md5sum or keepalived's genhash print", v)
		}
	}
	if v := h.GetRegex(); v != "" {
		re, err := regexp.Compile(v)
		if err != nil {
			msg := err.Error()
			var se *syntax.Error
			if errors.As(err, &se) {
				msg = se.Code.String()
			}
			p.add(f("regex"), "%q is not a regular expression (RE2 syntax): %s", v, msg)
		}
		hs.Regex = re
	}
	if !tls {
		for _, t := range []struct {
			name string
			set  bool
		}{{"tlsVerify", hs.TLSVerify}, {"serverName", hs.ServerName != ""}, {"caFile", hs.CAFile != ""}} {
			if t.set {
				p.add(f(t.name), "only for https checks: check with https instead of http, or remove it")
			}
		}
		return hs
	}
	if strings.ContainsFunc(hs.ServerName, badChar) {
		p.add(f("serverName"), "%q is not a host name: no spaces or control characters", hs.ServerName)
	}
	switch {
	case hs.CAFile == "":
	case !filepath.IsAbs(hs.CAFile):
		p.add(f("caFile"), "%q must be an absolute path", hs.CAFile)
	case !hs.TLSVerify:
		p.add(f("caFile"), "has no effect without tlsVerify: true: set it, or remove caFile")
	}
	return hs
}

// parseAddrPort parses "ADDR:PORT" ("[ADDR]:PORT" for IPv6) of a unicast
// address; with portOptional also "ADDR" (port 0). It returns what is
// wrong, or "".
func parseAddrPort(s string, portOptional bool) (netip.AddrPort, string) {
	bad := func() (netip.AddrPort, string) {
		if portOptional {
			return netip.AddrPort{}, fmt.Sprintf(`%q is not ADDR or ADDR:PORT, e.g. "10.0.0.1", "10.0.0.1:8080" or "[fd00::1]:8080"`, s)
		}
		return netip.AddrPort{}, fmt.Sprintf(`%q is not ADDR:PORT, e.g. "10.0.0.100:80" or "[fd00::100]:80"`, s)
	}
	var a netip.Addr
	var port uint64
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		h := s
		if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
			h = h[1 : len(h)-1]
		}
		if a, err = netip.ParseAddr(h); err != nil {
			return bad()
		}
		if !portOptional {
			return netip.AddrPort{}, fmt.Sprintf("%q has no port: write ADDR:PORT, e.g. %q", s, netip.AddrPortFrom(a.WithZone(""), 80).String())
		}
	} else {
		if a, err = netip.ParseAddr(host); err != nil {
			return bad()
		}
		if port, err = strconv.ParseUint(ps, 10, 16); err != nil || port == 0 {
			return netip.AddrPort{}, fmt.Sprintf("%q: port %q is not a number 1..65535", s, ps)
		}
	}
	switch {
	case a.Zone() != "":
		return netip.AddrPort{}, fmt.Sprintf("%q: addresses with a zone (%%%s) are not supported", s, a.Zone())
	case a.Is4In6():
		return netip.AddrPort{}, fmt.Sprintf("%q: write the IPv4 address %s as such", s, a.Unmap())
	case a.IsUnspecified() || a.IsMulticast():
		return netip.AddrPort{}, fmt.Sprintf("%q: %s is not a unicast address", s, a)
	}
	return netip.AddrPortFrom(a, uint16(port)), ""
}

// fqdn returns name with a trailing dot, and whether it is a domain name.
func fqdn(name string) (string, bool) {
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	if name == "." {
		return name, true
	}
	if len(name) > 254 {
		return name, false
	}
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if l == "" || len(l) > 63 || strings.ContainsFunc(l, badChar) {
			return name, false
		}
	}
	return name, true
}

// badChar is a character that has no place in a host name, path or
// header: a space or a control character.
func badChar(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r)
}

func famName(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}

// checkCommands checks a command that may be left out.
func checkCommands(p *problems, path string, cmd []string) {
	if len(cmd) > 0 {
		checkCommand(p, path, cmd)
	}
}

// nonEmpty returns s, or nil when it is empty.
func nonEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
