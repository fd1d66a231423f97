package score

//go:generate go test -run ^TestGenerateShapes$ -generate

// The suspect-client rule. A client with a burst of NXDOMAIN answers for
// many distinct new domains is suspect (Antonakakis et al. 2012,
// Pleiades). Its NXDOMAIN names are summarised in an nxProfile: the
// length, alphabet, vowel and consonant pattern, character-model cost and
// public suffixes of their registered labels. Two things follow:
//
//   - an NXDOMAIN answer to a suspect client for a new domain that fits
//     the profile alerts (ObserveResponse): the answer is itself evidence;
//   - a suspect client's query for a new domain that fits the profile is
//     blocked only when the evidence outweighs the chance that a benign
//     name fits it (suspectOdds): the odds that the client's next new
//     domain is a DGA name, (distinct NXDOMAIN domains + 1) / (NOERROR
//     answers for new domains + 1) in the short window, divided by the
//     share of benign registered domains that fit the profile
//     (benignShare, from the marginal tables of shape_table.go).
//
// A host that runs one DGA family and nothing else has a narrow profile
// and odds of 20:1 or more: the family's next resolvable domain is
// blocked. A host that also browses has its odds cut by every name that
// resolves, and a burst of mixed families has a wide profile that most
// benign names fit: those alert on their NXDOMAINs but do not block its
// browsing.

// labelShape describes a registered label (the label left of the public
// suffix) for the suspect-client rule.
type labelShape struct {
	ok     bool   // a label of a-z, 0-9 and '-' only (it has a cost)
	len    uint8  // bytes, saturating
	digits uint8  // digits, saturating
	hyphen bool   // a '-'
	vowels uint8  // share of its letters that are a, e, i, o or u, in 64ths
	alt    uint8  // share of adjacent letters that switch between consonant and vowel (y a vowel), in 64ths
	run    uint8  // longest run of consonants (y a vowel), saturating at 63
	cost   uint16 // character-model cost, sixteenths of a bit per transition
	suffix uint16 // fingerprint of the public suffix
	sufP   uint16 // share of benign registered domains under the public suffix, in 65536ths
}

// vowelClass: 1 for a e i o u, 2 for y, 0 otherwise.
var vowelClass = func() (t [256]uint8) {
	for _, c := range "aeiou" {
		t[c] = 1
	}
	t['y'] = 2
	return
}()

// shapeOf computes the shape of a lower-case registered label, without
// its suffix fields.
func shapeOf(label []byte) (s labelShape) {
	if len(label) == 0 || len(label) > 255 {
		return s
	}
	c, ok := labelCost(label)
	if !ok {
		return s
	}
	s.ok = true
	s.len = uint8(len(label))
	s.cost = uint16(min(c*16, 65535))
	letters, vowels, switches, run := 0, 0, 0, 0
	prevVowel := false
	for _, b := range label {
		switch {
		case 'a' <= b && b <= 'z':
			vc := vowelClass[b]
			isV := vc != 0
			if vc == 1 {
				vowels++
			}
			if letters > 0 && isV != prevVowel {
				switches++
			}
			prevVowel = isV
			letters++
			if isV {
				run = 0
			} else {
				run++
				if run > int(s.run) && run < 64 {
					s.run = uint8(run)
				}
			}
		case '0' <= b && b <= '9':
			if s.digits < 255 {
				s.digits++
			}
			run = 0
		default: // '-'
			s.hyphen = true
			run = 0
		}
	}
	if letters > 0 {
		s.vowels = uint8(vowels * 64 / letters)
	}
	if letters > 1 {
		s.alt = uint8(switches * 64 / (letters - 1))
	}
	return s
}

// sufShare returns the share of benign registered domains under the
// public suffix suf (lower case, no trailing dot), in 65536ths. A suffix
// outside the table gets the share of shapeSufMin domains.
func sufShare(suf []byte) uint16 {
	n, ok := shapeSuffixes[string(suf)]
	if !ok || n < shapeSufMin {
		n = shapeSufMin
	}
	return uint16(min(uint64(n)*65536/shapeN, 65535))
}

