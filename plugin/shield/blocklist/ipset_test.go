package blocklist

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIPSetLongestPrefix(t *testing.T) {
	var b IPBuilder
	for _, e := range []struct {
		p   string
		act Action
	}{
		{"10.0.0.0/8", ActBlock},
		{"10.1.0.0/16", ActAllow},
		{"10.1.2.3/32", ActNXDomain},
		{"2001:db8::/32", ActBlock},
		{"2001:db8:1::/48", ActDrop},
		{"::ffff:192.0.2.0/120", ActNoData}, // mapped: stored as 192.0.2.0/24
	} {
		b.Add(netip.MustParsePrefix(e.p), e.act)
	}
	b.Add(netip.MustParsePrefix("10.0.0.0/8"), ActDrop) // a duplicate keeps the first action
	s := b.Build()
	if s.Len() != 6 {
		t.Fatalf("Len = %d, want 6", s.Len())
	}
	for _, c := range []struct {
		addr, prefix string
		act          Action
	}{
		{"10.9.9.9", "10.0.0.0/8", ActBlock},
		{"10.1.9.9", "10.1.0.0/16", ActAllow},
		{"10.1.2.3", "10.1.2.3/32", ActNXDomain},
		{"11.0.0.1", "", ActNone},
		{"::ffff:10.1.2.3", "10.1.2.3/32", ActNXDomain},
		{"192.0.2.77", "192.0.2.0/24", ActNoData},
		{"2001:db8:ffff::1", "2001:db8::/32", ActBlock},
		{"2001:db8:1::1", "2001:db8:1::/48", ActDrop},
		{"2001:db9::1", "", ActNone},
	} {
		m := s.Lookup(netip.MustParseAddr(c.addr))
		if m.Action != c.act || (c.prefix != "" && m.Prefix.String() != c.prefix) {
			t.Errorf("Lookup(%s) = %v %v, want %v %s", c.addr, m.Action, m.Prefix, c.act, c.prefix)
		}
	}
	var empty *IPSet
	if empty.Contains(netip.MustParseAddr("10.0.0.1")) || empty.Len() != 0 {
		t.Error("nil set is not empty")
	}
}

func TestIPSetLookupDoesNotAllocate(t *testing.T) {
	var b IPBuilder
	b.Add(netip.MustParsePrefix("198.51.100.0/24"), ActBlock)
	b.Add(netip.MustParsePrefix("2001:db8::/32"), ActBlock)
	s := b.Build()
	a4, a6 := netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("2001:db9::1")
	if n := testing.AllocsPerRun(100, func() { s.Lookup(a4); s.Lookup(a6) }); n != 0 {
		t.Errorf("Lookup allocates %.0f times", n)
	}
}

func TestParseIPs(t *testing.T) {
	in := "# C2 addresses\n203.0.113.7\n198.51.100.0/24 # a range\n2001:db8::/32\n\n192.0.2.1 c2.example other.example\nnot-an-ip\n10.0.0.0/33\n"
	var b IPBuilder
	st, err := ParseIPs(strings.NewReader(in), FormatAuto, &b)
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != 4 || st.Invalid != 2 || st.Comments != 2 {
		t.Errorf("stats = %+v, want 4 entries, 2 invalid, 2 comments", st)
	}
	s := b.Build()
	for _, a := range []string{"203.0.113.7", "198.51.100.200", "2001:db8::99", "192.0.2.1"} {
		if !s.Contains(netip.MustParseAddr(a)) {
			t.Errorf("%s not in the set", a)
		}
	}
	// Plain form takes one field a line.
	st, _ = ParseIPs(strings.NewReader("192.0.2.1 c2.example\n"), FormatDomains, &IPBuilder{})
	if st.Entries != 0 || st.Invalid != 1 {
		t.Errorf("plain form with two fields: %+v", st)
	}
	if _, err := ParseIPs(strings.NewReader(""), FormatRPZ, &IPBuilder{}); err == nil {
		t.Error("ParseIPs accepted format rpz")
	}
}

func TestIPListLoadGuards(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c2.txt")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("203.0.113.1\n203.0.113.2\n203.0.113.3\n203.0.113.4\n")
	l := NewList(Config{Name: "c2", Path: path, IP: true, MaxShrink: 0.5, MaxInvalid: 0.5})
	if changed, err := l.Load(); !changed || err != nil {
		t.Fatalf("first load: %v %v", changed, err)
	}
	if n := l.Snapshot().Len(); n != 4 {
		t.Fatalf("Len = %d, want 4", n)
	}
	v := l.Snapshot().Version
	for _, c := range []struct{ content, reason string }{
		{"", FailEmpty},
		{"garbage\nmore garbage\n203.0.113.1\n", FailGarbage},
		{"203.0.113.1\n", FailShrink},
	} {
		write(c.content)
		_, err := l.Load()
		if got := loadErrReason(t, err); got != c.reason {
			t.Errorf("content %q: reason %q, want %q", c.content, got, c.reason)
		}
		if l.Snapshot().Version != v || !l.Snapshot().IPs.Contains(netip.MustParseAddr("203.0.113.4")) {
			t.Errorf("content %q replaced the last good version", c.content)
		}
	}
}

