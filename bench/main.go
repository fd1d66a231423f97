//go:build linux

// Command bench is shield's load benchmark. It measures what turning
// shield on costs a resolver, side by side in one run on one machine:
//
//   - it generates a deterministic blocklist of N names (default 1,000,000,
//     plus a sample of real hostnames) and three query mixes, each served
//     mostly from the cache:
//     "synthetic": unlisted names (80%), listed names (10%), their
//     subdomains (5%) and long random tunnel-like names (5%);
//     "block": a block-heavy mix, 25% of the queries listed;
//     "real": real hostnames drawn by rank (Zipf) from the Umbrella top
//     100k list in the shared data directory, 5% of the queries listed;
//   - it builds cmd/coredns and starts a loopback upstream, the baseline
//     (forward + cache) and three candidates, the same Corefile with
//     shield and the big list: "list" (audit off, detect off), "audit"
//     (the list and the audit file) and "defaults" (the list, the audit
//     file and every detector);
//   - for each mix it runs dnsperf against the four in alternation, at
//     saturation, and prints the median QPS and p99 latency of each and
//     their ratios to the baseline; then resolver RSS, bytes per listed
//     name and the list's load time;
//   - it replaces the list under load and reports lost and late queries
//     and p99 during the reload;
//   - it floods the candidate with unique random names and reports how
//     its RSS moved, against the baseline under the same flood.
//
// With -soak D it runs a soak test instead: the defaults at half of their
// saturation for D, with a list replaced every 30 s and the Corefile
// reloaded every 2 minutes, and reports lost queries and the resolver's
// heap, goroutines and open files at the start and at the end.
//
// Run it from the repository root: go run ./bench (see README.md). It needs
// dnsperf (Debian package dnsperf), and for -pin taskset (util-linux).
// Every process it starts listens on 127.0.0.1 only and is ended by PID;
// every load run is bounded in time and count. It reads /proc, so it
// builds on Linux only.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	names    = flag.Int("names", 1_000_000, "names in the generated blocklist")
	queries  = flag.Int("queries", 200_000, "lines in the generated query file")
	duration = flag.Duration("duration", 10*time.Second, "length of one measured dnsperf run")
	rounds   = flag.Int("rounds", 3, "measured runs per resolver, alternating")
	inflight = flag.Int("q", 200, "dnsperf: queries outstanding")
	clients  = flag.Int("c", 4, "dnsperf: clients")
	flood    = flag.Int("flood", 1_000_000, "unique random names sent in the flood phase (0 skips it)")
	reload   = flag.Bool("reload", true, "measure a reload of the list under load")
	keep     = flag.Bool("keep", false, "keep the work directory")
	workDir  = flag.String("dir", "", "work directory (default: a new temporary directory)")
	mixList  = flag.String("mixes", "synthetic,block,real", "query mixes to measure, comma-separated: synthetic, block, real")
	confList = flag.String("configs", "list,audit,defaults", "shield configurations to measure against the baseline, comma-separated: list, audit, defaults")
	dataDir  = flag.String("data", "", "directory of the shared data files (default $SHIELD_DATA, else shared/data beside the module root)")
	pin      = flag.Bool("pin", false, "pin every resolver to CPU 1 and dnsperf and the upstream to CPU 0 (taskset)")
	profile  = flag.Bool("profile", false, "save a CPU profile of every candidate's every run (pprof on loopback) in the work directory (implies -keep)")
	gctrace  = flag.Bool("gctrace", false, "run the candidates with GODEBUG=gctrace=1 (the trace goes to NAME.log in the work directory)")
	compare  = flag.String("compare", "", "another checkout of shield: each configuration also runs with its cmd/coredns (named CONFIG@old), for a before/after in one run")
	soak     = flag.Duration("soak", 0, "run the soak test for this long instead of the benchmark (e.g. 10m)")
)

// umbrellaFile is the real-hostname list of the "real" mix, in the shared
// data directory (see SOURCES.md there).
const umbrellaFile = "benign_umbrella_top100k_fqdn.txt.gz"

// config is one shield configuration a candidate runs.
type config struct {
	name, desc string
	options    string // lines inside shield { } besides the blocklist; AUDIT stands for the audit file
}

var configs = []config{
	{"list", "list only (audit off, detect off)", "audit off\ndetect off"},
	{"audit", "list + audit to a file (detect off)", "audit AUDIT\naudit_rotate 20 1\ndetect off"},
	{"defaults", "list + audit + detection (the defaults)", "audit AUDIT\naudit_rotate 20 1"},
}

