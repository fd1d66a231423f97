package score

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// scopeClient returns the n-th client of a /16 prefix.
func scopeClient(prefix byte, n int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, prefix, byte(n >> 8), byte(n)})
}

// poison sends encoded NULL queries (x=N style) under zone from the
// attacker addresses in turn, until every address is blocked or max
// queries went out, and returns the queries sent.
func poison(e *Engine, zone string, attackers []netip.Addr, max int) int {
	blocked := map[netip.Addr]bool{}
	for i := 0; i < max; i++ {
		a := attackers[i%len(attackers)]
		r := e.Score(Query{Name: fmt.Sprintf("x=%d.%s.", i, zone), Type: 10, Client: a})
		if r.Action == Block {
			blocked[a] = true
			if len(blocked) == len(attackers) {
				return i + 1
			}
		} else {
			e.ObserveResponse(&r, 0)
		}
	}
	return max
}

// TestPoisonPopularDomain: the poisoning target replayed through
// the engine. A domain 20 clients use; an attacker with 1 and with 10
// addresses sends encoded NULL queries under it. No other client is ever
// blocked for it (or alerted on its plain queries), the attacker's
// addresses are, and no verdict is fleet-wide.
func TestPoisonPopularDomain(t *testing.T) {
	for _, n := range []int{1, 10} {
		t.Run(fmt.Sprintf("%d attackers", n), func(t *testing.T) {
			now := time.Unix(1_800_000_000, 0)
			e := mustEngine(t, Config{Clock: func() time.Time { return now }})
			for c := 0; c < 20; c++ {
				for _, h := range []string{"www", "mail"} {
					r := e.Score(Query{Name: h + ".google.com.", Type: 1, Client: scopeClient(1, c)})
					e.ObserveResponse(&r, 0)
				}
			}
			var attackers []netip.Addr
			for i := 0; i < n; i++ {
				attackers = append(attackers, scopeClient(2, i))
			}
			now = now.Add(time.Minute)
			if sent := poison(e, "google.com", attackers, 400); sent == 400 {
				t.Fatalf("not every attacker address blocked within 400 queries")
			}
			for round := 0; round < 3; round++ {
				for c := 0; c < 20; c++ {
					for _, h := range []string{"www", "mail", "docs"} {
						r := e.Score(Query{Name: h + ".google.com.", Type: 1, Client: scopeClient(1, c)})
						if r.Action != Pass || r.Detected {
							t.Fatalf("innocent client %d, %s.google.com: %v score %d sticky %v %v", c, h, r.Action, r.Score, r.Sticky, r.Reasons())
						}
					}
				}
			}
			for _, a := range attackers {
				r := e.Score(Query{Name: "www.google.com.", Type: 1, Client: a})
				if r.Action != Block || !r.Sticky || r.Scope != ScopeClient || r.Detected {
					t.Errorf("attacker %v plain query: %v sticky %v scope %v detected %v", a, r.Action, r.Sticky, r.Scope, r.Detected)
				}
				r = e.Score(Query{Name: "x=999.google.com.", Type: 10, Client: a})
				if r.Action != Block || !r.Detected {
					t.Errorf("attacker %v encoded query: %v detected %v", a, r.Action, r.Detected)
				}
			}
			vs := e.Verdicts()
			if len(vs) != 1 || vs[0].Domain != "google.com" || vs[0].Scope != ScopeClient || len(vs[0].Clients) != min(n, maxEarners) {
				t.Fatalf("verdicts %+v", vs)
			}
		})
	}
}

// TestPopularResultSaysSo: the fresh detection that makes a client verdict
// on a popular domain says it is popular (the glue writes the alert).
func TestPopularResultSaysSo(t *testing.T) {
	e := mustEngine(t, Config{})
	for c := 0; c < 6; c++ {
		e.Score(Query{Name: "www.shop.example.", Type: 1, Client: scopeClient(1, c)})
	}
	a := scopeClient(2, 0)
	popular := false
	for i := 0; i < 50 && !popular; i++ {
		r := e.Score(Query{Name: fmt.Sprintf("x=%d.shop.example.", i), Type: 10, Client: a})
		popular = r.Action == Block && r.Detected && r.Popular && r.Scope == ScopeClient
	}
	if !popular {
		t.Fatal("no popular client-scoped detection")
	}
}

