package ipvs

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/haa-dev/haa/node/lvs"
	"github.com/haa-dev/haa/node/lvs/lvstest"
	"github.com/moby/ipvs"
	"golang.org/x/sys/unix"
)

// TestWriterEncoding: a batch is a run of whole netlink messages, each
// a request asking for an acknowledgement, with increasing sequence
// numbers, carrying the service and destination attributes the kernel
// parses (ip_vs_genl_parse_service, ip_vs_genl_parse_dest).
func TestWriterEncoding(t *testing.T) {
	w := &writer{family: 0x1c}
	svc := &ipvs.Service{AddressFamily: unix.AF_INET, Protocol: unix.IPPROTO_TCP, Address: net.ParseIP("10.1.2.3"), Port: 80,
		SchedName: "wrr", Flags: ipvsSvcPersistent, Timeout: 300, Netmask: 0xffffff00}
	mark := &ipvs.Service{AddressFamily: unix.AF_INET6, FWMark: 7, SchedName: "sh", Netmask: 128}
	dest := &ipvs.Destination{Address: net.ParseIP("fd00::11"), Port: 8080, Weight: 3, ConnectionFlags: ipvs.ConnectionFlagDirectRoute,
		UpperThreshold: 100, LowerThreshold: 10, AddressFamily: unix.AF_INET6}
	w.encode(cmd{cmd: ipvsCmdNewService, svc: svc})
	w.encode(cmd{cmd: ipvsCmdNewDest, svc: mark, dest: dest})
	msgs, err := syscall.ParseNetlinkMessage(w.buf)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("%d messages, %v", len(msgs), err)
	}
	for i, m := range msgs {
		if m.Header.Type != 0x1c || m.Header.Flags != unix.NLM_F_REQUEST|unix.NLM_F_ACK || m.Header.Seq != uint32(i+1) {
			t.Errorf("message %d: header %+v", i, m.Header)
		}
	}
	if msgs[0].Data[0] != ipvsCmdNewService || msgs[1].Data[0] != ipvsCmdNewDest || msgs[0].Data[1] != ipvsGenlVersion {
		t.Errorf("genetlink headers %x, %x", msgs[0].Data[:4], msgs[1].Data[:4])
	}
	attrs := func(b []byte, nested uint16) map[uint16][]byte {
		out := map[uint16][]byte{}
		walkAttrs(b, func(typ uint16, v []byte) {
			if typ == nested {
				walkAttrs(v, func(typ uint16, v []byte) { out[typ] = v })
			}
		})
		return out
	}
	s := attrs(msgs[0].Data[unix.GENL_HDRLEN:], ipvsCmdAttrService)
	if binary.NativeEndian.Uint16(s[ipvsSvcAttrAF]) != unix.AF_INET || binary.NativeEndian.Uint16(s[ipvsSvcAttrProtocol]) != unix.IPPROTO_TCP ||
		net.IP(s[ipvsSvcAttrAddr]).String() != "10.1.2.3" || binary.BigEndian.Uint16(s[ipvsSvcAttrPort]) != 80 ||
		string(s[ipvsSvcAttrSchedName]) != "wrr\x00" || binary.NativeEndian.Uint32(s[ipvsSvcAttrFlags]) != ipvsSvcPersistent ||
		binary.NativeEndian.Uint32(s[ipvsSvcAttrFlags][4:]) != 0xFFFFFFFF || binary.NativeEndian.Uint32(s[ipvsSvcAttrTimeout]) != 300 ||
		binary.NativeEndian.Uint32(s[ipvsSvcAttrNetmask]) != 0xffffff00 || s[ipvsSvcAttrFWMark] != nil {
		t.Errorf("service attributes %v", s)
	}
	m := attrs(msgs[1].Data[unix.GENL_HDRLEN:], ipvsCmdAttrService)
	if binary.NativeEndian.Uint32(m[ipvsSvcAttrFWMark]) != 7 || m[ipvsSvcAttrAddr] != nil || m[ipvsSvcAttrPort] != nil ||
		binary.NativeEndian.Uint16(m[ipvsSvcAttrAF]) != unix.AF_INET6 {
		t.Errorf("fwmark service attributes %v", m)
	}
	d := attrs(msgs[1].Data[unix.GENL_HDRLEN:], ipvsCmdAttrDest)
	if net.IP(d[ipvsDestAttrAddr]).String() != "fd00::11" || binary.BigEndian.Uint16(d[ipvsDestAttrPort]) != 8080 ||
		binary.NativeEndian.Uint32(d[ipvsDestAttrWeight]) != 3 || binary.NativeEndian.Uint32(d[ipvsDestAttrFwdMethod]) != ipvs.ConnectionFlagDirectRoute ||
		binary.NativeEndian.Uint32(d[ipvsDestAttrUThresh]) != 100 || binary.NativeEndian.Uint32(d[ipvsDestAttrLThresh]) != 10 ||
		binary.NativeEndian.Uint16(d[ipvsDestAttrAddrAF]) != unix.AF_INET6 {
		t.Errorf("destination attributes %v", d)
	}
}

