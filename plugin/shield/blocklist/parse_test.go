package blocklist

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// mapSink records what a parser adds. A later Add for the same name fills
// in the actions an earlier one left as ActNone, the way an RPZ zone gives
// "name" and "*.name" in two records.
type mapSink struct {
	m    map[string][2]Action
	adds int
}

func newMapSink() *mapSink { return &mapSink{m: map[string][2]Action{}} }

func (s *mapSink) Add(name []byte, self, below Action) {
	s.adds++
	a := s.m[string(name)]
	if self != ActNone {
		a[0] = self
	}
	if below != ActNone {
		a[1] = below
	}
	s.m[string(name)] = a
}

// got renders the sink as sorted "name=self/below" strings.
func (s *mapSink) got() []string {
	out := make([]string, 0, len(s.m))
	for _, n := range slices.Sorted(maps.Keys(s.m)) {
		a := s.m[n]
		out = append(out, fmt.Sprintf("%s=%s/%s", n, a[0], a[1]))
	}
	return out
}

// counts is the part of Stats a table test checks.
type counts struct{ Lines, Entries, Comments, Invalid, Unsupported int }

func countsOf(st Stats) counts {
	return counts{st.Lines, st.Entries, st.Comments, st.Invalid, st.Unsupported}
}

type parseCase struct {
	name  string
	in    string
	want  []string // "name=self/below", sorted
	stats counts
}

func runParseCases(t *testing.T, f Format, cases []parseCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sink := newMapSink()
			st, err := Parse(strings.NewReader(tc.in), f, sink)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := sink.got()
			if !slices.Equal(got, tc.want) && (len(got) > 0 || len(tc.want) > 0) {
				t.Errorf("names:\n got %q\nwant %q", got, tc.want)
			}
			if c := countsOf(st); c != tc.stats {
				t.Errorf("stats = %+v, want %+v (samples %q)", c, tc.stats, st.Samples)
			}
			if st.Entries != sink.adds {
				t.Errorf("Entries = %d, Add called %d times", st.Entries, sink.adds)
			}
			if want := min(st.Invalid+st.Unsupported, maxSamples); len(st.Samples) != want {
				t.Errorf("%d samples, want %d: %q", len(st.Samples), want, st.Samples)
			}
		})
	}
}

func TestParseHosts(t *testing.T) {
	runParseCases(t, FormatHosts, []parseCase{
		{"basic", "0.0.0.0 ads.example.com\n127.0.0.1 Tracker.Example.NET.\n",
			[]string{"ads.example.com=block/block", "tracker.example.net=block/block"}, counts{2, 2, 0, 0, 0}},
		{"several names and comment", "0.0.0.0 a.example b.example # two\n",
			[]string{"a.example=block/block", "b.example=block/block"}, counts{1, 2, 0, 0, 0}},
		{"ipv6 and tabs", "::\tv6.example\n::1 localhost #[IPv6]\nfe80::1%lo0 zone.example\n",
			[]string{"v6.example=block/block", "zone.example=block/block"}, counts{3, 2, 1, 0, 0}},
		{"any address", "10.1.2.3 redirect.example\n", []string{"redirect.example=block/block"}, counts{1, 1, 0, 0, 0}},
		{"local names skipped", "127.0.0.1 localhost\n127.0.0.1 localhost.localdomain local\n255.255.255.255 broadcasthost\n" +
			"::1 ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\n0.0.0.0 0.0.0.0\n",
			nil, counts{6, 0, 6, 0, 0}},
		{"local name beside a rule", "0.0.0.0 localhost bad.example\n", []string{"bad.example=block/block"}, counts{1, 1, 0, 0, 0}},
		{"comments and blanks", "# header\n\n   \n#0.0.0.0 off.example\n", nil, counts{4, 0, 4, 0, 0}},
		{"bare name is invalid", "bare.example\n", nil, counts{1, 0, 0, 1, 0}},
		{"bad address", "300.1.1.1 x.example\nexample.com x.example\n", nil, counts{2, 0, 0, 2, 0}},
		{"address without name", "0.0.0.0\n", nil, counts{1, 0, 0, 1, 0}},
		{"bad name", "0.0.0.0 bad..example ok.example\n", []string{"ok.example=block/block"}, counts{1, 1, 0, 1, 0}},
		{"ip and wildcard names unsupported", "0.0.0.0 1.2.3.4 *.w.example\n", nil, counts{1, 0, 0, 0, 2}},
		{"crlf and bom", "\uFEFF0.0.0.0 a.example\r\n0.0.0.0 b.example\r\n",
			[]string{"a.example=block/block", "b.example=block/block"}, counts{2, 2, 0, 0, 0}},
		{"lone cr", "0.0.0.0 a.example\r0.0.0.0 b.example\r\r",
			[]string{"a.example=block/block", "b.example=block/block"}, counts{3, 2, 1, 0, 0}},
		{"no final newline", "0.0.0.0 a.example", []string{"a.example=block/block"}, counts{1, 1, 0, 0, 0}},
	})
}

