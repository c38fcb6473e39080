package keepalived

import (
	"cmp"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/vip"
	"github.com/haa-dev/haa/node/vroute"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// ownerPriority is the priority of the address owner.
const ownerPriority = 255

// Tracker kinds, and the keepalived block that defines each.
const (
	kindScript    = "script"
	kindFile      = "file"
	kindProcess   = "process"
	kindInterface = "interface"
)

var kindBlock = map[string]string{
	kindScript:    "vrrp_script",
	kindFile:      "track_file", // or its old name vrrp_track_file
	kindProcess:   "vrrp_track_process",
	kindInterface: "track_interface",
}

// trackDef is one tracker: a vrrp_script, track_file (vrrp_track_file),
// vrrp_track_process, or an interface some instance tracks.
type trackDef struct {
	kind string
	kw   token // the defining keyword (an interface's: its first reference)
	name string
	t    *haav1.Tracker
	toks map[string]token // field path in the tracker -> token
	used bool
	// lateRef: a reference before the definition was ignored, as
	// keepalived ignores it (and said so).
	lateRef bool
}

// lineOf says where t is for a problem at from: "line N" in the same
// file, else "FILE:N".
func lineOf(t, from token) string {
	if t.file != nil && from.file != nil && *t.file != *from.file {
		return t.pos().String()
	}
	return fmt.Sprintf("line %d", t.lineNo)
}

// block names the keepalived block that defines d, as the file writes it.
func (d *trackDef) block() string {
	if d.kind == kindInterface {
		return kindBlock[kindInterface]
	}
	return d.kw.text
}

// defineTracker starts the tracker a block defines (`vrrp_script NAME {`).
func (c *conv) defineTracker(st *stmt, kind string) *trackDef {
	t, ok := c.value(st, st.kw.text+" NAME { ... }")
	if !ok {
		return nil
	}
	if old, dup := c.trackers[t.text]; dup {
		if old.kind == kind {
			c.r.errorf(t, st.kw.text, "%s %s is already defined at %s: rename one of them", st.kw.text, t.text, at(old.kw, t))
		} else {
			c.r.errorf(t, st.kw.text, "%q is already the name of the %s at %s, and haa's trackers share one namespace: rename one of them", t.text, old.block(), at(old.kw, t))
		}
		return nil
	}
	d := &trackDef{kind: kind, kw: st.kw, name: t.text, t: &haav1.Tracker{Name: t.text}, toks: map[string]token{"": st.kw, "name": t}}
	c.trackers[d.name] = d
	c.trackerDefs = append(c.trackerDefs, d)
	return d
}

// weight converts `weight W [reverse]` (lim: the largest |W| haa allows).
func (c *conv) weight(st *stmt, lim int64) (int32, bool) {
	if !c.nargs(st, 1, 2, "weight -20") {
		return 0, false
	}
	if len(st.args) == 2 {
		if st.args[1].text == "reverse" {
			c.r.errorf(st.args[1], st.kw.text, "haa has no reversed weights: use a negative weight (subtracted while the check fails) or a positive one (added while it succeeds) instead, and remove reverse")
		} else {
			c.r.errorf(st.args[1], st.kw.text, "unknown weight option %q: write weight W", st.args[1].text)
		}
		return 0, false
	}
	w, ok := c.intTok(st, st.args[0], -lim, lim)
	return int32(w), ok
}

// vrrpScript converts `vrrp_script NAME { ... }` into a script tracker.
// keepalived's defaults are haa's: interval 1s, rise 1, fall 1, weight 0
// (failure means FAULT); its default timeout (0) means the interval, as
// haa's. Only what the block sets is written.
func (c *conv) vrrpScript(st *stmt) {
	d := c.defineTracker(st, kindScript)
	if d == nil {
		return
	}
	sc := &haav1.ScriptCheck{}
	d.t.Script = sc
	hs := map[string]handler{
		"script": line(func(st *stmt) {
			if !c.nargs(st, 1, -1, `script "/path/to/check ARGS"`) {
				return
			}
			if cmd, ok := c.command(st, st.args); ok {
				sc.Command = cmd
				d.toks["script.command"] = st.kw
			}
		}),
		"interval": line(func(st *stmt) {
			if v, ok := c.scriptSeconds(st, config.MaxCheckInterval); ok {
				sc.Interval = dur(v)
				d.toks["script.interval"] = st.kw
			}
		}),
		"timeout": line(func(st *stmt) {
			if v, ok := c.scriptSeconds(st, config.MaxTimeout); ok {
				sc.Timeout = dur(v)
				d.toks["script.timeout"] = st.kw
			}
		}),
		"weight": line(func(st *stmt) {
			if w, ok := c.weight(st, config.MaxWeight); ok {
				d.t.Weight = w
				d.toks["weight"] = st.kw
			}
		}),
		"rise": line(func(st *stmt) {
			if n, ok := c.uintValue(st, 1, config.MaxRiseFall); ok {
				sc.Rise = uint32(n)
				d.toks["script.rise"] = st.kw
			}
		}),
		"fall": line(func(st *stmt) {
			if n, ok := c.uintValue(st, 1, config.MaxRiseFall); ok {
				sc.Fall = uint32(n)
				d.toks["script.fall"] = st.kw
			}
		}),
		"user": line(func(st *stmt) {
			if u, ok := c.user(st); ok {
				sc.User = u
				d.toks["script.user"] = st.kw
			}
		}),
	}
	given := c.walk("vrrp_script "+d.name, st.block, hs, scriptUnsupported)
	if len(sc.Command) == 0 && missing(given, "script") {
		c.r.errorf(st.kw, st.kw.text, "vrrp_script %s has no script: add script \"/path/to/check\" (keepalived drops such a vrrp_script)", d.name)
	}
	if sc.User == "" {
		sc.User = c.g.scriptUser
	}
}

// scriptSeconds reads a vrrp_script interval or timeout: whole seconds;
// keepalived reads 0 as 1 (with a log), and so does this conversion.
//
// A value that is not a whole number ("0.5", "5s") keepalived ignores
// with a warning ("vrrp script interval '0.5' must be between 1 and ... -
// ignoring") and keeps its default: so does this conversion, warning.
func (c *conv) scriptSeconds(st *stmt, hi time.Duration) (time.Duration, bool) {
	if len(st.args) == 1 {
		if _, err := strconv.ParseUint(st.args[0].text, 10, 32); err != nil {
			def := "1 second"
			if st.kw.text == "timeout" {
				def = "the interval"
			}
			c.r.warnf(st.args[0], st.kw.text, "%q is not whole seconds: keepalived ignores this line (\"vrrp script %s '%s' ... - ignoring\") and keeps its default, %s, and so does haa; write a whole number of seconds, e.g. %s 1", st.args[0].text, st.kw.text, st.args[0].text, def, st.kw.text)
			return 0, false
		}
	}
	v, ok := c.seconds(st, false, hi)
	if ok && v == 0 {
		c.r.warnf(st.args[0], st.kw.text, "0 is read as 1 second, as keepalived does: write %s 1", st.kw.text)
		v = time.Second
	}
	return v, ok
}

// trackFileDef converts `track_file NAME { file PATH; weight W }` (or
// vrrp_track_file, its old name).
func (c *conv) trackFileDef(st *stmt) {
	d := c.defineTracker(st, kindFile)
	if d == nil {
		return
	}
	fc := &haav1.FileCheck{}
	d.t.File = fc
	// keepalived's default weight of a tracked file is 1 (the number in
	// the file is added to the priority); haa's is 0 (a non-zero number
	// means FAULT): keepalived's is written out.
	d.t.Weight = 1
	hs := map[string]handler{
		"file": line(func(st *stmt) {
			if t, ok := c.value(st, "file /run/keepalived/track"); ok {
				fc.Path = t.text
				d.toks["file.path"] = st.kw
			}
		}),
		"weight": line(func(st *stmt) {
			if w, ok := c.weight(st, config.MaxFileWeight); ok {
				d.t.Weight = w
				d.toks["weight"] = st.kw
			}
		}),
		"init_file": line(func(st *stmt) {
			c.r.warnf(st.kw, st.kw.text, "haa does not create the file; a missing or empty file reads as 0: create it at boot if it must hold another value, and remove init_file")
		}),
	}
	given := c.walk(st.kw.text+" "+d.name, st.block, hs, nil)
	if fc.Path == "" && missing(given, "file") {
		c.r.errorf(st.kw, st.kw.text, "%s %s has no file: add file /path/to/file", st.kw.text, d.name)
	}
}

// trackProcessDef converts `vrrp_track_process NAME { ... }`.
func (c *conv) trackProcessDef(st *stmt) {
	d := c.defineTracker(st, kindProcess)
	if d == nil {
		return
	}
	pc := &haav1.ProcessCheck{}
	d.t.Process = pc
	var procTok token
	match := ""
	hs := map[string]handler{
		"process": line(func(st *stmt) {
			if !c.nargs(st, 1, -1, "process NAME [ARGS...]") {
				return
			}
			procTok = st.args[0]
			pc.Name = st.args[0].text
			if strings.Contains(pc.Name, "/") {
				pc.Name = filepath.Base(pc.Name)
				c.r.warnf(st.args[0], st.kw.text, "haa counts processes by name: %q is tracked as %q", st.args[0].text, pc.Name)
			}
			for _, a := range st.args[1:] {
				pc.Args = append(pc.Args, a.text)
			}
			d.toks["process.name"] = st.kw
		}),
		"param_match": line(func(st *stmt) {
			if !c.nargs(st, 0, 1, "param_match initial") {
				return
			}
			match = "exact"
			if len(st.args) == 1 {
				switch v := st.args[0].text; v {
				case "initial", "partial":
					match = v
				default:
					c.r.errorf(st.args[0], st.kw.text, "unknown param_match %q: write param_match initial (what haa does)", v)
				}
			}
		}),
		"weight": line(func(st *stmt) {
			if w, ok := c.weight(st, config.MaxWeight); ok {
				d.t.Weight = w
				d.toks["weight"] = st.kw
			}
		}),
		"quorum": line(func(st *stmt) {
			if n, ok := c.uintValue(st, 1, 65535); ok {
				pc.Quorum = uint32(n)
				d.toks["process.quorum"] = st.kw
			}
		}),
		"quorum_max": line(func(st *stmt) {
			n, ok := c.uintValue(st, 0, 65535)
			if !ok {
				return
			}
			if n == 0 {
				c.r.errorf(st.args[0], st.kw.text, "quorum_max 0 (the process must not run) cannot be expressed in haa: track it with a vrrp_script instead (e.g. script \"/bin/sh -c '! pidof NAME'\")")
				return
			}
			pc.QuorumMax = uint32(n)
			d.toks["process.quorumMax"] = st.kw
		}),
		"delay":           line(c.processDelay),
		"terminate_delay": line(c.processDelay),
		"fork_delay":      line(c.processDelay),
		"full_command": line(func(st *stmt) {
			c.r.warnf(st.kw, st.kw.text, "haa matches the process name, then the first arguments when process lists some: remove it")
		}),
	}
	given := c.walk("vrrp_track_process "+d.name, st.block, hs, nil)
	switch {
	case pc.Name == "" && missing(given, "process"):
		c.r.errorf(st.kw, st.kw.text, "vrrp_track_process %s has no process: add process NAME", d.name)
	case len(pc.Args) > 0 && match != "initial":
		c.r.warnf(procTok, "process", "haa matches the first arguments (keepalived's param_match initial): a process with more arguments after them counts too; add param_match initial to say so")
	}
}

func (c *conv) processDelay(st *stmt) {
	c.r.warnf(st.kw, st.kw.text, "haa counts the processes every second and acts on the count at once: remove it")
}

// trackUse is one entry of a track_* block: a tracker and an optional
// weight that replaces the tracker's.
type trackUse struct {
	kind   string
	name   string
	tok    token
	weight *int32
}

// trackBlock reads the entries of a track_script/track_interface/
// track_file/track_process block: `NAME [weight W]` per line.
func (c *conv) trackBlock(st *stmt, kind string, out *[]trackUse) {
	lim := int64(config.MaxWeight)
	if kind == kindFile {
		lim = config.MaxFileWeight
	}
	for _, e := range st.block {
		if e.hasBlock {
			c.r.errorf(e.open, st.kw.text, "entries of %s take no block: write one NAME [weight W] per line", st.kw.text)
			continue
		}
		u := trackUse{kind: kind, name: e.kw.text, tok: e.kw}
		if len(e.args) > 0 {
			if e.args[0].text != "weight" {
				c.r.errorf(e.args[0], st.kw.text, "unknown option %q after %s: write %s or %s weight W", e.args[0].text, e.kw.text, e.kw.text, e.kw.text)
				continue
			}
			w, ok := c.weight(&stmt{kw: e.args[0], args: e.args[1:]}, lim)
			if !ok {
				continue
			}
			u.weight = &w
		}
		*out = append(*out, u)
	}
}

// notifyDef collects the notify commands of an instance or sync group.
type notifyDef struct {
	n     *haav1.Notify
	users map[string]string // field -> the user the line names
	toks  map[string]token  // field -> keyword
}

var notifyFields = []string{"master", "backup", "fault", "stop", "any"}

// notifyHandlers are the handlers of notify_master, notify_backup,
// notify_fault, notify_stop and notify.
func (c *conv) notifyHandlers(nd *notifyDef) map[string]handler {
	nd.users, nd.toks = map[string]string{}, map[string]token{}
	mk := func(field string, set func(n *haav1.Notify, cmd []string)) handler {
		return line(func(st *stmt) {
			cmd, user, ok := c.notifyCommand(st)
			if !ok {
				return
			}
			if nd.n == nil {
				nd.n = &haav1.Notify{}
			}
			set(nd.n, cmd)
			nd.users[field], nd.toks[field] = user, st.kw
		})
	}
	return map[string]handler{
		"notify_master": mk("master", func(n *haav1.Notify, cmd []string) { n.Master = cmd }),
		"notify_backup": mk("backup", func(n *haav1.Notify, cmd []string) { n.Backup = cmd }),
		"notify_fault":  mk("fault", func(n *haav1.Notify, cmd []string) { n.Fault = cmd }),
		"notify_stop":   mk("stop", func(n *haav1.Notify, cmd []string) { n.Stop = cmd }),
		// keepalived appends "INSTANCE|GROUP NAME STATE PRIORITY" to the
		// notify command's arguments, and haa's any does the same.
		"notify": mk("any", func(n *haav1.Notify, cmd []string) { n.Any = cmd }),
	}
}

// finishNotify returns the Notify of nd (nil: none), with the user all its
// commands run as: each line's own, else global_defs script_user.
func (c *conv) finishNotify(nd *notifyDef, toks map[string]token) *haav1.Notify {
	if nd.n == nil {
		return nil
	}
	user, first := "", ""
	for _, f := range notifyFields {
		t, ok := nd.toks[f]
		if !ok {
			continue
		}
		toks["notify."+f] = t
		u := nd.users[f]
		if u == "" {
			u = c.g.scriptUser
		}
		if first == "" {
			user, first = u, f
			continue
		}
		if u != user {
			c.r.errorf(t, t.text, "runs as %s but %s runs as %s: haa runs every notify command of an instance or group as one user: give them the same user", userName(u), nd.toks[first].text, userName(user))
		}
	}
	nd.n.User = user
	return nd.n
}

func userName(u string) string {
	if u == "" {
		return "root"
	}
	return u
}

// instDef is a vrrp_instance being read.
type instDef struct {
	kw   token
	name string
	toks map[string]token // haa field -> keyword

	iface        string
	vrid         uint32
	state        string
	prio         *uint32
	version      int
	advert       *time.Duration
	hasAuth      bool
	authType     string
	authPass     string
	nopreempt    bool
	preempt      bool
	preemptDelay *time.Duration
	strict       *bool
	mcast        string
	src          string
	peers        []string
	vips         []*stmt // entries of virtual_ipaddress
	excluded     []*stmt // entries of virtual_ipaddress_excluded
	routes       []*stmt // entries of virtual_routes
	rules        []*stmt // entries of virtual_rules
	noVips       bool    // no_virtual_ipaddress
	garp         garpDef
	tracks       []trackUse
	notify       notifyDef
	v3as2        bool
	group        *groupDef
	given        map[string]token // the keywords of the block
	vmac         *haav1.Vmac      // use_vmac (and vmac_xmit_base)
	xmitBase     bool
	accept       *bool // accept / no_accept
	native6      bool  // native_ipv6
}

// vrrpInstance reads `vrrp_instance NAME { ... }`; finishInstance converts
// it once the whole file (sync groups, trackers) is known.
func (c *conv) vrrpInstance(st *stmt) {
	t, ok := c.value(st, "vrrp_instance NAME { ... }")
	if !ok {
		return
	}
	if old, dup := c.instByName[t.text]; dup {
		c.r.errorf(t, st.kw.text, "vrrp_instance %s is already defined at %s: rename one of them", t.text, at(old.kw, t))
		return
	}
	in := &instDef{kw: st.kw, name: t.text, toks: map[string]token{}}
	c.instByName[in.name] = in
	c.instances = append(c.instances, in)
	hs := map[string]handler{
		// keepalived compares the state with strcmp: "master" is not
		// MASTER (it logs and uses BACKUP). Refused rather than guessed.
		"state": line(func(st *stmt) {
			if t, ok := c.value(st, "state MASTER"); ok {
				switch t.text {
				case "MASTER", "BACKUP":
					in.state = t.text
					in.toks["state"] = st.kw
				default:
					c.r.errorf(t, st.kw.text, "%q is not a state: write MASTER or BACKUP, in capitals (keepalived reads anything else as BACKUP)", t.text)
				}
			}
		}),
		"interface": line(func(st *stmt) {
			if t, ok := c.value(st, "interface eth0"); ok {
				in.iface = t.text
				in.toks["interface"] = st.kw
			}
		}),
		"virtual_router_id": line(func(st *stmt) {
			if n, ok := c.uintValue(st, 1, 255); ok {
				in.vrid = uint32(n)
				in.toks["vrid"] = st.kw
			}
		}),
		"priority": line(func(st *stmt) {
			if n, ok := c.uintValue(st, 1, 255); ok {
				p := uint32(n)
				in.prio = &p
				in.toks["priority"] = st.kw
			}
		}),
		"advert_int": line(func(st *stmt) {
			if v, ok := c.advertInt(st); ok {
				in.advert = &v
				in.toks["advertInterval"] = st.kw
			}
		}),
		"version": line(func(st *stmt) {
			if n, ok := c.uintValue(st, 2, 3); ok {
				in.version = int(n)
				in.toks["version"] = st.kw
			}
		}),
		"authentication": blk(func(st *stmt) {
			in.hasAuth = true
			in.toks["auth"] = st.kw
			c.walk("authentication", st.block, map[string]handler{
				"auth_type": line(func(st *stmt) {
					if t, ok := c.value(st, "auth_type PASS"); ok {
						switch t.text {
						case "PASS", "AH":
							in.authType = t.text
							in.toks["auth.type"] = st.kw
						default:
							c.r.errorf(t, st.kw.text, "%q is not an authentication type: write PASS or AH (or remove the authentication block)", t.text)
						}
					}
				}),
				"auth_pass": line(func(st *stmt) {
					t, ok := c.value(st, "auth_pass secret")
					if !ok {
						return
					}
					// keepalived copies at most 8 characters into the
					// advert (VRRPv2's authentication data) and logs
					// "Truncating auth_pass": a longer password works
					// only by its first 8 characters, which is what
					// the peers see and so what haa must send.
					pw := t.text
					if len(pw) > config.MaxPasswordLen {
						pw = pw[:config.MaxPasswordLen]
						c.r.warnf(t, st.kw.text, "VRRPv2 carries 8 characters of password: keepalived uses %q, and so does this conversion; write auth_pass %s", pw, pw)
					}
					in.authPass = pw
					in.toks["auth.password"] = st.kw
				}),
			}, nil)
		}),
		"virtual_ipaddress": blkRepeat(func(st *stmt) {
			in.toks["vips"] = st.kw
			in.vips = append(in.vips, st.block...)
		}),
		// keepalived adds the excluded addresses on the master but does
		// not list them in its adverts: haa's excludedVips.
		"virtual_ipaddress_excluded": blkRepeat(func(st *stmt) {
			in.toks["excludedVips"] = st.kw
			in.excluded = append(in.excluded, st.block...)
		}),
		// Routes and rules that follow mastership: one per line, in
		// ip route / ip rule syntax.
		"virtual_routes": blkRepeat(func(st *stmt) {
			in.toks["virtualRoutes"] = st.kw
			in.routes = append(in.routes, st.block...)
		}),
		"virtual_rules": blkRepeat(func(st *stmt) {
			in.toks["virtualRules"] = st.kw
			in.rules = append(in.rules, st.block...)
		}),
		// keepalived 2.2.8 and later: no VIPs on purpose (2.2.7 does not know
		// it: it refuses such a VRRPv3 instance, haa follows the later ones).
		"no_virtual_ipaddress": line(func(st *stmt) {
			if c.nargs(st, 0, 0, st.kw.text) {
				in.noVips = true
				in.toks["noVips"] = st.kw
			}
		}),
		"nopreempt": line(func(st *stmt) {
			if c.nargs(st, 0, 0, "nopreempt") {
				in.nopreempt = true
				in.toks["preempt"] = st.kw
			}
		}),
		// The old keyword for keepalived's default.
		"preempt": line(func(st *stmt) {
			if c.nargs(st, 0, 0, "preempt") {
				in.preempt = true
			}
		}),
		"preempt_delay": line(func(st *stmt) {
			if v, ok := c.seconds(st, true, config.MaxPreemptDelay); ok {
				in.preemptDelay = &v
				in.toks["preemptDelay"] = st.kw
			}
		}),
		"unicast_src_ip": line(func(st *stmt) { c.srcIP(st, in) }),
		"mcast_src_ip":   line(func(st *stmt) { c.srcIP(st, in) }),
		"mcast_dst_ip": line(func(st *stmt) {
			if t, ok := c.value(st, "mcast_dst_ip 224.0.0.18"); ok {
				in.mcast = t.text
				in.toks["multicastGroup"] = st.kw
			}
		}),
		"unicast_peer": blkRepeat(func(st *stmt) {
			in.toks["unicastPeers"] = st.kw
			for _, e := range st.block {
				if e.hasBlock {
					c.r.errorf(e.open, st.kw.text, "peers take no block: write one address per line")
					continue
				}
				in.peers = append(in.peers, e.kw.text)
				if len(e.args) > 0 {
					c.r.warnf(e.args[0], st.kw.text, "haa does not check the TTL of adverts per peer (%s): remove the options after the address", joinTexts(e.args))
				}
			}
		}),
		"track_interface": blkRepeat(func(st *stmt) { c.trackBlock(st, kindInterface, &in.tracks) }),
		"track_script":    blkRepeat(func(st *stmt) { c.trackBlock(st, kindScript, &in.tracks) }),
		"track_file":      blkRepeat(func(st *stmt) { c.trackBlock(st, kindFile, &in.tracks) }),
		"track_process":   blkRepeat(func(st *stmt) { c.trackBlock(st, kindProcess, &in.tracks) }),

		"garp_master_delay":          line(func(st *stmt) { c.garpDelay(st, &in.garp) }),
		"garp_master_repeat":         line(func(st *stmt) { c.garpRepeat(st, &in.garp, &in.garp.repeat, "repeat") }),
		"garp_master_refresh":        line(func(st *stmt) { c.garpRefresh(st, &in.garp) }),
		"garp_master_refresh_repeat": line(func(st *stmt) { c.garpRepeat(st, &in.garp, &in.garp.refreshRepeat, "refreshRepeat") }),
		"garp_interval":              line(func(st *stmt) { c.garpInterval(st, &in.garp) }),
		"strict_mode": line(func(st *stmt) {
			if !c.nargs(st, 0, 1, "strict_mode [true|false]") {
				return
			}
			v := true
			if len(st.args) == 1 {
				var ok bool
				if v, ok = c.boolTok(st, st.args[0]); !ok {
					return
				}
			}
			in.strict = &v
			in.toks["strict"] = st.kw
		}),
		// use_vmac [NAME [MAC]]: the virtual MAC interface.
		"use_vmac": line(func(st *stmt) {
			if !c.nargs(st, 0, 2, "use_vmac [NAME]") {
				return
			}
			in.vmac = &haav1.Vmac{}
			in.toks["vmac"] = st.kw
			if len(st.args) > 0 {
				in.vmac.Name = st.args[0].text
				in.toks["vmac.name"] = st.args[0]
			}
			if len(st.args) > 1 {
				c.r.warnf(st.args[1], st.kw.text, "haa always uses RFC 5798's virtual MAC (00:00:5e:00:01:VRID, :02: for IPv6): the MAC %s is ignored; remove it", st.args[1].text)
			}
		}),
		"vmac_xmit_base": line(func(st *stmt) {
			if c.nargs(st, 0, 0, st.kw.text) {
				in.xmitBase = true
				in.toks["vmac.xmitBase"] = st.kw
			}
		}),
		"accept": line(func(st *stmt) {
			if c.nargs(st, 0, 0, st.kw.text) {
				in.accept = proto.Bool(true)
				in.toks["acceptMode"] = st.kw
			}
		}),
		"no_accept": line(func(st *stmt) {
			if c.nargs(st, 0, 0, st.kw.text) {
				in.accept = proto.Bool(false)
				in.toks["acceptMode"] = st.kw
			}
		}),
		"native_ipv6": line(func(st *stmt) {
			if c.nargs(st, 0, 0, st.kw.text) {
				in.native6 = true
				in.toks["family"] = st.kw
			}
		}),
		"v3_checksum_as_v2": line(func(st *stmt) {
			if c.nargs(st, 0, 0, "v3_checksum_as_v2") {
				in.v3as2 = true
				in.toks["v3ChecksumAsV2"] = st.kw
			}
		}),
	}
	for k, h := range c.notifyHandlers(&in.notify) {
		hs[k] = h
	}
	in.given = c.walk("vrrp_instance "+in.name, st.block, hs, instanceUnsupported)
}

// advertRE is a number as keepalived's advert_int takes it (strtod: a
// sign, digits, decimals).
var advertRE = regexp.MustCompile(`^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$`)

// advertInt reads advert_int: seconds with decimals. keepalived ignores a
// value outside 0.01..255 ("Advert interval (300) not valid! Must be > 0 -
// ignoring") and keeps its default, 1 second; so does this conversion,
// with a warning. finishInstance rounds the value for the VRRP version.
func (c *conv) advertInt(st *stmt) (time.Duration, bool) {
	t, ok := c.value(st, "advert_int 1")
	if !ok {
		return 0, false
	}
	if !advertRE.MatchString(t.text) {
		c.r.errorf(t, st.kw.text, "%q is not a number of seconds: write e.g. advert_int 1 (or advert_int 0.5 with version 3)", t.text)
		return 0, false
	}
	f, err := strconv.ParseFloat(t.text, 64)
	if err != nil || f < 0.01 || f > 255 {
		c.r.warnf(t, st.kw.text, "%s is outside 0.01..255 seconds: keepalived ignores it (\"not valid\") and advertises every second, and so does this conversion; write advert_int 1, or a value in that range", t.text)
		return time.Second, true
	}
	// To the microsecond, as keepalived's timers (TIMER_HZ).
	return time.Duration(f*1e6+0.5) * time.Microsecond, true
}

// boolTok reads keepalived's true/false words.
func (c *conv) boolTok(st *stmt, t token) (bool, bool) {
	switch strings.ToLower(t.text) {
	case "true", "on", "yes":
		return true, true
	case "false", "off", "no":
		return false, true
	}
	c.r.errorf(t, st.kw.text, "%q is not true or false: write %s true or %s false", t.text, st.kw.text, st.kw.text)
	return false, false
}

func (c *conv) srcIP(st *stmt, in *instDef) {
	t, ok := c.value(st, st.kw.text+" 10.0.0.1")
	if !ok {
		return
	}
	// keepalived has one handler for both keywords (vrrp_parser.c
	// vrrp_srcip_handler): the last one wins. Tutorials often give both,
	// with the same address.
	if old, set := in.toks["sourceAddress"]; set && in.src != t.text {
		c.r.warnf(st.kw, st.kw.text, "the source address was set to %s at line %d (%s): unicast_src_ip and mcast_src_ip are one setting in keepalived, the last one wins, so it is %s, and so in this conversion; keep one", in.src, old.pos().Line, old.text, t.text)
	}
	in.src = t.text
	in.toks["sourceAddress"] = st.kw
}

func joinTexts(ts []token) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.text
	}
	return strings.Join(s, " ")
}

