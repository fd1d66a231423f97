package feed

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkUpdate measures a refresh that brings a new version of the real
// URLhaus domains feed into force: over HTTP gzip-encoded with the disk
// cache ("feed"), and, as the baseline, the same text loaded from a local
// file ("file"). Two versions alternate so every iteration is a full
// parse and build.
func BenchmarkUpdate(b *testing.B) {
	text := corpusText(b, "domains_urlhaus_filter.txt.gz")
	versions := [2][]byte{text, append([]byte("other.example\n"), text...)}
	b.Run("file", func(b *testing.B) {
		dir := b.TempDir()
		var paths [2]string
		for i, v := range versions {
			paths[i] = filepath.Join(dir, "v"+string(rune('0'+i)))
			if err := os.WriteFile(paths[i], v, 0o600); err != nil {
				b.Fatal(err)
			}
		}
		l := newList("file")
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			if changed, err := l.LoadFile(paths[i%2]); err != nil || !changed {
				b.Fatal(changed, err)
			}
		}
	})
	b.Run("feed", func(b *testing.B) {
		srv := newFeedServer(b)
		zipped := [2][]byte{gz(b, versions[0]), gz(b, versions[1])}
		n := 0
		srv.serve(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(zipped[n%2])
		})
		f, err := New(newList("feed"), Options{URL: srv.URL + "/l.txt", CacheDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		defer f.Stop()
		b.ResetTimer()
		for n = 0; b.Loop(); n++ {
			if r := f.Fetch(context.Background()); r.Outcome != Updated {
				b.Fatal(r)
			}
		}
	})
	b.Run("feed_not_modified", func(b *testing.B) {
		srv := newFeedServer(b)
		srv.serve(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("If-None-Match") == `"1"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Header().Set("ETag", `"1"`)
			w.Write(text)
		})
		f, err := New(newList("feed"), Options{URL: srv.URL + "/l.txt", CacheDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		defer f.Stop()
		f.Fetch(context.Background())
		b.ResetTimer()
		for b.Loop() {
			if r := f.Fetch(context.Background()); r.Outcome != NotModified {
				b.Fatal(r)
			}
		}
	})
}
