package vrrp

// DropReason says why a received packet was discarded.
type DropReason int

// Drop reasons: every receive check of RFC 5798 7.1 and RFC 3768 7.1.
const (
	DropNone        DropReason = iota
	DropTTL                    // TTL / hop limit is not 255
	DropVersion                // version field is not 2 or 3, or not the instance's
	DropType                   // type is not ADVERTISEMENT
	DropTooShort               // shorter than header + addresses (+ auth)
	DropChecksum               // checksum mismatch
	DropUnknownVRID            // no instance with this VRID on the interface
	DropAuthType               // v2 auth type differs from the local one
	DropAuthFailure            // v2 auth data differs from the local password
	DropInterval               // v2 interval differs from the local one
	DropAddrList               // address list differs from the local VIPs
	DropAddrFamily             // addresses of the wrong family, or a bad IP header
	DropOwnPacket              // our own advert looped back
	DropQueueFull              // the instance could not keep up
	DropDestination            // multicast advert at a unicast instance, or the reverse
	DropSocketFull             // lost in the kernel: the socket's buffer was full (a flood), instance unknown
	numDropReasons
)

var dropNames = [...]string{
	DropNone:        "none",
	DropTTL:         "ttl",
	DropVersion:     "version",
	DropType:        "type",
	DropTooShort:    "too_short",
	DropChecksum:    "checksum",
	DropUnknownVRID: "unknown_vrid",
	DropAuthType:    "auth_type",
	DropAuthFailure: "auth_failure",
	DropInterval:    "interval",
	DropAddrList:    "addr_list",
	DropAddrFamily:  "addr_family",
	DropOwnPacket:   "own_packet",
	DropQueueFull:   "queue_full",
	DropDestination: "destination",
	DropSocketFull:  "socket_full",
}

func (r DropReason) String() string {
	if r >= 0 && int(r) < len(dropNames) {
		return dropNames[r]
	}
	return "unknown"
}

// DropReasons lists every reason, in order, for counters and metrics.
func DropReasons() []DropReason {
	rs := make([]DropReason, 0, numDropReasons-1)
	for r := DropNone + 1; r < numDropReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}

// DropError is returned by decoders for a packet that must be discarded.
type DropError struct {
	Reason DropReason
	Detail string
}

func (e *DropError) Error() string {
	if e.Detail == "" {
		return "vrrp: packet dropped: " + e.Reason.String()
	}
	return "vrrp: packet dropped: " + e.Reason.String() + ": " + e.Detail
}
