package shield

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/dnsshield/shield/plugin/shield/api"
	"github.com/dnsshield/shield/plugin/shield/audit"
	"github.com/dnsshield/shield/plugin/shield/blocklist"
	"github.com/dnsshield/shield/plugin/shield/contain"
	"github.com/dnsshield/shield/plugin/shield/score"
)

// backend implements api.Backend for a Shield.
type backend struct{ s *Shield }

var _ api.ForceBackend = backend{}

// apiErr maps a contain error to the API's. A guard rail's refusal is
// ErrInvalid too, so it is checked first: it gets 409, which "force"
// overrides, not 400.
func apiErr(err error) error {
	msg := err.Error()
	switch {
	case contain.NeedsForce(err):
		return fmt.Errorf("%w: %s", api.ErrNeedsForce, msg)
	case errors.Is(err, contain.ErrInvalid):
		return fmt.Errorf("%w: %s", api.ErrBadRequest, msg)
	case errors.Is(err, contain.ErrNotFound):
		return fmt.Errorf("%w: %s", api.ErrNotFound, strings.TrimPrefix(msg, contain.ErrNotFound.Error()+": "))
	case errors.Is(err, contain.ErrFull):
		return fmt.Errorf("%w: %s", api.ErrUnavailable, strings.TrimPrefix(msg, contain.ErrFull.Error()+": "))
	}
	return err
}

func (b backend) Status() api.Status {
	s := b.s
	st := api.Status{Mode: s.modeName()}
	add := func(kind string, ls []*blocklist.List) {
		for _, l := range ls {
			ls := api.ListStatus{Name: l.Name(), Kind: kind}
			if snap := l.Snapshot(); snap != nil {
				t := snap.Loaded.UTC()
				ls.Format, ls.Version, ls.Entries, ls.LastReload = snap.Format.String(), snap.Version, snap.Len(), &t
			}
			if err := l.LastError(); err != nil {
				ls.LastError = err.Error()
			}
			ls.Source = l.Config().Path
			if f := s.feeds.byList[l]; f != nil {
				fs := f.Status()
				ls.Source = fs.Source
				if !fs.LastSuccess.IsZero() {
					t, age := fs.LastSuccess.UTC(), fs.Age.Seconds()
					ls.LastSuccess, ls.AgeSeconds = &t, &age
				}
				if !fs.NextFetch.IsZero() {
					t := fs.NextFetch.UTC()
					ls.NextFetch = &t
				}
				if fs.LastError != "" {
					ls.LastError = fs.LastError
				}
			}
			st.Lists = append(st.Lists, ls)
		}
	}
	add("blocklist", s.blocks)
	add("allowlist", s.allows)
	add("iplist", s.ips)
	add("walled_garden", s.gardenLists())
	st.Quarantines, st.Blocks = s.warden.store.Counts()
	return st
}

// Explain follows ServeDNS's decision path without recording, counting
// or changing anything.
func (b backend) Explain(name string, client netip.Addr) (api.Explanation, error) {
	s, warden := b.s, b.s.warden
	n, err := contain.NormalizeName(name)
	if err != nil {
		return api.Explanation{}, apiErr(err)
	}
	e := api.Explanation{Name: n}
	if client.IsValid() {
		e.Client = client.String()
	}
	norm := []byte(n)
	now := time.Now()
	enforce := func(v string) string {
		if s.monitor {
			return "monitor"
		}
		return v
	}
	if blocked := warden.store.LookupBlock(norm, now); blocked != nil {
		blk := apiBlock(blocked.Block)
		e.EmergencyBlock = &blk
		e.Verdict = enforce(actionName(s.action))
		e.List, e.Rule = "emergency", blocked.Name
		e.Why = append(e.Why, blocked.EDEText)
		return e, nil
	}
	if client.IsValid() {
		if quarantined := warden.store.Lookup(client, now); quarantined != nil {
			q := apiQuarantine(quarantined.Quarantine)
			e.Quarantine = &q
			for _, g := range warden.garden {
				if m := g.LookupNormal(norm); m.Action != blocklist.ActNone {
					e.Verdict, e.WalledGarden, e.Rule = "walled_garden", g.Name(), n[m.Start:]
					e.Why = append(e.Why, "client quarantined, name in walled garden "+g.Name())
					return e, nil
				}
			}
			if !s.monitor {
				e.Verdict = "quarantine_" + actionName(warden.action)
				e.Why = append(e.Why, quarantined.EDEText)
				return e, nil
			}
			e.Why = append(e.Why, quarantined.EDEText+" (monitor mode: not enforced)")
		}
	}
	switch match := s.matchLists(norm, nil); {
	case match.allow != nil:
		e.Verdict, e.List, e.Rule, e.ListVersion = "allow", match.allow.Name(), n[match.rule.Start:], match.snap.Version
		e.Why = append(e.Why, "allowed by list "+match.allow.Name())
		return e, nil
	case match.block != nil:
		e.Verdict, e.List, e.Rule, e.ListVersion = enforce(actionName(s.listAction(match.rule))), match.block.Name(), n[match.rule.Start:], match.snap.Version
		e.Why = append(e.Why, "blocked by list "+match.block.Name())
		return e, nil
	}
	scored, ok := s.explainDetect(n+".", client)
	if !ok {
		e.Verdict = "pass"
		return e, nil
	}
	sc, sticky := scored.Score, scored.Sticky
	e.Score, e.Reasons, e.Sticky, e.RegisteredDomain = sc, scored.Reasons(), sticky, scored.Domain()
	alert, block := score.DefaultAlert, score.DefaultBlock
	if s.detection != nil {
		if s.detection.options.Alert > 0 {
			alert = s.detection.options.Alert
		}
		if s.detection.options.Block > 0 {
			block = s.detection.options.Block
		}
	}
	e.Verdict = "pass"
	switch {
	case sticky:
		e.Scope = scored.Scope.String()
		e.Verdict = enforce("block")
		e.Why = append(e.Why, scored.Scope.String()+"-scoped detector verdict")
	case sc >= block:
		e.Verdict = enforce("block")
		e.Why = append(e.Why, fmt.Sprintf("detector score %d reaches the block threshold %d", sc, block))
	case sc >= alert:
		e.Verdict = "alert"
		e.Why = append(e.Why, fmt.Sprintf("detector score %d reaches the alert threshold %d", sc, alert))
	case sc > 0:
		e.Why = append(e.Why, fmt.Sprintf("detector score %d, below the alert threshold %d", sc, alert))
	}
	return e, nil
}

