package feed

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// loadCache puts the cached copy in force, if there is one for this URL
// (and for the pinned checksum, when there is a pin). It reports false
// when there was nothing to load. The caller holds fetchMu.
func (f *Fetcher) loadCache() (Result, bool) {
	if f.cache == nil {
		return Result{}, false
	}
	r := Result{List: f.list.Name(), URL: f.redacted, Start: time.Now()}
	defer func() { r.Elapsed = time.Since(r.Start) }()
	fail := func(outcome string, err error) (Result, bool) {
		r.Outcome = outcome
		r.Err = &Error{List: r.List, URL: r.URL, Outcome: outcome, Err: fmt.Errorf("disk cache: %w", err)}
		r.Elapsed = time.Since(r.Start)
		return r, true
	}
	if err := f.cache.prepare(); err != nil {
		return fail(ErrorLocal, err)
	}
	m, err := f.cache.readMeta()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Result{}, false // the first run with this cache
	case err != nil:
		return fail(CacheRefused, err)
	case m.URLHash != urlHash(f.url):
		return Result{}, false // a copy of another feed; the next fetch replaces it
	case f.pin != nil && m.SHA256 != hex.EncodeToString(f.pin):
		return Result{}, false // the pin changed since this copy was fetched
	}
	changed, err := f.list.LoadFile(f.cache.listPath())
	if err != nil {
		return fail(CacheRefused, err)
	}
	snap := f.list.Snapshot()
	r.Outcome, r.Changed, r.Version = CacheLoaded, changed, snap.Version
	f.val = *m
	if f.xfr != nil {
		f.restoreZone()
	}
	if snap.Version != m.version() {
		// The copy was replaced but its meta was not (a crash between the
		// two renames): serve the copy, but never claim its validators.
		f.val.ETag, f.val.LastModified, f.val.SHA256 = "", "", ""
	}
	return r, true
}
