package shield

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin"
	"github.com/dnsshield/shield/plugin/shield/api"
	"github.com/dnsshield/shield/plugin/shield/audit"
	"github.com/dnsshield/shield/plugin/shield/blocklist"
	"github.com/dnsshield/shield/plugin/shield/contain"
	"github.com/dnsshield/shield/plugin/shield/score"
	"github.com/miekg/dns"
)

// Containment: client quarantine with a walled garden, emergency domain
// blocks, the escalation ladder, the state file and the management API.
// The state itself lives in package contain and the HTTP side in package
// api; this file is the glue: Corefile options, the query path, audit
// records, metrics and the lifecycle.

// quarantineTTL caps the TTL of answers to a quarantined client and of
// emergency block answers, so that a release or an unblock takes effect
// within seconds even where the client caches.
const quarantineTTL = 30

// sweepEvery is how often expired quarantines and blocks are removed and
// their expiry recorded. The query path checks the expiry itself, so this
// only sets how soon the "expire" record and the metrics follow.
const sweepEvery = time.Second

// containment is the containment configuration and state of one Shield.
// It is nil when no containment option is set.
type containment struct {
	gardenCfgs []blocklist.Config
	garden     []*blocklist.List

	action       action // actSinkhole or actNXDomain
	actionSet    bool
	sink4, sink6 []netip.Addr

	defTTL, maxTTL time.Duration
	ttlSet         bool
	rules          []contain.Rule
	statePath      string
	apiAddr        string
	tokensPath     string
	tokens         *api.Tokens

	store  *contain.Store
	ladder *contain.Ladder

	stopc   chan struct{}
	done    chan struct{}
	api     string       // address of the API server this Shield holds, "" if none
	handler http.Handler // this Shield's API handler

	gaugeQ, gaugeB atomic.Int64 // this Shield's share of the active gauges
}

func (s *Shield) containCfg() *containment {
	if s.contain == nil {
		s.contain = &containment{defTTL: contain.DefaultTTL, maxTTL: contain.DefaultMaxTTL}
	}
	return s.contain
}

