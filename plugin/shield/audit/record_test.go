package audit

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// doc mirrors the JSON that AppendJSON writes. Decoding with
// DisallowUnknownFields makes a forged or misplaced field an error.
type doc struct {
	Timestamp string `json:"@timestamp"`
	ECS       struct {
		Version string `json:"version"`
	} `json:"ecs"`
	Event struct {
		Kind     string   `json:"kind"`
		Category []string `json:"category"`
		Type     []string `json:"type"`
		Action   string   `json:"action"`
	} `json:"event"`
	Client *struct {
		IP string `json:"ip"`
	} `json:"client"`
	DNS *struct {
		Question struct {
			Name   string `json:"name"`
			Type   string `json:"type"`
			Domain string `json:"registered_domain"`
		} `json:"question"`
	} `json:"dns"`
	Rule *struct {
		Name    string `json:"name"`
		Ruleset string `json:"ruleset"`
	} `json:"rule"`
	Observer *struct {
		Name string `json:"name"`
	} `json:"observer"`
	Shield *struct {
		ListVersion string   `json:"list_version"`
		Mode        string   `json:"mode"`
		Score       *int     `json:"score"`
		Reasons     []string `json:"reasons"`
		Domain      string   `json:"registered_domain"`
		Scope       string   `json:"scope"`
		Actor       string   `json:"actor"`
		Reason      string   `json:"reason"`
		Expires     string   `json:"expires"`
		Evidence    []string `json:"evidence"`
		AnswerMatch string   `json:"answer_match"`
	} `json:"shield"`
}

// decodeLine checks that line is exactly one line of JSON with no raw
// control characters or Unicode line breaks, and decodes it strictly.
func decodeLine(t testing.TB, line []byte) doc {
	t.Helper()
	if len(line) == 0 || line[len(line)-1] != '\n' {
		t.Fatalf("output does not end in a newline: %q", line)
	}
	body := line[:len(line)-1]
	for i, c := range body {
		if c < 0x20 || c == 0x7f {
			t.Fatalf("raw control byte %#x at %d in %q", c, i, line)
		}
	}
	if !utf8.Valid(body) {
		t.Fatalf("output is not valid UTF-8: %q", line)
	}
	for _, r := range string(body) {
		if r == '\u2028' || r == '\u2029' || (r >= 0x80 && r <= 0x9f) {
			t.Fatalf("raw line-breaking rune %U in %q", r, line)
		}
	}
	if !json.Valid(body) {
		t.Fatalf("output is not valid JSON: %q", line)
	}
	var d doc
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("decode %q: %v", line, err)
	}
	if dec.More() {
		t.Fatalf("more than one JSON value in %q", line)
	}
	return d
}

// sanitized is what a string reads as after AppendJSON and a JSON decoder:
// every byte that is not part of valid UTF-8 becomes U+FFFD.
func sanitized(s string) string { return string([]rune(s)) }

func exampleRecord() Record {
	return Record{
		Time:        time.Date(2026, 3, 1, 12, 0, 0, 500_000_000, time.FixedZone("CET", 3600)),
		Action:      ActionBlock,
		Client:      netip.MustParseAddr("192.0.2.7"),
		QName:       "www.evil.example.",
		QType:       "A",
		Ruleset:     "malware",
		RuleName:    "evil.example",
		ListVersion: "2026-03-01T10:00:00Z",
		Score:       87,
		Reasons:     []string{"dga", "nod"},
		Mode:        "enforce",
		Observer:    "ns1",
		Domain:      "evil.example",
	}
}

func TestAppendJSONExample(t *testing.T) {
	r := exampleRecord()
	got := string(AppendJSON(nil, &r))
	want := `{"@timestamp":"2026-03-01T11:00:00.5Z","ecs":{"version":"8.11.0"},` +
		`"event":{"kind":"alert","category":["network"],"type":["denied"],"action":"block"},` +
		`"client":{"ip":"192.0.2.7"},"dns":{"question":{"name":"www.evil.example.","type":"A","registered_domain":"evil.example"}},` +
		`"rule":{"name":"evil.example","ruleset":"malware"},"observer":{"name":"ns1"},` +
		`"shield":{"list_version":"2026-03-01T10:00:00Z","mode":"enforce","score":87,"reasons":["dga","nod"],` +
		`"registered_domain":"evil.example"}}` + "\n"
	if got != want {
		t.Errorf("AppendJSON:\n got %s\nwant %s", got, want)
	}
	decodeLine(t, []byte(got))
}

