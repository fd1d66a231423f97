package test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/dnsshield/shield/internal/corpus"
)

// feedCorpus is the real feed the tests serve: URLhaus's malicious
// domains, in the domains format, as published.
const feedCorpus = "domains_urlhaus_filter.txt.gz"

// feedFault is what the test feed server answers instead of the feed.
type feedFault int

const (
	faultNone        feedFault = iota
	faultNotFound              // 404
	faultServerError           // 500
	faultHTML                  // 200 with an HTML error page
	faultTruncatedGz           // 200, Content-Encoding gzip, the stream cut in half
)

func (f feedFault) String() string {
	return [...]string{"none", "404", "500", "html", "truncated gzip"}[f]
}

// feedServer is an HTTP feed on 127.0.0.1 that serves a list with an ETag,
// gzip-encoded when the client accepts it, answers a conditional GET for
// the current ETag with 304, and injects faults on demand.
type feedServer struct {
	srv *httptest.Server

	mu      sync.Mutex // guards the fields below
	body    []byte
	gz      []byte // body, gzip-compressed
	etag    string
	fault   feedFault
	served  map[feedFault]int // requests answered in each mode
	got304  int               // 304s sent
	agents  map[string]bool   // User-Agents seen
	gzipped int               // 200s sent gzip-encoded
}

func startFeedServer(t testing.TB, body []byte) *feedServer {
	t.Helper()
	fs := &feedServer{served: map[feedFault]int{}, agents: map[string]bool{}}
	fs.set(body)
	fs.srv = httptest.NewServer(http.HandlerFunc(fs.serve))
	t.Cleanup(fs.srv.Close)
	return fs
}

func (fs *feedServer) url(path string) string { return fs.srv.URL + path }

// set changes the feed's content (and its ETag).
func (fs *feedServer) set(body []byte) {
	sum := sha256.Sum256(body)
	gz := gzipBytes(body)
	fs.mu.Lock()
	fs.body, fs.gz, fs.etag = body, gz, `"`+hex.EncodeToString(sum[:8])+`"`
	fs.mu.Unlock()
}

func (fs *feedServer) inject(f feedFault) {
	fs.mu.Lock()
	fs.fault = f
	fs.mu.Unlock()
}

// count returns the requests answered in mode f.
func (fs *feedServer) count(f feedFault) int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.served[f]
}

func (fs *feedServer) stats() (notModified, gzipped int, agents []string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for a := range fs.agents {
		agents = append(agents, a)
	}
	return fs.got304, fs.gzipped, agents
}

func (fs *feedServer) serve(w http.ResponseWriter, r *http.Request) {
	fs.mu.Lock()
	body, gz, etag, fault := fs.body, fs.gz, fs.etag, fs.fault
	fs.served[fault]++
	fs.agents[r.UserAgent()] = true
	fs.mu.Unlock()
	switch fault {
	case faultNotFound:
		http.NotFound(w, r)
		return
	case faultServerError:
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	case faultHTML:
		// What a CDN or a captive portal answers: 200, and a page that
		// does not even say it is HTML in its Content-Type.
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "<!DOCTYPE html>\n<html><head><title>Service unavailable</title></head><body>try later</body></html>\n")
		return
	case faultTruncatedGz:
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(gz[:len(gz)/2])
		return
	}
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		fs.mu.Lock()
		fs.got304++
		fs.mu.Unlock()
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		fs.mu.Lock()
		fs.gzipped++
		fs.mu.Unlock()
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(gz)
		return
	}
	w.Write(body)
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// readFeedCorpus returns the real feed and a domain name it lists.
func readFeedCorpus(t testing.TB) (body []byte, listed string) {
	t.Helper()
	return readCorpusFeed(t, feedCorpus)
}

// readCorpusFeed returns the corpus file name, a list in the domains
// format, and a domain name it lists.
func readCorpusFeed(t testing.TB, name string) (body []byte, listed string) {
	t.Helper()
	rc := corpus.Open(t, name)
	defer rc.Close()
	body, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if _, err := netip.ParseAddr(line); err == nil {
			continue
		}
		return body, line + "."
	}
	t.Fatalf("%s lists no domain name", name)
	return nil, ""
}

// feedWithin bounds the wait for a change of the feed to be in force:
// the refresh, the fetch and the parse, on a loaded machine under the race
// detector.
const feedWithin = 15 * time.Second

// feedRefresh is the refresh the tests run with: short, so that a change
// and each fault are seen within seconds.
const feedRefresh = "1s"

