package balancer

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haa-dev/haa/deploy/lab"
	"github.com/haa-dev/haa/node/lvs"
	"github.com/vishvananda/netns"
)

// fakeIPVS stands in for the IPVS backend.
type fakeIPVS struct {
	lvs.Backend
}

func (*fakeIPVS) Name() string { return "ipvs" }
func (*fakeIPVS) Close() error { return nil }

func TestChoose(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "ip_vs")
	if err := os.WriteFile(present, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	k := linuxKernel
	k.loadIPVS = func() {} // never load a module on the host from a test
	k.newIPVS = func(string, *slog.Logger) (lvs.Backend, error) { return &fakeIPVS{}, nil }

	// Without root the nftables cases cannot open the backend; in a
	// namespace they can.
	nsOpts := func(t *testing.T) []ChooseOption {
		lab.Require(t)
		ns, err := lab.NewNS(lab.UniqueName("lvsch"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ns.Close() })
		h, err := netns.GetFromName(ns.Name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Close() })
		return []ChooseOption{WithNetNS(int(h))}
	}

	tests := []struct {
		name      string
		requested string
		proc      string
		nft       bool // needs a namespace
		want      string
		reason    string
		err       string
	}{
		{"auto with IPVS", "auto", present, false, "ipvs", "the kernel has IPVS (" + present + ")", ""},
		{"empty is auto", "", present, false, "ipvs", "the kernel has IPVS (" + present + ")", ""},
		{"auto without IPVS", "auto", missing, true, "nftables", "the kernel has no IPVS (" + missing + " missing): using nftables DNAT", ""},
		{"empty without IPVS", "", missing, true, "nftables", "the kernel has no IPVS (" + missing + " missing): using nftables DNAT", ""},
		{"ipvs configured", "ipvs", present, false, "ipvs", "configured", ""},
		{"ipvs without IPVS", "ipvs", missing, false, "", "", "load the ip_vs module (modprobe ip_vs) or set loadBalancer.backend: nftables"},
		{"nftables configured", "nftables", present, true, "nftables", "configured", ""},
		{"unknown", "lvs", present, false, "", "", `unknown load-balancing backend "lvs"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k.procIPVS = tt.proc
			var opts []ChooseOption
			if tt.nft {
				opts = nsOpts(t)
			}
			b, reason, err := k.choose(tt.requested, opts...)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				if b != nil {
					t.Fatalf("backend %v with an error", b)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if b.Name() != tt.want || reason != tt.reason {
				t.Fatalf("got %s, %q; want %s, %q", b.Name(), reason, tt.want, tt.reason)
			}
			if tt.want == "nftables" {
				if _, err := b.Read(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestChooseIPVSNetNS: WithNetNS points the IPVS backend at the same
// namespace, through /proc/self/fd.
func TestChooseIPVSNetNS(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "ip_vs")
	if err := os.WriteFile(present, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	k := linuxKernel
	k.loadIPVS = func() {} // never load a module on the host from a test
	k.procIPVS = present
	var got string
	k.newIPVS = func(netns string, _ *slog.Logger) (lvs.Backend, error) {
		got = netns
		return nil, errors.New("no IPVS here")
	}
	b, _, err := k.choose("auto", WithNetNS(7))
	if err == nil || b != nil {
		t.Fatalf("Choose = %v, %v; want the IPVS error", b, err)
	}
	if got != "/proc/self/fd/7" {
		t.Fatalf("IPVS namespace %q", got)
	}
}
