package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func checkMode(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("%s has mode %v, want 0600", filepath.Base(path), perm)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOpenFileCreatesPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s, err := OpenFile(path, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write([]byte("one\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Write([]byte("x\n")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close: %v, want os.ErrClosed", err)
	}
	checkMode(t, path)
	if got := readFile(t, path); got != "one\n" {
		t.Errorf("file holds %q", got)
	}
}

func TestOpenFileAppendsAndTightens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // in case of a restrictive umask
		t.Fatal(err)
	}
	s, err := OpenFile(path, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkMode(t, path)
	if err := s.Write([]byte("new\n")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != "old\nnew\n" {
		t.Errorf("file holds %q, want the old line and the new one", got)
	}
}

func TestOpenFileErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		path     string
		maxBytes int64
		keep     int
		want     string
	}{
		{"missing dir", filepath.Join(dir, "nope", "audit.log"), 0, 0, "does not exist"},
		{"empty path", "", 0, 0, "empty"},
		{"negative size", filepath.Join(dir, "a.log"), -1, 0, "negative"},
		{"negative keep", filepath.Join(dir, "a.log"), 0, -1, "negative"},
		{"directory", dir, 0, 0, ""},
	}
	for _, tt := range tests {
		s, err := OpenFile(tt.path, tt.maxBytes, tt.keep)
		if err == nil {
			s.Close()
			t.Errorf("%s: no error", tt.name)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %q does not say %q", tt.name, err, tt.want)
		}
	}

	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := OpenFile(filepath.Join(file, "audit.log"), 0, 0); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("path under a file: error %v", err)
	}
}

func TestOpenFileRotates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	const maxBytes, keep = 100, 3
	s, err := OpenFile(path, maxBytes, keep)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var all []string
	for batch := range 40 {
		// Batches of one to three 20-byte lines, as the Writer coalesces.
		var b bytes.Buffer
		for i := range batch%3 + 1 {
			line := fmt.Sprintf("batch %03d line %03d\n", batch, i)
			b.WriteString(line)
			all = append(all, line)
		}
		if err := s.Write(b.Bytes()); err != nil {
			t.Fatal(err)
		}
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := "[audit.log audit.log.1 audit.log.2 audit.log.3]"; fmt.Sprint(names) != want {
		t.Fatalf("files %v, want %s", names, want)
	}

	// Oldest to newest, the files hold the tail of what was written, in
	// order, whole lines only, none over the limit.
	var kept string
	for _, name := range []string{"audit.log.3", "audit.log.2", "audit.log.1", "audit.log"} {
		p := filepath.Join(dir, name)
		checkMode(t, p)
		content := readFile(t, p)
		if len(content) > maxBytes {
			t.Errorf("%s holds %d bytes, more than %d", name, len(content), maxBytes)
		}
		if name != "audit.log" && len(content) <= maxBytes-20 {
			t.Errorf("%s was rotated with room for another line (%d bytes)", name, len(content))
		}
		kept += content
	}
	if tail := strings.Join(all, ""); !strings.HasSuffix(tail, kept) || !strings.HasPrefix(kept, "batch") {
		t.Errorf("rotated files do not hold the tail of the log in order:\n%s", kept)
	}
}

func TestOpenFileLongLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	s, err := OpenFile(path, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	long := strings.Repeat("x", 25) + "\n"
	if err := s.Write([]byte("short\n" + long + "tail\n")); err != nil {
		t.Fatal(err)
	}
	// "short" fills the first file; the long line gets a file of its own
	// (which is then rotated away, keep is 1); "tail" starts the next.
	if got := readFile(t, path+".1"); got != long {
		t.Errorf("%s.1 holds %q, want the long line", path, got)
	}
	if got := readFile(t, path); got != "tail\n" {
		t.Errorf("%s holds %q, want the last line", path, got)
	}
	if _, err := os.Stat(path + ".2"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a second rotated file exists with keep 1: %v", err)
	}
}

func TestOpenFileRotateFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	// A non-empty directory where the rotated file must go cannot be
	// removed or replaced.
	blocker := path + ".1"
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := OpenFile(path, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Write([]byte("aaaaaaaa\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.Write([]byte("bbbbbbbb\n")); err == nil {
		t.Error("Write did not report the failed rotation")
	}
	if err := s.Write([]byte("cccccccc\n")); err == nil {
		t.Error("Write did not report the failed rotation the second time")
	}
	if got := readFile(t, path); got != "aaaaaaaa\nbbbbbbbb\ncccccccc\n" {
		t.Errorf("records lost when rotation failed: %q", got)
	}

	// Once the obstacle is gone, rotation works again.
	if err := os.RemoveAll(blocker); err != nil {
		t.Fatal(err)
	}
	if err := s.Write([]byte("dddddddd\n")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != "dddddddd\n" {
		t.Errorf("after recovery %s holds %q", path, got)
	}
	if got := readFile(t, blocker); got != "aaaaaaaa\nbbbbbbbb\ncccccccc\n" {
		t.Errorf("after recovery %s holds %q", blocker, got)
	}
	checkMode(t, path)
}

func TestWriterToFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s, err := OpenFile(path, 1<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(s, Options{})
	for i := range 20 {
		r := exampleRecord()
		r.QName = fmt.Sprintf("evil\n%d\"", i)
		w.Log(r)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range []string{path + ".2", path + ".1", path} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 1<<10 {
			t.Errorf("%s holds %d bytes", p, len(b))
		}
		for line := range bytes.Lines(b) {
			decodeLine(t, line)
			n++
		}
	}
	if n == 0 || n > 20 {
		t.Errorf("%d records in the files", n)
	}
}

func TestStdout(t *testing.T) {
	s := Stdout()
	if err := s.Write(nil); err != nil {
		t.Error(err)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
}

func TestOpenFileRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"audit.log", "audit.log.1", "audit.log.2"} {
		t.Run(name, func(t *testing.T) {
			sub := t.TempDir()
			path := filepath.Join(sub, "audit.log")
			link := filepath.Join(sub, name)
			if err := os.Symlink(target, link); err != nil {
				t.Skipf("no symbolic links here: %v", err)
			}
			s, err := OpenFile(path, 0, 2)
			if err == nil {
				s.Close()
				t.Fatalf("OpenFile accepted a symbolic link at %s", name)
			}
			if !strings.Contains(err.Error(), "symbolic link") || !strings.Contains(err.Error(), link) {
				t.Errorf("error %q does not name the link", err)
			}
		})
	}
	fi, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("the link's target changed mode to %v", fi.Mode().Perm())
	}
	if got := readFile(t, target); got != "precious\n" {
		t.Errorf("the link's target holds %q", got)
	}
}

func TestOpenLogNoFollow(t *testing.T) {
	// A link that appears after the Lstat check is refused by the open
	// itself (O_NOFOLLOW); openLog is called directly to skip the check's
	// window.
	if oNoFollow == 0 {
		t.Skip("no O_NOFOLLOW on this system")
	}
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "audit.log")
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("no symbolic links here: %v", err)
	}
	f, err := os.OpenFile(link, os.O_WRONLY|os.O_APPEND|oNoFollow, fileMode)
	if err == nil {
		f.Close()
		t.Fatal("O_NOFOLLOW opened a symbolic link")
	}
	if !isSymlinkErr(err) {
		t.Errorf("opening a link gave %v, which isSymlinkErr does not recognise", err)
	}
}

func TestRotateRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := OpenFile(path, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Write([]byte("aaaaaaaa\n")); err != nil {
		t.Fatal(err)
	}
	// A link put at the rotated name after start-up stops the rotation;
	// the records stay in the current file.
	if err := os.Symlink(target, path+".1"); err != nil {
		t.Skipf("no symbolic links here: %v", err)
	}
	err = s.Write([]byte("bbbbbbbb\n"))
	if err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Write over a link at the rotated name: %v, want an error naming the link", err)
	}
	if got := readFile(t, path); got != "aaaaaaaa\nbbbbbbbb\n" {
		t.Errorf("current file holds %q", got)
	}
	if got := readFile(t, target); got != "precious\n" {
		t.Errorf("the link's target holds %q", got)
	}
	if fi, err := os.Lstat(path + ".1"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the link at the rotated name was replaced: %v", err)
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o644 {
		t.Errorf("the link's target changed mode to %v", fi.Mode().Perm())
	}
}
