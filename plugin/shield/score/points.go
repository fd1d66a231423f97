package score

// Detector names, for switches, metrics and the escalation hook.
const (
	DetTunnel    = "tunnel"
	DetDGA       = "dga"
	DetNewlySeen = "newly_seen"
)

// Reason identifiers. Each belongs to one detector.
const (
	reasonLongName uint8 = iota
	reasonLongLabel
	reasonEntropy
	reasonEncoded
	reasonNonLDH
	reasonTunnelType
	reasonLongTXT
	reasonEncodedPrefixes
	reasonUniquePrefixes
	reasonInfoBits
	reasonUniqueRatio
	reasonNonIPTypes
	reasonNXRatio
	reasonLowPrevalence
	reasonDGALabel
	reasonClientNXBurst
	reasonNewlySeen
	reasonClientDGA
	reasonRandomPrefixes
	reasonHourBits
	reasonClientInfoBits
	reasonParentInfoBits
	nReasons
)

var reasonNames = [nReasons]string{
	"long_name", "long_label", "high_entropy", "encoded_label", "non_ldh_bytes", "tunnel_qtype",
	"long_txt", "encoded_prefixes", "unique_prefixes", "info_bits", "unique_ratio", "non_ip_types",
	"nxdomain_ratio", "low_prevalence", "dga_label", "client_nx_burst", "newly_seen",
	"client_dga_names",
	"random_prefixes", "hour_info_bits", "client_info_bits", "parent_info_bits",
}

var reasonDetector = [nReasons]uint8{
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 1,
	0, 0, 0, 0,
}

var detectorNames = [3]string{DetTunnel, DetDGA, DetNewlySeen}

// ReasonNames lists every reason the engine gives, for documentation.
func ReasonNames() []string { return append([]string(nil), reasonNames[:]...) }

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
	ptsBase36      = 5  // random lower-case identifiers: weak alone (64 names under 21 domains of the Umbrella top 100k)
	ptsNonLDH      = 20 // 19% of iodine queries carry 8-bit bytes; dns2tcp '=' and '+'
	ptsTunnelType  = 30 // NULL and private types: iodine's default; Zeek blacklists 10 and 65399
	ptsLongTXT     = 5  // TXT/MX/CNAME with a name > 52
	entropyMin     = 0.85
	// lexCap caps what one query's own features add: a single query
	// never blocks without per-domain or per-client evidence
	// (DETECTION.md lesson 1). The Umbrella top 100k has names with 70
	// lexical points (a2z.com hash labels, canva-apps.cn test names).
	lexCap = 40
	// tunnelLexCap caps the tunnel's per-query reasons (lexicalPoints): a
	// single query's encoding never alerts on its own either, even on a
	// domain first seen today (+ ptsNewlySeen). At 40, 106 names of the
	// Umbrella top 100k alerted on their own features (0.106%), and 917
	// (0.917%) with newly_seen (TestBenignHalves).
	tunnelLexCap    = DefaultAlert - ptsNewlySeen - 1
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
	//
	// The same tiers apply to the random-looking names of a non-address
	// type that one client sends under the domain (random_prefixes: hex
	// and base36 labels as dnscat2 sends them in TXT, MX and CNAME
	// queries, high-entropy labels). Per client, because hash-named CDN
	// and telemetry labels come from many clients a few each; of a
	// non-address type, because the one-client replay of the Umbrella top
	// 100k asks 51 hex names under a2z.com, 27 under conviva.com, all of
	// them A queries. The tier at 6 lets a dnscat2-style session that
	// opens with long queries block within 10 (TestDnscat2Style).
	weakMaxClients      = 2
	encTier1, ptsEnc1   = 3, 10
	encTier15, ptsEnc15 = 6, 20
	encTier2, ptsEnc2   = 10, 30
	encTier3, ptsEnc3   = 30, 45
	// Unique prefixes in the short window: >= 200 in 10 min (vendor
	// figure: normal 3-15 per 5 min, tunnels 200-50,000) adds 30, but
	// only with encoded prefixes beside them (a one-client replay of the
	// Umbrella list has 1,000+ unique names under google.com).
	uniqShortMin, ptsUniqShort = 200, 30
	// Information bits per day (Paxson et al. 2013: 4 kB/day); a unique
	// prefix carries its length x log2(distinct bytes) (DETECTION.md).
	bitsMin, ptsBits = 32768, 30
	// Unique-query ratio >= 0.9 (Nadler et al.; real tools measure 1.00)
	// over >= 6 queries: behind the evidence gate it needs no more volume
	// than the tier at 6 (DETECTION.md started at 50). With the non-IP
	// ratio it lets a dnscat2-style session block at its 6th query
	// instead of its 10th (TestDnscat2Style).
	ratioMinQ, ptsUniqRatio = encTier15, 10
	// Non-address types (TXT, NULL, private, MX, CNAME, ...) >= 50% of >=
	// 6 queries (Nadler non-IP ratio; started at 10).
	nonIPMinQ, ptsNonIP = encTier15, 15
	// NXDOMAIN ratio > 0.3 with >= 20 unique prefixes (tunnels 40-80%).
	nxMinUniq, ptsNXRatio = 20, 10
	// Information budget per registered domain over budgetWindow, per
	// client: the bits (length x log2 distinct bytes, DETECTION.md) of the
	// random-looking new names one client sent under it. It needs no
	// other evidence, so it catches a slow tunnel whatever its alphabet:
	// at 1 query every 5 s (720 an hour) of 100 bits each, tier 1 after
	// 328 queries (27 minutes); measured, 32 hex characters in A queries
	// block after 18 minutes, 24 base36 characters after 24
	// (TestSlowTunnel). Paxson et al. 2013 allow 4 kB a day per domain;
	// the one-client replay of the Umbrella top 100k (all of it within 35
	// minutes) has at most 19,650 bits from one client under one domain,
	// a2z.com (TestUmbrellaHourBits).
	budgetWindow            = 3600 // engine seconds
	hourBits1, ptsHourBits1 = 32768, 25
	hourBits2, ptsHourBits2 = 65536, 40
	// Per-client information budget across registered domains, and per
	// parent (a private-section public suffix such as duckdns.org, whose
	// tenants are registered domains of their own): the bits of encoded
	// new names (encoded()) in the budget window. A tunnel spread one
	// query per domain never builds per-domain evidence; the Umbrella top
	// 100k as one client has one encoded name in all.
	clientBits1, ptsClientBits1 = 2048, 20
	clientBits2, ptsClientBits2 = 4096, 35
	// Seen by <= 2 clients and >= 50 queries (RITA prevalence modifier).
	prevMinQ, ptsLowPrev = 50, 10

	// DGA character model (dga.go): the tier of the registered label.
	// Tier 3 alerts on its own (it counts with the per-query lexical
	// features under lexCap, so a label alone never blocks, newly seen
	// or not); its threshold keeps the held-out Umbrella labels and
	// names under 0.1% (TestDGAHeldOutBenign: 1 of 7,574 held-out
	// labels). Tiers 1 and 2 (10% and 1% of benign labels) alert only
	// with the client evidence (ptsClientDGA).
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