func TestRPZFullTriggers(t *testing.T) {
	zone := `$TTL 300
@ SOA ns.rpz. hostmaster.rpz. 1 3600 600 86400 300
  NS ns.rpz.
$ORIGIN rpz.example.
32.7.113.0.203.rpz-ip          CNAME .
24.0.100.51.198.rpz-ip         CNAME rpz-drop.
48.zz.db8.2001.rpz-ip          CNAME *.
128.1.zz.db8.2001.rpz-ip       CNAME rpz-passthru.
32.9.0.0.127.rpz-client-ip     CNAME .
24.0.0.0.10.rpz-client-ip      CNAME rpz-drop.
ns.evil.example.rpz-nsdname    CNAME .
32.1.2.0.192.rpz-nsip          CNAME .
32.8.113.0.203.rpz-ip          A 192.0.2.1
garden.example                 CNAME walled.garden.example.
*.garden.example               CNAME walled.garden.example.
portal.example                 A 192.0.2.80
portal.example                 AAAA 2001:db8::80
mixed.example                  A 192.0.2.81
mixed.example                  CNAME walled.garden.example.
text.example                   TXT "hello"
tcp.example                    CNAME rpz-tcp-only.
bad.rpz-ip                     CNAME .
qname.example                  CNAME .
`
	dir := t.TempDir()
	path := filepath.Join(dir, "zone.rpz")
	if err := os.WriteFile(path, []byte(zone), 0o644); err != nil {
		t.Fatal(err)
	}
	l := NewList(Config{Name: "rpz", Path: path, Format: FormatRPZ, MaxShrink: 0.5, MaxInvalid: 0.5})
	if _, err := l.Load(); err != nil {
		t.Fatal(err)
	}
	snap := l.Snapshot()
	p := snap.RPZ
	for _, c := range []struct {
		set  *IPSet
		addr string
		act  Action
	}{
		{p.IP, "203.0.113.7", ActNXDomain},
		{p.IP, "198.51.100.9", ActDrop},
		{p.IP, "2001:db8::5", ActNoData},
		{p.IP, "2001:db8::1", ActAllow},
		{p.IP, "203.0.113.8", ActNone}, // local data on an IP trigger: unsupported
		{p.ClientIP, "127.0.0.9", ActNXDomain},
		{p.ClientIP, "10.0.0.200", ActDrop},
		{p.ClientIP, "127.0.0.1", ActNone},
	} {
		if m := c.set.Lookup(netip.MustParseAddr(c.addr)); m.Action != c.act {
			t.Errorf("%s: %v, want %v", c.addr, m.Action, c.act)
		}
	}
	if m := snap.Set.Lookup("portal.example."); m.Action != ActLocal {
		t.Errorf("portal.example: %v, want local", m.Action)
	}
	if d := p.LocalData("portal.example"); d == nil || len(d.Addrs) != 2 || d.CNAME != "" {
		t.Errorf("portal.example local data = %+v", d)
	}
	if m := snap.Set.Lookup("www.garden.example."); m.Action != ActLocal || !m.Below {
		t.Errorf("www.garden.example: %+v, want local below", m)
	}
	if d := p.LocalData("*.garden.example"); d == nil || d.CNAME != "walled.garden.example." {
		t.Errorf("*.garden.example local data = %+v", d)
	}
	if m := snap.Set.Lookup("qname.example."); m.Action != ActNXDomain {
		t.Errorf("qname.example: %v", m.Action)
	}
	// nsdname, nsip, the IP local data, TXT and tcp-only are unsupported;
	// the mixed CNAME and the bad IP trigger are invalid.
	st := snap.Stats
	if st.Unsupported != 5 || st.Invalid != 2 {
		t.Errorf("unsupported %d, invalid %d, want 5 and 2; samples %v", st.Unsupported, st.Invalid, st.Samples)
	}
	found := false
	for _, s := range st.Samples {
		found = found || strings.Contains(s, "rpz-nsdname")
	}
	if !found {
		t.Errorf("samples do not name the nsdname trigger: %v", st.Samples)
	}
}

func TestParseRPZPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"32.1.2.0.192":      "192.0.2.1/32",
		"24.0.2.0.192":      "192.0.2.0/24",
		"48.zz.db8.2001":    "2001:db8::/48",
		"128.1.zz.db8.2001": "2001:db8::1/128",
		"64.zz.1.db8.2001":  "2001:db8:1::/64",
	} {
		p, ok := parseRPZPrefix([]byte(in))
		if !ok || p.String() != want {
			t.Errorf("%s: %v %v, want %s", in, p, ok, want)
		}
	}
	for _, in := range []string{"1.2.3.4", "33.1.2.3.4", "24.1.2.0.192", "x.1.2.3.4", "32"} {
		if p, ok := parseRPZPrefix([]byte(in)); ok {
			t.Errorf("%s parsed as %v", in, p)
		}
	}
}