// Tolerances of the profile: how far outside the range of the NXDOMAIN
// names a new name may fall and still fit: the fixed amount below plus
// half the range. Twenty names rarely show a family's extremes: for
// a value spread evenly over a range, the next one falls outside the
// range of 20 with probability 2/21 per measure. Set on the labelled DGA
// sample (TestDGAFamilySuspect, which replays 8 disjoint windows of 21
// names per family): with the fixed amounts alone, 16 of the 200 next
// names fell outside their profile (alternation and vowels most often),
// plus a quarter of the range 14, plus half of it 4 or 5.
// Wider profiles also fit more benign names, which benignShare weighs.
const (
	tolLen    = 2 // bytes
	tolVowels = 6 // 64ths, about 0.1
	tolAlt    = 6 // 64ths, about 0.1
	tolRun    = 1 // consonants
	tolCost   = 8 // sixteenths of a bit: half a bit per transition
)

// nxProfile summarises the distinct registered domains a client got
// NXDOMAIN for in the short window. It is reset when a whole window passes
// without one.
type nxProfile struct {
	n, digits, hyphens uint8 // names profiled (saturating), names with digits, with a hyphen
	minLen, maxLen     uint8
	maxDigits          uint8
	minVow, maxVow     uint8
	minAlt, maxAlt     uint8
	minRun, maxRun     uint8
	minCost, maxCost   uint16
	suf                [4]uint16 // the first four suffixes
	sufN               [4]uint8  // names under each
	sufP               [4]uint16 // their benign shares
}

func (p *nxProfile) add(s labelShape) {
	if p.n == 255 || !s.ok {
		return
	}
	if p.n == 0 {
		p.minLen, p.maxLen = s.len, s.len
		p.minVow, p.maxVow = s.vowels, s.vowels
		p.minAlt, p.maxAlt = s.alt, s.alt
		p.minRun, p.maxRun = s.run, s.run
		p.minCost, p.maxCost = s.cost, s.cost
	}
	p.minLen, p.maxLen = min(p.minLen, s.len), max(p.maxLen, s.len)
	p.minVow, p.maxVow = min(p.minVow, s.vowels), max(p.maxVow, s.vowels)
	p.minAlt, p.maxAlt = min(p.minAlt, s.alt), max(p.maxAlt, s.alt)
	p.minRun, p.maxRun = min(p.minRun, s.run), max(p.maxRun, s.run)
	p.minCost, p.maxCost = min(p.minCost, s.cost), max(p.maxCost, s.cost)
	p.maxDigits = max(p.maxDigits, s.digits)
	p.n++
	if s.digits > 0 {
		p.digits++
	}
	if s.hyphen {
		p.hyphens++
	}
	for i := range p.suf {
		if p.sufN[i] > 0 && p.suf[i] == s.suffix {
			if p.sufN[i] < 255 {
				p.sufN[i]++
			}
			return
		}
	}
	for i := range p.suf {
		if p.sufN[i] == 0 {
			p.suf[i], p.sufN[i], p.sufP[i] = s.suffix, 1, s.sufP
			return
		}
	}
}

// trait says whether a trait shared by k of the n names is required (most
// have it), forbidden (few have it) or free.
func trait(k, n uint8) (required, forbidden bool) {
	return int(k)*5 >= int(n)*4, int(k)*5 <= int(n)
}

// suffixBound reports whether four suffixes hold >= 90% of the names: then
// a new name must be under one of them.
func (p *nxProfile) suffixBound() bool {
	covered := 0
	for _, c := range p.sufN {
		covered += int(c)
	}
	return covered*10 >= int(p.n)*9
}

// span is an inclusive range of a measure.
type span struct{ lo, hi int }

// widen returns the range lo..hi widened by tol plus half of it.
func widen[T uint8 | uint16](lo, hi T, tol int) span {
	w := tol + (int(hi)-int(lo))/2
	return span{int(lo) - w, int(hi) + w}
}

func (r span) has(v int) bool { return r.lo <= v && v <= r.hi }

// spans returns the widened ranges of the profile: length, vowels,
// alternation, consonant run; the lowest cost; the most digits.
func (p *nxProfile) spans() (l, v, a, r span, cost, digits int) {
	return widen(p.minLen, p.maxLen, tolLen), widen(p.minVow, p.maxVow, tolVowels),
		widen(p.minAlt, p.maxAlt, tolAlt), widen(p.minRun, p.maxRun, tolRun),
		widen(p.minCost, p.maxCost, tolCost).lo, int(p.maxDigits) + 1 + int(p.maxDigits)/4
}

