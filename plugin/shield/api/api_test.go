package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const tok = "s3cret-token-0123456789"

func TestParseTokens(t *testing.T) {
	good := "# ops team\n\nops:" + tok + "\nsoc:another-token-abcdefgh\n"
	ts, err := ParseTokens(strings.NewReader(good))
	if err != nil || ts.Len() != 2 {
		t.Fatalf("%v, %v", ts, err)
	}
	for in, want := range map[string]string{
		"":                                    "no tokens",
		"# only a comment\n":                  "no tokens",
		"ops\n":                               "want NAME:TOKEN",
		"ops:short\n":                         "shorter than",
		"bad name:" + tok + "\n":              "invalid token name",
		":" + tok + "\n":                      "invalid token name",
		"ops:" + tok + "\nops:" + tok + "x\n": "duplicate",
		"ops:token with spaces inside it\n":   "space",
		"ops:" + tok + "\x01\n":               "non-printable",
	} {
		if _, err := ParseTokens(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseTokens(%q) = %v, want %q", in, err, want)
		}
	}
	for h, want := range map[string]string{
		"Bearer " + tok:                 "ops",
		"Bearer another-token-abcdefgh": "soc",
		"Bearer " + tok + "x":           "",
		"bearer " + tok:                 "ops", // the scheme is case-insensitive (RFC 9110, 11.1)
		"BEARER  " + tok:                "",
		"Basic " + tok:                  "",
		tok:                             "",
		"Bearer ":                       "",
		"":                              "",
	} {
		if name, ok := ts.Check(h); name != want || ok != (want != "") {
			t.Errorf("Check(%q) = %q, %v", h, name, ok)
		}
	}
}

// fake is a Backend that records the calls it gets.
type fake struct{ calls []string }

func (f *fake) Status() Status { return Status{Mode: "enforce"} }
func (f *fake) Explain(name string, c netip.Addr) (Explanation, error) {
	if name == "bad" {
		return Explanation{}, fmt.Errorf("%w: bad name", ErrBadRequest)
	}
	return Explanation{Name: name, Client: c.String(), Verdict: "pass"}, nil
}
func (f *fake) Quarantines() []Quarantine { return nil }
func (f *fake) Quarantine(c string, ttl time.Duration, reason, actor string) (Quarantine, error) {
	f.calls = append(f.calls, fmt.Sprintf("quarantine %s %s %s %s", c, ttl, reason, actor))
	return Quarantine{Client: c, Actor: actor}, nil
}
func (f *fake) Release(c, actor string) (Quarantine, error) {
	f.calls = append(f.calls, "release "+c+" "+actor)
	return Quarantine{}, fmt.Errorf("%w: none", ErrNotFound)
}
func (f *fake) Blocks() []Block { return nil }
func (f *fake) Block(n string, ttl time.Duration, reason, actor string) (Block, error) {
	f.calls = append(f.calls, fmt.Sprintf("block %s %s %s", n, ttl, actor))
	return Block{Name: n}, nil
}
func (f *fake) Unblock(n, actor string) (Block, error) {
	f.calls = append(f.calls, "unblock "+n)
	return Block{Name: n}, nil
}
func (f *fake) Audit(limit int) []json.RawMessage {
	return []json.RawMessage{json.RawMessage(fmt.Sprintf(`{"limit":%d}`, limit))}
}

func (f *fake) Verdicts() []Verdict {
	return []Verdict{{Domain: "tun.example", Scope: "client", Clients: []string{"10.0.0.9"}, Score: 75, Detector: "tunnel"}}
}
func (f *fake) ClearVerdict(d, actor string) (Verdict, error) {
	f.calls = append(f.calls, "clear "+d+" "+actor)
	if d != "tun.example" {
		return Verdict{}, fmt.Errorf("%w: no verdict on %s", ErrNotFound, d)
	}
	return Verdict{Domain: d, Scope: "client"}, nil
}
func (f *fake) PromoteVerdict(d, reason, actor string) (Verdict, error) {
	f.calls = append(f.calls, "promote "+d+" "+reason+" "+actor)
	return Verdict{Domain: d, Scope: "fleet"}, nil
}

