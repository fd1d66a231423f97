package score

import (
	"bytes"
	"hash/maphash"
	"sort"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/net/publicsuffix"
)

//go:generate go test -run ^TestGenerateSuffixParents$ -generate

// suffixMemo finds the registered domain (eTLD+1) of a name exactly as
// golang.org/x/net/publicsuffix.EffectiveTLDPlusOne does, with the ICANN
// and the private sections of the public suffix list, without allocating
// on the common path.
//
// publicsuffix.PublicSuffix costs about 380 ns and one 48-byte allocation
// per call on this machine (BenchmarkPublicSuffixDirect: it first tries the
// name as an IP address and boxes the parse error). The memo walks the
// labels from the right, the way the library walks the list's trie, and
// remembers for each trailing group of k labels (k = 2..maxSuffixLabels)
// the labels of the library's public suffix of the group and whether any
// rule lies below the group (suffixParents, generated from the library's
// rules). The library's walk over a name only goes on past a group while
// the group is a node of its trie with something below it, and it gives
// the name the same suffix as the last group it reached; so the memo's walk
// stops at the first group that is no such parent, and takes that group's
// suffix. TestSuffixEveryRule checks this against the library for every
// rule it knows.
//
// The memo is a direct-mapped table of atomic words: lookups take no lock,
// a collision only costs a library call, and its size is fixed.
type suffixMemo struct {
	seed  maphash.Seed
	slots []atomic.Uint64 // hash<<8 | 1<<7 (valid) | 1<<6 (a parent) | labels
}

const (
	suffixMemoSize = 1 << 14 // 16,384 words: 128 KiB
	memoValid      = 1 << 7
	memoParent     = 1 << 6
)

func newSuffixMemo() *suffixMemo {
	return &suffixMemo{seed: maphash.MakeSeed(), slots: make([]atomic.Uint64, suffixMemoSize)}
}

// lookup returns the labels of the library's public suffix of the
// trailing group g, and whether a rule of the list lies below g.
func (m *suffixMemo) lookup(g string) (labels int, parent bool) {
	h := maphash.String(m.seed, g)
	slot := &m.slots[h&(suffixMemoSize-1)]
	tag := h << 8
	if v := slot.Load(); v&^0xff == tag&^0xff && v&memoValid != 0 {
		return int(v & 0x3f), v&memoParent != 0
	}
	// A copy: the library keeps its argument in an error value, and g
	// may point into the caller's stack buffer.
	gc := string(append(make([]byte, 0, len(g)), g...))
	ps, _ := publicsuffix.PublicSuffix(gc)
	labels = strings.Count(ps, ".") + 1
	i := sort.SearchStrings(suffixParents[:], gc)
	parent = i < len(suffixParents) && suffixParents[i] == gc
	v := tag&^0xff | memoValid | uint64(labels)
	if parent {
		v |= memoParent
	}
	slot.Store(v)
	return labels, parent
}

// registered returns the offset in name (lower case, no trailing dot) at
// which its registered domain (eTLD+1) starts, and the offset of its public
// suffix. reg is -1 when the name is itself a public suffix, an IPv4
// address (as for the library) or empty.
//
// Unlike EffectiveTLDPlusOne, a name with an empty label gets a registered
// domain: DNS names on the wire have none, and a name without one would be
// exempt from scoring.
func (m *suffixMemo) registered(name []byte) (reg, suffix int) {
	if len(name) == 0 {
		return -1, 0
	}
	// starts[k-1] is where the trailing group of k labels begins; found
	// lazily from the right, so a long prefix is never walked.
	var starts [maxSuffixLabels + 1]int
	found := 0 // entries of starts known
	more := true
	next := func() bool { // finds starts[found]
		if !more {
			return false
		}
		end := len(name)
		if found > 0 {
			end = starts[found-1] - 1
		}
		d := bytes.LastIndexByte(name[:end], '.')
		starts[found] = d + 1
		found++
		if d < 0 {
			more = false
		}
		return true
	}
	next()                                  // the top-level label
	s := unsafe.String(&name[0], len(name)) // read-only view, never retained
	if isDigit(name[len(name)-1]) && isIPv4(s) {
		return -1, 0
	}
	sufLabels := 1 // a name of one label is its own suffix
	for k := 2; k <= maxSuffixLabels; k++ {
		if found < k && !next() {
			break
		}
		got, parent := m.lookup(s[starts[k-1]:])
		sufLabels = got
		if !parent {
			break
		}
	}
	// The registered domain has one label more than the suffix.
	for found <= sufLabels && next() {
	}
	labels := found
	if more {
		labels = found + 1 // at least: the name goes on to the left
	}
	if sufLabels >= labels {
		return -1, 0
	}
	return starts[sufLabels], starts[sufLabels-1]
}

// isIPv4 reports whether s is an IPv4 address in dotted decimal, as
// netip.ParseAddr reads one (four fields of 0 to 255, no leading zeros):
// the library takes such a name as its own public suffix.
func isIPv4(s string) bool {
	fields, val, digits := 0, 0, 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if digits == 0 || fields == 3 && i < len(s) {
				return false
			}
			fields, val, digits = fields+1, 0, 0
			continue
		}
		c := s[i]
		if !isDigit(c) || (digits == 1 && val == 0) {
			return false
		}
		val, digits = val*10+int(c-'0'), digits+1
		if val > 255 {
			return false
		}
	}
	return fields == 4
}
