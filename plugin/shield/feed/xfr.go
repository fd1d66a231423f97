package feed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dnsshield/shield/plugin/shield/blocklist"
	"github.com/miekg/dns"
)

// Zone transfer (RPZ) sources. A Fetcher whose URL is
// axfr://primary[:port]/zone keeps its list as a secondary keeps a zone: the
// first transfer is an AXFR, later ones an IXFR from the serial held (RFC
// 1995), with a fall-back to AXFR when the primary answers the IXFR with an
// error or a difference that does not apply. It refreshes at the zone's
// SOA refresh interval (bounded by minSOATimer and maxSOATimer), retries at
// its SOA retry interval after a failure, and at once on a NOTIFY from the
// primary (Notify). A serial older than the one held (RFC 1982) is refused.
// The zone is rendered as RPZ zone-file text and put in force through
// blocklist.List.LoadFile, so a transferred zone passes the checks a local
// RPZ file passes; a failed, partial or refused transfer leaves the list
// and the zone held as they were.

// Bounds of the SOA refresh and retry timers, as a secondary applies
// them: a zone that asks for a refresh every second, or once a year, gets
// these instead.
const (
	minSOATimer = 30 * time.Second
	maxSOATimer = 24 * time.Hour
)

// maxRecordBytes is the size a record is taken for against MaxBytes: a
// transfer of more than MaxBytes/maxRecordBytes records is refused as
// over the size cap. RPZ records rendered as text run 40 to 80 bytes.
const maxRecordBytes = 32

// errTooManyRecords ends a transfer over the size cap.
var errTooManyRecords = errors.New("more records than the size cap allows")

// xfrSource is the transfer side of a Fetcher.
type xfrSource struct {
	server  string     // host:port to dial
	primary netip.Addr // the primary's address when the URL gives one
	zone    string     // the policy zone, fully qualified, lower case
	key     *TSIG      // nil: unsigned transfers
	keyName string     // fully qualified, lower case
	alg     string     // miekg/dns's algorithm name
	held    *zone      // the zone in force; guarded by the Fetcher's fetchMu
	peerMu  sync.Mutex // guards peer
	peer    netip.Addr // the address the last transfer connected to
	dialer  net.Dialer // for the transfers
}

// isXFRURL reports whether u is a zone transfer source.
func isXFRURL(u *url.URL) bool { return strings.EqualFold(u.Scheme, "axfr") }

// newXFR returns a Fetcher for an axfr:// URL.
func newXFR(list *blocklist.List, opt Options, u *url.URL) (*Fetcher, error) {
	name := list.Name()
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("feed %q: axfr URL %s: want axfr://primary[:port]/zone and nothing else", name, redactURL(u))
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return nil, fmt.Errorf("feed %q: axfr URL %s names no primary", name, redactURL(u))
	}
	if port == "" {
		port = "53"
	}
	zone := strings.Trim(u.Path, "/")
	if zone == "" || strings.Contains(zone, "/") {
		return nil, fmt.Errorf("feed %q: axfr URL %s: want one zone name as the path", name, redactURL(u))
	}
	zone = strings.ToLower(dns.Fqdn(zone))
	if _, ok := dns.IsDomainName(zone); !ok || zone == "." {
		return nil, fmt.Errorf("feed %q: axfr URL %s: %q is not a zone name", name, redactURL(u), zone)
	}
	if opt.Refresh < 0 || opt.Timeout < 0 || opt.MaxBytes < 0 {
		return nil, fmt.Errorf("feed %q: negative refresh, timeout or size limit", name)
	}
	if opt.SHA256 != "" {
		return nil, fmt.Errorf("feed %q: sha256 cannot pin a zone transfer", name)
	}
	if opt.Timeout == 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.MaxBytes == 0 {
		opt.MaxBytes = DefaultMaxBytes
	}
	x := &xfrSource{server: net.JoinHostPort(host, port), zone: zone}
	if a, err := netip.ParseAddr(host); err == nil {
		x.primary = a.Unmap()
	}
	if k := opt.TSIG; k != nil {
		alg, ok := TSIGAlgorithm(k.Algorithm)
		if !ok {
			return nil, fmt.Errorf("feed %q: tsig algorithm %q: want hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384 or hmac-sha512", name, k.Algorithm)
		}
		if _, ok := dns.IsDomainName(k.Name); !ok || k.Name == "" {
			return nil, fmt.Errorf("feed %q: tsig key name %q is not a domain name", name, k.Name)
		}
		if _, err := ParseTSIGSecret(k.Secret); err != nil {
			return nil, fmt.Errorf("feed %q: tsig key %q: %v", name, k.Name, err)
		}
		x.key, x.keyName, x.alg = k, strings.ToLower(dns.Fqdn(k.Name)), alg
	}
	f := &Fetcher{list: list, opt: opt, url: u.String(), redacted: redactURL(u), xfr: x,
		kick: make(chan struct{}, 1), done: make(chan struct{}), transport: &http.Transport{}}
	if opt.CacheDir != "" {
		f.cache = &cache{dir: opt.CacheDir, base: fileBase(name)}
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.st = Status{List: name, Source: f.redacted}
	return f, nil
}

