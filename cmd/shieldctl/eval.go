package main

import (
	"bufio"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dnsshield/shield/plugin/shield/score"
	"github.com/miekg/dns"
)

const evalUsage = `usage: shieldctl eval [flags] FILE...

Replays labelled query names through the detection engine the plugin uses,
in order, on a synthetic clock, and prints per label and per group (family
or tool): the alert and block rates (detection rate for attack labels,
false-positive rate for benign ones), the queries until the first alert
(an alert or a block: the group's client is flagged) and the first block,
and the share of the queries after it that were blocked. With -suspect N
it then replays, for each group answered NXDOMAIN (DGA families), its
first N names from one client on a fresh engine and reports whether the
group's next name, answered NOERROR, is blocked.

Files (gzip when the name ends in .gz) are read in the order given, all
through one engine. Formats (-format, detected from the first line):
  lines    one name per line; label from -label, group from the file name
  netrack  CSV "label,qname" with that header; 1 is -attack-label, 0 benign
  dga      CSV "class,family,domain" without header (class dga or legit)
  csv      CSV "label,group,name[,qtype[,rcode[,client[,time]]]]"

The clock advances by -step before each query (a fixed interval: -step 5s
replays a slow tunnel at one query every 5 seconds, in no real time). A
csv row's time, when given, sets the query's time instead: seconds since
the start of the replay (12.5), or an RFC 3339 timestamp, taken relative
to the first timestamp of the run; the clock never goes backwards.

Flags:
`

// evalEvent is one query of the corpus.
type evalEvent struct {
	score.Event
	rcodeSet bool
}

// runEval replays a labelled corpus through the detection engine.
func runEval(args []string) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), evalUsage)
		fs.PrintDefaults()
	}
	var (
		format   = fs.String("format", "auto", "input format: auto, lines, netrack, dga or csv")
		label    = fs.String("label", "benign", "label of the names of a lines file")
		attack   = fs.String("attack-label", "tunnel", "label of the rows marked 1 in a netrack file")
		group    = fs.String("group", "", "group of every name (default: from the file name or the rows)")
		clients  = fs.String("clients", "one", "who sends the queries: one (a single client), group (one per group), label (one per label)")
		qtype    = fs.String("qtype", "A", "query type when the corpus has none")
		step     = fs.Duration("step", 20*time.Millisecond, "synthetic time between queries")
		alert    = fs.Int("alert", 0, "alert threshold (default: the engine's)")
		block    = fs.Int("block", 0, "block threshold (default: the engine's)")
		sticky   = fs.Duration("sticky", 0, "sticky verdict duration (default: the engine's)")
		disable  = fs.String("disable", "", "comma-separated detectors to turn off: tunnel, dga, newly_seen")
		verbose  = fs.Bool("v", false, "list every blocked domain and the first block of each group with its reasons")
		history  = fs.Duration("history", 24*time.Hour, "first-seen history the engine has when the replay starts: 24h (the default) is a resolver that has run for a day; 0 is a fresh start, on which newly_seen gives no points for the first long window of the replay")
		suspect  = fs.Int("suspect", 20, "after the replay, for each attack group: a fresh engine and one client replay its first N names with the label's rcode, then its next name answered NOERROR; report whether that name is blocked (groups answered NXDOMAIN only; 0: skip)")
		rcodeArg = rcodeFlags{"dga": dns.RcodeNameError}
	)
	fs.Var(&rcodeArg, "rcode", "upstream rcode for a label, LABEL=RCODE (repeatable; default dga=NXDOMAIN, others NOERROR)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no corpus file given")
	}
	// The synthetic clock must move forward: windows, first-seen and
	// sticky expiry are measured on it.
	if *step <= 0 {
		return fmt.Errorf("-step must be a positive duration, not %s", *step)
	}
	if *suspect < 0 {
		return fmt.Errorf("-suspect must be 0 (skip) or a count of names, not %d", *suspect)
	}
	qt, ok := dns.StringToType[strings.ToUpper(*qtype)]
	if !ok {
		return fmt.Errorf("unknown query type %q", *qtype)
	}
	cfg := score.Config{Alert: *alert, Block: *block, Sticky: *sticky}
	for _, d := range strings.Split(*disable, ",") {
		switch strings.TrimSpace(d) {
		case "":
		case score.DetTunnel:
			cfg.NoTunnel = true
		case score.DetDGA:
			cfg.NoDGA = true
		case score.DetNewlySeen:
			cfg.NoNewlySeen = true
		default:
			return fmt.Errorf("unknown detector %q", d)
		}
	}
	switch *clients {
	case "one", "group", "label":
	default:
		return fmt.Errorf("-clients must be one, group or label, not %q", *clients)
	}
	rp, err := newReplay(cfg, *step, *history)
	if err != nil {
		return err
	}
	addrs := map[string]netip.Addr{}
	clientFor := func(ev *score.Event) netip.Addr {
		key := ""
		switch *clients {
		case "group":
			key = ev.Label + "/" + ev.Group
		case "label":
			key = ev.Label
		}
		a, ok := addrs[key]
		if !ok {
			n := len(addrs) + 1
			a = netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
			addrs[key] = a
		}
		return a
	}
	firsts := map[[2]string]string{}
	var events []score.Event
	var times timeBase
	for _, path := range fs.Args() {
		err := readCorpus(path, *format, *label, *attack, *group, qt, &times, func(ev evalEvent) {
			if !ev.Client.IsValid() {
				ev.Client = clientFor(&ev.Event)
			}
			if !ev.rcodeSet {
				ev.Rcode = rcodeArg[ev.Label]
			}
			res := rp.Run(ev.Event)
			if *suspect > 0 && !benignLabel(ev.Label) {
				events = append(events, ev.Event)
			}
			k := [2]string{ev.Label, ev.Group}
			if *verbose && res.Action == score.Block && !res.Sticky {
				if _, ok := firsts[k]; !ok {
					firsts[k] = fmt.Sprintf("%s score %d %v", ev.Name, res.Score, res.Reasons())
				}
			}
		})
		if err != nil {
			return err
		}
	}
	printEval(os.Stdout, rp, *verbose, firsts)
	if *suspect > 0 {
		return suspectTest(os.Stdout, cfg, *step, *history, *suspect, events)
	}
	return nil
}