// garp_master_delay: whole seconds (keepalived's default 5, as haa's).
func (c *conv) garpDelay(st *stmt, gd *garpDef) {
	if v, ok := c.seconds(st, false, time.Hour); ok {
		gd.delay = &v
		gd.set("delay", st.kw)
	}
}

// garp_master_refresh: whole seconds, 0 = never (keepalived's default, as
// haa's).
func (c *conv) garpRefresh(st *stmt, gd *garpDef) {
	if v, ok := c.seconds(st, false, 24*time.Hour); ok {
		gd.refresh = &v
		gd.set("refresh", st.kw)
	}
}

// garp_master_repeat, garp_master_refresh_repeat: keepalived reads 0 as 1
// (with a log), and so does this conversion.
func (c *conv) garpRepeat(st *stmt, gd *garpDef, dst **uint32, field string) {
	n, ok := c.uintValue(st, 0, 255)
	if !ok {
		return
	}
	if n == 0 {
		c.r.warnf(st.args[0], st.kw.text, "0 is read as 1, as keepalived does: write %s 1", st.kw.text)
		n = 1
	}
	v := uint32(n)
	*dst = &v
	gd.set(field, st.kw)
}

// garp_interval: seconds with decimals (keepalived's default 0, as haa's).
func (c *conv) garpInterval(st *stmt, gd *garpDef) {
	if v, ok := c.seconds(st, true, time.Second); ok {
		gd.interval = &v
		gd.set("interval", st.kw)
	}
}

