package blocklist

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// writeSyntheticList writes n deterministic, realistic-looking names in
// domains format and returns the path.
func writeSyntheticList(tb testing.TB, n int) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "big.txt")
	f, err := os.Create(p)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriter(f)
	rng := rand.New(rand.NewPCG(1, 2))
	tlds := []string{"com", "net", "org", "xyz", "top", "info", "ru", "cn", "co.uk", "online"}
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	var label [24]byte
	for i := range n {
		l := 6 + rng.IntN(12)
		for j := range l {
			label[j] = letters[rng.IntN(len(letters))]
		}
		if i%3 == 0 {
			fmt.Fprintf(w, "www.%s%d.%s\n", label[:l], i, tlds[i%len(tlds)])
		} else {
			fmt.Fprintf(w, "%s%d.%s\n", label[:l], i, tlds[i%len(tlds)])
		}
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	f.Close()
	return p
}

// BenchmarkListLoad1M measures a full load of a one-million-name list:
// read, hash the content, parse, build the matcher.
func BenchmarkListLoad1M(b *testing.B) {
	p := writeSyntheticList(b, 1_000_000)
	fi, _ := os.Stat(p)
	b.SetBytes(fi.Size())
	b.ReportAllocs()
	for b.Loop() {
		l := NewList(Config{Name: "big", Path: p, Format: FormatDomains, MaxInvalid: 0.5, MaxShrink: 0.5})
		if _, err := l.Load(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListLoad10M loads a ten-million-name list, the size of the big
// public aggregations together, and reports the load time in seconds and
// the matcher's memory in bytes per name.
func BenchmarkListLoad10M(b *testing.B) {
	const n = 10_000_000
	p := writeSyntheticList(b, n)
	fi, _ := os.Stat(p)
	b.SetBytes(fi.Size())
	var mem, names int
	for b.Loop() {
		l := NewList(Config{Name: "big", Path: p, Format: FormatDomains, MaxInvalid: 0.5, MaxShrink: 0.5})
		if _, err := l.Load(); err != nil {
			b.Fatal(err)
		}
		mem, names = l.Snapshot().Set.MemoryBytes(), l.Snapshot().Set.Len()
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/load")
	b.ReportMetric(float64(mem)/float64(names), "B/name")
}
