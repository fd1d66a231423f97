package score

import (
	"bytes"
	"hash/maphash"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/net/publicsuffix"
)

// suffixMemo finds the public suffix of a name (ICANN and private sections
// of the public suffix list, through golang.org/x/net/publicsuffix) without
// allocating on the common path.
//
// publicsuffix.PublicSuffix costs about 380 ns and one 48-byte allocation
// per call on this machine (BenchmarkPublicSuffixDirect: it first tries the
// name as an IP address and boxes the parse error). The memo walks the
// labels from the right, the way the list's trie does, and remembers for
// each trailing group of k labels (k = 2..maxSuffixLabels) how many of its
// labels are a public suffix, and whether a wildcard rule reaches deeper.
// The walk goes one label deeper only while the whole group is itself a
// public suffix or sits under a wildcard. That is exact for every rule
// except one under a node that is neither a suffix nor a wildcard parent
// (amazonaws.com is one: s3.amazonaws.com is a suffix, amazonaws.com is
// not); such names get the shorter suffix. TestSuffixMatchesLibrary
// measures the disagreement on the Umbrella top 100k.
//
// The memo is a direct-mapped table of atomic words: lookups take no lock,
// a collision only costs a library call, and its size is fixed.
type suffixMemo struct {
	seed  maphash.Seed
	slots []atomic.Uint64 // hash<<8 | 1<<7 (valid) | 1<<6 (wildcard) | labels
}

const (
	maxSuffixLabels = 6
	suffixMemoSize  = 1 << 14 // 16,384 words: 128 KiB
	memoValid       = 1 << 7
	memoWild        = 1 << 6
)

// interiorNodes are the public-suffix-list nodes that are not suffixes
// themselves but have suffixes below them, found by comparing the walk
// with the library on the Umbrella top 100k (names affected before this
// list: amazonaws.com 758, windows.net 293, fastly.net 265, cdn77.org 79,
// on.aws 5, atlassian-dev.net 2).
var interiorNodes = map[string]struct{}{
	"amazonaws.com": {}, "windows.net": {}, "fastly.net": {}, "cdn77.org": {}, "on.aws": {},
	"atlassian-dev.net": {},
}

func newSuffixMemo() *suffixMemo {
	return &suffixMemo{seed: maphash.MakeSeed(), slots: make([]atomic.Uint64, suffixMemoSize)}
}

// lookup returns the public suffix labels of the trailing group g (g has k
// labels) and whether a wildcard rule sits below it.
func (m *suffixMemo) lookup(g string, k int) (labels int, wild bool) {
	h := maphash.String(m.seed, g)
	slot := &m.slots[h&(suffixMemoSize-1)]
	tag := h << 8
	if v := slot.Load(); v&^0xff == tag&^0xff && v&memoValid != 0 {
		return int(v & 0x3f), v&memoWild != 0
	}
	// A copy: the library keeps its argument in an error value, and g
	// may point into the caller's stack buffer.
	gc := string(append(make([]byte, 0, len(g)), g...))
	ps, _ := publicsuffix.PublicSuffix(gc)
	labels = strings.Count(ps, ".") + 1
	// Is there a wildcard below g? Probe with a label no rule names.
	pp, _ := publicsuffix.PublicSuffix("x--shield-probe." + gc)
	wild = len(pp) > len(gc)
	v := tag&^0xff | memoValid | uint64(labels)
	if wild {
		v |= memoWild
	}
	slot.Store(v)
	return labels, wild
}

// registered returns the offset in name (lower case, no trailing dot) at
// which its registered domain (eTLD+1) starts, and the offset of its public
// suffix. reg is -1 when the name is itself a public suffix or empty.
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
	sufLabels := 1
	deep := false // below an interior node: walk on to maxSuffixLabels
	for k := 2; k <= maxSuffixLabels; k++ {
		if found < k && !next() {
			break
		}
		got, wild := m.lookup(s[starts[k-1]:], k)
		if got > sufLabels {
			sufLabels = got
		}
		if got < k && !wild && !deep {
			if _, ok := interiorNodes[s[starts[k-1]:]]; !ok {
				break
			}
			deep = true
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