// finishGarp returns the Garp of an instance: its own values, else those
// of global_defs (keepalived's vrrp_garp_*, the defaults of every
// instance). Values equal to haa's defaults that only global_defs gives
// are left out.
func (c *conv) finishGarp(own garpDef, toks map[string]token) *haav1.Garp {
	gl := c.g.garp
	g := &haav1.Garp{}
	set := false
	pick := func(field string, o, d *time.Duration, dflt time.Duration) *time.Duration {
		switch {
		case o != nil:
			toks["garp."+field] = own.tok[field]
			return o
		case d != nil && *d != dflt:
			toks["garp."+field] = gl.tok[field]
			return d
		}
		return nil
	}
	pickN := func(field string, o, d *uint32, dflt uint32) *uint32 {
		switch {
		case o != nil:
			toks["garp."+field] = own.tok[field]
			return o
		case d != nil && *d != dflt:
			toks["garp."+field] = gl.tok[field]
			return d
		}
		return nil
	}
	if v := pick("delay", own.delay, gl.delay, config.DefaultGARPDelay); v != nil {
		g.Delay, set = dur(*v), true
	}
	if v := pickN("repeat", own.repeat, gl.repeat, config.DefaultGARPRepeat); v != nil {
		g.Repeat, set = proto.Uint32(*v), true
	}
	if v := pick("refresh", own.refresh, gl.refresh, 0); v != nil {
		g.Refresh, set = dur(*v), true
	}
	if v := pickN("refreshRepeat", own.refreshRepeat, gl.refreshRepeat, config.DefaultRefreshRepeat); v != nil {
		g.RefreshRepeat, set = proto.Uint32(*v), true
	}
	if v := pick("interval", own.interval, gl.interval, 0); v != nil {
		g.Interval, set = dur(*v), true
	}
	if !set {
		return nil
	}
	return g
}

