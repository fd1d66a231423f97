package contain

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// Default caps on the address space in quarantine, summed over every
// quarantine held: one IPv4 /16 and one IPv6 /48. Without a cap across
// requests, the per-quarantine bound (MinBits4) is no bound at all: 256
// requests for a /8 each quarantine every IPv4 client.
const (
	DefaultMaxSpace4 = 1 << 16 // IPv4 addresses: a /16
	DefaultMaxSpace6 = 1 << 16 // IPv6 /64s (clients): a /48
)

// space returns the share of the address space p takes: addresses for
// IPv4, /64s for IPv6 (a /64 or longer counts as one). p is normalised.
func space(p netip.Prefix) uint64 {
	if p.Addr().Is4() {
		return 1 << (32 - p.Bits())
	}
	if p.Bits() >= ClientBits6 {
		return 1
	}
	return 1 << (ClientBits6 - p.Bits())
}

// spaceFamily returns 0 for IPv4 and 1 for IPv6.
func spaceFamily(p netip.Prefix) int {
	if p.Addr().Is6() {
		return 1
	}
	return 0
}

// ParseSpaceCap parses a cap such as "/16" (IPv4) or "/48" (IPv6) into
// the unit Options.MaxSpace4 or MaxSpace6 counts (addresses for IPv4,
// /64s for IPv6). "none" lifts the cap. v6 tells which family v is for.
func ParseSpaceCap(v string, v6 bool) (uint64, error) {
	if v == "none" {
		return math.MaxUint64, nil
	}
	min, max := 0, 32
	if v6 {
		max = ClientBits6
	}
	n, err := strconv.Atoi(strings.TrimPrefix(v, "/"))
	if err != nil || !strings.HasPrefix(v, "/") || n < min || n > max {
		fam := "IPv4"
		if v6 {
			fam = "IPv6"
		}
		return 0, fmt.Errorf("%w %s quarantine cap %q: want /0 to /%d, or none", ErrInvalid, fam, v, max)
	}
	if v6 {
		if n == 0 {
			return math.MaxUint64, nil // 2^64 /64s: all of IPv6
		}
		return 1 << (ClientBits6 - n), nil
	}
	return 1 << (32 - n), nil
}

// SpaceInUse returns the address space the quarantines held take: IPv4
// addresses and IPv6 /64s, summed over entries (overlapping quarantines
// count twice).
func (s *Store) SpaceInUse() (v4, v6 uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.space[0], s.space[1]
}

// checkSpace returns an ErrOverCap error if adding p would take the
// space in quarantine of its family over the cap. The caller holds s.mu.
func (s *Store) checkSpace(p netip.Prefix) error {
	f := spaceFamily(p)
	limit := s.opt.MaxSpace4
	unit, capText := "addresses", capString(limit, 32)
	if f == 1 {
		limit, unit, capText = s.opt.MaxSpace6, "/64s", capString(s.opt.MaxSpace6, ClientBits6)
	}
	add := space(p)
	if s.space[f] > limit || add > limit-s.space[f] {
		return refuse(ErrOverCap, "quarantining %s would put %d %s in quarantine, over the cap of %d (%s); send force to override",
			ClientText(p), s.space[f]+add, unit, limit, capText)
	}
	return nil
}

// capString writes a cap as the prefix length it equals, when it does.
func capString(n uint64, bits int) string {
	for b := 0; b <= bits; b++ {
		if uint64(1)<<(bits-b) == n {
			return "/" + strconv.Itoa(b)
		}
	}
	return "not a prefix"
}
