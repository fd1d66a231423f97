package shield

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"
)

func TestParseDetect(t *testing.T) {
	c := caddy.NewTestController("dns", `shield {
		blocklist malware /lists/m.txt
		detect_threshold 30 50
		detect_window 5m 12h
		detect_sticky 2h
		detect_tables 4096 2048 1024
		detect_scope 2 10
		detect_disable dga newly_seen
		detect_exempt corp.example builds.example.
		detect_exempt other.example
		detect_exempt_defaults off
	}`)
	s, err := parse(c)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.detection.options
	if cfg.Alert != 30 || cfg.Block != 50 || cfg.ShortWindow != 5*time.Minute || cfg.LongWindow != 12*time.Hour ||
		cfg.Sticky != 2*time.Hour || cfg.Domains != 4096 || cfg.Clients != 2048 || cfg.Verdicts != 1024 ||
		cfg.FleetClients != 2 || cfg.PopularClients != 10 ||
		!cfg.NoDGA || !cfg.NoNewlySeen || cfg.NoTunnel || !cfg.NoDefaultExempt || len(cfg.Exempt) != 3 || s.detection.off {
		t.Errorf("config %+v", cfg)
	}
	if err := s.startDetect(); err != nil {
		t.Fatal(err)
	}
	defer s.stopDetect()
	if s.detection.engine == nil {
		t.Fatal("no engine")
	}

	for _, bad := range []struct{ opt, err string }{
		{"detect maybe", "on or off"},
		{"detect_threshold 70 60", "ALERT <= BLOCK"},
		{"detect_threshold 0 60", "1 to 100"},
		{"detect_threshold 40", "ALERT BLOCK"},
		{"detect_window 10m", "SHORT LONG"},
		{"detect_window 1h 10m", "shorter"},
		{"detect_window 0s 1h", "outside"},
		{"detect_sticky forever", "invalid detect_sticky"},
		{"detect_tables 10 10 10", "want 512"},
		{"detect_disable magic", "unknown detector"},
		{"detect_scope 3", "FLEET_CLIENTS POPULAR_CLIENTS"},
		{"detect_scope 9 5", "from 1 to 8"},
		{"detect_scope 3 0", "from 1 to 60"},
		{"detect_scope x 5", "invalid detect_scope"},
		{"detect_exempt", "Wrong argument count"},
		{"detect_exempt a..b", "invalid detect_exempt"},
		{"detect_exempt *.corp.example", "invalid detect_exempt"},
		{`detect_exempt "corp example"`, "invalid detect_exempt"},
		{`detect_exempt corp\\example`, "invalid detect_exempt"},
		{"detect", "on or off"},
		{"detect_threshold abc 60", "1 to 100"},
		{"detect_threshold 40 101", "1 to 100"},
		{"detect_sticky", "Wrong argument count"},
		{"detect_sticky 0s", "outside"},
		{"detect_window 25h 48h", "short window"},
		{"detect_window 1h 800h", "long window"},
		{"detect_tables 4096 2048", "DOMAINS CLIENTS VERDICTS"},
		{"detect_tables 4096 x 1024", "invalid detect_tables size"},
		{"detect_disable", "Wrong argument count"},
		{"detect_exempt_defaults maybe", "on or off"},
	} {
		c := caddy.NewTestController("dns", "shield {\n blocklist m /l.txt\n "+bad.opt+"\n}")
		if _, err := parse(c); err == nil || !strings.Contains(err.Error(), bad.err) {
			t.Errorf("%q: error %v, want one containing %q", bad.opt, err, bad.err)
		}
	}
}

