package contain

import (
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
	r, _ := ParseRule([]string{"tunnel", "100", "1h", "1h"})
	l := NewLadder([]Rule{r}, 0)
	a := netip.MustParseAddr("10.0.0.5")
	l.Note(a, "tunnel", "x.test", nil, t0)
	if n := testing.AllocsPerRun(50, func() {
		l.Note(a, "ads", "x.test", nil, t0)    // no rule
		l.Note(a, "tunnel", "x.test", nil, t0) // an existing counter
	}); n != 0 {
		t.Errorf("%v allocations per Note", n)
	}
}
