package score

import (
	"sync"
	"sync/atomic"
)

// verdict is a sticky block of a registered domain.
type verdict struct {
	key      uint64
	until    uint32 // engine seconds
	hits     uint16 // queries blocked by it, saturating
	score    uint8
	reason   uint8 // top reason
	detector uint8
}

const (
	verdictWays = 4
	// protectHits: a verdict that has blocked this many queries is
	// protected: a new verdict never evicts it before it expires. A
	// tunnel keeps hitting its verdict, a flood of one-off names does
	// not (TestFloodKeepsVerdict).
	protectHits = 2
)

type verdictShard struct {
	mu      sync.Mutex
	entries []verdict
	_       [40]byte
}

// verdictTable holds the sticky verdicts, apart from the domain table so
// that a flood of names cannot evict them.
type verdictTable struct {
	shards   [nShards]verdictShard
	sets     uint64
	used     atomic.Int64
	evicted  atomic.Uint64
	refused  atomic.Uint64
	capacity int
}

func newVerdictTable(size int) *verdictTable {
	t := &verdictTable{}
	b := roundSets(size, verdictWays)
	t.sets = uint64(b)
	for i := range t.shards {
		t.shards[i].entries = make([]verdict, b*verdictWays)
	}
	t.capacity = b * verdictWays * nShards
	return t
}

// lookup returns the live verdict for key and counts the hit when hit is
// true.
func (t *verdictTable) lookup(key uint64, now uint32, hit bool) (verdict, bool) {
	shard := &t.shards[key>>58]
	shard.mu.Lock()
	defer shard.mu.Unlock()
	b := (key & (t.sets - 1)) * verdictWays
	for i := b; i < b+verdictWays; i++ {
		v := &shard.entries[i]
		if v.key == key {
			if v.until <= now {
				return verdict{}, false
			}
			if hit && v.hits < 0xffff {
				v.hits++
			}
			return *v, true
		}
	}
	return verdict{}, false
}

// put stores a verdict. A full bucket gives up an expired verdict first,
// then the unprotected one with the fewest hits; when all are protected
// the new verdict is refused (the query itself is still blocked).
func (t *verdictTable) put(v verdict, now uint32) bool {
	shard := &t.shards[v.key>>58]
	shard.mu.Lock()
	defer shard.mu.Unlock()
	b := (v.key & (t.sets - 1)) * verdictWays
	victim := -1
	for i := b; i < b+verdictWays; i++ {
		e := &shard.entries[i]
		if e.key == v.key {
			v.hits = e.hits
			*e = v
			return true
		}
		switch {
		case e.key == 0 || e.until <= now:
			if victim < 0 || (shard.entries[victim].key != 0 && shard.entries[victim].until > now) {
				victim = int(i)
			}
		case e.hits < protectHits:
			if victim < 0 || (shard.entries[victim].until > now && shard.entries[victim].key != 0 && e.hits < shard.entries[victim].hits) {
				victim = int(i)
			}
		}
	}
	if victim < 0 {
		t.refused.Add(1)
		return false
	}
	e := &shard.entries[victim]
	switch {
	case e.key == 0:
		t.used.Add(1)
	case e.until > now:
		t.evicted.Add(1)
	}
	*e = v
	return true
}

// remove deletes the verdict for key (an operator's unblock).
func (t *verdictTable) remove(key uint64) bool {
	shard := &t.shards[key>>58]
	shard.mu.Lock()
	defer shard.mu.Unlock()
	b := (key & (t.sets - 1)) * verdictWays
	for i := b; i < b+verdictWays; i++ {
		if shard.entries[i].key == key {
			shard.entries[i] = verdict{}
			t.used.Add(-1)
			return true
		}
	}
	return false
}
