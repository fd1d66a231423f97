package score

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"net/netip"
	"sort"
	"strings"
	"time"
	"unsafe"
)

// Config is the engine's configuration. The zero value of a field means
// its default.
type Config struct {
	Alert int // a score at or above it alerts; default DefaultAlert
	Block int // a score at or above it blocks and makes the verdict sticky; default DefaultBlock

	ShortWindow time.Duration // default 10 minutes
	LongWindow  time.Duration // default 24 hours
	Sticky      time.Duration // how long a block verdict lasts; default 24 hours

	Domains  int // entries of the registered-domain table; default 131072
	Clients  int // entries of the client table; default 65536
	Verdicts int // entries of the sticky-verdict table; default 16384
	Names    int // slots of the recently-seen-names table; default 1<<20

	// Detectors to turn off.
	NoTunnel, NoDGA, NoNewlySeen bool

	// Exempt adds domain suffixes to the default exemptions (see
	// DefaultExempt); NoDefaultExempt drops the defaults.
	Exempt          []string
	NoDefaultExempt bool

	// Clock returns the time; default time.Now. shieldctl eval replays a
	// corpus on a synthetic clock.
	Clock func() time.Time
}

// Defaults.
const (
	// DefaultAlert and DefaultBlock: see the calibration notes on the
	// points below and in TestBenignUmbrella / TestTunnelSessions.
	DefaultAlert = 40
	DefaultBlock = 60

	DefaultShortWindow = 10 * time.Minute // DETECTION.md: unique prefixes in 10 min
	DefaultLongWindow  = 24 * time.Hour   // RITA and Paxson count per day
	DefaultSticky      = 24 * time.Hour
	DefaultDomains     = 131072  // DETECTION.md sizing sketch
	DefaultClients     = 65536   // DETECTION.md sizing sketch
	DefaultVerdicts    = 16384   // sticky verdicts
	DefaultNames       = 1 << 20 // 4 MiB of name fingerprints
)

// Detector names, for switches, metrics and the escalation hook.
const (
	DetTunnel    = "tunnel"
	DetDGA       = "dga"
	DetNewlySeen = "newly_seen"
)

// Reason identifiers. Each belongs to one detector.
const (
	rLongName uint8 = iota
	rLongLabel
	rEntropy
	rEncoded
	rNonLDH
	rTunnelType
	rLongTXT
	rEncodedPrefixes
	rUniquePrefixes
	rInfoBits
	rUniqueRatio
	rNonIPTypes
	rNXRatio
	rLowPrevalence
	rDGALabel
	rClientNXBurst
	rNewlySeen
	rClientDGA
	nReasons
)

var reasonNames = [nReasons]string{
	"long_name", "long_label", "high_entropy", "encoded_label", "non_ldh_bytes", "tunnel_qtype",
	"long_txt", "encoded_prefixes", "unique_prefixes", "info_bits", "unique_ratio", "non_ip_types",
	"nxdomain_ratio", "low_prevalence", "dga_label", "client_nx_burst", "newly_seen",
	"client_dga_names",
}

var reasonDetector = [nReasons]uint8{
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 1,
}

var detectorNames = [3]string{DetTunnel, DetDGA, DetNewlySeen}

// ReasonNames lists every reason the engine gives, for documentation.
func ReasonNames() []string { return append([]string(nil), reasonNames[:]...) }

// Action is what a score means.
type Action uint8

const (
	Pass Action = iota
	Alert
	Block
)

func (a Action) String() string {
	switch a {
	case Alert:
		return "alert"
	case Block:
		return "block"
	}
	return "pass"
}

// Query is one query to score.
type Query struct {
	Name   string // as received: any case, trailing dot allowed, \DDD escapes as miekg/dns writes them
	Type   uint16
	Client netip.Addr
}

// Result is the engine's answer for one query. Its zero value passes.
type Result struct {
	Score  int
	Action Action
	Sticky bool // blocked by an earlier verdict on the registered domain
	Exempt bool // an exempt name: not scored

	points    [nReasons]uint8
	domStart  int // offset of the registered domain in the name
	domEnd    int
	name      string
	dkey      uint64
	ckey      uint64
	sufStart  int // offset of the public suffix in the name
	scored    bool
	cand      bool  // a newly seen domain of at most two clients: the suspect-client rule applies
	dgaTier   uint8 // 1 + the DGA tier of a scored registered label (dga.go); 0: not scored
	topReason uint8
	detector  uint8
}

