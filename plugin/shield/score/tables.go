package score

import (
	"sync"
	"sync/atomic"
	"unsafe"
)

// Fixed-size state. Every table is allocated once, in New, and never
// grows: an insert into a full set evicts.

const (
	ways    = 8  // entries per set of the domain and client tables
	nShards = 64 // shards of every table, chosen by the top 6 bits of a key
)

// setTable is a sharded, set-associative table of entries E: a key lives
// in one set of ways entries, and a new key replaces the least recently
// used one of its set. The domain and the client tables are setTables.
//
// Its layout keeps the generic part off the hot path: each shard holds an
// index (the keys of a set and the engine seconds of their last use, in
// arrays of their own) that pickWay searches without knowing E, and an
// array of entries that the way it returns addresses. No method of E is
// ever called, so an instantiation costs what a hand-written table does
// (BenchmarkScore190).
type setTable[E any] struct {
	shards   [nShards]setShard[E]
	sets     uint64 // sets per shard, a power of two
	used     atomic.Int64
	evicted  atomic.Uint64
	capacity int
}

// setShard is a lock, the index of its sets and their entries.
type setShard[E any] struct {
	mu      sync.Mutex
	keys    [][ways]uint64 // 0: an empty way
	stamps  [][ways]uint32 // engine seconds of the last use of each way
	entries [][ways]E
	_       [48]byte // 128 bytes a shard: shard locks on separate cache lines
}

// access says what get does besides finding the entry of a key.
type access uint8

const (
	peek   access = iota // find the entry, and leave its recency alone
	touch                // find the entry and mark it used now
	upsert               // find or make the entry and mark it used now
)

func newSetTable[E any](size int) *setTable[E] {
	t := &setTable[E]{}
	per := roundSets(size, ways)
	t.sets = uint64(per)
	for i := range t.shards {
		shard := &t.shards[i]
		shard.keys = make([][ways]uint64, per)
		shard.stamps = make([][ways]uint32, per)
		shard.entries = make([][ways]E, per)
	}
	t.capacity = per * ways * nShards
	return t
}

// roundSets returns the sets per shard for about size entries of n ways
// in all: a power of two, at least 1.
func roundSets(size, n int) int {
	per := size / (nShards * n)
	b := 1
	for b < per {
		b <<= 1
	}
	return b
}

// bytes returns the memory of the table's index and entries.
func (t *setTable[E]) bytes() int {
	var e E
	return t.capacity * (int(unsafe.Sizeof(e)) + 8 + 4) // entry, key, stamp
}

// get returns the entry for key with its shard locked; the caller must
// unlock the returned mutex, also when the entry is nil. Unless how is
// upsert, get returns nil when key is absent. created reports whether
// the entry was made now (zero, but for its key and stamp). now is the
// engine clock, for recency.
func (t *setTable[E]) get(key uint64, now uint32, how access) (entry *E, unlock *sync.Mutex, created bool) {
	shard := &t.shards[key>>58]
	shard.mu.Lock()
	set := key & (t.sets - 1)
	keys, stamps := &shard.keys[set], &shard.stamps[set]
	way, found := pickWay(keys, stamps, key)
	switch {
	case found:
		if how != peek {
			stamps[way] = now
		}
		return &shard.entries[set][way], &shard.mu, false
	case how != upsert:
		return nil, &shard.mu, false
	}
	if keys[way] == 0 {
		t.used.Add(1)
	} else {
		t.evicted.Add(1)
	}
	keys[way], stamps[way] = key, now
	entry = &shard.entries[set][way]
	var zero E
	*entry = zero
	return entry, &shard.mu, true
}

// pickWay returns the way of a set that holds key, or, when no way does,
// the way a new key takes: the first empty one, else the least recently
// used (the first of equals).
func pickWay(keys *[ways]uint64, stamps *[ways]uint32, key uint64) (way int, found bool) {
	victim := -1
	for i, k := range keys {
		if k == key {
			return i, true
		}
		if k == 0 {
			if victim < 0 || keys[victim] != 0 {
				victim = i
			}
			continue
		}
		if victim < 0 || (keys[victim] != 0 && stamps[i] < stamps[victim]) {
			victim = i
		}
	}
	return victim, false
}