func TestHandler(t *testing.T) {
	ts, _ := ParseTokens(strings.NewReader("ops:" + tok))
	f := &fake{}
	var fails atomic.Int64
	reqs := map[string]int{}
	h := NewHandler(f, ts, Options{OnAuthFailure: func() { fails.Add(1) }, OnRequest: func(ep string, code int) { reqs[fmt.Sprintf("%s %d", ep, code)]++ }})
	srv, err := Listen("127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	base := "http://" + srv.Addr().String()
	do := func(method, path, auth, ctype, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.ProtoMajor != 1 {
			t.Errorf("protocol %s", resp.Proto)
		}
		return resp.StatusCode, string(b)
	}
	auth := "Bearer " + tok
	tests := []struct {
		method, path, auth, ctype, body string
		code                            int
		contains                        string
	}{
		{"GET", "/v1/status", "", "", "", 401, "bearer"},
		{"GET", "/v1/status", "Bearer wrong-token-0123456789", "", "", 401, "bearer"},
		{"GET", "/v1/nothing", "", "", "", 401, ""},
		{"GET", "/v1/status", auth, "", "", 200, `"mode": "enforce"`},
		{"GET", "/v1/nothing", auth, "", "", 404, ""},
		{"PUT", "/v1/status", auth, "", "", 405, ""},
		{"GET", "/v1/explain?name=evil.test&client=10.0.0.5", auth, "", "", 200, `"client": "10.0.0.5"`},
		{"GET", "/v1/explain?client=10.0.0.5", auth, "", "", 400, "name is required"},
		{"GET", "/v1/explain?name=x.test&client=10.0.0.0/24", auth, "", "", 400, "not an IP"},
		{"GET", "/v1/explain?name=bad", auth, "", "", 400, "bad name"},
		{"POST", "/v1/quarantine", auth, "application/json", `{"client":"10.0.0.5","ttl":"2h","reason":"beacon"}`, 201, `"actor": "api:ops"`},
		{"POST", "/v1/quarantine", auth, "", `{"client":"10.0.0.5","reason":"beacon"}`, 201, ""},
		{"POST", "/v1/quarantine", auth, "text/plain", `{"client":"10.0.0.5","reason":"r"}`, 415, "content type"},
		{"POST", "/v1/quarantine", auth, "", `{"client":"10.0.0.5","reason":"r","file":"/etc/passwd"}`, 400, "unknown field"},
		{"POST", "/v1/quarantine", auth, "", `{"client":"10.0.0.5","reason":"r"} {}`, 400, "after the object"},
		{"POST", "/v1/quarantine", auth, "", `{"client":"10.0.0.5",`, 400, "malformed"},
		{"POST", "/v1/quarantine", auth, "", `[]`, 400, "malformed"},
		{"POST", "/v1/quarantine", auth, "", `{"client":"10.0.0.5","ttl":"-1h","reason":"r"}`, 400, "positive"},
		{"POST", "/v1/quarantine", auth, "", `{"client":"10.0.0.5","ttl":"soon","reason":"r"}`, 400, "not a duration"},
		{"POST", "/v1/quarantine", auth, "", `{"client":"10.0.0.5","ttl":"1h"}`, 400, "reason is required"},
		{"POST", "/v1/quarantine", auth, "", `{"ttl":"1h","reason":"r"}`, 400, "client is required"},
		{"POST", "/v1/quarantine", auth, "", `{"client":"10.0.0.5","reason":"` + strings.Repeat("x", MaxBody) + `"}`, 413, "larger than"},
		{"DELETE", "/v1/quarantine/10.0.0.0/24", auth, "", "", 404, "none"},
		{"POST", "/v1/blocks", auth, "", `{"name":"evil.test","ttl":"30m","reason":"campaign"}`, 201, `"name": "evil.test"`},
		{"DELETE", "/v1/blocks/evil.test", auth, "", "", 200, ""},
		{"GET", "/v1/audit?limit=5", auth, "", "", 200, `"limit": 5`},
		{"GET", "/v1/audit", auth, "", "", 200, `"limit": 100`},
		{"GET", "/v1/audit?limit=0", auth, "", "", 400, "limit"},
		{"GET", "/v1/audit?limit=100000", auth, "", "", 400, "limit"},
		{"GET", "/v1/quarantine", auth, "", "", 200, `"quarantines": []`},
		{"GET", "/v1/blocks", auth, "", "", 200, `"blocks": []`},
	}
	for _, tc := range tests {
		code, body := do(tc.method, tc.path, tc.auth, tc.ctype, tc.body)
		if code != tc.code || !strings.Contains(body, tc.contains) {
			t.Errorf("%s %s %s: %d %q; want %d containing %q", tc.method, tc.path, tc.body, code, body, tc.code, tc.contains)
		}
	}
	if fails.Load() != 3 {
		t.Errorf("%d auth failures counted, want 3", fails.Load())
	}
	want := []string{"quarantine 10.0.0.5 2h0m0s beacon api:ops", "quarantine 10.0.0.5 0s beacon api:ops", "release 10.0.0.0/24 api:ops", "block evil.test 30m0s api:ops", "unblock evil.test"}
	if strings.Join(f.calls, "|") != strings.Join(want, "|") {
		t.Errorf("backend calls\n%q\nwant\n%q", f.calls, want)
	}
	if reqs["status 401"] != 2 || reqs["other 401"] != 1 || reqs["quarantine 201"] != 2 || reqs["quarantine 413"] != 1 {
		t.Errorf("request counts %v", reqs)
	}
}

func TestListenAddr(t *testing.T) {
	for in, want := range map[string]string{":8053": "127.0.0.1:8053", "[::1]:80": "[::1]:80", "0.0.0.0:1": "0.0.0.0:1", "8053": "", "host:": ""} {
		got, err := ListenAddr(in)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("ListenAddr(%q) = %q, %v", in, got, err)
		}
	}
	if !IsLoopback("127.0.0.1:1") || !IsLoopback("[::1]:1") || IsLoopback("0.0.0.0:1") || IsLoopback("10.0.0.1:1") {
		t.Error("IsLoopback")
	}
}

