package keepalived

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/lvs"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// keepalived's checker defaults (check_api.c, check_data.c), where they
// differ from haa's.
const (
	// delay_loop: 60s (haa's check interval: 5s).
	kaDelayLoop = 60 * time.Second
	// connect_timeout: 5s (haa: 3s).
	kaConnectTimeout = 5 * time.Second
	// delay_before_retry: 1s (HTTP_GET and SSL_GET: 3s, check_http.c;
	// DNS_CHECK: delay_loop).
	kaDelayBeforeRetry     = time.Second
	kaDelayBeforeRetryHTTP = 3 * time.Second
	// retry: 1 (MISC_CHECK 0, DNS_CHECK 3). See finishCheck for fall.
	kaRetry     = 1
	kaRetryMisc = 0
	kaRetryDNS  = 3
	// persistence_timeout without a value (IPVS_SVC_PERSISTENT_TIMEOUT).
	kaPersistence = 360 * time.Second
	// The scheduler when lb_algo is not given (IPVS_DEF_SCHED).
	kaScheduler = "wlc"
)

// timing are the check timings a virtual server, a real server or a
// checker may set; a checker takes each from itself, else its real
// server, else its virtual server, else keepalived's default.
type timing struct {
	delayLoop, connectTimeout, delayBeforeRetry, warmup *time.Duration
	retry                                               *uint32
	tok                                                 map[string]token
}

// timingHandlers adds the handlers of the timing keywords to hs; tm is
// the timing they set (the element being read when they run).
func (c *conv) timingHandlers(tm func() *timing, hs map[string]handler, checker bool) {
	note := func(field string, t token) {
		x := tm()
		if x.tok == nil {
			x.tok = map[string]token{}
		}
		x.tok[field] = t
	}
	secs := func(field string, dst func(*timing) **time.Duration) handler {
		return line(func(st *stmt) {
			if v, ok := c.seconds(st, true, config.MaxCheckInterval); ok {
				if v <= 0 && field != "warmup" {
					c.r.errorf(st.args[0], st.kw.text, "must be more than 0: write e.g. %s 1", st.kw.text)
					return
				}
				*dst(tm()) = &v
				note(field, st.kw)
			}
		})
	}
	hs["delay_loop"] = secs("delay_loop", func(t *timing) **time.Duration { return &t.delayLoop })
	hs["connect_timeout"] = secs("connect_timeout", func(t *timing) **time.Duration { return &t.connectTimeout })
	hs["delay_before_retry"] = secs("delay_before_retry", func(t *timing) **time.Duration { return &t.delayBeforeRetry })
	hs["warmup"] = secs("warmup", func(t *timing) **time.Duration { return &t.warmup })
	retry := line(func(st *stmt) {
		t := tm()
		if _, dup := t.tok["retry"]; dup {
			c.r.errorf(st.kw, st.kw.text, "the retries are already set at line %d (retry and nb_get_retry are the same): keep one", t.tok["retry"].pos().Line)
			return
		}
		if n, ok := c.uintValue(st, 0, config.MaxRiseFall-1); ok {
			v := uint32(n)
			t.retry = &v
			note("retry", st.kw)
		}
	})
	hs["retry"] = retry
	if checker {
		// nb_get_retry: HTTP_GET/SSL_GET's old name of retry.
		hs["nb_get_retry"] = retry
		return
	}
	// Anywhere else keepalived does not know nb_get_retry: it reports an
	// unknown keyword and goes on without it. Files copied from an
	// HTTP_GET carry it into TCP_CHECKs and real servers, so it is not
	// refused as an unknown keyword would be; haa ignores it too.
	hs["nb_get_retry"] = line(func(st *stmt) { c.nbGetRetryIgnored(st, "") })
}

// nbGetRetryIgnored warns that nb_get_retry is ignored where it is (in
// checker kind, or a real or virtual server: ""), as keepalived does.
func (c *conv) nbGetRetryIgnored(st *stmt, kind string) {
	where := "here"
	if kind != "" {
		where = "in " + kind
	}
	c.r.warnf(st.kw, st.kw.text, "keepalived does not know nb_get_retry %s (only HTTP_GET and SSL_GET have it): it reports an unknown keyword and ignores it, so the retries are not changed, and haa ignores it too; write retry N in the checker to set them", where)
}

// vsgDef is a virtual_server_group: its entries in haa's group syntax,
// each with its line.
type vsgDef struct {
	kw      token
	entries []string
	toks    []token
	first   netip.AddrPort // the first address entry (fwmark: unset)
	fwmark  bool           // its entries are fwmarks
}

// vsGroupDef reads `virtual_server_group NAME { ... }`: entries
// "IP[-LAST|/LEN] PORT" and "fwmark N [inet|inet6]", as keepalived.
func (c *conv) vsGroupDef(st *stmt) {
	t, ok := c.value(st, "virtual_server_group NAME { ... }")
	if !ok {
		return
	}
	if c.vsgs == nil {
		c.vsgs = map[string]*vsgDef{}
	}
	if old := c.vsgs[t.text]; old != nil {
		c.r.errorf(t, st.kw.text, "virtual_server_group %s is already defined at %s: keep one", t.text, lineOf(old.kw, t))
		return
	}
	g := &vsgDef{kw: st.kw}
	c.vsgs[t.text] = g
	for _, e := range st.block {
		if e.hasBlock {
			c.r.errorf(e.open, st.kw.text, "an entry takes no block: write IP PORT, IP-LAST PORT or fwmark N per line")
			continue
		}
		if e.kw.text == "fwmark" {
			if len(e.args) == 0 {
				c.r.errorf(e.kw, st.kw.text, "fwmark needs a number: write fwmark N")
				continue
			}
			if len(e.args) > 1 {
				c.r.warnf(e.args[1], st.kw.text, "haa takes a fwmark service's family from its real servers: %s is ignored; remove it", joinTexts(e.args[1:]))
			}
			g.entries = append(g.entries, "fwmark "+e.args[0].text)
			g.toks = append(g.toks, e.kw)
			g.fwmark = true
			continue
		}
		if len(e.args) == 0 || strings.Trim(e.args[0].text, "0") == "" {
			c.r.errorf(e.kw, st.kw.text, "%s has no port: haa has no all-ports services; give the port, or use a fwmark", e.kw.text)
			continue
		}
		host := e.kw.text
		if strings.Contains(host, ":") { // IPv6
			host = "[" + host + "]"
		}
		entry := host + ":" + e.args[0].text
		if len(g.entries) == 0 {
			first, _, _ := strings.Cut(strings.SplitN(e.kw.text, "/", 2)[0], "-")
			if a, err := netip.ParseAddr(first); err == nil {
				if p, err := strconv.ParseUint(e.args[0].text, 10, 16); err == nil {
					g.first = netip.AddrPortFrom(a, uint16(p))
				}
			}
		}
		g.entries = append(g.entries, entry)
		g.toks = append(g.toks, e.kw)
	}
}

