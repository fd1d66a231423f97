package score

import (
	"sync"
	"sync/atomic"
)

// Fixed-size state. Every table is allocated once, in New, and never
// grows: an insert into a full bucket evicts.

const ways = 8 // entries per bucket of the domain and client tables

// domainState is what the engine keeps per registered domain. Counters
// come in pairs for two epochs (current, previous) of a window; a window's
// value is their sum, so it covers between one and two window lengths.
type domainState struct {
	key      uint64
	last     uint32 // engine seconds of the last query
	first    uint32 // engine seconds when first seen; 0: known from before (Bloom filter)
	sEpoch   uint32 // short-window epoch of the counters
	lEpoch   uint32 // long-window epoch of the counters
	sUniq    [2]uint16
	sEnc     [2]uint16
	lUniq    [2]uint32 // unique prefixes
	lEnc     [2]uint32 // unique prefixes that look encoded
	lBits    [2]uint32 // information bits of the unique prefixes
	lQ       [2]uint32 // queries
	lNonIP   [2]uint32 // TXT, NULL and private-type queries
	lResp    [2]uint32 // responses seen
	lNX      [2]uint32 // NXDOMAIN responses
	clients  [4]uint16 // fingerprints of distinct clients in the long window
	nClients uint8     // distinct clients, saturating at len(clients)+1
}

func sum2(a [2]uint32) uint32 { return a[0] + a[1] }
func sum2s(a [2]uint16) int   { return int(a[0]) + int(a[1]) }

// roll moves the pairs forward to epoch e.
func rollPair32(p *[2]uint32, from, to uint32) {
	switch {
	case to == from:
	case to == from+1:
		p[1], p[0] = p[0], 0
	default:
		p[0], p[1] = 0, 0
	}
}

func rollPair16(p *[2]uint16, from, to uint32) {
	switch {
	case to == from:
	case to == from+1:
		p[1], p[0] = p[0], 0
	default:
		p[0], p[1] = 0, 0
	}
}

func (d *domainState) roll(sEpoch, lEpoch uint32) {
	if d.sEpoch != sEpoch {
		rollPair16(&d.sUniq, d.sEpoch, sEpoch)
		rollPair16(&d.sEnc, d.sEpoch, sEpoch)
		d.sEpoch = sEpoch
	}
	if d.lEpoch != lEpoch {
		for _, p := range []*[2]uint32{&d.lUniq, &d.lEnc, &d.lBits, &d.lQ, &d.lNonIP, &d.lResp, &d.lNX} {
			rollPair32(p, d.lEpoch, lEpoch)
		}
		if lEpoch != d.lEpoch+1 {
			d.clients = [4]uint16{}
			d.nClients = 0
		}
		d.lEpoch = lEpoch
	}
}

// addClient records a client fingerprint for prevalence.
func (d *domainState) addClient(fp uint16) {
	for i := 0; i < int(d.nClients) && i < len(d.clients); i++ {
		if d.clients[i] == fp {
			return
		}
	}
	if int(d.nClients) < len(d.clients) {
		d.clients[d.nClients] = fp
	}
	if int(d.nClients) <= len(d.clients) {
		d.nClients++
	}
}

// clientState is what the engine keeps per client (IPv4 /32, IPv6 /64).
type clientState struct {
	key     uint64
	last    uint32
	sEpoch  uint32
	nx      [2]uint64 // bitmap of NXDOMAIN registered domains, per short epoch
	ok      [2]uint16 // NOERROR answers for new, unpopular domains, per short epoch
	suspect uint32    // engine seconds until which the client is suspect
	profile nxProfile // what the NXDOMAIN names looked like (shape.go)
}

// roll moves the per-epoch counters to short epoch e. A whole window
// without an NXDOMAIN clears the profile.
func (c *clientState) roll(e uint32) {
	if c.sEpoch == e {
		return
	}
	if e == c.sEpoch+1 {
		c.nx[1], c.nx[0] = c.nx[0], 0
		c.ok[1], c.ok[0] = c.ok[0], 0
	} else {
		c.nx, c.ok = [2]uint64{}, [2]uint16{}
	}
	if c.nx[1] == 0 {
		c.profile = nxProfile{}
	}
	c.sEpoch = e
}

