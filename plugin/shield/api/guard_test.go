package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	readTok  = "read-token-0123456789"
	writeTok = "write-token-0123456789"
)

func TestTokenScopes(t *testing.T) {
	ts, err := ParseTokens(strings.NewReader("soc:" + readTok + ":read\nops:" + writeTok + ":write\nold:" + tok + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	for h, want := range map[string]Scope{"Bearer " + readTok: ScopeRead, "Bearer " + writeTok: ScopeWrite, "Bearer " + tok: ScopeWrite} {
		if _, s, ok := ts.Authenticate(h); !ok || s != want {
			t.Errorf("Authenticate(%q) = %v, %v; want %v", h, s, ok, want)
		}
	}
	for in, want := range map[string]string{
		"ops:" + tok + ":admin\n": "want read or write",
		"ops:" + tok + ":\n":      "want read or write",
		"ops:" + tok + ":read:x":  "may not hold ':'",
	} {
		if _, err := ParseTokens(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseTokens(%q) = %v, want %q", in, err, want)
		}
	}
}

// forceFake is a Backend with guard rails: a quarantine of 10.0.0.0/8 or
// a block of "com" needs force.
type forceFake struct {
	fake
	forced []bool
}

func (f *forceFake) QuarantineForce(c string, ttl time.Duration, reason, actor string, force bool) (Quarantine, error) {
	f.forced = append(f.forced, force)
	if c == "10.0.0.0/8" && !force {
		return Quarantine{}, fmt.Errorf("%w: over the cap", ErrNeedsForce)
	}
	return Quarantine{Client: c, Actor: actor}, nil
}

func (f *forceFake) BlockForce(n string, ttl time.Duration, reason, actor string, force bool) (Block, error) {
	f.forced = append(f.forced, force)
	if n == "com" && !force {
		return Block{}, fmt.Errorf("%w: com is a public suffix", ErrNeedsForce)
	}
	return Block{Name: n, Actor: actor}, nil
}

// serve sends one request to h from src and returns the recorder.
func serve(h http.Handler, src, method, path, token, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = src
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestScopeForbidsWrites(t *testing.T) {
	ts, _ := ParseTokens(strings.NewReader("soc:" + readTok + ":read\nops:" + writeTok + ":write\nold:" + tok + "\n"))
	f := &forceFake{}
	var forbidden atomic.Int64
	h := NewHandler(f, ts, Options{OnForbidden: func() { forbidden.Add(1) }})
	const src = "127.0.0.1:5000"
	for _, path := range []string{"/v1/status", "/v1/explain?name=x.test", "/v1/quarantine", "/v1/blocks", "/v1/audit"} {
		if w := serve(h, src, "GET", path, readTok, ""); w.Code != 200 {
			t.Errorf("read token GET %s: %d %s", path, w.Code, w.Body)
		}
	}
	if w := serve(h, src, "GET", "/v1/nothing", readTok, ""); w.Code != 404 {
		t.Errorf("read token GET of an unknown page: %d", w.Code)
	}
	writes := []struct{ method, path, body string }{
		{"POST", "/v1/quarantine", `{"client":"10.0.0.5","reason":"r"}`},
		{"DELETE", "/v1/quarantine/10.0.0.5", ""},
		{"POST", "/v1/blocks", `{"name":"evil.test","reason":"r"}`},
		{"DELETE", "/v1/blocks/evil.test", ""},
		{"PUT", "/v1/status", ""},
	}
	for _, wr := range writes {
		w := serve(h, src, wr.method, wr.path, readTok, wr.body)
		if w.Code != 403 || !strings.Contains(w.Body.String(), "read-only") {
			t.Errorf("read token %s %s: %d %s", wr.method, wr.path, w.Code, w.Body)
		}
	}
	if forbidden.Load() != int64(len(writes)) || len(f.calls)+len(f.forced) != 0 {
		t.Errorf("forbidden %d, backend calls %v %v", forbidden.Load(), f.calls, f.forced)
	}
	for _, tk := range []string{writeTok, tok} {
		if w := serve(h, src, "POST", "/v1/blocks", tk, `{"name":"evil.test","reason":"r"}`); w.Code != 201 {
			t.Errorf("write token POST: %d %s", w.Code, w.Body)
		}
	}
}

func TestForce(t *testing.T) {
	ts, _ := ParseTokens(strings.NewReader("ops:" + tok))
	f := &forceFake{}
	h := NewHandler(f, ts, Options{})
	const src = "127.0.0.1:5000"
	if w := serve(h, src, "POST", "/v1/quarantine", tok, `{"client":"10.0.0.0/8","reason":"r"}`); w.Code != 409 || !strings.Contains(w.Body.String(), "over the cap") {
		t.Errorf("over the cap: %d %s", w.Code, w.Body)
	}
	if w := serve(h, src, "POST", "/v1/quarantine", tok, `{"client":"10.0.0.0/8","reason":"r","force":true}`); w.Code != 201 {
		t.Errorf("forced quarantine: %d %s", w.Code, w.Body)
	}
	if w := serve(h, src, "POST", "/v1/blocks", tok, `{"name":"com","reason":"r"}`); w.Code != 409 {
		t.Errorf("public suffix: %d %s", w.Code, w.Body)
	}
	if w := serve(h, src, "POST", "/v1/blocks", tok, `{"name":"com","reason":"r","force":true}`); w.Code != 201 {
		t.Errorf("forced block: %d %s", w.Code, w.Body)
	}
	if fmt.Sprint(f.forced) != "[false true false true]" {
		t.Errorf("force passed as %v", f.forced)
	}
	if w := serve(h, src, "POST", "/v1/blocks", tok, `{"name":"com","reason":"r","force":"yes"}`); w.Code != 400 {
		t.Errorf("force as a string: %d", w.Code)
	}
}

func TestReasonFormatCharacters(t *testing.T) {
	for _, reason := range []string{`evil\u202egnp.exe`, `zero\u200bwidth`, `bom\ufeff`, `line\u2028sep`, `para\u2029sep`, `lri\u2066x`} {
		body := `{"client":"10.0.0.5","reason":"` + reason + `"}`
		if _, _, err := DecodeQuarantine([]byte(body)); err == nil || !strings.Contains(err.Error(), "character") {
			t.Errorf("quarantine reason %s: %v", reason, err)
		}
		body = `{"name":"evil.test","reason":"` + reason + `"}`
		if _, _, err := DecodeBlock([]byte(body)); err == nil {
			t.Errorf("block reason %s accepted", reason)
		}
	}
	ts, _ := ParseTokens(strings.NewReader("ops:" + tok))
	h := NewHandler(&fake{}, ts, Options{})
	if w := serve(h, "127.0.0.1:1", "POST", "/v1/blocks", tok, `{"name":"evil.test","reason":"a\u202eb"}`); w.Code != 400 {
		t.Errorf("bidi override: %d %s", w.Code, w.Body)
	}
}

func TestDuplicateKeys(t *testing.T) {
	for _, body := range []string{
		`{"client":"10.0.0.5","reason":"r","client":"10.0.0.6"}`,
		`{"client":"10.0.0.5","reason":"r","Client":"10.0.0.6"}`,
		`{"client":"10.0.0.5","reason":"r","reason":"r"}`,
		`{"client":"10.0.0.5","reason":"r","force":false,"FORCE":true}`,
	} {
		if _, _, err := DecodeQuarantine([]byte(body)); err == nil || !strings.Contains(err.Error(), "duplicate key") {
			t.Errorf("%s: %v", body, err)
		}
	}
	for _, body := range []string{`{"a":{"b":1,"b":2}}`, `[{"a":1},{"x":[{"k":1,"K":2}]}]`, `{"a":[],"b":{},"a":1}`} {
		if err := checkDuplicateKeys([]byte(body)); err == nil {
			t.Errorf("%s accepted", body)
		}
	}
	for _, body := range []string{`{"a":{"b":1},"b":{"a":2}}`, `[{"a":1},{"a":2}]`, `{"a":[{"a":1}],"c":"a"}`, `{}`, `[]`, `"x"`} {
		if err := checkDuplicateKeys([]byte(body)); err != nil {
			t.Errorf("%s refused: %v", body, err)
		}
	}
	ts, _ := ParseTokens(strings.NewReader("ops:" + tok))
	f := &fake{}
	h := NewHandler(f, ts, Options{})
	if w := serve(h, "127.0.0.1:1", "POST", "/v1/blocks", tok, `{"name":"good.test","reason":"r","name":"com"}`); w.Code != 400 || len(f.calls) != 0 {
		t.Errorf("duplicate name: %d %s %v", w.Code, w.Body, f.calls)
	}
}

// TestThrottle: past a burst of failures, a source gets 429 for every
// request, a right token too, until its allowance refills; other sources
// are not affected.
func TestThrottle(t *testing.T) {
	now := time.Unix(1e9, 0)
	th := NewAuthThrottle(ThrottleOptions{Burst: 5, Refill: 12 * time.Second, Now: func() time.Time { return now }})
	ts, _ := ParseTokens(strings.NewReader("ops:" + tok))
	var fails, throttled atomic.Int64
	h := NewHandler(&fake{}, ts, Options{Throttle: th, OnAuthFailure: func() { fails.Add(1) }, OnThrottle: func() { throttled.Add(1) }})
	const bad, good = "203.0.113.9:4000", "127.0.0.1:4000"
	for i := range 5 {
		if w := serve(h, bad, "GET", "/v1/status", "wrong-token-0123456789", ""); w.Code != 401 {
			t.Fatalf("failure %d: %d", i+1, w.Code)
		}
	}
	w := serve(h, bad, "GET", "/v1/status", tok, "")
	if w.Code != 429 || w.Header().Get("Retry-After") != "12" {
		t.Fatalf("after 5 failures, the right token: %d Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	if w := serve(h, good, "GET", "/v1/status", tok, ""); w.Code != 200 {
		t.Errorf("another source: %d", w.Code)
	}
	// Another address of the same IPv6 /64 is the same source.
	for range 5 {
		serve(h, "[2001:db8::1]:1", "GET", "/v1/status", "", "")
	}
	if w := serve(h, "[2001:db8::ffff]:1", "GET", "/v1/status", tok, ""); w.Code != 429 {
		t.Errorf("same /64: %d", w.Code)
	}
	// One failure allowed per refill.
	now = now.Add(12 * time.Second)
	if w := serve(h, bad, "GET", "/v1/status", "wrong-token-0123456789", ""); w.Code != 401 {
		t.Errorf("after a refill: %d", w.Code)
	}
	if w := serve(h, bad, "GET", "/v1/status", "wrong-token-0123456789", ""); w.Code != 429 {
		t.Errorf("a second failure within the refill: %d", w.Code)
	}
	now = now.Add(time.Hour)
	if w := serve(h, bad, "GET", "/v1/status", tok, ""); w.Code != 200 {
		t.Errorf("an hour later: %d", w.Code)
	}
	if fails.Load() != 11 || throttled.Load() != 3 {
		t.Errorf("%d auth failures, %d throttled; want 11, 3", fails.Load(), throttled.Load())
	}
}

// TestThrottleTableIsBounded: 131,072 failing sources fill a table of
// fixed size; a throttled source among them stays throttled (it owes
// the most, so it is never the one replaced).
func TestThrottleTableIsBounded(t *testing.T) {
	now := time.Unix(1e9, 0)
	th := NewAuthThrottle(ThrottleOptions{Slots: 1024, Now: func() time.Time { return now }})
	sets := len(th.sets)
	attacker := netip.MustParseAddr("203.0.113.9")
	for range 20 {
		th.Fail(attacker)
	}
	for i := range 1 << 17 {
		th.Fail(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	if len(th.sets) != sets || cap(th.sets) != sets {
		t.Fatalf("table grew from %d to %d sets", sets, len(th.sets))
	}
	if _, ok := th.Allow(attacker); ok {
		t.Error("the attacker was evicted by a flood of one-failure sources")
	}
}

// TestThrottleSlowsAGuesser: 1,000 wrong tokens as fast as one client
// can send them over loopback (thousands a second) get at most the
// burst, plus one per refill interval elapsed, through to the token
// check; every other request is refused with 429 and a Retry-After.
func TestThrottleSlowsAGuesser(t *testing.T) {
	ts, _ := ParseTokens(strings.NewReader("ops:" + tok))
	var fails, throttled atomic.Int64
	h := NewHandler(&fake{}, ts, Options{OnAuthFailure: func() { fails.Add(1) }, OnThrottle: func() { throttled.Add(1) }})
	srv, err := Listen("127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	url := "http://" + srv.Addr().String() + "/v1/status"
	start := time.Now()
	codes := map[int]int{}
	deadline := start.Add(30 * time.Second)
	for i := 0; i < 1000 && time.Now().Before(deadline); i++ {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", fmt.Sprintf("Bearer guess-%016d", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes[resp.StatusCode]++
		if resp.StatusCode == 429 {
			if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 12 {
				t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
			}
		}
	}
	elapsed := time.Since(start)
	allowed := DefaultThrottleBurst + int(elapsed/DefaultThrottleRefill) + 1
	t.Logf("1000 guesses in %s (%.0f/s): %v", elapsed, 1000/elapsed.Seconds(), codes)
	if codes[401] > allowed || codes[401]+codes[429] != 1000 || int(fails.Load()) != codes[401] || int(throttled.Load()) != codes[429] {
		t.Errorf("codes %v in %s, at most %d failures may reach the token check", codes, elapsed, allowed)
	}
}

func TestLoadTokensMode(t *testing.T) {
	if !modesMatter {
		t.Skip("file modes mean nothing on " + runtime.GOOS)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens")
	if err := os.WriteFile(path, []byte("ops:"+tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTokens(path); err != nil {
		t.Fatalf("mode 0600: %v", err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620, 0o602} {
		os.Chmod(path, mode)
		if _, err := LoadTokens(path); err == nil || !strings.Contains(err.Error(), "chmod 0600") {
			t.Errorf("mode %o: %v", mode, err)
		}
	}
	os.Chmod(path, 0o400)
	if _, err := LoadTokens(path); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key,
// and returns their paths and a pool that trusts it.
func writeCert(t *testing.T, dir, name string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

func TestListenTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := writeCert(t, dir, "one")
	ts, _ := ParseTokens(strings.NewReader("ops:" + tok))
	srv, err := ListenWith("127.0.0.1:0", NewHandler(&fake{}, ts, Options{}), ListenOptions{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !srv.TLS() {
		t.Error("TLS() is false")
	}
	get := func(pool *x509.CertPool, scheme string) (*http.Response, error) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		req, _ := http.NewRequest("GET", scheme+"://"+srv.Addr().String()+"/v1/status", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := c.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	resp, err := get(pool, "https")
	if err != nil || resp.StatusCode != 200 || resp.TLS == nil || resp.ProtoMajor != 1 || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("https: %v %v", resp, err)
	}
	if resp, err := get(pool, "http"); err == nil && resp.StatusCode == 200 {
		t.Error("plain HTTP answered on the TLS port")
	}
	// A renewed certificate is served to new connections.
	cert2, key2, pool2 := writeCert(t, dir, "two")
	if err := srv.ReloadTLS(cert2, key2); err != nil {
		t.Fatal(err)
	}
	if resp, err := get(pool2, "https"); err != nil || resp.StatusCode != 200 {
		t.Errorf("after ReloadTLS: %v %v", resp, err)
	}
	if err := srv.ReloadTLS(filepath.Join(dir, "missing.pem"), key2); err == nil {
		t.Error("ReloadTLS of a missing file")
	}
	if resp, err := get(pool2, "https"); err != nil || resp.StatusCode != 200 {
		t.Errorf("a failed reload dropped the certificate: %v %v", resp, err)
	}
}

func TestListenRefusesPlainNonLoopback(t *testing.T) {
	h := http.NotFoundHandler()
	// Refused before binding: nothing listens on these.
	for _, addr := range []string{"0.0.0.0:0", "192.0.2.1:0", "[::]:0", "example.com:8080"} {
		if _, err := Listen(addr, h); !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "api_insecure") {
			t.Errorf("Listen(%s) = %v", addr, err)
		}
	}
	// With Insecure the check is passed (192.0.2.1 is not ours, so the
	// bind itself fails).
	if _, err := ListenWith("192.0.2.1:0", h, ListenOptions{Insecure: true}); err == nil || errors.Is(err, ErrInsecure) {
		t.Errorf("Insecure: %v", err)
	}
	if _, err := ListenWith("127.0.0.1:0", h, ListenOptions{CertFile: "x.pem"}); err == nil {
		t.Error("a certificate without a key")
	}
	if _, err := ListenWith("127.0.0.1:0", h, ListenOptions{CertFile: "missing.pem", KeyFile: "missing.key"}); err == nil {
		t.Error("missing certificate files")
	}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", "localhost:0"} {
		s, err := Listen(addr, h)
		if err != nil {
			if addr != "127.0.0.1:0" {
				continue // no IPv6 loopback or no localhost here
			}
			t.Fatalf("Listen(%s): %v", addr, err)
		}
		s.Close()
	}
}
