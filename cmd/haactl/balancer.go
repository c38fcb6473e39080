package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/haa-dev/haa/ctl"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// vsHint says where the virtual servers are listed.
const vsHint = "haactl get vs lists the virtual servers and their real servers"

func newGetVirtualServersCmd(a *app) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:     "virtual-servers",
		Aliases: []string{"vs", "virtualservers", "virtual-server", "virtualserver"},
		Short:   "List the virtual servers and their real servers, with their health",
		Long: `List the load balancer's virtual servers, each followed by its real servers
("->", as ipvsadm -Ln does), and the backend that programs them (ipvs or
nftables, see haactl get node).

A virtual server: NAME, ADDRESS (ADDR:PORT/PROTO, or fwmark:N), SCHED (the
scheduler), FWD (forwarding: nat, dr or tunnel), UP (whether the weights of
its healthy real servers reach its quorum; "sorry" when the sorry server
takes the connections) and HEALTHY/QUORUM (those weights added up, and the
quorum).

A real server: its ADDRESS, HEALTH (up or down, by its check), WEIGHT (the
weight programmed now / the configured one; "-" when it is not in the
backend's table: a failed server is removed unless inhibit_on_failure),
OVERRIDE (what haactl drain or haactl weight set, undone by haactl enable),
CHECK (the health check's kind), LAST RESULT (the check's last answer),
SINCE (how long its health has been what it is) and CONNS (active/inactive
connections; "-" where the backend does not count them: nftables); when a
real server has connection limits, THRESHOLDS (upper/lower, as configured:
upperThreshold, lowerThreshold; "-" for those without).

-o json|yaml prints a haa.v1.ListVirtualServersResponse.

With --all, the fleet's view: every real server of every virtual server,
a row each, with a column per director (each node of the fleet that has
the virtual server): its health (up or down) as that director sees it,
its weight there (programmed/configured), and its connections
(active/inactive) where the backend counts them. Directors that disagree
about a real server's health are marked (DISPUTED): the server is
likely fine and the path from the director that sees it down is not.`,
		Example: `  haactl get vs
  haactl get vs --all
  haactl get vs -o json | jq '.virtualServers[] | select(.up | not) | .name'`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all {
				if a.output != outTable {
					return &usageError{err: errors.New("--all prints a table (a column per director); leave out -o"), cmd: cmd.CommandPath()}
				}
				return a.virtualServersFleet(cmd)
			}
			return a.call(cmd, func(ctx context.Context, c *ctl.Client) error {
				r, err := c.VirtualServers(ctx)
				if err != nil {
					return err
				}
				if a.output != outTable {
					return a.printMessage(r)
				}
				if len(r.GetVirtualServers()) == 0 {
					fmt.Fprintln(a.errOut, "No virtual servers: the configuration has none (haactl get config).")
					return nil
				}
				return printVirtualServers(a, r)
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "every director of the fleet: a column each")
	return cmd
}

