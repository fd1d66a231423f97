package shield

import (
	"context"
	"net/netip"
	"strings"
	"sync"

	"github.com/coredns/coredns/plugin"
	"github.com/dnsshield/shield/plugin/shield/audit"
	"github.com/dnsshield/shield/plugin/shield/blocklist"
	"github.com/dnsshield/shield/plugin/shield/score"
	"github.com/miekg/dns"
)

// The answer stage: after the upstream answers and before the reply
// leaves, the answer section is checked like the question was.
//
//   - Every CNAME, DNAME, SVCB and HTTPS target goes through the same
//     allowlists and blocklists as a query name (matchLists): an
//     allowlisted element is not blocked, but it does not unblock the
//     other elements of the chain, and a blocked question name never
//     reaches this stage.
//   - Every A and AAAA address goes through the IP lists (iplist) and the
//     rpz-ip triggers of the RPZ block lists, in the order configured.
//     The most specific prefix of a list wins; an rpz-ip passthru passes
//     the address, and an RPZ zone whose client-IP or QNAME rules matched
//     the query (a passthru: a block never got here) does not apply its
//     IP rules (client IP, then QNAME, then IP within a zone).
//   - With rebind_protect, a private, loopback, link-local or unspecified
//     address is blocked unless the question name is in one of the
//     internal domains given.
//
// Queries that an earlier stage trusted are not checked: a question name
// on an allowlist, a walled-garden name of a quarantined client (the
// remediation domains stay reachable whatever they resolve to), and
// monitor-mode matches, which were recorded already. Only queries that
// reached detection and passed are checked. An RPZ passthru (QNAME or
// client IP) passes its own zone only, as on the question side: the
// other lists and rebind_protect still check the answer.
//
// The records are scanned, not followed, so a CNAME loop costs one check
// per record like any chain. An answer with more than maxAnswerNames
// targets or maxAnswerAddrs addresses is not checked further: it is
// blocked as hostile (see limitDecision), since no real answer comes
// near those sizes and checking only a prefix of it would let a padded
// answer through.
//
// The stage is off (s.answer is nil, and the query passes through no
// writer of shield's) unless a blocklist, an iplist or rebind_protect is
// configured.

// Bounds on the work one answer may cause.
const (
	// maxAnswerNames caps the CNAME, DNAME, SVCB and HTTPS targets checked
	// in one answer. Resolvers give up on CNAME chains far shorter (BIND
	// follows 16 links, Unbound 11), so 64 leaves room for any real chain.
	maxAnswerNames = 64
	// maxAnswerAddrs caps the A and AAAA records checked in one answer.
	// The largest real answers (big CDN pools) hold a few dozen addresses.
	maxAnswerAddrs = 256
)

// answerStage is the configuration of the answer-side checks.
type answerStage struct {
	addrLists   []*blocklist.List // iplists and blocklists, in the order configured: where answer addresses are looked up
	rebind      bool              // rebind_protect is on
	rebindAllow []string          // its internal domains: normalised, no trailing dot
}

// Triggers of coredns_shield_answer_blocks_total.
const (
	triggerCNAME  = "cname"  // a CNAME target
	triggerDNAME  = "dname"  // a DNAME target
	triggerSVCB   = "svcb"   // an SVCB or HTTPS target
	triggerIP     = "ip"     // an answer address on an iplist or an rpz-ip trigger
	triggerRebind = "rebind" // a private answer address (rebind_protect)
	triggerLimit  = "limit"  // an answer past maxAnswerNames or maxAnswerAddrs
)

// finishAnswer turns the parsed options (rebind_protect made s.answer)
// into the answer stage, or turns it off when nothing would be checked.
func (s *Shield) finishAnswer() {
	a := s.answer
	if a == nil {
		a = &answerStage{}
	}
	if len(s.blocks) == 0 && len(s.ips) == 0 && !a.rebind {
		s.answer = nil
		return
	}
	// Addresses are looked up in the iplists and in the blocklists that
	// are or may turn out to be RPZ zones, in the order configured.
	byName := map[string]*blocklist.List{}
	for _, l := range s.ips {
		byName[l.Name()] = l
	}
	for _, l := range s.blocks {
		byName[l.Name()] = l
	}
	a.addrLists = nil
	for _, cfg := range s.lists {
		if l := byName[cfg.Name]; l != nil && (cfg.IP || cfg.Format == blocklist.FormatRPZ || cfg.Format == blocklist.FormatAuto) {
			a.addrLists = append(a.addrLists, l)
		}
	}
	s.answer = a
}

