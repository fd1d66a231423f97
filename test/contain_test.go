package test

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/miekg/dns"
)

const (
	apiToken      = "ops-token-0123456789abcdef"
	readToken     = "viewer-token-0123456789abcdef" // scope read
	quarantinedIP = "127.0.0.5"
	sinkholeIP    = "10.9.9.9"
)

// findAudit returns the records with action for which match holds.
func findAudit(lines []auditLine, action string, match func(auditLine) bool) []auditLine {
	var out []auditLine
	for _, l := range lines {
		if l.Event.Action == action && (match == nil || match(l)) {
			out = append(out, l)
		}
	}
	return out
}

// containEnv is a running resolver with the management API.
type containEnv struct {
	up      *upstream
	dir     string
	udp     string
	api     string
	metrics string
	audit   string
	state   string
	stop    func()
	inst    *caddy.Instance
	file    string // the Corefile
}

// startContain starts CoreDNS with a c2 blocklist, an edr walled garden,
// the API and an audit file; body adds shield options. stop ends it
// early (it also runs at cleanup).
func startContain(t *testing.T, env *containEnv, body string) *containEnv {
	t.Helper()
	if env == nil {
		env = &containEnv{up: startUpstream(t), dir: t.TempDir()}
		env.api = freePort(t)
		env.audit = filepath.Join(env.dir, "audit.json")
		env.state = filepath.Join(env.dir, "state.json")
		writeFile(t, env.dir, "c2.txt", "evil.test\nc2-a.test\nc2-b.test\nc2-c.test\n")
		writeFile(t, env.dir, "edr.txt", "edr.test\npatch.example\n")
		tokens := writeFile(t, env.dir, "tokens", "# operators\nops:"+apiToken+"\nviewer:"+readToken+":read\n")
		if err := os.Chmod(tokens, 0o600); err != nil { // shield refuses a tokens file others can read
			t.Fatal(err)
		}
	}
	var (
		inst     *caddy.Instance
		corefile string
		err      error
	)
	for attempt := 0; ; attempt++ {
		// The prometheus plugin starts a listener once per address and
		// process, so every start gets a fresh metrics port.
		env.metrics = freePort(t)
		d := env.dir
		corefile = shieldCorefile(env.up, "prometheus "+env.metrics, fmt.Sprintf(
			"blocklist c2 %s\nwalled_garden edr %s\napi %s\napi_tokens %s\naudit %s\n%s",
			filepath.Join(d, "c2.txt"), filepath.Join(d, "edr.txt"), env.api, filepath.Join(d, "tokens"), env.audit, body))
		startMu.Lock()
		caddy.Quiet, dnsserver.Quiet = true, true
		inst, err = caddy.Start(corefileInput(corefile))
		startMu.Unlock()
		if err == nil {
			break
		}
		// freePort races with other sockets (client connections of
		// earlier tests take ephemeral ports too): try other ports.
		if attempt < 3 && strings.Contains(err.Error(), "address already in use") {
			if strings.Contains(err.Error(), env.api) {
				env.api = freePort(t)
			}
			continue
		}
		t.Fatalf("starting CoreDNS: %v\n%s", err, corefile)
	}
	env.inst, env.file = inst, corefile
	var once sync.Once
	env.stop = func() { once.Do(func() { env.inst.ShutdownCallbacks(); env.inst.Stop() }) }
	t.Cleanup(env.stop)
	env.udp = inst.Servers()[0].LocalAddr().String()
	return env
}

// call sends one API request with token (none if empty) and returns the
// status and the body.
func call(t testing.TB, addr, token, method, path, body string) (int, string) {
	t.Helper()
	code, resp, _ := callFrom(t, "", addr, token, method, path, body)
	return code, resp
}

