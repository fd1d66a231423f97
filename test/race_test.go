package test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestReloadUnderQueries swaps the list back and forth while clients
// query. Run with -race: the list swap must be free of data races, a name
// in every version must stay blocked, a name in none must stay forwarded,
// and no query may go unanswered.
func TestReloadUnderQueries(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "list.txt")
	version := func(v int) []byte {
		s := "always.test\n"
		for i := range 200 {
			s += fmt.Sprintf("v%d-%d.test\n", v, i)
		}
		return []byte(s)
	}
	if err := os.WriteFile(p, version(0), 0o644); err != nil {
		t.Fatal(err)
	}
	r := startCoreDNS(t, shieldCorefile(up, "", "blocklist l "+p+"\nreload 100ms 10ms\naudit off"))

	const (
		clients   = 4
		perClient = 300             // bounded in count...
		maxTime   = 8 * time.Second // ...and in time
	)
	deadline := time.Now().Add(maxTime)
	var stop atomic.Bool
	var reloads atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for v := 1; !stop.Load() && time.Now().Before(deadline); v++ {
			tmp := filepath.Join(dir, fmt.Sprintf("tmp%d", v))
			os.WriteFile(tmp, version(v%2), 0o644)
			os.Rename(tmp, p)
			reloads.Add(1)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var failures atomic.Int64
	var errs sync.Map
	var cw sync.WaitGroup
	for c := range clients {
		cw.Add(1)
		go func() {
			defer cw.Done()
			cl := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
			for i := 0; i < perClient && time.Now().Before(deadline); i++ {
				name, wantBlock := "always.test.", true
				if i%2 == 1 {
					name, wantBlock = fmt.Sprintf("never-%d-%d.test.", c, i), false
				}
				m := new(dns.Msg)
				m.SetQuestion(name, dns.TypeA)
				resp, _, err := cl.Exchange(m, r.udp)
				if err != nil {
					failures.Add(1)
					errs.Store(name, err.Error())
					continue
				}
				if isBlock := resp.Rcode == dns.RcodeNameError; isBlock != wantBlock {
					failures.Add(1)
					errs.Store(name, dns.RcodeToString[resp.Rcode])
				}
			}
		}()
	}
	cw.Wait()
	stop.Store(true)
	wg.Wait()
	if n := failures.Load(); n != 0 {
		errs.Range(func(k, v any) bool { t.Logf("%v: %v", k, v); return true })
		t.Fatalf("%d queries were lost or wrong during %d list swaps", n, reloads.Load())
	}
	if reloads.Load() < 5 {
		t.Fatalf("only %d list swaps happened", reloads.Load())
	}
}