func TestParseDomains(t *testing.T) {
	runParseCases(t, FormatDomains, []parseCase{
		{"basic", "example.com\nSub.Example.ORG.\n",
			[]string{"example.com=block/block", "sub.example.org=block/block"}, counts{2, 2, 0, 0, 0}},
		{"comments", "# hash\n! bang\n\nx.example    #Vendor   why it matters\ny.example#tight\n",
			[]string{"x.example=block/block", "y.example=block/block"}, counts{5, 2, 3, 0, 0}},
		{"underscore and single label", "_dmarc.example\nlocalhost\n",
			[]string{"_dmarc.example=block/block", "localhost=block/block"}, counts{2, 2, 0, 0, 0}},
		{"wildcard prefix accepted", "*.w.example\n", []string{"w.example=block/block"}, counts{1, 1, 0, 0, 0}},
		{"ip addresses unsupported", "1.2.3.4\n2001:db8::1\n10.0.0.0/8\n", nil, counts{3, 0, 0, 0, 3}},
		{"in-label wildcard unsupported", "ad*.example\n", nil, counts{1, 0, 0, 0, 1}},
		{"invalid", "two names.example\nhttp://x.example/\nbad..example\n-\x00.example\n" +
			strings.Repeat("a", 64) + ".example\n" + strings.Repeat("abcdefghi.", 26) + "com\n",
			nil, counts{6, 0, 0, 6, 0}},
		{"crlf bom", "\uFEFFa.example\r\n\r\nb.example\r\n",
			[]string{"a.example=block/block", "b.example=block/block"}, counts{3, 2, 1, 0, 0}},
		{"lone cr", "a.example\rb.example", []string{"a.example=block/block", "b.example=block/block"}, counts{2, 2, 0, 0, 0}},
	})
}

func TestParseWildcard(t *testing.T) {
	runParseCases(t, FormatWildcard, []parseCase{
		{"basic", "*.a.example\nb.example\n# c\n",
			[]string{"a.example=block/block", "b.example=block/block"}, counts{3, 2, 1, 0, 0}},
		{"unsupported", "*a.example\na.*.example\n*\n", nil, counts{3, 0, 0, 0, 3}},
		{"invalid", "*.\n**.x\n", nil, counts{2, 0, 0, 1, 1}},
	})
}

