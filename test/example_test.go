package test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestCorefileExample runs the shipped Corefile.example, with only its
// addresses moved to free loopback ports and its upstream pointed at the
// loopback upstream, and checks the example lists do what its comments say.
func TestCorefileExample(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "Corefile.example"))
	if err != nil {
		t.Fatal(err)
	}
	up := startUpstream(t)
	cf := string(raw)
	for _, sub := range []struct{ re, with string }{
		{`(?m)^\.:1053 \{`, ".:0 {\n    root " + root},
		{`bind 127\.0\.0\.1 ::1`, "bind 127.0.0.1"},
		{`prometheus 127\.0\.0\.1:9153`, "prometheus " + freePort(t)},
		{`ready 127\.0\.0\.1:8181`, "ready " + freePort(t)},
		{`audit stdout`, "audit off"},
		{`forward \. /etc/resolv\.conf`, "forward . " + up.addr},
	} {
		re := regexp.MustCompile(sub.re)
		if !re.MatchString(cf) {
			t.Fatalf("Corefile.example no longer contains %s; update this test with it", sub.re)
		}
		cf = re.ReplaceAllLiteralString(cf, sub.with)
	}
	r := startCoreDNS(t, cf)
	for _, c := range []struct {
		name  string
		rcode int
		list  string
	}{
		{"internetbadguys.com.", dns.RcodeNameError, "phishing"},
		{"www.examplemalwaredomain.com.", dns.RcodeNameError, "malware"},
		{"use-application-dns.net.", dns.RcodeNameError, "policy"},
		{"x.ads.shield-demo.test.", dns.RcodeSuccess, "policy"},
	} {
		m := ask(t, "udp", r.udp, c.name, dns.TypeA)
		if m.Rcode != c.rcode || len(m.Answer) != 0 {
			t.Errorf("%s: %v", c.name, m)
			continue
		}
		e, ok := ede(m)
		if !ok || e.InfoCode != dns.ExtendedErrorCodeBlocked || !strings.Contains(e.ExtraText, c.list) {
			t.Errorf("%s: EDE %v, want Blocked naming %s", c.name, e, c.list)
		}
	}
	for _, name := range []string{"example.com.", "safe.c2.shield-demo.test.", "ok.ads.shield-demo.test."} {
		if m := ask(t, "udp", r.udp, name, dns.TypeA); !forwarded(m) {
			t.Errorf("%s not forwarded: %v", name, m)
		}
	}
}
