package score

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// testClock is a synthetic clock that several engines can share.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.Unix(1_800_000_000, 0)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

var (
	tunnelClient = netip.MustParseAddr("192.0.2.1")
	otherClient  = netip.MustParseAddr("192.0.2.9")
)

// sticky reports whether a plain query from another client under domain
// is blocked by a sticky verdict.
func sticky(e *Engine, domain string) bool {
	r := e.Explain(Query{Name: "www." + domain + ".", Type: 1, Client: otherClient})
	return r.Action == Block && r.Sticky
}

// newlySeen reports whether a query for domain gets newly_seen points.
func newlySeen(e *Engine, domain string) bool {
	return hasReason(e.Explain(Query{Name: "www." + domain + ".", Type: 1, Client: otherClient}), DetNewlySeen)
}

// TestHandoverShares: with the same table sizes the new engine takes the
// old one's tables: its verdicts, counters, names and history, and what
// the old configuration scores during the overlap lands in them too.
func TestHandoverShares(t *testing.T) {
	clk := newTestClock()
	prev := withHistory(mustEngine(t, Config{Clock: clk.Now}))
	// Seen more than a long window ago: not new any more.
	prev.Score(Query{Name: "www.seen-before.example.", Type: 1, Client: otherClient})
	clk.Add(DefaultLongWindow + time.Minute)
	if tunnelQueries(prev, "tun.example.net", tunnelClient, 50) == 0 {
		t.Fatal("tunnel not blocked")
	}
	// Half a tunnel: encoded prefixes counted, no verdict yet.
	tunnelQueries(prev, "slow.example.org", tunnelClient, 2)
	clk.Add(time.Minute)

	e := mustEngine(t, Config{Clock: clk.Now, Block: 70})
	c := e.Handover(prev)
	want := []string{"verdicts", "domains", "clients", "prevalence", "budgets", "dga_evidence", "names", "history"}
	if !slices.Equal(c.Shared, want) || !c.History {
		t.Fatalf("carried %+v, want every table shared", c)
	}
	if e.keySeed != prev.keySeed || !e.start.Equal(prev.start) || !e.HistoryFrom().Equal(prev.HistoryFrom()) {
		t.Error("seed, clock or history start not carried")
	}
	if !sticky(e, "example.net") {
		t.Error("verdict lost over the handover")
	}
	if newlySeen(e, "seen-before.example") || !newlySeen(e, "never-seen.example") {
		t.Error("first-seen history not carried")
	}
	// The old configuration still serves for a moment: its verdicts are
	// the new one's.
	if tunnelQueries(prev, "overlap.example.com", tunnelClient, 50) == 0 {
		t.Fatal("overlap tunnel not blocked")
	}
	if !sticky(e, "example.com") {
		t.Error("a verdict the old engine made during the overlap is not in the new one")
	}
	// The per-domain counters carried on: the rest of the slow tunnel
	// blocks sooner than a fresh start would.
	fresh := withHistory(mustEngine(t, Config{Clock: clk.Now, Block: 70}))
	if a, b := tunnelQueries(e, "slow.example.org", tunnelClient, 50), tunnelQueries(fresh, "slow.example.org", tunnelClient, 50); a == 0 || a >= b {
		t.Errorf("counters not carried: blocked after %d more queries, a fresh engine after %d", a, b)
	}
	if s := e.Stats(); s.Verdicts != prev.Stats().Verdicts || s.Verdicts < 3 {
		t.Errorf("verdict tables differ: %d and %d", s.Verdicts, prev.Stats().Verdicts)
	}
}

