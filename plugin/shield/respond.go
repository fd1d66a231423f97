package shield

import (
	"net/netip"
	"time"

	"github.com/dnsshield/shield/plugin/shield/audit"
	"github.com/dnsshield/shield/plugin/shield/contain"
	"github.com/miekg/dns"
)

// The one place that acts on a Decision: the metrics, the audit record,
// the escalation note and the reply. The stages decide and never write.

// act carries out d for q and returns what becomes of the query. A
// decision that leaves the query to the next stage and records nothing
// costs no call: this much is inlined into every stage's caller.
func (s *Shield) act(q *query, d Decision) outcome {
	if d.verb == verbUndecided && d.detail == nil {
		return askNextStage
	}
	return s.carryOut(q, d)
}

// carryOut is act for a decision that does something: the metrics, the
// audit record, the escalation note and the reply.
func (s *Shield) carryOut(q *query, d Decision) outcome {
	if d.count != "" {
		queries.WithLabelValues(q.server, d.count).Inc()
	}
	if d.detail != nil && d.event != "" {
		switch {
		case d.source.countsAsListHit():
			listHits.WithLabelValues(q.server, d.ruleset).Inc()
		case d.source == fromDetector:
			detections.WithLabelValues(q.server, d.rule, d.event).Inc()
		}
		s.record(q, d.detail)
		if d.also != nil {
			s.record(q, d.also)
		}
	}
	if d.detail != nil && d.escalationKind != "" {
		s.noteEscalation(q, d.escalationKind, d.reasons)
	}
	switch d.verb {
	case verbUndecided, verbNoted:
		return askNextStage
	case verbPass:
		if d.observe {
			return passObserved
		}
		return passOn
	}
	if d.action != actDrop {
		q.w.WriteMsg(s.reply(q.r, d.detail))
	}
	return answered
}

// reply builds the answer to r with d.action, as d details it. d.zone owns
// the SOA that makes NXDOMAIN and NODATA cacheable for the block ttl (RFC
// 2308). d.edeText becomes the EXTRA-TEXT of the RFC 8914 Extended DNS
// Error, which is attached when the query carried EDNS0 (RFC 6891 forbids
// an OPT record otherwise). Every TTL is at most d.ttlCap when it is set.
func (s *Shield) reply(r *dns.Msg, d *detail) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	switch d.action {
	case actNXDomain:
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{s.soa(d.zone)}
	case actRefused:
		m.Rcode = dns.RcodeRefused
	case actSinkhole:
		m.Answer = s.sinkholeRecords(r.Question[0], d.sink)
		if len(m.Answer) == 0 {
			m.Ns = []dns.RR{s.soa(d.zone)}
		}
	case actLocal:
		m.Answer = s.localRecords(r.Question[0], d.local) // answer.go
		if len(m.Answer) == 0 {
			m.Ns = []dns.RR{s.soa(d.zone)}
		}
	default: // actNoData
		m.Ns = []dns.RR{s.soa(d.zone)}
	}
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), opt.Do())
		o := m.IsEdns0()
		o.Option = append(o.Option, &dns.EDNS0_EDE{InfoCode: d.edeCode, ExtraText: d.edeText})
	}
	if d.ttlCap > 0 {
		capTTL(m, d.ttlCap)
	}
	return m
}

// sinkholeRecords returns the addresses of sink in the query's family;
// other query types get none, which makes the answer NODATA.
func (s *Shield) sinkholeRecords(q dns.Question, sink *sinkhole) []dns.RR {
	var addrs []netip.Addr
	switch q.Qtype {
	case dns.TypeA:
		addrs = sink.v4
	case dns.TypeAAAA:
		addrs = sink.v6
	}
	ttl := s.ttl
	if sink.ttl > 0 {
		ttl = sink.ttl
	}
	rrs := make([]dns.RR, 0, len(addrs))
	for _, a := range addrs {
		hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: ttl}
		if a.Is4() {
			rrs = append(rrs, &dns.A{Hdr: hdr, A: a.AsSlice()})
		} else {
			rrs = append(rrs, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
	return rrs
}

// soa returns the synthetic SOA placed in the authority section of a
// negative answer. Its MINIMUM and TTL are the block TTL, so the negative
// answer is cached no longer than a positive block answer would be.
func (s *Shield) soa(zone string) dns.RR {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: s.ttl},
		Ns:      "shield.invalid.",
		Mbox:    "hostmaster.shield.invalid.",
		Serial:  1,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  s.ttl,
	}
}

