package audit

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memSink collects what is written. If entered is set, Write sends on it
// once per call before waiting for release (when set) to be closed.
type memSink struct {
	entered chan struct{}
	release chan struct{}
	err     error // returned by every Write

	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	closed int
}

func (s *memSink) Write(p []byte) error {
	if s.entered != nil {
		s.entered <- struct{}{}
	}
	if s.release != nil {
		<-s.release
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed > 0 {
		return errors.New("write after close")
	}
	s.buf.Write(p)
	s.writes++
	return s.err
}

func (s *memSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed++
	return nil
}

// lines decodes every line written so far and returns the question names.
func (s *memSink) lines(t *testing.T) []string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for line := range bytes.Lines(s.buf.Bytes()) {
		d := decodeLine(t, line)
		names = append(names, d.DNS.Question.Name)
	}
	return names
}

func rec(i int) Record {
	return Record{Action: ActionBlock, QName: "q" + strconv.Itoa(i) + ".example.", QType: "A"}
}

func TestWriterDropsWhenFull(t *testing.T) {
	sink := &memSink{entered: make(chan struct{}, 10), release: make(chan struct{})}
	var onDrop atomic.Int64
	w := NewWriter(sink, Options{Queue: 2, OnDrop: func() { onDrop.Add(1) }})

	if !w.Log(rec(0)) {
		t.Fatal("first record dropped")
	}
	<-sink.entered // the writer holds record 0 and is blocked in Write
	for i := 1; i <= 2; i++ {
		if !w.Log(rec(i)) {
			t.Fatalf("record %d dropped with room in the queue", i)
		}
	}
	for i := 3; i <= 5; i++ {
		if w.Log(rec(i)) {
			t.Fatalf("record %d accepted by a full queue", i)
		}
	}
	if got := w.Dropped(); got != 3 {
		t.Errorf("Dropped() = %d, want 3", got)
	}
	if got := onDrop.Load(); got != 3 {
		t.Errorf("OnDrop called %d times, want 3", got)
	}

	close(sink.release)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := sink.lines(t)
	want := []string{"q0.example.", "q1.example.", "q2.example."}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("written %q, want %q", got, want)
	}
	if sink.writes != 2 {
		t.Errorf("%d writes, want 2 (records 1 and 2 coalesced)", sink.writes)
	}
}

