package score

import (
	"bufio"
	"encoding/binary"
	"errors"
	"hash"
	"hash/crc32"
	"io"
	"math"
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
