package score

// Deciding on a scored query: the total, the action, and the scope of a
// block verdict.

import (
	"net/netip"
)

// decide adds up res.points into the score, the top reason, the detector
// and the action, and makes a block verdict sticky with its scope
// (verdictScope). client is the client's address, for the verdict's
// record; sticky is the verdict that already blocks the query, or nil.
//
// Points from the registered domain's shared state (reasons
// encoded_prefixes to low_prevalence) count for a query with no evidence
// of its own (no lexical points, no suspect-client points) only when no
// client other than the verdict's earners used the domain without
// scoring: otherwise one client's tunnel-like queries under a popular
// domain would make every other client's plain queries score (issue 9).
func (e *Engine) decide(res *Result, update bool, now uint32, client netip.Addr, sticky *verdict) {
	points := &res.points

	// Detector switches.
	for i := range points {
		det := reasonDetector[i]
		if (det == 0 && e.cfg.NoTunnel) || (det == 1 && e.cfg.NoDGA) || (det == 2 && e.cfg.NoNewlySeen) {
			points[i] = 0
		}
	}
	total, lexPoints, shared := e.addUp(res)
	if shared > 0 && lexPoints == 0 && points[reasonClientNXBurst] == 0 && total >= e.cfg.Alert && e.vouched(res.domainKey) {
		for i := reasonEncodedPrefixes; i <= reasonLowPrevalence; i++ {
			points[i] = 0
		}
		total, _, _ = e.addUp(res)
	}
	action := Pass
	switch {
	case total >= e.cfg.Block:
		action = Block
	case total >= e.cfg.Alert:
		action = Alert
	}
	res.own = uint8(total)
	res.Detected = action == Block
	if sticky != nil && !res.Detected {
		// Blocked by the verdict alone: it speaks for the query.
		res.Score, res.topReason, res.detector = int(sticky.score), sticky.reason, sticky.detector
		res.points = [nReasons]uint8{}
		return
	}
	res.Score, res.Action = total, action
	if action != Block || !update {
		return
	}
	scope, popular := ScopeFleet, false
	if sticky == nil || sticky.scope != ScopeFleet {
		scope, popular = e.verdictScope(res)
	}
	res.Scope, res.Popular = scope, popular
	key := res.domainKey
	if scope == ScopeClient {
		if res.clientKey == 0 {
			return // no client to scope it to: the query alone is blocked
		}
		key = clientVerdictKey(res.domainKey, res.clientKey)
	}
	until := now + e.stickyFor
	v := verdict{key: key, dom: res.domainKey, until: until, score: uint8(total),
		reason: res.topReason, detector: res.detector, scope: scope}
	if e.verdicts.put(v, now, res.clientKey) {
		e.records.note(res.domainKey, res.Domain, res.clientKey, client, now, until)
	}
}

// addUp adds up res.points into the total (the lexical points capped at
// lexCap, 100 at most), sets the top reason and the detector, and returns
// the total, the uncapped lexical points and the points from the domain's
// shared state.
func (e *Engine) addUp(res *Result) (total, lexPoints, shared int) {
	points := &res.points
	var perDetector [3]int
	top := -1
	for i, v := range points {
		if v == 0 {
			continue
		}
		switch {
		case i < int(reasonEncodedPrefixes) || i == int(reasonDGALabel) || i == int(reasonClientDGA):
			// The DGA label and the client's run of DGA-like labels
			// are per-query lexical evidence too: they alert but
			// never block on their own (lexCap + ptsNewlySeen < Block).
			lexPoints += int(v)
		case i <= int(reasonLowPrevalence):
			shared += int(v)
			total += int(v)
		default:
			total += int(v)
		}
		perDetector[reasonDetector[i]] += int(v)
		if top < 0 || v > points[top] {
			top = i
		}
	}
	total += min(lexPoints, lexCap)
	// Newly seen alone is context, not a detection: it never decides.
	if total == int(points[reasonNewlySeen]) {
		total = 0
	}
	total = min(total, 100)
	res.topReason = 0
	if top >= 0 {
		res.topReason = uint8(top)
	}
	res.detector = 0
	if perDetector[1] > perDetector[0] {
		res.detector = 1
	}
	return total, lexPoints, shared
}

// vouched reports whether a client other than the earners of the domain
// dom's verdicts used it without scoring within the prevalence window.
func (e *Engine) vouched(dom uint64) bool {
	var buf [maxEarners]uint64
	return e.prev.others(dom, e.records.earnerKeys(dom, buf[:0])) > 0
}

// verdictScope returns the scope of the verdict a fresh detection res
// makes, and whether the domain is popular (issue 9, DESIGN.md
// "Verdicts"):
//   - at least PopularClients clients other than the earners (res's
//     client among them now) used the domain without scoring: client,
//     and popular: only an operator makes it fleet-wide;
//   - a detection that rests on the suspect-client rule (without its
//     points the score is under block): the evidence is about the
//     client, not the domain: client, unless FleetClients distinct
//     clients earned verdicts on the domain;
//   - no other client used it, or FleetClients earned it: fleet;
//   - otherwise client.
func (e *Engine) verdictScope(res *Result) (Scope, bool) {
	var buf [maxEarners + 1]uint64
	earners := e.records.earnerKeys(res.domainKey, buf[:0])
	if res.clientKey != 0 && !containsKey(earners, res.clientKey) {
		earners = append(earners, res.clientKey)
	}
	others := e.prev.others(res.domainKey, earners)
	// Both are evidence about the client, not the domain: its NXDOMAIN
	// burst and its run of DGA-like names. (A client's encoded bits across
	// domains are not: they are tunnel traffic to this domain too, and a
	// popular domain is protected by the first case below.)
	suspect := int(res.points[reasonClientNXBurst]) + int(res.points[reasonClientDGA])
	switch {
	case others >= e.cfg.PopularClients:
		return ScopeClient, true
	case suspect > 0 && int(res.own)-suspect < e.cfg.Block:
		if len(earners) >= e.cfg.FleetClients {
			return ScopeFleet, false
		}
		return ScopeClient, false
	case others == 0 || len(earners) >= e.cfg.FleetClients:
		return ScopeFleet, false
	}
	return ScopeClient, false
}
