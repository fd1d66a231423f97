package shield

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin"
	"github.com/dnsshield/shield/plugin/shield/audit"
	"github.com/dnsshield/shield/plugin/shield/score"
	"github.com/miekg/dns"
)

// Detection: the glue between the plugin and package score. Every query
// that no list decided is scored; a score at or above the alert threshold
// writes an audit record, one at or above the block threshold blocks the
// query (EDE 17, Filtered, with the top reason) and makes the verdict
// sticky for the registered domain. Queries that pass go to the next
// plugin through a pooled ResponseWriter that reports the upstream rcode
// back to the engine; an NXDOMAIN answer to a suspect client can itself
// raise an alert (score.Engine.ObserveResponse).

// detector is the detection configuration of one shield block and, once
// started, its engine.
type detector struct {
	off    bool
	cfg    score.Config
	engine *score.Engine
	stopc  chan struct{}
	done   chan struct{}
}

// detectCfg returns s's detection configuration, making the default one.
func (s *Shield) detectCfg() *detector {
	if s.detect == nil {
		s.detect = &detector{}
	}
	return s.detect
}

// parseDetectOption parses a detection option of the shield block.
// handled is false when opt is not one.
func parseDetectOption(c *caddy.Controller, s *Shield, opt string, args []string) (handled bool, err error) {
	d := s.detectCfg()
	switch opt {
	case "detect":
		if len(args) != 1 || (args[0] != "on" && args[0] != "off") {
			return true, c.Errf("detect must be on or off")
		}
		d.off = args[0] == "off"
	case "detect_threshold":
		if len(args) != 2 {
			return true, c.Errf("detect_threshold needs ALERT BLOCK")
		}
		a, err1 := strconv.Atoi(args[0])
		b, err2 := strconv.Atoi(args[1])
		if err1 != nil || err2 != nil || a < 1 || a > 100 || b < 1 || b > 100 || a > b {
			return true, c.Errf("invalid detect_threshold %q %q: want two scores from 1 to 100, ALERT <= BLOCK", args[0], args[1])
		}
		d.cfg.Alert, d.cfg.Block = a, b
	case "detect_window":
		if len(args) != 2 {
			return true, c.Errf("detect_window needs SHORT LONG")
		}
		short, err := parseDuration(args[0], time.Second, 24*time.Hour)
		if err != nil {
			return true, c.Errf("invalid detect_window short window: %v", err)
		}
		long, err := parseDuration(args[1], time.Second, 30*24*time.Hour)
		if err != nil {
			return true, c.Errf("invalid detect_window long window: %v", err)
		}
		if long < short {
			return true, c.Errf("detect_window: the long window %s is shorter than the short one %s", long, short)
		}
		d.cfg.ShortWindow, d.cfg.LongWindow = short, long
	case "detect_sticky":
		if len(args) != 1 {
			return true, c.ArgErr()
		}
		v, err := parseDuration(args[0], time.Second, 30*24*time.Hour)
		if err != nil {
			return true, c.Errf("invalid detect_sticky: %v", err)
		}
		d.cfg.Sticky = v
	case "detect_tables":
		if len(args) != 3 {
			return true, c.Errf("detect_tables needs DOMAINS CLIENTS VERDICTS")
		}
		var n [3]int
		lims := [3][2]int{{512, 1 << 24}, {512, 1 << 22}, {256, 1 << 22}}
		for i, a := range args {
			v, err := strconv.Atoi(a)
			if err != nil || v < lims[i][0] || v > lims[i][1] {
				return true, c.Errf("invalid detect_tables size %q: want %d to %d", a, lims[i][0], lims[i][1])
			}
			n[i] = v
		}
		d.cfg.Domains, d.cfg.Clients, d.cfg.Verdicts = n[0], n[1], n[2]
	case "detect_disable":
		if len(args) == 0 {
			return true, c.ArgErr()
		}
		for _, a := range args {
			switch a {
			case score.DetTunnel:
				d.cfg.NoTunnel = true
			case score.DetDGA:
				d.cfg.NoDGA = true
			case score.DetNewlySeen:
				d.cfg.NoNewlySeen = true
			default:
				return true, c.Errf("unknown detector %q: want tunnel, dga or newly_seen", a)
			}
		}
	case "detect_exempt":
		if len(args) == 0 {
			return true, c.ArgErr()
		}
		for _, a := range args {
			// No wildcards: a domain exempts the names below it. Spaces,
			// slashes and backslashes are refused here rather than when
			// the engine starts.
			if _, ok := dns.IsDomainName(a); !ok || a == "." || a == "" || strings.ContainsAny(a, " \t/\\*") {
				return true, c.Errf("invalid detect_exempt domain %q: want a domain name (its subdomains are exempt too)", a)
			}
		}
		d.cfg.Exempt = append(d.cfg.Exempt, args...)
	case "detect_exempt_defaults":
		if len(args) != 1 || (args[0] != "on" && args[0] != "off") {
			return true, c.Errf("detect_exempt_defaults must be on or off")
		}
		d.cfg.NoDefaultExempt = args[0] == "off"
	default:
		return false, nil
	}
	return true, nil
}

