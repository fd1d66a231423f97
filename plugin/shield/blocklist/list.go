package blocklist

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Snapshot is one successfully loaded version of a list. It is immutable.
type Snapshot struct {
	Set     *Set
	Version string // content hash: the first 16 hex digits of the SHA-256 of the file
	Format  Format // the format used (detected when not configured)
	Stats   Stats  // what the parser saw
	Loaded  time.Time
	Elapsed time.Duration // read + parse + build
}

// Config describes one named list.
type Config struct {
	Name   string
	Path   string
	Format Format // FormatAuto detects the format from the content
	// Allow marks an allowlist: every entry, whatever its action in the
	// file, allows the name and the names below it.
	Allow bool
	// MaxInvalid is the largest share of invalid lines (of invalid plus
	// entries) an update may have; above it the update is refused.
	MaxInvalid float64
	// MaxShrink is the largest share of entries an update may lose against
	// the list in force; above it the update is refused.
	MaxShrink float64
	// Settle is how long a changed file must stay unchanged, with a
	// complete last line, before the watcher loads it (DefaultSettle when
	// zero). A file renamed into place loads without waiting on Linux.
	Settle time.Duration
}

// Reasons a load is refused; they are bounded so they can label a metric.
const (
	FailRead    = "read"
	FailEmpty   = "empty"
	FailGarbage = "garbage"
	FailShrink  = "shrink"
)

// LoadError is a refused update. Reason is one of the Fail constants.
type LoadError struct {
	List   string
	Reason string
	Err    error
}

func (e *LoadError) Error() string { return fmt.Sprintf("list %q: %v", e.List, e.Err) }
func (e *LoadError) Unwrap() error { return e.Err }

// List is a named list whose current Snapshot can be read without locks
// while a reload builds the next one.
type List struct {
	cfg Config
	cur atomic.Pointer[Snapshot]

	attempts atomic.Uint64 // calls to Load, for tests

	mu      sync.Mutex // serialises loads and guards the fields below
	lastErr error
	lastSig fileSig
}

// NewList returns a List that has not loaded yet.
func NewList(cfg Config) *List { return &List{cfg: cfg} }

// Name returns the list's configured name.
func (l *List) Name() string { return l.cfg.Name }

// Config returns the list's configuration.
func (l *List) Config() Config { return l.cfg }

// Snapshot returns the list in force, or nil before the first good load.
func (l *List) Snapshot() *Snapshot { return l.cur.Load() }

// LastError returns the error of the most recent load attempt, or nil.
func (l *List) LastError() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr
}

// Lookup matches qname against the list in force. On an allowlist any hit
// is reported as ActAllow.
func (l *List) Lookup(qname string) Match {
	s := l.cur.Load()
	if s == nil {
		return Match{}
	}
	return s.Set.Lookup(qname)
}

// LookupNormal is Lookup for a name normalised by NormalizeQuery.
func (l *List) LookupNormal(name []byte) Match {
	s := l.cur.Load()
	if s == nil {
		return Match{}
	}
	return s.Set.LookupNormal(name)
}

// allowSink turns every entry into an allow rule covering the name and
// the names below it.
type allowSink struct{ b *Builder }

func (a allowSink) Add(name []byte, _, _ Action) { a.b.Add(name, ActAllow, ActAllow) }

// Load reads and parses the file and, if the result passes the safety
// checks, puts it in force. It returns (false, nil) when the content is
// unchanged, (true, nil) when a new version is in force, and a *LoadError
// when the update was refused; the list in force is then unchanged.
func (l *List) Load() (bool, error) {
	return l.loadChecked(nil)
}

// loadChecked is Load for a file the watcher judged settled with
// signature want: if the file read is not that one, or changes while it
// is read, it returns errUnsettled and leaves the list as it was.
func (l *List) loadChecked(want *fileSig) (bool, error) {
	l.attempts.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	changed, err := l.load(want)
	if err != errUnsettled {
		l.lastErr = err
	}
	return changed, err
}

// settle returns the list's settle window.
func (l *List) settle() time.Duration {
	if l.cfg.Settle > 0 {
		return l.cfg.Settle
	}
	return DefaultSettle
}