func main() {
	flag.Parse()
	if _, err := exec.LookPath("dnsperf"); err != nil {
		fatal("dnsperf not found: install it (apt-get install dnsperf)")
	}
	dir := *workDir
	if dir == "" {
		d, err := os.MkdirTemp("", "shield-bench-")
		check(err)
		dir = d
		if !*keep {
			defer os.RemoveAll(dir)
		}
	}
	if *profile {
		*keep = true
	}
	if *pin {
		if _, err := exec.LookPath("taskset"); err != nil {
			fatal("-pin needs taskset (util-linux)")
		}
		if runtime.NumCPU() < 2 {
			fatal("-pin needs at least 2 CPUs")
		}
	}
	b := &bench{dir: dir}
	current = b
	defer b.stopAll()
	if *soak > 0 {
		b.soak(*soak)
		return
	}
	b.run()
}

// dataPath returns the path of a shared data file: in -data, else in
// $SHIELD_DATA, else in shared/data beside the module root (as
// internal/corpus finds it).
func dataPath(name string) (string, error) {
	dir := *dataDir
	if dir == "" {
		dir = os.Getenv("SHIELD_DATA")
	}
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				dir = filepath.Join(filepath.Dir(d), "shared", "data")
				break
			}
			if filepath.Dir(d) == d {
				return "", errors.New("no go.mod above the working directory; give -data")
			}
		}
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%w (give the data directory with -data or $SHIELD_DATA, or leave the real mix out with -mixes)", err)
	}
	return p, nil
}

type bench struct {
	dir   string
	procs []*exec.Cmd
}

// resolver is one started CoreDNS process.
type resolver struct {
	name     string
	desc     string // what it runs, for the results table
	cmd      *exec.Cmd
	dns      string // host:port
	metrics  string // host:port of its prometheus endpoint
	corefile string
	helper   bool // the upstream, not a measured resolver
}

// mix is one query file.
type mix struct {
	name, desc string
	file       string
	cacheHits  float64 // share of the baseline's queries its cache answered
}

// measured holds the runs of one resolver on one mix.
type measured struct {
	res  *resolver
	runs []result
}