// virtualServersFleet prints every real server of the fleet's virtual
// servers with a column per director.
func (a *app) virtualServersFleet(cmd *cobra.Command) error {
	ctx, f, err := a.openFleet(cmd)
	if err != nil {
		return err
	}
	defer f.Close()
	res := ctl.Each(ctx, f, nil, a.timeout, func(ctx context.Context, _ string, c *ctl.Client) (*haav1.ListVirtualServersResponse, error) {
		return c.VirtualServers(ctx)
	})
	type key struct{ vs, rs string }
	var order []key
	seen := map[key]map[string]*haav1.RealServerStatus{} // by node
	var directors []string
	for _, r := range res {
		n := r.Node
		if r.Err != nil {
			fmt.Fprintf(a.errOut, "haactl: not listing %s: %s\n", n, nodeErrText(r.Err))
			continue
		}
		if len(r.Value.GetVirtualServers()) > 0 {
			directors = append(directors, n)
		}
		for _, vs := range r.Value.GetVirtualServers() {
			for _, rs := range vs.GetRealServers() {
				k := key{vs.GetName(), rs.GetAddress()}
				if seen[k] == nil {
					seen[k] = map[string]*haav1.RealServerStatus{}
					order = append(order, k)
				}
				seen[k][n] = rs
			}
		}
	}
	for n, err := range f.Unreachable() {
		fmt.Fprintf(a.errOut, "haactl: not listing %s: %s\n", n, nodeErrText(err))
	}
	if len(order) == 0 {
		fmt.Fprintln(a.errOut, "No virtual servers on any node of the fleet.")
		return nil
	}
	slices.SortStableFunc(order, func(x, y key) int { return strings.Compare(x.vs, y.vs) })
	t := newTable()
	t.row(append(append([]string{"VIRTUAL SERVER", "REAL SERVER"}, directors...), "")...)
	for _, k := range order {
		row := []string{k.vs, k.rs}
		up, down := 0, 0
		for _, n := range directors {
			rs := seen[k][n]
			if rs == nil {
				row = append(row, "-")
				continue
			}
			health := healthText(rs)
			if rs.GetHealthy() {
				up++
			} else {
				down++
			}
			weight := fmt.Sprintf("-/%d", rs.GetConfiguredWeight())
			if rs.GetProgrammed() {
				weight = fmt.Sprintf("%d/%d", rs.GetWeight(), rs.GetConfiguredWeight())
			}
			cell := health + " " + weight
			if rs.ActiveConnections != nil {
				cell += fmt.Sprintf(" %d/%d", rs.GetActiveConnections(), rs.GetInactiveConnections())
			}
			if rs.GetDrained() {
				cell += " drained"
			}
			row = append(row, cell)
		}
		note := ""
		if up > 0 && down > 0 {
			note = "DISPUTED"
		}
		t.row(append(row, note)...)
	}
	return t.flush(a.out)
}

// printVirtualServers prints the virtual servers the way ipvsadm -Ln does:
// the header of both tables first, then each virtual server followed by
// its real servers. The two tables are aligned each on its own.
func printVirtualServers(a *app, r *haav1.ListVirtualServersResponse) error {
	vst, rst := newTable(), newTable()
	vst.row("NAME", "ADDRESS", "SCHED", "FWD", "UP", "HEALTHY/QUORUM")
	var all []*haav1.RealServerStatus
	for _, vs := range r.GetVirtualServers() {
		all = append(all, vs.GetRealServers()...)
	}
	header, realServerRow := realServerColumns(all)
	rst.row(append([]string{"  -> REAL SERVER"}, header[1:]...)...)
	for _, vs := range r.GetVirtualServers() {
		vst.row(vs.GetName(), vsAddress(vs), orDash(vs.GetScheduler()), orDash(vs.GetForwarding()), vsUp(vs),
			fmt.Sprintf("%d/%d", vs.GetHealthyWeight(), vs.GetQuorum()))
		for _, rs := range vs.GetRealServers() {
			row := realServerRow(rs)
			row[0] = "  -> " + row[0]
			rst.row(row...)
		}
	}
	vsLines, err := vst.lines()
	if err != nil {
		return err
	}
	rsLines, err := rst.lines()
	if err != nil {
		return err
	}
	var b strings.Builder
	if r.GetBackend() != "" {
		fmt.Fprintf(&b, "backend: %s\n", r.GetBackend())
	}
	b.WriteString(vsLines[0])
	b.WriteString(rsLines[0])
	next := 1
	for i, vs := range r.GetVirtualServers() {
		b.WriteString(vsLines[i+1])
		for range vs.GetRealServers() {
			b.WriteString(rsLines[next])
			next++
		}
	}
	_, err = fmt.Fprint(a.out, b.String())
	return err
}

// realServerHeader heads the columns of realServerRow.
var realServerHeader = []string{"ADDRESS", "HEALTH", "WEIGHT", "OVERRIDE", "CHECK", "LAST RESULT", "SINCE", "CONNS"}

