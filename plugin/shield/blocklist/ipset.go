package blocklist

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// IPSet is a compact, immutable set of address prefixes (single addresses
// are /32 and /128 prefixes), each with an Action. Prefixes are kept per
// prefix length as sorted arrays of their masked network addresses: 4
// bytes per IPv4 entry, 16 per IPv6 entry, plus one byte of action. A
// lookup tries the lengths present in the set, longest first, with one
// binary search each, so the most specific prefix wins (as RPZ asks) and a
// list of single addresses costs one search. Lists use a handful of
// lengths (32, 24, 16, 128, 64, 48), so a lookup is a few searches.
//
// An IPSet is safe for concurrent use; nil is an empty set.
type IPSet struct {
	v4 []ipLen4 // by length, longest first
	v6 []ipLen6
	n  int
	// in16 has a bit for every IPv4 /16 that some entry overlaps: most
	// addresses miss it and cost one load instead of a search per length.
	in16 *[1 << 16 / 64]uint64
}

type ipLen4 struct {
	bits uint8
	keys []uint32 // masked network addresses, sorted, distinct
	acts []Action
}

type ipLen6 struct {
	bits uint8
	keys []ip6 // masked, sorted, distinct
	acts []Action
}

// ip6 is an IPv6 address as two big-endian halves, ordered as numbers.
type ip6 struct{ hi, lo uint64 }

func (a ip6) less(b ip6) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

func (a ip6) mask(bits uint8) ip6 {
	switch {
	case bits == 0:
		return ip6{}
	case bits < 64:
		return ip6{hi: a.hi &^ (^uint64(0) >> bits)}
	case bits == 64:
		return ip6{hi: a.hi}
	case bits < 128:
		return ip6{hi: a.hi, lo: a.lo &^ (^uint64(0) >> (bits - 64))}
	}
	return a
}