func TestParseAdblock(t *testing.T) {
	runParseCases(t, FormatAdblock, []parseCase{
		{"block", "||ads.example^\n||Track.Example.NET^\n",
			[]string{"ads.example=block/block", "track.example.net=block/block"}, counts{2, 2, 0, 0, 0}},
		{"headers and comments", "[Adblock Plus]\n[Adblock Plus 2.0]\n! Title: x\n# hash comment\n\n",
			nil, counts{5, 0, 5, 0, 0}},
		{"exception", "@@||good.example^\n@@|exact.example^\n",
			[]string{"exact.example=allow/none", "good.example=allow/allow"}, counts{2, 2, 0, 0, 0}},
		{"anchors", "||a.example^|\n||b.example\n||*.c.example^\n|d.example^\n|e.example|\n",
			[]string{"a.example=block/block", "b.example=block/block", "c.example=block/block", "d.example=block/none", "e.example=block/none"},
			counts{5, 5, 0, 0, 0}},
		{"bare names", "plain.example\n@@plain.allowed\n",
			[]string{"plain.allowed=allow/allow", "plain.example=block/block"}, counts{2, 2, 0, 0, 0}},
		{"accepted modifiers", "||a.example^$important\n||b.example^$all\n||c^$doc\n||d.example^$document,third-party\n" +
			"||e.example^$3p,popup\n@@||f.example^$important\n||g.example^ # trailing\n",
			[]string{"a.example=block/block", "b.example=block/block", "c=block/block", "d.example=block/block",
				"e.example=block/block", "f.example=allow/allow", "g.example=block/block"},
			counts{7, 7, 0, 0, 0}},
		{"unsupported modifiers", "||africa^$doc,domain=~nation.africa\n||a.example^$denyallow=x.example\n" +
			"||a.example^$client=10.0.0.1\n||a.example^$dnstype=AAAA\n||a.example^$ctag=tv\n" +
			"||a.example^$dnsrewrite=1.2.3.4\n||a.example^$badfilter\n||a.example^$redirect=noop\n" +
			"||a.example^$script\n||a.example^$~third-party\n",
			nil, counts{10, 0, 0, 0, 10}},
		{"unsupported rules", "@@||*-go.kelkoogroup.example^\n@@||*cdn.example.com^\n||host.example/path^$all\n" +
			"/^ads?\\./\n@@/regex/\nexample.com##.banner\nexample.com#@#.banner\n##.generic\n" +
			"||1.2.3.4^\n||host.example:8080^\n|https://x.example^\n|prefix.example\nexample.com^\n|*tag*^\n",
			nil, counts{14, 0, 0, 0, 14}},
		{"invalid", "||^\n@@\n||bad..example^\n||x.example^$\n||x.example^$,important\n||a_b!.example^\n",
			nil, counts{6, 0, 0, 6, 0}},
		{"crlf bom", "\uFEFF[Adblock Plus]\r\n||a.example^\r\n", []string{"a.example=block/block"}, counts{2, 1, 1, 0, 0}},
	})
}

func TestParseDnsmasq(t *testing.T) {
	runParseCases(t, FormatDnsmasq, []parseCase{
		{"address", "address=/a.example/0.0.0.0\naddress=/b.example/::\naddress=/c.example/\naddress=/d.example/#\n",
			[]string{"a.example=block/block", "b.example=block/block", "c.example=block/block", "d.example=block/block"},
			counts{4, 4, 0, 0, 0}},
		{"several names", "address=/x.example/Y.example/127.0.0.1\n",
			[]string{"x.example=block/block", "y.example=block/block"}, counts{1, 2, 0, 0, 0}},
		{"local and server", "local=/l.example/\nserver=/s.example/\n# comment\n\n",
			[]string{"l.example=block/block", "s.example=block/block"}, counts{4, 2, 2, 0, 0}},
		{"unsupported", "address=/#/0.0.0.0\nserver=/f.example/1.2.3.4\nserver=/f.example/#\nserver=1.1.1.1\n" +
			"domain-needed\ncache-size=1000\nserver=//10.0.0.1\naddress=/1.2.3.4/0.0.0.0\n",
			nil, counts{8, 0, 0, 0, 8}},
		{"invalid", "address=/bad..example/0.0.0.0\naddress=/a.example/not-an-ip\naddress=/a.example\naddress=0.0.0.0\n",
			nil, counts{4, 0, 0, 4, 0}},
		{"inline comment", "address=/a.example/0.0.0.0 # why\n", []string{"a.example=block/block"}, counts{1, 1, 0, 0, 0}},
		{"crlf", "local=/a.example/\r\nlocal=/b.example/\r\n",
			[]string{"a.example=block/block", "b.example=block/block"}, counts{2, 2, 0, 0, 0}},
	})
}

