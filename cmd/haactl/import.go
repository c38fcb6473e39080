package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	goyaml "sigs.k8s.io/yaml/goyaml.v2"

	"github.com/haa-dev/haa/node/config"
	"github.com/haa-dev/haa/node/keepalived"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

func newImportCmd(a *app) *cobra.Command {
	var nodes, renames []string
	var listUnsupported bool
	cmd := &cobra.Command{
		Use:   "import FILE... [--node NAME,...] [--interface OLD=NEW,...]",
		Short: "Convert keepalived.conf files to haa's configuration",
		Long: `Convert keepalived configuration files to haa's YAML, printed on standard
output. It talks to no agent: run it anywhere the files are (- reads
standard input).

One file gives the agent configuration of one node, the format of haad
--config and haactl apply -f. Several files, one per node of the same
VRRP instances (keepalived's MASTER and BACKUP files, or both halves of a
dual-master pair), give one fleet document (kind: Fleet): each instance
once, with its priority on each node and what differs between the nodes
(interface, unicast peers, source address, state, trackers, notify) as
per-node overrides. Virtual servers are not part of fleet documents:
import such files one by one.

The node names are --node, one per file in the same order, else each
file's global_defs router_id (the default of haad's name too).
--interface OLD=NEW renames an interface everywhere (instance interface,
VIP dev, track_interface), for files written on machines whose interfaces
are named differently.

--unsupported lists the keepalived keywords haa does not support, each
with what haa does instead (REFUSED: a file using it does not convert;
warned: it converts without it).

haactl reads keepalived's whole grammar (include with globs, comments,
quoted strings, aliases such as lvs_sched for lb_algo). What haa does not
support, or does differently, is a warning on standard error, one line
each: "haactl: warning: FILE:LINE: KEYWORD: what to do instead". An
unknown or misspelled keyword is an error, never ignored or guessed: every
problem of every file is listed as FILE:LINE: KEYWORD: MESSAGE, nothing is
printed and haactl exits 1. The converted configuration is checked as
haad checks its file, and read back, before it is printed.

-o json prints the message (haa.v1.AgentConfig, or haa.v1.Fleet) as JSON;
the default (-o table or -o yaml) is the YAML file, with a comment naming
what it was converted from. haad --keepalived-config runs a keepalived
file as it is, without converting it first.`,
		Example: `  haactl import /etc/keepalived/keepalived.conf > /etc/haa/haad.yaml
  haad --check --config /etc/haa/haad.yaml

  # the two nodes of a dual-master pair, as one fleet document
  haactl import lb1-keepalived.conf lb2-keepalived.conf --node lb1,lb2 > fleet.yaml
  haactl apply -f fleet.yaml --dry-run

  # a file written for ens33, for nodes whose interface is eth0
  haactl import keepalived.conf --interface ens33=eth0`,
		Args: func(cmd *cobra.Command, args []string) error {
			if listUnsupported && len(args) > 0 {
				return &usageError{err: fmt.Errorf("--unsupported lists keywords and takes no file (got %q)", args[0]), cmd: cmd.CommandPath()}
			}
			if listUnsupported {
				return nil
			}
			return usageArgs(cobra.MinimumNArgs(1))(cmd, args)
		},
		RunE: func(cmd *cobra.Command, files []string) error {
			if listUnsupported {
				return a.printUnsupported()
			}
			in, err := importInputs(files, nodes, renames)
			if err != nil {
				return &usageError{err: err, cmd: cmd.CommandPath()}
			}
			return a.runImport(cmd, in)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&listUnsupported, "unsupported", false, "list the keepalived keywords haa does not support, each with what it does instead, and exit")
	f.StringSliceVar(&nodes, "node", nil, "the node names, one per file in the same order (default: each file's router_id)")
	f.StringSliceVar(&renames, "interface", nil, "rename an interface: OLD=NEW, e.g. ens33=eth0 (repeat, or separate with commas)")
	_ = cmd.RegisterFlagCompletionFunc("node", cobra.NoFileCompletions)
	_ = cmd.RegisterFlagCompletionFunc("interface", cobra.NoFileCompletions)
	return cmd
}

// importInput is what haactl import converts.
type importInput struct {
	files   []string
	nodes   []string          // one per file, or none
	renames map[string]string // --interface
	order   []string          // the OLD names of renames, as given
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// importInputs checks the command line.
func importInputs(files, nodes, renames []string) (importInput, error) {
	in := importInput{files: files, renames: map[string]string{}}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if n := slices.Index(files, "-"); n >= 0 && slices.Index(files[n+1:], "-") >= 0 {
		bad("- (standard input) can be read only once")
	}
	if len(nodes) > 0 {
		in.nodes = trimAll(nodes)
		if len(in.nodes) != len(files) {
			bad("--node: %s for %s: give one per file, in the same order", plural(len(in.nodes), "name"), plural(len(files), "file"))
		}
		seen := map[string]bool{}
		for _, n := range in.nodes {
			switch {
			case n == "":
				bad("--node: an empty name")
			case seen[n]:
				bad("--node: %s twice: every node needs its own name", n)
			}
			seen[n] = true
		}
	}
	for _, r := range trimAll(renames) {
		old, new, ok := strings.Cut(r, "=")
		old, new = strings.TrimSpace(old), strings.TrimSpace(new)
		switch {
		case !ok || old == "" || new == "":
			bad("--interface %q: want OLD=NEW, e.g. ens33=eth0", r)
		case in.renames[old] != "" && in.renames[old] != new:
			bad("--interface: %s renamed twice, to %s and to %s", old, in.renames[old], new)
		case in.renames[old] == "":
			in.renames[old] = new
			in.order = append(in.order, old)
		}
	}
	if len(problems) > 0 {
		return importInput{}, errors.New(strings.Join(problems, "\n"))
	}
	return in, nil
}

func (a *app) runImport(cmd *cobra.Command, in importInput) error {
	var (
		cfgs     []*haav1.AgentConfig
		warnings []keepalived.Problem
		bad      []string // the files that failed
		failed   []string // their problems, one per line
		problems int
	)
	for i, file := range in.files {
		opts := keepalived.Options{Interfaces: in.renames}
		if in.nodes != nil {
			opts.Name = in.nodes[i]
		}
		cfg, ws, err := loadKeepalived(cmd, file, opts)
		warnings = append(warnings, ws...)
		var ke *keepalived.Error
		switch {
		case errors.As(err, &ke):
			bad = append(bad, file)
			warnings = append(warnings, ke.Warnings...)
			problems += len(ke.Problems)
			for _, p := range ke.Problems {
				failed = append(failed, p.String())
			}
		case err != nil:
			bad = append(bad, file)
			problems++
			msg := err.Error()
			if !strings.Contains(msg, file) {
				msg = file + ": " + msg
			}
			failed = append(failed, msg)
		}
		cfgs = append(cfgs, cfg)
	}
	// Warnings are printed once the files converted (a wrong command line
	// says only what is wrong with it); with the errors, those of the
	// files that converted.
	printWarnings := func() {
		for _, w := range warnings {
			fmt.Fprintf(a.errOut, "haactl: warning: %s\n", w)
		}
		if problems == 0 {
			a.warnUnusedRenames(in, cfgs)
		}
	}
	if problems > 0 {
		printWarnings()
		return failf("cannot convert %s (%s), nothing was printed:\n%s", strings.Join(bad, ", "), plural(problems, "problem"), strings.Join(failed, "\n"))
	}
	source := strings.Join(in.files, ", ")
	var msg proto.Message
	if len(cfgs) == 1 {
		printWarnings()
		cfg := cfgs[0]
		if err := config.Validate(cfg); err != nil {
			return invalid(source, "haa configuration once converted", fieldViolations(err), "nothing was printed")
		}
		msg = cfg
	} else {
		for i, cfg := range cfgs {
			if cfg.GetName() != "" {
				continue
			}
			return &usageError{err: fmt.Errorf("%s has no router_id in global_defs: name the nodes with --node, one per file in the same order", in.files[i]), cmd: cmd.CommandPath()}
		}
		if in.nodes == nil {
			seen := map[string]string{}
			for i, cfg := range cfgs {
				if prev, ok := seen[cfg.GetName()]; ok {
					return &usageError{err: fmt.Errorf("%s and %s have the same router_id %s: name the nodes with --node, one per file in the same order", prev, in.files[i], cfg.GetName()), cmd: cmd.CommandPath()}
				}
				seen[cfg.GetName()] = in.files[i]
			}
		}
		printWarnings()
		doc, err := keepalived.Fleet(cfgs, in.files)
		if err != nil {
			return failf("cannot merge %s into one fleet document, nothing was printed:\n%v", source, err)
		}
		if err := config.ValidateFleet(doc); err != nil {
			return invalid(source, "fleet document once converted", fieldViolations(err), "nothing was printed")
		}
		msg = doc
	}
	if a.output == outJSON {
		return a.printMessage(msg)
	}
	b, err := importYAML(msg, source)
	if err != nil {
		return failf("cannot write the converted configuration as YAML (%v): -o json prints it as JSON", err)
	}
	_, err = a.out.Write(b)
	return err
}

// loadKeepalived converts one file; "-" is standard input (its includes
// are relative to the working directory).
func loadKeepalived(cmd *cobra.Command, file string, opts keepalived.Options) (*haav1.AgentConfig, []keepalived.Problem, error) {
	if file != "-" {
		return keepalived.Load(file, opts)
	}
	// One byte past the limit is enough for Parse to refuse it.
	data, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), keepalived.MaxFileBytes+1))
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.Getwd()
	if err != nil {
		return nil, nil, err
	}
	return keepalived.Parse("<stdin>", data, dir, opts)
}

