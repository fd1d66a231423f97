package feed

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/dnsshield/shield/plugin/shield/blocklist"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitGoroutines waits until no more than n goroutines run.
func waitGoroutines(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nextResult returns the next result OnResult reports.
func (r *results) next(t testing.TB, d time.Duration) Result {
	t.Helper()
	select {
	case res := <-r.ch:
		return res
	case <-time.After(d):
		t.Fatalf("no fetch result within %s", d)
		return Result{}
	}
}

// With the feed host down at start-up, the list is served from the disk
// cache at once, its age is the cached copy's, and failed fetches leave
// it in force.
func TestStartFromCacheHostDown(t *testing.T) {
	text := corpusText(t, "domains_urlhaus_filter.txt.gz")
	name := firstRule(t, text) + "."
	dir := t.TempDir()
	srv := newFeedServer(t)
	srv.serve(body(gz(t, text), "Content-Encoding", "gzip", "ETag", `"e1"`))
	u := srv.URL + "/urlhaus.txt"
	f, err := New(newList("urlhaus"), Options{URL: u, CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if r := f.Fetch(context.Background()); r.Outcome != Updated {
		t.Fatalf("seed fetch: %+v", r)
	}
	f.Stop()
	fetched := time.Now()
	srv.Close() // the feed host is down from here on

	// A fresh cache: served at once, and the next fetch waits its turn.
	list := newList("urlhaus")
	res := newResults()
	f, _ = New(list, Options{URL: u, CacheDir: dir, OnResult: res.add})
	start := time.Now()
	f.Start()
	ready := time.Since(start)
	if list.Snapshot() == nil || list.Lookup(name).Action != blocklist.ActBlock {
		t.Fatal("the cached list is not in force after Start")
	}
	// The time is a figure for the report, not a pass mark (timings
	// belong in benchmarks): what is asserted is that Start returned with
	// the list in force and the feed host down.
	t.Logf("start-up from the cache with the feed host down: %s (%d names)", ready, list.Snapshot().Set.Len())
	if r := res.next(t, 10*time.Second); r.Outcome != CacheLoaded || !r.Changed {
		t.Fatalf("start-up result %+v", r)
	}
	st := f.Status()
	if !st.FromCache || st.LastSuccess.After(fetched) || st.Age <= 0 || time.Until(st.NextFetch) < 50*time.Minute {
		t.Fatalf("status after a start from a fresh cache: %+v", st)
	}
	f.Stop()

	// A cache older than refresh: fetched at once, the fetch fails, the
	// list stays, and the retry comes after the backoff.
	defer func(d time.Duration) { retryBase = d }(retryBase)
	retryBase = 20 * time.Millisecond
	list = newList("urlhaus")
	res = newResults()
	f, _ = New(list, Options{URL: u, CacheDir: dir, Refresh: 50 * time.Millisecond, OnResult: res.add})
	time.Sleep(60 * time.Millisecond)
	f.Start()
	defer f.Stop()
	if r := res.next(t, 10*time.Second); r.Outcome != CacheLoaded {
		t.Fatalf("start-up result %+v", r)
	}
	for range 3 {
		if r := res.next(t, 10*time.Second); r.Outcome != ErrorNetwork || !r.Refused() {
			t.Fatalf("fetch from a host that is down: %+v", r)
		}
	}
	if list.Lookup(name).Action != blocklist.ActBlock || list.LastError() == nil {
		t.Fatal("a failed fetch dropped the cached list or left no error")
	}
	if st := f.Status(); !st.FromCache || st.LastOutcome != ErrorNetwork || st.LastError == "" {
		t.Fatalf("status %+v", st)
	}
}

// The refresh loop fetches, then asks conditionally, then puts a changed
// feed in force, and Stop leaves no goroutine behind.
func TestRefreshLoop(t *testing.T) {
	text := corpusText(t, "hosts_urlhaus_filter.txt.gz")
	srv := newFeedServer(t)
	serveVersion := func(etag string, b []byte) {
		srv.serve(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("If-None-Match") == etag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Header().Set("ETag", etag)
			w.Write(b)
		})
	}
	serveVersion(`"a"`, text)
	before := runtime.NumGoroutine()
	list := newList("hosts")
	res := newResults()
	f, _ := New(list, Options{URL: srv.URL + "/hosts.txt", Refresh: 100 * time.Millisecond, OnResult: res.add})
	f.Start()
	if r := res.next(t, 10*time.Second); r.Outcome != Updated {
		t.Fatalf("first fetch %+v", r)
	}
	if r := res.next(t, 10*time.Second); r.Outcome != NotModified {
		t.Fatalf("second fetch %+v", r)
	}
	changed := time.Now()
	serveVersion(`"b"`, append([]byte("0.0.0.0 changed.example\n"), text...))
	waitFor(t, 10*time.Second, "the changed feed in force", func() bool {
		return list.Lookup("changed.example.").Action == blocklist.ActBlock
	})
	t.Logf("changed feed in force after %s (refresh 100ms)", time.Since(changed))
	f.Refresh() // a kick while the loop runs is harmless
	f.Stop()
	f.Stop()
	srv.CloseClientConnections()
	waitGoroutines(t, before)
}

// Stop ends a fetch that hangs, at once, and waits for its goroutine.
func TestStopDuringFetch(t *testing.T) {
	srv := newFeedServer(t)
	arrived := make(chan struct{}, 1)
	srv.serve(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	})
	before := runtime.NumGoroutine()
	res := newResults()
	f, _ := New(newList("hang"), Options{URL: srv.URL, OnResult: res.add})
	f.Start()
	<-arrived
	start := time.Now()
	f.Stop()
	if d := time.Since(start); d > 30*time.Second { // the time cap is 2m: Stop did not wait for it
		t.Errorf("Stop took %s", d)
	}
	if len(res.all) != 0 {
		t.Errorf("a fetch cut short by Stop was reported: %+v", res.all)
	}
	srv.CloseClientConnections()
	waitGoroutines(t, before)
	f.Start() // Start after Stop does nothing
	waitGoroutines(t, before)
}

// A cached copy of another URL is not served; a copy whose meta does not
// match it is served without its validators.
func TestCacheValidity(t *testing.T) {
	text := corpusText(t, "hosts_urlhaus_filter.txt.gz")
	dir := t.TempDir()
	srv := newFeedServer(t)
	serveA := body(text, "ETag", `"x"`, "Last-Modified", "Tue, 01 Dec 2026 10:00:00 GMT")
	srv.serve(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/a" { // /b's first fetch must not load it
			http.NotFound(w, r)
			return
		}
		serveA(w, r)
	})
	f, _ := New(newList("l"), Options{URL: srv.URL + "/a", CacheDir: dir})
	if r := f.Fetch(context.Background()); r.Outcome != Updated {
		t.Fatal(r)
	}
	f.Stop()

	other := newList("l")
	f, _ = New(other, Options{URL: srv.URL + "/b", CacheDir: dir})
	f.Start()
	f.Stop()
	if other.Snapshot() != nil {
		t.Fatal("the copy of another URL was served")
	}

	mp := filepath.Join(dir, "l.meta")
	b, _ := os.ReadFile(mp)
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m.SHA256 = "00" + m.SHA256[2:]
	b, _ = json.Marshal(m)
	os.WriteFile(mp, b, 0o600)
	l := newList("l")
	f, _ = New(l, Options{URL: srv.URL + "/a", CacheDir: dir})
	f.Start()
	defer f.Stop()
	if l.Snapshot() == nil {
		t.Fatal("the cached copy was not served")
	}
	if r := f.Fetch(context.Background()); r.Outcome != Unchanged {
		t.Fatalf("fetch after a meta mismatch: %+v", r)
	}
	if h := srv.lastRequest(); h.Get("If-None-Match") != "" || h.Get("If-Modified-Since") != "" {
		t.Fatalf("validators sent for a copy they do not describe: %v", h)
	}
	// That fetch repaired the meta: the next one is conditional.
	f.Fetch(context.Background())
	if h := srv.lastRequest(); h.Get("If-None-Match") != `"x"` {
		t.Fatalf("no validators after the repair: %v", h)
	}
	// A temporary file left by a crash is removed at start-up.
	tmp := filepath.Join(dir, ".l~123.tmp")
	fresh := filepath.Join(dir, ".l~456.tmp")
	otherTmp := filepath.Join(dir, ".l.b~789.tmp")
	for _, p := range []string{tmp, fresh, otherTmp} {
		os.WriteFile(p, []byte("x"), 0o600)
	}
	old := time.Now().Add(-2 * staleTemp)
	os.Chtimes(tmp, old, old)
	os.Chtimes(otherTmp, old, old)
	f2, _ := New(newList("l"), Options{URL: srv.URL + "/a", CacheDir: dir})
	f2.Start()
	f2.Stop()
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatal("a stale temporary file survived start-up")
	}
	for _, p := range []string{fresh, otherTmp} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("start-up removed %s, a fresh temporary file or another list's", p)
		}
	}
}

