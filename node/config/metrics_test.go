package config

import "testing"

func TestMetricsListen(t *testing.T) {
	const inst = "\ninstances: [{name: a, interface: eth0, vrid: 1, vips: [10.0.0.1]}]\n"
	for _, y := range []string{
		`metrics: {listen: "127.0.0.1:9650"}`,
		`metrics: {listen: ":9650"}`,
		`metrics: {listen: "[fd00::1]:9650"}`,
		`metrics: {listen: "localhost:9650"}`,
		"api: {tcp: {listen: \"127.0.0.1:9651\", insecure: true}}\nmetrics: {listen: \"127.0.0.1:9650\"}",
	} {
		cfg, err := Parse([]byte("name: n1\n" + y + inst))
		if err != nil {
			t.Fatalf("%s: %v", y, err)
		}
		if err := Validate(cfg); err != nil {
			t.Errorf("%s: %v", y, err)
		}
	}
	for _, c := range []struct{ yaml, want string }{
		{`metrics: {}`, `metrics.listen: required: host:port to serve /metrics on`},
		{`metrics: {listen: "127.0.0.1"}`, `metrics.listen: "127.0.0.1" is not host:port`},
		{`metrics: {listen: "127.0.0.1:http"}`, `metrics.listen: "127.0.0.1:http": port "http" is not a number 1..65535`},
		{`metrics: {listen: "127.0.0.1:70000"}`, `metrics.listen: "127.0.0.1:70000": port "70000" is not a number`},
		{`metrics: {listen: "bad host:9650"}`, `metrics.listen: "bad host:9650": "bad host" is neither an IP address nor a host name`},
		{"api: {tcp: {listen: \"127.0.0.1:9651\", insecure: true}}\nmetrics: {listen: \"127.0.0.1:9651\"}",
			`metrics.listen: "127.0.0.1:9651" is also api.tcp.listen`},
	} {
		cfg, err := Parse([]byte("name: n1\n" + c.yaml + inst))
		if err != nil {
			t.Fatalf("%s: %v", c.yaml, err)
		}
		t.Run(c.yaml, func(t *testing.T) { wantProblems(t, Validate(cfg), c.want) })
	}
}
