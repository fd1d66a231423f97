package shield

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/dnsshield/shield/plugin/shield/audit"
	"github.com/dnsshield/shield/plugin/shield/blocklist"
	"github.com/miekg/dns"
)

// memSink keeps the audit lines written to it.
type memSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (m *memSink) Write(p []byte) error { m.mu.Lock(); m.buf.Write(p); m.mu.Unlock(); return nil }
func (m *memSink) Close() error         { return nil }
func (m *memSink) String() string       { m.mu.Lock(); defer m.mu.Unlock(); return m.buf.String() }

// answerShield returns a Shield with a blocklist and an iplist of the
// given lines and the answer stage on, in front of a handler that answers
// with upstream(question name).
func answerShield(tb testing.TB, names, ips []string, upstream func(r *dns.Msg) *dns.Msg) *Shield {
	tb.Helper()
	dir := tb.TempDir()
	s := newShield()
	s.auditPath = "off"
	load := func(cfg blocklist.Config, lines []string) *blocklist.List {
		cfg.Path = filepath.Join(dir, cfg.Name)
		cfg.MaxShrink, cfg.MaxInvalid = 0.5, 0.5
		if err := os.WriteFile(cfg.Path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			tb.Fatal(err)
		}
		l := blocklist.NewList(cfg)
		if _, err := l.Load(); err != nil {
			tb.Fatal(err)
		}
		s.lists = append(s.lists, cfg)
		return l
	}
	if names != nil {
		s.blocks = append(s.blocks, load(blocklist.Config{Name: "names"}, names))
	}
	if ips != nil {
		s.ips = append(s.ips, load(blocklist.Config{Name: "c2ips", IP: true}, ips))
	}
	s.finishAnswer()
	s.Next = plugin.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		w.WriteMsg(upstream(r))
		return dns.RcodeSuccess, nil
	})
	return s
}

func rr(tb testing.TB, s string) dns.RR {
	tb.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// fixedAnswer answers every query with the records given.
func fixedAnswer(tb testing.TB, records ...string) func(*dns.Msg) *dns.Msg {
	var rrs []dns.RR
	for _, s := range records {
		rrs = append(rrs, rr(tb, s))
	}
	return func(r *dns.Msg) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = rrs
		return m
	}
}

func ask(tb testing.TB, s *Shield, name string, qtype uint16) *dns.Msg {
	tb.Helper()
	r := new(dns.Msg)
	r.SetQuestion(name, qtype)
	r.SetEdns0(1232, false)
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	if rc, err := s.ServeDNS(context.Background(), rec, r); err != nil || rc != dns.RcodeSuccess {
		tb.Fatalf("%s: ServeDNS = %d, %v", name, rc, err)
	}
	if rec.Msg == nil {
		tb.Fatalf("%s: no reply", name)
	}
	return rec.Msg
}

func edeText(m *dns.Msg) string {
	if o := m.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if ede, ok := e.(*dns.EDNS0_EDE); ok {
				return ede.ExtraText
			}
		}
	}
	return ""
}

