package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// auditLine is the part of an audit record the tests read back: list
// blocks, detections and containment records alike.
type auditLine struct {
	Timestamp string `json:"@timestamp"`
	Event     struct {
		Action string `json:"action"`
	} `json:"event"`
	Client struct {
		IP string `json:"ip"`
	} `json:"client"`
	DNS struct {
		Question struct {
			Name             string `json:"name"`
			Type             string `json:"type"`
			RegisteredDomain string `json:"registered_domain"`
		} `json:"question"`
	} `json:"dns"`
	Rule struct {
		Name    string `json:"name"`
		Ruleset string `json:"ruleset"`
	} `json:"rule"`
	Observer struct {
		Name string `json:"name"`
	} `json:"observer"`
	Shield struct {
		ListVersion string   `json:"list_version"`
		Mode        string   `json:"mode"`
		Score       int      `json:"score"`
		Reasons     []string `json:"reasons"`
		Domain      string   `json:"registered_domain"`
		Scope       string   `json:"scope"`
		Actor       string   `json:"actor"`
		Reason      string   `json:"reason"`
		Expires     string   `json:"expires"`
		Evidence    []string `json:"evidence"`
		AnswerMatch string   `json:"answer_match"`
	} `json:"shield"`
}

// readAudit parses every finished line of the audit file (the writer may
// be in the middle of the last one); a line that is not exactly one JSON
// object fails the test.
func readAudit(t testing.TB, path string) []auditLine {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []auditLine
	rd := bufio.NewReader(f)
	for {
		line, err := rd.ReadBytes('\n')
		if err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			return out
		}
		var l auditLine
		dec := json.NewDecoder(bytes.NewReader(line))
		if err := dec.Decode(&l); err != nil || dec.More() {
			t.Fatalf("audit line is not one JSON object: %q: %v", line, err)
		}
		out = append(out, l)
	}
}

func TestAuditRecords(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	list := writeFile(t, dir, "list.txt", "evil.test\n")
	logPath := filepath.Join(dir, "audit.json")
	r := startCoreDNS(t, shieldCorefile(up, "", "blocklist malware "+list+"\naudit "+logPath+"\nobserver resolver-7"))

	// A hostile name: a quote, a backslash, a newline that would start a
	// forged record, a NUL, a byte that is not UTF-8 and a brace.
	hostile := `x\"}\010{"event":{"action":"allow"}}\000\255\\.evil.test.`
	names := []string{"www.evil.test.", hostile}
	for _, n := range names {
		if m := ask(t, "udp", r.udp, n, dns.TypeAAAA); m.Rcode != dns.RcodeNameError {
			t.Fatalf("%q: rcode %s", n, dns.RcodeToString[m.Rcode])
		}
	}
	ask(t, "udp", r.udp, "fine.test.", dns.TypeA) // a pass writes nothing

	var lines []auditLine
	eventually(t, 3*time.Second, "two audit records", func() bool { lines = readAudit(t, logPath); return len(lines) >= 2 })
	time.Sleep(200 * time.Millisecond)
	if lines = readAudit(t, logPath); len(lines) != 2 {
		t.Fatalf("want exactly 2 records (one per block), got %d", len(lines))
	}
	for i, l := range lines {
		if l.Event.Action != "block" || l.Client.IP != "127.0.0.1" || l.DNS.Question.Type != "AAAA" ||
			l.Rule.Ruleset != "malware" || l.Rule.Name != "evil.test" || len(l.Shield.ListVersion) != 16 ||
			l.Observer.Name != "resolver-7" || l.Shield.Mode != "enforce" {
			t.Errorf("record %d: %+v", i, l)
		}
		if _, err := time.Parse(time.RFC3339Nano, l.Timestamp); err != nil {
			t.Errorf("record %d: @timestamp %q: %v", i, l.Timestamp, err)
		}
	}
	if lines[0].DNS.Question.Name != "www.evil.test." {
		t.Errorf("name %q", lines[0].DNS.Question.Name)
	}
	// The hostile name comes back as the server saw it, in DNS
	// presentation format, inside one record.
	if got := lines[1].DNS.Question.Name; !strings.HasSuffix(got, ".evil.test.") || !strings.Contains(got, `"}`) {
		t.Errorf("hostile name came back as %q", got)
	}
	fi, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("audit file mode %o, want 600", perm)
	}
}

func TestMonitorMode(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	list := writeFile(t, dir, "list.txt", "evil.test\n")
	logPath := filepath.Join(dir, "audit.json")
	r := startCoreDNS(t, shieldCorefile(up, "", "blocklist trial "+list+"\nmode monitor\naction sinkhole 10.0.0.1\naudit "+logPath))
	m := ask(t, "udp", r.udp, "a.evil.test.", dns.TypeA)
	if !forwarded(m) {
		t.Fatalf("monitor mode blocked: %v", m)
	}
	if up.count("a.evil.test.") != 1 {
		t.Errorf("upstream saw the query %d times", up.count("a.evil.test."))
	}
	var lines []auditLine
	eventually(t, 3*time.Second, "a monitor record", func() bool { lines = readAudit(t, logPath); return len(lines) == 1 })
	if l := lines[0]; l.Event.Action != "monitor" || l.Shield.Mode != "monitor" || l.Rule.Ruleset != "trial" || l.Rule.Name != "evil.test" {
		t.Errorf("record %+v", l)
	}
}
