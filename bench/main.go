// Command bench is shield's load benchmark. It measures what turning
// shield on costs a resolver, side by side in one run on one machine:
//
//   - it generates a deterministic blocklist of N names (default 1,000,000)
//     and a query file mixing unlisted names (80%), listed names (10%),
//     their subdomains (5%) and long random tunnel-like names (5%);
//   - it builds cmd/coredns and starts a loopback upstream and two
//     resolvers from it: the baseline (forward + cache) and the candidate
//     (the same Corefile with shield, the big list and every detector on);
//   - it runs dnsperf against the two in alternation, at saturation, and
//     prints QPS, p99 latency and their ratios, resolver RSS, bytes per
//     listed name and the list's load time;
//   - it replaces the list under load and reports lost and late queries
//     and p99 during the reload;
//   - it floods the candidate with unique random names and reports how
//     its RSS moved, against the baseline under the same flood.
//
// Run it from the repository root: go run ./bench (see README.md). It needs
// dnsperf (Debian package dnsperf). Every process it starts listens on
// 127.0.0.1 only and is ended by PID; every load run is bounded in time
// and count.
package main

import (
	"bufio"
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
)

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
	b := &bench{dir: dir}
	current = b
	defer b.stopAll()
	b.run()
}

type bench struct {
	dir   string
	procs []*exec.Cmd
}

// resolver is one started CoreDNS process.
type resolver struct {
	name    string
	cmd     *exec.Cmd
	dns     string // host:port
	metrics string // host:port of its prometheus endpoint
}

