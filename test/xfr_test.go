package test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// RPZ by zone transfer against BIND: named from Debian (package bind9) is
// the primary of an RPZ zone on loopback, with TSIG, NOTIFY to shield's
// port and IXFR (a dynamic zone: nsupdate, from bind9-dnsutils, changes
// it and named keeps the journal IXFR is served from).

// xfrKeys are two TSIG secrets (base64 of 32 random bytes): the one shield
// holds, and the one the primary is moved to in the wrong-key step.
const (
	xfrSecret      = "2Jj1gUm8yQ8tq8JyuoP0y7ZxHYVwJ7GbOdv0Ck8C9vQ="
	xfrOtherSecret = "q3P0dB8gk3cNAa7v6o0CqJ0M1VvRj7jvQy0xWkJbB1c="
	xfrZone        = "rpz.test"
)

// xfrRuns counts the runs of TestXFRFromBIND in this process.
var xfrRuns int

// xfrWithin bounds every step: a NOTIFY, a transfer and a load take well
// under a second on loopback.
const xfrWithin = 10 * time.Second

// namedPrimary is a running named.
type namedPrimary struct {
	cmd  *exec.Cmd
	port string
	out  *boundedBuffer
}

// startNamed starts named as the primary of xfrZone from dir (its
// configuration, zone file, journal and key), listening on 127.0.0.1:port,
// allowing transfers and updates signed with secret, and sending NOTIFY to
// notify (host:port). The test's cleanup ends it by PID.
func startNamed(t testing.TB, dir, port, secret, notify string) *namedPrimary {
	t.Helper()
	named := debianTool(t, "named", "bind9")
	nh, np, err := net.SplitHostPort(notify)
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`options {
	directory "%[1]s";
	pid-file "%[1]s/named.pid";
	session-keyfile "%[1]s/session.key";
	managed-keys-directory "%[1]s";
	listen-on port %[2]s { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	notify explicit;
	notify-delay 0;
	also-notify { %[3]s port %[4]s; };
	ixfr-from-differences yes;
	allow-query { any; };
	allow-transfer { key "xfr-key"; };
};
key "xfr-key" {
	algorithm hmac-sha256;
	secret "%[5]s";
};
controls { };
zone "%[6]s" {
	type primary;
	file "%[1]s/%[6]s.db";
	allow-update { key "xfr-key"; };
};
`, dir, port, nh, np, secret, xfrZone)
	cfg := writeFile(t, dir, "named.conf", conf)
	out := &boundedBuffer{}
	cmd := exec.Command(named, "-g", "-c", cfg, "-n", "1")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting named: %v", err)
	}
	p := &namedPrimary{cmd: cmd, port: port, out: out}
	t.Cleanup(p.stop)
	// Up when it answers the zone's SOA.
	deadline := time.Now().Add(xfrWithin)
	for {
		m := new(dns.Msg).SetQuestion(dns.Fqdn(xfrZone), dns.TypeSOA)
		if in, err := dns.Exchange(m, net.JoinHostPort("127.0.0.1", port)); err == nil && in.Rcode == dns.RcodeSuccess && len(in.Answer) == 1 {
			return p
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			p.stop()
			t.Fatalf("named did not serve %s within %s:\n%s", xfrZone, xfrWithin, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// debianTool returns the path of a program from a Debian package, found
// in PATH or /usr/sbin, and skips the test without it (fails under
// CI=true, as skipOrFail does).
func debianTool(t testing.TB, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := "/usr/sbin/" + name; fileExists(p) {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not installed (apt-get install %s)", name, pkg)
	}
	t.Skipf("%s not installed (apt-get install %s)", name, pkg)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// stop ends named by its PID and waits for it.
func (p *namedPrimary) stop() {
	if p.cmd.Process == nil || p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// update changes the zone through nsupdate, signed with secret.
func (p *namedPrimary) update(t testing.TB, secret string, lines ...string) {
	t.Helper()
	nsupdate := debianTool(t, "nsupdate", "bind9-dnsutils")
	script := fmt.Sprintf("server 127.0.0.1 %s\nzone %s\n%s\nsend\n", p.port, xfrZone, strings.Join(lines, "\n"))
	cmd := exec.Command(nsupdate, "-y", "hmac-sha256:xfr-key:"+secret)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nsupdate: %v\n%s", err, out)
	}
}

// notify sends a NOTIFY for zone to addr, from 127.0.0.1, and returns the
// answer's rcode.
func notify(t *testing.T, addr, zone string) int {
	t.Helper()
	m := new(dns.Msg).SetNotify(dns.Fqdn(zone))
	in, err := dns.Exchange(m, addr)
	if err != nil {
		t.Fatalf("NOTIFY: %v", err)
	}
	if in.Opcode != dns.OpcodeNotify {
		t.Errorf("NOTIFY answered with opcode %d", in.Opcode)
	}
	return in.Rcode
}

// TestXFRFromBIND follows an RPZ zone from named through AXFR, IXFR after
// a change, NOTIFY, a primary with another key, a primary that goes away,
// and a restart with the primary down, checked over DNS at each step.
func TestXFRFromBIND(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	bind := filepath.Join(dir, "bind")
	cacheDir := filepath.Join(dir, "cache")
	if err := os.Mkdir(bind, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, bind, xfrZone+".db", `$TTL 300
@	SOA	ns.rpz.test. hostmaster.rpz.test. 1 3600 600 86400 300
	NS	ns.rpz.test.
ns	A	127.0.0.1
bad.example	CNAME	.
*.wild.example	CNAME	.
good.bad.example	CNAME	rpz-passthru.
`)
	keyFile := filepath.Join(dir, "xfr.key")
	if err := os.WriteFile(keyFile, []byte(xfrSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	primaryPort := strings.TrimPrefix(freePort(t), "127.0.0.1:")
	primary := "127.0.0.1:" + primaryPort
	list := "axfr://" + primary + "/" + xfrZone + " tsig xfr-key hmac-sha256 " + keyFile

	// The counters live as long as the process: a list name of its own
	// for each run (-count) starts them at zero.
	xfrRuns++
	name := fmt.Sprintf("rpzxfr%d", xfrRuns)
	metricsAddr := freePort(t)
	corefile := func(metricsAddr string) string {
		return shieldCorefile(up, "prometheus "+metricsAddr, "blocklist "+name+" "+list+"\nfeed_cache "+cacheDir+"\naudit off")
	}
	r, stopShield := startCoreDNSStoppable(t, corefile(metricsAddr))
	outcome := func(o string) float64 {
		return metricValue(t, metricsAddr, "coredns_shield_feed_fetch_total", map[string]string{"list": name, "outcome": o})
	}

	// named sends NOTIFY to shield's port when it loads the zone; shield
	// answers it and transfers the zone (AXFR: it holds none).
	p := startNamed(t, bind, primaryPort, xfrSecret, r.udp)
	eventually(t, xfrWithin, "the zone in force by AXFR after named's NOTIFY", func() bool { return blocked(t, r, "bad.example.") })
	if !blocked(t, r, "x.wild.example.") || blocked(t, r, "good.bad.example.") || blocked(t, r, "new.example.") {
		t.Fatal("the transferred zone's rules are not what the zone says")
	}
	// The counter follows the load: wait for it.
	eventually(t, xfrWithin, "axfr counted", func() bool { return outcome("axfr") == 1 })

	t.Run("IXFR after a change", func(t *testing.T) {
		p.update(t, xfrSecret, "update add new.example.rpz.test. 300 CNAME .", "update delete bad.example.rpz.test. CNAME")
		eventually(t, xfrWithin, "the change in force after named's NOTIFY", func() bool {
			return blocked(t, r, "new.example.") && !blocked(t, r, "bad.example.")
		})
		eventually(t, xfrWithin, "ixfr counted", func() bool { return outcome("ixfr") >= 1 })
		if outcome("axfr") != 1 {
			t.Errorf("ixfr counted %v times, axfr %v: want an IXFR, not a second AXFR", outcome("ixfr"), outcome("axfr"))
		}
	})

	t.Run("NOTIFY", func(t *testing.T) {
		before := outcome("not_modified")
		if rc := notify(t, r.udp, xfrZone); rc != dns.RcodeSuccess {
			t.Errorf("NOTIFY from the primary's address answered %s", dns.RcodeToString[rc])
		}
		eventually(t, xfrWithin, "a refresh (serial unchanged) after the NOTIFY", func() bool { return outcome("not_modified") > before })
		if rc := notify(t, r.udp, "other.test"); rc != dns.RcodeRefused {
			t.Errorf("NOTIFY for a zone shield does not follow answered %s, want REFUSED", dns.RcodeToString[rc])
		}
	})

	t.Run("a primary with another key", func(t *testing.T) {
		p.stop()
		// Restarted with another secret, named sends NOTIFY on load;
		// shield's transfer is refused and the zone stays in force.
		p = startNamed(t, bind, primaryPort, xfrOtherSecret, r.udp)
		p.update(t, xfrOtherSecret, "update add later.example.rpz.test. 300 CNAME .")
		eventually(t, xfrWithin, "a transfer refused for its key", func() bool { return outcome("refused_tsig") >= 1 })
		if !blocked(t, r, "new.example.") || blocked(t, r, "later.example.") {
			t.Error("a refused transfer changed the zone in force")
		}
		p.stop()
		p = startNamed(t, bind, primaryPort, xfrSecret, r.udp)
		eventually(t, xfrWithin, "the key fixed: the change in force", func() bool { return blocked(t, r, "later.example.") })
	})

	t.Run("the primary goes away", func(t *testing.T) {
		p.stop()
		before := outcome("error_network")
		if rc := notify(t, r.udp, xfrZone); rc != dns.RcodeSuccess {
			t.Errorf("NOTIFY answered %s", dns.RcodeToString[rc])
		}
		eventually(t, xfrWithin, "a failed transfer", func() bool { return outcome("error_network") > before })
		if !blocked(t, r, "new.example.") || !blocked(t, r, "later.example.") {
			t.Error("a failed transfer took the zone out of force")
		}
	})

	t.Run("restart with the primary down", func(t *testing.T) {
		stopShield()
		// A new metrics address: the old listener stops with the old
		// instance.
		metricsAddr = freePort(t)
		r2, _ := startCoreDNSStoppable(t, corefile(metricsAddr))
		if outcome("cache_loaded") != 1 {
			t.Errorf("cache_loaded counted %v times", outcome("cache_loaded"))
		}
		if !blocked(t, r2, "new.example.") || !blocked(t, r2, "later.example.") || blocked(t, r2, "bad.example.") {
			t.Error("the disk copy of the zone is not in force at start-up")
		}
		meta, err := os.ReadFile(filepath.Join(cacheDir, name+".meta"))
		if err != nil || !bytes.Contains(meta, []byte(`"serial"`)) {
			t.Errorf("cache meta without the serial: %v %s", err, meta)
		}
		// The primary back with a newer zone: an IXFR from the cached
		// serial brings the change.
		p = startNamed(t, bind, primaryPort, xfrSecret, r2.udp)
		before := outcome("ixfr")
		p.update(t, xfrSecret, "update add back.example.rpz.test. 300 CNAME .")
		eventually(t, xfrWithin, "the change after the restart in force", func() bool { return blocked(t, r2, "back.example.") })
		eventually(t, xfrWithin, "an IXFR from the disk copy's serial", func() bool { return outcome("ixfr") > before })
		if outcome("axfr") != 1 {
			t.Errorf("axfr counted %v times: the restart from the disk copy transferred the whole zone", outcome("axfr"))
		}
	})
}

// BenchmarkXFRChangeInForce measures the time from a change of the RPZ
// zone on the primary (nsupdate returning) to the change in force over
// DNS: named's NOTIFY, shield's IXFR, the diff, the rendering of the whole
// zone and its parse. The zone holds 1,000 or 100,000 rules.
func BenchmarkXFRChangeInForce(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			up := startUpstream(b)
			dir := b.TempDir()
			bind := filepath.Join(dir, "bind")
			if err := os.Mkdir(bind, 0o755); err != nil {
				b.Fatal(err)
			}
			var zone strings.Builder
			zone.WriteString("$TTL 300\n@\tSOA\tns.rpz.test. hostmaster.rpz.test. 1 3600 600 86400 300\n\tNS\tns.rpz.test.\nns\tA\t127.0.0.1\n")
			for i := 0; i < n; i++ {
				fmt.Fprintf(&zone, "bad%d.example\tCNAME\t.\n", i)
			}
			writeFile(b, bind, xfrZone+".db", zone.String())
			keyFile := filepath.Join(dir, "xfr.key")
			if err := os.WriteFile(keyFile, []byte(xfrSecret), 0o600); err != nil {
				b.Fatal(err)
			}
			port := strings.TrimPrefix(freePort(b), "127.0.0.1:")
			r := startCoreDNS(b, shieldCorefile(up, "", fmt.Sprintf("blocklist bench_xfr%d axfr://127.0.0.1:%s/%s tsig xfr-key hmac-sha256 %s\naudit off", n, port, xfrZone, keyFile)))
			p := startNamed(b, bind, port, xfrSecret, r.udp)
			eventually(b, 30*time.Second, "the zone in force", func() bool { return blocked(b, r, "bad0.example.") })
			var total time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				name := fmt.Sprintf("change%d.example", i)
				p.update(b, xfrSecret, "update add "+name+".rpz.test. 300 CNAME .")
				start := time.Now()
				for !blocked(b, r, name+".") {
					if time.Since(start) > 10*time.Second {
						b.Fatal("change not in force within 10s")
					}
					time.Sleep(2 * time.Millisecond)
				}
				total += time.Since(start)
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/change")
		})
	}
}
