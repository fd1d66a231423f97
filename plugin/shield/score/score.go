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

// score is Score (update true) and Explain (update false). It reads top
// down: the registered domain and the exemptions, the sticky verdict, the
// query's own features, the registered domain's state, the DGA model, the
// client's state, and then decide adds the points up.
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
	regStart, sufStart := -1, 0
	if len(lower) > 0 {
		regStart, sufStart = e.suffixes.registered(lower)
	}
	if regStart < 0 || e.exempted(lower) {
		res.Exempt = true
		return res
	}
	res.domStart, res.domEnd = regStart, len(raw)
	res.domainKey = keyHash(e.keySeed, lower[regStart:])
	now := e.now()

	// A verdict blocks the query whatever it scores; the query is
	// scored all the same, so that the result says whether it is a
	// fresh detection of its own (Result.Detected).
	res.clientKey = keyOfClient(e.keySeed, q.Client)
	sticky, isSticky := e.verdicts.find(res.domainKey, res.clientKey, now, update)
	if isSticky {
		res.Sticky, res.Action, res.Score, res.Scope = true, Block, int(sticky.score), sticky.scope
		res.topReason, res.detector = sticky.reason, sticky.detector
	}
	if exemptQuery(lower, q.Type) {
		if isSticky {
			return res
		}
		return Result{Exempt: true}
	}
	res.scored = !isSticky
	res.sufStart = sufStart
	points := &res.points

	// The query's own features.
	var f Features
	prefixEnd := 0
	if regStart > 0 {
		prefixEnd = regStart - 1
	}
	lexical(raw, prefixEnd, &f)
	nonIP := lexicalPoints(points, &f, q.Type)

	// The registered label (left of the public suffix), for the DGA
	// model and the suspect-client rule; empty when the registered
	// domain has no label of its own left of its suffix.
	var label, suffix []byte
	if sufStart-1 > regStart {
		label, suffix = lower[regStart:sufStart-1], lower[sufStart:]
	}

	// Has the resolver seen this exact name, and this registered domain?
	shortEpoch, longEpoch := now/e.shortEpochLen, now/e.longEpochLen
	newName := false
	if f.PrefixLen > 0 {
		h := maphash.Bytes(e.seed, lower)
		if update {
			newName = e.recentNames.add(h)
		}
	}
	var unremembered bool // not in the history filters: first seen in one to two long windows
	if update {
		unremembered = !e.history.testAndAdd(res.domainKey, longEpoch)
	} else {
		unremembered = !e.history.test(res.domainKey)
	}

	// The registered domain's state: counted and scored under its lock
	// (a copy of the entry cost more than the scoring).
	how := peek
	if update {
		how = upsert
	}
	live, unlock, created := e.domains.get(res.domainKey, now, how)
	var dom struct {
		first    uint32
		nClients uint8
	}
	if live != nil {
		live.roll(shortEpoch, longEpoch)
		if update {
			if created && unremembered {
				live.first = now
			}
			live.count(&f, nonIP, newName, uint16(res.clientKey>>48)|1, now/budgetWindow)
		}
		domainPoints(points, live, now/budgetWindow)
		dom.first, dom.nClients = live.first, live.nClients
	}
	unlock.Unlock()
	known := live != nil
	if f.encoded() && !e.cfg.NoTunnel {
		bits := uint32(0)
		if newName {
			bits = uint32(float32(f.PrefixLen) * log2f(float32(f.Distinct)))
		}
		e.budgetPoints(points, res.clientKey, lower[sufStart:], bits, now, update)
	}
	newlySeen := unremembered || (known && dom.first != 0 && now-dom.first < e.longEpochLen)
	if newlySeen && now >= e.newlyFrom { // no history, no newly seen (history.go)
		points[reasonNewlySeen] = ptsNewlySeen
	}
	tier, dgaScored := dgaTier(label)
	if dgaScored {
		dgaPoints(points, tier)
	}

	// The client's state: a suspect client's queries for newly seen,
	// unpopular domains that fit its NXDOMAIN profile, when the evidence
	// outweighs the chance that a benign name fits (shape.go).
	res.suspectRule = newlySeen && (!known || dom.nClients <= 2) && res.clientKey != 0 && len(label) > 0
	// The client's run of new domains that look machine-made (dga.go):
	// a domain first seen now adds its tier's evidence; at evAlert the
	// client's new domains of tier 2 or more alert, at evCap those of
	// tier 1 too.
	if res.suspectRule && dgaScored {
		res.dgaTier = tier + 1
		delta := 0
		if update && unremembered {
			delta = evTier[tier]
		}
		run, _ := e.dgaEvidence.add(res.clientKey, delta, 0, now, e.shortEpochLen)
		if (run >= evAlert && tier >= 2) || (run >= evCap && tier >= 1) {
			points[reasonClientDGA] = ptsClientDGA
		}
	}
	if res.suspectRule {
		c, unlockClient, _ := e.clients.get(res.clientKey, now, peek)
		if c != nil && c.suspect > now {
			shape := e.registeredShape(label, suffix)
			if c.profile.matches(shape) && c.odds(shortEpoch) >= suspectOdds*c.profile.benignShare() {
				points[reasonClientNXBurst] = ptsSuspect
			}
		}
		unlockClient.Unlock()
	}
	var stickyP *verdict
	if isSticky {
		stickyP = &sticky
	}
	e.decide(&res, update, now, q.Client, stickyP)
	// Prevalence counts the clients that use the domain without scoring.
	if update && res.clientKey != 0 && int(res.own) < e.cfg.Alert {
		e.prev.record(res.domainKey, res.clientKey, now)
	}
	return res
}

