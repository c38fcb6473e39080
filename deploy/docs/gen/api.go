package main

import (
	"bytes"
	"fmt"
	"strings"
)

// ---- API reference ----

func renderAPI(m *model) ([]byte, error) {
	if len(m.services) == 0 {
		return nil, fmt.Errorf("no service in package %s", m.pkg)
	}
	link := func(full string) string {
		if msg := m.messages[full]; msg != nil && msg.file == configFile {
			return "config.md#" + anchor(m.short(full))
		}
		return "#" + anchor(m.short(full))
	}
	inAPI := func(msg *message) bool { return msg.file != configFile && msg.file != gossipFile }

	// Messages in the order a reader meets them: each RPC's request and
	// response, then what they use; the configuration's messages are in
	// config.md.
	seen := map[string]bool{}
	var msgs []*message
	var visit func(name string)
	visit = func(name string) {
		msg := m.messages[name]
		if msg == nil || seen[name] || !inAPI(msg) || msg.mapVal != nil {
			return
		}
		seen[name] = true
		msgs = append(msgs, msg)
		for _, r := range m.refs(msg) {
			visit(r)
		}
	}
	for _, s := range m.services {
		for _, md := range s.methods {
			visit(md.in)
			visit(md.out)
		}
	}
	for _, f := range []string{agentFile, fleetFile} {
		for _, msg := range m.messagesOf(f) {
			visit(msg.name)
		}
	}
	var enums []*enum
	for _, f := range []string{agentFile, fleetFile, configFile, gossipFile} {
		enums = append(enums, m.enumsOf(f)...)
	}
	gossip := m.messagesOf(gossipFile)

	var b bytes.Buffer
	b.WriteString("# API reference\n\n")
	b.WriteString(generated)
	b.WriteString(apiIntro)

	b.WriteString("\n## Contents\n\n")
	list := func(title string, names []string) {
		if len(names) == 0 {
			return
		}
		fmt.Fprintf(&b, "- [%s](#%s):", title, anchor(title))
		for i, n := range names {
			sep := " "
			if i > 0 {
				sep = ", "
			}
			fmt.Fprintf(&b, "%s[%s](#%s)", sep, n, anchor(n))
		}
		b.WriteString("\n")
	}
	var names []string
	for _, s := range m.services {
		names = append(names, s.name)
	}
	list("Services", names)
	list("Messages", shortNames(m, msgs))
	names = nil
	for _, e := range enums {
		names = append(names, m.short(e.name))
	}
	list("Enums", names)
	list("Gossip messages", shortNames(m, gossip))
	b.WriteString("- The configuration messages ([AgentConfig](config.md#agentconfig), [Fleet](config.md#fleet) and theirs): [config.md](config.md)\n")

	b.WriteString("\n## Services\n")
	for _, s := range m.services {
		fmt.Fprintf(&b, "\n### %s\n\n", s.name)
		fmt.Fprintf(&b, "`haa.v1.%s`, in [%s](../../proto/%s).", s.name, s.file, s.file)
		if s.comment != "" {
			b.WriteString(" " + mdText(s.comment))
		}
		b.WriteString("\n\n| RPC | Request | Response | Description |\n| --- | --- | --- | --- |\n")
		for _, md := range s.methods {
			in := fmt.Sprintf("[%s](%s)", m.short(md.in), link(md.in))
			out := fmt.Sprintf("[%s](%s)", m.short(md.out), link(md.out))
			if md.clientStream {
				in = "stream " + in
			}
			if md.srvStream {
				out = "stream " + out
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", md.name, in, out, cell(mdText(md.comment)))
		}
	}

	b.WriteString("\n## Messages\n")
	for _, msg := range msgs {
		m.apiMessage(&b, msg, link)
	}

	if len(enums) > 0 {
		b.WriteString("\n## Enums\n\nIn JSON an enum is its value's name (`\"STATE_MASTER\"`); the number is accepted too.\n")
		for _, e := range enums {
			fmt.Fprintf(&b, "\n### %s\n\n", m.short(e.name))
			if e.comment != "" {
				b.WriteString(mdText(e.comment) + "\n\n")
			}
			b.WriteString("| Value | Number | Description |\n| --- | --- | --- |\n")
			for _, v := range e.values {
				fmt.Fprintf(&b, "| `%s` | %d | %s |\n", v.name, v.number, cell(mdText(v.comment)))
			}
		}
	}

	if len(gossip) > 0 {
		fmt.Fprintf(&b, "\n## Gossip messages\n\n%s", gossipIntro)
		for _, msg := range gossip {
			m.apiMessage(&b, msg, link)
		}
	}
	return b.Bytes(), nil
}

func shortNames(m *model, msgs []*message) []string {
	var out []string
	for _, msg := range msgs {
		out = append(out, m.short(msg.name))
	}
	return out
}

const apiIntro = `
Every haad serves ` + "`haa.v1.AgentService`" + ` and, when it gossips, ` + "`haa.v1.FleetService`" + `
([proto/haa/v1](../../proto/haa/v1)) on its unix socket (` + "`api.socket`" + `, default
` + "`/run/haa/NAME.sock`" + `, mode 0600) and, when configured, on a TCP listener with TLS
(` + "`api.tcp`" + `, see [config.md](config.md#apiconfig)). The server also has reflection and the
standard ` + "`grpc.health.v1`" + ` service (SERVING once the first configuration runs), so grpcurl
needs no .proto file:

` + "```sh" + `
grpcurl -plaintext -unix /run/haa/n1.sock list
grpcurl -plaintext -unix /run/haa/n1.sock haa.v1.AgentService/GetNode
grpcurl -plaintext -unix /run/haa/n1.sock -d '{"level": "debug"}' haa.v1.AgentService/SetLogLevel
` + "```" + `

` + "`haactl`" + ` is a client of this API; its ` + "`-o json`" + ` and ` + "`-o yaml`" + ` print these messages.
In JSON (grpcurl, haactl) fields have the names of the **Field** column (lowerCamelCase), 64-bit
integers are strings, a ` + "`duration`" + ` is a string such as ` + "`\"1.5s\"`" + `, a ` + "`timestamp`" + ` an RFC 3339
string, and fields at their zero value are left out.

Errors are gRPC status codes: ` + "`InvalidArgument`" + ` for an invalid configuration or document (every
problem with its field path in a ` + "`google.rpc.BadRequest`" + ` detail), ` + "`FailedPrecondition`" + ` for a
stale ` + "`expectedGeneration`" + `, an older fleet document or a failover asked of a backup, ` + "`NotFound`" + `
for an unknown instance, virtual server or real server, ` + "`OutOfRange`" + ` when the events to resume
from are no longer buffered, ` + "`DeadlineExceeded`" + ` when no node took over in time,
` + "`FailedPrecondition`" + ` too when the configuration file cannot be written (nothing applied; the
message names the file), ` + "`ResourceExhausted`" + ` beyond 32 event streams on one listener,
` + "`Unavailable`" + ` while the agent starts or stops and to a client without the certificate a
mutual-TLS listener requires (its TLS handshake fails). A request with fields this agent does not
know, at any depth, is ` + "`InvalidArgument`" + ` naming where: served, they would be dropped silently.
`

const gossipIntro = "What agents exchange over gossip (hashicorp/memberlist), in " +
	"[gossip.proto](../../proto/haa/v1/gossip.proto). Internal to haad, but versioned like the API:\n" +
	"nodes of different versions gossip together during an upgrade.\n"

func (m *model) apiMessage(b *bytes.Buffer, msg *message, link func(string) string) {
	fmt.Fprintf(b, "\n### %s\n\n", m.short(msg.name))
	if msg.comment != "" {
		b.WriteString(mdText(msg.comment) + "\n\n")
	}
	if len(msg.fields) == 0 {
		b.WriteString("No fields.\n")
		return
	}
	b.WriteString("| Field | Number | Type | Description |\n| --- | --- | --- | --- |\n")
	oneofs := msg.desc.GetOneofDecl()
	for _, f := range msg.fields {
		t := m.typeName(f, link, "repeated ")
		if f.desc.OneofIndex != nil && !f.desc.GetProto3Optional() {
			t = fmt.Sprintf("oneof `%s`: %s", oneofs[f.desc.GetOneofIndex()].GetName(), t)
		}
		fmt.Fprintf(b, "| `%s` | %d | %s | %s |\n", f.desc.GetJsonName(), f.desc.GetNumber(), t,
			cell(m.description(msg, f, false, link)))
	}
}

// missing lists the configuration fields whose comments state no default
// (a singular scalar), no unit or range (a number) or no keepalived
// keyword, for the proto's authors.
func missing(m *model) []string {
	seen := map[string]bool{}
	msgs := append(m.walk(m.pkg+".AgentConfig", seen), m.walk(m.pkg+".Fleet", seen)...)
	var out []string
	for _, msg := range msgs {
		for _, f := range msg.fields {
			fa := m.facts(msg, f)
			var lack []string
			if fa.Default == "" && m.singularScalar(f) {
				lack = append(lack, "default")
			}
			if u := m.unitCell(f, fa); u == "-" {
				lack = append(lack, "unit")
			}
			if fa.Keepalived == "" {
				lack = append(lack, "keepalived")
			}
			if f.comment == "" {
				lack = append(lack, "comment")
			} else if f.inherited {
				lack = append(lack, "own comment")
			}
			if len(lack) > 0 {
				out = append(out, fmt.Sprintf("%s.%s: %s", m.short(msg.name), f.desc.GetName(), strings.Join(lack, ", ")))
			}
		}
	}
	return out
}