// odds returns (distinct NXDOMAIN domains + 1) / (NOERROR answers + 1) as
// they would be in short epoch e, without changing c.
func (c *clientState) odds(e uint32) float64 {
	nx, ok := c.nx, c.ok
	switch {
	case e == c.sEpoch:
	case e == c.sEpoch+1:
		nx[1], nx[0], ok[1], ok[0] = nx[0], 0, ok[0], 0
	default:
		return 0
	}
	return float64(distinct64(nx[0]|nx[1])+1) / float64(int(ok[0])+int(ok[1])+1)
}

// shard is a lock and a slice of buckets of ways entries.
type domainShard struct {
	mu      sync.Mutex
	entries []domainState
	_       [40]byte // keep shard locks on separate cache lines
}

type clientShard struct {
	mu      sync.Mutex
	entries []clientState
	_       [40]byte
}

const nShards = 64

// domainTable is a sharded, set-associative table: a key lives in one
// bucket of ways entries; a new key replaces the least recently used.
type domainTable struct {
	shards   [nShards]domainShard
	buckets  uint64 // per shard
	used     atomic.Int64
	evicted  atomic.Uint64
	capacity int
}

func newDomainTable(size int) *domainTable {
	t := &domainTable{}
	per := roundBuckets(size)
	t.buckets = uint64(per)
	for i := range t.shards {
		t.shards[i].entries = make([]domainState, per*ways)
	}
	t.capacity = per * ways * nShards
	return t
}

// roundBuckets returns the buckets per shard for about size entries in
// all: a power of two, at least 1.
func roundBuckets(size int) int {
	per := size / (nShards * ways)
	b := 1
	for b < per {
		b <<= 1
	}
	return b
}

// get returns the entry for key, locking its shard; the caller must call
// unlock. With create false it returns nil when key is absent. now is the
// engine clock for LRU.
func (t *domainTable) get(key uint64, create bool, now uint32) (*domainState, *sync.Mutex, bool) {
	sh := &t.shards[key>>58]
	sh.mu.Lock()
	b := (key & (t.buckets - 1)) * ways
	bucket := sh.entries[b : b+ways]
	victim := -1
	for i := range bucket {
		e := &bucket[i]
		if e.key == key {
			return e, &sh.mu, false
		}
		if e.key == 0 {
			if victim < 0 || bucket[victim].key != 0 {
				victim = i
			}
			continue
		}
		if victim < 0 || (bucket[victim].key != 0 && e.last < bucket[victim].last) {
			victim = i
		}
	}
	if !create {
		return nil, &sh.mu, false
	}
	if bucket[victim].key == 0 {
		t.used.Add(1)
	} else {
		t.evicted.Add(1)
	}
	bucket[victim] = domainState{key: key, last: now}
	return &bucket[victim], &sh.mu, true
}

type clientTable struct {
	shards   [nShards]clientShard
	buckets  uint64
	used     atomic.Int64
	evicted  atomic.Uint64
	capacity int
}

func newClientTable(size int) *clientTable {
	t := &clientTable{}
	per := roundBuckets(size)
	t.buckets = uint64(per)
	for i := range t.shards {
		t.shards[i].entries = make([]clientState, per*ways)
	}
	t.capacity = per * ways * nShards
	return t
}

func (t *clientTable) get(key uint64, create bool, now uint32) (*clientState, *sync.Mutex) {
	sh := &t.shards[key>>58]
	sh.mu.Lock()
	b := (key & (t.buckets - 1)) * ways
	bucket := sh.entries[b : b+ways]
	victim := -1
	for i := range bucket {
		e := &bucket[i]
		if e.key == key {
			return e, &sh.mu
		}
		if e.key == 0 {
			if victim < 0 || bucket[victim].key != 0 {
				victim = i
			}
			continue
		}
		if victim < 0 || (bucket[victim].key != 0 && e.last < bucket[victim].last) {
			victim = i
		}
	}
	if !create {
		return nil, &sh.mu
	}
	if bucket[victim].key == 0 {
		t.used.Add(1)
	} else {
		t.evicted.Add(1)
	}
	bucket[victim] = clientState{key: key, last: now}
	return &bucket[victim], &sh.mu
}

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
	buckets  uint64
	used     atomic.Int64
	evicted  atomic.Uint64
	refused  atomic.Uint64
	capacity int
}

func newVerdictTable(size int) *verdictTable {
	t := &verdictTable{}
	per := size / (nShards * verdictWays)
	b := 1
	for b < per {
		b <<= 1
	}
	t.buckets = uint64(b)
	for i := range t.shards {
		t.shards[i].entries = make([]verdict, b*verdictWays)
	}
	t.capacity = b * verdictWays * nShards
	return t
}

