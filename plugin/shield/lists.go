package shield

import (
	"github.com/dnsshield/shield/plugin/shield/audit"
	"github.com/dnsshield/shield/plugin/shield/blocklist"
)

// decideLists is the second stage: an allowlist hit passes the query on,
// past detection; otherwise the first blocklist that blocks the name
// answers it with the list's action (in monitor mode, records it and
// passes it on). A name no list covers is left to detection.
func (s *Shield) decideLists(q *query) Decision {
	match := s.matchLists(q.name)
	if match.allow != nil {
		return Decision{verb: verbPass, count: "allow"}
	}
	if match.block == nil {
		return Decision{}
	}
	list := match.block.Name()
	// One string holds the zone of the answer's SOA and, without its dot,
	// the rule. Appending the dot writes past the end of q.name, never
	// into it.
	zone := string(append(q.name[match.rule.Start:], '.'))
	rule := zone[:len(zone)-1]
	ruleName := rule
	if match.rule.Below && match.snap.Format == blocklist.FormatRPZ {
		ruleName = "*." + rule
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
	return d
}

// listMatch is what the lists say about a name: the allowlist that allows
// it, or else the first blocklist that blocks it, or neither.
type listMatch struct {
	allow *blocklist.List
	block *blocklist.List
	snap  *blocklist.Snapshot // the version of block (or allow) that matched
	rule  blocklist.Match     // the rule that matched
}

// matchLists applies the lists to a normalised name: any allowlist beats
// every blocklist, and blocklists are consulted in the order configured.
// An adblock exception or RPZ passthru only stops its own list. The query
// path and the API's explain both decide through here.
func (s *Shield) matchLists(name []byte) listMatch {
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
	}
	return s.action
}
