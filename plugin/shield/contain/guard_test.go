package contain

import (
	"errors"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestSpaceCapAcrossRequests: the cap is on the sum over the quarantines
// held, so many narrow requests cannot add up to what one broad request
// may not take. 256 requests for a /24 fill a /16 exactly; the next one
// is refused until force is set or something is released.
func TestSpaceCapAcrossRequests(t *testing.T) {
	s := NewStore(Options{})
	for i := range 256 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 24)
		if _, err := s.Quarantine(p, 0, "r", "a", nil); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
	}
	if v4, _ := s.SpaceInUse(); v4 != 1<<16 {
		t.Fatalf("space in use %d, want 65536", v4)
	}
	over := netip.MustParsePrefix("10.200.0.5/32")
	_, err := s.Quarantine(over, 0, "r", "a", nil)
	if !errors.Is(err, ErrOverCap) || !NeedsForce(err) || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "force") {
		t.Fatalf("a host over the cap: %v", err)
	}
	// Replacing a held quarantine takes no new space.
	if _, err := s.Quarantine(netip.MustParsePrefix("10.7.0.0/24"), time.Minute, "again", "a", nil); err != nil {
		t.Errorf("replace at the cap: %v", err)
	}
	if _, err := s.QuarantineForce(over, 0, "r", "a", nil, true); err != nil {
		t.Fatalf("forced: %v", err)
	}
	// Over the cap by force, a further host is refused: what is held is
	// summed, however it got there.
	if _, err := s.Quarantine(netip.MustParsePrefix("10.200.0.6/32"), 0, "r", "a", nil); !errors.Is(err, ErrOverCap) {
		t.Errorf("a host while over the cap: %v", err)
	}
	s.Release(over)
	s.Release(netip.MustParsePrefix("10.3.0.0/24"))
	if v4, _ := s.SpaceInUse(); v4 != 1<<16-256 {
		t.Fatalf("space after releases %d", v4)
	}
	if _, err := s.Quarantine(over, 0, "r", "a", nil); err != nil {
		t.Errorf("room made by a release: %v", err)
	}
	// The sweep gives the space back too.
	s.Sweep(time.Now().Add(48 * time.Hour))
	if v4, v6 := s.SpaceInUse(); v4 != 0 || v6 != 0 {
		t.Errorf("space after the sweep %d, %d", v4, v6)
	}
}

// TestSpaceCapOneBroadRequest: a /8 (the broadest one request may name)
// is 256 times the default cap; it takes force.
func TestSpaceCapOneBroadRequest(t *testing.T) {
	s := NewStore(Options{})
	p, err := ParseClient("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Quarantine(p, 0, "r", "a", nil); !errors.Is(err, ErrOverCap) {
		t.Fatalf("a /8: %v", err)
	}
	if _, err := s.Quarantine(netip.MustParsePrefix("2001:db8::/47"), 0, "r", "a", nil); !errors.Is(err, ErrOverCap) {
		t.Fatalf("an IPv6 /47: %v", err)
	}
	if _, err := s.Quarantine(netip.MustParsePrefix("2001:db8::/48"), 0, "r", "a", nil); err != nil {
		t.Fatalf("an IPv6 /48: %v", err)
	}
	if _, err := s.Quarantine(netip.MustParsePrefix("2001:db9::1/128"), 0, "r", "a", nil); !errors.Is(err, ErrOverCap) {
		t.Fatalf("a /64 past a full IPv6 cap: %v", err)
	}
	// The families are capped apart.
	if _, err := s.Quarantine(netip.MustParsePrefix("192.0.2.0/24"), 0, "r", "a", nil); err != nil {
		t.Fatalf("IPv4 beside a full IPv6 cap: %v", err)
	}
	// A configured cap, and none.
	s = NewStore(Options{MaxSpace4: 256})
	if _, err := s.Quarantine(netip.MustParsePrefix("192.0.2.0/23"), 0, "r", "a", nil); !errors.Is(err, ErrOverCap) {
		t.Errorf("a /23 under a cap of /24: %v", err)
	}
	s = NewStore(Options{MaxSpace4: math.MaxUint64})
	for i := range 4 {
		if _, err := s.Quarantine(netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(10 + i), 0, 0, 0}), 8), 0, "r", "a", nil); err != nil {
			t.Errorf("no cap: %v", err)
		}
	}
}

func TestParseSpaceCap(t *testing.T) {
	for _, tc := range []struct {
		in   string
		v6   bool
		want uint64
		ok   bool
	}{
		{"/16", false, 1 << 16, true}, {"/32", false, 1, true}, {"/0", false, 1 << 32, true},
		{"/48", true, 1 << 16, true}, {"/64", true, 1, true}, {"/0", true, math.MaxUint64, true},
		{"none", false, math.MaxUint64, true}, {"/33", false, 0, false}, {"/65", true, 0, false},
		{"16", false, 0, false}, {"/x", false, 0, false}, {"", true, 0, false},
	} {
		got, err := ParseSpaceCap(tc.in, tc.v6)
		if (err == nil) != tc.ok || tc.ok && got != tc.want {
			t.Errorf("ParseSpaceCap(%q, %v) = %d, %v", tc.in, tc.v6, got, err)
		}
	}
}