// finishInstance converts an instance, applying keepalived's rules
// (vrrp_complete_instance) where haa's would differ. idx is its index in
// the converted configuration.
func (c *conv) finishInstance(in *instDef, idx int) *haav1.Instance {
	spec := &haav1.Instance{Name: in.name}
	toks := in.toks
	toks[""], toks["name"] = in.kw, in.kw
	defer c.record(fmt.Sprintf("instances[%d]", idx), toks)

	// interface: the instance's, else global_defs default_interface.
	spec.Interface = c.iface(in.iface)
	if in.iface == "" {
		switch {
		case c.g.defaultIface != "":
			spec.Interface = c.g.defaultIface
			toks["interface"] = c.g.defaultTok
		case missing(in.given, "interface"):
			c.r.errorf(in.kw, in.kw.text, "vrrp_instance %s has no interface: add interface eth0 (the interface its adverts go out of)", in.name)
		}
	}
	spec.Vrid = in.vrid
	if missing(in.given, "virtual_router_id") {
		c.r.errorf(in.kw, in.kw.text, "vrrp_instance %s has no virtual_router_id: add virtual_router_id N (1..255, the same on every node of this virtual router)", in.name)
	}

	// VRRP version: keepalived's default is 2 (global_defs vrrp_version
	// changes it), haa's is 3, so it is always written.
	version := in.version
	if version == 0 {
		version = c.g.version
		if version != 0 {
			toks["version"] = c.g.versionTok
		}
	}
	if version == 0 {
		version = 2
	}
	ipv6 := c.instanceIPv6(in)
	if ipv6 {
		spec.Family = config.FamilyIPv6
		if version == 2 {
			// keepalived: "cannot use IPv6 with VRRP version 2;
			// setting version 3".
			if here, ok := toks["version"]; ok {
				c.r.warnf(here, here.text, "VRRPv2 is IPv4 only: keepalived runs this IPv6 instance with version 3, and so does this conversion; write vrrp_version 3 (or version 3 in the instance)")
			}
			version = 3
		}
	}
	spec.Version = uint32(version)
	strict := c.g.strict
	strictTok := c.g.strictTok
	if in.strict != nil {
		strict, strictTok = *in.strict, in.toks["strict"]
	}

	// Priority and state. keepalived: without priority, state MASTER
	// means priority 255 (the address owner), else 100; in strict mode
	// the state follows the priority (MASTER only for 255).
	prio := uint32(config.DefaultPriority)
	state := in.state
	switch {
	case in.prio != nil:
		prio = *in.prio
		spec.Priority = proto.Uint32(prio)
	case state == "MASTER":
		prio = 255
		spec.Priority = proto.Uint32(prio)
		toks["priority"] = toks["state"]
		c.r.warnf(toks["state"], "state", "state MASTER without a priority: keepalived makes this node the address owner (priority 255), and so does this conversion; write priority 255 to say so, or a priority below 255 to let a better node take over")
	}
	if strict && (state == "MASTER") != (prio == 255) && (state != "" || prio == 255) {
		want := "BACKUP"
		if prio == 255 {
			want = "MASTER"
		}
		here := toks["state"]
		if _, ok := toks["state"]; !ok {
			here = toks["priority"]
		}
		c.r.warnf(here, here.text, "in keepalived's strict mode (%s at %s) state MASTER goes with priority 255 only: keepalived starts this instance as %s, and so does this conversion; write state %s", strictTok.text, at(strictTok, here), want, want)
		state = want
	}
	if state == "MASTER" && in.authType == "AH" && in.authPass != "" && version == 2 && !strict && prio != 255 {
		// keepalived: "Initial state master is incompatible with AH
		// authentication - clearing": a new master needs the AH
		// sequence number of an advert first.
		here := toks["state"]
		c.r.warnf(here, here.text, "with auth_type AH keepalived clears state MASTER (\"Initial state master is incompatible with AH authentication\": it must hear an advert's sequence number first) and starts as BACKUP, and so does this conversion; remove state MASTER")
		state = ""
	}
	if state == "MASTER" {
		spec.State = state
	}

	// Authentication (VRRPv2 only): keepalived ignores it in strict
	// mode, with VRRPv3, and without a password.
	if in.hasAuth {
		here := toks["auth"]
		switch {
		case in.authType == "":
			if in.authPass != "" {
				c.r.warnf(here, here.text, "auth_pass without auth_type PASS: keepalived sends no authentication, and neither does this conversion; add auth_type PASS, or remove the block")
			}
		case strict:
			c.r.warnf(here, here.text, "keepalived's strict mode (%s at %s) ignores authentication, and so does this conversion: remove the authentication block", strictTok.text, at(strictTok, here))
		case version == 3:
			c.r.warnf(here, here.text, "VRRPv3 has no authentication: keepalived ignores it, and so does this conversion; remove the block")
		case in.authPass == "":
			c.r.warnf(here, here.text, "auth_type %s without auth_pass: keepalived ignores the authentication, and so does this conversion; add auth_pass, or remove the block", in.authType)
		default:
			spec.Auth = &haav1.Auth{Type: in.authType, Password: in.authPass}
		}
	}

	// Preemption. keepalived resets nopreempt for the address owner and
	// clears it with state MASTER; it clears preempt_delay with state
	// MASTER, in strict mode and with nopreempt.
	nopreempt := in.nopreempt
	if nopreempt && prio == 255 {
		c.r.warnf(toks["preempt"], "nopreempt", "the address owner (priority 255) always takes over: keepalived ignores nopreempt here, and so does this conversion; remove it")
		nopreempt = false
	}
	if nopreempt && state == "MASTER" {
		c.r.warnf(toks["preempt"], "nopreempt", "keepalived ignores nopreempt with state MASTER, and so does this conversion: for a node that does not take over when it comes back, use state BACKUP (on every node) with nopreempt")
		nopreempt = false
	}
	switch {
	case nopreempt:
		spec.Preempt = proto.Bool(false)
	case in.preempt:
		spec.Preempt = proto.Bool(true)
	}
	if pd := in.preemptDelay; pd != nil {
		here := toks["preemptDelay"]
		switch {
		case *pd > 0 && state == "MASTER":
			c.r.warnf(here, here.text, "keepalived ignores preempt_delay with state MASTER, and so does this conversion: use state BACKUP to delay preemption, or remove it")
		case *pd > 0 && strict:
			c.r.warnf(here, here.text, "keepalived's strict mode (%s at %s) ignores preempt_delay, and so does this conversion: remove it", strictTok.text, at(strictTok, here))
		case *pd > 0 && nopreempt:
			c.r.warnf(here, here.text, "keepalived ignores preempt_delay with nopreempt, and so does this conversion: remove one of them")
		default:
			spec.PreemptDelay = dur(*pd)
		}
	}

	// Advertisement interval (keepalived's default 1s, as haa's; always
	// written). advertInt took 0.01..255 seconds; keepalived rounds:
	// VRRPv2 carries whole seconds (rounded to the nearest, at least 1),
	// VRRPv3 centiseconds up to 40.95s. The suggested values are written
	// as advert_int takes them, in both keepalived and haa: seconds
	// without a unit.
	adv := config.DefaultInterval
	if in.advert != nil {
		adv = *in.advert
	}
	here := toks["advertInterval"]
	if version == 2 {
		if adv%time.Second != 0 {
			r := max((adv+time.Second/2)/time.Second*time.Second, time.Second)
			c.r.warnf(here, here.text, "VRRPv2 advertises whole seconds: keepalived rounds %s to %s, and so does this conversion; write advert_int %s (or use version 3 for shorter intervals)", secs(adv), secs(r), seconds(r))
			adv = r
		}
	} else {
		const cs = 10 * time.Millisecond
		switch {
		case adv >= 4096*cs:
			c.r.warnf(here, here.text, "VRRPv3 advertises at most every 40.95 seconds: keepalived uses 40.95, and so does this conversion; write advert_int 40.95")
			adv = 4095 * cs
		case adv%cs != 0:
			r := max((adv+cs/2)/cs*cs, cs)
			c.r.warnf(here, here.text, "VRRPv3 advertises in hundredths of a second: keepalived rounds %s to %s, and so does this conversion; write advert_int %s", secs(adv), secs(r), seconds(r))
			adv = r
		}
	}
	spec.AdvertInterval = dur(adv)

	// Addresses.
	for _, e := range in.vips {
		if v := c.vipEntry(e, in, "virtual_ipaddress"); v != "" {
			if a, _, _ := strings.Cut(v, "/"); isIPv6Text(a) != ipv6 {
				fam := map[bool]string{false: "IPv4", true: "IPv6"}
				c.r.warnf(e.kw, "virtual_ipaddress", "%s is %s in an %s instance: keepalived ignores it (\"address family must match VRRP instance - ignoring\"), and so does this conversion; move it to virtual_ipaddress_excluded (held, not advertised) or to an instance of its own", a, fam[!ipv6], fam[ipv6])
				continue
			}
			spec.Vips = append(spec.Vips, v)
		}
	}
	if ipv6 && len(spec.Vips) > 0 && len(in.peers) == 0 {
		if a, _, _ := strings.Cut(strings.Fields(spec.Vips[0])[0], "/"); !strings.HasPrefix(strings.ToLower(a), "fe8") {
			here := in.vips[0].kw
			if strict {
				c.r.warnf(here, "virtual_ipaddress", "in keepalived's strict mode (%s at %s) the first address of an IPv6 instance must be link-local (RFC 5798 5.2.9): keepalived reports a configuration error and runs the instance as written, and so does haa; put a link-local address (fe80::...) first on every node", strictTok.text, at(strictTok, here))
			} else {
				c.r.warnf(here, "virtual_ipaddress", "the first address of an IPv6 instance should be link-local (RFC 5798 5.2.9; keepalived says so too and goes on): adverts list the addresses as written, in keepalived and haa; put a link-local address (fe80::...) first on every node")
			}
		}
	}
	for _, e := range in.excluded {
		if v := c.vipEntry(e, in, "virtual_ipaddress_excluded"); v != "" {
			spec.ExcludedVips = append(spec.ExcludedVips, v)
		}
	}
	c.noVIPs(in, spec, version, strict, strictTok)
	spec.VirtualRoutes = c.routingEntries(in.routes, "virtual_routes", func(s string) (string, error) {
		_, err := vroute.ParseRoute(s)
		return s, err
	})
	spec.VirtualRules = c.routingEntries(in.rules, "virtual_rules", func(s string) (string, error) {
		r, err := vroute.ParseRule(s)
		if err != nil || r.Priority >= 0 {
			return s, err
		}
		return c.rulePriority(s, r, toks["virtualRules"]), nil
	})
	spec.UnicastPeers = in.peers
	spec.SourceAddress = in.src
	if strict && len(in.peers) > 0 {
		here := toks["unicastPeers"]
		c.r.errorf(here, here.text, "keepalived's strict mode (%s at %s) refuses unicast peers on a multicast interface and does not run this instance: remove the strict mode, or the unicast_peer block", strictTok.text, at(strictTok, here))
	}
	switch {
	case in.mcast != "" && len(in.peers) > 0:
		c.r.warnf(toks["multicastGroup"], "mcast_dst_ip", "unicast_peer is set, so adverts are not sent to a multicast group (as in keepalived): remove mcast_dst_ip")
	case in.mcast != "":
		spec.MulticastGroup = in.mcast
	case c.g.mcast != "" && len(in.peers) == 0 && !ipv6:
		// global_defs vrrp_mcast_group4: the group of every multicast
		// instance.
		spec.MulticastGroup = c.g.mcast
		toks["multicastGroup"] = c.g.mcastTok
	case c.g.mcast6 != "" && len(in.peers) == 0 && ipv6:
		spec.MulticastGroup = c.g.mcast6
		toks["multicastGroup"] = c.g.mcast6Tok
	}
	c.vmacAccept(in, spec, prio, version, strict, strictTok)
	if in.v3as2 {
		if version == 3 {
			spec.V3ChecksumAsV2 = true
		} else {
			here := toks["v3ChecksumAsV2"]
			c.r.warnf(here, here.text, "applies to VRRPv3 only and this instance runs version %d: remove it", version)
		}
	}
	spec.Garp = c.finishGarp(in.garp, toks)
	spec.Track = c.trackRefs(in.tracks, in.group, spec.Interface, prio == ownerPriority)
	if g := in.group; g != nil && g.single == in {
		c.foldGroup(g, in, spec)
	}
	spec.Notify = c.finishNotify(&in.notify, toks)
	return spec
}

