package contain

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Rule is one step of the escalation ladder: a client that triggers Count
// blocks of the given kinds within Window is quarantined for TTL.
type Rule struct {
	Name   string   // as written, e.g. "escalate c2,tunnel 3 10m 1h"; the actor is "policy:"+Name
	Kinds  []string // list names, detector names, or "any"
	Count  int
	Window time.Duration
	TTL    time.Duration
}

// MaxCount bounds Rule.Count: the ladder keeps Count timestamps per client
// and rule.
const MaxCount = 100

// DefaultLadderClients bounds the ladder's table of (client, rule)
// counters. A flood of spoofed sources evicts entries rather than grow it.
const DefaultLadderClients = 16384

// Matches reports whether the rule counts blocks of kind.
func (r *Rule) Matches(kind string) bool {
	for _, k := range r.Kinds {
		if k == kind || k == "any" {
			return true
		}
	}
	return false
}

// ParseRule parses the arguments of "escalate KINDS COUNT WINDOW TTL".
func ParseRule(args []string) (Rule, error) {
	if len(args) != 4 {
		return Rule{}, fmt.Errorf("escalate needs KINDS COUNT WINDOW TTL, got %d arguments", len(args))
	}
	r := Rule{Name: "escalate " + strings.Join(args, " ")}
	for _, k := range strings.Split(args[0], ",") {
		if k == "" || len(k) > 64 || strings.ContainsAny(k, " \t\"\\") {
			return Rule{}, fmt.Errorf("escalate: invalid kind %q in %q", k, args[0])
		}
		r.Kinds = append(r.Kinds, k)
	}
	n, err := parseCount(args[1])
	if err != nil {
		return Rule{}, err
	}
	r.Count = n
	if r.Window, err = time.ParseDuration(args[2]); err != nil || r.Window < time.Second || r.Window > 24*time.Hour {
		return Rule{}, fmt.Errorf("escalate: invalid window %q: want a duration from 1s to 24h", args[2])
	}
	if r.TTL, err = time.ParseDuration(args[3]); err != nil || r.TTL < time.Second {
		return Rule{}, fmt.Errorf("escalate: invalid ttl %q: want a duration of at least 1s", args[3])
	}
	return r, nil
}

func parseCount(v string) (int, error) {
	n := 0
	for _, c := range []byte(v) {
		if c < '0' || c > '9' || n > MaxCount {
			return 0, fmt.Errorf("escalate: invalid count %q: want 1 to %d", v, MaxCount)
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > MaxCount {
		return 0, fmt.Errorf("escalate: invalid count %q: want 1 to %d", v, MaxCount)
	}
	return n, nil
}

// Escalation is a rule that fired for a client.
type Escalation struct {
	Rule     *Rule
	Client   netip.Addr   // the address of the block that made the rule fire
	Key      netip.Prefix // the client as counted and to quarantine: ClientKey(Client)
	Evidence []string     // "name (kind: reason, ...)" of the blocks that counted
}

type ladderKey struct {
	client netip.Prefix // ClientKey: an IPv4 /32 or an IPv6 /64
	rule   int
}

type hit struct {
	at      int64 // unix nanoseconds
	kind    string
	name    string
	reasons []string
}

// counter holds the last Count hits of one client for one rule: hits
// grows to Count, then is a ring whose oldest entry is at next. Growing
// keeps a table of mostly one-hit clients small. After the rule fires,
// hits is emptied and the counter is quiet until the end of the rule's
// window from then (unix nanoseconds): a rule fires at most once per
// client per window.
type counter struct {
	hits  []hit
	next  int
	quiet int64
}

// Ladder counts blocks per client and rule and reports when a rule fires.
// An IPv6 client is counted by its /64 (ClientKey), so a host cannot
// spread its blocks over addresses of its own /64, nor fill the table
// with them. A rule fires at most once per client per its window: the
// blocks that follow within the window are not counted (Suppressed), so a
// client that keeps triggering cannot churn the store, the state file
// and the audit log. Its table is bounded; when full, an arbitrary entry
// is evicted (a quiet period can be lost that way, and the quarantine it
// would repeat is then only extended). It is safe for concurrent use.
type Ladder struct {
	rules      []Rule
	max        int
	suppressed atomic.Uint64

	mu    sync.Mutex // guards table
	table map[ladderKey]*counter
}

// NewLadder returns a ladder for rules with a table of at most max
// counters (DefaultLadderClients if max <= 0).
func NewLadder(rules []Rule, max int) *Ladder {
	if max <= 0 {
		max = DefaultLadderClients
	}
	return &Ladder{rules: rules, max: max, table: map[ladderKey]*counter{}}
}

// Rules returns the ladder's rules.
func (l *Ladder) Rules() []Rule { return l.rules }

// Suppressed returns how many blocks were not counted because their rule
// had fired for the client within its window.
func (l *Ladder) Suppressed() uint64 { return l.suppressed.Load() }

// Len returns the number of counters held.
func (l *Ladder) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.table)
}

