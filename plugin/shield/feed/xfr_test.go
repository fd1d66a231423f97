package feed

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dnsshield/shield/plugin/shield/blocklist"
	"github.com/miekg/dns"
)

func rrs(t testing.TB, lines ...string) []dns.RR {
	t.Helper()
	var out []dns.RR
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		out = append(out, rr)
	}
	return out
}

func soaLine(serial string) string {
	return "rpz.test. 300 IN SOA ns.rpz.test. host.rpz.test. " + serial + " 60 30 86400 300"
}

func TestSerialNewer(t *testing.T) {
	for _, c := range []struct {
		a, b uint32
		want bool
	}{
		{2, 1, true}, {1, 2, false}, {1, 1, false},
		{0, 0xffffffff, true}, // wrapped: 0 follows 2^32-1
		{0xffffffff, 0, false},
		{1 << 31, 0, false}, // 2^31 apart: not comparable
		{(1 << 31) - 1, 0, true},
	} {
		if got := serialNewer(c.a, c.b); got != c.want {
			t.Errorf("serialNewer(%d, %d) = %v", c.a, c.b, got)
		}
	}
}

func TestClassifyAndApply(t *testing.T) {
	full := rrs(t, soaLine("1"), "bad.rpz.test. 300 IN CNAME .", "*.wild.rpz.test. 300 IN CNAME .", soaLine("1"))
	kind, soa, err := classifyXFR("rpz.test.", full)
	if err != nil || kind != xfrFull || soa.Serial != 1 {
		t.Fatalf("full: kind %d soa %v err %v", kind, soa, err)
	}
	z, err := fullZone("rpz.test.", full)
	if err != nil || len(z.rrs) != 2 {
		t.Fatalf("fullZone: %v, %d records", err, len(z.rrs))
	}
	// Two difference sequences: 1 -> 2 deletes bad, adds new; 2 -> 3 adds
	// other. Deletion names match whatever their case and TTL.
	diff := rrs(t, soaLine("3"),
		soaLine("1"), "BAD.rpz.test. 60 IN CNAME .", soaLine("2"), "new.rpz.test. 300 IN CNAME .",
		soaLine("2"), soaLine("3"), "other.rpz.test. 300 IN CNAME rpz-drop.",
		soaLine("3"))
	if kind, _, err := classifyXFR("rpz.test.", diff); err != nil || kind != xfrIncremental {
		t.Fatalf("diff: kind %d err %v", kind, err)
	}
	z2, err := applyIncremental(z, diff)
	if err != nil {
		t.Fatal(err)
	}
	if len(z.rrs) != 2 || z2.soa.Serial != 3 || len(z2.rrs) != 3 {
		t.Fatalf("held %d records; new serial %d, %d records", len(z.rrs), z2.soa.Serial, len(z2.rrs))
	}
	var text bytes.Buffer
	if _, err := z2.render(&text); err != nil {
		t.Fatal(err)
	}
	// The rendering is fixed, and reads back to the same zone.
	var again bytes.Buffer
	z2.render(&again)
	if text.String() != again.String() {
		t.Error("two renderings of one zone differ")
	}
	back, err := parseZone("rpz.test.", bytes.NewReader(text.Bytes()))
	if err != nil || back.soa.Serial != 3 || len(back.rrs) != 3 {
		t.Fatalf("parseZone: %v %+v", err, back)
	}
	// Through the RPZ parser: new and other block, wild blocks below.
	b := blocklist.NewBuilder(8)
	st, err := blocklist.Parse(bytes.NewReader(text.Bytes()), blocklist.FormatRPZ, b)
	if err != nil || st.Entries != 3 || st.Invalid != 0 {
		t.Fatalf("parse: %v %+v\n%s", err, st, text.String())
	}
	set := b.Build()
	for name, want := range map[string]bool{"new.": true, "x.wild.": true, "other.": true, "bad.": false} {
		if got := set.Lookup(name).Action != blocklist.ActNone; got != want {
			t.Errorf("%s: hit %v", name, got)
		}
	}

	for name, bad := range map[string][]dns.RR{
		"starts elsewhere":          rrs(t, soaLine("3"), soaLine("2"), soaLine("3"), "n.rpz.test. 300 IN CNAME .", soaLine("3")),
		"deletes a record not held": rrs(t, soaLine("2"), soaLine("1"), "nothere.rpz.test. 300 IN CNAME .", soaLine("2"), soaLine("2")),
		"outside the zone":          rrs(t, soaLine("2"), soaLine("1"), soaLine("2"), "evil.example. 300 IN CNAME .", soaLine("2")),
		"backwards":                 rrs(t, soaLine("1"), soaLine("1"), soaLine("0"), soaLine("1")),
	} {
		if _, err := applyIncremental(z, bad); err == nil {
			t.Errorf("%s: applied", name)
		}
	}
	for name, bad := range map[string][]dns.RR{
		"empty":          nil,
		"no SOA first":   rrs(t, "bad.rpz.test. 300 IN CNAME .", soaLine("1")),
		"cut short":      rrs(t, soaLine("2"), "bad.rpz.test. 300 IN CNAME ."),
		"another zone":   rrs(t, "other.test. 300 IN SOA ns. h. 1 60 30 86400 300"),
		"ends elsewhere": rrs(t, soaLine("2"), "bad.rpz.test. 300 IN CNAME .", soaLine("1")),
	} {
		if _, _, err := classifyXFR("rpz.test.", bad); err == nil {
			t.Errorf("%s: classified", name)
		}
	}
	if _, err := fullZone("rpz.test.", rrs(t, soaLine("1"), "evil.example. 300 IN CNAME .", soaLine("1"))); err == nil {
		t.Error("a full zone with a record outside it was accepted")
	}
}

