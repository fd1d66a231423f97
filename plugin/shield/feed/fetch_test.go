package feed

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnsshield/shield/plugin/shield/blocklist"
)

// Through every fault a feed host can inject, the last good list stays in
// force: a name from the real URLhaus feed stays blocked and the version
// does not move, and each fault gets its own outcome.
func TestFetchFaults(t *testing.T) {
	text := corpusText(t, "domains_urlhaus_filter.txt.gz")
	zipped := gz(t, text)
	name := firstRule(t, text) + "."
	srv := newFeedServer(t)
	cacheDir := t.TempDir()
	res := newResults()
	list := newList("urlhaus")
	// Credentials in the URL must never show in an error or the status.
	u := strings.Replace(srv.URL, "http://", "http://feeduser:hunter2@", 1) + "/urlhaus.txt?auth-key=s3cret&format=domains"
	// A generous time cap: the race detector on a busy machine is slow.
	f, err := New(list, Options{URL: u, CacheDir: cacheDir, Timeout: 30 * time.Second, MaxBytes: 1 << 20, OnResult: res.add})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	// The time-cap faults run through a second fetcher of the same list
	// with a short cap.
	fShort, err := New(list, Options{URL: u, Timeout: time.Second, OnResult: res.add})
	if err != nil {
		t.Fatal(err)
	}
	defer fShort.Stop()
	ctx := context.Background()
	const lastMod = "Tue, 01 Dec 2026 10:00:00 GMT"

	// 200, gzip-encoded, with validators.
	srv.serve(body(zipped, "Content-Encoding", "gzip", "ETag", `"v1"`, "Last-Modified", lastMod, "Content-Type", "text/plain"))
	r := f.Fetch(ctx)
	if r.Outcome != Updated || r.Err != nil || !r.Changed || r.Status != 200 {
		t.Fatalf("first fetch: %+v", r)
	}
	good := list.Snapshot()
	if list.Lookup(name).Action != blocklist.ActBlock {
		t.Fatalf("%s not blocked after the first fetch", name)
	}
	if ua := srv.lastRequest().Get("User-Agent"); !strings.HasPrefix(ua, "shield/") {
		t.Errorf("User-Agent %q does not name shield", ua)
	}
	for _, p := range []string{"urlhaus.list", "urlhaus.meta"} {
		fi, err := os.Stat(filepath.Join(cacheDir, p))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("cache file %s: %v, mode %v", p, err, fi.Mode())
		}
	}
	t.Logf("first fetch: %d bytes, %d names, %s", r.Bytes, good.Set.Len(), r.Elapsed)

	// 304 to a conditional GET carrying both validators.
	srv.serve(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") == `"v1"` && r.Header.Get("If-Modified-Since") == lastMod {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		http.Error(w, "validators missing", http.StatusBadRequest)
	})
	if r := f.Fetch(ctx); r.Outcome != NotModified || r.Err != nil {
		t.Fatalf("304: %+v (request %v)", r, srv.lastRequest())
	}

	// The same content served plain, and as a .gz file: unchanged.
	srv.serve(body(text, "Content-Type", "text/plain; charset=utf-8"))
	if r := f.Fetch(ctx); r.Outcome != Unchanged || r.Err != nil {
		t.Fatalf("plain body: %+v", r)
	}
	srv.serve(body(zipped, "Content-Type", "application/gzip"))
	if r := f.Fetch(ctx); r.Outcome != Unchanged || r.Err != nil {
		t.Fatalf("gzip file body: %+v", r)
	}

	var bigGzip []byte
	{
		var sb strings.Builder
		for i := range 100_000 { // about 1.8 MiB of text, over the 1 MiB cap
			fmt.Fprintf(&sb, "n%d.bomb.example\n", i)
		}
		bigGzip = gz(t, []byte(sb.String()))
	}
	html := []byte("<!DOCTYPE html>\n<html><body><h1>503 Service Unavailable</h1></body></html>\n")
	faults := []struct {
		name    string
		h       http.HandlerFunc
		outcome string
		status  int
	}{
		{"404", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, RefusedStatus, 404},
		{"500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) }, RefusedStatus, 500},
		{"timeout", func(w http.ResponseWriter, r *http.Request) {
			select { // no answer until the client gives up
			case <-r.Context().Done():
			case <-time.After(20 * time.Second):
			}
		}, RefusedTimeout, 0},
		{"html page", body(html, "Content-Type", "text/html; charset=utf-8"), RefusedHTML, 200},
		{"html page as text/plain", body(html, "Content-Type", "text/plain"), RefusedHTML, 200},
		{"gzip html page", body(gz(t, html), "Content-Encoding", "gzip"), RefusedHTML, 200},
		{"json error", body([]byte(`{"error": "rate limited"}`), "Content-Type", "application/json"), RefusedJSON, 200},
		{"json as text/plain", body([]byte(` {"query_status": "no_results"}`)), RefusedJSON, 200},
		{"truncated gzip stream", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(zipped[:len(zipped)/2])
		}, RefusedTruncated, 200},
		{"truncated gzip file", body(zipped[:len(zipped)*2/3]), RefusedTruncated, 200},
		{"short of Content-Length", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(len(text)))
			w.Write(text[:len(text)/2])
		}, RefusedTruncated, 200},
		{"gzip announced, plain body", body(text, "Content-Encoding", "gzip"), RefusedTruncated, 200},
		{"unknown encoding", body(text, "Content-Encoding", "br"), RefusedEncoding, 200},
		{"redirect loop", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/loop" {
				http.Redirect(w, r, "/urlhaus.txt", http.StatusFound)
				return
			}
			http.Redirect(w, r, "/loop", http.StatusFound)
		}, RefusedRedirect, 302},
		{"over the cap", func(w http.ResponseWriter, r *http.Request) {
			line := []byte("endless.example\n")
			for i := 0; i < 1_000_000 && r.Context().Err() == nil; i++ {
				if _, err := w.Write(line); err != nil {
					return
				}
			}
		}, RefusedSize, 200},
		{"gzip over the cap", body(bigGzip, "Content-Encoding", "gzip"), RefusedSize, 200},
		{"slow body", func(w http.ResponseWriter, r *http.Request) {
			w.Write(text[:1000])
			w.(http.Flusher).Flush()
			for i := 0; i < 400 && r.Context().Err() == nil; i++ {
				time.Sleep(50 * time.Millisecond)
				w.Write([]byte("slow.example\n"))
				w.(http.Flusher).Flush()
			}
		}, RefusedTimeout, 200},
		{"206", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusPartialContent)
			w.Write(text[:100])
		}, RefusedTruncated, 206},
		{"empty body", body(nil), "refused_empty", 200},
		{"garbage", body([]byte(strings.Repeat("<<not a name>> !!\n", 500)+"one.example\n"), "Content-Type", "text/plain"), "refused_garbage", 200},
		{"shrink", body([]byte("a.example\nb.example\n")), "refused_shrink", 200},
	}
	for _, tc := range faults {
		srv.serve(tc.h)
		fetcher := f
		if tc.outcome == RefusedTimeout {
			fetcher = fShort
		}
		r := fetcher.Fetch(ctx)
		if r.Outcome != tc.outcome || r.Status != tc.status || r.Err == nil || !r.Refused() {
			t.Errorf("%s: outcome %q status %d err %v; want %q status %d", tc.name, r.Outcome, r.Status, r.Err, tc.outcome, tc.status)
		}
		if r.Err != nil {
			var fe *Error
			if msg := r.Err.Error(); !errors.As(r.Err, &fe) || strings.Contains(msg, "hunter2") || strings.Contains(msg, "s3cret") || strings.Contains(msg, "feeduser") {
				t.Errorf("%s: error %q leaks credentials or is not an *Error", tc.name, msg)
			}
		}
		if list.Snapshot() != good || list.Lookup(name).Action != blocklist.ActBlock {
			t.Fatalf("%s: the list in force changed", tc.name)
		}
		if list.LastError() == nil {
			t.Errorf("%s: the list's LastError is nil", tc.name)
		}
		if st := fetcher.Status(); st.LastOutcome != tc.outcome || st.LastError == "" || st.Version != good.Version {
			t.Errorf("%s: status %+v", tc.name, st)
		}
		t.Logf("%-26s %-18s %v", tc.name, r.Outcome, r.Err)
	}
	// The cached copy is still the good one.
	cached, _ := os.ReadFile(filepath.Join(cacheDir, "urlhaus.list"))
	if string(cached) != string(text) {
		t.Fatal("a refused fetch changed the cached copy")
	}
	st := f.Status()
	if strings.Contains(st.Source, "hunter2") || strings.Contains(st.Source, "s3cret") {
		t.Errorf("status source %q leaks credentials", st.Source)
	}

	// A changed feed is put in force, and the list's error is cleared.
	srv.serve(body(append([]byte("new.example\n"), text...)))
	if r := f.Fetch(ctx); r.Outcome != Updated || list.Lookup("x.new.example.").Action != blocklist.ActBlock || list.LastError() != nil {
		t.Fatalf("update after faults: %+v, last error %v", r, list.LastError())
	}
	// Outcomes reached OnResult, one per fetch.
	res.mu.Lock()
	n := len(res.all)
	res.mu.Unlock()
	if want := 4 + len(faults) + 1; n != want {
		t.Errorf("OnResult called %d times, want %d", n, want)
	}
}

