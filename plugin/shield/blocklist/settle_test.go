package blocklist

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestSettled(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	settle := 2 * time.Second
	at := func(ago time.Duration) int64 { return now.Add(-ago).UnixNano() }
	loaded := fileSig{dev: 1, ino: 10, size: 100, mtime: at(time.Hour)}
	tests := []struct {
		name   string
		st     fileState
		loaded fileSig
		seen   time.Time
		want   settleVerdict
	}{
		{"old and complete", fileState{sig: fileSig{ino: 10, size: 120, mtime: at(time.Hour)}, complete: true}, loaded, now,
			settleVerdict{load: true}},
		{"just settled", fileState{sig: fileSig{ino: 10, size: 120, mtime: at(settle)}, complete: true}, loaded, now,
			settleVerdict{load: true}},
		{"written 500ms ago", fileState{sig: fileSig{ino: 10, size: 120, mtime: at(500 * time.Millisecond)}, complete: true}, loaded, now,
			settleVerdict{wait: 1500 * time.Millisecond}},
		{"incomplete last line", fileState{sig: fileSig{ino: 10, size: 120, mtime: at(settle)}}, loaded, now,
			settleVerdict{wait: 4 * settle}},
		{"incomplete but quiet for 5×settle", fileState{sig: fileSig{ino: 10, size: 120, mtime: at(5 * settle)}}, loaded, now,
			settleVerdict{load: true, unterminated: true}},
		{"mtime in the future: seen counts", fileState{sig: fileSig{ino: 10, size: 120, mtime: now.Add(time.Hour).UnixNano()}, complete: true}, loaded, now.Add(-time.Second),
			settleVerdict{wait: time.Second}},
		{"renamed into place", fileState{sig: fileSig{dev: 1, ino: 11, size: 120, mtime: at(0)}, renamed: true, complete: true}, loaded, now,
			settleVerdict{load: true}},
		{"renamed but incomplete", fileState{sig: fileSig{dev: 1, ino: 11, size: 120, mtime: at(0)}, renamed: true}, loaded, now,
			settleVerdict{wait: 5 * settle}},
		{"renamed but empty", fileState{sig: fileSig{dev: 1, ino: 11, mtime: at(0)}, renamed: true, complete: true}, loaded, now,
			settleVerdict{wait: settle}},
		{"renamed onto the inode last read", fileState{sig: fileSig{dev: 1, ino: 10, size: 120, mtime: at(0)}, renamed: true, complete: true}, loaded, now,
			settleVerdict{wait: settle}},
		{"renamed, nothing read before", fileState{sig: fileSig{dev: 1, ino: 11, size: 120, mtime: at(0)}, renamed: true, complete: true}, fileSig{}, now,
			settleVerdict{wait: settle}},
	}
	for _, tc := range tests {
		if got := settled(tc.st, tc.loaded, tc.seen, now, settle); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestStatFileComplete(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]bool{"": true, "a.test\n": true, "a.test\r\n": true, "a.test\r": true, "a.test": false, "a.test\nb.te": false} {
		p := filepath.Join(dir, "f")
		writeTestFile(t, p, content)
		st, err := statFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.complete != want || st.sig.size != int64(len(content)) {
			t.Errorf("%q: complete %v size %d, want %v %d", content, st.complete, st.sig.size, want, len(content))
		}
	}
}

// names returns a domains list of n names with the given prefix.
func names(prefix string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%s%d.test\n", prefix, i)
	}
	return b.String()
}

// startWatcher loads l and watches it until the test ends.
func startWatcher(t *testing.T, l *List, opt WatchOptions) {
	t.Helper()
	w := NewWatcher([]*List{l}, opt)
	w.LoadAll()
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
}

