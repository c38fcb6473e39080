package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/haa-dev/haa/node/vip"
	"github.com/haa-dev/haa/node/vroute"
	"github.com/haa-dev/haa/node/vrrp"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Defaults, as keepalived's where keepalived has one.
const (
	DefaultPriority      = 100
	DefaultVersion       = 3
	DefaultInterval      = time.Second
	DefaultGARPDelay     = 5 * time.Second
	DefaultGARPRepeat    = 5
	DefaultRefreshRepeat = 1
	DefaultSocketDir     = "/run/haa"
	MaxPreemptDelay      = 1000 * time.Second
	MaxPasswordLen       = 8
)

// Agent is a validated configuration with every default filled in: what the
// agent runs.
type Agent struct {
	Name       string
	Socket     string
	TLS        *haav1.Tls // of the API's TCP listener, if any
	Instances  []Instance
	Trackers   []Tracker   // every tracker, in the configured order
	SyncGroups []SyncGroup // in the configured order
	// VirtualServers are the load-balanced services, in the configured
	// order; LBBackend is "auto", "ipvs" or "nftables"; MaxChecks bounds
	// the health checks in flight; FlushOnStart and FlushOnStop empty the
	// whole kernel table when the backend opens and at a clean stop.
	VirtualServers []VirtualServer
	LBBackend      string
	MaxChecks      int
	FlushOnStart   bool
	FlushOnStop    bool
}

// Instance is one validated VRRP instance.
type Instance struct {
	VRRP      vrrp.Config // Primary is the configured source address, if any
	Interface string
	// VIPs are the addresses the master holds: the first Advertised are
	// vips (VRRP.Addrs, in adverts), the rest excludedVips.
	VIPs       []vip.VIP
	Advertised int
	// Routes and Rules follow mastership with the VIPs (added after
	// them, removed before them).
	Routes []vroute.Route
	Rules  []vroute.Rule
	// Family is the instance's: FamilyIPv4 or FamilyIPv6 (its VIPs,
	// peers, group and source address).
	Family string
	// VMAC is the virtual MAC interface the VIPs live on; nil: none.
	VMAC *VMAC
	// Accept: a non-owner master accepts packets to its VIPs (RFC 5798
	// Accept_Mode); false: haad drops them while master.
	Accept bool
	Peers  []netip.Addr // unicast peers; empty: multicast to Group (unless PeersFromFleet)
	// PeersFromFleet: the instance also sends to the fleet members that
	// run it (unicastPeersFromFleet), whatever Peers holds.
	PeersFromFleet bool
	Group          netip.Addr
	Checksum       vrrp.ChecksumMode
	GARP           vrrp.GARPConfig
	Track          []TrackRef // the trackers it tracks itself (not those of its sync group)
	Notify         *Notify    // nil: none
	// Spec is the instance as configured, to tell changed from unchanged.
	Spec *haav1.Instance
}

// VIPField is the path of VIPs[k] under the instance: vips[k], or
// excludedVips[j] past the advertised ones.
func (in *Instance) VIPField(k int) string {
	if k < in.Advertised {
		return fmt.Sprintf("vips[%d]", k)
	}
	return fmt.Sprintf("excludedVips[%d]", k-in.Advertised)
}