// Domain returns the registered domain (lower case, no trailing dot), or
// "" for an exempt name. It allocates.
func (r *Result) Domain() string {
	if r.domEnd <= r.domStart {
		return ""
	}
	return strings.ToLower(r.name[r.domStart:r.domEnd])
}

// Reasons returns the reasons that added points, the strongest first. It
// allocates; call it only for an alert or a block.
func (r *Result) Reasons() []string {
	var ids []int
	for i, p := range r.points {
		if p > 0 {
			ids = append(ids, i)
		}
	}
	sort.SliceStable(ids, func(a, b int) bool { return r.points[ids[a]] > r.points[ids[b]] })
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = reasonNames[id]
	}
	if r.Sticky && len(out) == 0 {
		out = []string{reasonNames[r.topReason]}
	}
	return out
}

// TopReason names the reason with the most points.
func (r *Result) TopReason() string { return reasonNames[r.topReason] }

// Detector names the detector that contributed most.
func (r *Result) Detector() string { return detectorNames[r.detector] }

// Engine scores queries. It is safe for concurrent use.
type Engine struct {
	cfg       Config
	seed      maphash.Seed
	start     time.Time
	clock     func() time.Time
	sticky    uint32
	sEpochLen uint32
	lEpochLen uint32

	suffixes *suffixMemo
	exempt   map[string]struct{}
	// exemptLabels and exemptLen are the most labels and bytes of an
	// exemption.
	exemptLabels, exemptLen int
	domains                 *domainTable
	clients                 *clientTable
	verdicts                *verdictTable
	names                   *seenTable
	seen                    *bloom
	dgaEv                   *dgaEvidence
}

// New makes an engine. It allocates every table now; nothing grows later.
func New(cfg Config) (*Engine, error) {
	if cfg.Alert == 0 {
		cfg.Alert = DefaultAlert
	}
	if cfg.Block == 0 {
		cfg.Block = DefaultBlock
	}
	if cfg.Alert < 1 || cfg.Alert > 100 || cfg.Block < 1 || cfg.Block > 100 {
		return nil, errors.New("thresholds must be from 1 to 100")
	}
	if cfg.Alert > cfg.Block {
		return nil, fmt.Errorf("alert threshold %d is above the block threshold %d", cfg.Alert, cfg.Block)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.ShortWindow, DefaultShortWindow)
	def(&cfg.LongWindow, DefaultLongWindow)
	def(&cfg.Sticky, DefaultSticky)
	if cfg.ShortWindow < time.Second || cfg.LongWindow < cfg.ShortWindow || cfg.Sticky < time.Second {
		return nil, errors.New("windows must be at least 1s, the long one no shorter than the short one, sticky at least 1s")
	}
	defi := func(n *int, v, lo, hi int, what string) error {
		if *n == 0 {
			*n = v
		}
		if *n < lo || *n > hi {
			return fmt.Errorf("%s table size %d outside %d to %d", what, *n, lo, hi)
		}
		return nil
	}
	if err := defi(&cfg.Domains, DefaultDomains, nShards*ways, 1<<24, "domain"); err != nil {
		return nil, err
	}
	if err := defi(&cfg.Clients, DefaultClients, nShards*ways, 1<<22, "client"); err != nil {
		return nil, err
	}
	if err := defi(&cfg.Verdicts, DefaultVerdicts, nShards*verdictWays, 1<<22, "verdict"); err != nil {
		return nil, err
	}
	if err := defi(&cfg.Names, DefaultNames, 1024, 1<<26, "name"); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	e := &Engine{
		cfg:       cfg,
		seed:      maphash.MakeSeed(),
		clock:     cfg.Clock,
		sticky:    uint32(cfg.Sticky / time.Second),
		sEpochLen: uint32(cfg.ShortWindow / time.Second),
		lEpochLen: uint32(cfg.LongWindow / time.Second),
		suffixes:  newSuffixMemo(),
		exempt:    map[string]struct{}{},
		domains:   newDomainTable(cfg.Domains),
		clients:   newClientTable(cfg.Clients),
		verdicts:  newVerdictTable(cfg.Verdicts),
		names:     newSeenTable(cfg.Names),
		seen:      newBloom(1 << 22), // 2 x 512 KiB: ~1% false "seen" at 400k domains a day
		dgaEv:     newDGAEvidence(dgaEvidenceSlots),
	}
	// The engine clock starts one long window in the past so that 0 can
	// mean "never".
	e.start = cfg.Clock().Add(-cfg.LongWindow)
	if !cfg.NoDefaultExempt {
		for _, s := range DefaultExempt {
			e.exempt[s] = struct{}{}
		}
	}
	for _, s := range cfg.Exempt {
		s = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
		if s == "" || strings.ContainsAny(s, " \t/\\") {
			return nil, fmt.Errorf("invalid exemption %q", s)
		}
		e.exempt[s] = struct{}{}
	}
	for s := range e.exempt {
		if n := strings.Count(s, ".") + 1; n > e.exemptLabels {
			e.exemptLabels = n
		}
		if len(s) > e.exemptLen {
			e.exemptLen = len(s)
		}
	}
	return e, nil
}

