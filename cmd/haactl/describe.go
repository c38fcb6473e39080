package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/haa-dev/haa/ctl"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

func newDescribeCmd(a *app) *cobra.Command {
	cmd := group("describe", "Show everything about one thing")
	cmd.AddCommand(newDescribeVirtualServerCmd(a))
	cmd.AddCommand(&cobra.Command{
		Use:     "instance NAME",
		Aliases: []string{"instances", "inst"},
		Short:   "Show everything about one VRRP instance",
		Long: `Show everything the node knows about one VRRP instance: state and why it
last changed, priorities, master, advert interval, the VIPs configured and
held (and why they could not be added), whether it is held as backup, its
counters and its dropped packets by reason, its trackers (state, weight,
what each does to the priority now), its sync group, why it is in FAULT,
and the latest notify commands with their exit status. -o json|yaml prints a
haa.v1.InstanceStatus.`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: a.completeInstances,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *ctl.Client) error {
				in, err := c.Instance(ctx, args[0])
				if err != nil {
					return err
				}
				if a.output != outTable {
					return a.printMessage(in)
				}
				return printInstance(a, in)
			})
		},
	})
	return cmd
}

func printInstance(a *app, in *haav1.InstanceStatus) error {
	t := newTable()
	t.row("Name:", in.GetName())
	t.row("Interface:", in.GetInterface())
	t.row("VRID:", fmt.Sprint(in.GetVrid()))
	t.row("Version:", fmt.Sprint(in.GetVersion()))
	if f := in.GetFamily(); f != "" {
		t.row("Family:", map[string]string{"ipv4": "IPv4", "ipv6": "IPv6"}[f])
	}
	if v := in.GetVmacInterface(); v != "" {
		t.row("Virtual MAC:", fmt.Sprintf("%s on %s (%s)", in.GetVmacAddress(), v, in.GetInterface()))
	}
	accept := "yes"
	if !in.GetAcceptMode() {
		accept = "no: the master drops packets to the VIPs (nftables table inet haa_accept)"
	}
	t.row("Accept mode:", accept)
	t.row("State:", stateName(in.GetState()))
	t.row("Priority:", fmt.Sprintf("%d (configured %d)", in.GetEffectivePriority(), in.GetConfiguredPriority()))
	master := orDash(in.GetMasterAddress())
	if in.GetState() == haav1.State_STATE_MASTER && in.GetMasterAddress() != "" {
		master += " (this node)"
	}
	t.row("Master:", master)
	t.row("Source address:", orDash(in.GetSourceAddress()))
	switch peers := in.GetUnicastPeers(); {
	case in.GetUnicastPeersFromFleet() && len(peers) == 0:
		t.row("Unicast peers:", "none yet (from the fleet: no other member runs it)")
	case in.GetUnicastPeersFromFleet():
		t.row("Unicast peers:", strings.Join(peers, ", ")+" (from the fleet)")
	case len(peers) > 0:
		t.row("Unicast peers:", strings.Join(peers, ", "))
	}
	t.row("Advert interval:", fmtDuration(in.GetAdvertInterval()))
	t.row("VIPs:", joinOrDash(in.GetVips()))
	t.row("VIPs held:", joinOrDash(in.GetVipsHeld()))
	t.row("VIP error:", orDash(in.GetVipError()))
	t.row("Hold:", orDash(in.GetHold()))
	if r := in.GetFaultReason(); r != "" {
		t.row("Fault reason:", r)
	}
	if g := in.GetSyncGroup(); g != "" {
		t.row("Sync group:", g)
	}
	if trs := in.GetTrackers(); len(trs) > 0 {
		t.row("Trackers:", "")
		for _, tr := range trs {
			t.row("  "+tr.GetName()+":", trackerText(tr))
		}
	}
	if tr := in.GetLastTransition(); tr != nil {
		when := "-"
		if tr.GetTime() != nil {
			when = fmt.Sprintf("%s (%s ago)", fmtTime(tr.GetTime()), age(time.Since(tr.GetTime().AsTime())))
		}
		t.row("Last transition:", fmt.Sprintf("%s -> %s at %s", stateName(tr.GetFrom()), stateName(tr.GetTo()), when))
		t.row("  cause:", orDash(tr.GetCause()))
	} else {
		t.row("Last transition:", "-")
	}
	cs := in.GetCounters()
	t.row("Counters:", "")
	t.row("  adverts sent:", fmt.Sprint(cs.GetAdvertsSent()))
	t.row("  adverts received:", fmt.Sprint(cs.GetAdvertsReceived()))
	t.row("  GARPs sent:", fmt.Sprint(cs.GetGarpsSent()))
	t.row("  transitions:", fmt.Sprint(cs.GetTransitions()))
	t.row("  timer slip max:", fmtDuration(cs.GetTimerSlipMax()))
	drops := cs.GetDrops()
	if len(drops) == 0 {
		t.row("Drops:", "none")
	} else {
		t.row("Drops:", "")
		for _, reason := range slices.Sorted(maps.Keys(drops)) {
			t.row("  "+reason+":", fmt.Sprint(drops[reason]))
		}
	}
	if ns := in.GetNotifyResults(); len(ns) > 0 {
		t.row("Notify (latest):", "")
		for _, n := range ns {
			t.row("  "+fmtTime(n.GetTime())+":", notifyText(n))
		}
	}
	return t.flush(a.out)
}

// trackerText is one tracker of an instance: state, kind, weight, what it
// does to the priority, the last result and since when.
func trackerText(tr *haav1.TrackerStatus) string {
	state := trackerStateName(tr.GetState())
	effect := fmt.Sprintf("%+d", tr.GetContribution())
	if tr.GetFault() {
		effect = "FAULT"
	}
	d := fmt.Sprintf("%-6s  %-9s  weight %-4d  priority %s", state, tr.GetKind(), tr.GetWeight(), effect)
	if tr.GetViaSyncGroup() {
		d += "  (via sync group)"
	}
	if tr.GetDetail() != "" {
		d += "  " + tr.GetDetail()
	}
	if tr.GetSince() != nil {
		d += fmt.Sprintf(" (for %s)", age(time.Since(tr.GetSince().AsTime())))
	}
	return d
}

// trackerStateName is OK or FAILED.
func trackerStateName(s haav1.TrackerState) string {
	if s == haav1.TrackerState_TRACKER_STATE_FAILED {
		return "FAILED"
	}
	return "OK"
}

// notifyText is one notify command's outcome.
func notifyText(n *haav1.NotifyResult) string {
	d := fmt.Sprintf("%s %s %s: %s -> exit %d in %s", n.GetType(), n.GetName(), n.GetState(),
		strings.Join(n.GetCommand(), " "), n.GetExitCode(), fmtDuration(n.GetDuration()))
	if n.GetError() != "" {
		d += " (" + n.GetError() + ")"
	}
	if out := strings.TrimSpace(n.GetOutput()); out != "" {
		if i := strings.IndexByte(out, '\n'); i >= 0 {
			out = out[:i] + " ..."
		}
		d += ": " + out
	}
	return d
}