// Zone returns the policy zone of a transfer source, fully qualified, or
// "" for an HTTP(S) feed.
func (f *Fetcher) Zone() string {
	if f.xfr == nil {
		return ""
	}
	return f.xfr.zone
}

// Notify handles a NOTIFY (RFC 1996) for zone from the address from. It
// reports whether the NOTIFY is this Fetcher's: a transfer source for that
// zone whose primary has that address (the one in the URL, or, for a
// primary given by name, the one the last transfer connected to). A NOTIFY
// that is its own asks for a refresh now, as Refresh does.
func (f *Fetcher) Notify(from netip.Addr, zone string) bool {
	x := f.xfr
	if x == nil || !strings.EqualFold(dns.Fqdn(zone), x.zone) {
		return false
	}
	from = from.Unmap()
	want := x.primary
	if !want.IsValid() {
		x.peerMu.Lock()
		want = x.peer
		x.peerMu.Unlock()
	}
	if !want.IsValid() || from != want {
		return false
	}
	f.Refresh()
	return true
}

// clampTimer bounds a SOA timer (seconds) to [minSOATimer, maxSOATimer].
func clampTimer(sec uint32) time.Duration {
	return min(max(time.Duration(sec)*time.Second, minSOATimer), maxSOATimer)
}

// xfrWait returns the wait before the next transfer: the Refresh option
// when set, else the SOA refresh of the zone held; after fails failures in
// a row, the SOA retry (no longer than the refresh). Before a zone is
// held, failures back off from retryBase as a feed's do.
func (f *Fetcher) xfrWait(fails int) time.Duration {
	f.fetchMu.Lock()
	held := f.xfr.held
	f.fetchMu.Unlock()
	refresh := f.opt.Refresh
	if refresh == 0 && held != nil {
		refresh = clampTimer(held.soa.Refresh)
	}
	if refresh == 0 {
		refresh = DefaultRefresh
	}
	if fails == 0 {
		return jitter(refresh)
	}
	if held == nil {
		return jitter(min(retryBase<<min(fails-1, 20), refresh))
	}
	return jitter(min(clampTimer(held.soa.Retry), refresh))
}