func (b *bench) run() {
	fmt.Printf("shield load benchmark: %d listed names, %d-line query files, %d x %s runs per resolver and mix, dnsperf -c %d -q %d, pinned %v\n",
		*names, *queries, *rounds, *duration, *clients, *inflight, *pin)
	bin := b.build()

	step("generating the blocklist and the query files")
	var real []string // real hostnames by rank, when the real mix is wanted
	wantMix := splitList(*mixList)
	if slices.Contains(wantMix, "real") {
		p, err := dataPath(umbrellaFile)
		check(err)
		real = readNames(p)
	}
	realListed, realUnlisted := splitReal(real)
	list := filepath.Join(b.dir, "big.txt")
	listed := writeList(list, *names, 0, realListed)
	var mixes []mix
	for _, name := range wantMix {
		m := mix{name: name, file: filepath.Join(b.dir, "queries-"+name+".txt")}
		switch name {
		case "synthetic":
			m.desc = "synthetic: 80% unlisted, 15% listed or below a listed name, 5% tunnel-like"
			writeQueries(m.file, listed, *queries)
		case "block":
			m.desc = "block-heavy: 75% unlisted, 25% listed or below a listed name"
			writeBlockQueries(m.file, listed, *queries)
		case "real":
			m.desc = fmt.Sprintf("real hostnames by rank (Zipf over %d), 5%% listed", len(real))
			writeRealQueries(m.file, realUnlisted, realListed, *queries)
		default:
			fatal("unknown mix %q: want synthetic, block or real", name)
		}
		mixes = append(mixes, m)
	}

	oldBin := ""
	if *compare != "" {
		oldBin = filepath.Join(b.dir, "coredns-old")
		step("building cmd/coredns in " + *compare)
		cmd := exec.Command("go", "build", "-o", oldBin, "./cmd/coredns")
		cmd.Dir = *compare
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		check(cmd.Run())
	}
	up := b.startUpstream(bin)
	fwd := fmt.Sprintf("    cache\n    forward . %s\n", up.dns)
	base := b.start(bin, "baseline", fwd, "")
	var cands []*resolver
	var cand *resolver // the defaults, for the RSS, reload and flood phases
	var startup time.Duration
	for _, name := range splitList(*confList) {
		i := slices.IndexFunc(configs, func(c config) bool { return c.name == name })
		if i < 0 {
			fatal("unknown configuration %q: want list, audit or defaults", name)
		}
		t0 := time.Now()
		r := b.start(bin, name, shieldBlock(b.dir, configs[i], name, list)+fwd, b.candidateExtra())
		r.desc = configs[i].desc
		if name == "defaults" {
			cand, startup = r, time.Since(t0)
		}
		cands = append(cands, r)
		if oldBin != "" {
			o := b.start(oldBin, name+"@old", shieldBlock(b.dir, configs[i], name+"@old", list)+fwd, b.candidateExtra())
			o.desc = configs[i].desc + ", built from " + *compare
			cands = append(cands, o)
		}
	}
	if len(cands) == 0 {
		fatal("no configuration to measure")
	}
	if cand == nil {
		cand = cands[len(cands)-1]
	}

	loadSec := scrape(cand.metrics, "coredns_shield_list_load_duration_seconds", `list="big"`)
	rssBaseIdle, rssCandIdle := rss(base), rss(cand)

	all := append([]*resolver{base}, cands...)
	type mixResult struct {
		mix mix
		m   []*measured
	}
	var results []mixResult
	for _, mx := range mixes {
		step("mix " + mx.name + ": warming up")
		for _, res := range all {
			dnsperf(res.dns, mx.file, 2*time.Second)
		}
		hits0, miss0 := scrapeSum(base.metrics, "coredns_cache_hits_total"), scrapeSum(base.metrics, "coredns_cache_misses_total")
		ms := make([]*measured, len(all))
		for i, res := range all {
			ms[i] = &measured{res: res}
		}
		for r := range *rounds {
			// Rotate the order each round so that no resolver always runs
			// first or last.
			for k := range ms {
				m := ms[(k+r)%len(ms)]
				var prof chan struct{}
				if *profile && m.res != base {
					prof = b.cpuProfile(m.res, filepath.Join(b.dir, fmt.Sprintf("%s-%s-%d.cpu.pprof", mx.name, m.res.name, r+1)), *duration-time.Second)
				}
				before := snap(m.res)
				out := dnsperf(m.res.dns, mx.file, *duration)
				after := snap(m.res)
				if prof != nil {
					<-prof
				}
				out.cpuPerQ = float64(after.cpu-before.cpu) / 1e3 / max(float64(out.sent-out.lost), 1)
				fmt.Printf("  %-9s round %d %-13s %8.0f qps  p50 %6.2f ms  p99 %6.2f ms  lost %d  %5.1f us CPU/query  %s\n",
					mx.name, r+1, m.res.name, out.qps, out.p50*1e3, out.p99*1e3, out.lost, out.cpuPerQ, after.sub(before))
				m.runs = append(m.runs, out)
			}
		}
		hits, miss := scrapeSum(base.metrics, "coredns_cache_hits_total")-hits0, scrapeSum(base.metrics, "coredns_cache_misses_total")-miss0
		mx.cacheHits = hits / max(hits+miss, 1)
		results = append(results, mixResult{mx, ms})
	}
	rssBaseLoad, rssCandLoad := rss(base), rss(cand)

	// The same load on shield with a one-name list separates what the big
	// list costs from what shield's other state (detector tables, audit
	// queue) and the Go runtime's heap headroom cost under load.
	one := filepath.Join(b.dir, "one.txt")
	check(os.WriteFile(one, []byte("listed.invalid\n"), 0o644))
	small := b.start(bin, "defaults-1-name", shieldBlock(b.dir, configs[2], "defaults-1-name", one)+fwd, "")
	rssSmallIdle := rss(small)
	dnsperf(small.dns, mixes[0].file, 2*time.Second)
	dnsperf(small.dns, mixes[0].file, *duration)
	rssSmallLoad := rss(small)
	b.stop(small)

	n := float64(*names)
	fmt.Println()
	fmt.Printf("== results: medians of %d alternating rounds of %s; ratios against the baseline of the same mix\n", *rounds, *duration)
	for _, mr := range results {
		fmt.Printf("\nmix %s (%s; the baseline answered %.0f%% from its cache)\n", mr.mix.name, mr.mix.desc, 100*mr.mix.cacheHits)
		fmt.Printf("  %-13s %9s %7s %9s %7s %8s %7s %6s  %s\n", "resolver", "QPS", "ratio", "p99 ms", "ratio", "CPU/q us", "ratio", "lost", "runs (QPS)")
		bq := median(mr.m[0].runs, func(r result) float64 { return r.qps })
		bp := median(mr.m[0].runs, func(r result) float64 { return r.p99 })
		bc := median(mr.m[0].runs, func(r result) float64 { return r.cpuPerQ })
		for _, m := range mr.m {
			q := median(m.runs, func(r result) float64 { return r.qps })
			p := median(m.runs, func(r result) float64 { return r.p99 })
			c := median(m.runs, func(r result) float64 { return r.cpuPerQ })
			lost := 0
			var each []string
			for _, r := range m.runs {
				lost += r.lost
				each = append(each, fmt.Sprintf("%.0f", r.qps))
			}
			fmt.Printf("  %-13s %9.0f %7.3f %9.2f %7.3f %8.1f %7.3f %6d  %s  %s\n", m.res.name, q, q/bq, p*1e3, p/bp, c, c/bc, lost, strings.Join(each, " "), m.res.desc)
		}
	}
	fmt.Println()
	fmt.Printf("RSS idle       baseline %6.1f MB  %s %6.1f MB  %s with a 1-name list %6.1f MB\n", mb(rssBaseIdle), cand.name, mb(rssCandIdle), cand.name, mb(rssSmallIdle))
	fmt.Printf("RSS after load baseline %6.1f MB  %s %6.1f MB  %s with a 1-name list %6.1f MB\n", mb(rssBaseLoad), cand.name, mb(rssCandLoad), cand.name, mb(rssSmallLoad))
	fmt.Printf("bytes per listed name above baseline:                %5.1f idle, %5.1f after load\n",
		float64(rssCandIdle-rssBaseIdle)/n, float64(rssCandLoad-rssBaseLoad)/n)
	fmt.Printf("bytes per listed name above shield with a 1-name list: %5.1f idle, %5.1f after load\n",
		float64(rssCandIdle-rssSmallIdle)/n, float64(rssCandLoad-rssSmallLoad)/n)
	if startup > 0 {
		fmt.Printf("list load time: %.3f s (read, parse, build; coredns_shield_list_load_duration_seconds); candidate start to first answer %.2f s\n", loadSec, startup.Seconds())
	}

	if *reload {
		step("reloading the list under load")
		bp := median(results[0].m[0].runs, func(r result) float64 { return r.p99 })
		reloads := scrape(cand.metrics, "coredns_shield_list_reloads_total", `list="big"`)
		next := filepath.Join(b.dir, "big.next")
		writeList(next, *names, 1, realListed) // 1% of the names differ: a real update, not a shrink
		runFor := 6 * time.Second
		done := make(chan result)
		go func() { done <- dnsperf(cand.dns, mixes[0].file, runFor) }()
		time.Sleep(1500 * time.Millisecond)
		check(os.Rename(next, list))
		out := <-done
		// Building a big list on a busy core can outlast the run: wait
		// for the reload (bounded) before reading its duration.
		after := scrape(cand.metrics, "coredns_shield_list_reloads_total", `list="big"`)
		for deadline := time.Now().Add(30 * time.Second); after <= reloads && time.Now().Before(deadline); {
			time.Sleep(200 * time.Millisecond)
			after = scrape(cand.metrics, "coredns_shield_list_reloads_total", `list="big"`)
		}
		reloadSec := scrape(cand.metrics, "coredns_shield_list_load_duration_seconds", `list="big"`)
		fmt.Printf("reload under load (%s, mix %s): %d queries sent, %d lost, %d late (>100 ms), p99 %.2f ms = %.3f x baseline p99; reloads %v -> %v, reload took %.3f s\n",
			cand.name, mixes[0].name, out.sent, out.lost, out.late, out.p99*1e3, out.p99/bp, reloads, after, reloadSec)
		if after <= reloads {
			fmt.Println("WARNING: the list did not reload within 30 s of the run's end")
		}
	}

	if *flood > 0 {
		step("flooding the baseline and " + cand.name + " with unique random names")
		ffile := filepath.Join(b.dir, "flood.txt")
		writeFlood(ffile, *flood)
		for _, res := range []*resolver{base, cand} {
			before := rss(res)
			out := dnsperfOnce(res.dns, ffile, 120*time.Second)
			after := rss(res)
			fmt.Printf("flood %-9s %d names sent, %d lost, RSS %6.1f MB -> %6.1f MB (%+.1f MB)\n",
				res.name, out.sent, out.lost, mb(before), mb(after), mb(after-before))
		}
	}
	if *keep {
		fmt.Printf("work directory kept: %s\n", b.dir)
	}
}