// vsDef is a virtual_server being read.
type vsDef struct {
	kw      token
	group   *token // virtual_server group NAME: the name
	vs      *haav1.VirtualServer
	toks    map[string]token
	tm      timing
	host    *string
	addr    netip.AddrPort // the service address, unset for fwmark
	fwmark  bool
	proto   string
	sorry   *token // the sorry_server keyword
	sorryAP netip.AddrPort
	reals   []*rsDef
	// weight is the virtual server's weight: the weight of its real
	// servers that give none (keepalived 2.2; nil: 1).
	weight *uint32
}

// rsDef is a real_server being read.
type rsDef struct {
	kw     token
	addr   netip.Addr
	port   uint16 // 0: not given
	rs     *haav1.RealServer
	toks   fieldToks // the real server's own ("" and address are kw)
	tm     timing
	host   *string
	checks []*checkDef
}

// checkDef is a checker (HTTP_GET, TCP_CHECK, ...) being read.
type checkDef struct {
	kw          token
	hc          *haav1.HealthCheck
	http        *haav1.HttpCheck // HTTP_GET, SSL_GET
	tm          timing
	host        *string
	miscTimeout *time.Duration
	toks        map[string]token
}

// virtualServer reads `virtual_server IP PORT { ... }` or
// `virtual_server fwmark N { ... }`.
func (c *conv) virtualServer(st *stmt) {
	v := &vsDef{kw: st.kw, vs: &haav1.VirtualServer{}, toks: map[string]token{"": st.kw}}
	switch {
	case len(st.args) == 2 && st.args[0].text == "fwmark":
		n, ok := c.uintTok(st, st.args[1], 1, 1<<32-1)
		if !ok {
			return
		}
		v.vs.Fwmark, v.fwmark = uint32(n), true
		v.toks["fwmark"] = st.kw
	case len(st.args) == 2 && st.args[0].text == "group":
		// The group may come later in the file: keepalived finds it
		// once everything is read, and so does finishVS.
		v.group = &st.args[1]
		v.toks["group"] = st.kw
	case len(st.args) == 2:
		a, ok := c.addrTok(st, st.args[0])
		if !ok {
			return
		}
		p, ok := c.uintTok(st, st.args[1], 1, 65535)
		if !ok {
			return
		}
		v.addr = netip.AddrPortFrom(a, uint16(p))
		v.vs.Address = v.addr.String()
		v.toks["address"] = st.kw
	case len(st.args) == 1:
		c.r.errorf(st.args[0], st.kw.text, "needs a port: write virtual_server %s PORT (haa has no all-ports services: use a fwmark virtual_server for those)", st.args[0].text)
		return
	default:
		c.nargs(st, 2, 2, "virtual_server IP PORT, or virtual_server fwmark N")
		return
	}
	c.vss = append(c.vss, v)
	if c.vsHandlers == nil {
		c.vsHandlers, c.curVS = c.virtualServerHandlers()
	}
	prev := *c.curVS
	*c.curVS = v
	defer func() { *c.curVS = prev }()
	c.walkBlock(func() string { return "virtual_server " + joinTexts(st.args) }, st.block, c.vsHandlers, vsUnsupported, false)
}

