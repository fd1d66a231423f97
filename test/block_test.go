package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// One small list per format; each blocks a name of its own.
var formatLists = []struct {
	format, file, content, blocked string
}{
	{"hosts", "hosts.txt", "# hosts\n127.0.0.1 localhost\n0.0.0.0 hosts-bad.test\n", "hosts-bad.test."},
	{"domains", "domains.txt", "# plain\ndomains-bad.test\n", "domains-bad.test."},
	{"wildcard", "wildcard.txt", "*.wildcard-bad.test\n", "wildcard-bad.test."},
	{"adblock", "adblock.txt", "[Adblock Plus]\n! comment\n||adblock-bad.test^\n@@||ok.adblock-bad.test^\n", "adblock-bad.test."},
	{"dnsmasq", "dnsmasq.conf", "address=/dnsmasq-bad.test/0.0.0.0\nlocal=/dnsmasq-local.test/\n", "dnsmasq-bad.test."},
	{"rpz", "rpz.zone", "$TTL 300\n@ SOA localhost. root.localhost. 1 3600 600 86400 300\n NS localhost.\nrpz-bad.test CNAME .\n*.rpz-bad.test CNAME .\n", "rpz-bad.test."},
}

func TestBlockByEachFormat(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	var body strings.Builder
	for i, f := range formatLists {
		p := writeFile(t, dir, f.file, f.content)
		// Half the lists name their format, half have it detected.
		if i%2 == 0 {
			fmt.Fprintf(&body, "  blocklist %s %s %s\n", f.format, p, f.format)
		} else {
			fmt.Fprintf(&body, "  blocklist %s %s\n", f.format, p)
		}
	}
	body.WriteString("  audit off\n")
	r := startCoreDNS(t, shieldCorefile(up, "", body.String()))

	for _, f := range formatLists {
		for _, network := range []string{"udp", "tcp"} {
			addr := r.udp
			if network == "tcp" {
				addr = r.tcp
			}
			for _, name := range []string{f.blocked, "deep.sub." + f.blocked} {
				m := ask(t, network, addr, name, dns.TypeA)
				if m.Rcode != dns.RcodeNameError {
					t.Errorf("%s %s over %s: rcode %s, want NXDOMAIN", f.format, name, network, dns.RcodeToString[m.Rcode])
					continue
				}
				assertSOA(t, m, f.blocked)
				assertEDE(t, m, dns.ExtendedErrorCodeBlocked, f.format)
			}
		}
	}
	// dnsmasq local=/name/ blocks too.
	if m := ask(t, "udp", r.udp, "dnsmasq-local.test.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Errorf("local=/name/: rcode %s", dns.RcodeToString[m.Rcode])
	}
	// An adblock exception inside the list allows its name.
	if m := ask(t, "udp", r.udp, "ok.adblock-bad.test.", dns.TypeA); !forwarded(m) {
		t.Errorf("adblock exception was not forwarded: %v", m)
	}
	// Names not listed, and parents of listed names, are forwarded.
	for _, name := range []string{"example.com.", "test.", "other.test.", "xhosts-bad.test."} {
		if m := ask(t, "udp", r.udp, name, dns.TypeA); !forwarded(m) {
			t.Errorf("%s not forwarded: %v", name, m)
		}
	}
	// Mixed case on the wire still matches.
	if m := ask(t, "udp", r.udp, "WWW.Domains-BAD.Test.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Errorf("mixed case: rcode %s", dns.RcodeToString[m.Rcode])
	}
}

func assertSOA(t *testing.T, m *dns.Msg, zone string) {
	t.Helper()
	if len(m.Ns) != 1 {
		t.Errorf("want one SOA in authority, got %v", m.Ns)
		return
	}
	soa, ok := m.Ns[0].(*dns.SOA)
	if !ok || soa.Hdr.Name != zone {
		t.Errorf("authority %v, want SOA owned by %s", m.Ns[0], zone)
	}
}

func assertEDE(t *testing.T, m *dns.Msg, code uint16, text string) {
	t.Helper()
	e, ok := ede(m)
	if !ok {
		t.Errorf("no EDE in %v", m)
		return
	}
	if e.InfoCode != code || !strings.Contains(e.ExtraText, text) {
		t.Errorf("EDE %d %q, want code %d naming %q", e.InfoCode, e.ExtraText, code, text)
	}
}

func TestAllowBeatsBlock(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	block := writeFile(t, dir, "block.txt", "evil.test\ngood.test\n")
	allow := writeFile(t, dir, "allow.txt", "safe.evil.test\ngood.test\n")
	r := startCoreDNS(t, shieldCorefile(up, "", fmt.Sprintf("blocklist bad %s\nallowlist ok %s\naudit off", block, allow)))
	for name, wantForward := range map[string]bool{
		"evil.test.":           false,
		"x.evil.test.":         false,
		"safe.evil.test.":      true,
		"deep.safe.evil.test.": true,
		"good.test.":           true,
		"www.good.test.":       true,
	} {
		m := ask(t, "udp", r.udp, name, dns.TypeA)
		if forwarded(m) != wantForward {
			t.Errorf("%s: forwarded=%v, want %v (rcode %s)", name, forwarded(m), wantForward, dns.RcodeToString[m.Rcode])
		}
	}
}