// build builds cmd/coredns into the work directory and returns its path.
func (b *bench) build() string {
	bin := filepath.Join(b.dir, "coredns")
	step("building cmd/coredns")
	run("go", "build", "-o", bin, "./cmd/coredns")
	return bin
}

// startUpstream starts the loopback upstream: it answers every A and AAAA
// query with a TTL of 60 s, so the resolvers' caches serve repeats.
func (b *bench) startUpstream(bin string) *resolver {
	up := b.start(bin, "upstream", `
    template IN A {
        answer "{{ .Name }} 60 IN A 192.0.2.1"
    }
    template IN AAAA {
        answer "{{ .Name }} 60 IN AAAA 2001:db8::1"
    }
    template IN ANY {
        rcode NOERROR
    }`, "")
	up.helper = true
	return up
}

// shieldBlock returns the shield block of a candidate named name running
// configuration c with the big list at list.
func shieldBlock(dir string, c config, name, list string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "    shield {\n        blocklist big %s domains\n", list)
	for _, l := range strings.Split(strings.ReplaceAll(c.options, "AUDIT", filepath.Join(dir, name+".audit.json")), "\n") {
		fmt.Fprintf(&sb, "        %s\n", l)
	}
	sb.WriteString("    }\n")
	return sb.String()
}

