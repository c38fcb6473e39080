package main

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
)

// keepalived 2.2.7 and haad in one IPv6 virtual router (VRRPv3 over
// IPv6: link-local sources, ff02::12), with and without a virtual MAC
// (use_vmac), each side master in turn.

type v6Variant struct {
	name string
	vmac bool
}

var v6Variants = []v6Variant{{"plain", false}, {"vmac", true}}

func (v v6Variant) haad(prio int) instance {
	extra := ""
	if v.vmac {
		extra = "    vmac: {}\n"
	}
	return v6(prio, extra)
}

func (v v6Variant) keepalived(n *lab.Node, prio int) string {
	vmac := ""
	if v.vmac {
		vmac = "  use_vmac\n"
	}
	return fmt.Sprintf(`global_defs {
  router_id %s
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority %d
  advert_int 0.1
%s  virtual_ipaddress {
    %s/64
    %s/64
  }
}
`, n.Name, prio, vmac, vip6ll, vip6)
}

const masterDown6 = 3*100*time.Millisecond + 100*time.Millisecond*156/256

func TestInteropIPv6HaadMaster(t *testing.T) {
	t.Parallel()
	for _, v := range v6Variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			requireKeepalived(t)
			c := newCluster(t, 2)
			hn, kn := c.lab.Nodes[0], c.lab.Nodes[1]
			c.start(hn, v.haad(200))
			c.waitActive(vip6, hn, 5*time.Second)
			ka := c.startKeepalived(kn, v.keepalived(kn, 100))
			ka.waitLog("(VI_1) Entering BACKUP STATE", 5*time.Second)
			c.stableActive(vip6, hn, masterDown6+time.Second)
			ka.noLog("Entering MASTER STATE")
			ka.noLog(kaComplaints...)
			c.wantStatus(hn, "MASTER", nil)
			if v.vmac {
				c.wantVMAC(hn, vip6, "00:00:5e:00:02:33")
			}

			ka.markLog()
			fo, err := c.lab.MeasureTakeover(c.lab.Clients[0], vip6, hn, func() error { return lab.PowerOff(hn, c.procs[hn]) }, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if fo.NewMaster != kn {
				t.Fatalf("new master %s, want keepalived's %s", fo.NewMaster.Name, kn.Name)
			}
			t.Logf("%s: haad powered off: keepalived took over, ping -6 outage %v (master-down interval %v)", v.name, fo.Outage, masterDown6)
			ka.waitLog("(VI_1) Entering MASTER STATE", 5*time.Second)

			ka.markLog()
			if err := hn.PowerOn(); err != nil {
				t.Fatal(err)
			}
			c.start(hn, v.haad(200))
			c.waitActive(vip6, hn, 5*time.Second)
			ka.waitLog("(VI_1) Entering BACKUP STATE", 5*time.Second)
			ka.wantLog(fmt.Sprintf("(VI_1) Master received advert from %s with higher priority 200, ours 100", hn.LinkLocal))
			c.stableActive(vip6, hn, 800*time.Millisecond)
			ka.noLog(kaComplaints...)
			if st := c.wantStatus(hn, "MASTER", nil); st.AdvertsReceived == 0 {
				t.Fatalf("haad %+v never heard keepalived's adverts", st)
			}
		})
	}
}

func TestInteropIPv6KeepalivedMaster(t *testing.T) {
	t.Parallel()
	for _, v := range v6Variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			requireKeepalived(t)
			c := newCluster(t, 2)
			hn, kn := c.lab.Nodes[0], c.lab.Nodes[1]
			ka := c.startKeepalived(kn, v.keepalived(kn, 200))
			c.waitActive(vip6, kn, 5*time.Second)
			c.start(hn, v.haad(100))
			c.stableActive(vip6, kn, masterDown6+time.Second)
			st := c.wantStatus(hn, "BACKUP", nil)
			if st.Master != kn.LinkLocal.String() || st.Transitions != 1 {
				t.Fatalf("haad backup %+v: want one transition, following %s", st, kn.LinkLocal)
			}
			ka.noLog(kaComplaints...)

			fo, err := c.lab.MeasureTakeover(c.lab.Clients[0], vip6, kn, func() error { return lab.PowerOff(kn, ka.proc) }, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if fo.NewMaster != hn {
				t.Fatalf("new master %s, want haad's %s", fo.NewMaster.Name, hn.Name)
			}
			t.Logf("%s: keepalived powered off: haad took over, ping -6 outage %v (master-down interval %v)", v.name, fo.Outage, masterDown6)

			if err := kn.PowerOn(); err != nil {
				t.Fatal(err)
			}
			ka.restart(v.keepalived(kn, 200))
			c.waitActive(vip6, kn, 5*time.Second)
			c.stableActive(vip6, kn, 800*time.Millisecond)
			if st := c.wantStatus(hn, "BACKUP", nil); st.LastCause != "higher_priority_advert" {
				t.Fatalf("haad %+v: want backup by higher_priority_advert", st)
			}
			ka.noLog(kaComplaints...)
		})
	}
}

// wantVMAC asserts that n holds a on its virtual MAC interface vrrp.51
// and that the client, pinging a, reaches it at mac.
func (c *cluster) wantVMAC(n *lab.Node, a netip.Addr, mac string) {
	c.t.Helper()
	if link, err := n.ActiveLink(a); err != nil || link != "vrrp.51" {
		c.t.Fatalf("%s holds %s on %q (%v), want the virtual MAC interface vrrp.51", n.Name, a, link, err)
	}
	cl := c.lab.Clients[0]
	p, err := cl.StartPing(a, 5*time.Millisecond, 5*time.Second)
	if err != nil {
		c.t.Fatal(err)
	}
	err = p.WaitReplies(20, 3*time.Second)
	p.Stop()
	if err != nil {
		c.t.Fatal(err)
	}
	got, err := cl.Neigh(a)
	if err != nil || got.String() != mac {
		c.t.Fatalf("the client reaches %s at %v (%v), want the virtual MAC %s", a, got, err, mac)
	}
}