// startDetect makes the engine (OnStartup). Detection is on unless
// "detect off" was given.
func (s *Shield) startDetect() error {
	d := s.detectCfg()
	if d.off {
		return nil
	}
	e, err := score.New(d.cfg)
	if err != nil {
		return fmt.Errorf("shield: detect: %w", err)
	}
	d.engine = e
	d.stopc, d.done = make(chan struct{}), make(chan struct{})
	go d.report()
	return nil
}

// stopDetect stops the engine's metrics reporter (OnShutdown).
func (s *Shield) stopDetect() {
	d := s.detect
	if d == nil || d.engine == nil || d.stopc == nil {
		return
	}
	close(d.stopc)
	<-d.done
	d.stopc = nil
}

// report updates the table metrics every few seconds. Gauges move by
// this engine's change, so several server blocks add up.
func (d *detector) report() {
	defer close(d.done)
	var last score.Stats
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	apply := func(s score.Stats) {
		detectTableEntries.WithLabelValues("domains").Add(float64(s.Domains - last.Domains))
		detectTableEntries.WithLabelValues("clients").Add(float64(s.Clients - last.Clients))
		detectTableEntries.WithLabelValues("verdicts").Add(float64(s.Verdicts - last.Verdicts))
		detectTableCapacity.WithLabelValues("domains").Add(float64(s.DomainsCap - last.DomainsCap))
		detectTableCapacity.WithLabelValues("clients").Add(float64(s.ClientsCap - last.ClientsCap))
		detectTableCapacity.WithLabelValues("verdicts").Add(float64(s.VerdictsCap - last.VerdictsCap))
		detectMemory.Add(float64(s.Bytes - last.Bytes))
		if s.DomainEvictions >= last.DomainEvictions {
			detectEvictions.WithLabelValues("domains").Add(float64(s.DomainEvictions - last.DomainEvictions))
			detectEvictions.WithLabelValues("clients").Add(float64(s.ClientEvictions - last.ClientEvictions))
			detectEvictions.WithLabelValues("verdicts").Add(float64(s.VerdictEvictions - last.VerdictEvictions))
			detectVerdictsRefused.Add(float64(s.VerdictsRefused - last.VerdictsRefused))
		}
		last = s
	}
	apply(d.engine.Stats())
	for {
		select {
		case <-tick.C:
			apply(d.engine.Stats())
		case <-d.stopc:
			// Take this engine's share out of the gauges.
			s := d.engine.Stats()
			apply(s)
			detectTableEntries.WithLabelValues("domains").Sub(float64(s.Domains))
			detectTableEntries.WithLabelValues("clients").Sub(float64(s.Clients))
			detectTableEntries.WithLabelValues("verdicts").Sub(float64(s.Verdicts))
			detectTableCapacity.WithLabelValues("domains").Sub(float64(s.DomainsCap))
			detectTableCapacity.WithLabelValues("clients").Sub(float64(s.ClientsCap))
			detectTableCapacity.WithLabelValues("verdicts").Sub(float64(s.VerdictsCap))
			detectMemory.Sub(float64(s.Bytes))
			return
		}
	}
}

// rcodeWriter passes a response through and remembers its rcode.
type rcodeWriter struct {
	dns.ResponseWriter
	rcode int
}

func (w *rcodeWriter) WriteMsg(m *dns.Msg) error {
	w.rcode = m.Rcode
	return w.ResponseWriter.WriteMsg(m)
}

func (w *rcodeWriter) Write(b []byte) (int, error) {
	if len(b) >= 4 {
		w.rcode = int(b[3] & 0x0f)
	}
	return w.ResponseWriter.Write(b)
}

var rcodeWriters = sync.Pool{New: func() any { return new(rcodeWriter) }}

