package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	err = readCorpus(path, "auto", "benign", "tunnel", "", dns.TypeA, &timeBase{}, func(ev evalEvent) {
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

// TestEvalTimes replays a slow tunnel from a csv file with a time
// column: one query every 5 s of hex labels in A queries (the shape that
// builds no encoded-prefix evidence), with RFC 3339 times. It is blocked
// within an hour of the capture's time, and the replay takes no real
// time.
func TestEvalTimes(t *testing.T) {
	var b strings.Builder
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := 0; i < 720; i++ {
		fmt.Fprintf(&b, "tunnel,slow,%032x%08x.slow.example.net,A,NOERROR,192.0.2.7,%s\n",
			uint64(i)*0x9e3779b97f4a7c15, i*2654435761, start.Add(time.Duration(i)*5*time.Second).Format(time.RFC3339))
	}
	path := filepath.Join(t.TempDir(), "slow.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	rp, err := score.NewReplay(score.Config{NoNewlySeen: true}, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var blockedAt time.Duration
	err = readCorpus(path, "auto", "benign", "tunnel", "", dns.TypeA, &timeBase{}, func(ev evalEvent) {
		if res := rp.Run(ev.Event); res.Action == score.Block && blockedAt == 0 {
			blockedAt = rp.Elapsed()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	g := rp.Groups()[0]
	t.Logf("slow tunnel: first block at query %d, %v into the capture; %.1f%% of the rest blocked", g.FirstBlock, blockedAt, 100*g.AfterRate())
	if g.FirstBlock == 0 || blockedAt > time.Hour {
		t.Errorf("not blocked within an hour: query %d at %v", g.FirstBlock, blockedAt)
	}
	if got := rp.Elapsed(); got < 59*time.Minute || got > time.Hour {
		t.Errorf("replay clock at %v after 720 queries 5 s apart", got)
	}

	var tb timeBase
	for _, bad := range []string{"-1", "yesterday", "2026-03-01T11:00:00Z"} {
		if bad == "2026-03-01T11:00:00Z" {
			tb.offset("2026-03-01T12:00:00Z")
		}
		if _, err := tb.offset(bad); err == nil {
			t.Errorf("time %q accepted", bad)
		}
	}
}
