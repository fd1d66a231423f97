package test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The scope of detection verdicts over the wire (issue 9): one client,
// or ten, cannot get a domain that 20 clients use blocked for anyone
// else, nor get those clients quarantined; operators list, clear and
// promote verdicts through the API.

const escalateRule = "escalate tunnel,dga,malware 3 10m 1h"

// verdictList is the answer of GET /v1/verdicts.
type verdictList struct {
	Verdicts []struct {
		Domain, Scope, Detector string
		Clients                 []string
		Score                   int
		Start, Expires          time.Time
	}
}

func listVerdicts(t *testing.T, api string) verdictList {
	t.Helper()
	var vl verdictList
	if err := json.Unmarshal([]byte(mustCall(t, api, "GET", "/v1/verdicts", "", 200)), &vl); err != nil {
		t.Fatal(err)
	}
	return vl
}

// blockedOrQuarantined reports whether r is a detection block or the
// quarantine's sinkhole answer.
func blockedOrQuarantined(t *testing.T, r *dns.Msg) bool {
	if sinkholed(r) {
		return true
	}
	return detectBlocked(t, r)
}

// filtered reports whether r carries a detection's EDE 17 (for query
// types the upstream answers with no records, where forwarded cannot
// tell).
func filtered(r *dns.Msg) bool {
	e, ok := ede(r)
	return ok && e.InfoCode == dns.ExtendedErrorCodeFiltered
}

func TestPoisoningPopularDomain(t *testing.T) {
	for _, n := range []int{1, 10} {
		t.Run(fmt.Sprintf("%d attacker addresses", n), func(t *testing.T) {
			env := startContain(t, nil, "quarantine_action sinkhole "+sinkholeIP+"\n"+escalateRule)
			innocent := func(i int) string { return fmt.Sprintf("127.0.2.%d", i+1) }
			attacker := func(i int) string { return fmt.Sprintf("127.0.1.%d", i+1) }
			for i := 0; i < 20; i++ {
				for _, h := range []string{"www", "mail"} {
					if m := askFrom(t, innocent(i), env.udp, h+".victim.example.", dns.TypeA); !forwarded(m) {
						t.Fatalf("%s before the attack: %v", innocent(i), m)
					}
				}
			}
			// Encoded NULL queries (x=N) from the attacker's addresses in
			// turn, until every address got a detection block.
			hit := map[string]bool{}
			for q := 0; q < 400 && len(hit) < n; q++ {
				a := attacker(q % n)
				m := askFrom(t, a, env.udp, fmt.Sprintf("x=%d.victim.example.", q), dns.TypeNULL)
				if e, ok := ede(m); ok && e.InfoCode == dns.ExtendedErrorCodeFiltered {
					hit[a] = true
					for _, rr := range append(m.Ns, m.Answer...) {
						if rr.Header().Ttl > 30 {
							t.Errorf("detection answer TTL %d, want at most 30", rr.Header().Ttl)
						}
					}
				}
			}
			if len(hit) < n {
				t.Fatalf("%d of %d attacker addresses got a detection block", len(hit), n)
			}
			resp := mustCall(t, env.api, "GET", "/v1/explain?name=www.victim.example&client="+attacker(0), "", 200)
			if !strings.Contains(resp, `"scope": "client"`) || !strings.Contains(resp, `"sticky": true`) {
				t.Errorf("explain for the attacker: %s", resp)
			}
			// The attacker goes on: its own detections escalate it.
			for q := 0; q < 4*n; q++ {
				askFrom(t, attacker(q%n), env.udp, fmt.Sprintf("x=more%d.victim.example.", q), dns.TypeNULL)
			}
			// The innocent clients go on resolving, many times each.
			for round := 0; round < 3; round++ {
				for i := 0; i < 20; i++ {
					for _, h := range []string{"www", "mail", "docs"} {
						if m := askFrom(t, innocent(i), env.udp, h+".victim.example.", dns.TypeA); !forwarded(m) {
							t.Fatalf("innocent %s, %s.victim.example: %v", innocent(i), h, m)
						}
					}
				}
			}
			// The attacker's own addresses stay blocked for the domain.
			for i := 0; i < n; i++ {
				if m := askFrom(t, attacker(i), env.udp, "www.victim.example.", dns.TypeA); !blockedOrQuarantined(t, m) {
					t.Errorf("attacker %s forwarded: %v", attacker(i), m)
				}
			}
			vl := listVerdicts(t, env.api)
			if len(vl.Verdicts) != 1 || vl.Verdicts[0].Domain != "victim.example" || vl.Verdicts[0].Scope != "client" ||
				len(vl.Verdicts[0].Clients) != min(n, 8) { // up to 8 earners are listed
				t.Errorf("verdicts %+v", vl)
			}
			resp = mustCall(t, env.api, "GET", "/v1/explain?name=www.victim.example&client="+innocent(0), "", 200)
			if !strings.Contains(resp, `"verdict": "pass"`) || !strings.Contains(resp, `"registered_domain": "victim.example"`) {
				t.Errorf("explain for an innocent client: %s", resp)
			}
			var recs []auditLine
			eventually(t, 5*time.Second, "the popular-domain alert", func() bool {
				recs = readAudit(t, env.audit)
				return len(findAudit(recs, "alert", func(l auditLine) bool {
					return strings.Contains(l.Shield.Reason, "operator") && l.Shield.Scope == "client"
				})) > 0
			})
			quarantined := map[string]bool{}
			for _, q := range findAudit(recs, "quarantine", nil) {
				if !strings.HasPrefix(q.Client.IP, "127.0.1.") {
					t.Errorf("innocent client quarantined: %+v", q)
				}
				quarantined[q.Client.IP] = true
			}
			if len(quarantined) != n {
				t.Errorf("%d of %d attacker addresses quarantined by their own detections", len(quarantined), n)
			}
			for _, b := range findAudit(recs, "block", nil) {
				if !strings.HasPrefix(b.Client.IP, "127.0.1.") || b.Shield.Scope != "client" || b.DNS.Question.RegisteredDomain != "victim.example" {
					t.Errorf("block record %+v", b)
				}
			}
		})
	}
}