// secs writes d in seconds with a unit ("1.5s"), for messages.
func secs(d time.Duration) string {
	return fmt.Sprintf("%gs", d.Seconds())
}

// seconds writes d as keepalived's configuration takes it: seconds without
// a unit ("0.12").
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// routingEntries converts the lines of a virtual_routes or virtual_rules
// block (keepalived's ip route / ip rule syntax, haa's too): no_track is
// dropped with a warning (it only changes what keepalived does when
// someone else deletes the route), interfaces are renamed
// (Options.Interfaces), and what haa does not take is refused at its line.
// parse checks an entry and returns it as it is to be written.
func (c *conv) routingEntries(es []*stmt, kw string, parse func(string) (string, error)) []string {
	var out []string
	for _, e := range es {
		if e.hasBlock {
			c.r.errorf(e.open, kw, "an entry takes no block: write one per line")
			continue
		}
		words := []string{e.kw.text}
		for i := 0; i < len(e.args); i++ {
			a := e.args[i].text
			switch a {
			case "no_track":
				c.r.warnf(e.args[i], kw, "no_track is ignored: it only changes what keepalived does when someone else deletes the entry; remove it")
				continue
			case "dev", "oif", "iif":
				words = append(words, a)
				if i+1 < len(e.args) {
					i++
					words = append(words, c.iface(e.args[i].text))
				}
				continue
			}
			words = append(words, a)
		}
		s, err := parse(strings.Join(words, " "))
		if err != nil {
			msg := err.Error()
			if ve, ok := err.(*vroute.Error); ok {
				msg = ve.Msg
			}
			c.r.errorf(e.kw, kw, "%q: %s", s, msg)
			continue
		}
		out = append(out, s)
	}
	return out
}

