package shield

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/dnsshield/shield/plugin/shield/blocklist"
)

const pluginName = "shield"

func init() { plugin.Register(pluginName, setup) }

// Defaults; each can be changed in the Corefile.
const (
	defaultTTL        = 3600
	defaultMaxShrink  = 0.5             // refuse an update that loses more than half the list
	defaultMaxInvalid = 0.5             // refuse an update that is mostly garbage
	defaultAuditSize  = 100 << 20       // rotate the audit file at 100 MiB
	defaultAuditKeep  = 5               // and keep five rotated files
	defaultAuditQueue = 8192            // records waiting for the writer
	defaultPoll       = 2 * time.Second // fallback poll of list files
	defaultDebounce   = 300 * time.Millisecond
)

// reservedListNames are the kinds escalate rules and audit records use
// for things other than lists: a list so named would be mistaken for them.
var reservedListNames = map[string]bool{"any": true, "emergency": true, "detect": true, "tunnel": true, "dga": true, "newly_seen": true, "quarantine": true}

// listName keeps list names usable as metric label values and in logs.
var listName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func setup(c *caddy.Controller) error {
	s, err := parse(c)
	if err != nil {
		return plugin.Error(pluginName, err)
	}
	c.OnStartup(s.start)
	c.OnShutdown(s.stop)
	c.OnRestartFailed(s.reapAbandoned)
	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		s.Next = next
		return s
	})
	return nil
}

// parse reads the shield block. It does no I/O: lists are loaded and the
// audit file opened in OnStartup.
func parse(c *caddy.Controller) (*Shield, error) {
	s := newShield()
	s.gen = generations.Add(1)
	root := dnsserver.GetConfig(c).Root
	seen := false
	var settle time.Duration // 0: blocklist.DefaultSettle
	for c.Next() {
		if seen {
			return nil, c.Err("shield can only be used once per server block")
		}
		seen = true
		if args := c.RemainingArgs(); len(args) != 0 {
			return nil, c.ArgErr()
		}
		for c.NextBlock() {
			if c.Val() == "settle" {
				args := c.RemainingArgs()
				if len(args) != 1 {
					return nil, c.ArgErr()
				}
				d, err := parseDuration(args[0], 10*time.Millisecond, time.Hour)
				if err != nil {
					return nil, c.Errf("invalid settle: %v", err)
				}
				settle = d
				continue
			}
			if err := parseOption(c, s, root); err != nil {
				return nil, err
			}
		}
	}
	if len(s.lists) == 0 {
		return nil, c.Err("at least one blocklist, allowlist or iplist is required")
	}
	// Lists are made last so that max_shrink and max_invalid apply to
	// every list wherever they appear in the block.
	for _, cfg := range s.lists {
		cfg.MaxShrink, cfg.MaxInvalid, cfg.Settle = s.maxShrink, s.maxInvalid, settle
		l := s.newList(cfg)
		if cfg.IP {
			s.ips = append(s.ips, l)
		} else if cfg.Allow {
			s.allows = append(s.allows, l)
		} else {
			s.blocks = append(s.blocks, l)
		}
	}
	if s.action == actSinkhole && len(s.sink.v4) == 0 && len(s.sink.v6) == 0 {
		return nil, c.Err("action sinkhole needs at least one address")
	}
	s.finishAnswer() // answer.go
	if err := s.finishContain(c); err != nil {
		return nil, err
	}
	if err := s.finishFeeds(c); err != nil {
		return nil, err
	}
	s.finishDetect(c)
	return s, nil
}

