package score

import "math"

// Encoding classes of a label, from the weakest evidence to the strongest.
const (
	ClassNone   uint8 = iota
	ClassBase36       // one case of letters and digits, no '-' or '_', with 3 digits
	ClassHex          // only 0-9a-f, with both a digit and a letter
	ClassBase32       // only a-z and 2-7 (either case), with 3 digits
	ClassBase64       // mixed case with digits, or + / =
)

// Features are the per-query lexical features of a name. They are computed
// in one pass over the prefix (the name minus its registered domain) with
// no allocation.
type Features struct {
	Len          int     // length of the name without the trailing dot, an escape counted as one byte
	Labels       int     // number of labels
	PrefixLen    int     // bytes of the prefix, dots excluded
	PrefixLabels int     // labels of the prefix
	LongestLabel int     // longest label of the prefix
	NonLDH       int     // bytes outside letters, digits, '-' and '_' (8-bit, '=', '+', '/', escapes)
	Entropy      float32 // Shannon entropy of the prefix bytes, bits per byte
	NormEntropy  float32 // Entropy / log2(min(PrefixLen, alphabet))
	Class        uint8   // strongest encoding class of a long prefix label
	ClassLen     int     // length of that label
	Underscore   bool    // a label starts with '_'
	Distinct     int     // distinct bytes among the first entropySample of the prefix
}

// encoded reports whether the prefix looks encoded beyond doubt: a byte
// outside LDH, or a base32 or base64 label. The Umbrella top 100k has one
// such name (TestUmbrellaEncodedPrefixes).
func (f *Features) encoded() bool {
	return f.NonLDH > 0 || f.Class == ClassBase64 || f.Class == ClassBase32
}

// random reports whether the prefix looks like encoded data of any
// alphabet: encoded, or a hex or base36 label. Hash-named CDN and
// telemetry labels look random too: they count only per client
// (domainState.slotRandom, slotBits). Entropy alone does not count: the
// long hyphenated names of webex.com and office.net reach 0.85.
func (f *Features) random() bool {
	return f.Class != ClassNone || f.NonLDH > 0
}

// nlog2n[i] = i*log2(i) in 1/65536ths, for the entropy sum: integer
// adds keep the sum off the floating-point latency chain. The low 32 bits
// of dnlog2n[k] are nlog2n[k+1] - nlog2n[k], what one more occurrence of
// a byte seen k times adds, so the sum builds up in the counting loop
// itself (telescoping: the same total as summing nlog2n over the final
// counts); its high 32 bits are 1 for k == 0, so the same add counts the
// distinct bytes.
var (
	nlog2n  [256]uint32
	dnlog2n [256]uint64
)

func init() {
	for i := 1; i < len(nlog2n); i++ {
		nlog2n[i] = uint32(math.Round(float64(i) * math.Log2(float64(i)) * 65536))
	}
	for k := 0; k+1 < len(nlog2n); k++ {
		dnlog2n[k] = uint64(nlog2n[k+1] - nlog2n[k])
	}
	dnlog2n[0] |= 1 << 32
}

// Minimum label lengths for an encoding class to count (DETECTION.md:
// hex >= 16, base32 >= 30, base64 >= 20).
const (
	minHexLabel = 16
	minB32Label = 30
	minB64Label = 20
	// A base36 label (the alphabet of random lower-case identifiers and
	// of tunnels that avoid the classes above) needs 20 characters and
	// minB32Digits digits, like base32.
	minB36Label = 20
	// entropySample: the entropy is measured on the first 64 bytes of
	// the prefix, which keeps the pass within budget for long names
	// (BenchmarkFeatures190); a 63-byte label is the longest unit of
	// encoded data.
	entropySample = 64
	// A base32 label needs 3 digits: random base32 has 6 in 32 symbols,
	// about 5.6 in 30 characters, while word labels with a version digit
	// ("products4") would otherwise count (Umbrella top 100k).
	minB32Digits = 3
)

