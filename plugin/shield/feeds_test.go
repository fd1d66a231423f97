package shield

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/dnsshield/shield/plugin/shield/blocklist"
)

const pin = "4f7c2a0e3b9d1c58e6a7f0b2d3c4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6"

func TestParseFeeds(t *testing.T) {
	tests := []struct {
		name  string
		input string
		err   string // substring of the expected error; "" means success
		check func(t *testing.T, s *Shield)
	}{
		{"url list", `shield {
			blocklist urlhaus https://feeds.example/urlhaus.txt
		}`, "", func(t *testing.T, s *Shield) {
			if len(s.blocks) != 1 || len(s.feeds.fetchers) != 1 || len(s.feeds.specs) != 1 {
				t.Fatalf("blocks %d fetchers %d specs %d", len(s.blocks), len(s.feeds.fetchers), len(s.feeds.specs))
			}
			l := s.blocks[0]
			if c := l.Config(); c.Path != "" || c.Format != blocklist.FormatAuto {
				t.Errorf("feed list config %+v: want no path, auto format", c)
			}
			if !s.isFeedList(l) || len(s.fileLists()) != 0 {
				t.Errorf("feed list given to the watcher: %v", s.fileLists())
			}
			if sp := s.feeds.specs[0]; sp.url != "https://feeds.example/urlhaus.txt" || sp.limits != (feedLimits{}) || sp.sha256 != "" {
				t.Errorf("spec %+v: want the package defaults", sp)
			}
		}},
		{"every option", `shield {
			blocklist urlhaus https://feeds.example/u.txt.gz hosts refresh 2h sha256 ` + strings.ToUpper(pin) + ` feed_timeout 30s feed_max_size 64
			blocklist local /lists/local.txt
			allowlist corp http://intranet.example/allow.txt domains
			walled_garden fix https://vendor.example/remediation.txt feed_timeout 10s
			refresh 30m
			feed_timeout 1m
			feed_max_size 512
			feed_cache /var/cache/shield
		}`, "", func(t *testing.T, s *Shield) {
			if len(s.feeds.fetchers) != 3 || s.feeds.cacheDir != "/var/cache/shield" {
				t.Fatalf("fetchers %d cache %q", len(s.feeds.fetchers), s.feeds.cacheDir)
			}
			want := []feedSpec{
				{list: "urlhaus", url: "https://feeds.example/u.txt.gz", sha256: pin,
					own:    feedLimits{2 * time.Hour, 30 * time.Second, 64 << 20},
					limits: feedLimits{2 * time.Hour, 30 * time.Second, 64 << 20}},
				{list: "corp", url: "http://intranet.example/allow.txt",
					limits: feedLimits{30 * time.Minute, time.Minute, 512 << 20}},
				{list: "fix", url: "https://vendor.example/remediation.txt", own: feedLimits{timeout: 10 * time.Second},
					limits: feedLimits{30 * time.Minute, 10 * time.Second, 512 << 20}},
			}
			for i, w := range want {
				if s.feeds.specs[i] != w {
					t.Errorf("spec %d: got %+v, want %+v", i, s.feeds.specs[i], w)
				}
			}
			if c := s.blocks[0].Config(); c.Format != blocklist.FormatHosts {
				t.Errorf("urlhaus format %v", c.Format)
			}
			if c := s.allows[0].Config(); !c.Allow || c.Format != blocklist.FormatDomains || c.Path != "" {
				t.Errorf("corp config %+v", c)
			}
			files := s.fileLists()
			if len(files) != 1 || files[0].Name() != "local" {
				t.Errorf("watched lists %v, want only local", files)
			}
			if len(s.gardenLists()) != 1 || !s.isFeedList(s.gardenLists()[0]) {
				t.Errorf("walled garden feed not made")
			}
		}},
		{"options before the lists", "shield {\nrefresh 10s\nblocklist a https://h.example/a\n}", "", func(t *testing.T, s *Shield) {
			if s.feeds.specs[0].limits.refresh != 10*time.Second {
				t.Errorf("refresh %s", s.feeds.specs[0].limits.refresh)
			}
		}},
		{"format and url scheme case", "shield {\nblocklist a HTTPS://h.example/a rpz\n}", "", func(t *testing.T, s *Shield) {
			if len(s.feeds.fetchers) != 1 || s.blocks[0].Config().Format != blocklist.FormatRPZ {
				t.Errorf("fetchers %d format %v", len(s.feeds.fetchers), s.blocks[0].Config().Format)
			}
		}},
		{"feed options alone", "shield {\nblocklist a /a\nrefresh 1h\nfeed_cache /c\n}", "", nil},

		// Errors.
		{"url missing", "shield {\nblocklist a\n}", "NAME SOURCE [FORMAT]", nil},
		{"bad format after url", "shield {\nblocklist a https://h.example/a yaml\n}", `blocklist "a"`, nil},
		{"unknown feed option", "shield {\nblocklist a https://h.example/a hosts interval 1h\n}", `unknown feed option "interval"`, nil},
		{"feed option without value", "shield {\nblocklist a https://h.example/a refresh\n}", "refresh needs a value", nil},
		{"feed option twice", "shield {\nblocklist a https://h.example/a refresh 1h refresh 2h\n}", "refresh is set twice", nil},
		{"feed option on a file", "shield {\nblocklist a /a hosts refresh 1h\n}", "apply only to an http:// or https:// SOURCE", nil},
		{"sha256 on a file", "shield {\nallowlist a /a sha256 " + pin + "\n}", "apply only to an http", nil},
		{"feed option alone on a file", "shield {\nblocklist a /a sha256\n}", "apply only to an http", nil},
		{"file with two formats", "shield {\nblocklist a /a hosts domains\n}", "NAME SOURCE [FORMAT]", nil},
		{"sha256 short", "shield {\nblocklist a https://h.example/a sha256 abcd\n}", "not 64 hex digits", nil},
		{"sha256 not hex", "shield {\nblocklist a https://h.example/a sha256 " + strings.Repeat("g", 64) + "\n}", "not 64 hex digits", nil},
		{"refresh bad", "shield {\nblocklist a https://h.example/a refresh often\n}", "invalid refresh", nil},
		{"refresh too short", "shield {\nblocklist a https://h.example/a\nrefresh 100ms\n}", "invalid refresh", nil},
		{"refresh too long", "shield {\nblocklist a https://h.example/a\nrefresh 720h\n}", "invalid refresh", nil},
		{"refresh missing", "shield {\nblocklist a https://h.example/a\nrefresh\n}", "refresh needs one value", nil},
		{"feed_timeout bad", "shield {\nblocklist a https://h.example/a\nfeed_timeout 0s\n}", "invalid feed_timeout", nil},
		{"feed_max_size zero", "shield {\nblocklist a https://h.example/a\nfeed_max_size 0\n}", "invalid feed_max_size", nil},
		{"feed_max_size word", "shield {\nblocklist a https://h.example/a feed_max_size big\n}", "invalid feed_max_size", nil},
		{"feed_max_size huge", "shield {\nblocklist a https://h.example/a\nfeed_max_size 99999\n}", "invalid feed_max_size", nil},
		{"feed_cache missing", "shield {\nblocklist a https://h.example/a\nfeed_cache\n}", "feed_cache needs DIR", nil},
		{"feed_cache twice", "shield {\nblocklist a https://h.example/a\nfeed_cache /a\nfeed_cache /b\n}", "feed_cache is set twice", nil},
		{"url without host", "shield {\nblocklist a https:///path\n}", "want http:// or https:// and a host", nil},
		{"url unparsable", "shield {\nblocklist a http://h.example:port/a\n}", "bad URL", nil},
		{"walled_garden bad option", "shield {\nblocklist a /a\nwalled_garden g https://h.example/g hosts often 1h\n}", `unknown feed option "often"`, nil},
		{"duplicate feed name", "shield {\nblocklist a https://h.example/a\nallowlist a https://h.example/b\n}", `duplicate list name "a"`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := caddy.NewTestController("dns", tc.input)
			s, err := parse(c)
			if tc.err != "" {
				if err == nil {
					t.Fatalf("want error containing %q, got none", tc.err)
				}
				if !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %q does not contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

// TestParseFeedRoot checks that a URL is never joined to the root
// plugin's directory, and that feed_cache is.
func TestParseFeedRoot(t *testing.T) {
	c := caddy.NewTestController("dns", "shield {\nblocklist a https://h.example/a\nfeed_cache cache\n}")
	dnsserver.GetConfig(c).Root = "/srv"
	s, err := parse(c)
	if err != nil {
		t.Fatal(err)
	}
	if s.feeds.specs[0].url != "https://h.example/a" || s.feeds.cacheDir != "/srv/cache" {
		t.Errorf("url %q cache %q", s.feeds.specs[0].url, s.feeds.cacheDir)
	}
}

// TestFeedStatus starts a shield with a feed list from a loopback HTTP
// server and checks what the API's status says of it and of a file list.
func TestFeedStatus(t *testing.T) {
	var fail atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			http.Error(w, "gone", http.StatusNotFound)
			return
		}
		w.Write([]byte("evil.test\nworse.test\n"))
	}))
	defer srv.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "local.txt")
	if err := os.WriteFile(file, []byte("local.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u := strings.Replace(srv.URL, "http://", "http://user:secret@", 1) + "/feed.txt?token=abc"
	c := caddy.NewTestController("dns", "shield {\nblocklist f "+u+" domains\nblocklist local "+file+"\nrefresh 1s\nquarantine_ttl 1h 24h\naudit off\n}")
	s, err := parse(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	defer s.stop()
	deadline := time.Now().Add(5 * time.Second)
	for s.blocks[0].Snapshot() == nil {
		if time.Now().After(deadline) {
			t.Fatal("feed not loaded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !s.Ready() || s.blocks[0].Lookup("evil.test.").Action == blocklist.ActNone {
		t.Fatal("feed list not in force")
	}
	st := backend{s}.Status()
	f, local := st.Lists[0], st.Lists[1]
	if strings.Contains(f.Source, "secret") || strings.Contains(f.Source, "abc") || !strings.HasPrefix(f.Source, "http://xxxxx@127.0.0.1:") {
		t.Errorf("feed source %q: want the URL with its credentials redacted", f.Source)
	}
	if f.LastSuccess == nil || f.AgeSeconds == nil || *f.AgeSeconds < 0 || *f.AgeSeconds > 5 || f.NextFetch == nil || f.Entries != 2 {
		t.Errorf("feed status %+v", f)
	}
	if local.Source != file || local.LastSuccess != nil || local.AgeSeconds != nil || local.NextFetch != nil {
		t.Errorf("file list status %+v", local)
	}
	fail.Store(true)
	deadline = time.Now().Add(5 * time.Second)
	for {
		st = backend{s}.Status()
		if strings.Contains(st.Lists[0].LastError, "refused_status (HTTP 404)") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("last error %q: want the refusal", st.Lists[0].LastError)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Lists[0].Entries != 2 || strings.Contains(st.Lists[0].LastError, "secret") {
		t.Errorf("after a refusal: %+v", st.Lists[0])
	}
}
