//go:build linux

package audit

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
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

// glueSim holds what the glue has at hand when it decides to block: the
// question name as the DNS library unpacked it, the client's address, the
// list's name and version.
type glueSim struct {
	names   []string
	rules   []string
	remote  *net.UDPAddr
	reasons []string
}

func newGlueSim() *glueSim {
	g := &glueSim{
		remote:  &net.UDPAddr{IP: net.ParseIP("192.0.2.77"), Port: 53000},
		reasons: []string{"high_entropy", "long_label", "encoded_label"},
	}
	for i := range 1024 {
		rule := "tracker" + strconv.Itoa(i) + ".ads.example"
		g.names = append(g.names, "www."+rule+".")
		g.rules = append(g.rules, rule)
	}
	return g
}

var typeNames = map[uint16]string{1: "A", 28: "AAAA", 16: "TXT"}

// listRecord builds the record of a list block the way Shield.record does.
func (g *glueSim) listRecord(i int) Record {
	q := g.names[i%len(g.names)]
	return Record{
		Time:        time.Now(),
		Action:      ActionBlock,
		Client:      g.remote.AddrPort().Addr().Unmap(),
		QName:       q,
		QType:       typeNames[1],
		Mode:        "enforce",
		Observer:    "ns1",
		Ruleset:     "big",
		RuleName:    g.rules[i%len(g.rules)],
		ListVersion: "sha256:0123456789abcdef",
	}
}

// detectRecord builds the record of a detection the way
// Shield.recordDetection does. The reasons are a slice the scoring engine
// hands over (the glue passes it on unchanged).
func (g *glueSim) detectRecord(i int) Record {
	r := g.listRecord(i)
	r.ListVersion = ""
	r.Ruleset, r.RuleName, r.Score, r.Reasons, r.Domain = "detect", "tunnel", 87, g.reasons, "ads.example"
	return r
}

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
func pacedRun(b *testing.B, n, rate int, log bool, build func(int) Record) (proc, thread time.Duration, allocs uint64, dropped uint64) {
	path := filepath.Join(b.TempDir(), "audit.json")
	s, err := OpenFile(path, 20<<20, 1)
	if err != nil {
		b.Fatal(err)
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

// BenchmarkRecordPath measures a record's whole path at 20,000 records a
// second (a resolver at 80k QPS with a quarter of its queries blocked).
// Each round first runs the same loop without logging, and subtracts the
// CPU time of that pacing from the figures.
func BenchmarkRecordPath(b *testing.B) {
	g := newGlueSim()
	for _, bc := range []struct {
		name  string
		build func(int) Record
	}{
		{"list", g.listRecord},
		{"detect", g.detectRecord},
	} {
		b.Run(bc.name, func(b *testing.B) {
			const rate = 20_000
			pp, pt, _, _ := pacedRun(b, b.N, rate, false, bc.build)
			b.ResetTimer()
			proc, thread, allocs, dropped := pacedRun(b, b.N, rate, true, bc.build)
			n := float64(b.N)
			b.ReportMetric(float64(proc-pp)/n, "cpu-ns/rec")
			b.ReportMetric(float64(thread-pt)/n, "query-ns/rec")
			b.ReportMetric(float64(allocs)/n, "allocs/rec")
			b.ReportMetric(float64(dropped), "dropped")
		})
	}
}
