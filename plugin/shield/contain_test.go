package shield

import (
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin/test"
	"github.com/dnsshield/shield/plugin/shield/contain"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// containShield returns a Shield with containment configured and nq
// quarantines and nb emergency blocks held, none of which covers the
// test ResponseWriter's client (10.240.0.1) or www.example.org.
func containShield(tb testing.TB, nq, nb int) *Shield {
	tb.Helper()
	s, err := parse(caddy.NewTestController("dns", "shield {\nblocklist c2 /nonexistent\nescalate c2 3 10m 1h\n}"))
	if err != nil {
		tb.Fatal(err)
	}
	for i := range nq {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 32)
		if _, err := s.warden.store.Quarantine(p, time.Hour, "bench", "test", nil); err != nil {
			tb.Fatal(err)
		}
	}
	if nq > 0 {
		s.warden.store.Quarantine(netip.MustParsePrefix("10.2.0.0/16"), time.Hour, "bench", "test", nil)
	}
	for i := range nb {
		if _, err := s.warden.store.AddBlock("b"+itoa(i)+".test", time.Hour, "bench", "test"); err != nil {
			tb.Fatal(err)
		}
	}
	return s
}

// fixedWriter is test.ResponseWriter with a client address made once, as
// the real server's is (test.ResponseWriter allocates one per call).
type fixedWriter struct {
	test.ResponseWriter
	remote net.Addr
}

func (w *fixedWriter) RemoteAddr() net.Addr { return w.remote }

func newFixedWriter() *fixedWriter {
	return &fixedWriter{remote: &net.UDPAddr{IP: net.ParseIP("10.240.0.1"), Port: 40212}}
}

// TestServeContainPassDoesNotAllocate: for a client that is not
// quarantined and a name that is not blocked, the containment step and
// the ladder's note of a kind no rule counts cost no allocation, with
// and without state held.
func TestServeContainPassDoesNotAllocate(t *testing.T) {
	for _, n := range []int{0, 1000} {
		s := containShield(t, n, n)
		w := newFixedWriter()
		r := new(dns.Msg)
		r.SetQuestion("www.example.org.", dns.TypeA)
		name := []byte("www.example.org")
		if allocs := testing.AllocsPerRun(200, func() {
			q := query{request: &request{w: w, r: r, server: "dns://:53"}, name: name}
			if d := s.decideContainment(&q); d.verb != verbUndecided || d.detail != nil {
				t.Fatal("answered a query it should pass")
			}
			s.noteEscalation(&q, "ads", nil)
		}); allocs != 0 {
			t.Errorf("%d entries: %v allocations per query", n, allocs)
		}
	}
}

func benchServeContain(b *testing.B, n int) {
	s := containShield(b, n, n)
	w := newFixedWriter()
	r := new(dns.Msg)
	r.SetQuestion("a.b.www.example.org.", dns.TypeA)
	name := []byte("a.b.www.example.org")
	b.ReportAllocs()
	for b.Loop() {
		// As decideAndAct does it: a fresh request, the stage, and act on
		// its decision.
		var req request
		req.w, req.r, req.server = w, r, "dns://:53"
		var q query
		q.request, q.name = &req, name
		if s.act(&q, s.decideContainment(&q)) != askNextStage {
			b.Fatal("answered a query it should pass")
		}
	}
}

// The containment step on the query path, for a client and name it does
// not cover: with nothing held, and with 1000 quarantines (plus a /16)
// and 1000 emergency blocks.
func BenchmarkServeContainEmpty(b *testing.B) { benchServeContain(b, 0) }
func BenchmarkServeContain1000(b *testing.B)  { benchServeContain(b, 1000) }

// TestContainStopSavesLastChange: a change made just before shutdown is in
// the state file afterwards. The state writer must not pick the stop
// signal over a pending change and exit with the change unsaved (a select
// with both ready picks either), so the loop is raced many times.
func TestContainStopSavesLastChange(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	for i := range 40 {
		s, err := parse(caddy.NewTestController("dns", "shield {\nblocklist c2 /nonexistent\nstate "+state+"\n}"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.startContain(); err != nil {
			t.Fatal(err)
		}
		client := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 3, 0, byte(i)}), 32)
		if _, err := s.warden.store.Quarantine(client, time.Hour, "last change", "test", nil); err != nil {
			t.Fatal(err)
		}
		s.stopContain()
		st, err := contain.LoadState(state, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Quarantines) != i+1 {
			t.Fatalf("round %d: the state file holds %d quarantines, want %d: the last change was not saved at shutdown", i, len(st.Quarantines), i+1)
		}
	}
}

