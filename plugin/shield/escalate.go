package shield

import (
	"fmt"
	"strings"
	"time"

	"github.com/dnsshield/shield/plugin/shield/audit"
	"github.com/dnsshield/shield/plugin/shield/contain"
)

// Escalation: the last rung of the containment ladder. act notes every
// block that counts towards escalation (noteEscalation in respond.go); an
// escalate rule that fires for a client lands here.

// escalate quarantines the client of a rule that fired, or in monitor
// mode records that it would have. Either way it writes the quarantine's
// audit record, with the blocks that counted as its evidence.
func (s *Shield) escalate(fired contain.Escalation) {
	actor := "policy:" + fired.Rule.Name
	reason := fmt.Sprintf("%d blocks of %s within %s", fired.Rule.Count, strings.Join(fired.Rule.Kinds, ","), fired.Rule.Window)
	mode := s.modeName()
	escalations.WithLabelValues(fired.Rule.Name, mode).Inc()
	rec := audit.Record{
		Time: time.Now(), Action: audit.ActionQuarantine, Client: fired.Client, Ruleset: "quarantine",
		RuleName: contain.ClientText(fired.Key), Actor: actor, Reason: reason, Evidence: fired.Evidence,
		Mode: mode, Observer: s.observer,
	}
	if s.monitor {
		rec.Expires = rec.Time.Add(fired.Rule.TTL)
		s.logAudit(rec)
		return
	}
	// The key, not the address: an IPv6 client is its /64, so a host
	// cannot dodge the quarantine by moving within it.
	quarantine, err := s.warden.store.Quarantine(fired.Key, fired.Rule.TTL, reason, actor, fired.Evidence)
	if err != nil {
		// The store is full, or the quarantine would pass the cap on the
		// address space in quarantine (the ladder never forces): the
		// bounds protect memory and the network. Counted, and the record
		// still says what the policy wanted.
		kind := "full"
		if contain.NeedsForce(err) {
			kind = "cap"
		}
		containErrors.WithLabelValues(kind).Inc()
		rec.Expires = rec.Time.Add(fired.Rule.TTL)
		rec.Reason += " (not enforced: " + err.Error() + ")"
		s.logAudit(rec)
		return
	}
	rec.Expires = quarantine.Expires
	s.logAudit(rec)
}
