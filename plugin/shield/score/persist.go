package score

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"time"
)

// The detection state file: the sticky verdicts and the first-seen
// history, so that both survive a restart. SaveState writes it, LoadState
// reads it into a fresh engine.
//
// The format is binary, little-endian:
//
//	magic    8 bytes  "SHLDDET\n"
//	version  uint16   stateVersion
//	sections          each: tag uint8, length uint32, payload
//	end      uint8    0 (a section tag of 0, without length)
//	crc      uint32   CRC-32C (Castagnoli) of every byte before it
//
// Sections (a reader skips tags it does not know, so a section can be
// added without a new version):
//
//	1 meta      saved, start, history start, long window (int64 Unix
//	            nanoseconds and nanoseconds), key seed (uint64); a reader
//	            ignores bytes after the fields it knows
//	2 history   epoch (uint32, of the saved engine's clock), words per
//	            filter (uint32), the current filter's words, then the
//	            previous filter's (uint64 each)
//	3 verdicts  count (uint32), then count records: length (uint16) and
//	            that many bytes of fields in order: key (uint64), expiry
//	            (int64 Unix seconds), hits (uint16), score (uint8),
//	            detector and top reason (each a uint8 length and a name)
//
// A verdict record carries its own length so that fields can be added at
// its end (verdict scopes, the clients that earned one): a reader takes the
// fields it knows, gives those missing from a shorter record their zero
// value and skips the bytes after them. Times are wall-clock, so a
// verdict expires when it would have without the restart.
//
// The file holds the engine's key seed, the secret that keeps an attacker
// from aiming names at one set of a table: write it with mode 0600.

// stateVersion is the version of the state file's format.
const stateVersion = 1

var stateMagic = [8]byte{'S', 'H', 'L', 'D', 'D', 'E', 'T', '\n'}

// Section tags.
const (
	secEnd      = 0
	secMeta     = 1
	secHistory  = 2
	secVerdicts = 3
)

// MaxStateSize bounds the state file LoadState reads: the largest verdict
// table (1<<22 entries) at 64 bytes a record, plus the history.
const MaxStateSize = 1<<22*64 + 4<<20

