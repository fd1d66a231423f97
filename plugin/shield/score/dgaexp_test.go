package score

import (
	"bufio"
	"flag"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"

	"github.com/dnsshield/shield/internal/corpus"
)

var dgaexp = flag.Bool("dgaexp", false, "run the DGA model experiments")

// kn is an interpolated Kneser-Ney character model (experiment).
type kn struct {
	order int
	cnt   []map[string]float64 // per order k (1..order): counts of k-grams (highest: raw; lower: continuation)
	ctx   []map[string]float64 // per order: sum over w of cnt[h+w]
	types []map[string]float64 // per order: distinct w after h
	d     float64
}

const knV = 38 // 37 symbols + end

func knSyms(label string) string {
	// '^' start, '$' end
	return strings.Repeat("^", 1) + label + "$"
}

func newKN(order int, labels []string, d float64) *kn {
	m := &kn{order: order, d: d}
	m.cnt = make([]map[string]float64, order+1)
	m.ctx = make([]map[string]float64, order+1)
	m.types = make([]map[string]float64, order+1)
	for k := 1; k <= order; k++ {
		m.cnt[k] = map[string]float64{}
		m.ctx[k] = map[string]float64{}
		m.types[k] = map[string]float64{}
	}
	// highest order raw counts
	pad := strings.Repeat("^", order-1)
	for _, l := range labels {
		s := pad + l + "$"
		for i := order - 1; i < len(s); i++ {
			m.cnt[order][s[i-order+1:i+1]]++
		}
	}
	// continuation counts for lower orders
	for k := order - 1; k >= 1; k-- {
		for g := range m.cnt[k+1] {
			m.cnt[k][g[1:]]++
		}
	}
	for k := 1; k <= order; k++ {
		for g, c := range m.cnt[k] {
			h := g[:k-1]
			m.ctx[k][h] += c
			m.types[k][h]++
		}
	}
	return m
}

// prob returns P(w | h) with h of length order-1.
func (m *kn) prob(h string, w byte) float64 {
	p := 1.0 / knV
	for k := 1; k <= m.order; k++ {
		hh := h[len(h)-(k-1):]
		c := m.ctx[k][hh]
		if c == 0 {
			continue
		}
		n := m.cnt[k][hh+string(w)]
		p = math.Max(n-m.d, 0)/c + m.d*m.types[k][hh]/c*p
	}
	return p
}

// cost returns the bits of each transition of the label.
func (m *kn) costs(label string) []float64 {
	pad := strings.Repeat("^", m.order-1)
	s := pad + label + "$"
	var out []float64
	for i := m.order - 1; i < len(s); i++ {
		out = append(out, -math.Log2(m.prob(s[i-m.order+1:i], s[i])))
	}
	return out
}

type regDom struct{ label, suffix string }

// umbrellaSplit returns the distinct registered domains of the Umbrella
// list in order of first appearance, and for each FQDN the index of its
// registered domain.
func umbrellaSplit(t testing.TB) (doms []regDom, fqdns []string, idx []int) {
	r := corpus.Open(t, "benign_umbrella_top100k_fqdn.txt.gz")
	sc := bufio.NewScanner(r)
	seen := map[string]int{}
	for sc.Scan() {
		name := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(sc.Text())), ".")
		reg, ok := expReg(name)
		if !ok {
			continue
		}
		i, ok := seen[reg]
		if !ok {
			i = len(doms)
			seen[reg] = i
			j := strings.IndexByte(reg, '.')
			doms = append(doms, regDom{reg[:j], reg[j+1:]})
		}
		fqdns = append(fqdns, name)
		idx = append(idx, i)
	}
	return
}

func nrdDomains(t testing.TB) []regDom {
	var out []regDom
	seen := map[string]bool{}
	for _, l := range lines(t, "domains_nrd_czds_1day_cryphorix.txt.gz") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		reg, ok := expReg(strings.ToLower(l))
		if !ok || seen[reg] {
			continue
		}
		seen[reg] = true
		j := strings.IndexByte(reg, '.')
		out = append(out, regDom{reg[:j], reg[j+1:]})
	}
	return out
}

func ldh(s string) bool {
	for i := 0; i < len(s); i++ {
		if symbol(s[i]) < 0 {
			return false
		}
	}
	return len(s) > 0
}