func TestAckErrno(t *testing.T) {
	ok := make([]byte, 20)
	e := -int32(unix.EEXIST)
	bad := binary.NativeEndian.AppendUint32(nil, uint32(e))
	if ackErrno(ok) != 0 || ackErrno(bad) != unix.EEXIST || ackErrno(nil) == 0 {
		t.Errorf("ackErrno: %v %v %v", ackErrno(ok), ackErrno(bad), ackErrno(nil))
	}
}

// fakeRunner carries out batches on a fake kernel, one command at a time
// in order, as the kernel does with the messages of one sendmsg; runs
// counts the batches.
type fakeRunner struct {
	fk   *fakeKernel
	runs int
}

func (r *fakeRunner) run(cmds []cmd) ([]error, error) {
	r.runs++
	errs := make([]error, len(cmds))
	for i, c := range cmds {
		switch c.cmd {
		case ipvsCmdNewService:
			errs[i] = r.fk.NewService(c.svc)
		case ipvsCmdDelService:
			errs[i] = r.fk.DelService(c.svc)
		case ipvsCmdNewDest:
			errs[i] = r.fk.NewDestination(c.svc, c.dest)
		case ipvsCmdDelDest:
			errs[i] = r.fk.DelDestination(c.svc, c.dest)
		default:
			errs[i] = fmt.Errorf("command %d is not sent in batches", c.cmd)
		}
	}
	return errs, nil
}

func (r *fakeRunner) close() error { return nil }

