package config

import (
	"net"
	"net/netip"
	"strconv"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// validateMetrics checks the metrics listener: host:port, not the API's
// own TCP address.
func validateMetrics(p *problems, m *haav1.Metrics, api *haav1.ApiConfig) {
	const path = "metrics.listen"
	l := m.GetListen()
	host, port, err := net.SplitHostPort(l)
	switch {
	case l == "":
		p.add(path, "required: host:port to serve /metrics on, e.g. \"127.0.0.1:9650\" (or remove metrics)")
		return
	case err != nil:
		p.add(path, "%q is not host:port, e.g. \"127.0.0.1:9650\" or \"[fd00::1]:9650\"", l)
		return
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		p.add(path, "%q: port %q is not a number 1..65535", l, port)
	}
	if _, err := netip.ParseAddr(host); host != "" && err != nil && !hostRE.MatchString(host) {
		p.add(path, "%q: %q is neither an IP address nor a host name", l, host)
	}
	if t := api.GetTcp().GetListen(); t != "" && t == l {
		p.add(path, "%q is also api.tcp.listen: give metrics a port of its own", l)
	}
}