// passChecking passes the query on through an answerWriter. The writer
// checks the answer when the answer stage is on (check) and remembers its
// rcode; with observe, the rcode goes back to the detection engine: an
// NXDOMAIN for a suspect client's new domain like its burst is evidence
// of its own, and the engine turns the query into an alert
// (score.Engine.ObserveResponse).
func (s *Shield) passChecking(ctx context.Context, server string, w dns.ResponseWriter, r *dns.Msg, scored *score.Result, observe, check bool) (int, error) {
	aw := answerWriters.Get().(*answerWriter)
	aw.ResponseWriter, aw.rcode, aw.s, aw.server, aw.r, aw.check = w, -1, s, server, r, check
	rc, err := plugin.NextOrFailure(s.Name(), s.Next, ctx, aw, r)
	rcode := aw.rcode
	aw.ResponseWriter, aw.s, aw.r = nil, nil, nil
	answerWriters.Put(aw)
	if !observe {
		return rc, err
	}
	if rcode < 0 && err == nil && !plugin.ClientWrite(rc) {
		// The next plugin did not write: the server answers with rc.
		rcode = rc
	}
	if rcode >= 0 && s.detection.engine.ObserveResponse(scored, rcode) {
		s.actOnAnswerAlert(server, w, r, scored)
	}
	return rc, err
}

// answerWriter passes a response through, remembers its rcode and, with
// check, lets the answer stage replace it before it leaves. It is pooled:
// passing a query through it allocates nothing.
type answerWriter struct {
	dns.ResponseWriter
	rcode  int
	s      *Shield
	server string
	r      *dns.Msg
	check  bool
}

var answerWriters = sync.Pool{New: func() any { return new(answerWriter) }}

// WriteMsg implements dns.ResponseWriter.
func (w *answerWriter) WriteMsg(m *dns.Msg) error {
	w.rcode = m.Rcode
	if w.check && len(m.Answer) > 0 && w.s.checkAnswer(w.server, w.ResponseWriter, w.r, m) {
		return nil
	}
	return w.ResponseWriter.WriteMsg(m)
}

// Write implements dns.ResponseWriter for a plugin that writes wire
// format: the message is unpacked for the check (which allocates; the
// plugins shield forwards to write messages).
func (w *answerWriter) Write(b []byte) (int, error) {
	if len(b) >= 4 {
		w.rcode = int(b[3] & 0x0f)
	}
	if w.check {
		m := new(dns.Msg)
		if m.Unpack(b) == nil && len(m.Answer) > 0 && w.s.checkAnswer(w.server, w.ResponseWriter, w.r, m) {
			return len(b), nil
		}
	}
	return w.ResponseWriter.Write(b)
}

// checkAnswer decides about the answer m to r and acts on the decision:
// it reports whether it answered the query in m's place. It has a frame
// of its own, like decideAndAct, so the name buffer is not on the stack
// of the plugins below.
//
//go:noinline
func (s *Shield) checkAnswer(server string, w dns.ResponseWriter, r *dns.Msg, m *dns.Msg) bool {
	var req request
	req.w, req.r, req.server = w, r, server
	q := query{request: &req}
	d, trigger := s.decideAnswer(&q, m)
	if d.verb == verbUndecided && d.detail == nil {
		return false
	}
	if d.event != "" {
		answerBlocks.WithLabelValues(server, trigger).Inc()
	}
	// The SOA of a negative answer is the question name's: the answer,
	// not a list entry above the name, was blocked.
	d.zone = r.Question[0].Name
	return s.act(&q, d) == answered
}