// Config returns the configuration in force, defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

func (e *Engine) now() uint32 {
	d := e.clock().Sub(e.start)
	if d < 0 {
		return 1
	}
	return uint32(d/time.Second) + 1
}

// Stats is the occupancy of the engine's tables.
type Stats struct {
	Domains, DomainsCap, Clients, ClientsCap, Verdicts, VerdictsCap     int
	DomainEvictions, ClientEvictions, VerdictEvictions, VerdictsRefused uint64
	Bytes                                                               int // memory of all tables
}

// Stats returns the table occupancy.
func (e *Engine) Stats() Stats {
	return Stats{
		Domains: int(e.domains.used.Load()), DomainsCap: e.domains.capacity,
		Clients: int(e.clients.used.Load()), ClientsCap: e.clients.capacity,
		Verdicts: int(e.verdicts.used.Load()), VerdictsCap: e.verdicts.capacity,
		DomainEvictions: e.domains.evicted.Load(), ClientEvictions: e.clients.evicted.Load(),
		VerdictEvictions: e.verdicts.evicted.Load(), VerdictsRefused: e.verdicts.refused.Load(),
		Bytes: e.MemoryBound(),
	}
}

// MemoryBound is the memory, in bytes, of every table of the engine. It is
// fixed when the engine is made.
func (e *Engine) MemoryBound() int {
	return e.domains.capacity*int(unsafe.Sizeof(domainState{})) +
		e.clients.capacity*int(unsafe.Sizeof(clientState{})) +
		e.verdicts.capacity*int(unsafe.Sizeof(verdict{})) +
		len(e.names.slots)*4 + len(e.seen.bits[0])*16 + suffixMemoSize*8 + len(e.dgaEv.slots)*8
}