// rulePriority gives rule r (written s), which has no priority, the one
// keepalived gives it (vrrp_iprule.c: 16384, then one less for each such
// rule of the family, in file order), with keepalived's warning.
func (c *conv) rulePriority(s string, r vroute.Rule, at token) string {
	next := &c.rulePrio4
	if r.V6 {
		next = &c.rulePrio6
	}
	if *next == 0 {
		*next = kaRuleStartPriority
	}
	p := *next
	*next--
	c.r.warnf(at, at.text, "%q has no priority: keepalived gives it %d (\"Rule has no preference specified - setting to %d. This is probably not what you want.\"), and so does this conversion; write priority %d", s, p, p, p)
	return fmt.Sprintf("%s priority %d", s, p)
}

// kaRuleStartPriority is the priority keepalived gives the first rule
// without one (RULE_START_PRIORITY).
const kaRuleStartPriority = 16384

// noVIPs decides an instance without virtual_ipaddress as keepalived
// does (vrrp.c vrrp_complete_instance): VRRPv2 runs the election alone,
// with a warning ("No VIP specified; at least one is sensible"); VRRPv3 or
// strict mode refuse it ("at least one is required") unless
// no_virtual_ipaddress says it is meant (keepalived 2.2.8 and later; strict mode
// clears it).
func (c *conv) noVIPs(in *instDef, spec *haav1.Instance, version int, strict bool, strictTok token) {
	if len(in.vips) > 0 {
		if in.noVips {
			t := in.toks["noVips"]
			c.r.warnf(t, t.text, "virtual_ipaddress lists addresses, so this changes nothing: remove it")
		}
		return
	}
	if !missing(in.given, "virtual_ipaddress") {
		return // a block whose entries were all refused: reported there
	}
	noVips := in.noVips
	if noVips && strict {
		t := in.toks["noVips"]
		c.r.warnf(t, t.text, "keepalived clears it in strict mode (%s at %s): \"no_virtual_ipaddress and strict mode incompatible\"", strictTok.text, at(strictTok, t))
		noVips = false
	}
	switch {
	case noVips:
		spec.NoVips = version == 3 // version 2 needs no flag
	case version == 3 || strict:
		why := "VRRPv3"
		if strict {
			why = "strict mode"
		}
		c.r.errorf(in.kw, in.kw.text, "vrrp_instance %s has no virtual_ipaddress, and with %s keepalived refuses it (\"No VIP specified; at least one is required\"): add virtual_ipaddress { ADDR/LEN }, or no_virtual_ipaddress for an election without addresses (keepalived 2.2.8 and later, and haa)", in.name, why)
	default:
		c.r.warnf(in.kw, in.kw.text, "vrrp_instance %s has no virtual_ipaddress: keepalived runs the election alone (\"No VIP specified; at least one is sensible\"), and so does haa; notify scripts see the transitions. Add no_virtual_ipaddress (keepalived 2.2.8 and later) to say it is meant", in.name)
	}
}

// vipEntry converts one line of virtual_ipaddress or
// virtual_ipaddress_excluded: "ADDR[/LEN] [dev IF] [label L] [brd B] [scope S]", haa's VIP
// syntax. Interfaces are renamed (Options.Interfaces) in dev, and in a
// label that starts with the interface's name ("eth0:1").
func (c *conv) vipEntry(e *stmt, in *instDef, kw string) string {
	if e.hasBlock {
		c.r.errorf(e.open, kw, "an address takes no block: write one ADDR[/LEN] [dev IF] [label L] per line")
		return ""
	}
	words := []string{e.kw.text}
	// keepalived's no_track and preferred_lft change nothing about which
	// node holds the address: they are left out, with a warning.
	for i := 0; i < len(e.args); i++ {
		a := e.args[i]
		switch strings.ToLower(a.text) {
		case "no_track":
			c.r.warnf(a, kw, "no_track is ignored: it only changes what keepalived does when someone else deletes the address (the instance stays MASTER, the address comes back at its next transition), not which node holds it; remove it")
			continue
		case "preferred_lft":
			if i+1 >= len(e.args) {
				c.r.errorf(a, kw, "preferred_lft needs a value, and keepalived leaves out an address without one: write preferred_lft forever (or 0), or remove preferred_lft")
				return ""
			}
			c.r.warnf(a, kw, "preferred_lft is ignored: it sets the preferred lifetime of the address (an IPv6 matter), not which node holds it; remove it")
			i++
			continue
		case "dev", "label", "brd", "broadcast", "scope":
			// A value follows: keep it as it is, whatever it spells.
			words = append(words, a.text)
			if i+1 < len(e.args) {
				i++
				words = append(words, e.args[i].text)
			}
			continue
		}
		words = append(words, a.text)
	}
	dev := in.iface
	if dev == "" {
		dev = c.g.defaultIface
	}
	for i := 1; i+1 < len(words); i++ {
		if strings.EqualFold(words[i], "dev") {
			dev = words[i+1]
			words[i+1] = c.iface(words[i+1])
		}
	}
	if newDev := c.iface(dev); newDev != dev {
		for i := 1; i+1 < len(words); i++ {
			if strings.EqualFold(words[i], "label") && strings.HasPrefix(words[i+1], dev+":") {
				words[i+1] = newDev + strings.TrimPrefix(words[i+1], dev)
			}
		}
	}
	s := strings.Join(words, " ")
	_, err := vip.Parse(s)
	if err != nil {
		msg := err.Error()
		if ve, ok := err.(*vip.Error); ok {
			msg = ve.Msg
		}
		if strings.Contains(msg, "not supported") {
			// One remedy: vip.Parse's message says what, not what to do.
			c.r.errorf(e.kw, kw, "%q: %s by haa: remove it from this line", s, msg)
			return ""
		}
		c.r.errorf(e.kw, kw, "%q: %s: fix this address line", s, msg)
		return ""
	}
	return s
}

