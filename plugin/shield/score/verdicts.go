package score

import (
	"sync"
	"sync/atomic"
)

// Scope is whom a block verdict applies to.
type Scope uint8

const (
	// ScopeNone: no verdict.
	ScopeNone Scope = iota
	// ScopeClient: the clients that earned the verdict (IPv4 /32, IPv6
	// /64), each under a key of its own.
	ScopeClient
	// ScopeFleet: every client.
	ScopeFleet
)

// String returns "client", "fleet" or "".
func (s Scope) String() string {
	switch s {
	case ScopeClient:
		return "client"
	case ScopeFleet:
		return "fleet"
	}
	return ""
}

// verdict is a sticky block of a registered domain, for every client
// (key is the domain key) or for one client (key mixes the domain key and
// the client key: clientVerdictKey).
type verdict struct {
	key      uint64
	dom      uint64 // the registered domain's key
	until    uint32 // engine seconds
	hits     uint16 // queries blocked by it, saturating
	score    uint8
	reason   uint8 // top reason
	detector uint8
	scope    Scope
}

const (
	verdictWays = 4
	// protectHits: a verdict that has blocked this many queries is
	// protected: a new verdict never evicts it before it expires. A
	// tunnel keeps hitting its verdict, a flood of one-off names does
	// not (TestFloodKeepsVerdict).
	protectHits = 2
	// minShare is the least number of verdicts one client may hold; the
	// share is max(minShare, capacity/shareDivisor) (TestFairShare).
	minShare, shareDivisor = 16, 64
	// shareSlots counts the verdicts of clients by their key's top bits;
	// two clients that share a slot share a budget.
	shareSlotBits = 14
)

type verdictShard struct {
	mu      sync.Mutex
	entries []verdict
	_       [40]byte
}

// verdictTable holds the sticky verdicts, apart from the domain table so
// that a flood of names cannot evict them.
//
// Fleet verdicts live under the domain key, client verdicts under
// clientVerdictKey. hint counts the entries per slot of domain keys
// (its low half every entry, its high half the client ones), so that the
// common query, for a domain with no verdict, costs one atomic load and
// no lock, and one for a domain with only a fleet verdict one probe.
// Expired entries stay counted until they are replaced: they cost a
// probe, never a wrong answer.
//
// share holds each client to its share of the table: the verdicts it
// made in the current and the previous sticky period (a verdict lives one
// sticky period, so these are all its verdicts that can be alive),
// packed as period<<32 | current<<16 | previous.
type verdictTable struct {
	shards       [nShards]verdictShard
	sets         uint64
	used         atomic.Int64
	evicted      atomic.Uint64
	refused      atomic.Uint64 // every bucket protected
	refusedShare atomic.Uint64 // the client was over its share
	capacity     int

	hint     []atomic.Uint64
	hintMask uint64

	share    []atomic.Uint64
	shareMax uint64
	sharePer uint32 // engine seconds of a share period: the sticky duration
}

func newVerdictTable(size int, sticky uint32) *verdictTable {
	t := &verdictTable{}
	b := roundSets(size, verdictWays)
	t.sets = uint64(b)
	for i := range t.shards {
		t.shards[i].entries = make([]verdict, b*verdictWays)
	}
	t.capacity = b * verdictWays * nShards
	n := 1
	for n < t.capacity {
		n <<= 1
	}
	t.hint = make([]atomic.Uint64, n)
	t.hintMask = uint64(n - 1)
	t.share = make([]atomic.Uint64, 1<<shareSlotBits)
	t.shareMax = uint64(max(minShare, t.capacity/shareDivisor))
	if t.shareMax > 0xffff {
		t.shareMax = 0xffff
	}
	t.sharePer = max(sticky, 1)
	return t
}

// clientVerdictKey is the key of a client verdict on a domain. It is
// never 0 and never a domain key by construction of the mix (a collision
// is as likely as one of two domain keys).
func clientVerdictKey(dom, client uint64) uint64 {
	k := dom ^ (client * 0x9e3779b97f4a7c15)
	k ^= k >> 31
	k *= 0xbf58476d1ce4e5b9
	k ^= k >> 29
	if k == 0 {
		k = 1
	}
	return k
}

