package config

import (
	"fmt"
	"testing"
)

func TestDiffTrackAndNotifyInPlace(t *testing.T) {
	const head = "name: n1\ntrackers: [{name: a, interface: {name: eth1}}, {name: b, file: {path: /run/b}}]\ninstances:\n"
	running := resolveInstances(t, head+`
  - {name: track, interface: eth0, vrid: 1, vips: [10.0.0.1], track: [{tracker: a}]}
  - {name: notify, interface: eth0, vrid: 2, vips: [10.0.0.2]}
  - {name: both, interface: eth0, vrid: 3, vips: [10.0.0.3], notify: {master: [/bin/m]}}
`)
	desired := resolveInstances(t, head+`
  - {name: track, interface: eth0, vrid: 1, vips: [10.0.0.1], track: [{tracker: a, weight: -10}, {tracker: b}]}
  - {name: notify, interface: eth0, vrid: 2, vips: [10.0.0.2], notify: {any: [/bin/n]}}
  - {name: both, interface: eth0, vrid: 3, vips: [10.0.0.3, 10.0.0.33], track: [{tracker: b}]}
`)
	p := Diff(running, desired)
	got := fmt.Sprintf("%+v", p.Changed)
	want := "[{Name:both Fields:[vips track notify] Restart:true} {Name:notify Fields:[notify] Restart:false} {Name:track Fields:[track] Restart:false}]"
	if got != want {
		t.Fatalf("changes\n got  %s\n want %s", got, want)
	}
}
