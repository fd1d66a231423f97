package test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/miekg/dns"
)

// readDetections returns the detection records of the audit file.
func readDetections(t testing.TB, path string) []auditLine {
	t.Helper()
	var out []auditLine
	for _, l := range readAudit(t, path) {
		if l.Rule.Ruleset == "detect" {
			out = append(out, l)
		}
	}
	return out
}

// tunnelName is a dns2tcp-style data query: base64 with '+' under zone.
func tunnelName(rng *rand.Rand, i int, zone string) string {
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+"
	b := make([]byte, 40)
	for j := range b {
		b[j] = alpha[rng.IntN(len(alpha))]
	}
	return fmt.Sprintf("q+%s%d.%s.", b, i, zone)
}

// detectBlocked reports whether r is a detection's block answer.
func detectBlocked(t testing.TB, r *dns.Msg) bool {
	t.Helper()
	if forwarded(r) {
		return false
	}
	e, ok := ede(r)
	if r.Rcode != dns.RcodeNameError || !ok || e.InfoCode != dns.ExtendedErrorCodeFiltered {
		t.Fatalf("neither forwarded nor a detection block: %v", r)
	}
	if !strings.HasPrefix(e.ExtraText, "detected ") {
		t.Fatalf("EDE text %q names no detection", e.ExtraText)
	}
	return true
}

// TestDetectTunnelSession drives a tunnel-like session over the wire
// through CoreDNS with detection on by default: the domain is blocked
// within 50 queries, with EDE 17 and an SOA for the registered domain;
// the verdict is sticky for other clients; benign names still resolve;
// the audit record and the metrics name the detection.
func TestDetectTunnelSession(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	list := writeFile(t, dir, "list.txt", "evil.test\n")
	auditPath := filepath.Join(dir, "audit.json")
	metricsAddr := freePort(t)
	r := startCoreDNS(t, shieldCorefile(up, "prometheus "+metricsAddr, "blocklist malware "+list+"\naudit "+auditPath))

	rng := rand.New(rand.NewPCG(7, 8))
	first := 0
	for i := 1; i <= 50; i++ {
		if detectBlocked(t, ask(t, "udp", r.udp, tunnelName(rng, i, "tun.example.net"), dns.TypeTXT)) {
			first = i
			break
		}
	}
	if first == 0 {
		t.Fatal("tunnel not blocked within 50 queries")
	}
	t.Logf("tunnel blocked at query %d", first)
	// Every later query under the registered domain is blocked, from any
	// client, any name.
	blocked := 0
	for i := 0; i < 20; i++ {
		if detectBlocked(t, ask(t, "udp", r.udp, tunnelName(rng, 100+i, "tun.example.net"), dns.TypeTXT)) {
			blocked++
		}
	}
	if blocked != 20 {
		t.Errorf("%d of 20 later tunnel queries blocked", blocked)
	}
	m := askFrom(t, "127.0.0.3", r.udp, "www.example.net.", dns.TypeA)
	if !detectBlocked(t, m) {
		t.Fatal("another client's query under the blocked domain was forwarded")
	}
	if len(m.Ns) != 1 || m.Ns[0].Header().Name != "example.net." {
		t.Errorf("block answer authority %v, want the SOA of example.net.", m.Ns)
	}
	for _, n := range []string{"www.example.com.", "mail.example.org.", "evil.test."} {
		a := ask(t, "udp", r.udp, n, dns.TypeA)
		if n == "evil.test." {
			if forwarded(a) {
				t.Error("list block lost")
			}
			continue
		}
		if !forwarded(a) {
			t.Errorf("%s not forwarded: %v", n, a)
		}
	}

	var recs []auditLine
	eventually(t, 5*time.Second, "a detection block in the audit log", func() bool {
		recs = readDetections(t, auditPath)
		for _, rec := range recs {
			if rec.Event.Action == "block" && rec.Client.IP == "127.0.0.3" {
				return true
			}
		}
		return false
	})
	var firstRec *auditLine
	for i := range recs {
		if recs[i].Event.Action == "block" {
			firstRec = &recs[i]
			break
		}
	}
	if firstRec.Shield.Domain != "example.net" || firstRec.Shield.Score < 60 || len(firstRec.Shield.Reasons) == 0 ||
		firstRec.Rule.Name != "tunnel" || firstRec.Shield.Mode != "enforce" {
		t.Errorf("first block record: %+v", *firstRec)
	}
	t.Logf("first block record: %+v", *firstRec)
	if v := metricValue(t, metricsAddr, "coredns_shield_detections_total", map[string]string{"detector": "tunnel", "action": "block"}); v < 21 {
		t.Errorf("detections_total{tunnel,block} = %v, want >= 21", v)
	}
	eventually(t, 10*time.Second, "table metrics", func() bool {
		return metricValue(t, metricsAddr, "coredns_shield_detect_table_entries", map[string]string{"table": "verdicts"}) >= 1 &&
			metricValue(t, metricsAddr, "coredns_shield_detect_table_capacity", map[string]string{"table": "domains"}) >= 131072
	})
}

