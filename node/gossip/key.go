package gossip

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strings"
)

// LoadKey reads a gossip key file: the base64 encoding of 16, 24 or 32
// bytes (AES-128, -192 or -256), surrounding whitespace ignored, as
// `haactl keygen` prints it. A file that group or others can access is
// refused.
func LoadKey(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: create it with `haactl keygen > %s; chmod 600 %s`, the same key on every node", err, path, path)
	}
	if err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s is accessible by group or others (mode %#o): chmod 600 %s", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil, fmt.Errorf("%s is empty: write a key into it with `haactl keygen > %s`", path, path)
	}
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s does not hold a base64 key (%v): generate one with `haactl keygen`", path, err)
	}
	switch len(k) {
	case 16, 24, 32:
		return k, nil
	}
	return nil, fmt.Errorf("%s holds a %d-byte key, want 16, 24 or 32 bytes: generate one with `haactl keygen`", path, len(k))
}

// NewKey returns a new key in the format LoadKey reads: the base64 encoding
// of 32 random bytes.
func NewKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails
	return base64.StdEncoding.EncodeToString(b)
}

// IsLoopback reports whether a bind address (IP[:port], as Config.Bind) is
// a loopback address: gossip that cannot leave the host needs no key.
// Empty (all addresses) is not.
func IsLoopback(bind string) bool {
	host := bind
	if h, _, err := net.SplitHostPort(bind); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
