package metrics

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/haa-dev/haa/node/balancer"
)

// The load balancer's families are written straight in the text format:
// three series per real server (tens of thousands of them) cost a
// microsecond or more each through the client library's metric objects,
// and a tenth of that as lines.
var (
	virtualServerUp = family{"haa_virtual_server_up", "gauge",
		"Whether the virtual server has reached its quorum (1) or not (0)."}
	realServerHealthy = family{"haa_real_server_healthy", "gauge",
		"Whether the real server passes its health check (1) or not (0)."}
	realServerWeight = family{"haa_real_server_weight", "gauge",
		"Weight of the real server programmed into the kernel (0: drained, failed or not programmed)."}
	checkDuration = family{"haa_check_duration_seconds", "gauge",
		"How long the real server's latest health check took."}
)

type family struct{ name, typ, help string }

func (f family) header(b *bytes.Buffer) {
	b.WriteString("# HELP ")
	b.WriteString(f.name)
	b.WriteByte(' ')
	b.WriteString(f.help)
	b.WriteString("\n# TYPE ")
	b.WriteString(f.name)
	b.WriteByte(' ')
	b.WriteString(f.typ)
	b.WriteByte('\n')
}

// rendered are a virtual server's lines that do not change while its view
// does not: the view is immutable, so they are written once per view.
type rendered struct {
	up, healthy, weight []byte
	addrs               []string
}

// lbCache keeps the rendered lines of the last scrape's views.
type lbCache struct {
	mu sync.Mutex
	m  map[*balancer.VirtualServer]*rendered
}

func (c *lbCache) get(vs *balancer.VirtualServer) *rendered {
	if r := c.m[vs]; r != nil {
		return r
	}
	r := &rendered{addrs: make([]string, len(vs.Reals))}
	var b bytes.Buffer
	sample(&b, virtualServerUp.name, vs.Name, "", bool01(vs.Up))
	r.up = bytes.Clone(b.Bytes())
	b.Reset()
	for k, rs := range vs.Reals {
		r.addrs[k] = rs.Addr.String()
		sample(&b, realServerHealthy.name, vs.Name, r.addrs[k], bool01(rs.Healthy))
	}
	r.healthy = bytes.Clone(b.Bytes())
	b.Reset()
	for k, rs := range vs.Reals {
		sample(&b, realServerWeight.name, vs.Name, r.addrs[k], float64(rs.Weight))
	}
	r.weight = b.Bytes()
	return r
}

// write writes the load balancer's families of snap in the text exposition
// format (version 0.0.4), the check durations as they are now.
func (c *lbCache) write(b *bytes.Buffer, snap *balancer.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if snap == nil || len(snap.VirtualServers) == 0 {
		c.m = nil
		return
	}
	next := make(map[*balancer.VirtualServer]*rendered, len(snap.VirtualServers))
	rs := make([]*rendered, len(snap.VirtualServers))
	for i, vs := range snap.VirtualServers {
		rs[i] = c.get(vs)
		next[vs] = rs[i]
	}
	c.m = next // the views gone are forgotten
	virtualServerUp.header(b)
	for _, r := range rs {
		b.Write(r.up)
	}
	realServerHealthy.header(b)
	for _, r := range rs {
		b.Write(r.healthy)
	}
	realServerWeight.header(b)
	for _, r := range rs {
		b.Write(r.weight)
	}
	first := true
	for i, vs := range snap.VirtualServers {
		for k, real := range vs.Reals {
			took := real.LastDuration
			if _, d, ok := snap.Latest(real); ok {
				took = d
			}
			if real.Check == "none" || took <= 0 {
				continue
			}
			if first {
				checkDuration.header(b)
				first = false
			}
			sample(b, checkDuration.name, vs.Name, rs[i].addrs[k], took.Seconds())
		}
	}
}

// sample writes one line: name{[real_server="rs",]virtual_server="vs"} v
// (labels sorted, as the client library writes them).
func sample(b *bytes.Buffer, name, vs, rs string, v float64) {
	b.WriteString(name)
	b.WriteByte('{')
	if rs != "" {
		b.WriteString(`real_server="`)
		escapeLabel(b, rs)
		b.WriteString(`",`)
	}
	b.WriteString(`virtual_server="`)
	escapeLabel(b, vs)
	b.WriteString(`"} `)
	var num [32]byte
	b.Write(strconv.AppendFloat(num[:0], v, 'g', -1, 64))
	b.WriteByte('\n')
}

// escapeLabel writes a label value escaped as the text format wants:
// backslash, double quote and line feed.
func escapeLabel(b *bytes.Buffer, s string) {
	if !strings.ContainsAny(s, "\\\"\n") {
		b.WriteString(s)
		return
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(c)
		}
	}
}

// HandlerOptions configure Handler.
type HandlerOptions struct {
	// Log gets the errors of a scrape (a metric that could not be
	// gathered: the others still go out).
	Log *slog.Logger
	// MaxInFlight bounds concurrent scrapes (0: 4); the ones beyond it
	// are answered 503.
	MaxInFlight int
}

// Handler serves the registry's metrics and src's load balancer in the
// text exposition format, gzipped (at its fastest level) when the scraper
// accepts it. A table of tens of thousands of real servers is scraped in
// tens of milliseconds.
func Handler(reg prometheus.Gatherer, src Source, opts HandlerOptions) http.Handler {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 4
	}
	inflight := make(chan struct{}, opts.MaxInFlight)
	bufs := sync.Pool{New: func() any { return new(bytes.Buffer) }}
	var lb lbCache
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case inflight <- struct{}{}:
			defer func() { <-inflight }()
		default:
			http.Error(w, "too many scrapes at once", http.StatusServiceUnavailable)
			return
		}
		b := bufs.Get().(*bytes.Buffer)
		b.Reset()
		defer bufs.Put(b)
		mfs, err := reg.Gather()
		if err != nil {
			opts.Log.Warn("gathering metrics", "err", err) // what was gathered still goes out
		}
		enc := expfmt.NewEncoder(b, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				opts.Log.Warn("encoding metrics", "family", mf.GetName(), "err", err)
			}
		}
		lb.write(b, src.LoadBalancer())
		h := w.Header()
		h.Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
		var out io.Writer = w
		if acceptsGzip(r) {
			h.Set("Content-Encoding", "gzip")
			h.Add("Vary", "Accept-Encoding")
			gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
			defer gz.Close()
			out = gz
		} else {
			h.Set("Content-Length", strconv.Itoa(b.Len()))
		}
		if _, err := out.Write(b.Bytes()); err != nil {
			opts.Log.Debug("writing metrics", "err", err) // the scraper went away
		}
	})
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		if enc, _, _ := strings.Cut(strings.TrimSpace(part), ";"); enc == "gzip" {
			return true
		}
	}
	return false
}
