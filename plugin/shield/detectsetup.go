package shield

import (
	"strconv"
	"strings"
	"time"

	"github.com/coredns/caddy"
	"github.com/dnsshield/shield/plugin/shield/score"
	"github.com/miekg/dns"
)

// The detection options of the shield block, and the configuration they
// make.

// detection is the detection configuration of one shield block and, once
// started, its engine.
type detection struct {
	off     bool
	options score.Config
	engine  *score.Engine
	stopc   chan struct{}
	done    chan struct{}

	key       string // the server block, to find its engine across a reload (detectstate.go)
	statePath string // FILE.detect beside the containment state; "" without state

	// Guarded by detectEngines' lock: the detection this one took its
	// engine from while that one still runs; whether a Corefile reload of
	// this one's configuration is under way (its engine may go to the
	// next); whether this one stopped.
	prev      *detection
	reloading bool
	stopped   bool
}

// detectionCfg returns s's detection configuration, making the default one.
func (s *Shield) detectionCfg() *detection {
	if s.detection == nil {
		s.detection = &detection{}
	}
	return s.detection
}

// parseDetectOption parses a detection option of the shield block.
// handled is false when opt is not one.
func parseDetectOption(c *caddy.Controller, s *Shield, opt string, args []string) (handled bool, err error) {
	cfg := s.detectionCfg()
	switch opt {
	case "detect":
		if len(args) != 1 || (args[0] != "on" && args[0] != "off") {
			return true, c.Errf("detect must be on or off")
		}
		cfg.off = args[0] == "off"
	case "detect_threshold":
		if len(args) != 2 {
			return true, c.Errf("detect_threshold needs ALERT BLOCK")
		}
		a, err1 := strconv.Atoi(args[0])
		b, err2 := strconv.Atoi(args[1])
		if err1 != nil || err2 != nil || a < 1 || a > 100 || b < 1 || b > 100 || a > b {
			return true, c.Errf("invalid detect_threshold %q %q: want two scores from 1 to 100, ALERT <= BLOCK", args[0], args[1])
		}
		cfg.options.Alert, cfg.options.Block = a, b
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
		cfg.options.ShortWindow, cfg.options.LongWindow = short, long
	case "detect_sticky":
		if len(args) != 1 {
			return true, c.ArgErr()
		}
		v, err := parseDuration(args[0], time.Second, 30*24*time.Hour)
		if err != nil {
			return true, c.Errf("invalid detect_sticky: %v", err)
		}
		cfg.options.Sticky = v
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
		cfg.options.Domains, cfg.options.Clients, cfg.options.Verdicts = n[0], n[1], n[2]
	case "detect_scope":
		// detect_scope K P: a verdict is fleet-wide once K clients earned
		// it, never by detection once P other clients used the domain.
		if len(args) != 2 {
			return true, c.Errf("detect_scope needs FLEET_CLIENTS POPULAR_CLIENTS")
		}
		k, err1 := strconv.Atoi(args[0])
		p, err2 := strconv.Atoi(args[1])
		if err1 != nil || err2 != nil || k < 1 || k > 8 || p < 1 || p > 60 {
			return true, c.Errf("invalid detect_scope %q %q: want FLEET_CLIENTS from 1 to 8 and POPULAR_CLIENTS from 1 to 60", args[0], args[1])
		}
		cfg.options.FleetClients, cfg.options.PopularClients = k, p
	case "detect_disable":
		if len(args) == 0 {
			return true, c.ArgErr()
		}
		for _, a := range args {
			switch a {
			case score.DetTunnel:
				cfg.options.NoTunnel = true
			case score.DetDGA:
				cfg.options.NoDGA = true
			case score.DetNewlySeen:
				cfg.options.NoNewlySeen = true
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
		cfg.options.Exempt = append(cfg.options.Exempt, args...)
	case "detect_exempt_defaults":
		if len(args) != 1 || (args[0] != "on" && args[0] != "off") {
			return true, c.Errf("detect_exempt_defaults must be on or off")
		}
		cfg.options.NoDefaultExempt = args[0] == "off"
	default:
		return false, nil
	}
	return true, nil
}
