package score

import "sync/atomic"

//go:generate go test -run ^TestGenerateBigrams$ -generate
//go:generate go test -run ^TestGenerateTrigrams$ -generate

// The character models of registered labels. The DGA detector uses the
// trigram model (trigramSurprise, dgaTier, below); the suspect-client
// profile (shape.go) keeps the bigram model's cost.
//
// The bigram model of registered labels (the label
// left of the public suffix), trained on the registered labels of the
// Cisco Umbrella top 100k (benign_umbrella_top100k_fqdn, read through
// internal/corpus; the corpus itself is not in the repository). Only the
// table of numbers is: bigramCost in dga_table.go, written by
// TestGenerateBigrams when run with -generate (go generate ./plugin/shield/score).
//
// The symbols are a-z, 0-9, '-' and the label boundary. bigramCost[a*nSym+b]
// is -log2 P(b | a) in sixteenths of a bit, add-one smoothed, capped at
// 255. A label's cost is the mean over its transitions, boundaries
// included: high means unlike popular names.

const nSym = 38 // a-z, 0-9, '-', boundary

func symbol(c byte) int {
	switch {
	case 'a' <= c && c <= 'z':
		return int(c - 'a')
	case '0' <= c && c <= '9':
		return 26 + int(c-'0')
	case c == '-':
		return 36
	}
	return -1
}

const boundary = nSym - 1

// minDGALabel is the length gate of the DGA model: shorter labels are not
// scored (DETECTION.md lesson 3: only labels of 8 or more characters keep
// the false positives near 0.1%).
const minDGALabel = 8

// labelCost returns the mean bigram cost of label in bits per transition,
// and false when a byte is outside a-z0-9-.
func labelCost(label []byte) (float32, bool) {
	if len(label) == 0 {
		return 0, false
	}
	prev := boundary
	sum := 0
	for _, c := range label {
		s := symbol(c)
		if s < 0 {
			return 0, false
		}
		sum += int(bigramCost[prev*nSym+s])
		prev = s
	}
	sum += int(bigramCost[prev*nSym+boundary])
	return float32(sum) / 16 / float32(len(label)+1), true
}

// The DGA model: an interpolated Kneser-Ney trigram model of registered
// labels (trigramCost in dga_model_table.go, written by
// TestGenerateTrigrams from the training half of the Umbrella labels).
//
// A label's surprise is the sum over its transitions, boundaries
// included, of the cost of the transition minus surpriseBase, each cost
// capped at surpriseCap (so one odd spot, or a run such as "goooo...gle",
// does not decide alone). A random label of letters costs about 5.5 bits
// per transition under the model and a word about 3.5, so the surprise
// grows with the length of a random label and falls with that of a word:
// long random labels stand out more surely than short ones.
//
// The statistic was chosen on the labelled DGA sample with family-wise
// cross-validation (the experiments of commit a31489c, dgaexp_test.go,
// TestDGAExp2: thresholds from the benign training half alone; families
// split by their order in the file, A = 1st, 3rd, ... and B = 2nd, 4th,
// ...). Share of the names of the average family at the top tier alone:
//
//	statistic                    A      B
//	mean cost per transition   12.8%   8.3%
//	surprise over 3.5 bits     33.5%  13.2%
//	surprise over 4 bits       34.2%  15.2%
//	surprise over 4.5 bits     33.0%  15.4%
//
// A picks 4 bits (15.2% on B), B picks 4.5 (33.0% on A); 4 is used.
const (
	surpriseBase = 4 * 16 // sixteenths of a bit
	surpriseCap  = 9 * 16
)

// trigramSurprise returns the surprise of a lower-case label in
// sixteenths of a bit and its class: 0 for letters only, 1 with a digit or
// a hyphen. The classes have their own thresholds: benign hash-like labels
// mix in digits (the tail of the Umbrella labels), while most DGA families
// use letters only. ok is false for a byte outside a-z, 0-9 and '-'.
func trigramSurprise(label []byte) (sum int32, class int, ok bool) {
	a, b := boundary, boundary
	for _, ch := range label {
		c := symbol(ch)
		if c < 0 {
			return 0, 0, false
		}
		if c >= 26 {
			class = 1
		}
		sum += int32(min(trigramCost[(a*nSym+b)*nSym+c], surpriseCap)) - surpriseBase
		a, b = b, c
	}
	return sum + int32(min(trigramCost[(a*nSym+b)*nSym+boundary], surpriseCap)) - surpriseBase, class, true
}

// labelClass returns the class of a label of a-z, 0-9 and '-' (see
// trigramSurprise).
func labelClass(label []byte) int {
	for _, c := range label {
		if c < 'a' || c > 'z' {
			return 1
		}
	}
	return 0
}

