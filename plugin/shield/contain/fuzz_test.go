package contain

import (
	"path/filepath"
	"testing"
)

// FuzzDecodeState feeds arbitrary bytes to the state file decoder and
// restores what it accepts: neither may panic, and restored state must
// survive a save and load unchanged in size.
func FuzzDecodeState(f *testing.F) {
	f.Add([]byte(`{"version":1,"saved":"2026-03-01T12:00:00Z","quarantines":[{"client":"10.0.0.5/32","reason":"r","actor":"api:ops","start":"2026-03-01T12:00:00Z","expires":"2026-03-01T13:00:00Z","evidence":["a.test (c2)"]}],"blocks":[{"name":"evil.test","actor":"api:ops","start":"2026-03-01T12:00:00Z","expires":"2026-03-01T13:00:00Z"}]}`))
	f.Add([]byte(`{"version":1,"quarantines":null,"blocks":null}`))
	f.Add([]byte(`{"version":1,"quarantines":[{"client":"::ffff:1.2.3.4/128","expires":"2026-03-01T13:00:00Z"}]}`))
	f.Add([]byte(`{`))
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := DecodeState(data)
		if err != nil {
			return
		}
		s := NewStore(Options{})
		n, _ := s.Restore(st, t0)
		q, b := s.Counts()
		if q+b != n {
			t.Fatalf("restored %d but holds %d", n, q+b)
		}
		path := filepath.Join(dir, "state.json")
		if err := SaveState(path, s.Snapshot(t0)); err != nil {
			t.Fatal(err)
		}
		st2, err := LoadState(path, t0)
		if err != nil {
			t.Fatalf("saved state does not load: %v", err)
		}
		s2 := NewStore(Options{})
		if n2, _ := s2.Restore(st2, t0); n2 != n {
			t.Fatalf("round trip restored %d, want %d", n2, n)
		}
	})
}
