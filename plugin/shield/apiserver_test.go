package shield

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/dnsshield/shield/plugin/shield/audit"
	"github.com/dnsshield/shield/plugin/shield/contain"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const (
	writeToken = "write-token-0123456789abcdef"
	readToken  = "read-token-0123456789abcdef"
)

// writeTestCert writes a self-signed certificate for host, and its key,
// into dir, and returns their paths.
func writeTestCert(tb testing.TB, dir, host string) (certFile, keyFile string) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: host},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		tb.Fatal(err)
	}
	return certFile, keyFile
}

// apiShield starts a Shield with the API on a free loopback port, a write
// and a read token, and the options in body. It is stopped at cleanup.
func apiShield(t *testing.T, addr, body string) (*Shield, string) {
	t.Helper()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("ops:"+writeToken+"\nviewer:"+readToken+":read\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := parse(caddy.NewTestController("dns", "shield {\nblocklist c2 /nonexistent\napi "+addr+"\napi_tokens "+tokens+"\n"+body+"\n}"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.startContain(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stopContain)
	apiServers.Lock()
	a := apiServers.m[s.warden.api].srv.Addr().String()
	apiServers.Unlock()
	return s, a
}

// freeAddr returns a loopback address with a port that was free.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// apiCall makes one request and returns its status, Retry-After and body.
func apiCall(t *testing.T, c *http.Client, url, token, method, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// TestAPIForce: the quarantine cap and the public-suffix guard refuse with
// 409 over the wire, "force": true overrides both, and what was refused
// was not stored.
func TestAPIForce(t *testing.T) {
	s, addr := apiShield(t, "127.0.0.1:0", "quarantine_cap /24 /64")
	base := "http://" + addr
	c := &http.Client{Timeout: 5 * time.Second}
	steps := []struct {
		method, path, body string
		want               int
		has                string
	}{
		{"POST", "/v1/quarantine", `{"client":"10.0.0.0/25","reason":"first half"}`, 201, ""},
		{"POST", "/v1/quarantine", `{"client":"10.0.0.128/25","reason":"second half"}`, 201, ""},
		{"POST", "/v1/quarantine", `{"client":"10.0.1.1","reason":"one more"}`, 409, "over the quarantine cap"},
		{"POST", "/v1/quarantine", `{"client":"10.0.1.1","reason":"one more","force":false}`, 409, "send force to override"},
		{"POST", "/v1/quarantine", `{"client":"10.0.1.1","reason":"one more","force":true}`, 201, `"client": "10.0.1.1"`},
		{"POST", "/v1/quarantine", `{"client":"fd00::1","reason":"v6 host"}`, 201, `"client": "fd00::/64"`},
		{"POST", "/v1/quarantine", `{"client":"fd00:0:0:1::/64","reason":"second /64"}`, 409, "over the quarantine cap"},
		{"POST", "/v1/blocks", `{"name":"co.uk","reason":"whole suffix"}`, 409, "public suffix"},
		{"POST", "/v1/blocks", `{"name":"com","reason":"a TLD"}`, 409, "public suffix"},
		{"POST", "/v1/blocks", `{"name":"evil.co.uk","reason":"one domain"}`, 201, ""},
		{"POST", "/v1/blocks", `{"name":"duckdns.org","reason":"abused","force":true}`, 201, `"name": "duckdns.org"`},
		{"POST", "/v1/quarantine", `{"client":"10.0.1.2","reason":"dup key","force":false,"force":true}`, 400, "duplicate"},
	}
	for _, st := range steps {
		code, _, body := apiCall(t, c, base+st.path, writeToken, st.method, st.body)
		if code != st.want || !strings.Contains(body, st.has) {
			t.Errorf("%s %s %s: %d %s, want %d with %q", st.method, st.path, st.body, code, body, st.want, st.has)
		}
	}
	q, b := s.warden.store.Counts()
	if q != 4 || b != 2 {
		t.Errorf("store holds %d quarantines and %d blocks, want 4 and 2", q, b)
	}
	if v4, v6 := s.warden.store.SpaceInUse(); v4 != 257 || v6 != 1 {
		t.Errorf("space in use %d addresses and %d /64s, want 257 and 1", v4, v6)
	}
}

// TestAPIReadToken: a read token may read everything and change nothing;
// each refusal is a 403 and counted.
func TestAPIReadToken(t *testing.T) {
	_, addr := apiShield(t, "127.0.0.1:0", "")
	base := "http://" + addr
	c := &http.Client{Timeout: 5 * time.Second}
	for _, path := range []string{"/v1/status", "/v1/quarantine", "/v1/blocks", "/v1/audit", "/v1/explain?name=example.org"} {
		if code, _, body := apiCall(t, c, base+path, readToken, "GET", ""); code != 200 {
			t.Errorf("GET %s with a read token: %d %s", path, code, body)
		}
	}
	before := counterValue(apiForbidden)
	writes := []struct{ method, path, body string }{
		{"POST", "/v1/quarantine", `{"client":"10.0.0.1","reason":"r"}`},
		{"DELETE", "/v1/quarantine/10.0.0.1", ""},
		{"POST", "/v1/blocks", `{"name":"evil.test","reason":"r"}`},
		{"DELETE", "/v1/blocks/evil.test", ""},
	}
	for _, w := range writes {
		if code, _, body := apiCall(t, c, base+w.path, readToken, w.method, w.body); code != 403 || !strings.Contains(body, "read-only") {
			t.Errorf("%s %s with a read token: %d %s, want 403", w.method, w.path, code, body)
		}
	}
	if got := counterValue(apiForbidden) - before; got != float64(len(writes)) {
		t.Errorf("api_forbidden_total grew by %v, want %d", got, len(writes))
	}
	// The write token may.
	if code, _, body := apiCall(t, c, base+"/v1/quarantine", writeToken, "POST", `{"client":"10.0.0.1","reason":"r"}`); code != 201 {
		t.Errorf("POST with a write token: %d %s", code, body)
	}
}

// TestAPIThrottle: past a burst of wrong tokens a source gets 429 with
// Retry-After for every request, the right token too; the refusals are
// counted, and a Corefile reload (a new configuration taking the server
// over) does not forgive it.
func TestAPIThrottle(t *testing.T) {
	addr := freeAddr(t)
	_, got := apiShield(t, addr, "")
	base := "http://" + got
	c := &http.Client{Timeout: 5 * time.Second}
	failures, throttled := counterValue(apiAuthFailures), counterValue(apiThrottled)
	for i := range 5 {
		if code, _, _ := apiCall(t, c, base+"/v1/status", "wrong-token-"+strconv.Itoa(i), "GET", ""); code != 401 {
			t.Fatalf("wrong token %d: %d, want 401", i, code)
		}
	}
	code, retry, _ := apiCall(t, c, base+"/v1/status", "wrong-token-x", "GET", "")
	if n, err := strconv.Atoi(retry); code != 429 || err != nil || n < 1 {
		t.Fatalf("sixth wrong token: %d, Retry-After %q; want 429 and a number of seconds", code, retry)
	}
	if code, _, _ := apiCall(t, c, base+"/v1/status", writeToken, "GET", ""); code != 429 {
		t.Errorf("right token from a throttled source: %d, want 429", code)
	}
	if d := counterValue(apiAuthFailures) - failures; d != 5 {
		t.Errorf("api_auth_failures_total grew by %v, want 5", d)
	}
	if d := counterValue(apiThrottled) - throttled; d != 2 {
		t.Errorf("api_throttled_total grew by %v, want 2", d)
	}

	// A reload: the new configuration takes the server over and keeps
	// the throttle.
	apiShield(t, addr, "")
	if code, retry, _ := apiCall(t, c, base+"/v1/status", writeToken, "GET", ""); code != 429 || retry == "" {
		t.Errorf("after a reload: %d, Retry-After %q; want 429", code, retry)
	}
}

// TestAPITLS: with api_tls the API speaks HTTPS with the certificate
// given, and refuses plain HTTP; a reload that renews the certificate
// serves the new one on the same server, and a reload that drops TLS
// (on loopback) listens again in plain HTTP.
func TestAPITLS(t *testing.T) {
	addr := freeAddr(t)
	dir := t.TempDir()
	cert, key := writeTestCert(t, dir, "127.0.0.1")
	client := func(certFile string) *http.Client {
		pool := x509.NewCertPool()
		data, err := os.ReadFile(certFile)
		if err != nil {
			t.Fatal(err)
		}
		pool.AppendCertsFromPEM(data)
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	old, _ := apiShield(t, addr, "api_tls "+cert+" "+key)
	if code, _, body := apiCall(t, client(cert), "https://"+addr+"/v1/status", readToken, "GET", ""); code != 200 {
		t.Fatalf("HTTPS: %d %s", code, body)
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	if code, _, _ := apiCall(t, plain, "http://"+addr+"/v1/status", readToken, "GET", ""); code != 400 {
		t.Errorf("plain HTTP to the TLS API: %d, want 400 (Go's answer to HTTP on an HTTPS port)", code)
	}

	// A renewed certificate: the next configuration names a new pair.
	dir2 := t.TempDir()
	cert2, key2 := writeTestCert(t, dir2, "127.0.0.1")
	renewed, _ := apiShield(t, addr, "api_tls "+cert2+" "+key2)
	old.stopContain()
	if code, _, body := apiCall(t, client(cert2), "https://"+addr+"/v1/status", readToken, "GET", ""); code != 200 {
		t.Fatalf("HTTPS with the renewed certificate: %d %s", code, body)
	}
	req, _ := http.NewRequest("GET", "https://"+addr+"/v1/status", nil)
	if _, err := client(cert).Do(req); err == nil {
		t.Error("the old certificate is still served after the reload")
	}

	// TLS dropped on loopback: the server listens again, in plain HTTP,
	// and the quarantines carry over.
	renewed.warden.store.Quarantine(netip.MustParsePrefix("10.7.0.1/32"), time.Hour, "r", "test", nil)
	plainCfg, _ := apiShield(t, addr, "")
	renewed.stopContain()
	code, _, body := apiCall(t, plain, "http://"+addr+"/v1/quarantine", readToken, "GET", "")
	if code != 200 || !strings.Contains(body, "10.7.0.1") {
		t.Errorf("plain HTTP after TLS was dropped: %d %s", code, body)
	}
	// And back to TLS.
	apiShield(t, addr, "api_tls "+cert+" "+key)
	plainCfg.stopContain()
	if code, _, body := apiCall(t, client(cert), "https://"+addr+"/v1/status", readToken, "GET", ""); code != 200 {
		t.Errorf("HTTPS again: %d %s", code, body)
	}
}

// escalateShield returns a Shield with an escalate rule that fires on the
// second c2 block, and its audit records, without starting anything.
func escalateShield(t *testing.T, body string) (*Shield, func() []audit.Record) {
	t.Helper()
	s, err := parse(caddy.NewTestController("dns", "shield {\nblocklist c2 /nonexistent\nescalate c2 2 10m 1h\n"+body+"\n}"))
	if err != nil {
		t.Fatal(err)
	}
	s.audit = audit.NewWriter(discardSink{}, audit.Options{Recent: 64})
	t.Cleanup(func() { s.audit.Close() })
	return s, func() []audit.Record { return s.audit.Recent(0) }
}

// discardSink is an audit sink that keeps nothing.
type discardSink struct{}

func (discardSink) Write([]byte) error { return nil }
func (discardSink) Close() error       { return nil }

// blockFrom notes a c2 block of name for a query from src, as act does.
func blockFrom(s *Shield, src, name string) {
	w := &fixedWriter{remote: &net.UDPAddr{IP: net.ParseIP(src), Port: 40000}}
	r := new(dns.Msg)
	r.SetQuestion(name, dns.TypeA)
	q := query{request: &request{w: w, r: r, server: "dns://:53"}, name: []byte(strings.TrimSuffix(name, "."))}
	s.noteEscalation(&q, "c2", nil)
}

// TestEscalateIPv6By64: blocks from two addresses of one /64 count
// together, and the quarantine covers the whole /64 (another address of
// it is contained, the next /64 is not).
func TestEscalateIPv6By64(t *testing.T) {
	s, records := escalateShield(t, "")
	blockFrom(s, "2001:db8:1:2::10", "c2-a.test.")
	blockFrom(s, "2001:db8:1:2:aaaa::77", "c2-b.test.")
	qs := s.warden.store.Quarantines()
	if len(qs) != 1 || qs[0].Client != netip.MustParsePrefix("2001:db8:1:2::/64") {
		t.Fatalf("quarantines %+v, want the /64", qs)
	}
	now := time.Now()
	if s.warden.store.Lookup(netip.MustParseAddr("2001:db8:1:2:ffff::1"), now) == nil {
		t.Error("another address of the /64 is not quarantined")
	}
	if s.warden.store.Lookup(netip.MustParseAddr("2001:db8:1:3::10"), now) != nil {
		t.Error("the next /64 is quarantined")
	}
	var found bool
	for _, r := range records() {
		if r.Action == audit.ActionQuarantine {
			found = true
			if r.RuleName != "2001:db8:1:2::/64" || !strings.HasPrefix(r.Actor, "policy:") {
				t.Errorf("audit record names %q by %q, want the /64", r.RuleName, r.Actor)
			}
		}
	}
	if !found {
		t.Error("no quarantine audit record")
	}
}

// TestEscalateOverCap: an escalation that would pass the quarantine cap
// is not enforced (the ladder never forces); it is counted under the
// "cap" label, not "full", and its audit record says why.
func TestEscalateOverCap(t *testing.T) {
	s, records := escalateShield(t, "quarantine_cap /32 /64")
	if _, err := s.warden.store.Quarantine(netip.MustParsePrefix("10.8.0.1/32"), time.Hour, "r", "test", nil); err != nil {
		t.Fatal(err)
	}
	capped, full := counterValue(containErrors.WithLabelValues("cap")), counterValue(containErrors.WithLabelValues("full"))
	blockFrom(s, "10.8.0.2", "c2-a.test.")
	blockFrom(s, "10.8.0.2", "c2-b.test.")
	if q, _ := s.warden.store.Counts(); q != 1 {
		t.Errorf("%d quarantines, want 1: the cap was passed", q)
	}
	if d := counterValue(containErrors.WithLabelValues("cap")) - capped; d != 1 {
		t.Errorf("contain_errors_total{kind=cap} grew by %v, want 1", d)
	}
	if d := counterValue(containErrors.WithLabelValues("full")) - full; d != 0 {
		t.Errorf("contain_errors_total{kind=full} grew by %v, want 0", d)
	}
	var found bool
	for _, r := range records() {
		if r.Action == audit.ActionQuarantine && strings.Contains(r.Reason, "not enforced: "+contain.ErrOverCap.Error()) {
			found = true
		}
	}
	if !found {
		t.Error("no audit record of the escalation that was not enforced")
	}
}

// TestEscalationsSuppressedMetric: blocks that follow a rule firing within
// its window are counted in escalations_suppressed_total by the time the
// containment stops.
func TestEscalationsSuppressedMetric(t *testing.T) {
	s, _ := escalateShield(t, "")
	if err := s.startContain(); err != nil {
		t.Fatal(err)
	}
	before := counterValue(escalationsSuppressed)
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		blockFrom(s, "10.9.0.1", "c2-"+n+".test.")
	}
	s.stopContain()
	if s.warden.ladder.Suppressed() != 3 {
		t.Fatalf("ladder suppressed %d, want 3", s.warden.ladder.Suppressed())
	}
	if d := counterValue(escalationsSuppressed) - before; d != 3 {
		t.Errorf("escalations_suppressed_total grew by %v, want 3", d)
	}
}
