package shield

import (
	"net/netip"

	"github.com/miekg/dns"
)

// action is how a blocked query is answered.
type action uint8

const (
	actNXDomain action = iota
	actNoData
	actRefused
	actDrop
	actSinkhole
)

var actionByName = map[string]action{
	"nxdomain": actNXDomain,
	"nodata":   actNoData,
	"refused":  actRefused,
	"drop":     actDrop,
	"sinkhole": actSinkhole,
}

// answer builds the reply to a blocked query. zone is the fully qualified
// name of the rule that matched; it owns the SOA that makes NXDOMAIN and
// NODATA cacheable for ttl seconds (RFC 2308). reason becomes the
// EXTRA-TEXT of the RFC 8914 Extended DNS Error, which is attached when
// the query carried EDNS0 (RFC 6891 forbids an OPT record otherwise).
func (s *Shield) answer(r *dns.Msg, act action, zone, reason string) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	q := r.Question[0]
	switch act {
	case actNXDomain:
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{s.soa(zone)}
	case actRefused:
		m.Rcode = dns.RcodeRefused
	case actSinkhole:
		m.Answer = s.sinkholeRRs(q)
		if len(m.Answer) == 0 {
			m.Ns = []dns.RR{s.soa(zone)}
		}
	default: // actNoData
		m.Ns = []dns.RR{s.soa(zone)}
	}
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), opt.Do())
		ede := &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeBlocked, ExtraText: reason}
		o := m.IsEdns0()
		o.Option = append(o.Option, ede)
	}
	return m
}

// sinkholeRRs returns the sinkhole addresses of the query's family; other
// query types get none, which makes the answer NODATA.
func (s *Shield) sinkholeRRs(q dns.Question) []dns.RR {
	var addrs []netip.Addr
	switch q.Qtype {
	case dns.TypeA:
		addrs = s.sink4
	case dns.TypeAAAA:
		addrs = s.sink6
	}
	rrs := make([]dns.RR, 0, len(addrs))
	for _, a := range addrs {
		hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: s.ttl}
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
