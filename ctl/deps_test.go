package ctl_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// forbidden are the kernel libraries, and haa's own packages that use them,
// that the client side must not depend on: ctl and haactl run anywhere and
// depend on the schema and pure validation only. A package is forbidden
// with the packages under it.
var forbidden = []string{
	"github.com/google/nftables",
	"github.com/moby/ipvs",
	"github.com/vishvananda/netlink",
	"github.com/vishvananda/netns",
	"github.com/mdlayher/arp",
	"github.com/miekg/dns",
	"golang.org/x/net/icmp",
	"github.com/haa-dev/haa/node/host",
	"github.com/haa-dev/haa/node/lvs/nft",
	"github.com/haa-dev/haa/node/lvs/ipvs",
	"github.com/haa-dev/haa/node/garp",
	// The programs that run checks and trackers: validation needs their
	// types only.
	"github.com/haa-dev/haa/node/check/probe",
	"github.com/haa-dev/haa/node/track/checkers",
	"github.com/haa-dev/haa/node/script",
}

func TestNoKernelDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go") // go test puts its own first in PATH
	if err != nil {
		t.Skipf("no go tool: %v", err)
	}
	for _, root := range []string{"github.com/haa-dev/haa/ctl", "github.com/haa-dev/haa/cmd/haactl"} {
		t.Run(root, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, goTool, "list", "-deps", "-f", `{{.ImportPath}} {{join .Imports " "}}`, root)
			// The Linux build, where the kernel libraries are real, wherever
			// the test runs.
			cmd.Env = append(os.Environ(), "GOOS=linux")
			out, err := cmd.Output()
			if err != nil {
				var stderr []byte
				if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
					stderr = ee.Stderr
				}
				t.Fatalf("go list -deps %s: %v\n%s", root, err, stderr)
			}
			imports := map[string][]string{}
			var deps []string
			for line := range strings.Lines(string(out)) {
				f := strings.Fields(line)
				if len(f) == 0 {
					continue
				}
				imports[f[0]] = f[1:]
				deps = append(deps, f[0])
			}
			if !slices.Contains(deps, root) {
				t.Fatalf("go list -deps %s does not list it:\n%s", root, out)
			}
			// One error per forbidden library, with the shortest way in.
			for _, f := range forbidden {
				var way []string
				n := 0
				for _, dep := range deps {
					if dep != f && !strings.HasPrefix(dep, f+"/") {
						continue
					}
					n++
					if p := importPath(imports, root, dep); way == nil || len(p) < len(way) {
						way = p
					}
				}
				if n > 0 {
					t.Errorf("%s depends on %s (%d of its packages), through %s", root, f, n, strings.Join(way, " -> "))
				}
			}
		})
	}
}

// importPath is a shortest chain of imports from root to dep.
func importPath(imports map[string][]string, root, dep string) []string {
	from := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == dep {
			var path []string
			for ; p != ""; p = from[p] {
				path = append(path, p)
			}
			slices.Reverse(path)
			return path
		}
		for _, q := range imports[p] {
			if _, seen := from[q]; !seen {
				from[q] = p
				queue = append(queue, q)
			}
		}
	}
	return []string{root, "?", dep}
}