// suspectTest replays, for each group of attack names, its first n names
// from one client on a fresh engine (with their rcodes: NXDOMAIN for DGA
// names), then its next name answered NOERROR, and reports whether that
// name was blocked: a client with a burst of one family's NXDOMAINs is
// suspect, and the family's next resolvable domain is blocked.
// newReplay returns a replay whose engine has history of the given age.
func newReplay(cfg score.Config, step, history time.Duration) (*score.Replay, error) {
	rp, err := score.NewReplay(cfg, step)
	if err != nil {
		return nil, err
	}
	rp.Engine.SetHistoryFrom(rp.Engine.HistoryFrom().Add(-history))
	return rp, nil
}

func suspectTest(out io.Writer, cfg score.Config, step, history time.Duration, n int, events []score.Event) error {
	type key struct{ label, group string }
	byGroup := map[key][]score.Event{}
	var order []key
	for _, ev := range events {
		k := key{ev.Label, ev.Group}
		if _, ok := byGroup[k]; !ok {
			order = append(order, k)
		}
		byGroup[k] = append(byGroup[k], ev)
	}
	client := netip.AddrFrom4([4]byte{10, 255, 0, 1})
	tested, blocked := 0, 0
	var missed []string
	for _, k := range order {
		evs := byGroup[k]
		if len(evs) <= n {
			continue
		}
		nx := true // only groups answered NXDOMAIN, as DGA names are
		for _, ev := range evs[:n] {
			nx = nx && ev.Rcode == dns.RcodeNameError
		}
		if !nx {
			continue
		}
		rp, err := newReplay(cfg, step, history)
		if err != nil {
			return err
		}
		for _, ev := range evs[:n] {
			ev.Client = client
			rp.Run(ev)
		}
		next := evs[n]
		next.Client, next.Rcode = client, dns.RcodeSuccess
		res := rp.Run(next)
		tested++
		if res.Action == score.Block {
			blocked++
		} else {
			missed = append(missed, fmt.Sprintf("%s/%s (%s: score %d %v)", k.label, k.group, next.Name, res.Score, res.Reasons()))
		}
	}
	if tested == 0 {
		return nil
	}
	fmt.Fprintf(out, "\nsuspect test: after %d names of one group from one client, its next name (answered NOERROR) blocked for %d of %d groups (%.1f%%)\n",
		n, blocked, tested, 100*float64(blocked)/float64(tested))
	for _, m := range missed {
		fmt.Fprintf(out, "  not blocked: %s\n", m)
	}
	return nil
}

