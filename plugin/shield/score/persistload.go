package score

// Reading a detection state file back (the format is in persist.go).

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"
)

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