// TestTunnelGoesFleetAtOnce: a real tunnel domain used by one client is
// fleet-wide at its first block.
func TestTunnelGoesFleetAtOnce(t *testing.T) {
	e := mustEngine(t, Config{})
	for c := 0; c < 20; c++ {
		e.Score(Query{Name: "www.example.org.", Type: 1, Client: scopeClient(1, c)})
	}
	tun := scopeClient(2, 1)
	e.Score(Query{Name: "www.tun.example.net.", Type: 1, Client: tun}) // its own handshake
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 1; i <= 50; i++ {
		r := e.Score(Query{Name: fmt.Sprintf("q+%s=%d.tun.example.net.", randLabel(rng, 30, true), i), Type: 16, Client: tun})
		if r.Action == Block {
			if r.Scope != ScopeFleet || !r.Detected || r.Popular {
				t.Fatalf("first block: scope %v detected %v popular %v", r.Scope, r.Detected, r.Popular)
			}
			break
		}
	}
	r := e.Score(Query{Name: "www.example.net.", Type: 1, Client: scopeClient(1, 3)})
	if r.Action != Block || !r.Sticky || r.Scope != ScopeFleet || r.Detected {
		t.Fatalf("another client after the tunnel: %+v", r)
	}
}

// TestFleetAfterKEarners: a domain with one other user stays
// client-scoped for the first two earners and goes fleet-wide with the
// third; with more than P=5 other users it never does (at exactly P the
// sketch's count is within one: prevalence.go).
func TestFleetAfterKEarners(t *testing.T) {
	for _, users := range []int{1, 7} {
		t.Run(fmt.Sprintf("%d users", users), func(t *testing.T) {
			e := mustEngine(t, Config{})
			for c := 0; c < users; c++ {
				e.Score(Query{Name: "www.rare.example.", Type: 1, Client: scopeClient(1, c)})
			}
			for k := 0; k < 5; k++ {
				a := scopeClient(2, k)
				var r Result
				for i := 0; i < 60; i++ {
					r = e.Score(Query{Name: fmt.Sprintf("x=%d-%d.rare.example.", k, i), Type: 10, Client: a})
					if r.Detected && !r.Sticky {
						break
					}
				}
				if !r.Detected {
					t.Fatalf("earner %d never detected", k)
				}
				want := ScopeClient
				if users == 1 && k >= 2 {
					want = ScopeFleet
				}
				if r.Scope != want {
					t.Fatalf("earner %d: scope %v, want %v", k, r.Scope, want)
				}
				if users > 1 && !r.Popular {
					t.Errorf("earner %d on a domain of %d users: not popular", k, users)
				}
				if k == 0 {
					if u := e.Score(Query{Name: "www.rare.example.", Type: 1, Client: scopeClient(1, 0)}); u.Action != Pass {
						t.Errorf("the domain's user after one earner: %v %v", u.Action, u.Reasons())
					}
				}
			}
		})
	}
}

