package score

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// hasReason reports whether r lists the reason name.
func hasReason(r Result, name string) bool { return slices.Contains(r.Reasons(), name) }

// TestNewlySeenNeedsHistory: a fresh engine has no first-seen history, so
// every domain is unknown to it, and unknown is not new: newly_seen gives
// no points until the history covers one long window. Then a domain it
// has not seen gets them, and one it saw does not.
func TestNewlySeenNeedsHistory(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	e := mustEngine(t, Config{Clock: func() time.Time { return now }})
	c := netip.MustParseAddr("192.0.2.1")
	if got := e.NewlySeenFrom(); !got.Equal(now.Add(DefaultLongWindow)) {
		t.Errorf("NewlySeenFrom %v, want a day after the start %v", got, now)
	}
	if r := e.Score(Query{Name: "www.first.example.", Type: 1, Client: c}); hasReason(r, DetNewlySeen) {
		t.Errorf("fresh engine: newly_seen for an unknown domain: %v", r.Reasons())
	}
	now = now.Add(DefaultLongWindow - time.Second)
	if r := e.Score(Query{Name: "www.second.example.", Type: 1, Client: c}); hasReason(r, DetNewlySeen) {
		t.Errorf("a second short of a day of history: newly_seen: %v", r.Reasons())
	}
	now = now.Add(time.Second)
	if r := e.Score(Query{Name: "www.third.example.", Type: 1, Client: c}); !hasReason(r, DetNewlySeen) {
		t.Errorf("a day of history: no newly_seen for an unknown domain: %v", r.Reasons())
	}
	// Seen a day before, at the start of the history: not new, from
	// another client too. Seen a second before: still new.
	other := netip.MustParseAddr("192.0.2.2")
	if r := e.Score(Query{Name: "mail.first.example.", Type: 1, Client: other}); hasReason(r, DetNewlySeen) {
		t.Errorf("a domain first seen a day before: newly_seen: %v", r.Reasons())
	}
	if r := e.Score(Query{Name: "mail.second.example.", Type: 1, Client: other}); !hasReason(r, DetNewlySeen) {
		t.Errorf("a domain first seen a second before: no newly_seen: %v", r.Reasons())
	}
	// Explain follows the same rule.
	if r := e.Explain(Query{Name: "www.fourth.example.", Type: 1, Client: c}); !hasReason(r, DetNewlySeen) {
		t.Errorf("Explain with history: no newly_seen: %v", r.Reasons())
	}
}

// TestNewlySeenGatesTheSuspectRule pins what the gate costs: a suspect
// client's next domain of its DGA family gets client_nx_burst with or
// without history, and the 10 points of newly_seen only with history.
// (When the DGA model gives the label no points, 50 without history is
// an alert where 60 with it is a block: TestFloodKeepsVerdict and the
// corpus replays run with history for that reason.)
func TestNewlySeenGatesTheSuspectRule(t *testing.T) {
	var scores [2]int
	for i, history := range []bool{false, true} {
		e := mustEngine(t, Config{})
		if history {
			withHistory(e)
		}
		c := netip.MustParseAddr("192.0.2.7")
		for i := 0; i < 20; i++ {
			r := e.Score(Query{Name: fmt.Sprintf("qzxkvbnmwrtp%02d.com.", i), Type: 1, Client: c})
			e.ObserveResponse(&r, 3)
		}
		r := e.Score(Query{Name: "qzxkvbnmwrtp99.com.", Type: 1, Client: c})
		if !hasReason(r, "client_nx_burst") || hasReason(r, DetNewlySeen) != history {
			t.Errorf("history %v: next domain of the family: %v %d %v", history, r.Action, r.Score, r.Reasons())
		}
		scores[i] = r.Score
	}
	if scores[1] != scores[0]+ptsNewlySeen {
		t.Errorf("score without history %d, with %d: want %d more", scores[0], scores[1], ptsNewlySeen)
	}
}