func TestDGAExperiment(t *testing.T) {
	if !*dgaexp {
		t.Skip("-dgaexp")
	}
	doms, _, _ := umbrellaSplit(t)
	var train, held []string
	for i, d := range doms {
		if !ldh(d.label) {
			continue
		}
		if i%2 == 1 {
			train = append(train, d.label)
		} else {
			held = append(held, d.label)
		}
	}
	nrd := nrdDomains(t)
	var nrdTrain, nrdHeld []string
	for i, d := range nrd {
		if !ldh(d.label) {
			continue
		}
		if i%2 == 0 {
			nrdTrain = append(nrdTrain, d.label)
		} else {
			nrdHeld = append(nrdHeld, d.label)
		}
	}
	fams := map[string][]string{}
	var famOrder, alexa []string
	for _, row := range dgaSample(t) {
		reg, ok := expReg(row.domain)
		if !ok {
			continue
		}
		l := reg[:strings.IndexByte(reg, '.')]
		if row.class == "legit" {
			alexa = append(alexa, l)
			continue
		}
		if _, ok := fams[row.family]; !ok {
			famOrder = append(famOrder, row.family)
		}
		fams[row.family] = append(fams[row.family], l)
	}
	t.Logf("train %d held %d nrdTrain %d nrdHeld %d alexa %d", len(train), len(held), len(nrdTrain), len(nrdHeld), len(alexa))
	for _, cfg := range []struct {
		order int
		nrd   bool
	}{{2, false}, {3, false}, {4, false}, {3, true}, {4, true}, {5, true}} {
		tr := train
		if cfg.nrd {
			tr = append(append([]string(nil), train...), nrdTrain...)
		}
		m := newKN(cfg.order, tr, 0.75)
		for _, stat := range []string{"mean", "z"} {
			// length-bucket stats on train for z
			type acc struct{ s, s2, n float64 }
			var byLen [64]acc
			score := func(l string) float64 {
				c := m.costs(l)
				sum := 0.0
				for _, v := range c {
					sum += v
				}
				mean := sum / float64(len(c))
				if stat == "mean" {
					return mean
				}
				L := min(len(l), 40)
				a := byLen[L]
				mu := a.s / a.n
				sd := math.Sqrt(a.s2/a.n - mu*mu)
				return (mean - mu) / sd
			}
			if stat == "z" {
				for _, l := range tr {
					c := m.costs(l)
					sum := 0.0
					for _, v := range c {
						sum += v
					}
					mean := sum / float64(len(c))
					L := min(len(l), 40)
					byLen[L].s += mean
					byLen[L].s2 += mean * mean
					byLen[L].n++
				}
			}
			for _, gate := range []int{6, 8} {
				var hs []float64
				for _, l := range held {
					if len(l) >= gate {
						hs = append(hs, score(l))
					}
				}
				sort.Float64s(hs)
				n := len(hs)
				th1 := hs[n*99/100]
				th01 := hs[n*999/1000]
				rate := func(ls []string, th float64) float64 {
					k := 0
					for _, l := range ls {
						if len(l) >= gate && ldh(l) && score(l) >= th {
							k++
						}
					}
					return float64(k) / float64(len(ls))
				}
				var line strings.Builder
				avg1, avg01 := 0.0, 0.0
				for _, f := range famOrder {
					r01 := rate(fams[f], th01)
					avg1 += rate(fams[f], th1)
					avg01 += r01
					fmt.Fprintf(&line, "%s=%.0f ", f[:4], 100*r01)
				}
				avg1 /= float64(len(famOrder))
				avg01 /= float64(len(famOrder))
				t.Logf("order %d nrd %v %s gate %d: th1 %.3f th01 %.3f | fam avg @1%% %.1f%% @0.1%% %.1f%% | alexa fp %.3f%% %.3f%% nrdHeld %.3f%% %.3f%%\n   %s",
					cfg.order, cfg.nrd, stat, gate, th1, th01, 100*avg1, 100*avg01,
					100*rate(alexa, th1), 100*rate(alexa, th01), 100*rate(nrdHeld, th1), 100*rate(nrdHeld, th01), line.String())
			}
		}
	}
}

func TestDGADiag(t *testing.T) {
	if !*dgaexp {
		t.Skip("-dgaexp")
	}
	doms, _, _ := umbrellaSplit(t)
	var train, held []string
	for i, d := range doms {
		if !ldh(d.label) {
			continue
		}
		if i%2 == 1 {
			train = append(train, d.label)
		} else {
			held = append(held, d.label)
		}
	}
	m := newKN(3, train, 0.75)
	mean := func(l string) float64 {
		c := m.costs(l)
		s := 0.0
		for _, v := range c {
			s += v
		}
		return s / float64(len(c))
	}
	type sl struct {
		s float64
		l string
	}
	var hs []sl
	for _, l := range held {
		if len(l) >= 8 {
			hs = append(hs, sl{mean(l), l})
		}
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i].s > hs[j].s })
	for _, x := range hs[:60] {
		t.Logf("%.2f %s", x.s, x.l)
	}
	fams := map[string][]float64{}
	ex := map[string]string{}
	for _, row := range dgaSample(t) {
		reg, ok := expReg(row.domain)
		if !ok {
			continue
		}
		l := reg[:strings.IndexByte(reg, '.')]
		fams[row.family] = append(fams[row.family], mean(l))
		ex[row.family] = l
	}
	for f, v := range fams {
		sort.Float64s(v)
		t.Logf("%-12s median %.2f p25 %.2f  e.g. %s", f, v[len(v)/2], v[len(v)/4], ex[f])
	}
}

var expEngine *Engine