// virtualServerHandlers are the keywords of a virtual_server block, built
// once per conversion (built for every virtual server, they cost a sixth
// of a large file's conversion): each reads the virtual server being read
// from the variable cur points to.
func (c *conv) virtualServerHandlers() (hs map[string]handler, cur **vsDef) {
	var v *vsDef
	hs = map[string]handler{
		"lb_algo":    line(func(st *stmt) { c.scheduler(st, v) }),
		"lvs_sched":  line(func(st *stmt) { c.scheduler(st, v) }),
		"lb_kind":    line(func(st *stmt) { c.forwarding(st, v) }),
		"lvs_method": line(func(st *stmt) { c.forwarding(st, v) }),
		// keepalived compares protocol names exactly (TCP, UDP, SCTP).
		"protocol": line(func(st *stmt) {
			if t, ok := c.value(st, "protocol TCP"); ok {
				switch t.text {
				case "TCP", "UDP", "SCTP":
					v.proto = t.text
					v.toks["protocol"] = st.kw
				default:
					c.r.errorf(t, st.kw.text, "%q is not a protocol: write TCP, UDP or SCTP, in capitals", t.text)
				}
			}
		}),
		"persistence_timeout": line(func(st *stmt) {
			if len(st.args) == 0 {
				// keepalived: no value is IPVS's default, 360 s
				// (check_parser.c pto_handler).
				v.vs.PersistenceTimeout = dur(kaPersistence)
				v.toks["persistenceTimeout"] = st.kw
				return
			}
			if d, ok := c.seconds(st, false, config.MaxPersistence); ok {
				v.vs.PersistenceTimeout = dur(d)
				v.toks["persistenceTimeout"] = st.kw
			}
		}),
		"persistence_granularity": line(func(st *stmt) {
			if t, ok := c.value(st, "persistence_granularity 255.255.255.0"); ok {
				if n, ok := c.prefixLen(st, t); ok {
					v.vs.PersistencePrefix = n
					v.toks["persistencePrefix"] = st.kw
				}
			}
		}),
		"sorry_server": line(func(st *stmt) {
			if !c.nargs(st, 1, 2, "sorry_server IP PORT") {
				return
			}
			a, ok := c.addrTok(st, st.args[0])
			if !ok {
				return
			}
			var port uint64
			if len(st.args) == 2 {
				if port, ok = c.uintTok(st, st.args[1], 1, 65535); !ok {
					return
				}
			}
			v.sorry, v.sorryAP = &st.kw, netip.AddrPortFrom(a, uint16(port))
			v.toks["sorryServer"] = st.kw
		}),
		"quorum": line(func(st *stmt) {
			if n, ok := c.uintValue(st, 1, 1<<31); ok {
				v.vs.Quorum = uint32(n)
				v.toks["quorum"] = st.kw
			}
		}),
		"hysteresis": line(func(st *stmt) {
			if n, ok := c.uintValue(st, 0, 1<<31); ok {
				v.vs.Hysteresis = uint32(n)
				v.toks["hysteresis"] = st.kw
			}
		}),
		"quorum_up": line(func(st *stmt) {
			if cmd, ok := c.quorumCommand(st); ok {
				v.vs.QuorumUp = cmd
				v.toks["quorumUp"] = st.kw
			}
		}),
		"quorum_down": line(func(st *stmt) {
			if cmd, ok := c.quorumCommand(st); ok {
				v.vs.QuorumDown = cmd
				v.toks["quorumDown"] = st.kw
			}
		}),
		"inhibit_on_failure": line(func(st *stmt) {
			if c.nargs(st, 0, 0, st.kw.text) {
				v.vs.InhibitOnFailure = true
				v.toks["inhibitOnFailure"] = st.kw
			}
		}),
		// keepalived applies these to the sorry server given before
		// them, and ignores them otherwise (check_parser.c ssvri_handler,
		// ss_forwarding_handler).
		"sorry_server_inhibit": line(func(st *stmt) {
			if !c.nargs(st, 0, 0, st.kw.text) {
				return
			}
			if v.sorry == nil {
				c.r.warnf(st.kw, st.kw.text, "no sorry_server before it: keepalived ignores it (\"used before or without sorry_server\"), and so does this conversion; move it after sorry_server, or remove it")
				return
			}
			v.vs.SorryServerInhibit = true
			v.toks["sorryServerInhibit"] = st.kw
		}),
		"sorry_server_lvs_method": line(func(st *stmt) {
			fwd, ok := c.forwardingValue(st)
			if !ok {
				return
			}
			if v.sorry == nil {
				c.r.warnf(st.kw, st.kw.text, "no sorry_server before it: keepalived ignores it (\"used without sorry_server\"), and so does this conversion; move it after sorry_server, or remove it")
				return
			}
			v.vs.SorryServerForwarding = fwd
			v.toks["sorryServerForwarding"] = st.kw
		}),
		"virtualhost": line(func(st *stmt) {
			if t, ok := c.value(st, "virtualhost www.example.com"); ok {
				v.host = &t.text
			}
		}),
		// keepalived 2.2: the default weight of the real servers.
		"weight": line(func(st *stmt) {
			if n, ok := c.uintValue(st, 0, config.MaxRealWeight); ok {
				w := uint32(n)
				v.weight = &w
				v.toks["weight"] = st.kw
			}
		}),
		"real_server": {fn: func(st *stmt) { c.realServer(st, v) }, repeat: true, block: blockAny},
	}
	c.timingHandlers(func() *timing { return &v.tm }, hs, false)
	return hs, &v
}

