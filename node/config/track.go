package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/haa-dev/haa/node/track"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Tracker kinds (track.Kind).
const (
	KindScript    = track.KindScript
	KindInterface = track.KindInterface
	KindFile      = track.KindFile
	KindProcess   = track.KindProcess
)

// Tracker defaults and limits, as keepalived's where keepalived has one.
const (
	DefaultScriptInterval  = time.Second
	DefaultRise            = 1
	DefaultFall            = 1
	DefaultQuorum          = 1
	DefaultProcessInterval = time.Second
	DefaultNotifyTimeout   = 30 * time.Second
	MinCheckInterval       = 10 * time.Millisecond
	MaxCheckInterval       = time.Hour
	MaxTimeout             = time.Hour
	MaxRiseFall            = 100
	MaxWeight              = 253 // script, interface, process: -253..253
	MaxFileWeight          = 254 // file: -254..254
)

// Tracker is one validated tracker with its defaults filled in. Exactly one
// of Script, Iface, File and Process is set, as Kind says.
type Tracker struct {
	Name    string
	Kind    track.Kind
	Weight  int
	Script  *Script  // Kind script
	Iface   string   // Kind interface
	File    string   // Kind file: an absolute, clean path
	Process *Process // Kind process
	// Spec is the tracker as configured, to tell changed from unchanged.
	Spec *haav1.Tracker
}

// Script is a script tracker's command and timing. The program is not
// checked here (it may not exist where a document is validated): the node
// resolves it.
type Script struct {
	Command           []string
	Interval, Timeout time.Duration
	Rise, Fall        int
	User              string // "" = root
}

// Process is a process tracker.
type Process struct {
	Name      string
	Args      []string
	Quorum    int
	QuorumMax int // 0: no limit
	Interval  time.Duration
}

// TrackRef is an instance's (or a sync group's) use of a tracker.
type TrackRef struct {
	Tracker string
	Weight  int // the reference's weight when it sets one, else the tracker's
}

// Notify are the commands run on state changes. A nil list runs nothing.
type Notify struct {
	Master, Backup, Fault, Stop, Any []string
	Timeout                          time.Duration
	User                             string // "" = root
}

// SyncGroup is one validated sync group.
type SyncGroup struct {
	Name      string
	Instances []string // by name, in the configured order
	Notify    *Notify  // nil: none
	Track     []TrackRef
	// Spec is the group as configured, to tell changed from unchanged.
	Spec *haav1.SyncGroup
}