// parseContainOption parses a containment option of the shield block.
// handled is false when opt is not one.
func parseContainOption(c *caddy.Controller, s *Shield, opt string, args []string, root string) (handled bool, err error) {
	rel := func(p string) string {
		if !filepath.IsAbs(p) && root != "" {
			return filepath.Join(root, p)
		}
		return p
	}
	switch opt {
	case "walled_garden":
		cc := s.containCfg()
		if len(args) < 2 || len(args) > 3 {
			return true, c.Errf("walled_garden needs NAME SOURCE [FORMAT], got %d arguments", len(args))
		}
		name := args[0]
		if !listName.MatchString(name) {
			return true, c.Errf("invalid walled_garden name %q: use letters, digits, '_', '-' and '.', at most 64", name)
		}
		for _, g := range cc.gardenCfgs {
			if g.Name == name {
				return true, c.Errf("duplicate list name %q", name)
			}
		}
		format := blocklist.FormatAuto
		if len(args) == 3 {
			f, err := blocklist.ParseFormat(args[2])
			if err != nil {
				return true, c.Errf("walled_garden %q: %v", name, err)
			}
			format = f
		}
		cc.gardenCfgs = append(cc.gardenCfgs, blocklist.Config{Name: name, Path: rel(args[1]), Format: format, Allow: true})
	case "quarantine_action":
		cc := s.containCfg()
		if len(args) == 0 {
			return true, c.Err("quarantine_action needs sinkhole ADDR... or nxdomain")
		}
		cc.sink4, cc.sink6 = nil, nil
		switch args[0] {
		case "nxdomain":
			if len(args) > 1 {
				return true, c.Err("quarantine_action nxdomain takes no addresses")
			}
			cc.action = actNXDomain
		case "sinkhole":
			if len(args) == 1 {
				return true, c.Err("quarantine_action sinkhole needs at least one address")
			}
			cc.action = actSinkhole
			for _, v := range args[1:] {
				ip, err := netip.ParseAddr(v)
				if err != nil || ip.Zone() != "" {
					return true, c.Errf("invalid quarantine sinkhole address %q", v)
				}
				if ip = ip.Unmap(); ip.Is4() {
					cc.sink4 = append(cc.sink4, ip)
				} else {
					cc.sink6 = append(cc.sink6, ip)
				}
			}
		default:
			return true, c.Errf("unknown quarantine_action %q: want sinkhole ADDR... or nxdomain", args[0])
		}
		cc.actionSet = true
	case "quarantine_ttl":
		cc := s.containCfg()
		if len(args) != 2 {
			return true, c.Err("quarantine_ttl needs DEFAULT MAX, for example 1h 24h")
		}
		def, err1 := parseDuration(args[0], time.Second, 30*24*time.Hour)
		max, err2 := parseDuration(args[1], time.Second, 30*24*time.Hour)
		if err := errors.Join(err1, err2); err != nil {
			return true, c.Errf("invalid quarantine_ttl: %v", err)
		}
		if def > max {
			return true, c.Errf("invalid quarantine_ttl: default %s is above the maximum %s", def, max)
		}
		cc.defTTL, cc.maxTTL, cc.ttlSet = def, max, true
	case "escalate":
		cc := s.containCfg()
		r, err := contain.ParseRule(args)
		if err != nil {
			return true, c.Err(err.Error())
		}
		if len(cc.rules) >= 32 {
			return true, c.Err("at most 32 escalate rules")
		}
		cc.rules = append(cc.rules, r)
	case "state":
		cc := s.containCfg()
		if len(args) != 1 {
			return true, c.Err("state needs FILE")
		}
		if cc.statePath != "" {
			return true, c.Err("state is set twice")
		}
		cc.statePath = rel(args[0])
	case "api":
		cc := s.containCfg()
		if len(args) != 1 {
			return true, c.Err("api needs ADDR, for example 127.0.0.1:8053")
		}
		if cc.apiAddr != "" {
			return true, c.Err("api is set twice")
		}
		a, err := api.ListenAddr(args[0])
		if err != nil {
			return true, c.Err(err.Error())
		}
		cc.apiAddr = a
	case "api_tokens":
		cc := s.containCfg()
		if len(args) != 1 {
			return true, c.Err("api_tokens needs FILE")
		}
		if cc.tokensPath != "" {
			return true, c.Err("api_tokens is set twice")
		}
		cc.tokensPath = rel(args[0])
	default:
		return false, nil
	}
	return true, nil
}

// finishContain checks the containment options against each other and
// the rest of the block, once the whole block is read. It reads the API
// tokens file, so a bad file is a configuration error.
func (s *Shield) finishContain(c *caddy.Controller) error {
	cc := s.contain
	if cc == nil {
		return nil
	}
	if cc.apiAddr != "" && cc.tokensPath == "" {
		return c.Err("api needs api_tokens: the API refuses every request without a token")
	}
	if cc.tokensPath != "" && cc.apiAddr == "" {
		return c.Err("api_tokens is set but api is not")
	}
	if cc.apiAddr != "" {
		// One Corefile (one instance) cannot give two shield blocks
		// the same API address: the second would take the server over
		// as a reload does, leaving the first unmanageable.
		key := apiAddrKey(cc.apiAddr)
		if c.Get(key) != nil {
			return c.Errf("api %s is used by another shield block; give each its own address", cc.apiAddr)
		}
		c.Set(key, true)
	}
	if cc.tokensPath != "" {
		t, err := api.LoadTokens(cc.tokensPath)
		if err != nil {
			return c.Errf("api_tokens: %v", err)
		}
		cc.tokens = t
		if fi, err := os.Stat(cc.tokensPath); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warningf("api_tokens %s is readable by others (mode %o); make it 0600", cc.tokensPath, fi.Mode().Perm())
		}
	}
	for _, r := range cc.rules {
		if r.TTL > cc.maxTTL {
			return c.Errf("%s: ttl %s is above the quarantine maximum %s (see quarantine_ttl)", r.Name, r.TTL, cc.maxTTL)
		}
	}
	for _, g := range cc.gardenCfgs {
		for _, l := range s.lists {
			if l.Name == g.Name {
				return c.Errf("duplicate list name %q", g.Name)
			}
		}
	}
	if !cc.actionSet {
		// Default: the block action's sinkhole if there is one, else
		// NXDOMAIN.
		cc.action = actNXDomain
		if s.action == actSinkhole {
			cc.action, cc.sink4, cc.sink6 = actSinkhole, s.sink4, s.sink6
		}
	}
	for _, g := range cc.gardenCfgs {
		g.MaxShrink, g.MaxInvalid = s.maxShrink, s.maxInvalid
		cc.garden = append(cc.garden, blocklist.NewList(g))
	}
	known := map[string]bool{"any": true, "emergency": true}
	for _, l := range s.lists {
		known[l.Name] = true
	}
	for _, d := range detectorKinds {
		known[d] = true
	}
	for _, r := range cc.rules {
		for _, k := range r.Kinds {
			if !known[k] {
				log.Warningf("%s: kind %q is neither a blocklist nor a known detector; it counts only if something reports it", r.Name, k)
			}
		}
	}
	cc.store = contain.NewStore(contain.Options{DefaultTTL: cc.defTTL, MaxTTL: cc.maxTTL})
	if len(cc.rules) > 0 {
		cc.ladder = contain.NewLadder(cc.rules, 0)
	}
	if cc.apiAddr != "" {
		c.OnRestartFailed(s.reclaimAPI)
	}
	return nil
}

