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
// matcher live in package blocklist, the audit records in package audit,
// the containment state in package contain, the detection engine in
// package score and the management API in package api.
//
// A query's path: ServeDNS (this file) refuses zone transfers and asks
// the stages in order, the containment (contain.go), the lists (lists.go)
// and detection (detect.go). Each returns a Decision (decision.go) and does nothing
// else; act (respond.go) carries it out.
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
	"github.com/dnsshield/shield/plugin/shield/score"
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
	ips    []*blocklist.List // iplist: addresses for the answer stage

	answer *answerStage // the answer-side checks (answer.go); nil when off

	action  action
	sink    sinkhole // the addresses of action sinkhole
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
	feeds   feeds // lists fetched from HTTP(S) feeds (feeds.go)

	warden    *warden    // nil unless a containment option is set (contain.go)
	detection *detection // detection options and engine (detect.go)

	trimming bool // holds the process-wide memory trimmer (memtrim.go)
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

// ServeDNS implements plugin.Handler. A query takes one path, read
// top-down: decideAndAct normalises the question, asks the stages in
// order (containment, lists, detection) and acts on what they decide;
// then the query is either answered already or passed on, through a
// writer that feeds the answer's rcode back to the detection engine when
// the detection stage asked for it. No lock is taken and, for a query
// that passes, nothing is allocated.
func (s *Shield) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if len(r.Question) != 1 || (r.Question[0].Qclass != dns.ClassINET && !isZoneTransfer(r.Question[0].Qtype)) {
		return plugin.NextOrFailure(s.Name(), s.Next, ctx, w, r)
	}
	server := metrics.WithServer(ctx)
	// The detection stage leaves the engine's result here: after Next it
	// learns what the upstream answered.
	var scored score.Result
	switch s.decideAndAct(server, w, r, &scored) {
	case answered:
		return dns.RcodeSuccess, nil
	case passObserved:
		return s.passChecking(ctx, server, w, r, &scored, true, s.answer != nil) // answer.go
	case passOn:
		if s.answer != nil {
			return s.passChecking(ctx, server, w, r, &scored, false, true)
		}
	}
	// passTrusted, and passOn with the answer stage off.
	return plugin.NextOrFailure(s.Name(), s.Next, ctx, w, r)
}

// outcome is what becomes of a query once a Decision is carried out.
type outcome uint8

const (
	askNextStage outcome = iota // nothing decided yet: the next stage decides
	answered                    // shield answered the query (or dropped it)
	passOn                      // the query goes on to the next plugin, and its answer to the answer stage
	passObserved                // it goes on, and the answer's rcode goes back to the detection engine
	passTrusted                 // it goes on, and its answer is not checked: an allowlisted or walled-garden name
)

// decideAndAct normalises the question, asks the stages in order and acts
// on their decisions: the first stage that decides ends the walk (a
// containment match in monitor mode is recorded and leaves the query to
// the lists). A zone transfer is refused before any stage.
//
// It runs in a frame of its own, gone before the next plugin runs: the
// name buffer, the decisions and the audit and answer temporaries would
// otherwise sit under cache and forward, and a deeper stack makes more
// query goroutines grow theirs.
//
//go:noinline
func (s *Shield) decideAndAct(server string, w dns.ResponseWriter, r *dns.Msg, scored *score.Result) outcome {
	if r.Opcode == dns.OpcodeNotify { // notify.go: a primary's NOTIFY for an axfr:// list
		return s.serveNotify(w, r)
	}
	// 256 bytes hold any name as it travels on the wire (255 octets); a
	// longer presentation form (escapes) spills to the heap.
	var buf [256]byte
	// Field by field: a composite literal is built aside and copied.
	var req request
	req.w, req.r, req.server = w, r, server
	var q query
	q.request, q.scored = &req, scored
	q.name = blocklist.NormalizeQuery(buf[:0], r.Question[0].Name)

	if next := s.act(&q, s.decideTransfer(&q)); next != askNextStage { // this file, respond.go
		return next
	}
	// A name that containment or the lists let pass was trusted (a walled
	// garden, an allowlist, a passthru) or, in monitor mode, recorded:
	// the answer stage leaves its answer alone.
	if next := s.act(&q, s.decideContainment(&q)); next != askNextStage { // contain.go
		return trusted(next)
	}
	if next := s.act(&q, s.decideLists(&q)); next != askNextStage { // lists.go
		return trusted(next)
	}
	return s.act(&q, s.decideDetection(&q)) // detect.go
}

// trusted turns passOn into passTrusted.
func trusted(o outcome) outcome {
	if o == passOn {
		return passTrusted
	}
	return o
}

// decideTransfer refuses a zone transfer (AXFR, IXFR), whatever the
// transport, class or name: a resolver serves none, and a transfer must
// never reach an upstream, over UDP (where it is malformed) or over TCP.
// It is a protocol refusal, not a policy match: counted, not recorded,
// and the same in monitor mode.
func (s *Shield) decideTransfer(q *query) Decision {
	if !isZoneTransfer(q.r.Question[0].Qtype) {
		return Decision{}
	}
	return Decision{verb: verbAnswer, count: "refused", detail: &detail{
		action: actRefused, edeCode: edeNotSupported, edeText: "zone transfers are not served"}}
}

// isZoneTransfer reports whether qtype asks for a zone transfer.
func isZoneTransfer(qtype uint16) bool { return qtype == dns.TypeAXFR || qtype == dns.TypeIXFR }

// query is the question the stages decide about: the request and its
// normalised name. The name is in decideAndAct's buffer and the
// detection result in ServeDNS's frame. Both are kept apart from the
// request because the escape analysis does not tell one field from
// another: a ResponseWriter handed to an interface method escapes, and
// pointers stored beside it would take the stack memory they point to
// with it to the heap.
type query struct {
	*request
	name   []byte        // lower case, no trailing dot
	scored *score.Result // where the detection stage keeps the engine's result, in ServeDNS's frame
}

// request is one query as it arrived. The client address and the time
// are looked up on first use, so a query that no stage needs them for
// costs neither.
type request struct {
	w      dns.ResponseWriter
	r      *dns.Msg // exactly one question, class IN
	server string   // the server block, for the metrics

	client    netip.Addr
	hasClient bool
	now       time.Time
}

// Client returns the client's address (invalid if the transport has none).
func (q *request) Client() netip.Addr {
	if !q.hasClient {
		q.client, q.hasClient = clientAddr(q.w), true
	}
	return q.client
}

// Now returns the time of the decision, the same for every stage.
func (q *request) Now() time.Time {
	if q.now.IsZero() {
		q.now = time.Now()
	}
	return q.now
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

// actOnAnswerAlert records the alert that the answer raised. It has a
// frame of its own, like decideAndAct, so that its temporaries are not on
// the stack while the next plugin runs.
//
//go:noinline
func (s *Shield) actOnAnswerAlert(server string, w dns.ResponseWriter, r *dns.Msg, scored *score.Result) {
	q := query{request: &request{w: w, r: r, server: server}, scored: scored}
	s.act(&q, answerAlert(scored)) // detect.go
}