func TestDetectOffMakesNoEngine(t *testing.T) {
	s, err := parse(caddy.NewTestController("dns", "shield {\n blocklist m /l.txt\n detect off\n}"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.startDetect(); err != nil {
		t.Fatal(err)
	}
	if s.detection.engine != nil {
		t.Error("detect off made an engine")
	}
	s.stopDetect()
}

// quietWriter is a ResponseWriter that allocates nothing.
type quietWriter struct {
	addr  *net.UDPAddr
	wrote *dns.Msg
}

func (w *quietWriter) LocalAddr() net.Addr         { return w.addr }
func (w *quietWriter) RemoteAddr() net.Addr        { return w.addr }
func (w *quietWriter) WriteMsg(m *dns.Msg) error   { w.wrote = m; return nil }
func (w *quietWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *quietWriter) Close() error                { return nil }
func (w *quietWriter) TsigStatus() error           { return nil }
func (w *quietWriter) TsigTimersOnly(bool)         {}
func (w *quietWriter) Hijack()                     {}

// TestServeDetectFeedsRcode: the next plugin's NXDOMAIN answers reach the
// engine (a client with NXDOMAINs for 20 random domains becomes suspect,
// and its next new domain like those is blocked with EDE 17), and a query that
// passes allocates nothing on the detection path.
func TestServeDetectFeedsRcode(t *testing.T) {
	s := newShield()
	s.auditPath = "off"
	if err := s.startDetect(); err != nil {
		t.Fatal(err)
	}
	defer s.stopDetect()
	nx := new(dns.Msg)
	s.Next = plugin.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		nx.SetRcode(r, dns.RcodeNameError)
		w.WriteMsg(nx)
		return dns.RcodeNameError, nil
	})
	w := &quietWriter{addr: &net.UDPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 5353}}
	ctx := context.Background()
	for _, n := range []string{"qzkxjvbw", "mfhtplrq", "wbvcxzkq", "lkjhgfdq", "poiuytrw", "zxcvbnmq", "qwrtypsd",
		"ghjklzxc", "vbnmqwrt", "yplkjhgf", "dsazxcvb", "nmqwerty", "uiopasdf", "ghjklqwe", "rtyuiopz",
		"xcvbnmas", "dfghjklq", "wertyuio", "pasdfghj", "klzxcvbn"} {
		r := new(dns.Msg)
		r.SetQuestion(n+".com.", dns.TypeA)
		s.ServeDNS(ctx, w, r)
	}
	s.Next = plugin.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		t.Error("the suspect client's new domain reached the next plugin")
		return dns.RcodeSuccess, nil
	})
	r := new(dns.Msg)
	r.SetQuestion("xqwmvbtz.com.", dns.TypeA) // like the NXDOMAIN names
	r.SetEdns0(1232, false)
	s.ServeDNS(ctx, w, r)
	if w.wrote == nil || w.wrote.Rcode != dns.RcodeNameError || w.wrote.IsEdns0() == nil {
		t.Fatalf("answer %v", w.wrote)
	}
	var ede *dns.EDNS0_EDE
	for _, o := range w.wrote.IsEdns0().Option {
		if e, ok := o.(*dns.EDNS0_EDE); ok {
			ede = e
		}
	}
	if ede == nil || ede.InfoCode != dns.ExtendedErrorCodeFiltered || ede.ExtraText != "detected dga: client_nx_burst" {
		t.Errorf("EDE %+v", ede)
	}

	// Allocation of a query that passes, after warm-up.
	ok := new(dns.Msg)
	s.Next = plugin.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		w.WriteMsg(ok)
		return dns.RcodeSuccess, nil
	})
	benign := &quietWriter{addr: &net.UDPAddr{IP: net.IPv4(192, 0, 2, 9), Port: 5353}}
	q := new(dns.Msg)
	q.SetQuestion("www.example.org.", dns.TypeA)
	s.ServeDNS(ctx, benign, q)
	allocs := testing.AllocsPerRun(200, func() { s.ServeDNS(ctx, benign, q) })
	// CoreDNS's own NextOrFailure allocates a writer wrapper (v1.15); the
	// detection path must add nothing to that.
	base := testing.AllocsPerRun(200, func() { plugin.NextOrFailure(s.Name(), s.Next, ctx, benign, q) })
	if allocs > base {
		t.Errorf("the detection path allocates %.1f times for a query that passes, NextOrFailure alone %.1f", allocs, base)
	}
	t.Logf("allocations per passing query: %.1f (NextOrFailure alone: %.1f)", allocs, base)
}
