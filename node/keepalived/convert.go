package keepalived

import (
	"fmt"
	osuser "os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Options adjust a conversion.
type Options struct {
	// Name replaces global_defs router_id as the agent's name ("" :
	// router_id, else the host name is left to haad).
	Name string
	// Interfaces renames interfaces ("ens33" -> "eth0") everywhere:
	// instance interface, vip dev, track_interface.
	Interfaces map[string]string
}

// utf8 reports whether every text of o is UTF-8.
func (o Options) utf8() bool {
	if !utf8.ValidString(o.Name) {
		return false
	}
	for k, v := range o.Interfaces {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return false
		}
	}
	return true
}

// Load parses path (following include with globs, relative to the
// including file's directory) and converts it. Warnings are for what haa
// does not support or does differently; err is *Error (or an error reading
// path: an I/O error, ErrNotRegular, ErrTooLarge) and then nothing else is
// returned (an *Error carries the warnings). Only regular files are read, path and each included file of at
// most MaxFileBytes, at most MaxTotalBytes and MaxFiles files in all.
func Load(path string, opts Options) (*haav1.AgentConfig, []Problem, error) {
	cfg, _, warns, err := load(path, opts, hostFiles{}, limits{})
	return cfg, warns, err
}

// LoadResolved is Load that also returns the conversion resolved (what
// config.Resolve returns for it: the conversion was validated with it), so
// that haad need not resolve it again.
func LoadResolved(path string, opts Options) (*haav1.AgentConfig, *config.Agent, []Problem, error) {
	return load(path, opts, hostFiles{}, limits{})
}

// Parse is Load on bytes (includes relative to dir). data counts towards
// the limits as the top-level file.
func Parse(name string, data []byte, dir string, opts Options) (*haav1.AgentConfig, []Problem, error) {
	cfg, _, warns, err := parseFrom(name, data, dir, opts, hostFiles{}, limits{})
	return cfg, warns, err
}

// load is LoadResolved reading from fsys within lim.
func load(path string, opts Options, fsys sourceFiles, lim limits) (*haav1.AgentConfig, *config.Agent, []Problem, error) {
	data, err := readLimited(fsys, path, lim.orDefaults().file)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read keepalived configuration: %w", err)
	}
	return parseFrom(path, data, filepath.Dir(path), opts, fsys, lim)
}

// parseFrom is Parse reading includes from fsys within lim, returning the
// conversion resolved too.
func parseFrom(name string, data []byte, dir string, opts Options, fsys sourceFiles, lim limits) (*haav1.AgentConfig, *config.Agent, []Problem, error) {
	c := &conv{opts: opts, start: token{file: &name, lineNo: 1}}
	c.init()
	if limit := lim.orDefaults().file; int64(len(data)) > limit {
		c.r.errorf(c.start, "", "the configuration is %s, more than the %s a keepalived configuration file may have: is it the file you meant? If so, split it into files and include them from it", size(int64(len(data))), size(limit))
		return nil, nil, nil, c.r.err()
	}
	lx := &lexer{r: &c.r, fs: fsys, lim: lim, read: int64(len(data)), files: 1}
	if abs, err := filepath.Abs(name); err == nil {
		lx.stack = []string{abs}
	}
	toks := lx.file(name, data, dir)
	stmts := parse(toks, &c.r)
	if len(c.r.errs) > 0 {
		// Braces that do not pair up (or an unreadable include) make
		// every later message doubtful: report only these.
		return nil, nil, nil, c.r.err()
	}
	cfg := c.convert(stmts)
	var resolved *config.Agent
	if len(c.r.errs) == 0 {
		resolved = c.validate(cfg)
	}
	if len(c.r.errs) > 0 {
		e := c.r.err()
		e.Warnings = c.r.warnings()
		return nil, nil, nil, e
	}
	return cfg, resolved, c.r.warnings(), nil
}