func TestParseRPZ(t *testing.T) {
	const head = "$TTL 3600\n@ SOA localhost. root.localhost. 1 43200 3600 259200 3600\n  NS  localhost.\n; comment\n"
	runParseCases(t, FormatRPZ, []parseCase{
		{"actions", head + "nx.example CNAME .\nnd.example CNAME *.\npass.example CNAME rpz-passthru.\ndrop.example CNAME rpz-drop.\n",
			[]string{"drop.example=drop/none", "nd.example=nodata/none", "nx.example=nxdomain/none", "pass.example=allow/none"},
			counts{8, 4, 4, 0, 0}},
		{"wildcard", "a.example CNAME .\n*.a.example CNAME .\n*.b.example CNAME rpz-passthru.\n",
			[]string{"a.example=nxdomain/nxdomain", "b.example=none/allow"}, counts{3, 3, 0, 0, 0}},
		{"ttl and class", "a.example 300 IN CNAME .\nb.example IN 300 cname .\nc.example in CNAME .\n",
			[]string{"a.example=nxdomain/none", "b.example=nxdomain/none", "c.example=nxdomain/none"}, counts{3, 3, 0, 0, 0}},
		{"multi-line soa", "@ IN SOA ns. admin. (\n  1 ; serial\n  3600 )\nx.example CNAME . ; why\n",
			[]string{"x.example=nxdomain/none"}, counts{4, 1, 3, 0, 0}},
		{"origin", "$ORIGIN rpz.local.\nrel.example CNAME .\nabs.example.rpz.local. CNAME .\nout.example. CNAME .\n" +
			"rpz.local. CNAME .\n",
			[]string{"abs.example=nxdomain/none", "out.example=nxdomain/none", "rel.example=nxdomain/none"}, counts{5, 3, 1, 0, 1}},
		{"relative origin", "$ORIGIN zone.\n$ORIGIN rpz\nx.example.rpz.zone. CNAME .\n",
			[]string{"x.example=nxdomain/none"}, counts{3, 1, 2, 0, 0}},
		{"blank owner", "x.example CNAME .\n  TXT \"reason\"\n", []string{"x.example=nxdomain/none"}, counts{2, 1, 0, 0, 1}},
		{"unsupported", "t.example CNAME rpz-tcp-only.\nl.example A 1.2.3.4\nw.example CNAME garden.example.\n" +
			"32.1.2.0.10.rpz-ip CNAME .\nns.example.rpz-nsdname CNAME .\n32.1.2.0.10.rpz-nsip CNAME .\n" +
			"24.0.0.0.10.rpz-client-ip CNAME rpz-drop.\n@ CNAME .\n$INCLUDE other.zone\n* CNAME .\na*.example CNAME .\n" +
			"m.example CNAME (\n .)\n",
			nil, counts{13, 0, 1, 0, 12}},
		{"invalid", "x.example\nx.example FOO .\nx.example CNAME\nx.example CNAME . extra\nbad..example CNAME .\n$ORIGIN\n",
			nil, counts{6, 0, 0, 6, 0}},
		{"no owner yet", " CNAME .\n", nil, counts{1, 0, 0, 1, 0}},
		{"quoted semicolon", "x.example TXT \"a;b(\"\ny.example CNAME .\n",
			[]string{"y.example=nxdomain/none"}, counts{2, 1, 0, 0, 1}},
		{"crlf bom", "\uFEFF$TTL 30\r\nx.example CNAME .\r\n", []string{"x.example=nxdomain/none"}, counts{2, 1, 1, 0, 0}},
	})
}

