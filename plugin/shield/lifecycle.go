package shield

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dnsshield/shield/plugin/shield/audit"
	"github.com/dnsshield/shield/plugin/shield/blocklist"
)

// start runs in OnStartup: it opens the audit sink, loads every file list
// once, starts the watcher and then the feed fetchers. A list that fails to load does not stop the
// server; it is retried and readiness stays false until it loads.
func (s *Shield) start() error {
	running.Lock()
	running.m[s] = s.gen
	running.Unlock()
	if err := s.startDetect(); err != nil { // first: a bad detection config opens nothing
		return err
	}
	if s.auditPath != "off" {
		var sink audit.Sink
		if s.auditPath == "stdout" {
			sink = audit.Stdout()
		} else {
			f, err := audit.OpenFile(s.auditPath, s.auditSize, s.auditKeep)
			if err != nil {
				return fmt.Errorf("shield: audit: %w", err)
			}
			sink = f
		}
		var lastLog atomic.Int64
		s.audit = audit.NewWriter(sink, audit.Options{
			Queue:  s.auditQueue,
			OnDrop: auditDropped.Inc,
			OnError: func(err error) {
				auditErrors.Inc()
				// At most one log line a minute: a full disk must not
				// turn into a log flood.
				now := time.Now().Unix()
				if prev := lastLog.Load(); now-prev >= 60 && lastLog.CompareAndSwap(prev, now) {
					log.Errorf("audit write failed: %v", err)
				}
			},
		})
	}
	s.watcher = blocklist.NewWatcher(s.fileLists(), blocklist.WatchOptions{Debounce: s.debounce, Poll: s.poll, OnLoad: s.onLoad})
	s.watcher.LoadAll()
	if err := s.watcher.Start(); err != nil {
		log.Warningf("file events unavailable, polling lists every %s: %v", s.poll, err)
	}
	// After the files: a feed list is served from its disk copy at once
	// and fetched in the background; nothing here waits for the network.
	s.startFeeds()
	if err := s.startContain(); err != nil {
		s.stop() // a failed start must not leave the watcher or the writer running
		return err
	}
	holdMemTrim()
	s.trimming = true
	return nil
}

// running holds the shields whose start ran and whose stop has not, with
// their generation (the order in which they were parsed).
var running = struct {
	sync.Mutex
	m map[*Shield]uint64
}{m: map[*Shield]uint64{}}

var generations atomic.Uint64

// stop runs in OnShutdown, which CoreDNS also calls on every Corefile
// reload, so everything start began ends here.
func (s *Shield) stop() error {
	running.Lock()
	delete(running.m, s)
	running.Unlock()
	return s.shutdown()
}

// reapAbandoned runs in OnRestartFailed of the configuration in force.
// When a Corefile reload fails after the new configuration's plugins
// started (a server block on a taken port, say), CoreDNS drops that
// configuration without running its shutdown hooks; its shields would
// keep their watchers, detectors and audit files forever. They are the
// shields newer than this one that are still running: stop them.
func (s *Shield) reapAbandoned() error {
	running.Lock()
	var abandoned []*Shield
	for o, gen := range running.m {
		if gen > s.gen {
			abandoned = append(abandoned, o)
			delete(running.m, o)
		}
	}
	running.Unlock()
	for _, o := range abandoned {
		log.Warningf("Corefile reload failed: stopping the shield it had started")
		o.shutdown()
	}
	return nil
}

// shutdown ends everything start began.
func (s *Shield) shutdown() error {
	s.stopFeeds()
	s.stopDetect()
	s.stopContain()
	if s.watcher != nil {
		s.watcher.Stop()
	}
	if s.trimming {
		s.trimming = false
		releaseMemTrim()
	}
	if s.audit != nil {
		return s.audit.Close()
	}
	return nil
}

// bigList is the size from which a load returns freed memory to the OS.
const bigList = 100_000

// onLoad turns a load result into metrics and one log line.
func (s *Shield) onLoad(l *blocklist.List, changed bool, err error) {
	name := l.Name()
	if err != nil {
		reason := blocklist.FailRead
		var le *blocklist.LoadError
		if errors.As(err, &le) {
			reason = le.Reason
		}
		reloadFailures.WithLabelValues(name, reason).Inc()
		if snap := l.Snapshot(); snap != nil {
			log.Errorf("list %q: update refused (%s), version %s stays in force: %v", name, reason, snap.Version, err)
		} else {
			log.Errorf("list %q: not loaded (%s), will retry: %v", name, reason, err)
		}
		return
	}
	if !changed {
		return
	}
	snap := l.Snapshot()
	reloads.WithLabelValues(name).Inc()
	listEntries.WithLabelValues(name).Set(float64(snap.Len()))
	listSkipped.WithLabelValues(name, "invalid").Set(float64(snap.Stats.Invalid))
	listSkipped.WithLabelValues(name, "unsupported").Set(float64(snap.Stats.Unsupported))
	lastReload.WithLabelValues(name).Set(float64(snap.Loaded.UnixNano()) / 1e9)
	loadSeconds.WithLabelValues(name).Set(snap.Elapsed.Seconds())
	if snap.Len() >= bigList {
		// Building a big list leaves its scratch memory (the builder's
		// arrays, the old version) to the garbage collector, and the Go
		// runtime returns freed pages to the OS only slowly. Hand them
		// back now so the resolver's RSS reflects the list in force.
		debug.FreeOSMemory()
	}
	log.Infof("list %q: version %s in force: %d names (%s, %d lines, %d invalid, %d unsupported) in %s",
		name, snap.Version, snap.Len(), snap.Format, snap.Stats.Lines, snap.Stats.Invalid, snap.Stats.Unsupported,
		snap.Elapsed.Round(100*time.Microsecond))
}