var (
	nameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$`)
	ifaceRE = regexp.MustCompile(`^[^\s/:]{1,15}$`)
)

// MaxVIPsPerNode is how many virtual addresses one node's instances may
// hold in all. Adding or removing addresses costs the kernel time that
// grows with the square of the addresses on the device: about 3 s for
// 10,000 on one device, 11 s for 20,000 and minutes for 50,000 (make
// bench-vips), longer than a failover or a shutdown may take.
const MaxVIPsPerNode = 10000

// Validate checks a configuration and reports every problem with its path.
func Validate(cfg *haav1.AgentConfig) error {
	_, err := Resolve(cfg)
	return err
}

// Resolve validates cfg and returns it with defaults applied. Problems
// come in the order of the document: name, api, gossip, trackers, then per
// instance its fields and the clashes with the instances before it, then
// the sync groups, the virtual servers, the load balancer and metrics.
func Resolve(cfg *haav1.AgentConfig) (*Agent, error) {
	var p problems
	checkDurations(&p, cfg.ProtoReflect(), "")
	if len(p) > 0 {
		return nil, p.err("") // the rest would convert them
	}
	a := &Agent{Name: cfg.GetName()}
	if a.Name == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			p.add("name", "no name given and the host name is unknown: set name")
		}
		a.Name = h
	} else if !nameRE.MatchString(a.Name) {
		p.add("name", "%q is not a valid name: use letters, digits, and _ . : - (at most 63)", a.Name)
	}
	a.TLS = cfg.GetApi().GetTcp().GetTls()
	a.Socket = cfg.GetApi().GetSocket()
	switch {
	case a.Socket == "" && len(p) == 0: // none from an invalid name (of megabytes, perhaps)
		a.Socket = filepath.Join(DefaultSocketDir, a.Name+".sock")
	case a.Socket != "" && !filepath.IsAbs(a.Socket):
		p.add("api.socket", "%q must be an absolute path", a.Socket)
	}
	if t := cfg.GetApi().GetTcp(); t != nil {
		validateTCP(&p, t)
	}
	if g := cfg.GetGossip(); g != nil {
		validateGossip(&p, g)
	}

	var trackers trackerSet
	a.Trackers, trackers = resolveTrackers(&p, "trackers", cfg.GetTrackers())

	names := map[string]int{}
	vrids := map[string]int{}
	vmacs := map[string]int{}
	vips := map[netip.Addr]string{}
	for i, spec := range cfg.GetInstances() {
		path := fmt.Sprintf("instances[%d]", i)
		in := resolveInstance(&p, path, spec, trackers, missingTracker)
		if in == nil {
			continue
		}
		if j, dup := names[spec.GetName()]; dup && spec.GetName() != "" {
			p.add(path+".name", "%q is already used by instances[%d]", spec.GetName(), j)
		}
		names[spec.GetName()] = i
		if in.PeersFromFleet && cfg.GetGossip() == nil {
			p.add(path+".unicastPeersFromFleet", "the peers come from the fleet's gossip, and this node has none: configure gossip (gossip.join), or list unicastPeers")
		}
		if in.VRRP.VRID != 0 && in.Interface != "" {
			// VRIDs are per family (RFC 5798 5.2.3): IPv4's 51 and
			// IPv6's 51 are two virtual routers.
			key := fmt.Sprintf("%s/%d/%s", in.Interface, in.VRRP.VRID, in.Family)
			if j, dup := vrids[key]; dup {
				p.add(path+".vrid", "vrid %d is already used on %s by instances[%d] (%s): each virtual router of a family on an interface needs its own vrid", in.VRRP.VRID, in.Interface, j, in.Family)
			}
			vrids[key] = i
		}
		if in.VMAC != nil {
			if _, dup := vmacs[in.VMAC.Name]; dup && spec.GetVmac().GetName() == "" && in.IPv6() {
				// keepalived's fallback for the default name of an IPv6
				// instance: IPv4's VRID 51 has vrrp.51.
				in.VMAC.Name = fmt.Sprintf("vrrp6.%d", in.VRRP.VRID)
			}
			if j, dup := vmacs[in.VMAC.Name]; dup {
				p.add(path+".vmac.name", "%s is already the virtual MAC interface of instances[%d]: name one of them otherwise", in.VMAC.Name, j)
			}
			vmacs[in.VMAC.Name] = i
		}
		before := len(vips)
		for k, v := range in.VIPs {
			if other, dup := vips[v.Prefix.Addr()]; dup {
				p.add(path+"."+in.VIPField(k), "%s is already a VIP of %s", v.Prefix.Addr(), other)
			}
			vips[v.Prefix.Addr()] = spec.GetName()
		}
		if before <= MaxVIPsPerNode && len(vips) > MaxVIPsPerNode {
			p.add(path+".vips", "this instance brings the node to %d virtual addresses: at most %d per node are supported (the kernel takes seconds to add or remove more, and longer than a shutdown may)", len(vips), MaxVIPsPerNode)
		}
		a.Instances = append(a.Instances, *in)
	}
	instances := map[string]bool{}
	for _, in := range cfg.GetInstances() {
		if name := in.GetName(); name != "" {
			instances[name] = true
		}
	}
	a.SyncGroups = resolveSyncGroups(&p, "syncGroups", cfg.GetSyncGroups(), instances, trackers, "this configuration", missingTracker, nil)
	gate(a)
	resolveLVS(&p, a, cfg)
	if m := cfg.GetMetrics(); m != nil {
		validateMetrics(&p, m, cfg.GetApi())
	}
	if err := p.err(""); err != nil {
		return nil, err
	}
	return a, nil
}

// gate marks the instances that are members of a sync group
// (vrrp.Config.Gated).
func gate(a *Agent) {
	member := map[string]bool{}
	for _, g := range a.SyncGroups {
		for _, m := range g.Instances {
			member[m] = true
		}
	}
	for i := range a.Instances {
		a.Instances[i].VRRP.Gated = member[a.Instances[i].VRRP.Name]
	}
}

// hostRE is a host name a TCP listener may be given instead of an address.
var hostRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)

// validateListen checks a host:port to listen on at path: required is the
// message when it is empty, ex4 and ex6 examples of a right value.
func validateListen(p *problems, path, l, required, ex4, ex6 string) {
	host, port, err := net.SplitHostPort(l)
	switch {
	case l == "":
		p.add(path, "%s", required)
		return
	case err != nil:
		p.add(path, "%q is not host:port, e.g. %q or %q", l, ex4, ex6)
		return
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		p.add(path, "%q: port %q is not a number 1..65535", l, port)
	}
	if _, err := netip.ParseAddr(host); host != "" && err != nil && !hostRE.MatchString(host) {
		p.add(path, "%q: %q is neither an IP address nor a host name", l, host)
	}
}

// validateTCP checks the API's TCP listener: an address to listen on, and
// TLS unless explicitly insecure.
func validateTCP(p *problems, t *haav1.TcpListener) {
	const path = "api.tcp"
	validateListen(p, path+".listen", t.GetListen(), `required: host:port to listen on, e.g. "10.0.0.1:9651"`,
		"10.0.0.1:9651", "[fd00::1]:9651")
	tls := t.GetTls()
	if t.GetInsecure() {
		if tls != nil {
			p.add(path+".insecure", "set together with tls: remove one of them (insecure means plaintext without authentication)")
		}
		return
	}
	if tls == nil {
		p.add(path+".tls", "required unless api.tcp.insecure: true (the API controls the node: serve it over TLS)")
		return
	}
	for _, f := range []struct{ name, v, what string }{
		{"certFile", tls.GetCertFile(), "required: the server's PEM certificate"},
		{"keyFile", tls.GetKeyFile(), "required: the PEM key of certFile"},
		{"clientCaFile", tls.GetClientCaFile(), ""},
	} {
		switch {
		case f.v == "" && f.what != "":
			p.add(path+".tls."+f.name, "%s", f.what)
		case f.v != "" && !filepath.IsAbs(f.v):
			p.add(path+".tls."+f.name, "%q must be an absolute path", f.v)
		}
	}
	if tls.GetClientCaFile() != "" && tls.GetCertFile() == "" {
		p.add(path+".tls.clientCaFile", "needs certFile and keyFile: client certificates are checked within the server's TLS")
	}
}

// missingTracker ends the message of a reference to a tracker that an
// agent's configuration does not define.
const missingTracker = ": define it under trackers, or fix the name"

// resolveInstance validates one instance; its track references may name
// trackers (missing ends the message of one that does not).
func resolveInstance(p *problems, path string, s *haav1.Instance, trackers trackerSet, missing string) *Instance {
	f := func(name string) string { return path + "." + name }
	in := &Instance{Spec: s, Interface: s.GetInterface()}
	c := &in.VRRP
	c.Name = s.GetName()
	switch {
	case c.Name == "":
		p.add(f("name"), "required: give the instance a name such as VI_1")
	case !nameRE.MatchString(c.Name):
		p.add(f("name"), "%q is not a valid name: use letters, digits, and _ . : - (at most 63)", c.Name)
	}
	switch {
	case in.Interface == "":
		p.add(f("interface"), "required: the interface the instance runs on, e.g. eth0")
	case !ifaceRE.MatchString(in.Interface):
		p.add(f("interface"), "%q is not a valid interface name", in.Interface)
	}
	switch v := s.GetVrid(); {
	case v == 0:
		p.add(f("vrid"), "required: a virtual router id 1..255 shared by the nodes of this virtual router")
	case v > 255:
		p.add(f("vrid"), "%d is out of range 1..255", v)
	default:
		c.VRID = uint8(v)
	}
	c.Priority = DefaultPriority
	if s.Priority != nil {
		if v := s.GetPriority(); v < 1 || v > 255 {
			p.add(f("priority"), "%d is out of range 1..255 (255 only for the address owner)", v)
		} else {
			c.Priority = uint8(v)
		}
	}
	in.Family = resolveFamily(p, f, s)
	c.Version = DefaultVersion
	switch v := s.GetVersion(); v {
	case 0:
	case 2, 3:
		c.Version = int(v)
		if v == 2 && in.IPv6() {
			p.add(f("version"), "2 with IPv6 addresses: VRRPv2 is IPv4 only; IPv6 instances use version 3 (RFC 5798)")
		}
	default:
		p.add(f("version"), "%d is not a VRRP version: use 2 or 3", v)
	}
	c.Interval = DefaultInterval
	if s.AdvertInterval != nil {
		c.Interval = s.GetAdvertInterval().AsDuration()
		switch {
		case c.Version == 2 && (c.Interval%time.Second != 0 || c.Interval < vrrp.MinIntervalV2 || c.Interval > vrrp.MaxIntervalV2):
			p.add(f("advertInterval"), "%v: VRRPv2 needs whole seconds 1s..255s (use version: 3 for shorter intervals)", c.Interval)
		case c.Version == 3 && (c.Interval%(10*time.Millisecond) != 0 || c.Interval < vrrp.MinIntervalV3 || c.Interval > vrrp.MaxIntervalV3):
			p.add(f("advertInterval"), "%v: VRRPv3 needs 10ms..40.95s in steps of 10ms", c.Interval)
		}
	}
	c.Preempt = true
	if s.Preempt != nil {
		c.Preempt = s.GetPreempt()
	}
	if s.PreemptDelay != nil {
		c.PreemptDelay = s.GetPreemptDelay().AsDuration()
		if c.PreemptDelay < 0 || c.PreemptDelay > MaxPreemptDelay {
			p.add(f("preemptDelay"), "%v is out of range 0s..1000s", c.PreemptDelay)
		}
	}
	if !c.Preempt && c.PreemptDelay > 0 {
		p.add(f("preemptDelay"), "has no effect with preempt: false: remove one of them")
	}
	switch strings.ToUpper(s.GetState()) {
	case "", "BACKUP":
	case "MASTER":
		c.InitialMaster = true
	default:
		p.add(f("state"), "%q: use MASTER or BACKUP", s.GetState())
	}

	switch n := len(s.GetVips()); {
	case n > 0 && s.GetNoVips():
		p.add(f("noVips"), "set, but vips lists %d addresses: remove one or the other", n)
	case n == 0 && c.Version == 3 && !s.GetNoVips() && len(s.GetExcludedVips()) > 0:
		p.add(f("vips"), "required with version 3: a VRRPv3 advert lists at least one address (RFC 5798; keepalived refuses it too) and excludedVips are not listed: move one address to vips (or set noVips: true, keepalived's no_virtual_ipaddress, if every peer accepts adverts without addresses)")
	case n == 0 && c.Version == 3 && !s.GetNoVips():
		p.add(f("vips"), "required with version 3: at least one virtual address, e.g. [\"10.0.0.100/24\"] (a VRRPv3 advert lists at least one, RFC 5798); for an election without addresses (notify scripts only), set noVips: true (keepalived's no_virtual_ipaddress), or use version: 2")
	case n > vrrp.MaxAddrs:
		// An advert carries every VIP: the master could send none and
		// the backups would all take over.
		p.add(f("vips"), "%d addresses: at most %d fit in an advert; split them across instances", n, vrrp.MaxAddrs)
	}
	for i, str := range s.GetVips() {
		v, err := vip.Parse(str)
		if err != nil {
			p.add(fmt.Sprintf("%s[%d]", f("vips"), i), "%v", err)
			continue
		}
		if fam := familyOf(v.Prefix.Addr()); fam != in.Family {
			p.add(fmt.Sprintf("%s[%d]", f("vips"), i), "%s is %s in an %s instance: one family per instance (RFC 5798); move it to excludedVips (held, not advertised) or to an instance of its own", v.Prefix.Addr(), fam, in.Family)
			continue
		}
		in.VIPs = append(in.VIPs, v)
		c.Addrs = append(c.Addrs, v.Prefix.Addr())
	}
	in.Advertised = len(in.VIPs)
	for i, str := range s.GetExcludedVips() {
		v, err := vip.Parse(str)
		if err != nil {
			p.add(fmt.Sprintf("%s[%d]", f("excludedVips"), i), "%v", err)
			continue
		}
		in.VIPs = append(in.VIPs, v)
	}
	resolveRouting(p, f, s, in)

	switch t := strings.ToUpper(s.GetAuth().GetType()); t {
	case "", "NONE":
		c.AuthType = vrrp.AuthNone
		if s.GetAuth().GetPassword() != "" {
			p.add(f("auth.password"), "set but auth.type is not PASS")
		}
	case "PASS", "AH":
		c.AuthType = vrrp.AuthSimple
		if t == "AH" {
			c.AuthType = vrrp.AuthAH
		}
		pw := s.GetAuth().GetPassword()
		switch {
		case c.Version != 2:
			p.add(f("auth.type"), "authentication exists only in VRRPv2: set version: 2, or remove auth")
		case pw == "":
			p.add(f("auth.password"), "required with auth.type %s", t)
		case len(pw) > MaxPasswordLen:
			p.add(f("auth.password"), "%d characters: VRRPv2 carries at most 8 (keepalived silently cut it; haa asks you to)", len(pw))
		default:
			copy(c.AuthData[:], pw)
		}
	default:
		p.add(f("auth.type"), "%q: use PASS, AH or NONE", s.GetAuth().GetType())
	}

	peers := map[netip.Addr]bool{}
	for i, str := range s.GetUnicastPeers() {
		a, err := netip.ParseAddr(strings.TrimSpace(str))
		switch {
		case err != nil:
			p.add(fmt.Sprintf("%s[%d]", f("unicastPeers"), i), "%q is not an IP address", str)
		case familyOf(a) != in.Family:
			p.add(fmt.Sprintf("%s[%d]", f("unicastPeers"), i), "%s is %s and the instance %s: peers are of the instance's family", a, familyOf(a), in.Family)
		case a.IsMulticast() || a.IsUnspecified():
			p.add(fmt.Sprintf("%s[%d]", f("unicastPeers"), i), "%s is not a unicast address", a)
		case peers[a]:
			p.add(fmt.Sprintf("%s[%d]", f("unicastPeers"), i), "%s is listed twice", a)
		default:
			peers[a] = true
			in.Peers = append(in.Peers, a)
		}
	}
	in.PeersFromFleet = s.GetUnicastPeersFromFleet()
	if src := s.GetSourceAddress(); src != "" {
		a, err := netip.ParseAddr(src)
		if err != nil || familyOf(a) != in.Family || a.IsMulticast() || a.IsUnspecified() || a.Zone() != "" {
			p.add(f("sourceAddress"), "%q is not a unicast %s address (the instance's family)", src, in.Family)
		} else {
			c.Primary = a
			if peers[a] {
				p.add(f("unicastPeers"), "contains this node's own sourceAddress %s", a)
			}
		}
	}
	for i, v := range in.VIPs {
		if a := v.Prefix.Addr(); peers[a] || a == c.Primary {
			p.add(f(in.VIPField(i)), "%s is also a unicast peer or the source address: a VIP must be an address of its own", a)
		}
	}
	in.Group = vrrp.GroupV4
	if in.IPv6() {
		in.Group = vrrp.GroupV6
	}
	if g := s.GetMulticastGroup(); g != "" {
		a, err := netip.ParseAddr(g)
		switch {
		case in.IPv6() && (err != nil || !a.Is6() || !a.IsLinkLocalMulticast() || a.Zone() != ""):
			p.add(f("multicastGroup"), "%q is not a link-local IPv6 multicast address (ff02::/16), as keepalived's mcast_dst_ip wants", g)
		case !in.IPv6() && (err != nil || !a.Is4() || !a.IsMulticast()):
			p.add(f("multicastGroup"), "%q is not an IPv4 multicast address (224.0.0.0/4)", g)
		case len(s.GetUnicastPeers()) > 0:
			p.add(f("multicastGroup"), "set together with unicastPeers: use one or the other")
		case in.PeersFromFleet:
			p.add(f("multicastGroup"), "set together with unicastPeersFromFleet: use one or the other")
		default:
			in.Group = a
		}
	}
	if s.GetV3ChecksumAsV2() && in.IPv6() {
		p.add(f("v3ChecksumAsV2"), "only for IPv4: the IPv6 checksum always covers the pseudo-header")
	}
	resolveVMAC(p, f, s, in)
	in.Accept = s.AcceptMode == nil || s.GetAcceptMode()
	if s.GetV3ChecksumAsV2() {
		if c.Version != 3 {
			p.add(f("v3ChecksumAsV2"), "only meaningful with version: 3")
		}
		in.Checksum = vrrp.ChecksumV2Compat
	}

	g := s.GetGarp()
	in.GARP = vrrp.GARPConfig{Delay: DefaultGARPDelay, Repeat: DefaultGARPRepeat, RefreshRepeat: DefaultRefreshRepeat}
	if g.GetDelay() != nil {
		in.GARP.Delay = g.GetDelay().AsDuration()
	}
	if g != nil && g.Repeat != nil {
		in.GARP.Repeat = int(g.GetRepeat())
		if in.GARP.Repeat < 1 || in.GARP.Repeat > 255 {
			p.add(f("garp.repeat"), "%d is out of range 1..255", g.GetRepeat())
		}
	}
	in.GARP.Refresh = g.GetRefresh().AsDuration()
	if g != nil && g.RefreshRepeat != nil {
		in.GARP.RefreshRepeat = int(g.GetRefreshRepeat())
		if in.GARP.RefreshRepeat < 1 || in.GARP.RefreshRepeat > 255 {
			p.add(f("garp.refreshRepeat"), "%d is out of range 1..255", g.GetRefreshRepeat())
		}
	}
	in.GARP.Interval = g.GetInterval().AsDuration()
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"delay", in.GARP.Delay}, {"refresh", in.GARP.Refresh}, {"interval", in.GARP.Interval}} {
		if d.v < 0 {
			p.add(f("garp."+d.name), "%v must not be negative", d.v)
		}
	}
	if r := in.GARP.Refresh; r > 0 && (r < time.Second || r <= time.Duration(in.GARP.RefreshRepeat)*in.GARP.Interval) {
		p.add(f("garp.refresh"), "%v is too short: at least 1s and longer than refreshRepeat x interval (0 turns refreshing off)", r)
	}
	if in.GARP.Interval > time.Second {
		p.add(f("garp.interval"), "%v is too long: at most 1s between the GARPs of a burst", in.GARP.Interval)
	}
	in.Track = resolveTrack(p, f("track"), s.GetTrack(), trackers, missing)
	in.Notify = resolveNotify(p, f("notify"), s.GetNotify())
	return in
}

// MaxRouting bounds an instance's virtual routes, and its rules.
const MaxRouting = 1000

// resolveRouting validates an instance's virtualRoutes and virtualRules.
func resolveRouting(p *problems, f func(string) string, s *haav1.Instance, in *Instance) {
	for _, l := range []struct {
		field string
		n     int
	}{{"virtualRoutes", len(s.GetVirtualRoutes())}, {"virtualRules", len(s.GetVirtualRules())}} {
		if l.n > MaxRouting {
			p.add(f(l.field), "%d entries: at most %d per instance", l.n, MaxRouting)
			return
		}
	}
	in.Routes = parseRouting(p, f, "virtualRoutes", "route", s.GetVirtualRoutes(), vroute.ParseRoute)
	in.Rules = parseRouting(p, f, "virtualRules", "rule", s.GetVirtualRules(), vroute.ParseRule)
}

// parseRouting parses the entries of field (routes or rules: what), each
// once.
func parseRouting[T comparable](p *problems, f func(string) string, field, what string, strs []string, parse func(string) (T, error)) []T {
	var out []T
	seen := map[T]int{}
	for i, str := range strs {
		path := fmt.Sprintf("%s[%d]", f(field), i)
		v, err := parse(str)
		if err != nil {
			p.add(path, "%s", routingMsg(err))
			continue
		}
		if j, dup := seen[v]; dup {
			p.add(path, "the same %s as %s[%d]: list it once", what, field, j)
			continue
		}
		seen[v] = i
		out = append(out, v)
	}
	return out
}

// routingMsg is a route's or rule's problem without the string quoted
// again (the path names it).
func routingMsg(err error) string {
	if ve, ok := errors.AsType[*vroute.Error](err); ok {
		return ve.Msg
	}
	return err.Error()
}
