package shield

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/dnsshield/shield/plugin/shield/blocklist"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		input string
		err   string // substring of the expected error; "" means success
		check func(t *testing.T, s *Shield)
	}{
		{"minimal", `shield {
			blocklist malware /lists/malware.txt
		}`, "", func(t *testing.T, s *Shield) {
			if len(s.blocks) != 1 || s.blocks[0].Name() != "malware" || s.blocks[0].Config().Format != blocklist.FormatAuto {
				t.Errorf("blocks %+v", s.blocks)
			}
			if s.action != actNXDomain || s.ttl != defaultTTL || s.monitor || s.auditPath != "stdout" {
				t.Errorf("defaults: action %d ttl %d monitor %v audit %q", s.action, s.ttl, s.monitor, s.auditPath)
			}
		}},
		{"everything", `shield {
			blocklist malware /lists/m.txt hosts
			blocklist phishing lists/p.txt adblock
			allowlist corp /lists/allow.txt domains
			action sinkhole 10.0.0.1 ::ffff:10.0.0.2 fd00::1
			ttl 60
			mode monitor
			audit /var/log/shield.json
			audit_rotate 10 3
			audit_queue 100
			max_shrink 30%
			max_invalid 0.1
			reload 5s 1s
			observer dns-1
		}`, "", func(t *testing.T, s *Shield) {
			if len(s.blocks) != 2 || len(s.allows) != 1 {
				t.Fatalf("lists: %d blocks %d allows", len(s.blocks), len(s.allows))
			}
			if c := s.blocks[1].Config(); c.Format != blocklist.FormatAdblock || c.MaxShrink != 0.3 || c.MaxInvalid != 0.1 || c.Allow {
				t.Errorf("phishing config %+v", c)
			}
			if c := s.allows[0].Config(); !c.Allow || c.Format != blocklist.FormatDomains {
				t.Errorf("allow config %+v", c)
			}
			if s.action != actSinkhole || len(s.sink.v4) != 2 || len(s.sink.v6) != 1 || s.sink.v4[1] != netip.MustParseAddr("10.0.0.2") {
				t.Errorf("sinkhole %v %v", s.sink.v4, s.sink.v6)
			}
			if s.ttl != 60 || !s.monitor || s.auditPath != "/var/log/shield.json" || s.auditSize != 10<<20 || s.auditKeep != 3 || s.auditQueue != 100 {
				t.Errorf("options %+v", s)
			}
			if s.poll != 5*time.Second || s.debounce != time.Second || s.observer != "dns-1" {
				t.Errorf("reload %s %s observer %q", s.poll, s.debounce, s.observer)
			}
		}},
		{"each action", "shield {\nblocklist a /a\naction nodata\naction refused\naction drop\n}", "", func(t *testing.T, s *Shield) {
			if s.action != actDrop {
				t.Errorf("last action wins, got %d", s.action)
			}
		}},
		{"audit off", "shield {\nblocklist a /a\naudit off\n}", "", func(t *testing.T, s *Shield) {
			if s.auditPath != "off" {
				t.Errorf("audit %q", s.auditPath)
			}
		}},
		{"allowlist only", "shield {\nallowlist a /a\n}", "", nil},

		// Errors.
		{"no lists", "shield", "at least one blocklist", nil},
		{"empty block", "shield {\n}", "at least one blocklist", nil},
		{"arguments", "shield example.org {\nblocklist a /a\n}", "Wrong argument count", nil},
		{"twice", "shield {\nblocklist a /a\n}\nshield {\nblocklist b /b\n}", "only be used once", nil},
		{"unknown option", "shield {\nblocklist a /a\nfrobnicate\n}", `unknown property "frobnicate"`, nil},
		{"blocklist missing source", "shield {\nblocklist a\n}", "NAME SOURCE [FORMAT]", nil},
		{"blocklist missing everything", "shield {\nblocklist\n}", "NAME SOURCE [FORMAT]", nil},
		{"blocklist too many", "shield {\nblocklist a /a hosts extra\n}", "NAME SOURCE [FORMAT]", nil},
		{"bad format", "shield {\nblocklist a /a yaml\n}", `list "a"`, nil},
		{"bad list name", "shield {\nblocklist a{b} /a\n}", "invalid list name", nil},
		{"reserved list name", "shield {\nblocklist tunnel /a\n}", `list name "tunnel" is reserved`, nil},
		{"reserved allowlist name", "shield {\nallowlist any /a\n}", `list name "any" is reserved`, nil},
		{"duplicate list name", "shield {\nblocklist a /a\nallowlist a /b\n}", `duplicate list name "a"`, nil},
		{"action missing", "shield {\nblocklist a /a\naction\n}", "Wrong argument count", nil},
		{"bad action", "shield {\nblocklist a /a\naction explode\n}", `unknown action "explode"`, nil},
		{"action with address", "shield {\nblocklist a /a\naction nxdomain 1.2.3.4\n}", "takes no addresses", nil},
		{"sinkhole without address", "shield {\nblocklist a /a\naction sinkhole\n}", "needs at least one address", nil},
		{"bad sinkhole address", "shield {\nblocklist a /a\naction sinkhole 10.0.0.300\n}", `invalid sinkhole address "10.0.0.300"`, nil},
		{"sinkhole hostname", "shield {\nblocklist a /a\naction sinkhole sink.example\n}", "invalid sinkhole address", nil},
		{"sinkhole zone", "shield {\nblocklist a /a\naction sinkhole fe80::1%eth0\n}", "invalid sinkhole address", nil},
		{"ttl missing", "shield {\nblocklist a /a\nttl\n}", "Wrong argument count", nil},
		{"ttl negative", "shield {\nblocklist a /a\nttl -1\n}", `invalid ttl "-1"`, nil},
		{"ttl word", "shield {\nblocklist a /a\nttl 1h\n}", `invalid ttl "1h"`, nil},
		{"ttl absurd", "shield {\nblocklist a /a\nttl 99999999\n}", "invalid ttl", nil},
		{"ttl two", "shield {\nblocklist a /a\nttl 1 2\n}", "Wrong argument count", nil},
		{"bad mode", "shield {\nblocklist a /a\nmode audit\n}", "mode must be enforce or monitor", nil},
		{"mode missing", "shield {\nblocklist a /a\nmode\n}", "mode must be", nil},
		{"audit missing", "shield {\nblocklist a /a\naudit\n}", "Wrong argument count", nil},
		{"audit_rotate bad", "shield {\nblocklist a /a\naudit_rotate 0 3\n}", "invalid audit_rotate", nil},
		{"audit_rotate short", "shield {\nblocklist a /a\naudit_rotate 10\n}", "MEGABYTES KEEP", nil},
		{"audit_queue bad", "shield {\nblocklist a /a\naudit_queue none\n}", "invalid audit_queue", nil},
		{"max_shrink bad", "shield {\nblocklist a /a\nmax_shrink 150%\n}", "invalid max_shrink", nil},
		{"max_invalid bad", "shield {\nblocklist a /a\nmax_invalid lots\n}", "invalid max_invalid", nil},
		{"reload bad", "shield {\nblocklist a /a\nreload 1ms\n}", "invalid reload poll", nil},
		{"reload debounce bad", "shield {\nblocklist a /a\nreload 2s forever\n}", "invalid reload debounce", nil},
		{"observer missing", "shield {\nblocklist a /a\nobserver\n}", "Wrong argument count", nil},
		{"settle", "shield {\nblocklist a /a\nsettle 500ms\nallowlist b /b\n}", "", func(t *testing.T, s *Shield) {
			if s.blocks[0].Config().Settle != 500*time.Millisecond || s.allows[0].Config().Settle != 500*time.Millisecond {
				t.Errorf("settle %s %s", s.blocks[0].Config().Settle, s.allows[0].Config().Settle)
			}
		}},
		{"settle bad", "shield {\nblocklist a /a\nsettle soon\n}", "invalid settle", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := caddy.NewTestController("dns", tc.input)
			s, err := parse(c)
			if tc.err != "" {
				if err == nil {
					t.Fatalf("want error containing %q, got none", tc.err)
				}
				if !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %q does not contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

// TestParseRoot checks paths are taken relative to the root plugin's
// directory, and that the audit keywords are never taken for paths.
func TestParseRoot(t *testing.T) {
	for _, tc := range []struct{ audit, want string }{
		{"off", "off"}, {"stdout", "stdout"}, {"audit.json", "/srv/audit.json"}, {"/var/a.json", "/var/a.json"},
	} {
		c := caddy.NewTestController("dns", "shield {\nblocklist a lists/a.txt\naudit "+tc.audit+"\n}")
		dnsserver.GetConfig(c).Root = "/srv"
		s, err := parse(c)
		if err != nil {
			t.Fatal(err)
		}
		if s.auditPath != tc.want || s.blocks[0].Config().Path != "/srv/lists/a.txt" {
			t.Errorf("audit %q: got audit %q list %q", tc.audit, s.auditPath, s.blocks[0].Config().Path)
		}
	}
}

// TestSetupRegistersHandler runs the whole setup function, as CoreDNS does.
func TestSetupRegistersHandler(t *testing.T) {
	c := caddy.NewTestController("dns", "shield {\nblocklist a /nonexistent/list.txt\n}")
	if err := setup(c); err != nil {
		t.Fatal(err)
	}
	c = caddy.NewTestController("dns", "shield {\nbogus\n}")
	err := setup(c)
	if err == nil || !strings.HasPrefix(err.Error(), "plugin/shield:") {
		t.Fatalf("setup error %v, want it wrapped by plugin.Error", err)
	}
}
