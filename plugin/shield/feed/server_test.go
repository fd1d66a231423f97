package feed

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/dnsshield/shield/internal/corpus"
	"github.com/dnsshield/shield/plugin/shield/blocklist"
)

// feedServer is a feed host on 127.0.0.1 whose answer the test swaps
// between fetches. It records the headers of every request.
type feedServer struct {
	*httptest.Server
	mu      sync.Mutex
	handler http.HandlerFunc
	reqs    []http.Header
}

func newFeedServer(t testing.TB) *feedServer {
	t.Helper()
	s := &feedServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.reqs = append(s.reqs, r.Header.Clone())
		h := s.handler
		s.mu.Unlock()
		if h == nil {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// serve makes h the answer to every request.
func (s *feedServer) serve(h http.HandlerFunc) {
	s.mu.Lock()
	s.handler = h
	s.mu.Unlock()
}

// lastRequest returns the headers of the latest request.
func (s *feedServer) lastRequest() http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		return nil
	}
	return s.reqs[len(s.reqs)-1]
}

// corpusText returns the decompressed text of a shared data file.
func corpusText(t testing.TB, name string) []byte {
	t.Helper()
	b, err := io.ReadAll(corpus.Open(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// firstRule returns the first name of a domains list.
func firstRule(t testing.TB, text []byte) string {
	t.Helper()
	for line := range strings.Lines(string(text)) {
		line = strings.TrimSpace(line)
		if line != "" && line[0] != '#' && line[0] != '!' {
			return line
		}
	}
	t.Fatal("no rule in the list")
	return ""
}

// body answers 200 with b and the given headers (name, value pairs).
func body(b []byte, hdr ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.Write(b)
	}
}

func newList(name string) *blocklist.List {
	return blocklist.NewList(blocklist.Config{Name: name, MaxInvalid: 0.5, MaxShrink: 0.5})
}

// results collects what OnResult reports.
type results struct {
	mu  sync.Mutex
	all []Result
	ch  chan Result
}

func newResults() *results { return &results{ch: make(chan Result, 1000)} }

func (r *results) add(res Result) {
	r.mu.Lock()
	r.all = append(r.all, res)
	r.mu.Unlock()
	select {
	case r.ch <- res:
	default:
	}
}

func sha256Sum(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

// newTLSRedirect starts an https server on 127.0.0.1 that redirects every
// request to target.
func newTLSRedirect(t testing.TB, target string) *httptest.Server {
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target, http.StatusFound)
	}))
	t.Cleanup(s.Close)
	return s
}