// lookup returns the live verdict for key and counts the hit when hit is
// true.
func (t *verdictTable) lookup(key uint64, now uint32, hit bool) (verdict, bool) {
	sh := &t.shards[key>>58]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := (key & (t.buckets - 1)) * verdictWays
	for i := b; i < b+verdictWays; i++ {
		v := &sh.entries[i]
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
	sh := &t.shards[v.key>>58]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := (v.key & (t.buckets - 1)) * verdictWays
	victim := -1
	for i := b; i < b+verdictWays; i++ {
		e := &sh.entries[i]
		if e.key == v.key {
			v.hits = e.hits
			*e = v
			return true
		}
		switch {
		case e.key == 0 || e.until <= now:
			if victim < 0 || (sh.entries[victim].key != 0 && sh.entries[victim].until > now) {
				victim = int(i)
			}
		case e.hits < protectHits:
			if victim < 0 || (sh.entries[victim].until > now && sh.entries[victim].key != 0 && e.hits < sh.entries[victim].hits) {
				victim = int(i)
			}
		}
	}
	if victim < 0 {
		t.refused.Add(1)
		return false
	}
	e := &sh.entries[victim]
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
	sh := &t.shards[key>>58]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := (key & (t.buckets - 1)) * verdictWays
	for i := b; i < b+verdictWays; i++ {
		if sh.entries[i].key == key {
			sh.entries[i] = verdict{}
			t.used.Add(-1)
			return true
		}
	}
	return false
}

// seenTable answers "was this exact name queried recently?" in constant
// memory: a direct-mapped table of 32-bit fingerprints. A collision
// forgets an older name, which then counts as new once more.
type seenTable struct {
	slots []atomic.Uint32
	mask  uint64
}

func newSeenTable(size int) *seenTable {
	n := 1
	for n < size {
		n <<= 1
	}
	return &seenTable{slots: make([]atomic.Uint32, n), mask: uint64(n - 1)}
}

// add records h and reports whether it was new.
func (s *seenTable) add(h uint64) bool {
	fp := uint32(h>>32) | 1
	slot := &s.slots[h&s.mask]
	if slot.Load() == fp {
		return false
	}
	slot.Store(fp)
	return true
}

// bloom is a pair of rotating Bloom filters: a key added is remembered
// for one to two rotation periods.
type bloom struct {
	mu    sync.Mutex
	cur   atomic.Int32 // index of the filter being written
	bits  [2][]atomic.Uint64
	mask  uint64
	epoch atomic.Uint32
}

func newBloom(bitsEach int) *bloom {
	n := 64
	for n < bitsEach {
		n <<= 1
	}
	b := &bloom{mask: uint64(n - 1)}
	b.bits[0] = make([]atomic.Uint64, n/64)
	b.bits[1] = make([]atomic.Uint64, n/64)
	return b
}

func (b *bloom) positions(h uint64) [3]uint64 {
	h2 := h>>33 | h<<31
	return [3]uint64{h & b.mask, (h + h2) & b.mask, (h + 2*h2) & b.mask}
}

// testAndAdd reports whether h was in either filter, and adds it to the
// current one.
func (b *bloom) testAndAdd(h uint64, epoch uint32) bool {
	if e := b.epoch.Load(); e != epoch && b.mu.TryLock() {
		if b.epoch.Load() != epoch {
			next := 1 - b.cur.Load()
			if epoch != e+1 {
				clearBits(b.bits[1-next])
			}
			clearBits(b.bits[next])
			b.cur.Store(next)
			b.epoch.Store(epoch)
		}
		b.mu.Unlock()
	}
	pos := b.positions(h)
	in := [2]bool{true, true}
	for f := 0; f < 2; f++ {
		for _, p := range pos {
			if b.bits[f][p>>6].Load()&(1<<(p&63)) == 0 {
				in[f] = false
				break
			}
		}
	}
	cur := b.bits[b.cur.Load()]
	for _, p := range pos {
		cur[p>>6].Or(1 << (p & 63))
	}
	return in[0] || in[1]
}

func (b *bloom) test(h uint64) bool {
	pos := b.positions(h)
	for f := 0; f < 2; f++ {
		in := true
		for _, p := range pos {
			if b.bits[f][p>>6].Load()&(1<<(p&63)) == 0 {
				in = false
				break
			}
		}
		if in {
			return true
		}
	}
	return false
}

func clearBits(w []atomic.Uint64) {
	for i := range w {
		w[i].Store(0)
	}
}