// candidateExtra returns the Corefile lines every candidate gets besides
// shield: pprof on a loopback port when profiles are wanted.
func (b *bench) candidateExtra() string {
	if !*profile {
		return ""
	}
	return fmt.Sprintf("    pprof 127.0.0.1:%d\n", freePort())
}

// cpuProfile fetches a CPU profile of r for d into path, in the
// background; the returned channel is closed when it is done.
func (b *bench) cpuProfile(r *resolver, path string, d time.Duration) chan struct{} {
	done := make(chan struct{})
	addr := pprofAddr(r)
	go func() {
		defer close(done)
		if addr == "" {
			return
		}
		c := &http.Client{Timeout: d + 10*time.Second}
		resp, err := c.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())))
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: profile of %s: %v\n", r.name, err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(path)
		check(err)
		io.Copy(f, resp.Body)
		f.Close()
	}()
	return done
}

// pprofAddr returns the pprof address in r's Corefile, or "".
func pprofAddr(r *resolver) string {
	m := rePprof.FindStringSubmatch(r.corefile)
	if m == nil {
		return ""
	}
	return m[1]
}

var rePprof = regexp.MustCompile(`pprof (127\.0\.0\.1:[0-9]+)`)

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// start writes a Corefile for a resolver on free loopback ports and starts
// it, waiting until it answers. With -pin, the upstream runs on CPU 0 and
// every other resolver on CPU 1, where the Go runtime sees one CPU
// (GOMAXPROCS 1); without it each gets GOMAXPROCS 2.
func (b *bench) start(bin, name, body, extra string) *resolver {
	port := freePort()
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort())
	cf := fmt.Sprintf(".:%d {\n    bind 127.0.0.1\n    prometheus %s\n%s\n%s\n}\n", port, metrics, extra, body)
	cfPath := filepath.Join(b.dir, name+".Corefile")
	check(os.WriteFile(cfPath, []byte(cf), 0o644))
	logf, err := os.Create(filepath.Join(b.dir, name+".log"))
	check(err)
	helper := name == "upstream"
	args := []string{bin, "-conf", cfPath}
	env := os.Environ()
	switch {
	case *pin && helper:
		args = append([]string{"taskset", "-c", "0"}, args...)
	case *pin:
		args = append([]string{"taskset", "-c", "1"}, args...)
	default:
		env = append(env, "GOMAXPROCS=2")
	}
	if *gctrace && !helper {
		env = append(env, "GODEBUG=gctrace=1")
	}
	// taskset execs the resolver, so the PID is the resolver's.
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = env
	check(cmd.Start())
	b.procs = append(b.procs, cmd)
	r := &resolver{name: name, cmd: cmd, dns: fmt.Sprintf("127.0.0.1:%d", port), metrics: metrics, corefile: cf, helper: helper}
	deadline := time.Now().Add(60 * time.Second)
	for !answers(r.dns) {
		if time.Now().After(deadline) {
			fatal("%s did not answer within 60 s; see %s", name, logf.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return r
}

func (b *bench) stop(r *resolver) {
	r.cmd.Process.Signal(syscall.SIGTERM)
	r.cmd.Wait()
	b.procs = slices.DeleteFunc(b.procs, func(c *exec.Cmd) bool { return c == r.cmd })
}

// stopAll ends the processes this run started, by PID.
func (b *bench) stopAll() {
	for _, c := range b.procs {
		c.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			c.Process.Kill()
		}
	}
	b.procs = nil
}

// answers reports whether a DNS server on addr answers a query for ".".
func answers(addr string) bool {
	c, err := net.DialTimeout("udp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	// A minimal query: id 1, RD, one question ". IN NS".
	q := []byte{0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1}
	c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Write(q); err != nil {
		return false
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	return err == nil && n >= 12
}

type result struct {
	qps              float64
	sent, lost, late int
	p50, p99         float64 // seconds
	cpuPerQ          float64 // resolver CPU time per answered query, microseconds
}

// stats is a snapshot of a resolver's counters around one run.
type stats struct {
	cpu     time.Duration // user + system CPU time (/proc/PID/stat)
	syscw   int64         // write-family system calls (/proc/PID/io): the audit file's writes and forward's queries to the upstream; DNS replies go by sendmsg, which it does not count
	records float64       // list hits + detections: about one audit record each
	gcs     float64       // go_gc_duration_seconds_count
}

func snap(r *resolver) stats {
	pid := r.cmd.Process.Pid
	var st stats
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the command name, which is in parentheses: utime
		// and stime are the 12th and 13th, in clock ticks (100 a second).
		f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			st.cpu = time.Duration(u+s) * 10 * time.Millisecond
		}
	}
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "syscw: "); ok {
				st.syscw, _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	st.records = scrapeSum(r.metrics, "coredns_shield_list_hits_total") + scrapeSum(r.metrics, "coredns_shield_detections_total")
	st.gcs = scrapeSum(r.metrics, "go_gc_duration_seconds_count")
	return st
}

// sub describes what happened between two snapshots.
func (a stats) sub(b stats) string {
	rec, w := a.records-b.records, a.syscw-b.syscw
	per := 0.0
	if w > 0 {
		per = rec / float64(w)
	}
	return fmt.Sprintf("GCs %3.0f  records %7.0f  write calls %6d (%.1f records each; upstream queries count too)", a.gcs-b.gcs, rec, w, per)
}

var (
	reQPS  = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	reSent = regexp.MustCompile(`Queries sent:\s+([0-9]+)`)
	reLost = regexp.MustCompile(`Queries lost:\s+([0-9]+)`)
)

// dnsperf runs dnsperf against addr for d, looping over the file.
func dnsperf(addr, file string, d time.Duration) result {
	return runDnsperf(addr, file, "-l", strconv.Itoa(int(d.Seconds())))
}

// dnsperfOnce sends every line of the file once, bounded by d.
func dnsperfOnce(addr, file string, d time.Duration) result {
	return runDnsperf(addr, file, "-n", "1", "-l", strconv.Itoa(int(d.Seconds())))
}

func runDnsperf(addr, file string, limit ...string) result {
	return dnsperfArgs(addr, file, true, limit...)
}

// dnsperfArgs runs dnsperf against addr with the file and the extra
// arguments. With verbose it asks for every query's latency (-v) and
// computes the quantiles; a long run leaves that out.
func dnsperfArgs(addr, file string, verbose bool, limit ...string) result {
	host, port, _ := net.SplitHostPort(addr)
	args := append([]string{"-s", host, "-p", port, "-d", file, "-c", strconv.Itoa(*clients), "-q", strconv.Itoa(*inflight), "-t", "2"}, limit...)
	if verbose {
		args = append(args, "-v")
	}
	if *pin {
		args = append([]string{"-c", "0", "dnsperf"}, args...)
	}
	cmd := exec.Command("dnsperf", args...)
	if *pin {
		cmd = exec.Command("taskset", args...)
	}
	out, err := cmd.StdoutPipe()
	check(err)
	cmd.Stderr = io.Discard
	check(cmd.Start())
	var lat []float64
	var res result
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var tail strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "> ") {
			f := line[strings.LastIndexByte(line, ' ')+1:]
			if v, err := strconv.ParseFloat(f, 64); err == nil {
				lat = append(lat, v)
				if v > 0.1 {
					res.late++
				}
			}
			continue
		}
		tail.WriteString(line + "\n")
	}
	check(cmd.Wait())
	s := tail.String()
	res.qps = num(reQPS, s)
	res.sent = int(num(reSent, s))
	res.lost = int(num(reLost, s))
	slices.Sort(lat)
	res.p50, res.p99 = quantile(lat, 0.50), quantile(lat, 0.99)
	return res
}

