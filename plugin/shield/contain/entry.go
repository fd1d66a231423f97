package contain

import (
	"net/netip"
	"time"
)

// Quarantine is one quarantined client: an IPv4 address (a /32), an IPv6
// client (its /64) or a network. Its JSON form is the state file's.
type Quarantine struct {
	Client   netip.Prefix `json:"client"`
	Reason   string       `json:"reason,omitempty"`
	Actor    string       `json:"actor"`
	Start    time.Time    `json:"start"`
	Expires  time.Time    `json:"expires"`
	Evidence []string     `json:"evidence,omitempty"`
}

// Block is one emergency domain block: the name and every name below it.
// Name is normalised (lower case, no trailing dot).
type Block struct {
	Name    string    `json:"name"`
	Reason  string    `json:"reason,omitempty"`
	Actor   string    `json:"actor"`
	Start   time.Time `json:"start"`
	Expires time.Time `json:"expires"`
}

// Entry is a quarantine as the query path sees it, with the text of the
// answer's Extended DNS Error made once.
type Entry struct {
	Quarantine
	ClientText string // Client as text, for audit records
	EDEText    string // "client quarantined: REASON"
}

// BlockEntry is an emergency block as the query path sees it.
type BlockEntry struct {
	Block
	EDEText string // "emergency block: REASON"
}

func newEntry(q Quarantine) *Entry {
	e := &Entry{Quarantine: q, ClientText: ClientText(q.Client)}
	e.EDEText = "client " + e.ClientText + " quarantined"
	if q.Reason != "" {
		e.EDEText += ": " + q.Reason
	}
	return e
}

func newBlockEntry(b Block) *BlockEntry {
	e := &BlockEntry{Block: b, EDEText: "emergency block " + b.Name}
	if b.Reason != "" {
		e.EDEText += ": " + b.Reason
	}
	return e
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func clipEvidence(ev []string) []string {
	if len(ev) > maxEvidence {
		ev = ev[len(ev)-maxEvidence:]
	}
	if len(ev) == 0 {
		return nil
	}
	out := make([]string, len(ev))
	for i, v := range ev {
		out[i] = clip(v, maxReason)
	}
	return out
}
