package shield

import (
	"crypto/tls"
	"errors"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/coredns/caddy"
	"github.com/dnsshield/shield/plugin/shield/api"
	"github.com/dnsshield/shield/plugin/shield/blocklist"
	"github.com/dnsshield/shield/plugin/shield/contain"
	"github.com/dnsshield/shield/plugin/shield/score"
)

// The containment options of the shield block: walled_garden,
// quarantine_action, quarantine_ttl, quarantine_cap, escalate, state, api,
// api_tokens, api_tls and api_insecure.

// newWarden returns a containment with the default options.
func newWarden() *warden {
	return &warden{defTTL: contain.DefaultTTL, maxTTL: contain.DefaultMaxTTL, sink: sinkhole{ttl: quarantineTTL}}
}

// parseContainOption parses a containment option of the shield block.
// handled is false when opt is not one.
func parseContainOption(c *caddy.Controller, s *Shield, opt string, args []string, root string) (handled bool, err error) {
	switch opt {
	case "walled_garden", "quarantine_action", "quarantine_ttl", "quarantine_cap", "escalate", "state",
		"api", "api_tokens", "api_tls", "api_insecure":
	default:
		return false, nil
	}
	if s.warden == nil {
		s.warden = newWarden()
	}
	cfg := s.warden
	inRoot := func(path string) string {
		if !filepath.IsAbs(path) && root != "" {
			return filepath.Join(root, path)
		}
		return path
	}
	switch opt {
	case "walled_garden":
		if len(args) < 2 {
			return true, c.Errf("walled_garden needs NAME SOURCE [FORMAT], got %d arguments", len(args))
		}
		name := args[0]
		if !listName.MatchString(name) {
			return true, c.Errf("invalid walled_garden name %q: use letters, digits, '_', '-' and '.', at most 64", name)
		}
		for _, g := range cfg.gardenCfgs {
			if g.Name == name {
				return true, c.Errf("duplicate list name %q", name)
			}
		}
		src, format, spec, err := parseListArgs(c, opt, name, args[1:])
		if err != nil {
			return true, err
		}
		if spec != nil {
			s.feeds.specs = append(s.feeds.specs, *spec)
			src = ""
		} else {
			src = inRoot(src)
		}
		cfg.gardenCfgs = append(cfg.gardenCfgs, blocklist.Config{Name: name, Path: src, Format: format, Allow: true})
	case "quarantine_action":
		if len(args) == 0 {
			return true, c.Err("quarantine_action needs sinkhole ADDR... or nxdomain")
		}
		cfg.sink.v4, cfg.sink.v6 = nil, nil
		switch args[0] {
		case "nxdomain":
			if len(args) > 1 {
				return true, c.Err("quarantine_action nxdomain takes no addresses")
			}
			cfg.action = actNXDomain
		case "sinkhole":
			if len(args) == 1 {
				return true, c.Err("quarantine_action sinkhole needs at least one address")
			}
			cfg.action = actSinkhole
			for _, v := range args[1:] {
				ip, err := netip.ParseAddr(v)
				if err != nil || ip.Zone() != "" {
					return true, c.Errf("invalid quarantine sinkhole address %q", v)
				}
				if ip = ip.Unmap(); ip.Is4() {
					cfg.sink.v4 = append(cfg.sink.v4, ip)
				} else {
					cfg.sink.v6 = append(cfg.sink.v6, ip)
				}
			}
		default:
			return true, c.Errf("unknown quarantine_action %q: want sinkhole ADDR... or nxdomain", args[0])
		}
		cfg.actionSet = true
	case "quarantine_ttl":
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
		cfg.defTTL, cfg.maxTTL, cfg.ttlSet = def, max, true
	case "quarantine_cap":
		if len(args) != 2 {
			return true, c.Err("quarantine_cap needs V4 V6, for example /16 /48 (or none)")
		}
		if cfg.capSet {
			return true, c.Err("quarantine_cap is set twice")
		}
		v4, err1 := contain.ParseSpaceCap(args[0], false)
		v6, err2 := contain.ParseSpaceCap(args[1], true)
		if err := errors.Join(err1, err2); err != nil {
			return true, c.Errf("quarantine_cap: %v", err)
		}
		cfg.maxSpace4, cfg.maxSpace6, cfg.capSet = v4, v6, true
	case "escalate":
		r, err := contain.ParseRule(args)
		if err != nil {
			return true, c.Err(err.Error())
		}
		if len(cfg.rules) >= 32 {
			return true, c.Err("at most 32 escalate rules")
		}
		cfg.rules = append(cfg.rules, r)
	case "state":
		if len(args) != 1 {
			return true, c.Err("state needs FILE")
		}
		if cfg.statePath != "" {
			return true, c.Err("state is set twice")
		}
		cfg.statePath = inRoot(args[0])
	case "api":
		if len(args) != 1 {
			return true, c.Err("api needs ADDR, for example 127.0.0.1:8053")
		}
		if cfg.apiAddr != "" {
			return true, c.Err("api is set twice")
		}
		a, err := api.ListenAddr(args[0])
		if err != nil {
			return true, c.Err(err.Error())
		}
		cfg.apiAddr = a
	case "api_tokens":
		if len(args) != 1 {
			return true, c.Err("api_tokens needs FILE")
		}
		if cfg.tokensPath != "" {
			return true, c.Err("api_tokens is set twice")
		}
		cfg.tokensPath = inRoot(args[0])
	case "api_tls":
		if len(args) != 2 {
			return true, c.Err("api_tls needs CERT KEY")
		}
		if cfg.tlsCert != "" {
			return true, c.Err("api_tls is set twice")
		}
		cfg.tlsCert, cfg.tlsKey = inRoot(args[0]), inRoot(args[1])
	case "api_insecure":
		if len(args) != 0 {
			return true, c.Err("api_insecure takes no arguments")
		}
		cfg.insecure = true
	}
	return true, nil
}