func apiQuarantine(q contain.Quarantine) api.Quarantine {
	return api.Quarantine{Client: contain.ClientText(q.Client), Reason: q.Reason, Actor: q.Actor,
		Start: q.Start.UTC(), Expires: q.Expires.UTC(), Evidence: q.Evidence}
}

func apiBlock(b contain.Block) api.Block {
	return api.Block{Name: b.Name, Reason: b.Reason, Actor: b.Actor, Start: b.Start.UTC(), Expires: b.Expires.UTC()}
}

func (b backend) Quarantines() []api.Quarantine {
	qs := b.s.warden.store.Quarantines()
	out := make([]api.Quarantine, len(qs))
	for i, q := range qs {
		out[i] = apiQuarantine(q)
	}
	return out
}

func (b backend) Quarantine(client string, ttl time.Duration, reason, actor string) (api.Quarantine, error) {
	return b.QuarantineForce(client, ttl, reason, actor, false)
}

// QuarantineForce quarantines client; force takes it past the cap on the
// address space in quarantine.
func (b backend) QuarantineForce(client string, ttl time.Duration, reason, actor string, force bool) (api.Quarantine, error) {
	p, err := contain.ParseClient(client)
	if err != nil {
		return api.Quarantine{}, apiErr(err)
	}
	q, err := b.s.warden.store.QuarantineForce(p, ttl, reason, actor, nil, force)
	if err != nil {
		return api.Quarantine{}, apiErr(err)
	}
	b.s.logAudit(b.s.quarantineRecord(audit.ActionQuarantine, actor, q))
	log.Infof("client %s quarantined until %s by %s: %s", contain.ClientText(q.Client), q.Expires.UTC().Format(time.RFC3339), actor, q.Reason)
	return apiQuarantine(q), nil
}

func (b backend) Release(client, actor string) (api.Quarantine, error) {
	p, err := contain.ParseClient(client)
	if err != nil {
		return api.Quarantine{}, apiErr(err)
	}
	q, err := b.s.warden.store.Release(p)
	if err != nil {
		return api.Quarantine{}, apiErr(err)
	}
	b.s.logAudit(b.s.quarantineRecord(audit.ActionRelease, actor, q))
	log.Infof("client %s released by %s", contain.ClientText(q.Client), actor)
	return apiQuarantine(q), nil
}

func (b backend) Blocks() []api.Block {
	bs := b.s.warden.store.Blocks()
	out := make([]api.Block, len(bs))
	for i, x := range bs {
		out[i] = apiBlock(x)
	}
	return out
}

func (b backend) Block(name string, ttl time.Duration, reason, actor string) (api.Block, error) {
	return b.BlockForce(name, ttl, reason, actor, false)
}