// benignLabel reports whether a label names benign traffic, whose alerts
// are false positives.
func benignLabel(l string) bool {
	switch strings.ToLower(l) {
	case "benign", "legit", "plain", "0", "normal":
		return true
	}
	return false
}

func printEval(out io.Writer, rp *score.Replay, verbose bool, firsts map[[2]string]string) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "label\tgroup\tqueries\tscored\talerts\talert rate\tblocks\tblock rate\tfirst alert\tfirst block\tblocked after\tdomains blocked\tmeaning\t")
	row := func(g *score.GroupStats, group string) {
		first, firstAlert := "-", "-"
		if g.FirstBlock > 0 {
			first = strconv.Itoa(g.FirstBlock)
		}
		if g.FirstAlert > 0 {
			firstAlert = strconv.Itoa(g.FirstAlert)
		}
		after := "-"
		if g.After > 0 {
			after = fmt.Sprintf("%.2f%%", 100*g.AfterRate())
		}
		meaning := "detection rate"
		if benignLabel(g.Label) {
			meaning = "false-positive rate"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%.3f%%\t%d\t%.3f%%\t%s\t%s\t%s\t%d\t%s\t\n",
			g.Label, group, g.Queries, g.Scored, g.Alerts, 100*g.AlertRate(), g.Blocks, 100*g.BlockRate(),
			firstAlert, first, after, len(g.Blocked), meaning)
	}
	for _, g := range rp.Labels() {
		row(g, "(all)")
	}
	for _, g := range rp.Groups() {
		row(g, g.Group)
	}
	tw.Flush()
	if !verbose {
		return
	}
	for _, g := range rp.Groups() {
		if f, ok := firsts[[2]string{g.Label, g.Group}]; ok {
			fmt.Fprintf(out, "first block %s/%s: %s\n", g.Label, g.Group, f)
		}
		if len(g.Blocked) > 0 {
			var ds []string
			for d := range g.Blocked {
				ds = append(ds, d)
			}
			sort.Strings(ds)
			fmt.Fprintf(out, "blocked %s/%s: %s\n", g.Label, g.Group, strings.Join(ds, " "))
		}
	}
}

// rcodeFlags maps a label to the upstream rcode its queries get.
type rcodeFlags map[string]int

