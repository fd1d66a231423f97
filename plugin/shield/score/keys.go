package score

import (
	"math/bits"
	"math/rand/v2"
)

// Keys of registered domains and clients. They name verdicts and the
// first-seen history, so they must mean the same after a Corefile reload
// (Handover) and after a restart (LoadState). hash/maphash cannot give
// that: its output for a seed differs from one process to the next. So
// these keys come from keyHash, keyed by a 64-bit secret that a handover
// and the state file carry. The secret is what keeps an attacker from
// aiming names at one set of a table; the state file that holds it has
// mode 0600.
//
// Names that are never kept across a restart (the recently seen names,
// the suffix memo, the label shapes) still use maphash.

// Multipliers of keyHash: odd 64-bit constants with about half their
// bits set (the fractional parts of the golden ratio and of sqrt(2) and
// sqrt(3), scaled to 64 bits).
const (
	keyMul0 = 0x9e3779b97f4a7c15
	keyMul1 = 0x6a09e667f3bcc909
	keyMul2 = 0xbb67ae8584caa73b
)

// newKeySeed returns a fresh secret for keyHash, never 0 (the state file
// takes 0 for a missing seed).
func newKeySeed() uint64 { return rand.Uint64() | 1 }

// fold multiplies a and b to 128 bits and folds the halves together.
func fold(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// keyHash returns the key of b under seed: never 0, which marks an empty
// table slot. It reads eight bytes at a time, each word folded with a
// seed-dependent multiplier, and folds once more at the end so that every
// bit of the key (the top ones pick the shard, the low ones the set and
// the history filter's bits) depends on every byte.
func keyHash[T string | []byte](seed uint64, b T) uint64 {
	m := seed ^ keyMul1
	h := fold(seed^keyMul0, uint64(len(b))^keyMul2)
	for len(b) >= 8 {
		w := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
			uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
		h = fold(h^w, m)
		b = b[8:]
	}
	if len(b) > 0 {
		var w uint64
		for i := 0; i < len(b); i++ {
			w |= uint64(b[i]) << (8 * i)
		}
		h = fold(h^w, m)
	}
	h = fold(h^keyMul2, keyMul0)
	if h == 0 {
		h = 1
	}
	return h
}
