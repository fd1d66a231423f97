package score

import (
	"hash/maphash"
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
	if !res.scored || res.dkey == 0 {
		return false
	}
	now := e.now()
	sEpoch, lEpoch := now/e.sEpochLen, now/e.lEpochLen
	nx := rcode == 3
	d, mu, _ := e.domains.get(res.dkey, now, peek)
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
	how := touch
	if nx {
		how = upsert
	}
	c, cmu, _ := e.clients.get(res.ckey, now, how)
	if c == nil {
		cmu.Unlock()
		return false
	}
	c.roll(sEpoch)
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
	c.nx[0] |= uint64(1) << (res.dkey >> 32 & 63)
	if distinct64(c.nx[0]|c.nx[1]) >= suspectNX {
		c.suspect = now + e.sEpochLen
	}
	cmu.Unlock()
	if !alert || e.cfg.NoDGA {
		return false
	}
	was := res.Action
	res.points[rClientNXBurst] = ptsNXAnswer
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

// Unblock removes a sticky verdict on a registered domain.
func (e *Engine) Unblock(domain string) bool {
	d := strings.TrimSuffix(strings.ToLower(domain), ".")
	return e.verdicts.remove(maphash.String(e.seed, d))
}