// Points. Each number names its source (DETECTION.md's start values and
// the published work they come from) and, where calibration changed it,
// the measurement that set it (the Test... replays in corpus_test.go).
const (
	// Per-query lexical features (DETECTION.md "Per-query features").
	ptsNameOver52  = 10 // Zeek community scripts: name > 52
	ptsNameOver100 = 20 // Zeek anomalous-dns: > 90
	ptsLabelOver30 = 10 // median longest label iodine 32
	ptsLabelOver50 = 15 // dns2tcp 63, dnscat2 60
	ptsEntropy     = 15 // normalised entropy >= 0.85 on >= 20 bytes
	ptsHex         = 10 // dnscat2 hex labels
	ptsBase32      = 10 // iodine base32
	ptsBase64      = 15 // iodine/dns2tcp base64, mixed case
	ptsNonLDH      = 20 // 19% of iodine queries carry 8-bit bytes; dns2tcp '=' and '+'
	ptsTunnelType  = 30 // NULL and private types: iodine's default; Zeek blacklists 10 and 65399
	ptsLongTXT     = 5  // TXT/MX/CNAME with a name > 52
	entropyMin     = 0.85
	// lexCap caps what one query's own features add: a single query
	// never blocks without per-domain or per-client evidence
	// (DETECTION.md lesson 1). The Umbrella top 100k has names with 70
	// lexical points (a2z.com hash labels, canva-apps.cn test names).
	lexCap          = 40
	entropyMinBytes = 20

	// A prefix "looks encoded" when it carries a byte outside LDH or a
	// base32 or base64 label. Length and entropy do not count: the long
	// hyphenated names of clouds and CDNs have both (in the Umbrella top
	// 100k, 522 names under office.net and 327 under ezviz7.com score
	// long_name + long_label, none is encoded), and hex labels do not
	// either (a2z.com, conviva.com and r2.cloudflarestorage.com put hashes
	// in labels).

	// Per-domain state (DETECTION.md "Per-domain and per-client state").
	// Encoded unique prefixes per registered domain in the long window:
	// the tunnel evidence that accumulates over the short handshake and
	// keep-alive queries that per-query rules miss. The other per-domain
	// signals below count only once a domain has encTier1 encoded
	// prefixes: on their own they fire for every large domain of a
	// one-client replay of the Umbrella list. Calibrated on the replays:
	// the whole Umbrella top 100k has 1 encoded prefix (under cloud.com;
	// TestUmbrellaEncodedPrefixes), so 3 is far from benign traffic, while
	// the captured tunnel sessions reach block within their first 10
	// queries (dns2tcp at 5, dnscapy 7, iodine 9: TestTunnelSessions).
	encTier1, ptsEnc1 = 3, 10
	encTier2, ptsEnc2 = 10, 30
	encTier3, ptsEnc3 = 30, 45
	// Unique prefixes in the short window: >= 200 in 10 min (vendor
	// figure: normal 3-15 per 5 min, tunnels 200-50,000) adds 30, but
	// only with encoded prefixes beside them (a one-client replay of the
	// Umbrella list has 1,000+ unique names under google.com).
	uniqShortMin, ptsUniqShort = 200, 30
	// Information bits per day (Paxson et al. 2013: 4 kB/day); a unique
	// prefix carries its length x log2(distinct bytes) (DETECTION.md).
	bitsMin, ptsBits = 32768, 30
	// Unique-query ratio >= 0.9 over >= 50 queries (Nadler et al.).
	ratioMinQ, ptsUniqRatio = 50, 10
	// TXT + NULL + private >= 50% of >= 10 queries (Nadler non-IP ratio).
	nonIPMinQ, ptsNonIP = 10, 15
	// NXDOMAIN ratio > 0.3 with >= 20 unique prefixes (tunnels 40-80%).
	nxMinUniq, ptsNXRatio = 20, 10
	// Seen by <= 2 clients and >= 50 queries (RITA prevalence modifier).
	prevMinQ, ptsLowPrev = 50, 10

	// DGA character model (dga.go): the tier of the registered label.
	// Tier 3 alerts on its own (it counts with the per-query lexical
	// features under lexCap, so a label alone never blocks, newly seen
	// or not); its threshold keeps the held-out Umbrella labels and names
	// under 0.1% (TestDGAHeldOutBenign: 1 of 7,574 held-out labels). Tiers 1 and 2 (10% and 1% of benign
	// labels) alert only with the client evidence (ptsClientDGA).
	ptsDGA1, ptsDGA2, ptsDGA3 = 10, 15, 40
	// A client whose new domains kept looking machine-made (dga.go: a
	// lexical run >= evAlert) adds this to its new domains of tier 2 or
	// more (of tier 1 too after a run of evCap): with the tier's points,
	// an alert (under lexCap, never a block). On the labelled sample,
	// each family from its own client with NOERROR answers
	// (TestDGANoError), the average family has 66% of its names alert
	// (gozi, matsnu, nymaim and suppobox, dictionary DGAs, 0 to 3%).
	// Family-wise cross-validation of the tier-1 rule (families A and B
	// as in dga.go): without it A 59.0%, B 43.4%; with it A 75.0%, B
	// 55.5%: both halves choose it.
	ptsClientDGA = 30
	// A client with >= 10 distinct NXDOMAIN registered domains in the
	// short window is suspect (Antonakakis et al. 2012, Pleiades); its
	// queries for newly seen, unpopular domains that fit the profile of
	// its NXDOMAIN names add this when the odds of a DGA name outweigh
	// the share of benign domains that fit (shape.go: nxProfile,
	// suspectOdds). TestDGASample (three ways of replaying the sample),
	// TestDGAFamilySuspect and TestDGAInfectedBrowsing measure both sides.
	suspectNX, ptsSuspect = 10, 50
	// An NXDOMAIN answer to a suspect client for a new domain that fits
	// its profile reaches the alert threshold on its own (it never blocks:
	// the answer is already on its way).
	ptsNXAnswer = DefaultAlert
	// First seen by this resolver within the long window (RITA: first
	// seen <= 7 days, +15%).
	ptsNewlySeen = 10
)