func TestParseTSIGSecret(t *testing.T) {
	const s = "2Jj1gUm8yQ8tq8JyuoP0y7ZxHYVwJ7GbOdv0Ck8C9vQ="
	for in, ok := range map[string]bool{
		s + "\n": true,
		"key \"k\" {\n\talgorithm hmac-sha256;\n\tsecret \"" + s + "\";\n};\n": true,
		"":                   false,
		"not base64!":        false,
		"c2hvcnQ=":           false, // 5 bytes
		"secret \"" + s:      false,
		"key { secret x; };": false,
	} {
		got, err := ParseTSIGSecret(in)
		if (err == nil) != ok || ok && got != s {
			t.Errorf("%q: %q, %v", in, got, err)
		}
		if err != nil && strings.Contains(err.Error(), "base64!") {
			t.Errorf("the error quotes the secret file: %v", err)
		}
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "k")
	os.WriteFile(p, []byte(s), 0o644)
	if _, err := ReadTSIGSecret(p); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a secret others can read: %v", err)
	}
	os.Chmod(p, 0o600)
	if got, err := ReadTSIGSecret(p); err != nil || got != s {
		t.Errorf("ReadTSIGSecret: %q %v", got, err)
	}
}

func TestNewXFR(t *testing.T) {
	l := blocklist.NewList(blocklist.Config{Name: "x", Format: blocklist.FormatRPZ, MaxInvalid: 0.5, MaxShrink: 1})
	key := &TSIG{Name: "k", Algorithm: "HMAC-SHA256", Secret: "2Jj1gUm8yQ8tq8JyuoP0y7ZxHYVwJ7GbOdv0Ck8C9vQ="}
	f, err := New(l, Options{URL: "axfr://192.0.2.1/RPZ.Example", TSIG: key})
	if err != nil {
		t.Fatal(err)
	}
	if f.Zone() != "rpz.example." || f.xfr.server != "192.0.2.1:53" || f.xfr.alg != dns.HmacSHA256 || f.xfr.keyName != "k." {
		t.Errorf("zone %q server %q alg %q key %q", f.Zone(), f.xfr.server, f.xfr.alg, f.xfr.keyName)
	}
	if f.Notify(netip.MustParseAddr("192.0.2.2"), "rpz.example") || f.Notify(netip.MustParseAddr("192.0.2.1"), "other.example") {
		t.Error("a NOTIFY from another address or for another zone was taken")
	}
	if !f.Notify(netip.MustParseAddr("::ffff:192.0.2.1"), "RPZ.example.") {
		t.Error("the primary's NOTIFY was not taken")
	}
	for _, u := range []string{"axfr:///rpz.example", "axfr://192.0.2.1/", "axfr://192.0.2.1/a/b", "axfr://u:p@192.0.2.1/z", "axfr://192.0.2.1/z?x=1"} {
		if _, err := New(l, Options{URL: u}); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
	if _, err := New(l, Options{URL: "axfr://192.0.2.1/z", TSIG: &TSIG{Name: "k", Algorithm: "hmac-md5", Secret: key.Secret}}); err == nil {
		t.Error("hmac-md5 accepted")
	}
	if _, err := New(l, Options{URL: "axfr://192.0.2.1/z", SHA256: strings.Repeat("0", 64)}); err == nil {
		t.Error("a pinned zone transfer accepted")
	}
}

// xfrServer is a primary in the test: it answers AXFR and IXFR for
// rpz.test from answers, the records of the transfer to send.
type xfrServer struct {
	srv     *dns.Server
	addr    string
	mu      sync.Mutex
	axfr    []dns.RR
	ixfr    []dns.RR // nil: IXFR answered NOTIMP
	queries []uint16
}

func startXFRServer(t *testing.T) *xfrServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	x := &xfrServer{addr: ln.Addr().String()}
	x.srv = &dns.Server{Listener: ln, Handler: dns.HandlerFunc(x.serve)}
	go x.srv.ActivateAndServe()
	t.Cleanup(func() { x.srv.Shutdown() })
	return x
}