// decideAnswer is the answer stage's decision about m, and the trigger
// that made it. It never writes. The name buffers live in the helpers'
// frames, so an answer with addresses only does not clear them.
func (s *Shield) decideAnswer(q *query, m *dns.Msg) (Decision, string) {
	names, addrs := 0, 0
	for _, rr := range m.Answer {
		var target, trigger, typ string
		var addr netip.Addr
		switch v := rr.(type) {
		case *dns.A:
			addr, _ = netip.AddrFromSlice(v.A)
			typ = "A"
		case *dns.AAAA:
			addr, _ = netip.AddrFromSlice(v.AAAA)
			typ = "AAAA"
		case *dns.CNAME:
			target, trigger, typ = v.Target, triggerCNAME, "CNAME"
		case *dns.DNAME:
			target, trigger, typ = v.Target, triggerDNAME, "DNAME"
		case *dns.SVCB:
			target, trigger, typ = v.Target, triggerSVCB, "SVCB"
		case *dns.HTTPS:
			target, trigger, typ = v.Target, triggerSVCB, "HTTPS"
		default:
			continue
		}
		if target != "" {
			if names++; names > maxAnswerNames {
				return s.limitDecision("more than " + itoa(maxAnswerNames) + " names"), triggerLimit
			}
			if d := s.decideTarget(typ, target); d.detail != nil {
				return d, trigger
			}
			continue
		}
		if !addr.IsValid() {
			continue
		}
		if addrs++; addrs > maxAnswerAddrs {
			return s.limitDecision("more than " + itoa(maxAnswerAddrs) + " addresses"), triggerLimit
		}
		if d, trig := s.decideAddr(q, typ, addr.Unmap()); d.detail != nil {
			return d, trig
		}
	}
	return Decision{}, ""
}

// decideTarget checks one CNAME, DNAME, SVCB or HTTPS target against the
// lists.
func (s *Shield) decideTarget(typ, target string) Decision {
	var buf [256]byte
	name := blocklist.NormalizeQuery(buf[:0], target)
	if len(name) == 0 { // "." : an SVCB target that means the owner
		return Decision{}
	}
	match := s.matchLists(name, nil)
	if match.block == nil {
		return Decision{}
	}
	return s.answerListDecision(match, name, typ+" "+target)
}

// decideAddr checks one answer address against the IP lists, the rpz-ip
// triggers and rebinding protection.
func (s *Shield) decideAddr(q *query, typ string, addr netip.Addr) (Decision, string) {
	for _, l := range s.answer.addrLists {
		snap := l.Snapshot()
		if snap == nil {
			continue
		}
		set := snap.IPs
		if snap.RPZ != nil {
			set = snap.RPZ.IP
		}
		act, bits := set.Find(addr)
		if act == blocklist.ActNone {
			continue
		}
		if snap.RPZ != nil && (s.qnameMatches(q, snap.Set) || snap.RPZ.ClientIP.Lookup(q.Client()).Action != blocklist.ActNone) {
			continue // the zone's client-IP or QNAME rules spoke for this query
		}
		if act == blocklist.ActAllow {
			return Decision{}, "" // rpz-passthru for the address
		}
		p, _ := addr.Prefix(int(bits))
		return s.answerIPDecision(l, snap, blocklist.IPMatch{Action: act, Prefix: p}, typ, addr), triggerIP
	}
	if s.answer.rebind && isRebindAddr(addr) && !s.internalName(q) {
		return s.rebindDecision(typ, addr), triggerRebind
	}
	return Decision{}, ""
}

// qnameMatches reports whether some rule of set matches q's name.
func (s *Shield) qnameMatches(q *query, set *blocklist.Set) bool {
	var buf [256]byte
	return set.LookupNormal(blocklist.NormalizeQuery(buf[:0], q.r.Question[0].Name)).Action != blocklist.ActNone
}

// answerListDecision blocks for a chain element (elem, as "CNAME name.")
// that a blocklist matched.
func (s *Shield) answerListDecision(match listMatch, name []byte, elem string) Decision {
	list := match.block.Name()
	rule := string(name[match.rule.Start:])
	ruleName := rule
	if match.rule.Below && match.snap.Format == blocklist.FormatRPZ {
		ruleName = "*." + rule
	}
	d := s.answerBlock(s.listAction(match.rule), fromList, list, ruleName, match.snap.Version, elem)
	if d.verb == verbAnswer {
		d.edeCode, d.edeText = edeBlocked, "blocked by list "+list+": "+elemText(elem)
		if d.action == actLocal {
			d.local = match.snap.RPZ.LocalData(ruleName)
		}
	}
	return d
}

// elemText is how an EDE names an answer element: "CNAME target x." for a
// name, "answer address a" for an address.
func elemText(elem string) string {
	typ, val, _ := strings.Cut(elem, " ")
	switch typ {
	case "A", "AAAA":
		return "answer address " + val
	}
	return typ + " target " + val
}

