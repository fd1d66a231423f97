package score

import (
	"net/netip"
	"sort"
	"strings"
)

// Action is what a score means.
type Action uint8

const (
	Pass Action = iota
	Alert
	Block
)

func (a Action) String() string {
	switch a {
	case Alert:
		return "alert"
	case Block:
		return "block"
	}
	return "pass"
}

// Query is one query to score.
type Query struct {
	Name   string // as received: any case, trailing dot allowed, \DDD escapes as miekg/dns writes them
	Type   uint16
	Client netip.Addr
}

// Result is the engine's answer for one query. Its zero value passes.
type Result struct {
	Score  int
	Action Action
	Sticky bool // blocked by an earlier verdict on the registered domain
	Exempt bool // an exempt name: not scored
	// Detected reports whether the query itself scored at or above the
	// block threshold: a fresh detection, which counts towards the
	// client's escalation. A query blocked only by an earlier verdict
	// (Sticky) that did not itself score so high is not one.
	Detected bool
	// Scope is the scope of the verdict that blocked the query: the one
	// a fresh detection made (or renewed), else the sticky one.
	Scope Scope
	// Popular reports that a fresh detection's verdict was kept to the
	// client because at least PopularClients other clients used the
	// domain without scoring: only an operator can make it fleet-wide.
	Popular bool

	points      [nReasons]uint8 // per reason
	domStart    int             // offset of the registered domain in name
	domEnd      int             // len(name)
	name        string          // the name as scored: no trailing dot, at most 512 bytes
	domainKey   uint64          // hash of the registered domain
	clientKey   uint64          // hash of the client's address (keyOfClient)
	sufStart    int             // offset of the public suffix in name
	scored      bool            // not exempt and not sticky: ObserveResponse counts it
	suspectRule bool            // a newly seen domain of at most two clients: the suspect-client rule applies
	dgaTier     uint8           // 1 + the DGA tier of the registered label under the suspect-client rule (dga.go); 0: not scored
	topReason   uint8           // reason with the most points
	detector    uint8           // detector with the most points
	own         uint8           // the query's own score (for a sticky hit, not the verdict's)
}

// Domain returns the registered domain (lower case, no trailing dot), or
// "" for an exempt name. It allocates.
func (r *Result) Domain() string {
	if r.domEnd <= r.domStart {
		return ""
	}
	return strings.ToLower(r.name[r.domStart:r.domEnd])
}

// Reasons returns the reasons that added points, the strongest first. It
// allocates; call it only for an alert or a block.
func (r *Result) Reasons() []string {
	var ids []int
	for i, p := range r.points {
		if p > 0 {
			ids = append(ids, i)
		}
	}
	sort.SliceStable(ids, func(a, b int) bool { return r.points[ids[a]] > r.points[ids[b]] })
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = reasonNames[id]
	}
	if r.Sticky && len(out) == 0 {
		out = []string{reasonNames[r.topReason]}
	}
	return out
}

// TopReason names the reason with the most points.
func (r *Result) TopReason() string { return reasonNames[r.topReason] }

// Detector names the detector that contributed most.
func (r *Result) Detector() string { return detectorNames[r.detector] }
