package feed

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/dnsshield/shield/plugin/shield/blocklist"
)

// Defaults for the zero values of Options.
const (
	DefaultRefresh      = time.Hour
	DefaultTimeout      = 2 * time.Minute
	DefaultMaxBytes     = 256 << 20 // decompressed
	DefaultMaxRedirects = 5
)

// retryBase is the first wait after a failed fetch; it doubles with each
// further failure, up to Refresh. A feed that failed is retried sooner
// than one that worked, without hammering a host that keeps failing.
var retryBase = 30 * time.Second

// Options configures a Fetcher. Zero values take the defaults.
type Options struct {
	URL          string        // http:// or https://
	Refresh      time.Duration // between fetches, ±10% jitter (DefaultRefresh)
	Timeout      time.Duration // the whole of one fetch, body included (DefaultTimeout)
	MaxBytes     int64         // cap on the decompressed body (DefaultMaxBytes)
	MaxRedirects int           // redirects followed (DefaultMaxRedirects); a loop is refused at once
	// SHA256 pins the list text (after decompression) to these 64 hex
	// digits; any other content is refused. For feeds that publish a
	// checksum, or for a fixed snapshot.
	SHA256 string
	// CacheDir keeps the last good copy and its validators; "" keeps
	// nothing on disk and starts every run from the network.
	CacheDir  string
	UserAgent string // default: UserAgent()
	// Transport is cloned to carry the requests (a test passes one that
	// trusts its TLS server). Nil means a clone of http.DefaultTransport,
	// which takes its proxy from the environment (HTTPS_PROXY, HTTP_PROXY,
	// NO_PROXY).
	Transport *http.Transport
	// OnResult, if set, is called after every attempt, including the
	// start-up load from the cache, on the goroutine that made it and
	// while fetches are serialised: it must not block for long nor call
	// Fetch. It is where the glue counts and logs.
	OnResult func(Result)
	// TSIG signs the transfers of an axfr:// source; nil sends them
	// unsigned. An HTTP(S) feed ignores it.
	TSIG *TSIG
}

// Status is what a status page shows of a feed.
type Status struct {
	List        string
	Source      string // the URL, credentials redacted
	Version     string // the version in force, "" before the first load
	FromCache   bool   // the list in force came from the disk cache and the feed has not confirmed it since start-up
	LastAttempt time.Time
	LastSuccess time.Time // the last time the feed confirmed the list in force (200 or 304)
	LastChange  time.Time // when the content in force was first fetched
	LastOutcome string
	LastError   string // of the last attempt; "" when it succeeded
	NextFetch   time.Time
	// Age is the time since LastSuccess (0 before the first success): a
	// feed whose Age grows well past its refresh is stale.
	Age time.Duration
}

// Fetcher keeps one list current from one feed URL. Create it with New,
// then Start it once and Stop it once; Stop waits for its goroutine.
type Fetcher struct {
	list      *blocklist.List
	opt       Options
	url       string
	redacted  string
	pin       []byte
	cache     *cache // nil without CacheDir
	transport *http.Transport
	client    *http.Client
	xfr       *xfrSource // set for an axfr:// source (xfr.go)

	ctx    context.Context // cancelled by Stop: ends a fetch in flight
	cancel context.CancelFunc
	kick   chan struct{}
	done   chan struct{}

	life    sync.Mutex // guards started and stopped
	started bool
	stopped bool

	fetchMu sync.Mutex // serialises fetches; guards val
	val     meta       // validators and times of the copy in force

	mu sync.Mutex // guards st
	st Status
}

