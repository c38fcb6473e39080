package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"sigs.k8s.io/yaml"

	"github.com/haa-dev/haa/ctl"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// marshalJSON is the protobuf JSON form of m, compact and stable (protojson
// varies its whitespace on purpose; encoding/json fixes it).
func marshalJSON(m proto.Message) ([]byte, error) {
	b, err := protojson.MarshalOptions{}.Marshal(m)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// toYAML renders m as YAML: the JSON form, so the field names are the same
// (and a configuration renders the way its file is written).
func toYAML(m proto.Message) ([]byte, error) {
	b, err := marshalJSON(m)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(b)
}

// printMessage prints m as -o json (indented) or -o yaml.
func (a *app) printMessage(m proto.Message) error {
	switch a.output {
	case outYAML:
		b, err := toYAML(m)
		if err != nil {
			return err
		}
		_, err = a.out.Write(b)
		return err
	default:
		b, err := marshalJSON(m)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := json.Indent(&buf, b, "", "  "); err != nil {
			return err
		}
		buf.WriteByte('\n')
		_, err = a.out.Write(buf.Bytes())
		return err
	}
}

// printStreamed prints one message of a stream: -o json one object per
// line, -o yaml one document each.
func (a *app) printStreamed(m proto.Message) error {
	switch a.output {
	case outYAML:
		b, err := toYAML(m)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(a.out, "---\n%s", b)
		return err
	default:
		b, err := marshalJSON(m)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(a.out, "%s\n", b)
		return err
	}
}

// table writes aligned columns; cells are tab-separated, rows end in \n.
// Trailing blanks of empty last cells are trimmed.
type table struct {
	buf bytes.Buffer
	tw  *tabwriter.Writer
}

func newTable() *table {
	t := &table{}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 8, 2, ' ', 0)
	return t
}

func (t *table) row(cells ...string) {
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush(w io.Writer) error {
	lines, err := t.lines()
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, strings.Join(lines, ""))
	return err
}

// lines returns the table's rows, aligned, each ending in \n: for a caller
// that interleaves the rows of two tables.
func (t *table) lines() ([]string, error) {
	if err := t.tw.Flush(); err != nil {
		return nil, err
	}
	var out []string
	for line := range strings.Lines(t.buf.String()) {
		out = append(out, strings.TrimRight(line, " \n")+"\n")
	}
	return out, nil
}

func stateName(s haav1.State) string {
	if s == haav1.State_STATE_UNSPECIFIED {
		return "-"
	}
	return strings.TrimPrefix(s.String(), "STATE_")
}

const timeLayout = "2006-01-02 15:04:05"

func fmtTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().Local().Format(timeLayout)
}

func fmtDuration(d *durationpb.Duration) string {
	if d == nil {
		return "-"
	}
	return d.AsDuration().String()
}

// age is a coarse duration for people: 45s, 12m, 3h12m, 2d3h.
func age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd%dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	if h == "" {
		return "-"
	}
	return h
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func joinOrDash(s []string) string { return orDash(strings.Join(s, ", ")) }

func maintenanceText(m *haav1.Maintenance) string {
	if !m.GetEnabled() {
		return "off"
	}
	if m.GetUntil() == nil {
		return "on until turned off"
	}
	return fmt.Sprintf("on until %s (in %s)", fmtTime(m.GetUntil()), age(time.Until(m.GetUntil().AsTime())))
}

// eventLine is one event for people: time, seq, instance, what happened.
func eventLine(e *haav1.Event) string {
	ts := "-"
	if e.GetTime() != nil {
		ts = e.GetTime().AsTime().Local().Format(timeLayout + ".000")
	}
	return fmt.Sprintf("%s  %5d  %-8s  %s", ts, e.GetSeq(), orDash(e.GetInstance()), describeEvent(e))
}

