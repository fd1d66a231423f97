package shield

// Corefile options of feed and zone-transfer lists.

import (
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/dnsshield/shield/plugin/shield/blocklist"
	"github.com/dnsshield/shield/plugin/shield/feed"
)

// isFeedURL reports whether a list SOURCE names a feed (an HTTP(S) URL
// or a zone transfer) rather than a file.
func isFeedURL(src string) bool {
	lower := strings.ToLower(src)
	return strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://") || isXFRSource(src)
}

// isXFRSource reports whether a list SOURCE is an RPZ zone transfer,
// axfr://primary[:port]/zone.
func isXFRSource(src string) bool {
	return strings.HasPrefix(strings.ToLower(src), "axfr://")
}

// parseListArgs parses the arguments of a blocklist, allowlist or
// walled_garden line after its NAME: SOURCE [FORMAT], and, for a URL,
// the list's own feed options. It returns a nil spec for a file.
func parseListArgs(c *caddy.Controller, opt, name string, args []string) (src string, format blocklist.Format, spec *feedSpec, err error) {
	format = blocklist.FormatAuto
	if len(args) == 0 {
		return "", format, nil, c.Errf("%s needs NAME SOURCE [FORMAT], got 1 argument", opt)
	}
	src, rest := args[0], args[1:]
	if !isFeedURL(src) {
		switch {
		case slices.ContainsFunc(rest, isFeedOption):
			return "", format, nil, c.Errf("%s %q: refresh, sha256, feed_timeout and feed_max_size apply only to an http:// or https:// SOURCE; tsig, refresh, feed_timeout and feed_max_size to an axfr:// one", opt, name)
		case len(rest) > 1:
			return "", format, nil, c.Errf("%s needs NAME SOURCE [FORMAT], got %d arguments", opt, len(args)+1)
		}
	}
	if len(rest) > 0 && !isFeedOption(rest[0]) {
		parseFormat := blocklist.ParseFormat
		if opt == "iplist" {
			parseFormat = parseIPListFormat // answersetup.go
		}
		f, err := parseFormat(rest[0])
		if err != nil {
			return "", format, nil, c.Errf("%s %q: %v", opt, name, err)
		}
		format, rest = f, rest[1:]
	}
	if !isFeedURL(src) {
		return src, format, nil, nil
	}
	spec = &feedSpec{list: name, url: src}
	xfr := isXFRSource(src)
	if xfr {
		// A zone transfer carries an RPZ zone, whatever its records say.
		if format != blocklist.FormatAuto && format != blocklist.FormatRPZ {
			return "", format, nil, c.Errf("%s %q: a zone transfer is an RPZ zone; FORMAT may only be rpz", opt, name)
		}
		format = blocklist.FormatRPZ
	}
	seen := map[string]bool{}
	for len(rest) > 0 {
		key := rest[0]
		if !isFeedOption(key) {
			return "", format, nil, c.Errf("%s %q: unknown feed option %q: want refresh, sha256, feed_timeout, feed_max_size or (axfr://) tsig", opt, name, key)
		}
		if len(rest) < 2 {
			return "", format, nil, c.Errf("%s %q: %s needs a value", opt, name, key)
		}
		if seen[key] {
			return "", format, nil, c.Errf("%s %q: %s is set twice", opt, name, key)
		}
		seen[key] = true
		if key == "tsig" {
			if !xfr {
				return "", format, nil, c.Errf("%s %q: tsig applies only to an axfr:// SOURCE", opt, name)
			}
			if len(rest) < 4 {
				return "", format, nil, c.Errf("%s %q: tsig needs NAME ALGORITHM SECRET_FILE", opt, name)
			}
			if _, ok := feed.TSIGAlgorithm(rest[2]); !ok {
				return "", format, nil, c.Errf("%s %q: tsig algorithm %q: want hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384 or hmac-sha512", opt, name, rest[2])
			}
			spec.tsigName, spec.tsigAlg, spec.tsigFile = rest[1], rest[2], rest[3]
			rest = rest[4:]
			continue
		}
		if xfr && key == "sha256" {
			return "", format, nil, c.Errf("%s %q: sha256 cannot pin a zone transfer; its serial changes with every update", opt, name)
		}
		val := rest[1]
		rest = rest[2:]
		if key == "sha256" {
			if !isSHA256(val) {
				return "", format, nil, c.Errf("%s %q: sha256 %q is not 64 hex digits", opt, name, val)
			}
			spec.sha256 = strings.ToLower(val)
			continue
		}
		if err := setFeedLimit(&spec.own, key, val); err != nil {
			return "", format, nil, c.Errf("%s %q: %v", opt, name, err)
		}
	}
	return src, format, spec, nil
}

// isFeedOption reports whether a word of a list line is one of the
// list's own feed options rather than a FORMAT.
func isFeedOption(w string) bool {
	switch w {
	case "refresh", "sha256", "feed_timeout", "feed_max_size", "tsig":
		return true
	}
	return false
}