func TestParseLongLine(t *testing.T) {
	long := strings.Repeat("a", maxLineLen+10)
	in := "a.example\n" + long + "\nb.example\n" + strings.Repeat("c", maxLineLen) + ".x\n" + long
	sink := newMapSink()
	st, err := Parse(strings.NewReader(in), FormatDomains, sink)
	if err != nil {
		t.Fatal(err)
	}
	want := counts{Lines: 5, Entries: 2, Invalid: 3}
	if c := countsOf(st); c != want {
		t.Errorf("stats = %+v, want %+v", c, want)
	}
	if len(st.Samples) != 3 || !strings.Contains(st.Samples[0], "line 2:") || !strings.Contains(st.Samples[0], reasonTooLong) {
		t.Errorf("samples = %q", st.Samples)
	}
	// A line of exactly maxLineLen bytes fits, with either terminator.
	for _, eol := range []string{"\n", "\r\n", "\r"} {
		name := strings.Repeat("b", maxLineLen)
		st, err := Parse(strings.NewReader("x.example"+eol+name+eol+"y.example"+eol), FormatDomains, newMapSink())
		if err != nil || st.Lines != 3 || st.Entries != 2 || st.Invalid != 1 || strings.Contains(st.Samples[0], reasonTooLong) {
			t.Errorf("eol %q: stats %+v, err %v", eol, st, err)
		}
	}
}

func TestParseSmallReads(t *testing.T) {
	// One byte per read: every line and CRLF splits across reads.
	in := "0.0.0.0 a.example\r\n0.0.0.0 b.example\r0.0.0.0 c.example\n\r\n"
	sink := newMapSink()
	st, err := Parse(iotest.OneByteReader(strings.NewReader(in)), FormatHosts, sink)
	if err != nil {
		t.Fatal(err)
	}
	if c := countsOf(st); c != (counts{Lines: 4, Entries: 3, Comments: 1}) {
		t.Errorf("stats = %+v", c)
	}
}

func TestParseErrors(t *testing.T) {
	if _, err := Parse(strings.NewReader("x"), FormatAuto, newMapSink()); err == nil {
		t.Error("FormatAuto: no error")
	}
	if _, err := Parse(strings.NewReader("x"), Format(99), newMapSink()); err == nil {
		t.Error("Format(99): no error")
	}
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("a.example\nb.exa"), iotest.ErrReader(boom))
	st, err := Parse(r, FormatDomains, newMapSink())
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
	if st.Entries != 2 {
		t.Errorf("entries before the error = %d, want 2", st.Entries)
	}
}

func TestParseSamples(t *testing.T) {
	var b strings.Builder
	for i := range 7 {
		fmt.Fprintf(&b, "1.2.3.%d\n", i) // unsupported
	}
	b.WriteString("bad..one\n" + strings.Repeat("x", 200) + "!\n")
	st, err := Parse(strings.NewReader(b.String()), FormatDomains, newMapSink())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Samples) != maxSamples {
		t.Fatalf("samples = %q", st.Samples)
	}
	// Invalid lines displace the latest unsupported samples.
	want := []string{
		`line 1: "1.2.3.0": unsupported: ` + reasonIP,
		`line 2: "1.2.3.1": unsupported: ` + reasonIP,
		`line 3: "1.2.3.2": unsupported: ` + reasonIP,
		`line 8: "bad..one": ` + reasonName,
		`line 9: "` + strings.Repeat("x", sampleClip) + `"...: ` + reasonName,
	}
	if !slices.Equal(st.Samples, want) {
		t.Errorf("samples:\n got %q\nwant %q", st.Samples, want)
	}
}

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"Example.COM.", "example.com", true},
		{"a_b-c.example", "a_b-c.example", true},
		{"x", "x", true},
		{"123.example", "123.example", true},
		{"1.2.3", "1.2.3", true},
		{"", "", false},
		{".", "", false},
		{"a..b", "", false},
		{".a", "", false},
		{"a.b..", "", false},
		{"a b", "", false},
		{"a/b", "", false},
		{"ä.example", "", false},
		{"1.2.3.4", "", false},
		{"1.2.3.4.", "", false},
		{"::1", "", false},
		{strings.Repeat("a", 63) + ".x", strings.Repeat("a", 63) + ".x", true},
		{strings.Repeat("a", 64) + ".x", "", false},
		{strings.Repeat("abc.", 63) + "a", strings.Repeat("abc.", 63) + "a", true}, // 253 bytes
		{strings.Repeat("abc.", 63) + "ab", "", false},
	} {
		got, ok := Normalize([]byte(tc.in))
		if ok != tc.ok || ok && string(got) != tc.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	b := []byte("WWW.Example.Org.")
	if allocs := testing.AllocsPerRun(100, func() { Normalize(b) }); allocs != 0 {
		t.Errorf("Normalize allocates %v times", allocs)
	}
}