// TestFeedServesAndKeepsLastGood fetches a real feed over HTTP, blocks a
// name from it, takes a change, and then keeps the last good version
// through a 404, a 500, an HTML error page and a truncated gzip stream,
// all checked over DNS.
func TestFeedServesAndKeepsLastGood(t *testing.T) {
	up := startUpstream(t)
	body, listed := readFeedCorpus(t)
	fs := startFeedServer(t, body)
	metricsAddr := freePort(t)
	r := startCoreDNS(t, shieldCorefile(up, "prometheus "+metricsAddr,
		"blocklist live "+fs.url("/urlhaus.txt")+" domains\nrefresh "+feedRefresh+"\naudit off"))

	eventually(t, 5*time.Second, "the feed's first version in force", func() bool { return blocked(t, r, listed) })
	if blocked(t, r, "fresh.feed.test.") {
		t.Fatal("a name the feed does not list is blocked")
	}
	outcome := func(o string) float64 {
		return metricValue(t, metricsAddr, "coredns_shield_feed_fetch_total", map[string]string{"list": "live", "outcome": o})
	}
	// Unchanged content: the next fetches are conditional and answered 304.
	eventually(t, 5*time.Second, "a 304 to a conditional GET", func() bool { n, _, _ := fs.stats(); return n > 0 })
	if outcome("not_modified") == 0 || outcome("updated") != 1 {
		t.Errorf("metrics: not_modified %v, updated %v", outcome("not_modified"), outcome("updated"))
	}
	if _, gz, agents := fs.stats(); gz == 0 || len(agents) != 1 || !strings.HasPrefix(agents[0], "shield/") {
		t.Errorf("gzip responses %d, User-Agents %q", gz, agents)
	}
	if age := metricValue(t, metricsAddr, "coredns_shield_list_age_seconds", map[string]string{"list": "live"}); age <= 0 || age > 10 {
		t.Errorf("list age %v s", age)
	}

	// A change is in force at the next refresh.
	changed := time.Now()
	fs.set(append(append([]byte(nil), body...), "fresh.feed.test\n"...))
	eventually(t, feedWithin, "the changed feed in force", func() bool { return blocked(t, r, "fresh.feed.test.") })
	t.Logf("a changed feed was in force after %s (refresh %s)", time.Since(changed).Round(time.Millisecond), feedRefresh)

	faults := []struct {
		fault   feedFault
		outcome string
	}{
		{faultNotFound, "refused_status"},
		{faultServerError, "refused_status"},
		{faultHTML, "refused_html"},
		{faultTruncatedGz, "refused_truncated"},
	}
	for _, f := range faults {
		before := outcome(f.outcome)
		fs.inject(f.fault)
		// Two refused fetches: the retry after a failure is refused too.
		eventually(t, 10*time.Second, f.fault.String()+" served twice", func() bool { return fs.count(f.fault) >= 2 })
		if !blocked(t, r, listed) || !blocked(t, r, "fresh.feed.test.") {
			t.Fatalf("after %s: the last good list is not in force", f.fault)
		}
		eventually(t, 2*time.Second, f.outcome+" counted", func() bool { return outcome(f.outcome) >= before+2 })
	}
	if h := metricValue(t, metricsAddr, "coredns_shield_list_entries", map[string]string{"list": "live"}); h < 1000 {
		t.Errorf("list entries %v after the faults", h)
	}

	// The feed recovers: the fetcher is still alive and takes a new version.
	fs.set(append(append([]byte(nil), body...), "recovered.feed.test\n"...))
	fs.inject(faultNone)
	eventually(t, feedWithin, "the recovered feed in force", func() bool { return blocked(t, r, "recovered.feed.test.") })
	if blocked(t, r, "fresh.feed.test.") {
		t.Error("the version before the faults is still in force")
	}
}

// TestFeedCorefileReload checks that a Corefile reload keeps a feed list
// in force, with no feed_cache and the feed failing: the new
// configuration takes the list over from the old one.
func TestFeedCorefileReload(t *testing.T) {
	up := startUpstream(t)
	body, listed := readFeedCorpus(t)
	fs := startFeedServer(t, body)
	readyAddr := freePort(t)
	corefile := func(ttl int) string {
		return shieldCorefile(up, "ready "+readyAddr, fmt.Sprintf("blocklist reloaded %s domains\nrefresh %s\nttl %d\naudit off", fs.url("/u.txt"), feedRefresh, ttl))
	}
	startMu.Lock()
	caddy.Quiet, dnsserver.Quiet = true, true
	inst, err := caddy.Start(corefileInput(corefile(60)))
	startMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.ShutdownCallbacks(); inst.Stop() }) // the instance in force at the end
	r := &resolver{inst: inst, udp: inst.Servers()[0].LocalAddr().String()}
	eventually(t, 5*time.Second, "the feed in force", func() bool { return blocked(t, r, listed) })
	fs.inject(faultServerError)
	startMu.Lock()
	inst, err = inst.Restart(corefileInput(corefile(120)))
	startMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	r = &resolver{inst: inst, udp: inst.Servers()[0].LocalAddr().String()}
	if !blocked(t, r, listed) {
		t.Fatal("the feed list is not in force right after the reload")
	}
	n := fs.count(faultServerError)
	eventually(t, 10*time.Second, "a refused fetch by the new configuration", func() bool { return fs.count(faultServerError) >= n+2 })
	if !blocked(t, r, listed) || readyStatus(readyAddr) != http.StatusOK {
		t.Error("the feed list left force after the reload")
	}
	// The new configuration's fetcher takes changes.
	fs.set(append(append([]byte(nil), body...), "after-reload.feed.test\n"...))
	fs.inject(faultNone)
	eventually(t, feedWithin, "a change after the reload", func() bool { return blocked(t, r, "after-reload.feed.test.") })
}

