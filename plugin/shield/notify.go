package shield

import (
	"net"
	"net/netip"

	"github.com/miekg/dns"
)

// NOTIFY (RFC 1996) for the lists kept by zone transfer. A primary that
// serves an RPZ zone to shield tells it of a change by a NOTIFY sent to
// shield's own port (its also-notify); shield answers the NOTIFY itself
// and never passes one on.

// serveNotify answers a NOTIFY: NOERROR, and a refresh now, when it names
// the zone of an axfr:// list and comes from that list's primary; REFUSED
// otherwise. A NOTIFY is rare, so this is off the hot path and may
// allocate.
func (s *Shield) serveNotify(w dns.ResponseWriter, r *dns.Msg) outcome {
	m := new(dns.Msg)
	if !r.Response && r.Question[0].Qtype == dns.TypeSOA && s.notifyFeeds(remoteAddr(w), r.Question[0].Name) {
		m.SetReply(r)
		m.Authoritative = true
	} else {
		m.SetRcode(r, dns.RcodeRefused)
	}
	w.WriteMsg(m)
	return answered
}

// notifyFeeds passes a NOTIFY for zone from the address from to the
// zone-transfer fetchers, and reports whether one of them took it.
func (s *Shield) notifyFeeds(from netip.Addr, zone string) bool {
	if !from.IsValid() {
		return false
	}
	took := false
	for _, f := range s.feeds.fetchers {
		if f.Notify(from, zone) {
			log.Debugf("list %q: NOTIFY for %s from %s: refreshing", f.List().Name(), zone, from)
			took = true
		}
	}
	return took
}

// remoteAddr returns the address a query came from, or the zero Addr.
func remoteAddr(w dns.ResponseWriter) netip.Addr {
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}
