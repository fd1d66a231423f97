package contain

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseRule(t *testing.T) {
	r, err := ParseRule([]string{"c2,tunnel", "3", "10m", "1h"})
	if err != nil || r.Count != 3 || r.Window != 10*time.Minute || r.TTL != time.Hour || len(r.Kinds) != 2 || r.Name != "escalate c2,tunnel 3 10m 1h" {
		t.Fatalf("%+v, %v", r, err)
	}
	for _, args := range [][]string{
		{"c2", "3", "10m"}, {"c2,", "3", "10m", "1h"}, {"c2", "0", "10m", "1h"}, {"c2", "-1", "10m", "1h"},
		{"c2", "101", "10m", "1h"}, {"c2", "99999999999999999999", "10m", "1h"}, {"c2", "3", "0s", "1h"},
		{"c2", "3", "25h", "1h"}, {"c2", "3", "10m", "-1h"}, {"c2", "3", "ten", "1h"}, {"c2", "x", "10m", "1h"},
	} {
		if _, err := ParseRule(args); err == nil {
			t.Errorf("ParseRule(%q) accepted", args)
		}
	}
}

func TestLadder(t *testing.T) {
	r, _ := ParseRule([]string{"c2,tunnel", "3", "10m", "1h"})
	l := NewLadder([]Rule{r}, 0)
	a := netip.MustParseAddr("10.0.0.5")
	b := netip.MustParseAddr("10.0.0.6")
	now := t0
	if e := l.Note(a, "ads", "x.test", nil, now); e != nil || l.Len() != 0 {
		t.Fatal("a kind no rule counts was counted")
	}
	l.Note(a, "c2", "one.test", nil, now)
	l.Note(b, "c2", "other.test", nil, now)
	l.Note(a, "tunnel", "two.test", []string{"entropy"}, now.Add(time.Minute))
	// The third block comes after the window of the first: no escalation.
	if e := l.Note(a, "c2", "three.test", nil, now.Add(11*time.Minute)); e != nil {
		t.Fatalf("escalated outside the window: %+v", e)
	}
	e := l.Note(a, "c2", "four.test", nil, now.Add(11*time.Minute))
	if len(e) != 1 || e[0].Client != a || len(e[0].Evidence) != 3 {
		t.Fatalf("escalations %+v", e)
	}
	if got := strings.Join(e[0].Evidence, "|"); got != "two.test (tunnel: entropy)|three.test (c2)|four.test (c2)" {
		t.Errorf("evidence %q", got)
	}
	// The counter starts again after firing.
	if e := l.Note(a, "c2", "five.test", nil, now.Add(13*time.Minute)); e != nil {
		t.Error("fired again at once")
	}
	l.Sweep(now.Add(time.Hour))
	if l.Len() != 0 {
		t.Errorf("%d counters after the sweep", l.Len())
	}
}

func TestLadderBound(t *testing.T) {
	r, _ := ParseRule([]string{"any", "5", "10m", "1h"})
	l := NewLadder([]Rule{r}, 100)
	for i := range 10000 {
		l.Note(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), "x", "n", nil, t0)
	}
	if l.Len() > 100 {
		t.Errorf("%d counters, bound 100", l.Len())
	}
}

func TestLadderNoteDoesNotAllocate(t *testing.T) {
	// Hits a second apart never make 100 within 1s: the rule never fires.
	r, _ := ParseRule([]string{"tunnel", "100", "1s", "1h"})
	l := NewLadder([]Rule{r}, 0)
	a := netip.MustParseAddr("10.0.0.5")
	at := t0
	for range 100 { // grown to its full size
		at = at.Add(time.Second)
		l.Note(a, "tunnel", "x.test", nil, at)
	}
	if n := testing.AllocsPerRun(200, func() {
		at = at.Add(time.Second)
		l.Note(a, "ads", "x.test", nil, at)    // no rule
		l.Note(a, "tunnel", "x.test", nil, at) // an existing counter
	}); n != 0 {
		t.Errorf("%v allocations per Note", n)
	}
	if l.Len() != 1 {
		t.Errorf("%d counters", l.Len())
	}
}

// TestLadderCountersGrow: a counter holds the hits it has seen, not COUNT
// of them from the first. With "escalate any 50 ..." every client that
// hits any list gets a counter, and preallocating 50 hits each made a
// full table of mostly one-hit clients cost 16384*50 hits (some 50 MB).
func TestLadderCountersGrow(t *testing.T) {
	r, _ := ParseRule([]string{"any", "50", "1h", "1h"})
	l := NewLadder([]Rule{r}, 0)
	for i := range 1000 {
		l.Note(netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}), "ads", "x.test", nil, t0)
	}
	held := 0
	for _, c := range l.table {
		held += cap(c.hits)
	}
	if held > 4*1000 {
		t.Errorf("1000 one-hit counters hold room for %d hits", held)
	}
	// A counter still fires on the 50th hit within the window, with the
	// evidence in order, and not before.
	a := netip.MustParseAddr("10.9.100.1")
	for i := range 49 {
		if e := l.Note(a, "ads", fmt.Sprintf("n%d.test", i), nil, t0.Add(time.Duration(i)*time.Second)); e != nil {
			t.Fatalf("fired after %d hits", i+1)
		}
	}
	e := l.Note(a, "ads", "n49.test", nil, t0.Add(49*time.Second))
	if len(e) != 1 || len(e[0].Evidence) != 50 || e[0].Evidence[0] != "n0.test (ads)" || e[0].Evidence[49] != "n49.test (ads)" {
		t.Fatalf("escalation %+v", e)
	}
	// A full ring keeps sliding: hits outside the window do not count.
	b := netip.MustParseAddr("10.9.100.2")
	for i := range 60 {
		at := t0.Add(time.Duration(i) * 2 * time.Minute) // 30 per hour: never 50 within 1h
		if e := l.Note(b, "ads", "y.test", nil, at); e != nil {
			t.Fatalf("fired at hit %d with hits 2 minutes apart", i+1)
		}
	}
}
