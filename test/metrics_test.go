package test

import (
	"bufio"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// metricValue scrapes the prometheus endpoint at addr and returns the
// value of the sample of metric whose labels include want (0 if absent).
func metricValue(t testing.TB, addr, metric string, want map[string]string) float64 {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric+"{") && !strings.HasPrefix(line, metric+" ") {
			continue
		}
		ok := true
		for k, v := range want {
			if !strings.Contains(line, fmt.Sprintf("%s=%q", k, v)) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		return f
	}
	return 0
}

var serverLabel = regexp.MustCompile(`server="[^"]*"`)

func TestMetrics(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	p := writeFile(t, dir, "list.txt", "evil.test\nworse.test\nworst.test\n")
	a := writeFile(t, dir, "allow.txt", "ok.evil.test\n")
	metricsAddr := freePort(t)
	r := startCoreDNS(t, shieldCorefile(up, "prometheus "+metricsAddr, "blocklist malware "+p+"\nallowlist corp "+a+"\naudit off"))

	before := func(action string) float64 {
		return metricValue(t, metricsAddr, "coredns_shield_queries_total", map[string]string{"action": action})
	}
	b0, p0, a0 := before("block"), before("pass"), before("allow")
	ask(t, "udp", r.udp, "evil.test.", dns.TypeA)
	ask(t, "udp", r.udp, "x.worse.test.", dns.TypeA)
	ask(t, "udp", r.udp, "fine.test.", dns.TypeA)
	ask(t, "udp", r.udp, "ok.evil.test.", dns.TypeA)

	if d := before("block") - b0; d != 2 {
		t.Errorf("block counter rose by %v, want 2", d)
	}
	if d := before("pass") - p0; d != 1 {
		t.Errorf("pass counter rose by %v, want 1", d)
	}
	if d := before("allow") - a0; d != 1 {
		t.Errorf("allow counter rose by %v, want 1", d)
	}
	if v := metricValue(t, metricsAddr, "coredns_shield_list_entries", map[string]string{"list": "malware"}); v != 3 {
		t.Errorf("list_entries = %v, want 3", v)
	}
	if v := metricValue(t, metricsAddr, "coredns_shield_list_reloads_total", map[string]string{"list": "malware"}); v < 1 {
		t.Errorf("list_reloads_total = %v", v)
	}
	ts := metricValue(t, metricsAddr, "coredns_shield_list_last_reload_timestamp_seconds", map[string]string{"list": "corp"})
	if now := float64(time.Now().Unix()); ts < now-600 || ts > now+1 {
		t.Errorf("last reload timestamp %v is not recent", ts)
	}
	if v := metricValue(t, metricsAddr, "coredns_shield_list_hits_total", map[string]string{"list": "malware"}); v < 2 {
		t.Errorf("list_hits_total = %v", v)
	}
	// The audit drop counter is exported even when it is zero.
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		body.WriteString(sc.Text() + "\n")
	}
	if !strings.Contains(body.String(), "coredns_shield_audit_dropped_total") {
		t.Error("coredns_shield_audit_dropped_total not exported")
	}
	// No client address or domain ever appears in a label.
	for _, line := range strings.Split(body.String(), "\n") {
		line = serverLabel.ReplaceAllString(line, "")
		if strings.HasPrefix(line, "coredns_shield_") && (strings.Contains(line, "127.0.0.1") || strings.Contains(line, "evil.test")) {
			t.Errorf("unbounded label value in %q", line)
		}
	}
}
