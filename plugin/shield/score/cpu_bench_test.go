package score

import (
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// The CPU-time benchmarks measure what the wall-clock ones cannot on a
// loaded machine: the CPU time of the benchmark's own thread
// (getrusage RUSAGE_THREAD), reported as cpu-ns/op. Compare two builds
// by alternating their test binaries and taking medians.

const rusageThread = 1 // RUSAGE_THREAD (Linux)

func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuLoop runs f b.N times on a locked thread and reports its CPU time
// per call.
func cpuLoop(b *testing.B, f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.ResetTimer()
	start := threadCPU()
	for i := 0; i < b.N; i++ {
		f()
	}
	used := threadCPU() - start
	b.StopTimer()
	b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

func BenchmarkCPUFeaturesShort(b *testing.B) { cpuFeatures(b, shortName) }
func BenchmarkCPUFeatures190(b *testing.B)   { cpuFeatures(b, longName) }

func cpuFeatures(b *testing.B, name string) {
	e := mustEngine(b, Config{})
	lower := []byte(name[:len(name)-1])
	for i, c := range lower {
		lower[i] = lowerTab[c]
	}
	reg, _ := e.suffixes.registered(lower)
	var f Features
	cpuLoop(b, func() { lexical(name, reg-1, &f) })
}

func BenchmarkCPUScoreShort(b *testing.B) { cpuScore(b, shortName) }
func BenchmarkCPUScore190(b *testing.B)   { cpuScore(b, longName) }

// cpuScore is benchScore on the thread's CPU time.
func cpuScore(b *testing.B, name string) {
	e := mustEngine(b, Config{NoTunnel: true})
	q := Query{Name: name, Type: 1, Client: netip.MustParseAddr("192.0.2.1")}
	e.Score(q)
	cpuLoop(b, func() { e.Score(q) })
}

func BenchmarkCPUReference190(b *testing.B) {
	cpuLoop(b, func() {
		var all uint64
		for j := 0; j < len(longName); j++ {
			all |= charFlags[longName[j]]
		}
		sinkFlags |= all
	})
}

// BenchmarkCPUScoreEncoded190 is the whole path with the tunnel detector
// on, for an encoded name asked again (it stays below the block
// threshold): the domain state and, since the name is encoded, the
// per-client and per-parent budgets.
func BenchmarkCPUScoreEncoded190(b *testing.B) {
	e := mustEngine(b, Config{})
	q := Query{Name: longName, Type: 1, Client: netip.MustParseAddr("192.0.2.1")}
	if r := e.Score(q); r.Action == Block {
		b.Fatal("blocked")
	}
	cpuLoop(b, func() {
		if r := e.Score(q); r.Action == Block {
			b.Fatal("blocked")
		}
	})
}