// TestSuspectVerdictIsClientScoped: 11 NXDOMAIN look-alikes of
// corp-target.com followed by one plain query must not block
// corp-target.com for everyone.
func TestSuspectVerdictIsClientScoped(t *testing.T) {
	e := mustEngine(t, Config{})
	c := netip.MustParseAddr("192.0.2.44")
	for _, n := range []string{"corp-targat", "corp-tarqet", "corp-targe", "corp-target1", "corp-targett",
		"corpp-target", "corp-tagret", "coorp-target", "corp-targ3t", "c0rp-target", "corp-tarcet"} {
		r := e.Score(Query{Name: n + ".com.", Type: 1, Client: c})
		e.ObserveResponse(&r, 3)
	}
	r := e.Score(Query{Name: "corp-target.com.", Type: 1, Client: c})
	t.Logf("the plain query: %v %d %v scope %v", r.Action, r.Score, r.Reasons(), r.Scope)
	if r.Action == Block && r.Scope != ScopeClient {
		t.Fatalf("suspect-client block of corp-target.com is %v", r.Scope)
	}
	if o := e.Score(Query{Name: "corp-target.com.", Type: 1, Client: netip.MustParseAddr("192.0.2.45")}); o.Action == Block {
		t.Fatalf("another client is blocked for corp-target.com: %v", o.Reasons())
	}
	// The DGA family sample of TestDGAFamilySuspect: a suspect client's
	// next family domain is blocked, client-scoped.
	rng := rand.New(rand.NewPCG(3, 4))
	d := netip.MustParseAddr("192.0.2.46")
	for i := 0; i < 14; i++ {
		r := e.Score(Query{Name: randLabel(rng, 12, false) + ".com.", Type: 1, Client: d})
		e.ObserveResponse(&r, 3)
	}
	name := randLabel(rng, 12, false) + ".com."
	if r := e.Score(Query{Name: name, Type: 1, Client: d}); r.Action != Block || r.Scope != ScopeClient {
		t.Fatalf("suspect client's family domain: %v scope %v %v", r.Action, r.Scope, r.Reasons())
	}
	if r := e.Score(Query{Name: name, Type: 1, Client: c}); r.Action == Block {
		t.Fatal("a family domain blocked for another client")
	}
}

// TestFairShare: one client sending 180k encoded queries over random
// domains (the measurement: they filled the 16,384 entries) holds
// at most its share of the verdict table; another client's new tunnel
// still sticks. Under the race detector the flood is 30k queries, still
// more than the table holds.
func TestFairShare(t *testing.T) {
	e := mustEngine(t, Config{})
	flooder := netip.MustParseAddr("192.0.2.66")
	rng := rand.New(rand.NewPCG(9, 10))
	blocks, flood := 0, 180_000
	if raceEnabled {
		flood = 30_000
	}
	for i := 0; i < flood; i++ {
		r := e.Score(Query{Name: fmt.Sprintf("x=%s.%s.com.", randLabel(rng, 20, true), randLabel(rng, 10, false)), Type: 10, Client: flooder})
		if r.Action == Block {
			blocks++
		}
		if i < 20 { // the same domain a few times, so the flood blocks
			e.Score(Query{Name: fmt.Sprintf("x=%d.flood.com.", i), Type: 10, Client: flooder})
		}
	}
	s := e.Stats()
	share := max(minShare, s.VerdictsCap/shareDivisor)
	t.Logf("flood: %d blocks, verdicts %d/%d, refused for share %d", blocks, s.Verdicts, s.VerdictsCap, s.VerdictsRefusedShare)
	if s.Verdicts > share {
		t.Errorf("the flooding client holds %d verdicts, over its share %d", s.Verdicts, share)
	}
	tun := netip.MustParseAddr("192.0.2.1")
	if tunnelQueries(e, "tun.example.net", tun, 50) == 0 {
		t.Fatal("tunnel not blocked during the flood")
	}
	if r := e.Score(Query{Name: "www.example.net.", Type: 1, Client: tun}); !r.Sticky {
		t.Fatal("the other client's tunnel did not stick")
	}
}

// TestOperatorFunctions: Verdicts lists scopes and clients, Promote makes
// a client verdict fleet-wide, Clear removes every verdict on a domain.
func TestOperatorFunctions(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	e := mustEngine(t, Config{Clock: func() time.Time { return now }})
	for c := 0; c < 8; c++ {
		e.Score(Query{Name: "www.popular.example.", Type: 1, Client: scopeClient(1, c)})
	}
	a := scopeClient(2, 7)
	poison(e, "popular.example", []netip.Addr{a}, 100)
	vs := e.Verdicts()
	if len(vs) != 1 || vs[0].Domain != "popular.example" || vs[0].Scope != ScopeClient || len(vs[0].Clients) != 1 ||
		vs[0].Clients[0] != a || vs[0].Score < 60 || vs[0].Detector != DetTunnel || len(vs[0].Reasons) != 1 ||
		!vs[0].Start.Equal(now) || !vs[0].Expires.Equal(now.Add(DefaultSticky)) {
		t.Fatalf("verdicts %+v", vs)
	}
	other := scopeClient(1, 1)
	if r := e.Score(Query{Name: "www.popular.example.", Type: 1, Client: other}); r.Action == Block {
		t.Fatal("blocked before the promotion")
	}
	if e.Promote("unknown.example") {
		t.Error("promoted a domain with no verdict")
	}
	if !e.Promote("Popular.Example.") {
		t.Fatal("promote failed")
	}
	if r := e.Score(Query{Name: "www.popular.example.", Type: 1, Client: other}); r.Action != Block || r.Scope != ScopeFleet {
		t.Fatalf("not blocked after the promotion: %+v", r)
	}
	if vs := e.Verdicts(); len(vs) != 1 || vs[0].Scope != ScopeFleet {
		t.Fatalf("verdicts after promote %+v", vs)
	}
	if !e.Clear("popular.example") {
		t.Fatal("clear found nothing")
	}
	for _, c := range []netip.Addr{a, other} {
		if r := e.Score(Query{Name: "www.popular.example.", Type: 1, Client: c}); r.Sticky {
			t.Errorf("%v still blocked after clear", c)
		}
	}
	if vs := e.Verdicts(); len(vs) != 0 || e.Clear("popular.example") {
		t.Fatalf("verdicts after clear %+v", vs)
	}
}