func describeEvent(e *haav1.Event) string {
	switch k := e.GetKind().(type) {
	case *haav1.Event_StateChanged:
		s := k.StateChanged
		d := fmt.Sprintf("%s -> %s (%s", stateName(s.GetFrom()), stateName(s.GetTo()), orDash(s.GetCause()))
		if s.GetPriority() != 0 {
			d += fmt.Sprintf(", priority %d", s.GetPriority())
		}
		return d + ")"
	case *haav1.Event_PriorityChanged:
		pc := k.PriorityChanged
		if c := pc.GetConfigured(); c != 0 && c != pc.GetPriority() {
			return fmt.Sprintf("priority now %d (configured %d, trackers %+d)", pc.GetPriority(), c, int(pc.GetPriority())-int(c))
		}
		return fmt.Sprintf("priority now %d", pc.GetPriority())
	case *haav1.Event_TrackerChanged:
		tc := k.TrackerChanged
		d := fmt.Sprintf("tracker %s %s", tc.GetTracker(), trackerStateName(tc.GetState()))
		if tc.GetDetail() != "" {
			d += " (" + tc.GetDetail() + ")"
		}
		if len(tc.GetInstances()) > 0 {
			d += ", tracked by " + strings.Join(tc.GetInstances(), ", ")
		}
		return d
	case *haav1.Event_NotifyRan:
		return "notify " + notifyText(k.NotifyRan.GetResult())
	case *haav1.Event_VipsChanged:
		if k.VipsChanged.GetAdded() {
			return "VIPs added: " + joinOrDash(k.VipsChanged.GetVips())
		}
		return "VIPs removed: " + joinOrDash(k.VipsChanged.GetVips())
	case *haav1.Event_GarpSent:
		return "gratuitous ARP/NA sent for " + joinOrDash(k.GarpSent.GetAddresses())
	case *haav1.Event_ConfigApplied:
		c := k.ConfigApplied
		return fmt.Sprintf("configuration applied: generation %d (hash %s): %s",
			c.GetGeneration(), shortHash(c.GetHash()), planSummary(c.GetPlan()))
	case *haav1.Event_PacketsDropped:
		p := k.PacketsDropped
		d := fmt.Sprintf("dropped %d packet", p.GetCount())
		if p.GetCount() != 1 {
			d += "s"
		}
		d += ": " + orDash(p.GetReason())
		if p.GetDetail() != "" {
			d += " (" + p.GetDetail() + ")"
		}
		return d
	case *haav1.Event_MaintenanceChanged:
		return "maintenance " + maintenanceText(k.MaintenanceChanged.GetMaintenance())
	case *haav1.Event_MasterChanged:
		d := "master is now " + orDash(k.MasterChanged.GetAddress())
		if p := k.MasterChanged.GetPriority(); p != 0 {
			d += fmt.Sprintf(" (priority %d)", p)
		}
		return d
	case *haav1.Event_Error:
		return "error: " + k.Error.GetMessage()
	case *haav1.Event_SplitBrain:
		sb := k.SplitBrain
		if sb.GetResolved() {
			return fmt.Sprintf("split brain over on %s vrid %d: %s stays master", sb.GetSegment(), sb.GetVrid(), orDash(sb.GetMaster()))
		}
		return fmt.Sprintf("split brain on %s vrid %d: masters %s", sb.GetSegment(), sb.GetVrid(), nodeInstanceList(sb.GetMasters()))
	case *haav1.Event_VridCollision:
		vc := k.VridCollision
		if vc.GetResolved() {
			return fmt.Sprintf("vrid collision over on %s vrid %d", vc.GetSegment(), vc.GetVrid())
		}
		return fmt.Sprintf("vrid collision on %s vrid %d: used by %s", vc.GetSegment(), vc.GetVrid(), nodeInstanceList(vc.GetInstances()))
	case *haav1.Event_RealServerDisputed:
		d := k.RealServerDisputed
		if d.GetResolved() {
			return fmt.Sprintf("real server %s of %s no longer disputed: its directors agree", d.GetRealServer(), d.GetVirtualServer())
		}
		return fmt.Sprintf("real server %s of %s disputed: down on %s, up on %s (a path problem near %s?)", d.GetRealServer(), d.GetVirtualServer(),
			joinOrDash(d.GetDownOn()), joinOrDash(d.GetUpOn()), joinOrDash(d.GetDownOn()))
	case *haav1.Event_Drift:
		d := k.Drift
		if d.GetResolved() {
			return fmt.Sprintf("drift over: %s runs what fleet generation %d gives it", d.GetNode(), d.GetFleetGeneration())
		}
		return fmt.Sprintf("drift: %s does not run what the fleet document gives it (%s)", d.GetNode(), driftText(d))
	case *haav1.Event_FleetApplied:
		fa := k.FleetApplied
		return fmt.Sprintf("fleet generation %d applied (%s): %s", fa.GetGeneration(), orDash(fa.GetSource()), planSummary(fa.GetPlan()))
	case *haav1.Event_MemberChanged:
		mc := k.MemberChanged
		d := fmt.Sprintf("member %s is %s", mc.GetNode(), ctl.MemberStateName(mc.GetState()))
		if mc.GetAddress() != "" {
			d += " (" + mc.GetAddress() + ")"
		}
		return d
	case *haav1.Event_RealServerChanged:
		return realServerChangedText(k.RealServerChanged)
	case *haav1.Event_VirtualServerChanged:
		vc := k.VirtualServerChanged
		d := fmt.Sprintf("virtual server %s has its quorum again (healthy weight %d)", vc.GetVirtualServer(), vc.GetHealthyWeight())
		if !vc.GetUp() {
			d = fmt.Sprintf("virtual server %s lost its quorum (healthy weight %d)", vc.GetVirtualServer(), vc.GetHealthyWeight())
		}
		if vc.GetSorry() {
			d += ": sorry server active"
		}
		return d
	}
	return "unknown event (a newer haad?): haactl watch -o json shows it"
}