// TestNoH2C: an HTTP/2 prior-knowledge (h2c) preface gets an HTTP/1.1
// error, not an HTTP/2 SETTINGS frame.
func TestNoH2C(t *testing.T) {
	ts, _ := ParseTokens(strings.NewReader("ops:" + tok))
	srv, err := Listen("127.0.0.1:0", NewHandler(&fake{}, ts, Options{}))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := net.DialTimeout("tcp", srv.Addr().String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := io.ReadAtLeast(c, buf, 8)
	if got := string(buf[:n]); !strings.HasPrefix(got, "HTTP/1.1 ") {
		t.Errorf("h2c preface answered with %q", got)
	}
}

// TestReasonControlCharacters: a reason goes into the EXTRA-TEXT of DNS
// answers, log lines and audit records, so a line break or another
// control character (which could forge a log line) is refused.
func TestReasonControlCharacters(t *testing.T) {
	for _, reason := range []string{`a\nb`, `a\r[ERROR] forged`, `tab\there`, `nul\u0000`, `esc\u001b[31m`, `del\u007f`, `c1\u0085`} {
		body := `{"client":"10.0.0.5","reason":"` + reason + `"}`
		if _, _, err := DecodeQuarantine([]byte(body)); err == nil || !strings.Contains(err.Error(), "control character") {
			t.Errorf("quarantine reason %s: %v", reason, err)
		}
		body = `{"name":"evil.test","reason":"` + reason + `"}`
		if _, _, err := DecodeBlock([]byte(body)); err == nil || !strings.Contains(err.Error(), "control character") {
			t.Errorf("block reason %s: %v", reason, err)
		}
	}
	for _, reason := range []string{"beacon to c2", "Ransomware – ticket #4711 (Zoë)", "x"} {
		if _, _, err := DecodeQuarantine([]byte(`{"client":"10.0.0.5","reason":"` + reason + `"}`)); err != nil {
			t.Errorf("reason %q refused: %v", reason, err)
		}
	}
}

// TestVerdictEndpoints: list, clear and promote, with the actor of the
// token, a write token for changes, a required reason for promote, and
// strict bodies.
func TestVerdictEndpoints(t *testing.T) {
	ts, _ := ParseTokens(strings.NewReader("ops:" + tok + "\nsoc:" + readTok + ":read\n"))
	f := &fake{}
	reqs := map[string]int{}
	srv, err := Listen("127.0.0.1:0", NewHandler(f, ts, Options{OnRequest: func(ep string, code int) { reqs[fmt.Sprintf("%s %d", ep, code)]++ }}))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	base := "http://" + srv.Addr().String()
	for _, tc := range []struct {
		method, path, auth, body string
		code                     int
		contains                 string
	}{
		{"GET", "/v1/verdicts", "", "", 401, "bearer"},
		{"DELETE", "/v1/verdicts/tun.example", "", "", 401, "bearer"},
		{"POST", "/v1/verdicts/tun.example/promote", "", `{"reason":"r"}`, 401, "bearer"},
		{"GET", "/v1/verdicts", tok, "", 200, `"scope": "client"`},
		{"GET", "/v1/verdicts", readTok, "", 200, `"clients": [`},
		{"DELETE", "/v1/verdicts/tun.example", readTok, "", 403, "read-only"},
		{"POST", "/v1/verdicts/tun.example/promote", readTok, `{"reason":"r"}`, 403, "read-only"},
		{"DELETE", "/v1/verdicts/tun.example", tok, "", 200, `"domain": "tun.example"`},
		{"DELETE", "/v1/verdicts/other.example", tok, "", 404, "no verdict"},
		{"POST", "/v1/verdicts/tun.example/promote", tok, `{"reason":"confirmed c2"}`, 200, `"scope": "fleet"`},
		{"POST", "/v1/verdicts/tun.example/promote", tok, `{}`, 400, "reason is required"},
		{"POST", "/v1/verdicts/tun.example/promote", tok, `{"reason":"a\nb"}`, 400, "control character"},
		{"POST", "/v1/verdicts/tun.example/promote", tok, `{"reason":"r","scope":"fleet"}`, 400, "unknown field"},
		{"POST", "/v1/verdicts/tun.example/promote", tok, ``, 400, "malformed"},
		{"GET", "/v1/verdicts/tun.example/promote", tok, "", 405, ""},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
		if tc.auth != "" {
			req.Header.Set("Authorization", "Bearer "+tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.contains) {
			t.Errorf("%s %s %s: %d %q; want %d containing %q", tc.method, tc.path, tc.body, resp.StatusCode, b, tc.code, tc.contains)
		}
	}
	want := "clear tun.example api:ops|clear other.example api:ops|promote tun.example confirmed c2 api:ops"
	if got := strings.Join(f.calls, "|"); got != want {
		t.Errorf("backend calls\n%q\nwant\n%q", got, want)
	}
	if reqs["verdicts 200"] != 4 || reqs["verdicts 401"] != 3 || reqs["verdicts 403"] != 2 {
		t.Errorf("request counts %v", reqs)
	}
}

func FuzzDecodePromote(f *testing.F) {
	f.Add([]byte(`{"reason":"confirmed c2"}`))
	f.Add([]byte(`{"reason":""}`))
	f.Add([]byte(`{"reason":"x","extra":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodePromote(data)
		if err == nil && (strings.TrimSpace(req.Reason) == "" || len(req.Reason) > maxReason) {
			t.Fatalf("accepted %+v", req)
		}
	})
}
