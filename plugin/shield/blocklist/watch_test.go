package blocklist

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWatcherIgnoresNeighbours: writes to other files in the list's
// directory (an audit log beside the lists, say) must not reload the
// list, while a write to the list itself must.
func TestWatcherIgnoresNeighbours(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "list.txt")
	writeTestFile(t, p, "a.test\n")
	l := NewList(Config{Name: "l", Path: p, MaxShrink: 0.5, MaxInvalid: 0.5})
	w := NewWatcher([]*List{l}, WatchOptions{Debounce: 20 * time.Millisecond, Poll: time.Hour})
	w.LoadAll()
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	before := l.attempts.Load()
	other := filepath.Join(dir, "audit.json")
	for i := range 20 {
		os.WriteFile(other, []byte{byte(i), '\n'}, 0o600)
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if n := l.attempts.Load() - before; n != 0 {
		t.Errorf("%d loads of the list for writes to another file in its directory", n)
	}
	writeTestFile(t, p, "a.test\nb.test\n")
	deadline := time.Now().Add(5 * time.Second)
	for l.Lookup("b.test.").Action != ActBlock {
		if time.Now().After(deadline) {
			t.Fatal("a write to the list itself was not loaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