// fetchXFR makes one transfer attempt. The caller holds fetchMu.
func (f *Fetcher) fetchXFR(parent context.Context) (r Result) {
	x := f.xfr
	r = Result{List: f.list.Name(), URL: f.redacted, Start: time.Now()}
	if s := f.list.Snapshot(); s != nil {
		r.Version = s.Version
	}
	ctx, cancel := context.WithTimeout(parent, f.opt.Timeout)
	defer cancel()
	defer context.AfterFunc(f.ctx, cancel)()
	defer func() { r.Elapsed = time.Since(r.Start) }()
	fail := func(outcome string, err error) Result {
		if ctx.Err() == context.DeadlineExceeded && parent.Err() == nil && f.ctx.Err() == nil {
			outcome, err = RefusedTimeout, fmt.Errorf("the transfer ran past its time cap of %s", f.opt.Timeout)
		}
		r.Outcome = outcome
		r.Err = &Error{List: r.List, URL: r.URL, Outcome: outcome, Err: err}
		return r
	}

	if held := x.held; held != nil {
		rrs, err := f.transfer(ctx, dns.TypeIXFR, held.soa)
		if err != nil {
			// A primary that is down or refuses the key would refuse an
			// AXFR too; one that cannot serve the IXFR may still serve it.
			if o := xfrOutcome(err); o != RefusedRcode && o != RefusedTruncated {
				return fail(o, err)
			}
		} else if kind, soa, err := classifyXFR(x.zone, rrs); err == nil {
			switch {
			case soa.Serial == held.soa.Serial:
				return f.notModified(r)
			case serialNewer(held.soa.Serial, soa.Serial):
				return fail(RefusedSerial, fmt.Errorf("the primary's serial %d is older than the serial held, %d", soa.Serial, held.soa.Serial))
			case kind == xfrIncremental:
				if z, err := applyIncremental(held, rrs); err == nil {
					return f.install(r, z, IXFR, fail)
				}
			case kind == xfrFull:
				return f.installFull(r, rrs, fail)
			}
			// A newer serial in a single SOA, or a difference that does
			// not apply to the zone held: ask for the whole zone.
		}
	}
	rrs, err := f.transfer(ctx, dns.TypeAXFR, nil)
	if err != nil {
		return fail(xfrOutcome(err), err)
	}
	return f.installFull(r, rrs, fail)
}

// installFull puts a full zone (an AXFR, or an IXFR answered in full) in
// force, unless its serial is the one held (not modified) or older.
func (f *Fetcher) installFull(r Result, rrs []dns.RR, fail func(string, error) Result) Result {
	kind, soa, err := classifyXFR(f.xfr.zone, rrs)
	switch {
	case err != nil:
		return fail(RefusedTruncated, err)
	case kind != xfrFull:
		return fail(RefusedTruncated, fmt.Errorf("%w: the full transfer of serial %d holds no records", errPartial, soa.Serial))
	}
	if held := f.xfr.held; held != nil {
		switch {
		case soa.Serial == held.soa.Serial:
			return f.notModified(r)
		case serialNewer(held.soa.Serial, soa.Serial):
			return fail(RefusedSerial, fmt.Errorf("the primary's serial %d is older than the serial held, %d", soa.Serial, held.soa.Serial))
		}
	}
	z, err := fullZone(f.xfr.zone, rrs)
	if err != nil {
		return fail(RefusedZone, err)
	}
	return f.install(r, z, AXFR, fail)
}

// install renders z, loads it into the list with the list's own checks
// and, if it is put in force, makes it the zone held and the disk copy.
func (f *Fetcher) install(r Result, z *zone, outcome string, fail func(string, error) Result) Result {
	tmp, err := tempFile(f.cache)
	if err != nil {
		return fail(ErrorLocal, err)
	}
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := z.render(io.MultiWriter(tmp, h))
	r.Bytes = n
	if err == nil && f.cache != nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(ErrorLocal, err)
	}
	changed, err := f.list.LoadFile(tmp.Name())
	if err != nil {
		var le *blocklist.LoadError
		if errors.As(err, &le) {
			return fail("refused_"+le.Reason, err)
		}
		return fail(ErrorLocal, err)
	}
	f.xfr.held = z
	r.Changed, r.Outcome = changed, outcome
	r.Version = f.list.Snapshot().Version
	now := time.Now()
	m := meta{URLHash: urlHash(f.url), URL: f.redacted, Fetched: now, Modified: now,
		SHA256: hex.EncodeToString(h.Sum(nil)), Bytes: n, Serial: z.soa.Serial}
	if !changed && f.val.SHA256 == m.SHA256 && !f.val.Modified.IsZero() {
		m.Modified = f.val.Modified
	}
	if f.cache != nil {
		keep = true
		if err := f.cache.commit(tmp.Name(), &m); err != nil {
			os.Remove(tmp.Name())
			r.Err = &Error{List: r.List, URL: r.URL, Outcome: ErrorLocal,
				Err: fmt.Errorf("zone in force, but the disk cache was not updated: %w", err)}
		}
	}
	f.val = m
	return r
}

