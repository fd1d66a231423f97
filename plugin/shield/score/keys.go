package score

import (
	"math/bits"
	"math/rand/v2"
	"unsafe"
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
// table slot. It reads eight bytes at a time (the last word overlaps the
// one before it when the length is not a multiple of eight), folds each
// word with a seed-dependent multiplier, and folds once more at the end so
// that every bit of the key (the top ones pick the shard, the low ones the
// set and the history filter's bits) depends on every byte. A registered
// domain of 9 to 16 bytes and a client address take three multiplications.
func keyHash(seed uint64, b []byte) uint64 {
	return keyHashString(seed, unsafe.String(unsafe.SliceData(b), len(b)))
}

// keyHashString is keyHash of a string.
func keyHashString(seed uint64, s string) uint64 {
	n := len(s)
	m := seed ^ keyMul1
	h := seed ^ uint64(n)*keyMul0
	switch {
	case n >= 8:
		for i := 0; i+8 < n; i += 8 {
			h = fold(h^le64(s[i:]), m)
		}
		h = fold(h^le64(s[n-8:]), m)
	case n > 0:
		var w uint64
		for i := 0; i < n; i++ {
			w |= uint64(s[i]) << (8 * i)
		}
		h = fold(h^w, m)
	}
	h = fold(h^keyMul2, keyMul0)
	if h == 0 {
		h = 1
	}
	return h
}

// le64 returns the first eight bytes of s as a little-endian word.
func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}