// TestVerdictOperations: a one-client tunnel is fleet-wide; an operator
// lists it and clears it (another client resolves the domain again, with
// a verdict_clear record naming the actor); a client verdict on a
// popular domain is promoted with a reason (verdict_promote) and then
// blocks everyone.
func TestVerdictOperations(t *testing.T) {
	env := startContain(t, nil, "")
	tun, other := "127.0.3.1", "127.0.3.2"
	first := 0
	for i := 1; i <= 50 && first == 0; i++ {
		m := askFrom(t, tun, env.udp, fmt.Sprintf("x=%d.tun.example.net.", i), dns.TypeNULL)
		if filtered(m) {
			first = i
		}
	}
	if first == 0 {
		t.Fatal("tunnel not blocked")
	}
	m := askFrom(t, other, env.udp, "www.example.net.", dns.TypeA)
	if !detectBlocked(t, m) {
		t.Fatal("fleet verdict does not block another client")
	}
	if ttl := m.Ns[0].Header().Ttl; ttl > 30 || m.Ns[0].(*dns.SOA).Minttl > 30 {
		t.Errorf("detection block SOA TTL %d, want at most 30", ttl)
	}
	vl := listVerdicts(t, env.api)
	if len(vl.Verdicts) != 1 || vl.Verdicts[0].Domain != "example.net" || vl.Verdicts[0].Scope != "fleet" ||
		len(vl.Verdicts[0].Clients) != 1 || vl.Verdicts[0].Clients[0] != tun || vl.Verdicts[0].Detector != "tunnel" ||
		vl.Verdicts[0].Expires.Before(time.Now().Add(23*time.Hour)) {
		t.Fatalf("verdicts %+v", vl)
	}
	mustCall(t, env.api, "DELETE", "/v1/verdicts/example.net", "", 200)
	mustCall(t, env.api, "DELETE", "/v1/verdicts/example.net", "", 404)
	if m := askFrom(t, other, env.udp, "www.example.net.", dns.TypeA); !forwarded(m) {
		t.Errorf("still blocked after the clear: %v", m)
	}

	// A popular domain: client-scoped, then promoted.
	for i := 0; i < 8; i++ {
		askFrom(t, fmt.Sprintf("127.0.4.%d", i+1), env.udp, "www.shop.example.", dns.TypeA)
	}
	for i := 0; i < 60; i++ {
		if filtered(askFrom(t, tun, env.udp, fmt.Sprintf("x=%d.shop.example.", i), dns.TypeNULL)) {
			break
		}
	}
	if vl := listVerdicts(t, env.api); len(vl.Verdicts) != 1 || vl.Verdicts[0].Scope != "client" {
		t.Fatalf("verdicts %+v", vl)
	}
	if m := askFrom(t, other, env.udp, "www.shop.example.", dns.TypeA); !forwarded(m) {
		t.Fatalf("client verdict blocks another client: %v", m)
	}
	mustCall(t, env.api, "POST", "/v1/verdicts/shop.example/promote", `{}`, 400)
	resp := mustCall(t, env.api, "POST", "/v1/verdicts/shop.example/promote", `{"reason":"confirmed c2 by the SOC"}`, 200)
	if !strings.Contains(resp, `"scope": "fleet"`) {
		t.Errorf("promote answer %s", resp)
	}
	if m := askFrom(t, other, env.udp, "www.shop.example.", dns.TypeA); !detectBlocked(t, m) {
		t.Errorf("not blocked after the promotion: %v", m)
	}
	eventually(t, 5*time.Second, "verdict_clear and verdict_promote records", func() bool {
		recs := readAudit(t, env.audit)
		clear := findAudit(recs, "verdict_clear", func(l auditLine) bool {
			return l.Shield.Actor == "api:ops" && l.Shield.Domain == "example.net" && l.Shield.Scope == "fleet"
		})
		promote := findAudit(recs, "verdict_promote", func(l auditLine) bool {
			return l.Shield.Actor == "api:ops" && l.Shield.Reason == "confirmed c2 by the SOC" && l.Shield.Scope == "fleet"
		})
		return len(clear) == 1 && len(promote) == 1
	})
}
