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
	// Delay is how long the writer waits after the first record of a
	// batch before it writes the batch, so that records arriving in that
	// time share one encoding pass and one write. A batch that reaches
	// half of Queue is written at once. 0 or less means 20 ms.
	Delay time.Duration
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
	defaultDelay  = 20 * time.Millisecond

	// maxBatch bounds how many bytes of queued records are coalesced into
	// one Sink.Write, so a long queue is written in pieces of reasonable
	// size.
	maxBatch = 256 << 10
	// maxKeepBuf is the largest buffer kept for reuse between batches.
	maxKeepBuf = 1 << 20
)

// Writer writes records to a Sink asynchronously. Log copies a record into
// a bounded batch and never blocks; one goroutine takes the whole batch at
// once, encodes it with AppendJSON into a reused buffer and writes it with
// as few Sink.Write calls as maxBatch allows. The query's goroutine thus
// pays for a copy under a short lock and, once per batch, a wake-up of the
// writer; the encoding and the system call are the writer's. A Writer must
// be made with NewWriter and stopped with Close. Its methods are safe for
// concurrent use.
type Writer struct {
	sink    Sink
	onDrop  func()
	onError func(error)
	delay   time.Duration

	kick    chan struct{} // a batch has started or is half full (buffered, 1)
	stop    chan struct{} // closed by Close
	done    chan struct{} // closed when the writer goroutine has returned
	dropped atomic.Uint64

	mu     sync.Mutex // guards closed, batch, ring, next and count
	closed bool
	batch  []Record // records accepted and not yet taken by the writer; cap is the queue size
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
	if o.Delay <= 0 {
		o.Delay = defaultDelay
	}
	w := &Writer{
		sink:    s,
		onDrop:  o.OnDrop,
		onError: o.OnError,
		delay:   o.Delay,
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		batch:   make([]Record, 0, o.Queue),
	}
	if o.Recent > 0 {
		w.ring = make([]Record, o.Recent)
	}
	go w.run(make([]Record, 0, o.Queue))
	return w
}

// Log queues r for writing and reports whether it was accepted. It never
// blocks and does not allocate: when the queue is full or the Writer is
// closed it drops r, counts the drop, calls Options.OnDrop and returns
// false. A zero r.Time is set to the current time. After Log the slices in
// r belong to the Writer (see Record).
func (w *Writer) Log(r Record) bool {
	return w.LogRecord(&r)
}

// LogRecord is Log for a record the caller keeps: it copies *r and never
// keeps r itself, so a caller can build the record on its stack and pass
// its address without the copy that passing a Record by value makes. The
// slices in *r belong to the Writer afterwards, as with Log.
func (w *Writer) LogRecord(r *Record) bool {
	ok := false
	kick := false
	w.mu.Lock()
	if !w.closed && len(w.batch) < cap(w.batch) {
		ok = true
		w.batch = append(w.batch, *r)
		e := &w.batch[len(w.batch)-1]
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		// Wake the writer for the first record of a batch, and again
		// when the batch is half full so it need not wait out the delay.
		kick = len(w.batch) == 1 || len(w.batch) == cap(w.batch)/2+1
		if len(w.ring) > 0 {
			w.ring[w.next] = *e
			w.next++
			if w.next == len(w.ring) {
				w.next = 0
			}
			if w.count < len(w.ring) {
				w.count++
			}
		}
	}
	w.mu.Unlock()
	if kick {
		select {
		case w.kick <- struct{}{}:
		default: // the writer has a wake-up pending already
		}
	}
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
		w.mu.Unlock()
		close(w.stop)
		<-w.done
		w.closeErr = w.sink.Close()
	})
	return w.closeErr
}

// run is the writer goroutine. It sleeps until a batch starts, gives the
// batch Options.Delay to fill (less if it gets half full), swaps it for
// the empty spare, and writes it. It returns after writing what is left
// once Close has been called.
func (w *Writer) run(spare []Record) {
	defer close(w.done)
	var buf []byte
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		stopping := false
		select {
		case <-w.kick:
			w.mu.Lock()
			full := len(w.batch) >= cap(w.batch)/2
			w.mu.Unlock()
			if full { // the half-full kick may have merged with the first
				break
			}
			timer.Reset(w.delay)
			select {
			case <-timer.C:
			case <-w.kick: // half full
				timer.Stop()
			case <-w.stop:
				timer.Stop()
				stopping = true
			}
		case <-w.stop:
			stopping = true
		}
		w.mu.Lock()
		recs := w.batch
		w.batch = spare
		w.mu.Unlock()
		buf = w.write(buf, recs)
		clear(recs) // let go of the names and slices the records hold
		spare = recs[:0]
		if stopping {
			// Log accepts nothing once closed is set, so what is left in
			// the batch now is all there will ever be.
			w.mu.Lock()
			recs = w.batch
			w.batch = nil
			w.mu.Unlock()
			w.write(buf, recs)
			return
		}
	}
}

// write encodes recs into buf and writes them with one Sink.Write for
// every maxBatch bytes. It returns the buffer for reuse.
func (w *Writer) write(buf []byte, recs []Record) []byte {
	buf = buf[:0]
	for i := range recs {
		buf = AppendJSON(buf, &recs[i])
		if len(buf) >= maxBatch || i == len(recs)-1 {
			if err := w.sink.Write(buf); err != nil && w.onError != nil {
				w.onError(err)
			}
			buf = buf[:0]
		}
	}
	if cap(buf) > maxKeepBuf {
		buf = nil
	}
	return buf
}
