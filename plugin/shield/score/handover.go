package score

import (
	"sort"
	"sync/atomic"
)

// Carried says what Handover or LoadState gave an engine.
type Carried struct {
	// Shared names the tables the new engine took over as they were:
	// "verdicts", "domains", "clients", "names", "history".
	Shared []string
	// Entries copied into tables of another size or layout.
	Verdicts, Domains, Clients int
	// VerdictsDropped are live verdicts that did not fit (or, from a
	// state file, had keys the engine cannot use).
	VerdictsDropped int
	// History reports whether first-seen history was carried (shared,
	// copied or loaded).
	History bool
}

// Handover gives e the state of prev, the engine that the same server
// block ran in the configuration before a Corefile reload: its sticky
// verdicts, its per-domain and per-client tables, its recently seen names
// and its first-seen history, together with the key seeds, the engine
// clock and the history start that give them their meaning. It must be
// called after New and before e scores its first query; prev may go on
// scoring meanwhile.
//
// A table of the same size in both configurations (and, for the tables of
// counters, the same windows) is shared: e uses prev's table itself. The
// old configuration keeps serving queries until CoreDNS stops it, a moment
// after the new one started, and during that overlap both engines write
// the same tables. Every table is safe for concurrent use (sharded locks
// and atomic words), and the two engines agree on keys and on the clock,
// so the overlap's queries land where a single engine would put them and
// nothing prev learns in the overlap is lost. Once its configuration
// stops, prev is dropped; nothing of it needs closing.
//
// A table whose size changed is copied instead: the live verdicts (the
// most used first, so a smaller table keeps those), the per-domain and
// per-client entries when the windows did not change (the most recently
// used win a full set), and the first-seen history (both filters merged
// into the current one when the long window changed). What prev learns
// after the copy is not carried. The recently seen names are not copied:
// their slots depend on the table size, and a name counted again as new
// costs little.
func (e *Engine) Handover(prev *Engine) Carried {
	var c Carried
	if prev == nil || prev == e {
		return c
	}
	e.seed, e.keySeed, e.start = prev.seed, prev.keySeed, prev.start
	e.suffixes = prev.suffixes // a cache of the public suffix list, the same in every configuration
	now := e.now()
	sameWindows := e.shortEpochLen == prev.shortEpochLen && e.longEpochLen == prev.longEpochLen

	if e.verdicts.capacity == prev.verdicts.capacity {
		e.verdicts = prev.verdicts
		e.records = prev.records // the verdicts' names and earners go with them
		c.Shared = append(c.Shared, "verdicts")
	} else {
		c.Verdicts, c.VerdictsDropped = e.verdicts.copyFrom(prev.verdicts, now)
	}
	switch {
	case !sameWindows:
	case e.domains.capacity == prev.domains.capacity:
		e.domains = prev.domains
		c.Shared = append(c.Shared, "domains")
	default:
		c.Domains = e.domains.copyFrom(prev.domains)
	}
	switch {
	case !sameWindows:
	case e.clients.capacity == prev.clients.capacity:
		e.clients = prev.clients
		c.Shared = append(c.Shared, "clients")
	default:
		c.Clients = e.clients.copyFrom(prev.clients)
	}
	// Prevalence and the clients' DGA evidence are lock-free tables:
	// shared when their shape matches (the prevalence generations count
	// on the one engine clock both engines share).
	if len(e.prev.lines[0]) == len(prev.prev.lines[0]) && e.prev.half == prev.prev.half {
		e.prev = prev.prev
		c.Shared = append(c.Shared, "prevalence")
	}
	if e.budgets.capacity == prev.budgets.capacity && sameWindows {
		e.budgets, e.parents = prev.budgets, prev.parents
		c.Shared = append(c.Shared, "budgets")
	}
	if len(e.dgaEvidence.slots) == len(prev.dgaEvidence.slots) {
		e.dgaEvidence = prev.dgaEvidence
		c.Shared = append(c.Shared, "dga_evidence")
	}
	if len(e.recentNames.slots) == len(prev.recentNames.slots) {
		e.recentNames = prev.recentNames
		c.Shared = append(c.Shared, "names")
	}
	switch {
	case e.longEpochLen == prev.longEpochLen && len(e.history.bits[0]) == len(prev.history.bits[0]):
		e.history = prev.history
		c.Shared = append(c.Shared, "history")
		c.History = true
	default:
		c.History = e.history.merge(prev.history, now/e.longEpochLen)
	}
	if c.History {
		e.setHistoryFrom(prev.historyFrom)
	} else {
		e.setHistoryFrom(e.historyFrom) // the same start on the handed-over clock
	}
	return c
}

// copyFrom copies the live verdicts of src, which uses the same engine
// clock, into t, the most used first. It returns how many it copied and
// how many did not fit.
func (t *verdictTable) copyFrom(src *verdictTable, now uint32) (copied, dropped int) {
	live := src.live(now)
	sort.SliceStable(live, func(i, j int) bool { return live[i].hits > live[j].hits })
	for _, v := range live {
		if t.put(v, now, 0) {
			copied++
		} else {
			dropped++
		}
	}
	return copied, dropped
}

// live returns the verdicts of t that have not expired at now.
func (t *verdictTable) live(now uint32) []verdict {
	var out []verdict
	for i := range t.shards {
		shard := &t.shards[i]
		shard.mu.Lock()
		for _, v := range shard.entries {
			if v.key != 0 && v.until > now {
				out = append(out, v)
			}
		}
		shard.mu.Unlock()
	}
	return out
}

// copyFrom copies the entries of src, which uses the same engine clock,
// into t with their last use. In a full set of t the most recently used
// entries stay. It returns how many it copied.
func (t *setTable[E]) copyFrom(src *setTable[E]) (copied int) {
	for i := range src.shards {
		s := &src.shards[i]
		s.mu.Lock()
		for set := range s.keys {
			for w, k := range s.keys[set] {
				if k != 0 && t.adopt(k, s.stamps[set][w], &s.entries[set][w]) {
					copied++
				}
			}
		}
		s.mu.Unlock()
	}
	return copied
}

// adopt puts key with its entry and its last use stamp into t, unless
// the key's set is full of entries used more recently. It reports whether
// it did.
func (t *setTable[E]) adopt(key uint64, stamp uint32, entry *E) bool {
	shard := &t.shards[key>>58]
	shard.mu.Lock()
	defer shard.mu.Unlock()
	set := key & (t.sets - 1)
	keys, stamps := &shard.keys[set], &shard.stamps[set]
	way, found := pickWay(keys, stamps, key)
	if !found {
		if keys[way] != 0 && stamps[way] >= stamp {
			return false
		}
		if keys[way] == 0 {
			t.used.Add(1)
		}
	}
	keys[way], stamps[way] = key, stamp
	shard.entries[set][way] = *entry
	return true
}

// merge adds every key of both of src's filters to b's current filter
// and makes epoch b's current long epoch, so that nothing src remembers is
// forgotten before one more long window has passed. b must not be in use.
// It reports false, and does nothing, when the filters' sizes differ.
func (b *bloom) merge(src *bloom, epoch uint32) bool {
	if len(b.bits[0]) != len(src.bits[0]) {
		return false
	}
	cur := b.bits[b.cur.Load()]
	for f := 0; f < 2; f++ {
		orWords(cur, src.bits[f])
	}
	b.epoch.Store(epoch)
	return true
}

// orWords ors the words of src into dst, which have the same length.
func orWords(dst, src []atomic.Uint64) {
	for i := range dst {
		if w := src[i].Load(); w != 0 {
			dst[i].Or(w)
		}
	}
}