// answerIPDecision blocks for an address that an iplist or an rpz-ip
// trigger matched.
func (s *Shield) answerIPDecision(l *blocklist.List, snap *blocklist.Snapshot, im blocklist.IPMatch, typ string, addr netip.Addr) Decision {
	act := s.action
	switch im.Action {
	case blocklist.ActNXDomain:
		act = actNXDomain
	case blocklist.ActNoData:
		act = actNoData
	case blocklist.ActDrop:
		act = actDrop
	}
	rule := im.Prefix.String()
	if im.Prefix.IsSingleIP() {
		rule = im.Prefix.Addr().String()
	}
	d := s.answerBlock(act, fromList, l.Name(), rule, snap.Version, typ+" "+addr.String())
	if d.verb == verbAnswer {
		d.edeCode, d.edeText = edeBlocked, "blocked by list "+l.Name()+": answer address "+addr.String()
	}
	return d
}

// rebindDecision blocks a private answer address for a public name.
func (s *Shield) rebindDecision(typ string, addr netip.Addr) Decision {
	d := s.answerBlock(s.action, fromAnswer, "rebind", addr.String(), "", typ+" "+addr.String())
	if d.verb == verbAnswer {
		d.edeCode, d.edeText = edeBlocked, "blocked by rebind protection: answer address "+addr.String()
	}
	return d
}

// limitDecision blocks an answer too big to check (see maxAnswerNames).
func (s *Shield) limitDecision(what string) Decision {
	d := s.answerBlock(s.action, fromAnswer, "answer_limit", what, "", "")
	if d.verb == verbAnswer {
		d.edeCode, d.edeText = edeFiltered, "answer not checked: "+what
	}
	return d
}

// answerBlock is a Decision of the answer stage: the block (or, in
// monitor mode, the record) of the question because of an element of
// its answer. It is counted in coredns_shield_answer_blocks_total (by
// checkAnswer), not again in queries_total, which counted the query as it
// passed.
func (s *Shield) answerBlock(act action, src source, ruleset, rule, version, elem string) Decision {
	event := audit.ActionBlock
	if act == actSinkhole {
		event = audit.ActionSinkhole
	}
	if s.monitor {
		event = audit.ActionMonitor
	}
	d := Decision{verb: verbAnswer, detail: &detail{source: src, event: event, action: act, ruleset: ruleset,
		rule: rule, version: version, answer: elem, sink: &s.sink}}
	if src == fromList {
		d.escalationKind = ruleset
	}
	if s.monitor {
		d.verb = verbPass
	}
	return d
}

// isRebindAddr reports whether a is an address a public name must not
// resolve to: private (RFC 1918, RFC 4193), shared (RFC 6598, 100.64/10),
// loopback, link-local or unspecified.
func isRebindAddr(a netip.Addr) bool {
	return a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsUnspecified() ||
		cgnat.Contains(a) || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast()
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// internalName reports whether q's name is one of the rebind_protect
// domains or below one.
func (s *Shield) internalName(q *query) bool {
	var buf [256]byte
	name := blocklist.NormalizeQuery(buf[:0], q.r.Question[0].Name)
	for _, d := range s.answer.rebindAllow {
		n := len(name)
		if n == len(d) && string(name) == d ||
			n > len(d) && name[n-len(d)-1] == '.' && string(name[n-len(d):]) == d {
			return true
		}
	}
	return false
}

// localRecords returns the records of an RPZ local-data rule for the
// question: a CNAME to the walled-garden name whatever the type (the
// client's resolver follows it), or the rule's addresses of the
// question's family; none (NODATA) for other types.
func (s *Shield) localRecords(q dns.Question, d *blocklist.LocalData) []dns.RR {
	if d == nil {
		return nil
	}
	if d.CNAME != "" {
		return []dns.RR{&dns.CNAME{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: s.ttl}, Target: d.CNAME}}
	}
	var rrs []dns.RR
	for _, a := range d.Addrs {
		hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: s.ttl}
		switch {
		case a.Is4() && q.Qtype == dns.TypeA:
			rrs = append(rrs, &dns.A{Hdr: hdr, A: a.AsSlice()})
		case a.Is6() && q.Qtype == dns.TypeAAAA:
			rrs = append(rrs, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
	return rrs
}