// TestHandoverCopies: when the sizes change the new engine copies the
// live verdicts, the counters and the history; a smaller verdict table
// keeps the most used verdicts.
func TestHandoverCopies(t *testing.T) {
	clk := newTestClock()
	prev := mustEngine(t, Config{Clock: clk.Now})
	if tunnelQueries(prev, "tun.example.net", tunnelClient, 50) == 0 {
		t.Fatal("tunnel not blocked")
	}
	for i := 0; i < 5; i++ {
		prev.Score(Query{Name: fmt.Sprintf("more%d.tun.example.net.", i), Type: 1, Client: tunnelClient})
	}
	prev.Score(Query{Name: "www.seen-before.example.", Type: 1, Client: otherClient})
	// An expired verdict is not copied.
	short := mustEngine(t, Config{Clock: clk.Now, Sticky: time.Minute})
	short.Handover(prev)
	if tunnelQueries(short, "brief.example.com", tunnelClient, 50) == 0 {
		t.Fatal("second tunnel not blocked")
	}
	clk.Add(2 * time.Minute)

	e := mustEngine(t, Config{Clock: clk.Now, Verdicts: 1024, Domains: 4096, Clients: 1024, Names: 4096})
	c := e.Handover(short)
	// The budgets and the DGA evidence have one size whatever the
	// configuration.
	if !slices.Equal(c.Shared, []string{"budgets", "dga_evidence", "history"}) || c.Verdicts != 1 || c.VerdictsDropped != 0 || c.Domains == 0 || !c.History {
		t.Fatalf("carried %+v, want 1 verdict, domains and the shared history", c)
	}
	if !sticky(e, "example.net") || sticky(e, "example.com") {
		t.Error("live verdict not copied, or expired one copied")
	}
	// A day later, with history: the history copied says what is new.
	clk.Add(DefaultLongWindow)
	if newlySeen(e, "seen-before.example") || !newlySeen(e, "never-seen.example") {
		t.Error("first-seen history not carried")
	}
	if !e.NewlySeenFrom().Equal(prev.NewlySeenFrom()) {
		t.Errorf("history start not carried: newly_seen from %v, want %v", e.NewlySeenFrom(), prev.NewlySeenFrom())
	}
}

// TestHandoverOtherWindow: a new long window drops the counters (their
// epochs mean something else) and merges the history.
func TestHandoverOtherWindow(t *testing.T) {
	clk := newTestClock()
	prev := withHistory(mustEngine(t, Config{Clock: clk.Now}))
	if tunnelQueries(prev, "tun.example.net", tunnelClient, 50) == 0 {
		t.Fatal("tunnel not blocked")
	}
	prev.Score(Query{Name: "www.seen-before.example.", Type: 1, Client: otherClient})
	e := mustEngine(t, Config{Clock: clk.Now, LongWindow: 12 * time.Hour})
	c := e.Handover(prev)
	if slices.Contains(c.Shared, "domains") || slices.Contains(c.Shared, "history") || c.Domains != 0 || !c.History {
		t.Errorf("carried %+v", c)
	}
	if !sticky(e, "example.net") {
		t.Error("verdict lost")
	}
	if newlySeen(e, "seen-before.example") || !newlySeen(e, "never-seen.example") {
		t.Error("history not merged")
	}
	// It stays through the next rotation of the new window.
	clk.Add(12 * time.Hour)
	e.Score(Query{Name: "www.rotate.example.", Type: 1, Client: otherClient})
	if newlySeen(e, "seen-before.example") {
		t.Error("merged history forgotten at the first rotation")
	}
}

// TestHandoverChainAndHistoryStart: the history start goes down a chain
// of reloads, and newly_seen starts a day after the first engine began,
// not a day after the last reload.
func TestHandoverChainAndHistoryStart(t *testing.T) {
	clk := newTestClock()
	first := mustEngine(t, Config{Clock: clk.Now})
	begin := clk.Now()
	prev := first
	for i := 0; i < 3; i++ {
		clk.Add(7 * time.Hour)
		e := mustEngine(t, Config{Clock: clk.Now, Verdicts: 1024 << (i % 2)})
		e.Handover(prev)
		prev = e
	}
	if !prev.HistoryFrom().Equal(begin) {
		t.Fatalf("history from %v, want %v", prev.HistoryFrom(), begin)
	}
	if newlySeen(prev, "never-seen.example") {
		t.Error("newly_seen before a day of history")
	}
	clk.Add(3 * time.Hour)
	if !newlySeen(prev, "never-seen.example") {
		t.Error("no newly_seen after a day of history across three reloads")
	}
}

// TestHandoverWhileServing runs the old engine's queries while the new
// one takes over, and the new one's right after (for the race detector).
func TestHandoverWhileServing(t *testing.T) {
	prev := mustEngine(t, Config{})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			c := netip.AddrFrom4([4]byte{10, 0, 0, byte(g)})
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := prev.Score(Query{Name: fmt.Sprintf("q+%d-%d.w%d.example.", i, g, i%50), Type: 16, Client: c})
				prev.ObserveResponse(&r, 3)
			}
		}(g)
	}
	time.Sleep(20 * time.Millisecond)
	for _, cfg := range []Config{{}, {Verdicts: 1024, Domains: 4096, Clients: 1024}} {
		e := mustEngine(t, cfg)
		e.Handover(prev)
		for i := 0; i < 1000; i++ {
			r := e.Score(Query{Name: fmt.Sprintf("q+%d.w%d.example.", i, i%50), Type: 16, Client: tunnelClient})
			e.ObserveResponse(&r, 3)
		}
	}
	close(stop)
	wg.Wait()
}