// A 304 to a request that asked nothing is refused: the server cannot
// know what the resolver holds.
func TestNotModifiedUnasked(t *testing.T) {
	text := corpusText(t, "hosts_urlhaus_filter.txt.gz")
	srv := newFeedServer(t)
	srv.serve(body(text)) // no ETag, no Last-Modified
	l := newList("l")
	f, _ := New(l, Options{URL: srv.URL})
	defer f.Stop()
	if r := f.Fetch(context.Background()); r.Outcome != Updated {
		t.Fatal(r)
	}
	srv.serve(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotModified) })
	if r := f.Fetch(context.Background()); r.Outcome != RefusedStatus || r.Status != 304 {
		t.Fatalf("unasked 304: %+v", r)
	}
	if h := srv.lastRequest(); h.Get("If-None-Match") != "" || h.Get("If-Modified-Since") != "" {
		t.Fatalf("validators sent without any from the server: %v", h)
	}
}

// Stop also ends a fetch a caller started with Fetch.
func TestStopEndsCallerFetch(t *testing.T) {
	srv := newFeedServer(t)
	arrived := make(chan struct{}, 1)
	srv.serve(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	})
	f, _ := New(newList("hang"), Options{URL: srv.URL, Timeout: time.Minute})
	done := make(chan Result)
	go func() { done <- f.Fetch(context.Background()) }()
	<-arrived
	f.Stop()
	select {
	case r := <-done:
		if r.Outcome == RefusedTimeout {
			t.Fatalf("a fetch ended by Stop reads as a timeout: %+v", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Stop did not end the caller's fetch")
	}
}