// TestPrevalenceSketch measures the sketch at the default size: with 100k
// other domains in it (nine in ten of 1 or 2 clients, the rest of 1 to 30:
// 260k client-domain pairs), how often a fresh domain looks used by
// someone other than its earner (too many: it waits for K earners), how
// often one other user goes unseen beside an earner and how often 20
// users count under P (the unsafe errors).
func TestPrevalenceSketch(t *testing.T) {
	p := newPrevalence(DefaultDomains/4, 1<<20)
	rng := rand.New(rand.NewPCG(1, 1))
	for d := 0; d < 100_000; d++ {
		dom := rng.Uint64()
		n := 1 + d%2
		if d%10 == 0 {
			n = 1 + d%30
		}
		for c := 0; c < n; c++ {
			p.record(dom, rng.Uint64()|1, 1)
		}
	}
	missed, polluted, under := 0, 0, 0
	const trials = 10_000
	for i := 0; i < trials; i++ {
		dom, earner, user := rng.Uint64(), rng.Uint64()|1, rng.Uint64()|1
		if p.others(dom, []uint64{earner}) > 0 {
			polluted++
		}
		p.record(dom, user, 1)
		p.record(dom, earner, 1)
		if p.others(dom, []uint64{earner}) == 0 {
			missed++
		}
		dom2 := rng.Uint64()
		for c := 0; c < 20; c++ {
			p.record(dom2, rng.Uint64()|1, 1)
		}
		if p.others(dom2, []uint64{earner}) < DefaultPopularClients {
			under++
		}
	}
	t.Logf("100k domains in the sketch: a fresh domain looks used %.1f%%, one user missed beside an earner %.2f%%, 20 users under P %.2f%%",
		100*float64(polluted)/trials, 100*float64(missed)/trials, 100*float64(under)/trials)
	if missed > trials/20 || under > 0 {
		t.Errorf("missed %d, under P %d of %d", missed, under, trials)
	}
}

// TestPrevalenceDecays: users older than the prevalence window no longer
// count.
func TestPrevalenceDecays(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	e := mustEngine(t, Config{Clock: func() time.Time { return now }})
	for c := 0; c < 10; c++ {
		e.Score(Query{Name: "www.old.example.", Type: 1, Client: scopeClient(1, c)})
	}
	dom := e.domainKey("old.example")
	if n := e.prev.others(dom, nil); n < 8 {
		t.Fatalf("others %d", n)
	}
	now = now.Add(4 * 24 * time.Hour)
	e.Score(Query{Name: "www.else.example.", Type: 1, Client: scopeClient(3, 1)})
	if n := e.prev.others(dom, nil); n < 8 {
		t.Fatalf("forgotten after 4 days: %d", n)
	}
	now = now.Add(4 * 24 * time.Hour)
	e.Score(Query{Name: "www.else.example.", Type: 1, Client: scopeClient(3, 1)})
	if n := e.prev.others(dom, nil); n != 0 {
		t.Fatalf("remembered after 8 days: %d", n)
	}
}