// dgaTier returns the tier of a lower-case registered label: 0 below the
// 10% quantile of the benign labels of its class, 1, 2 and 3 at or above
// the 10% and 1% quantiles and the top-tier threshold (dgaTiers). ok is
// false when the label is not scored: shorter than minDGALabel, or a byte
// outside a-z, 0-9 and '-'.
func dgaTier(label []byte) (tier uint8, ok bool) {
	if len(label) < minDGALabel {
		return 0, false
	}
	s, class, ok := trigramSurprise(label)
	if !ok {
		return 0, false
	}
	th := &dgaTiers[class]
	for tier < 3 && s >= th[tier] {
		tier++
	}
	return tier, true
}

// The client side of the DGA detector: a client whose new domains keep
// looking machine-made, or keep failing. Each client (IPv4 /32, IPv6 /64)
// has two evidence counts, sums of log-likelihood ratios (in nats,
// rounded) of "this client runs a DGA" against "this client is benign",
// counted over the registered domains it is the first to ask for (newly
// seen, unpopular):
//
//   - the lexical run: each new domain with a scored label adds
//     evTier[tier]. A benign label lands in tiers 1, 2 and 3 with
//     probability 0.09, 0.009 and under 0.001 (the tier quantiles); a DGA
//     label of no known family is taken to land in each with probability
//     about 1/3: ln(0.33/0.09) = 1.3, ln(0.33/0.009) = 3.6, ln(0.33/0.001)
//     = 5.8. A label below tier 1 (most benign labels) ends the run: the
//     count starts again from 0. A client whose run reaches evAlert is
//     asking for machine-made names one after another: its new domains of
//     tier 2 or more add ptsClientDGA (an alert), and once the run reaches
//     evCap (20 names of tier 1 in a row, or fewer stronger ones) its new
//     domains of tier 1 too: DGAs of letters and digits (corebot, qadars,
//     rovnix) sit mostly in tier 1, where hash-like benign labels are
//     (TestDGANoError; chosen with family-wise cross-validation, see
//     ptsClientDGA). Ending the run at the first ordinary name keeps most
//     of an infected host's own browsing, mixed in with its DGA names,
//     from alerting (TestDGASample/one: 0.8%).
//   - the NXDOMAIN count, a CUSUM: each NXDOMAIN for a distinct new domain
//     adds evNX = ln(1/0.05) = 3.0 (a DGA client's new domains mostly fail,
//     a benign client's rarely: typos and search-domain misses, taken as
//     5%), each NOERROR answer for a new domain takes evOK = 1 away (a
//     benign client's drift is 0.05 x 3 - 0.95 = -0.8 per new domain),
//     never below 0. At evAlert an NXDOMAIN answer for a new domain
//     alerts (ObserveResponse): a dictionary DGA, whose labels look
//     benign, is flagged by its 4th failed domain.
//
// Both are at most evCap. The false-alarm rate of such a count with
// threshold h and negative drift is about e^-h per new domain: e^-10, one
// in 22,000. Measured with TestDGAEvidence and shieldctl eval.
var evTier = [4]int{-evCap, 1, 4, 6}

const (
	evNX    = 3
	evOK    = 1
	evAlert = 10
	evCap   = 20
)

// dgaEvidence is a direct-mapped table of per-client evidence: a 32-bit
// client fingerprint, the lexical run and the NXDOMAIN count (8 bits
// each) and the engine second of the last update (16 bits), in one atomic
// word. A collision replaces the other client's evidence only when it
// adds evidence; evidence older than one short window counts as 0.
type dgaEvidence struct {
	slots []atomic.Uint64
	mask  uint64
}

// dgaEvidenceSlots is the size of the table: 65,536 words, 512 KiB, as
// many as the client table has entries.
const dgaEvidenceSlots = 1 << 16

func newDGAEvidence(n int) *dgaEvidence {
	return &dgaEvidence{slots: make([]atomic.Uint64, n), mask: uint64(n - 1)}
}

// add adds dLex to the lexical run and dNX to the NXDOMAIN count of client
// key at engine second now, and returns both; with both deltas 0 it only
// reads them. window is the short window in seconds.
func (t *dgaEvidence) add(key uint64, dLex, dNX int, now, window uint32) (lex, nx int) {
	slot := &t.slots[key&t.mask]
	fp := key>>32 | 1
	window = min(window, 0xffff)
	for {
		old := slot.Load()
		lex, nx = 0, 0
		if old>>32 == fp && (now-uint32(old))&0xffff <= window {
			lex, nx = int(old>>24&0xff), int(old>>16&0xff)
		}
		if (dLex == 0 && dNX == 0) || (lex == 0 && nx == 0 && dLex <= 0 && dNX <= 0) {
			return lex, nx
		}
		lex = min(max(lex+dLex, 0), evCap)
		nx = min(max(nx+dNX, 0), evCap)
		if slot.CompareAndSwap(old, fp<<32|uint64(lex)<<24|uint64(nx)<<16|uint64(now&0xffff)) {
			return lex, nx
		}
	}
}