func isSHA256(v string) bool {
	if len(v) != 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// Bounds of the feed options.
const (
	maxRefresh     = 7 * 24 * time.Hour
	maxFeedTimeout = time.Hour
	maxFeedSizeMiB = 4096
)

// setFeedLimit parses one of refresh, feed_timeout and feed_max_size into l.
func setFeedLimit(l *feedLimits, key, val string) error {
	switch key {
	case "refresh":
		d, err := parseDuration(val, time.Second, maxRefresh)
		if err != nil {
			return errors.New("invalid refresh: " + err.Error())
		}
		l.refresh = d
	case "feed_timeout":
		d, err := parseDuration(val, time.Second, maxFeedTimeout)
		if err != nil {
			return errors.New("invalid feed_timeout: " + err.Error())
		}
		l.timeout = d
	case "feed_max_size":
		mb, err := strconv.ParseInt(val, 10, 32)
		if err != nil || mb < 1 || mb > maxFeedSizeMiB {
			return errors.New("invalid feed_max_size " + strconv.Quote(val) + ": want megabytes from 1 to " + strconv.Itoa(maxFeedSizeMiB))
		}
		l.maxBytes = mb << 20
	}
	return nil
}

// parseFeedOption parses a shield-wide feed option. handled is false
// when opt is not one.
func parseFeedOption(c *caddy.Controller, s *Shield, opt string, args []string, root string) (handled bool, err error) {
	switch opt {
	case "refresh", "feed_timeout", "feed_max_size":
		if len(args) != 1 {
			return true, c.Errf("%s needs one value", opt)
		}
		if err := setFeedLimit(&s.feeds.defaults, opt, args[0]); err != nil {
			return true, c.Err(err.Error())
		}
	case "feed_cache":
		if len(args) != 1 {
			return true, c.Err("feed_cache needs DIR")
		}
		if s.feeds.cacheDir != "" {
			return true, c.Err("feed_cache is set twice")
		}
		s.feeds.cacheDir = underRoot(root, args[0])
	default:
		return false, nil
	}
	return true, nil
}

// underRoot returns path under root when it is relative and root is set.
func underRoot(root, path string) string {
	if root == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(root, path)
}

// finishFeeds makes a Fetcher for every feed list once the whole block is
// read, so that the shield-wide options apply wherever they appear. It
// does no I/O: the cache is read and the network asked in OnStartup.
func (s *Shield) finishFeeds(c *caddy.Controller) error {
	if len(s.feeds.specs) == 0 {
		if s.feeds.cacheDir != "" || s.feeds.defaults != (feedLimits{}) {
			log.Warningf("refresh, feed_cache, feed_timeout and feed_max_size are set but no list is a URL")
		}
		return nil
	}
	byName := map[string]*blocklist.List{}
	for _, l := range s.allows {
		byName[l.Name()] = l
	}
	for _, l := range s.blocks {
		byName[l.Name()] = l
	}
	for _, l := range s.gardenLists() {
		byName[l.Name()] = l
	}
	s.feeds.byList = map[*blocklist.List]*feed.Fetcher{}
	for i := range s.feeds.specs {
		spec := &s.feeds.specs[i]
		l := byName[spec.list]
		if l == nil { // cannot happen: every spec comes from a list line
			return c.Errf("feed %q has no list", spec.list)
		}
		lim := spec.own
		if lim.refresh == 0 && !isXFRSource(spec.url) {
			// A zone transfer follows its SOA refresh unless its own
			// line sets one.
			lim.refresh = s.feeds.defaults.refresh
		}
		if lim.timeout == 0 {
			lim.timeout = s.feeds.defaults.timeout
		}
		if lim.maxBytes == 0 {
			lim.maxBytes = s.feeds.defaults.maxBytes
		}
		spec.limits = lim
		if lim.refresh != 0 && lim.refresh < minQuietRefresh && !s.feeds.warned {
			s.feeds.warned = true
			log.Warningf("list %q: refresh %s is under a minute: fine for a test, but a feed host may ban a resolver that polls this often", spec.list, lim.refresh)
		}
		tsig, err := readTSIG(spec, dnsserver.GetConfig(c).Root)
		if err != nil {
			return c.Errf("list %q: %v", spec.list, err)
		}
		f, err := feed.New(l, feed.Options{
			URL: spec.url, Refresh: lim.refresh, Timeout: lim.timeout, MaxBytes: lim.maxBytes,
			SHA256: spec.sha256, CacheDir: s.feeds.cacheDir, OnResult: s.onFeedResult, TSIG: tsig,
		})
		if err != nil {
			return c.Err(err.Error())
		}
		s.feeds.fetchers = append(s.feeds.fetchers, f)
		s.feeds.byList[l] = f
	}
	return nil
}

// readTSIG returns the TSIG key of an axfr:// list, its secret read from
// its file (relative to root), or nil when the list has none.
func readTSIG(spec *feedSpec, root string) (*feed.TSIG, error) {
	if spec.tsigName == "" {
		return nil, nil
	}
	secret, err := feed.ReadTSIGSecret(underRoot(root, spec.tsigFile))
	if err != nil {
		return nil, err
	}
	return &feed.TSIG{Name: spec.tsigName, Algorithm: spec.tsigAlg, Secret: secret}, nil
}
