package balancer

import (
	"context"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// PeerHealth is another director's verdicts on one virtual server: the
// real servers its checks see down, of the set it checks (SetHash); the
// others it sees up.
type PeerHealth struct {
	Node    string
	SetHash uint32
	Down    []netip.AddrPort
}

// PeerVerdicts are the other directors' verdicts, by virtual server name.
type PeerVerdicts map[string][]PeerHealth

// SetHash identifies a set of real servers: FNV-1a of the sorted
// "ADDR:PORT"s, newline-separated. Directors compare verdicts only where
// they check the same set.
func SetHash(addrs []netip.AddrPort) uint32 {
	ss := make([]string, len(addrs))
	for i, a := range addrs {
		ss[i] = a.String()
	}
	slices.Sort(ss)
	h := fnv.New32a()
	for _, s := range ss {
		h.Write([]byte(s))
		h.Write([]byte{'\n'})
	}
	return h.Sum32()
}

// SetPeerVerdicts gives the balancer the other directors' verdicts (from
// gossip), for the virtual servers with keepIfPeersSeeUp. It never waits:
// the balancer reviews the real servers it keeps on its own goroutine.
func (b *Balancer) SetPeerVerdicts(v PeerVerdicts) {
	b.peers.Store(&v)
	select {
	case b.peersChanged <- struct{}{}:
	default:
	}
}

// peersSeeUp reports whether every other director that judges r sees it
// up (at least one does, none sees it down), and names them.
func (b *Balancer) peersSeeUp(r *realRun) ([]string, bool) {
	p := b.peers.Load()
	if p == nil {
		return nil, false
	}
	var up []string
	down := 0
	for _, ph := range (*p)[r.run.cfg.Name] {
		switch {
		case ph.SetHash != r.run.setHash:
			// another set of real servers: it says nothing of this one
		case slices.Contains(ph.Down, r.cfg.Addr):
			down++
		default:
			up = append(up, ph.Node)
		}
	}
	return up, len(up) > 0 && down == 0
}

// keepIfPeersSeeUp decides, as r's check has just seen it down, whether it
// stays in the table (keepIfPeersSeeUp, while every other director sees
// it up); it returns what the event's detail adds ("" when not kept).
// Called with mu held.
func (b *Balancer) keepIfPeersSeeUp(r *realRun) string {
	keep := r.run.cfg.KeepIfPeersSeeUp
	if keep <= 0 {
		return ""
	}
	up, ok := b.peersSeeUp(r)
	if !ok {
		return ""
	}
	r.kept = true
	b.kept[r] = struct{}{}
	until := r.keptUntil()
	b.log.Warn("real server down for this director's check only: kept in the table while the other directors see it up",
		"virtual_server", r.run.cfg.Name, "real_server", r.cfg.Addr, "up_on", up, "until", until.Format(time.RFC3339))
	return fmt.Sprintf("; kept in the table until %s: %s see it up (keepIfPeersSeeUp %s)",
		until.Format("15:04:05"), strings.Join(up, ", "), keep)
}

// keptUntil is when a kept real server leaves the table at the latest:
// keepIfPeersSeeUp after its check saw it down (as configured now); zero
// when it is not kept.
func (r *realRun) keptUntil() time.Time {
	if !r.kept {
		return time.Time{}
	}
	return r.status.Since.Add(r.run.cfg.KeepIfPeersSeeUp)
}

// unkeep forgets that r is kept. Called with mu held.
func (b *Balancer) unkeep(r *realRun) {
	r.kept = false
	delete(b.kept, r)
	r.run.dirty = true
}

// reviewKept takes out of the table the real servers kept past their
// bound or no longer seen up by every other director, and forgets those
// whose check is gone or up again. Called with mu held.
func (b *Balancer) reviewKept(now time.Time) {
	type release struct {
		r   *realRun
		why string
	}
	var out []release
	for r := range b.kept {
		switch up, ok := b.peersSeeUp(r); {
		case r.id == "" || b.byID[r.id] != r || b.vss[r.run.cfg.Name] != r.run || r.status.Healthy:
			b.unkeep(r) // its check stopped, restarted or passes again
		case r.run.cfg.KeepIfPeersSeeUp <= 0:
			out = append(out, release{r, "keepIfPeersSeeUp was removed"})
		case !now.Before(r.keptUntil()):
			out = append(out, release{r, fmt.Sprintf("kept for keepIfPeersSeeUp %s, which is over", r.run.cfg.KeepIfPeersSeeUp)})
		case !ok:
			why := "no other director sees it up any more"
			if len(up) > 0 {
				why = "not every other director sees it up any more"
			}
			out = append(out, release{r, why})
		}
	}
	if len(out) == 0 {
		return
	}
	var runs []*vsRun
	for _, x := range out {
		b.unkeep(x.r)
		runs = append(runs, x.r.run)
		b.log.Warn("real server taken out of the table: "+x.why, "virtual_server", x.r.run.cfg.Name, "real_server", x.r.cfg.Addr)
	}
	ctx, cancel := context.WithTimeout(b.ctx, programTimeout)
	defer cancel()
	_ = b.program(ctx, runs...) // a failure is logged and retried
	for _, x := range out {
		b.realServerEvent(x.r, false, "down", "taken out of the table: "+x.why)
	}
	b.publishLocked(b.requested)
}
