package test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Load of TestSlowUpstream: a flood of distinct names (so no cache can
// absorb it) against an upstream that answers each after upstreamDelay.
const (
	slowUpstreamDelay = 2 * time.Second
	slowLoadRate      = 10000            // queries per second, at most
	slowLoadFor       = 20 * time.Second // how long the load lasts
	slowSettle        = 60 * time.Second // how long it may take to be near idle again
	slowMaxConcurrent = 1000             // forward's max_concurrent in the Corefile
	slowRSSSlack      = 32 << 10         // KiB over idle RSS allowed after the load (or half of idle)
)

// TestSlowUpstream: with max_concurrent on forward (as every documented
// example sets it), a slow upstream under 10k queries/s cannot make the
// resolver hold a goroutine and a buffer per query in flight: goroutines
// and RSS stay bounded during the load, and both are back near idle
// within a minute after it (shield returns idle heap to the OS once the
// load is over, plugin/shield/memtrim.go). Without the bound, 20 s of
// this made 20,000 goroutines and 427 MiB of RSS that was never given
// back; with it but without the return, RSS stayed at 85 MiB (22 idle).
//
// It runs the real coredns binary as a child process, so that its RSS
// (/proc/PID/status) and goroutines (the go_goroutines metric) are its
// own. The race detector inflates goroutine memory, so the test skips
// under -race; .ci/run runs it without.
func TestSlowUpstream(t *testing.T) {
	if raceEnabled {
		t.Skip("skipped under -race (it inflates goroutine memory); run: go test -run TestSlowUpstream ./test/")
	}
	if testing.Short() {
		t.Skip("takes about two minutes")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		skipOrFail(t, "no /proc to read RSS from: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "coredns")
	build := exec.Command("go", "build", "-o", bin, "./cmd/coredns")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/coredns: %v\n%s", err, out)
	}

	// The slow upstream: every answer after slowUpstreamDelay.
	var upSeen atomic.Int64
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		upSeen.Add(1)
		time.Sleep(slowUpstreamDelay)
		m := new(dns.Msg)
		m.SetReply(r)
		w.WriteMsg(m)
	})}
	go up.ActivateAndServe()
	t.Cleanup(func() { up.Shutdown() })

	list := writeFile(t, dir, "c2.txt", "evil.test\n")
	dnsAddr := net.JoinHostPort("127.0.0.1", freeUDPPort(t, "127.0.0.1"))
	metricsAddr := freePort(t)
	corefile := fmt.Sprintf(`.:%s {
 bind 127.0.0.1
 prometheus %s
 shield {
  blocklist c2 %s
  audit off
 }
 forward . %s {
  max_concurrent %d
 }
}
`, portOf(dnsAddr), metricsAddr, list, pc.LocalAddr(), slowMaxConcurrent)
	writeFile(t, dir, "Corefile", corefile)
	cmd := exec.Command(bin, "-conf", filepath.Join(dir, "Corefile"))
	cmd.Dir = dir
	out := &boundedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill() // by its PID
		cmd.Wait()
		if t.Failed() {
			t.Logf("coredns output:\n%s", out)
		}
	})
	pid := cmd.Process.Pid
	eventually(t, 20*time.Second, "coredns answers", func() bool {
		r, err := exchange("udp", dnsAddr, "evil.test.", dns.TypeA, false, time.Second)
		return err == nil && r.Rcode == dns.RcodeNameError
	})

	type sample struct {
		rss        int64 // KiB
		goroutines int
	}
	take := func() sample {
		return sample{rss: rssKiB(t, pid), goroutines: goroutines(t, metricsAddr)}
	}
	idle := take()

	// The load: slowLoadRate a second from one socket per sender, for
	// slowLoadFor, bounded in count too. Replies are read and dropped.
	ctx, cancel := context.WithTimeout(context.Background(), slowLoadFor)
	defer cancel()
	const senders = 4
	var sent, answered atomic.Int64
	var wg sync.WaitGroup
	for s := range senders {
		conn, err := net.Dial("udp", dnsAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		go func() { // reader: ends when the socket is closed
			buf := make([]byte, 1500)
			for {
				if _, err := conn.Read(buf); err != nil {
					return
				}
				answered.Add(1)
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := new(dns.Msg)
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			per := slowLoadRate / senders / 100 // per tick
			maxCount := int64(slowLoadRate * slowLoadFor / time.Second / senders)
			var n int64
			for n < maxCount {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				for range per {
					m.SetQuestion(fmt.Sprintf("q%d-%d.slow.example.", s, n), dns.TypeA)
					b, _ := m.Pack()
					if _, err := conn.Write(b); err == nil {
						sent.Add(1)
					}
					n++
				}
			}
		}()
	}
	var peak sample
	start := time.Now()
	for ctx.Err() == nil {
		time.Sleep(time.Second)
		s := take()
		peak.rss, peak.goroutines = max(peak.rss, s.rss), max(peak.goroutines, s.goroutines)
	}
	wg.Wait()
	loadTime := time.Since(start)

	// Back near idle: goroutines at once the queries in flight are
	// answered, RSS within the settle time. A trickle of queries goes on
	// as on any resolver: the Go runtime collects garbage when it
	// allocates (or every two minutes), and returns memory to the system
	// after a collection.
	trickle, stopTrickle := context.WithCancel(context.Background())
	defer stopTrickle()
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; trickle.Err() == nil; i++ {
			<-tick.C
			exchange("udp", dnsAddr, "evil.test.", dns.TypeA, false, time.Second)
		}
	}()
	var after sample
	settleStart := time.Now()
	rssBound := max(idle.rss*3/2, idle.rss+slowRSSSlack)
	for time.Since(settleStart) < slowSettle {
		time.Sleep(2 * time.Second)
		after = take()
		t.Logf("%s after the load: %d goroutines, RSS %d MiB", time.Since(settleStart).Round(time.Second), after.goroutines, after.rss>>10)
		if after.goroutines <= idle.goroutines+20 && after.rss <= rssBound {
			break
		}
	}
	settled := time.Since(settleStart)
	stopTrickle()
	t.Logf("load: %d queries sent in %s (%.0f/s), %d answered, %d reached the upstream",
		sent.Load(), loadTime.Round(time.Millisecond), float64(sent.Load())/loadTime.Seconds(), answered.Load(), upSeen.Load())
	t.Logf("idle: %d goroutines, RSS %d MiB; peak under load: %d goroutines, RSS %d MiB; %s after: %d goroutines, RSS %d MiB",
		idle.goroutines, idle.rss>>10, peak.goroutines, peak.rss>>10, settled.Round(time.Second), after.goroutines, after.rss>>10)

	if sent.Load() < slowLoadRate*int64(slowLoadFor/time.Second)/2 {
		t.Errorf("only %d queries sent: the load was not applied", sent.Load())
	}
	// Bounds: max_concurrent queries in flight plus the server's own
	// goroutines (one per UDP packet being read and answered: on a busy
	// 2-core machine up to about as many again wait for a CPU, measured
	// 1,997 at a load average of 18); RSS of that many buffers. Without
	// max_concurrent the same load made 20,000 goroutines and 427 MiB.
	if limit := idle.goroutines + 3*slowMaxConcurrent; peak.goroutines > limit {
		t.Errorf("peak of %d goroutines, bound %d", peak.goroutines, limit)
	}
	if limit := idle.rss + 100<<10; peak.rss > limit {
		t.Errorf("peak RSS %d MiB, bound %d MiB", peak.rss>>10, limit>>10)
	}
	if after.goroutines > idle.goroutines+20 {
		t.Errorf("%d goroutines %s after the load, %d idle", after.goroutines, settled, idle.goroutines)
	}
	// RSS: the bound under load is what max_concurrent buys; after it,
	// the idle heap goes back to the OS (within 15 to 30 s: shield looks
	// every 15 s and waits for a quiet interval).
	if after.rss > peak.rss+16<<10 {
		t.Errorf("RSS grew to %d MiB %s after the load, peak %d MiB", after.rss>>10, settled, peak.rss>>10)
	}
	if after.rss > rssBound {
		t.Errorf("RSS %d MiB %s after the load, want at most %d MiB (idle %d MiB)", after.rss>>10, settled, rssBound>>10, idle.rss>>10)
	}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// rssKiB returns the resident set size of process pid in KiB.
func rssKiB(t testing.TB, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS in /proc/PID/status")
	return 0
}

// goroutines returns go_goroutines from the prometheus endpoint at addr.
func goroutines(t testing.TB, addr string) int {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("go_goroutines %q: %v", v, err)
			}
			return int(f)
		}
	}
	t.Fatal("no go_goroutines metric")
	return 0
}