// TestIPVSBatchesEndAsOneByOne: a plan applied in batches leaves the
// kernel as the same plan applied one by one, including where the kernel
// refuses batched commands (a service that exists is taken over, a
// destination that exists is updated, what is gone is done), and a run of
// adds goes in one batch, not a command per round trip.
func TestIPVSBatchesEndAsOneByOne(t *testing.T) {
	ctx := context.Background()
	held := lvs.Service{Key: lvstest.TCPKey("10.0.0.1:80"), Scheduler: "rr"}
	prepare := func(fk *fakeKernel) {
		ks, _ := toIPVSService(held)
		_ = fk.NewService(ks)
		for _, d := range []lvs.Dest{ipvsDest("10.0.1.1:80", 1), ipvsDest("10.0.1.2:80", 5)} {
			kd, _ := toIPVSDest(held, d)
			_ = fk.NewDestination(ks, kd)
		}
	}
	var vss []*lvs.VirtualServer
	vss = append(vss, lvstest.VS(lvstest.TCPKey("10.0.0.1:80"), "wrr", "10.0.1.2:80=2", "10.0.1.3:80=1"))
	for i := range 50 {
		vss = append(vss, lvstest.VS(lvstest.TCPKey(fmt.Sprintf("10.0.2.%d:80", i+1)), "wrr", fmt.Sprintf("10.0.3.%d:80=1", i+1)))
	}
	desired := lvstest.StateOf(vss...)
	plan := lvs.Diff(lvs.State{}, desired) // the balancer did not know of 10.0.0.1
	gone := lvs.Plan{
		{Kind: lvs.DeleteDest, Service: held, Dest: ipvsDest("10.0.1.9:80", 1)},
		{Kind: lvs.DeleteService, Service: lvs.Service{Key: lvstest.TCPKey("10.0.0.9:80"), Scheduler: "rr"}},
		{Kind: lvs.AddDest, Service: vss[0].Service, Dest: ipvsDest("10.0.1.3:80", 4)},
	}

	var states [2]lvs.State
	for i, batched := range []bool{false, true} {
		b, fk := fakeBackend(t)
		r := &fakeRunner{fk: fk}
		if batched {
			b.w = r
		}
		prepare(fk)
		if err := b.Apply(ctx, plan); err != nil {
			t.Fatalf("batched %v: %v", batched, err)
		}
		if err := b.Apply(ctx, gone); err != nil {
			t.Fatalf("batched %v, what is gone or there: %v", batched, err)
		}
		if batched && r.runs != 2 {
			t.Errorf("%d batches for two plans", r.runs)
		}
		st, err := b.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		states[i] = st
	}
	if !states[0].Equal(states[1]) {
		t.Errorf("batched, the kernel holds\n%s\none by one\n%s", states[1], states[0])
	}
	if d := states[1][held.Key].Dests[ipvsAP("10.0.1.3:80")]; d.Weight != 4 || len(states[1]) != 51 {
		t.Errorf("batched: %d services, 10.0.1.3 %+v", len(states[1]), d)
	}
}

// TestIPVSKernelBatches: a table larger than one batch (several thousand
// commands) is programmed in batches and read back whole; a second plan
// that adds services the kernel holds already and deletes ones it does
// not takes them over and passes over the others, in one Apply.
func TestIPVSKernelBatches(t *testing.T) {
	requireIPVS(t)
	_, b := ipvsNS(t, "hipvb")
	if b.w == nil {
		t.Fatal("the backend has no batch writer")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	want := lvs.State{}
	for i := range 600 {
		k := lvs.Key{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 61, byte(i >> 8), byte(i)}), 80), Proto: lvs.TCP}
		vs := &lvs.VirtualServer{Service: lvs.Service{Key: k, Scheduler: "wrr"}, Dests: map[netip.AddrPort]lvs.DestAttrs{}}
		for j := range 3 {
			vs.Dests[netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 62, byte(i >> 6), byte(i<<2 + j)}), 8080)] = lvs.DestAttrs{Weight: j + 1}
		}
		want[k] = vs
	}
	t0 := time.Now()
	if err := b.Apply(ctx, ipvsPlanFor(want)); err != nil {
		t.Fatal(err)
	}
	t.Logf("600 services x 3 real servers (2,400 commands) in %v", time.Since(t0))
	got, err := b.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(want) {
		t.Fatalf("read back %d services, want %d", len(got), len(want))
	}
	// The same plan again: every service exists (taken over, unchanged),
	// plus deletes of what is not there.
	again := ipvsPlanFor(want)
	again = append(again, lvs.Op{Kind: lvs.DeleteService, Service: lvs.Service{Key: lvs.Key{Addr: netip.MustParseAddrPort("10.63.0.1:80"), Proto: lvs.TCP}, Scheduler: "rr"}})
	if err := b.Apply(ctx, again); err != nil {
		t.Fatalf("the plan again: %v", err)
	}
	if got, err = b.Read(ctx); err != nil || !got.Equal(want) {
		t.Fatalf("after the plan again: %d services, %v", len(got), err)
	}
}
