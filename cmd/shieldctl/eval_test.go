package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnsshield/shield/plugin/shield/score"
	"github.com/miekg/dns"
)

func TestDetectFormat(t *testing.T) {
	for line, want := range map[string]string{
		"label,qname":                   "netrack",
		"google.com":                    "lines",
		"dga,gozi,example.com":          "dga",
		"legit,alexa,example.com":       "dga",
		"tunnel,dns2tcp,a.b.c,TXT,0,":   "csv",
		"1,q+abc.example.org.":          "netrack",
		"benign,umbrella,x.example.com": "csv",
	} {
		if got := detectFormat(line); got != want {
			t.Errorf("detectFormat(%q) = %s, want %s", line, got, want)
		}
	}
	if g := groupFromFile("/x/tunnel_qnames_iodine_netrack.csv.gz"); g != "iodine" {
		t.Errorf("group %q", g)
	}
}

// TestEvalReplay replays a small CSV corpus (a tunnel session and benign
// names) and checks the figures printed.
func TestEvalReplay(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&b, "tunnel,tool,q+Zx%dAbCdEf+%d.tun.example.net,TXT,NOERROR,192.0.2.9\n", i, i)
	}
	for _, n := range []string{"www.example.com", "mail.example.com", "example.org"} {
		fmt.Fprintf(&b, "benign,web,%s,A,,192.0.2.1\n", n)
	}
	path := filepath.Join(t.TempDir(), "c.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	rp, err := score.NewReplay(score.Config{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = readCorpus(path, "auto", "benign", "tunnel", "", dns.TypeA, func(ev evalEvent) {
		if ev.Label == "tunnel" && ev.Type != dns.TypeTXT {
			t.Errorf("qtype %d", ev.Type)
		}
		n++
		rp.Run(ev.Event)
	})
	if err != nil || n != 43 {
		t.Fatalf("read %d events: %v", n, err)
	}
	var out bytes.Buffer
	printEval(&out, rp, true, map[[2]string]string{})
	s := out.String()
	t.Log("\n" + s)
	var tunnel, benign *score.GroupStats
	for _, g := range rp.Labels() {
		switch g.Label {
		case "tunnel":
			tunnel = g
		case "benign":
			benign = g
		}
	}
	if tunnel.FirstBlock == 0 || tunnel.FirstBlock > 20 || tunnel.AfterRate() < 0.95 {
		t.Errorf("tunnel: first block %d, after %.2f", tunnel.FirstBlock, tunnel.AfterRate())
	}
	if benign.Blocks != 0 {
		t.Errorf("benign blocks %d", benign.Blocks)
	}
	if !strings.Contains(s, "false-positive rate") || !strings.Contains(s, "blocked tunnel/tool: example.net") {
		t.Errorf("output lacks the expected lines")
	}
}

func TestEvalFlags(t *testing.T) {
	if err := runEval([]string{"-clients", "many", "x"}); err == nil {
		t.Error("bad -clients accepted")
	}
	if err := runEval([]string{"-rcode", "dga"}); err == nil {
		t.Error("bad -rcode accepted")
	}
	for _, bad := range [][]string{{"-step", "0s", "x"}, {"-step", "-20ms", "x"}, {"-suspect", "-1", "x"}} {
		if err := runEval(bad); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%v: error %v, want one naming %s", bad, err, bad[0])
		}
	}
	if err := runEval(nil); err == nil {
		t.Error("no file accepted")
	}
	if err := runEval([]string{filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("missing file accepted")
	}
}
