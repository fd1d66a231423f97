package score

import (
	"math"
	"math/bits"
	"strings"
)

// ObserveResponse feeds the upstream's rcode for a query that Score
// passed or alerted on: NXDOMAIN ratios per domain, and per client the
// burst of NXDOMAINs for distinct new domains and the NOERROR answers for
// new domains. An NXDOMAIN answer to a suspect client for a new domain
// that fits its profile is itself evidence: it adds ptsNXAnswer to res and
// may raise it to an alert (never to a block: the answer is on its way).
// It returns true when res became an alert.
func (e *Engine) ObserveResponse(res *Result, rcode int) bool {
	if !res.scored || res.domainKey == 0 {
		return false
	}
	now := e.now()
	shortEpoch, longEpoch := now/e.shortEpochLen, now/e.longEpochLen
	nx := rcode == 3
	d, unlock, _ := e.domains.get(res.domainKey, now, peek)
	if d != nil {
		d.roll(shortEpoch, longEpoch)
		d.responses[0]++
		if nx {
			d.nxdomains[0]++
		}
	}
	unlock.Unlock()
	if !res.suspectRule || (!nx && rcode != 0) {
		return false
	}
	// The shape is computed before the lock.
	var shape labelShape
	if nx {
		var buf [256]byte
		regStart, sufStart := res.domStart, res.sufStart
		// res.name is the name as scored (no trailing dot); the offsets
		// are into it.
		if regStart >= 0 && sufStart-1 > regStart && sufStart <= len(res.name) && len(res.name)-regStart <= len(buf) {
			lower := buf[:0]
			for i := regStart; i < len(res.name); i++ {
				lower = append(lower, lowerTab[res.name[i]])
			}
			shape = e.registeredShape(lower[:sufStart-1-regStart], lower[sufStart-regStart:])
		}
	}
	// Only an NXDOMAIN makes a client entry: benign clients take no room.
	how := touch
	if nx {
		how = upsert
	}
	c, unlockClient, _ := e.clients.get(res.clientKey, now, how)
	if c == nil {
		unlockClient.Unlock()
		return false
	}
	c.roll(shortEpoch)
	if !nx {
		if c.answered[0] < 0xffff {
			c.answered[0]++
		}
		unlockClient.Unlock()
		return false
	}
	// The bitmap fills after a few dozen domains; the profile takes every
	// new domain's NXDOMAIN (up to 255 of them).
	alert := c.suspect > now && c.profile.matches(shape)
	c.profile.add(shape)
	c.nxDomains[0] |= uint64(1) << (res.domainKey >> 32 & 63)
	if distinct64(c.nxDomains[0]|c.nxDomains[1]) >= suspectNX {
		c.suspect = now + e.shortEpochLen
	}
	unlockClient.Unlock()
	if !alert || e.cfg.NoDGA {
		return false
	}
	before := res.Action
	res.points[reasonClientNXBurst] = ptsNXAnswer
	e.decide(res, false, now)
	if res.Action == Block {
		res.Action = Alert
	}
	return before == Pass && res.Action == Alert
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

// Unblock removes a sticky verdict on a registered domain.
func (e *Engine) Unblock(domain string) bool {
	d := strings.TrimSuffix(strings.ToLower(domain), ".")
	return e.verdicts.remove(keyHashString(e.keySeed, d))
}
