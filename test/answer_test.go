package test

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The authoritative test zone: CNAME chains into a listed name, names
// that resolve to listed addresses, a public name that resolves to a
// private address, and the names the RPZ zone below acts on.
const answerZone = `$ORIGIN example.test.
$TTL 60
@            SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 60
@            NS  ns
ns           A   127.0.0.1
clean        A   192.0.2.20
cloaked      CNAME hop1
hop1         CNAME hop2
hop2         CNAME tracker.bad.example.test.
tracker.bad  A   192.0.2.10
svc          HTTPS 1 pool.bad.example.test. alpn=h2
c2           A   192.0.2.1
c2           A   203.0.113.66
c2v6         AAAA 2001:db8:bad::66
rebind       A   10.0.0.5
printer.lan  A   192.168.1.10
ipnodata     A   192.0.2.77
pass         A   10.0.0.9
loop1        CNAME loop2
loop2        CNAME loop1
`

// answerRPZ uses every RPZ trigger and action; the lines shield cannot
// act on (rpz-nsdname, rpz-nsip, rpz-tcp-only) are counted as unsupported.
const answerRPZ = `$TTL 60
@ SOA localhost. root.localhost. 1 3600 600 86400 60
  NS localhost.
$ORIGIN rpz.local.
rpzq.example.test             CNAME .
nodata.example.test           CNAME *.
drop.example.test             CNAME rpz-drop.
pass.example.test             CNAME rpz-passthru.
garden.example.test           CNAME walled.example.test.
portal.example.test           A     192.0.2.80
portal.example.test           AAAA  2001:db8::80
32.30.0.0.127.rpz-client-ip   CNAME .
32.31.0.0.127.rpz-client-ip   CNAME rpz-drop.
32.32.0.0.127.rpz-client-ip   CNAME rpz-passthru.
32.77.2.0.192.rpz-ip          CNAME *.
ns.bad.example.rpz-nsdname    CNAME .
32.1.2.0.192.rpz-nsip         CNAME .
tcp.example.test              CNAME rpz-tcp-only.
`

// startAuthority starts a second CoreDNS, on 127.0.0.2, that serves
// zone as example.test. with the file plugin of the same binary.
func startAuthority(t *testing.T, zone string) string {
	t.Helper()
	dir := t.TempDir()
	p := writeFile(t, dir, "example.test.zone", zone)
	r := startCoreDNS(t, fmt.Sprintf("example.test.:0 {\n bind 127.0.0.2\n file %s\n}\n", p))
	return r.udp
}