// addrTok parses an IP address.
func (c *conv) addrTok(st *stmt, t token) (netip.Addr, bool) {
	a, err := netip.ParseAddr(t.text)
	if err != nil || a.Zone() != "" {
		c.r.errorf(t, st.kw.text, "%q is not an IP address: write e.g. %s 10.0.0.10 80", t.text, st.kw.text)
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// prefixLen reads persistence_granularity: an IPv4 netmask
// (255.255.255.0) or, as keepalived takes for IPv6, a prefix length.
func (c *conv) prefixLen(st *stmt, t token) (uint32, bool) {
	if n, err := strconv.ParseUint(t.text, 10, 8); err == nil && n >= 1 && n <= 128 {
		return uint32(n), true
	}
	a, err := netip.ParseAddr(t.text)
	if err == nil && a.Is4() {
		b := a.As4()
		m := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		ones := uint32(0)
		for m&(1<<31) != 0 {
			ones++
			m <<= 1
		}
		if m == 0 && ones > 0 {
			return ones, true
		}
	}
	c.r.errorf(t, st.kw.text, "%q is not a netmask: write e.g. persistence_granularity 255.255.255.0 (or a prefix length such as 24)", t.text)
	return 0, false
}

func (c *conv) scheduler(st *stmt, v *vsDef) {
	if old, dup := v.toks["scheduler"]; dup {
		c.r.errorf(st.kw, st.kw.text, "the scheduler is already set at line %d (lb_algo and lvs_sched are the same): keep one", old.pos().Line)
		return
	}
	t, ok := c.value(st, "lb_algo wrr")
	if !ok {
		return
	}
	if !slices.Contains(lvs.Schedulers, t.text) {
		c.r.errorf(t, st.kw.text, "%q is not an IPVS scheduler: write one of %s", t.text, strings.Join(lvs.Schedulers, ", "))
		return
	}
	v.vs.Scheduler = t.text
	v.toks["scheduler"] = st.kw
}

// forwarding reads lb_kind / lvs_method (NAT, DR, TUN: keepalived compares
// them exactly).
func (c *conv) forwarding(st *stmt, v *vsDef) {
	if old, dup := v.toks["forwarding"]; dup {
		c.r.errorf(st.kw, st.kw.text, "the forwarding method is already set at line %d (lb_kind and lvs_method are the same): keep one", old.pos().Line)
		return
	}
	if fwd, ok := c.forwardingValue(st); ok {
		v.vs.Forwarding = fwd
		v.toks["forwarding"] = st.kw
	}
}

// kaForwarding is keepalived's name of a forwarding method as haa writes
// it.
func kaForwarding(f string) string {
	switch f {
	case "dr":
		return "DR"
	case "tunnel":
		return "TUN"
	}
	return "NAT"
}

// forwardingValue reads a forwarding method (NAT, DR, TUN: keepalived
// compares them exactly) as haa writes it.
func (c *conv) forwardingValue(st *stmt) (string, bool) {
	t, ok := c.value(st, st.kw.text+" DR")
	if !ok {
		return "", false
	}
	switch t.text {
	case "NAT":
		return "nat", true
	case "DR":
		return "dr", true
	case "TUN":
		return "tunnel", true
	}
	c.r.errorf(t, st.kw.text, "%q is not a forwarding method: write NAT, DR or TUN, in capitals", t.text)
	return "", false
}

// quorumCommand reads quorum_up/quorum_down (and notify_up/notify_down):
// haa runs them as root; a user given on the line is not honoured.
func (c *conv) quorumCommand(st *stmt) ([]string, bool) {
	cmd, user, ok := c.notifyCommand(st)
	if ok && user != "" {
		c.r.warnf(st.args[1], st.kw.text, "haa runs this command as root, not as %s: make sure it may, and remove the user", user)
	}
	if ok && user == "" && c.g.scriptUser != "" {
		c.r.warnf(st.kw, st.kw.text, "haa runs this command as root, not as script_user %s: make sure it may", c.g.scriptUser)
	}
	return cmd, ok
}

// realServer reads `real_server IP [PORT] { ... }`.
func (c *conv) realServer(st *stmt, v *vsDef) {
	if !c.nargs(st, 1, 2, "real_server IP PORT") {
		return
	}
	a, ok := c.addrTok(st, st.args[0])
	if !ok {
		return
	}
	r := &rsDef{kw: st.kw, addr: a, rs: &haav1.RealServer{}}
	if len(st.args) == 2 {
		p, ok := c.uintTok(st, st.args[1], 1, 65535)
		if !ok {
			return
		}
		r.port = uint16(p)
	}
	v.reals = append(v.reals, r)
	if c.rsHandlers == nil {
		c.rsHandlers = c.realServerHandlers()
	}
	prev := c.curRS
	c.curRS = r
	defer func() { c.curRS = prev }()
	c.walkBlock(func() string { return "real_server " + joinTexts(st.args) }, st.block, c.rsHandlers, rsUnsupported, false)
}

// realServerHandlers are the keywords of a real_server block, built once
// per conversion: each sets c.curRS, the real server being read (built for
// every real server, they cost a third of a large file's conversion).
func (c *conv) realServerHandlers() map[string]handler {
	hs := map[string]handler{
		"weight": line(func(st *stmt) {
			r := c.curRS
			if n, ok := c.uintValue(st, 0, config.MaxRealWeight); ok {
				r.rs.Weight = proto.Uint32(uint32(n))
				r.toks.set("weight", st.kw)
			}
		}),
		// inhibit_on_failure [true|false]: the real server's own,
		// over the virtual server's.
		"inhibit_on_failure": line(func(st *stmt) {
			r := c.curRS
			if !c.nargs(st, 0, 1, st.kw.text+" [true|false]") {
				return
			}
			on := true
			if len(st.args) == 1 {
				b, ok := c.boolTok(st, st.args[0])
				if !ok {
					return
				}
				on = b
			}
			r.rs.InhibitOnFailure = proto.Bool(on)
			r.toks.set("inhibitOnFailure", st.kw)
		}),
		"notify_up": line(func(st *stmt) {
			r := c.curRS
			if cmd, ok := c.quorumCommand(st); ok {
				r.rs.NotifyUp = cmd
				r.toks.set("notifyUp", st.kw)
			}
		}),
		"notify_down": line(func(st *stmt) {
			r := c.curRS
			if cmd, ok := c.quorumCommand(st); ok {
				r.rs.NotifyDown = cmd
				r.toks.set("notifyDown", st.kw)
			}
		}),
		// Connection limits: keepalived sends them with every change of
		// the real server (0 when not given); haa sets them only when the
		// file gives them.
		"uthreshold": line(func(st *stmt) {
			r := c.curRS
			if n, ok := c.uintValue(st, 0, 1<<32-1); ok {
				r.rs.UpperThreshold = proto.Uint32(uint32(n))
				r.toks.set("upperThreshold", st.kw)
			}
		}),
		"lthreshold": line(func(st *stmt) {
			r := c.curRS
			if n, ok := c.uintValue(st, 0, 1<<32-1); ok {
				r.rs.LowerThreshold = proto.Uint32(uint32(n))
				r.toks.set("lowerThreshold", st.kw)
			}
		}),
		"lvs_method": line(func(st *stmt) {
			r := c.curRS
			r.toks.set("lvs_method", st.kw)
			if len(st.args) == 1 {
				r.toks.set("lvs_method_value", st.args[0])
			}
		}),
		"virtualhost": line(func(st *stmt) {
			r := c.curRS
			if t, ok := c.value(st, "virtualhost www.example.com"); ok {
				r.host = &t.text
			}
		}),
	}
	c.timingHandlers(func() *timing { return &c.curRS.tm }, hs, false)
	for _, kind := range []string{"HTTP_GET", "SSL_GET", "TCP_CHECK", "SMTP_CHECK", "DNS_CHECK", "MISC_CHECK", "UDP_CHECK", "PING_CHECK"} {
		hs[kind] = handler{fn: func(st *stmt) { c.checker(st, c.curRS) }, repeat: true, block: blockAny}
	}
	return hs
}

// checker reads one checker block of a real server. haa runs one health
// check per real server; keepalived runs every checker and the server is
// up while all pass, so a second checker is an error rather than dropped.
func (c *conv) checker(st *stmt, r *rsDef) {
	if len(r.checks) > 0 {
		c.r.errorf(st.kw, st.kw.text, "haa runs one health check per real server (the %s at line %d): keep one checker, or combine the checks in a MISC_CHECK script", r.checks[0].kw.text, r.checks[0].kw.pos().Line)
		return
	}
	if len(st.args) > 0 {
		c.r.errorf(st.args[0], st.kw.text, "takes no value (%q): write %s { ... }", st.args[0].text, st.kw.text)
		return
	}
	ck := &checkDef{kw: st.kw, hc: &haav1.HealthCheck{}, toks: map[string]token{"": st.kw}}
	var given map[string]token // the checker's keywords, for the deferred checks
	r.checks = append(r.checks, ck)
	hs := map[string]handler{}
	unsup := map[string]unsupported{}
	for k, v := range checkerUnsupported {
		unsup[k] = v
	}
	c.timingHandlers(func() *timing { return &ck.tm }, hs, st.kw.text == "HTTP_GET" || st.kw.text == "SSL_GET")
	if st.kw.text != "HTTP_GET" && st.kw.text != "SSL_GET" {
		kind := st.kw.text
		hs["nb_get_retry"] = line(func(st *stmt) { c.nbGetRetryIgnored(st, kind) })
	}
	port := line(func(st *stmt) {
		if n, ok := c.uintValue(st, 1, 65535); ok {
			ck.hc.Port = uint32(n)
			ck.toks["port"] = st.kw
		}
	})
	hs["connect_port"] = port
	switch st.kw.text {
	case "HTTP_GET", "SSL_GET":
		ck.http = &haav1.HttpCheck{}
		if st.kw.text == "HTTP_GET" {
			ck.hc.Http = ck.http
		} else {
			// keepalived's SSL_GET does not verify the server's
			// certificate, and neither does haa's https by default.
			ck.hc.Https = ck.http
		}
		var first *token
		hs["virtualhost"] = line(func(st *stmt) {
			if t, ok := c.value(st, "virtualhost www.example.com"); ok {
				ck.host = &t.text
			}
		})
		hs["url"] = blkRepeat(func(st *stmt) {
			if first != nil {
				// keepalived checks every url (all must pass); haa
				// checks one: dropping one would pass servers
				// keepalived fails.
				c.r.errorf(st.kw, st.kw.text, "a second url is not supported: haa checks one path per real server; keep the most telling one")
				return
			}
			first = &st.kw
			c.url(st, ck)
		})
		for k, v := range httpUnsupported {
			unsup[k] = v
		}
		defer func() {
			if first == nil && missing(given, "url") {
				c.r.errorf(st.kw, st.kw.text, "no url block: add url { path / } (keepalived ignores a %s without url)", st.kw.text)
			}
		}()
	case "TCP_CHECK":
		ck.hc.Tcp = &haav1.TcpCheck{}
	case "SMTP_CHECK":
		sm := &haav1.SmtpCheck{}
		ck.hc.Smtp = sm
		hs["helo_name"] = line(func(st *stmt) {
			if t, ok := c.value(st, "helo_name mail.example.com"); ok {
				sm.HeloName = t.text
				ck.toks["smtp.heloName"] = st.kw
			}
		})
		unsup["host"] = fail("haa checks the real server itself: move connect_port (and connect_timeout) out of the host block into SMTP_CHECK and remove the host block (check other hosts with a MISC_CHECK)")
	case "DNS_CHECK":
		d := &haav1.DnsCheck{}
		ck.hc.Dns = d
		hs["type"] = line(func(st *stmt) {
			if t, ok := c.value(st, "type A"); ok {
				if !slices.Contains(config.DNSTypes, t.text) {
					c.r.errorf(t, st.kw.text, "%q is not a query type haa asks: write one of %s", t.text, strings.Join(config.DNSTypes, ", "))
					return
				}
				d.Type = t.text
				ck.toks["dns.type"] = st.kw
			}
		})
		hs["name"] = line(func(st *stmt) {
			if t, ok := c.value(st, "name example.com"); ok {
				d.Name = t.text
				ck.toks["dns.name"] = st.kw
			}
		})
	case "MISC_CHECK":
		e := &haav1.ExecCheck{}
		ck.hc.Exec = e
		// No connection: no connect_* keywords.
		delete(hs, "connect_port")
		delete(hs, "connect_timeout")
		delete(unsup, "connect_ip")
		delete(unsup, "bindto")
		delete(unsup, "bind_port")
		delete(unsup, "bind_if")
		delete(unsup, "fwmark")
		hs["misc_path"] = line(func(st *stmt) {
			if !c.nargs(st, 1, -1, `misc_path "/path/to/check ARGS"`) {
				return
			}
			if cmd, ok := c.command(st, st.args); ok {
				e.Command = cmd
				ck.toks["exec.command"] = st.kw
			}
		})
		hs["misc_timeout"] = line(func(st *stmt) {
			if v, ok := c.seconds(st, false, config.MaxTimeout); ok {
				if v == 0 {
					return // keepalived: 0 = the default (delay_loop)
				}
				ck.miscTimeout = &v
				ck.toks["misc_timeout"] = st.kw
			}
		})
		hs["misc_dynamic"] = line(func(st *stmt) {
			if c.nargs(st, 0, 0, st.kw.text) {
				e.Dynamic = true
			}
		})
		hs["user"] = line(func(st *stmt) {
			if u, ok := c.user(st); ok {
				e.User = u
				ck.toks["exec.user"] = st.kw
			}
		})
		defer func() {
			if len(e.Command) == 0 && missing(given, "misc_path") {
				c.r.errorf(st.kw, st.kw.text, "no misc_path: add misc_path \"/path/to/check\"")
			}
			if e.User == "" {
				e.User = c.g.scriptUser
			}
		}()
	case "UDP_CHECK":
		u := &haav1.UdpCheck{}
		ck.hc.Udp = u
		hs["payload"] = line(func(st *stmt) {
			if !c.nargs(st, 1, -1, "payload 68656c6c6f") {
				return
			}
			if b, ok := c.hexText(st); ok {
				u.Payload = b
				ck.toks["udp.payload"] = st.kw
			}
		})
		hs["require_reply"] = line(func(st *stmt) {
			if len(st.args) == 0 {
				c.r.warnf(st.kw, st.kw.text, "haa cannot require just any reply: without data, a server fails only when an ICMP error comes back; give the reply's first bytes (hex) to require a reply")
				return
			}
			if b, ok := c.hexText(st); ok {
				u.Expect = b
				ck.toks["udp.expect"] = st.kw
			}
		})
		lenWarn := line(func(st *stmt) {
			c.r.warnf(st.kw, st.kw.text, "haa does not check the length of the reply: remove it")
		})
		hs["min_reply_length"] = lenWarn
		hs["max_reply_length"] = lenWarn
	case "PING_CHECK":
		ck.hc.Ping = &haav1.PingCheck{}
		hs["connect_port"] = line(func(st *stmt) {
			c.r.warnf(st.kw, st.kw.text, "a ping has no port: remove it")
		})
	}
	given = c.walk(st.kw.text, st.block, hs, unsup)
}

// hexText decodes keepalived's hex strings (UDP_CHECK payload and
// require_reply: hex digits, spaces allowed) into the text haa's udp check
// takes. Binary data is refused: haa's payload and expect are text.
func (c *conv) hexText(st *stmt) (string, bool) {
	h := strings.ReplaceAll(joinTexts(st.args), " ", "")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) == 0 {
		c.r.errorf(st.args[0], st.kw.text, "%q is not a hex string (keepalived's form): write the bytes in hex, e.g. %s 68656c6c6f", joinTexts(st.args), st.kw.text)
		return "", false
	}
	s := string(b)
	if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r == 0 }) {
		c.r.errorf(st.args[0], st.kw.text, "the bytes are not text (UTF-8 without NUL), and haa's udp check sends and expects text: check this server with a MISC_CHECK instead")
		return "", false
	}
	return s, true
}