// ErrCorruptState is wrapped by LoadState's error for a file that is not
// a state file, or one that was damaged: bad magic, unknown version,
// checksum mismatch, truncation, a section that does not parse.
var ErrCorruptState = errors.New("corrupt detection state")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SaveState writes the engine's sticky verdicts and first-seen history to
// w. It may run while the engine scores queries: the result is a
// snapshot a little blurred at its edges (a verdict made while it runs
// may or may not be in it).
func (e *Engine) SaveState(w io.Writer) error {
	now := e.clock()
	enow := e.engineSecond(now)
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := &crcWriter{w: bw, h: crc32.New(castagnoli)}
	var b []byte
	b = append(b, stateMagic[:]...)
	b = binary.LittleEndian.AppendUint16(b, stateVersion)

	// Meta.
	var meta []byte
	meta = binary.LittleEndian.AppendUint64(meta, uint64(now.UnixNano()))
	meta = binary.LittleEndian.AppendUint64(meta, uint64(e.start.UnixNano()))
	meta = binary.LittleEndian.AppendUint64(meta, uint64(e.historyFrom.UnixNano()))
	meta = binary.LittleEndian.AppendUint64(meta, uint64(e.cfg.LongWindow))
	meta = binary.LittleEndian.AppendUint64(meta, e.keySeed)
	b = appendSection(b, secMeta, meta)
	if _, err := cw.Write(b); err != nil {
		return err
	}

	// History: a copy of the filters taken while no rotation can run.
	epoch, filters := e.history.snapshot(enow / e.longEpochLen)
	words := len(filters) / 2
	hdr := []byte{secHistory}
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(8+8*len(filters)))
	hdr = binary.LittleEndian.AppendUint32(hdr, epoch)
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(words))
	if _, err := cw.Write(hdr); err != nil {
		return err
	}
	buf := make([]byte, 0, 8*1024)
	for _, w := range filters {
		buf = binary.LittleEndian.AppendUint64(buf, w)
		if len(buf) == cap(buf) {
			if _, err := cw.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	if _, err := cw.Write(buf); err != nil {
		return err
	}

	// Verdicts.
	live := e.verdicts.live(enow)
	var recs []byte
	recs = binary.LittleEndian.AppendUint32(recs, uint32(len(live)))
	var rec []byte
	for i := range live {
		rec = e.appendVerdict(rec[:0], &live[i])
		recs = binary.LittleEndian.AppendUint16(recs, uint16(len(rec)))
		recs = append(recs, rec...)
	}
	b = appendSection(b[:0], secVerdicts, recs)
	b = append(b, secEnd)
	if _, err := cw.Write(b); err != nil {
		return err
	}
	if _, err := bw.Write(binary.LittleEndian.AppendUint32(nil, cw.h.Sum32())); err != nil {
		return err
	}
	return bw.Flush()
}

// appendVerdict appends the fields of v's state file record. New fields
// go at the end (see the format above).
func (e *Engine) appendVerdict(b []byte, v *verdict) []byte {
	b = binary.LittleEndian.AppendUint64(b, v.key)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.wallTime(v.until).Unix()))
	b = binary.LittleEndian.AppendUint16(b, v.hits)
	b = append(b, v.score)
	b = appendName(b, detectorNames[v.detector%uint8(len(detectorNames))])
	b = appendName(b, reasonNames[v.reason%nReasons])
	// Added with verdict scopes: the registered domain's key and the
	// scope (a client verdict's key mixes the domain and the client).
	b = binary.LittleEndian.AppendUint64(b, v.dom)
	b = append(b, byte(v.scope))
	return b
}

// savedVerdict is a verdict record as read, before its checks.
type savedVerdict struct {
	key       uint64
	until     int64 // Unix seconds
	hits      uint16
	score     uint8
	detector  string
	topReason string
	dom       uint64 // 0 in a record written before scopes: the key is the domain's
	scope     Scope
}

// readVerdict reads the fields of a verdict record; those missing from a
// short record are zero. Bytes after the known fields are skipped.
func readVerdict(rec []byte) savedVerdict {
	r := fieldReader{b: rec}
	v := savedVerdict{
		key: r.u64(), until: int64(r.u64()), hits: r.u16(), score: r.u8(),
		detector: r.name(), topReason: r.name(),
	}
	v.dom, v.scope = r.u64(), Scope(r.u8())
	return v
}

// savedState is a state file as read, before anything of it is applied.
type savedState struct {
	saved, start, historyFrom time.Time
	longWindow                time.Duration
	keySeed                   uint64
	hasMeta                   bool

	epoch   uint32
	filters []uint64 // current, then previous; nil: no usable history
	// historyWords is the words per filter the file had, for an error.
	historyWords uint32

	verdicts []savedVerdict
}