func TestActions(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	list := writeFile(t, dir, "block.txt", "evil.test\n")
	start := func(action string) *resolver {
		return startCoreDNS(t, shieldCorefile(up, "", fmt.Sprintf("blocklist bad %s\naction %s\nttl 42\naudit off", list, action)))
	}

	t.Run("nxdomain", func(t *testing.T) {
		r := start("nxdomain")
		m := ask(t, "udp", r.udp, "a.evil.test.", dns.TypeA)
		if m.Rcode != dns.RcodeNameError || len(m.Answer) != 0 {
			t.Fatalf("got %v", m)
		}
		assertSOA(t, m, "evil.test.")
		assertEDE(t, m, dns.ExtendedErrorCodeBlocked, "bad")
		if soa := m.Ns[0].(*dns.SOA); soa.Minttl != 42 || soa.Hdr.Ttl != 42 {
			t.Errorf("SOA ttl %d minimum %d, want 42", soa.Hdr.Ttl, soa.Minttl)
		}
	})
	t.Run("nodata", func(t *testing.T) {
		r := start("nodata")
		m := ask(t, "udp", r.udp, "evil.test.", dns.TypeA)
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 {
			t.Fatalf("got %v", m)
		}
		assertSOA(t, m, "evil.test.")
		assertEDE(t, m, dns.ExtendedErrorCodeBlocked, "bad")
	})
	t.Run("refused", func(t *testing.T) {
		r := start("refused")
		m := ask(t, "udp", r.udp, "evil.test.", dns.TypeA)
		if m.Rcode != dns.RcodeRefused {
			t.Fatalf("got %v", m)
		}
		assertEDE(t, m, dns.ExtendedErrorCodeBlocked, "bad")
	})
	t.Run("drop", func(t *testing.T) {
		r := start("drop")
		if m, err := exchange("udp", r.udp, "evil.test.", dns.TypeA, true, 500*time.Millisecond); err == nil {
			t.Fatalf("dropped query got an answer: %v", m)
		}
		// The server still answers other names.
		if m := ask(t, "udp", r.udp, "fine.test.", dns.TypeA); !forwarded(m) {
			t.Fatalf("got %v", m)
		}
	})
	t.Run("sinkhole", func(t *testing.T) {
		r := start("sinkhole 10.0.0.1 10.0.0.2 fd00::1")
		m := ask(t, "udp", r.udp, "www.evil.test.", dns.TypeA)
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 2 {
			t.Fatalf("A: got %v", m)
		}
		for i, want := range []string{"10.0.0.1", "10.0.0.2"} {
			a := m.Answer[i].(*dns.A)
			if a.A.String() != want || a.Hdr.Ttl != 42 || a.Hdr.Name != "www.evil.test." {
				t.Errorf("A[%d] = %v", i, a)
			}
		}
		assertEDE(t, m, dns.ExtendedErrorCodeBlocked, "bad")
		m = ask(t, "tcp", r.tcp, "www.evil.test.", dns.TypeAAAA)
		if len(m.Answer) != 1 || m.Answer[0].(*dns.AAAA).AAAA.String() != "fd00::1" {
			t.Fatalf("AAAA: got %v", m)
		}
		m = ask(t, "udp", r.udp, "www.evil.test.", dns.TypeMX)
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 || len(m.Ns) != 1 {
			t.Fatalf("MX: want NODATA with SOA, got %v", m)
		}
	})
	t.Run("no EDNS", func(t *testing.T) {
		r := start("nxdomain")
		m, err := exchange("udp", r.udp, "evil.test.", dns.TypeA, false, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if m.Rcode != dns.RcodeNameError || m.IsEdns0() != nil {
			t.Fatalf("a query without EDNS0 must get no OPT record (RFC 6891 §7): %v", m)
		}
	})
}

func TestRPZSemantics(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	zone := `$TTL 300
@ SOA localhost. root.localhost. (1 3600 600 86400 300)
  NS localhost.
exact.test        CNAME .
*.wild.test       CNAME .
nodata.test       CNAME *.
*.nodata.test     CNAME *.
dropped.test      CNAME rpz-drop.
*.pass.test       CNAME .
ok.pass.test      CNAME rpz-passthru.
`
	p := writeFile(t, dir, "policy.rpz", zone)
	r := startCoreDNS(t, shieldCorefile(up, "", "blocklist rpz "+p+" rpz\naction sinkhole 10.9.9.9\naudit off"))
	cases := []struct {
		name  string
		rcode int
		fwd   bool
		empty bool
	}{
		{"exact.test.", dns.RcodeNameError, false, true},
		{"sub.exact.test.", dns.RcodeSuccess, true, false}, // RPZ: exact name only
		{"wild.test.", dns.RcodeSuccess, true, false},      // *.wild: names below only
		{"a.wild.test.", dns.RcodeNameError, false, true},
		{"nodata.test.", dns.RcodeSuccess, false, true},
		{"x.nodata.test.", dns.RcodeSuccess, false, true},
		{"x.pass.test.", dns.RcodeNameError, false, true},
		{"ok.pass.test.", dns.RcodeSuccess, true, false},
	}
	for _, c := range cases {
		m := ask(t, "udp", r.udp, c.name, dns.TypeA)
		if m.Rcode != c.rcode || forwarded(m) != c.fwd || (c.empty && len(m.Answer) != 0) {
			t.Errorf("%s: rcode %s forwarded %v answers %d; want %s forwarded %v", c.name,
				dns.RcodeToString[m.Rcode], forwarded(m), len(m.Answer), dns.RcodeToString[c.rcode], c.fwd)
		}
	}
	if m, err := exchange("udp", r.udp, "dropped.test.", dns.TypeA, true, 500*time.Millisecond); err == nil {
		t.Errorf("rpz-drop answered: %v", m)
	}
}