// conv is one conversion.
type conv struct {
	r    report
	opts Options
	g    globals

	// trackers by haa name; defs in the order they were defined.
	trackers    map[string]*trackDef
	trackerDefs []*trackDef

	instances  []*instDef
	instByName map[string]*instDef
	groups     []*groupDef
	vss        []*vsDef
	vsgs       map[string]*vsgDef // virtual_server_group by name
	// rulePrio4 and rulePrio6 are the priorities keepalived gives the next
	// virtual rule without one (0: not started).
	rulePrio4, rulePrio6 int

	// unknownNames are the names of top-level blocks with an unknown
	// keyword (`vrp_script chk_nginx {`): a reference to one of them is
	// not reported again.
	unknownNames map[string]bool

	// start is the first line of the file, for problems of no line.
	start token

	// paths maps the path of a field in the converted configuration
	// ("instances[0].vrid") to the token it comes from, to place what
	// config.Validate finds. It is made from recs when first needed: most
	// files convert without a problem to place, and a large one would
	// build a path for every field (a sixth of a 10,000-virtual-server
	// file's conversion).
	paths map[string]token
	recs  []pathRec

	// rsHandlers are the keywords of a real_server block; curRS is the
	// real server being read.
	rsHandlers map[string]handler
	curRS      *rsDef
	// vsHandlers are those of a virtual_server block; *curVS is the
	// virtual server being read.
	vsHandlers map[string]handler
	curVS      **vsDef
}

// pathRec is what record was told: the tokens of the fields under prefix.
type pathRec struct {
	prefix string
	toks   map[string]token
	rs     *rsDef // a real server's fields: its toks, "" and address its kw
}

// fieldToks is a few fields' tokens, for an element of which a file has
// thousands (a real server): a map each cost half of their conversion's
// memory.
type fieldToks []fieldTok

type fieldTok struct {
	field string
	tok   token
}

// set notes field's token, over an earlier one.
func (f *fieldToks) set(field string, t token) {
	for i := range *f {
		if (*f)[i].field == field {
			(*f)[i].tok = t
			return
		}
	}
	*f = append(*f, fieldTok{field, t})
}

// get is field's token.
func (f fieldToks) get(field string) (token, bool) {
	for _, ft := range f {
		if ft.field == field {
			return ft.tok, true
		}
	}
	return token{}, false
}

func (c *conv) init() {
	c.trackers = map[string]*trackDef{}
	c.instByName = map[string]*instDef{}
	c.unknownNames = map[string]bool{}
}

// globals are the values of global_defs that the rest uses.
type globals struct {
	routerID     string
	routerTok    token
	version      int // 0: not set (keepalived's default is 2)
	versionTok   token
	mcast        string
	mcastTok     token
	mcast6       string // vrrp_mcast_group6
	mcast6Tok    token
	garp         garpDef
	scriptUser   string
	defaultIface string
	defaultTok   token
	strict       bool
	strictTok    token
	// lvs_flush, lvs_flush_on_stop (without VS): the whole IPVS table
	// is emptied at start, at stop.
	flushStart, flushStop       bool
	flushStartTok, flushStopTok token
}

// garpDef are gratuitous ARP settings, each nil when not given.
type garpDef struct {
	delay, refresh, interval *time.Duration
	repeat, refreshRepeat    *uint32
	tok                      map[string]token // haa field name -> keyword
}

func (gd *garpDef) set(field string, t token) {
	if gd.tok == nil {
		gd.tok = map[string]token{}
	}
	gd.tok[field] = t
}

// handler converts one keyword of a block.
type handler struct {
	fn func(*stmt)
	// repeat: the keyword may be given more than once (blocks whose
	// entries add up, like virtual_ipaddress or real_server).
	repeat bool
	// block: blockNone (default) refuses a block, blockNeed requires one.
	block int
}

const (
	blockNone = iota
	blockNeed
	blockAny
)

func line(fn func(*stmt)) handler      { return handler{fn: fn} }
func blk(fn func(*stmt)) handler       { return handler{fn: fn, block: blockNeed} }
func blkRepeat(fn func(*stmt)) handler { return handler{fn: fn, block: blockNeed, repeat: true} }

// walk converts the statements of a block: each keyword by its handler,
// the keywords haa does not implement by their table entry, and anything
// else as an unknown keyword. where names the block in messages.
//
// It returns the keywords given (handled or not), with their first token;
// the key "" is there when some keyword was unknown (see missing).
func (c *conv) walk(where string, sts []*stmt, hs map[string]handler, unsup map[string]unsupported) map[string]token {
	return c.walkBlock(func() string { return where }, sts, hs, unsup, true)
}

