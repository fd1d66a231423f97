package contain

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/dnsshield/shield/plugin/shield/blocklist"
)

// Bounds. A quarantine broader than these prefix lengths would sink a
// whole network by accident; an operator who means that can add several
// (within the address-space cap, see Options.MaxSpace4).
const (
	MinBits4 = 8  // at most 2^24 IPv4 addresses in one quarantine
	MinBits6 = 32 // an IPv6 /32 is a whole provider allocation

	// ClientBits6 is the prefix length of one IPv6 client. A host picks
	// its own interface identifier (privacy addresses, RFC 8981) and can
	// use all 2^64 of its /64, so the ladder counts and the store holds
	// an IPv6 client by its /64: one /64 cannot fill either table, and a
	// quarantine of one of its addresses covers the others.
	ClientBits6 = 64
)

// ClientKey returns the key of the client at addr: a /32 for IPv4, the
// /64 for IPv6. addr is unmapped first; its zone is dropped.
func ClientKey(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap().WithZone("")
	if addr.Is4() {
		return netip.PrefixFrom(addr, 32)
	}
	p, _ := addr.Prefix(ClientBits6)
	return p
}

// normPrefix masks p and widens an IPv6 prefix longer than ClientBits6 to
// its /64, the most specific thing the store holds.
func normPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is6() && p.Bits() > ClientBits6 {
		p, _ = p.Addr().Prefix(ClientBits6)
	}
	return p.Masked()
}

// ParseClient parses an address or a CIDR as a quarantine key: the
// address unmapped and without zone becomes a /32 (IPv4) or its /64
// (IPv6, see ClientBits6); a prefix is masked, and an IPv6 prefix longer
// than /64 widened to it. Prefixes broader than MinBits4 or MinBits6 are
// refused.
func ParseClient(v string) (netip.Prefix, error) {
	v = strings.TrimSpace(v)
	var p netip.Prefix
	if strings.IndexByte(v, '/') >= 0 {
		var err error
		p, err = netip.ParsePrefix(v)
		if err != nil {
			return p, fmt.Errorf("%w client %q: not an address or CIDR", ErrInvalid, v)
		}
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return netip.Prefix{}, fmt.Errorf("%w client %q: an IPv4-mapped prefix must be /96 or longer", ErrInvalid, v)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		p = normPrefix(p)
	} else {
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			return p, fmt.Errorf("%w client %q: not an address or CIDR", ErrInvalid, v)
		}
		p = ClientKey(a)
	}
	if p.Addr().Is6() && p.Bits() < MinBits6 || p.Addr().Is4() && p.Bits() < MinBits4 {
		return netip.Prefix{}, fmt.Errorf("%w client %q: broader than /%d (IPv4) or /%d (IPv6)", ErrInvalid, v, MinBits4, MinBits6)
	}
	return p, nil
}

// ClientText returns p as an operator writes it: a bare address for a
// single host, else the CIDR.
func ClientText(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// NormalizeName returns the normalised form of a domain name for an
// emergency block, or ErrInvalid.
func NormalizeName(v string) (string, error) {
	b, ok := blocklist.Normalize([]byte(strings.TrimSpace(v)))
	if !ok {
		return "", fmt.Errorf("%w name %q: not a domain name", ErrInvalid, v)
	}
	return string(b), nil
}

// ttl resolves a requested TTL: 0 is the default, negative or above max
// is an error.
func ttl(d, def, max time.Duration) (time.Duration, error) {
	switch {
	case d == 0:
		return def, nil
	case d < 0:
		return 0, fmt.Errorf("%w ttl %s: must be positive", ErrInvalid, d)
	case d < time.Second:
		return 0, fmt.Errorf("%w ttl %s: at least 1s", ErrInvalid, d)
	case d > max:
		return 0, fmt.Errorf("%w ttl %s: above the maximum %s", ErrInvalid, d, max)
	}
	return d, nil
}