// DefaultExempt are the suffixes exempt from scoring by default
// (DETECTION.md "Known false-positive sources"). Names under them, names
// with a label starting with '_' (service labels, DKIM, trust-anchor
// telemetry), PTR queries and single-label names are not scored.
var DefaultExempt = []string{
	// reverse zones and special-use names
	"arpa", "local", "localhost", "internal",
	"svc.cluster.local", "cluster.local",
	// antivirus and reputation lookups
	"sophosxl.net", "avqs.mcafee.com", "avts.mcafee.com", "gti.mcafee.com",
	// DNSBLs
	"zen.spamhaus.org", "sbl.spamhaus.org", "xbl.spamhaus.org", "pbl.spamhaus.org", "dbl.spamhaus.org",
	"zen.dq.spamhaus.net", "bl.spamcop.net", "b.barracudacentral.org", "multi.surbl.org",
	"multi.uribl.com", "dnsbl.sorbs.net", "cbl.abuseat.org",
	// CDNs and clouds
	"googlevideo.com", "gvt1.com", "gvt2.com", "cloudfront.net", "akamaiedge.net", "akamai.net",
	"akamaihd.net", "edgekey.net", "edgesuite.net", "trafficmanager.net", "azurefd.net",
	"azureedge.net", "amazonaws.com", "elb.amazonaws.com",
	// telemetry
	"events.data.microsoft.com", "push.apple.com", "ls.apple.com",
}

// exemptQuery reports whether a query is exempt by its type or a label of
// its lower-case name: PTR, or a label starting with '_'. Such a query is
// not scored, but a sticky verdict on its registered domain still blocks
// it: a tunnel must not get past its verdict by switching to PTR queries
// or a '_' label.
func exemptQuery(name []byte, qtype uint16) bool {
	if qtype == 12 { // PTR
		return true
	}
	if len(name) > 0 && name[0] == '_' {
		return true
	}
	return bytes.Contains(name, underscoreLabel)
}

// exempted reports whether the lower-case name is under an exempt suffix.
func (e *Engine) exempted(name []byte) bool {
	// Only suffixes of up to exemptLabels labels and exemptLen bytes can
	// match an exemption.
	labels := 0
	stop := len(name) - e.exemptLen - 1
	for i := len(name) - 1; i >= -1 && i >= stop && labels < e.exemptLabels; i-- {
		if i >= 0 && name[i] != '.' {
			continue
		}
		labels++
		if _, ok := e.exempt[string(name[i+1:])]; ok {
			return true
		}
	}
	return false
}

var underscoreLabel = []byte("._")

// Score scores one query and updates the engine's state. It does not
// allocate for a query that passes.
func (e *Engine) Score(q Query) Result {
	return e.score(q, true)
}

// Explain returns what Score would say, without changing any state.
func (e *Engine) Explain(q Query) Result {
	return e.score(q, false)
}

