package test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Live tunnels: the real iodine and dns2tcp (Debian packages) through a
// resolver under test with detection on by default. Their servers listen
// on a free port of 127.0.0.2, the resolver listens on 127.0.0.1:53 (the iodine
// client always uses port 53) and forwards everything there. Each tool
// must be blocked within 10 seconds of its client starting, and the audit
// record must name the registered domain and the reasons.
//
// The tests skip when a binary, /dev/net/tun (iodine), root (iodine
// creates tun devices) or port 53 is missing, unless $CI is "true": CI
// installs the packages and runs as root, so there they fail instead.

const (
	tunnelServer = "127.0.0.2"
	blockWithin  = 10 * time.Second
)

func needTool(t *testing.T, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			skipOrFail(t, "%s not installed (apt-get install iodine dns2tcp): %v", b, err)
		}
	}
}

func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// boundedBuffer keeps the first 64 KiB a process writes.
type boundedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := 64<<10 - b.buf.Len(); room > 0 {
		if len(p) > room {
			b.buf.Write(p[:room])
		} else {
			b.buf.Write(p)
		}
	}
	return len(p), nil
}

func (b *boundedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startProc starts a process and ends it (by its PID) when the test ends.
func startProc(t *testing.T, stdin io.Reader, name string, args ...string) (*exec.Cmd, *boundedBuffer) {
	t.Helper()
	out := &boundedBuffer{}
	cmd := exec.Command(name, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("%s (pid %d) did not exit", name, cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return cmd, out
}

// startTunnelResolver starts CoreDNS with shield on 127.0.0.1:53,
// forwarding to the tunnel server, and returns the audit file.
func startTunnelResolver(t *testing.T, tunnelPort string) string {
	t.Helper()
	if c, err := net.ListenPacket("udp", "127.0.0.1:53"); err != nil {
		skipOrFail(t, "port 53 on 127.0.0.1 not available: %v", err)
	} else {
		c.Close()
	}
	dir := t.TempDir()
	list := writeFile(t, dir, "list.txt", "evil.test\n")
	auditPath := filepath.Join(dir, "audit.json")
	startCoreDNS(t, fmt.Sprintf(".:53 {\n bind 127.0.0.1\n shield {\n  blocklist malware %s\n  audit %s\n }\n forward . %s:%s\n}\n",
		list, auditPath, tunnelServer, tunnelPort))
	return auditPath
}

// waitBlock waits until the audit log has a detection block for domain
// and returns it with the time it took from start.
func waitBlock(t *testing.T, auditPath, domain string, start time.Time) auditLine {
	t.Helper()
	deadline := start.Add(blockWithin)
	for time.Now().Before(deadline) {
		for _, rec := range readDetections(t, auditPath) {
			if rec.Event.Action == "block" && rec.Shield.Domain == domain {
				return rec
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no detection block for %s within %s; detections: %+v", domain, blockWithin, readDetections(t, auditPath))
	return auditLine{}
}

// TestTunnelIodine runs iodine (NULL queries, Base128 after the
// handshake) through the resolver.
func TestTunnelIodine(t *testing.T) {
	needTool(t, "iodined", "iodine")
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		skipOrFail(t, "/dev/net/tun not available: %v", err)
	}
	if os.Geteuid() != 0 {
		skipOrFail(t, "iodine needs root to create tun devices")
	}
	tunnelPort := freeUDPPort(t, tunnelServer)
	auditPath := startTunnelResolver(t, tunnelPort)
	_, srvOut := startProc(t, nil, "iodined", "-f", "-c", "-P", "shieldtest", "-l", tunnelServer, "-p", tunnelPort,
		"10.54.0.1", "t.test.lab")
	eventually(t, 5*time.Second, "iodined listening", func() bool {
		return strings.Contains(srvOut.String(), "Listening") || udpBound(tunnelServer+":"+tunnelPort)
	})
	start := time.Now()
	startProc(t, nil, "iodine", "-f", "-r", "-P", "shieldtest", "127.0.0.1", "t.test.lab")
	rec := waitBlock(t, auditPath, "test.lab", start)
	took := time.Since(start)
	t.Logf("iodine blocked after %s (upper bound): %s score %d reasons %v", took.Round(time.Millisecond),
		rec.DNS.Question.Name, rec.Shield.Score, rec.Shield.Reasons)
	if took > blockWithin || len(rec.Shield.Reasons) == 0 || rec.Rule.Name == "" {
		t.Errorf("record %+v after %s", rec, took)
	}
}

// TestTunnelDns2tcp pushes 20 kB through dns2tcp (TXT queries) to a TCP
// sink.
func TestTunnelDns2tcp(t *testing.T) {
	needTool(t, "dns2tcpd", "dns2tcpc")
	tunnelPort := freeUDPPort(t, tunnelServer)
	auditPath := startTunnelResolver(t, tunnelPort)

	// The resource the tunnel carries: a TCP sink on loopback.
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	dir := t.TempDir()
	conf := writeFile(t, dir, "dns2tcpd.conf", fmt.Sprintf("listen = %s\nport = %s\nuser = nobody\nchroot = %s\ndomain = d.test.lab\nresources = sink:%s\n",
		tunnelServer, tunnelPort, dir, sink.Addr().String()))
	startProc(t, nil, "dns2tcpd", "-F", "-f", conf)
	eventually(t, 5*time.Second, "dns2tcpd listening", func() bool { return udpBound(tunnelServer + ":" + tunnelPort) })

	payload := make([]byte, 20<<10)
	rand.Read(payload)
	start := time.Now()
	startProc(t, bytes.NewReader(payload), "dns2tcpc", "-z", "d.test.lab", "-r", "sink", "-l", "-", "127.0.0.1")
	rec := waitBlock(t, auditPath, "test.lab", start)
	took := time.Since(start)
	t.Logf("dns2tcp blocked after %s (upper bound): %s score %d reasons %v", took.Round(time.Millisecond),
		rec.DNS.Question.Name, rec.Shield.Score, rec.Shield.Reasons)
	if len(rec.Shield.Reasons) == 0 || rec.Rule.Name == "" {
		t.Errorf("record %+v", rec)
	}
}

// udpBound reports whether something holds the UDP address (a bind
// fails).
func udpBound(addr string) bool {
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		return true
	}
	c.Close()
	return false
}
