package shield

import (
	"fmt"
	"time"

	"github.com/dnsshield/shield/plugin/shield/score"
)

// The detection engine's life: made at start-up, and its table gauges
// reported while it runs.

// startDetect makes the engine (OnStartup). Detection is on unless
// "detect off" was given.
func (s *Shield) startDetect() error {
	d := s.detectionCfg()
	if d.off {
		return nil
	}
	e, err := score.New(d.options)
	if err != nil {
		return fmt.Errorf("shield: detect: %w", err)
	}
	d.carryOver(e) // the previous configuration's engine, or the state file (detectstate.go)
	d.engine = e
	d.stopc, d.done = make(chan struct{}), make(chan struct{})
	go d.report()
	return nil
}

// stopDetect stops the engine's metrics reporter and state writer
// (OnShutdown) and writes the state file a last time, unless the engine
// went to the next configuration, which writes it from now on.
func (s *Shield) stopDetect() {
	d := s.detection
	if d == nil || d.engine == nil || d.stopc == nil {
		return
	}
	close(d.stopc)
	<-d.done
	d.stopc = nil
	if d.release() {
		d.saveState()
	}
}

// report updates the table metrics every few seconds, and writes the
// state file every detectSaveEvery while this configuration serves the
// server block. Gauges move by this engine's change, so several server
// blocks add up.
func (d *detection) report() {
	defer close(d.done)
	var last score.Stats
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	lastSave := time.Now()
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
			detectVerdictsRefusedShare.Add(float64(s.VerdictsRefusedShare - last.VerdictsRefusedShare))
		}
		last = s
	}
	apply(d.engine.Stats())
	for {
		select {
		case now := <-tick.C:
			apply(d.engine.Stats())
			if d.statePath != "" && now.Sub(lastSave) >= detectSaveEvery && d.owns() {
				lastSave = now
				d.saveState()
			}
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