// apiAddrKey marks an API address as taken in the storage of the caddy
// instance being set up.
type apiAddrKey string

// detectorKinds are the detector verdict names escalate rules may use
// besides list names.
var detectorKinds = []string{score.DetTunnel, score.DetDGA, score.DetNewlySeen}

// containLists returns the walled-garden lists, for the list watcher.
func (s *Shield) containLists() []*blocklist.List {
	if s.contain == nil {
		return nil
	}
	return s.contain.garden
}

// serveContain answers a query from a quarantined client, or for a name
// under an emergency block. done reports whether it answered.
func (s *Shield) serveContain(ctx context.Context, server string, w dns.ResponseWriter, r *dns.Msg, name []byte) (done bool, rc int, err error) {
	cc := s.contain
	if cc == nil || cc.store == nil || !cc.store.Active() {
		return false, 0, nil
	}
	now := time.Now()
	client := clientAddr(w)
	if cc.store.HasBlocks() {
		if e := cc.store.LookupBlock(name, now); e != nil {
			return s.serveEmergency(ctx, server, w, r, client, e)
		}
	}
	if !cc.store.HasQuarantines() {
		return false, 0, nil
	}
	e := cc.store.Lookup(client, now)
	if e == nil {
		return false, 0, nil
	}
	rec := s.queryRecord(r, client, "")
	rec.Time = now
	rec.Ruleset, rec.RuleName, rec.Reason, rec.Actor, rec.Expires = "quarantine", e.ClientText, e.Reason, e.Actor, e.Expires
	for _, g := range cc.garden {
		if g.LookupNormal(name).Action != blocklist.ActNone {
			rec.Action, rec.Ruleset = "walled_garden", g.Name()
			s.logAudit(rec)
			countQuery(server, "walled_garden")
			rc, err := plugin.NextOrFailure(s.Name(), s.Next, ctx, w, r)
			return true, rc, err
		}
	}
	if s.monitor {
		// Recorded, not enforced: the query goes on through the lists.
		rec.Action = audit.ActionMonitor
		s.logAudit(rec)
		return false, 0, nil
	}
	rec.Action = audit.ActionBlock
	if cc.action == actSinkhole {
		rec.Action = audit.ActionSinkhole
	}
	s.logAudit(rec)
	countQuery(server, "quarantine")
	m := s.answer(r, actNXDomain, r.Question[0].Name, e.EDEText)
	if cc.action == actSinkhole {
		m.Rcode, m.Ns = dns.RcodeSuccess, nil
		m.Answer = containSinkhole(r.Question[0], cc.sink4, cc.sink6)
		if len(m.Answer) == 0 {
			m.Ns = []dns.RR{s.soa(r.Question[0].Name)}
		}
	}
	capTTL(m, quarantineTTL)
	w.WriteMsg(m)
	return true, dns.RcodeSuccess, nil
}