func TestAnswerStage(t *testing.T) {
	s := answerShield(t, []string{"tracker.test", "evil.test"}, []string{"203.0.113.0/24", "2001:db8:bad::1"}, nil)
	sink := &memSink{}
	s.audit = audit.NewWriter(sink, audit.Options{})
	for _, c := range []struct {
		name    string
		answer  []string
		rcode   int
		ede     string
		record  string // in the audit line
		allowed bool
	}{
		{name: "clean", answer: []string{"clean.example. 60 IN A 192.0.2.1"}, rcode: dns.RcodeSuccess},
		{name: "cloaked", answer: []string{"cloaked.example. 60 IN CNAME a.cdn.example.", "a.cdn.example. 60 IN CNAME x.tracker.test.", "x.tracker.test. 60 IN A 192.0.2.1"},
			rcode: dns.RcodeNameError, ede: "blocked by list names: CNAME target x.tracker.test.", record: `"answer_match":"CNAME x.tracker.test."`},
		{name: "dname", answer: []string{"dname.example. 60 IN DNAME evil.test."}, rcode: dns.RcodeNameError, ede: "DNAME target evil.test."},
		{name: "https", answer: []string{"svc.example. 60 IN HTTPS 1 pool.evil.test. alpn=h2"}, rcode: dns.RcodeNameError, ede: "HTTPS target pool.evil.test."},
		{name: "c2", answer: []string{"c2.example. 60 IN A 192.0.2.1", "c2.example. 60 IN A 203.0.113.9"},
			rcode: dns.RcodeNameError, ede: "blocked by list c2ips: answer address 203.0.113.9", record: `"rule":{"name":"203.0.113.0/24","ruleset":"c2ips"}`},
		{name: "c2v6", answer: []string{"c2v6.example. 60 IN AAAA 2001:db8:bad::1"}, rcode: dns.RcodeNameError, ede: "answer address 2001:db8:bad::1"},
		{name: "private", answer: []string{"private.example. 60 IN A 10.0.0.1"}, rcode: dns.RcodeSuccess}, // rebind_protect is off
	} {
		s.Next = plugin.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
			w.WriteMsg(fixedAnswer(t, c.answer...)(r))
			return dns.RcodeSuccess, nil
		})
		m := ask(t, s, c.name+".example.", dns.TypeA)
		if m.Rcode != c.rcode {
			t.Errorf("%s: rcode %s, want %s", c.name, dns.RcodeToString[m.Rcode], dns.RcodeToString[c.rcode])
		}
		if c.rcode == dns.RcodeNameError {
			if len(m.Answer) != 0 || len(m.Ns) != 1 || m.Ns[0].Header().Name != c.name+".example." {
				t.Errorf("%s: block reply %v", c.name, m)
			}
			if got := edeText(m); !strings.Contains(got, c.ede) {
				t.Errorf("%s: EDE %q, want %q", c.name, got, c.ede)
			}
		} else if len(m.Answer) != len(c.answer) {
			t.Errorf("%s: answer changed: %v", c.name, m.Answer)
		}
	}
	s.audit.Close()
	got := sink.String()
	for _, want := range []string{`"answer_match":"CNAME x.tracker.test."`, `"rule":{"name":"tracker.test","ruleset":"names"}`,
		`"rule":{"name":"203.0.113.0/24","ruleset":"c2ips"}`, `"answer_match":"A 203.0.113.9"`, `"answer_match":"HTTPS pool.evil.test."`} {
		if !strings.Contains(got, want) {
			t.Errorf("audit lacks %s:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "\n"); n != 5 {
		t.Errorf("%d audit records, want 5:\n%s", n, got)
	}
}

// TestAnswerAllowPrecedence: an allowlisted question name passes whatever
// its answer holds; an allowlisted chain element is not blocked but does
// not unblock the rest of the chain.
func TestAnswerAllowPrecedence(t *testing.T) {
	s := answerShield(t, []string{"tracker.test"}, []string{"203.0.113.0/24"}, nil)
	p := filepath.Join(t.TempDir(), "allow")
	os.WriteFile(p, []byte("trusted.example\ncdn.tracker.test\n"), 0o644)
	al := blocklist.NewList(blocklist.Config{Name: "allow", Path: p, Allow: true, MaxShrink: 0.5, MaxInvalid: 0.5})
	if _, err := al.Load(); err != nil {
		t.Fatal(err)
	}
	s.allows = []*blocklist.List{al}
	s.Next = plugin.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		w.WriteMsg(fixedAnswer(t, r.Question[0].Name+" 60 IN CNAME cdn.tracker.test.", "cdn.tracker.test. 60 IN CNAME x.tracker.test.", "x.tracker.test. 60 IN A 203.0.113.1")(r))
		return dns.RcodeSuccess, nil
	})
	if m := ask(t, s, "www.trusted.example.", dns.TypeA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 3 {
		t.Errorf("allowlisted question name was blocked: %v", m)
	}
	m := ask(t, s, "other.example.", dns.TypeA)
	if got := edeText(m); m.Rcode != dns.RcodeNameError || !strings.Contains(got, "x.tracker.test.") {
		t.Errorf("allowlisted chain element unblocked the chain: %s %q", dns.RcodeToString[m.Rcode], got)
	}
}

func TestAnswerRebind(t *testing.T) {
	s := answerShield(t, nil, nil, nil)
	if s.answer != nil {
		t.Fatal("answer stage on with no blocklist, iplist or rebind_protect")
	}
	s.answer = &answerStage{rebind: true, rebindAllow: []string{"corp.internal", "lan"}}
	s.finishAnswer()
	for _, c := range []struct {
		name, addr string
		blocked    bool
	}{
		{"public.example.", "10.1.2.3", true},
		{"public.example.", "172.16.0.1", true},
		{"public.example.", "192.168.1.1", true},
		{"public.example.", "100.64.0.1", true},
		{"public.example.", "127.0.0.1", true},
		{"public.example.", "169.254.169.254", true},
		{"public.example.", "0.0.0.0", true},
		{"public.example.", "fd00::1", true},
		{"public.example.", "::1", true},
		{"public.example.", "fe80::1", true},
		{"public.example.", "::ffff:10.0.0.1", true},
		{"public.example.", "192.0.2.1", false},
		{"public.example.", "2001:db8::1", false},
		{"host.corp.internal.", "10.1.2.3", false},
		{"corp.internal.", "10.1.2.3", false},
		{"nas.lan.", "192.168.1.1", false},
		{"notcorp.internal.", "10.1.2.3", true},
	} {
		typ := "A"
		if strings.Contains(c.addr, ":") {
			typ = "AAAA"
		}
		s.Next = plugin.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
			w.WriteMsg(fixedAnswer(t, fmt.Sprintf("%s 60 IN %s %s", c.name, typ, c.addr))(r))
			return dns.RcodeSuccess, nil
		})
		m := ask(t, s, c.name, dns.TypeA)
		if blocked := m.Rcode == dns.RcodeNameError; blocked != c.blocked {
			t.Errorf("%s -> %s: blocked %v, want %v", c.name, c.addr, blocked, c.blocked)
		}
		if c.blocked && !strings.Contains(edeText(m), "rebind") {
			t.Errorf("%s -> %s: EDE %q", c.name, c.addr, edeText(m))
		}
	}
}

// TestAnswerHostile: long chains, huge address sets and loops cost a
// bounded number of checks and get a clear answer.
func TestAnswerHostile(t *testing.T) {
	s := answerShield(t, []string{"tracker.test"}, []string{"203.0.113.0/24"}, nil)
	chain := func(n int, last string) []string {
		var rrs []string
		for i := 0; i < n; i++ {
			rrs = append(rrs, fmt.Sprintf("c%d.example. 60 IN CNAME c%d.example.", i, i+1))
		}
		return append(rrs, fmt.Sprintf("c%d.example. 60 IN A %s", n, last))
	}
	addrs := func(n int, last string) []string {
		var rrs []string
		for i := 0; i < n; i++ {
			rrs = append(rrs, fmt.Sprintf("big.example. 60 IN A 198.51.%d.%d", i/256, i%256))
		}
		return append(rrs, "big.example. 60 IN A "+last)
	}
	for _, c := range []struct {
		name   string
		answer []string
		rcode  int
		ede    string
	}{
		{"chain63", chain(63, "192.0.2.1"), dns.RcodeSuccess, ""},
		{"chain63-listed", chain(63, "203.0.113.5"), dns.RcodeNameError, "answer address 203.0.113.5"},
		{"chain100", chain(100, "192.0.2.1"), dns.RcodeNameError, "answer not checked: more than 64 names"},
		{"addrs255", addrs(255, "192.0.2.1"), dns.RcodeSuccess, ""},
		{"addrs1000", addrs(999, "192.0.2.1"), dns.RcodeNameError, "answer not checked: more than 256 addresses"},
		{"loop", []string{"a.example. 60 IN CNAME b.example.", "b.example. 60 IN CNAME a.example."}, dns.RcodeSuccess, ""},
		{"loop-listed", []string{"a.example. 60 IN CNAME x.tracker.test.", "x.tracker.test. 60 IN CNAME a.example."}, dns.RcodeNameError, "x.tracker.test."},
	} {
		s.Next = plugin.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
			w.WriteMsg(fixedAnswer(t, c.answer...)(r))
			return dns.RcodeSuccess, nil
		})
		m := ask(t, s, "q.example.", dns.TypeA)
		if m.Rcode != c.rcode || !strings.Contains(edeText(m), c.ede) {
			t.Errorf("%s: %s %q, want %s %q", c.name, dns.RcodeToString[m.Rcode], edeText(m), dns.RcodeToString[c.rcode], c.ede)
		}
	}
}

func TestAnswerMonitorRecordsOnly(t *testing.T) {
	s := answerShield(t, []string{"tracker.test"}, nil, fixedAnswer(t, "m.example. 60 IN CNAME x.tracker.test.", "x.tracker.test. 60 IN A 192.0.2.1"))
	s.monitor = true
	sink := &memSink{}
	s.audit = audit.NewWriter(sink, audit.Options{})
	m := ask(t, s, "m.example.", dns.TypeA)
	s.audit.Close()
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 2 {
		t.Errorf("monitor mode changed the answer: %v", m)
	}
	if !strings.Contains(sink.String(), `"action":"monitor"`) || !strings.Contains(sink.String(), "CNAME x.tracker.test.") {
		t.Errorf("monitor record: %s", sink.String())
	}
}