// TestAppendJSONScope: a detection's verdict scope is shield.scope.
func TestAppendJSONScope(t *testing.T) {
	r := exampleRecord()
	r.Scope = "client"
	got := string(AppendJSON(nil, &r))
	if !strings.Contains(got, `"registered_domain":"evil.example","scope":"client"}}`) {
		t.Errorf("scope not written: %s", got)
	}
	decodeLine(t, []byte(got))
}

func TestAppendJSONContainment(t *testing.T) {
	r := Record{
		Time:     time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		Action:   ActionQuarantine,
		Client:   netip.MustParseAddr("2001:db8::1"),
		Actor:    "api:alice",
		Reason:   "beaconing",
		Expires:  time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC),
		Evidence: []string{"c2.example. x42", ""},
	}
	got := string(AppendJSON(nil, &r))
	want := `{"@timestamp":"2026-03-01T12:00:00Z","ecs":{"version":"8.11.0"},` +
		`"event":{"kind":"event","category":["network"],"type":["start"],"action":"quarantine"},` +
		`"client":{"ip":"2001:db8::1"},` +
		`"shield":{"actor":"api:alice","reason":"beaconing","expires":"2026-03-02T12:00:00Z",` +
		`"evidence":["c2.example. x42",""]}}` + "\n"
	if got != want {
		t.Errorf("AppendJSON:\n got %s\nwant %s", got, want)
	}
}

func TestAppendJSONAnswerMatch(t *testing.T) {
	r := Record{Time: time.Unix(0, 0), Action: ActionBlock, QName: "clean.example.", RuleName: "evil.example",
		Ruleset: "malware", AnswerMatch: "CNAME cdn.evil.example.\n"}
	d := decodeLine(t, AppendJSON(nil, &r))
	if d.Shield == nil || d.Shield.AnswerMatch != "CNAME cdn.evil.example.\n" {
		t.Errorf("answer_match not written: %+v", d.Shield)
	}
}

func TestAppendJSONOmitsEmpty(t *testing.T) {
	r := Record{Time: time.Unix(0, 0)}
	got := string(AppendJSON(nil, &r))
	want := `{"@timestamp":"1970-01-01T00:00:00Z","ecs":{"version":"8.11.0"},` +
		`"event":{"kind":"event","category":["network"],"type":["info"]}}` + "\n"
	if got != want {
		t.Errorf("AppendJSON:\n got %s\nwant %s", got, want)
	}

	// A score of 0 is written when there are reasons for it.
	r.Reasons = []string{"allowlisted"}
	d := decodeLine(t, AppendJSON(nil, &r))
	if d.Shield == nil || d.Shield.Score == nil || *d.Shield.Score != 0 {
		t.Errorf("score 0 with reasons is not written: %+v", d.Shield)
	}
	r.Reasons = nil
	r.Score = -3
	d = decodeLine(t, AppendJSON(nil, &r))
	if d.Shield == nil || d.Shield.Score == nil || *d.Shield.Score != -3 {
		t.Errorf("score -3 is not written: %+v", d.Shield)
	}
}

func TestAppendJSONAppends(t *testing.T) {
	r := exampleRecord()
	one := AppendJSON(nil, &r)
	two := AppendJSON(AppendJSON([]byte(nil), &r), &r)
	if string(two) != string(one)+string(one) {
		t.Errorf("second record does not follow the first:\n%s", two)
	}
}