// serveEmergency answers a query for a name under an emergency block with
// the block action, or records it in monitor mode.
func (s *Shield) serveEmergency(ctx context.Context, server string, w dns.ResponseWriter, r *dns.Msg,
	client netip.Addr, e *contain.BlockEntry) (bool, int, error) {
	event := audit.ActionBlock
	if s.action == actSinkhole {
		event = audit.ActionSinkhole
	}
	if s.monitor {
		event = audit.ActionMonitor
	}
	listHits.WithLabelValues(server, "emergency").Inc()
	countQuery(server, event)
	rec := s.queryRecord(r, client, event)
	rec.Ruleset, rec.RuleName, rec.Reason, rec.Actor, rec.Expires = "emergency", e.Name, e.Reason, e.Actor, e.Expires
	s.logAudit(rec)
	s.noteBlock(client, "emergency", r.Question[0].Name, nil)
	if s.monitor {
		return false, 0, nil
	}
	if s.action == actDrop {
		return true, dns.RcodeSuccess, nil
	}
	m := s.answer(r, s.action, e.Name+".", e.EDEText)
	// Like a quarantine answer, cached for seconds only: an emergency
	// block is temporary, and an unblock or its expiry must take effect
	// downstream too.
	capTTL(m, min(quarantineTTL, uint32(max(1, e.Expires.Sub(time.Now())/time.Second))))
	w.WriteMsg(m)
	return true, dns.RcodeSuccess, nil
}

