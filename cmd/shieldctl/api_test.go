package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	_ "github.com/dnsshield/shield/cmd/coredns/bundle"
)

type corefile string

func (c corefile) Body() []byte       { return []byte(c) }
func (c corefile) Path() string       { return "Corefile" }
func (c corefile) ServerType() string { return "dns" }

// TestAPICommands drives every API command against a real CoreDNS with
// shield's management API on loopback.
func TestAPICommands(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "c2.txt")
	os.WriteFile(list, []byte("evil.test\n"), 0o644)
	tokens := filepath.Join(dir, "tokens")
	const tok = "cli-token-0123456789abcdef"
	os.WriteFile(tokens, []byte("cli:"+tok+"\n"), 0o600)
	tokFile := filepath.Join(dir, "token")
	os.WriteFile(tokFile, []byte(tok+"\n"), 0o600)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	caddy.Quiet, dnsserver.Quiet = true, true
	inst, err := caddy.Start(corefile(fmt.Sprintf(".:0 {\n bind 127.0.0.1\n shield {\n blocklist c2 %s\n api %s\n api_tokens %s\n audit off\n }\n template IN A . {\n answer \"{{ .Name }} 60 IN A 192.0.2.1\"\n }\n}\n", list, addr, tokens)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.ShutdownCallbacks(); inst.Stop() })

	env := func(k string) string {
		if k == "SHIELD_TOKEN" {
			return tok
		}
		return ""
	}
	run := func(cmd string, args ...string) (string, error) {
		var out bytes.Buffer
		err := runAPIWith(cmd, append([]string{"-api", addr}, args...), &out, env)
		return out.String(), err
	}
	tests := []struct {
		cmd  string
		args []string
		want string // substring of the output, or of the error when it starts with "!"
	}{
		{"status", nil, `"name": "c2"`},
		{"quarantine", []string{"add", "-ttl", "2h", "-reason", "cli test", "10.1.2.3"}, `"actor": "api:cli"`},
		{"quarantine", []string{"add", "-reason", "net", "10.8.0.0/17"}, `"client": "10.8.0.0/17"`},
		{"quarantine", nil, `"reason": "cli test"`},
		{"quarantine", []string{"list"}, `"client": "10.8.0.0/17"`},
		{"explain", []string{"-client", "10.1.2.3", "www.example.com"}, `"verdict": "quarantine_nxdomain"`},
		{"explain", []string{"x.evil.test"}, `"list": "c2"`},
		{"release", []string{"10.8.0.0/17"}, `"client": "10.8.0.0/17"`},
		{"release", []string{"10.8.0.0/17"}, "!404"},
		// The quarantine cap (a /16 of IPv4 by default; 10.1.2.3 is held)
		// and the public-suffix guard: 409 without -force.
		{"quarantine", []string{"add", "-reason", "wide", "10.64.0.0/16"}, "!409 Conflict: refused without force: over the quarantine cap"},
		{"quarantine", []string{"add", "-force", "-reason", "wide", "10.64.0.0/16"}, `"client": "10.64.0.0/16"`},
		{"block", []string{"-reason", "suffix", "co.uk"}, "!409 Conflict: refused without force: public suffix"},
		{"block", []string{"-force", "-ttl", "1h", "-reason", "suffix", "co.uk"}, `"name": "co.uk"`},
		{"block", []string{"-ttl", "1h", "-reason", "wave", "fresh.test"}, `"name": "fresh.test"`},
		{"blocks", nil, `"reason": "wave"`},
		{"unblock", []string{"fresh.test"}, `"name": "fresh.test"`},
		{"audit", []string{"-limit", "1"}, `"records": []`},
		{"quarantine", []string{"add", "-reason", "x", "10.0.0.0/33"}, "!400 Bad Request: bad request: invalid client"},
		{"quarantine", []string{"add", "-ttl", "-1h", "-reason", "x", "10.0.0.1"}, "!positive"},
		{"block", []string{"fresh.test"}, "!reason is required"},
		{"release", nil, "!want one CLIENT"},
		{"verdicts", nil, `"verdicts": []`},
		{"clear", []string{"tun.example"}, "!404 Not Found: not found: no verdict on tun.example"},
		{"promote", []string{"tun.example"}, "!reason is required"},
		{"promote", []string{"-reason", "confirmed", "tun.example"}, "!no verdict on tun.example"},
		{"clear", nil, "!want one DOMAIN"},
	}
	for _, tc := range tests {
		out, err := run(tc.cmd, tc.args...)
		if neg, ok := strings.CutPrefix(tc.want, "!"); ok {
			if err == nil || !strings.Contains(err.Error(), neg) {
				t.Errorf("%s %q: error %v, want %q", tc.cmd, tc.args, err, neg)
			}
			continue
		}
		if err != nil || !strings.Contains(out, tc.want) {
			t.Errorf("%s %q: %v\n%s\nwant %q", tc.cmd, tc.args, err, out, tc.want)
		}
	}

	// The token from a file, the server's NAME:TOKEN line too; a wrong one.
	var out bytes.Buffer
	if err := runAPIWith("status", []string{"-api", addr, "-token-file", tokFile}, &out, func(string) string { return "" }); err != nil {
		t.Errorf("token file: %v", err)
	}
	if err := runAPIWith("status", []string{"-api", addr, "-token-file", tokens}, &out, func(string) string { return "" }); err != nil {
		t.Errorf("NAME:TOKEN file: %v", err)
	}
	err = runAPIWith("status", []string{"-api", addr}, &out, func(string) string { return "wrong-token-0123456789" })
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong token: %v", err)
	}
	if err := runAPIWith("status", []string{"-api", addr}, &out, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "no token") {
		t.Errorf("no token: %v", err)
	}
}