func (b *bench) run() {
	fmt.Printf("shield load benchmark: %d listed names, %d-line query file, %d x %s runs per resolver, dnsperf -c %d -q %d\n",
		*names, *queries, *rounds, *duration, *clients, *inflight)
	bin := filepath.Join(b.dir, "coredns")
	step("building cmd/coredns")
	run("go", "build", "-o", bin, "./cmd/coredns")

	step("generating the blocklist and the query file")
	list := filepath.Join(b.dir, "big.txt")
	listed := writeList(list, *names, 0)
	qfile := filepath.Join(b.dir, "queries.txt")
	writeQueries(qfile, listed, *queries)

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
	fwd := fmt.Sprintf("    cache\n    forward . %s\n", up.dns)
	base := b.start(bin, "baseline", fwd, "")
	shieldBlock := fmt.Sprintf("    shield {\n        blocklist big %s domains\n        audit %s\n        audit_rotate 20 1\n    }\n",
		list, filepath.Join(b.dir, "audit.json"))
	t0 := time.Now()
	cand := b.start(bin, "candidate", shieldBlock+fwd, "")
	startup := time.Since(t0)
	one := filepath.Join(b.dir, "one.txt")
	check(os.WriteFile(one, []byte("listed.invalid\n"), 0o644))
	small := b.start(bin, "candidate-1-name", strings.Replace(shieldBlock, list, one, 1)+fwd, "")

	loadSec := scrape(cand.metrics, "coredns_shield_list_load_duration_seconds", `list="big"`)
	rssBaseIdle, rssCandIdle, rssSmallIdle := rss(base), rss(cand), rss(small)

	step("warming up both resolvers")
	dnsperf(base.dns, qfile, 2*time.Second)
	dnsperf(cand.dns, qfile, 2*time.Second)

	var baseRuns, candRuns []result
	for r := range *rounds {
		order := []*resolver{base, cand}
		if r%2 == 1 {
			order = []*resolver{cand, base}
		}
		for _, res := range order {
			out := dnsperf(res.dns, qfile, *duration)
			fmt.Printf("  round %d %-9s %8.0f qps  p50 %6.2f ms  p99 %6.2f ms  lost %d\n", r+1, res.name, out.qps, out.p50*1e3, out.p99*1e3, out.lost)
			if res == base {
				baseRuns = append(baseRuns, out)
			} else {
				candRuns = append(candRuns, out)
			}
		}
	}
	rssBaseLoad, rssCandLoad := rss(base), rss(cand)
	// The same load on shield with a one-name list separates what the big
	// list costs from what shield's other state (detector tables, audit
	// queue) and the Go runtime's heap headroom cost under load.
	dnsperf(small.dns, qfile, 2*time.Second)
	dnsperf(small.dns, qfile, *duration)
	rssSmallLoad := rss(small)
	b.stop(small)

	bq, cq := median(baseRuns, func(r result) float64 { return r.qps }), median(candRuns, func(r result) float64 { return r.qps })
	bp, cp := median(baseRuns, func(r result) float64 { return r.p99 }), median(candRuns, func(r result) float64 { return r.p99 })
	n := float64(*names)
	fmt.Println()
	fmt.Println("== results (medians of the alternating runs)")
	fmt.Printf("QPS           baseline %8.0f   shield %8.0f   ratio %.3f\n", bq, cq, cq/bq)
	fmt.Printf("p99 latency   baseline %6.2f ms  shield %6.2f ms  ratio %.3f\n", bp*1e3, cp*1e3, cp/bp)
	fmt.Printf("RSS idle      baseline %6.1f MB  shield %6.1f MB  shield with a 1-name list %6.1f MB\n", mb(rssBaseIdle), mb(rssCandIdle), mb(rssSmallIdle))
	fmt.Printf("RSS after load baseline %6.1f MB  shield %6.1f MB  shield with a 1-name list %6.1f MB\n", mb(rssBaseLoad), mb(rssCandLoad), mb(rssSmallLoad))
	fmt.Printf("bytes per listed name above baseline:                %5.1f idle, %5.1f after load\n",
		float64(rssCandIdle-rssBaseIdle)/n, float64(rssCandLoad-rssBaseLoad)/n)
	fmt.Printf("bytes per listed name above shield with a 1-name list: %5.1f idle, %5.1f after load\n",
		float64(rssCandIdle-rssSmallIdle)/n, float64(rssCandLoad-rssSmallLoad)/n)
	fmt.Printf("list load time: %.3f s (read, parse, build; coredns_shield_list_load_duration_seconds); candidate start to first answer %.2f s\n", loadSec, startup.Seconds())

	if *reload {
		step("reloading the list under load")
		reloads := scrape(cand.metrics, "coredns_shield_list_reloads_total", `list="big"`)
		next := filepath.Join(b.dir, "big.next")
		writeList(next, *names, 1) // 1% of the names differ: a real update, not a shrink
		runFor := 6 * time.Second
		done := make(chan result)
		go func() { done <- dnsperf(cand.dns, qfile, runFor) }()
		time.Sleep(1500 * time.Millisecond)
		check(os.Rename(next, list))
		out := <-done
		after := scrape(cand.metrics, "coredns_shield_list_reloads_total", `list="big"`)
		reloadSec := scrape(cand.metrics, "coredns_shield_list_load_duration_seconds", `list="big"`)
		fmt.Printf("reload under load: %d queries sent, %d lost, %d late (>100 ms), p99 %.2f ms = %.3f x baseline p99; reloads %v -> %v, reload took %.3f s\n",
			out.sent, out.lost, out.late, out.p99*1e3, out.p99/bp, reloads, after, reloadSec)
		if after <= reloads {
			fmt.Println("WARNING: the list did not reload during the run")
		}
	}

	if *flood > 0 {
		step("flooding both resolvers with unique random names")
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
}

// start writes a Corefile for a resolver on free loopback ports and starts
// it, waiting until it answers.
func (b *bench) start(bin, name, body, extra string) *resolver {
	port := freePort()
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort())
	cf := fmt.Sprintf(".:%d {\n    bind 127.0.0.1\n    prometheus %s\n%s\n%s\n}\n", port, metrics, extra, body)
	cfPath := filepath.Join(b.dir, name+".Corefile")
	check(os.WriteFile(cfPath, []byte(cf), 0o644))
	logf, err := os.Create(filepath.Join(b.dir, name+".log"))
	check(err)
	cmd := exec.Command(bin, "-conf", cfPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	check(cmd.Start())
	b.procs = append(b.procs, cmd)
	r := &resolver{name: name, cmd: cmd, dns: fmt.Sprintf("127.0.0.1:%d", port), metrics: metrics}
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
	host, port, _ := net.SplitHostPort(addr)
	args := append([]string{"-s", host, "-p", port, "-d", file, "-c", strconv.Itoa(*clients), "-q", strconv.Itoa(*inflight), "-t", "2", "-v"}, limit...)
	cmd := exec.Command("dnsperf", args...)
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

// writeList writes the deterministic blocklist in domains format. With
// variant v > 0, v% of the names are replaced by others. It returns a
// sample of listed names for the query file.
func writeList(path string, n, v int) []string {
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
