package test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/dnsshield/shield/plugin/shield/score"
	"github.com/miekg/dns"
)

// Detection state across Corefile reloads and restarts, over the wire.

// detectServer is a CoreDNS instance that a test stops and starts again.
type detectServer struct {
	inst    *caddy.Instance
	udp     string
	stopped bool
}

// startDetectServer starts CoreDNS from corefile; the test's end stops it
// unless the test did.
func startDetectServer(t *testing.T, corefile string) *detectServer {
	t.Helper()
	startMu.Lock()
	caddy.Quiet, dnsserver.Quiet = true, true
	inst, err := caddy.Start(corefileInput(corefile))
	startMu.Unlock()
	if err != nil {
		t.Fatalf("starting CoreDNS: %v\nCorefile:\n%s", err, corefile)
	}
	s := &detectServer{inst: inst, udp: inst.Servers()[0].LocalAddr().String()}
	t.Cleanup(s.stop)
	return s
}

// stop does what the process does on SIGTERM: the shutdown hooks (they
// write the state files), then the servers.
func (s *detectServer) stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	s.inst.ShutdownCallbacks()
	s.inst.Stop()
}

// reload replaces the Corefile as the reload plugin does: the new
// configuration starts before the old one stops.
func (s *detectServer) reload(t *testing.T, corefile string) error {
	t.Helper()
	startMu.Lock()
	inst, err := s.inst.Restart(corefileInput(corefile))
	startMu.Unlock()
	if err != nil {
		return err
	}
	s.inst = inst
	s.udp = inst.Servers()[0].LocalAddr().String()
	return nil
}

// blockTunnel drives a tunnel session from src under zone until detection
// blocks it (at most 50 queries).
func blockTunnel(t *testing.T, addr, src, zone string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 8))
	for i := 1; i <= 50; i++ {
		if detectBlocked(t, askFrom(t, src, addr, tunnelName(rng, i, zone), dns.TypeTXT)) {
			return
		}
	}
	t.Fatalf("tunnel under %s not blocked within 50 queries", zone)
}

// stuck reports whether a plain query from src under domain is blocked by
// detection: the sticky verdict, since a plain name scores nothing.
func stuck(t *testing.T, addr, src, domain string) bool {
	t.Helper()
	return detectBlocked(t, askFrom(t, src, addr, "www."+domain+".", dns.TypeA))
}

const tunnelSrc = "127.0.0.1"

// TestDetectVerdictSurvivesReload: a tunnel domain blocked by detection
// stays blocked over Corefile reloads, with the same table sizes (the new
// configuration shares the tables) and with others (it copies them).
func TestDetectVerdictSurvivesReload(t *testing.T) {
	up := startUpstream(t)
	corefile := func(extra string) string {
		return shieldCorefile(up, "", "blocklist none "+emptyList(t)+"\naudit off\n"+extra)
	}
	srv := startDetectServer(t, corefile(""))
	blockTunnel(t, srv.udp, tunnelSrc, "tun.example.net")
	if !stuck(t, srv.udp, tunnelSrc, "example.net") {
		t.Fatal("no sticky verdict before the reload")
	}
	for _, extra := range []string{"", "detect_tables 65536 32768 8192", "detect_tables 65536 32768 8192\nttl 60"} {
		if err := srv.reload(t, corefile(extra)); err != nil {
			t.Fatalf("reload to %q: %v", extra, err)
		}
		if !stuck(t, srv.udp, tunnelSrc, "example.net") {
			t.Errorf("verdict lost in the reload to %q", extra)
		}
		if !forwarded(askFrom(t, tunnelSrc, srv.udp, "www.example.org.", dns.TypeA)) {
			t.Errorf("after the reload to %q a benign name is not forwarded", extra)
		}
	}
}