func (e *Engine) score(q Query, update bool) (res Result) {
	// Presentation names longer than 512 bytes (only possible with
	// \DDD escapes) are scored on their last 512 bytes.
	var buf [512]byte
	raw := q.Name
	if n := len(raw); n > 0 && raw[n-1] == '.' {
		raw = raw[:n-1]
	}
	if len(raw) > len(buf) {
		raw = raw[len(raw)-len(buf):]
	}
	res.name = raw // the offsets below are into raw
	lower := buf[:len(raw)]
	for i := 0; i < len(raw); i++ {
		lower[i] = lowerTab[raw[i]]
	}
	reg, suf := -1, 0
	if len(lower) > 0 {
		reg, suf = e.suffixes.registered(lower)
	}
	if reg < 0 || e.exempted(lower) {
		res.Exempt = true
		return res
	}
	res.domStart, res.domEnd = reg, len(raw)
	res.dkey = maphash.Bytes(e.seed, lower[reg:])
	now := e.now()

	if v, ok := e.verdicts.lookup(res.dkey, now, update); ok {
		res.Sticky, res.Action, res.Score = true, Block, int(v.score)
		res.topReason, res.detector = v.reason, v.detector
		return res
	}
	if exemptQuery(lower, q.Type) {
		return Result{Exempt: true}
	}
	res.scored = true

	var f Features
	prefixEnd := 0
	if reg > 0 {
		prefixEnd = reg - 1
	}
	lexical(raw, prefixEnd, &f)
	p := &res.points
	switch {
	case f.Len > 100:
		p[rLongName] = ptsNameOver100
	case f.Len > 52:
		p[rLongName] = ptsNameOver52
	}
	switch {
	case f.LongestLabel >= 50:
		p[rLongLabel] = ptsLabelOver50
	case f.LongestLabel >= 30:
		p[rLongLabel] = ptsLabelOver30
	}
	if f.PrefixLen >= entropyMinBytes && f.NormEntropy >= entropyMin {
		p[rEntropy] = ptsEntropy
	}
	switch f.Class {
	case ClassBase64:
		p[rEncoded] = ptsBase64
	case ClassBase32:
		p[rEncoded] = ptsBase32
	case ClassHex:
		p[rEncoded] = ptsHex
	}
	if f.NonLDH > 0 {
		p[rNonLDH] = ptsNonLDH
	}
	nonIP := false
	switch t := q.Type; {
	case t == 10 || (t >= 65280 && t <= 65534): // NULL, private use
		p[rTunnelType] = ptsTunnelType
		nonIP = true
	case t == 16: // TXT
		nonIP = true
		if f.Len > 52 {
			p[rLongTXT] = ptsLongTXT
		}
	case t == 15 || t == 5: // MX, CNAME
		if f.Len > 52 {
			p[rLongTXT] = ptsLongTXT
		}
	}

	// DGA model on the registered label.
	var dgaT uint8
	dgaScored := false
	res.sufStart = suf
	if suf-1 > reg {
		dgaT, dgaScored = dgaTier(lower[reg : suf-1])
	}

	sEpoch, lEpoch := now/e.sEpochLen, now/e.lEpochLen
	newName := false
	if f.PrefixLen > 0 {
		h := maphash.Bytes(e.seed, lower)
		if update {
			newName = e.names.add(h)
		}
	}
	var fresh bool // first seen within the long window
	if update {
		fresh = !e.seen.testAndAdd(res.dkey, lEpoch)
	} else {
		fresh = !e.seen.test(res.dkey)
	}

	// Per-domain state.
	res.ckey = clientKey(e.seed, q.Client)
	d, mu, created := e.domains.get(res.dkey, update, now)
	var st domainState
	if d != nil {
		d.roll(sEpoch, lEpoch)
		if update {
			if created && fresh {
				d.first = now
			}
			d.last = now
			d.lQ[0]++
			if nonIP {
				d.lNonIP[0]++
			}
			if newName {
				d.lUniq[0]++
				if d.sUniq[0] < 0xffff {
					d.sUniq[0]++
				}
				if f.NonLDH > 0 || f.Class == ClassBase64 || f.Class == ClassBase32 {
					d.lEnc[0]++
					if d.sEnc[0] < 0xffff {
						d.sEnc[0]++
					}
				}
				d.lBits[0] += uint32(float32(f.PrefixLen) * log2f(float32(f.Distinct)))
			}
			d.addClient(uint16(res.ckey>>48) | 1)
		}
		st = *d
	}
	mu.Unlock()
	if d != nil {
		enc := sum2(st.lEnc)
		switch {
		case enc >= encTier3:
			p[rEncodedPrefixes] = ptsEnc3
		case enc >= encTier2:
			p[rEncodedPrefixes] = ptsEnc2
		case enc >= encTier1:
			p[rEncodedPrefixes] = ptsEnc1
		}
		if enc >= encTier1 {
			if sum2s(st.sUniq) >= uniqShortMin {
				p[rUniquePrefixes] = ptsUniqShort
			}
			if sum2(st.lBits) >= bitsMin {
				p[rInfoBits] = ptsBits
			}
			qn, uq := sum2(st.lQ), sum2(st.lUniq)
			if qn >= ratioMinQ && uq*10 >= qn*9 {
				p[rUniqueRatio] = ptsUniqRatio
			}
			if qn >= nonIPMinQ && sum2(st.lNonIP)*2 >= qn {
				p[rNonIPTypes] = ptsNonIP
			}
			if resp := sum2(st.lResp); uq >= nxMinUniq && resp > 0 && sum2(st.lNX)*10 > resp*3 {
				p[rNXRatio] = ptsNXRatio
			}
			if qn >= prevMinQ && st.nClients <= 2 {
				p[rLowPrevalence] = ptsLowPrev
			}
		}
	}
	newlySeen := fresh || (d != nil && st.first != 0 && now-st.first < e.lEpochLen)
	if newlySeen {
		p[rNewlySeen] = ptsNewlySeen
	}
	if dgaScored {
		p[rDGALabel] = [4]uint8{0, ptsDGA1, ptsDGA2, ptsDGA3}[dgaT]
	}
	// Per-client state: a suspect client's queries for newly seen,
	// unpopular domains that fit its NXDOMAIN profile, when the evidence
	// outweighs the chance that a benign name fits (shape.go).
	res.cand = newlySeen && (d == nil || st.nClients <= 2) && res.ckey != 0 && suf-1 > reg
	if res.cand && dgaScored {
		res.dgaTier = dgaT + 1
		delta := 0
		if update && fresh {
			delta = evTier[dgaT]
		}
		if lex, _ := e.dgaEv.add(res.ckey, delta, 0, now, e.sEpochLen); (lex >= evAlert && dgaT >= 2) || (lex >= evCap && dgaT >= 1) {
			p[rClientDGA] = ptsClientDGA
		}
	}
	if res.cand {
		c, cmu := e.clients.get(res.ckey, false, now)
		if c != nil && c.suspect > now {
			sh := e.shape(lower[reg:suf-1], lower[suf:])
			if c.profile.matches(sh) && c.odds(sEpoch) >= suspectOdds*c.profile.benignShare() {
				p[rClientNXBurst] = ptsSuspect
			}
		}
		cmu.Unlock()
	}
	e.decide(&res, update, now)
	return res
}

