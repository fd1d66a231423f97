package audit

import (
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The benchmarks in this file measure the whole path of an audit record,
// from the block decision to the bytes in the file: the record built as
// the plugin glue builds it (queryRecord, record and recordDetection in
// plugin/shield), Log, the hand-over to the writer goroutine, encoding,
// batching, and the write to a real file that rotates. They use only
// NewWriter, Options, OpenFile, Record and Log, so the same file measures
// an older version of the package.
//
// Records arrive at a steady rate, as queries do, not in one burst: a
// burst lets any writer coalesce everything, which a resolver never sees.
// The reported metrics:
//
//	cpu-ns/rec    CPU time of the whole process (every goroutine, GC
//	              included) per record, pacing subtracted: what a record
//	              costs the resolver's cores
//	query-ns/rec  CPU time of the goroutine that logs (locked to its
//	              thread) per record, pacing subtracted: the query's part
//	allocs/rec    heap allocations per record, every goroutine
//	dropped       records dropped (should be 0)
//
// Run with a fixed count so every round logs the same records, e.g.
//
//	go test -run '^$' -bench RecordPath -benchtime 100000x -count 5 ./plugin/shield/audit/

// countSink counts the lines that reach the file.
type countSink struct {
	Sink
	lines atomic.Int64
}

func (s *countSink) Write(p []byte) error {
	n := 0
	for _, c := range p {
		if c == '\n' {
			n++
		}
	}
	err := s.Sink.Write(p)
	s.lines.Add(int64(n))
	return err
}

func cpuTime(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rusageThread is RUSAGE_THREAD on Linux.
const rusageThread = 1

// pacedRun logs n records at rate per second from one goroutine locked to
// its thread (when log is true; otherwise it only keeps the pace), waits
// until every accepted record is in the file, and returns the process's
// and the logging thread's CPU time, the allocations and the drops.
func pacedRun(b *testing.B, n, rate int, log, toFile bool, build func(int) Record) (proc, thread time.Duration, allocs uint64, dropped uint64) {
	path := filepath.Join(b.TempDir(), "audit.json")
	var s Sink = nullSink{}
	if toFile {
		f, err := OpenFile(path, 20<<20, 1)
		if err != nil {
			b.Fatal(err)
		}
		s = f
	}
	cs := &countSink{Sink: s}
	w := NewWriter(cs, Options{})
	runtime.GC()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	p0 := cpuTime(syscall.RUSAGE_SELF)
	done := make(chan time.Duration)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		t0 := cpuTime(rusageThread)
		start := time.Now()
		per := time.Second / time.Duration(rate)
		for i := range n {
			if log {
				if !w.Log(build(i)) {
					dropped++
				}
			} else {
				_ = build(i)
			}
			// Keep the pace: sleep whenever a millisecond ahead.
			if ahead := time.Duration(i+1)*per - time.Since(start); ahead > time.Millisecond {
				time.Sleep(ahead)
			}
		}
		done <- cpuTime(rusageThread) - t0
	}()
	thread = <-done
	want := int64(n) - int64(dropped)
	deadline := time.Now().Add(30 * time.Second)
	for log && cs.lines.Load() < want && time.Now().Before(deadline) {
		time.Sleep(100 * time.Microsecond)
	}
	proc = cpuTime(syscall.RUSAGE_SELF) - p0
	runtime.ReadMemStats(&ms1)
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	if log && cs.lines.Load() != want {
		b.Fatalf("%d records in the file, want %d", cs.lines.Load(), want)
	}
	os.RemoveAll(filepath.Dir(path))
	return proc, thread, ms1.Mallocs - ms0.Mallocs, dropped
}

// nullSink throws the bytes away: with it the benchmark measures what
// the record costs before the kernel copies it into the file.
type nullSink struct{}

func (nullSink) Write([]byte) error { return nil }
func (nullSink) Close() error       { return nil }

// BenchmarkRecordPath measures a record's whole path at 20,000 records a
// second (a resolver at 80k QPS with a quarter of its queries blocked).
// Each round first runs the same loop without logging, and subtracts the
// CPU time of that pacing from the figures. The "null" variants write to
// a sink that discards the bytes, which separates the write system call
// from the rest.
func BenchmarkRecordPath(b *testing.B) {
	g := newGlueSim()
	for _, bc := range []struct {
		name   string
		build  func(int) Record
		toFile bool
	}{
		{"list", g.listRecord, true},
		{"detect", g.detectRecord, true},
		{"list-null", g.listRecord, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			const rate = 20_000
			pp, pt, _, _ := pacedRun(b, b.N, rate, false, bc.toFile, bc.build)
			b.ResetTimer()
			proc, thread, allocs, dropped := pacedRun(b, b.N, rate, true, bc.toFile, bc.build)
			n := float64(b.N)
			b.ReportMetric(float64(proc-pp)/n, "cpu-ns/rec")
			b.ReportMetric(float64(thread-pt)/n, "query-ns/rec")
			b.ReportMetric(float64(allocs)/n, "allocs/rec")
			b.ReportMetric(float64(dropped), "dropped")
		})
	}
}
