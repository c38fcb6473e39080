package main

// chaos: the VRRP floods (attacks 1 to 5), sent by c1 with a raw socket
// (IP_HDRINCL) to 224.0.0.18, as fast as it can, for --duration or
// --max-packets.

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/haa-dev/haa/node/vrrp"
)

// advertV3 is a well-formed advert of the v3 instance from the attacker
// with priority prio.
func advertV3(vrid, prio uint8, addrs ...netip.Addr) vrrp.Advert {
	return vrrp.Advert{Version: 3, VRID: vrid, Priority: prio, Interval: chaosIntervalV3, Addrs: addrs}
}

// advertV2 is a well-formed VRRPv2 advert with PASS authentication
// (password pass; empty: auth type none).
func advertV2(vrid, prio uint8, pass string, addrs ...netip.Addr) vrrp.Advert {
	a := vrrp.Advert{Version: 2, VRID: vrid, Priority: prio, Interval: chaosIntervalV2, Addrs: addrs, AuthType: vrrp.AuthNone}
	if pass != "" {
		a.AuthType = vrrp.AuthSimple
		copy(a.AuthData[:], pass)
	}
	return a
}

// packet is an IPv4 packet from src to the VRRP group carrying payload.
func packet(src netip.Addr, ttl uint8, payload []byte) []byte {
	return vrrp.AppendIPv4(nil, vrrp.IPv4Header{TOS: vrrp.TOSInternetControl, TTL: ttl, Protocol: vrrp.Protocol,
		Src: src, Dst: vrrp.GroupV4}, payload)
}

// marshalAdvert encodes a from src to the group; the adverts built here
// are all valid.
func marshalAdvert(a vrrp.Advert, src netip.Addr) []byte {
	b, err := a.Marshal(src, vrrp.GroupV4, vrrp.ChecksumRFC)
	if err != nil {
		panic(fmt.Sprintf("chaos: advert %+v: %v", a, err))
	}
	return b
}

// malformedPackets: attack 1. Adverts that would win (priority 254) but
// are truncated, carry a bad checksum, or arrive with TTL 254.
func (x *chaosLab) malformedPackets() [][]byte {
	src := x.attacker.Addr
	good := marshalAdvert(advertV3(chaosVRIDv3, 254, chaosVIP3), src)
	bad := append([]byte(nil), good...)
	bad[6] ^= 0xff
	return [][]byte{
		packet(src, 255, good[:6]),
		packet(src, 255, bad),
		packet(src, 254, good),
	}
}

// wrongVersionPackets: attack 2. Well-formed VRRPv2 adverts (no auth,
// priority 254) for the vrid of the v3 instance.
func (x *chaosLab) wrongVersionPackets() [][]byte {
	src := x.attacker.Addr
	return [][]byte{packet(src, 255, marshalAdvert(advertV2(chaosVRIDv3, 254, "", chaosVIP3), src))}
}

// mismatchPackets: attack 3. The right vrid with the wrong password, no
// authentication at a PASS instance, and the wrong address list (with the
// right password for v2), all priority 254.
func (x *chaosLab) mismatchPackets() [][]byte {
	src := x.attacker.Addr
	return [][]byte{
		packet(src, 255, marshalAdvert(advertV2(chaosVRIDv2, 254, "wrongpw!", chaosVIP2), src)),
		packet(src, 255, marshalAdvert(advertV2(chaosVRIDv2, 254, "", chaosVIP2), src)),
		packet(src, 255, marshalAdvert(advertV2(chaosVRIDv2, 254, chaosPass, chaosForeign), src)),
		packet(src, 255, marshalAdvert(advertV3(chaosVRIDv3, 254, chaosForeign), src)),
	}
}

// priorityPackets: attack 4. Legitimate adverts of both instances (the
// right version, password and addresses) with priority prio.
func (x *chaosLab) priorityPackets(prio uint8) [][]byte {
	src := x.attacker.Addr
	return [][]byte{
		packet(src, 255, marshalAdvert(advertV3(chaosVRIDv3, prio, chaosVIP3), src)),
		packet(src, 255, marshalAdvert(advertV2(chaosVRIDv2, prio, chaosPass, chaosVIP2), src)),
	}
}

// unknownVRIDPackets: attack 5. A well-formed v3 advert for every vrid the
// nodes do not run.
func (x *chaosLab) unknownVRIDPackets() [][]byte {
	src := x.attacker.Addr
	var out [][]byte
	for vrid := 1; vrid <= 255; vrid++ {
		if vrid == chaosVRIDv3 || vrid == chaosVRIDv2 {
			continue
		}
		out = append(out, packet(src, 255, marshalAdvert(advertV3(uint8(vrid), 254, chaosVIP3), src)))
	}
	return out
}

// floodResult is what a flood achieved.
type floodResult struct {
	sent, errs uint64
	firstErr   error
	elapsed    time.Duration
}

// flood sends pkts round robin from the attacker and records the rate.
func (x *chaosLab) flood(r *chaosRow, pkts [][]byte) error {
	res, err := sendFlood(x.attacker.Do, x.attacker.Iface, pkts, x.o.duration, x.o.maxPackets, x.ctx.Done())
	r.Duration = res.elapsed
	if res.elapsed > 0 {
		r.Rate = fmt.Sprintf("%s pkt/s", si(float64(res.sent)/res.elapsed.Seconds()))
	}
	note := fmt.Sprintf("c1 sent %d packets (%d kinds, round robin) in %.1f s", res.sent, len(pkts), res.elapsed.Seconds())
	if res.errs > 0 {
		note += fmt.Sprintf("; %d sends failed (first: %v)", res.errs, res.firstErr)
	}
	r.Notes = append(r.Notes, note)
	return err
}

// sendFlood opens a raw IPv4 socket (IPPROTO_RAW implies IP_HDRINCL) bound
// to iface through do (which runs it in the attacker's namespace) and sends
// pkts round robin to the VRRP group as fast as it can, until d has passed,
// max packets are sent, or stop is closed. A failed send (ENOBUFS: the
// queue is full) is counted and retried with the next packet.
func sendFlood(do func(func() error) error, iface string, pkts [][]byte, d time.Duration, max int, stop <-chan struct{}) (floodResult, error) {
	var res floodResult
	if len(pkts) == 0 {
		return res, errors.New("no packet to send")
	}
	var fd int
	err := do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		if err := unix.BindToDevice(fd, iface); err != nil {
			unix.Close(fd)
			return err
		}
		// No copy for the attacker's own namespace: its wire watch sees
		// the nodes' adverts only.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("raw socket: %w", err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrInet4{Addr: vrrp.GroupV4.As4()}
	t0 := time.Now()
	deadline := t0.Add(d)
	for i := 0; res.sent < uint64(max); i++ {
		if i%256 == 0 {
			select {
			case <-stop:
				res.elapsed = time.Since(t0)
				return res, errors.New("interrupted")
			default:
			}
			if time.Now().After(deadline) {
				break
			}
		}
		if err := unix.Sendto(fd, pkts[i%len(pkts)], 0, to); err != nil {
			res.errs++
			if res.firstErr == nil {
				res.firstErr = err
			}
			if !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EAGAIN) && res.errs > 1000 && res.sent == 0 {
				res.elapsed = time.Since(t0)
				return res, fmt.Errorf("sending: %w", err)
			}
			runtime.Gosched()
			continue
		}
		res.sent++
	}
	res.elapsed = time.Since(t0)
	return res, nil
}

// si formats v with a k or M suffix.
func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}