// realServerChangedText is a real server that failed, recovered, or was
// drained, enabled or re-weighted: "real server 10.0.0.1:80 of web down:
// connection refused (weight 0)".
func realServerChangedText(rc *haav1.RealServerChanged) string {
	cause := rc.GetCause()
	if cause == "" {
		cause = "down"
		if rc.GetHealthy() {
			cause = "up"
		}
	}
	// "drained through the API", "down: connection refused", "re-weighted:
	// set to 50 through the API".
	verb, sep := cause, ": "
	switch cause {
	case "drained", "enabled":
		sep = " "
	case "weight":
		verb = "re-weighted"
	}
	d := fmt.Sprintf("real server %s of %s %s", rc.GetRealServer(), rc.GetVirtualServer(), verb)
	if rc.GetDetail() != "" {
		d += sep + oneLine(rc.GetDetail())
	}
	if !rc.GetHealthy() && cause != "down" {
		return d + fmt.Sprintf(" (down, weight %d)", rc.GetWeight())
	}
	return d + fmt.Sprintf(" (weight %d)", rc.GetWeight())
}

// planSummary is a plan on one line: added VI_3; changed VI_1 (restart).
func planSummary(p *haav1.Plan) string {
	var parts []string
	if len(p.GetAdded()) > 0 {
		parts = append(parts, "added "+strings.Join(p.GetAdded(), ", "))
	}
	if len(p.GetRemoved()) > 0 {
		parts = append(parts, "removed "+strings.Join(p.GetRemoved(), ", "))
	}
	if len(p.GetChanged()) > 0 {
		var cs []string
		for _, c := range p.GetChanged() {
			if c.GetRestart() {
				cs = append(cs, c.GetName()+" (restart)")
			} else {
				cs = append(cs, c.GetName())
			}
		}
		parts = append(parts, "changed "+strings.Join(cs, ", "))
	}
	for _, v := range virtualServerChanges(p) {
		parts = append(parts, "virtual servers "+v.what+" "+shortList(v.names, 5))
	}
	if len(parts) == 0 {
		return "no instance changed"
	}
	return strings.Join(parts, "; ")
}

// namedList is a kind of change and the names it applies to.
type namedList struct {
	what  string
	names []string
}

// virtualServerChanges are the plan's virtual servers added, removed and
// changed, the kinds that have some.
func virtualServerChanges(p *haav1.Plan) []namedList {
	var out []namedList
	for _, v := range []namedList{{"added", p.GetVirtualServersAdded()}, {"removed", p.GetVirtualServersRemoved()},
		{"changed", p.GetVirtualServersChanged()}} {
		if len(v.names) > 0 {
			out = append(out, v)
		}
	}
	return out
}

// shortList joins names, the first max of them and how many more.
func shortList(names []string, max int) string {
	if len(names) <= max {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:max], ", "), len(names)-max)
}
