package feed

import (
	"fmt"
	"time"
)

// Outcomes of a fetch, for Result.Outcome and a metric label. The list's
// own refusals are "refused_" followed by the blocklist.LoadError reason:
// refused_empty, refused_garbage, refused_shrink, refused_gzip,
// refused_size and refused_read.
const (
	Updated     = "updated"      // new content is in force
	Unchanged   = "unchanged"    // 200, with the content already in force
	NotModified = "not_modified" // 304 to a conditional GET

	RefusedStatus    = "refused_status"    // a status other than 2xx (or 304 to a conditional GET)
	RefusedHTML      = "refused_html"      // an HTML page (error or login page)
	RefusedJSON      = "refused_json"      // a JSON document (an API error); no list format is JSON
	RefusedEncoding  = "refused_encoding"  // a Content-Encoding other than gzip or identity
	RefusedTruncated = "refused_truncated" // the body ended early, or gzip was announced and the body is not gzip
	RefusedSize      = "refused_size"      // the decompressed body is over the size cap
	RefusedTimeout   = "refused_timeout"   // the fetch ran past its time cap
	RefusedRedirect  = "refused_redirect"  // a redirect loop, too many redirects, or https to http
	RefusedChecksum  = "refused_checksum"  // the body's SHA-256 is not the pinned one
	ErrorNetwork     = "error_network"     // the request failed: DNS, connection, TLS
	ErrorLocal       = "error_local"       // a local failure: the temporary file could not be written

	// Zone transfers (axfr:// sources).
	AXFR          = "axfr"           // a full zone is in force
	IXFR          = "ixfr"           // the zone held, with a difference applied, is in force
	RefusedSerial = "refused_serial" // the primary's serial is older than the one held (RFC 1982)
	RefusedTSIG   = "refused_tsig"   // the primary refused the key, or its answer failed TSIG verification
	RefusedRcode  = "refused_rcode"  // the primary answered the transfer with an error rcode
	RefusedZone   = "refused_zone"   // the transfer holds records outside the zone

	CacheLoaded  = "cache_loaded"  // start-up: the list is served from the disk cache
	CacheRefused = "cache_refused" // start-up: the disk copy failed the list's checks
)

// Result is the outcome of one fetch, or of the start-up load from the
// cache.
type Result struct {
	List    string        // the list's name
	URL     string        // the feed URL, credentials redacted
	Outcome string        // one of the constants above
	Status  int           // the HTTP status; 0 when none was received
	Changed bool          // a new version of the list is in force
	Version string        // the version in force after the attempt; "" if none
	Bytes   int64         // decompressed body bytes read
	Start   time.Time     // when the attempt began
	Elapsed time.Duration // how long it took
	// Err is nil for updated, unchanged, not_modified and cache_loaded,
	// and an *Error otherwise. After a success it may hold a cache write
	// failure (the Outcome stays): the list is current, the disk copy is
	// stale.
	Err error
}

// Refused reports whether the attempt failed, leaving the list in force
// as it was.
func (r Result) Refused() bool {
	switch r.Outcome {
	case Updated, Unchanged, NotModified, CacheLoaded, AXFR, IXFR:
		return false
	}
	return r.Err != nil
}

// Error is a refused or failed fetch. Its message names the list, the
// redacted URL, the status and the reason; it never quotes the body.
type Error struct {
	List    string
	URL     string // redacted
	Status  int
	Outcome string
	Err     error
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("feed %q from %s: %s (HTTP %d): %v", e.List, e.URL, e.Outcome, e.Status, e.Err)
	}
	return fmt.Sprintf("feed %q from %s: %s: %v", e.List, e.URL, e.Outcome, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }
