package shield

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/dnsshield/shield/plugin/shield/blocklist"
	"github.com/miekg/dns"
)

// newTestShield returns a Shield over one blocklist file with the given
// lines, loaded, in front of a handler that answers NOERROR.
func newTestShield(tb testing.TB, lines []string) *Shield {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "list.txt")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		tb.Fatal(err)
	}
	s := newShield()
	s.auditPath = "off"
	l := blocklist.NewList(blocklist.Config{Name: "bench", Path: p, MaxShrink: 0.5, MaxInvalid: 0.5})
	if _, err := l.Load(); err != nil {
		tb.Fatal(err)
	}
	s.blocks = []*blocklist.List{l}
	s.Next = plugin.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		m := new(dns.Msg)
		m.SetReply(r)
		w.WriteMsg(m)
		return dns.RcodeSuccess, nil
	})
	return s
}

func TestServeDNSOneReply(t *testing.T) {
	s := newTestShield(t, []string{"evil.test"})
	for _, act := range []action{actNXDomain, actNoData, actRefused, actSinkhole} {
		s.action = act
		s.sink.v4 = nil
		if act == actSinkhole {
			s.sink.v4 = append(s.sink.v4, netip.MustParseAddr("10.1.2.3"))
		}
		r := new(dns.Msg)
		r.SetQuestion("x.evil.test.", dns.TypeA)
		rec := dnstest.NewRecorder(&test.ResponseWriter{})
		rcode, err := s.ServeDNS(context.Background(), rec, r)
		if rcode != dns.RcodeSuccess || err != nil {
			t.Errorf("action %d: ServeDNS returned %d, %v; a plugin that wrote a reply must return RcodeSuccess", act, rcode, err)
		}
		if rec.Msg == nil {
			t.Errorf("action %d: no reply written", act)
		}
	}
}

// TestServeDNSPassAllocations guards the hot path: a query that no list
// matches allocates nothing in shield itself. CoreDNS's NextOrFailure
// allocates a writer wrapper for every plugin, so the test compares with a
// handler that does nothing but call it.
func TestServeDNSPassAllocations(t *testing.T) {
	s := newTestShield(t, []string{"evil.test"})
	s.Next = plugin.HandlerFunc(func(context.Context, dns.ResponseWriter, *dns.Msg) (int, error) { return 0, nil })
	r := new(dns.Msg)
	r.SetQuestion("www.example.org.", dns.TypeA)
	w := &test.ResponseWriter{}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() { s.ServeDNS(ctx, w, r) })
	bare := plugin.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		return plugin.NextOrFailure("bare", s.Next, ctx, w, r)
	})
	base := testing.AllocsPerRun(1000, func() { bare.ServeDNS(ctx, w, r) })
	if allocs != base {
		t.Errorf("%.1f allocations per passed query, want %.1f as for a bare handler", allocs, base)
	}
}

func BenchmarkServeDNS(b *testing.B) {
	lines := make([]string, 100_000)
	for i := range lines {
		lines[i] = fmt.Sprintf("host%d.blocked.test", i)
	}
	s := newTestShield(b, lines)
	for _, bc := range []struct{ name, q string }{
		{"pass", "www.example.org."},
		{"block", "www.host4242.blocked.test."},
		{"pass-190", strings.Repeat("abcdefghij", 6) + "." + strings.Repeat("klmnopqrst", 6) + "." + strings.Repeat("uvwxyz0123", 6) + ".tunnel.example.org."},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := new(dns.Msg)
			r.SetQuestion(bc.q, dns.TypeA)
			w := &test.ResponseWriter{}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				s.ServeDNS(ctx, w, r)
			}
		})
	}
}

// TestZoneTransferRefused: AXFR and IXFR never reach the next plugin (the
// forwarder), whatever the name, class or mode: shield answers REFUSED,
// with EDE 21 (Not Supported) when the query has EDNS0, and writes one
// reply.
func TestZoneTransferRefused(t *testing.T) {
	s := newTestShield(t, []string{"evil.test"})
	s.Next = plugin.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		t.Errorf("%s %s reached the next plugin", r.Question[0].Name, dns.TypeToString[r.Question[0].Qtype])
		return dns.RcodeServerFailure, nil
	})
	for _, monitor := range []bool{false, true} {
		s.monitor = monitor
		for _, tc := range []struct {
			name  string
			qtype uint16
			class uint16
			edns  bool
		}{
			{"example.org.", dns.TypeAXFR, dns.ClassINET, true},
			{"example.org.", dns.TypeIXFR, dns.ClassINET, false},
			{"x.evil.test.", dns.TypeAXFR, dns.ClassINET, false},
			{"example.org.", dns.TypeAXFR, dns.ClassCHAOS, true},
		} {
			r := new(dns.Msg)
			r.SetQuestion(tc.name, tc.qtype)
			r.Question[0].Qclass = tc.class
			if tc.edns {
				r.SetEdns0(1232, false)
			}
			rec := dnstest.NewRecorder(&test.ResponseWriter{})
			rcode, err := s.ServeDNS(context.Background(), rec, r)
			what := fmt.Sprintf("monitor %v, %s %s class %d", monitor, tc.name, dns.TypeToString[tc.qtype], tc.class)
			if rcode != dns.RcodeSuccess || err != nil {
				t.Errorf("%s: ServeDNS returned %d, %v", what, rcode, err)
			}
			if rec.Msg == nil || rec.Msg.Rcode != dns.RcodeRefused {
				t.Fatalf("%s: reply %v, want REFUSED", what, rec.Msg)
			}
			opt := rec.Msg.IsEdns0()
			if !tc.edns {
				if opt != nil {
					t.Errorf("%s: OPT record in the reply to a query without EDNS0", what)
				}
				continue
			}
			if opt == nil || len(opt.Option) != 1 {
				t.Fatalf("%s: no EDE in %v", what, rec.Msg)
			}
			if e, ok := opt.Option[0].(*dns.EDNS0_EDE); !ok || e.InfoCode != dns.ExtendedErrorCodeNotSupported {
				t.Errorf("%s: EDE %v, want 21 (Not Supported)", what, opt.Option[0])
			}
		}
	}
}
