package score

import (
	"sync"
	"sync/atomic"
)

// prevalence estimates, per registered domain, how many distinct clients
// used it without scoring (below the alert threshold) over the last
// prevalence window (7 days by default), in fixed memory.
//
// It is a sketch whose cells are 64-bit client bitmaps: a domain owns two
// cells of one 64-byte line (one cache miss per query), and a client sets
// one bit in each, chosen by different bits of its key. A cell's clients
// are counted by linear counting. Setting a bit twice changes nothing, so
// the sketch de-duplicates by itself. One client, however many domains it
// floods, sets the same bit in every cell: it adds at most one client to
// any domain.
//
// Errors: other domains that share a cell add bits, so a count errs high,
// towards "popular", which keeps a verdict client-scoped: the safe side
// (a tunnel on a busy resolver then goes fleet-wide with its K-th earner
// instead of at once). Earners (the clients whose own queries scored at
// or above block) are taken out of a count by clearing their bits, which
// also clears a non-earner that shares the bit: that errs low, the unsafe
// side. So a domain's count is the larger of its two cells' counts, not
// the smaller as in a count-min sketch: a non-earner is missed only when
// it shares an earner's bit in both cells. TestPrevalenceSketch measures
// both errors. At the threshold P the count is within one of the truth
// (two clients may share a bit).
//
// Decay: two generations of half the window each. Queries set bits in the
// current one; the count is over the union of both, so it covers between
// one half and the whole window. Changing generation clears the older
// one (once per half window, off the common path, like the history
// filters).
type prevalence struct {
	lines [2][]prevLine
	mask  uint64

	mu     sync.Mutex
	cur    atomic.Int32 // generation being written
	epoch  atomic.Uint32
	nextAt atomic.Uint32 // engine second the next generation starts
	half   uint32        // engine seconds of a generation
}

type prevLine [8]atomic.Uint64

// newPrevalence makes a sketch of lines 64-byte lines per generation (a
// power of two) whose generations last half engine seconds.
func newPrevalence(lines int, half uint32) *prevalence {
	n := 1
	for n < lines {
		n <<= 1
	}
	p := &prevalence{mask: uint64(n - 1), half: max(half, 1)}
	p.lines[0] = make([]prevLine, n)
	p.lines[1] = make([]prevLine, n)
	return p
}

func (p *prevalence) bytes() int { return 2 * len(p.lines[0]) * 64 }

// cells returns the line and the two cells of a domain key.
func (p *prevalence) cells(dom uint64) (line uint64, c1, c2 int) {
	line = (dom >> 20) & p.mask
	c1 = int(dom>>8) & 7
	c2 = (c1 + 1 + int(dom>>11&0xff)%7) & 7
	return
}

// clientBits returns a client's bit in the first and the second cell.
func clientBits(client uint64) (b1, b2 uint64) {
	return 1 << (client & 63), 1 << (client >> 6 & 63)
}

// record notes that the client with key client used the domain dom
// without scoring, at engine second now.
func (p *prevalence) record(dom, client uint64, now uint32) {
	if now >= p.nextAt.Load() {
		p.rotate(now)
	}
	line, c1, c2 := p.cells(dom)
	l := &p.lines[p.cur.Load()][line]
	b1, b2 := clientBits(client)
	if l[c1].Load()&b1 == 0 {
		l[c1].Or(b1)
	}
	if l[c2].Load()&b2 == 0 {
		l[c2].Or(b2)
	}
}

// start sets the generation of engine second now without clearing
// anything: the lines are zero when the sketch is made.
func (p *prevalence) start(now uint32) {
	epoch := now / p.half
	p.epoch.Store(epoch)
	p.nextAt.Store((epoch + 1) * p.half)
}

// rotate starts the generation of engine second now, clearing the older
// one (both, after a whole window without queries).
func (p *prevalence) rotate(now uint32) {
	if !p.mu.TryLock() {
		return
	}
	defer p.mu.Unlock()
	epoch := now / p.half
	if old := p.epoch.Load(); old != epoch {
		next := 1 - p.cur.Load()
		if epoch != old+1 {
			clearLines(p.lines[1-next])
		}
		clearLines(p.lines[next])
		p.cur.Store(next)
		p.epoch.Store(epoch)
	}
	p.nextAt.Store((epoch + 1) * p.half)
}

// others estimates the distinct clients that used the domain dom without
// scoring, leaving out the clients with the keys in except.
func (p *prevalence) others(dom uint64, except []uint64) int {
	line, c1, c2 := p.cells(dom)
	a, b := &p.lines[0][line], &p.lines[1][line]
	m1, m2 := a[c1].Load()|b[c1].Load(), a[c2].Load()|b[c2].Load()
	for _, k := range except {
		b1, b2 := clientBits(k)
		m1 &^= b1
		m2 &^= b2
	}
	// distinct64 (feedback.go) is linear counting over 64 bits.
	return max(distinct64(m1), distinct64(m2))
}

func clearLines(ls []prevLine) {
	for i := range ls {
		for j := range ls[i] {
			ls[i][j].Store(0)
		}
	}
}