// lexical computes the features of raw (the name as received, any case,
// trailing dot allowed) whose prefix is raw[:prefixEnd] (prefixEnd = 0
// when the name is its registered domain; the dot before the registered
// domain is excluded).
func lexical(raw string, prefixEnd int, f *Features) {
	*f = Features{}
	n := len(raw)
	if n > 0 && raw[n-1] == '.' {
		n--
	}
	raw = raw[:n]
	if n == 0 {
		return
	}
	if prefixEnd < 0 || prefixEnd > n {
		prefixEnd = 0
	}
	// The registered part: length and labels, escapes counted as one.
	rest := raw[prefixEnd:]
	if prefixEnd > 0 && len(rest) > 0 {
		rest = rest[1:] // the dot after the prefix
	}
	hasRest := prefixEnd < n
	if hasRest {
		f.Labels = 1
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if c == '\\' {
			i += escapeLen(rest, i)
		} else if c == '.' {
			f.Labels++
		}
		f.Len++
	}
	if prefixEnd <= 0 {
		return
	}
	p := raw[:prefixEnd]

	// Entropy sample: the first entropySample bytes of the prefix,
	// counted in a tight loop of their own that also builds the entropy
	// sum and the distinct bytes (dnlog2n); dots are taken out after.
	// Escapes count by their presentation bytes.
	var counts [256]uint8
	sample := p
	if len(sample) > entropySample {
		sample = sample[:entropySample]
	}
	var acc uint64 // distinct bytes << 32 | entropy sum
	for i := 0; i < len(sample); i++ {
		c := sample[i]
		k := counts[c]
		counts[c] = k + 1
		acc += dnlog2n[k]
	}
	dots := counts['.']
	sum := uint32(acc) - nlog2n[dots]
	distinct := int(acc>>32) - int(b2u(dots != 0))
	n8 := len(sample) - int(dots)

	// The label scan: one flag lookup per byte, four bytes at a time
	// while none is '.' or '\\' (the only bytes that take a branch). The
	// flags OR into the label's; their sum counts the bytes outside LDH
	// (nonLDHOne, above the flag bits).
	var all uint64 // OR of the flags of every prefix byte
	for i := 0; i <= len(p); i++ {
		var lab, sum4 uint64 // OR and sum of the flags of the label's bytes
		start, extra := i, 0
	scan:
		for ; i < len(p); i++ {
			n, or, sum := scan4(p[i:])
			lab |= or
			sum4 += sum
			i += n
			if i >= len(p) {
				break
			}
			c := p[i]
			fl := charFlags[c]
			if fl&fSpecial != 0 {
				if c == '.' {
					break scan
				}
				// An escaped byte, \DDD or \X: outside LDH either way.
				k := escapeLen(p, i)
				if k == 3 {
					c = byte((int(p[i+1]-'0')*100 + int(p[i+2]-'0')*10 + int(p[i+3]-'0')) & 0xff)
				} else if k == 1 {
					c = p[i+1]
				}
				i += k
				extra += k
				fl = charFlags[c]&flagMask&^(fSpecial|f8Bit|fB64Sym) | fNonLDH | fNotHex | fNotB32 | nonLDHOne
				if c == '=' || c == '+' || c == '/' {
					fl |= fB64Sym
				} else {
					fl |= f8Bit
				}
			}
			lab |= fl
			sum4 += fl
		}
		nonLDH := int(sum4 >> nonLDHShift)
		lab &= flagMask
		if i > start && p[start] == '_' {
			f.Underscore = true
		}
		f.NonLDH += nonLDH
		labLen := i - start - extra
		digits := 0
		if labLen >= minB36Label && lab&(fDash|fNonLDH) == 0 && lab&fDigit != 0 && lab&(fLower|fUpper) != fLower|fUpper {
			for _, c := range []byte(p[start:i]) {
				digits += int(charFlags[c] & fDigit)
			}
		}
		// End of a label.
		all |= lab
		f.PrefixLabels++
		f.PrefixLen += labLen
		if labLen > f.LongestLabel {
			f.LongestLabel = labLen
		}
		class := ClassNone
		switch {
		case labLen >= minB64Label && (lab&fB64Sym != 0 || lab&(fUpper|fLower|fDigit) == fUpper|fLower|fDigit):
			class = ClassBase64
		case labLen >= minB32Label && lab&^(fLower|fUpper|fDigit|fHexLetter|fNotHex) == 0 && lab&fNotB32 == 0 && digits >= minB32Digits:
			class = ClassBase32
		case labLen >= minHexLabel && lab&^(fHexLetter|fLower|fUpper|fDigit|fNotB32) == 0 && lab&fNotHex == 0 &&
			lab&fDigit != 0 && lab&(fLower|fUpper) != 0:
			class = ClassHex
		case labLen >= minB36Label && lab&(fDash|fNonLDH) == 0 && lab&(fLower|fUpper) != fLower|fUpper &&
			lab&(fLower|fUpper) != 0 && digits >= minB32Digits:
			class = ClassBase36
		}
		if class > f.Class || (class == f.Class && class != ClassNone && labLen > f.ClassLen) {
			f.Class, f.ClassLen = class, labLen
		}
	}
	f.Len += f.PrefixLen + f.PrefixLabels // each prefix label and its dot
	if !hasRest {
		f.Len-- // no dot after the last label
	}
	f.Labels += f.PrefixLabels
	anyUpper, anyLower, anyDigit, any8b := all&fUpper != 0, all&fLower != 0, all&fDigit != 0, all&f8Bit != 0
	if f.PrefixLen == 0 {
		return
	}
	f.Distinct = distinct
	if n8 > 0 { // n8 <= entropySample
		f.Entropy = log2tab[n8] - float32(sum)/65536/float32(n8)
	}
	if f.Entropy < 0 {
		f.Entropy = 0
	}
	// The alphabet the prefix is drawn from, for normalisation
	// (DETECTION.md lesson 2): 8-bit bytes 256, mixed case 64, lower case
	// letters and digits 36, hex 16.
	alpha := 36
	switch {
	case any8b:
		alpha = 256
	case anyUpper && anyLower:
		alpha = 64
	case !anyUpper && !anyLower && anyDigit:
		alpha = 10
	}
	m := f.PrefixLen
	if alpha < m {
		m = alpha
	}
	if m > 1 {
		f.NormEntropy = f.Entropy / log2tab[m] // m <= 256
	}
}

