package audit

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Sink receives encoded records. Write gets one or more complete lines; a
// Sink must not keep p after Write returns. Writer calls Write and Close
// from one goroutine at a time.
type Sink interface {
	Write(p []byte) error
	Close() error
}

// Options tunes a Writer. The zero value gives the defaults.
type Options struct {
	// Queue is how many records may wait to be written before Log drops
	// them. 0 or less means 4096.
	Queue int
	// Recent is how many of the last accepted records are kept in memory
	// for Writer.Recent. 0 means 1000; less than 0 keeps none.
	Recent int
	// OnDrop, if set, is called by Log for every record it drops. It runs
	// on the caller's goroutine (the query path), so it must be quick and
	// must not block, for example a counter increment.
	OnDrop func()
	// OnError, if set, is called with every error the Sink returns from
	// Write. It runs on the writer goroutine; the writer then carries on
	// with the next batch.
	OnError func(error)
}

const (
	defaultQueue  = 4096
	defaultRecent = 1000

	// maxBatch bounds how many bytes of queued records are coalesced into
	// one Sink.Write, so a long queue is written in pieces of reasonable
	// size.
	maxBatch = 256 << 10
	// maxKeepBuf is the largest buffer kept for reuse between batches.
	maxKeepBuf = 1 << 20
)

// Writer writes records to a Sink asynchronously. Log puts a record on a
// bounded queue and never blocks; one goroutine encodes what is queued
// with AppendJSON and writes it in batches. A Writer must be made with
// NewWriter and stopped with Close. Its methods are safe for concurrent use.
type Writer struct {
	sink    Sink
	onDrop  func()
	onError func(error)

	queue   chan Record
	done    chan struct{} // closed when the writer goroutine has returned
	dropped atomic.Uint64

	mu     sync.Mutex // guards closed, the send on queue, ring, next and count
	closed bool
	ring   []Record // the last accepted records; ring[next-1] is the newest
	next   int      // index the next accepted record is stored at
	count  int      // how many entries of ring are in use

	closeOnce sync.Once
	closeErr  error
}

// NewWriter returns a Writer that writes to s, and starts its goroutine.
// s must not be nil. The Writer owns s and closes it in Close.
func NewWriter(s Sink, o Options) *Writer {
	if o.Queue <= 0 {
		o.Queue = defaultQueue
	}
	if o.Recent == 0 {
		o.Recent = defaultRecent
	}
	w := &Writer{
		sink:    s,
		onDrop:  o.OnDrop,
		onError: o.OnError,
		queue:   make(chan Record, o.Queue),
		done:    make(chan struct{}),
	}
	if o.Recent > 0 {
		w.ring = make([]Record, o.Recent)
	}
	go w.run()
	return w
}

// Log queues r for writing and reports whether it was accepted. It never
// blocks: when the queue is full or the Writer is closed it drops r,
// counts the drop, calls Options.OnDrop and returns false. A zero r.Time
// is set to the current time. After Log the slices in r belong to the
// Writer (see Record).
func (w *Writer) Log(r Record) bool {
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	ok := false
	w.mu.Lock()
	if !w.closed {
		select {
		case w.queue <- r:
			ok = true
		default:
		}
		if ok && len(w.ring) > 0 {
			w.ring[w.next] = r
			w.next = (w.next + 1) % len(w.ring)
			if w.count < len(w.ring) {
				w.count++
			}
		}
	}
	w.mu.Unlock()
	if !ok {
		w.dropped.Add(1)
		if w.onDrop != nil {
			w.onDrop()
		}
	}
	return ok
}

// Dropped returns how many records Log has dropped since the Writer was
// made.
func (w *Writer) Dropped() uint64 {
	return w.dropped.Load()
}

// Recent returns up to n of the most recently accepted records, newest
// first. n <= 0 means all that are kept (at most Options.Recent). The
// records are copies: changing them, or their slices, does not change the
// Writer's.
func (w *Writer) Recent(n int) []Record {
	w.mu.Lock()
	if n <= 0 || n > w.count {
		n = w.count
	}
	out := make([]Record, n)
	for i := range out {
		j := (w.next - 1 - i + len(w.ring)) % len(w.ring)
		out[i] = w.ring[j]
	}
	w.mu.Unlock()
	// The ring's slices are never changed after Log (see Record), so they
	// can be cloned without the lock.
	for i := range out {
		out[i].Reasons = slices.Clone(out[i].Reasons)
		out[i].Evidence = slices.Clone(out[i].Evidence)
	}
	return out
}

// Close stops accepting records, waits until everything already queued has
// been written, then closes the Sink and returns its error. It may be
// called more than once and concurrently with Log; later calls wait for the
// first and return the same error. Close blocks for as long as a Sink.Write
// in progress blocks.
func (w *Writer) Close() error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		close(w.queue)
		w.mu.Unlock()
		<-w.done
		w.closeErr = w.sink.Close()
	})
	return w.closeErr
}

// run is the writer goroutine. It takes one record, adds whatever else is
// already queued (up to maxBatch bytes), and writes the batch with one
// Sink.Write. It returns when the queue is closed and empty.
func (w *Writer) run() {
	defer close(w.done)
	var buf []byte
	for r := range w.queue {
		buf = AppendJSON(buf[:0], &r)
	batch:
		for len(buf) < maxBatch {
			select {
			case r, ok := <-w.queue:
				if !ok {
					break batch // closed: write this batch; the range loop then ends
				}
				buf = AppendJSON(buf, &r)
			default:
				break batch
			}
		}
		if err := w.sink.Write(buf); err != nil && w.onError != nil {
			w.onError(err)
		}
		if cap(buf) > maxKeepBuf {
			buf = nil
		}
	}
}