// lexicalPoints gives the points of the query's own features f and type
// qtype. It reports whether qtype is a non-IP type (not A, AAAA, SVCB or
// HTTPS).
func lexicalPoints(points *[nReasons]uint8, f *Features, qtype uint16) (nonIP bool) {
	switch {
	case f.Len > 100:
		points[reasonLongName] = ptsNameOver100
	case f.Len > 52:
		points[reasonLongName] = ptsNameOver52
	}
	switch {
	case f.LongestLabel >= 50:
		points[reasonLongLabel] = ptsLabelOver50
	case f.LongestLabel >= 30:
		points[reasonLongLabel] = ptsLabelOver30
	}
	if f.PrefixLen >= entropyMinBytes && f.NormEntropy >= entropyMin {
		points[reasonEntropy] = ptsEntropy
	}
	switch f.Class {
	case ClassBase64:
		points[reasonEncoded] = ptsBase64
	case ClassBase32:
		points[reasonEncoded] = ptsBase32
	case ClassHex:
		points[reasonEncoded] = ptsHex
	case ClassBase36:
		points[reasonEncoded] = ptsBase36
	}
	if f.NonLDH > 0 {
		points[reasonNonLDH] = ptsNonLDH
	}
	switch t := qtype; {
	case t == 10 || (t >= 65280 && t <= 65534): // NULL, private use
		points[reasonTunnelType] = ptsTunnelType
	case t == 16 || t == 15 || t == 5: // TXT, MX, CNAME
		if f.Len > 52 {
			points[reasonLongTXT] = ptsLongTXT
		}
	}
	// Nadler et al.'s non-IP type ratio: every type but the address
	// types a browser or an app sends (A, AAAA, SVCB, HTTPS).
	switch qtype {
	case 1, 28, 64, 65:
	default:
		nonIP = true
	}
	capTunnelLexical(points)
	return nonIP
}

// capTunnelLexical trims the tunnel's per-query reasons to tunnelLexCap
// in all, taking from the weakest first so that the top reason stays.
func capTunnelLexical(points *[nReasons]uint8) {
	sum := 0
	for _, v := range points[:reasonEncodedPrefixes] {
		sum += int(v)
	}
	for excess := sum - tunnelLexCap; excess > 0; {
		weakest := -1
		for i, v := range points[:reasonEncodedPrefixes] {
			if v > 0 && (weakest < 0 || v < points[weakest]) {
				weakest = i
			}
		}
		take := min(excess, int(points[weakest]))
		points[weakest] -= uint8(take)
		excess -= take
	}
}

// count adds a query with features f to the registered domain's counters.
// nonIP reports whether its type is not an address type; newName whether
// the exact name is new; client is the client's fingerprint; hour the
// budget-window epoch.
func (d *domainState) count(f *Features, nonIP, newName bool, client uint16, hour uint32) {
	d.queries[0]++
	if nonIP {
		d.nonIPQueries[0]++
	}
	slot := d.addClient(client)
	if !newName {
		return
	}
	d.unique[0]++
	if d.shortUnique[0] < 0xffff {
		d.shortUnique[0]++
	}
	bits := uint32(float32(f.PrefixLen) * log2f(float32(f.Distinct)))
	d.infoBits[0] += bits
	if f.encoded() {
		d.encoded[0]++
		if d.shortEncoded[0] < 0xffff {
			d.shortEncoded[0]++
		}
	}
	if slot < 0 || !f.random() {
		return
	}
	d.randomSeen = true
	if nonIP && d.slotRandom[slot] < 0xffff {
		d.slotRandom[slot]++
	}
	d.rollHour(hour)
	d.slotBits[0][slot] += bits
}