// matches reports whether s fits the profile.
func (p *nxProfile) matches(s labelShape) bool {
	if p.n == 0 || !s.ok {
		return false
	}
	l, v, a, r, cost, digits := p.spans()
	if !l.has(int(s.len)) || !v.has(int(s.vowels)) || !a.has(int(s.alt)) || !r.has(int(s.run)) ||
		int(s.cost) < cost || int(s.digits) > digits {
		return false
	}
	for _, t := range [2]struct {
		k   uint8
		has bool
	}{{p.digits, s.digits > 0}, {p.hyphens, s.hyphen}} {
		req, forb := trait(t.k, p.n)
		if (req && !t.has) || (forb && t.has) {
			return false
		}
	}
	if p.suffixBound() {
		for i, f := range p.suf {
			if p.sufN[i] > 0 && f == s.suffix {
				return true
			}
		}
		return false
	}
	return true
}

// cdfShare is the share of the shapeN benign labels whose value lies in
// [lo, hi] by the cumulative table cum (cum[v] counts the values below v).
func cdfShare(cum []uint32, lo, hi int) float64 {
	lo = max(lo, 0)
	hi = min(hi, len(cum)-2)
	if hi < lo {
		return 0
	}
	return float64(cum[hi+1]-cum[lo]) / float64(shapeN)
}

// benignShare estimates the share of benign registered domains that fit
// the profile, as the product of the shares that fit each of its bounds
// (the marginal tables of shape_table.go, taken as independent). The
// bounds are correlated (cost with vowels and consonant runs), so this
// underestimates; suspectOdds is set with that in mind.
func (p *nxProfile) benignShare() float64 {
	if p.n == 0 {
		return 1
	}
	l, v, a, r, cost, _ := p.spans()
	s := cdfShare(shapeLenCum[:], l.lo, l.hi) * cdfShare(shapeVowCum[:], v.lo, v.hi) *
		cdfShare(shapeAltCum[:], a.lo, a.hi) * cdfShare(shapeRunCum[:], r.lo, r.hi) *
		cdfShare(shapeCostCum[:], cost, len(shapeCostCum))
	for _, t := range [2]struct{ k, with uint64 }{{uint64(p.digits), shapeDigits}, {uint64(p.hyphens), shapeHyphens}} {
		req, forb := trait(uint8(t.k), p.n)
		share := float64(t.with) / float64(shapeN)
		switch {
		case req:
			s *= share
		case forb:
			s *= 1 - share
		}
	}
	if p.suffixBound() {
		sum := 0.0
		for i := range p.suf {
			if p.sufN[i] > 0 {
				sum += float64(p.sufP[i]) / 65536
			}
		}
		s *= min(sum, 1)
	}
	return s
}

// suspectOdds: a suspect client's new domain that fits its profile is
// blocked when odds / benignShare >= suspectOdds, where odds is (distinct
// NXDOMAIN domains + 1) / (NOERROR answers for new domains + 1) in the
// short window. Measured on the labelled DGA sample:
//   - replayed as one client in file order (benign and DGA rows
//     interleaved; TestDGASample/one), about 4,090 of its 5,019 benign
//     names fit the client's (wide, mixed-family) profile while it is
//     suspect, with a ratio of median 0.12 and at most 2.4 to 6.5 (the
//     distinct-domain estimate varies with the hash seed);
//   - after 20 NXDOMAINs of one family (TestDGAFamilySuspect, 8 windows of
//     21 names per family), the ratio of the next domain that fits is
//     19.8 to 22 for the widest profiles (kraken, pykspa: 0.6 of benign
//     domains fit; 21 / 0.6 = 35 at most) and far higher for the others;
//   - an infected client that browses after its burst
//     (TestDGAInfectedBrowsing) has 0.9% of its browsing blocked at 16,
//     1.3% at 12, 0.6% at 24.
//
// 16 keeps a factor of 2.5 from the benign side and lets the widest
// family profiles block; at 24 they did not (3 of 200 windows lost).
const suspectOdds = 16
