package vrrp

import "time"

// Interval limits.
const (
	MinIntervalV3 = 10 * time.Millisecond
	MaxIntervalV3 = 4095 * 10 * time.Millisecond
	MinIntervalV2 = time.Second
	MaxIntervalV2 = 255 * time.Second
)

// SkewTime is the time a backup adds to three advert intervals, so that the
// backup with the highest priority is the first to take over.
//
//	v3 (RFC 5798): ((256 - Priority) * Master_Adver_Interval) / 256
//	v2 (RFC 3768): (256 - Priority) / 256 seconds
//
// It is computed in nanoseconds: at most 256 * 40.95 s, far from overflow.
func SkewTime(version int, priority uint8, interval time.Duration) time.Duration {
	if version == 2 {
		interval = time.Second
	}
	return time.Duration(256-int64(priority)) * interval / 256
}

// MasterDownInterval is how long a backup waits without adverts before it
// becomes master: 3 * interval + SkewTime.
func MasterDownInterval(version int, priority uint8, interval time.Duration) time.Duration {
	return 3*interval + SkewTime(version, priority, interval)
}

// GARPConfig says when a master announces its addresses (keepalived's
// garp_master_* settings).
type GARPConfig struct {
	Delay         time.Duration // second burst after becoming master; 0: none
	Repeat        int           // GARPs per address in a burst
	Refresh       time.Duration // periodic re-announcement; 0: none
	RefreshRepeat int           // GARPs per address at each refresh
	Interval      time.Duration // pause between the GARPs of a burst
}