func num(re *regexp.Regexp, s string) float64 {
	m := re.FindStringSubmatch(s)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(int(q*float64(len(sorted))), len(sorted)-1)]
}

func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// rss returns the resident set size of a resolver in bytes.
func rss(r *resolver) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.cmd.Process.Pid))
	check(err)
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// scrape returns the value of the first sample of metric whose labels
// contain label.
func scrape(addr, metric, label string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	check(err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, metric) && strings.Contains(l, label) {
			v, _ := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			return v
		}
	}
	return 0
}

// scrapeSum returns the sum of every sample of metric.
func scrapeSum(addr, metric string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	check(err)
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, metric+"{") || strings.HasPrefix(l, metric+" ") {
			v, _ := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			sum += v
		}
	}
	return sum
}

var tlds = []string{"com", "net", "org", "xyz", "top", "info", "ru", "cn", "co.uk", "online", "site", "shop"}

const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"

func label(rng *rand.Rand, lo, hi int) string {
	b := make([]byte, lo+rng.IntN(hi-lo+1))
	for i := range b {
		b[i] = alnum[rng.IntN(len(alnum))]
	}
	return string(b)
}

// listedName returns the i-th listed name of the list's generation; the
// same (seed, i) always gives the same name.
func listedName(i int, variant int) string {
	rng := rand.New(rand.NewPCG(uint64(i), uint64(variant)))
	return fmt.Sprintf("%s%d.%s", label(rng, 5, 14), i, tlds[i%len(tlds)])
}