func (x *xfrServer) set(axfr, ixfr []dns.RR) {
	x.mu.Lock()
	x.axfr, x.ixfr = axfr, ixfr
	x.mu.Unlock()
}

func (x *xfrServer) serve(w dns.ResponseWriter, r *dns.Msg) {
	x.mu.Lock()
	qt := r.Question[0].Qtype
	x.queries = append(x.queries, qt)
	answer := x.axfr
	if qt == dns.TypeIXFR {
		answer = x.ixfr
	}
	x.mu.Unlock()
	if answer == nil {
		w.WriteMsg(new(dns.Msg).SetRcode(r, dns.RcodeNotImplemented))
		return
	}
	ch := make(chan *dns.Envelope)
	tr := new(dns.Transfer)
	done := make(chan struct{})
	go func() { tr.Out(w, r, ch); close(done) }()
	for i := 0; i < len(answer); i += 2 { // two records a message
		ch <- &dns.Envelope{RR: answer[i:min(i+2, len(answer))]}
	}
	close(ch)
	<-done
	w.Close() // a primary that stops sending closes the connection
}

func (x *xfrServer) lastQuery() uint16 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.queries[len(x.queries)-1]
}

// TestXFRFetch follows a zone through AXFR, IXFR, a NOTIMP to IXFR, a
// serial going backwards and a restart from the disk cache, against a
// primary in the test.
func TestXFRFetch(t *testing.T) {
	x := startXFRServer(t)
	cacheDir := t.TempDir()
	newFetcher := func() *Fetcher {
		l := blocklist.NewList(blocklist.Config{Name: "z", Format: blocklist.FormatRPZ, MaxInvalid: 0.5, MaxShrink: 1})
		f, err := New(l, Options{URL: "axfr://" + x.addr + "/rpz.test", Timeout: 5 * time.Second, CacheDir: cacheDir})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	f := newFetcher()
	hit := func(f *Fetcher, name string) bool { return f.List().Lookup(name).Action != blocklist.ActNone }
	ctx := context.Background()

	v1 := rrs(t, soaLine("10"), "a.rpz.test. 300 IN CNAME .", "b.rpz.test. 300 IN CNAME .", soaLine("10"))
	x.set(v1, nil)
	if r := f.Fetch(ctx); r.Outcome != AXFR || !r.Changed || !hit(f, "a.") {
		t.Fatalf("first fetch: %+v", r)
	}
	if r := f.Fetch(ctx); r.Outcome != NotModified || x.lastQuery() != dns.TypeAXFR {
		t.Errorf("same serial, IXFR not served: %+v, last query %d", r, x.lastQuery())
	}
	x.set(v1, rrs(t, soaLine("11"), soaLine("10"), "a.rpz.test. 300 IN CNAME .", soaLine("11"), "c.rpz.test. 300 IN CNAME .", soaLine("11")))
	if r := f.Fetch(ctx); r.Outcome != IXFR || hit(f, "a.") || !hit(f, "c.") || !hit(f, "b.") {
		t.Fatalf("IXFR: %+v", r)
	}
	// A primary whose serial went back is refused; the zone stays.
	x.set(rrs(t, soaLine("9"), "z.rpz.test. 300 IN CNAME .", soaLine("9")), nil)
	if r := f.Fetch(ctx); r.Outcome != RefusedSerial || !hit(f, "c.") || hit(f, "z.") {
		t.Fatalf("older serial: %+v", r)
	}
	// A difference that does not apply: the fetcher asks for the zone.
	v12 := rrs(t, soaLine("12"), "d.rpz.test. 300 IN CNAME .", soaLine("12"))
	x.set(v12, rrs(t, soaLine("12"), soaLine("3"), soaLine("12"), "d.rpz.test. 300 IN CNAME .", soaLine("12")))
	if r := f.Fetch(ctx); r.Outcome != AXFR || !hit(f, "d.") || hit(f, "c.") || x.lastQuery() != dns.TypeAXFR {
		t.Fatalf("IXFR that does not apply: %+v", r)
	}
	// A truncated AXFR changes nothing.
	x.set(rrs(t, soaLine("13"), "e.rpz.test. 300 IN CNAME ."), nil)
	if r := f.Fetch(ctx); !r.Refused() || hit(f, "e.") || !hit(f, "d.") {
		t.Fatalf("truncated: %+v", r)
	}

	// With a key, an unsigned answer is refused (miekg/dns verifies
	// every message of the transfer) and nothing is loaded.
	signed := blocklist.NewList(blocklist.Config{Name: "signed", Format: blocklist.FormatRPZ, MaxInvalid: 0.5, MaxShrink: 1})
	fs, err := New(signed, Options{URL: "axfr://" + x.addr + "/rpz.test", Timeout: 5 * time.Second,
		TSIG: &TSIG{Name: "k", Algorithm: "hmac-sha256", Secret: "2Jj1gUm8yQ8tq8JyuoP0y7ZxHYVwJ7GbOdv0Ck8C9vQ="}})
	if err != nil {
		t.Fatal(err)
	}
	if r := fs.Fetch(ctx); r.Outcome != RefusedTSIG || signed.Snapshot() != nil {
		t.Errorf("unsigned answer to a signed transfer: %+v", r)
	}

	// A restart: the disk copy is in force at once, and the next transfer
	// is an IXFR from its serial.
	f2 := newFetcher()
	f2.fetchMu.Lock()
	r, ok := f2.loadCache()
	f2.fetchMu.Unlock()
	if !ok || r.Outcome != CacheLoaded || !hit(f2, "d.") || f2.xfr.held == nil || f2.xfr.held.soa.Serial != 12 {
		t.Fatalf("cache: %+v ok %v", r, ok)
	}
	x.set(v12, rrs(t, soaLine("14"), soaLine("12"), soaLine("14"), "f.rpz.test. 300 IN CNAME .", soaLine("14")))
	if r := f2.Fetch(ctx); r.Outcome != IXFR || !hit(f2, "f.") || !hit(f2, "d.") {
		t.Fatalf("IXFR after a restart: %+v", r)
	}
	x.srv.Shutdown()
	if r := f2.Fetch(ctx); r.Outcome != ErrorNetwork || !hit(f2, "f.") {
		t.Fatalf("primary down: %+v", r)
	}
}

func TestXFRWait(t *testing.T) {
	l := blocklist.NewList(blocklist.Config{Name: "w", Format: blocklist.FormatRPZ})
	f, err := New(l, Options{URL: "axfr://127.0.0.1/rpz.test"})
	if err != nil {
		t.Fatal(err)
	}
	within := func(d, want time.Duration) bool { return d >= want*9/10 && d <= want*11/10 }
	if d := f.xfrWait(1); !within(d, retryBase) {
		t.Errorf("no zone, one failure: %s", d)
	}
	f.xfr.held = &zone{soa: rrs(t, "rpz.test. 300 IN SOA ns. h. 1 7200 5 86400 300")[0].(*dns.SOA)}
	if d := f.xfrWait(0); !within(d, 2*time.Hour) {
		t.Errorf("refresh: %s", d)
	}
	if d := f.xfrWait(2); !within(d, minSOATimer) {
		t.Errorf("retry 5s, bounded: %s", d)
	}
	f.xfr.held.soa.Refresh = 1 << 30
	if d := f.xfrWait(0); !within(d, maxSOATimer) {
		t.Errorf("refresh of years, bounded: %s", d)
	}
}
