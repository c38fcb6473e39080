package vrrp

import (
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

func addr4(last byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 77, 0, last}) }

// A unicast instance's peers change in place: a node that joins hears
// the master from its first advert on (no takeover of its own), one that
// leaves stops getting adverts, and nobody changes state.
func TestRunnerSetPeersInPlace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		peers := func(p ...byte) func(*RunnerConfig) {
			return func(rc *RunnerConfig) {
				rc.Unicast = true
				for _, x := range p {
					rc.Peers = append(rc.Peers, addr4(x))
				}
			}
		}
		n1 := b.start(t, 1, 200, peers(2))
		n2 := b.start(t, 2, 100, peers(1))
		time.Sleep(time.Second)
		synctest.Wait()
		wantOneMaster(t, n1, n1, n2)
		c1, c2 := n1.r.Status().LastChange, n2.r.Status().LastChange

		// n3 joins: it knows n1 and n2, and n1 learns of it in place.
		n3 := b.start(t, 3, 50, peers(1, 2))
		n1.r.SetPeers([]netip.Addr{addr4(2), addr4(3)})
		if got := n1.r.Peers(); !slices.Equal(got, []netip.Addr{addr4(2), addr4(3)}) {
			t.Fatalf("peers %v after SetPeers", got)
		}
		time.Sleep(5 * time.Second) // many master-down intervals of n3
		synctest.Wait()
		wantOneMaster(t, n1, n1, n2, n3)
		if st := n3.r.Status(); st.State != Backup || st.LastFrom != Init {
			t.Fatalf("n3 is %v (last change from %v): it should have followed n1 from the start", st.State, st.LastFrom)
		}
		if n1.r.Status().LastChange != c1 || n2.r.Status().LastChange != c2 {
			t.Fatal("a peer joining made n1 or n2 change state")
		}

		// n3 leaves: n1 stops sending to it; its adverts to n3 stop.
		n1.r.SetPeers([]netip.Addr{addr4(2)})
		sent := n1.r.Stats().AdvertsSent.Load()
		time.Sleep(time.Second)
		synctest.Wait()
		if got := n1.r.Stats().AdvertsSent.Load() - sent; got < 9 || got > 11 {
			t.Fatalf("n1 sent %d adverts in 1 s at 100 ms to one peer, want about 10", got)
		}
		if n1.r.Status().LastChange != c1 || n2.r.Status().LastChange != c2 {
			t.Fatal("a peer leaving made n1 or n2 change state")
		}
	})
}

// A unicast instance with no peer yet (the fleet's first node) sends
// nothing and becomes master; SetPeers on a multicast instance does
// nothing.
func TestRunnerUnicastWithoutPeers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		n1 := b.start(t, 1, 100, func(rc *RunnerConfig) { rc.Unicast = true })
		n2 := b.start(t, 2, 90, nil)
		time.Sleep(time.Second)
		synctest.Wait()
		if n1.r.Status().State != Master || n1.r.Stats().AdvertsSent.Load() != 0 {
			t.Fatalf("n1 is %v and sent %d adverts, want master sending none", n1.r.Status().State, n1.r.Stats().AdvertsSent.Load())
		}
		n2.r.SetPeers([]netip.Addr{addr4(1)})
		if got := n2.r.Peers(); len(got) != 0 {
			t.Fatalf("a multicast instance took peers %v", got)
		}
	})
}
