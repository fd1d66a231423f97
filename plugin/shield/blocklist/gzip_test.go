package blocklist

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnsshield/shield/internal/corpus"
)

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func loadErrReason(t *testing.T, err error) string {
	t.Helper()
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("error %v is not a *LoadError", err)
	}
	return le.Reason
}

// A real list published gzip-compressed loads as the same list as its
// decompressed text, with the same version, and a broken gzip file is
// refused as such while the list in force stays.
func TestLoadGzipRealList(t *testing.T) {
	raw, err := io.ReadAll(corpus.Open(t, "hosts_urlhaus_filter.txt.gz"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.txt")
	if err := os.WriteFile(plain, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	zipped := filepath.Join(dir, "list.txt.gz")
	if err := os.WriteFile(zipped, gzipBytes(t, raw), 0o600); err != nil {
		t.Fatal(err)
	}
	lp := NewList(Config{Name: "p", Path: plain, MaxInvalid: 0.5, MaxShrink: 0.5})
	if _, err := lp.Load(); err != nil {
		t.Fatal(err)
	}
	lz := NewList(Config{Name: "z", Path: zipped, MaxInvalid: 0.5, MaxShrink: 0.5})
	if changed, err := lz.Load(); err != nil || !changed {
		t.Fatalf("Load gzip = %v, %v", changed, err)
	}
	sp, sz := lp.Snapshot(), lz.Snapshot()
	if sp.Version != sz.Version || sp.Set.Len() != sz.Set.Len() || sz.Format != FormatHosts {
		t.Fatalf("gzip list: version %s, %d names, %s; plain: version %s, %d names",
			sz.Version, sz.Set.Len(), sz.Format, sp.Version, sp.Set.Len())
	}
	t.Logf("hosts_urlhaus_filter: %d names, version %s, both ways", sz.Set.Len(), sz.Version)

	// Truncate the compressed file: refused with reason gzip, and the
	// message says the file is compressed instead of quoting binary bytes.
	full, _ := os.ReadFile(zipped)
	if err := os.WriteFile(zipped, full[:len(full)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = lz.Load()
	if r := loadErrReason(t, err); r != FailGzip || !strings.Contains(err.Error(), "gzip-compressed") {
		t.Fatalf("truncated gzip: reason %q, error %v", r, err)
	}
	if lz.Snapshot() != sz {
		t.Fatal("a truncated gzip file replaced the list in force")
	}
	// Only the magic bytes, then garbage.
	if err := os.WriteFile(zipped, []byte("\x1f\x8bnot really gzip"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := lz.Load(); loadErrReason(t, err) != FailGzip {
		t.Fatalf("bad gzip header: %v", err)
	}
}

// A gzip file that expands past the cap is refused, and one that expands
// to exactly the cap is not.
func TestLoadGzipCap(t *testing.T) {
	defer func(v int64) { maxDecompressed = v }(maxDecompressed)
	text := []byte(strings.Repeat("a.example\n", 1000)) // 10000 bytes
	dir := t.TempDir()
	p := filepath.Join(dir, "l.gz")
	if err := os.WriteFile(p, gzipBytes(t, text), 0o600); err != nil {
		t.Fatal(err)
	}
	l := NewList(Config{Name: "l", Path: p, MaxInvalid: 0.5, MaxShrink: 0.5})
	maxDecompressed = int64(len(text))
	if _, err := l.Load(); err != nil {
		t.Fatalf("content of exactly the cap: %v", err)
	}
	maxDecompressed = int64(len(text)) - 1
	text = append(text, "b.example\n"...)
	if err := os.WriteFile(p, gzipBytes(t, text), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Load(); loadErrReason(t, err) != FailSize {
		t.Fatalf("over the cap: %v", err)
	}
	if l.Lookup("b.example.").Action != ActNone || l.Lookup("a.example.").Action != ActBlock {
		t.Fatal("an oversized file changed the list in force")
	}
}

// LoadFile puts another file's content in force under the list's name and
// checks, and leaves what Changed compares alone.
func TestLoadFileChecks(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "conf.txt")
	writeTestFile(t, conf, "a.example\nb.example\nc.example\nd.example\n")
	l := NewList(Config{Name: "l", Path: conf, MaxInvalid: 0.5, MaxShrink: 0.5})
	if _, err := l.Load(); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.txt")
	writeTestFile(t, other, "a.example\nb.example\nc.example\nd.example\ne.example\n")
	if changed, err := l.LoadFile(other); err != nil || !changed {
		t.Fatalf("LoadFile = %v, %v", changed, err)
	}
	if l.Lookup("e.example.").Action != ActBlock {
		t.Fatal("LoadFile content not in force")
	}
	if l.Changed() {
		t.Fatal("LoadFile changed what the poller compares")
	}
	writeTestFile(t, other, "a.example\n")
	if _, err := l.LoadFile(other); loadErrReason(t, err) != FailShrink {
		t.Fatalf("shrink through LoadFile: %v", err)
	}
	writeTestFile(t, other, "")
	if _, err := l.LoadFile(other); loadErrReason(t, err) != FailEmpty || l.LastError() == nil {
		t.Fatalf("empty through LoadFile: %v", err)
	}
	if l.Lookup("e.example.").Action != ActBlock {
		t.Fatal("a refused LoadFile changed the list in force")
	}
	l.SetError(nil)
	if l.LastError() != nil {
		t.Fatal("SetError(nil) kept the error")
	}
}
