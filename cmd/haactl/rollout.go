package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/haa-dev/haa/ctl"
	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

func newRolloutCmd(a *app) *cobra.Command {
	cmd := group("rollout", "Generate a fleet document for a common setup and apply it, rolling")
	cmd.AddCommand(newDualMasterCmd(a))
	return cmd
}

// dualMaster are the inputs of rollout dual-master.
type dualMaster struct {
	nodes, vips, vrids, priorities []string
	iface                          string
	advert                         time.Duration
}

func newDualMasterCmd(a *app) *cobra.Command {
	var in dualMaster
	var dryRun, printDoc bool
	var converge time.Duration
	cmd := &cobra.Command{
		Use:   "dual-master --nodes A,B --vips VIP1,VIP2 --interface IFACE",
		Short: "Two nodes, two VIPs, each node master of one: keepalived's active/active pair",
		Long: `Generate the fleet document of an active/active ("dual master") pair and
apply it with --strategy rolling (see haactl apply --help): two instances,
VI_1 and VI_2, on --interface of both --nodes; VI_1 holds the first of --vips
and prefers the first node, VI_2 holds the second and prefers the second
node. --priorities gives the preferred node's priority, then the other's;
--vrids the two virtual router ids (unique on the segment). VIPs are written
as given (ADDR/LEN is best: the VIP's subnet; a bare address is a /32, or
/128).

--print prints the document and exits (to keep it, edit it, and apply it with
haactl apply -f); --dry-run shows each node's plan.`,
		Example: `  haactl rollout dual-master --nodes lb1,lb2 --vips 192.168.55.140/24,192.168.55.141/24 --interface eth0
  haactl rollout dual-master --nodes lb1,lb2 --vips 192.168.55.140/24,192.168.55.141/24 --interface eth0 --print > fleet.yaml`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc, err := in.document()
			if err != nil {
				return &usageError{err: err, cmd: cmd.CommandPath()}
			}
			if printDoc {
				if a.output != outTable {
					return a.printMessage(doc)
				}
				_, err := fmt.Fprint(a.out, dualMasterYAML(doc, in.advert))
				return err
			}
			return a.applyFleet(cmd, doc, "the dual-master document", ctl.FleetApplyOptions{DryRun: dryRun, Strategy: ctl.StrategyRolling, ConvergeTimeout: converge})
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&in.nodes, "nodes", nil, "the two nodes, e.g. lb1,lb2")
	f.StringSliceVar(&in.vips, "vips", nil, "the two VIPs, e.g. 192.168.55.140/24,192.168.55.141/24: the first node prefers the first")
	f.StringVar(&in.iface, "interface", "", "the interface of the VIPs' subnet on both nodes, e.g. eth0")
	f.StringSliceVar(&in.vrids, "vrids", []string{"51", "52"}, "the virtual router ids of VI_1 and VI_2")
	f.StringSliceVar(&in.priorities, "priorities", []string{"100", "80"}, "the preferred node's priority, then the other's")
	f.DurationVar(&in.advert, "advert-interval", time.Second, "the advert interval")
	f.BoolVar(&dryRun, "dry-run", false, "only show each node's plan")
	f.BoolVar(&printDoc, "print", false, "print the document and exit")
	f.DurationVar(&converge, "converge-timeout", ctl.DefaultConvergeTimeout, "how long to wait for VRRP to converge after each node")
	for _, name := range []string{"nodes", "vips", "interface"} {
		_ = cmd.MarkFlagRequired(name)
	}
	_ = cmd.RegisterFlagCompletionFunc("nodes", a.completeMembers)
	_ = cmd.RegisterFlagCompletionFunc("vips", cobra.NoFileCompletions)
	_ = cmd.RegisterFlagCompletionFunc("interface", cobra.NoFileCompletions)
	return cmd
}