// scan4 scans s four bytes at a time while none of them is '.' or '\\'.
// It returns the bytes scanned and the OR and the sum of their flags. A
// function of its own keeps the loop's values in registers.
func scan4(s string) (n int, or, sum uint64) {
	rem := s
	for len(rem) >= 4 {
		a, b, c, d := charFlags[rem[0]], charFlags[rem[1]], charFlags[rem[2]], charFlags[rem[3]]
		if (a|b|c|d)&fSpecial != 0 {
			break
		}
		or |= a | b | c | d
		sum += a + b + c + d
		rem = rem[4:]
	}
	return len(s) - len(rem), or, sum
}

// Byte classes, as bit flags in charFlags.
const (
	fDigit     uint64 = 1 << iota // 0-9 (bit 0: counted by value)
	fLower                        // a-z
	fUpper                        // A-Z
	fHexLetter                    // a-f, A-F
	fNotHex                       // a letter above f
	fNotB32                       // 0, 1, 8, 9, '-' or '_'
	fB64Sym                       // + / =
	f8Bit                         // a byte outside ASCII LDH and + / =
	fSpecial                      // '.' and '\\': handled apart
	fNonLDH                       // outside letters, digits, '-', '_'
	fDash                         // '-' or '_'
)

// In its high 32 bits charFlags holds 1 for a byte outside LDH, so that a
// sum of flags counts them. The flags themselves (11 bits, at most 2047 a
// byte) add up to less than 2^32 for any label shorter than 2 MiB, so
// they never carry into the count.
const (
	flagMask    = 1<<nonLDHShift - 1
	nonLDHShift = 32
	nonLDHOne   = 1 << nonLDHShift
)

var charFlags [256]uint64

func init() {
	for c := 0; c < 256; c++ {
		var fl uint64
		switch {
		case 'a' <= c && c <= 'z':
			fl = fLower
			if c <= 'f' {
				fl |= fHexLetter
			} else {
				fl |= fNotHex
			}
		case 'A' <= c && c <= 'Z':
			fl = fUpper
			if c <= 'F' {
				fl |= fHexLetter
			} else {
				fl |= fNotHex
			}
		case '0' <= c && c <= '9':
			fl = fDigit
			if c < '2' || c > '7' {
				fl |= fNotB32
			}
		case c == '-' || c == '_':
			fl = fNotB32 | fNotHex | fDash
		case c == '.' || c == '\\':
			fl = fSpecial
		case c == '+' || c == '/' || c == '=':
			fl = fB64Sym | fNonLDH | fNotHex | fNotB32
		default:
			fl = f8Bit | fNonLDH | fNotHex | fNotB32
		}
		if fl&fNonLDH != 0 {
			fl |= nonLDHOne
		}
		charFlags[c] = fl
	}
}

// nextDot returns the index of the next dot of p at or after i that is not
// escaped, or len(p).
func nextDot(p string, i int) int {
	for ; i < len(p); i++ {
		switch p[i] {
		case '.':
			return i
		case '\\':
			i += escapeLen(p, i)
		}
	}
	return len(p)
}

func b2u(b bool) uint {
	if b {
		return 1
	}
	return 0
}

// escapeLen returns how many bytes after s[i] == '\\' the escape uses: 3
// for \DDD, 1 for \X, 0 for a trailing backslash.
func escapeLen(s string, i int) int {
	if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
		return 3
	}
	if i+1 < len(s) {
		return 1
	}
	return 0
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// log2f is log2 for the small positive values used here, through a table
// for integers and math.Log2 otherwise.
func log2f(x float32) float32 {
	if x >= 1 && x < float32(len(log2tab)) && x == float32(int(x)) {
		return log2tab[int(x)]
	}
	return float32(math.Log2(float64(x)))
}

var log2tab [257]float32

func init() {
	for i := 1; i < len(log2tab); i++ {
		log2tab[i] = float32(math.Log2(float64(i)))
	}
}
