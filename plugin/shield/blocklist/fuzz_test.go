package blocklist

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// checkSink asserts the Sink contract on every Add: the name is normalised
// (Normalize leaves it unchanged and accepts it) and carries an action.
type checkSink struct {
	t *testing.T
	mapSink
}

func (s *checkSink) Add(name []byte, self, below Action) {
	again, ok := Normalize(bytes.Clone(name))
	if !ok || !bytes.Equal(again, name) {
		s.t.Fatalf("Add(%q): not a normalised name (Normalize = %q, %v)", name, again, ok)
	}
	if self == ActNone && below == ActNone {
		s.t.Fatalf("Add(%q, none, none)", name)
	}
	if self > ActAllow || below > ActAllow {
		s.t.Fatalf("Add(%q, %d, %d): unknown action", name, self, below)
	}
	s.mapSink.Add(name, self, below)
}

// fuzzParse parses data in format f and checks the invariants every input
// must keep. It returns what the sink saw.
func fuzzParse(t *testing.T, f Format, data []byte) *checkSink {
	sink := &checkSink{t: t, mapSink: *newMapSink()}
	st, err := Parse(bytes.NewReader(data), f, sink)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if st.Entries != sink.adds {
		t.Fatalf("Entries = %d, Add called %d times", st.Entries, sink.adds)
	}
	// Every line is a comment or holds at least one rule, and a line with
	// several names may count several times.
	if st.Comments > st.Lines || st.Comments+st.Entries+st.Invalid+st.Unsupported < st.Lines {
		t.Fatalf("counts do not cover the lines: %+v", countsOf(st))
	}
	if len(st.Samples) > maxSamples || len(st.Samples) > st.Invalid+st.Unsupported {
		t.Fatalf("%d samples for %d rejected rules", len(st.Samples), st.Invalid+st.Unsupported)
	}
	if st.Lines > bytes.Count(data, []byte{'\n'})+bytes.Count(data, []byte{'\r'})+1 {
		t.Fatalf("%d lines from %d bytes", st.Lines, len(data))
	}
	return sink
}

