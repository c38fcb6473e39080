package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/haa-dev/haa/deploy/lab"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// use_vmac for IPv4 (RFC 5798 7.3): the VIP lives on macvlan vrrp.51
// with 00:00:5e:00:01:33; on takeover the client's ARP entry already
// points at the right MAC (only the switch learns the new port from the
// new master's first advert). haad removes the interface and puts the
// parent's ARP sysctls back when it stops.
func TestVMACFailoverKeepsClientsARP(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2)
	n1, n2 := c.lab.Nodes[0], c.lab.Nodes[1]
	in := func(prio int) instance { return instance{name: "VI_1", vrid: 51, prio: prio, extra: "    vmac: {}\n"} }
	c.start(n1, in(200))
	c.start(n2, in(100))
	c.waitActive(vip, n1, 5*time.Second)
	c.stableActive(vip, n1, 500*time.Millisecond)
	for _, n := range []*lab.Node{n1, n2} {
		if v, err := n.ReadSysctl("net/ipv4/conf/eth0/arp_ignore"); err != nil || v != "1" {
			t.Errorf("%s: eth0 arp_ignore %q (%v), want 1 while it has a virtual MAC", n.Name, v, err)
		}
		if v, err := n.ReadSysctl("net/ipv4/conf/vrrp.51/arp_ignore"); err != nil || v != "1" {
			t.Errorf("%s: vrrp.51 arp_ignore %q (%v), want 1", n.Name, v, err)
		}
	}
	const mac = "00:00:5e:00:01:33"
	c.wantVMAC(n1, vip, mac)
	r, err := c.api(n1).GetInstance(context.Background(), &haav1.GetInstanceRequest{Name: "VI_1"})
	if in := r.GetInstance(); err != nil || in.GetVmacInterface() != "vrrp.51" || in.GetVmacAddress() != mac || in.GetFamily() != "ipv4" {
		t.Fatalf("the API shows %v (%v), want family ipv4 and the virtual MAC interface vrrp.51 with %s", in, err, mac)
	}

	fo, err := c.lab.MeasureTakeover(c.lab.Clients[0], vip, n1, func() error { return lab.PowerOff(n1, c.procs[n1]) }, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if fo.NewMaster != n2 {
		t.Fatalf("new master %s, want n2", fo.NewMaster.Name)
	}
	t.Logf("VMAC takeover: outage %v, VIP on n2 after %v", fo.Outage, fo.Took)
	c.wantVMAC(n2, vip, mac)

	if err := c.procs[n2].Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if link, err := n2.ActiveLink(vip); err != nil || link != "" {
		t.Fatalf("stopped haad left %s on %q (%v)", vip, link, err)
	}
	if out, err := n2.Output("ip", "link", "show", "vrrp.51"); err == nil {
		t.Fatalf("stopped haad left its virtual MAC interface:\n%s", out)
	}
	if v, err := n2.ReadSysctl("net/ipv4/conf/eth0/arp_ignore"); err != nil || v != "0" {
		t.Errorf("after stop eth0 arp_ignore %q (%v), want 0 as before", v, err)
	}
}

// haad and keepalived, both with use_vmac over IPv4, each master in turn.
func TestInteropVMACIPv4(t *testing.T) {
	t.Parallel()
	requireKeepalived(t)
	c := newCluster(t, 2)
	hn, kn := c.lab.Nodes[0], c.lab.Nodes[1]
	conf := func(prio int) string {
		return fmt.Sprintf(`global_defs {
  router_id %s
  vrrp_version 3
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority %d
  advert_int 0.1
  use_vmac
  virtual_ipaddress {
    %s/24
  }
}
`, kn.Name, prio, vip)
	}
	c.start(hn, instance{name: "VI_1", vrid: 51, prio: 200, extra: "    vmac: {}\n"})
	c.waitActive(vip, hn, 5*time.Second)
	ka := c.startKeepalived(kn, conf(100))
	ka.waitLog("(VI_1) Entering BACKUP STATE", 5*time.Second)
	c.stableActive(vip, hn, masterDown6+time.Second)
	ka.noLog("Entering MASTER STATE")
	ka.noLog(kaComplaints...)
	c.wantVMAC(hn, vip, "00:00:5e:00:01:33")

	fo, err := c.lab.MeasureTakeover(c.lab.Clients[0], vip, hn, func() error { return lab.PowerOff(hn, c.procs[hn]) }, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if fo.NewMaster != kn {
		t.Fatalf("new master %s, want keepalived's", fo.NewMaster.Name)
	}
	t.Logf("haad powered off: keepalived (use_vmac) took over, outage %v", fo.Outage)
	if err := hn.PowerOn(); err != nil {
		t.Fatal(err)
	}
	ka.markLog()
	c.start(hn, instance{name: "VI_1", vrid: 51, prio: 200, extra: "    vmac: {}\n"})
	c.waitActive(vip, hn, 5*time.Second)
	ka.waitLog("(VI_1) Entering BACKUP STATE", 5*time.Second)
	c.stableActive(vip, hn, 800*time.Millisecond)
	ka.noLog(kaComplaints...)
}

// A backup's virtual MAC interface stays quiet: no frame leaves the node
// with the virtual MAC (no IGMP or MLD report, no router solicitation),
// or the switch would move the virtual MAC to the backup's port. IPv4
// and IPv6.
func TestVMACBackupSendsNothing(t *testing.T) {
	t.Parallel()
	for _, fam := range []struct {
		name string
		in   func(prio int) instance
		mac  string
	}{
		{"ipv4", func(prio int) instance { return instance{name: "VI_1", vrid: 51, prio: prio, extra: "    vmac: {}\n"} }, "00:00:5e:00:01:33"},
		{"ipv6", func(prio int) instance { return v6(prio, "    vmac: {}\n") }, "00:00:5e:00:02:33"},
	} {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			c := newCluster(t, 2)
			n1, n2 := c.lab.Nodes[0], c.lab.Nodes[1]
			c.start(n1, fam.in(200))
			c.waitActive(map[string]netip.Addr{"ipv4": vip, "ipv6": vip6}[fam.name], n1, 5*time.Second)
			// Capture what leaves n2 with the virtual MAC while its
			// haad starts, joins the group and settles as backup.
			dump := n2.Command("timeout", "4", "tcpdump", "-i", "eth0", "-Q", "out", "-nn", "-e", "-l", "ether src "+fam.mac)
			var out strings.Builder
			dump.Stdout, dump.Stderr = &out, io.Discard
			if err := dump.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond) // tcpdump listening
			c.start(n2, fam.in(100))
			_ = dump.Wait() // ends by timeout
			c.wantStatus(n2, "BACKUP", nil)
			if s := strings.TrimSpace(out.String()); s != "" {
				t.Fatalf("the backup sent frames with the virtual MAC %s:\n%s", fam.mac, s)
			}
		})
	}
}
