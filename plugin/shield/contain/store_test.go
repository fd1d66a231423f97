package contain

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func clock(t *time.Time) func() time.Time { return func() time.Time { return *t } }

func TestParseClient(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"10.0.0.5", "10.0.0.5/32", ""},
		{" 10.0.0.5 ", "10.0.0.5/32", ""},
		{"::ffff:10.0.0.5", "10.0.0.5/32", ""},
		{"2001:db8::1", "2001:db8::/64", ""}, // an IPv6 client is its /64
		{"2001:db8::1/100", "2001:db8::/64", ""},
		{"2001:db8:0:0:1::/80", "2001:db8::/64", ""},
		{"2001:db8::/48", "2001:db8::/48", ""},
		{"10.1.2.3/24", "10.1.2.0/24", ""},
		{"::ffff:10.1.2.3/120", "10.1.2.0/24", ""},
		{"10.0.0.0/8", "10.0.0.0/8", ""},
		{"10.0.0.0/7", "", "broader"},
		{"0.0.0.0/0", "", "broader"},
		{"2001:db8::/31", "", "broader"},
		{"10.0.0.0/33", "", "not an address"},
		{"10.0.0.256", "", "not an address"},
		{"fe80::1%eth0", "", "not an address"},
		{"example.com", "", "not an address"},
		{"", "", "not an address"},
		{"::ffff:0:0/95", "", "IPv4-mapped"},
	}
	for _, tc := range tests {
		p, err := ParseClient(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrInvalid) {
				t.Errorf("ParseClient(%q) = %v, %v; want error with %q", tc.in, p, err, tc.err)
			}
			continue
		}
		if err != nil || p.String() != tc.want {
			t.Errorf("ParseClient(%q) = %v, %v; want %s", tc.in, p, err, tc.want)
		}
	}
}

