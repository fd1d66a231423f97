package shield

import (
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
// and reloads) looks at the runtime's memory every trimEvery and, when the
// heap holds much more than its live data and the garbage collector's
// usual headroom, and the program has gone quiet, returns the memory with
// debug.FreeOSMemory. It reads runtime/metrics only: the query path pays
// nothing.

const (
	// trimEvery is how often the memory is looked at.
	trimEvery = 15 * time.Second
	// trimSlack is how much idle heap is tolerated beyond the collector's
	// headroom before it is returned.
	trimSlack = 32 << 20
)

// The runtime/metrics the trimmer reads.
var trimMetrics = []string{
	"/memory/classes/heap/objects:bytes", // live objects and garbage not yet swept
	"/memory/classes/heap/unused:bytes",  // spans in use, slots empty
	"/memory/classes/heap/free:bytes",    // free pages still held from the OS
	"/gc/heap/live:bytes",                // live heap as of the last collection
	"/gc/gogc:percent",
	"/gc/heap/allocs:bytes", // cumulative, for the allocation rate
}

// memUse is one reading of trimMetrics.
type memUse struct {
	held   uint64 // heap memory held from the OS: objects, unused and free
	live   uint64
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
	return memUse{held: v(0) + v(1) + v(2), live: v(3), gogc: v(4), allocs: v(5)}
}

// shouldTrim reports whether now is the time to return memory: the heap
// holds more than its live data, the collector's headroom (GOGC percent
// of it) and trimSlack, and less was allocated since the last reading
// than that idle excess, so the program would not soon reuse it. Under
// load the allocation rate keeps it from running; a resolver that serves
// a steady rate keeps its heap near the goal and never qualifies.
func shouldTrim(prev, cur memUse) bool {
	if cur.held <= cur.live || cur.gogc > 10000 {
		return false // nothing idle, or the collector is off (GOGC=off): the operator's choice
	}
	excess := cur.held - cur.live
	headroom := cur.live * cur.gogc / 100
	if excess <= headroom+trimSlack {
		return false
	}
	return cur.allocs-prev.allocs < excess
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
	prev := readMemUse(samples)
	for {
		select {
		case <-stopc:
			return
		case <-tick.C:
		}
		cur := readMemUse(samples)
		if shouldTrim(prev, cur) {
			debug.FreeOSMemory()
			cur = readMemUse(samples) // FreeOSMemory's collection is not the program's allocation
			memTrims.Add(1)
		}
		prev = cur
	}
}
