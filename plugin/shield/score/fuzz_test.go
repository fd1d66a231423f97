package score

import (
	"net/netip"
	"testing"
)

// FuzzScore feeds hostile names (escapes, 8-bit bytes, empty labels,
// over-long names) to the engine: it must not panic, scores stay within
// 0 to 100, and the lexical features stay consistent with the name.
func FuzzScore(f *testing.F) {
	e, err := New(Config{Domains: 4096, Clients: 4096, Verdicts: 1024, Names: 1 << 12})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("www.example.com.", uint16(1))
	f.Add("q+Z8AnwaBA.hidemyself.org.", uint16(16))
	f.Add(`a\200\255b\.c.t.test.lab.`, uint16(10))
	f.Add("..", uint16(1))
	f.Fuzz(func(t *testing.T, name string, qtype uint16) {
		c := netip.AddrFrom4([4]byte{192, 0, 2, byte(len(name))})
		r := e.Score(Query{Name: name, Type: qtype, Client: c})
		if r.Score < 0 || r.Score > 100 {
			t.Fatalf("score %d", r.Score)
		}
		if r.Action == Block && r.Domain() == "" {
			t.Fatalf("block without a domain for %q", name)
		}
		e.ObserveResponse(&r, 3)
		x := e.Explain(Query{Name: name, Type: qtype, Client: c})
		if x.Score < 0 || x.Score > 100 {
			t.Fatalf("explain score %d", x.Score)
		}
		_ = r.Reasons()
		var feat Features
		for _, end := range []int{0, len(name) / 2, len(name)} {
			lexical(name, end, &feat)
			if feat.PrefixLen > len(name) || feat.Len > len(name) || feat.NonLDH > feat.PrefixLen {
				t.Fatalf("features of %q (prefix end %d): %+v", name, end, feat)
			}
		}
	})
}