// realServerColumns are the header and the rows of a table of real
// servers: realServerHeader and realServerRow, and THRESHOLDS after them
// when one of rss has connection limits.
func realServerColumns(rss []*haav1.RealServerStatus) ([]string, func(*haav1.RealServerStatus) []string) {
	if !slices.ContainsFunc(rss, hasThresholds) {
		return realServerHeader, realServerRow
	}
	header := append(slices.Clip(realServerHeader), "THRESHOLDS")
	return header, func(rs *haav1.RealServerStatus) []string {
		t := "-"
		if hasThresholds(rs) {
			t = fmt.Sprintf("%d/%d", rs.GetUpperThreshold(), rs.GetLowerThreshold())
		}
		return append(realServerRow(rs), t)
	}
}

func hasThresholds(rs *haav1.RealServerStatus) bool {
	return rs.UpperThreshold != nil || rs.LowerThreshold != nil
}

// healthText is a real server's health: up, down, or "down,kept" while it
// stays in the table because the other directors see it up
// (keepIfPeersSeeUp).
func healthText(rs *haav1.RealServerStatus) string {
	switch {
	case rs.GetHealthy():
		return "up"
	case rs.GetKeptUntil() != nil:
		return "down,kept"
	}
	return "down"
}

// realServerRow is one real server: address, health, weight programmed /
// configured, override, check, last result, for how long, connections.
func realServerRow(rs *haav1.RealServerStatus) []string {
	health := healthText(rs)
	weight := fmt.Sprintf("-/%d", rs.GetConfiguredWeight())
	if rs.GetProgrammed() {
		weight = fmt.Sprintf("%d/%d", rs.GetWeight(), rs.GetConfiguredWeight())
	}
	since := "-"
	if rs.GetSince() != nil {
		since = age(time.Since(rs.GetSince().AsTime()))
	}
	conns := "-"
	if rs.ActiveConnections != nil || rs.InactiveConnections != nil {
		conns = fmt.Sprintf("%d/%d", rs.GetActiveConnections(), rs.GetInactiveConnections())
	}
	return []string{rs.GetAddress(), health, weight, overrideText(rs), orDash(rs.GetCheck()),
		orDash(oneLine(rs.GetLastResult())), since, conns}
}

// overrideText is what an operator set: drained, weight N, or "-".
func overrideText(rs *haav1.RealServerStatus) string {
	switch {
	case rs.GetDrained():
		return "drained"
	case rs.WeightOverride != nil:
		return fmt.Sprintf("weight %d", rs.GetWeightOverride())
	}
	return "-"
}

// oneLine keeps a text on one line of a table.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// vsAddress is ADDR:PORT/PROTO, or fwmark:N, and "+N" for a group's N
// other services.
func vsAddress(vs *haav1.VirtualServerStatus) string {
	more := ""
	if n := len(vs.GetGroup()); n > 0 {
		more = fmt.Sprintf(" +%d", n)
	}
	if vs.GetFwmark() != 0 {
		return fmt.Sprintf("fwmark:%d", vs.GetFwmark()) + more
	}
	if vs.GetProtocol() == "" {
		return orDash(vs.GetAddress()) + more
	}
	return vs.GetAddress() + "/" + vs.GetProtocol() + more
}

// vsUp is yes or no (quorum reached), with ", sorry" when the sorry server
// takes the connections.
func vsUp(vs *haav1.VirtualServerStatus) string {
	s := "no"
	if vs.GetUp() {
		s = "yes"
	}
	if vs.GetSorryActive() {
		s += ", sorry"
	}
	return s
}

func newDescribeVirtualServerCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "virtual-server NAME",
		Aliases: []string{"vs", "virtualserver", "virtual-servers", "virtualservers"},
		Short:   "Show everything about one virtual server and its real servers",
		Long: `Show one virtual server: its address, scheduler and forwarding, whether it
reaches its quorum, its sorry server and whether it takes the connections,
the backend, and its real servers (the columns of haactl get vs). -o
json|yaml prints a haa.v1.VirtualServerStatus.`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: a.completeBalancer(false),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *ctl.Client) error {
				r, err := c.VirtualServers(ctx)
				if err != nil {
					return err
				}
				vs := findVirtualServer(r, args[0])
				if vs == nil {
					return failf("no virtual server %q: %s", args[0], vsHint)
				}
				if a.output != outTable {
					return a.printMessage(vs)
				}
				return printVirtualServer(a, vs, r.GetBackend())
			})
		},
	}
}