// The checksum pin refuses any other content and accepts the pinned one.
func TestFetchChecksumPin(t *testing.T) {
	text := corpusText(t, "hosts_urlhaus_filter.txt.gz")
	srv := newFeedServer(t)
	srv.serve(body(gz(t, text), "Content-Encoding", "gzip"))
	sum := fmt.Sprintf("%x", sha256Sum(text))
	wrong := strings.Repeat("0", 64)
	l := newList("pinned")
	f, err := New(l, Options{URL: srv.URL + "/hosts", SHA256: wrong})
	if err != nil {
		t.Fatal(err)
	}
	if r := f.Fetch(context.Background()); r.Outcome != RefusedChecksum || l.Snapshot() != nil {
		t.Fatalf("wrong pin: %+v", r)
	}
	f.Stop()
	f, err = New(l, Options{URL: srv.URL + "/hosts", SHA256: strings.ToUpper(sum)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	if r := f.Fetch(context.Background()); r.Outcome != Updated {
		t.Fatalf("right pin: %+v", r)
	}
	if _, err := New(l, Options{URL: srv.URL, SHA256: "abc"}); err == nil {
		t.Fatal("a short sha256 was accepted")
	}
}

// Real feeds in other formats, served as .gz files, are detected and
// loaded.
func TestFetchRealFormats(t *testing.T) {
	for _, tc := range []struct {
		file   string
		format blocklist.Format
	}{
		{"hosts_urlhaus_filter.txt.gz", blocklist.FormatHosts},
		{"adblock_urlhaus_filter_agh.txt.gz", blocklist.FormatAdblock},
		{"domains_urlhaus_filter.txt.gz", blocklist.FormatDomains},
	} {
		text := corpusText(t, tc.file)
		srv := newFeedServer(t)
		srv.serve(body(gz(t, text), "Content-Type", "application/octet-stream"))
		l := newList(tc.file)
		f, err := New(l, Options{URL: srv.URL + "/" + tc.file})
		if err != nil {
			t.Fatal(err)
		}
		r := f.Fetch(context.Background())
		f.Stop()
		if r.Outcome != Updated || l.Snapshot().Format != tc.format {
			t.Fatalf("%s: %+v", tc.file, r)
		}
		if l.Lookup("0022a601.pphost.net.").Action != blocklist.ActBlock {
			t.Errorf("%s: 0022a601.pphost.net not blocked", tc.file)
		}
		t.Logf("%s: %s, %d names", tc.file, l.Snapshot().Format, l.Snapshot().Set.Len())
	}
}

// More redirects than allowed, and https to http, are refused; a short
// chain is followed.
func TestFetchRedirects(t *testing.T) {
	text := corpusText(t, "hosts_urlhaus_filter.txt.gz")
	srv := newFeedServer(t)
	srv.serve(func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscanf(r.URL.Path, "/r%d", &n)
		if n > 0 {
			http.Redirect(w, r, fmt.Sprintf("/r%d", n-1), http.StatusMovedPermanently)
			return
		}
		w.Write(text)
	})
	l := newList("redir")
	f, _ := New(l, Options{URL: srv.URL + "/r2", MaxRedirects: 2})
	if r := f.Fetch(context.Background()); r.Outcome != Updated {
		t.Fatalf("2 redirects: %+v", r)
	}
	f.Stop()
	f, _ = New(l, Options{URL: srv.URL + "/r3", MaxRedirects: 2})
	if r := f.Fetch(context.Background()); r.Outcome != RefusedRedirect {
		t.Fatalf("3 redirects: %+v", r)
	}
	f.Stop()

	tls := newTLSRedirect(t, srv.URL+"/r0")
	f, _ = New(l, Options{URL: tls.URL + "/", Transport: tls.Client().Transport.(*http.Transport)})
	if r := f.Fetch(context.Background()); r.Outcome != RefusedRedirect || !strings.Contains(r.Err.Error(), "https") {
		t.Fatalf("https to http: %+v", r)
	}
	f.Stop()
}

func TestNewRejects(t *testing.T) {
	l := newList("x")
	for _, u := range []string{"", "ftp://host/x", "file:///etc/hosts", "https://", "axfr://ns/", "http://[::1"} {
		if _, err := New(l, Options{URL: u}); err == nil {
			t.Errorf("New accepted %q", u)
		}
	}
	if _, err := New(l, Options{URL: "https://h/x", Refresh: -time.Second}); err == nil {
		t.Error("New accepted a negative refresh")
	}
	f, err := New(l, Options{URL: "https://user:pw@h/x", Refresh: 5 * time.Second})
	if err != nil || f.opt.Refresh != 5*time.Second || f.opt.MaxBytes != DefaultMaxBytes || f.URL() != "https://xxxxx@h/x" {
		t.Fatalf("New: %v, %+v", err, f)
	}
	f.Stop() // Stop without Start returns
}
