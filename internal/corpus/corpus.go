// Package corpus finds the shared, read-only test data files (real
// blocklists and captures, described in SOURCES.md beside them) for tests
// and benchmarks. The files live outside the repository and are never
// copied into it: by default in shared/data next to the module root, or in
// the directory named by $SHIELD_DATA.
//
// A missing file skips the test, except when $CI is "true", where it fails
// it so that a CI run cannot pass by testing nothing.
package corpus

import (
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// EnvDir is the environment variable that overrides the data directory.
const EnvDir = "SHIELD_DATA"

// Path returns the path of the data file name. It skips the test when the
// file is absent (fails it when $CI is "true").
func Path(tb testing.TB, name string) string {
	tb.Helper()
	dir, err := dataDir()
	if err != nil {
		missing(tb, "test data directory not found: %v (set $%s)", err, EnvDir)
		return ""
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		missing(tb, "test data file %s not available: %v (set $%s to the data directory)", name, err, EnvDir)
		return ""
	}
	return p
}

// Open opens the data file name for reading and gunzips it when its name
// ends in ".gz". Closing the reader closes the file; it is also closed when
// the test ends. A missing file is handled as in Path.
func Open(tb testing.TB, name string) io.ReadCloser {
	tb.Helper()
	p := Path(tb, name)
	f, err := os.Open(p)
	if err != nil {
		tb.Fatalf("open test data: %v", err)
	}
	rc := &file{f: f, r: f}
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			tb.Fatalf("test data %s: %v", name, err)
		}
		rc.zr, rc.r = zr, zr
	}
	tb.Cleanup(func() { rc.Close() })
	return rc
}

// dataDir returns $SHIELD_DATA, or shared/data beside the module root.
func dataDir() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		return d, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(root), "shared", "data"), nil
}

// moduleRoot walks up from the working directory (a test runs in its
// package directory) to the directory holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf(format, args...)
	}
	tb.Skipf(format, args...)
}

// file is the reader Open returns. Close may be called more than once.
type file struct {
	f    *os.File
	zr   *gzip.Reader
	r    io.Reader
	once sync.Once
	err  error
}

func (f *file) Read(p []byte) (int, error) { return f.r.Read(p) }

func (f *file) Close() error {
	f.once.Do(func() {
		if f.zr != nil {
			f.err = f.zr.Close()
		}
		if err := f.f.Close(); f.err == nil {
			f.err = err
		}
	})
	return f.err
}
