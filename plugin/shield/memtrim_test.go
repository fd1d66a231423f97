package shield

import (
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

// TestTrimmerDecides: memory is returned once the heap holds more than its
// floor plus the collector's headroom (at least trimSlack) and the
// program allocated less than that excess since the last look; not under
// load, not within the headroom, not with GOGC=off.
func TestTrimmerDecides(t *testing.T) {
	const mib = 1 << 20
	type step struct {
		held, allocs uint64 // MiB; allocs cumulative
		gogc         uint64
		want         bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"idle", []step{{20, 1, 100, false}, {20, 2, 100, false}, {21, 3, 100, false}}},
		{"steady load within the headroom", []step{{20, 100, 100, false}, {40, 400, 100, false}, {45, 700, 100, false}, {30, 1000, 100, false}}},
		{"spike, then quiet", []step{{20, 200, 100, false}, {80, 900, 100, false}, {80, 901, 100, true}}},
		{"under load nothing", []step{{20, 100, 100, false}, {120, 1000, 100, false}, {120, 2000, 100, false}}},
		{"big floor: headroom of GOGC", []step{{200, 10, 100, false}, {390, 11, 100, false}, {410, 12, 100, true}}},
		{"GOGC=50 on a big floor", []step{{200, 10, 50, false}, {310, 11, 50, true}}},
		{"GOGC=off", []step{{20, 1, 1 << 62, false}, {200, 2, 1 << 62, false}}},
		{"floor follows the heap down", []step{{80, 1, 100, false}, {20, 2, 100, false}, {60, 3, 100, true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tr *trimmer
			for i, st := range tc.steps {
				u := memUse{held: st.held * mib, allocs: st.allocs * mib, gogc: st.gogc}
				if tr == nil {
					tr = newTrimmer(u)
					continue
				}
				if got := tr.next(u); got != st.want {
					t.Errorf("step %d (%d MiB held, floor %d MiB): %v, want %v", i, st.held, tr.floor/mib, got, st.want)
				}
			}
		})
	}
	// After a return, the heap then is the floor: the same heap does not
	// qualify again.
	tr := newTrimmer(memUse{held: 20 * mib, gogc: 100})
	if !tr.next(memUse{held: 90 * mib, allocs: 1 * mib, gogc: 100}) {
		t.Fatal("spike not returned")
	}
	tr.returned(memUse{held: 60 * mib, allocs: 1 * mib, gogc: 100})
	if tr.next(memUse{held: 61 * mib, allocs: 2 * mib, gogc: 100}) {
		t.Error("returned again right after a return")
	}
}

// TestMemTrimOnePerProcess: the trimmer runs once however many shields
// hold it, and stops with the last hold (OnShutdown runs on every
// reload, so a goroutine left running would leak).
func TestMemTrimOnePerProcess(t *testing.T) {
	holdMemTrim()
	memTrim.Lock()
	done := memTrim.done
	memTrim.Unlock()
	holdMemTrim()
	memTrim.Lock()
	if memTrim.done != done || memTrim.refs != 2 {
		t.Errorf("a second hold started another trimmer (refs %d)", memTrim.refs)
	}
	memTrim.Unlock()
	releaseMemTrim()
	select {
	case <-done:
		t.Fatal("stopped while a shield still holds it")
	case <-time.After(10 * time.Millisecond):
	}
	releaseMemTrim()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("still running after the last release")
	}
}

// TestTrimLoopReturnsMemory: after a spike of garbage and a quiet
// interval, the loop returns memory, and it stops when told.
func TestTrimLoopReturnsMemory(t *testing.T) {
	// Earlier tests in this process leave garbage and a grown heap: start
	// from a collected heap, and make the spike well over the headroom
	// the trimmer allows (GOGC percent of the heap it holds).
	debug.FreeOSMemory()
	samples := make([]metrics.Sample, len(trimMetrics))
	for i, name := range trimMetrics {
		samples[i].Name = name
	}
	held := readMemUse(samples).held
	chunks := max(1024, int((2*held+(64<<20))/(128<<10)))
	stopc, done := make(chan struct{}), make(chan struct{})
	before := memTrims.Load()
	go trimLoop(stopc, done, 50*time.Millisecond)
	time.Sleep(100 * time.Millisecond) // the loop's first reading is before the spike
	spike := make([][]byte, 0, chunks)
	for range cap(spike) {
		spike = append(spike, make([]byte, 128<<10)) // at least 128 MiB in all
	}
	spike = nil
	deadline := time.Now().Add(10 * time.Second)
	for memTrims.Load() == before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	close(stopc)
	<-done
	if memTrims.Load() == before {
		t.Errorf("%d MiB of garbage and a quiet program, and nothing returned", chunks/8)
	}
}