// LoadState reads a state file written by SaveState into e, which must be
// fresh: made by New, not handed over, and not yet used. Nothing is
// applied unless the whole file reads: an error wrapping ErrCorruptState
// for a damaged file or one in another format, any other error for a
// failed read. Expired verdicts are dropped; a verdict's expiry is cut to
// the configured sticky time from now.
//
// The history is carried when the file's long window is the engine's:
// the engine then takes the file's clock, and the filters go on rotating
// as if the engine had run through the downtime (a downtime of more than
// a long window forgets them, and the history starts again). With another
// long window both filters merge into the current one.
func (e *Engine) LoadState(r io.Reader) (Carried, error) {
	var c Carried
	if e.verdicts.used.Load() != 0 || e.domains.used.Load() != 0 {
		return c, errors.New("LoadState needs a fresh engine")
	}
	st, err := readState(r, len(e.history.bits[0]))
	if err != nil {
		return c, err
	}
	now := e.clock()
	e.keySeed = st.keySeed
	if st.longWindow == e.cfg.LongWindow && !st.start.After(now.Add(-e.cfg.LongWindow)) &&
		now.Sub(st.start) < 100*365*24*time.Hour {
		e.start = st.start // the saved clock: the filters' epochs keep their meaning
		// The filters rotate at the first query as if the engine had run
		// through the downtime; after two long windows or more (or a
		// clock that went back) both would be cleared: that history is
		// gone.
		if epoch := e.now() / e.longEpochLen; st.filters != nil && (epoch == st.epoch || epoch == st.epoch+1) {
			cur := int(e.history.cur.Load())
			words := len(st.filters) / 2
			for i := 0; i < words; i++ {
				e.history.bits[cur][i].Store(st.filters[i])
				e.history.bits[1-cur][i].Store(st.filters[words+i])
			}
			e.history.epoch.Store(st.epoch)
			c.History = true
		}
	} else if st.filters != nil && now.Sub(st.saved) < 2*max(e.cfg.LongWindow, st.longWindow) {
		words := len(st.filters) / 2
		cur := e.history.bits[e.history.cur.Load()]
		for i := 0; i < words; i++ {
			cur[i].Or(st.filters[i] | st.filters[words+i])
		}
		e.history.epoch.Store(e.now() / e.longEpochLen)
		c.History = true
	}
	if c.History {
		from := st.historyFrom
		if from.After(now) {
			from = now
		}
		e.setHistoryFrom(from)
	} else {
		e.setHistoryFrom(now)
	}

	enow := e.now()
	for _, sv := range st.verdicts {
		until := e.engineSecond(time.Unix(sv.until, 0))
		if sv.key == 0 || until <= enow {
			c.VerdictsDropped++
			continue
		}
		if until-enow > e.stickyFor {
			until = enow + e.stickyFor
		}
		v := verdict{key: sv.key, dom: sv.dom, until: until, hits: sv.hits, score: min(sv.score, 100),
			reason: reasonID(sv.topReason), detector: detectorID(sv.detector), scope: sv.scope}
		if v.dom == 0 || v.scope != ScopeClient {
			// A record from before scopes, or a fleet verdict: keyed
			// by its domain.
			v.dom, v.scope = v.key, ScopeFleet
		}
		if !e.verdicts.put(v, enow, 0) {
			c.VerdictsDropped++
		}
	}
	// A key twice in the file (only a damaged file can have that) is one
	// verdict.
	c.Verdicts = int(e.verdicts.used.Load())
	return c, nil
}