// url reads the first url block of an HTTP_GET/SSL_GET.
func (c *conv) url(st *stmt, ck *checkDef) {
	h := ck.http
	hs := map[string]handler{
		"path": line(func(st *stmt) {
			if t, ok := c.value(st, "path /"); ok {
				h.Path = t.text
				ck.toks["http.path"] = st.kw
			}
		}),
		"digest": line(func(st *stmt) {
			if t, ok := c.value(st, "digest 9b3a0c85a887a256d6939da88aabd8cd"); ok {
				h.Digest = t.text
				ck.toks["http.digest"] = st.kw
			}
		}),
		// keepalived 2.x takes codes and ranges ("200-299 301"); the
		// default is 200..299, as haa's.
		"status_code": line(func(st *stmt) {
			if !c.nargs(st, 1, -1, "status_code 200") {
				return
			}
			var codes []uint32
			for _, a := range st.args {
				lo, hi, ok := strings.Cut(a.text, "-")
				if !ok {
					hi = lo
				}
				l, err1 := strconv.ParseUint(lo, 10, 16)
				u, err2 := strconv.ParseUint(hi, 10, 16)
				if err1 != nil || err2 != nil || l < 100 || u > 599 || l > u {
					c.r.errorf(a, st.kw.text, "%q is not an HTTP status code or range (100..599): write e.g. status_code 200 or status_code 200-299", a.text)
					return
				}
				for code := l; code <= u; code++ {
					if !slices.Contains(codes, uint32(code)) {
						codes = append(codes, uint32(code))
					}
				}
			}
			slices.Sort(codes)
			if len(codes) == 100 && codes[0] == 200 && codes[99] == 299 {
				codes = nil // haa's default
			}
			h.StatusCodes = codes
			ck.toks["http.statusCodes"] = st.kw
		}),
		"virtualhost": line(func(st *stmt) {
			if t, ok := c.value(st, "virtualhost www.example.com"); ok {
				ck.host = &t.text
			}
		}),
		"regex": line(func(st *stmt) {
			if !c.nargs(st, 1, -1, `regex "pattern"`) {
				return
			}
			// keepalived's regex is PCRE2, haa's RE2: the common
			// subset is the same; validation reports the rest.
			h.Regex = joinTexts(st.args)
			ck.toks["http.regex"] = st.kw
		}),
	}
	given := c.walk("url", st.block, hs, urlUnsupported)
	if h.Path == "" && missing(given, "path") {
		c.r.errorf(st.kw, st.kw.text, "no path: add path / (keepalived ignores a url without path)")
	}
}

