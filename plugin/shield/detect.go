package shield

import (
	"net/netip"

	"github.com/dnsshield/shield/plugin/shield/audit"
	"github.com/dnsshield/shield/plugin/shield/score"
	"github.com/miekg/dns"
)

// Detection: the glue between the plugin and package score. Every query
// that no list decided is scored; a score at or above the alert threshold
// is recorded, one at or above the block threshold blocks the query (EDE
// 17, Filtered, with the top reason, every TTL at most 30 s) and makes a
// verdict sticky for the registered domain, scoped to the client or to
// the fleet (score.Scope). A query that passes goes on with its answer's
// rcode fed back to the engine (ServeDNS); an NXDOMAIN answer to a
// suspect client can itself raise an alert (answerAlert).
//
// Only a client's own detections escalate it: a query blocked by a
// verdict that did not itself score at or above block (a sticky-only
// hit, score.Result.Detected false) is recorded but never counts towards
// the client's escalation, so clients that merely resolve a blocked
// domain are never quarantined for it (issue 9).

// decideDetection is the last stage: it scores the query into q.scored
// and decides on the engine's verdict. Every query it sees passes unless
// it blocks; one that was scored goes on with its answer fed back to the
// engine, except a would-be block in monitor mode (its verdict is sticky
// already).
func (s *Shield) decideDetection(q *query) Decision {
	if s.detection == nil || s.detection.engine == nil {
		return Decision{verb: verbPass, count: "pass"}
	}
	question := q.r.Question[0]
	scored := q.scored
	*scored = s.detection.engine.Score(score.Query{Name: question.Name, Type: question.Qtype, Client: q.Client()})
	if scored.Exempt {
		return Decision{verb: verbPass, count: "pass"}
	}
	switch scored.Action {
	case score.Block:
		d := detectionDecision(scored)
		d.scope = scored.Scope.String()
		if scored.Detected {
			d.escalationKind = d.rule
		}
		if scored.Popular {
			d.also = popularAlert(d.detail)
		}
		if s.monitor {
			d.verb, d.count, d.event = verbPass, "monitor", audit.ActionMonitor
			return d
		}
		d.verb, d.action, d.count, d.event = verbAnswer, s.action, "block", audit.ActionBlock
		d.edeCode, d.edeText, d.zone, d.sink = edeFiltered, "detected "+d.rule+": "+scored.TopReason(), d.domain+".", &s.sink
		d.ttlCap = quarantineTTL
		return d
	case score.Alert:
		d := detectionDecision(scored)
		d.verb, d.observe, d.count, d.event = verbPass, true, "pass", audit.ActionAlert
		return d
	}
	return Decision{verb: verbPass, observe: true, count: "pass"}
}

// answerAlert is the decision for a query whose answer the engine turned
// into an alert (score.Engine.ObserveResponse): recorded, and not counted
// again as a query.
func answerAlert(scored *score.Result) Decision {
	d := detectionDecision(scored)
	d.verb, d.event = verbPass, audit.ActionAlert
	return d
}

// popularAlert is the alert that goes with a detection on a popular
// domain: the verdict stays with the client, and an operator decides
// whether the whole fleet should be blocked.
func popularAlert(d *detail) *detail {
	return &detail{source: fromDetector, event: audit.ActionAlert, ruleset: "detect", rule: d.rule, score: d.score,
		reasons: d.reasons, domain: d.domain, scope: "client", reason: "popular domain: the verdict blocks only the clients " +
			"that earned it; an operator must promote it to block the fleet (shieldctl promote " + d.domain + ")"}
}

// detectionDecision returns the why of a detection: the detector, the
// score, the reasons and the registered domain.
func detectionDecision(scored *score.Result) Decision {
	return Decision{detail: &detail{source: fromDetector, ruleset: "detect", rule: scored.Detector(),
		score: scored.Score, reasons: scored.Reasons(), domain: scored.Domain()}}
}

// explainDetect returns what the detectors would say about a query for
// name from client, without recording or changing any state (for the
// management API's explain endpoint). ok is false when detection is off
// or the name is exempt.
func (s *Shield) explainDetect(name string, client netip.Addr) (res score.Result, ok bool) {
	if s.detection == nil || s.detection.engine == nil {
		return res, false
	}
	res = s.detection.engine.Explain(score.Query{Name: dns.Fqdn(name), Type: dns.TypeA, Client: client})
	return res, !res.Exempt
}
