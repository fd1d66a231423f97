// Package feed keeps a blocklist.List current from an HTTP(S) feed, or
// from an RPZ zone by zone transfer (axfr:// sources: AXFR, then IXFR,
// TSIG, NOTIFY; see xfr.go).
//
// A Fetcher owns one list and one URL. It refreshes the list every Refresh
// (±10% jitter) with conditional GETs (If-None-Match, If-Modified-Since),
// reads gzip whether the server announces it (Content-Encoding) or serves a
// gzip file, and caps each fetch in size, time and redirects. Nothing from
// the network replaces the list in force unless it passes every check: a
// 2xx status, no HTML or JSON error page, a complete stream, the pinned
// SHA-256 when one is set, and then the list's own checks (empty, garbage,
// shrink), which run on the downloaded file through blocklist.List.LoadFile
// exactly as they run on a local file.
//
// With a cache directory, the last good copy of each feed and its
// validators are kept on disk (written atomically, mode 0600), and at
// start-up the list is served from that copy at once, before the network
// is asked.
//
// Each attempt ends in a Result whose Outcome is one of a small set of
// strings, fit for a metric label; the refusals carry the URL with its
// credentials redacted. The package logs nothing and registers no metrics:
// the plugin glue does both from the OnResult hook and Status.
package feed
