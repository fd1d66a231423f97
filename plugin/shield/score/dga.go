package score

//go:generate go test -run ^TestGenerateBigrams$ -generate

// The DGA character model: a bigram model of registered labels (the label
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

// dgaCost returns the mean cost of label in bits per transition, and false
// when the label is not scored (too short, or a byte outside a-z0-9-).
func dgaCost(label []byte) (float32, bool) {
	if len(label) < minDGALabel {
		return 0, false
	}
	return labelCost(label)
}

// labelCost is dgaCost without the length gate.
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
