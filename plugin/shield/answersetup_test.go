package shield

import (
	"strings"
	"testing"

	"github.com/coredns/caddy"
	"github.com/dnsshield/shield/plugin/shield/blocklist"
)

func TestParseAnswer(t *testing.T) {
	tests := []struct {
		name  string
		input string
		err   string
		check func(t *testing.T, s *Shield)
	}{
		{"allowlist only: stage off", "shield {\nallowlist a /a\n}", "", func(t *testing.T, s *Shield) {
			if s.answer != nil {
				t.Error("answer stage on with only an allowlist")
			}
		}},
		{"blocklist: stage on", "shield {\nblocklist a /a\n}", "", func(t *testing.T, s *Shield) {
			if s.answer == nil || s.answer.rebind {
				t.Errorf("answer stage %+v", s.answer)
			}
		}},
		{"iplist alone", "shield {\niplist c2 /c2.txt hosts\niplist more /more.txt plain\n}", "", func(t *testing.T, s *Shield) {
			if len(s.ips) != 2 || len(s.blocks) != 0 || s.answer == nil || len(s.answer.addrLists) != 2 {
				t.Fatalf("ips %d blocks %d answer %+v", len(s.ips), len(s.blocks), s.answer)
			}
			if c := s.ips[0].Config(); !c.IP || c.Format != blocklist.FormatHosts {
				t.Errorf("iplist config %+v", c)
			}
			if c := s.ips[1].Config(); c.Format != blocklist.FormatDomains {
				t.Errorf("plain iplist config %+v", c)
			}
		}},
		{"rebind alone", "shield {\nallowlist a /a\nrebind_protect corp.internal LAN.\n}", "", func(t *testing.T, s *Shield) {
			if s.answer == nil || !s.answer.rebind || strings.Join(s.answer.rebindAllow, ",") != "corp.internal,lan" {
				t.Errorf("answer stage %+v", s.answer)
			}
		}},
		{"rebind no domains", "shield {\nblocklist a /a\nrebind_protect\n}", "", func(t *testing.T, s *Shield) {
			if !s.answer.rebind || len(s.answer.rebindAllow) != 0 {
				t.Errorf("answer stage %+v", s.answer)
			}
		}},
		{"order of address lists", "shield {\niplist c2 /c2\nblocklist rpz /z rpz\nblocklist hosts /h hosts\niplist more /m\n}", "", func(t *testing.T, s *Shield) {
			var names []string
			for _, l := range s.answer.addrLists {
				names = append(names, l.Name())
			}
			if got := strings.Join(names, ","); got != "c2,rpz,more" {
				t.Errorf("address lists %s, want c2,rpz,more", got)
			}
		}},
		{"iplist bad format", "shield {\niplist c2 /c2 rpz\n}", `unknown iplist format "rpz"`, nil},
		{"iplist duplicate name", "shield {\nblocklist c2 /a\niplist c2 /c2\n}", `duplicate list name "c2"`, nil},
		{"iplist no source", "shield {\niplist c2\n}", "iplist needs NAME SOURCE", nil},
		{"rebind twice", "shield {\nblocklist a /a\nrebind_protect\nrebind_protect x.example\n}", "rebind_protect given twice", nil},
		{"rebind bad domain", "shield {\nblocklist a /a\nrebind_protect bad..name\n}", "not a domain name", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parse(caddy.NewTestController("dns", tc.input))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
}