// serveDetect handles a query that no list decided: sticky verdicts and
// scoring, then the pass to the next plugin.
func (s *Shield) serveDetect(ctx context.Context, server string, w dns.ResponseWriter, r *dns.Msg, name []byte) (int, error) {
	var e *score.Engine
	if s.detect != nil {
		e = s.detect.engine
	}
	if e == nil {
		countQuery(server, "pass")
		return plugin.NextOrFailure(s.Name(), s.Next, ctx, w, r)
	}
	// The decision runs in a function of its own so that its frame (audit
	// records, answers) is gone before the next plugin runs: whatever
	// shield keeps on the stack here sits under cache and forward, and a
	// deeper stack makes more query goroutines grow theirs.
	var res score.Result
	done, observe, rc, err := s.judge(server, w, r, e, &res)
	if done {
		return rc, err
	}
	if !observe {
		return plugin.NextOrFailure(s.Name(), s.Next, ctx, w, r)
	}
	rw := rcodeWriters.Get().(*rcodeWriter)
	rw.ResponseWriter, rw.rcode = w, -1
	rc, err = plugin.NextOrFailure(s.Name(), s.Next, ctx, rw, r)
	rcode := rw.rcode
	rw.ResponseWriter = nil
	rcodeWriters.Put(rw)
	if rcode < 0 && err == nil && !plugin.ClientWrite(rc) {
		// The next plugin did not write: the server answers with rc.
		rcode = rc
	}
	// An NXDOMAIN for a suspect client's new domain like its burst is
	// evidence of its own: the engine turns the query into an alert.
	if rcode >= 0 && e.ObserveResponse(&res, rcode) {
		s.alertDetection(server, w, r, &res)
	}
	return rc, err
}

// judge scores the query into res and acts on the verdict: a block is
// answered here (done), an alert recorded. observe reports whether the
// query goes on with its answer fed back to the engine; an exempt query
// and a monitor-mode block go on without.
//
//go:noinline
func (s *Shield) judge(server string, w dns.ResponseWriter, r *dns.Msg, e *score.Engine, res *score.Result) (done, observe bool, rc int, err error) {
	q := r.Question[0]
	client := clientAddr(w)
	*res = e.Score(score.Query{Name: q.Name, Type: q.Qtype, Client: client})
	if res.Exempt {
		countQuery(server, "pass")
		return false, false, 0, nil
	}
	switch res.Action {
	case score.Block:
		reasons := res.Reasons()
		domain := res.Domain()
		det := res.Detector()
		event := audit.ActionBlock
		if s.monitor {
			event = audit.ActionMonitor
		}
		detections.WithLabelValues(server, det, event).Inc()
		s.recordDetection(w, r, event, det, res, reasons, domain)
		s.noteBlock(client, det, q.Name, reasons)
		if !s.monitor {
			countQuery(server, "block")
			if s.action != actDrop {
				w.WriteMsg(s.detectAnswer(r, domain, res))
			}
			return true, false, dns.RcodeSuccess, nil
		}
		countQuery(server, "monitor")
		// In monitor mode the query goes on; the would-be block is not
		// fed back (the verdict is already sticky).
		return false, false, 0, nil
	case score.Alert:
		s.alertDetection(server, w, r, res)
	}
	countQuery(server, "pass")
	return false, true, 0, nil
}

// alertDetection counts and records an alert for res.
func (s *Shield) alertDetection(server string, w dns.ResponseWriter, r *dns.Msg, res *score.Result) {
	det := res.Detector()
	detections.WithLabelValues(server, det, audit.ActionAlert).Inc()
	s.recordDetection(w, r, audit.ActionAlert, det, res, res.Reasons(), res.Domain())
}

// detectAnswer is the block answer of a detection: the configured action,
// an SOA for the registered domain, and EDE 17 (Filtered) whose
// EXTRA-TEXT names the detector and the top reason.
func (s *Shield) detectAnswer(r *dns.Msg, domain string, res *score.Result) *dns.Msg {
	text := "detected " + res.Detector() + ": " + res.TopReason()
	m := s.answer(r, s.action, domain+".", text)
	if o := m.IsEdns0(); o != nil {
		for _, opt := range o.Option {
			if ede, ok := opt.(*dns.EDNS0_EDE); ok {
				ede.InfoCode = dns.ExtendedErrorCodeFiltered
			}
		}
	}
	return m
}

// recordDetection queues the audit record of a detection.
func (s *Shield) recordDetection(w dns.ResponseWriter, r *dns.Msg, event, det string, res *score.Result, reasons []string, domain string) {
	if s.audit == nil {
		return
	}
	rec := s.queryRecord(r, clientAddr(w), event)
	rec.Ruleset, rec.RuleName, rec.Score, rec.Reasons, rec.Domain = "detect", det, res.Score, reasons, domain
	s.audit.Log(rec)
}

// explainDetect returns what the detectors would say about a query for
// name from client, without recording or changing any state (for the
// management API's explain endpoint).
func (s *Shield) explainDetect(name string, client netip.Addr) (score int, reasons []string, sticky bool) {
	if s.detect == nil || s.detect.engine == nil {
		return 0, nil, false
	}
	res := s.detect.engine.Explain(scoreQuery(name, client))
	if res.Exempt {
		return 0, nil, false
	}
	return res.Score, res.Reasons(), res.Sticky
}

func scoreQuery(name string, client netip.Addr) score.Query {
	return score.Query{Name: dns.Fqdn(name), Type: dns.TypeA, Client: client}
}