func TestAnswerSideOverTheWire(t *testing.T) {
	auth := startAuthority(t, answerZone)
	dir := t.TempDir()
	names := writeFile(t, dir, "names.txt", "bad.example.test\n")
	ips := writeFile(t, dir, "c2.txt", "# C2\n203.0.113.66 c2.example.test\n2001:db8:bad::/48 c2v6.example.test\n")
	rpz := writeFile(t, dir, "policy.rpz", answerRPZ)
	auditPath := filepath.Join(dir, "audit.json")
	metricsAddr := freePort(t)
	r := startCoreDNS(t, fmt.Sprintf(`.:0 {
 bind 127.0.0.1
 prometheus %s
 shield {
  blocklist names %s
  iplist c2 %s hosts
  blocklist policy %s rpz
  rebind_protect lan.example.test
  audit %s
 }
 forward . %s
}
`, metricsAddr, names, ips, rpz, auditPath, auth))

	type want struct {
		rcode   int
		answers int    // -1: any
		ede     string // in the EDE text; "" for no EDE
		noReply bool
	}
	for _, c := range []struct {
		client, name string
		qtype        uint16
		want         want
	}{
		// Answer side: lists, IP lists, rebinding.
		{"127.0.0.1", "clean.example.test.", dns.TypeA, want{dns.RcodeSuccess, 1, "", false}},
		{"127.0.0.1", "cloaked.example.test.", dns.TypeA, want{dns.RcodeNameError, 0, "blocked by list names: CNAME target tracker.bad.example.test.", false}},
		{"127.0.0.1", "svc.example.test.", dns.TypeHTTPS, want{dns.RcodeNameError, 0, "HTTPS target pool.bad.example.test.", false}},
		{"127.0.0.1", "c2.example.test.", dns.TypeA, want{dns.RcodeNameError, 0, "blocked by list c2: answer address 203.0.113.66", false}},
		{"127.0.0.1", "c2v6.example.test.", dns.TypeAAAA, want{dns.RcodeNameError, 0, "answer address 2001:db8:bad::66", false}},
		{"127.0.0.1", "rebind.example.test.", dns.TypeA, want{dns.RcodeNameError, 0, "rebind protection: answer address 10.0.0.5", false}},
		{"127.0.0.1", "printer.lan.example.test.", dns.TypeA, want{dns.RcodeSuccess, 1, "", false}},
		{"127.0.0.1", "loop1.example.test.", dns.TypeA, want{-1, -1, "", false}}, // a loop: whatever the authority says, checked and bounded
		// RPZ: QNAME triggers and their actions.
		{"127.0.0.1", "rpzq.example.test.", dns.TypeA, want{dns.RcodeNameError, 0, "blocked by list policy", false}},
		{"127.0.0.1", "nodata.example.test.", dns.TypeA, want{dns.RcodeSuccess, 0, "blocked by list policy", false}},
		{"127.0.0.1", "drop.example.test.", dns.TypeA, want{noReply: true}},
		// A passthru passes its own zone only: rebind_protect still applies.
		{"127.0.0.1", "pass.example.test.", dns.TypeA, want{dns.RcodeNameError, 0, "rebind protection: answer address 10.0.0.9", false}},
		{"127.0.0.1", "garden.example.test.", dns.TypeA, want{dns.RcodeSuccess, 1, "blocked by list policy", false}},
		{"127.0.0.1", "portal.example.test.", dns.TypeA, want{dns.RcodeSuccess, 1, "blocked by list policy", false}},
		{"127.0.0.1", "portal.example.test.", dns.TypeAAAA, want{dns.RcodeSuccess, 1, "blocked by list policy", false}},
		{"127.0.0.1", "portal.example.test.", dns.TypeTXT, want{dns.RcodeSuccess, 0, "blocked by list policy", false}},
		// rpz-ip.
		{"127.0.0.1", "ipnodata.example.test.", dns.TypeA, want{dns.RcodeSuccess, 0, "blocked by list policy: answer address 192.0.2.77", false}},
		// rpz-client-ip, from other loopback addresses.
		{"127.0.0.30", "clean.example.test.", dns.TypeA, want{dns.RcodeNameError, 0, "blocked by list policy", false}},
		{"127.0.0.31", "clean.example.test.", dns.TypeA, want{noReply: true}},
		{"127.0.0.32", "ipnodata.example.test.", dns.TypeA, want{dns.RcodeSuccess, 1, "", false}}, // the zone passes this client
		{"127.0.0.32", "rpzq.example.test.", dns.TypeA, want{dns.RcodeNameError, 0, "", false}},   // the authority's own NXDOMAIN
		{"127.0.0.33", "ipnodata.example.test.", dns.TypeA, want{dns.RcodeSuccess, 0, "answer address 192.0.2.77", false}},
		// The other lists still apply to a client the RPZ zone passes.
		{"127.0.0.32", "c2.example.test.", dns.TypeA, want{dns.RcodeNameError, 0, "answer address 203.0.113.66", false}},
	} {
		what := fmt.Sprintf("%s from %s", c.name, c.client)
		m, err := exchangeFromTimeout(c.client, r.udp, c.name, c.qtype, 700*time.Millisecond)
		if c.want.noReply {
			if err == nil {
				t.Errorf("%s: want no reply, got %v", what, m)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		if c.want.rcode >= 0 && m.Rcode != c.want.rcode {
			t.Errorf("%s: rcode %s, want %s", what, dns.RcodeToString[m.Rcode], dns.RcodeToString[c.want.rcode])
		}
		if c.want.answers >= 0 && len(m.Answer) != c.want.answers {
			t.Errorf("%s: %d answers, want %d: %v", what, len(m.Answer), c.want.answers, m.Answer)
		}
		e, ok := ede(m)
		switch {
		case c.want.ede == "" && ok && e.InfoCode == dns.ExtendedErrorCodeBlocked:
			t.Errorf("%s: unexpected EDE %q", what, e.ExtraText)
		case c.want.ede != "" && (!ok || !strings.Contains(e.ExtraText, c.want.ede)):
			t.Errorf("%s: EDE %v, want %q", what, e, c.want.ede)
		}
	}
	// The local data itself.
	if m := askFrom(t, "127.0.0.1", r.udp, "garden.example.test.", dns.TypeA); len(m.Answer) == 1 {
		if cn, ok := m.Answer[0].(*dns.CNAME); !ok || cn.Target != "walled.example.test." {
			t.Errorf("garden: %v", m.Answer[0])
		}
	}
	if m := askFrom(t, "127.0.0.1", r.udp, "portal.example.test.", dns.TypeAAAA); len(m.Answer) == 1 {
		if a, ok := m.Answer[0].(*dns.AAAA); !ok || a.AAAA.String() != "2001:db8::80" {
			t.Errorf("portal AAAA: %v", m.Answer[0])
		}
	}

	// The audit records name the chain element that matched.
	var lines []auditLine
	eventually(t, 5*time.Second, "answer-side audit records", func() bool {
		lines = readAudit(t, auditPath)
		return len(findAudit(lines, "block", func(l auditLine) bool { return l.Shield.AnswerMatch == "A 203.0.113.66" })) > 0 &&
			len(findAudit(lines, "block", func(l auditLine) bool { return l.Shield.AnswerMatch == "A 10.0.0.5" })) > 0
	})
	cloaked := findAudit(lines, "block", func(l auditLine) bool { return l.DNS.Question.Name == "cloaked.example.test." })
	if len(cloaked) != 1 || cloaked[0].Rule.Ruleset != "names" || cloaked[0].Rule.Name != "bad.example.test" ||
		cloaked[0].Shield.AnswerMatch != "CNAME tracker.bad.example.test." {
		t.Errorf("cloaked audit records: %+v", cloaked)
	}
	c2 := findAudit(lines, "block", func(l auditLine) bool { return l.DNS.Question.Name == "c2.example.test." })
	if len(c2) < 1 || c2[0].Rule.Ruleset != "c2" || c2[0].Rule.Name != "203.0.113.66" {
		t.Errorf("c2 audit records: %+v", c2)
	}
	client := findAudit(lines, "block", func(l auditLine) bool { return l.Client.IP == "127.0.0.30" })
	if len(client) != 1 || client[0].Rule.Name != "127.0.0.30/32" || client[0].Rule.Ruleset != "policy" {
		t.Errorf("rpz-client-ip audit records: %+v", client)
	}

	// Metrics: answer-side blocks by trigger, and the unsupported RPZ
	// lines reported at load.
	for trigger, n := range map[string]float64{"cname": 1, "svcb": 1, "ip": 5, "rebind": 2} {
		if got := metricValue(t, metricsAddr, "coredns_shield_answer_blocks_total", map[string]string{"trigger": trigger}); got != n {
			t.Errorf("answer_blocks_total{trigger=%q} = %v, want %v", trigger, got, n)
		}
	}
	if got := metricValue(t, metricsAddr, "coredns_shield_list_skipped_lines", map[string]string{"list": "policy", "kind": "unsupported"}); got != 3 {
		t.Errorf("unsupported RPZ lines = %v, want 3 (nsdname, nsip, tcp-only)", got)
	}
}

// exchangeFromTimeout is exchangeFrom with a timeout of its own, for the
// queries that must go unanswered.
func exchangeFromTimeout(src, addr, name string, qtype uint16, timeout time.Duration) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, false)
	c := &dns.Client{Net: "udp", Timeout: timeout,
		Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(src)}, Timeout: timeout}}
	r, _, err := c.Exchange(m, addr)
	return r, err
}