// walkBlock is walk, with the block's name made only for a message, and
// the keywords given returned only when wanted (nil otherwise): the
// blocks of a large file's virtual and real servers, thousands of them,
// need neither.
func (c *conv) walkBlock(whereFn func() string, sts []*stmt, hs map[string]handler, unsup map[string]unsupported, wantGiven bool) map[string]token {
	var given map[string]token
	if wantGiven {
		given = map[string]token{}
	}
	// The handled keywords seen so far, for "given twice": a block has a
	// few, searched in order.
	var seenBuf [16]token
	seen := seenBuf[:0]
	seenAt := func(kw string) (token, bool) {
		for _, t := range seen {
			if t.text == kw {
				return t, true
			}
		}
		return token{}, false
	}
	where := ""
	for _, st := range sts {
		kw := st.kw.text
		if wantGiven {
			if _, ok := given[kw]; !ok {
				given[kw] = st.kw
			}
		}
		if st.kw.quoted {
			c.r.errorf(st.kw, kw, "a keyword cannot be quoted: write %s without the quotes", kw)
			continue
		}
		if h, ok := hs[kw]; ok {
			first, dup := seenAt(kw)
			if dup && !h.repeat {
				c.r.errorf(st.kw, kw, "given twice in %s (first at line %d): keep one", whereFn(), first.pos().Line)
				continue
			}
			if !dup {
				seen = append(seen, st.kw)
			}
			switch {
			case h.block == blockNone && st.hasBlock:
				c.r.errorf(st.open, kw, "takes no { } block: write %s on one line and remove the block", kw)
				continue
			case h.block == blockNeed && !st.hasBlock:
				c.r.errorf(st.kw, kw, "needs a block: write %s ... { ... }", kw)
				continue
			}
			h.fn(st)
			continue
		}
		if u, ok := unsup[kw]; ok {
			if u.err {
				c.r.errorf(st.kw, kw, "%s", u.msg)
			} else {
				c.r.warnf(st.kw, kw, "%s", u.msg)
			}
			continue
		}
		if wantGiven {
			given[""] = st.kw
		}
		if where == "" {
			where = whereFn()
		}
		msg := "unknown keyword in " + where
		if where == "top" {
			msg = "unknown top-level keyword"
		}
		if c.r.full() {
			// Not kept: not worth a suggestion.
		} else if s := suggest(kw, hs, unsup); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		}
		if st.hasBlock {
			msg += ": fix the spelling, or remove the keyword and its block"
		} else {
			msg += ": fix the spelling, or remove the line"
		}
		c.r.errorf(st.kw, kw, "%s", msg)
		if where == "top" && len(st.args) > 0 {
			c.unknownNames[st.args[0].text] = true
		}
	}
	return given
}