// warnUnusedRenames warns about an --interface rename that nothing used:
// a misspelled interface name would otherwise go unnoticed.
func (a *app) warnUnusedRenames(in importInput, cfgs []*haav1.AgentConfig) {
	used := map[string]bool{}
	for _, cfg := range cfgs {
		for _, name := range interfacesOf(cfg) {
			used[name] = true
		}
	}
	for _, old := range in.order {
		if !used[in.renames[old]] {
			fmt.Fprintf(a.errOut, "haactl: warning: --interface %s=%s: %s uses no interface %s\n",
				old, in.renames[old], strings.Join(in.files, ", "), old)
		}
	}
}

// interfacesOf lists the interfaces a configuration names: instances,
// VIPs' dev, interface trackers.
func interfacesOf(cfg *haav1.AgentConfig) []string {
	var out []string
	for _, ins := range cfg.GetInstances() {
		out = append(out, ins.GetInterface())
		for _, v := range ins.GetVips() {
			fs := strings.Fields(v)
			for i := 0; i+1 < len(fs); i++ {
				if fs[i] == "dev" {
					out = append(out, fs[i+1])
				}
			}
		}
	}
	for _, t := range cfg.GetTrackers() {
		if n := t.GetInterface().GetName(); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// importYAML writes a converted configuration or fleet document as YAML,
// fields in the order of the .proto (name first, then instances, each
// starting with its name), after a comment naming its source. It must read
// back as the same message.
func importYAML(m proto.Message, source string) ([]byte, error) {
	js, err := marshalJSON(m)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	v, err := orderedValue(dec)
	if err != nil {
		return nil, err
	}
	body, err := goyaml.Marshal(v)
	if err != nil {
		return nil, err
	}
	var back proto.Message
	switch m.(type) {
	case *haav1.Fleet:
		back, err = config.ParseFleet(body)
	default:
		back, err = config.Parse(body)
	}
	if err != nil {
		return nil, err
	}
	if !proto.Equal(back, m) {
		return nil, errors.New("it does not read back as the same configuration")
	}
	return append([]byte("# converted from "+source+" by haactl import\n"), body...), nil
}

// orderedValue decodes the next JSON value, objects as goyaml.MapSlice so
// that their keys keep their order.
func orderedValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := goyaml.MapSlice{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := orderedValue(dec)
				if err != nil {
					return nil, err
				}
				m = append(m, goyaml.MapItem{Key: k, Value: v})
			}
			_, err := dec.Token() // }
			return m, err
		case '[':
			l := []any{}
			for dec.More() {
				v, err := orderedValue(dec)
				if err != nil {
					return nil, err
				}
				l = append(l, v)
			}
			_, err := dec.Token() // ]
			return l, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case json.Number:
		if n, err := strconv.ParseInt(t.String(), 10, 64); err == nil {
			return n, nil
		}
		return t.Float64()
	default: // string, bool, nil
		return t, nil
	}
}

// printUnsupported is import --unsupported: every keepalived keyword haa
// does not support, by block, with what it does instead.
func (a *app) printUnsupported() error {
	t := newTable()
	t.row("BLOCK", "KEYWORD", "FILE", "WHY / WHAT TO DO")
	for _, k := range keepalived.Unsupported() {
		what := "warned"
		if k.Refused {
			what = "REFUSED"
		}
		t.row(k.Block, k.Keyword, what, k.Why)
	}
	return t.flush(a.out)
}
