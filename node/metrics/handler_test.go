package metrics

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haa-dev/haa/node"
	"github.com/haa-dev/haa/node/balancer"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// bigFake is an agent with 5,000 virtual servers of 5 real servers each.
func bigFake() *fake {
	f := &fake{info: node.NodeInfo{Name: "n1", Version: "v"}}
	for i := range 5000 {
		vs := balancer.VirtualServer{Name: fmt.Sprintf("10.100.%d.%d:80/tcp", i/256, i%256), Up: true}
		for j := range 5 {
			vs.Reals = append(vs.Reals, balancer.RealServer{Addr: netip.MustParseAddrPort(fmt.Sprintf("10.200.%d.%d:%d", i/256, i%256, 8080+j)),
				Healthy: true, Weight: 1 + j%3, Programmed: true, Check: "tcp", LastDuration: time.Millisecond})
		}
		f.vss = append(f.vss, vs)
	}
	return f
}

// BenchmarkScrape scrapes 5,000 virtual servers x 5 real servers, gzipped.
func BenchmarkScrape(b *testing.B) {
	src := bigFake()
	h := Handler(NewRegistry(src), src, HandlerOptions{})
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	for b.Loop() {
		w := &discard{h: http.Header{}}
		h.ServeHTTP(w, req)
		b.SetBytes(w.n)
	}
}

// discard is a ResponseWriter that counts what it is sent.
type discard struct {
	h http.Header
	n int64
}

func (d *discard) Header() http.Header { return d.h }
func (d *discard) WriteHeader(int)     {}
func (d *discard) Write(p []byte) (int, error) {
	d.n += int64(len(p))
	return len(p), nil
}

// TestHandlerPlainAndEscapes: without gzip the body is the text format
// with its length; label values are escaped and read back as they are.
func TestHandlerPlainAndEscapes(t *testing.T) {
	src := &fake{vss: []balancer.VirtualServer{{Name: `we"b\1`, Up: true, Reals: []balancer.RealServer{
		{Addr: netip.MustParseAddrPort("10.0.0.1:80"), Healthy: true, Weight: 2, Check: "none"}}}}}
	rec := httptest.NewRecorder()
	Handler(NewRegistry(src), src, HandlerOptions{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Header().Get("Content-Encoding") != "" || rec.Header().Get("Content-Length") != strconv.Itoa(rec.Body.Len()) ||
		!strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("headers %v", rec.Header())
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	got := series(mfs["haa_real_server_weight"])
	if want := []string{`haa_real_server_weight{real_server=10.0.0.1:80,virtual_server=we"b\1} 2`}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if mfs["haa_check_duration_seconds"] != nil {
		t.Error("a check duration for a real server without a check")
	}
}