// shape returns the shape of a lower-case registered label under the
// lower-case public suffix suf.
func (e *Engine) shape(label, suf []byte) labelShape {
	s := shapeOf(label)
	if s.ok {
		s.suffix = uint16(maphash.Bytes(e.seed, suf))
		s.sufP = sufShare(suf)
	}
	return s
}

// decide adds up res.points into the score, the top reason, the detector
// and the action, and makes a block verdict sticky.
func (e *Engine) decide(res *Result, update bool, now uint32) {
	p := &res.points

	// Detector switches.
	for i := range p {
		det := reasonDetector[i]
		if (det == 0 && e.cfg.NoTunnel) || (det == 1 && e.cfg.NoDGA) || (det == 2 && e.cfg.NoNewlySeen) {
			p[i] = 0
		}
	}
	total, lex := 0, 0
	var perDet [3]int
	best := -1
	for i, v := range p {
		if v == 0 {
			continue
		}
		if i < int(rEncodedPrefixes) || i == int(rDGALabel) || i == int(rClientDGA) {
			// The DGA label and the client's run of DGA-like labels
			// are per-query lexical evidence too: they alert but
			// never block on their own (lexCap + ptsNewlySeen < Block).
			lex += int(v)
		} else {
			total += int(v)
		}
		perDet[reasonDetector[i]] += int(v)
		if best < 0 || v > p[best] {
			best = i
		}
	}
	if lex > lexCap {
		lex = lexCap
	}
	total += lex
	// Newly seen alone is context, not a detection: it never decides.
	if total == int(p[rNewlySeen]) {
		total = 0
	}
	if total > 100 {
		total = 100
	}
	res.Score = total
	if best >= 0 {
		res.topReason = uint8(best)
	}
	res.detector = 0
	if perDet[1] > perDet[0] {
		res.detector = 1
	}
	switch {
	case total >= e.cfg.Block:
		res.Action = Block
	case total >= e.cfg.Alert:
		res.Action = Alert
	}
	if res.Action == Block && update {
		e.verdicts.put(verdict{
			key: res.dkey, until: now + e.sticky, score: uint8(total),
			reason: res.topReason, detector: res.detector,
		}, now)
	}
}