// trackRefs resolves the track_* entries of an instance (group: its sync
// group, iface: its interface, owner: its priority is 255) or, with iface
// "", of a sync group.
//
// keepalived ignores tracking an instance's own interface (it always
// tracks it), and ignores weights (vrrp_complete_instance) where they
// cannot move the priority (checked with keepalived 2.2.7):
//
//   - for the members of a sync group without sync_group_tracking_weight:
//     a tracked interface's weight becomes 0 (down means FAULT), a script
//     with a weight is not tracked at all, a tracked file with weight 1
//     (its default) is tracked with weight 0, with another weight not at
//     all; processes keep their weights;
//   - else for the address owner (priority 255): the same, but a tracked
//     interface with a weight is not tracked at all; processes are tracked
//     as given (the owner's priority never moves, in keepalived as in
//     haa).
//
// This conversion does the same, with a warning each.
func (c *conv) trackRefs(uses []trackUse, group *groupDef, iface string, owner bool) []*haav1.TrackRef {
	var out []*haav1.TrackRef
	for _, u := range uses {
		var d *trackDef
		if u.kind == kindInterface {
			name := c.iface(u.name)
			if iface != "" && name == iface {
				c.r.warnf(u.tok, "track_interface", "%s is the instance's own interface: keepalived ignores this line (it always tracks it), and so does this conversion; remove it", u.name)
				continue
			}
			d = c.ifTracker(name, u.tok)
			if d == nil {
				continue
			}
		} else {
			d = c.trackers[u.name]
			switch {
			case d != nil && d.kind == u.kind && d.kw.seq > u.tok.seq:
				// keepalived looks a tracked script, file or process
				// up when it reads the reference (vrrp_track.c
				// alloc_track_script): one defined further down is
				// "not found, ignoring...", and the instance runs
				// without it. A pair moving to haa should learn that
				// it never tracked it.
				c.r.warnf(u.tok, "track_"+u.kind, "NOT TRACKED: %s %s is defined at %s, after this line; keepalived looks it up when it reads this line, logs \"track %s %s not found, ignoring...\" and runs without it, so this has never tracked %s, and haa does the same. To track it (in keepalived too), move %s %s above this line", d.kw.text, u.name, lineOf(d.kw, u.tok), u.kind, u.name, u.name, d.kw.text, u.name)
				d.lateRef = true
				continue
			case d != nil && d.kind == u.kind:
			case c.unknownNames[u.name]:
				continue // its block has an unknown keyword, already reported
			case d != nil:
				c.r.errorf(u.tok, "track_"+u.kind, "%s is a %s, not a %s: list it under track_%s", u.name, d.block(), kindBlock[u.kind], d.kind)
				continue
			default:
				c.r.errorf(u.tok, "track_"+u.kind, "no %s named %q: define it (%s %s { ... }) or fix the name", kindBlock[u.kind], u.name, kindBlock[u.kind], u.name)
				continue
			}
		}
		ref := &haav1.TrackRef{Tracker: d.name}
		if u.weight != nil {
			ref.Weight = proto.Int32(*u.weight)
		}
		eff := d.t.Weight
		if u.weight != nil {
			eff = *u.weight
		}
		kw := "track_" + d.kind
		if eff != 0 && d.kind != kindProcess {
			// keepalived applies the sync group's rule first.
			var why, fix string
			inGroup := group != nil && !group.trackWeight
			switch {
			case inGroup:
				why = fmt.Sprintf("in sync group %s (without sync_group_tracking_weight) keepalived ignores weights", group.name)
				fix = "or add sync_group_tracking_weight to the group to keep the weights"
			case owner:
				why = "for the address owner (priority 255) keepalived ignores tracking weights"
				fix = "or give the instance a priority below 255"
			}
			if why != "" {
				switch {
				case d.kind == kindInterface && inGroup:
					c.r.warnf(u.tok, kw, "%s: %s is tracked with weight 0 (down means FAULT), as keepalived does; give it no weight to say so, %s", why, u.name, fix)
					ref.Weight = proto.Int32(0)
				case d.kind == kindFile && eff == 1:
					c.r.warnf(u.tok, kw, "%s: %s is tracked with weight 0 (a non-zero number means FAULT), as keepalived does; write %s weight 0 to say so, %s", why, u.name, u.name, fix)
					ref.Weight = proto.Int32(0)
				default:
					c.r.warnf(u.tok, kw, "%s: keepalived does not track %s (weight %d) at all, and neither does this conversion; give it weight 0 (%s), %s", why, u.name, eff, failMeans[d.kind], fix)
					continue
				}
			}
		}
		d.used = true
		out = append(out, ref)
	}
	return out
}

// failMeans says what a failed tracker of weight 0 does, by kind.
var failMeans = map[string]string{
	kindInterface: "down means FAULT",
	kindScript:    "failure means FAULT",
	kindFile:      "a non-zero number means FAULT",
}

// ifTracker returns the interface tracker of name ("if_NAME"), made on
// first use.
func (c *conv) ifTracker(name string, from token) *trackDef {
	tn := "if_" + name
	if d, ok := c.trackers[tn]; ok {
		if d.kind == kindInterface {
			return d
		}
		c.r.errorf(from, "track_interface", "the tracker for interface %s would be named %s, but the %s at %s has that name: rename it", name, tn, d.block(), at(d.kw, from))
		return nil
	}
	d := &trackDef{kind: kindInterface, kw: from, name: tn,
		t:    &haav1.Tracker{Name: tn, Interface: &haav1.InterfaceCheck{Name: name}},
		toks: map[string]token{"": from, "name": from, "interface.name": from}}
	c.trackers[tn] = d
	c.trackerDefs = append(c.trackerDefs, d)
	return d
}

// finishTrackers returns the trackers that something tracks, in file
// order. keepalived does not run a vrrp_script no one tracks; it is not
// converted either.
func (c *conv) finishTrackers() []*haav1.Tracker {
	defs := slices.Clone(c.trackerDefs)
	slices.SortStableFunc(defs, func(a, b *trackDef) int { return cmp.Compare(a.kw.seq, b.kw.seq) })
	var out []*haav1.Tracker
	for _, d := range defs {
		if !d.used {
			if d.kind != kindInterface && !d.lateRef {
				c.r.warnf(d.kw, d.kw.text, "%s is tracked by no instance or sync group: keepalived does not run it, and it is not converted; track it (track_%s { %s }) or remove it", d.name, d.kind, d.name)
			}
			continue
		}
		c.record(fmt.Sprintf("trackers[%d]", len(out)), d.toks)
		out = append(out, d.t)
	}
	return out
}

// groupDef is a vrrp_sync_group being read.
type groupDef struct {
	kw          token
	name        string
	members     []token
	trackWeight bool
	tracks      []trackUse
	notify      notifyDef
	toks        map[string]token
	// single is the group's one instance, when it has one: see linkGroups.
	single *instDef
}