func findVirtualServer(r *haav1.ListVirtualServersResponse, name string) *haav1.VirtualServerStatus {
	for _, vs := range r.GetVirtualServers() {
		if vs.GetName() == name {
			return vs
		}
	}
	return nil
}

func printVirtualServer(a *app, vs *haav1.VirtualServerStatus, backend string) error {
	t := newTable()
	t.row("Name:", vs.GetName())
	t.row("Address:", vsAddress(vs))
	if g := vs.GetGroup(); len(g) > 0 {
		t.row("Group:", strings.Join(g, " "))
	}
	t.row("Scheduler:", orDash(vs.GetScheduler()))
	t.row("Forwarding:", orDash(vs.GetForwarding()))
	if vs.GetUp() {
		t.row("Up:", fmt.Sprintf("yes: healthy weight %d >= quorum %d", vs.GetHealthyWeight(), vs.GetQuorum()))
	} else {
		t.row("Up:", fmt.Sprintf("no: healthy weight %d < quorum %d", vs.GetHealthyWeight(), vs.GetQuorum()))
	}
	sorry := "-"
	switch {
	case vs.GetSorryServer() != "" && vs.GetSorryActive():
		sorry = vs.GetSorryServer() + ", active: it takes the connections"
	case vs.GetSorryServer() != "":
		sorry = vs.GetSorryServer() + ", standby (used when the quorum is lost)"
	}
	t.row("Sorry server:", sorry)
	t.row("Backend:", orDash(backend))
	if len(vs.GetRealServers()) == 0 {
		t.row("Real servers:", "none")
		return t.flush(a.out)
	}
	t.row("Real servers:", "")
	if err := t.flush(a.out); err != nil {
		return err
	}
	rt := newTable()
	header, realServerRow := realServerColumns(vs.GetRealServers())
	rt.row(append([]string{"  " + header[0]}, header[1:]...)...)
	for _, rs := range vs.GetRealServers() {
		row := realServerRow(rs)
		row[0] = "  " + row[0]
		rt.row(row...)
	}
	return rt.flush(a.out)
}

