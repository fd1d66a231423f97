package shield

import (
	"net/netip"
	"time"

	"github.com/dnsshield/shield/plugin/shield/blocklist"
)

// Decision is what one stage of the query path decided about a query, and
// why. The stages (containment, lists, detection) only decide; act in
// respond.go carries a Decision out: the one reply, the one audit record,
// the metrics and the escalation note. A new stage or a new kind of match
// (answer-side checks, client groups, verdict scopes) fills in the same
// fields and needs no change to act.
//
// The zero Decision decides nothing: the next stage is asked. A Decision
// is a small value: a decision that only passes or counts the query has
// no detail and allocates nothing; one that records or answers carries
// its detail behind a pointer. With at most four fields it stays in
// registers from the stage to act; a bigger one went through memory, and
// the copies cost more than the rest of a stage.
type Decision struct {
	verb    verb
	observe bool   // for verbPass: the answer's rcode goes back to the detection engine
	count   string // the action label of coredns_shield_queries_total; "" counts nothing

	*detail // nil unless the decision records, answers or escalates
}

// detail is what a Decision that does more than count the query carries:
// why, as the audit record gives it, how the answer looks, and what the
// block counts as on the escalation ladder.
type detail struct {
	source source // what decided, for the metrics
	event  string // the audit record's event.action; "" writes no record

	// Why.
	ruleset string    // rule.ruleset: the list, "emergency", "quarantine", a walled garden or "detect"
	rule    string    // rule.name: the entry, the quarantined client or the detector
	version string    // shield.list_version of the list that matched
	score   int       // shield.score of a detection
	reasons []string  // shield.reasons of a detection, the strongest first
	domain  string    // dns.question.registered_domain and shield.registered_domain of a detection
	scope   string    // shield.scope of a detection's verdict: "client" or "fleet"
	actor   string    // who made the quarantine or emergency block
	reason  string    // and why
	expires time.Time // when it ends

	// The answer, for verbAnswer.
	action  action               // how the query is answered (actDrop: not at all)
	edeCode uint16               // RFC 8914 INFO-CODE: 15 Blocked (lists, containment) or 17 Filtered (detection)
	edeText string               // its EXTRA-TEXT
	zone    string               // the fully qualified owner of a negative answer's SOA
	ttlCap  uint32               // every TTL of the answer at most this many seconds; 0 for no cap
	sink    *sinkhole            // where actSinkhole points: the block action's addresses or the quarantine's
	local   *blocklist.LocalData // what actLocal answers: an RPZ rule's local data

	// answer is shield.answer_match: the element of the upstream's answer
	// that the answer stage matched, as "CNAME name." or "A 192.0.2.1".
	answer string

	// escalationKind is what the block counts as on the escalation ladder:
	// the list name, "emergency" or the detector name. "" does not count.
	escalationKind string

	// also is a second record the decision writes: the alert that a
	// detection on a popular domain stays client-scoped until an operator
	// promotes it.
	also *detail
}

// verb is what a Decision does with the query.
type verb uint8

const (
	// verbUndecided leaves the query to the next stage.
	verbUndecided verb = iota
	// verbNoted counts and records the match, and still leaves the query
	// to the next stage: a containment match in monitor mode, which must
	// not hide what the lists say.
	verbNoted
	// verbPass passes the query on to the next plugin. With an event it
	// is recorded too (pass-and-record): an alert, a walled-garden name, a
	// would-be block in monitor mode.
	verbPass
	// verbAnswer answers the query with the detail's action; a Decision
	// that answers always has a detail.
	verbAnswer
)

// source is what made a Decision.
type source uint8

const (
	fromNone       source = iota
	fromQuarantine        // a quarantined client (its walled garden included)
	fromEmergency         // an emergency block
	fromList              // an allowlist or a blocklist
	fromDetector          // the detection engine
	fromAnswer            // the answer stage's own rules: rebinding protection and the size limits (answer.go)
)

// countsAsListHit reports whether a match from src is counted in
// coredns_shield_list_hits_total, by list.
func (src source) countsAsListHit() bool { return src == fromList || src == fromEmergency }

// RFC 8914 INFO-CODEs of shield's answers.
const (
	edeBlocked      = 15 // a list, an emergency block or a quarantine
	edeFiltered     = 17 // a detection
	edeNotSupported = 21 // a zone transfer
)

// quarantineTTL caps the TTL of answers to a quarantined client, of
// emergency block answers and of detection block answers, so that a
// release, an unblock or a cleared verdict takes effect within seconds
// even where the client caches.
const quarantineTTL = 30

// action is how a blocked query is answered.
type action uint8

const (
	actNXDomain action = iota
	actNoData
	actRefused
	actDrop
	actSinkhole
	actLocal // an RPZ rule's local data: a CNAME to a walled garden, or addresses
)

var actionByName = map[string]action{
	"nxdomain": actNXDomain,
	"nodata":   actNoData,
	"refused":  actRefused,
	"drop":     actDrop,
	"sinkhole": actSinkhole,
}

// actionName returns the Corefile name of a.
func actionName(a action) string {
	for n, v := range actionByName {
		if v == a {
			return n
		}
	}
	return "block"
}

// sinkhole is where actSinkhole points a query: addresses by family, and
// the TTL of the address records.
type sinkhole struct {
	v4, v6 []netip.Addr
	// ttl is the TTL of the address records; 0 takes the block ttl. The
	// quarantine's records have always had quarantineTTL.
	ttl uint32
}