// ObserveResponse feeds the upstream's rcode for a query that Score
// passed or alerted on: NXDOMAIN ratios per domain, and per client the
// burst of NXDOMAINs for distinct new domains and the NOERROR answers for
// new domains. An NXDOMAIN answer to a suspect client for a new domain
// that fits its profile is itself evidence: it adds ptsNXAnswer to res and
// may raise it to an alert (never to a block: the answer is on its way).
// So does an NXDOMAIN answer to a client whose NXDOMAIN and DGA-label
// evidence adds up (dga.go), as client_dga_names.
// It returns true when res became an alert.
func (e *Engine) ObserveResponse(res *Result, rcode int) bool {
	if !res.scored || res.dkey == 0 {
		return false
	}
	now := e.now()
	sEpoch, lEpoch := now/e.sEpochLen, now/e.lEpochLen
	nx := rcode == 3
	d, mu, _ := e.domains.get(res.dkey, false, now)
	if d != nil {
		d.roll(sEpoch, lEpoch)
		d.lResp[0]++
		if nx {
			d.lNX[0]++
		}
	}
	mu.Unlock()
	if !res.cand || (!nx && rcode != 0) {
		return false
	}
	if !nx {
		// A NOERROR answer for a new domain lowers the client's
		// NXDOMAIN evidence (dga.go).
		e.dgaEv.add(res.ckey, 0, -evOK, now, e.sEpochLen)
	}
	// The shape is computed before the lock.
	var sh labelShape
	if nx {
		var buf [256]byte
		reg, suf := res.domStart, res.sufStart
		// res.name is the name as scored (no trailing dot); the offsets
		// are into it.
		if reg >= 0 && suf-1 > reg && suf <= len(res.name) && len(res.name)-reg <= len(buf) {
			lower := buf[:0]
			for i := reg; i < len(res.name); i++ {
				lower = append(lower, lowerTab[res.name[i]])
			}
			sh = e.shape(lower[:suf-1-reg], lower[suf-reg:])
		}
	}
	// Only an NXDOMAIN makes a client entry: benign clients take no room.
	c, cmu := e.clients.get(res.ckey, nx, now)
	if c == nil {
		cmu.Unlock()
		return false
	}
	c.roll(sEpoch)
	c.last = now
	if !nx {
		if c.ok[0] < 0xffff {
			c.ok[0]++
		}
		cmu.Unlock()
		return false
	}
	// The bitmap fills after a few dozen domains; the profile takes every
	// new domain's NXDOMAIN (up to 255 of them).
	alert := c.suspect > now && c.profile.matches(sh)
	c.profile.add(sh)
	bit := uint64(1) << (res.dkey >> 32 & 63)
	newNX := (c.nx[0]|c.nx[1])&bit == 0
	c.nx[0] |= bit
	// NXDOMAINs must also outnumber the NOERROR answers for new domains
	// (odds >= 1): a benign client with 5% of its new domains failing
	// reaches 10 of them in a busy window, but never these odds
	// (TestDGAHeldOutBenign; it alerted on 4.4% of the held-out Umbrella
	// names before).
	if distinct64(c.nx[0]|c.nx[1]) >= suspectNX && c.odds(sEpoch) >= 1 {
		c.suspect = now + e.sEpochLen
	}
	cmu.Unlock()
	// The client's NXDOMAIN evidence (dga.go): a distinct new domain's
	// NXDOMAIN adds to it; at evAlert the answer alerts.
	dNX := 0
	if newNX {
		dNX = evNX
	}
	// At least two failed domains, and with the run of DGA-like labels
	// at least evAlert in all.
	lexEv, nxEv := e.dgaEv.add(res.ckey, 0, dNX, now, e.sEpochLen)
	dgaAlert := nxEv >= 2*evNX && nxEv+lexEv >= evAlert
	if (!alert && !dgaAlert) || e.cfg.NoDGA {
		return false
	}
	was := res.Action
	if alert {
		res.points[rClientNXBurst] = ptsNXAnswer
	} else {
		res.points[rClientDGA] = ptsNXAnswer
	}
	e.decide(res, false, now)
	if res.Action == Block {
		res.Action = Alert
	}
	return was == Pass && res.Action == Alert
}

// distinct64 estimates the distinct keys behind a 64-bit bitmap by linear
// counting: -m ln(empty/m).
func distinct64(b uint64) int {
	set := bits.OnesCount64(b)
	switch {
	case set == 0:
		return 0
	case set >= 63:
		return 200
	}
	return int(-64*math.Log(1-float64(set)/64) + 0.5)
}

// lowerTab maps ASCII upper case to lower case and every other byte to
// itself.
var lowerTab = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
		if 'A' <= i && i <= 'Z' {
			t[i] = byte(i + 'a' - 'A')
		}
	}
	return
}()

// clientKey hashes a client address: IPv4 /32, IPv6 /64.
func clientKey(seed maphash.Seed, a netip.Addr) uint64 {
	if !a.IsValid() {
		return 0
	}
	a = a.Unmap()
	b := a.As16()
	n := 16
	if a.Is6() {
		n = 8
	}
	k := maphash.Bytes(seed, b[:n])
	if k == 0 {
		k = 1
	}
	return k
}

// Unblock removes a sticky verdict on a registered domain.
func (e *Engine) Unblock(domain string) bool {
	d := strings.TrimSuffix(strings.ToLower(domain), ".")
	return e.verdicts.remove(maphash.String(e.seed, d))
}