func containSinkhole(q dns.Question, sink4, sink6 []netip.Addr) []dns.RR {
	var addrs []netip.Addr
	switch q.Qtype {
	case dns.TypeA:
		addrs = sink4
	case dns.TypeAAAA:
		addrs = sink6
	}
	rrs := make([]dns.RR, 0, len(addrs))
	for _, a := range addrs {
		hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: quarantineTTL}
		if a.Is4() {
			rrs = append(rrs, &dns.A{Hdr: hdr, A: a.AsSlice()})
		} else {
			rrs = append(rrs, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
	return rrs
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

// noteBlock tells the escalation ladder that client was blocked: kind is
// the list name for a list hit, or the detector name ("tunnel", "dga", ...)
// for a detection. name is the query name, reasons the detector's reasons.
// It must not block or allocate on the common path.
func (s *Shield) noteBlock(client netip.Addr, kind, name string, reasons []string) {
	cc := s.contain
	if cc == nil || cc.ladder == nil || !client.IsValid() {
		return
	}
	for _, e := range cc.ladder.Note(client, kind, name, reasons, time.Now()) {
		s.escalate(e)
	}
}

// escalate quarantines the client of a rule that fired, or in monitor
// mode records that it would have.
func (s *Shield) escalate(e contain.Escalation) {
	cc := s.contain
	actor := "policy:" + e.Rule.Name
	reason := fmt.Sprintf("%d blocks of %s within %s", e.Rule.Count, strings.Join(e.Rule.Kinds, ","), e.Rule.Window)
	mode := s.modeName()
	escalations.WithLabelValues(e.Rule.Name, mode).Inc()
	p := netip.PrefixFrom(e.Client, e.Client.BitLen())
	rec := audit.Record{
		Time: time.Now(), Action: audit.ActionQuarantine, Client: e.Client, Ruleset: "quarantine",
		RuleName: contain.ClientText(p), Actor: actor, Reason: reason, Evidence: e.Evidence,
		Mode: mode, Observer: s.observer,
	}
	if s.monitor {
		rec.Expires = rec.Time.Add(e.Rule.TTL)
		s.logAudit(rec)
		return
	}
	q, err := cc.store.Quarantine(p, e.Rule.TTL, reason, actor, e.Evidence)
	if err != nil {
		// The store is full: the bound protects memory. Counted, and the
		// record still says what the policy wanted.
		containErrors.WithLabelValues("full").Inc()
		rec.Expires = rec.Time.Add(e.Rule.TTL)
		rec.Reason += " (not enforced: " + err.Error() + ")"
		s.logAudit(rec)
		return
	}
	rec.Expires = q.Expires
	s.logAudit(rec)
}

func (s *Shield) logAudit(r audit.Record) {
	if s.audit != nil {
		s.audit.Log(r)
	}
}

// quarantineRecord and blockRecord make the audit record of a change.
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

// startContain runs in OnStartup after the lists: it restores the state
// file, starts the sweeper and state writer, and the API server.
func (s *Shield) startContain() error {
	cc := s.contain
	if cc == nil {
		return nil
	}
	if cc.statePath != "" {
		now := time.Now()
		st, err := contain.LoadState(cc.statePath, now)
		var ce *contain.CorruptError
		switch {
		case errors.As(err, &ce):
			containErrors.WithLabelValues("corrupt").Inc()
			log.Errorf("%v; starting with no quarantines or emergency blocks", ce)
		case err != nil:
			// Unreadable but maybe intact (permissions, I/O error): never
			// overwrite it. Set it aside if possible, else stop saving.
			containErrors.WithLabelValues("load").Inc()
			aside := cc.statePath + ".unreadable-" + now.UTC().Format("20060102T150405Z")
			if rerr := os.Rename(cc.statePath, aside); rerr == nil {
				log.Errorf("state file %s: %v; set aside as %s, starting with no quarantines or emergency blocks", cc.statePath, err, aside)
			} else {
				log.Errorf("state file %s: %v; starting with no quarantines or emergency blocks and NOT saving state, so the file is kept as it is", cc.statePath, err)
				cc.statePath = ""
			}
		}
		if n, skipped := cc.store.Restore(st, now); n+skipped > 0 {
			log.Infof("state file %s: restored %d quarantines and emergency blocks, skipped %d expired or invalid", cc.statePath, n, skipped)
		}
	}
	s.updateContainGauges()
	cc.stopc, cc.done = make(chan struct{}), make(chan struct{})
	go s.containLoop()
	if cc.apiAddr != "" {
		if err := s.startAPI(); err != nil {
			s.stopContainLoop()
			return fmt.Errorf("shield: api %s: %w", cc.apiAddr, err)
		}
	}
	return nil
}

// stopContain runs in OnShutdown (also on every Corefile reload).
func (s *Shield) stopContain() {
	cc := s.contain
	if cc == nil || cc.done == nil {
		return
	}
	s.stopAPI()
	s.stopContainLoop()
	s.dropContainGauges()
}

func (s *Shield) stopContainLoop() {
	cc := s.contain
	select {
	case <-cc.stopc:
	default:
		close(cc.stopc)
	}
	<-cc.done
}

// containLoop sweeps expired entries and writes the state file after
// changes. It is the only writer of the state file.
func (s *Shield) containLoop() {
	cc := s.contain
	defer close(cc.done)
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	dirty := false
	var lastErr time.Time
	save := func() {
		if cc.statePath == "" || !dirty {
			return
		}
		if err := contain.SaveState(cc.statePath, cc.store.Snapshot(time.Now())); err != nil {
			containErrors.WithLabelValues("save").Inc()
			if time.Since(lastErr) > time.Minute {
				lastErr = time.Now()
				log.Errorf("state file %s: write failed, will retry: %v", cc.statePath, err)
			}
			return
		}
		dirty = false
	}
	sweeps := 0
	for {
		select {
		case <-cc.stopc:
			// A change may be pending as well: select picks either
			// ready case, so take it before the last save.
			select {
			case <-cc.store.Changed():
				dirty = true
			default:
			}
			save()
			return
		case <-cc.store.Changed():
			dirty = true
			s.updateContainGauges()
			save()
		case now := <-tick.C:
			qs, bs := cc.store.Sweep(now)
			for _, q := range qs {
				s.logAudit(s.quarantineRecord(audit.ActionExpire, "policy:ttl", q))
			}
			for _, b := range bs {
				s.logAudit(s.blockRecord(audit.ActionExpire, "policy:ttl", b))
			}
			if sweeps++; sweeps%10 == 0 {
				cc.ladder.Sweep(now)
			}
			if dirty {
				save() // retry a failed write
			}
		}
	}
}

// updateContainGauges brings this Shield's share of the gauges up to
// date. The gauges are the sum over every running shield block (and, for
// the moment a reload overlaps them, both configurations), so each adds
// the change since its last report instead of setting the total.
func (s *Shield) updateContainGauges() {
	cc := s.contain
	q, b := cc.store.Counts()
	quarantinesActive.Add(float64(int64(q) - cc.gaugeQ.Swap(int64(q))))
	emergencyBlocksActive.Add(float64(int64(b) - cc.gaugeB.Swap(int64(b))))
}

// dropContainGauges takes this Shield's share out of the gauges.
func (s *Shield) dropContainGauges() {
	cc := s.contain
	quarantinesActive.Sub(float64(cc.gaugeQ.Swap(0)))
	emergencyBlocksActive.Sub(float64(cc.gaugeB.Swap(0)))
}

// The API servers, by address. A Corefile reload starts the new
// configuration before it stops the old one, so the new one takes over
// the listening server (and its handler) instead of binding again.
var apiServers = struct {
	sync.Mutex
	m map[string]*apiServer
}{m: map[string]*apiServer{}}

type apiServer struct {
	srv   *api.Server
	refs  int
	owner *Shield // the configuration the handler serves
}

func (s *Shield) startAPI() error {
	cc := s.contain
	h := api.NewHandler(backend{s}, cc.tokens, api.Options{
		OnRequest:     func(ep string, code int) { apiRequests.WithLabelValues(ep, itoa(code)).Inc() },
		OnAuthFailure: apiAuthFailures.Inc,
	})
	cc.handler = h
	apiServers.Lock()
	defer apiServers.Unlock()
	if a, ok := apiServers.m[cc.apiAddr]; ok {
		// A Corefile reload: take over the server, and the quarantines and
		// blocks of the configuration it served (with or without a state
		// file), so a reload does not release anyone.
		if old := a.owner; old != nil && old.contain != nil && old.contain.store != nil {
			now := time.Now()
			if n, _ := cc.store.Restore(old.contain.store.Snapshot(now), now); n > 0 {
				log.Infof("carried %d quarantines and emergency blocks over the reload", n)
			}
		}
		a.srv.SetHandler(h)
		a.refs++
		a.owner = s
		cc.api = cc.apiAddr
		return nil
	}
	srv, err := api.Listen(cc.apiAddr, h)
	if err != nil {
		return err
	}
	if !api.IsLoopback(cc.apiAddr) {
		log.Warningf("management API listens on %s, which is not loopback; it has no TLS, put it behind a TLS proxy", cc.apiAddr)
	}
	apiServers.m[cc.apiAddr] = &apiServer{srv: srv, refs: 1, owner: s}
	cc.api = cc.apiAddr
	return nil
}

// reclaimAPI runs when a Corefile reload from this configuration fails.
// The new configuration may have failed after its start-up took over the
// API server (another plugin's start-up, or a server that could not
// listen), and CoreDNS neither runs its shutdown nor stops this one. The
// server then still belongs to this configuration: take it back with the
// quarantines and blocks made in between, and stop the failed
// configuration's state writer, which would otherwise keep writing the
// state file from a store nobody serves.
func (s *Shield) reclaimAPI() error {
	cc := s.contain
	apiServers.Lock()
	a := apiServers.m[cc.api]
	if cc.api == "" || a == nil || a.owner == s {
		// Shut down already, or nothing was taken over.
		apiServers.Unlock()
		return nil
	}
	failed := a.owner
	a.owner = s
	a.srv.SetHandler(cc.handler)
	if failed != nil && failed.contain != nil && failed.contain.api == cc.api {
		failed.contain.api = "" // its ref is given up here, not by a shutdown
		a.refs--
	} else {
		failed = nil // it shut itself down already
	}
	apiServers.Unlock()
	if failed == nil {
		return nil
	}
	fc := failed.contain
	if fc.done != nil {
		failed.stopContainLoop()
		failed.dropContainGauges()
	}
	now := time.Now()
	if n, _ := cc.store.Restore(fc.store.Snapshot(now), now); n > 0 {
		log.Infof("took back %d quarantines and emergency blocks from the failed reload", n)
	}
	s.updateContainGauges()
	log.Warningf("Corefile reload failed: the management API on %s serves the running configuration again", cc.api)
	return nil
}

func (s *Shield) stopAPI() {
	cc := s.contain
	if cc.api == "" {
		return
	}
	apiServers.Lock()
	defer apiServers.Unlock()
	a := apiServers.m[cc.api]
	cc.api = ""
	if a == nil {
		return
	}
	if a.owner == s {
		a.owner = nil
	}
	if a.refs--; a.refs <= 0 {
		delete(apiServers.m, cc.apiAddr)
		a.srv.Close()
	}
}