// readState reads and checks a whole state file. words is the engine's
// words per history filter; a history of another size is left out.
func readState(r io.Reader, words int) (*savedState, error) {
	cr := &crcReader{r: bufio.NewReaderSize(io.LimitReader(r, MaxStateSize+1), 64<<10), h: crc32.New(castagnoli)}
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrCorruptState, fmt.Sprintf(format, args...))
	}
	// read fills b; a file that ends early is corrupt, a failed read is
	// returned as it is.
	read := func(b []byte, what string) error {
		if _, err := io.ReadFull(cr, b); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return corrupt("truncated in the %s", what)
			}
			return err
		}
		if cr.n > MaxStateSize {
			return corrupt("larger than %d bytes", MaxStateSize)
		}
		return nil
	}
	var head [10]byte
	if err := read(head[:], "header"); err != nil {
		return nil, err
	}
	if [8]byte(head[:8]) != stateMagic {
		return nil, corrupt("not a detection state file")
	}
	if v := binary.LittleEndian.Uint16(head[8:]); v != stateVersion {
		return nil, corrupt("unknown version %d", v)
	}
	st := &savedState{}
	var tag [1]byte
	var length [4]byte
	for {
		if err := read(tag[:], "section header"); err != nil {
			return nil, err
		}
		if tag[0] == secEnd {
			break
		}
		if err := read(length[:], "section header"); err != nil {
			return nil, err
		}
		n := int64(binary.LittleEndian.Uint32(length[:]))
		if cr.n+n > MaxStateSize {
			return nil, corrupt("section %d of %d bytes: larger than the file may be", tag[0], n)
		}
		var err error
		switch tag[0] {
		case secMeta:
			if st.hasMeta || n < 40 || n > 4096 {
				return nil, corrupt("meta section of %d bytes", n)
			}
			b := make([]byte, n)
			if err = read(b, "meta section"); err == nil {
				f := fieldReader{b: b}
				st.saved = time.Unix(0, int64(f.u64()))
				st.start = time.Unix(0, int64(f.u64()))
				st.historyFrom = time.Unix(0, int64(f.u64()))
				st.longWindow = time.Duration(f.u64())
				st.keySeed = f.u64()
				st.hasMeta = true
			}
		case secHistory:
			err = readHistory(st, cr, n, words, read, corrupt)
		case secVerdicts:
			err = readVerdicts(st, n, read, corrupt)
		default:
			_, err = io.CopyN(io.Discard, cr, n)
			if errors.Is(err, io.EOF) {
				err = corrupt("truncated in section %d", tag[0])
			}
		}
		if err != nil {
			return nil, err
		}
	}
	var sum [4]byte
	want := cr.h.Sum32()
	if _, err := io.ReadFull(cr.r, sum[:]); err != nil {
		return nil, corrupt("truncated before the checksum")
	}
	if got := binary.LittleEndian.Uint32(sum[:]); got != want {
		return nil, corrupt("checksum %08x, want %08x", got, want)
	}
	if _, err := cr.r.ReadByte(); err != io.EOF {
		return nil, corrupt("data after the checksum")
	}
	if !st.hasMeta {
		return nil, corrupt("no meta section")
	}
	if st.keySeed == 0 {
		return nil, corrupt("no key seed")
	}
	return st, nil
}

// readHistory reads a history section of n bytes into st. A history of
// another filter size is skipped.
func readHistory(st *savedState, r io.Reader, n int64, words int, read func([]byte, string) error, corrupt func(string, ...any) error) error {
	if st.filters != nil || n < 8 {
		return corrupt("history section of %d bytes", n)
	}
	var h [8]byte
	if err := read(h[:], "history section"); err != nil {
		return err
	}
	st.epoch = binary.LittleEndian.Uint32(h[:4])
	st.historyWords = binary.LittleEndian.Uint32(h[4:])
	if n-8 != 16*int64(st.historyWords) {
		return corrupt("history section of %d bytes for %d words a filter", n, st.historyWords)
	}
	if int(st.historyWords) != words {
		// Another filter size: the keys map to other bits. Skip it.
		if _, err := io.CopyN(io.Discard, r, n-8); err != nil {
			return corrupt("truncated in the history section")
		}
		return nil
	}
	filters := make([]uint64, 2*words)
	buf := make([]byte, 8*1024)
	for i := 0; i < len(filters); {
		chunk := buf[:min(len(buf), 8*(len(filters)-i))]
		if err := read(chunk, "history section"); err != nil {
			return err
		}
		for j := 0; j < len(chunk); j += 8 {
			filters[i] = binary.LittleEndian.Uint64(chunk[j:])
			i++
		}
	}
	st.filters = filters
	return nil
}