func to6(a netip.Addr) ip6 {
	b := a.As16()
	return ip6{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

func to4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func mask4(a uint32, bits uint8) uint32 {
	if bits == 0 {
		return 0
	}
	return a &^ (^uint32(0) >> bits)
}

// IPMatch is the result of an IPSet lookup.
type IPMatch struct {
	Action Action       // ActNone when nothing matched
	Prefix netip.Prefix // the entry that matched
}

// Len returns the number of distinct prefixes in the set.
func (s *IPSet) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// Lookup returns the most specific entry that contains a. An IPv4-mapped
// IPv6 address is looked up as IPv4; a zone is ignored. Lookup does not
// allocate.
func (s *IPSet) Lookup(a netip.Addr) IPMatch {
	act, bits := s.Find(a)
	if act == ActNone {
		return IPMatch{}
	}
	p, _ := a.Unmap().WithZone("").Prefix(int(bits))
	return IPMatch{Action: act, Prefix: p}
}

// Find is Lookup returning the entry as its prefix length: the entry is
// a's prefix of that length. It is the cheaper call for a caller that
// expects to miss.
func (s *IPSet) Find(a netip.Addr) (Action, uint8) {
	if s == nil || s.n == 0 {
		return ActNone, 0
	}
	return s.find(a)
}

func (s *IPSet) find(a netip.Addr) (Action, uint8) {
	if a.Is4In6() {
		a = a.Unmap()
	}
	if a.Is4() {
		x := to4(a)
		if s.in16 != nil && s.in16[x>>22]&(1<<(x>>16&63)) == 0 {
			return ActNone, 0
		}
		for i := range s.v4 {
			l := &s.v4[i]
			if j, ok := slices.BinarySearch(l.keys, mask4(x, l.bits)); ok {
				return l.acts[j], l.bits
			}
		}
		return ActNone, 0
	}
	if len(s.v6) == 0 || !a.Is6() {
		return ActNone, 0
	}
	x := to6(a)
	for i := range s.v6 {
		l := &s.v6[i]
		if j, ok := slices.BinarySearchFunc(l.keys, x.mask(l.bits), cmp6); ok {
			return l.acts[j], l.bits
		}
	}
	return ActNone, 0
}

// Contains reports whether some entry of s holds a.
func (s *IPSet) Contains(a netip.Addr) bool { return s.Lookup(a).Action != ActNone }

func cmp6(a, b ip6) int {
	switch {
	case a.less(b):
		return -1
	case b.less(a):
		return 1
	}
	return 0
}

// IPBuilder collects prefixes for an IPSet. The zero value is ready.
type IPBuilder struct {
	v4 map[uint8][]entry4
	v6 map[uint8][]entry6
}

type entry4 struct {
	k   uint32
	act Action
}

type entry6 struct {
	k   ip6
	act Action
}

// Add adds p (masked to its length) with action act; a bare address is
// added as a full-length prefix by the caller. An IPv4-mapped IPv6 prefix
// of length 96 or more is stored as IPv4. When a prefix is added twice,
// the first action stays.
func (b *IPBuilder) Add(p netip.Prefix, act Action) {
	if !p.IsValid() || act == ActNone {
		return
	}
	p = p.Masked()
	a := p.Addr()
	if a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		a = p.Addr()
	}
	bits := uint8(p.Bits())
	if a.Is4() {
		if b.v4 == nil {
			b.v4 = map[uint8][]entry4{}
		}
		b.v4[bits] = append(b.v4[bits], entry4{to4(a), act})
		return
	}
	if b.v6 == nil {
		b.v6 = map[uint8][]entry6{}
	}
	b.v6[bits] = append(b.v6[bits], entry6{to6(a), act})
}

// Build returns the set of the prefixes added. The builder must not be
// used afterwards.
func (b *IPBuilder) Build() *IPSet {
	s := &IPSet{}
	for bits, es := range b.v4 {
		slices.SortStableFunc(es, func(x, y entry4) int {
			switch {
			case x.k < y.k:
				return -1
			case x.k > y.k:
				return 1
			}
			return 0
		})
		es = slices.CompactFunc(es, func(x, y entry4) bool { return x.k == y.k })
		l := ipLen4{bits: bits, keys: make([]uint32, len(es)), acts: make([]Action, len(es))}
		for i, e := range es {
			l.keys[i], l.acts[i] = e.k, e.act
		}
		s.v4 = append(s.v4, l)
		s.n += len(es)
		if s.in16 == nil {
			s.in16 = new([1 << 16 / 64]uint64)
		}
		for _, e := range es {
			first, last := e.k>>16, e.k>>16
			if bits < 16 {
				last = first | (1<<(16-bits) - 1)
			}
			for x := first; x <= last; x++ {
				s.in16[x>>6] |= 1 << (x & 63)
			}
		}
	}
	for bits, es := range b.v6 {
		slices.SortStableFunc(es, func(x, y entry6) int { return cmp6(x.k, y.k) })
		es = slices.CompactFunc(es, func(x, y entry6) bool { return x.k == y.k })
		l := ipLen6{bits: bits, keys: make([]ip6, len(es)), acts: make([]Action, len(es))}
		for i, e := range es {
			l.keys[i], l.acts[i] = e.k, e.act
		}
		s.v6 = append(s.v6, l)
		s.n += len(es)
	}
	slices.SortFunc(s.v4, func(x, y ipLen4) int { return int(y.bits) - int(x.bits) })
	slices.SortFunc(s.v6, func(x, y ipLen6) int { return int(y.bits) - int(x.bits) })
	b.v4, b.v6 = nil, nil
	return s
}

// ParsePrefix parses an address ("192.0.2.1", "2001:db8::1") or a CIDR
// ("192.0.2.0/24"); an address becomes a full-length prefix. Zones are
// refused.
func ParsePrefix(b []byte) (netip.Prefix, bool) {
	for _, c := range b {
		if c == '/' {
			p, err := netip.ParsePrefix(string(b))
			if err != nil || p.Addr().Zone() != "" {
				return netip.Prefix{}, false
			}
			return p, true
		}
	}
	a, err := netip.ParseAddr(string(b))
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}