// userRE is a user or group: a name or a numeric id.
var userRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?$`)

// trackerInfo is what a reference needs to know of a tracker.
type trackerInfo struct {
	kind   track.Kind // "" when the tracker does not say (it is invalid)
	weight int
}

// trackerSet are the trackers references may name, by name.
type trackerSet map[string]trackerInfo

// resolveTrackers validates trackers (at path[i]) and returns them with
// their defaults, and the names references may use: every named tracker,
// valid or not, so that a broken tracker is reported once, not at each
// reference.
func resolveTrackers(p *problems, path string, specs []*haav1.Tracker) ([]Tracker, trackerSet) {
	set := trackerSet{}
	names := map[string]int{}
	out := make([]Tracker, 0, len(specs))
	for i, s := range specs {
		tp := fmt.Sprintf("%s[%d]", path, i)
		name := s.GetName()
		switch j, dup := names[name]; {
		case name == "":
			p.add(tp+".name", "required: give the tracker a name such as chk_nginx")
		case !nameRE.MatchString(name):
			p.add(tp+".name", "%q is not a valid name: use letters, digits, and _ . : - (at most 63)", name)
		case dup:
			p.add(tp+".name", "%q is already used by %s[%d]: each tracker needs its own name", name, path, j)
		default:
			names[name] = i
		}
		t := resolveTracker(p, tp, s)
		if _, dup := set[name]; name != "" && !dup {
			set[name] = trackerInfo{kind: t.Kind, weight: t.Weight}
		}
		out = append(out, *t)
	}
	return out, set
}

// resolveTracker validates one tracker but its name.
func resolveTracker(p *problems, path string, s *haav1.Tracker) *Tracker {
	f := func(name string) string { return path + "." + name }
	t := &Tracker{Name: s.GetName(), Weight: int(s.GetWeight()), Spec: s}
	var kinds []track.Kind
	if s.GetScript() != nil {
		kinds = append(kinds, KindScript)
	}
	if s.GetInterface() != nil {
		kinds = append(kinds, KindInterface)
	}
	if s.GetFile() != nil {
		kinds = append(kinds, KindFile)
	}
	if s.GetProcess() != nil {
		kinds = append(kinds, KindProcess)
	}
	switch len(kinds) {
	case 0:
		p.add(path, "no check: set exactly one of script, interface, file, process")
	case 1:
		t.Kind = kinds[0]
	default:
		p.add(path, "sets %s: set exactly one of script, interface, file, process", joinKinds(kinds))
	}
	if sc := s.GetScript(); sc != nil {
		t.Script = resolveScript(p, f("script"), sc)
	}
	if ic := s.GetInterface(); ic != nil {
		t.Iface = ic.GetName()
		switch {
		case t.Iface == "":
			p.add(f("interface.name"), "required: the interface to follow, e.g. eth1")
		case !ifaceRE.MatchString(t.Iface):
			p.add(f("interface.name"), "%q is not a valid interface name", t.Iface)
		}
	}
	if fc := s.GetFile(); fc != nil {
		t.File = fc.GetPath()
		switch {
		case t.File == "":
			p.add(f("file.path"), "required: the file to read, e.g. /run/haa/drain")
		case !filepath.IsAbs(t.File):
			p.add(f("file.path"), "%q must be an absolute path", t.File)
		case filepath.Clean(t.File) != t.File:
			p.add(f("file.path"), "%q is not a clean path: write %q", t.File, filepath.Clean(t.File))
		}
	}
	if pc := s.GetProcess(); pc != nil {
		t.Process = resolveProcess(p, f("process"), pc)
	}
	if lo, hi := weightRange(t.Kind); t.Weight < lo || t.Weight > hi {
		p.add(f("weight"), "%d is out of range %d..%d%s", t.Weight, lo, hi, weightHint(t.Kind))
	}
	return t
}

func joinKinds(kinds []track.Kind) string {
	s := make([]string, len(kinds))
	for i, k := range kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// weightRange is the weights a tracker of this kind takes.
func weightRange(kind track.Kind) (lo, hi int) {
	if kind == KindFile {
		return -MaxFileWeight, MaxFileWeight
	}
	return -MaxWeight, MaxWeight
}

func weightHint(kind track.Kind) string {
	if kind == KindFile {
		return " (multiplied by the file's number)"
	}
	return ""
}

func resolveScript(p *problems, path string, s *haav1.ScriptCheck) *Script {
	sc := &Script{Command: s.GetCommand(), Interval: DefaultScriptInterval, Rise: DefaultRise, Fall: DefaultFall, User: s.GetUser()}
	if len(sc.Command) == 0 {
		p.add(path+".command", `required: the program and its arguments, e.g. ["/usr/bin/pgrep", "-x", "nginx"]`)
	} else {
		checkCommand(p, path+".command", sc.Command)
	}
	if s.Interval != nil {
		sc.Interval = s.GetInterval().AsDuration()
		if sc.Interval < MinCheckInterval || sc.Interval > MaxCheckInterval {
			p.add(path+".interval", "%s is out of range %s..%s (leave it out for %s)", dur(sc.Interval), dur(MinCheckInterval), dur(MaxCheckInterval), dur(DefaultScriptInterval))
		}
	}
	sc.Timeout = sc.Interval
	if s.Timeout != nil {
		sc.Timeout = s.GetTimeout().AsDuration()
		checkTimeout(p, path+".timeout", sc.Timeout, "the interval")
	}
	if v := s.GetRise(); v != 0 {
		sc.Rise = int(v)
		if v > MaxRiseFall {
			p.add(path+".rise", "%d is out of range 1..%d", v, MaxRiseFall)
		}
	}
	if v := s.GetFall(); v != 0 {
		sc.Fall = int(v)
		if v > MaxRiseFall {
			p.add(path+".fall", "%d is out of range 1..%d", v, MaxRiseFall)
		}
	}
	checkUser(p, path+".user", sc.User)
	return sc
}

func resolveProcess(p *problems, path string, s *haav1.ProcessCheck) *Process {
	pr := &Process{Name: s.GetName(), Args: s.GetArgs(), Quorum: DefaultQuorum, QuorumMax: int(s.GetQuorumMax()),
		Interval: DefaultProcessInterval}
	switch {
	case pr.Name == "":
		p.add(path+".name", "required: the process name, e.g. nginx")
	case strings.Contains(pr.Name, "/"):
		p.add(path+".name", "%q is a path: give the process name (as ps -e shows it, or the base name of its program), e.g. %q",
			pr.Name, filepath.Base(pr.Name))
	}
	if v := s.GetQuorum(); v != 0 {
		pr.Quorum = int(v)
	}
	if pr.QuorumMax != 0 && pr.QuorumMax < pr.Quorum {
		p.add(path+".quorumMax", "%d is below quorum %d: set it to at least %d, or leave it out for no upper limit", pr.QuorumMax, pr.Quorum, pr.Quorum)
	}
	if s.Interval != nil {
		pr.Interval = s.GetInterval().AsDuration()
		if pr.Interval < MinCheckInterval || pr.Interval > MaxCheckInterval {
			p.add(path+".interval", "%s is out of range %s..%s (leave it out for %s)", dur(pr.Interval), dur(MinCheckInterval), dur(MaxCheckInterval), dur(DefaultProcessInterval))
		}
	}
	return pr
}

// checkCommand checks a command (a program and its arguments) that is set.
func checkCommand(p *problems, path string, cmd []string) {
	prog := cmd[0]
	switch {
	case strings.TrimSpace(prog) == "":
		p.add(path+"[0]", "empty: give the program to run (an absolute path, or a name looked up in PATH)")
	case len(cmd) == 1 && strings.ContainsAny(strings.TrimSpace(prog), " \t\n"):
		p.add(path+"[0]", `%q is one string: list the program and each argument separately, e.g. %s, or run a shell: ["/bin/sh", "-c", %q]`,
			prog, quoteList(strings.Fields(prog)), prog)
	}
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// checkTimeout checks a timeout that is set.
func checkTimeout(p *problems, path string, d time.Duration, dflt string) {
	if d <= 0 || d > MaxTimeout {
		p.add(path, "%s is out of range: more than 0s and at most %s (leave it out for %s)", dur(d), dur(MaxTimeout), dflt)
	}
}

// dur writes d as a user would: "1h", not "1h0m0s".
func dur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// checkUser checks the syntax of "user" or "user:group" (whether they exist
// is for the node to tell).
func checkUser(p *problems, path, u string) {
	if u == "" {
		return
	}
	name, group, hasGroup := strings.Cut(u, ":")
	if !userRE.MatchString(name) || (hasGroup && !userRE.MatchString(group)) {
		p.add(path, `%q is not a user: write "name" or "name:group" (names or numeric ids), or leave it out to run as root`, u)
	}
}

// resolveNotify validates a Notify block (nil: none).
func resolveNotify(p *problems, path string, s *haav1.Notify) *Notify {
	if s == nil {
		return nil
	}
	n := &Notify{Master: s.GetMaster(), Backup: s.GetBackup(), Fault: s.GetFault(), Stop: s.GetStop(), Any: s.GetAny(),
		Timeout: DefaultNotifyTimeout, User: s.GetUser()}
	for _, c := range []struct {
		name string
		cmd  []string
	}{{"master", n.Master}, {"backup", n.Backup}, {"fault", n.Fault}, {"stop", n.Stop}, {"any", n.Any}} {
		if len(c.cmd) > 0 {
			checkCommand(p, path+"."+c.name, c.cmd)
		}
	}
	if s.Timeout != nil {
		n.Timeout = s.GetTimeout().AsDuration()
		checkTimeout(p, path+".timeout", n.Timeout, dur(DefaultNotifyTimeout))
	}
	checkUser(p, path+".user", n.User)
	return n
}

// resolveTrack validates track references (at path[i]) against the
// trackers they may name; missing ends the message of a reference to a
// tracker that does not exist.
func resolveTrack(p *problems, path string, refs []*haav1.TrackRef, trackers trackerSet, missing string) []TrackRef {
	var out []TrackRef
	seen := map[string]bool{}
	for i, r := range refs {
		rp := fmt.Sprintf("%s[%d]", path, i)
		name := r.GetTracker()
		t, ok := trackers[name]
		switch {
		case name == "":
			p.add(rp+".tracker", "required: the name of a tracker, e.g. chk_nginx")
		case !ok:
			p.add(rp+".tracker", "no tracker named %q%s", name, missing)
		case seen[name]:
			p.add(rp+".tracker", "%q is listed twice: remove one", name)
		}
		seen[name] = true
		ref := TrackRef{Tracker: name, Weight: t.weight}
		if r != nil && r.Weight != nil {
			ref.Weight = int(r.GetWeight())
			if lo, hi := weightRange(t.kind); t.kind != "" && (ref.Weight < lo || ref.Weight > hi) {
				p.add(rp+".weight", "%d is out of range %d..%d for %s, a %s tracker%s", ref.Weight, lo, hi, name, t.kind, weightHint(t.kind))
			}
		}
		out = append(out, ref)
	}
	return out
}

// resolveSyncGroups validates sync groups (at path[i]); instances are the
// names of the instances they may list, where says where those are ("this
// configuration", "the document"). more, when set, checks more of group i
// after the rest.
func resolveSyncGroups(p *problems, path string, specs []*haav1.SyncGroup, instances map[string]bool, trackers trackerSet, where, missingTracker string,
	more func(p *problems, i int, s *haav1.SyncGroup)) []SyncGroup {
	names := map[string]int{}
	member := map[string]string{} // instance -> "VG_1 (syncGroups[0])"
	var out []SyncGroup
	for i, s := range specs {
		gp := fmt.Sprintf("%s[%d]", path, i)
		g := SyncGroup{Name: s.GetName(), Instances: s.GetInstances(), Spec: s}
		switch j, dup := names[g.Name]; {
		case g.Name == "":
			p.add(gp+".name", "required: give the group a name such as VG_1")
		case !nameRE.MatchString(g.Name):
			p.add(gp+".name", "%q is not a valid name: use letters, digits, and _ . : - (at most 63)", g.Name)
		case dup:
			p.add(gp+".name", "%q is already used by %s[%d]: each sync group needs its own name", g.Name, path, j)
		default:
			names[g.Name] = i
		}
		switch len(g.Instances) {
		case 0:
			p.add(gp+".instances", "required: the names of the instances that change state together, at least two, e.g. [VI_1, VI_2]")
		case 1:
			p.add(gp+".instances", "only %q: a sync group needs at least two instances (an instance alone needs no group: remove it)", g.Instances[0])
		}
		seen := map[string]bool{}
		label := gp
		if nameRE.MatchString(g.Name) {
			label = fmt.Sprintf("%s (%s)", g.Name, gp)
		}
		for k, name := range g.Instances {
			ip := fmt.Sprintf("%s.instances[%d]", gp, k)
			switch other, taken := member[name]; {
			case name == "":
				p.add(ip, "empty: give the name of an instance of %s", where)
			case !instances[name]:
				p.add(ip, "no instance named %q in %s: list instances of %s by name", name, where, where)
			case seen[name]:
				p.add(ip, "%q is listed twice: remove one", name)
			case taken:
				p.add(ip, "%s is already in sync group %s: an instance is in one sync group at most", name, other)
			default:
				member[name] = label
			}
			seen[name] = true
		}
		g.Notify = resolveNotify(p, gp+".notify", s.GetNotify())
		g.Track = resolveTrack(p, gp+".track", s.GetTrack(), trackers, missingTracker)
		if more != nil {
			more(p, i, s)
		}
		out = append(out, g)
	}
	return out
}
