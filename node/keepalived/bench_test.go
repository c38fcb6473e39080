package keepalived

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkConvertLarge converts a keepalived.conf of 10,000 virtual
// servers x 5 real servers (what a SIGHUP of haad --keepalived-config
// does before anything is applied).
func BenchmarkConvertLarge(b *testing.B) {
	var sb strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&sb, "virtual_server 10.1.%d.%d 80 {\n    delay_loop 60\n    lb_algo wrr\n    lb_kind NAT\n    protocol TCP\n", i>>8, i&255)
		for j := range 5 {
			n := i*5 + j + 1
			fmt.Fprintf(&sb, "    real_server 10.200.%d.%d 8080 {\n        weight %d\n    }\n", n>>8, n&255, j%3+1)
		}
		sb.WriteString("}\n")
	}
	data := []byte(sb.String())
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		cfg, probs, err := Parse("bench.conf", data, b.TempDir(), Options{})
		if err != nil || len(probs) != 0 || len(cfg.GetVirtualServers()) != 10000 {
			b.Fatal(err, probs)
		}
	}
}