// TestIPv6ClientIsItsSlash64: one host's addresses (a /64 has 2^64) are
// one client in the store and in the ladder, so one /64 cannot fill the
// store's 65,536 entries or the ladder's table, and a quarantine of one
// address covers the host's next privacy address.
func TestIPv6ClientIsItsSlash64(t *testing.T) {
	s := NewStore(Options{})
	base := netip.MustParseAddr("2001:db8:1:2::").As16()
	for i := range 70000 {
		a := base
		a[12], a[13], a[14], a[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		if _, err := s.Quarantine(netip.PrefixFrom(netip.AddrFrom16(a), 128), 0, "r", "a", nil); err != nil {
			t.Fatalf("address %d: %v", i, err)
		}
	}
	if n, _ := s.Counts(); n != 1 {
		t.Fatalf("one /64 made %d quarantines", n)
	}
	if e := s.Lookup(netip.MustParseAddr("2001:db8:1:2:ffff::1"), time.Now()); e == nil || e.Client.String() != "2001:db8:1:2::/64" || e.ClientText != "2001:db8:1:2::/64" {
		t.Fatalf("another address of the /64: %+v", e)
	}
	if s.Lookup(netip.MustParseAddr("2001:db8:1:3::1"), time.Now()) != nil {
		t.Fatal("the next /64 matched")
	}
	if _, err := s.Release(netip.MustParsePrefix("2001:db8:1:2::99/128")); err != nil {
		t.Errorf("release by another address of the /64: %v", err)
	}
	// IPv4 stays one address.
	if p := ClientKey(netip.MustParseAddr("::ffff:10.0.0.5")); p.String() != "10.0.0.5/32" {
		t.Errorf("ClientKey(mapped IPv4) = %s", p)
	}

	r, _ := ParseRule([]string{"c2", "3", "10m", "1h"})
	l := NewLadder([]Rule{r}, 0)
	var fired []Escalation
	for i := range 3 {
		a := base
		a[15] = byte(i + 1)
		fired = l.Note(netip.AddrFrom16(a), "c2", "x.test", nil, t0)
	}
	if len(fired) != 1 || fired[0].Key.String() != "2001:db8:1:2::/64" || l.Len() != 1 {
		t.Fatalf("three addresses of one /64: %+v, %d counters", fired, l.Len())
	}
}

// TestLadderFiresOncePerWindow: a client that keeps triggering a rule
// escalates once per the rule's window, and the blocks in between are
// counted as suppressed, not towards the next escalation. Another rule
// and another client are not held back.
func TestLadderFiresOncePerWindow(t *testing.T) {
	r1, _ := ParseRule([]string{"c2", "2", "10m", "1h"})
	r2, _ := ParseRule([]string{"any", "3", "1m", "1h"})
	l := NewLadder([]Rule{r1, r2}, 0)
	a, b := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("10.0.0.6")
	fires := map[string]int{}
	at := t0
	for i := range 600 { // one block a second for 10 minutes
		at = t0.Add(time.Duration(i) * time.Second)
		for _, e := range l.Note(a, "c2", "x.test", nil, at) {
			fires[e.Rule.Name]++
		}
	}
	// Rule 1 (window 10m) fired at 1s only; rule 2 (window 1m) at 2s,
	// then once a minute: its quiet minute ends, three more blocks.
	if fires[r1.Name] != 1 || fires[r2.Name] != 10 {
		t.Fatalf("fires %v", fires)
	}
	if l.Suppressed() == 0 {
		t.Error("no block counted as suppressed")
	}
	// Another client is not held back.
	l.Note(b, "c2", "y.test", nil, at)
	if e := l.Note(b, "c2", "y.test", nil, at); len(e) != 1 || e[0].Rule.Name != r1.Name {
		t.Errorf("another client: %+v", e)
	}
	// After rule 1's window the client escalates again.
	at = t0.Add(10*time.Minute + 2*time.Second)
	l.Note(a, "c2", "x.test", nil, at)
	if e := l.Note(a, "c2", "x.test", nil, at); len(e) == 0 || e[0].Rule.Name != r1.Name {
		t.Errorf("after the window: %+v", e)
	}
	// The sweep keeps quiet counters, then drops them.
	l.Sweep(at.Add(time.Minute))
	if l.Len() == 0 {
		t.Error("the sweep dropped a quiet counter")
	}
	l.Sweep(at.Add(time.Hour))
	if l.Len() != 0 {
		t.Errorf("%d counters after the quiet periods", l.Len())
	}
}

func TestPublicSuffixBlocks(t *testing.T) {
	s := NewStore(Options{})
	for _, n := range []string{"com", "COM.", "co.uk", "duckdns.org", "github.io", "uk", "corp", "internal"} {
		_, err := s.AddBlock(n, 0, "r", "a")
		if !errors.Is(err, ErrPublicSuffix) || !NeedsForce(err) || !strings.Contains(err.Error(), "public suffix") {
			t.Errorf("AddBlock(%q) = %v", n, err)
		}
	}
	for _, n := range []string{"evil.com", "evil.co.uk", "evil.duckdns.org", "evil.test", "a.b.c.corp"} {
		if _, err := s.AddBlock(n, 0, "r", "a"); err != nil {
			t.Errorf("AddBlock(%q) = %v", n, err)
		}
	}
	if _, err := s.AddBlockForce("duckdns.org", 0, "r", "a", true); err != nil {
		t.Errorf("forced: %v", err)
	}
	if s.LookupBlock([]byte("x.duckdns.org"), time.Now()) == nil {
		t.Error("the forced block does not match")
	}
}