// writeList writes the deterministic blocklist in domains format, and
// then the names in extra. With variant v > 0, v% of the generated names
// are replaced by others. It returns a sample of the generated names for
// the query files.
func writeList(path string, n, v int, extra []string) []string {
	f, err := os.Create(path)
	check(err)
	w := bufio.NewWriterSize(f, 1<<20)
	var sample []string
	for i := range n {
		variant := 0
		if v > 0 && i%100 < v {
			variant = 1
		}
		name := listedName(i, variant)
		w.WriteString(name)
		w.WriteByte('\n')
		if i%(max(n/50_000, 1)) == 0 && variant == 0 {
			sample = append(sample, name)
		}
	}
	for _, name := range extra {
		w.WriteString(name)
		w.WriteByte('\n')
	}
	check(w.Flush())
	check(f.Close())
	return sample
}

// writeQueries writes the query mix. Real traffic is mostly names no list
// knows, so that is what it is mostly made of: 80% unlisted names from a
// pool of 20,000 (popular traffic repeats, so the cache serves most),
// 10% listed names, 5% subdomains of listed names, and 5% long random
// tunnel-like names (TXT, every one unique, so they reach the upstream).
func writeQueries(path string, listed []string, n int) {
	rng := rand.New(rand.NewPCG(7, 7))
	pool := make([]string, 20_000)
	for i := range pool {
		pool[i] = fmt.Sprintf("www.%s.%s", label(rng, 4, 12), tlds[i%len(tlds)])
	}
	f, err := os.Create(path)
	check(err)
	w := bufio.NewWriter(f)
	for i := range n {
		switch p := rng.IntN(100); {
		case p < 80:
			qt := "A"
			if p%4 == 0 {
				qt = "AAAA"
			}
			fmt.Fprintf(w, "%s %s\n", pool[rng.IntN(len(pool))], qt)
		case p < 90:
			fmt.Fprintf(w, "%s A\n", listed[rng.IntN(len(listed))])
		case p < 95:
			fmt.Fprintf(w, "%s.%s A\n", label(rng, 3, 8), listed[rng.IntN(len(listed))])
		default:
			fmt.Fprintf(w, "%s.%s.t%d.tunnel-bench.net TXT\n", label(rng, 50, 63), label(rng, 40, 63), i%10)
		}
	}
	check(w.Flush())
	check(f.Close())
}