// New returns a Fetcher that keeps list current from opt.URL. It checks
// the options and does no I/O: the cache is read by Start and the network
// is asked by the Fetcher's goroutine.
func New(list *blocklist.List, opt Options) (*Fetcher, error) {
	u, err := url.Parse(opt.URL)
	if err != nil {
		return nil, fmt.Errorf("feed %q: bad URL %s", list.Name(), Redact(opt.URL))
	}
	if isXFRURL(u) {
		return newXFR(list, opt, u)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("feed %q: URL %s: want http:// or https:// and a host", list.Name(), redactURL(u))
	}
	if opt.Refresh < 0 || opt.Timeout < 0 || opt.MaxBytes < 0 || opt.MaxRedirects < 0 {
		return nil, fmt.Errorf("feed %q: negative refresh, timeout, size or redirect limit", list.Name())
	}
	if opt.Refresh == 0 {
		opt.Refresh = DefaultRefresh
	}
	if opt.Timeout == 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.MaxBytes == 0 {
		opt.MaxBytes = DefaultMaxBytes
	}
	if opt.MaxRedirects == 0 {
		opt.MaxRedirects = DefaultMaxRedirects
	}
	if opt.UserAgent == "" {
		opt.UserAgent = UserAgent()
	}
	f := &Fetcher{list: list, opt: opt, url: opt.URL, redacted: redactURL(u),
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	if opt.SHA256 != "" {
		pin, err := hex.DecodeString(strings.ToLower(opt.SHA256))
		if err != nil || len(pin) != 32 {
			return nil, fmt.Errorf("feed %q: sha256 %q is not 64 hex digits", list.Name(), opt.SHA256)
		}
		f.pin = pin
	}
	if opt.CacheDir != "" {
		f.cache = &cache{dir: opt.CacheDir, base: fileBase(list.Name())}
	}
	if opt.Transport != nil {
		f.transport = opt.Transport.Clone()
	} else {
		f.transport = http.DefaultTransport.(*http.Transport).Clone()
		f.transport.Proxy = http.ProxyFromEnvironment
	}
	// The fetcher asks for gzip itself, to tell a broken stream from a
	// network failure and to cap what it expands to.
	f.transport.DisableCompression = true
	f.client = &http.Client{Transport: f.transport, CheckRedirect: f.checkRedirect}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.st = Status{List: list.Name(), Source: f.redacted}
	return f, nil
}

// List returns the list the Fetcher keeps current.
func (f *Fetcher) List() *blocklist.List { return f.list }

// URL returns the feed URL with its credentials redacted.
func (f *Fetcher) URL() string { return f.redacted }

// Start serves the list from the disk cache, if there is a good copy for
// this URL (synchronously: it reads and parses a local file, as a local
// list's first load does), and then starts the goroutine that fetches.
// The first fetch is at once, or, when the cached copy is younger than
// Refresh, when it falls due; a Corefile reload therefore does not refetch
// every feed. Start never waits for the network.
func (f *Fetcher) Start() {
	f.life.Lock()
	defer f.life.Unlock()
	if f.started || f.stopped {
		return
	}
	f.started = true
	f.fetchMu.Lock()
	if r, ok := f.loadCache(); ok {
		f.record(r)
	}
	wait := time.Duration(0)
	if !f.val.Fetched.IsZero() && f.list.Snapshot() != nil {
		// Clamped: a fetch time in the future (the clock was set back)
		// must not postpone the refresh.
		wait = min(max(time.Until(f.val.Fetched.Add(jitter(f.opt.Refresh))), 0), f.opt.Refresh+f.opt.Refresh/10)
	}
	f.fetchMu.Unlock()
	f.setNext(wait)
	go f.run(wait)
}

// Stop ends a fetch in flight, stops the goroutine and waits for it, and
// closes idle connections. The list keeps its content.
func (f *Fetcher) Stop() {
	f.life.Lock()
	defer f.life.Unlock()
	if f.stopped {
		return
	}
	f.stopped = true
	f.cancel()
	if f.started {
		<-f.done
	}
	f.transport.CloseIdleConnections()
}

// Refresh asks the Fetcher's goroutine to fetch now (a management API's
// "refresh" button). It does not wait; a request while one is pending is
// merged with it.
func (f *Fetcher) Refresh() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Fetch fetches the feed once, now, and returns the result (also passed
// to OnResult). Fetches are serialised: a call while the goroutine
// fetches waits for it. ctx bounds the fetch beside the time cap.
func (f *Fetcher) Fetch(ctx context.Context) Result {
	f.fetchMu.Lock()
	defer f.fetchMu.Unlock()
	r := f.fetch(ctx)
	f.record(r)
	return r
}

func (f *Fetcher) run(wait time.Duration) {
	defer close(f.done)
	t := time.NewTimer(wait)
	defer t.Stop()
	fails := 0
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
		case <-f.kick:
		}
		r := f.Fetch(f.ctx)
		if f.ctx.Err() != nil {
			return
		}
		if r.Refused() {
			fails++
		} else {
			fails = 0
		}
		wait := jitter(f.opt.Refresh)
		if f.xfr != nil {
			wait = f.xfrWait(fails)
		} else if fails > 0 {
			backoff := retryBase << min(fails-1, 20)
			wait = jitter(min(backoff, f.opt.Refresh))
		}
		f.setNext(wait)
		t.Reset(wait)
	}
}

// jitter returns d changed by a random amount within ±10%, so that many
// resolvers started together do not fetch together.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}

// record updates the status and the list's last error from r and passes
// r on to OnResult. A fetch cut short by Stop is not recorded.
func (f *Fetcher) record(r Result) {
	if f.ctx.Err() != nil && r.Outcome != CacheLoaded {
		return
	}
	// Refusals of the list's own checks are recorded by LoadFile.
	var le *blocklist.LoadError
	switch {
	case r.Outcome == NotModified:
		f.list.SetError(nil)
	case r.Refused() && !errors.As(r.Err, &le):
		f.list.SetError(r.Err)
	}
	f.mu.Lock()
	st := &f.st
	st.LastAttempt, st.LastOutcome, st.LastError = r.Start, r.Outcome, ""
	if r.Err != nil {
		st.LastError = r.Err.Error()
	}
	if r.Version != "" {
		st.Version = r.Version
	}
	switch r.Outcome {
	case Updated, Unchanged, NotModified, AXFR, IXFR:
		st.FromCache = false
		st.LastSuccess, st.LastChange = f.val.Fetched, f.val.Modified
	case CacheLoaded:
		st.FromCache = true
		st.LastSuccess, st.LastChange = f.val.Fetched, f.val.Modified
	}
	f.mu.Unlock()
	if f.opt.OnResult != nil {
		f.opt.OnResult(r)
	}
}

func (f *Fetcher) setNext(wait time.Duration) {
	f.mu.Lock()
	f.st.NextFetch = time.Now().Add(wait)
	f.mu.Unlock()
}

// Status returns the feed's current status.
func (f *Fetcher) Status() Status {
	f.mu.Lock()
	st := f.st
	f.mu.Unlock()
	if !st.LastSuccess.IsZero() {
		st.Age = time.Since(st.LastSuccess)
	}
	return st
}

// UserAgent returns the User-Agent a Fetcher sends by default: shield,
// its version (the module version it was built from, "devel" for a
// source build) and the project's address.
func UserAgent() string {
	v := "devel"
	if bi, ok := debug.ReadBuildInfo(); ok {
		mv := bi.Main.Version
		if bi.Main.Path != module {
			mv = ""
			for _, d := range bi.Deps {
				if d.Path == module {
					mv = d.Version
				}
			}
		}
		if mv != "" && mv != "(devel)" {
			v = mv
		}
	}
	return "shield/" + v + " (+https://" + module + ")"
}

const module = "github.com/dnsshield/shield"