// startCoreDNSStoppable is startCoreDNS with a stop function, for a test
// that restarts the resolver.
func startCoreDNSStoppable(t testing.TB, corefile string) (*resolver, func()) {
	t.Helper()
	startMu.Lock()
	defer startMu.Unlock()
	caddy.Quiet = true
	dnsserver.Quiet = true
	inst, err := caddy.Start(corefileInput(corefile))
	if err != nil {
		t.Fatalf("starting CoreDNS: %v\nCorefile:\n%s", err, corefile)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			inst.ShutdownCallbacks()
			inst.Stop()
		})
	}
	t.Cleanup(stop)
	srvs := inst.Servers()
	return &resolver{inst: inst, udp: srvs[0].LocalAddr().String(), tcp: srvs[0].Addr().String()}, stop
}

// warmFeedCache runs shield once against the feed until the list is in
// force and its copy is in dir, then stops it.
func warmFeedCache(t testing.TB, up *upstream, list, url, dir, listed string) {
	t.Helper()
	r, stop := startCoreDNSStoppable(t, shieldCorefile(up, "",
		"blocklist "+list+" "+url+" domains\nfeed_cache "+dir+"\naudit off"))
	eventually(t, 5*time.Second, "the feed in force", func() bool { return blocked(t, r, listed) })
	eventually(t, 2*time.Second, "the disk copy written", func() bool {
		_, err := os.Stat(filepath.Join(dir, list+".meta"))
		return err == nil
	})
	stop()
}

// TestFeedStartsFromCacheWithHostDown checks that, with the feed host
// down at start-up, the list is served from the disk copy as soon as the
// server answers, and readiness is true.
func TestFeedStartsFromCacheWithHostDown(t *testing.T) {
	up := startUpstream(t)
	body, listed := readFeedCorpus(t)
	fs := startFeedServer(t, body)
	url := fs.url("/urlhaus.txt")
	dir := filepath.Join(t.TempDir(), "feeds")
	warmFeedCache(t, up, "cached", url, dir, listed)
	for _, name := range []string{"cached.list", "cached.meta"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("cache file %s: %v, mode %v; want mode 0600", name, err, fi)
		}
	}
	fs.srv.Close() // the feed host is down

	readyAddr, metricsAddr := freePort(t), freePort(t)
	start := time.Now()
	r, _ := startCoreDNSStoppable(t, shieldCorefile(up, "ready "+readyAddr+"\n prometheus "+metricsAddr,
		"blocklist cached "+url+" domains\nfeed_cache "+dir+"\nrefresh "+feedRefresh+"\naudit off"))
	// The copy is loaded in OnStartup, before the server answers.
	if !blocked(t, r, listed) {
		t.Fatal("the cached list is not in force at start-up")
	}
	eventually(t, time.Second, "ready within a second", func() bool { return readyStatus(readyAddr) == http.StatusOK })
	t.Logf("started from the disk cache with the feed host down: in force and ready after %s", time.Since(start).Round(time.Millisecond))
	if v := metricValue(t, metricsAddr, "coredns_shield_feed_fetch_total", map[string]string{"list": "cached", "outcome": "cache_loaded"}); v < 1 {
		t.Errorf("cache_loaded counted %v times", v)
	}
	if v := metricValue(t, metricsAddr, "coredns_shield_feed_last_success_timestamp_seconds", map[string]string{"list": "cached"}); v < float64(start.Add(-time.Minute).Unix()) {
		t.Errorf("last success %v: not the cache's record", v)
	}
	// The fetches that follow fail, and the copy stays in force.
	eventually(t, 5*time.Second, "a failed fetch", func() bool {
		return metricValue(t, metricsAddr, "coredns_shield_feed_fetch_total", map[string]string{"list": "cached", "outcome": "error_network"}) >= 1
	})
	if !blocked(t, r, listed) || readyStatus(readyAddr) != http.StatusOK {
		t.Error("a failed fetch took the cached list out of force")
	}
}