// fuzzFormat runs the invariants, then checks that the line ending does not
// change the result: the same input with "\r\n" instead of "\n" gives the
// same entries.
func fuzzFormat(f Format) func(*testing.T, []byte) {
	return func(t *testing.T, data []byte) {
		got := fuzzParse(t, f, data)
		if len(data) > maxLineLen/2 || bytes.IndexByte(data, '\r') >= 0 {
			return
		}
		crlf := fuzzParse(t, f, bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n")))
		if got.adds != crlf.adds || fmt.Sprint(got.got()) != fmt.Sprint(crlf.got()) {
			t.Fatalf("CRLF changes the result:\n  LF %q\nCRLF %q", got.got(), crlf.got())
		}
	}
}

// hostileSeeds are inputs every fuzz target starts from. Lines longer than
// the buffer are in FuzzParseDomains and in testdata/fuzz, not here: large
// seeds slow every target down.
var hostileSeeds = []string{
	"",
	"\n",
	"\r",
	"\r\r\r\n\n",
	"\xEF\xBB\xBF",
	"\x00\x01\x02\x7f\n\x00",
	"\xff\xfe\xfd\n\xc3\x28.example\n",
	strings.Repeat("a.", 200) + "example\n",
	"a.example\rb.example\rc.example",
	"   \t\v\f\n",
}

func addSeeds(f *testing.F, seeds ...string) {
	for _, s := range append(seeds, hostileSeeds...) {
		f.Add([]byte(s))
	}
}

func FuzzParseHosts(f *testing.F) {
	addSeeds(f,
		"0.0.0.0 a.example\n127.0.0.1 localhost\n::1 ip6-localhost # c\n",
		"0.0.0.0 a.example b.example\t# x\n:: c.example\nfe80::1%lo0 d.example\n",
		"bare.example\n0.0.0.0\n0.0.0.0 1.2.3.4 *.x.example bad..name\n",
	)
	f.Fuzz(fuzzFormat(FormatHosts))
}

func FuzzParseDomains(f *testing.F) {
	addSeeds(f,
		"# c\n! c\na.example\nB.Example.\n*.c.example\n",
		"x.example   #Vendor note\n1.2.3.4\n10.0.0.0/8\n2001:db8::1\nad*.example\n",
		"two names\n_srv.example\n-.example\n",
		strings.Repeat("a", maxLineLen+1)+"\nok.example\n",
	)
	f.Fuzz(fuzzFormat(FormatDomains))
}

func FuzzParseWildcard(f *testing.F) {
	addSeeds(f,
		"*.a.example\nb.example\n*.\n*a.example\n**.x\n*\n",
	)
	f.Fuzz(fuzzFormat(FormatWildcard))
}

func FuzzParseAdblock(f *testing.F) {
	addSeeds(f,
		"[Adblock Plus]\n! c\n||a.example^\n@@||b.example^$important\n|c.example^\n",
		"||*.d.example^|\n||e^$doc,domain=~x.e\n||f.example/path^$all\n/re/\nx##.y\n#@#z\n",
		"@@||*-go.x.example^\n||a^$\n||a^$,\n@@\n||^\n|\n||\n@@/\n$$\n",
	)
	f.Fuzz(fuzzFormat(FormatAdblock))
}

func FuzzParseDnsmasq(f *testing.F) {
	addSeeds(f,
		"address=/a.example/0.0.0.0\nlocal=/b.example/\nserver=/c.example/\n",
		"address=/x/y/::\naddress=/#/0.0.0.0\nserver=/f/1.2.3.4\nserver=//\naddress=/\naddress=//\n=\n",
	)
	f.Fuzz(fuzzFormat(FormatDnsmasq))
}

func FuzzParseRPZ(f *testing.F) {
	addSeeds(f,
		"$TTL 30\n@ IN SOA a. b. ( 1 2\n 3 4 5 )\n NS a.\nx.example CNAME .\n*.x.example CNAME *.\n",
		"$ORIGIN rpz.\ny.example.rpz. 300 IN CNAME rpz-passthru.\n z TXT \"a;b(\"\n32.1.0.0.10.rpz-ip CNAME .\n",
		"$ORIGIN\n$ORIGIN .\n$ORIGIN a\n\\. CNAME .\n@ CNAME .\n* CNAME rpz-drop.\n(((\n)))\n",
	)
	f.Fuzz(fuzzFormat(FormatRPZ))
}

func FuzzDetect(f *testing.F) {
	addSeeds(f,
		"0.0.0.0 a.example\n", "a.example\n", "*.a.example\n", "||a.example^\n",
		"address=/a.example/\n", "$TTL 1\na CNAME .\n", "! x\na.example\n", "[x]\n",
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		got := Detect(data)
		if got < FormatHosts || got > FormatRPZ {
			t.Fatalf("Detect = %v", got)
		}
		fuzzParse(t, got, data)
	})
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"Example.COM.", "a..b", "1.2.3.4", "::1", "x", ".", "", "a_b-c", "\x00", "\xff.example"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		name, ok := Normalize(in)
		if !ok {
			return
		}
		if len(name) == 0 || len(name) > maxNameLen || IsIPLiteral(name) {
			t.Fatalf("Normalize(%q) accepted %q", data, name)
		}
		for _, label := range bytes.Split(name, []byte{'.'}) {
			if len(label) == 0 || len(label) > maxLabelLen {
				t.Fatalf("Normalize(%q) accepted label %q", data, label)
			}
		}
		for _, c := range name {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
				t.Fatalf("Normalize(%q) accepted byte %q", data, c)
			}
		}
		if !bytes.EqualFold(name, bytes.TrimSuffix(data, []byte{'.'})) {
			t.Fatalf("Normalize(%q) = %q: not the same name", data, name)
		}
		again, ok := Normalize(bytes.Clone(name))
		if !ok || !bytes.Equal(again, name) {
			t.Fatalf("Normalize not idempotent: %q -> %q -> %q, %v", data, name, again, ok)
		}
	})
}
