package shield

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// Giving memory back after a load spike. A burst of queries (a flood, a
// slow upstream with thousands of queries in flight) grows the heap, and
// the Go runtime keeps what it freed: its next collection is due only
// when the heap reaches the goal set under load, and the scavenger returns
// pages slowly, so a resolver that idled at 22 MiB stayed at 85 MiB long
// after the load. One goroutine per process (however many shield blocks
// and reloads) looks at the runtime's memory every trimEvery and returns
// it with debug.FreeOSMemory when both hold:
//
//   - the heap holds more than its floor (the least it held since the
//     last return, which is the live data then) plus the collector's
//     usual headroom (GOGC percent of the floor, at least trimSlack): a
//     steady load keeps the heap below its goal and never qualifies;
//   - the program has gone quiet: it allocated less since the last look
//     than that excess, so it would not soon reuse it. Under load it
//     allocates far more, and nothing is returned while it lasts.
//
// It reads runtime/metrics only: the query path pays nothing. A return
// costs two garbage collections, once per load spike.

const (
	// trimEvery is how often the memory is looked at.
	trimEvery = 15 * time.Second
	// trimSlack is the least idle heap worth returning.
	trimSlack = 32 << 20
)

// The runtime/metrics the trimmer reads.
var trimMetrics = []string{
	"/memory/classes/heap/objects:bytes", // live objects and garbage not yet swept
	"/memory/classes/heap/unused:bytes",  // spans in use, slots empty
	"/memory/classes/heap/free:bytes",    // free pages still held from the OS
	"/gc/gogc:percent",
	"/gc/heap/allocs:bytes", // cumulative, for the allocation rate
}

// memUse is one reading of trimMetrics.
type memUse struct {
	held   uint64 // heap memory held from the OS: objects, unused and free
	gogc   uint64
	allocs uint64
}

func readMemUse(samples []metrics.Sample) memUse {
	metrics.Read(samples)
	v := func(i int) uint64 {
		if samples[i].Value.Kind() != metrics.KindUint64 {
			return 0 // not in this runtime
		}
		return samples[i].Value.Uint64()
	}
	return memUse{held: v(0) + v(1) + v(2), gogc: v(3), allocs: v(4)}
}

// trimmer decides when to return memory, from one reading to the next.
type trimmer struct {
	prev  memUse
	floor uint64 // the least heap held since the last return
}

func newTrimmer(first memUse) *trimmer { return &trimmer{prev: first, floor: first.held} }

// next takes a reading and reports whether to return memory now. After a
// return, the caller passes the reading that follows it to returned.
func (t *trimmer) next(cur memUse) bool {
	prev := t.prev
	t.prev = cur
	t.floor = min(t.floor, cur.held)
	if cur.gogc > 10000 {
		return false // the collector is off (GOGC=off): the operator's choice
	}
	excess := cur.held - t.floor
	if excess <= max(t.floor*cur.gogc/100, trimSlack) {
		return false
	}
	return cur.allocs-prev.allocs < excess
}

// returned records the reading after a return: the heap then is its new
// floor, and FreeOSMemory's own work is not the program's allocation.
func (t *trimmer) returned(after memUse) {
	t.prev, t.floor = after, after.held
}

// memTrim is the process-wide trimmer, held by every running Shield.
var memTrim = struct {
	sync.Mutex
	refs  int
	stopc chan struct{}
	done  chan struct{}
}{}

// memTrims counts the times the trimmer returned memory, for the tests.
var memTrims atomic.Int64

// holdMemTrim starts the trimmer if no Shield holds it yet.
func holdMemTrim() {
	memTrim.Lock()
	defer memTrim.Unlock()
	if memTrim.refs++; memTrim.refs > 1 {
		return
	}
	memTrim.stopc, memTrim.done = make(chan struct{}), make(chan struct{})
	go trimLoop(memTrim.stopc, memTrim.done, trimEvery)
}

// releaseMemTrim gives up a hold, and stops the trimmer with the last one.
func releaseMemTrim() {
	memTrim.Lock()
	defer memTrim.Unlock()
	if memTrim.refs--; memTrim.refs > 0 {
		return
	}
	close(memTrim.stopc)
	<-memTrim.done // trimLoop takes no lock
}

func trimLoop(stopc, done chan struct{}, every time.Duration) {
	defer close(done)
	samples := make([]metrics.Sample, len(trimMetrics))
	for i, name := range trimMetrics {
		samples[i].Name = name
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	t := newTrimmer(readMemUse(samples))
	for {
		select {
		case <-stopc:
			return
		case <-tick.C:
		}
		if cur := readMemUse(samples); t.next(cur) {
			// Two collections: the first moves the sync.Pool caches
			// (the buffers of the queries in flight) to their victim
			// cache, the second frees them, and returns the pages.
			runtime.GC()
			debug.FreeOSMemory()
			after := readMemUse(samples)
			t.returned(after)
			memTrims.Add(1)
			log.Infof("load over: heap down from %d MiB to %d MiB, returned to the OS", cur.held>>20, after.held>>20)
		}
	}
}
