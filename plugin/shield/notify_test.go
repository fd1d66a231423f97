package shield

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/dnsshield/shield/plugin/shield/blocklist"
	"github.com/miekg/dns"
)

const xfrTestSecret = "2Jj1gUm8yQ8tq8JyuoP0y7ZxHYVwJ7GbOdv0Ck8C9vQ="

// xfrKeyFile writes a TSIG secret file with mode and returns its path.
func xfrKeyFile(t *testing.T, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "xfr.key")
	if err := os.WriteFile(p, []byte(xfrTestSecret+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseXFRLists(t *testing.T) {
	key := xfrKeyFile(t, 0o600)
	open := xfrKeyFile(t, 0o644)
	tests := []struct {
		name, input, err string
	}{
		{"axfr with tsig", "shield {\nblocklist rpz axfr://192.0.2.1:5353/rpz.example tsig xfr-key hmac-sha256 " + key + "\nrefresh 1h\n}", ""},
		{"axfr unsigned, rpz format", "shield {\nblocklist rpz AXFR://192.0.2.1/rpz.example rpz feed_timeout 10s\n}", ""},
		{"axfr other format", "shield {\nblocklist rpz axfr://192.0.2.1/rpz.example hosts\n}", "FORMAT may only be rpz"},
		{"tsig on https", "shield {\nblocklist a https://h.example/a tsig k hmac-sha256 " + key + "\n}", "tsig applies only to an axfr://"},
		{"tsig short", "shield {\nblocklist rpz axfr://192.0.2.1/rpz.example tsig k hmac-sha256\n}", "tsig needs NAME ALGORITHM SECRET_FILE"},
		{"tsig md5", "shield {\nblocklist rpz axfr://192.0.2.1/rpz.example tsig k hmac-md5 " + key + "\n}", `tsig algorithm "hmac-md5"`},
		{"tsig file others read", "shield {\nblocklist rpz axfr://192.0.2.1/rpz.example tsig k hmac-sha256 " + open + "\n}", "chmod 600"},
		{"tsig file missing", "shield {\nblocklist rpz axfr://192.0.2.1/rpz.example tsig k hmac-sha256 /nonexistent/key\n}", "tsig secret file"},
		{"sha256 on axfr", "shield {\nblocklist rpz axfr://192.0.2.1/rpz.example sha256 " + pin + "\n}", "cannot pin a zone transfer"},
		{"tsig on a file", "shield {\nblocklist a /a tsig k hmac-sha256 " + key + "\n}", "apply only to an http"},
		{"axfr without zone", "shield {\nblocklist rpz axfr://192.0.2.1/\n}", "want one zone name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parse(caddy.NewTestController("dns", tc.input))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s.feeds.fetchers) != 1 || s.blocks[0].Config().Format != blocklist.FormatRPZ || s.fileLists() != nil {
				t.Errorf("fetchers %d, format %v, watched %v", len(s.feeds.fetchers), s.blocks[0].Config().Format, s.fileLists())
			}
			// A zone transfer follows its SOA unless its own line sets
			// a refresh: the shield-wide one does not apply.
			if r := s.feeds.specs[0].limits.refresh; r != 0 {
				t.Errorf("refresh %s, want 0 (the SOA's)", r)
			}
		})
	}
}

func TestServeNotify(t *testing.T) {
	s, err := parse(caddy.NewTestController("dns", "shield {\nblocklist rpz axfr://192.0.2.1/rpz.example\naudit off\n}"))
	if err != nil {
		t.Fatal(err)
	}
	s.Next = test.NextHandler(dns.RcodeSuccess, nil)
	for _, c := range []struct {
		name, from, zone string
		rcode            int
	}{
		{"the primary", "192.0.2.1", "rpz.example.", dns.RcodeSuccess},
		{"another address", "192.0.2.9", "rpz.example.", dns.RcodeRefused},
		{"another zone", "192.0.2.1", "other.example.", dns.RcodeRefused},
	} {
		m := new(dns.Msg).SetNotify(c.zone)
		rec := dnstest.NewRecorder(&test.ResponseWriter{RemoteIP: c.from})
		rc, err := s.ServeDNS(context.Background(), rec, m)
		if err != nil || rc != dns.RcodeSuccess || rec.Msg == nil {
			t.Fatalf("%s: ServeDNS %d %v, reply %v", c.name, rc, err, rec.Msg)
		}
		if rec.Msg.Rcode != c.rcode || rec.Msg.Opcode != dns.OpcodeNotify || !rec.Msg.Response {
			t.Errorf("%s: rcode %s opcode %d", c.name, dns.RcodeToString[rec.Msg.Rcode], rec.Msg.Opcode)
		}
	}
}