// TestDetectMonitor: in monitor mode the same session is never blocked,
// and the would-be blocks are recorded as monitor events.
func TestDetectMonitor(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	list := writeFile(t, dir, "list.txt", "evil.test\n")
	auditPath := filepath.Join(dir, "audit.json")
	r := startCoreDNS(t, shieldCorefile(up, "", "blocklist malware "+list+"\nmode monitor\naudit "+auditPath))
	rng := rand.New(rand.NewPCG(9, 10))
	for i := 1; i <= 60; i++ {
		if m := ask(t, "udp", r.udp, tunnelName(rng, i, "tun.example.net"), dns.TypeTXT); !forwarded(m) {
			t.Fatalf("monitor mode blocked query %d: %v", i, m)
		}
	}
	eventually(t, 5*time.Second, "monitor records", func() bool {
		for _, rec := range readDetections(t, auditPath) {
			if rec.Event.Action == "monitor" && rec.Shield.Domain == "example.net" && rec.Shield.Mode == "monitor" {
				return true
			}
		}
		return false
	})
}

// TestDetectOff: "detect off" scores nothing.
func TestDetectOff(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	list := writeFile(t, dir, "list.txt", "evil.test\n")
	r := startCoreDNS(t, shieldCorefile(up, "", "blocklist malware "+list+"\ndetect off\naudit off"))
	rng := rand.New(rand.NewPCG(11, 12))
	for i := 1; i <= 60; i++ {
		if m := ask(t, "udp", r.udp, tunnelName(rng, i, "tun.example.net"), dns.TypeTXT); !forwarded(m) {
			t.Fatalf("detect off, but query %d was not forwarded: %v", i, m)
		}
	}
}

// TestDetectOptions: the detection options are accepted, and tuned
// thresholds change the outcome.
func TestDetectOptions(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	list := writeFile(t, dir, "list.txt", "evil.test\n")
	r := startCoreDNS(t, shieldCorefile(up, "", "blocklist malware "+list+"\naudit off\n"+
		"detect_threshold 90 100\ndetect_window 5m 12h\ndetect_sticky 1h\ndetect_tables 4096 1024 512\n"+
		"detect_disable newly_seen\ndetect_exempt example.org\ndetect_exempt_defaults on"))
	rng := rand.New(rand.NewPCG(13, 14))
	for i := 1; i <= 60; i++ {
		if m := ask(t, "udp", r.udp, tunnelName(rng, i, "tun.example.org"), dns.TypeTXT); !forwarded(m) {
			t.Fatalf("exempt domain blocked at query %d", i)
		}
	}
	for _, bad := range []string{"detect_threshold 70 60", "detect_window 1h 1m", "detect_disable magic", "detect maybe", "detect_tables 1 2 3", "detect_exempt a..b"} {
		cf := shieldCorefile(up, "", "blocklist malware "+list+"\naudit off\n"+bad)
		if inst, err := startCoreDNSErr(cf); err == nil {
			inst.ShutdownCallbacks()
			inst.Stop()
			t.Errorf("%q accepted", bad)
		}
	}
}

// startCoreDNSErr tries to start CoreDNS and returns the error.
func startCoreDNSErr(corefile string) (*caddy.Instance, error) {
	startMu.Lock()
	defer startMu.Unlock()
	caddy.Quiet = true
	return caddy.Start(corefileInput(corefile))
}

// startNXUpstream starts a loopback upstream that answers NXDOMAIN for
// every name except those resolvable reports true for (an A record).
func startNXUpstream(t testing.TB, resolvable func(name string) bool) *upstream {
	t.Helper()
	return serveUpstream(t, func(q dns.Question, m *dns.Msg) {
		if !resolvable(strings.ToLower(q.Name)) {
			m.Rcode = dns.RcodeNameError
			return
		}
		if q.Qtype == dns.TypeA {
			rr, _ := dns.NewRR(fmt.Sprintf("%s 60 IN A %s", q.Name, upstreamA))
			m.Answer = append(m.Answer, rr)
		}
	})
}