// readVerdicts reads a verdicts section of n bytes into st.
func readVerdicts(st *savedState, n int64, read func([]byte, string) error, corrupt func(string, ...any) error) error {
	if st.verdicts != nil || n < 4 {
		return corrupt("verdicts section of %d bytes", n)
	}
	var b [4]byte
	if err := read(b[:], "verdicts section"); err != nil {
		return err
	}
	count := binary.LittleEndian.Uint32(b[:])
	left := n - 4
	st.verdicts = make([]savedVerdict, 0, min(count, 1<<16))
	rec := make([]byte, 0, 256)
	for i := uint32(0); i < count; i++ {
		if left < 2 {
			return corrupt("verdicts section ends after %d of %d records", i, count)
		}
		var l [2]byte
		if err := read(l[:], "verdicts section"); err != nil {
			return err
		}
		size := int64(binary.LittleEndian.Uint16(l[:]))
		if left -= 2 + size; left < 0 {
			return corrupt("verdict record %d overruns its section", i)
		}
		if int(size) > cap(rec) {
			rec = make([]byte, size)
		}
		rec = rec[:size]
		if err := read(rec, "verdicts section"); err != nil {
			return err
		}
		st.verdicts = append(st.verdicts, readVerdict(rec))
	}
	if left != 0 {
		return corrupt("%d bytes after the verdict records", left)
	}
	return nil
}

// appendSection appends a section with its tag and length.
func appendSection(b []byte, tag byte, payload []byte) []byte {
	b = append(b, tag)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// appendName appends a name of at most 255 bytes with its length.
func appendName(b []byte, s string) []byte {
	if len(s) > math.MaxUint8 {
		s = s[:math.MaxUint8]
	}
	b = append(b, byte(len(s)))
	return append(b, s...)
}

// fieldReader reads a record's fields in order; past the record's end it
// returns zero values.
type fieldReader struct{ b []byte }

func (f *fieldReader) take(n int) []byte {
	if len(f.b) < n {
		f.b = nil
		return nil
	}
	v := f.b[:n]
	f.b = f.b[n:]
	return v
}

func (f *fieldReader) u64() uint64 {
	if v := f.take(8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

func (f *fieldReader) u16() uint16 {
	if v := f.take(2); v != nil {
		return binary.LittleEndian.Uint16(v)
	}
	return 0
}

func (f *fieldReader) u8() uint8 {
	if v := f.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (f *fieldReader) name() string {
	n := f.u8()
	return string(f.take(int(n)))
}

// reasonID returns the identifier of a reason name; an unknown name (from
// a later version) is the first reason.
func reasonID(name string) uint8 {
	for i, n := range reasonNames {
		if n == name {
			return uint8(i)
		}
	}
	return 0
}

// detectorID returns the identifier of a detector name; an unknown name is
// the first detector.
func detectorID(name string) uint8 {
	for i, n := range detectorNames {
		if n == name {
			return uint8(i)
		}
	}
	return 0
}

// snapshot returns a copy of the filters, the current one first, as they
// are in the long epoch now: the filters rotate at the first query of an
// epoch, so an engine without queries for a while still holds older
// epochs, which the copy leaves out as that rotation would. It holds the
// rotation lock, which the query path only tries, so no query waits for
// it.
func (b *bloom) snapshot(now uint32) (epoch uint32, words []uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.cur.Load()
	n := len(b.bits[0])
	words = make([]uint64, 2*n)
	switch e := b.epoch.Load(); {
	case now == e || now < e:
		for i := 0; i < n; i++ {
			words[i] = b.bits[cur][i].Load()
			words[n+i] = b.bits[1-cur][i].Load()
		}
		return e, words
	case now == e+1: // the current filter becomes the previous one
		for i := 0; i < n; i++ {
			words[n+i] = b.bits[cur][i].Load()
		}
	}
	return now, words
}

// crcWriter writes to w and sums what it wrote.
type crcWriter struct {
	w io.Writer
	h hash.Hash32
}

func (c *crcWriter) Write(p []byte) (int, error) {
	c.h.Write(p)
	return c.w.Write(p)
}

// crcReader reads from r, sums what it read and counts it.
type crcReader struct {
	r *bufio.Reader
	h hash.Hash32
	n int64
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}
