package score

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dnsshield/shield/internal/corpus"
)

// Corpus replays for the detection targets of the detection issue. They
// read ../shared/data through internal/corpus (skipped when absent, failed
// when $CI is "true").

var (
	benignClient = netip.MustParseAddr("10.0.0.1")
	replayStep   = 20 * time.Millisecond // 50 queries a second per replay
)

// lines returns the non-empty lines of a corpus file.
func lines(t testing.TB, file string) []string {
	t.Helper()
	sc := bufio.NewScanner(corpus.Open(t, file))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []string
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// netrackNames returns the query names of a netrack capture (CSV
// label,qname with a header).
func netrackNames(t testing.TB, file string) []string {
	var out []string
	for i, l := range lines(t, file) {
		if i == 0 && strings.HasPrefix(l, "label,") {
			continue
		}
		if j := strings.IndexByte(l, ','); j >= 0 {
			out = append(out, l[j+1:])
		}
	}
	return out
}

type dgaRow struct{ class, family, domain string }

func dgaSample(t testing.TB) []dgaRow {
	var out []dgaRow
	for _, l := range lines(t, "dga_labelled_sample_chrmor.csv.gz") {
		f := strings.SplitN(l, ",", 3)
		if len(f) == 3 {
			out = append(out, dgaRow{f[0], f[1], f[2]})
		}
	}
	return out
}

// newReplay returns a replay on a resolver that has a day of first-seen
// history, so that newly_seen gives its points as it does in steady state
// (a fresh engine holds them back for a day: TestNewlySeenNeedsHistory).
// The replays measure the steady state, the harder case for false
// positives.
func newReplay(t testing.TB) *Replay {
	t.Helper()
	r, err := NewReplay(Config{}, replayStep)
	if err != nil {
		t.Fatal(err)
	}
	withHistory(r.Engine)
	return r
}

// TestBenignUmbrella: replaying the Umbrella top 100k in rank order as one
// client (A queries, upstream NOERROR) blocks no name.
func TestBenignUmbrella(t *testing.T) {
	names := lines(t, "benign_umbrella_top100k_fqdn.txt.gz")
	r := newReplay(t)
	var alerts []string
	for _, n := range names {
		res := r.Run(Event{Name: n + ".", Type: 1, Client: benignClient, Rcode: 0, Label: "benign", Group: "umbrella"})
		if res.Action == Block && !res.Sticky {
			alerts = append(alerts, fmt.Sprintf("%s %s %d %v", res.Action, n, res.Score, res.Reasons()))
		}
	}
	g := r.Labels()[0]
	t.Logf("umbrella: %d queries, %d scored, %d alerts (%.4f%%), %d blocks", g.Queries, g.Scored, g.Alerts, 100*g.AlertRate(), g.Blocks)
	for _, a := range alerts {
		t.Log(a)
	}
	if g.Blocks != 0 {
		t.Errorf("%d benign queries blocked (%d domains: %v)", g.Blocks, len(g.Blocked), keys(g.Blocked, 20))
	}
}

// TestBenignPlain: the benign names of the netrack capture block nothing.
func TestBenignPlain(t *testing.T) {
	r := newReplay(t)
	for _, n := range netrackNames(t, "tunnel_qnames_plain_netrack.csv.gz") {
		r.Run(Event{Name: n, Type: 1, Client: benignClient, Label: "benign", Group: "plain"})
	}
	g := r.Labels()[0]
	t.Logf("plain: %d queries, %d alerts, %d blocks", g.Queries, g.Alerts, g.Blocks)
	if g.Blocks != 0 {
		t.Errorf("%d benign queries blocked: %v", g.Blocks, keys(g.Blocked, 20))
	}
}

// TestTunnelSessions: each captured session is blocked within 50 queries,
// and at least 95% of its later queries are blocked.
func TestTunnelSessions(t *testing.T) {
	for _, tool := range []string{"dns2tcp", "dnscapy", "iodine"} {
		t.Run(tool, func(t *testing.T) {
			names := netrackNames(t, "tunnel_qnames_"+tool+"_netrack.csv.gz")
			r := newReplay(t)
			client := netip.MustParseAddr("10.0.0.9")
			for _, n := range names {
				res := r.Run(Event{Name: n, Type: 1, Client: client, Label: "tunnel", Group: tool})
				if res.Action == Block && !res.Sticky {
					t.Logf("first block: %s %d %v", n, res.Score, res.Reasons())
				}
			}
			g := r.Groups()[0]
			t.Logf("%s: %d queries, first block at query %d, %d/%d later queries blocked (%.2f%%), domains %v",
				tool, g.Queries, g.FirstBlock, g.AfterBlocked, g.After, 100*g.AfterRate(), keys(g.Blocked, 5))
			if g.FirstBlock == 0 || g.FirstBlock > 50 {
				t.Errorf("first block at query %d, want 1 to 50", g.FirstBlock)
			}
			if g.AfterRate() < 0.95 {
				t.Errorf("%.2f%% of later queries blocked, want >= 95%%", 100*g.AfterRate())
			}
		})
	}
}

func keys(m map[string]bool, n int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// familyClient gives each DGA family its own client address, as one
// infected host per family.
func familyClient(fams map[string]netip.Addr, family string) netip.Addr {
	a, ok := fams[family]
	if !ok {
		a = netip.AddrFrom4([4]byte{10, 1, byte(len(fams) >> 8), byte(len(fams) + 1)})
		fams[family] = a
	}
	return a
}

// dgaReplay replays the labelled DGA sample in file order, benign (legit)
// rows answered NOERROR and DGA rows NXDOMAIN, with the clients of mode:
// "one" (every row from one client: an infected host that also browses,
// the hardest case for the benign rows), "label" (one client for the
// benign rows, one for all DGA rows) or "family" (one client per family,
// one for the benign rows). For each benign name that a suspect client
// asks for and that fits the client's NXDOMAIN profile, it records the
// block ratio odds / benignShare that the rule compares with suspectOdds.
func dgaReplay(t *testing.T, mode string) (legit, dga *GroupStats, r *Replay, fits []float64) {
	r = newReplay(t)
	fams := map[string]netip.Addr{}
	for _, row := range dgaSample(t) {
		ev := Event{Name: row.domain + ".", Type: 1, Label: row.class, Group: row.family, Client: benignClient}
		if row.class != "legit" {
			ev.Rcode = 3
			switch mode {
			case "label":
				ev.Client = netip.MustParseAddr("10.0.0.2")
			case "family":
				ev.Client = familyClient(fams, row.family)
			}
		} else if ratio, ok := suspectRatio(r, ev); ok {
			fits = append(fits, ratio)
		}
		r.Run(ev)
	}
	for _, g := range r.Labels() {
		switch g.Label {
		case "legit":
			legit = g
		case "dga":
			dga = g
		}
	}
	sort.Float64s(fits)
	return legit, dga, r, fits
}

// suspectRatio returns, for a query the replay is about to make, the
// ratio odds / benignShare of its client when the client is suspect and
// the name fits its profile.
func suspectRatio(r *Replay, ev Event) (float64, bool) {
	e := r.Engine
	name := []byte(strings.ToLower(strings.TrimSuffix(ev.Name, ".")))
	reg, suf := e.suffixes.registered(name)
	if reg < 0 || suf-1 <= reg {
		return 0, false
	}
	sh := e.registeredShape(name[reg:suf-1], name[suf:])
	now := e.now()
	c, mu, _ := e.clients.get(keyOfClient(e.keySeed, ev.Client), now, peek)
	defer mu.Unlock()
	if c == nil || c.suspect <= now || !c.profile.matches(sh) {
		return 0, false
	}
	return c.odds(now/e.shortEpochLen) / c.profile.benignShare(), true
}

// TestDGASample: the DGA targets in the three ways of replaying the
// sample: at least 60% of the DGA names alert (a block is an alert), no
// benign name is blocked, and at most 0.1% of the benign names alert when
// they come from their own client. In mode "one" the benign names come
// from the client that also sends every family's names: an infected
// host's own browsing. Its names that look machine-made (tier 2 or more of
// the DGA model, dga.go) while its run of DGA-like new domains lasts
// alert (client_dga_names; measured 0.8%, 41 of 5,019), so there the
// bound is 1%: the price of catching the resolvable names of a DGA
// (TestDGANoError).
func TestDGASample(t *testing.T) {
	for _, mode := range []string{"one", "label", "family"} {
		t.Run(mode, func(t *testing.T) {
			legit, dga, r, fits := dgaReplay(t, mode)
			t.Logf("legit: %d names, %d alert (%.3f%%), %d blocked; dga: %d names, %d alert (%.2f%%), %d blocked",
				legit.Queries, legit.Alerts, 100*legit.AlertRate(), legit.Blocks, dga.Queries, dga.Alerts, 100*dga.AlertRate(), dga.Blocks)
			if len(fits) > 0 {
				t.Logf("%d benign names fit a suspect client's profile; block ratio median %.2f, max %.2f (blocks at %d)",
					len(fits), fits[len(fits)/2], fits[len(fits)-1], suspectOdds)
			}
			for _, g := range r.Groups() {
				if g.Label == "dga" && g.AlertRate() < 0.6 {
					t.Logf("  %-12s %3d names, alert %5.1f%%, blocked %5.1f%%", g.Group, g.Queries, 100*g.AlertRate(), 100*g.BlockRate())
				}
			}
			bound := 0.001
			if mode == "one" {
				bound = 0.01
			}
			if legit.AlertRate() > bound || legit.Blocks > 0 {
				t.Errorf("%.3f%% of benign names alert, want <= %.1f%%; %d blocked: %v", 100*legit.AlertRate(), 100*bound, legit.Blocks, keys(legit.Blocked, 20))
			}
			if dga.AlertRate() < 0.60 {
				t.Errorf("%.2f%% of DGA names alert, want >= 60%%", 100*dga.AlertRate())
			}
		})
	}
}

// TestDGALexicalOnly measures the DGA model without NXDOMAIN context:
// every name of the sample once, from one client, with NOERROR answers. It
// has no pass mark of its own beyond the benign bound; it logs the
// detection rate that the character model gives. The benign names share
// the client with the DGA names (an infected host's browsing, as in
// TestDGASample/one): at most 1% of them alert (measured 0.8%) and none
// is blocked.
func TestDGALexicalOnly(t *testing.T) {
	r := newReplay(t)
	for _, row := range dgaSample(t) {
		r.Run(Event{Name: row.domain + ".", Type: 1, Client: benignClient, Label: row.class, Group: row.family})
	}
	for _, g := range r.Labels() {
		t.Logf("%s: %d names, %d alert (%.2f%%)", g.Label, g.Queries, g.Alerts, 100*g.AlertRate())
		if g.Label == "legit" && (g.AlertRate() > 0.01 || g.Blocks > 0) {
			t.Errorf("%.3f%% of benign names alert, want <= 1%%; %d blocked", 100*g.AlertRate(), g.Blocks)
		}
	}
}

// TestDGAFamilySuspect: a client that replays 20 NXDOMAIN queries of one
// DGA family becomes suspect, and the family's next domain, resolvable
// this time, is blocked, for at least 90% of the families. The issue's
// measure takes each family's first 21 names; the test also takes the 7
// later disjoint windows of 21 names of every family (the targets are
// checked on corpora we do not have) and wants 90% over all of them.
func TestDGAFamilySuspect(t *testing.T) {
	byFamily := map[string][]string{}
	var order []string
	for _, row := range dgaSample(t) {
		if row.class != "dga" {
			continue
		}
		if _, ok := byFamily[row.family]; !ok {
			order = append(order, row.family)
		}
		byFamily[row.family] = append(byFamily[row.family], row.domain)
	}
	client := netip.MustParseAddr("10.2.0.1")
	total, totalBlocked := 0, 0
	for w := 0; w < 8; w++ {
		blocked := 0
		for _, fam := range order {
			names := byFamily[fam][w*21:]
			if len(names) < 21 {
				t.Fatalf("family %s has %d names", fam, len(byFamily[fam]))
			}
			r := newReplay(t) // a fresh resolver per family
			for _, n := range names[:20] {
				r.Run(Event{Name: n + ".", Type: 1, Client: client, Rcode: 3, Label: "dga", Group: fam})
			}
			ev := Event{Name: names[20] + ".", Type: 1, Client: client, Rcode: 0, Label: "dga", Group: fam}
			e := r.Engine
			c, mu, _ := e.clients.get(keyOfClient(e.keySeed, client), e.now(), peek)
			share := c.profile.benignShare()
			mu.Unlock()
			ratio, fits := suspectRatio(r, ev)
			if w == 0 {
				t.Logf("%-12s profile fits %.4f of benign domains; next domain %s fits: %v, ratio %.1f", fam, share, names[20], fits, ratio)
			}
			if res := r.Run(ev); res.Action == Block {
				blocked++
			} else {
				t.Logf("window %d: %s: next domain %s not blocked: fits %v, ratio %.1f, %d %v", w, fam, names[20], fits, ratio, res.Score, res.Reasons())
			}
		}
		share := float64(blocked) / float64(len(order))
		t.Logf("window %d: next resolvable domain blocked for %d of %d families (%.1f%%)", w, blocked, len(order), 100*share)
		if w == 0 && share < 0.9 {
			t.Errorf("%.1f%% of families blocked, want >= 90%%", 100*share)
		}
		total += len(order)
		totalBlocked += blocked
	}
	t.Logf("all windows: %d of %d (%.1f%%)", totalBlocked, total, 100*float64(totalBlocked)/float64(total))
	if float64(totalBlocked) < 0.9*float64(total) {
		t.Errorf("over all windows %d of %d blocked, want >= 90%%", totalBlocked, total)
	}
}

// TestUmbrellaEncodedPrefixes measures what set the encoded-prefix tiers:
// the most encoded prefixes (non-LDH bytes or a base32/base64 label) under
// one non-exempt registered domain of the Umbrella top 100k, all names
// counted, must stay below the first tier that blocks (encTier2).
func TestUmbrellaEncodedPrefixes(t *testing.T) {
	e := mustEngine(t, Config{})
	counts := map[string]int{}
	for _, n := range lines(t, "benign_umbrella_top100k_fqdn.txt.gz") {
		r := e.Explain(Query{Name: n + ".", Type: 1})
		if r.Exempt || r.domStart == 0 {
			continue
		}
		var f Features
		lexical(n, r.domStart-1, &f)
		if f.encoded() {
			counts[r.Domain()]++
		}
	}
	max, maxDomain, total := 0, "", 0
	for d, c := range counts {
		total += c
		if c > max {
			max, maxDomain = c, d
		}
	}
	t.Logf("encoded prefixes: %d names under %d domains; most under one domain: %d (%s)", total, len(counts), max, maxDomain)
	if max >= encTier2 {
		t.Errorf("%s has %d encoded prefixes, at or above encTier2 = %d", maxDomain, max, encTier2)
	}
}

// TestDGAInfectedBrowsing: one infected client per DGA family that also
// browses ordinary sites. Its first 20 family names get NXDOMAIN; then
// its family names (NXDOMAIN) and 200 benign (alexa) names of the sample
// come interleaved. The family's later names alert or are blocked; its
// ordinary browsing is blocked only while the NXDOMAIN burst dominates
// (the odds fall with each benign answer) and only for names that fit
// the family's profile: measured 0.9% to 1.3% (47 to 65 of 5,000; the
// estimate of distinct NXDOMAIN domains varies with the hash seed), where
// all of its browsing was blocked before the rule weighed the odds.
func TestDGAInfectedBrowsing(t *testing.T) {
	byFamily := map[string][]string{}
	var order, benign []string
	for _, row := range dgaSample(t) {
		if row.class != "dga" {
			benign = append(benign, row.domain)
			continue
		}
		if _, ok := byFamily[row.family]; !ok {
			order = append(order, row.family)
		}
		byFamily[row.family] = append(byFamily[row.family], row.domain)
	}
	var dgaN, dgaBlocked, dgaAlerts, benN, benBlocked int
	for fi, fam := range order {
		r := newReplay(t)
		client := netip.AddrFrom4([4]byte{10, 3, 0, byte(fi + 1)})
		names := byFamily[fam]
		for _, n := range names[:20] {
			r.Run(Event{Name: n + ".", Type: 1, Client: client, Rcode: 3, Label: "dga", Group: fam})
		}
		// 200 benign names of this family's slice of the alexa rows.
		ben := benign[fi*200%len(benign):]
		if len(ben) > 200 {
			ben = ben[:200]
		}
		rest := names[20:]
		for i := 0; i < len(rest) || i < len(ben); i++ {
			if i < len(rest) {
				res := r.Run(Event{Name: rest[i] + ".", Type: 1, Client: client, Rcode: 3, Label: "dga", Group: fam})
				dgaN++
				if res.Action == Block {
					dgaBlocked++
				}
				if res.Action >= Alert {
					dgaAlerts++
				}
			}
			if i < len(ben) {
				res := r.Run(Event{Name: ben[i] + ".", Type: 1, Client: client, Rcode: 0, Label: "legit", Group: fam})
				benN++
				if res.Action == Block {
					benBlocked++
				}
			}
		}
	}
	t.Logf("infected clients: %d/%d later family names alert (%.1f%%), %d blocked; %d/%d ordinary names blocked (%.2f%%)",
		dgaAlerts, dgaN, 100*float64(dgaAlerts)/float64(dgaN), dgaBlocked, benBlocked, benN, 100*float64(benBlocked)/float64(benN))
	if float64(dgaAlerts) < 0.6*float64(dgaN) {
		t.Errorf("only %d of %d later family names alert", dgaAlerts, dgaN)
	}
	if float64(benBlocked) > 0.02*float64(benN) {
		t.Errorf("%d of %d ordinary names blocked, want <= 2%%", benBlocked, benN)
	}
}

// benignCorpora returns the benign corpora the tunnel signals were tuned
// on: the Umbrella top 100k in rank order, the plain names of the
// netrack capture, the legit rows of the DGA sample and the newly
// registered domains of one day.
func benignCorpora(t testing.TB) map[string][]string {
	var legit []string
	for _, row := range dgaSample(t) {
		if row.class == "legit" {
			legit = append(legit, row.domain)
		}
	}
	var nrd []string
	for _, l := range lines(t, "domains_nrd_czds_1day_cryphorix.txt.gz") {
		if !strings.HasPrefix(l, "#") {
			nrd = append(nrd, l)
		}
	}
	return map[string][]string{
		"umbrella": lines(t, "benign_umbrella_top100k_fqdn.txt.gz"),
		"plain":    netrackNames(t, "tunnel_qnames_plain_netrack.csv.gz"),
		"legit":    legit,
		"nrd":      nrd,
	}
}

// TestBenignHalves replays every benign corpus split in two: the even
// positions (calibration: what the thresholds were tuned on) and the odd
// ones (held out), each on three engines: cold (no newly_seen points, as
// an engine with less than a day of history gives), newly_seen (today's
// engine with an empty history: every domain is new) and warm (the
// half's registered domains seen a day before: a resolver that has run
// for a while). Clients: one client for everything, or 200 clients
// picked at random. Nothing may be blocked; at most 0.1% may alert,
// except on the newly registered domains, where the DGA model alone
// decides (logged). Under the race detector it replays one name in ten
// of each half.
func TestBenignHalves(t *testing.T) {
	corpora := benignCorpora(t)
	stride := 2
	if raceEnabled {
		stride = 20
	}
	for _, corpus := range []string{"umbrella", "plain", "legit", "nrd"} {
		names := corpora[corpus]
		for half, part := range []string{"calibration", "held-out"} {
			var sub []string
			for i := half; i < len(names); i += stride {
				sub = append(sub, strings.TrimSuffix(names[i], ".")+".")
			}
			for _, mode := range []string{"cold", "newly_seen", "warm"} {
				for _, clients := range []string{"one", "200"} {
					cfg := Config{NoNewlySeen: mode == "cold"}
					r := replayWith(t, cfg, replayStep)
					rng := rand.New(rand.NewPCG(21, 22))
					client := func() netip.Addr {
						if clients == "one" {
							return benignClient
						}
						return netip.AddrFrom4([4]byte{10, 30, 0, byte(rng.IntN(200))})
					}
					if mode == "warm" {
						for _, n := range sub {
							if res := r.Engine.Explain(Query{Name: n, Type: 1}); !res.Exempt && res.Domain() != "" {
								r.Engine.Score(Query{Name: res.Domain() + ".", Type: 1, Client: client()})
							}
						}
						r.Advance(24*time.Hour + time.Minute)
					}
					var first []string
					for _, n := range sub {
						res := r.Run(Event{Name: n, Type: 1, Client: client(), Label: "benign", Group: corpus})
						if res.Action >= Alert && !res.Sticky && len(first) < 3 {
							first = append(first, fmt.Sprintf("%s %d %v", n, res.Score, res.Reasons()))
						}
					}
					g := r.Labels()[0]
					t.Logf("%-8s %-11s %-10s clients %-3s: %6d names, %4d alerts (%.4f%%), %d blocks %v %v",
						corpus, part, mode, clients, g.Queries, g.Alerts, 100*g.AlertRate(), g.Blocks, keys(g.Blocked, 5), first)
					if g.Blocks != 0 {
						t.Errorf("%s %s %s %s: %d blocked", corpus, part, mode, clients, g.Blocks)
					}
					// The alert budget is 0.1% of benign names. Two
					// corpora are held to less: NRD (newly registered
					// domains, mostly unknown rather than benign) is
					// not gated, and the netrack "plain" capture holds
					// a few dozen names such as ctygsgsfgus.org,
					// tzfbqzbmq.net and xjgeqznqm.cc that look
					// machine-made; replayed from one client, the
					// per-client DGA evidence alerts on 0.35-0.42% of
					// it (0.05-0.12% from 200 clients), all of them
					// client_dga_names + dga_label. Measured when the
					// DGA model and the tunnel budgets met; not
					// re-tuned on this corpus, so it is held to 0.5%.
					limit := 0.001
					if corpus == "plain" {
						limit = 0.005
					}
					if corpus != "nrd" && g.AlertRate() > limit {
						t.Errorf("%s %s %s %s: %.4f%% alerted", corpus, part, mode, clients, 100*g.AlertRate())
					}
				}
			}
		}
	}
}

// TestUmbrellaHourBits measures what set hourBits1: after a one-client
// replay of the Umbrella top 100k (all of it within one budget window),
// the most information bits of random-looking names that the client
// sent under one registered domain stay below the first tier.
func TestUmbrellaHourBits(t *testing.T) {
	r := newReplay(t)
	domains := map[uint64]string{}
	for _, n := range lines(t, "benign_umbrella_top100k_fqdn.txt.gz") {
		if res := r.Run(Event{Name: n + ".", Type: 1, Client: benignClient, Label: "benign"}); !res.Exempt {
			domains[res.domainKey] = res.Domain()
		}
	}
	e := r.Engine
	max, maxDomain := uint32(0), ""
	for i := range e.domains.shards {
		sh := &e.domains.shards[i]
		for s := range sh.keys {
			for w, k := range sh.keys[s] {
				if k == 0 {
					continue
				}
				if _, bits := sh.entries[s][w].topSlot(); bits > max {
					max, maxDomain = bits, domains[k]
				}
			}
		}
	}
	t.Logf("replay of %v: most bits of random-looking names under one domain: %d (%s)", r.Elapsed(), max, maxDomain)
	if max >= hourBits1 {
		t.Errorf("%s has %d bits, at or above hourBits1 = %d", maxDomain, max, hourBits1)
	}
}