// BlockForce adds an emergency block of name; force allows a public
// suffix.
func (b backend) BlockForce(name string, ttl time.Duration, reason, actor string, force bool) (api.Block, error) {
	x, err := b.s.warden.store.AddBlockForce(name, ttl, reason, actor, force)
	if err != nil {
		return api.Block{}, apiErr(err)
	}
	b.s.logAudit(b.s.blockRecord(audit.ActionBlockAdd, actor, x))
	log.Infof("emergency block of %s until %s by %s: %s", x.Name, x.Expires.UTC().Format(time.RFC3339), actor, x.Reason)
	return apiBlock(x), nil
}

func (b backend) Unblock(name, actor string) (api.Block, error) {
	x, err := b.s.warden.store.RemoveBlock(name)
	if err != nil {
		return api.Block{}, apiErr(err)
	}
	b.s.logAudit(b.s.blockRecord(audit.ActionBlockRemove, actor, x))
	log.Infof("emergency block of %s removed by %s", x.Name, actor)
	return apiBlock(x), nil
}

func (b backend) Audit(limit int) []json.RawMessage {
	if b.s.audit == nil {
		return nil
	}
	recs := b.s.audit.Recent(limit)
	out := make([]json.RawMessage, len(recs))
	for i := range recs {
		line := audit.AppendJSON(nil, &recs[i])
		out[i] = json.RawMessage(line[:len(line)-1])
	}
	return out
}

// engine returns the detection engine, or an error when detection is off.
func (b backend) engine() (*score.Engine, error) {
	if b.s.detection == nil || b.s.detection.engine == nil {
		return nil, fmt.Errorf("%w: detection is off", api.ErrNotFound)
	}
	return b.s.detection.engine, nil
}

func apiVerdict(v score.VerdictInfo) api.Verdict {
	out := api.Verdict{Domain: v.Domain, Scope: v.Scope.String(), Score: v.Score, Detector: v.Detector,
		Reasons: v.Reasons, Start: v.Start.UTC(), Expires: v.Expires.UTC()}
	for _, c := range v.Clients {
		out.Clients = append(out.Clients, c.String())
	}
	return out
}

func (b backend) Verdicts() []api.Verdict {
	e, err := b.engine()
	if err != nil {
		return nil
	}
	vs := e.Verdicts()
	out := make([]api.Verdict, len(vs))
	for i, v := range vs {
		out[i] = apiVerdict(v)
	}
	return out
}

// findVerdict returns the verdict on the registered domain name.
func (b backend) findVerdict(e *score.Engine, name string) (api.Verdict, string, error) {
	n, err := contain.NormalizeName(name)
	if err != nil {
		return api.Verdict{}, "", apiErr(err)
	}
	for _, v := range e.Verdicts() {
		if v.Domain == n {
			return apiVerdict(v), n, nil
		}
	}
	return api.Verdict{}, n, fmt.Errorf("%w: no verdict on %s (verdicts are per registered domain)", api.ErrNotFound, n)
}

// verdictRecord is the audit record of an operator's change to a
// verdict.
func (s *Shield) verdictRecord(action, actor, reason string, v api.Verdict) audit.Record {
	return audit.Record{
		Time: time.Now(), Action: action, QName: v.Domain + ".", Ruleset: "detect", RuleName: v.Detector,
		Score: v.Score, Reasons: v.Reasons, Domain: v.Domain, Scope: v.Scope, Actor: actor, Reason: reason,
		Expires: v.Expires, Evidence: v.Clients, Mode: s.modeName(), Observer: s.observer,
	}
}

func (b backend) ClearVerdict(name, actor string) (api.Verdict, error) {
	e, err := b.engine()
	if err != nil {
		return api.Verdict{}, err
	}
	v, n, err := b.findVerdict(e, name)
	if err != nil {
		return v, err
	}
	if !e.Clear(n) {
		return api.Verdict{}, fmt.Errorf("%w: the verdict on %s expired", api.ErrNotFound, n)
	}
	b.s.logAudit(b.s.verdictRecord(audit.ActionVerdictClear, actor, "", v))
	log.Infof("verdict on %s (%s) cleared by %s", n, v.Scope, actor)
	return v, nil
}

func (b backend) PromoteVerdict(name, reason, actor string) (api.Verdict, error) {
	e, err := b.engine()
	if err != nil {
		return api.Verdict{}, err
	}
	_, n, err := b.findVerdict(e, name)
	if err != nil {
		return api.Verdict{}, err
	}
	if !e.Promote(n) {
		return api.Verdict{}, fmt.Errorf("%w: no room for a fleet verdict on %s", api.ErrUnavailable, n)
	}
	v, _, err := b.findVerdict(e, n)
	if err != nil {
		return v, err
	}
	b.s.logAudit(b.s.verdictRecord(audit.ActionVerdictPromote, actor, reason, v))
	log.Infof("verdict on %s made fleet-wide by %s: %s", n, actor, reason)
	return v, nil
}
