package shield

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/dnsshield/shield/plugin/shield/contain"
	"github.com/dnsshield/shield/plugin/shield/score"
)

// What the detection engine keeps across a Corefile reload and a restart.
//
// Reload: the engine of a server block goes to the same server block of
// the next configuration (score.Engine.Handover), so that a reload keeps
// every verdict, counter and the first-seen history. A server block is
// known by its first key as CoreDNS reads it, transport://zone:port, and
// its bind addresses: what CoreDNS itself refuses to have twice. Its
// position in the Corefile would move when a block is added above it;
// its zone and port do not. A block whose first zone, port or bind
// changed starts afresh (from the state file when there is one).
//
// Restart: with `state FILE`, the verdicts and the history are written to
// FILE.detect (score.Engine.SaveState: binary, versioned, checksummed)
// beside the containment state, at most once a minute and at shutdown,
// and read back at start-up. A separate file because the two differ in
// size and pace: the containment state is a small JSON file rewritten
// within a second of each change, the detection state a few MiB of
// filters. A corrupt file is set aside as FILE.detect.corrupt-TIMESTAMP
// and counted, and the server starts without it; it is never overwritten.

// detectSaveEvery is the least time between two writes of the detection
// state file. A restart loses at most this much of it.
const detectSaveEvery = time.Minute

// detectEngines holds, by server block, the detection of the
// configuration that serves it: the one a Corefile reload hands over from.
var detectEngines = struct {
	sync.Mutex
	m map[string]*detection
}{m: map[string]*detection{}}

// serverBlockKey returns the key of the server block being set up.
func serverBlockKey(c *caddy.Controller) string {
	cfg := dnsserver.GetConfig(c)
	return fmt.Sprintf("%s://%s:%s %v", cfg.Transport, cfg.Zone, cfg.Port, cfg.ListenHosts)
}

// finishDetect records where the detection of the server block being set
// up is kept: its key, and the state file beside the containment state.
// CoreDNS runs the OnRestart hooks of the configuration in force before it
// sets up the next one: only then may an engine go to the next one, and
// not to an unrelated CoreDNS instance of the same process (as tests
// start) that happens to have a server block of the same key.
func (s *Shield) finishDetect(c *caddy.Controller) {
	d := s.detectionCfg()
	d.key = serverBlockKey(c)
	if s.warden != nil && s.warden.statePath != "" {
		d.statePath = s.warden.statePath + ".detect"
	}
	c.OnRestart(func() error { d.setReloading(true); return nil })
	c.OnRestartFailed(func() error { d.setReloading(false); return nil })
}

func (d *detection) setReloading(on bool) {
	detectEngines.Lock()
	d.reloading = on
	detectEngines.Unlock()
}

// adopt registers d as the detection serving its server block and returns
// the one it replaces when that one's configuration is being reloaded:
// d takes over its engine. It returns nil when there is none.
func (d *detection) adopt() *detection {
	detectEngines.Lock()
	defer detectEngines.Unlock()
	prev := detectEngines.m[d.key]
	detectEngines.m[d.key] = d
	if prev == nil || prev.engine == nil || prev.stopped || !prev.reloading {
		return nil
	}
	d.prev = prev
	return prev
}

// release takes d out of the registry when it stops. It reports whether
// d still served its server block, so that its state is for it to save.
// A detection that stops while the one it took over from still runs was
// started by a Corefile reload that failed (lifecycle.go, reapAbandoned):
// the server block is given back to the older one, which keeps serving
// and saving.
func (d *detection) release() (owner bool) {
	detectEngines.Lock()
	defer detectEngines.Unlock()
	d.stopped = true
	cur := detectEngines.m[d.key]
	if cur != d {
		// Handed over: the next one does not need to hand back to d.
		if cur != nil && cur.prev == d {
			cur.prev = nil
		}
		return false
	}
	if p := d.prev; p != nil && !p.stopped {
		detectEngines.m[d.key] = p
		d.prev = nil
		return false
	}
	delete(detectEngines.m, d.key)
	d.prev = nil
	return true
}

// owns reports whether d serves its server block (it was not handed over).
func (d *detection) owns() bool {
	detectEngines.Lock()
	defer detectEngines.Unlock()
	return detectEngines.m[d.key] == d
}

// carryOver gives e the engine state of the configuration before a
// reload, or else the state file's. It runs before e scores anything.
func (d *detection) carryOver(e *score.Engine) {
	if prev := d.adopt(); prev != nil {
		c := e.Handover(prev.engine)
		log.Infof("detection: carried over the reload (shared tables %v; copied %d verdicts, %d domains, %d clients; history %v)",
			c.Shared, c.Verdicts, c.Domains, c.Clients, c.History)
		return
	}
	if d.statePath != "" {
		d.loadState(e)
	}
}

// loadState reads the state file into the fresh engine e. A corrupt file
// is set aside and counted; an unreadable one is set aside if it can be,
// else the state is not saved, so the file stays as it is.
func (d *detection) loadState(e *score.Engine) {
	path := d.statePath
	now := time.Now()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var c score.Carried
	if err == nil {
		c, err = e.LoadState(f)
		f.Close()
	}
	switch {
	case err == nil:
		log.Infof("detection state %s: loaded %d verdicts (%d expired or dropped); first-seen history %v, newly_seen from %s",
			path, c.Verdicts, c.VerdictsDropped, c.History, e.NewlySeenFrom().UTC().Format(time.RFC3339))
	case errors.Is(err, score.ErrCorruptState):
		detectStateErrors.WithLabelValues("corrupt").Inc()
		aside := path + ".corrupt-" + now.UTC().Format("20060102T150405Z")
		if rerr := os.Rename(path, aside); rerr == nil {
			log.Errorf("detection state %s: %v; set aside as %s, starting without verdicts or first-seen history", path, err, aside)
		} else {
			log.Errorf("detection state %s: %v; starting without it and NOT saving detection state, so the file is kept as it is", path, err)
			d.statePath = ""
		}
	default:
		detectStateErrors.WithLabelValues("load").Inc()
		aside := path + ".unreadable-" + now.UTC().Format("20060102T150405Z")
		if rerr := os.Rename(path, aside); rerr == nil {
			log.Errorf("detection state %s: %v; set aside as %s, starting without verdicts or first-seen history", path, err, aside)
		} else {
			log.Errorf("detection state %s: %v; starting without it and NOT saving detection state, so the file is kept as it is", path, err)
			d.statePath = ""
		}
	}
}

// saveState writes the engine's state file, if d has one. A failure is
// counted and logged at most once a minute (saves are a minute apart).
func (d *detection) saveState() {
	if d.statePath == "" {
		return
	}
	if err := contain.WriteFileAtomic(d.statePath, d.engine.SaveState); err != nil {
		detectStateErrors.WithLabelValues("save").Inc()
		log.Errorf("detection state %s: write failed, the previous file stays: %v", d.statePath, err)
	}
}