// answerWriterOf is a writer with a client address, for rpz-client-ip.
type addrWriter struct {
	test.ResponseWriter
	addr net.Addr
}

func (w *addrWriter) RemoteAddr() net.Addr { return w.addr }

func TestRPZClientIPAndLocalData(t *testing.T) {
	zone := `$ORIGIN rpz.test.
32.9.0.0.127.rpz-client-ip CNAME .
32.8.0.0.127.rpz-client-ip CNAME rpz-passthru.
portal.example A 192.0.2.80
garden.example CNAME walled.garden.test.
cloaked.example CNAME rpz-passthru.
32.5.113.0.203.rpz-ip CNAME *.
`
	p := filepath.Join(t.TempDir(), "zone")
	os.WriteFile(p, []byte(zone), 0o644)
	cfg := blocklist.Config{Name: "rpz", Path: p, Format: blocklist.FormatRPZ, MaxShrink: 0.5, MaxInvalid: 0.5}
	l := blocklist.NewList(cfg)
	if _, err := l.Load(); err != nil {
		t.Fatal(err)
	}
	s := newShield()
	s.auditPath = "off"
	s.lists, s.blocks = []blocklist.Config{cfg}, []*blocklist.List{l}
	s.finishAnswer()
	s.Next = plugin.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		w.WriteMsg(fixedAnswer(t, r.Question[0].Name+" 60 IN A 203.0.113.5")(r))
		return dns.RcodeSuccess, nil
	})
	query := func(client, name string, qtype uint16) *dns.Msg {
		r := new(dns.Msg)
		r.SetQuestion(name, qtype)
		rec := dnstest.NewRecorder(&addrWriter{addr: &net.UDPAddr{IP: net.ParseIP(client), Port: 53}})
		s.ServeDNS(context.Background(), rec, r)
		return rec.Msg
	}
	if m := query("127.0.0.9", "www.example.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Errorf("rpz-client-ip: %v", m)
	}
	// passthru for the client: the zone says nothing, the answer passes
	// its IP trigger too? No: client-ip passthru stops this zone.
	if m := query("127.0.0.8", "www.example.", dns.TypeA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Errorf("rpz-client-ip passthru: %v", m)
	}
	// rpz-ip: NODATA for the question.
	if m := query("127.0.0.1", "www.example.", dns.TypeA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 || len(m.Ns) != 1 {
		t.Errorf("rpz-ip nodata: %v", m)
	}
	// QNAME passthru: the zone's IP rule does not apply to the name.
	if m := query("127.0.0.1", "cloaked.example.", dns.TypeA); len(m.Answer) != 1 {
		t.Errorf("qname passthru before rpz-ip: %v", m)
	}
	if m := query("127.0.0.1", "portal.example.", dns.TypeA); len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "192.0.2.80" {
		t.Errorf("local data A: %v", m)
	}
	if m := query("127.0.0.1", "portal.example.", dns.TypeAAAA); len(m.Answer) != 0 || len(m.Ns) != 1 {
		t.Errorf("local data AAAA (none): %v", m)
	}
	if m := query("127.0.0.1", "garden.example.", dns.TypeA); len(m.Answer) != 1 || m.Answer[0].(*dns.CNAME).Target != "walled.garden.test." {
		t.Errorf("local data CNAME: %v", m)
	}
}

// TestAnswerPassAllocations: with the answer stage on, a query whose
// answer holds no CNAME and whose addresses miss allocates no more than
// one passed without it.
func TestAnswerPassAllocations(t *testing.T) {
	up := fixedAnswer(t, "www.example.org. 60 IN A 192.0.2.1", "www.example.org. 60 IN A 192.0.2.2")
	s := answerShield(t, []string{"evil.test"}, []string{"203.0.113.0/24"}, up)
	r := new(dns.Msg)
	r.SetQuestion("www.example.org.", dns.TypeA)
	w := &test.ResponseWriter{}
	ctx := context.Background()
	with := testing.AllocsPerRun(1000, func() { s.ServeDNS(ctx, w, r) })
	s.answer = nil
	without := testing.AllocsPerRun(1000, func() { s.ServeDNS(ctx, w, r) })
	if with != without {
		t.Errorf("%.1f allocations per query with the answer stage, %.1f without", with, without)
	}
}

