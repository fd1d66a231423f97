package score

import (
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"
)

// The verdicts as an operator sees them: the names and earners kept
// beside the verdict table, and the functions the management API calls.

// maxEarners is how many earners of a domain's verdicts are remembered
// (their keys, for scopes and prevalence, and their addresses, for
// operators). FleetClients may not exceed it.
const maxEarners = 8

// recordBytes bounds the memory of one verdict record: the struct (48
// bytes), its map slot (about 48), a name of up to 253 bytes (a 256-byte
// allocation) and maxEarners earners of 32 bytes.
const recordBytes = 48 + 48 + 256 + maxEarners*32

// earner is a client whose own query scored at or above block for a
// domain.
type earner struct {
	key  uint64
	addr netip.Addr
}

// verdictRecord is what the engine remembers of a domain with verdicts
// besides the verdict table: its name, when the first verdict was made,
// and who earned them. It is written only when a verdict is stored (rare
// next to queries, and it may allocate).
type verdictRecord struct {
	name    string
	start   uint32 // engine seconds
	until   uint32 // the latest expiry of its verdicts
	earners []earner
}

// verdictRecords holds at most max records; a full store first drops the
// records whose verdicts have all expired (at most once per engine
// second), then refuses new ones (the verdict holds, nameless).
type verdictRecords struct {
	mu        sync.Mutex
	m         map[uint64]*verdictRecord
	max       int
	lastSweep uint32
}

func newVerdictRecords(max int) *verdictRecords {
	return &verdictRecords{m: map[uint64]*verdictRecord{}, max: max}
}

// earnerKeys appends the keys of the domain's earners to buf.
func (r *verdictRecords) earnerKeys(dom uint64, buf []uint64) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rec := r.m[dom]; rec != nil {
		for _, e := range rec.earners {
			buf = append(buf, e.key)
		}
	}
	return buf
}

// note records a verdict on the domain dom, named by name(), earned by
// the client with key client and address addr (key 0: an operator).
func (r *verdictRecords) note(dom uint64, name func() string, client uint64, addr netip.Addr, now, until uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.m[dom]
	if rec == nil {
		if len(r.m) >= r.max {
			if r.lastSweep == now {
				return
			}
			r.lastSweep = now
			for k, v := range r.m {
				if v.until <= now {
					delete(r.m, k)
				}
			}
			if len(r.m) >= r.max {
				return
			}
		}
		rec = &verdictRecord{name: name(), start: now}
		r.m[dom] = rec
	}
	if until > rec.until {
		rec.until = until
	}
	if client == 0 || len(rec.earners) >= maxEarners {
		return
	}
	for _, e := range rec.earners {
		if e.key == client {
			return
		}
	}
	rec.earners = append(rec.earners, earner{client, addr})
}

// VerdictInfo describes the verdicts on one registered domain.
type VerdictInfo struct {
	Domain   string       // the registered domain; "" if its record was not kept (a full store)
	Scope    Scope        // ScopeFleet if a fleet verdict holds, else ScopeClient
	Clients  []netip.Addr // the clients that earned it (up to 8); for a client scope, the ones it blocks
	Score    int          // the highest score of its verdicts
	Detector string       // the detector of that verdict
	Reasons  []string     // its top reason
	Start    time.Time    // when the first verdict on the domain was made
	Expires  time.Time    // when the last one expires
}

// Verdicts returns the live verdicts, one entry per registered domain,
// sorted by domain. It scans the verdict table: for operators, not for
// the query path.
func (e *Engine) Verdicts() []VerdictInfo {
	now := e.now()
	type agg struct {
		fleet   bool
		clients []uint64
		best    verdict
		until   uint32
	}
	doms := map[uint64]*agg{}
	e.verdicts.each(now, func(v *verdict) {
		a := doms[v.dom]
		if a == nil {
			a = &agg{}
			doms[v.dom] = a
		}
		if v.scope == ScopeFleet {
			a.fleet = true
		} else {
			a.clients = append(a.clients, v.key)
		}
		if v.score > a.best.score || a.best.key == 0 {
			a.best = *v
		}
		a.until = max(a.until, v.until)
	})
	out := make([]VerdictInfo, 0, len(doms))
	e.records.mu.Lock()
	for dom, a := range doms {
		vi := VerdictInfo{
			Scope: ScopeClient, Score: int(a.best.score), Detector: detectorNames[a.best.detector],
			Reasons: []string{reasonNames[a.best.reason]}, Expires: e.wall(a.until),
		}
		if a.fleet {
			vi.Scope = ScopeFleet
		}
		if rec := e.records.m[dom]; rec != nil {
			vi.Domain, vi.Start = rec.name, e.wall(rec.start)
			for _, er := range rec.earners {
				if a.fleet || containsKey(a.clients, clientVerdictKey(dom, er.key)) {
					vi.Clients = append(vi.Clients, er.addr)
				}
			}
		}
		out = append(out, vi)
	}
	e.records.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Domain < out[j].Domain })
	return out
}

// wall returns the wall-clock time of engine second s.
func (e *Engine) wall(s uint32) time.Time {
	return e.start.Add(time.Duration(s-1) * time.Second)
}

func containsKey(keys []uint64, k uint64) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

// domainKey returns the key of a registered domain as an operator writes
// it: any case, with or without the trailing dot.
func (e *Engine) domainKey(domain string) uint64 {
	d := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(domain)), ".")
	return keyHashString(e.keySeed, d)
}

// Clear removes every verdict on a registered domain, fleet-wide and
// client-scoped, and reports whether one was live.
func (e *Engine) Clear(domain string) bool {
	dom := e.domainKey(domain)
	live := e.verdicts.removeDomain(dom, e.now())
	e.records.mu.Lock()
	delete(e.records.m, dom)
	e.records.mu.Unlock()
	return live > 0
}

// Unblock is Clear.
func (e *Engine) Unblock(domain string) bool { return e.Clear(domain) }

// Promote makes the verdict on a registered domain fleet-wide: an
// operator's decision, for a popular domain that detection alone keeps
// client-scoped. The fleet verdict lasts the sticky duration from now and
// carries the strongest client verdict's score and reason. It reports
// whether the domain had a live verdict (a fleet one already counts) and
// the fleet verdict now holds.
func (e *Engine) Promote(domain string) bool {
	dom := e.domainKey(domain)
	now := e.now()
	var best verdict
	found, fleet := false, false
	e.verdicts.each(now, func(v *verdict) {
		if v.dom != dom {
			return
		}
		fleet = fleet || v.scope == ScopeFleet
		if !found || v.score > best.score {
			best, found = *v, true
		}
	})
	if fleet || !found {
		return fleet
	}
	until := now + e.stickyFor
	v := verdict{key: dom, dom: dom, until: until, score: best.score, reason: best.reason, detector: best.detector, scope: ScopeFleet}
	if !e.verdicts.put(v, now, 0) {
		return false
	}
	e.records.mu.Lock()
	if rec := e.records.m[dom]; rec != nil && until > rec.until {
		rec.until = until
	}
	e.records.mu.Unlock()
	return true
}
