package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"

	"github.com/haa-dev/haa/node"
	"github.com/haa-dev/haa/node/metrics"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
	"github.com/haa-dev/haa/server"
)

// metricsServer serves the agent's Prometheus metrics (GET /metrics) when
// the configuration has metrics.listen. A nil *metricsServer is none: its
// methods do nothing.
type metricsServer struct {
	api  *server.APIMetrics
	url  string
	srv  *http.Server
	done chan struct{}
	log  *slog.Logger
}

// metricsStopTimeout bounds how long a stopping haad lets scrapes finish.
const metricsStopTimeout = 2 * time.Second

// startMetrics listens on the configuration's metrics.listen (read at start
// only: a change takes effect at the next start) and serves the agent's
// registry: its collector, the Go runtime, the process and the API's calls
// (through listenOptions). No metrics.listen: nil, nil.
func startMetrics(agent *node.Agent, cfg *haav1.AgentConfig, log *slog.Logger) (*metricsServer, error) {
	listen := cfg.GetMetrics().GetListen()
	if listen == "" {
		return nil, nil
	}
	src := metrics.AgentSource(agent)
	reg := metrics.NewRegistry(src)
	api, err := server.NewAPIMetrics(reg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("cannot serve metrics on metrics.listen %s: %w", listen, err)
	}
	mux := http.NewServeMux()
	// A scrape reads the subsystems' snapshots (it never waits for them);
	// a few at once at most, whatever the number of scrapers.
	mux.Handle("GET /metrics", http.TimeoutHandler(metrics.Handler(reg, src, metrics.HandlerOptions{Log: log, MaxInFlight: 4}),
		10*time.Second, "scrape timed out"))
	m := &metricsServer{api: api, url: "http://" + ln.Addr().String() + "/metrics", log: log,
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute},
		done: make(chan struct{})}
	go func() {
		defer close(m.done)
		// A bounded number of connections: whoever reaches the port cannot
		// pile up file descriptors in the process that runs VRRP.
		if err := m.srv.Serve(netutil.LimitListener(ln, 16)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics stopped serving: VRRP and the API go on; restart haad to get them back", "err", err)
		}
	}()
	agent.SetMetricsAddress(m.url)
	log.Info("serving metrics", "url", m.url)
	return m, nil
}

// listenOptions count the API's calls in the metrics.
func (m *metricsServer) listenOptions() []server.ListenOption {
	if m == nil {
		return nil
	}
	return []server.ListenOption{server.WithAPIMetrics(m.api)}
}

// stop closes the listener and lets scrapes in progress finish, for
// metricsStopTimeout at most.
func (m *metricsServer) stop() {
	if m == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), metricsStopTimeout)
	defer cancel()
	if err := m.srv.Shutdown(ctx); err != nil {
		m.srv.Close()
	}
	<-m.done
}