func TestIsIPLiteral(t *testing.T) {
	for in, want := range map[string]bool{
		"0.0.0.0": true, "255.255.255.255": true, "010.1.1.1": true, "::": true, "::1": true,
		"2001:db8::1": true, "fe80::1%eth0": true, "::ffff:1.2.3.4": true, "1:2:3:4:5:6:7:8": true,
		"1:2:3:4:5:6:1.2.3.4": true, "1::": true, "A:B:C:D:E:F:0:1": true,
		"256.1.1.1": false, "1.2.3": false, "1.2.3.4.5": false, "1.2.3.": false, ".1.2.3": false,
		"1..2.3": false, "1234.1.1.1": false, "example.com": false, "": false, ":": false, ":::": false,
		"1:2:3:4:5:6:7:8:9": false, "1:2:3:4:5:6:7": false, "1::2::3": false, "12345::": false,
		"1:": false, ":1": false, "fe80::1%": false, "g::1": false, "::1.2.3": false, "1::1.2.3.4:5": false,
		"1:2:3:4:5:6:7::": true, "1:2:3:4:5:6:7:8::": false,
	} {
		if got := IsIPLiteral([]byte(in)); got != want {
			t.Errorf("IsIPLiteral(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestFormatNames(t *testing.T) {
	for f := FormatAuto; f <= FormatRPZ; f++ {
		got, err := ParseFormat(f.String())
		if err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %v, %v", f.String(), got, err)
		}
	}
	if got, err := ParseFormat("AdBlock"); err != nil || got != FormatAdblock {
		t.Errorf("ParseFormat(AdBlock) = %v, %v", got, err)
	}
	_, err := ParseFormat("json")
	if err == nil || !strings.Contains(err.Error(), "hosts, domains, wildcard, adblock, dnsmasq, rpz") {
		t.Errorf("ParseFormat(json) error = %v", err)
	}
	if s := Format(42).String(); s != "Format(42)" {
		t.Errorf("Format(42).String() = %q", s)
	}
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want Format
	}{
		{"empty", "", FormatDomains},
		{"comments only", "# a\n# b\n", FormatDomains},
		{"hosts", "# x\n127.0.0.1 localhost\n0.0.0.0 a.example\n0.0.0.0 b.example\n", FormatHosts},
		{"hosts ipv6", ":: a.example\n:: b.example\n", FormatHosts},
		{"domains", "# x\na.example\nb.example\n", FormatDomains},
		{"domains with inline comments", "a.example    #Vendor  note\nb.example  # x\n", FormatDomains},
		{"wildcard", "# x\n*.a.example\n*.b.example\nc.example\n", FormatWildcard},
		{"adblock", "[Adblock Plus]\n! x\n||a.example^\n||b.example^\n", FormatAdblock},
		{"adblock exceptions", "@@||a.example^\n@@||b.example^\n", FormatAdblock},
		{"adblock bare names with bang comments", "! Title\na.example\nb.example\nc.example\n", FormatAdblock},
		{"adblock cosmetic", "example.com##.ad\n##.banner\n", FormatAdblock},
		{"adguard regex", "! x\n/^ad\\./\n|*tag*^\n", FormatAdblock},
		{"dnsmasq", "# x\naddress=/a.example/0.0.0.0\nlocal=/b.example/\nserver=/c.example/\n", FormatDnsmasq},
		{"rpz", "$TTL 30\n@ IN SOA localhost. root.localhost. 1 2 3 4 5\n NS localhost.\na.example CNAME .\n", FormatRPZ},
		{"rpz comments only header", "; x\na.example 30 IN CNAME .\n*.a.example CNAME .\n", FormatRPZ},
		{"crlf", "0.0.0.0 a.example\r\n0.0.0.0 b.example\r\n", FormatHosts},
		{"cr only", "||a.example^\r||b.example^\r", FormatAdblock},
		{"bom", "\uFEFF||a.example^\n", FormatAdblock},
	} {
		if got := Detect([]byte(tc.in)); got != tc.want {
			t.Errorf("%s: Detect = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDetectMajority(t *testing.T) {
	var b strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&b, "0.0.0.0 h%d.example\n", i)
	}
	// Only the first detectRules rule lines and 64 KiB count: the
	// domains after them do not change the answer.
	for i := range 5000 {
		fmt.Fprintf(&b, "d%d.example\n", i)
	}
	if got := Detect([]byte(b.String())); got != FormatHosts {
		t.Errorf("Detect = %v, want hosts", got)
	}
	mixed := "0.0.0.0 a.example\nb.example\nc.example\nd.example\n"
	if got := Detect([]byte(mixed)); got != FormatDomains {
		t.Errorf("Detect(mixed) = %v, want domains", got)
	}
}

// countSink counts entries and keeps nothing, so a benchmark measures the
// parser alone.
type countSink struct{ n int }

func (s *countSink) Add(name []byte, self, below Action) { s.n++ }

// syntheticDomains returns a domains list of n generated names with a
// header, in the shape of the HaGeZi and Block List Project files.
func syntheticDomains(n int) []byte {
	var b bytes.Buffer
	b.WriteString("# Title: synthetic\n# Entries: many\n#\n")
	for i := range n {
		fmt.Fprintf(&b, "host-%d.tracker%d.example%d.com\n", i, i%977, i%13)
	}
	return b.Bytes()
}

func BenchmarkParseDomains(b *testing.B) {
	data := syntheticDomains(100_000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var sink countSink
		st, err := Parse(bytes.NewReader(data), FormatDomains, &sink)
		if err != nil || st.Entries != 100_000 {
			b.Fatalf("%+v %v", countsOf(st), err)
		}
	}
}

// TestParseAllocs checks that allocations do not grow with the number of
// lines: the per-call setup allocates, the lines do not.
func TestParseAllocs(t *testing.T) {
	lines := map[Format]string{
		FormatHosts:    "0.0.0.0 a%d.example b%d.example # c\n",
		FormatDomains:  "a%d.example #%d\n",
		FormatWildcard: "*.a%d.example\n# %d\n",
		FormatAdblock:  "||a%d.example^$important\n@@||b%d.example^\n",
		FormatDnsmasq:  "address=/a%d.example/b%d.example/0.0.0.0\n",
		FormatRPZ:      "a%d.example 60 IN CNAME .\n*.a%d.example CNAME rpz-passthru.\n",
	}
	for f, line := range lines {
		gen := func(n int) []byte {
			var b bytes.Buffer
			b.WriteString("\xEF\xBB\xBF$TTL 60\r\n")
			for i := range n {
				fmt.Fprintf(&b, line, i, i)
			}
			return b.Bytes()
		}
		allocs := func(data []byte) float64 {
			return testing.AllocsPerRun(5, func() {
				if _, err := Parse(bytes.NewReader(data), f, &countSink{}); err != nil {
					t.Fatal(err)
				}
			})
		}
		// A per-line allocation would add thousands; the slack absorbs the
		// race detector's own allocations.
		small, large := allocs(gen(10)), allocs(gen(20000))
		if large > small+10 {
			t.Errorf("%v: %v allocations for 10 lines, %v for 20000", f, small, large)
		}
	}
}
