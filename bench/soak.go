//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Soak intervals (issue 10): a list replaced every 30 s, the Corefile
// reloaded every 2 minutes.
const (
	soakListEvery     = 30 * time.Second
	soakCorefileEvery = 2 * time.Minute
)

// sample is what the soak test reads from the resolver at its start and
// at its end.
type sample struct {
	heap, goroutines, fds float64 // go_memstats_heap_inuse_bytes, go_goroutines, process_open_fds
	procFDs               int     // entries in /proc/PID/fd
	rss                   int64
}

func (b *bench) sample(r *resolver) sample {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", r.cmd.Process.Pid))
	check(err)
	return sample{
		heap:       scrape(r.metrics, "go_memstats_heap_inuse_bytes", ""),
		goroutines: scrape(r.metrics, "go_goroutines", ""),
		fds:        scrape(r.metrics, "process_open_fds", ""),
		procFDs:    len(ents),
		rss:        rss(r),
	}
}

// soak runs the defaults at half of their saturation for d, replacing the
// list (by rename, as a feed updater does) every 30 s and reloading the
// Corefile (SIGUSR1) every 2 minutes, and reports lost queries and the
// resolver's heap, goroutines and open files at the start and the end.
func (b *bench) soak(d time.Duration) {
	fmt.Printf("shield soak test: %s at half of saturation, %d listed names, a list replaced every %s, the Corefile reloaded every %s\n",
		d, *names, soakListEvery, soakCorefileEvery)
	bin := b.build()
	step("generating the blocklist and the query file")
	list := filepath.Join(b.dir, "big.txt")
	listed := writeList(list, *names, 0, nil)
	qfile := filepath.Join(b.dir, "queries-synthetic.txt")
	writeQueries(qfile, listed, *queries)
	up := b.startUpstream(bin)
	fwd := fmt.Sprintf("    cache\n    forward . %s\n", up.dns)
	cand := b.start(bin, "defaults", shieldBlock(b.dir, configs[2], "defaults", list)+fwd, "")

	step("measuring saturation")
	dnsperf(cand.dns, qfile, 2*time.Second)
	sat := dnsperf(cand.dns, qfile, 5*time.Second)
	rate := int(sat.qps / 2)
	fmt.Printf("saturation %.0f qps; soaking at %d qps\n", sat.qps, rate)

	step("soaking")
	done := make(chan result)
	go func() {
		done <- dnsperfArgs(cand.dns, qfile, false, "-Q", strconv.Itoa(rate), "-l", strconv.Itoa(int(d.Seconds())))
	}()
	start := time.Now()
	time.Sleep(min(15*time.Second, d/4)) // let the caches and tables settle
	first := b.sample(cand)
	listReloads0 := scrape(cand.metrics, "coredns_shield_list_reloads_total", `list="big"`)
	listTick := time.NewTicker(soakListEvery)
	cfTick := time.NewTicker(soakCorefileEvery)
	defer listTick.Stop()
	defer cfTick.Stop()
	lists, corefiles := 0, 0
	var last sample
	end := time.After(d - time.Since(start) - 5*time.Second)
loop:
	for {
		select {
		case <-listTick.C:
			lists++
			next := filepath.Join(b.dir, "big.next")
			writeList(next, *names, 1+lists%2, nil) // 1% or 2% of the names differ
			check(os.Rename(next, list))
		case <-cfTick.C:
			corefiles++
			check(cand.cmd.Process.Signal(syscall.SIGUSR1))
		case <-end:
			last = b.sample(cand)
			break loop
		}
	}
	out := <-done
	listReloads := scrape(cand.metrics, "coredns_shield_list_reloads_total", `list="big"`)
	time.Sleep(5 * time.Second)
	idle := b.sample(cand)
	logged, _ := os.ReadFile(filepath.Join(b.dir, "defaults.log"))
	fmt.Println()
	fmt.Printf("== soak results (%s at %d qps)\n", d, rate)
	fmt.Printf("queries sent %d, lost %d (must be 0)\n", out.sent, out.lost)
	fmt.Printf("list replacements %d (coredns_shield_list_reloads_total for big %v -> %v; a Corefile reload restarts the counter), Corefile reloads (SIGUSR1) %d\n",
		lists, listReloads0, listReloads, corefiles)
	fmt.Printf("%-28s %12s %12s %12s\n", "", "start", "end", "idle after")
	row := func(name string, f func(sample) float64, unit float64, format string) {
		fmt.Printf("%-28s "+format+" "+format+" "+format+"\n", name, f(first)/unit, f(last)/unit, f(idle)/unit)
	}
	row("heap in use (MB)", func(s sample) float64 { return s.heap }, 1<<20, "%12.1f")
	row("goroutines", func(s sample) float64 { return s.goroutines }, 1, "%12.0f")
	row("open fds (process_open_fds)", func(s sample) float64 { return s.fds }, 1, "%12.0f")
	row("open fds (/proc/PID/fd)", func(s sample) float64 { return float64(s.procFDs) }, 1, "%12.0f")
	row("RSS (MB)", func(s sample) float64 { return float64(s.rss) }, 1<<20, "%12.1f")
	if n := strings.Count(string(logged), "[ERROR]"); n > 0 {
		fmt.Printf("WARNING: %d error lines in %s\n", n, filepath.Join(b.dir, "defaults.log"))
	}
	if out.lost > 0 {
		fmt.Println("FAIL: queries were lost")
	}
}