// callFrom is call from the loopback source address src ("" for any),
// and returns the response's headers too. The API throttles failed
// authentications per source, so tests that fail on purpose spread
// their failures over sources.
func callFrom(t testing.TB, src, addr, token, method, path, body string) (int, string, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	c := http.Client{Timeout: 5 * time.Second}
	if src != "" {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c.Transport = &http.Transport{DialContext: d.DialContext}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func mustCall(t testing.TB, addr, method, path, body string, want int) string {
	t.Helper()
	code, resp := call(t, addr, apiToken, method, path, body)
	if code != want {
		t.Fatalf("%s %s %s: %d %s, want %d", method, path, body, code, resp, want)
	}
	return resp
}

// askFrom sends one query over UDP with EDNS0 from the source address src.
func askFrom(t testing.TB, src, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m, err := exchangeFrom(src, addr, name, qtype)
	if err != nil {
		t.Fatalf("query %s from %s: %v", name, src, err)
	}
	return m
}

func exchangeFrom(src, addr, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, false)
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second,
		Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

// sinkholed reports whether r is the quarantine's sinkhole answer with an
// EDE 15 naming the quarantine.
func sinkholed(r *dns.Msg) bool {
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		return false
	}
	a, ok := r.Answer[0].(*dns.A)
	e, hasEDE := ede(r)
	return ok && a.A.String() == sinkholeIP && hasEDE && e.InfoCode == dns.ExtendedErrorCodeBlocked &&
		strings.Contains(e.ExtraText, "quarantined")
}

func TestQuarantineWalledGarden(t *testing.T) {
	env := startContain(t, nil, "quarantine_action sinkhole "+sinkholeIP)
	resp := mustCall(t, env.api, "POST", "/v1/quarantine", `{"client":"`+quarantinedIP+`","ttl":"2h","reason":"beacon to c2"}`, 201)
	var q struct {
		Client, Actor, Reason string
		Expires               time.Time
	}
	if err := json.Unmarshal([]byte(resp), &q); err != nil || q.Client != quarantinedIP || q.Actor != "api:ops" ||
		q.Expires.Sub(time.Now()) < 119*time.Minute || q.Expires.Sub(time.Now()) > 121*time.Minute {
		t.Fatalf("quarantine answer %s (%v)", resp, err)
	}

	// From the quarantined address: everything is sinkholed...
	m := askFrom(t, quarantinedIP, env.udp, "www.example.test.", dns.TypeA)
	if !sinkholed(m) {
		t.Fatalf("quarantined client got %v", m)
	}
	if e, _ := ede(m); !strings.Contains(e.ExtraText, "beacon to c2") {
		t.Errorf("EDE text %q does not name the quarantine", e.ExtraText)
	}
	if m.Answer[0].Header().Ttl > 30 {
		t.Errorf("sinkhole TTL %d, want at most 30", m.Answer[0].Header().Ttl)
	}
	// ...AAAA has no quarantine address: NODATA, still with the EDE.
	if m := askFrom(t, quarantinedIP, env.udp, "www.example.test.", dns.TypeAAAA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 || len(m.Ns) != 1 {
		t.Errorf("AAAA from quarantined client: %v", m)
	}
	// ...except the walled garden, which resolves normally.
	for _, n := range []string{"edr.test.", "update.patch.example."} {
		if m := askFrom(t, quarantinedIP, env.udp, n, dns.TypeA); !forwarded(m) {
			t.Errorf("walled garden %s from quarantined client: %v", n, m)
		}
	}
	if up := env.up.count("www.example.test."); up != 0 {
		t.Errorf("upstream saw %d queries of the quarantined client", up)
	}
	// Another client is untouched.
	if m := askFrom(t, "127.0.0.1", env.udp, "www.example.test.", dns.TypeA); !forwarded(m) {
		t.Errorf("127.0.0.1 was affected: %v", m)
	}

	// The list shows it.
	if resp := mustCall(t, env.api, "GET", "/v1/quarantine", "", 200); !strings.Contains(resp, `"client": "`+quarantinedIP+`"`) {
		t.Errorf("list: %s", resp)
	}

	// Explain says what would happen, and records and counts nothing.
	var lines []auditLine
	eventually(t, 3*time.Second, "audit records of the quarantined queries", func() bool {
		lines = readAudit(t, env.audit)
		return len(findAudit(lines, "walled_garden", nil)) == 2
	})
	before := len(lines)
	qBefore := metricValue(t, env.metrics, "coredns_shield_queries_total", map[string]string{"action": "quarantine"})
	resp = mustCall(t, env.api, "GET", "/v1/explain?name=www.example.test&client="+quarantinedIP, "", 200)
	if !strings.Contains(resp, `"verdict": "quarantine_sinkhole"`) || !strings.Contains(resp, "beacon to c2") {
		t.Errorf("explain: %s", resp)
	}
	resp = mustCall(t, env.api, "GET", "/v1/explain?name=edr.test&client="+quarantinedIP, "", 200)
	if !strings.Contains(resp, `"verdict": "walled_garden"`) {
		t.Errorf("explain garden: %s", resp)
	}
	resp = mustCall(t, env.api, "GET", "/v1/explain?name=x.evil.test&client=127.0.0.1", "", 200)
	if !strings.Contains(resp, `"verdict": "nxdomain"`) || !strings.Contains(resp, `"list": "c2"`) || !strings.Contains(resp, `"rule": "evil.test"`) {
		t.Errorf("explain list hit: %s", resp)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(readAudit(t, env.audit)); n != before {
		t.Errorf("explain wrote %d audit records", n-before)
	}
	if q := metricValue(t, env.metrics, "coredns_shield_queries_total", map[string]string{"action": "quarantine"}); q != qBefore {
		t.Errorf("explain counted queries: %v -> %v", qBefore, q)
	}
	if v := metricValue(t, env.metrics, "coredns_shield_quarantines_active", nil); v != 1 {
		t.Errorf("quarantines_active %v", v)
	}

	// Every query of the quarantined client is recorded; the quarantine too.
	if got := findAudit(lines, "quarantine", func(l auditLine) bool {
		return l.Rule.Name == quarantinedIP && l.Shield.Actor == "api:ops" && l.Shield.Reason == "beacon to c2" && l.Shield.Expires != ""
	}); len(got) != 1 {
		t.Errorf("quarantine record missing: %+v", lines)
	}
	if got := findAudit(lines, "sinkhole", func(l auditLine) bool {
		return l.Client.IP == quarantinedIP && l.Rule.Ruleset == "quarantine" && l.DNS.Question.Name == "www.example.test."
	}); len(got) != 2 {
		t.Errorf("%d sinkhole records of the quarantined client, want 2 (A and AAAA)", len(got))
	}
	if got := findAudit(lines, "walled_garden", func(l auditLine) bool { return l.Client.IP == quarantinedIP && l.Rule.Ruleset == "edr" }); len(got) != 2 {
		t.Errorf("walled garden records %+v", got)
	}
	if got := findAudit(lines, "sinkhole", func(l auditLine) bool { return l.Client.IP == "127.0.0.1" }); len(got) != 0 {
		t.Errorf("records of the other client: %+v", got)
	}
}

func TestQuarantineExpiryAndRelease(t *testing.T) {
	env := startContain(t, nil, "")
	// nxdomain is the default without a sinkhole action.
	mustCall(t, env.api, "POST", "/v1/quarantine", `{"client":"`+quarantinedIP+`","ttl":"1s","reason":"short"}`, 201)
	m := askFrom(t, quarantinedIP, env.udp, "www.example.test.", dns.TypeA)
	if e, ok := ede(m); m.Rcode != dns.RcodeNameError || !ok || !strings.Contains(e.ExtraText, "quarantined") {
		t.Fatalf("quarantined: %v", m)
	}
	eventually(t, 5*time.Second, "the quarantine expires", func() bool {
		return forwarded(askFrom(t, quarantinedIP, env.udp, "www.example.test.", dns.TypeA))
	})
	eventually(t, 5*time.Second, "an expire record", func() bool {
		return len(findAudit(readAudit(t, env.audit), "expire", func(l auditLine) bool { return l.Rule.Name == quarantinedIP })) == 1
	})
	if resp := mustCall(t, env.api, "GET", "/v1/quarantine", "", 200); strings.Contains(resp, quarantinedIP) {
		t.Errorf("expired quarantine still listed: %s", resp)
	}

	// A network, released early.
	mustCall(t, env.api, "POST", "/v1/quarantine", `{"client":"127.0.0.0/29","reason":"segment"}`, 201)
	if m := askFrom(t, quarantinedIP, env.udp, "www.example.test.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Fatalf("network quarantine did not cover %s: %v", quarantinedIP, m)
	}
	if m := askFrom(t, "127.0.0.9", env.udp, "www.example.test.", dns.TypeA); !forwarded(m) {
		t.Fatalf("127.0.0.9 is outside 127.0.0.0/29: %v", m)
	}
	mustCall(t, env.api, "DELETE", "/v1/quarantine/127.0.0.0/29", "", 200)
	if m := askFrom(t, quarantinedIP, env.udp, "www.example.test.", dns.TypeA); !forwarded(m) {
		t.Fatalf("released client still blocked: %v", m)
	}
	mustCall(t, env.api, "DELETE", "/v1/quarantine/127.0.0.0/29", "", 404)
	eventually(t, 3*time.Second, "a release record", func() bool {
		return len(findAudit(readAudit(t, env.audit), "release", func(l auditLine) bool {
			return l.Rule.Name == "127.0.0.0/29" && l.Shield.Actor == "api:ops"
		})) == 1
	})
}

func TestEmergencyBlock(t *testing.T) {
	env := startContain(t, nil, "")
	if m := askFrom(t, "127.0.0.1", env.udp, "x.fresh-campaign.test.", dns.TypeA); !forwarded(m) {
		t.Fatalf("before the block: %v", m)
	}
	mustCall(t, env.api, "POST", "/v1/blocks", `{"name":"Fresh-Campaign.test.","ttl":"1h","reason":"phishing wave"}`, 201)
	for _, src := range []string{"127.0.0.1", "127.0.0.7"} {
		m := askFrom(t, src, env.udp, "x.fresh-campaign.test.", dns.TypeA)
		if e, ok := ede(m); m.Rcode != dns.RcodeNameError || !ok || !strings.Contains(e.ExtraText, "emergency block fresh-campaign.test: phishing wave") {
			t.Errorf("from %s: %v", src, m)
		}
	}
	// The answer is not cached much longer than the block may last: an
	// unblock takes effect within 30 s, as a release does.
	if m := askFrom(t, "127.0.0.1", env.udp, "x.fresh-campaign.test.", dns.TypeA); len(m.Ns) != 1 {
		t.Errorf("no SOA: %v", m)
	} else if soa, ok := m.Ns[0].(*dns.SOA); !ok || soa.Hdr.Ttl > 30 || soa.Minttl > 30 {
		t.Errorf("emergency block answer cached for %v", m.Ns[0])
	}
	if resp := mustCall(t, env.api, "GET", "/v1/blocks", "", 200); !strings.Contains(resp, `"name": "fresh-campaign.test"`) {
		t.Errorf("blocks: %s", resp)
	}
	if v := metricValue(t, env.metrics, "coredns_shield_emergency_blocks_active", nil); v != 1 {
		t.Errorf("emergency_blocks_active %v", v)
	}
	mustCall(t, env.api, "DELETE", "/v1/blocks/fresh-campaign.test", "", 200)
	if m := askFrom(t, "127.0.0.1", env.udp, "x.fresh-campaign.test.", dns.TypeA); !forwarded(m) {
		t.Errorf("after unblock: %v", m)
	}
	eventually(t, 3*time.Second, "block_add and block_remove records", func() bool {
		lines := readAudit(t, env.audit)
		is := func(l auditLine) bool { return l.Rule.Name == "fresh-campaign.test" && l.Shield.Actor == "api:ops" }
		return len(findAudit(lines, "block_add", is)) == 1 && len(findAudit(lines, "block_remove", is)) == 1 &&
			len(findAudit(lines, "block", func(l auditLine) bool { return l.Rule.Ruleset == "emergency" })) == 3
	})
}

func TestEscalationByListHits(t *testing.T) {
	const rule = "escalate c2 3 1m 1h"
	env := startContain(t, nil, "quarantine_action sinkhole "+sinkholeIP+"\n"+rule)
	src := "127.0.0.6"
	before := metricValue(t, env.metrics, "coredns_shield_escalations_total", map[string]string{"rule": rule, "mode": "enforce"})
	for i, n := range []string{"c2-a.test.", "c2-b.test."} {
		if m := askFrom(t, src, env.udp, n, dns.TypeA); m.Rcode != dns.RcodeNameError {
			t.Fatalf("hit %d: %v", i, m)
		}
	}
	// Two hits: below the threshold.
	if m := askFrom(t, src, env.udp, "www.example.test.", dns.TypeA); !forwarded(m) {
		t.Fatalf("quarantined after two hits: %v", m)
	}
	askFrom(t, src, env.udp, "x.c2-c.test.", dns.TypeA)
	// The third hit quarantined the client.
	if m := askFrom(t, src, env.udp, "www.example.test.", dns.TypeA); !sinkholed(m) {
		t.Fatalf("not quarantined after three hits: %v", m)
	}
	if m := askFrom(t, src, env.udp, "edr.test.", dns.TypeA); !forwarded(m) {
		t.Errorf("walled garden after escalation: %v", m)
	}
	if m := askFrom(t, "127.0.0.1", env.udp, "www.example.test.", dns.TypeA); !forwarded(m) {
		t.Errorf("127.0.0.1 affected: %v", m)
	}
	if after := metricValue(t, env.metrics, "coredns_shield_escalations_total", map[string]string{"rule": rule, "mode": "enforce"}); after != before+1 {
		t.Errorf("escalations %v -> %v", before, after)
	}
	resp := mustCall(t, env.api, "GET", "/v1/quarantine", "", 200)
	if !strings.Contains(resp, `"actor": "policy:`+rule+`"`) || !strings.Contains(resp, "x.c2-c.test.") {
		t.Errorf("quarantine list: %s", resp)
	}
	eventually(t, 3*time.Second, "a quarantine record with the evidence", func() bool {
		got := findAudit(readAudit(t, env.audit), "quarantine", func(l auditLine) bool {
			return l.Client.IP == src && l.Shield.Actor == "policy:"+rule && len(l.Shield.Evidence) == 3 &&
				strings.HasPrefix(l.Shield.Evidence[2], "x.c2-c.test. (c2") && l.Shield.Expires != ""
		})
		return len(got) == 1
	})
}

func TestEscalationMonitorMode(t *testing.T) {
	const rule = "escalate any 2 1m 1h"
	env := startContain(t, nil, "mode monitor\n"+rule)
	src := "127.0.0.8"
	askFrom(t, src, env.udp, "c2-a.test.", dns.TypeA)
	askFrom(t, src, env.udp, "c2-b.test.", dns.TypeA)
	if m := askFrom(t, src, env.udp, "www.example.test.", dns.TypeA); !forwarded(m) {
		t.Fatalf("monitor mode enforced the escalation: %v", m)
	}
	if resp := mustCall(t, env.api, "GET", "/v1/quarantine", "", 200); strings.Contains(resp, src) {
		t.Errorf("monitor mode quarantined: %s", resp)
	}
	eventually(t, 3*time.Second, "a monitor-mode quarantine record", func() bool {
		return len(findAudit(readAudit(t, env.audit), "quarantine", func(l auditLine) bool {
			return l.Client.IP == src && l.Shield.Mode == "monitor" && l.Shield.Actor == "policy:"+rule
		})) == 1
	})
}

func TestContainPersistence(t *testing.T) {
	env := startContain(t, nil, "state "+filepath.Join(t.TempDir(), "unused.json"))
	env.stop()
	env = startContain(t, env, "state "+env.state)
	mustCall(t, env.api, "POST", "/v1/quarantine", `{"client":"`+quarantinedIP+`","ttl":"3h","reason":"persist me"}`, 201)
	mustCall(t, env.api, "POST", "/v1/blocks", `{"name":"kept.test","reason":"persist me too"}`, 201)
	eventually(t, 3*time.Second, "the state file", func() bool {
		data, err := os.ReadFile(env.state)
		return err == nil && strings.Contains(string(data), "kept.test") && strings.Contains(string(data), quarantinedIP)
	})
	if fi, err := os.Stat(env.state); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode: %v %v", fi, err)
	}
	env.stop()

	env = startContain(t, env, "state "+env.state)
	if m := askFrom(t, quarantinedIP, env.udp, "www.example.test.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Errorf("quarantine lost across the restart: %v", m)
	}
	if m := askFrom(t, "127.0.0.1", env.udp, "kept.test.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Errorf("emergency block lost across the restart: %v", m)
	}
	resp := mustCall(t, env.api, "GET", "/v1/quarantine", "", 200)
	if !strings.Contains(resp, `"reason": "persist me"`) || !strings.Contains(resp, `"actor": "api:ops"`) {
		t.Errorf("restored quarantine: %s", resp)
	}
	// A corrupt state file is set aside and the server starts empty.
	corruptBefore := metricValue(t, env.metrics, "coredns_shield_contain_errors_total", map[string]string{"kind": "corrupt"})
	env.stop()
	os.WriteFile(env.state, []byte(`{"version":1,"quarantines":[{"client":`), 0o600)
	env = startContain(t, env, "state "+env.state)
	if m := askFrom(t, quarantinedIP, env.udp, "www.example.test.", dns.TypeA); !forwarded(m) {
		t.Errorf("after a corrupt state file: %v", m)
	}
	aside, _ := filepath.Glob(env.state + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("corrupt file not set aside: %v", aside)
	}
	if data, _ := os.ReadFile(aside[0]); !strings.Contains(string(data), `"quarantines":[{"client":`) {
		t.Errorf("set-aside file content %q", data)
	}
	if v := metricValue(t, env.metrics, "coredns_shield_contain_errors_total", map[string]string{"kind": "corrupt"}); v != corruptBefore+1 {
		t.Errorf("corrupt count %v -> %v", corruptBefore, v)
	}
	// The server works and writes a good file again.
	mustCall(t, env.api, "POST", "/v1/blocks", `{"name":"after.test","reason":"r"}`, 201)
	eventually(t, 3*time.Second, "a new state file", func() bool {
		data, err := os.ReadFile(env.state)
		return err == nil && strings.Contains(string(data), "after.test")
	})
}

// TestContainUnreadableState: a state file that cannot be read (here a
// directory where the file should be) is not corrupt and may hold good
// state; it is set aside, never overwritten.
func TestContainUnreadableState(t *testing.T) {
	env := startContain(t, nil, "state "+filepath.Join(t.TempDir(), "unused.json"))
	env.stop()
	if err := os.Mkdir(env.state, 0o700); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(env.state, "precious")
	if err := os.WriteFile(keep, []byte("do not lose"), 0o600); err != nil {
		t.Fatal(err)
	}
	env = startContain(t, env, "state "+env.state)
	aside, _ := filepath.Glob(env.state + ".unreadable-*")
	if len(aside) != 1 {
		t.Fatalf("unreadable state not set aside: %v", aside)
	}
	if data, err := os.ReadFile(filepath.Join(aside[0], "precious")); err != nil || string(data) != "do not lose" {
		t.Fatalf("set-aside content lost: %q %v", data, err)
	}
	if v := metricValue(t, env.metrics, "coredns_shield_contain_errors_total", map[string]string{"kind": "load"}); v < 1 {
		t.Errorf("load error not counted: %v", v)
	}
	mustCall(t, env.api, "POST", "/v1/blocks", `{"name":"after.test","reason":"r"}`, 201)
	eventually(t, 3*time.Second, "a new state file", func() bool {
		data, err := os.ReadFile(env.state)
		return err == nil && strings.Contains(string(data), "after.test")
	})
}

func TestAPIAuth(t *testing.T) {
	env := startContain(t, nil, "")
	before := metricValue(t, env.metrics, "coredns_shield_api_auth_failures_total", nil)
	for i, tok := range []string{"", "wrong-token-0123456789abcdef", apiToken + "x", apiToken[:len(apiToken)-1]} {
		// Three failures per source, within the throttle's burst.
		src := fmt.Sprintf("127.0.0.%d", 10+i)
		for _, ep := range []struct{ method, path, body string }{
			{"GET", "/v1/status", ""}, {"POST", "/v1/quarantine", `{"client":"` + quarantinedIP + `","reason":"x"}`}, {"DELETE", "/v1/blocks/x.test", ""},
		} {
			if code, body, _ := callFrom(t, src, env.api, tok, ep.method, ep.path, ep.body); code != 401 || strings.Contains(body, "quarantines") {
				t.Errorf("token %q %s %s: %d %s", tok, ep.method, ep.path, code, body)
			}
		}
	}
	if after := metricValue(t, env.metrics, "coredns_shield_api_auth_failures_total", nil); after != before+12 {
		t.Errorf("auth failures %v -> %v, want +12", before, after)
	}
	if m := askFrom(t, quarantinedIP, env.udp, "www.example.test.", dns.TypeA); !forwarded(m) {
		t.Errorf("an unauthenticated request quarantined the client: %v", m)
	}
	resp := mustCall(t, env.api, "GET", "/v1/status", "", 200)
	for _, want := range []string{`"name": "c2"`, `"kind": "walled_garden"`, `"entries": 4`, `"quarantines": 0`, `"last_reload"`} {
		if !strings.Contains(resp, want) {
			t.Errorf("status lacks %s: %s", want, resp)
		}
	}
	if v := metricValue(t, env.metrics, "coredns_shield_api_requests_total", map[string]string{"endpoint": "status", "code": "401"}); v < 4 {
		t.Errorf("api_requests_total{status,401} = %v", v)
	}
}

// TestAPIThrottleAndScopes: a read token reads and gets 403 for a change;
// a source that fails to authenticate five times gets 429 with
// Retry-After for every request, a right token too, while other sources
// are served; both refusals are counted.
func TestAPIThrottleAndScopes(t *testing.T) {
	env := startContain(t, nil, "")
	forbidden := metricValue(t, env.metrics, "coredns_shield_api_forbidden_total", nil)
	if code, body := call(t, env.api, readToken, "GET", "/v1/quarantine", ""); code != 200 {
		t.Errorf("GET with a read token: %d %s", code, body)
	}
	for _, ep := range []struct{ method, path, body string }{
		{"POST", "/v1/quarantine", `{"client":"` + quarantinedIP + `","reason":"x"}`}, {"DELETE", "/v1/blocks/x.test", ""},
	} {
		if code, body := call(t, env.api, readToken, ep.method, ep.path, ep.body); code != 403 {
			t.Errorf("%s %s with a read token: %d %s, want 403", ep.method, ep.path, code, body)
		}
	}
	if m := askFrom(t, quarantinedIP, env.udp, "www.example.test.", dns.TypeA); !forwarded(m) {
		t.Errorf("a read token quarantined the client: %v", m)
	}
	if v := metricValue(t, env.metrics, "coredns_shield_api_forbidden_total", nil); v != forbidden+2 {
		t.Errorf("api_forbidden_total %v -> %v, want +2", forbidden, v)
	}

	const guesser = "127.0.2.1"
	throttled := metricValue(t, env.metrics, "coredns_shield_api_throttled_total", nil)
	for i := range 5 {
		if code, _, _ := callFrom(t, guesser, env.api, fmt.Sprintf("guess-%d-0123456789abcdef", i), "GET", "/v1/status", ""); code != 401 {
			t.Fatalf("guess %d: %d, want 401", i, code)
		}
	}
	for _, tok := range []string{"guess-5-0123456789abcdef", apiToken} {
		code, _, h := callFrom(t, guesser, env.api, tok, "GET", "/v1/status", "")
		retry := h.Get("Retry-After")
		if n, err := strconv.Atoi(retry); code != 429 || err != nil || n < 1 {
			t.Errorf("token %q from a throttled source: %d, Retry-After %q; want 429 and seconds", tok, code, retry)
		}
	}
	if code, body, _ := callFrom(t, "127.0.2.2", env.api, apiToken, "GET", "/v1/status", ""); code != 200 {
		t.Errorf("another source: %d %s", code, body)
	}
	if v := metricValue(t, env.metrics, "coredns_shield_api_throttled_total", nil); v != throttled+2 {
		t.Errorf("api_throttled_total %v -> %v, want +2", throttled, v)
	}
}

func TestAPIBadInput(t *testing.T) {
	env := startContain(t, nil, "quarantine_ttl 1h 24h")
	tests := []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{"POST", "/v1/quarantine", `{"client":"127.0.0.5","reason":"` + strings.Repeat("a", 10<<10) + `"}`, 413, "larger than"},
		{"POST", "/v1/quarantine", `{"client":"127.0.0.5",`, 400, "malformed"},
		{"POST", "/v1/quarantine", `{"client":"127.0.0.5","reason":"r","state":"/etc/passwd"}`, 400, "unknown field"},
		{"POST", "/v1/quarantine", `"127.0.0.5"`, 400, "malformed"},
		{"POST", "/v1/quarantine", `{"client":"127.0.0.0/33","reason":"r"}`, 400, "not an address or CIDR"},
		{"POST", "/v1/quarantine", `{"client":"not-an-ip","reason":"r"}`, 400, "not an address or CIDR"},
		{"POST", "/v1/quarantine", `{"client":"0.0.0.0/0","reason":"r"}`, 400, "broader than"},
		{"POST", "/v1/quarantine", `{"client":"127.0.0.5","ttl":"-1h","reason":"r"}`, 400, "positive"},
		{"POST", "/v1/quarantine", `{"client":"127.0.0.5","ttl":"1000h","reason":"r"}`, 400, "above the maximum"},
		{"POST", "/v1/quarantine", `{"client":"127.0.0.5","ttl":"9999999999999h","reason":"r"}`, 400, "not a duration"},
		{"POST", "/v1/quarantine", `{"client":"127.0.0.5","ttl":"1h"}`, 400, "reason is required"},
		{"DELETE", "/v1/quarantine/999.1.1.1", "", 400, "not an address"},
		{"POST", "/v1/blocks", `{"name":"bad name!","reason":"r"}`, 400, "not a domain name"},
		{"POST", "/v1/blocks", `{"name":"x.test","ttl":"-5m","reason":"r"}`, 400, "positive"},
		{"POST", "/v1/blocks", `{"name":"x.test","ttl":"100000h","reason":"r"}`, 400, "above the maximum"},
		{"GET", "/v1/explain?name=x.test&client=10.0.0.0/8", "", 400, "not an IP"},
		{"GET", "/v1/audit?limit=-1", "", 400, "limit"},
	}
	for _, tc := range tests {
		code, body := call(t, env.api, apiToken, tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, tc.msg) {
			t.Errorf("%s %s %.60s: %d %s; want %d with %q", tc.method, tc.path, tc.body, code, body, tc.code, tc.msg)
		}
	}
	if resp := mustCall(t, env.api, "GET", "/v1/quarantine", "", 200); !strings.Contains(resp, `"quarantines": []`) {
		t.Errorf("bad input changed state: %s", resp)
	}
	if resp := mustCall(t, env.api, "GET", "/v1/blocks", "", 200); !strings.Contains(resp, `"blocks": []`) {
		t.Errorf("bad input changed state: %s", resp)
	}
	if m := askFrom(t, quarantinedIP, env.udp, "www.example.test.", dns.TypeA); !forwarded(m) {
		t.Errorf("client affected: %v", m)
	}
	if v := metricValue(t, env.metrics, "coredns_shield_api_requests_total", map[string]string{"endpoint": "quarantine", "code": "413"}); v < 1 {
		t.Errorf("413 not counted")
	}
}

// TestAPIConcurrentWithQueries changes quarantines and blocks through the
// API while clients query. Run with -race. Bounded in count and time.
func TestAPIConcurrentWithQueries(t *testing.T) {
	env := startContain(t, nil, "state "+filepath.Join(t.TempDir(), "state.json")+"\nescalate c2 5 1m 1m")
	const (
		queriers  = 4
		perQuery  = 200
		apiCalls  = 40
		maxTime   = 15 * time.Second
		stableSrc = "127.0.0.1"
	)
	deadline := time.Now().Add(maxTime)
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for i := range queriers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := fmt.Sprintf("127.0.0.%d", 20+i)
			for j := 0; j < perQuery && time.Now().Before(deadline); j++ {
				name := fmt.Sprintf("n%d.example.test.", j)
				if j%10 == 0 {
					name = "c2-a.test."
				}
				if j%2 == 0 {
					src = stableSrc
				} else {
					src = fmt.Sprintf("127.0.0.%d", 20+i)
				}
				if _, err := exchangeFrom(src, env.udp, name, dns.TypeA); err != nil {
					select {
					case errs <- fmt.Sprintf("query %s from %s: %v", name, src, err):
					default:
					}
				}
			}
		}()
	}
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < apiCalls && time.Now().Before(deadline); j++ {
				client := fmt.Sprintf("127.0.0.%d", 20+(i+j)%queriers)
				name := fmt.Sprintf("b%d-%d.test", i, j%5)
				var code int
				switch j % 6 {
				case 0:
					code, _ = call(t, env.api, apiToken, "POST", "/v1/quarantine", `{"client":"`+client+`","ttl":"1m","reason":"load"}`)
				case 1:
					code, _ = call(t, env.api, apiToken, "DELETE", "/v1/quarantine/"+client, "")
				case 2:
					code, _ = call(t, env.api, apiToken, "POST", "/v1/blocks", `{"name":"`+name+`","ttl":"1m","reason":"load"}`)
				case 3:
					code, _ = call(t, env.api, apiToken, "DELETE", "/v1/blocks/"+name, "")
				case 4:
					code, _ = call(t, env.api, apiToken, "GET", "/v1/explain?name=n1.example.test&client="+client, "")
				default:
					code, _ = call(t, env.api, apiToken, "GET", "/v1/status", "")
				}
				if code >= 500 {
					select {
					case errs <- fmt.Sprintf("API call %d: status %d", j, code):
					default:
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	// Clean up through the API and check the end state is consistent.
	var list struct {
		Quarantines []struct{ Client string } `json:"quarantines"`
	}
	json.Unmarshal([]byte(mustCall(t, env.api, "GET", "/v1/quarantine", "", 200)), &list)
	for _, q := range list.Quarantines {
		mustCall(t, env.api, "DELETE", "/v1/quarantine/"+q.Client, "", 200)
	}
	if m := askFrom(t, stableSrc, env.udp, "final.example.test.", dns.TypeA); !forwarded(m) {
		t.Errorf("after the load: %v", m)
	}
	if m := askFrom(t, "127.0.0.20", env.udp, "final.example.test.", dns.TypeA); !forwarded(m) {
		t.Errorf("released client after the load: %v", m)
	}
}

// TestContainCorefileReload reloads the Corefile as the reload plugin
// does: the new configuration starts before the old one stops. The API
// must keep its port and answer for the new configuration, and the
// quarantine and block must carry over, here without a state file.
func TestContainCorefileReload(t *testing.T) {
	env := startContain(t, nil, "")
	mustCall(t, env.api, "POST", "/v1/quarantine", `{"client":"`+quarantinedIP+`","reason":"across reload"}`, 201)
	mustCall(t, env.api, "POST", "/v1/blocks", `{"name":"reload.test","reason":"across reload"}`, 201)
	startMu.Lock()
	inst, err := env.inst.Restart(corefileInput(env.file))
	startMu.Unlock()
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	env.inst = inst
	env.udp = inst.Servers()[0].LocalAddr().String()
	if m := askFrom(t, quarantinedIP, env.udp, "www.example.test.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Errorf("quarantine lost in the reload: %v", m)
	}
	if m := askFrom(t, "127.0.0.1", env.udp, "reload.test.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Errorf("emergency block lost in the reload: %v", m)
	}
	// The API still listens, and changes reach the new configuration.
	mustCall(t, env.api, "DELETE", "/v1/quarantine/"+quarantinedIP, "", 200)
	if m := askFrom(t, quarantinedIP, env.udp, "www.example.test.", dns.TypeA); !forwarded(m) {
		t.Errorf("release after the reload did not reach the server: %v", m)
	}
}

// TestEscalationByDetector quarantines a client after three blocks by the
// tunnel detector (detection is on by default).
func TestEscalationByDetector(t *testing.T) {
	const rule = "escalate tunnel 3 1m 1h"
	env := startContain(t, nil, "quarantine_action sinkhole "+sinkholeIP+"\n"+rule)
	src := "127.0.0.11"
	rng := rand.New(rand.NewPCG(11, 12))
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+"
	blocks, quarantined := 0, false
	for i := 0; i < 80 && !quarantined; i++ {
		b := make([]byte, 40)
		for j := range b {
			b[j] = alpha[rng.IntN(len(alpha))]
		}
		m := askFrom(t, src, env.udp, fmt.Sprintf("q+%s%d.tun.example.net.", b, i), dns.TypeTXT)
		if e, ok := ede(m); ok {
			switch {
			case strings.Contains(e.ExtraText, "quarantined"):
				quarantined = true
			case e.InfoCode == dns.ExtendedErrorCodeFiltered:
				blocks++
			}
		}
	}
	if !quarantined || blocks != 3 {
		t.Fatalf("after %d detector blocks, quarantined %v; want quarantine after exactly 3", blocks, quarantined)
	}
	if m := askFrom(t, src, env.udp, "www.example.test.", dns.TypeA); !sinkholed(m) {
		t.Errorf("not quarantined: %v", m)
	}
	if m := askFrom(t, src, env.udp, "edr.test.", dns.TypeA); !forwarded(m) {
		t.Errorf("walled garden: %v", m)
	}
	// Explain reports the detector's sticky verdict for another client.
	if resp := mustCall(t, env.api, "GET", "/v1/explain?name=x.tun.example.net&client=127.0.0.1", "", 200); !strings.Contains(resp, `"verdict": "block"`) || !strings.Contains(resp, `"sticky": true`) {
		t.Errorf("explain after the detection: %s", resp)
	}
	eventually(t, 3*time.Second, "a quarantine record naming the tunnel evidence", func() bool {
		return len(findAudit(readAudit(t, env.audit), "quarantine", func(l auditLine) bool {
			return l.Client.IP == src && l.Shield.Actor == "policy:"+rule && len(l.Shield.Evidence) == 3 &&
				strings.Contains(l.Shield.Evidence[0], "(tunnel")
		})) == 1
	})
}

// TestContainFailedReload: a Corefile reload that fails after shield has
// started (here a new server block whose port is taken) leaves the old
// configuration serving. The API must keep managing that configuration,
// not the discarded one, and the discarded one must not keep running.
func TestContainFailedReload(t *testing.T) {
	env := startContain(t, nil, "state "+filepath.Join(t.TempDir(), "state.json"))
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, port, _ := net.SplitHostPort(busy.Addr().String())
	bad := env.file + "\n.:" + port + " {\n bind 127.0.0.1\n whoami\n}\n"
	startMu.Lock()
	inst, err := env.inst.Restart(corefileInput(bad))
	startMu.Unlock()
	if err == nil {
		env.inst = inst
		t.Fatal("the reload onto a taken port succeeded")
	}
	if inst != env.inst {
		t.Fatal("a failed reload replaced the instance")
	}
	// The old configuration still serves, and the API reaches it.
	mustCall(t, env.api, "POST", "/v1/quarantine", `{"client":"`+quarantinedIP+`","reason":"after a failed reload"}`, 201)
	if m := askFrom(t, quarantinedIP, env.udp, "www.example.test.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Fatalf("a quarantine made through the API after a failed reload did not reach the server: %v", m)
	}
	if resp := mustCall(t, env.api, "GET", "/v1/quarantine", "", 200); !strings.Contains(resp, quarantinedIP) {
		t.Errorf("quarantine list: %s", resp)
	}
	mustCall(t, env.api, "DELETE", "/v1/quarantine/"+quarantinedIP, "", 200)
	if m := askFrom(t, quarantinedIP, env.udp, "www.example.test.", dns.TypeA); !forwarded(m) {
		t.Errorf("release after a failed reload did not reach the server: %v", m)
	}
	// A later reload that works still hands the API over.
	startMu.Lock()
	inst, err = env.inst.Restart(corefileInput(env.file))
	startMu.Unlock()
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	env.inst = inst
	env.udp = inst.Servers()[0].LocalAddr().String()
	mustCall(t, env.api, "POST", "/v1/blocks", `{"name":"later.test","reason":"after the good reload"}`, 201)
	if m := askFrom(t, "127.0.0.1", env.udp, "later.test.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Errorf("block after a good reload: %v", m)
	}
	// Nothing holds the API server once the last configuration stops.
	env.stop()
	if c, err := net.DialTimeout("tcp", env.api, 2*time.Second); err == nil {
		c.Close()
		t.Error("the API still listens after shutdown")
	}
}