// capTTL lowers every TTL in m (and an SOA's MINIMUM) to at most ttl.
func capTTL(m *dns.Msg, ttl uint32) {
	for _, sec := range [][]dns.RR{m.Answer, m.Ns} {
		for _, rr := range sec {
			if h := rr.Header(); h.Ttl > ttl {
				h.Ttl = ttl
			}
			if soa, ok := rr.(*dns.SOA); ok && soa.Minttl > ttl {
				soa.Minttl = ttl
			}
		}
	}
}

// record queues the audit record of d; it never blocks.
func (s *Shield) record(q *query, d *detail) {
	if s.audit == nil {
		return
	}
	question := q.r.Question[0]
	s.audit.Log(audit.Record{
		Time:        q.Now(),
		Action:      d.event,
		Client:      q.Client(),
		QName:       question.Name,
		QType:       typeString(question.Qtype),
		Ruleset:     d.ruleset,
		RuleName:    d.rule,
		ListVersion: d.version,
		Score:       d.score,
		Reasons:     d.reasons,
		Domain:      d.domain,
		Scope:       d.scope,
		AnswerMatch: d.answer,
		Actor:       d.actor,
		Reason:      d.reason,
		Expires:     d.expires,
		Mode:        s.modeName(),
		Observer:    s.observer,
	})
}

// noteEscalation tells the escalation ladder that q's client was blocked:
// kind is the list name for a list hit, "emergency", or the detector name
// ("tunnel", "dga", ...) for a detection, reasons the detector's reasons.
// A rule that fires escalates (escalate.go). It must not block or allocate
// on the common path, and without escalate rules it costs nothing: not
// even the client's address or the time are looked up.
func (s *Shield) noteEscalation(q *query, kind string, reasons []string) {
	if s.warden == nil || s.warden.ladder == nil {
		return
	}
	client := q.Client()
	if !client.IsValid() {
		return
	}
	for _, fired := range s.warden.ladder.Note(client, kind, q.r.Question[0].Name, reasons, q.Now()) {
		s.escalate(fired)
	}
}

func (s *Shield) logAudit(r audit.Record) {
	if s.audit != nil {
		s.audit.Log(r)
	}
}

// quarantineRecord and blockRecord make the audit record of a change to
// the containment: by the API, by escalation or by expiry.
func (s *Shield) quarantineRecord(action, actor string, q contain.Quarantine) audit.Record {
	return audit.Record{
		Time: time.Now(), Action: action, Client: q.Client.Addr(), Ruleset: "quarantine",
		RuleName: contain.ClientText(q.Client), Actor: actor, Reason: q.Reason, Expires: q.Expires,
		Evidence: q.Evidence, Mode: s.modeName(), Observer: s.observer,
	}
}

func (s *Shield) blockRecord(action, actor string, b contain.Block) audit.Record {
	return audit.Record{
		Time: time.Now(), Action: action, QName: b.Name + ".", Ruleset: "emergency", RuleName: b.Name,
		Actor: actor, Reason: b.Reason, Expires: b.Expires, Mode: s.modeName(), Observer: s.observer,
	}
}

// modeName is shield.mode of the audit records.
func (s *Shield) modeName() string {
	if s.monitor {
		return "monitor"
	}
	return "enforce"
}

func typeString(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return "TYPE" + itoa(int(t))
}

func itoa(n int) string {
	var b [8]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}
