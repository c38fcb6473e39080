package config

import (
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// validateMetrics checks the metrics listener: host:port, not the API's
// own TCP address.
func validateMetrics(p *problems, m *haav1.Metrics, api *haav1.ApiConfig) {
	const path = "metrics.listen"
	l := m.GetListen()
	validateListen(p, path, l, `required: host:port to serve /metrics on, e.g. "127.0.0.1:9650" (or remove metrics)`,
		"127.0.0.1:9650", "[fd00::1]:9650")
	if t := api.GetTcp().GetListen(); t != "" && t == l {
		p.add(path, "%q is also api.tcp.listen: give metrics a port of its own", l)
	}
}