// newRealServerCmd is drain, enable or weight: a change of one real server
// of a virtual server, printed afterwards.
func newRealServerCmd(a *app, use, short, long, example string, nargs int, action func(args []string) (ctl.RealServerAction, error),
	done func(vs string, rs *haav1.RealServerStatus) string) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:               use,
		Short:             short,
		Long:              long + allDirectors,
		Example:           example,
		Args:              usageArgs(cobra.ExactArgs(nargs)),
		ValidArgsFunction: a.completeBalancer(true),
		RunE: func(cmd *cobra.Command, args []string) error {
			act, err := action(args)
			if err != nil {
				return &usageError{err: err, cmd: cmd.CommandPath()}
			}
			vsName, rsAddr := args[0], args[1]
			if all {
				if a.output != outTable {
					return &usageError{err: errors.New("--all prints a table (one row per director); leave out -o"), cmd: cmd.CommandPath()}
				}
				return a.realServerFleet(cmd, vsName, rsAddr, act)
			}
			return a.call(cmd, func(ctx context.Context, c *ctl.Client) error {
				rs, err := c.SetRealServer(ctx, vsName, rsAddr, act)
				if errors.Is(err, ctl.ErrNotFound) {
					return notFound(ctx, c, vsName, rsAddr, err)
				}
				if err != nil {
					return err
				}
				if a.output != outTable {
					return a.printMessage(rs)
				}
				t := newTable()
				header, row := realServerColumns([]*haav1.RealServerStatus{rs})
				t.row(header...)
				t.row(row(rs)...)
				if err := t.flush(a.out); err != nil {
					return err
				}
				_, err = fmt.Fprintf(a.out, "\n%s\n", done(vsName, rs))
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "on every director of the fleet (each node with the virtual server), reporting each")
	return cmd
}

const allDirectors = `

With --all, on every node of the fleet at once (the members gossip
knows, as haactl get nodes lists them) that has the virtual server: a
table says what each director did, or why not (a node without the
virtual server is not one of its directors). It fails when a director
could not be changed or reached, or when no node has the virtual server.`

// directorResult is what one node of the fleet did with a real server.
type directorResult struct {
	node string
	rs   *haav1.RealServerStatus
	none bool // the node has no such virtual server: not a director
	err  error
}

// realServerFleet changes a real server on every director of the fleet at
// once and reports each.
func (a *app) realServerFleet(cmd *cobra.Command, vsName, rsAddr string, act ctl.RealServerAction) error {
	ctx, f, err := a.openFleet(cmd)
	if err != nil {
		return err
	}
	defer f.Close()
	down := f.Unreachable()
	res := ctl.Each(ctx, f, nil, a.timeout, func(ctx context.Context, _ string, c *ctl.Client) (directorResult, error) {
		r, err := c.VirtualServers(ctx)
		if err != nil {
			return directorResult{}, err
		}
		if findVirtualServer(r, vsName) == nil {
			return directorResult{none: true}, nil
		}
		rs, err := c.SetRealServer(ctx, vsName, rsAddr, act)
		return directorResult{rs: rs}, err
	})
	results := make([]directorResult, len(res))
	for i, r := range res {
		results[i] = r.Value
		results[i].node, results[i].err = r.Node, r.Err
	}
	for _, n := range slices.Sorted(maps.Keys(down)) {
		results = append(results, directorResult{node: n, err: down[n]})
	}
	slices.SortFunc(results, func(x, y directorResult) int { return strings.Compare(x.node, y.node) })
	var rss []*haav1.RealServerStatus
	for _, r := range results {
		if r.rs != nil {
			rss = append(rss, r.rs)
		}
	}
	header, row := realServerColumns(rss)
	t := newTable()
	t.row(append([]string{"NODE"}, header...)...)
	directors, failed := 0, 0
	for _, r := range results {
		switch {
		case r.rs != nil:
			directors++
			t.row(append([]string{r.node}, row(r.rs)...)...)
		case r.none:
			t.row(r.node, "-", "not a director: no virtual server "+vsName)
		default:
			failed++
			msg := nodeErrText(r.err)
			if errors.Is(r.err, ctl.ErrNotFound) {
				directors++
				msg = statusMessage(r.err)
			}
			t.row(r.node, "-", "FAILED: "+msg)
		}
	}
	if err := t.flush(a.out); err != nil {
		return err
	}
	switch {
	case failed > 0:
		return failf("%d of %d nodes failed (above): run it again once they are back, or on each (haactl --target NODE)", failed, len(results))
	case directors == 0:
		return failf("no node of the fleet has the virtual server %s (haactl get vs on a director lists them)", vsName)
	}
	_, err = fmt.Fprintf(a.out, "\nDone on %d director(s).\n", directors)
	return err
}

// notFound explains a virtual or real server the agent does not have,
// listing those it has.
func notFound(ctx context.Context, c *ctl.Client, vsName, rsAddr string, err error) error {
	msg := statusMessage(err)
	r, lerr := c.VirtualServers(ctx)
	if lerr != nil {
		return failf("%s: %s", msg, vsHint)
	}
	vs := findVirtualServer(r, vsName)
	if vs == nil {
		var names []string
		for _, v := range r.GetVirtualServers() {
			names = append(names, v.GetName())
		}
		if len(names) == 0 {
			return failf("%s: the node has no virtual servers (haactl get config)", msg)
		}
		return failf("%s: the node has %s (haactl get vs lists them)", msg, strings.Join(names, ", "))
	}
	var addrs []string
	for _, rs := range vs.GetRealServers() {
		addrs = append(addrs, rs.GetAddress())
	}
	if len(addrs) == 0 {
		return failf("%s: %s has no real servers", msg, vsName)
	}
	return failf("%s: the real servers of %s are %s (give ADDR:PORT)", msg, vsName, strings.Join(addrs, ", "))
}

// persistence is how long a change made through the API lasts.
const persistence = `The change is not a configuration change: it lasts until the real
server's configuration changes or haad restarts, and only on this node
(--all: on every node that balances the virtual server).`

func newDrainCmd(a *app) *cobra.Command {
	return newRealServerCmd(a, "drain VIRTUAL-SERVER REAL-SERVER",
		"Drain a real server: no new connections, the established ones go on",
		`Drain a real server of a virtual server: its weight becomes 0, so it takes no
new connections while the established ones go on, until haactl enable.
REAL-SERVER is ADDR:PORT, or ADDR alone when only one real server of the
virtual server has it. haactl prints the real server afterwards (the
columns of haactl get vs); -o json|yaml prints a haa.v1.RealServerStatus.

`+persistence,
		`  haactl drain web 10.0.1.11:80
  haactl get vs        # wait for its active connections to end
  haactl enable web 10.0.1.11:80`,
		2, func([]string) (ctl.RealServerAction, error) { return ctl.Drain(), nil },
		func(vs string, rs *haav1.RealServerStatus) string {
			return fmt.Sprintf("Drained: %s of %s takes no new connections; its established ones go on (haactl enable %s %s undoes it).",
				rs.GetAddress(), vs, vs, rs.GetAddress())
		})
}

func newEnableCmd(a *app) *cobra.Command {
	cmd := newRealServerCmd(a, "enable VIRTUAL-SERVER REAL-SERVER",
		"Undo drain or weight: give a real server its configured weight back",
		`Undo haactl drain and haactl weight: the real server gets its configured
weight back (still 0 while its health check fails). REAL-SERVER is
ADDR:PORT, or ADDR alone when only one real server of the virtual server
has it. -o json|yaml prints a haa.v1.RealServerStatus.`,
		`  haactl enable web 10.0.1.11:80`,
		2, func([]string) (ctl.RealServerAction, error) { return ctl.Enable(), nil },
		func(vs string, rs *haav1.RealServerStatus) string {
			s := fmt.Sprintf("Enabled: %s of %s has its configured weight %d back", rs.GetAddress(), vs, rs.GetConfiguredWeight())
			if !rs.GetHealthy() {
				s += ", once its health check passes (it is down)"
			}
			return s + "."
		})
	cmd.Aliases = []string{"undrain"}
	return cmd
}

func newWeightCmd(a *app) *cobra.Command {
	return newRealServerCmd(a, "weight VIRTUAL-SERVER REAL-SERVER WEIGHT",
		"Give a real server another weight than its configured one",
		`Give a real server of a virtual server WEIGHT (0..65535) instead of its
configured weight, until haactl enable. Weight 0 takes it out of new
connections as haactl drain does. REAL-SERVER is ADDR:PORT, or ADDR alone
when only one real server of the virtual server has it. -o json|yaml prints
a haa.v1.RealServerStatus.

`+persistence,
		`  haactl weight web 10.0.1.11:80 50
  haactl enable web 10.0.1.11:80     # back to the configured weight`,
		3, func(args []string) (ctl.RealServerAction, error) {
			w, err := strconv.ParseUint(args[2], 10, 32)
			if err != nil || w > 65535 {
				return ctl.RealServerAction{}, fmt.Errorf("weight %q: want a whole number 0..65535", args[2])
			}
			return ctl.Weight(uint32(w)), nil
		},
		func(vs string, rs *haav1.RealServerStatus) string {
			s := fmt.Sprintf("Weight set: %s of %s has weight %d instead of its configured %d (haactl enable %s %s restores it)",
				rs.GetAddress(), vs, rs.GetWeightOverride(), rs.GetConfiguredWeight(), vs, rs.GetAddress())
			if !rs.GetHealthy() {
				s += "; it is down: weight 0 until its health check passes"
			}
			return s + "."
		})
}

// completeBalancer completes a virtual server's name and, withReal, then
// one of its real servers.
func (a *app) completeBalancer(withReal bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 1 || (len(args) == 1 && !withReal) {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return a.complete(cmd, prefix, func(ctx context.Context, c *ctl.Client) ([]string, error) {
			r, err := c.VirtualServers(ctx)
			var out []string
			if len(args) == 0 {
				for _, vs := range r.GetVirtualServers() {
					out = append(out, vs.GetName())
				}
				return out, err
			}
			for _, rs := range findVirtualServer(r, args[0]).GetRealServers() {
				out = append(out, rs.GetAddress())
			}
			return out, err
		})
	}
}