// domainPoints gives the points of the registered domain's state dom at
// budget epoch hour. Only a domain with tunnel evidence gets any: encoded
// prefixes, one client's random-looking names of non-address types, or
// one client's information bits in the budget window.
func domainPoints(points *[nReasons]uint8, dom *domainState, hour uint32) {
	// One client's random-looking names count only on a domain of at
	// most weakMaxClients clients: under a popular domain they are many
	// clients' hash names, a few each (TestHashNamesBenign).
	if dom.randomSeen && dom.nClients <= weakMaxClients {
		dom.rollHour(hour)
		random, slotBits := dom.topSlot()
		switch {
		case slotBits >= hourBits2:
			points[reasonHourBits] = ptsHourBits2
		case slotBits >= hourBits1:
			points[reasonHourBits] = ptsHourBits1
		}
		switch {
		case random >= encTier3:
			points[reasonRandomPrefixes] = ptsEnc3
		case random >= encTier2:
			points[reasonRandomPrefixes] = ptsEnc2
		case random >= encTier15:
			points[reasonRandomPrefixes] = ptsEnc15
		case random >= encTier1:
			points[reasonRandomPrefixes] = ptsEnc1
		}
	}
	encoded := sumPair(dom.encoded)
	switch {
	case encoded >= encTier3:
		points[reasonEncodedPrefixes] = ptsEnc3
	case encoded >= encTier2:
		points[reasonEncodedPrefixes] = ptsEnc2
	case encoded >= encTier15:
		points[reasonEncodedPrefixes] = ptsEnc15
	case encoded >= encTier1:
		points[reasonEncodedPrefixes] = ptsEnc1
	}
	// The stronger of the two views of the same prefixes counts.
	if points[reasonRandomPrefixes] <= points[reasonEncodedPrefixes] {
		points[reasonRandomPrefixes] = 0
	} else {
		points[reasonEncodedPrefixes] = 0
	}
	// Any of them opens the domain's volume signals below.
	if points[reasonEncodedPrefixes] == 0 && points[reasonRandomPrefixes] == 0 && points[reasonHourBits] == 0 {
		return
	}
	if sumShortPair(dom.shortUnique) >= uniqShortMin {
		points[reasonUniquePrefixes] = ptsUniqShort
	}
	if sumPair(dom.infoBits) >= bitsMin {
		points[reasonInfoBits] = ptsBits
	}
	queries, unique := sumPair(dom.queries), sumPair(dom.unique)
	if queries >= ratioMinQ && unique*10 >= queries*9 {
		points[reasonUniqueRatio] = ptsUniqRatio
	}
	if queries >= nonIPMinQ && sumPair(dom.nonIPQueries)*2 >= queries {
		points[reasonNonIPTypes] = ptsNonIP
	}
	if responses := sumPair(dom.responses); unique >= nxMinUniq && responses > 0 && sumPair(dom.nxdomains)*10 > responses*3 {
		points[reasonNXRatio] = ptsNXRatio
	}
	if queries >= prevMinQ && dom.nClients <= 2 {
		points[reasonLowPrevalence] = ptsLowPrev
	}
}

// dgaPoints gives the points of the DGA model's tier of the registered
// label (dgaTier).
func dgaPoints(points *[nReasons]uint8, tier uint8) {
	switch tier {
	case 3:
		points[reasonDGALabel] = ptsDGA3
	case 2:
		points[reasonDGALabel] = ptsDGA2
	case 1:
		points[reasonDGALabel] = ptsDGA1
	}
}

// registeredShape returns the shape of a lower-case registered label
// under the lower-case public suffix suf.
func (e *Engine) registeredShape(label, suf []byte) labelShape {
	s := shapeOf(label)
	if s.ok {
		s.suffix = uint16(maphash.Bytes(e.seed, suf))
		s.sufP = sufShare(suf)
	}
	return s
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

// keyOfClient hashes a client address: IPv4 /32, IPv6 /64. seed is the
// engine's key seed (keys.go).
func keyOfClient(seed uint64, a netip.Addr) uint64 {
	if !a.IsValid() {
		return 0
	}
	a = a.Unmap()
	b := a.As16()
	n := 16
	if a.Is6() {
		n = 8
	}
	return keyHash(seed, b[:n])
}