// suggest returns the keyword closest to a misspelled one, if close.
func suggest(kw string, hs map[string]handler, unsup map[string]unsupported) string {
	best, bestD := "", 3
	if len(kw) <= 4 {
		bestD = 2
	}
	var names []string
	for k := range hs {
		names = append(names, k)
	}
	for k := range unsup {
		names = append(names, k)
	}
	sort.Strings(names)
	lk := strings.ToLower(kw)
	for _, k := range names {
		if strings.ToLower(k) == lk {
			return k
		}
		// The lengths differ by at least the distance: a long word (up
		// to a whole file of it) costs nothing.
		if d := len(lk) - len(k); d >= bestD || -d >= bestD {
			continue
		}
		if d := config.EditDistance(lk, strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// missing reports whether kw is missing from a block whose keywords walk
// returned. A block with an unknown keyword (a typo, already reported)
// misses nothing: the typo may well be kw.
func missing(given map[string]token, kw string) bool {
	_, g := given[kw]
	_, unknown := given[""]
	return !g && !unknown
}

// nargs checks that st has min..max values (max < 0: no limit); usage is
// an example of the right form.
func (c *conv) nargs(st *stmt, lo, hi int, usage string) bool {
	n := len(st.args)
	if n >= lo && (hi < 0 || n <= hi) {
		return true
	}
	switch {
	case n == 0:
		c.r.errorf(st.kw, st.kw.text, "needs a value: write %s", usage)
	case n < lo:
		c.r.errorf(st.kw, st.kw.text, "needs more values: write %s", usage)
	case hi == 0:
		c.r.errorf(st.args[0], st.kw.text, "takes no value (%q): write %s alone", st.args[0].text, st.kw.text)
	default:
		c.r.errorf(st.args[hi], st.kw.text, "too many values (%q and after): write %s", st.args[hi].text, usage)
	}
	return false
}

// value returns the single value of st.
func (c *conv) value(st *stmt, usage string) (token, bool) {
	if !c.nargs(st, 1, 1, usage) {
		return token{}, false
	}
	return st.args[0], true
}

// uintValue parses the single value of st as a whole number lo..hi.
func (c *conv) uintValue(st *stmt, lo, hi uint64) (uint64, bool) {
	t, ok := c.value(st, fmt.Sprintf("%s %d", st.kw.text, lo))
	if !ok {
		return 0, false
	}
	return c.uintTok(st, t, lo, hi)
}

func (c *conv) uintTok(st *stmt, t token, lo, hi uint64) (uint64, bool) {
	n, err := strconv.ParseUint(t.text, 10, 64)
	if err != nil || n < lo || n > hi {
		c.r.errorf(t, st.kw.text, "%q is not a whole number %d..%d: write one, e.g. %s %d", t.text, lo, hi, st.kw.text, max(lo, min(hi, 1)))
		return 0, false
	}
	return n, true
}

// intTok parses t as a whole number lo..hi (negative allowed).
func (c *conv) intTok(st *stmt, t token, lo, hi int64) (int64, bool) {
	n, err := strconv.ParseInt(t.text, 10, 64)
	if err != nil || n < lo || n > hi {
		c.r.errorf(t, st.kw.text, "%q is not a whole number %d..%d: write one, e.g. %s %d", t.text, lo, hi, st.kw.text, max(lo, min(hi, 10)))
		return 0, false
	}
	return n, true
}

// seconds parses the single value of st as seconds: whole seconds unless
// frac (keepalived reads those with decimals, to the microsecond), at
// most hi.
func (c *conv) seconds(st *stmt, frac bool, hi time.Duration) (time.Duration, bool) {
	t, ok := c.value(st, st.kw.text+" 1")
	if !ok {
		return 0, false
	}
	return c.secondsTok(st, t, frac, hi)
}

var wholeRE = regexp.MustCompile(`^[0-9]+$`)
var decimalRE = regexp.MustCompile(`^([0-9]+(\.[0-9]*)?|\.[0-9]+)$`)

func (c *conv) secondsTok(st *stmt, t token, frac bool, hi time.Duration) (time.Duration, bool) {
	kw := st.kw.text
	if !frac {
		if !wholeRE.MatchString(t.text) {
			c.r.errorf(t, kw, "%q is not a whole number of seconds: write e.g. %s 5", t.text, kw)
			return 0, false
		}
	} else if !decimalRE.MatchString(t.text) {
		c.r.errorf(t, kw, "%q is not a number of seconds: write e.g. %s 5 or %s 0.5", t.text, kw, kw)
		return 0, false
	}
	f, err := strconv.ParseFloat(t.text, 64)
	if err != nil || f > hi.Seconds() {
		c.r.errorf(t, kw, "%q seconds is out of range 0..%g: write a smaller value", t.text, hi.Seconds())
		return 0, false
	}
	// To the microsecond, as keepalived's timers (TIMER_HZ).
	return time.Duration(f*1e6+0.5) * time.Microsecond, true
}

// at names the place of t as seen from the problem at here: "line N" in
// the same file, else "file:N".
func at(t, here token) string {
	if t.pos().File == here.pos().File {
		return fmt.Sprintf("line %d", t.lineNo)
	}
	return t.pos().String()
}

// iface returns an interface name after Options.Interfaces.
func (c *conv) iface(name string) string {
	if n, ok := c.opts.Interfaces[name]; ok && n != "" {
		return n
	}
	return name
}

// dur is a Duration message for d.
func dur(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

// convert converts the statements of a whole file.
func (c *conv) convert(sts []*stmt) *haav1.AgentConfig {
	// global_defs first: its values are the defaults of what comes
	// before and after it.
	var rest []*stmt
	for _, st := range sts {
		if st.kw.text == "global_defs" && !st.kw.quoted {
			if !st.hasBlock {
				c.r.errorf(st.kw, "global_defs", "needs a block: write global_defs { ... }")
				continue
			}
			if len(st.args) > 0 {
				c.r.errorf(st.args[0], "global_defs", "takes no name (%q): write global_defs {", st.args[0].text)
			}
			c.globalDefs(st)
			continue
		}
		rest = append(rest, st)
	}
	top := map[string]handler{
		"global_defs":     blkRepeat(func(*stmt) {}), // done above
		"vrrp_script":     blkRepeat(c.vrrpScript),
		"vrrp_track_file": blkRepeat(c.trackFileDef),
		// keepalived's current name; vrrp_track_file is its old synonym.
		"track_file":           blkRepeat(c.trackFileDef),
		"vrrp_track_process":   blkRepeat(c.trackProcessDef),
		"vrrp_instance":        blkRepeat(c.vrrpInstance),
		"vrrp_sync_group":      blkRepeat(c.syncGroup),
		"virtual_server":       blkRepeat(c.virtualServer),
		"virtual_server_group": blkRepeat(c.vsGroupDef),
	}
	// Top-level blocks haa does not implement are skipped whole.
	unsup := map[string]unsupported{}
	for k, v := range topUnsupported {
		unsup[k] = v
	}
	c.walk("top", rest, top, unsup)
	if len(c.instances) == 0 && len(c.vss) == 0 && len(c.r.errs) == 0 {
		c.r.warnf(c.start, "", "nothing to run: no vrrp_instance or virtual_server")
	}

	cfg := &haav1.AgentConfig{Name: c.g.routerID}
	if c.opts.Name != "" {
		cfg.Name = c.opts.Name
	} else if c.g.routerID != "" {
		c.setPath("name", c.g.routerTok)
	}
	c.linkGroups()
	for _, in := range c.instances {
		if spec := c.finishInstance(in, len(cfg.Instances)); spec != nil {
			cfg.Instances = append(cfg.Instances, spec)
		}
	}
	for _, g := range c.groups {
		if sg := c.finishGroup(g, len(cfg.SyncGroups)); sg != nil {
			cfg.SyncGroups = append(cfg.SyncGroups, sg)
		}
	}
	cfg.Trackers = c.finishTrackers()
	for _, vs := range c.vss {
		if v := c.finishVS(vs, len(cfg.VirtualServers)); v != nil {
			cfg.VirtualServers = append(cfg.VirtualServers, v)
		}
	}
	if len(cfg.VirtualServers) > 0 {
		// keepalived always programs IPVS. haa's default ("auto") would
		// fall back to nftables where the ip_vs module is not loaded yet
		// (keepalived loads it), and nftables has neither DR nor TUN,
		// persistence or most schedulers: ask for IPVS, as keepalived.
		cfg.LoadBalancer = &haav1.LoadBalancer{Backend: "ipvs", FlushOnStart: c.g.flushStart, FlushOnStop: c.g.flushStop}
		if c.g.flushStart {
			c.setPath("loadBalancer.flushOnStart", c.g.flushStartTok)
		}
		if c.g.flushStop {
			c.setPath("loadBalancer.flushOnStop", c.g.flushStopTok)
		}
	} else {
		// keepalived runs no checker process without virtual servers:
		// nothing flushes the table.
		for _, t := range []*token{&c.g.flushStartTok, &c.g.flushStopTok} {
			if t.text != "" {
				c.r.warnf(*t, t.text, "without a virtual_server keepalived runs no checker and empties no IPVS table, and neither does haa: remove it")
			}
		}
	}
	return cfg
}

// globalDefs converts a global_defs block.
func (c *conv) globalDefs(st *stmt) {
	g := &c.g
	hs := map[string]handler{
		"router_id": line(func(st *stmt) {
			if t, ok := c.value(st, "router_id NAME"); ok {
				g.routerID, g.routerTok = t.text, st.kw
			}
		}),
		// keepalived's default VRRP version is 2 (haa's is 3): every
		// instance gets its version written out, see finishInstance.
		"vrrp_version": line(func(st *stmt) {
			if n, ok := c.uintValue(st, 2, 3); ok {
				g.version, g.versionTok = int(n), st.kw
			}
		}),
		"vrrp_mcast_group4": line(func(st *stmt) {
			if t, ok := c.value(st, "vrrp_mcast_group4 224.0.0.18"); ok {
				g.mcast, g.mcastTok = t.text, st.kw
			}
		}),
		"vrrp_mcast_group6": line(func(st *stmt) {
			if t, ok := c.value(st, "vrrp_mcast_group6 ff02::12"); ok {
				g.mcast6, g.mcast6Tok = t.text, st.kw
			}
		}),
		"vrrp_garp_master_delay":          line(func(st *stmt) { c.garpDelay(st, &g.garp) }),
		"vrrp_garp_master_repeat":         line(func(st *stmt) { c.garpRepeat(st, &g.garp, &g.garp.repeat, "repeat") }),
		"vrrp_garp_master_refresh":        line(func(st *stmt) { c.garpRefresh(st, &g.garp) }),
		"vrrp_garp_master_refresh_repeat": line(func(st *stmt) { c.garpRepeat(st, &g.garp, &g.garp.refreshRepeat, "refreshRepeat") }),
		"vrrp_garp_interval":              line(func(st *stmt) { c.garpInterval(st, &g.garp) }),
		// keepalived runs scripts as script_user, else as the user
		// keepalived_script when it exists, else as root; haa runs them
		// as root unless told otherwise, so only script_user carries
		// over.
		"script_user": line(func(st *stmt) {
			if u, ok := c.user(st); ok {
				g.scriptUser = u
			}
		}),
		"enable_script_security": line(func(st *stmt) {
			c.r.warnf(st.kw, st.kw.text, "haa always checks that scripts and the directories above them are writable only by root or the user they run as: remove it")
		}),
		"vrrp_strict": line(func(st *stmt) {
			if c.nargs(st, 0, 0, "vrrp_strict") {
				g.strict, g.strictTok = true, st.kw
				c.r.warnf(st.kw, st.kw.text, "haa has no strict mode of its own: what it changes in the instances is converted as keepalived does it (no_accept unless priority 255, so the master drops packets to the VIPs: acceptMode false; no authentication; state MASTER only with priority 255; no preempt_delay; a link-local first IPv6 address): see the warnings of each instance, then remove vrrp_strict")
			}
		}),
		// keepalived's lvs_flush: the whole IPVS table is emptied when
		// the checker starts (not at a reload).
		"lvs_flush": line(func(st *stmt) {
			if c.nargs(st, 0, 0, st.kw.text) {
				g.flushStart, g.flushStartTok = true, st.kw
			}
		}),
		// lvs_flush_on_stop empties the whole table when keepalived
		// stops; with VS, it removes only its own virtual servers, each
		// with one command (check_daemon.c clear_services, ipwrapper.c
		// clear_service_vs), which is what haa does without it.
		"lvs_flush_on_stop": line(func(st *stmt) { c.flushOnStop(st) }),
		"lvs_flush_onstop":  line(func(st *stmt) { c.flushOnStop(st) }),
		"default_interface": line(func(st *stmt) {
			if t, ok := c.value(st, "default_interface eth0"); ok {
				g.defaultIface, g.defaultTok = c.iface(t.text), st.kw
			}
		}),
	}
	unsup := map[string]unsupported{}
	for k, v := range globalUnsupported {
		unsup[k] = v
	}
	// An unsupported keyword's block (notification_email { ... }) is
	// skipped whole, with the one warning.
	c.walk("global_defs", st.block, hs, unsup)
}

// flushOnStop reads lvs_flush_on_stop [VS] (and its old name
// lvs_flush_onstop).
func (c *conv) flushOnStop(st *stmt) {
	if !c.nargs(st, 0, 1, st.kw.text+" [VS]") {
		return
	}
	switch {
	case len(st.args) == 0:
		c.g.flushStop, c.g.flushStopTok = true, st.kw
	case st.args[0].text == "VS":
		// haa's own way: its virtual servers go, others' stay.
		c.g.flushStop, c.g.flushStopTok = false, token{}
	default:
		c.r.errorf(st.args[0], st.kw.text, "%q is not a flush type: write %s (the whole IPVS table) or %s VS (only the virtual servers of this file, as haa does without it)", st.args[0].text, st.kw.text, st.kw.text)
	}
}

// user converts `user USER [GROUP]` into "user" or "user:group".
func (c *conv) user(st *stmt) (string, bool) {
	if !c.nargs(st, 1, 2, st.kw.text+" USER [GROUP]") {
		return "", false
	}
	u := st.args[0].text
	if len(st.args) == 2 {
		u += ":" + st.args[1].text
	}
	return u, true
}

// command converts the words of a command keyword (script, misc_path,
// notify_*, quorum_up, ...) into a program and its arguments.
//
// keepalived splits a command into words itself, honouring quotes and
// backslashes, and runs it without a shell (keepalived 2.x). Lines written
// for a shell (`killall -0 nginx && exit 0 || exit 1`, common in tutorials)
// are run by haa with /bin/sh -c (bash for [[ ]]) with a warning, since
// they say what they mean only with a shell.
func (c *conv) command(st *stmt, words []token) ([]string, bool) {
	var s string
	if len(words) == 1 {
		s = words[0].text
	} else {
		parts := make([]string, len(words))
		for i, w := range words {
			parts[i] = w.text
			if w.quoted {
				parts[i] = `"` + strings.ReplaceAll(w.text, `"`, `\"`) + `"`
			}
		}
		s = strings.Join(parts, " ")
	}
	if strings.TrimSpace(s) == "" {
		c.r.errorf(st.kw, st.kw.text, "empty command: give the program to run, e.g. %s \"/etc/keepalived/check.sh\"", st.kw.text)
		return nil, false
	}
	argv, shell := splitCommand(s)
	if !shell && len(words) == 1 && !words[0].quoted {
		argv = []string{s}
	}
	if shell {
		sh := shellFor(s)
		argv = []string{sh, "-c", s}
		c.r.warnf(words[0], st.kw.text, "%q uses shell syntax, so haa runs it as [%q, \"-c\", ...] (keepalived 2.x runs commands without a shell): check that it does what you meant, or move the commands into a script file", s, sh)
	}
	return argv, true
}

// notifyCommand converts `KW "COMMAND" [USER [GROUP]]` (notify_*,
// notify_up/down, quorum_up/down): as in keepalived, the command is the
// first word (quote it when it has arguments) and the words after it name
// the user (and group) it runs as. keepalived ignores the line when that
// user or group does not exist, which is what a tutorial's
// `notify_master /etc/keepalived/notify.sh master` comes to; so does this
// conversion (ok false), with a warning at the line.
func (c *conv) notifyCommand(st *stmt) (cmd []string, user string, ok bool) {
	if !c.nargs(st, 1, 3, st.kw.text+` "/path/to/script ARGS" [USER [GROUP]]`) {
		return nil, "", false
	}
	if len(st.args) > 1 && !c.runAsExists(st) {
		return nil, "", false
	}
	cmd, ok = c.command(st, st.args[:1])
	if !ok {
		return nil, "", false
	}
	if len(st.args) > 1 {
		user = st.args[1].text
		if len(st.args) > 2 {
			user += ":" + st.args[2].text
		}
		if !st.args[0].quoted {
			c.r.warnf(st.args[1], st.kw.text, "%q runs as user %q: keepalived reads the words after an unquoted command as its user and group; if they are arguments, quote the whole command line", st.args[0].text, user)
		}
	}
	return cmd, user, true
}

// userExists and groupExists look users and groups up on this machine
// (variables, for the tests).
var (
	userExists = func(name string) bool {
		_, err := osuser.Lookup(name)
		return err == nil
	}
	groupExists = func(name string) bool {
		_, err := osuser.LookupGroup(name)
		return err == nil
	}
)

// runAsExists checks the user (and group) after the command of a notify
// line, and warns when keepalived would ignore the line for want of them.
func (c *conv) runAsExists(st *stmt) bool {
	words := st.args[1:]
	userOK := userExists(words[0].text)
	groupOK := len(words) < 2 || groupExists(words[1].text)
	if userOK && groupOK {
		return true
	}
	texts := make([]string, len(words))
	for i, w := range words {
		texts[i] = w.text
	}
	read, as, what := fmt.Sprintf("%q", texts[0]), "the user", "user"
	if len(words) == 2 {
		read, as = fmt.Sprintf("%q %q", texts[0], texts[1]), "the user and group"
		switch {
		case !userOK && !groupOK:
			what = "user and group"
		case !groupOK:
			what = "group"
		}
	}
	pass := "an argument"
	if len(words) > 1 {
		pass = "arguments"
	}
	whole := strings.ReplaceAll(st.args[0].text+" "+strings.Join(texts, " "), `"`, `\"`)
	c.r.warnf(st.kw, st.kw.text, "keepalived reads %s as %s to run the script as and, with no such %s, ignores the line; this conversion ignores it too: to pass %s, quote the whole command: %s \"%s\"", read, as, what, pass, st.kw.text, whole)
	return false
}

// validate runs haa's own validation on the converted configuration, as a
// backstop: what it finds is reported at the keyword the field comes from.
// Text that is not UTF-8 (from Options: the file's is refused when read),
// which config.Validate does not look for, cannot be written as JSON,
// YAML or protobuf: it is refused too.
func (c *conv) validate(cfg *haav1.AgentConfig) *config.Agent {
	// The file's text is UTF-8 (the lexer refuses a token that is not):
	// only Options can bring other text, and the walk of every field is
	// a tenth of a large file's conversion.
	var fields []config.FieldError
	if !c.opts.utf8() {
		fields = nonUTF8(nil, "", cfg.ProtoReflect())
	}
	resolved, err := config.Resolve(cfg)
	if err != nil {
		fields = append(fields, config.Fields(err)...)
	}
	for _, f := range fields {
		t, ok := c.placeOf(f.Path)
		msg := fmt.Sprintf("converted, it is not a valid haa configuration (%s): change this line so that it is", f.String())
		if !ok {
			// No place known: the start of the file.
			c.r.errorf(c.start, "", "%s", msg)
			continue
		}
		c.r.errorf(t, t.text, "%s", msg)
	}
	if len(fields) > 0 {
		return nil
	}
	return resolved
}

// nonUTF8 appends a FieldError for every string of m (at path, in the
// JSON names of config's paths) that is not UTF-8. A path is written out
// only for a string that is not: the walk of a large configuration built
// one for every field (a third of a 1,000-virtual-server file's
// conversion).
func nonUTF8(out []config.FieldError, path string, m protoreflect.Message) []config.FieldError {
	return nonUTF8At(out, func() string { return path }, m)
}

func nonUTF8At(out []config.FieldError, path func() string, m protoreflect.Message) []config.FieldError {
	join := func(name string) string {
		if p := path(); p != "" {
			return p + "." + name
		}
		return name
	}
	check := func(p func() string, v protoreflect.Value, fd protoreflect.FieldDescriptor) {
		switch {
		case fd.Kind() == protoreflect.StringKind && !utf8.ValidString(v.String()):
			out = append(out, config.FieldError{Path: p(), Msg: fmt.Sprintf("%q is not UTF-8 text", v.String())})
		case fd.Kind() == protoreflect.MessageKind:
			out = nonUTF8At(out, p, v.Message())
		}
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.StringKind && fd.Kind() != protoreflect.MessageKind {
			return true
		}
		p := func() string { return join(fd.JSONName()) }
		switch {
		case fd.IsList():
			for i := range v.List().Len() {
				check(func() string { return fmt.Sprintf("%s[%d]", p(), i) }, v.List().Get(i), fd)
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if !utf8.ValidString(k.String()) {
					out = append(out, config.FieldError{Path: p(), Msg: fmt.Sprintf("the key %q is not UTF-8 text", k.String())})
				}
				check(func() string { return p() + "." + k.String() }, mv, fd.MapValue())
				return true
			})
		default:
			check(p, v, fd)
		}
		return true
	})
	return out
}

// placeOf returns the token of path, or of the closest enclosing path.
func (c *conv) placeOf(path string) (token, bool) {
	paths := c.pathMap()
	for p := path; p != ""; {
		if t, ok := paths[p]; ok {
			return t, true
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return token{}, false
}

// record notes where the fields of a converted element come from: toks
// by field name under prefix ("" the element itself). The map is read
// when the paths are first needed.
func (c *conv) record(prefix string, toks map[string]token) {
	c.recs = append(c.recs, pathRec{prefix: prefix, toks: toks})
}

// recordRS is record of a real server's fields.
func (c *conv) recordRS(prefix string, r *rsDef) {
	c.recs = append(c.recs, pathRec{prefix: prefix, rs: r})
}

// setPath notes that the field at path comes from t.
func (c *conv) setPath(path string, t token) {
	c.record(path, map[string]token{"": t})
}

// pathMap is the paths recorded so far, by field path.
func (c *conv) pathMap() map[string]token {
	if c.paths == nil {
		c.paths = map[string]token{}
	}
	put := func(prefix, k string, t token) {
		if k == "" {
			c.paths[prefix] = t
		} else {
			c.paths[prefix+"."+k] = t
		}
	}
	for _, r := range c.recs {
		for k, t := range r.toks {
			put(r.prefix, k, t)
		}
		if r.rs != nil {
			put(r.prefix, "", r.rs.kw)
			put(r.prefix, "address", r.rs.kw)
			for _, f := range r.rs.toks {
				put(r.prefix, f.field, f.tok)
			}
		}
	}
	c.recs = nil
	return c.paths
}