// finishVS converts a virtual server.
func (c *conv) finishVS(v *vsDef, idx int) *haav1.VirtualServer {
	vs := v.vs
	path := fmt.Sprintf("virtualServers[%d]", idx)
	if v.group != nil {
		g := c.vsgs[v.group.text]
		if g == nil {
			c.r.warnf(*v.group, "virtual_server", "NOT RUN: there is no virtual_server_group %s; keepalived ignores this virtual server (\"Virtual server group %s specified but not configured\"), and so does haa. Define the group, or fix the name", v.group.text, v.group.text)
			return nil
		}
		if len(g.entries) == 0 {
			c.r.warnf(*v.group, "virtual_server", "NOT RUN: virtual_server_group %s (at %s) has no usable entry: keepalived ignores such a group, and so does haa", v.group.text, lineOf(g.kw, *v.group))
			return nil
		}
		vs.Group = g.entries
		v.toks["group"] = g.kw // its problems are the group's
		v.fwmark, v.addr = g.fwmark, g.first
		for i, t := range g.toks {
			v.toks[fmt.Sprintf("group[%d]", i)] = t
		}
	}
	defer c.record(path, v.toks)
	switch {
	case v.proto != "" && v.fwmark:
		c.r.warnf(v.toks["protocol"], "protocol", "a fwmark service balances every protocol the mark selects: keepalived ignores protocol here, and so does this conversion; remove it")
	case v.proto != "" && v.proto != "TCP":
		vs.Protocol = strings.ToLower(v.proto)
	case v.proto == "" && !v.fwmark:
		// keepalived 2.2.7: "no protocol set - defaulting to UDP" (haa's
		// default is TCP).
		vs.Protocol = "udp"
		c.r.warnf(v.kw, v.kw.text, "keepalived defaults to UDP here; write protocol TCP if this service is TCP")
	}
	if vs.Scheduler == "" {
		vs.Scheduler = kaScheduler
		c.r.warnf(v.kw, v.kw.text, "no lb_algo: keepalived uses %s (haa's default is wrr), and so does this conversion; write lb_algo %s to say so", kaScheduler, kaScheduler)
	}
	keepPort := vs.Forwarding == "dr" || vs.Forwarding == "tunnel"
	if v.sorry != nil {
		// The sorry server's port as keepalived programs it
		// (check_data.c validate_check_config): with DR or TUN (its own
		// sorry_server_lvs_method, else the service's), the service's
		// port, or none (0) for a fwmark service, whose packets keep
		// their ports; with NAT, the port given (an address service's
		// port when none is given: the same connections).
		keepPort := keepPort
		fwd := vs.Forwarding
		if f := vs.GetSorryServerForwarding(); f != "" {
			fwd, keepPort = f, f == "dr" || f == "tunnel"
		}
		ap := v.sorryAP
		switch {
		case ap.Port() == 0 && !v.fwmark:
			if !keepPort {
				c.r.warnf(*v.sorry, "sorry_server", "keepalived programs a NAT sorry server given without a port with port 0, which sends each connection to the port it came to (%d here); haa programs port %d: the same connections, but ipvsadm -S shows :%d where keepalived's shows :0; write sorry_server %s %d to say so", v.addr.Port(), v.addr.Port(), v.addr.Port(), ap.Addr(), v.addr.Port())
			}
			ap = netip.AddrPortFrom(ap.Addr(), v.addr.Port())
		case keepPort && !v.fwmark && ap.Port() != v.addr.Port():
			c.r.warnf(*v.sorry, "sorry_server", "%s forwarding cannot change the port: keepalived uses port %d, and so does this conversion; write sorry_server %s %d", kaForwarding(fwd), v.addr.Port(), ap.Addr(), v.addr.Port())
			ap = netip.AddrPortFrom(ap.Addr(), v.addr.Port())
		case keepPort && v.fwmark && ap.Port() != 0:
			c.r.warnf(*v.sorry, "sorry_server", "a fwmark service with %s forwarding keeps the packets' ports: keepalived clears this port (\"sorry server has port specified - clearing\") and programs port 0, and so does this conversion; write sorry_server %s", kaForwarding(fwd), ap.Addr())
			ap = netip.AddrPortFrom(ap.Addr(), 0)
		}
		if ap.Port() != 0 {
			vs.SorryServer = ap.String()
		} else {
			vs.SorryServer = ap.Addr().String() // port 0: the packets' own
		}
	}
	var checks []*haav1.HealthCheck
	var firstCheck map[string]token // the tokens of the first real server's check
	var weights uint64
	for k, r := range v.reals {
		rp := fmt.Sprintf("%s.realServers[%d]", path, k)
		rs := r.rs
		port := r.port
		switch {
		case v.fwmark && keepPort && port != 0:
			// keepalived clears the port in the IPVS table only: its
			// checker copied the address, port included, when the
			// file was read (check_data.c "has port specified -
			// clearing"), so the check below keeps it.
			also := ""
			if len(r.checks) > 0 && r.checks[0].kw.text != "MISC_CHECK" && r.checks[0].kw.text != "PING_CHECK" {
				also = fmt.Sprintf("; its check still connects to port %d, as keepalived's does", port)
			}
			c.r.warnf(r.kw, "real_server", "a fwmark service with %s forwarding keeps the packets' ports: keepalived programs this real server without its port, and so does this conversion%s", strings.ToUpper(vs.Forwarding), also)
			port = 0
		case !v.fwmark && keepPort && port != 0 && port != v.addr.Port():
			c.r.warnf(r.kw, "real_server", "%s forwarding cannot change the port: keepalived uses port %d, and so does this conversion; write real_server %s %d", strings.ToUpper(vs.Forwarding), v.addr.Port(), r.addr, v.addr.Port())
			port = v.addr.Port()
		}
		if port != 0 {
			rs.Address = netip.AddrPortFrom(r.addr, port).String()
		} else {
			rs.Address = r.addr.String()
		}
		if t, ok := r.toks.get("lvs_method"); ok {
			want := map[string]string{"nat": "NAT", "dr": "DR", "tunnel": "TUN", "": "NAT"}[vs.Forwarding]
			if vt, ok := r.toks.get("lvs_method_value"); !ok || vt.text != want {
				c.r.errorf(t, "lvs_method", "haa forwards every real server of a virtual server the same way (%s here): remove the real server's lvs_method, or make it %s", want, want)
			}
		}
		if r.rs.Weight == nil && v.weight != nil {
			rs.Weight = proto.Uint32(*v.weight)
			if _, ok := r.toks.get("weight"); !ok {
				r.toks.set("weight", v.toks["weight"])
			}
		}
		if r.rs.Weight != nil {
			weights += uint64(r.rs.GetWeight())
		} else {
			weights++
		}
		var hc *haav1.HealthCheck
		if len(r.checks) > 0 {
			toks := map[string]token{}
			hc = c.finishCheck(r.checks[0], r, v, toks)
			if port == 0 && r.port != 0 && hc.Port == 0 && hc.Ping == nil && hc.Exec == nil {
				hc.Port = uint32(r.port) // the port cleared above
				toks["port"] = r.kw
			}
			c.record(rp+".check", toks)
			if k == 0 {
				firstCheck = toks
			}
			rs.Check = hc
		}
		checks = append(checks, hc)
		c.recordRS(rp, r)
		vs.RealServers = append(vs.RealServers, rs)
	}
	// Real servers with the same check: one check on the virtual server.
	if len(checks) > 1 && checks[0] != nil {
		same := true
		for _, hc := range checks[1:] {
			same = same && hc != nil && proto.Equal(hc, checks[0])
		}
		if same {
			vs.Check = checks[0]
			for _, rs := range vs.RealServers {
				rs.Check = nil
			}
			// The first real server's check is where the virtual
			// server's comes from.
			c.record(path+".check", firstCheck)
		}
	}
	// keepalived lowers a quorum above the real servers' total weight
	// (the service could never come up) and a hysteresis not below the
	// quorum, with a log each; so does this conversion.
	q := uint64(max(vs.Quorum, 1))
	if q > weights && weights > 0 {
		c.r.warnf(v.toks["quorum"], "quorum", "%d is more than the real servers' weights add up to (%d): keepalived lowers it to %d, and so does this conversion; write quorum %d", q, weights, weights, weights)
		vs.Quorum = uint32(weights)
		q = weights
	}
	if uint64(vs.Hysteresis) >= q {
		c.r.warnf(v.toks["hysteresis"], "hysteresis", "%d is not below the quorum %d: keepalived uses %d, and so does this conversion; write hysteresis %d", vs.Hysteresis, q, q-1, q-1)
		vs.Hysteresis = uint32(q - 1)
	}
	return vs
}

