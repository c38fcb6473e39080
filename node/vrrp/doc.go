// Package vrrp is the protocol: VRRP v2 and v3 adverts on the wire (Advert,
// ParseAdvert, the IPv4 header around them), the state machine of RFC 3768
// and RFC 5798 as a pure function of events and time (Instance.Step: no
// sockets, no clock, same input, same output), the Runner that drives one
// Instance from a single goroutine (adverts in, timers, control events;
// actions out through the narrow Sender, Addresses and Announcer
// interfaces) and Iface, which hands each packet of an interface to its
// instance by VRID after the checks that need no instance state.
//
// It makes no kernel call itself: the raw socket and the timerfd timer are
// package host's, given to the runner as a Sender, a Reader and a Timer.
// Readers of an instance's state (Runner.Status, Runner.Watch, Stats)
// never wait for its goroutine.
package vrrp