// waitFor polls cond until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWatcherWaitsForSlowWriter writes a new version in place in chunks,
// pausing longer than the debounce, and checks after every chunk that
// the list in force is the old one or the complete new one, never a mix.
func TestWatcherWaitsForSlowWriter(t *testing.T) {
	for _, poll := range []time.Duration{time.Hour, 50 * time.Millisecond} {
		t.Run(fmt.Sprint("poll ", poll), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "list.txt")
			writeTestFile(t, p, names("old", 1000))
			l := NewList(Config{Name: "l", Path: p, Format: FormatDomains, MaxShrink: 1, MaxInvalid: 0.5, Settle: 400 * time.Millisecond})
			startWatcher(t, l, WatchOptions{Debounce: 20 * time.Millisecond, Poll: poll})
			next := []byte(names("new", 1000))
			var partial atomic.Int64
			check := func() {
				oldIn, newLast := l.Lookup("old999.test.").Action == ActBlock, l.Lookup("new999.test.").Action == ActBlock
				if oldIn == newLast { // both (a mix) or neither (a cut new list)
					partial.Add(1)
				}
			}
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			const chunk = 1024
			for off := 0; off < len(next); off += chunk {
				f.Write(next[off:min(off+chunk, len(next))])
				pause := 100 * time.Millisecond
				if off < len(next)*6/10 && off+chunk >= len(next)*6/10 {
					pause = 300 * time.Millisecond // longer than the debounce, shorter than settle
				}
				for end := time.Now().Add(pause); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
					check()
				}
			}
			f.Close()
			waitFor(t, 5*time.Second, "new list in force", func() bool {
				check()
				return l.Lookup("new999.test.").Action == ActBlock
			})
			if n := partial.Load(); n != 0 {
				t.Errorf("%d lookups saw a partial list", n)
			}
			if l.Lookup("old1.test.").Action != ActNone || l.Snapshot().Set.Len() != 1000 {
				t.Error("the new list is not exactly in force")
			}
		})
	}
}

// TestWatcherRenameSkipsSettle: a file renamed into place is complete,
// so it loads without waiting for the (here very long) settle window,
// while an in-place write waits for it.
func TestWatcherRenameSkipsSettle(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "list.txt")
	writeTestFile(t, p, "one.test\n")
	l := NewList(Config{Name: "l", Path: p, MaxShrink: 1, MaxInvalid: 0.5, Settle: time.Hour})
	startWatcher(t, l, WatchOptions{Debounce: 20 * time.Millisecond, Poll: time.Hour})
	tmp := filepath.Join(dir, "list.tmp")
	writeTestFile(t, tmp, "one.test\ntwo.test\n")
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "renamed file in force", func() bool { return l.Lookup("two.test.").Action == ActBlock })

	// An in-place write is not vouched for by a rename: it waits.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("three.test\n")
	f.Close()
	time.Sleep(300 * time.Millisecond)
	if l.Lookup("three.test.").Action != ActNone {
		t.Error("an in-place write loaded before its settle window")
	}
}

// TestWatcherUnterminated: a file whose last line never ends loads after
// five settle windows; at start-up an old one loads at once.
func TestWatcherUnterminated(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "list.txt")
	writeTestFile(t, p, "one.test\ntwo.te")
	l := NewList(Config{Name: "l", Path: p, MaxShrink: 1, MaxInvalid: 0.5, Settle: 50 * time.Millisecond})
	w := NewWatcher([]*List{l}, WatchOptions{Debounce: 10 * time.Millisecond, Poll: time.Hour})
	w.LoadAll()
	if l.Snapshot() != nil {
		t.Fatal("a fresh file with an incomplete last line loaded at start-up")
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	waitFor(t, 5*time.Second, "unterminated file loaded", func() bool { return l.Lookup("two.te.").Action == ActBlock })

	old := filepath.Join(dir, "old.txt")
	writeTestFile(t, old, "one.test\ntwo.test")
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	lo := NewList(Config{Name: "old", Path: old, MaxShrink: 1, MaxInvalid: 0.5})
	NewWatcher([]*List{lo}, WatchOptions{}).LoadAll()
	if lo.Lookup("two.test.").Action != ActBlock {
		t.Error("an old file without a final newline did not load at start-up")
	}
}

// TestLoadCheckedRefusesAChangedFile: a file that is not the one judged
// settled is not read, and the list in force stays.
func TestLoadCheckedRefusesAChangedFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "list.txt")
	writeTestFile(t, p, "one.test\n")
	l := NewList(Config{Name: "l", Path: p, MaxShrink: 1, MaxInvalid: 0.5})
	if _, err := l.Load(); err != nil {
		t.Fatal(err)
	}
	st, err := statFile(p)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, p, "one.test\ntwo.test\n")
	if changed, err := l.loadChecked(&st.sig); changed || err != errUnsettled {
		t.Fatalf("loadChecked of a changed file: %v %v", changed, err)
	}
	if l.Lookup("two.test.").Action != ActNone || l.LastError() != nil {
		t.Error("a file that changed under the check was loaded or counted as a failure")
	}
}