// TestFeedNotReadyWithoutCache checks that, with no disk copy and the
// feed host down, the list is not in force and shield is not ready.
func TestFeedNotReadyWithoutCache(t *testing.T) {
	up := startUpstream(t)
	down := "http://" + freePort(t) + "/list.txt" // nothing listens there
	readyAddr := freePort(t)
	startCoreDNS(t, shieldCorefile(up, "ready "+readyAddr, "blocklist l "+down+" domains\naudit off"))
	eventually(t, 3*time.Second, "ready endpoint up", func() bool { return readyStatus(readyAddr) != 0 })
	if s := readyStatus(readyAddr); s != http.StatusServiceUnavailable {
		t.Fatalf("ready with an unfetched feed: status %d", s)
	}
}

// readyStatus returns the status of the ready endpoint at addr, 0 when it
// does not answer.
func readyStatus(addr string) int {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/ready")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// benchFeeds are the real feeds the benchmarks serve: URLhaus's domains
// (2.7k names) and hagezi's threat-intelligence mini list (167k names).
var benchFeeds = []struct{ name, file string }{
	{"urlhaus", feedCorpus},
	{"tif_mini", "domains_hagezi_tif_mini.txt.gz"},
}

// BenchmarkFeedChangeInForce measures the time from a change of the feed
// to the change in force over DNS, with refresh 1s. Each change is made
// just after a fetch (the previous change was just seen), so this is the
// worst case: a whole refresh period (0.9 to 1.1 s with jitter) plus the
// fetch, the checks and the parse.
func BenchmarkFeedChangeInForce(b *testing.B) {
	for _, bf := range benchFeeds {
		b.Run(bf.name, func(b *testing.B) {
			up := startUpstream(b)
			body, listed := readCorpusFeed(b, bf.file)
			fs := startFeedServer(b, body)
			r := startCoreDNS(b, shieldCorefile(up, "", "blocklist bench_"+bf.name+" "+fs.url("/u.txt")+" domains\nrefresh "+feedRefresh+"\naudit off"))
			eventually(b, 10*time.Second, "first version", func() bool { return blocked(b, r, listed) })
			var total time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				name := fmt.Sprintf("change%d.feed.test", i)
				start := time.Now()
				fs.set(append(append([]byte(nil), body...), name+"\n"...))
				for !blocked(b, r, name+".") {
					if time.Since(start) > 10*time.Second {
						b.Fatal("change not in force within 10s")
					}
					time.Sleep(5 * time.Millisecond)
				}
				total += time.Since(start)
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/change")
		})
	}
}

// BenchmarkFeedStartFromCache measures a start of CoreDNS with the feed
// host down and a warm feed_cache: from caddy.Start to the cached list in
// force over DNS and /ready answering 200. The baseline, file, starts
// with the same list as a local file.
func BenchmarkFeedStartFromCache(b *testing.B) {
	for _, bf := range benchFeeds {
		up := startUpstream(b)
		body, listed := readCorpusFeed(b, bf.file)
		fs := startFeedServer(b, body)
		url := fs.url("/feed.txt")
		dir := filepath.Join(b.TempDir(), "feeds")
		list := "bench_" + bf.name
		warmFeedCache(b, up, list, url, dir, listed)
		fs.srv.Close()
		for _, from := range []struct{ name, line string }{
			{"cache", "blocklist " + list + " " + url + " domains\nfeed_cache " + dir},
			{"file", "blocklist " + list + "_file " + filepath.Join(dir, list+".list") + " domains"},
		} {
			b.Run(bf.name+"/"+from.name, func(b *testing.B) {
				var total time.Duration
				for i := 0; i < b.N; i++ {
					readyAddr := freePort(b)
					start := time.Now()
					r, stop := startCoreDNSStoppable(b, shieldCorefile(up, "ready "+readyAddr, from.line+"\naudit off"))
					if !blocked(b, r, listed) {
						b.Fatal("list not in force")
					}
					for readyStatus(readyAddr) != http.StatusOK {
						if time.Since(start) > 5*time.Second {
							b.Fatal("not ready within 5s")
						}
						time.Sleep(time.Millisecond)
					}
					total += time.Since(start)
					b.StopTimer()
					stop()
					b.StartTimer()
				}
				b.ReportMetric(total.Seconds()/float64(b.N), "s/start")
			})
		}
	}
}
