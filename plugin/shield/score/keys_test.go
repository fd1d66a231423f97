package score

import (
	"hash/maphash"
	"math/bits"
	"testing"
)

// TestKeyHashSpread: keys of similar names spread over every bit the
// tables use (the shard from the top six bits, the set from the low ones)
// and differ with the seed.
func TestKeyHashSpread(t *testing.T) {
	const n = 1 << 16
	var shards [nShards]int
	var ones [64]int
	seen := map[uint64]bool{}
	for i := 0; i < n; i++ {
		name := []byte{'a' + byte(i%26), 'b' + byte(i/26%26), 'c' + byte(i/676%26), '.', 'c', 'o', 'm'}
		name = append(name, byte(i>>12), byte(i>>14))
		k := keyHash(12345, name)
		if seen[k] {
			t.Fatalf("collision at %d", i)
		}
		seen[k] = true
		shards[k>>58]++
		for b := 0; b < 64; b++ {
			ones[b] += int(k >> b & 1)
		}
	}
	for s, c := range shards {
		if c < n/nShards*3/4 || c > n/nShards*5/4 {
			t.Errorf("shard %d has %d keys, want about %d", s, c, n/nShards)
		}
	}
	for b, c := range ones {
		if c < n*45/100 || c > n*55/100 {
			t.Errorf("bit %d set in %d of %d keys", b, c, n)
		}
	}
	a, b := keyHashString(1, "example.com"), keyHashString(2, "example.com")
	if d := bits.OnesCount64(a ^ b); d < 16 {
		t.Errorf("seeds 1 and 2 give keys %d bits apart", d)
	}
	if keyHashString(7, "example.com") != keyHash(7, []byte("example.com")) {
		t.Error("string and []byte keys differ")
	}
}

// BenchmarkKeyHashDomain and BenchmarkMaphashDomain compare the key of a
// registered domain with the maphash it replaced, in one run.
func BenchmarkKeyHashDomain(b *testing.B) {
	d := []byte("example.com")
	var s uint64
	for i := 0; i < b.N; i++ {
		s += keyHash(uint64(i)|1, d)
	}
	sink = s
}

func BenchmarkMaphashDomain(b *testing.B) {
	d := []byte("example.com")
	seed := maphash.MakeSeed()
	var s uint64
	for i := 0; i < b.N; i++ {
		s += maphash.Bytes(seed, d)
	}
	sink = s
}

var sink uint64
