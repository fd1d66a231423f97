package blocklist

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func build(allowWins bool, rules ...string) *Set {
	b := NewBuilder(len(rules))
	b.AllowWins = allowWins
	for _, r := range rules {
		// "name self below"
		var name, self, below string
		fmt.Sscan(r, &name, &self, &below)
		b.Add([]byte(name), actByName(self), actByName(below))
	}
	return b.Build()
}

func actByName(s string) Action {
	for i, n := range actionNames {
		if n == s {
			return Action(i)
		}
	}
	panic(s)
}

func TestSetLookup(t *testing.T) {
	s := build(false,
		"evil.test block block",
		"exact.test nxdomain none",
		"wild.test none nodata",
		"pass.wild.test allow allow",
		"dup.test block none",
		"dup.test none drop",
	)
	tests := []struct {
		q     string
		act   Action
		rule  string
		below bool
	}{
		{"evil.test.", ActBlock, "evil.test", false},
		{"EVIL.Test", ActBlock, "evil.test", false},
		{"a.b.c.evil.test.", ActBlock, "evil.test", true},
		{"xevil.test.", ActNone, "", false},
		{"test.", ActNone, "", false},
		{"exact.test.", ActNXDomain, "exact.test", false},
		{"a.exact.test.", ActNone, "", false},
		{"wild.test.", ActNone, "", false},
		{"a.wild.test.", ActNoData, "wild.test", true},
		{"pass.wild.test.", ActAllow, "pass.wild.test", false},
		{"x.pass.wild.test.", ActAllow, "pass.wild.test", true},
		{"dup.test.", ActBlock, "dup.test", false},
		{"x.dup.test.", ActDrop, "dup.test", true},
		{".", ActNone, "", false},
		{"", ActNone, "", false},
	}
	if s.Len() != 5 {
		t.Errorf("Len = %d, want 5 (duplicates merged)", s.Len())
	}
	for _, tc := range tests {
		m := s.Lookup(tc.q)
		name := string(NormalizeQuery(nil, tc.q))
		rule := ""
		if m.Action != ActNone {
			rule = name[m.Start:]
		}
		if m.Action != tc.act || rule != tc.rule || m.Below != tc.below {
			t.Errorf("Lookup(%q) = %v rule %q below %v; want %v %q %v", tc.q, m.Action, rule, m.Below, tc.act, tc.rule, tc.below)
		}
	}
}

func TestSetAllowWins(t *testing.T) {
	rules := []string{"example.test allow allow", "ads.example.test block block"}
	if m := build(true, rules...).Lookup("x.ads.example.test."); m.Action != ActAllow {
		t.Errorf("adblock semantics: an exception on a parent must win, got %v", m.Action)
	}
	if m := build(false, rules...).Lookup("x.ads.example.test."); m.Action != ActBlock {
		t.Errorf("most specific rule must win, got %v", m.Action)
	}
	if m := build(true, rules...).Lookup("x.other.test."); m.Action != ActNone {
		t.Errorf("got %v", m.Action)
	}
}

func TestSetEmptyAndNil(t *testing.T) {
	var nilSet *Set
	if nilSet.Lookup("a.test.").Action != ActNone || nilSet.Len() != 0 {
		t.Error("nil set")
	}
	if s := NewBuilder(0).Build(); s.Lookup("a.test.").Action != ActNone || s.Len() != 0 {
		t.Error("empty set")
	}
}

// TestSetLarge checks every member and many non-members of a set big
// enough to use many buckets.
func TestSetLarge(t *testing.T) {
	const n = 200_000
	b := NewBuilder(n)
	for i := range n {
		b.Add(fmt.Appendf(nil, "host%d.example%d.test", i, i%97), ActBlock, ActBlock)
	}
	s := b.Build()
	if s.Len() != n {
		t.Fatalf("Len %d", s.Len())
	}
	for i := range n {
		if s.Lookup(fmt.Sprintf("www.host%d.example%d.test.", i, i%97)).Action != ActBlock {
			t.Fatalf("member %d missing", i)
		}
		if s.Lookup(fmt.Sprintf("host%d.example%d.test.", i, (i+1)%97)).Action != ActNone {
			t.Fatalf("non-member %d found", i)
		}
	}
	if per := float64(s.MemoryBytes()) / n; per > 11.5 {
		t.Errorf("%.1f bytes per name, want at most 11.5 (8 hash + 1 action + at most 2 directory)", per)
	}
}

func TestLongAndHostileNames(t *testing.T) {
	s := build(false, "evil.test block block")
	long := strings.Repeat("a.", 600) + "evil.test."
	if s.Lookup(long).Action != ActBlock {
		t.Error("a name longer than the buffer must still match on its tail")
	}
	for _, q := range []string{`\000.evil.test.`, `a\.b.evil.test.`, "..evil.test", "evil.test..", strings.Repeat(".", 2000)} {
		s.Lookup(q) // must not panic
	}
}

func TestListReloadRace(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/l.txt"
	write := func(v int) {
		var sb strings.Builder
		sb.WriteString("always.test\n")
		// Big enough (over offHeapMin) that each version lives off the
		// Go heap and is released by its cleanup once unreachable.
		for i := range 100_000 {
			fmt.Fprintf(&sb, "v%d-%d.test\n", v, i)
		}
		writeTestFile(t, p, sb.String())
	}
	write(0)
	l := NewList(Config{Name: "l", Path: p, MaxShrink: 0.5, MaxInvalid: 0.5})
	if _, err := l.Load(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if l.Lookup("x.always.test.").Action != ActBlock {
					t.Error("always.test not blocked during reload")
					return
				}
			}
		}()
	}
	for v := 1; v <= 5; v++ {
		write(v)
		if _, err := l.Load(); err != nil {
			t.Fatal(err)
		}
		// Collect the old version while readers run: its memory is
		// unmapped, and a reader still using it would crash the test.
		runtime.GC()
	}
	if m := l.Lookup("v5-99999.test."); m.Action != ActBlock {
		t.Fatalf("last version not in force: %v", m.Action)
	}
	close(stop)
	wg.Wait()
}

func BenchmarkSetLookup(b *testing.B) {
	const n = 1_000_000
	bl := NewBuilder(n)
	for i := range n {
		bl.Add(fmt.Appendf(nil, "host%d.example.test", i), ActBlock, ActBlock)
	}
	s := bl.Build()
	b.ReportMetric(float64(s.MemoryBytes())/n, "bytes/name")
	for _, bc := range []struct{ name, q string }{
		{"hit", "host4242.example.test."},
		{"miss", "www.example.org."},
		{"deep-subdomain", "a.b.c.d.e.f.g.host4242.example.test."},
		{"long-miss", strings.Repeat("abcdefghij", 6) + "." + strings.Repeat("klmnopqrst", 6) + "." + strings.Repeat("uvwxyz0123", 6) + ".tunnel.example.org."},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.Lookup(bc.q)
			}
		})
	}
}

func BenchmarkBuild(b *testing.B) {
	const n = 1_000_000
	names := make([][]byte, n)
	for i := range names {
		names[i] = fmt.Appendf(nil, "host%d.example.test", i)
	}
	b.ReportAllocs()
	for b.Loop() {
		bl := NewBuilder(n)
		for _, nm := range names {
			bl.Add(nm, ActBlock, ActBlock)
		}
		bl.Build()
	}
}

func writeTestFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
