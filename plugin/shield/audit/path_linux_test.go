package audit

import (
	"bytes"
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
//	allocs/rec    heap allocations per record, every goroutine
//	dropped       records dropped (should be 0)
//
// BenchmarkRecordQuery measures the query goroutine's part alone: building
// the record and Log, in ns/op and allocs/op.
//
// Run with a fixed count so every round logs the same records, e.g.
//
//	go test -run '^$' -bench 'Record(Path|Query)' -benchtime 100000x -count 5 ./plugin/shield/audit/

// countSink counts the lines that reach the file.
type countSink struct {
	Sink
	lines atomic.Int64
}

func (s *countSink) Write(p []byte) error {
	n := bytes.Count(p, []byte{'\n'})
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

// pacedRun logs n records at rate per second from one goroutine (when log
// is true; otherwise it only keeps the pace), waits until every accepted
// record is in the file, and returns the process's CPU time, the
// allocations and the drops.
func pacedRun(b *testing.B, n, rate int, log, toFile bool, build func(int) Record) (proc time.Duration, allocs uint64, dropped uint64) {
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
	done := make(chan struct{})
	go func() {
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
		close(done)
	}()
	<-done
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
	return proc, ms1.Mallocs - ms0.Mallocs, dropped
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
			pp, _, _ := pacedRun(b, b.N, rate, false, bc.toFile, bc.build)
			b.ResetTimer()
			proc, allocs, dropped := pacedRun(b, b.N, rate, true, bc.toFile, bc.build)
			n := float64(b.N)
			b.ReportMetric(float64(proc-pp)/n, "cpu-ns/rec")
			b.ReportMetric(float64(allocs)/n, "allocs/rec")
			b.ReportMetric(float64(dropped), "dropped")
		})
	}
}

// BenchmarkRecordQuery measures what the query's goroutine spends on a
// record: building it as the glue does and Log. Records are logged in
// bursts smaller than the queue, and the clock stops while the writer
// drains each burst, so no record is dropped (a drop is cheaper).
func BenchmarkRecordQuery(b *testing.B) {
	g := newGlueSim()
	for _, bc := range []struct {
		name  string
		build func(int) Record
	}{
		{"list", g.listRecord},
		{"detect", g.detectRecord},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cs := &countSink{Sink: nullSink{}}
			w := NewWriter(cs, Options{})
			defer w.Close()
			b.ReportAllocs()
			const burst = 1024
			for i := 0; i < b.N; i++ {
				w.Log(bc.build(i))
				if i%burst == burst-1 {
					b.StopTimer()
					for cs.lines.Load()+int64(w.Dropped()) < int64(i+1) {
						time.Sleep(100 * time.Microsecond)
					}
					b.StartTimer()
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(w.Dropped()), "dropped")
		})
	}
}
