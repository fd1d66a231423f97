package shield

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/dnsshield/shield/plugin/shield/api"
	"github.com/dnsshield/shield/plugin/shield/audit"
	"github.com/dnsshield/shield/plugin/shield/blocklist"
	"github.com/dnsshield/shield/plugin/shield/contain"
)

// Containment: client quarantine with a walled garden, emergency domain
// blocks, the escalation ladder, the state file and the management API.
// The state itself lives in package contain and the HTTP side in package
// api. The glue is split by concern: the first stage of the query path
// (this file), the Corefile options (containsetup.go), escalation
// (escalate.go), the state file, sweep and gauges (containstate.go), and
// the API server (apiserver.go, apibackend.go).

// warden is the containment of one Shield: its options, the quarantine
// and emergency-block store, the escalation ladder, the state writer and
// the API server it holds. It is nil when no containment option is set.
type warden struct {
	gardenCfgs []blocklist.Config
	garden     []*blocklist.List

	action    action   // actSinkhole or actNXDomain
	actionSet bool     // quarantine_action was given
	sink      sinkhole // the quarantine's own addresses, with TTL quarantineTTL

	defTTL, maxTTL       time.Duration
	ttlSet               bool
	maxSpace4, maxSpace6 uint64 // quarantine_cap; 0 is the store's default
	capSet               bool
	rules                []contain.Rule
	statePath            string
	apiAddr              string
	tokensPath           string
	tokens               *api.Tokens
	tlsCert, tlsKey      string // api_tls; "" serves plain HTTP
	insecure             bool   // api_insecure: plain HTTP off loopback

	store  *contain.Store
	ladder *contain.Ladder // nil without escalate rules

	stopc   chan struct{}
	done    chan struct{}
	api     string       // address of the API server this Shield holds, "" if none
	handler http.Handler // this Shield's API handler

	gaugeQ, gaugeB atomic.Int64 // this Shield's share of the active gauges
}

// decideContainment is the first stage: a name under an emergency block
// gets the block action, whoever asks; a quarantined client gets the
// quarantine action, except for names in its walled garden, which pass
// on. In monitor mode both are recorded and the lists still decide.
func (s *Shield) decideContainment(q *query) Decision {
	if s.warden == nil || s.warden.store == nil || !s.warden.store.Active() {
		return Decision{}
	}
	store := s.warden.store
	if store.HasBlocks() {
		if blocked := store.LookupBlock(q.name, q.Now()); blocked != nil {
			return s.emergencyDecision(q, blocked)
		}
	}
	if !store.HasQuarantines() {
		return Decision{}
	}
	if quarantined := store.Lookup(q.Client(), q.Now()); quarantined != nil {
		return s.quarantineDecision(q, quarantined)
	}
	return Decision{}
}

// emergencyDecision answers a query for a name under an emergency block
// with the block action. The answer is cached for seconds only, like a
// quarantine answer: an emergency block is temporary, and an unblock or
// its expiry must take effect downstream too.
func (s *Shield) emergencyDecision(q *query, blocked *contain.BlockEntry) Decision {
	event := audit.ActionBlock
	if s.action == actSinkhole {
		event = audit.ActionSinkhole
	}
	if s.monitor {
		event = audit.ActionMonitor
	}
	d := Decision{verb: verbAnswer, count: event, detail: &detail{
		source: fromEmergency, event: event, action: s.action, ruleset: "emergency", rule: blocked.Name, actor: blocked.Actor, reason: blocked.Reason,
		expires: blocked.Expires, escalationKind: "emergency"}}
	if s.monitor {
		d.verb = verbNoted
		return d
	}
	left := max(1, blocked.Expires.Sub(q.Now())/time.Second)
	d.edeCode, d.edeText, d.zone, d.sink = edeBlocked, blocked.EDEText, blocked.Name+".", &s.sink
	d.ttlCap = min(quarantineTTL, uint32(left))
	return d
}

// quarantineDecision decides a query from a quarantined client: a name in
// its walled garden passes on, anything else gets the quarantine action,
// whose SOA is owned by the query name itself. Neither counts towards
// escalation: the client is contained already.
func (s *Shield) quarantineDecision(q *query, quarantined *contain.Entry) Decision {
	d := Decision{detail: &detail{source: fromQuarantine, ruleset: "quarantine", rule: quarantined.ClientText,
		actor: quarantined.Actor, reason: quarantined.Reason, expires: quarantined.Expires}}
	for _, garden := range s.warden.garden {
		if garden.LookupNormal(q.name).Action != blocklist.ActNone {
			d.verb, d.count, d.event, d.ruleset = verbPass, "walled_garden", "walled_garden", garden.Name()
			return d
		}
	}
	if s.monitor {
		// Recorded, not counted as a query action: the lists decide that.
		d.verb, d.event = verbNoted, audit.ActionMonitor
		return d
	}
	d.verb, d.action, d.count, d.event = verbAnswer, s.warden.action, "quarantine", audit.ActionBlock
	if d.action == actSinkhole {
		d.event = audit.ActionSinkhole
	}
	d.edeCode, d.edeText, d.zone, d.sink = edeBlocked, quarantined.EDEText, q.r.Question[0].Name, &s.warden.sink
	d.ttlCap = quarantineTTL
	return d
}

// gardenLists returns the walled-garden lists, for the list watcher.
func (s *Shield) gardenLists() []*blocklist.List {
	if s.warden == nil {
		return nil
	}
	return s.warden.garden
}