// expReg returns the registered domain of a lower-case name as the engine
// sees it, and false for a name the engine does not score.
func expReg(name string) (string, bool) {
	if expEngine == nil {
		expEngine, _ = New(Config{})
	}
	b := []byte(name)
	reg, suf := expEngine.suffixes.registered(b)
	if reg < 0 || suf-1 <= reg || expEngine.exempted(b) || exemptQuery(b, 1) {
		return "", false
	}
	return name[reg:], true
}

func isLetters(l string) bool {
	for i := 0; i < len(l); i++ {
		if l[i] < 'a' || l[i] > 'z' {
			return false
		}
	}
	return true
}

func TestDGAExp2(t *testing.T) {
	if !*dgaexp {
		t.Skip("-dgaexp")
	}
	doms, _, _ := umbrellaSplit(t)
	var train, held []string
	for i, d := range doms {
		if !ldh(d.label) {
			continue
		}
		if i%2 == 1 {
			train = append(train, d.label)
		} else {
			held = append(held, d.label)
		}
	}
	var nrdHeld, nrdTrain []string
	for i, d := range nrdDomains(t) {
		if ldh(d.label) && i%2 == 1 {
			nrdHeld = append(nrdHeld, d.label)
		} else if ldh(d.label) {
			nrdTrain = append(nrdTrain, d.label)
		}
	}
	fams := map[string][]string{}
	var famOrder, alexa []string
	for _, row := range dgaSample(t) {
		reg, ok := expReg(row.domain)
		if !ok {
			continue
		}
		l := reg[:strings.IndexByte(reg, '.')]
		if row.class == "legit" {
			alexa = append(alexa, l)
			continue
		}
		if _, ok := fams[row.family]; !ok {
			famOrder = append(famOrder, row.family)
		}
		fams[row.family] = append(fams[row.family], l)
	}
	for _, order := range []int{3, 4} {
		for _, useNRD := range []bool{false, true} {
			extra := []string(nil)
			if useNRD {
				extra = nrdTrain
			}
			// cross-fitted calibration costs
			const k = 5
			calib := make([][]float64, len(train))
			for f := 0; f < k; f++ {
				var tr []string
				for i, l := range train {
					if i%k != f {
						tr = append(tr, l)
					}
				}
				m := newKN(order, append(tr, extra...), 0.75)
				for i, l := range train {
					if i%k == f {
						calib[i] = m.costs(l)
					}
				}
			}
			m := newKN(order, append(append([]string(nil), train...), extra...), 0.75)
			for _, b := range []float64{99, 3.5, 4, 4.5} {
				stat := func(c []float64) float64 {
					s := 0.0
					for _, v := range c {
						s += min(v, 9)
					}
					if b == 99 {
						return s / float64(len(c))
					}
					return s - b*float64(len(c))
				}
				for _, gate := range []int{8} {
					var let, dig []float64
					for i, l := range train {
						if len(l) < gate {
							continue
						}
						if isLetters(l) {
							let = append(let, stat(calib[i]))
						} else {
							dig = append(dig, stat(calib[i]))
						}
					}
					sort.Float64s(let)
					sort.Float64s(dig)
					// budget: 0.035% of all train labels in each class
					nb := int(0.00035 * float64(len(train)))
					thL := let[len(let)-1-nb]
					thD := dig[len(dig)-1-nb]
					alerts := func(ls []string) float64 {
						n := 0
						for _, l := range ls {
							if len(l) < gate || !ldh(l) {
								continue
							}
							s := stat(m.costs(l))
							if (isLetters(l) && s > thL) || (!isLetters(l) && s > thD) {
								n++
							}
						}
						return float64(n) / float64(len(ls))
					}
					var line strings.Builder
					avg := 0.0
					for _, f := range famOrder {
						r := alerts(fams[f])
						avg += r
						fmt.Fprintf(&line, "%s=%.0f ", f[:4], 100*r)
					}
					avg /= float64(len(famOrder))
					t.Logf("nrd %v order %d b %v gate %d: thL %.2f thD %.2f | fam avg %.1f%% | held fp %.3f%% alexa %.3f%% nrd %.3f%%\n   %s",
						useNRD, order, b, gate, thL, thD, 100*avg, 100*alerts(held), 100*alerts(alexa), 100*alerts(nrdHeld), line.String())
				}
			}
		}
	}
}

func TestDGADiag2(t *testing.T) {
	if !*dgaexp {
		t.Skip("-dgaexp")
	}
	doms, _, _ := umbrellaSplit(t)
	var train, held []string
	for i, d := range doms {
		if !ldh(d.label) {
			continue
		}
		if i%2 == 1 {
			train = append(train, d.label)
		} else {
			held = append(held, d.label)
		}
	}
	m := newKN(3, train, 0.75)
	stat := func(l string) float64 {
		s := 0.0
		for _, v := range m.costs(l) {
			s += v - 4
		}
		return s
	}
	type sl struct {
		s float64
		l string
	}
	var hs []sl
	for _, l := range held {
		if len(l) >= 8 && isLetters(l) {
			hs = append(hs, sl{stat(l), l})
		}
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i].s > hs[j].s })
	for _, x := range hs[:40] {
		t.Logf("%.2f %s", x.s, x.l)
	}
}