// restoreZone reads back the zone of the disk copy just put in force, so
// that the next transfer can be an IXFR from its serial. When it cannot,
// the next transfer is an AXFR. The caller holds fetchMu.
func (f *Fetcher) restoreZone() {
	fh, err := os.Open(f.cache.listPath())
	if err != nil {
		return
	}
	defer fh.Close()
	z, err := parseZone(f.xfr.zone, fh)
	if err != nil {
		return
	}
	f.xfr.held = z
}

// transfer runs one AXFR or IXFR (from held) and returns every record of
// every answer section, in order. The connection is closed when ctx ends.
func (f *Fetcher) transfer(ctx context.Context, qtype uint16, held *dns.SOA) ([]dns.RR, error) {
	x := f.xfr
	conn, err := x.dialer.DialContext(ctx, "tcp", x.server)
	if err != nil {
		return nil, err
	}
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	if ta, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		x.peerMu.Lock()
		x.peer = ta.AddrPort().Addr().Unmap()
		x.peerMu.Unlock()
	}
	t := &dns.Transfer{Conn: &dns.Conn{Conn: conn}, ReadTimeout: f.opt.Timeout, WriteTimeout: f.opt.Timeout}
	m := new(dns.Msg)
	if qtype == dns.TypeIXFR {
		m.SetIxfr(x.zone, held.Serial, held.Ns, held.Mbox)
	} else {
		m.SetAxfr(x.zone)
	}
	if x.key != nil {
		t.TsigSecret = map[string]string{x.keyName: x.key.Secret}
		m.SetTsig(x.keyName, x.alg, 300, time.Now().Unix())
	}
	env, err := t.In(m, x.server)
	if err != nil {
		conn.Close()
		return nil, err
	}
	limit := int(max(f.opt.MaxBytes/maxRecordBytes, 1))
	var rrs []dns.RR
	for e := range env { // drained to the end: In's goroutine closes it
		switch {
		case err != nil:
		case e.Error != nil:
			err = e.Error
		case len(rrs)+len(e.RR) > limit:
			err = fmt.Errorf("%w (%d records)", errTooManyRecords, limit)
			conn.Close()
		default:
			rrs = append(rrs, e.RR...)
		}
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return rrs, err
}

// xfrOutcome returns the outcome of a failed transfer.
func xfrOutcome(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return RefusedTimeout
	case errors.Is(err, dns.ErrSig), errors.Is(err, dns.ErrNoSig), errors.Is(err, dns.ErrAuth), errors.Is(err, dns.ErrSecret),
		errors.Is(err, dns.ErrKeyAlg), errors.Is(err, dns.ErrTime),
		strings.HasSuffix(msg, fmt.Sprintf("bad xfr rcode: %d", dns.RcodeNotAuth)):
		return RefusedTSIG
	case strings.Contains(msg, "bad xfr rcode: "):
		return RefusedRcode
	case errors.Is(err, errTooManyRecords):
		return RefusedSize
	case errors.Is(err, errPartial), errors.Is(err, dns.ErrSoa), errors.Is(err, dns.ErrId):
		return RefusedTruncated
	}
	return ErrorNetwork
}