func (r rcodeFlags) String() string {
	var parts []string
	for l, c := range r {
		parts = append(parts, l+"="+dns.RcodeToString[c])
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (r rcodeFlags) Set(v string) error {
	l, c, ok := strings.Cut(v, "=")
	if !ok || l == "" {
		return fmt.Errorf("want LABEL=RCODE, got %q", v)
	}
	code, err := parseRcode(c)
	if err != nil {
		return err
	}
	r[l] = code
	return nil
}

func parseRcode(s string) (int, error) {
	if code, ok := dns.StringToRcode[strings.ToUpper(s)]; ok {
		return code, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 4095 {
		return 0, fmt.Errorf("unknown rcode %q", s)
	}
	return n, nil
}

// timeBase turns a corpus's times into offsets from the start of the
// replay: the first RFC 3339 timestamp of a run is its start.
type timeBase struct {
	first time.Time
}

// offset parses a time column: seconds since the start, or an RFC 3339
// timestamp. A time before the start is an error. Offsets are a
// nanosecond late: 0 means "no time" to the replay.
func (b *timeBase) offset(s string) (time.Duration, error) {
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if secs < 0 || secs > 1e9 {
			return 0, fmt.Errorf("time %q outside 0 to 1e9 seconds", s)
		}
		return time.Duration(secs*float64(time.Second)) + time.Nanosecond, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("time %q is neither seconds nor RFC 3339", s)
	}
	if b.first.IsZero() {
		b.first = t
	}
	d := t.Sub(b.first)
	if d < 0 {
		return 0, fmt.Errorf("time %q is before the first timestamp %s", s, b.first.Format(time.RFC3339Nano))
	}
	return d + time.Nanosecond, nil
}

// readCorpus reads one corpus file and calls emit for each query in order.
// times turns the csv time column into offsets.
func readCorpus(path, format, label, attack, group string, qtype uint16, times *timeBase, emit func(evalEvent)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	fileGroup := group
	if fileGroup == "" {
		fileGroup = groupFromFile(path)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if format == "auto" {
			format = detectFormat(line)
		}
		ev := evalEvent{Event: score.Event{Type: qtype, Group: fileGroup}}
		switch format {
		case "lines":
			ev.Name, ev.Label = line, label
		case "netrack":
			if lineNo == 1 && strings.HasPrefix(line, "label,") {
				continue
			}
			l, name, ok := strings.Cut(line, ",")
			if !ok {
				return fmt.Errorf("%s:%d: want label,qname", path, lineNo)
			}
			ev.Name, ev.Label = name, label
			if l == "1" {
				ev.Label = attack
			}
		case "dga":
			parts := strings.SplitN(line, ",", 3)
			if len(parts) != 3 {
				return fmt.Errorf("%s:%d: want class,family,domain", path, lineNo)
			}
			ev.Label, ev.Name = parts[0], parts[2]
			if group == "" {
				ev.Group = parts[1]
			}
		case "csv":
			parts := strings.Split(line, ",")
			if len(parts) < 3 || len(parts) > 7 {
				return fmt.Errorf("%s:%d: want label,group,name[,qtype[,rcode[,client[,time]]]]", path, lineNo)
			}
			ev.Label, ev.Group, ev.Name = parts[0], parts[1], parts[2]
			if len(parts) > 3 && parts[3] != "" {
				t, ok := dns.StringToType[strings.ToUpper(parts[3])]
				if !ok {
					return fmt.Errorf("%s:%d: unknown query type %q", path, lineNo, parts[3])
				}
				ev.Type = t
			}
			if len(parts) > 4 && parts[4] != "" {
				c, err := parseRcode(parts[4])
				if err != nil {
					return fmt.Errorf("%s:%d: %v", path, lineNo, err)
				}
				ev.Rcode, ev.rcodeSet = c, true
			}
			if len(parts) > 5 && parts[5] != "" {
				a, err := netip.ParseAddr(parts[5])
				if err != nil {
					return fmt.Errorf("%s:%d: %v", path, lineNo, err)
				}
				ev.Client = a
			}
			if len(parts) > 6 && parts[6] != "" {
				at, err := times.offset(parts[6])
				if err != nil {
					return fmt.Errorf("%s:%d: %v", path, lineNo, err)
				}
				ev.At = at
			}
		default:
			return fmt.Errorf("unknown format %q", format)
		}
		ev.Name = dns.Fqdn(ev.Name)
		emit(ev)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// detectFormat guesses a file's format from its first line.
func detectFormat(line string) string {
	if strings.HasPrefix(line, "label,qname") {
		return "netrack"
	}
	parts := strings.Split(line, ",")
	switch {
	case len(parts) == 1:
		return "lines"
	case len(parts) == 3 && (parts[0] == "dga" || parts[0] == "legit"):
		return "dga"
	case len(parts) == 2:
		return "netrack"
	}
	return "csv"
}

// groupFromFile names a group after a corpus file: the tool of a
// tunnel_qnames_TOOL_* file, else the file name without extensions.
func groupFromFile(path string) string {
	base := filepath.Base(path)
	for _, ext := range []string{".gz", ".csv", ".txt"} {
		base = strings.TrimSuffix(base, ext)
	}
	if rest, ok := strings.CutPrefix(base, "tunnel_qnames_"); ok {
		if i := strings.IndexByte(rest, '_'); i > 0 {
			return rest[:i]
		}
		return rest
	}
	return base
}
