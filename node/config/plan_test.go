package config

import (
	"fmt"
	"testing"
)

func resolveInstances(t *testing.T, yaml string) []Instance {
	t.Helper()
	cfg, err := Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Resolve(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a.Instances
}

func TestDiff(t *testing.T) {
	running := resolveInstances(t, `
name: n1
instances:
  - {name: keep, interface: eth0, vrid: 1, vips: [10.0.0.1]}
  - {name: prio, interface: eth0, vrid: 2, priority: 100, vips: [10.0.0.2]}
  - {name: vips, interface: eth0, vrid: 3, vips: [10.0.0.3]}
  - {name: owner, interface: eth0, vrid: 4, priority: 100, vips: [10.0.0.4]}
  - {name: gone, interface: eth0, vrid: 5, vips: [10.0.0.5]}
`)
	desired := resolveInstances(t, `
name: n1
instances:
  - {name: keep, interface: eth0, vrid: 1, vips: [10.0.0.1]}
  - {name: prio, interface: eth0, vrid: 2, priority: 150, preempt: false, garp: {repeat: 2}, vips: [10.0.0.2]}
  - {name: vips, interface: eth0, vrid: 3, vips: [10.0.0.3, 10.0.0.33]}
  - {name: owner, interface: eth0, vrid: 4, priority: 255, vips: [10.0.0.4]}
  - {name: new, interface: eth0, vrid: 6, vips: [10.0.0.6]}
`)
	p := Diff(running, desired)
	got := fmt.Sprintf("%v %v %v %+v", p.Added, p.Removed, p.Unchanged, p.Changed)
	want := "[new] [gone] [keep] [{Name:owner Fields:[priority] Restart:true} {Name:prio Fields:[priority preempt garp] Restart:false} {Name:vips Fields:[vips] Restart:true}]"
	if got != want {
		t.Fatalf("plan\n got  %s\n want %s", got, want)
	}
	if p.Empty() || !Diff(running, running).Empty() {
		t.Fatal("Empty is wrong")
	}
}