func TestWriterCloseDrains(t *testing.T) {
	const n = 50
	sink := &memSink{entered: make(chan struct{}, n), release: make(chan struct{})}
	w := NewWriter(sink, Options{Queue: 100})
	w.Log(rec(0))
	<-sink.entered
	for i := 1; i < n; i++ {
		if !w.Log(rec(i)) {
			t.Fatalf("record %d dropped", i)
		}
	}
	closed := make(chan error)
	go func() { closed <- w.Close() }()
	select {
	case <-closed:
		t.Fatal("Close returned while a write was blocked")
	case <-time.After(20 * time.Millisecond):
	}
	close(sink.release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if got := len(sink.lines(t)); got != n {
		t.Errorf("%d records written, want %d", got, n)
	}
	if sink.closed != 1 {
		t.Errorf("sink closed %d times, want 1", sink.closed)
	}

	// Closed: Log drops, Close is idempotent.
	if w.Log(rec(n)) {
		t.Error("Log accepted a record after Close")
	}
	if w.Dropped() != 1 {
		t.Errorf("Dropped() = %d after Close, want 1", w.Dropped())
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if sink.closed != 1 {
		t.Errorf("sink closed %d times after a second Close, want 1", sink.closed)
	}
}

func TestWriterSinkError(t *testing.T) {
	sink := &memSink{err: errors.New("disk full")}
	var errs atomic.Int64
	w := NewWriter(sink, Options{OnError: func(err error) { errs.Add(1) }})
	for i := range 3 {
		w.Log(rec(i))
		// Wait for each write so that the records are not coalesced.
		deadline := time.Now().Add(5 * time.Second)
		for errs.Load() != int64(i+1) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	w.Close()
	if got := errs.Load(); got != 3 {
		t.Errorf("OnError called %d times, want 3", got)
	}
	if got := len(sink.lines(t)); got != 3 {
		t.Errorf("%d records reached the sink, want 3", got)
	}
}

func TestWriterRecent(t *testing.T) {
	w := NewWriter(&memSink{}, Options{Recent: 3})
	defer w.Close()
	if got := w.Recent(10); len(got) != 0 {
		t.Errorf("Recent on an empty writer returned %d records", len(got))
	}
	for i := range 5 {
		r := rec(i)
		r.Reasons = []string{"r" + strconv.Itoa(i)}
		w.Log(r)
	}
	names := func(rs []Record) string {
		var b bytes.Buffer
		for _, r := range rs {
			b.WriteString(r.QName + " ")
		}
		return b.String()
	}
	tests := []struct {
		n    int
		want string
	}{
		{0, "q4.example. q3.example. q2.example. "},
		{-1, "q4.example. q3.example. q2.example. "},
		{2, "q4.example. q3.example. "},
		{1, "q4.example. "},
		{100, "q4.example. q3.example. q2.example. "},
	}
	for _, tt := range tests {
		if got := names(w.Recent(tt.n)); got != tt.want {
			t.Errorf("Recent(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}

	got := w.Recent(1)
	if got[0].Time.IsZero() {
		t.Error("Log did not set the time")
	}
	got[0].QName = "changed"
	got[0].Reasons[0] = "changed"
	again := w.Recent(1)
	if again[0].QName != "q4.example." || again[0].Reasons[0] != "r4" {
		t.Errorf("Recent returned the writer's own record: %+v", again[0])
	}
}

func TestWriterRecentDisabled(t *testing.T) {
	w := NewWriter(&memSink{}, Options{Recent: -1})
	defer w.Close()
	w.Log(rec(1))
	if got := w.Recent(0); len(got) != 0 {
		t.Errorf("Recent with the ring disabled returned %d records", len(got))
	}
}

func TestWriterRecentOnlyAccepted(t *testing.T) {
	sink := &memSink{entered: make(chan struct{}, 10), release: make(chan struct{})}
	w := NewWriter(sink, Options{Queue: 1})
	w.Log(rec(0))
	<-sink.entered
	w.Log(rec(1))
	w.Log(rec(2)) // dropped
	if got := w.Recent(0); len(got) != 2 || got[0].QName != "q1.example." {
		t.Errorf("Recent = %+v, want q1 and q0", got)
	}
	close(sink.release)
	w.Close()
}

func TestWriterConcurrent(t *testing.T) {
	sink := &memSink{}
	var dropped atomic.Uint64
	w := NewWriter(sink, Options{Queue: 64, Recent: 16, OnDrop: func() { dropped.Add(1) }})
	const goroutines, each = 16, 500
	var accepted atomic.Uint64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range goroutines {
		wg.Go(func() {
			<-start
			for i := range each {
				if w.Log(rec(g*each + i)) {
					accepted.Add(1)
				}
				if i%100 == 0 {
					w.Recent(4)
				}
			}
		})
	}
	close(start)
	time.Sleep(time.Millisecond)
	var cwg sync.WaitGroup
	for range 3 {
		cwg.Go(func() { w.Close() })
	}
	wg.Wait()
	cwg.Wait()

	if got := accepted.Load() + w.Dropped(); got != goroutines*each {
		t.Errorf("accepted %d + dropped %d = %d, want %d", accepted.Load(), w.Dropped(), got, goroutines*each)
	}
	if dropped.Load() != w.Dropped() {
		t.Errorf("OnDrop called %d times, Dropped() = %d", dropped.Load(), w.Dropped())
	}
	if got := uint64(len(sink.lines(t))); got != accepted.Load() {
		t.Errorf("%d records written, %d accepted", got, accepted.Load())
	}
	if sink.closed != 1 {
		t.Errorf("sink closed %d times, want 1", sink.closed)
	}
}

type discardSink struct{}

func (discardSink) Write(p []byte) error { return nil }
func (discardSink) Close() error         { return nil }

func BenchmarkWriterLog(b *testing.B) {
	w := NewWriter(discardSink{}, Options{})
	defer w.Close()
	r := exampleRecord()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w.Log(r)
		}
	})
}

func TestLogAllocs(t *testing.T) {
	// The writer is held in its first Write, so that only the query's
	// side runs while allocations are counted.
	sink := &memSink{entered: make(chan struct{}, 10), release: make(chan struct{})}
	w := NewWriter(sink, Options{Queue: 1000})
	g := newGlueSim()
	w.Log(g.listRecord(0))
	<-sink.entered
	i := 0
	allocs := testing.AllocsPerRun(200, func() {
		r := g.detectRecord(i)
		w.LogRecord(&r)
		r = g.listRecord(i)
		w.Log(r)
		i++
	})
	if allocs != 0 {
		t.Errorf("building and logging a record allocates %v times, want 0", allocs)
	}
	if w.Dropped() != 0 {
		t.Errorf("%d records dropped", w.Dropped())
	}
	close(sink.release)
	w.Close()
}

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
