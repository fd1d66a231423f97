package shield

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/dnsshield/shield/plugin/shield/blocklist"
	"github.com/dnsshield/shield/plugin/shield/feed"
)

// Lists from HTTP(S) feeds. A list whose SOURCE is an http:// or https://
// URL is kept current by a feed.Fetcher instead of the file watcher; the
// shield-wide refresh, feed_cache, feed_timeout and feed_max_size set the
// defaults, and the list's own line may override them.

// minQuietRefresh is the shortest refresh accepted without a warning: a
// feed host may ban a resolver that polls more often.
const minQuietRefresh = time.Minute

// feedLimits are the fetch options a list may set for itself. A zero
// value takes the shield-wide setting, and then the feed package's
// default.
type feedLimits struct {
	refresh  time.Duration
	timeout  time.Duration
	maxBytes int64
}

// feedSpec is one list's feed, as configured.
type feedSpec struct {
	list   string // the list name
	url    string
	sha256 string
	own    feedLimits // set on the list's line
	// tsig signs the transfers of an axfr:// list: the key's name, its
	// algorithm (as BIND spells it) and the file holding its secret.
	tsigName, tsigAlg, tsigFile string
	// limits are the ones in force: own, else the shield-wide ones
	// (zero: the feed package's defaults). Set by finishFeeds.
	limits feedLimits
}

// feeds is a shield's feed configuration and, once started, its fetchers.
type feeds struct {
	defaults feedLimits // refresh, feed_timeout, feed_max_size
	cacheDir string     // feed_cache; "" keeps no disk copy
	specs    []feedSpec // in the order configured
	warned   bool       // the short-refresh warning was logged

	fetchers []*feed.Fetcher                   // made in parse, one per spec
	byList   map[*blocklist.List]*feed.Fetcher // for the status page
}

// isFeedList reports whether l is kept current by a feed.
func (s *Shield) isFeedList(l *blocklist.List) bool {
	_, ok := s.feeds.byList[l]
	return ok
}

// fileLists returns the lists read from local files, for the watcher:
// a feed list is never watched (it has no file of its own).
func (s *Shield) fileLists() []*blocklist.List {
	var out []*blocklist.List
	for _, group := range [][]*blocklist.List{s.allows, s.blocks, s.ips, s.gardenLists()} {
		for _, l := range group {
			if !s.isFeedList(l) {
				out = append(out, l)
			}
		}
	}
	return out
}

// startFeeds serves each feed list from its disk copy, if there is one,
// and starts the fetchers. It never waits for the network.
func (s *Shield) startFeeds() {
	if len(s.feeds.fetchers) == 0 {
		return
	}
	liveFeeds.Lock()
	for i, f := range s.feeds.fetchers {
		spec := s.feeds.specs[i]
		liveFeeds.m[f] = liveFeed{url: spec.url, sha256: spec.sha256, list: f.List()}
	}
	liveFeeds.Unlock()
	for _, f := range s.feeds.fetchers {
		f.Start()
	}
}

// stopFeeds stops the fetchers and waits for them; a fetch in flight is
// cancelled. The lists keep their content.
func (s *Shield) stopFeeds() {
	for _, f := range s.feeds.fetchers {
		f.Stop()
	}
	liveFeeds.Lock()
	for _, f := range s.feeds.fetchers {
		delete(liveFeeds.m, f)
	}
	liveFeeds.Unlock()
}

// liveFeed is a started fetcher's feed and list.
type liveFeed struct {
	url, sha256 string
	list        *blocklist.List
}

// liveFeeds holds the fetchers of the started shields: the metrics
// collector reads their status at scrape time, and a Corefile reload
// takes over their lists (newList).
var liveFeeds = struct {
	sync.Mutex
	m map[*feed.Fetcher]liveFeed
}{m: map[*feed.Fetcher]liveFeed{}}

// newList returns the list for cfg. A feed list that a running shield
// already keeps, from the same URL, with the same pin and the same
// configuration, is taken over rather than made anew: a Corefile reload
// then keeps the feed's content in force (and readiness true) while the
// new configuration's fetcher starts, instead of an empty list until the
// first fetch when there is no feed_cache. The old configuration's
// fetcher stops in its OnShutdown and leaves the content in place.
func (s *Shield) newList(cfg blocklist.Config) *blocklist.List {
	var spec *feedSpec
	for i := range s.feeds.specs {
		if s.feeds.specs[i].list == cfg.Name {
			spec = &s.feeds.specs[i]
		}
	}
	if spec != nil {
		liveFeeds.Lock()
		defer liveFeeds.Unlock()
		for _, lf := range liveFeeds.m {
			if lf.url == spec.url && lf.sha256 == spec.sha256 && lf.list.Config() == cfg && lf.list.Snapshot() != nil {
				return lf.list
			}
		}
	}
	return blocklist.NewList(cfg)
}

// onFeedResult turns the result of a fetch (or of the start-up load from
// the disk cache) into metrics and, for anything but a quiet success, one
// log line naming the redacted URL, the status and the reason.
func (s *Shield) onFeedResult(r feed.Result) {
	feedFetches.WithLabelValues(r.List, r.Outcome).Inc()
	l := s.feedList(r.List)
	switch {
	case r.Refused():
		var le *blocklist.LoadError
		if errors.As(r.Err, &le) {
			// The list's own checks refused the download, as they
			// refuse a bad local file.
			reloadFailures.WithLabelValues(r.List, le.Reason).Inc()
		}
		if r.Version != "" {
			log.Errorf("list %q: feed update refused (%s), version %s stays in force: %v", r.List, r.Outcome, r.Version, r.Err)
		} else {
			log.Errorf("list %q: feed not loaded (%s), will retry: %v", r.List, r.Outcome, r.Err)
		}
		return
	case r.Err != nil: // in force, but the disk copy was not updated
		log.Warningf("list %q: %v", r.List, r.Err)
	}
	if r.Changed && l != nil {
		if r.Outcome == feed.CacheLoaded {
			log.Infof("list %q: served from the disk cache until %s answers", r.List, r.URL)
		} else if r.Outcome == feed.AXFR || r.Outcome == feed.IXFR {
			log.Infof("list %q: new version transferred from %s (%s, %d bytes as text, %s)", r.List, r.URL, strings.ToUpper(r.Outcome), r.Bytes, r.Elapsed.Round(time.Millisecond))
		} else {
			log.Infof("list %q: new version fetched from %s (HTTP %d, %d bytes, %s)", r.List, r.URL, r.Status, r.Bytes, r.Elapsed.Round(time.Millisecond))
		}
		s.onLoad(l, true, nil)
	}
}

// feedList returns the list named name that a feed keeps current.
func (s *Shield) feedList(name string) *blocklist.List {
	for l := range s.feeds.byList {
		if l.Name() == name {
			return l
		}
	}
	return nil
}