// readSig returns the signature of the file the last load attempt read.
func (l *List) readSig() fileSig {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastSig
}

func (l *List) fail(reason string, err error) error {
	return &LoadError{List: l.cfg.Name, Reason: reason, Err: err}
}

func (l *List) load(want *fileSig) (bool, error) {
	l.lastSig, _ = statSig(l.cfg.Path)
	return l.loadFrom(l.cfg.Path, want)
}

// loadFrom reads the list's content from path (the configured file, or
// the file LoadFile names) and puts it in force if it passes the checks.
// With want set, the file read must have that signature before and after
// it is parsed (see loadChecked).
func (l *List) loadFrom(path string, want *fileSig) (bool, error) {
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return false, l.fail(FailRead, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, l.fail(FailRead, err)
	}
	if !fi.Mode().IsRegular() {
		return false, l.fail(FailRead, fmt.Errorf("%s is not a regular file", path))
	}
	// A gzip-compressed file is read through gzip (see content).
	src, size, err := content(f, fi.Size())
	if err != nil {
		return false, l.readFail(err)
	}
	if want != nil && sigOf(fi) != *want {
		return false, errUnsettled
	}
	// Stream the file through the parser and the content hash at once:
	// a million-name list is never held in memory as text.
	h := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(src, h), 256<<10)
	format := l.cfg.Format
	if format == FormatAuto {
		head, err := br.Peek(64 << 10)
		if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
			return false, l.readFail(err)
		}
		format = Detect(head)
	}
	// Size the builder from the content size (names average well over 16
	// bytes a line) so a big list is not regrown while it is built.
	b := NewBuilder(int(min(size/16+16, 1<<26)))
	var sink Sink = b
	if l.cfg.Allow {
		sink = allowSink{b}
	} else if format == FormatAdblock {
		b.AllowWins = true
	}
	st, err := Parse(br, format, sink)
	if err != nil {
		return false, l.readFail(err)
	}
	if want != nil {
		if after, err := f.Stat(); err != nil || sigOf(after) != *want {
			return false, errUnsettled
		}
	}
	version := hex.EncodeToString(h.Sum(nil)[:8])
	prev := l.cur.Load()
	if prev != nil && prev.Version == version {
		return false, nil
	}
	if st.Entries == 0 {
		if st.Invalid == 0 && st.Unsupported == 0 {
			return false, l.fail(FailEmpty, fmt.Errorf("no entries in %d lines (format %s)", st.Lines, format))
		}
		return false, l.fail(FailGarbage, fmt.Errorf("no entries in %d lines (format %s, %d invalid, %d unsupported), first: %v",
			st.Lines, format, st.Invalid, st.Unsupported, st.Samples))
	}
	if bad := float64(st.Invalid) / float64(st.Invalid+st.Entries); bad > l.cfg.MaxInvalid {
		return false, l.fail(FailGarbage, fmt.Errorf("%d of %d rule lines are invalid (%.0f%% > %.0f%%), first: %v",
			st.Invalid, st.Invalid+st.Entries, 100*bad, 100*l.cfg.MaxInvalid, st.Samples))
	}
	set := b.Build()
	if prev != nil && l.cfg.MaxShrink < 1 {
		if floor := float64(prev.Set.Len()) * (1 - l.cfg.MaxShrink); float64(set.Len()) < floor {
			return false, l.fail(FailShrink, fmt.Errorf("update has %d names, down from %d (more than %.0f%% fewer); keeping version %s",
				set.Len(), prev.Set.Len(), 100*l.cfg.MaxShrink, prev.Version))
		}
	}
	l.cur.Store(&Snapshot{Set: set, Version: version, Format: format, Stats: st, Loaded: time.Now(), Elapsed: time.Since(start)})
	return true, nil
}

// Changed reports whether the file's identity (device, inode, size or
// modification time, following symlinks) differs from what the last load
// saw. The poller uses it to decide whether to reload.
func (l *List) Changed() bool {
	sig, err := statSig(l.cfg.Path)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		// A file that cannot be stat'ed is retried until the list first
		// loads; afterwards only a change of its state triggers a load.
		return l.cur.Load() == nil || l.lastSig != (fileSig{})
	}
	return sig != l.lastSig
}