// BenchmarkAnswerPass compares a passed query whose answer (an A and an
// AAAA record, no CNAME) misses every list, with the answer stage off and
// on, in one run: the ratio is the cost of the stage. "writer-only" is
// the stage with nothing to look up: the cost of capturing the answer.
// With detection on (the default), a passed query already went through
// the same writer for its rcode before the answer stage existed, so
// detect/off is the baseline of the default configuration. cpu-ns/op is
// the CPU time of the benchmark's thread, steadier than ns/op on a busy
// machine.
func BenchmarkAnswerPass(b *testing.B) {
	ips := make([]string, 10_000)
	for i := range ips {
		ips[i] = fmt.Sprintf("198.%d.%d.0/24", 18+i/65536, (i/256)%256) // a mix of /24s
		if i%2 == 1 {
			ips[i] = fmt.Sprintf("203.%d.%d.%d", (i/65536)%256, (i/256)%256, i%256)
		}
	}
	names := make([]string, 100_000)
	for i := range names {
		names[i] = fmt.Sprintf("host%d.blocked.test", i)
	}
	up := fixedAnswer(b, "www.example.org. 60 IN A 192.0.2.1", "www.example.org. 60 IN AAAA 2001:db8::1")
	s := answerShield(b, names, ips, up)
	stage := s.answer
	r := new(dns.Msg)
	r.SetQuestion("www.example.org.", dns.TypeA)
	w := &test.ResponseWriter{}
	ctx := context.Background()
	for _, detect := range []bool{false, true} {
		prefix := ""
		if detect {
			prefix = "detect/"
			if err := s.startDetect(); err != nil {
				b.Fatal(err)
			}
			defer s.stopDetect()
		}
		for _, c := range []struct {
			name  string
			stage *answerStage
		}{{"off", nil}, {"on", stage}, {"writer-only", &answerStage{}}} {
			b.Run(prefix+c.name, func(b *testing.B) {
				s.answer = c.stage
				b.ReportAllocs()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				cpu0, ok := threadCPU()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					s.ServeDNS(ctx, w, r)
				}
				b.StopTimer()
				if cpu1, _ := threadCPU(); ok {
					b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
				}
			})
		}
	}
}

// TestAnswerWireWrite: a plugin that writes wire format is checked too.
func TestAnswerWireWrite(t *testing.T) {
	s := answerShield(t, nil, []string{"203.0.113.0/24"}, nil)
	s.Next = plugin.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		b, err := fixedAnswer(t, "wire.example. 60 IN A 203.0.113.1")(r).Pack()
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
		return dns.RcodeSuccess, nil
	})
	if m := ask(t, s, "wire.example.", dns.TypeA); m.Rcode != dns.RcodeNameError || !strings.Contains(edeText(m), "203.0.113.1") {
		t.Errorf("wire-format answer not checked: %v", m)
	}
}

// BenchmarkAnswerHostile measures the bounded cost of hostile answers: a
// 100-link CNAME chain and 1,000 addresses stop at the caps (64 names,
// 256 addresses) and are blocked; the 63-link chain is checked whole.
func BenchmarkAnswerHostile(b *testing.B) {
	s := answerShield(b, []string{"tracker.test"}, []string{"203.0.113.0/24"}, nil)
	chain := func(n int) []string {
		var rrs []string
		for i := 0; i < n; i++ {
			rrs = append(rrs, fmt.Sprintf("c%d.example. 60 IN CNAME c%d.example.", i, i+1))
		}
		return append(rrs, fmt.Sprintf("c%d.example. 60 IN A 192.0.2.1", n))
	}
	var addrs []string
	for i := 0; i < 1000; i++ {
		addrs = append(addrs, fmt.Sprintf("big.example. 60 IN A 198.51.%d.%d", i/256, i%256))
	}
	r := new(dns.Msg)
	r.SetQuestion("q.example.", dns.TypeA)
	w := &test.ResponseWriter{}
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		answer []string
	}{{"chain63", chain(63)}, {"chain100", chain(100)}, {"addrs1000", addrs}} {
		m := fixedAnswer(b, c.answer...)(r)
		s.Next = plugin.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
			w.WriteMsg(m)
			return dns.RcodeSuccess, nil
		})
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				s.ServeDNS(ctx, w, r)
			}
		})
	}
}