func TestAppendJSONClient(t *testing.T) {
	tests := []struct {
		addr netip.Addr
		want string // "" means no client object
	}{
		{netip.Addr{}, ""},
		{netip.MustParseAddr("::ffff:192.0.2.1"), "192.0.2.1"},
		{netip.MustParseAddr("fe80::1").WithZone(`eth0"},"x":{"`), "fe80::1"},
		{netip.MustParseAddr("2001:db8::53"), "2001:db8::53"},
	}
	for _, tt := range tests {
		r := Record{Time: time.Unix(1, 0), Client: tt.addr}
		d := decodeLine(t, AppendJSON(nil, &r))
		got := ""
		if d.Client != nil {
			got = d.Client.IP
		}
		if got != tt.want {
			t.Errorf("client %v: ip %q, want %q", tt.addr, got, tt.want)
		}
	}
}

func TestEventClass(t *testing.T) {
	tests := []struct{ action, kind, typ string }{
		{ActionBlock, "alert", "denied"},
		{ActionSinkhole, "alert", "denied"},
		{ActionMonitor, "alert", "allowed"},
		{ActionAlert, "alert", "info"},
		{ActionQuarantine, "event", "start"},
		{ActionRelease, "event", "end"},
		{ActionExpire, "event", "end"},
		{ActionBlockAdd, "event", "info"},
		{ActionBlockRemove, "event", "info"},
		{"something_new", "event", "info"},
		{"", "event", "info"},
	}
	for _, tt := range tests {
		r := Record{Time: time.Unix(1, 0), Action: tt.action}
		d := decodeLine(t, AppendJSON(nil, &r))
		if d.Event.Kind != tt.kind || !slices.Equal(d.Event.Type, []string{tt.typ}) ||
			!slices.Equal(d.Event.Category, []string{"network"}) || d.Event.Action != tt.action {
			t.Errorf("action %q: event %+v, want kind %q type [%s]", tt.action, d.Event, tt.kind, tt.typ)
		}
	}
}

var hostile = []string{
	`evil"}` + "\n" + `{"@timestamp":"1970-01-01T00:00:00Z","event":{"action":"release"}}`,
	"a\\b\\\"c",
	"\x00\x01\x1f\x7f\t\r\n\b\f",
	"line\u2028break\u2029para\u0085nel\u009fc1",
	"\xff\xfe\xc0\xaf\xed\xa0\x80", // invalid bytes, an overlong '/', a surrogate
	"trunc\xe2\x82",                // truncated euro sign
	"ok \u00e9 \u20ac \U0001F600 \ufffd",
	"</script><script>alert(1)</script>",
	strings.Repeat("\"\\\n", 100),
	"",
}

func TestAppendJSONHostile(t *testing.T) {
	for _, s := range hostile {
		r := Record{
			Time:     time.Unix(1, 0),
			Action:   s,
			QName:    s,
			QType:    s,
			Ruleset:  s,
			RuleName: s,
			Reasons:  []string{s, s},
			Mode:     s,
			Observer: s,
			Actor:    s,
			Reason:   s,
			Evidence: []string{s},
			Domain:   s,
			Scope:    s,
		}
		d := decodeLine(t, AppendJSON(nil, &r))
		want := sanitized(s)
		if s == "" {
			if d.DNS != nil || d.Rule != nil || d.Observer != nil {
				t.Errorf("empty strings written: %+v", d)
			}
			continue
		}
		got := []string{d.Event.Action, d.DNS.Question.Name, d.DNS.Question.Type, d.Rule.Ruleset,
			d.Rule.Name, d.Shield.Mode, d.Observer.Name, d.Shield.Actor, d.Shield.Reason, d.Shield.Domain,
			d.DNS.Question.Domain, d.Shield.Scope}
		got = append(got, d.Shield.Reasons...)
		got = append(got, d.Shield.Evidence...)
		if len(got) != 15 {
			t.Fatalf("%q: %d values decoded, want 15", s, len(got))
		}
		for i, g := range got {
			if g != want {
				t.Errorf("%q: value %d decoded as %q, want %q", s, i, g, want)
			}
		}
		if d.Event.Kind != "event" || d.Timestamp != "1970-01-01T00:00:01Z" {
			t.Errorf("%q: hostile input changed fixed fields: %+v", s, d.Event)
		}
	}
}