// document checks the inputs and builds the document.
func (in *dualMaster) document() (*haav1.Fleet, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	pair := func(flag string, vs []string) bool {
		if len(vs) != 2 {
			bad("--%s: want two, comma-separated, got %d", flag, len(vs))
			return false
		}
		if strings.TrimSpace(vs[0]) == strings.TrimSpace(vs[1]) {
			bad("--%s: give two different values, not %s twice", flag, strings.TrimSpace(vs[0]))
			return false
		}
		return true
	}
	nodes := trimAll(in.nodes)
	vips := trimAll(in.vips)
	pair("nodes", nodes)
	if pair("vips", vips) {
		for _, v := range vips {
			if _, err := netip.ParsePrefix(v); err == nil {
				continue
			}
			if _, err := netip.ParseAddr(v); err != nil {
				bad("--vips: %q is no address: want ADDR/LEN, e.g. 192.168.55.140/24", v)
			}
		}
	}
	if strings.TrimSpace(in.iface) == "" {
		bad("--interface: give the interface of the VIPs' subnet, e.g. eth0")
	}
	vrids := numbers(bad, "vrids", in.vrids, 1, 255)
	if len(vrids) == 2 && vrids[0] == vrids[1] {
		bad("--vrids: give two different virtual router ids, not %d twice", vrids[0])
	}
	prios := numbers(bad, "priorities", in.priorities, 1, 254)
	if len(prios) == 2 && prios[0] <= prios[1] {
		bad("--priorities %d,%d: the first (the preferred node's) must be the higher", prios[0], prios[1])
	}
	if in.advert <= 0 {
		bad("--advert-interval %s: want a positive duration, e.g. 1s", in.advert)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(problems, "\n"))
	}
	doc := &haav1.Fleet{Kind: config.FleetKind, Nodes: nodes}
	for i := range 2 {
		doc.Instances = append(doc.Instances, &haav1.FleetInstance{
			Name: fmt.Sprintf("VI_%d", i+1), Interface: strings.TrimSpace(in.iface), Vrid: vrids[i],
			AdvertInterval: durationpb.New(in.advert), Vips: []string{vips[i]},
			Priorities: map[string]uint32{nodes[i]: prios[0], nodes[1-i]: prios[1]},
		})
	}
	if err := config.ValidateFleet(doc); err != nil {
		var msgs []string
		for _, f := range config.Fields(err) {
			msgs = append(msgs, f.String())
		}
		return nil, fmt.Errorf("the document would not be valid:\n%s", strings.Join(msgs, "\n"))
	}
	// The printed form must read back as the same document.
	if back, err := config.ParseFleet([]byte(dualMasterYAML(doc, in.advert))); err != nil || !proto.Equal(back, doc) {
		return nil, fmt.Errorf("cannot write the document: the names or addresses need quoting (%v)", err)
	}
	return doc, nil
}

func trimAll(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = strings.TrimSpace(v)
	}
	return out
}

// numbers parses a pair of whole numbers in lo..hi.
func numbers(bad func(string, ...any), flag string, vs []string, lo, hi uint64) []uint32 {
	if len(vs) != 2 {
		bad("--%s: want two, comma-separated, got %d", flag, len(vs))
		return nil
	}
	var out []uint32
	for _, v := range vs {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
		if err != nil || n < lo || n > hi {
			bad("--%s: %q: want a whole number in %d..%d", flag, v, lo, hi)
			return nil
		}
		out = append(out, uint32(n))
	}
	return out
}

// dualMasterYAML writes the document as the issue does, fields in the
// order people write them.
func dualMasterYAML(doc *haav1.Fleet, advert time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "kind: Fleet\nnodes: [%s]\ninstances:\n", strings.Join(doc.GetNodes(), ", "))
	for _, in := range doc.GetInstances() {
		fmt.Fprintf(&b, "  - name: %s\n    interface: %s\n    vrid: %d\n    advertInterval: %s\n    vips: [%q]\n",
			in.GetName(), in.GetInterface(), in.GetVrid(), advert, in.GetVips()[0])
		var ps []string
		for _, n := range doc.GetNodes() {
			ps = append(ps, fmt.Sprintf("%s: %d", n, in.GetPriorities()[n]))
		}
		fmt.Fprintf(&b, "    priorities: {%s}\n", strings.Join(ps, ", "))
	}
	return b.String()
}

// completeMembers completes the names of the fleet's members, for a
// comma-separated list.
func (a *app) completeMembers(cmd *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
	ctx, cancel := context.WithTimeout(cmdContext(cmd), 2*time.Second)
	defer cancel()
	f, err := a.dialFleet(ctx, a.seeds(), a.options()...)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer f.Close()
	done, last := "", prefix
	if i := strings.LastIndex(prefix, ","); i >= 0 {
		done, last = prefix[:i+1], prefix[i+1:]
	}
	var out []string
	for _, m := range f.View().GetMembers() {
		if strings.HasPrefix(m.GetName(), last) && !slices.Contains(strings.Split(done, ","), m.GetName()) {
			out = append(out, done+m.GetName())
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}