// TestContainStateWritesCoalesced: a stream of changes rewrites the state
// file at most once a second (the first change of a quiet period at once,
// the rest together up to a second later), every change reaches the file
// without waiting for shutdown, and a change made just before shutdown is
// written at shutdown.
func TestContainStateWritesCoalesced(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	var mu sync.Mutex
	var writes []time.Time
	writeState = func(path string, st contain.State) error {
		mu.Lock()
		writes = append(writes, time.Now())
		mu.Unlock()
		return contain.SaveState(path, st)
	}
	defer func() { writeState = contain.SaveState }()
	written := func() []time.Time {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(writes)
	}
	inFile := func() int {
		st, err := contain.LoadState(state, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return len(st.Quarantines)
	}

	s, err := parse(caddy.NewTestController("dns", "shield {\nblocklist c2 /nonexistent\nstate "+state+"\n}"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.startContain(); err != nil {
		t.Fatal(err)
	}
	// A change every 25 ms for about a second: without coalescing, each
	// would be a write of its own.
	const burst = 40
	for i := range burst {
		client := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 5, 0, byte(i)}), 32)
		if _, err := s.warden.store.Quarantine(client, time.Hour, "burst", "test", nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	// Every change reaches the file without a shutdown.
	for deadline := time.Now().Add(10 * time.Second); inFile() != burst; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the state file holds %d of %d quarantines", inFile(), burst)
		}
	}
	client := netip.MustParsePrefix("10.5.1.1/32")
	if _, err := s.warden.store.Quarantine(client, time.Hour, "last", "test", nil); err != nil {
		t.Fatal(err)
	}
	s.stopContain()
	if n := inFile(); n != burst+1 {
		t.Errorf("after shutdown the state file holds %d quarantines, want %d", n, burst+1)
	}
	got := written()
	// The burst: one write at once and one or two for the rest; then the
	// change before shutdown, written at shutdown.
	if len(got) > 4 {
		t.Errorf("%d writes for %d changes about a second and one more, want at most 4", len(got), burst+1)
	}
	for i := 1; i < len(got)-1; i++ { // the write at shutdown does not wait
		if gap := got[i].Sub(got[i-1]); gap < saveEvery-10*time.Millisecond {
			t.Errorf("writes %d and %d are %s apart, want at least %s", i-1, i, gap, saveEvery)
		}
	}
}

// TestContainGaugesAddUp: the active quarantine and block gauges are the
// sum over the running shield blocks (two server blocks, or the old and
// new configuration while a reload overlaps them), and a configuration
// that stops takes its share out.
func TestContainGaugesAddUp(t *testing.T) {
	q0, b0 := gaugeValue(quarantinesActive), gaugeValue(emergencyBlocksActive)
	gauges := func(q, b float64) bool {
		return gaugeValue(quarantinesActive)-q0 == q && gaugeValue(emergencyBlocksActive)-b0 == b
	}
	waitGauges := func(q, b float64) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !gauges(q, b); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("gauges %v %v, want %v %v", gaugeValue(quarantinesActive)-q0, gaugeValue(emergencyBlocksActive)-b0, q, b)
			}
		}
	}
	start := func() *Shield {
		s, err := parse(caddy.NewTestController("dns", "shield {\nblocklist c2 /nonexistent\nescalate c2 3 10m 1h\n}"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.startContain(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := start(), start()
	a.warden.store.Quarantine(netip.MustParsePrefix("10.4.0.1/32"), time.Hour, "r", "test", nil)
	a.warden.store.AddBlock("a.test", time.Hour, "r", "test")
	waitGauges(1, 1)
	b.warden.store.Quarantine(netip.MustParsePrefix("10.4.0.2/32"), time.Hour, "r", "test", nil)
	waitGauges(2, 1)
	c := start() // a third, empty one must not reset the others' share
	waitGauges(2, 1)
	b.stopContain()
	waitGauges(1, 1)
	a.stopContain()
	c.stopContain()
	waitGauges(0, 0)
}

func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		panic(err)
	}
	return m.GetGauge().GetValue()
}
