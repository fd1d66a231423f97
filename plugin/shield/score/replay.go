package score

import (
	"net/netip"
	"sort"
	"time"
)

// Event is one query of a labelled corpus replay.
type Event struct {
	Name   string
	Type   uint16
	Client netip.Addr
	Rcode  int    // the upstream's answer, fed back when the query passes
	Label  string // for example "benign", "tunnel", "dga"
	Group  string // family or tool; the unit of "session"
	// At, when not zero, is the event's time as an offset from the
	// replay's start: the clock moves there (never backwards) instead of
	// by Step, so a capture replays with its own timing.
	At time.Duration
}

// GroupStats are the replay figures of one label or group.
type GroupStats struct {
	Label, Group string
	Queries      int
	Scored       int // not exempt
	Alerts       int // alert or block (a block is also an alert)
	Blocks       int
	FirstBlock   int // 1-based index of the first blocked query of the group; 0: never
	FirstAlert   int // 1-based index of the first query that alerted or was blocked; 0: never
	After        int // queries after the first block
	AfterBlocked int // of those, blocked
	Domains      map[string]bool
	Blocked      map[string]bool // registered domains blocked at least once
}

// DetectionRate is the share of queries that alerted (blocks included).
func (g *GroupStats) AlertRate() float64 { return ratio(g.Alerts, g.Queries) }

// BlockRate is the share of queries blocked.
func (g *GroupStats) BlockRate() float64 { return ratio(g.Blocks, g.Queries) }

// AfterRate is the share of the queries after the first block that were
// blocked.
func (g *GroupStats) AfterRate() float64 { return ratio(g.AfterBlocked, g.After) }

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Replay runs events through a new engine made from cfg, in order, on a
// synthetic clock that starts at start and advances step per event; it
// feeds each event's rcode back for every query that was not blocked, as
// the plugin does. It returns the figures per group and per label, and
// calls each (when not nil) for every event and its result.
type Replay struct {
	Engine *Engine
	Step   time.Duration
	start  time.Time
	now    time.Time
	groups map[[2]string]*GroupStats
	labels map[string]*GroupStats
	order  [][2]string
}

// NewReplay makes a replay with its own engine on a synthetic clock.
func NewReplay(cfg Config, step time.Duration) (*Replay, error) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &Replay{Step: step, start: start, now: start,
		groups: map[[2]string]*GroupStats{}, labels: map[string]*GroupStats{}}
	cfg.Clock = func() time.Time { return r.now }
	e, err := New(cfg)
	if err != nil {
		return nil, err
	}
	r.Engine = e
	return r, nil
}

// Run replays one event and returns its result.
func (r *Replay) Run(ev Event) Result {
	if ev.At != 0 {
		if t := r.start.Add(ev.At); t.After(r.now) {
			r.now = t
		}
	} else {
		r.now = r.now.Add(r.Step)
	}
	res := r.Engine.Score(Query{Name: ev.Name, Type: ev.Type, Client: ev.Client})
	if res.Action != Block {
		r.Engine.ObserveResponse(&res, ev.Rcode)
	}
	k := [2]string{ev.Label, ev.Group}
	g := r.groups[k]
	if g == nil {
		g = &GroupStats{Label: ev.Label, Group: ev.Group, Domains: map[string]bool{}, Blocked: map[string]bool{}}
		r.groups[k] = g
		r.order = append(r.order, k)
	}
	l := r.labels[ev.Label]
	if l == nil {
		l = &GroupStats{Label: ev.Label, Domains: map[string]bool{}, Blocked: map[string]bool{}}
		r.labels[ev.Label] = l
	}
	for _, s := range []*GroupStats{g, l} {
		s.Queries++
		if !res.Exempt {
			s.Scored++
		}
		if s.FirstBlock > 0 {
			s.After++
			if res.Action == Block {
				s.AfterBlocked++
			}
		}
		if res.Action >= Alert {
			s.Alerts++
			if s.FirstAlert == 0 {
				s.FirstAlert = s.Queries
			}
		}
		if res.Action == Block {
			s.Blocks++
			if s.FirstBlock == 0 {
				s.FirstBlock = s.Queries
			}
			s.Blocked[res.Domain()] = true
		}
	}
	return res
}

// Advance moves the replay's clock forward by d without a query.
func (r *Replay) Advance(d time.Duration) {
	if d > 0 {
		r.now = r.now.Add(d)
	}
}

// Elapsed returns the replay's time since its start.
func (r *Replay) Elapsed() time.Duration { return r.now.Sub(r.start) }

// Groups returns the figures per group in order of first appearance.
func (r *Replay) Groups() []*GroupStats {
	out := make([]*GroupStats, 0, len(r.order))
	for _, k := range r.order {
		out = append(out, r.groups[k])
	}
	return out
}

// Labels returns the figures per label, sorted by label.
func (r *Replay) Labels() []*GroupStats {
	out := make([]*GroupStats, 0, len(r.labels))
	for _, g := range r.labels {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Label < out[j].Label })
	return out
}
