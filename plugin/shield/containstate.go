package shield

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/dnsshield/shield/plugin/shield/audit"
	"github.com/dnsshield/shield/plugin/shield/contain"
)

// The running side of containment: the state file restored at start-up
// and rewritten after changes, the sweep of expired entries, and the
// gauges of what is held.

// sweepEvery is how often expired quarantines and blocks are removed and
// their expiry recorded. The query path checks the expiry itself, so this
// only sets how soon the "expire" record and the metrics follow.
const sweepEvery = time.Second

// startContain runs in OnStartup after the lists: it restores the state
// file, starts the sweeper and state writer, and the API server.
func (s *Shield) startContain() error {
	warden := s.warden
	if warden == nil {
		return nil
	}
	if warden.statePath != "" {
		now := time.Now()
		saved, err := contain.LoadState(warden.statePath, now)
		var ce *contain.CorruptError
		switch {
		case errors.As(err, &ce):
			containErrors.WithLabelValues("corrupt").Inc()
			log.Errorf("%v; starting with no quarantines or emergency blocks", ce)
		case err != nil:
			// Unreadable but maybe intact (permissions, I/O error): never
			// overwrite it. Set it aside if possible, else stop saving.
			containErrors.WithLabelValues("load").Inc()
			aside := warden.statePath + ".unreadable-" + now.UTC().Format("20060102T150405Z")
			if rerr := os.Rename(warden.statePath, aside); rerr == nil {
				log.Errorf("state file %s: %v; set aside as %s, starting with no quarantines or emergency blocks", warden.statePath, err, aside)
			} else {
				log.Errorf("state file %s: %v; starting with no quarantines or emergency blocks and NOT saving state, so the file is kept as it is", warden.statePath, err)
				warden.statePath = ""
			}
		}
		if n, skipped := warden.store.Restore(saved, now); n+skipped > 0 {
			log.Infof("state file %s: restored %d quarantines and emergency blocks, skipped %d expired or invalid", warden.statePath, n, skipped)
		}
	}
	s.updateContainGauges()
	warden.stopc, warden.done = make(chan struct{}), make(chan struct{})
	go s.containLoop()
	if warden.apiAddr != "" {
		if err := s.startAPI(); err != nil {
			s.stopContainLoop()
			return fmt.Errorf("shield: api %s: %w", warden.apiAddr, err)
		}
	}
	return nil
}

// stopContain runs in OnShutdown (also on every Corefile reload).
func (s *Shield) stopContain() {
	warden := s.warden
	if warden == nil || warden.done == nil {
		return
	}
	s.stopAPI()
	s.stopContainLoop()
	s.dropContainGauges()
}

func (s *Shield) stopContainLoop() {
	warden := s.warden
	select {
	case <-warden.stopc:
	default:
		close(warden.stopc)
	}
	<-warden.done
}

// saveEvery is the least time between two writes of the state file. A
// write is a full rewrite with two fsyncs (about 16 MB for a full store),
// so a burst of changes (an API script, escalations under attack) is
// coalesced: the first change of a quiet period is written at once, the
// others together at most saveEvery later, and the last at shutdown.
const saveEvery = time.Second

// writeState writes the state file; a test counts the writes through it.
var writeState = contain.SaveState

// containLoop sweeps expired entries and writes the state file after
// changes. It is the only writer of the state file.
func (s *Shield) containLoop() {
	warden := s.warden
	defer close(warden.done)
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	dirty := false // a change is not in the file yet
	var lastSave, lastErr time.Time
	save := func() {
		if warden.statePath == "" || !dirty {
			return
		}
		lastSave = time.Now()
		if err := writeState(warden.statePath, warden.store.Snapshot(lastSave)); err != nil {
			containErrors.WithLabelValues("save").Inc()
			if time.Since(lastErr) > time.Minute {
				lastErr = time.Now()
				log.Errorf("state file %s: write failed, will retry: %v", warden.statePath, err)
			}
			return
		}
		dirty = false
	}
	// pending runs while a write waits for saveEvery to pass.
	pending := time.NewTimer(time.Hour)
	pending.Stop()
	defer pending.Stop()
	waiting := false
	saveSoon := func() {
		if waiting {
			return
		}
		if wait := saveEvery - time.Since(lastSave); wait > 0 {
			pending.Reset(wait)
			waiting = true
			return
		}
		save()
	}
	sweeps := 0
	var suppressed uint64 // the ladder's count already in the metric
	countSuppressed := func() {
		if warden.ladder != nil {
			n := warden.ladder.Suppressed()
			escalationsSuppressed.Add(float64(n - suppressed))
			suppressed = n
		}
	}
	defer countSuppressed()
	for {
		select {
		case <-warden.stopc:
			// A change may be pending as well: select picks either
			// ready case, so take it before the last save.
			select {
			case <-warden.store.Changed():
				dirty = true
			default:
			}
			save()
			return
		case <-warden.store.Changed():
			dirty = true
			s.updateContainGauges()
			saveSoon()
		case <-pending.C:
			waiting = false
			save()
		case now := <-tick.C:
			quarantines, blocks := warden.store.Sweep(now)
			for _, q := range quarantines {
				s.logAudit(s.quarantineRecord(audit.ActionExpire, "policy:ttl", q))
			}
			for _, b := range blocks {
				s.logAudit(s.blockRecord(audit.ActionExpire, "policy:ttl", b))
			}
			if sweeps++; sweeps%10 == 0 {
				warden.ladder.Sweep(now)
			}
			countSuppressed()
			if dirty {
				saveSoon() // retry a failed write
			}
		}
	}
}

// updateContainGauges brings this Shield's share of the gauges up to
// date. The gauges are the sum over every running shield block (and, for
// the moment a reload overlaps them, both configurations), so each adds
// the change since its last report instead of setting the total.
func (s *Shield) updateContainGauges() {
	warden := s.warden
	q, b := warden.store.Counts()
	quarantinesActive.Add(float64(int64(q) - warden.gaugeQ.Swap(int64(q))))
	emergencyBlocksActive.Add(float64(int64(b) - warden.gaugeB.Swap(int64(b))))
}

// dropContainGauges takes this Shield's share out of the gauges.
func (s *Shield) dropContainGauges() {
	warden := s.warden
	quarantinesActive.Sub(float64(warden.gaugeQ.Swap(0)))
	emergencyBlocksActive.Sub(float64(warden.gaugeB.Swap(0)))
}
