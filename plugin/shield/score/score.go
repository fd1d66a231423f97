package score

import (
	"hash/maphash"
	"net/netip"
)

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
	var dga float32
	dgaScored := false
	res.sufStart = suf
	if suf-1 > reg {
		dga, dgaScored = dgaCost(lower[reg : suf-1])
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
	how := peek
	if update {
		how = upsert
	}
	d, mu, created := e.domains.get(res.dkey, now, how)
	var st domainState
	if d != nil {
		d.roll(sEpoch, lEpoch)
		if update {
			if created && fresh {
				d.first = now
			}
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
		switch {
		case dga >= dgaCost999:
			p[rDGALabel] = ptsDGA999
		case dga >= dgaCost99:
			p[rDGALabel] = ptsDGA99
		}
	}
	// Per-client state: a suspect client's queries for newly seen,
	// unpopular domains that fit its NXDOMAIN profile, when the evidence
	// outweighs the chance that a benign name fits (shape.go).
	res.cand = newlySeen && (d == nil || st.nClients <= 2) && res.ckey != 0 && suf-1 > reg
	if res.cand {
		c, cmu, _ := e.clients.get(res.ckey, now, peek)
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
		if i < int(rEncodedPrefixes) {
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
