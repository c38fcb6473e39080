package ipvs

import (
	"context"
	"slices"
	"testing"

	"github.com/haa-dev/haa/node/lvs"
	"github.com/haa-dev/haa/node/lvs/lvstest"

	"github.com/moby/ipvs"
)

// These tests run the backend over a fake kernel (fakeKernel): what it
// sends, not what a real kernel does with it (the kernel tests).

func fakeBackend(t *testing.T) (*Backend, *fakeKernel) {
	t.Helper()
	fk := &fakeKernel{}
	b := newBackend(fk, nil)
	t.Cleanup(func() { b.Close() })
	return b, fk
}

// kernelService is the kernel's form of svc.
func kernelService(t *testing.T, svc lvs.Service) *ipvs.Service {
	t.Helper()
	s, err := toIPVSService(svc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestIPVSUpdateKeepsThresholdsItDoesNotSet: thresholds set with ipvsadm
// (haad's configuration sets none) survive a weight change, a drain and an
// enable; thresholds haad sets are what it sends.
func TestIPVSUpdateKeepsThresholdsItDoesNotSet(t *testing.T) {
	b, fk := fakeBackend(t)
	ctx := context.Background()
	svc := lvs.Service{Key: lvs.Key{Addr: ipvsAP("10.0.0.1:80"), Proto: lvs.TCP}, Scheduler: "wrr"}
	rs, own := ipvsAP("10.0.1.1:80"), ipvsAP("10.0.1.2:80")
	mine := lvs.Thresholds{Upper: 300, Lower: 200, Set: true}
	if err := b.Apply(ctx, lvs.Plan{
		{Kind: lvs.AddService, Service: svc},
		{Kind: lvs.AddDest, Service: svc, Dest: ipvsDest("10.0.1.1:80", 1)},
		{Kind: lvs.AddDest, Service: svc, Dest: lvs.Dest{Addr: own, DestAttrs: lvs.DestAttrs{Weight: 1, Thresholds: mine}}},
	}); err != nil {
		t.Fatal(err)
	}
	ks := kernelService(t, svc)
	// ipvsadm -e -t 10.0.0.1:80 -r 10.0.1.1:80 -x 100 -y 50
	fk.destOf(ks, rs).UpperThreshold, fk.destOf(ks, rs).LowerThreshold = 100, 50
	for _, w := range []int{5, 0, 1} { // weight, drain, enable
		if err := b.Apply(ctx, lvs.Plan{
			{Kind: lvs.UpdateDest, Service: svc, Dest: ipvsDest("10.0.1.1:80", w)},
			{Kind: lvs.UpdateDest, Service: svc, Dest: lvs.Dest{Addr: own, DestAttrs: lvs.DestAttrs{Weight: w, Thresholds: mine}}},
		}); err != nil {
			t.Fatal(err)
		}
		if d := fk.destOf(ks, rs); d.Weight != w || d.UpperThreshold != 100 || d.LowerThreshold != 50 {
			t.Errorf("weight %d: the kernel holds %+v, want thresholds 100/50 kept", w, d)
		}
		if d := fk.destOf(ks, own); d.Weight != w || d.UpperThreshold != 300 || d.LowerThreshold != 200 {
			t.Errorf("weight %d: haad's thresholds: the kernel holds %+v, want 300/200", w, d)
		}
	}
	// haad clears its own (lvs.Diff sends them set to 0).
	if err := b.Apply(ctx, lvs.Plan{{Kind: lvs.UpdateDest, Service: svc,
		Dest: lvs.Dest{Addr: own, DestAttrs: lvs.DestAttrs{Weight: 1, Thresholds: lvs.Thresholds{Set: true}}}}}); err != nil {
		t.Fatal(err)
	}
	if d := fk.destOf(ks, own); d.UpperThreshold != 0 || d.LowerThreshold != 0 {
		t.Errorf("cleared: the kernel holds %+v", d)
	}
}

// TestIPVSUpdateServiceKeepsWhatItDoesNotSet: a scheduler change keeps the
// scheduler flags and persistence engine set by others.
func TestIPVSUpdateServiceKeepsWhatItDoesNotSet(t *testing.T) {
	b, fk := fakeBackend(t)
	ctx := context.Background()
	svc := lvs.Service{Key: lvs.Key{Addr: ipvsAP("10.0.0.1:5060"), Proto: lvs.UDP}, Scheduler: "sh", Persistence: 60e9}
	if err := b.Apply(ctx, lvs.Plan{{Kind: lvs.AddService, Service: svc}}); err != nil {
		t.Fatal(err)
	}
	ks := kernelService(t, svc)
	const shPort = 0x0008 // IP_VS_SVC_F_SCHED_SH_PORT
	fk.find(ks).s.Flags |= shPort
	fk.find(ks).s.PEName = "sip"
	svc.Scheduler = "mh"
	if err := b.Apply(ctx, lvs.Plan{{Kind: lvs.UpdateService, Service: svc}}); err != nil {
		t.Fatal(err)
	}
	got := fk.find(ks).s
	if got.SchedName != "mh" || got.Flags&shPort == 0 || got.Flags&ipvsSvcPersistent == 0 || got.PEName != "sip" {
		t.Errorf("after the update the kernel holds %+v: want mh, flags %#x kept, persistent, pe sip", got, shPort)
	}
	// Without persistence, no persistence engine.
	svc.Persistence = 0
	if err := b.Apply(ctx, lvs.Plan{{Kind: lvs.UpdateService, Service: svc}}); err != nil {
		t.Fatal(err)
	}
	if got := fk.find(ks).s; got.Flags&ipvsSvcPersistent != 0 || got.PEName != "" || got.Flags&shPort == 0 {
		t.Errorf("without persistence the kernel holds %+v", got)
	}
}

// TestIPVSApplyTakesOverAServiceTheKernelHolds: a reload adds a virtual
// server the kernel holds already (another haad left it, or ipvsadm): the
// plan from nothing is carried out in one pass, without an error, and the
// service ends as the plan builds it, the rest of the plan done too (it
// used to stop at "file exists" until the retry).
func TestIPVSApplyTakesOverAServiceTheKernelHolds(t *testing.T) {
	b, fk := fakeBackend(t)
	ctx := context.Background()
	held := lvs.Service{Key: lvstest.TCPKey("10.0.0.1:80"), Scheduler: "rr"}
	// What was there before haad: rr, a destination to drop, one at the
	// wrong weight, thresholds set with ipvsadm on the one that stays.
	ks := kernelService(t, held)
	if err := fk.NewService(ks); err != nil {
		t.Fatal(err)
	}
	for _, d := range []lvs.Dest{ipvsDest("10.0.1.1:80", 1), ipvsDest("10.0.1.2:80", 5)} {
		kd, _ := toIPVSDest(held, d)
		if err := fk.NewDestination(ks, kd); err != nil {
			t.Fatal(err)
		}
	}
	fk.destOf(ks, ipvsAP("10.0.1.2:80")).UpperThreshold = 100
	fk.changes = nil

	desired := lvstest.StateOf(
		lvstest.VS(lvstest.TCPKey("10.0.0.1:80"), "wrr", "10.0.1.2:80=2", "10.0.1.3:80=1"),
		lvstest.VS(lvstest.TCPKey("10.0.0.2:80"), "wrr", "10.0.2.1:80=1"),
	)
	plan := lvs.Diff(lvs.State{}, desired) // the balancer did not know it
	if err := b.Apply(ctx, plan); err != nil {
		t.Fatalf("one pass: %v", err)
	}
	wantChanges := []string{
		"delete-dest 2 10.0.0.1:80/6 10.0.1.1:80",
		"update-service 2 10.0.0.1:80/6",
		"update-dest 2 10.0.0.1:80/6 10.0.1.2:80 weight 2",
		"add-dest 2 10.0.0.1:80/6 10.0.1.3:80 weight 1",
		"add-service 2 10.0.0.2:80/6",
		"add-dest 2 10.0.0.2:80/6 10.0.2.1:80 weight 1",
	}
	if !slices.Equal(fk.changes, wantChanges) {
		t.Errorf("the kernel was changed by\n%q\nwant\n%q", fk.changes, wantChanges)
	}
	got, err := b.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := desired.Clone()
	want[held.Key].Dests[ipvsAP("10.0.1.2:80")] = lvs.DestAttrs{Weight: 2, Thresholds: lvs.Thresholds{Upper: 100}}
	if !got.Equal(want) {
		t.Errorf("the kernel holds %s\nwant %s", got, want)
	}
	// Once taken over, the next plan from what is programmed is empty.
	programmed := lvs.State{}
	lvs.Apply(programmed, plan)
	if p := lvs.Diff(programmed, desired); len(p) != 0 {
		t.Errorf("plan after the takeover: %q", p.Strings())
	}
}

// TestIPVSApplyTakesTheKernelAsItIs: destinations added, updated or
// deleted behind haad's back do not stop a plan.
func TestIPVSApplyTakesTheKernelAsItIs(t *testing.T) {
	b, fk := fakeBackend(t)
	ctx := context.Background()
	svc := lvs.Service{Key: lvstest.TCPKey("10.0.0.1:80"), Scheduler: "wrr"}
	if err := b.Apply(ctx, lvs.Plan{{Kind: lvs.AddService, Service: svc},
		{Kind: lvs.AddDest, Service: svc, Dest: ipvsDest("10.0.1.1:80", 1)}}); err != nil {
		t.Fatal(err)
	}
	err := b.Apply(ctx, lvs.Plan{
		{Kind: lvs.AddDest, Service: svc, Dest: ipvsDest("10.0.1.1:80", 4)},    // exists: updated
		{Kind: lvs.UpdateDest, Service: svc, Dest: ipvsDest("10.0.1.2:80", 2)}, // missing: added
		{Kind: lvs.DeleteDest, Service: svc, Dest: ipvsDest("10.0.1.3:80", 1)}, // gone already
		{Kind: lvs.DeleteService, Service: lvs.Service{Key: lvstest.TCPKey("10.0.0.9:80"), Scheduler: "rr"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ks := kernelService(t, svc)
	if d1, d2 := fk.destOf(ks, ipvsAP("10.0.1.1:80")), fk.destOf(ks, ipvsAP("10.0.1.2:80")); d1 == nil || d1.Weight != 4 || d2 == nil || d2.Weight != 2 {
		t.Errorf("the kernel holds %+v and %+v", d1, d2)
	}
}

// TestIPVSFlushEmptiesTheWholeTable: Flush removes every service, others'
// included (keepalived's lvs_flush), and forgets the forwarding methods it
// remembered.
func TestIPVSFlushEmptiesTheWholeTable(t *testing.T) {
	b, fk := fakeBackend(t)
	ctx := context.Background()
	others := lvs.Service{Key: lvstest.TCPKey("10.0.0.9:80"), Scheduler: "rr"}
	if err := fk.NewService(kernelService(t, others)); err != nil {
		t.Fatal(err)
	}
	mine := lvs.Service{Key: lvstest.TCPKey("10.0.0.1:80"), Scheduler: "wrr", Forwarding: lvs.DirectRoute}
	if err := b.Apply(ctx, lvs.Plan{{Kind: lvs.AddService, Service: mine}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := b.Read(ctx); err != nil || len(st) != 0 || len(b.fwd) != 0 {
		t.Errorf("after Flush: %v %v, remembered %v", st, err, b.fwd)
	}
}