func TestAppendJSONAllocs(t *testing.T) {
	r := exampleRecord()
	r.QName = hostile[0]
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendJSON(buf[:0], &r)
	})
	if allocs != 0 {
		t.Errorf("AppendJSON allocates %v times per record into a large buffer, want 0", allocs)
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("www.example.com.", "A", "malware", 0, int64(0), []byte{192, 0, 2, 1}, "")
	f.Add(hostile[0], "AAAA", "list\x00", 42, int64(1767225600123456789), []byte{}, "")
	f.Fuzz(func(t *testing.T, name, qtype, reason string, score int, nanos int64, ip []byte, zone string) {
		r := Record{
			Time:    time.Unix(0, nanos),
			Action:  ActionBlock,
			QName:   name,
			QType:   qtype,
			Ruleset: reason,
			Score:   score,
			Reasons: []string{reason, name},
		}
		switch len(ip) {
		case 4:
			r.Client = netip.AddrFrom4([4]byte(ip))
		case 16:
			r.Client = netip.AddrFrom16([16]byte(ip)).WithZone(zone)
		}
		out := AppendJSON(nil, &r)
		if bytes.Count(out, []byte{'\n'}) != 1 {
			t.Fatalf("not exactly one line: %q", out)
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON: %q", out)
		}
		d := decodeLine(t, out)

		if d.DNS == nil && (name != "" || qtype != "") {
			t.Fatalf("dns missing: %q", out)
		}
		if name != "" {
			if got, want := d.DNS.Question.Name, sanitized(name); got != want {
				t.Fatalf("name %q decoded as %q, want %q", name, got, want)
			}
			if utf8.ValidString(name) && d.DNS.Question.Name != name {
				t.Fatalf("valid UTF-8 name %q did not round-trip: %q", name, d.DNS.Question.Name)
			}
		}
		if d.Shield == nil || d.Shield.Score == nil || *d.Shield.Score != score {
			t.Fatalf("score %d lost: %q", score, out)
		}
		if want := []string{sanitized(reason), sanitized(name)}; !slices.Equal(d.Shield.Reasons, want) {
			t.Fatalf("reasons %q, want %q", d.Shield.Reasons, want)
		}
		ts, err := time.Parse(time.RFC3339Nano, d.Timestamp)
		if err != nil || !ts.Equal(r.Time) {
			t.Fatalf("@timestamp %q does not parse back to %v: %v", d.Timestamp, r.Time, err)
		}
		if r.Client.IsValid() {
			want := r.Client.Unmap().WithZone("")
			got, err := netip.ParseAddr(d.Client.IP)
			if err != nil || got != want {
				t.Fatalf("client.ip %q, want %v: %v", d.Client.IP, want, err)
			}
		} else if d.Client != nil {
			t.Fatalf("client written for an invalid address: %q", out)
		}
	})
}

func BenchmarkAppendJSON(b *testing.B) {
	r := exampleRecord()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendJSON(buf[:0], &r)
	}
	b.SetBytes(int64(len(buf)))
}

func TestAppendTimeMatchesRFC3339Nano(t *testing.T) {
	times := []time.Time{
		{},
		time.Date(2026, 3, 1, 12, 0, 0, 500_000_000, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(1999, 1, 2, 3, 4, 5, 1, time.FixedZone("x", -7*3600)),
		time.Date(2026, 6, 7, 8, 9, 10, 120_000, time.Local),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(0, 1767225600123456789),
	}
	for i := range 1000 {
		times = append(times, time.Unix(int64(i)*7919*86_413, int64(i)*1_000_003%1_000_000_000))
	}
	for _, tm := range times {
		got := string(appendTime(nil, tm))
		want := `"` + tm.UTC().Format(time.RFC3339Nano) + `"`
		if got != want {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

func TestPlain8(t *testing.T) {
	// Every byte value at every position of a word, among plain bytes.
	for pos := range 8 {
		for c := range 256 {
			w := []byte("abcdefgh")
			w[pos] = byte(c)
			s := string(w)
			want := true
			for i := range 8 {
				want = want && plain[s[i]]
			}
			if got := plain8(load8(s, 0)); got != want {
				t.Errorf("plain8(%q) = %v, want %v", s, got, want)
			}
		}
	}
}