// Note counts one block of kind for client at now. name and reasons are
// kept as evidence (not copied: the caller must not change reasons). It
// returns the escalations that fired, and empties their counters, which
// stay quiet for the rule's window. When no rule counts kind it returns at
// once without a lock. Note allocates only
// when a client gets a new counter, its counter grows (at most log2(Count)
// times) or a rule fires.
func (l *Ladder) Note(client netip.Addr, kind, name string, reasons []string, now time.Time) []Escalation {
	if l == nil {
		return nil
	}
	any := false
	for i := range l.rules {
		if l.rules[i].Matches(kind) {
			any = true
			break
		}
	}
	if !any {
		return nil
	}
	t := now.UnixNano()
	key := ClientKey(client)
	var out []Escalation
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.rules {
		r := &l.rules[i]
		if !r.Matches(kind) {
			continue
		}
		k := ladderKey{key, i}
		c := l.table[k]
		if c == nil {
			if len(l.table) >= l.max {
				for ek := range l.table {
					delete(l.table, ek)
					break
				}
			}
			c = &counter{hits: make([]hit, 0, min(r.Count, 2))}
			l.table[k] = c
		}
		if t < c.quiet {
			l.suppressed.Add(1)
			continue
		}
		h := hit{at: t, kind: kind, name: name, reasons: reasons}
		if len(c.hits) < r.Count {
			c.hits = append(c.hits, h) // next stays 0, the oldest
		} else {
			c.hits[c.next] = h
			c.next = (c.next + 1) % len(c.hits)
		}
		if len(c.hits) < r.Count {
			continue
		}
		oldest := c.hits[c.next] // the ring is full: next is the oldest
		if t-oldest.at > int64(r.Window) {
			continue
		}
		ev := make([]string, 0, len(c.hits))
		for j := range len(c.hits) {
			h := c.hits[(c.next+j)%len(c.hits)]
			s := h.name + " (" + h.kind
			if len(h.reasons) > 0 {
				s += ": " + strings.Join(h.reasons, ", ")
			}
			ev = append(ev, s+")")
		}
		out = append(out, Escalation{Rule: r, Client: client, Key: key, Evidence: ev})
		clear(c.hits)
		c.hits, c.next, c.quiet = c.hits[:0], 0, t+int64(r.Window)
	}
	return out
}

// Sweep drops counters whose newest hit is older than their rule's
// window at now and that are not quiet.
func (l *Ladder) Sweep(now time.Time) {
	if l == nil {
		return
	}
	t := now.UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, c := range l.table {
		if t < c.quiet {
			continue
		}
		if len(c.hits) == 0 {
			delete(l.table, k)
			continue
		}
		newest := c.hits[(c.next-1+len(c.hits))%len(c.hits)]
		if t-newest.at > int64(l.rules[k.rule].Window) {
			delete(l.table, k)
		}
	}
}
