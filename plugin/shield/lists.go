package shield

import (
	"net/netip"

	"github.com/dnsshield/shield/plugin/shield/audit"
	"github.com/dnsshield/shield/plugin/shield/blocklist"
)

// decideLists is the second stage: an allowlist hit passes the query on,
// past detection; otherwise the first blocklist that blocks the name
// answers it with the list's action (in monitor mode, records it and
// passes it on). A name no list covers is left to detection.
func (s *Shield) decideLists(q *query) Decision {
	match := s.matchLists(q.name, q.request)
	if match.allow != nil {
		return Decision{verb: verbPass, count: "allow"}
	}
	if match.block == nil {
		return Decision{}
	}
	list := match.block.Name()
	var zone, ruleName string
	if match.client.IsValid() {
		// An rpz-client-ip rule: the SOA is the question's own.
		zone, ruleName = q.r.Question[0].Name, match.client.String()
	} else {
		// One string holds the zone of the answer's SOA and, without its
		// dot, the rule. Appending the dot writes past the end of q.name,
		// never into it.
		zone = string(append(q.name[match.rule.Start:], '.'))
		ruleName = zone[:len(zone)-1]
		if match.rule.Below && match.snap.Format == blocklist.FormatRPZ {
			ruleName = "*." + ruleName
		}
	}
	act := s.listAction(match.rule)
	event := audit.ActionBlock
	if act == actSinkhole {
		event = audit.ActionSinkhole
	}
	if s.monitor {
		event = audit.ActionMonitor
	}
	d := Decision{verb: verbAnswer, count: event, detail: &detail{
		source: fromList, event: event, action: act, ruleset: list, rule: ruleName, version: match.snap.Version, escalationKind: list}}
	if s.monitor {
		d.verb = verbPass
		return d
	}
	d.edeCode, d.edeText, d.zone, d.sink = edeBlocked, "blocked by list "+list, zone, &s.sink
	if act == actLocal {
		d.local = match.snap.RPZ.LocalData(ruleName)
	}
	return d
}

// listMatch is what the lists say about a name: the allowlist that allows
// it, or else the first blocklist that blocks it, or neither.
type listMatch struct {
	allow *blocklist.List
	block *blocklist.List
	snap  *blocklist.Snapshot // the version of block (or allow) that matched
	rule  blocklist.Match     // the rule that matched
	// client is the rpz-client-ip rule that matched the client's address;
	// invalid for a match on the name.
	client netip.Prefix
}

// matchLists applies the lists to a normalised name: any allowlist beats
// every blocklist, and blocklists are consulted in the order configured.
// An adblock exception or RPZ passthru only stops its own list. Within an
// RPZ zone, its rpz-client-ip rules are checked against req's client
// before its QNAME rules, as the RPZ draft orders them; req is nil where
// there is no client (an answer's CNAME target, explain without one).
// The query path, the answer stage and the API's explain decide through
// here.
func (s *Shield) matchLists(name []byte, req *request) listMatch {
	for _, l := range s.allows {
		if snap := l.Snapshot(); snap != nil {
			if m := snap.Set.LookupNormal(name); m.Action != blocklist.ActNone {
				return listMatch{allow: l, snap: snap, rule: m}
			}
		}
	}
	for _, l := range s.blocks {
		snap := l.Snapshot()
		if snap == nil {
			continue
		}
		if req != nil && snap.RPZ != nil && snap.RPZ.ClientIP.Len() > 0 {
			if im := snap.RPZ.ClientIP.Lookup(req.Client()); im.Action == blocklist.ActAllow {
				continue // rpz-passthru: this zone lets the client through
			} else if im.Action != blocklist.ActNone {
				return listMatch{block: l, snap: snap, rule: blocklist.Match{Action: im.Action}, client: im.Prefix}
			}
		}
		if m := snap.Set.LookupNormal(name); m.Action != blocklist.ActNone && m.Action != blocklist.ActAllow {
			return listMatch{block: l, snap: snap, rule: m}
		}
	}
	return listMatch{}
}

// listAction is the answer a block by m gets: the RPZ rule's own action
// where it has one, else the configured action.
func (s *Shield) listAction(m blocklist.Match) action {
	switch m.Action {
	case blocklist.ActNXDomain:
		return actNXDomain
	case blocklist.ActNoData:
		return actNoData
	case blocklist.ActDrop:
		return actDrop
	case blocklist.ActLocal:
		return actLocal
	}
	return s.action
}