// TestDetectDGAClient: a client whose queries for new random domains get
// NXDOMAIN from the upstream becomes suspect after about 10 of them. From
// the 13th on each of its names like those is either blocked by the dga detector
// (EDE 17) or, when the upstream's NXDOMAIN comes back, recorded as a dga
// alert; its next such domain is blocked even though it resolves (never
// sent upstream), while its ordinary browsing and another client's new
// domain resolve. A client that browses between the NXDOMAINs of
// word-pair names is not blocked, but its NXDOMAINs alert.
//
// The resolver has a day of first-seen history (a state file from a
// resolver that ran for a day): the block of the next domain is the
// suspect rule's 50 points plus newly_seen's 10, which a resolver
// without history holds back (TestRestartWithoutHistoryNoMoreAlerts).
func TestDetectDGAClient(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	randName := func() string {
		b := make([]byte, 12)
		for i := range b {
			b[i] = byte('a' + rng.IntN(26))
		}
		return string(b) + ".com."
	}
	var burst []string
	for i := 0; i < 20; i++ {
		burst = append(burst, randName())
	}
	next, other := randName(), randName()
	up := startNXUpstream(t, func(name string) bool {
		return name == next || name == other || strings.HasSuffix(name, ".example.org.") || strings.HasSuffix(name, ".org.")
	})
	dir := t.TempDir()
	auditPath := filepath.Join(dir, "audit.json")
	list := writeFile(t, dir, "list.txt", "evil.test\n")
	state := filepath.Join(dir, "state.json")
	if err := os.WriteFile(state+".detect", historyState(t, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startCoreDNS(t, shieldCorefile(up, "", "blocklist malware "+list+"\naudit "+auditPath+"\nstate "+state))

	const infected = "127.0.0.5"
	detected := map[string]string{} // burst name: "block" or "alert" expected
	for i, n := range burst {
		m := askFrom(t, infected, r.udp, n, dns.TypeA)
		if m.Rcode != dns.RcodeNameError {
			t.Fatalf("%s: rcode %s, want NXDOMAIN", n, dns.RcodeToString[m.Rcode])
		}
		// The client is suspect from about its 10th distinct NXDOMAIN
		// domain on: a linear-counting estimate of a 64-bit bitmap reads
		// 9 domains as 9.7, and 12 as 10 or more unless 4 of them collide.
		_, filtered := ede(m)
		switch {
		case i < 9 && filtered:
			t.Fatalf("%s (%d): blocked before the client had 10 NXDOMAINs: %v", n, i, m)
		case i >= 9 && filtered:
			if !detectBlocked(t, m) {
				t.Fatalf("%s: filtered but not by a detection: %v", n, m)
			}
			detected[n] = "block"
		case i >= 12:
			detected[n] = "alert"
		}
	}
	if !detectBlocked(t, askFrom(t, infected, r.udp, next, dns.TypeA)) {
		t.Fatalf("the suspect client's next domain %s like its NXDOMAIN names was forwarded", next)
	}
	detected[next] = "block"
	if c := up.count(next); c != 0 {
		t.Errorf("the blocked name reached the upstream %d times", c)
	}
	if m := askFrom(t, infected, r.udp, "www.example.org.", dns.TypeA); !forwarded(m) {
		t.Errorf("the suspect client's ordinary browsing was not forwarded: %v", m)
	}
	if m := askFrom(t, "127.0.0.6", r.udp, other, dns.TypeA); !forwarded(m) {
		t.Errorf("another client's new domain was not forwarded: %v", m)
	}

	// A client that browses between its NXDOMAINs, for names of two
	// words (a dictionary DGA): after 14 of them and 40 new domains that
	// resolve, the odds are too low to block names that many popular
	// domains look like, so its later word-pair names go upstream and
	// their NXDOMAINs are the alerts.
	const browsing = "127.0.0.7"
	words := []string{"sun", "sky", "blue", "river", "garden", "market", "journey", "silverware",
		"moon", "stone", "light", "house", "apple", "orange", "winter", "harbor"}
	pair := func(i int) string { return words[i%16] + words[(i*7+3)%16] + ".com." }
	for i := 0; i < 14; i++ {
		if m := askFrom(t, browsing, r.udp, pair(i), dns.TypeA); m.Rcode != dns.RcodeNameError {
			t.Fatalf("%s: rcode %s, want NXDOMAIN", pair(i), dns.RcodeToString[m.Rcode])
		}
	}
	for i := 0; i < 40; i++ {
		n := fmt.Sprintf("www.%s%d.org.", words[i%16], i)
		if m := askFrom(t, browsing, r.udp, n, dns.TypeA); !forwarded(m) {
			t.Fatalf("browsing %s not forwarded: %v", n, m)
		}
	}
	for i := 14; i < 19; i++ {
		m := askFrom(t, browsing, r.udp, pair(i), dns.TypeA)
		if _, filtered := ede(m); filtered || m.Rcode != dns.RcodeNameError {
			t.Fatalf("%s: want the upstream's NXDOMAIN, got %v", pair(i), m)
		}
		detected[pair(i)] = "alert"
	}

	got := map[string]auditLine{}
	// The audit writer is asynchronous: wait up to 5 s for the records.
	for deadline := time.Now().Add(5 * time.Second); len(got) < len(detected) && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, rec := range readDetections(t, auditPath) {
			if rec.Rule.Name == "dga" && (rec.Client.IP == infected || rec.Client.IP == browsing) &&
				detected[rec.DNS.Question.Name] == rec.Event.Action {
				got[rec.DNS.Question.Name] = rec
			}
		}
	}
	for n, want := range detected {
		if _, ok := got[n]; !ok {
			t.Errorf("no dga %s record for %s", want, n)
		}
	}
	alerts := 0
	for n, rec := range got {
		if !strings.Contains(strings.Join(rec.Shield.Reasons, ","), "client_nx_burst") || rec.Shield.Score < 40 ||
			rec.Shield.Domain != strings.TrimSuffix(n, ".") {
			t.Errorf("record for %s: %+v", n, rec)
		}
		if rec.Event.Action == "alert" {
			alerts++
		}
	}
	t.Logf("%d names alerted on their NXDOMAIN, %d blocked (the resolvable one included)", alerts, len(got)-alerts)
}