func parseOption(c *caddy.Controller, s *Shield, root string) error {
	opt := c.Val()
	args := c.RemainingArgs()
	switch opt {
	case "blocklist", "allowlist", "iplist":
		if len(args) < 2 {
			return c.Errf("%s needs NAME SOURCE [FORMAT], got %d arguments", opt, len(args))
		}
		name := args[0]
		if !listName.MatchString(name) {
			return c.Errf("invalid list name %q: use letters, digits, '_', '-' and '.', at most 64", name)
		}
		if reservedListNames[name] {
			return c.Errf("list name %q is reserved: it names an escalation kind or a ruleset of its own", name)
		}
		for _, l := range s.lists {
			if l.Name == name {
				return c.Errf("duplicate list name %q", name)
			}
		}
		src, format, spec, err := parseListArgs(c, opt, name, args[1:])
		if err != nil {
			return err
		}
		if spec != nil {
			// A feed list has no file: the fetcher loads it, never the
			// watcher.
			s.feeds.specs = append(s.feeds.specs, *spec)
			src = ""
		} else if !filepath.IsAbs(src) && root != "" {
			src = filepath.Join(root, src)
		}
		s.lists = append(s.lists, blocklist.Config{Name: name, Path: src, Format: format, Allow: opt == "allowlist", IP: opt == "iplist"})
	case "action":
		if len(args) == 0 {
			return c.ArgErr()
		}
		a, ok := actionByName[args[0]]
		if !ok {
			return c.Errf("unknown action %q: want nxdomain, nodata, refused, drop or sinkhole ADDR...", args[0])
		}
		if a != actSinkhole && len(args) > 1 {
			return c.Errf("action %s takes no addresses", args[0])
		}
		s.action = a
		s.sink.v4, s.sink.v6 = nil, nil
		for _, v := range args[1:] {
			ip, err := netip.ParseAddr(v)
			if err != nil || ip.Zone() != "" {
				return c.Errf("invalid sinkhole address %q", v)
			}
			ip = ip.Unmap()
			if ip.Is4() {
				s.sink.v4 = append(s.sink.v4, ip)
			} else {
				s.sink.v6 = append(s.sink.v6, ip)
			}
		}
		if a == actSinkhole && len(args) == 1 {
			return c.Err("action sinkhole needs at least one address")
		}
	case "ttl":
		if len(args) != 1 {
			return c.ArgErr()
		}
		v, err := strconv.ParseUint(args[0], 10, 32)
		if err != nil || v > 604800 {
			return c.Errf("invalid ttl %q: want seconds from 0 to 604800", args[0])
		}
		s.ttl = uint32(v)
	case "mode":
		if len(args) != 1 || (args[0] != "enforce" && args[0] != "monitor") {
			return c.Errf("mode must be enforce or monitor")
		}
		s.monitor = args[0] == "monitor"
	case "audit":
		if len(args) != 1 {
			return c.ArgErr()
		}
		s.auditPath = args[0]
		if s.auditPath != "stdout" && s.auditPath != "off" && !filepath.IsAbs(s.auditPath) && root != "" {
			s.auditPath = filepath.Join(root, s.auditPath)
		}
	case "audit_rotate":
		if len(args) != 2 {
			return c.Errf("audit_rotate needs MEGABYTES KEEP")
		}
		mb, err1 := strconv.ParseInt(args[0], 10, 32)
		keep, err2 := strconv.Atoi(args[1])
		if err1 != nil || err2 != nil || mb < 1 || keep < 1 || keep > 1000 {
			return c.Errf("invalid audit_rotate %q %q: want megabytes >= 1 and 1 to 1000 files", args[0], args[1])
		}
		s.auditSize, s.auditKeep = mb<<20, keep
	case "audit_queue":
		if len(args) != 1 {
			return c.ArgErr()
		}
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 1 || n > 1<<20 {
			return c.Errf("invalid audit_queue %q: want 1 to 1048576", args[0])
		}
		s.auditQueue = n
	case "max_shrink", "max_invalid":
		if len(args) != 1 {
			return c.ArgErr()
		}
		v, err := parseShare(args[0])
		if err != nil {
			return c.Errf("invalid %s %q: %v", opt, args[0], err)
		}
		if opt == "max_shrink" {
			s.maxShrink = v
		} else {
			s.maxInvalid = v
		}
	case "reload":
		if len(args) < 1 || len(args) > 2 {
			return c.Errf("reload needs POLL [DEBOUNCE]")
		}
		d, err := parseDuration(args[0], 100*time.Millisecond, time.Hour)
		if err != nil {
			return c.Errf("invalid reload poll interval: %v", err)
		}
		s.poll = d
		if len(args) == 2 {
			if s.debounce, err = parseDuration(args[1], time.Millisecond, time.Minute); err != nil {
				return c.Errf("invalid reload debounce: %v", err)
			}
		}
	case "observer":
		if len(args) != 1 {
			return c.ArgErr()
		}
		s.observer = args[0]
	default:
		if handled, err := parseAnswerOption(c, s, opt, args); handled { // answersetup.go
			return err
		}
		if handled, err := parseContainOption(c, s, opt, args, root); handled {
			return err
		}
		if handled, err := parseDetectOption(c, s, opt, args); handled {
			return err
		}
		if handled, err := parseFeedOption(c, s, opt, args, root); handled {
			return err
		}
		return c.Errf("unknown property %q", opt)
	}
	return nil
}

// parseShare parses a share written as 0.3 or 30%.
func parseShare(v string) (float64, error) {
	pct := false
	if n := len(v); n > 0 && v[n-1] == '%' {
		v, pct = v[:n-1], true
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, err
	}
	if pct {
		f /= 100
	}
	if f < 0 || f > 1 {
		return 0, fmt.Errorf("want a share from 0 to 1 (or 0%% to 100%%)")
	}
	return f, nil
}

func parseDuration(v string, lo, hi time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, err
	}
	if d < lo || d > hi {
		return 0, fmt.Errorf("%s is outside %s to %s", d, lo, hi)
	}
	return d, nil
}

// hostname names this resolver in audit records (observer.name).
func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "shield"
	}
	return h
}