// writeBlockQueries writes the block-heavy mix: 75% unlisted names from a
// pool of 3,000, 20% names from 1,000 of the listed ones and 5% random
// subdomains of those, 80% A and 20% AAAA. The pool and the listed names
// fit the cache plugin's default capacity (9,984 answers), so the baseline
// answers most queries from its cache.
func writeBlockQueries(path string, listed []string, n int) {
	rng := rand.New(rand.NewPCG(11, 11))
	listed = listed[:min(len(listed), 1000)]
	pool := make([]string, 3_000)
	for i := range pool {
		pool[i] = fmt.Sprintf("www.%s.%s", label(rng, 4, 12), tlds[i%len(tlds)])
	}
	f, err := os.Create(path)
	check(err)
	w := bufio.NewWriter(f)
	for range n {
		qt := "A"
		if rng.IntN(5) == 0 {
			qt = "AAAA"
		}
		switch p := rng.IntN(100); {
		case p < 75:
			fmt.Fprintf(w, "%s %s\n", pool[rng.IntN(len(pool))], qt)
		case p < 95:
			fmt.Fprintf(w, "%s %s\n", listed[rng.IntN(len(listed))], qt)
		default:
			fmt.Fprintf(w, "%s.%s %s\n", label(rng, 3, 8), listed[rng.IntN(len(listed))], qt)
		}
	}
	check(w.Flush())
	check(f.Close())
}

// readNames returns the names of a gzipped list, one a line, in order.
func readNames(path string) []string {
	f, err := os.Open(path)
	check(err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	check(err)
	var out []string
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, strings.TrimSuffix(l, "."))
		}
	}
	check(sc.Err())
	return out
}

// splitReal splits the real hostnames (by rank) into the ones the big list
// gets (every 50th from rank 1,000 on: popular, but not the very top) and
// the rest, both still in rank order.
func splitReal(real []string) (listed, unlisted []string) {
	for i, name := range real {
		if i >= 1000 && i%50 == 0 {
			listed = append(listed, name)
		} else {
			unlisted = append(unlisted, name)
		}
	}
	return listed, unlisted
}

// writeRealQueries writes the real-hostname mix: 95% unlisted names, 5%
// listed ones, each drawn by rank with a Zipf law (s = 1.01), as DNS
// popularity falls off; 80% A, 20% AAAA.
func writeRealQueries(path string, unlisted, listed []string, n int) {
	rng := rand.New(rand.NewPCG(13, 13))
	zu := rand.NewZipf(rng, 1.01, 1, uint64(len(unlisted)-1))
	zl := rand.NewZipf(rng, 1.01, 1, uint64(len(listed)-1))
	f, err := os.Create(path)
	check(err)
	w := bufio.NewWriter(f)
	for range n {
		qt := "A"
		if rng.IntN(5) == 0 {
			qt = "AAAA"
		}
		name := unlisted[zu.Uint64()]
		if rng.IntN(100) < 5 {
			name = listed[zl.Uint64()]
		}
		fmt.Fprintf(w, "%s %s\n", name, qt)
	}
	check(w.Flush())
	check(f.Close())
}

// writeFlood writes n unique random names under many registered domains
// (random-subdomain "water torture" and DGA-like).
func writeFlood(path string, n int) {
	rng := rand.New(rand.NewPCG(9, 9))
	f, err := os.Create(path)
	check(err)
	w := bufio.NewWriterSize(f, 1<<20)
	for i := range n {
		fmt.Fprintf(w, "%s%d.%s.%s A\n", label(rng, 6, 20), i, label(rng, 6, 14), tlds[i%len(tlds)])
	}
	check(w.Flush())
	check(f.Close())
}

func freePort() int {
	for {
		l, err := net.ListenPacket("udp", "127.0.0.1:0")
		check(err)
		port := l.LocalAddr().(*net.UDPAddr).Port
		l.Close()
		t, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			t.Close()
			return port
		}
	}
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func step(s string) { fmt.Printf("-- %s (%s)\n", s, time.Now().Format("15:04:05")) }

func run(name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	check(cmd.Run())
}

func check(err error) {
	if err != nil {
		fatal("%v", err)
	}
}

// current is the running benchmark, whose processes fatal must end.
var current *bench

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	if current != nil {
		current.stopAll()
	}
	os.Exit(1)
}