// hintOne is what one entry adds to its slot of hint.
func hintOne(scope Scope) uint64 {
	if scope == ScopeClient {
		return 1<<32 | 1
	}
	return 1
}

// count adds (add true) or takes away an entry of scope on the domain
// dom from hint.
func (t *verdictTable) count(dom uint64, scope Scope, add bool) {
	d := hintOne(scope)
	if !add {
		d = -d
	}
	t.hint[dom&t.hintMask].Add(d)
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

// find returns the verdict that applies to a query for domain dom from
// the client with key client (0: unknown): the fleet verdict, else the
// client's own.
func (t *verdictTable) find(dom, client uint64, now uint32, hit bool) (verdict, bool) {
	h := t.hint[dom&t.hintMask].Load()
	if h == 0 {
		return verdict{}, false
	}
	if h&0xffffffff > h>>32 { // a fleet entry may be there
		if v, ok := t.lookup(dom, now, hit); ok {
			return v, true
		}
	}
	if client == 0 || h>>32 == 0 {
		return verdict{}, false
	}
	return t.lookup(clientVerdictKey(dom, client), now, hit)
}

// takeShare counts a new verdict of the client with key owner and reports
// whether the client was within its share.
func (t *verdictTable) takeShare(owner uint64, now uint32) bool {
	slot := &t.share[owner>>(64-shareSlotBits)]
	period := uint64(now / t.sharePer)
	for {
		old := slot.Load()
		cur, prev := old>>16&0xffff, old&0xffff
		switch p := old >> 32; {
		case p == period:
		case p+1 == period:
			cur, prev = 0, cur
		default:
			cur, prev = 0, 0
		}
		if cur+prev >= t.shareMax {
			return false
		}
		if slot.CompareAndSwap(old, period<<32|(cur+1)<<16|prev) {
			return true
		}
	}
}

// put stores a verdict made by the client with key owner (0: an
// operator's, outside any share). A full bucket gives up an expired
// verdict first, then the unprotected one with the fewest hits; when all
// are protected, or the owner is over its share, the new verdict is
// refused (the query itself is still blocked). Renewing a verdict that is
// in the table always succeeds.
func (t *verdictTable) put(v verdict, now uint32, owner uint64) bool {
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
	if owner != 0 && !t.takeShare(owner, now) {
		t.refusedShare.Add(1)
		return false
	}
	e := &shard.entries[victim]
	switch {
	case e.key == 0:
		t.used.Add(1)
	case e.until > now:
		t.evicted.Add(1)
	}
	if e.key != 0 {
		t.count(e.dom, e.scope, false)
	}
	t.count(v.dom, v.scope, true)
	*e = v
	return true
}

// removeDomain deletes every verdict on the domain dom, fleet and client
// ones, and returns how many were live. It scans the table: an
// operator's action, not the query path.
func (t *verdictTable) removeDomain(dom uint64, now uint32) int {
	live := 0
	for s := range t.shards {
		shard := &t.shards[s]
		shard.mu.Lock()
		for i := range shard.entries {
			e := &shard.entries[i]
			if e.key == 0 || e.dom != dom {
				continue
			}
			if e.until > now {
				live++
			}
			t.count(e.dom, e.scope, false)
			*e = verdict{}
			t.used.Add(-1)
		}
		shard.mu.Unlock()
	}
	return live
}

// each calls fn with every live verdict, shard by shard, under the
// shard's lock: fn must not call back into the table.
func (t *verdictTable) each(now uint32, fn func(v *verdict)) {
	for s := range t.shards {
		shard := &t.shards[s]
		shard.mu.Lock()
		for i := range shard.entries {
			if e := &shard.entries[i]; e.key != 0 && e.until > now {
				fn(e)
			}
		}
		shard.mu.Unlock()
	}
}