// TestDetectVerdictSurvivesFailedReload: a reload that CoreDNS abandons
// after the new configuration started (its second server block wants a
// taken port) leaves the verdict with the configuration in force, and a
// later good reload still carries it.
func TestDetectVerdictSurvivesFailedReload(t *testing.T) {
	up := startUpstream(t)
	good := shieldCorefile(up, "", "blocklist none "+emptyList(t)+"\naudit off")
	srv := startDetectServer(t, good)
	blockTunnel(t, srv.udp, tunnelSrc, "tun.example.net")

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, port, _ := net.SplitHostPort(busy.Addr().String())
	bad := shieldCorefile(up, "", "blocklist none "+emptyList(t)+"\naudit off\ndetect_tables 65536 32768 8192") +
		".:" + port + " {\n bind 127.0.0.1\n whoami\n}\n"
	if err := srv.reload(t, bad); err == nil {
		t.Fatal("the reload onto a taken port succeeded")
	}
	if !stuck(t, srv.udp, tunnelSrc, "example.net") {
		t.Error("verdict lost in the failed reload")
	}
	// The configuration in force still holds the engine: the next good
	// reload takes it, and so does a second tunnel's verdict made now.
	blockTunnel(t, srv.udp, tunnelSrc, "tun.example.com")
	if err := srv.reload(t, good); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"example.net", "example.com"} {
		if !stuck(t, srv.udp, tunnelSrc, d) {
			t.Errorf("verdict on %s lost in the reload after the failed one", d)
		}
	}
}

// TestDetectStateRestart: with `state FILE` the verdict survives a
// restart through FILE.detect (mode 0600); a corrupt FILE.detect is set
// aside, counted, and never overwritten, and the server starts without it.
func TestDetectStateRestart(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	corefile := func(extra string) string {
		return shieldCorefile(up, extra, "blocklist none "+emptyList(t)+"\naudit off\nstate "+state)
	}
	srv := startDetectServer(t, corefile(""))
	blockTunnel(t, srv.udp, tunnelSrc, "tun.example.net")
	srv.stop()
	fi, err := os.Stat(state + ".detect")
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("detection state file: %v %v", fi, err)
	}

	srv = startDetectServer(t, corefile(""))
	if !stuck(t, srv.udp, tunnelSrc, "example.net") {
		t.Error("verdict lost in the restart")
	}
	if !forwarded(askFrom(t, tunnelSrc, srv.udp, "www.example.org.", dns.TypeA)) {
		t.Error("a benign name is not forwarded after the restart")
	}
	srv.stop()

	// Damage the file: one flipped byte in the middle.
	data, err := os.ReadFile(state + ".detect")
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x10
	if err := os.WriteFile(state+".detect", data, 0o600); err != nil {
		t.Fatal(err)
	}
	metrics := freePort(t)
	srv = startDetectServer(t, corefile("prometheus "+metrics))
	if v := metricValue(t, metrics, "coredns_shield_detect_state_errors_total", map[string]string{"kind": "corrupt"}); v < 1 {
		t.Errorf("corrupt state not counted: %v", v)
	}
	if stuck(t, srv.udp, tunnelSrc, "example.net") {
		t.Error("a verdict from the corrupt file is in force")
	}
	aside, _ := filepath.Glob(state + ".detect.corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("corrupt file not set aside: %v", aside)
	}
	if kept, err := os.ReadFile(aside[0]); err != nil || !bytes.Equal(kept, data) {
		t.Errorf("the corrupt file was not kept as it was: %v", err)
	}
	srv.stop()
	if kept, err := os.ReadFile(aside[0]); err != nil || !bytes.Equal(kept, data) {
		t.Errorf("the corrupt file was overwritten at shutdown: %v", err)
	}
}