// finishContain checks the containment options against each other and
// the rest of the block, once the whole block is read. It reads the API
// tokens file, so a bad file, or one that others can read, is a
// configuration error.
func (s *Shield) finishContain(c *caddy.Controller) error {
	cfg := s.warden
	if cfg == nil {
		return nil
	}
	if cfg.apiAddr != "" && cfg.tokensPath == "" {
		return c.Err("api needs api_tokens: the API refuses every request without a token")
	}
	if cfg.tokensPath != "" && cfg.apiAddr == "" {
		return c.Err("api_tokens is set but api is not")
	}
	if cfg.apiAddr != "" {
		// One Corefile (one instance) cannot give two shield blocks
		// the same API address: the second would take the server over
		// as a reload does, leaving the first unmanageable.
		key := apiAddrKey(cfg.apiAddr)
		if c.Get(key) != nil {
			return c.Errf("api %s is used by another shield block; give each its own address", cfg.apiAddr)
		}
		c.Set(key, true)
	}
	if (cfg.tlsCert != "" || cfg.insecure) && cfg.apiAddr == "" {
		return c.Err("api_tls and api_insecure need api")
	}
	if cfg.tlsCert != "" && cfg.insecure {
		return c.Err("api_tls and api_insecure exclude each other")
	}
	if cfg.apiAddr != "" && cfg.tlsCert == "" && !cfg.insecure && !api.IsLoopback(cfg.apiAddr) {
		// Bearer tokens must not cross a network in clear text.
		return c.Errf("api %s is not loopback: give it a certificate (api_tls CERT KEY), or allow plain HTTP explicitly (api_insecure)", cfg.apiAddr)
	}
	if cfg.tlsCert != "" {
		// Read here so that a bad pair is a configuration error; the
		// server reads it again when it starts or takes over.
		if _, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey); err != nil {
			return c.Errf("api_tls: %v", err)
		}
	}
	if cfg.tokensPath != "" {
		// LoadTokens refuses a file that others on the host can read or
		// change: the tokens manage the resolver.
		t, err := api.LoadTokens(cfg.tokensPath)
		if err != nil {
			return c.Errf("api_tokens: %v", err)
		}
		cfg.tokens = t
	}
	for _, r := range cfg.rules {
		if r.TTL > cfg.maxTTL {
			return c.Errf("%s: ttl %s is above the quarantine maximum %s (see quarantine_ttl)", r.Name, r.TTL, cfg.maxTTL)
		}
	}
	for _, g := range cfg.gardenCfgs {
		for _, l := range s.lists {
			if l.Name == g.Name {
				return c.Errf("duplicate list name %q", g.Name)
			}
		}
	}
	if !cfg.actionSet {
		// Default: the block action's sinkhole if there is one, else
		// NXDOMAIN.
		cfg.action = actNXDomain
		if s.action == actSinkhole {
			cfg.action, cfg.sink.v4, cfg.sink.v6 = actSinkhole, s.sink.v4, s.sink.v6
		}
	}
	for _, g := range cfg.gardenCfgs {
		g.MaxShrink, g.MaxInvalid = s.maxShrink, s.maxInvalid
		cfg.garden = append(cfg.garden, s.newList(g))
	}
	known := map[string]bool{"any": true, "emergency": true}
	for _, l := range s.lists {
		known[l.Name] = true
	}
	for _, d := range detectorKinds {
		known[d] = true
	}
	for _, r := range cfg.rules {
		for _, k := range r.Kinds {
			if !known[k] {
				log.Warningf("%s: kind %q is neither a blocklist nor a known detector; it counts only if something reports it", r.Name, k)
			}
		}
	}
	cfg.store = contain.NewStore(contain.Options{DefaultTTL: cfg.defTTL, MaxTTL: cfg.maxTTL, MaxSpace4: cfg.maxSpace4, MaxSpace6: cfg.maxSpace6})
	if len(cfg.rules) > 0 {
		cfg.ladder = contain.NewLadder(cfg.rules, 0)
	}
	if cfg.apiAddr != "" {
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