// syncGroup reads `vrrp_sync_group NAME { group { VI_1 VI_2 } ... }`.
func (c *conv) syncGroup(st *stmt) {
	t, ok := c.value(st, "vrrp_sync_group NAME { ... }")
	if !ok {
		return
	}
	for _, g := range c.groups {
		if g.name == t.text {
			c.r.errorf(t, st.kw.text, "vrrp_sync_group %s is already defined at %s: rename one of them", t.text, at(g.kw, t))
			return
		}
	}
	g := &groupDef{kw: st.kw, name: t.text, toks: map[string]token{}}
	c.groups = append(c.groups, g)
	hs := map[string]handler{
		"group": blk(func(st *stmt) {
			g.toks["instances"] = st.kw
			for _, e := range st.block {
				if e.hasBlock {
					c.r.errorf(e.open, "group", "instance names take no block: list the vrrp_instance names")
					continue
				}
				g.members = append(g.members, e.kw)
				g.members = append(g.members, e.args...)
			}
		}),
		"sync_group_tracking_weight": line(func(st *stmt) {
			if c.nargs(st, 0, 0, st.kw.text) {
				g.trackWeight = true
			}
		}),
		"global_tracking": line(func(st *stmt) {
			if c.nargs(st, 0, 0, st.kw.text) {
				g.trackWeight = true
				c.r.warnf(st.kw, st.kw.text, "keepalived's deprecated name of sync_group_tracking_weight (converted as such): write sync_group_tracking_weight")
			}
		}),
		"track_interface": blkRepeat(func(st *stmt) { c.trackBlock(st, kindInterface, &g.tracks) }),
		"track_script":    blkRepeat(func(st *stmt) { c.trackBlock(st, kindScript, &g.tracks) }),
		"track_file":      blkRepeat(func(st *stmt) { c.trackBlock(st, kindFile, &g.tracks) }),
		"track_process":   blkRepeat(func(st *stmt) { c.trackBlock(st, kindProcess, &g.tracks) }),
	}
	for k, h := range c.notifyHandlers(&g.notify) {
		hs[k] = h
	}
	c.walk("vrrp_sync_group "+g.name, st.block, hs, syncGroupUnsupported)
}

// linkGroups ties the sync groups and their instances together.
func (c *conv) linkGroups() {
	for _, g := range c.groups {
		for _, m := range g.members {
			in := c.instByName[m.text]
			switch {
			case in == nil:
				if !c.unknownNames[m.text] {
					c.r.errorf(m, "group", "no vrrp_instance named %q: fix the name, or remove it from the group", m.text)
				}
			case in.group == g:
				c.r.errorf(m, "group", "%s is listed twice: remove one", m.text)
			case in.group != nil:
				c.r.errorf(m, "group", "%s is already in vrrp_sync_group %s: an instance belongs to one sync group at most; remove it from one of them", m.text, in.group.name)
			default:
				in.group = g
			}
		}
		// keepalived runs a sync group of one instance, with a warning
		// ("Sync group G has only 1 virtual router(s) - this probably
		// isn't what you want"); haa's sync groups have two instances
		// or more. The group is left out and its track and notify lines
		// go to the instance (foldGroup), which is what a group of one
		// does; the instance stays in the group for keepalived's rule on
		// tracking weights (trackRefs).
		if len(g.members) == 1 {
			if in := c.instByName[g.members[0].text]; in != nil && in.group == g {
				g.single = in
				c.r.warnf(g.kw, g.kw.text, "vrrp_sync_group %s has one instance (%s): keepalived warns and runs it; haa needs two instances or more in a group, so this conversion leaves the group out and moves its track and notify lines into %s (whose tracking weights keepalived still treats as a sync group member's); add the other instance to the group, or move the lines into the instance and remove the group", g.name, in.name, in.name)
			}
		}
	}
}

// foldGroup moves the track and notify lines of g, a sync group whose one
// instance is in, into the instance's spec (and notify, which
// finishInstance converts after).
func (c *conv) foldGroup(g *groupDef, in *instDef, spec *haav1.Instance) {
	for _, ref := range c.trackRefs(g.tracks, nil, "", false) {
		if !slices.ContainsFunc(spec.Track, func(r *haav1.TrackRef) bool { return r.GetTracker() == ref.GetTracker() }) {
			spec.Track = append(spec.Track, ref)
		}
	}
	if g.notify.n == nil {
		return
	}
	nd := &in.notify
	if nd.n == nil {
		nd.n = &haav1.Notify{}
		nd.users, nd.toks = map[string]string{}, map[string]token{}
	}
	for _, f := range notifyFields {
		t, ok := g.notify.toks[f]
		if !ok {
			continue
		}
		if own, clash := nd.toks[f]; clash {
			c.r.errorf(t, t.text, "vrrp_sync_group %s has one instance, so this conversion moves its lines into vrrp_instance %s, which has its own %s (%s); haa runs one command per state change: combine the two commands into one script, or add the other instance to the group", g.name, in.name, own.text, at(own, t))
			continue
		}
		*notifyCmd(nd.n, f) = *notifyCmd(g.notify.n, f)
		nd.users[f], nd.toks[f] = g.notify.users[f], t
		if f == "any" {
			c.r.warnf(t, t.text, "moved into vrrp_instance %s with its one-instance group: the command gets INSTANCE %s (not GROUP %s) as its first arguments; check that it does what you meant", in.name, in.name, g.name)
		}
	}
}

// notifyCmd returns the command of field f ("master", ..., "any") of n.
func notifyCmd(n *haav1.Notify, f string) *[]string {
	switch f {
	case "master":
		return &n.Master
	case "backup":
		return &n.Backup
	case "fault":
		return &n.Fault
	case "stop":
		return &n.Stop
	}
	return &n.Any
}

// finishGroup converts a sync group.
func (c *conv) finishGroup(g *groupDef, idx int) *haav1.SyncGroup {
	if g.single != nil {
		return nil // folded into its instance
	}
	sg := &haav1.SyncGroup{Name: g.name}
	toks := g.toks
	toks[""], toks["name"] = g.kw, g.kw
	defer c.record(fmt.Sprintf("syncGroups[%d]", idx), toks)
	for _, m := range g.members {
		if in := c.instByName[m.text]; in != nil && in.group == g && !slices.Contains(sg.Instances, m.text) {
			sg.Instances = append(sg.Instances, m.text)
		}
	}
	if _, ok := toks["instances"]; !ok {
		c.r.errorf(g.kw, g.kw.text, "vrrp_sync_group %s has no group block: add group { VI_1 VI_2 }", g.name)
	}
	sg.Notify = c.finishNotify(&g.notify, toks)
	sg.Track = c.trackRefs(g.tracks, nil, "", false)
	return sg
}

// isIPv6Text reports whether an address as written is IPv6.
func isIPv6Text(a string) bool { return strings.Contains(a, ":") }

// instanceIPv6 reports whether an instance runs over IPv6, as keepalived
// decides it: native_ipv6, else the family of the first address of
// virtual_ipaddress, else of the first unicast peer, else of
// mcast_dst_ip.
func (c *conv) instanceIPv6(in *instDef) bool {
	if in.native6 {
		return true
	}
	for _, e := range in.vips {
		a, _, _ := strings.Cut(e.kw.text, "/")
		return isIPv6Text(a)
	}
	for _, p := range in.peers {
		return isIPv6Text(p)
	}
	return isIPv6Text(in.mcast)
}

// vmacAccept converts use_vmac, vmac_xmit_base, accept and no_accept.
func (c *conv) vmacAccept(in *instDef, spec *haav1.Instance, prio uint32, version int, strict bool, strictTok token) {
	toks := in.toks
	switch {
	case in.vmac != nil:
		spec.Vmac = in.vmac
		if in.xmitBase && strict {
			here := toks["vmac.xmitBase"]
			c.r.warnf(here, here.text, "keepalived's strict mode (%s at %s) resets vmac_xmit_base (\"xmit_base is incompatible with strict mode - resetting\"), and so does this conversion: remove it", strictTok.text, at(strictTok, here))
		} else if in.xmitBase {
			spec.Vmac.XmitBase = true
		} else if len(in.peers) > 0 {
			here := toks["vmac"]
			c.r.warnf(here, here.text, "unicast with use_vmac: keepalived sends the adverts from the interface itself (\"unicast with use_vmac requires vmac_xmit_base - setting\"), and so does haa; add vmac_xmit_base to say so")
			spec.Vmac.XmitBase = true
		}
	case in.xmitBase:
		here := toks["vmac.xmitBase"]
		c.r.warnf(here, here.text, "without use_vmac there is no virtual MAC interface: keepalived ignores it, and so does this conversion; remove it")
	}
	switch {
	case in.accept != nil && *in.accept && strict && version == 2 && prio != 255:
		here := toks["acceptMode"]
		c.r.warnf(here, here.text, "in keepalived's strict mode (%s at %s) VRRPv2 has no accept mode (\"accept mode for VRRP version 2 does not comply with RFC3768 - resetting\"): the master drops packets to the VIPs, and so does this conversion (acceptMode: false); remove it", strictTok.text, at(strictTok, here))
		spec.AcceptMode = proto.Bool(false)
	case in.accept != nil:
		spec.AcceptMode = in.accept
	case strict && prio != 255:
		// keepalived's strict mode: no_accept unless the address owner.
		spec.AcceptMode = proto.Bool(false)
	}
}