// TestRestartWithoutHistoryNoMoreAlerts replays benign traffic through
// three servers:
//   - one whose state file carries two days of history in which the
//     traffic's domains were seen: the steady state before a restart;
//   - one restarted without history (no state file);
//   - one whose state file carries two days of history without those
//     domains: to them the domains are new, and newly_seen adds its points.
//
// The restart without history raises no more alerts than the steady
// state, while the third server shows that the traffic holds names that
// newly_seen would push over the alert threshold: unknown is not new.
func TestRestartWithoutHistoryNoMoreAlerts(t *testing.T) {
	names := borderlineNames(t)
	for i := 0; i < 100; i++ {
		names = append(names, fmt.Sprintf("www.benign-site-%d.com.", i))
	}
	up := startUpstream(t)
	dir := t.TempDir()
	run := func(name string, state []byte) int {
		t.Helper()
		file := strings.ReplaceAll(name, " ", "-")
		audit := filepath.Join(dir, file+".audit.json")
		body := "blocklist none " + emptyList(t) + "\naudit " + audit
		if state != nil {
			path := filepath.Join(dir, file+".state.json")
			if err := os.WriteFile(path+".detect", state, 0o600); err != nil {
				t.Fatal(err)
			}
			body += "\nstate " + path
		}
		srv := startDetectServer(t, shieldCorefile(up, "", body))
		for i, n := range names {
			// One client per name: a client's run of machine-made new
			// domains is evidence of its own (the DGA detector's), and
			// this test is about newly_seen.
			src := fmt.Sprintf("127.0.%d.%d", 5+i/250, 1+i%250)
			if m := askFrom(t, src, srv.udp, n, dns.TypeA); !forwarded(m) {
				t.Errorf("%s: benign name blocked: %v", name, m)
			}
		}
		srv.stop() // flushes the audit writer
		alerts := 0
		for _, l := range readDetections(t, audit) {
			if l.Event.Action == "alert" {
				alerts++
			}
		}
		t.Logf("%s: %d alerts for %d benign names", name, alerts, len(names))
		return alerts
	}
	steady := run("with history", historyState(t, names))
	fresh := run("restart without history", nil)
	unknown := run("history without these names", historyState(t, nil))
	if fresh > steady {
		t.Errorf("after a restart without history %d alerts, before it %d", fresh, steady)
	}
	if unknown <= steady {
		t.Errorf("the traffic has no name that newly_seen alerts on (%d alerts with unknown domains, %d known): the test shows nothing", unknown, steady)
	}
}

// historyState returns a detection state file whose history began two
// days ago and saw names 20 hours ago.
func historyState(t *testing.T, names []string) []byte {
	t.Helper()
	now := time.Now()
	clock := now.Add(-48 * time.Hour)
	e, err := score.New(score.Config{Clock: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	clock = now.Add(-20 * time.Hour)
	for _, n := range names {
		e.Score(score.Query{Name: n, Type: dns.TypeA, Client: netip.MustParseAddr("10.9.9.9")})
	}
	clock = now
	var b bytes.Buffer
	if err := e.SaveState(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// borderlineNames returns benign-looking names (long service labels) that
// alert only with newly_seen's points: to an engine with history that has
// not seen their domains they alert, to a fresh engine they do not. They
// are picked from a generated pool with the engine itself, so the test
// follows the scoring table.
func borderlineNames(t *testing.T) []string {
	t.Helper()
	now := time.Now()
	clock := func() time.Time { return now }
	withHistory, err := score.New(score.Config{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	withHistory.SetHistoryFrom(now.Add(-48 * time.Hour))
	fresh, err := score.New(score.Config{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	client := netip.MustParseAddr("10.9.9.9")
	var out []string
	// A query's own tunnel features stop short of an alert even with
	// newly_seen (score.tunnelLexCap); a machine-made registered label
	// (the DGA model's lowest tier) on top of them reaches it only with
	// newly_seen's points. Half the pool has such labels.
	const consonants = "bcdfghjklmnpqrstvwxz"
	for i := 0; i < 4000 && len(out) < 20; i++ {
		b := make([]byte, 20+i%20)
		for j := range b {
			b[j] = alnum[rng.IntN(len(alnum))]
		}
		reg := fmt.Sprintf("service-%d", i)
		if i%2 == 1 {
			l := make([]byte, 9+i%6)
			for j := range l {
				l[j] = consonants[rng.IntN(len(consonants))]
				if j%3 == 2 {
					l[j] = "aeiou"[rng.IntN(5)]
				}
			}
			reg = string(l)
		}
		name := fmt.Sprintf("%s.content-delivery-%s.%s.com.", b, strings.Repeat("x", i%15), reg)
		q := score.Query{Name: name, Type: dns.TypeA, Client: client}
		if withHistory.Explain(q).Action == score.Alert && fresh.Explain(q).Action == score.Pass {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		t.Fatal("no generated name alerts only with newly_seen: change the pool")
	}
	return out
}

// emptyList returns a blocklist file that blocks nothing of the tests.
func emptyList(t *testing.T) string {
	t.Helper()
	return writeFile(t, t.TempDir(), "none.txt", "nothing.invalid\n")
}
