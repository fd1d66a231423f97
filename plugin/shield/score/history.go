package score

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Without history, unknown is not new. The first-seen history says
// whether the resolver saw a registered domain in the last one to two
// long windows. An engine that started a minute ago saw almost nothing,
// so every domain would be "newly seen" to it: after a start or a
// Corefile reload that lost the history, newly_seen would add its points
// to every query. So newly_seen gives points only once the history covers
// one long window (24 hours by default): from historyFrom plus the long
// window on. A handover (Handover) and a loaded state file (LoadState)
// carry historyFrom, so a reload or a restart with a state file keeps the
// detector running, and a state file saved an hour after a first start
// still waits out the other 23 hours. Until then the domain is still
// recorded as seen, and "first seen now" still counts for the suspect-client
// rule (score.go), whose own evidence is the client's NXDOMAIN burst.

// setHistoryFrom records when the first-seen history began. It runs
// before the engine scores its first query.
func (e *Engine) setHistoryFrom(t time.Time) {
	e.historyFrom = t
	e.newlyFrom = e.engineSecond(t.Add(e.cfg.LongWindow))
}

// SetHistoryFrom sets when the engine's first-seen history began, for a
// replay that stands for a resolver that has been running for a while
// (shieldctl eval, the corpus tests). It must be called before the engine
// scores its first query.
func (e *Engine) SetHistoryFrom(t time.Time) { e.setHistoryFrom(t) }

// NewlySeenFrom returns the time from which newly_seen gives points: when
// the engine's first-seen history covers one long window.
func (e *Engine) NewlySeenFrom() time.Time { return e.wallTime(e.newlyFrom) }

// HistoryFrom returns when the engine's first-seen history began.
func (e *Engine) HistoryFrom() time.Time { return e.historyFrom }

// engineSecond returns the engine second of the wall-clock time t: 1 at
// or before start, and at most math.MaxUint32.
func (e *Engine) engineSecond(t time.Time) uint32 {
	d := t.Sub(e.start)
	if d < 0 {
		return 1
	}
	if s := d / time.Second; s < math.MaxUint32 {
		return uint32(s) + 1
	}
	return math.MaxUint32
}

// wallTime returns the wall-clock time of engine second s (s >= 1).
func (e *Engine) wallTime(s uint32) time.Time {
	return e.start.Add(time.Duration(s-1) * time.Second)
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