// finishCheck converts a checker with its timings: each from the checker,
// else its real server, else its virtual server, else keepalived's
// default.
//
//   - interval = delay_loop (keepalived's default 60s; haa's 5s);
//   - timeout = connect_timeout (default 5s; haa's 3s), MISC_CHECK's
//     misc_timeout (default: delay_loop); haa needs it at most the
//     interval, keepalived does not: a longer one becomes the interval,
//     with a warning;
//   - fall = retry + 1: keepalived retries a failed check `retry` times
//     (every delay_before_retry) and marks the server down on the failure
//     after the last retry, that is after retry+1 failures in a row
//     (default retry 1, so fall 2; MISC_CHECK 0, DNS_CHECK 3); nb_get_retry
//     is HTTP_GET's old name of retry;
//   - retryDelay = delay_before_retry (default 1s, HTTP_GET and SSL_GET
//     3s, DNS_CHECK delay_loop);
//   - jitter = warmup (keepalived's default: delay_loop, as haa's);
//   - rise 1: one good check makes a failed server healthy, as keepalived.
//
// A value is written when the file gives it or when keepalived's default
// differs from haa's.
func (c *conv) finishCheck(ck *checkDef, r *rsDef, v *vsDef, toks map[string]token) *haav1.HealthCheck {
	hc := ck.hc
	for k, t := range ck.toks {
		if k == "" || !strings.Contains(k, "_") {
			toks[k] = t
		}
	}
	toks[""] = ck.kw
	kind := ck.kw.text
	pick := func(field string) (*time.Duration, token) {
		for _, tm := range []*timing{&ck.tm, &r.tm, &v.tm} {
			var d *time.Duration
			switch field {
			case "delay_loop":
				d = tm.delayLoop
			case "connect_timeout":
				d = tm.connectTimeout
			case "delay_before_retry":
				d = tm.delayBeforeRetry
			case "warmup":
				d = tm.warmup
			}
			if d != nil {
				return d, tm.tok[field]
			}
		}
		return nil, ck.kw
	}

	interval := kaDelayLoop
	d, from := pick("delay_loop")
	if d != nil {
		interval = *d
	}
	if d != nil || interval != config.DefaultCheckInterval {
		hc.Interval = dur(interval)
		toks["interval"] = from
	}

	timeout, timeoutTok, given := kaConnectTimeout, ck.kw, false
	what := "connect_timeout"
	if kind == "MISC_CHECK" {
		what = "misc_timeout"
		timeout = interval
		if ck.miscTimeout != nil {
			timeout, timeoutTok, given = *ck.miscTimeout, ck.toks["misc_timeout"], true
		}
	} else if d, t := pick("connect_timeout"); d != nil {
		timeout, timeoutTok, given = *d, t, true
	}
	if timeout > interval {
		src := "keepalived's default " + what
		if given {
			src = what
		}
		c.r.warnf(timeoutTok, timeoutTok.text, "%s %s is longer than the check interval %s: haa needs the timeout to be at most the interval, so it is %s; shorten %s or lengthen delay_loop", src, secs(timeout), secs(interval), secs(interval), what)
		timeout = interval
	}
	if given || timeout != min(config.DefaultCheckTimeout, interval) {
		hc.Timeout = dur(timeout)
		toks["timeout"] = timeoutTok
	}

	retry := uint32(kaRetry)
	switch kind {
	case "MISC_CHECK":
		retry = kaRetryMisc
	case "DNS_CHECK":
		retry = kaRetryDNS
	}
	retryTok := ck.kw
	for _, tm := range []*timing{&ck.tm, &r.tm, &v.tm} {
		if tm.retry != nil {
			retry, retryTok = *tm.retry, tm.tok["retry"]
			break
		}
	}
	if retry+1 != config.DefaultFall {
		hc.Fall = retry + 1
		toks["fall"] = retryTok
	}

	rd, given := kaDelayBeforeRetry, false
	switch kind {
	case "DNS_CHECK":
		rd = interval
	case "HTTP_GET", "SSL_GET":
		rd = kaDelayBeforeRetryHTTP
	}
	d, from = pick("delay_before_retry")
	if d != nil {
		rd, given = *d, true
	}
	if rd > interval {
		if given {
			c.r.warnf(from, from.text, "delay_before_retry %s is longer than the check interval %s: haa retries at most one interval after a failure, so it is %s", secs(rd), secs(interval), secs(interval))
		}
		rd = interval
	}
	if rd <= 0 {
		rd = min(config.DefaultRetryDelay, interval)
	}
	if given || rd != min(config.DefaultRetryDelay, interval) {
		hc.RetryDelay = dur(rd)
		toks["retryDelay"] = from
	}

	if d, from := pick("warmup"); d != nil {
		w := *d
		if w > interval {
			c.r.warnf(from, from.text, "warmup %s is longer than the check interval %s: haa spreads the first checks over at most one interval, so it is %s", secs(w), secs(interval), secs(interval))
			w = interval
		}
		hc.Jitter = dur(w)
		toks["jitter"] = from
	}

	if ck.http != nil {
		host := ck.host
		for _, h := range []*string{r.host, v.host} {
			if host == nil {
				host = h
			}
		}
		if host != nil {
			ck.http.Host = *host
		}
		kindField := "http"
		if hc.Https != nil {
			kindField = "https"
		}
		for k, t := range ck.toks {
			if strings.HasPrefix(k, "http.") {
				toks[kindField+strings.TrimPrefix(k, "http")] = t
			}
		}
	}
	return hc
}
