package blocklist

import (
	"hash/maphash"
	"math/bits"
	"runtime"
	"slices"
	"unsafe"
)

// seed keys the name hash. It is chosen at random when the process starts,
// so nobody outside the process can craft a name whose hash collides with
// a listed (or allowlisted) name.
var seed = maphash.MakeSeed()

// hashName returns the keyed 64-bit hash of a normalised name.
func hashName(b []byte) uint64 { return maphash.Bytes(seed, b) }

// Set is a compact, immutable set of domain rules. It stores no strings:
// each rule is the 64-bit keyed hash of its name plus one byte of actions,
// grouped into buckets by the top bits of the hash and reached through a
// directory of uint32 offsets. That is at most 11 bytes per name (8 for
// the hash, 1 for the actions, 1 to 2 for the directory), and a lookup
// costs one directory read and a scan of two to four keys per label of the
// query.
//
// Because only hashes are stored, two different names collide with
// probability about n/2^64 per probe (5e-14 for a million names); the seed
// is secret, so such a collision cannot be aimed.
//
// A Set is safe for concurrent use; the zero value and nil are empty sets.
type Set struct {
	shift     uint     // 64 - directory bits
	dir       []uint32 // dir[b]..dir[b+1] is bucket b in keys
	keys      []uint64
	acts      []uint8 // self | below<<4
	allowWins bool
}

// Len returns the number of distinct names in the set.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.keys)
}

// MemoryBytes returns the bytes held by the set's arrays.
func (s *Set) MemoryBytes() int {
	if s == nil {
		return 0
	}
	return len(s.dir)*4 + len(s.keys)*8 + len(s.acts)
}

// find returns the packed actions stored for hash h, or 0.
func (s *Set) find(h uint64) uint8 {
	b := h >> s.shift
	lo, hi := s.dir[b], s.dir[b+1]
	for i := lo; i < hi; i++ {
		if k := s.keys[i]; k >= h {
			if k == h {
				return s.acts[i]
			}
			return 0
		}
	}
	return 0
}

// Match is the result of a lookup.
type Match struct {
	// Action is what the matching rule says; ActNone when nothing matched.
	Action Action
	// Start is the byte offset, in the normalised query name, at which the
	// matching rule's name starts: the rule is name[Start:].
	Start int
	// Below reports whether the rule matched as a parent of the query
	// rather than the query name itself.
	Below bool
}

// maxName bounds the stack buffer for the normalised name. A query name in
// presentation format is at most 255 octets plus escapes; longer input is
// matched on its trailing part only.
const maxName = 1024

// Lookup reports which rule, if any, applies to qname. qname may be in any
// case and may end in a dot, as query names do on the wire. The most
// specific rule wins, except that in a set built with AllowWins an allow
// rule on any parent wins (adblock exception semantics). Lookup does not
// allocate.
func (s *Set) Lookup(qname string) Match {
	if s == nil || len(s.keys) == 0 {
		return Match{}
	}
	var buf [maxName]byte
	name := lowerName(buf[:0], qname)
	return s.lookup(name)
}

// LookupNormal is Lookup for a name already normalised by NormalizeQuery.
func (s *Set) LookupNormal(name []byte) Match {
	if s == nil || len(s.keys) == 0 {
		return Match{}
	}
	return s.lookup(name)
}

func (s *Set) lookup(name []byte) Match {
	// The arrays may live outside the Go heap and be released once s is
	// unreachable; s must stay reachable until the last read of them.
	defer runtime.KeepAlive(s)
	best := Match{}
	for i := 0; i < len(name); {
		a := s.find(hashName(name[i:]))
		if a != 0 {
			act := Action(a & 0x0f)
			below := i > 0
			if below {
				act = Action(a >> 4)
			}
			if act != ActNone {
				if best.Action == ActNone {
					best = Match{Action: act, Start: i, Below: below}
					if !s.allowWins || act == ActAllow {
						return best
					}
				} else if act == ActAllow {
					return Match{Action: act, Start: i, Below: below}
				}
			}
		}
		// Advance to the next label.
		j := i
		for j < len(name) && name[j] != '.' {
			j++
		}
		i = j + 1
	}
	return best
}

// NormalizeQuery appends to dst the lower-case form of qname without its
// trailing dot, keeping at most the last maxName bytes on label boundaries.
// It does not allocate when dst has room.
func NormalizeQuery(dst []byte, qname string) []byte { return lowerName(dst, qname) }

