package shield

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/caddy/caddyfile"
	"github.com/dnsshield/shield/plugin/shield/contain"
)

func TestParseContain(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	os.WriteFile(tokens, []byte("ops:0123456789abcdef\n"), 0o600)
	badTokens := filepath.Join(dir, "bad")
	os.WriteFile(badTokens, []byte("ops:short\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("# none\n"), 0o600)
	readable := filepath.Join(dir, "readable")
	os.WriteFile(readable, []byte("ops:0123456789abcdef\n"), 0o600)
	os.Chmod(readable, 0o644) // WriteFile's mode is filtered by the umask
	groupOnly := filepath.Join(dir, "group")
	os.WriteFile(groupOnly, []byte("ops:0123456789abcdef\n"), 0o600)
	os.Chmod(groupOnly, 0o640)
	cert, key := writeTestCert(t, dir, "127.0.0.1")
	wrap := func(body string) string { return "shield {\nblocklist c2 /l/c2.txt\n" + body + "\n}" }
	tests := []struct {
		name, body, err string
		check           func(t *testing.T, s *Shield)
	}{
		{"none", "", "", func(t *testing.T, s *Shield) {
			if s.warden != nil {
				t.Error("containment set up without options")
			}
		}},
		{"everything", `walled_garden edr /l/edr.txt domains
			walled_garden patch /l/patch.txt
			quarantine_action sinkhole 10.9.9.9 fd00::9
			quarantine_ttl 30m 12h
			escalate c2,tunnel 3 10m 1h
			escalate any 50 1m 12h
			state /var/lib/shield/state.json
			api :8053
			api_tokens ` + tokens, "", func(t *testing.T, s *Shield) {
			cfg := s.warden
			if len(cfg.garden) != 2 || cfg.garden[0].Name() != "edr" || !cfg.garden[0].Config().Allow {
				t.Errorf("garden %+v", cfg.gardenCfgs)
			}
			if cfg.action != actSinkhole || len(cfg.sink.v4) != 1 || len(cfg.sink.v6) != 1 {
				t.Errorf("action %d %v %v", cfg.action, cfg.sink.v4, cfg.sink.v6)
			}
			if cfg.defTTL != 30*time.Minute || cfg.maxTTL != 12*time.Hour || len(cfg.rules) != 2 || cfg.ladder == nil {
				t.Errorf("ttl %s %s rules %d", cfg.defTTL, cfg.maxTTL, len(cfg.rules))
			}
			if cfg.apiAddr != "127.0.0.1:8053" || cfg.tokens.Len() != 1 || cfg.statePath != "/var/lib/shield/state.json" {
				t.Errorf("api %q tokens %d state %q", cfg.apiAddr, cfg.tokens.Len(), cfg.statePath)
			}
			if got := s.gardenLists(); len(got) != 2 {
				t.Errorf("watched garden lists %d", len(got))
			}
		}},
		{"default action follows sinkhole", "action sinkhole 10.0.0.1\nstate /s.json", "", func(t *testing.T, s *Shield) {
			if s.warden.action != actSinkhole || len(s.warden.sink.v4) != 1 {
				t.Errorf("action %d", s.warden.action)
			}
		}},
		{"default action nxdomain", "state /s.json", "", func(t *testing.T, s *Shield) {
			if s.warden.action != actNXDomain || s.warden.defTTL != time.Hour || s.warden.maxTTL != 24*time.Hour {
				t.Errorf("action %d ttl %s %s", s.warden.action, s.warden.defTTL, s.warden.maxTTL)
			}
		}},
		{"nxdomain", "quarantine_action nxdomain", "", nil},
		{"garden args", "walled_garden edr", "needs NAME SOURCE", nil},
		{"garden too many", "walled_garden edr a b c", "needs NAME SOURCE", nil},
		{"garden name", "walled_garden 'e d' /x", "invalid walled_garden name", nil},
		{"garden format", "walled_garden edr /x yaml", "walled_garden \"edr\"", nil},
		{"garden duplicate", "walled_garden edr /x\nwalled_garden edr /y", "duplicate list name", nil},
		{"garden clashes with list", "walled_garden c2 /x", "duplicate list name \"c2\"", nil},
		{"action empty", "quarantine_action", "needs sinkhole", nil},
		{"action unknown", "quarantine_action refuse", "unknown quarantine_action", nil},
		{"action sinkhole bare", "quarantine_action sinkhole", "at least one address", nil},
		{"action sinkhole bad", "quarantine_action sinkhole 10.0.0.300", "invalid quarantine sinkhole address", nil},
		{"action nxdomain addr", "quarantine_action nxdomain 10.0.0.1", "takes no addresses", nil},
		{"ttl args", "quarantine_ttl 1h", "needs DEFAULT MAX", nil},
		{"ttl bad", "quarantine_ttl soon 1h", "invalid quarantine_ttl", nil},
		{"ttl negative", "quarantine_ttl -1h 1h", "invalid quarantine_ttl", nil},
		{"ttl absurd", "quarantine_ttl 1h 10000h", "invalid quarantine_ttl", nil},
		{"ttl order", "quarantine_ttl 2h 1h", "above the maximum", nil},
		{"escalate args", "escalate c2 3 10m", "escalate needs KINDS COUNT WINDOW TTL", nil},
		{"escalate count", "escalate c2 0 10m 1h", "invalid count", nil},
		{"escalate window", "escalate c2 3 forever 1h", "invalid window", nil},
		{"escalate ttl", "escalate c2 3 10m -5m", "invalid ttl", nil},
		{"escalate kinds", "escalate c2,,dga 3 10m 1h", "invalid kind", nil},
		{"escalate over max", "quarantine_ttl 1h 2h\nescalate c2 3 10m 3h", "above the quarantine maximum", nil},
		{"state args", "state", "state needs FILE", nil},
		{"state twice", "state /a\nstate /b", "state is set twice", nil},
		{"api args", "api", "api needs ADDR", nil},
		{"api addr", "api 8053\napi_tokens " + tokens, "want [HOST]:PORT", nil},
		{"api twice", "api :1\napi :2", "api is set twice", nil},
		{"api without tokens", "api :8053", "api needs api_tokens", nil},
		{"tokens without api", "api_tokens " + tokens, "api is not", nil},
		{"tokens missing", "api :8053\napi_tokens " + filepath.Join(dir, "nope"), "api_tokens:", nil},
		{"tokens bad", "api :8053\napi_tokens " + badTokens, "shorter than", nil},
		{"tokens empty", "api :8053\napi_tokens " + empty, "no tokens", nil},
		{"tokens twice", "api_tokens /a\napi_tokens /b", "api_tokens is set twice", nil},
		{"tokens world-readable", "api :8053\napi_tokens " + readable, "mode 0644 lets its group or others read or change it: chmod 0600", nil},
		{"tokens group-readable", "api :8053\napi_tokens " + groupOnly, "mode 0640", nil},
		{"cap", "quarantine_cap /24 /56", "", func(t *testing.T, s *Shield) {
			if o := s.warden.store.Options(); o.MaxSpace4 != 256 || o.MaxSpace6 != 256 {
				t.Errorf("caps %d %d, want 256 addresses and 256 /64s", o.MaxSpace4, o.MaxSpace6)
			}
		}},
		{"cap none", "quarantine_cap none /64", "", func(t *testing.T, s *Shield) {
			if o := s.warden.store.Options(); o.MaxSpace4 != math.MaxUint64 || o.MaxSpace6 != 1 {
				t.Errorf("caps %d %d", o.MaxSpace4, o.MaxSpace6)
			}
		}},
		{"cap default", "state /s.json", "", func(t *testing.T, s *Shield) {
			if o := s.warden.store.Options(); o.MaxSpace4 != contain.DefaultMaxSpace4 || o.MaxSpace6 != contain.DefaultMaxSpace6 {
				t.Errorf("caps %d %d", o.MaxSpace4, o.MaxSpace6)
			}
		}},
		{"cap args", "quarantine_cap /16", "quarantine_cap needs V4 V6", nil},
		{"cap too many", "quarantine_cap /16 /48 /48", "quarantine_cap needs V4 V6", nil},
		{"cap v4 range", "quarantine_cap /33 /48", "IPv4 quarantine cap \"/33\"", nil},
		{"cap v6 range", "quarantine_cap /16 /65", "IPv6 quarantine cap \"/65\"", nil},
		{"cap no slash", "quarantine_cap 16 /48", "IPv4 quarantine cap \"16\"", nil},
		{"cap not a number", "quarantine_cap /16 /x", "IPv6 quarantine cap", nil},
		{"cap twice", "quarantine_cap /16 /48\nquarantine_cap /24 /56", "quarantine_cap is set twice", nil},
		{"api not loopback", "api 0.0.0.0:8053\napi_tokens " + tokens, "not loopback: give it a certificate (api_tls CERT KEY), or allow plain HTTP explicitly (api_insecure)", nil},
		{"api insecure", "api 0.0.0.0:8053\napi_insecure\napi_tokens " + tokens, "", func(t *testing.T, s *Shield) {
			if !s.warden.insecure || s.warden.tlsCert != "" {
				t.Errorf("insecure %v cert %q", s.warden.insecure, s.warden.tlsCert)
			}
		}},
		{"api tls", "api 0.0.0.0:8053\napi_tls " + cert + " " + key + "\napi_tokens " + tokens, "", func(t *testing.T, s *Shield) {
			if o := s.warden.listenOptions(); o.CertFile != cert || o.KeyFile != key || o.Insecure {
				t.Errorf("listen options %+v", o)
			}
		}},
		{"api tls relative", "api :8053\napi_tls cert.pem key.pem\napi_tokens " + tokens, "api_tls: open cert.pem", nil},
		{"api tls args", "api :8053\napi_tls " + cert + "\napi_tokens " + tokens, "api_tls needs CERT KEY", nil},
		{"api tls twice", "api :8053\napi_tls " + cert + " " + key + "\napi_tls " + cert + " " + key, "api_tls is set twice", nil},
		{"api tls missing", "api :8053\napi_tls " + filepath.Join(dir, "nope.pem") + " " + key + "\napi_tokens " + tokens, "api_tls: open", nil},
		{"api tls swapped", "api :8053\napi_tls " + key + " " + cert + "\napi_tokens " + tokens, "api_tls: tls:", nil},
		{"api tls not pem", "api :8053\napi_tls " + tokens + " " + tokens + "\napi_tokens " + tokens, "api_tls: tls:", nil},
		{"api tls without api", "api_tls " + cert + " " + key, "api_tls and api_insecure need api", nil},
		{"api insecure without api", "api_insecure", "api_tls and api_insecure need api", nil},
		{"api insecure args", "api :8053\napi_insecure yes\napi_tokens " + tokens, "api_insecure takes no arguments", nil},
		{"api tls and insecure", "api :8053\napi_insecure\napi_tls " + cert + " " + key + "\napi_tokens " + tokens, "exclude each other", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := caddy.NewTestController("dns", wrap(tc.body))
			s, err := parse(c)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

// TestParseContainSharedAPI: two shield blocks of one Corefile cannot
// share an API address. The second would take the server over as if it
// were a reload, and the first block's quarantines and blocks could no
// longer be managed.
func TestParseContainSharedAPI(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(tokens, []byte("ops:0123456789abcdef\n"), 0o600)
	block := func(api string) string {
		return "shield {\nblocklist c2 /l/c2.txt\napi " + api + "\napi_tokens " + tokens + "\n}"
	}
	c := caddy.NewTestController("dns", block(":8053"))
	if _, err := parse(c); err != nil {
		t.Fatal(err)
	}
	// The next server block of the same Corefile: same instance.
	c.Dispenser = caddyfile.NewDispenser("Testfile", strings.NewReader(block("127.0.0.1:8053")))
	if _, err := parse(c); err == nil || !strings.Contains(err.Error(), "another shield block") {
		t.Fatalf("second block with the same api address: %v", err)
	}
	c.Dispenser = caddyfile.NewDispenser("Testfile", strings.NewReader(block(":8054")))
	if _, err := parse(c); err != nil {
		t.Fatalf("second block with its own api address: %v", err)
	}
	// A reload is a new instance: the address is free again.
	if _, err := parse(caddy.NewTestController("dns", block(":8053"))); err != nil {
		t.Fatalf("a new instance: %v", err)
	}
}
