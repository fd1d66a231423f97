// Package shield is a CoreDNS plugin that makes the resolver a protective
// DNS forwarder: it matches every query against allowlists and blocklists
// in the common formats, answers a blocked query itself (NXDOMAIN with an
// SOA, NODATA, REFUSED, a sinkhole address, or no answer) with an RFC 8914
// Extended DNS Error, and writes a structured audit record for every
// containment action. Lists reload hot and a bad update never replaces a
// good list.
//
// This package is the CoreDNS glue only: parsing the Corefile, serving
// queries, metrics, logging and readiness. The list formats and the
// matcher live in package blocklist, the audit records in package audit.
package shield

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metrics"
	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/dnsshield/shield/plugin/shield/audit"
	"github.com/dnsshield/shield/plugin/shield/blocklist"
	"github.com/miekg/dns"
)

var log = clog.NewWithPlugin(pluginName)

// Shield is the plugin handler. Its configuration is fixed after setup;
// the lists it points to swap their contents atomically on reload.
type Shield struct {
	Next plugin.Handler

	lists  []blocklist.Config // as configured, in order
	allows []*blocklist.List
	blocks []*blocklist.List

	action  action
	sink4   []netip.Addr
	sink6   []netip.Addr
	ttl     uint32
	monitor bool

	auditPath  string // "stdout", "off" or a file
	auditSize  int64
	auditKeep  int
	auditQueue int
	observer   string

	maxShrink  float64
	maxInvalid float64
	poll       time.Duration
	debounce   time.Duration

	gen     uint64 // parse order, to tell an abandoned reload's shields
	audit   *audit.Writer
	watcher *blocklist.Watcher

	contain *containment // nil unless a containment option is set (contain.go)
	detect  *detector    // detection options and engine (detect.go)
}

var _ plugin.Handler = (*Shield)(nil)

func newShield() *Shield {
	return &Shield{
		action:     actNXDomain,
		ttl:        defaultTTL,
		auditPath:  "stdout",
		auditSize:  defaultAuditSize,
		auditKeep:  defaultAuditKeep,
		auditQueue: defaultAuditQueue,
		observer:   hostname(),
		maxShrink:  defaultMaxShrink,
		maxInvalid: defaultMaxInvalid,
		poll:       defaultPoll,
		debounce:   defaultDebounce,
	}
}

// Name implements plugin.Handler.
func (s *Shield) Name() string { return pluginName }

// ServeDNS implements plugin.Handler. The decision path: an allowlist hit
// passes the query on; the first blocklist whose rule blocks the name
// answers it (or, in monitor mode, records it and passes it on); anything
// else passes on untouched. No lock is taken and, for a query that passes,
// nothing is allocated.
func (s *Shield) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if len(r.Question) != 1 || r.Question[0].Qclass != dns.ClassINET {
		return plugin.NextOrFailure(s.Name(), s.Next, ctx, w, r)
	}
	q := r.Question[0]
	// 256 bytes hold any name as it travels on the wire (255 octets); a
	// longer presentation form (escapes) spills to the heap. A bigger
	// frame would sit under every plugin after shield and make more
	// query goroutines grow their stacks.
	var buf [256]byte
	name := blocklist.NormalizeQuery(buf[:0], q.Name)
	server := metrics.WithServer(ctx)

	// Containment first: a quarantined client and the emergency blocks.
	if done, rc, err := s.serveContain(ctx, server, w, r, name); done {
		return rc, err
	}
	switch lm := s.matchLists(name); {
	case lm.allow != nil:
		countQuery(server, "allow")
		return plugin.NextOrFailure(s.Name(), s.Next, ctx, w, r)
	case lm.block != nil:
		return s.block(ctx, server, w, r, lm, name)
	}
	// Detection: sticky verdicts, scoring, and the pass to Next.
	return s.serveDetect(ctx, server, w, r, name)
}

// listMatch is what the lists say about a name: the allowlist that allows
// it, or else the first blocklist that blocks it, or neither.
type listMatch struct {
	allow *blocklist.List
	block *blocklist.List
	snap  *blocklist.Snapshot // the version of block (or allow) that matched
	m     blocklist.Match
}

// matchLists applies the lists to a normalised name: any allowlist beats
// every blocklist, and blocklists are consulted in the order configured.
// An adblock exception or RPZ passthru only stops its own list. The query
// path and the API's explain both decide through here.
func (s *Shield) matchLists(name []byte) listMatch {
	for _, l := range s.allows {
		if snap := l.Snapshot(); snap != nil {
			if m := snap.Set.LookupNormal(name); m.Action != blocklist.ActNone {
				return listMatch{allow: l, snap: snap, m: m}
			}
		}
	}
	for _, l := range s.blocks {
		snap := l.Snapshot()
		if snap == nil {
			continue
		}
		if m := snap.Set.LookupNormal(name); m.Action != blocklist.ActNone && m.Action != blocklist.ActAllow {
			return listMatch{block: l, snap: snap, m: m}
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

// block answers (or in monitor mode records) a query that list hit.
func (s *Shield) block(ctx context.Context, server string, w dns.ResponseWriter, r *dns.Msg, lm listMatch, name []byte) (int, error) {
	list, snap, m := lm.block.Name(), lm.snap, lm.m
	rule := string(name[m.Start:])
	ruleName := rule
	if m.Below && snap.Format == blocklist.FormatRPZ {
		ruleName = "*." + rule
	}
	act := s.listAction(m)
	event := "block"
	if act == actSinkhole {
		event = "sinkhole"
	}
	if s.monitor {
		event = "monitor"
	}
	listHits.WithLabelValues(server, list).Inc()
	countQuery(server, event)
	s.record(w, r, event, list, ruleName, snap.Version)
	s.noteBlock(clientAddr(w), list, r.Question[0].Name, nil)
	if s.monitor {
		return plugin.NextOrFailure(s.Name(), s.Next, ctx, w, r)
	}
	if act == actDrop {
		return dns.RcodeSuccess, nil
	}
	w.WriteMsg(s.answer(r, act, rule+".", "blocked by list "+list))
	return dns.RcodeSuccess, nil
}

// queryRecord returns the audit record of a decision about query r from
// client: time, action, client, question, mode and observer filled in.
func (s *Shield) queryRecord(r *dns.Msg, client netip.Addr, event string) audit.Record {
	q := r.Question[0]
	return audit.Record{
		Time:     time.Now(),
		Action:   event,
		Client:   client,
		QName:    q.Name,
		QType:    typeString(q.Qtype),
		Mode:     s.modeName(),
		Observer: s.observer,
	}
}

// record queues the audit record of a list block; it never blocks.
func (s *Shield) record(w dns.ResponseWriter, r *dns.Msg, event, list, rule, version string) {
	if s.audit == nil {
		return
	}
	rec := s.queryRecord(r, clientAddr(w), event)
	rec.Ruleset, rec.RuleName, rec.ListVersion = list, rule, version
	s.audit.Log(rec)
}

func (s *Shield) modeName() string {
	if s.monitor {
		return "monitor"
	}
	return "enforce"
}

func clientAddr(w dns.ResponseWriter) netip.Addr {
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
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