func lowerName(dst []byte, qname string) []byte {
	if n := len(qname); n > 0 && qname[n-1] == '.' {
		qname = qname[:n-1]
	}
	if len(qname) > maxName {
		qname = qname[len(qname)-maxName:]
		// Start on a label boundary.
		for i := 0; i < len(qname); i++ {
			if qname[i] == '.' {
				qname = qname[i+1:]
				break
			}
		}
	}
	for i := 0; i < len(qname); i++ {
		c := qname[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// Builder collects rules and compiles them into a Set. It implements Sink.
// The zero value is ready to use.
type Builder struct {
	keys []uint64
	acts []uint8
	// AllowWins makes an allow rule on any parent beat a more specific
	// block rule in the built set (adblock semantics).
	AllowWins bool
}

// NewBuilder returns a Builder with room for about n rules.
func NewBuilder(n int) *Builder {
	return &Builder{keys: make([]uint64, 0, n), acts: make([]uint8, 0, n)}
}

// Add records a rule for name. It implements Sink.
func (b *Builder) Add(name []byte, self, below Action) {
	b.keys = append(b.keys, hashName(name))
	b.acts = append(b.acts, uint8(self)|uint8(below)<<4)
}

// Len returns the number of rules added so far (duplicates included).
func (b *Builder) Len() int { return len(b.keys) }

// mergeAct combines two actions given to the same name and position: any
// action beats none, and allow beats every other action.
func mergeAct(a, b Action) Action {
	switch {
	case a == ActNone:
		return b
	case b == ActNone:
		return a
	case a == ActAllow || b == ActAllow:
		return ActAllow
	default:
		return b
	}
}

// offHeapMin is the smallest region worth a mapping of its own.
const offHeapMin = 1 << 20

// Build compiles the rules into a Set and resets the Builder. Duplicate
// names are merged (see mergeAct). It runs in linear time: a counting sort
// by bucket, then a small sort inside each bucket. A big set's arrays live
// outside the Go heap (see mapRegion) and are released when the Set is
// garbage.
func (b *Builder) Build() *Set {
	n := len(b.keys)
	s := &Set{allowWins: b.AllowWins}
	// Directory bits: floor(log2(n))-1, so buckets hold two to four keys
	// on average (32 bytes or less, within one cache line most of the
	// time) and the directory costs at most 2 bytes per name.
	dbits := 4
	if n > 32 {
		dbits = bits.Len(uint(n)) - 2
	}
	s.shift = uint(64 - dbits)
	nb := 1 << dbits
	counts := make([]uint32, nb+1)
	for _, k := range b.keys {
		counts[(k>>s.shift)+1]++
	}
	for i := 1; i <= nb; i++ {
		counts[i] += counts[i-1]
	}
	region, release := mapRegion(regionSize(n, nb))
	keys, dir, acts := carve(region, n, nb)
	next := slices.Clone(counts[:nb])
	for i, k := range b.keys {
		bk := k >> s.shift
		p := next[bk]
		next[bk]++
		keys[p] = k
		acts[p] = b.acts[i]
	}
	b.keys, b.acts = nil, nil
	// Sort each bucket and merge duplicates, compacting in place.
	w := uint32(0)
	for bk := 0; bk < nb; bk++ {
		lo, hi := counts[bk], counts[bk+1]
		dir[bk] = w
		// Insertion sort: buckets are tiny.
		for i := lo + 1; i < hi; i++ {
			for j := i; j > lo && keys[j-1] > keys[j]; j-- {
				keys[j-1], keys[j] = keys[j], keys[j-1]
				acts[j-1], acts[j] = acts[j], acts[j-1]
			}
		}
		for i := lo; i < hi; i++ {
			if w > dir[bk] && keys[w-1] == keys[i] {
				a, c := acts[w-1], acts[i]
				self := mergeAct(Action(a&0x0f), Action(c&0x0f))
				below := mergeAct(Action(a>>4), Action(c>>4))
				acts[w-1] = uint8(self) | uint8(below)<<4
				continue
			}
			keys[w], acts[w] = keys[i], acts[i]
			w++
		}
	}
	dir[nb] = w
	if int(w) < n/4*3 {
		// Many duplicates (RPZ lists name most zones twice): move to a
		// region of the right size and give the old one back.
		r2, rel2 := mapRegion(regionSize(int(w), nb))
		k2, d2, a2 := carve(r2, int(w), nb)
		copy(k2, keys[:w])
		copy(d2, dir)
		copy(a2, acts[:w])
		if release != nil {
			release()
		}
		region, release, keys, dir, acts = r2, rel2, k2, d2, a2
	}
	s.keys, s.dir, s.acts = keys[:w:w], dir, acts[:w:w]
	if release != nil {
		runtime.AddCleanup(s, func(f func()) { f() }, release)
	}
	return s
}

// regionSize is the bytes needed for n keys and actions and a directory
// of nb buckets.
func regionSize(n, nb int) int { return 8*n + 4*(nb+1) + n }

// carve lays the set's three arrays out in region: keys first (8-byte
// aligned at the start of the region), then the directory, then actions.
func carve(region []byte, n, nb int) (keys []uint64, dir []uint32, acts []uint8) {
	base := unsafe.Pointer(unsafe.SliceData(region))
	keys = unsafe.Slice((*uint64)(base), n)
	dir = unsafe.Slice((*uint32)(unsafe.Add(base, 8*n)), nb+1)
	acts = region[8*n+4*(nb+1):][:n:n]
	return keys, dir, acts
}