func TestQuarantineLookup(t *testing.T) {
	now := t0
	// A /16 and a host are over the default cap of a /16 in all.
	s := NewStore(Options{Now: clock(&now), MaxSpace4: 1 << 20})
	if s.Active() || s.Lookup(netip.MustParseAddr("10.0.0.5"), now) != nil {
		t.Fatal("empty store matched")
	}
	host := netip.MustParsePrefix("10.0.0.5/32")
	net := netip.MustParsePrefix("10.9.0.0/16")
	v6 := netip.MustParsePrefix("2001:db8::/48")
	if _, err := s.Quarantine(host, 0, "beacon", "api:ops", []string{"evil.test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Quarantine(net, 2*time.Hour, "worm", "api:ops", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Quarantine(v6, time.Minute, "v6", "api:ops", nil); err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]string{
		"10.0.0.5": "10.0.0.5/32", "10.0.0.6": "", "10.9.200.1": "10.9.0.0/16", "10.10.0.1": "",
		"2001:db8:0:1::9": "2001:db8::/48", "2001:db9::1": "", "::1": "",
	} {
		e := s.Lookup(netip.MustParseAddr(addr), now)
		got := ""
		if e != nil {
			got = e.Client.String()
		}
		if got != want {
			t.Errorf("Lookup(%s) = %q, want %q", addr, got, want)
		}
	}
	e := s.Lookup(netip.MustParseAddr("10.0.0.5"), now)
	if e.Expires != t0.Add(DefaultTTL) || e.Actor != "api:ops" || e.EDEText != "client 10.0.0.5 quarantined: beacon" {
		t.Errorf("entry %+v", e)
	}
	// Expiry is exact on the lookup, before any sweep.
	if s.Lookup(netip.MustParseAddr("2001:db8::1"), t0.Add(time.Minute)) != nil {
		t.Error("expired quarantine still matched")
	}
	// A host inside a quarantined network: the most specific wins.
	s.Quarantine(netip.MustParsePrefix("10.9.1.1/32"), time.Minute, "inner", "x", nil)
	if e := s.Lookup(netip.MustParseAddr("10.9.1.1"), now); e == nil || e.Reason != "inner" {
		t.Errorf("most specific: %+v", e)
	}
	// Sweep removes what expired, and only that.
	now = t0.Add(90 * time.Minute)
	qs, bs := s.Sweep(now)
	if len(qs) != 3 || len(bs) != 0 {
		t.Errorf("sweep removed %d quarantines, %d blocks; want 3, 0", len(qs), len(bs))
	}
	if n, _ := s.Counts(); n != 1 {
		t.Errorf("%d left, want 1", n)
	}
	if _, err := s.Release(net); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Release(net); !errors.Is(err, ErrNotFound) {
		t.Errorf("second release: %v", err)
	}
	if s.Active() {
		t.Error("store active after everything was removed")
	}
}

func TestTTLBounds(t *testing.T) {
	s := NewStore(Options{DefaultTTL: time.Hour, MaxTTL: 24 * time.Hour, MaxEntries: 2})
	p := netip.MustParsePrefix("192.0.2.1/32")
	for _, d := range []time.Duration{-time.Second, time.Millisecond, 25 * time.Hour, 1 << 62} {
		if _, err := s.Quarantine(p, d, "r", "a", nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("ttl %s: %v, want ErrInvalid", d, err)
		}
		if _, err := s.AddBlock("evil.test", d*10, "r", "a"); d < 0 && !errors.Is(err, ErrInvalid) {
			t.Errorf("block ttl %s: %v", d, err)
		}
	}
	s.Quarantine(netip.MustParsePrefix("192.0.2.1/32"), 0, "r", "a", nil)
	s.Quarantine(netip.MustParsePrefix("192.0.2.2/32"), 0, "r", "a", nil)
	if _, err := s.Quarantine(netip.MustParsePrefix("192.0.2.3/32"), 0, "r", "a", nil); !errors.Is(err, ErrFull) {
		t.Errorf("third quarantine over a bound of 2: %v", err)
	}
	// Replacing an existing one is not a new entry.
	if _, err := s.Quarantine(netip.MustParsePrefix("192.0.2.2/32"), time.Minute, "r2", "a", nil); err != nil {
		t.Errorf("replace: %v", err)
	}
}

func TestEmergencyBlocks(t *testing.T) {
	now := t0
	s := NewStore(Options{Now: clock(&now)})
	if _, err := s.AddBlock("Evil.Example.", time.Hour, "campaign", "api:ops"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "bad name", "a..b", "10.0.0.1", strings.Repeat("a", 64) + ".test"} {
		if _, err := s.AddBlock(bad, 0, "r", "a"); !errors.Is(err, ErrInvalid) {
			t.Errorf("AddBlock(%q): %v", bad, err)
		}
	}
	for name, want := range map[string]bool{
		"evil.example": true, "a.b.evil.example": true, "notevil.example": false, "example": false, "evil.example.org": false,
	} {
		if got := s.LookupBlock([]byte(name), now) != nil; got != want {
			t.Errorf("LookupBlock(%s) = %v", name, got)
		}
	}
	if s.LookupBlock([]byte("evil.example"), t0.Add(time.Hour)) != nil {
		t.Error("expired block matched")
	}
	if _, err := s.RemoveBlock("EVIL.example"); err != nil {
		t.Fatal(err)
	}
	if s.LookupBlock([]byte("evil.example"), now) != nil {
		t.Error("removed block matched")
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	s := NewStore(Options{})
	s.Quarantine(netip.MustParsePrefix("10.0.0.0/24"), 0, "r", "a", nil)
	s.AddBlock("evil.test", 0, "r", "a")
	addr := netip.MustParseAddr("10.0.0.9")
	name := []byte("a.b.c.evil.test")
	now := time.Now()
	if n := testing.AllocsPerRun(100, func() {
		s.Lookup(addr, now)
		s.LookupBlock(name, now)
	}); n != 0 {
		t.Errorf("%v allocations per lookup", n)
	}
}

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	now := t0
	s := NewStore(Options{Now: clock(&now)})
	s.Quarantine(netip.MustParsePrefix("10.0.0.5/32"), 2*time.Hour, "beacon", "api:ops", []string{"evil.test (malware)"})
	s.Quarantine(netip.MustParsePrefix("10.0.1.0/24"), 10*time.Minute, "short", "api:ops", nil)
	s.AddBlock("evil.example", 3*time.Hour, "campaign", "api:ops")
	if err := SaveState(path, s.Snapshot(now)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v, %v", fi.Mode(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	// Twenty minutes later the short quarantine has expired.
	later := t0.Add(20 * time.Minute)
	st, err := LoadState(path, later)
	if err != nil {
		t.Fatal(err)
	}
	s2 := NewStore(Options{})
	n, skipped := s2.Restore(st, later)
	if n != 2 || skipped != 1 {
		t.Errorf("restored %d, skipped %d; want 2, 1", n, skipped)
	}
	e := s2.Lookup(netip.MustParseAddr("10.0.0.5"), later)
	if e == nil || e.Reason != "beacon" || !e.Expires.Equal(t0.Add(2*time.Hour)) || e.Actor != "api:ops" || len(e.Evidence) != 1 {
		t.Errorf("restored %+v", e)
	}
	if s2.LookupBlock([]byte("x.evil.example"), later) == nil {
		t.Error("block not restored")
	}
}

func TestStateMissingAndCorrupt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	st, err := LoadState(path, t0)
	if err != nil || len(st.Quarantines) != 0 {
		t.Fatalf("missing file: %+v, %v", st, err)
	}
	for i, bad := range []string{"{not json", `{"version":2,"quarantines":[],"blocks":[]}`, `{"version":1} {}`, `{"version":1,"evil":1}`, ""} {
		os.WriteFile(path, []byte(bad), 0o600)
		at := t0.Add(time.Duration(i) * time.Second)
		_, err := LoadState(path, at)
		var ce *CorruptError
		if !errors.As(err, &ce) {
			t.Fatalf("%q: error %v, want CorruptError", bad, err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%q: corrupt file left in place", bad)
		}
		data, err := os.ReadFile(ce.Aside)
		if err != nil || string(data) != bad || !strings.HasPrefix(ce.Aside, path+".corrupt-") {
			t.Errorf("%q: set aside as %q: %q, %v", bad, ce.Aside, data, err)
		}
	}
	// Entries that are invalid are skipped, the rest restored.
	st, err = DecodeState([]byte(`{"version":1,"saved":"2026-03-01T12:00:00Z","quarantines":[
		{"client":"10.0.0.0/4","actor":"a","start":"2026-03-01T12:00:00Z","expires":"2026-03-01T13:00:00Z"},
		{"client":"10.0.0.7/32","actor":"a","start":"2026-03-01T12:00:00Z","expires":"2099-03-01T13:00:00Z"}],
		"blocks":[{"name":"bad name","actor":"a","start":"2026-03-01T12:00:00Z","expires":"2026-03-01T13:00:00Z"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(Options{})
	if n, skipped := s.Restore(st, t0); n != 1 || skipped != 2 {
		t.Errorf("restored %d, skipped %d; want 1, 2", n, skipped)
	}
	// An expiry beyond the maximum is cut to it.
	if q := s.Quarantines(); len(q) != 1 || !q[0].Expires.Equal(t0.Add(DefaultMaxTTL)) {
		t.Errorf("restored %+v", q)
	}
}

func BenchmarkLookupEmpty(b *testing.B) {
	s := NewStore(Options{})
	addr := netip.MustParseAddr("10.0.0.9")
	name := []byte("www.example.com")
	now := time.Now()
	for b.Loop() {
		if s.Active() {
			s.Lookup(addr, now)
			s.LookupBlock(name, now)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	s := NewStore(Options{MaxSpace4: 1 << 20})
	for i := range 1000 {
		s.Quarantine(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 32), 0, "r", "a", nil)
	}
	s.Quarantine(netip.MustParsePrefix("10.2.0.0/16"), 0, "r", "a", nil)
	s.AddBlock("evil.test", 0, "r", "a")
	addr := netip.MustParseAddr("10.0.0.9")
	name := []byte("www.example.com")
	now := time.Now()
	for b.Loop() {
		s.Lookup(addr, now)
		s.LookupBlock(name, now)
	}
}

// TestSaveStateNeverWritesWhatLoadRefuses: a state file over the size
// LoadState accepts would be set aside as corrupt at the next start,
// losing every quarantine. SaveState drops the evidence (which
// enforcement does not need) to fit, and if that is not enough it fails
// and keeps the previous file.
func TestSaveStateNeverWritesWhatLoadRefuses(t *testing.T) {
	defer func(n int) { maxStateFile = n }(maxStateFile)
	maxStateFile = 16 << 10
	path := filepath.Join(t.TempDir(), "state.json")
	now := t0
	s := NewStore(Options{Now: clock(&now)})
	ev := make([]string, maxEvidence)
	for i := range ev {
		ev[i] = strings.Repeat("x", 200) + ".test. (c2)"
	}
	for i := range 20 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 5, 0, byte(i)}), 32)
		if _, err := s.Quarantine(p, time.Hour, "escalated", "policy:x", ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := SaveState(path, s.Snapshot(now)); err != nil {
		t.Fatalf("save: %v", err)
	}
	st, err := LoadState(path, now)
	if err != nil {
		t.Fatalf("the file SaveState wrote does not load: %v", err)
	}
	if len(st.Quarantines) != 20 {
		t.Fatalf("%d quarantines loaded, want 20", len(st.Quarantines))
	}
	// Too big even without evidence: refused, the last good file stays.
	for i := range 200 {
		if _, err := s.AddBlock(fmt.Sprintf("b%d.%s.test", i, strings.Repeat("y", 50)), time.Hour, strings.Repeat("r", 100), "api:ops"); err != nil {
			t.Fatal(err)
		}
	}
	if err := SaveState(path, s.Snapshot(now)); err == nil {
		t.Fatal("an oversized state was written")
	}
	if st, err := LoadState(path, now); err != nil || len(st.Quarantines) != 20 || len(st.Blocks) != 0 {
		t.Fatalf("the previous file was not kept: %d quarantines, %d blocks, %v", len(st.Quarantines), len(st.Blocks), err)
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".state.json.tmp-*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
}

// TestFillIsNotQuadratic: escalations add quarantines on the query path,
// and spoofed sources can drive the table to its bound. A change must not
// copy everything held (filling 65536 entries that way is some 2*10^9 map
// writes, minutes of CPU under the store's lock). The measure is the
// number of entries copied into new snapshots, not time.
func TestFillIsNotQuadratic(t *testing.T) {
	s := NewStore(Options{})
	const n = DefaultMaxEntries
	for i := range n {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 7, byte(i >> 8), byte(i)}), 32)
		if _, err := s.Quarantine(p, time.Hour, "r", "policy:x", nil); err != nil {
			t.Fatal(err)
		}
		// Copying everything on every change is i*i/2 entries (2.1e9 at
		// the bound); a shard per change is about i*i/2/quarShards.
		if c := s.copied; c > (i+1)*(i+1)/64+1024 {
			t.Fatalf("adding %d quarantines copied %d entries into snapshots", i+1, c)
		}
	}
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, 7, byte(i >> 8), byte(i)})
		if e := s.Lookup(a, time.Now()); e == nil || e.Client.Addr() != a {
			t.Fatalf("Lookup(%s) = %v", a, e)
		}
	}
	if s.Lookup(netip.MustParseAddr("10.8.0.1"), time.Now()) != nil {
		t.Fatal("an address outside every quarantine matched")
	}
}

// TestSnapshotMatchesModel: after random adds, replacements, releases,
// sweeps and restores of hosts and networks of both families, Lookup
// agrees with a plain scan of the quarantines held.
func TestSnapshotMatchesModel(t *testing.T) {
	now := t0
	s := NewStore(Options{Now: clock(&now), MaxTTL: 24 * time.Hour, MaxSpace4: math.MaxUint64, MaxSpace6: math.MaxUint64})
	rng := rand.New(rand.NewPCG(1, 2))
	prefix := func() netip.Prefix {
		if rng.IntN(2) == 0 {
			a := netip.AddrFrom4([4]byte{10, byte(rng.IntN(2)), byte(rng.IntN(4)), byte(rng.IntN(8))})
			return netip.PrefixFrom(a, []int{8, 16, 24, 30, 32}[rng.IntN(5)]).Masked()
		}
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(rng.IntN(8))})
		return netip.PrefixFrom(a, []int{32, 64, 127, 128}[rng.IntN(4)]).Masked()
	}
	addrs := func() []netip.Addr {
		var out []netip.Addr
		for i := range 8 {
			out = append(out, netip.AddrFrom4([4]byte{10, byte(i % 2), byte(i % 4), byte(i)}),
				netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)}))
		}
		return append(out, netip.MustParseAddr("11.0.0.1"), netip.MustParseAddr("2001:db9::1"))
	}()
	for step := range 3000 {
		switch r := rng.IntN(10); {
		case r < 5:
			s.Quarantine(prefix(), time.Duration(1+rng.IntN(120))*time.Minute, "r", "a", nil)
		case r < 8:
			s.Release(prefix())
		case r < 9:
			now = now.Add(time.Duration(rng.IntN(30)) * time.Minute)
			s.Sweep(now)
		default:
			other := NewStore(Options{Now: clock(&now)})
			other.Quarantine(prefix(), time.Hour, "restored", "a", nil)
			s.Restore(other.Snapshot(now), now)
		}
		held := s.Quarantines()
		for _, a := range addrs {
			var want *Quarantine
			for i := range held {
				q := &held[i]
				if q.Client.Contains(a) && now.Before(q.Expires) && (want == nil || q.Client.Bits() > want.Client.Bits()) {
					want = q
				}
			}
			got := s.Lookup(a, now)
			if (got == nil) != (want == nil) || got != nil && got.Client != want.Client {
				t.Fatalf("step %d: Lookup(%s) = %v, want %v", step, a, got, want)
			}
		}
		if n, _ := s.Counts(); s.HasQuarantines() != (n > 0) {
			t.Fatalf("step %d: HasQuarantines %v with %d held", step, s.HasQuarantines(), n)
		}
	}
}
