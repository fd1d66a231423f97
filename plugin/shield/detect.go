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
// 17, Filtered, with the top reason) and makes the verdict sticky for the
// registered domain. A query that passes goes on with its answer's rcode
// fed back to the engine (ServeDNS); an NXDOMAIN answer to a suspect
// client can itself raise an alert (answerAlert).

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
		d.escalationKind = d.rule
		if s.monitor {
			d.verb, d.count, d.event = verbPass, "monitor", audit.ActionMonitor
			return d
		}
		d.verb, d.action, d.count, d.event = verbAnswer, s.action, "block", audit.ActionBlock
		d.edeCode, d.edeText, d.zone, d.sink = edeFiltered, "detected "+d.rule+": "+scored.TopReason(), d.domain+".", &s.sink
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

// detectionDecision returns the why of a detection: the detector, the
// score, the reasons and the registered domain.
func detectionDecision(scored *score.Result) Decision {
	return Decision{detail: &detail{source: fromDetector, ruleset: "detect", rule: scored.Detector(),
		score: scored.Score, reasons: scored.Reasons(), domain: scored.Domain()}}
}

// explainDetect returns what the detectors would say about a query for
// name from client: the score, the reasons and whether a sticky verdict
// holds, without recording or changing any state (for the management
// API's explain endpoint).
func (s *Shield) explainDetect(name string, client netip.Addr) (int, []string, bool) {
	if s.detection == nil || s.detection.engine == nil {
		return 0, nil, false
	}
	scored := s.detection.engine.Explain(score.Query{Name: dns.Fqdn(name), Type: dns.TypeA, Client: client})
	if scored.Exempt {
		return 0, nil, false
	}
	return scored.Score, scored.Reasons(), scored.Sticky
}
