// Package api is shield's HTTP management API, built on net/http alone.
//
// Every request needs "Authorization: Bearer TOKEN" with a token from the
// api_tokens file; tokens are compared in constant time and a failure gets
// 401 and is reported through Options.OnAuthFailure. A token has a scope:
// a read token may make GET (and HEAD) requests only, and anything else
// gets 403 (Options.OnForbidden). Failed authentications are throttled
// per source address (an IPv6 source by its /64): past a small burst, a
// source gets 429 with Retry-After for every request until its allowance
// refills (see AuthThrottle, Options.OnThrottle).
//
// Request bodies are JSON, at most MaxBody bytes, with unknown fields and
// duplicate keys refused; reasons may not hold control or format
// characters (Unicode Cc, Cf, Zl, Zp: no line breaks, no bidi overrides).
// No endpoint takes a file path. The server has read, write and idle
// timeouts, speaks HTTP/1.1 only (no h2c) and listens on loopback unless
// told otherwise; elsewhere it needs TLS or an explicit Insecure
// (ListenWith).
//
// The package knows nothing of CoreDNS: the plugin implements Backend.
package api

import (
	"encoding/json"
	"errors"
	"net/netip"
	"time"
)

// Errors a Backend wraps so the API can choose the status code.
var (
	ErrBadRequest  = errors.New("bad request")   // 400
	ErrNotFound    = errors.New("not found")     // 404
	ErrUnavailable = errors.New("limit reached") // 503
	// ErrNeedsForce is a guard rail's refusal (the quarantine cap, a
	// public suffix) that "force": true in the request overrides.
	ErrNeedsForce = errors.New("refused without force") // 409
)

// MaxBody is the largest request body accepted, in bytes.
const MaxBody = 8 << 10

// Limits of the audit endpoint.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
	maxReason         = 512
)

// Backend is what the API manages. The shield plugin implements it. The
// actor passed to changes is "api:" followed by the token's name.
type Backend interface {
	Status() Status
	// Explain returns the verdict a query for name from client would get,
	// without recording, counting or changing anything. client may be the
	// zero Addr.
	Explain(name string, client netip.Addr) (Explanation, error)
	Quarantines() []Quarantine
	Quarantine(client string, ttl time.Duration, reason, actor string) (Quarantine, error)
	Release(client, actor string) (Quarantine, error)
	Blocks() []Block
	Block(name string, ttl time.Duration, reason, actor string) (Block, error)
	Unblock(name, actor string) (Block, error)
	// Audit returns up to limit recent audit records, newest first, each
	// one JSON object.
	Audit(limit int) []json.RawMessage
	// Verdicts lists the detection verdicts, one per registered domain.
	Verdicts() []Verdict
	// ClearVerdict removes every verdict on a registered domain and
	// returns what it was.
	ClearVerdict(domain, actor string) (Verdict, error)
	// PromoteVerdict makes a domain's verdict fleet-wide: an operator's
	// decision, with a reason.
	PromoteVerdict(domain, reason, actor string) (Verdict, error)
}

// Verdict is one registered domain's detection verdict.
type Verdict struct {
	Domain   string    `json:"domain"`
	Scope    string    `json:"scope"`             // client or fleet
	Clients  []string  `json:"clients,omitempty"` // the clients that earned it
	Score    int       `json:"score"`
	Detector string    `json:"detector"`
	Reasons  []string  `json:"reasons,omitempty"`
	Start    time.Time `json:"start"`
	Expires  time.Time `json:"expires"`
}

// PromoteRequest is the body of POST /v1/verdicts/{domain}/promote.
type PromoteRequest struct {
	Reason string `json:"reason"`
}

// ForceBackend is a Backend with guard rails that an operator may
// override with "force": true in the request body. The handler calls
// these methods instead of Quarantine and Block when the Backend has
// them, and they return an error wrapping ErrNeedsForce for a refusal
// that force overrides.
type ForceBackend interface {
	Backend
	QuarantineForce(client string, ttl time.Duration, reason, actor string, force bool) (Quarantine, error)
	BlockForce(name string, ttl time.Duration, reason, actor string, force bool) (Block, error)
}

// Status is the answer of GET /v1/status.
type Status struct {
	Mode        string       `json:"mode"`
	Lists       []ListStatus `json:"lists"`
	Quarantines int          `json:"quarantines"`
	Blocks      int          `json:"emergency_blocks"`
}

// ListStatus describes one configured list.
type ListStatus struct {
	Name       string     `json:"name"`
	Kind       string     `json:"kind"` // blocklist, allowlist or walled_garden
	Format     string     `json:"format,omitempty"`
	Version    string     `json:"version,omitempty"`
	Entries    int        `json:"entries"`
	LastReload *time.Time `json:"last_reload,omitempty"`
	LastError  string     `json:"last_error,omitempty"`
	// Source is the list's file, or its feed URL with credentials
	// redacted.
	Source string `json:"source,omitempty"`
	// The fields below are set for a feed list only. LastSuccess is when
	// the feed last confirmed the list in force (a 200 or a 304, or the
	// disk cache's record at start-up); AgeSeconds is the time since then,
	// absent before the first success; NextFetch is when the next fetch
	// is due.
	LastSuccess *time.Time `json:"last_success,omitempty"`
	AgeSeconds  *float64   `json:"age_seconds,omitempty"`
	NextFetch   *time.Time `json:"next_fetch,omitempty"`
}

// Explanation is the answer of GET /v1/explain.
type Explanation struct {
	Name        string   `json:"name"`
	Client      string   `json:"client,omitempty"`
	Verdict     string   `json:"verdict"` // pass, allow, block, sinkhole, walled_garden, monitor ...
	Why         []string `json:"why,omitempty"`
	List        string   `json:"list,omitempty"`
	Rule        string   `json:"rule,omitempty"`
	ListVersion string   `json:"list_version,omitempty"`
	Score       int      `json:"score"`
	Reasons     []string `json:"reasons,omitempty"`
	Sticky      bool     `json:"sticky,omitempty"`
	// Scope is the scope of the sticky detection verdict that holds for
	// the client: "client" or "fleet".
	Scope            string      `json:"scope,omitempty"`
	RegisteredDomain string      `json:"registered_domain,omitempty"`
	Quarantine       *Quarantine `json:"quarantine,omitempty"`
	EmergencyBlock   *Block      `json:"emergency_block,omitempty"`
	WalledGarden     string      `json:"walled_garden,omitempty"`
}

// Quarantine is one quarantined client.
type Quarantine struct {
	Client   string    `json:"client"`
	Reason   string    `json:"reason,omitempty"`
	Actor    string    `json:"actor"`
	Start    time.Time `json:"start"`
	Expires  time.Time `json:"expires"`
	Evidence []string  `json:"evidence,omitempty"`
}

// Block is one emergency block.
type Block struct {
	Name    string    `json:"name"`
	Reason  string    `json:"reason,omitempty"`
	Actor   string    `json:"actor"`
	Start   time.Time `json:"start"`
	Expires time.Time `json:"expires"`
}

// QuarantineRequest is the body of POST /v1/quarantine.
type QuarantineRequest struct {
	Client string `json:"client"`
	TTL    string `json:"ttl,omitempty"` // a Go duration; empty is the default
	Reason string `json:"reason"`
	Force  bool   `json:"force,omitempty"` // past the quarantine cap
}

// BlockRequest is the body of POST /v1/blocks.
type BlockRequest struct {
	Name   string `json:"name"`
	TTL    string `json:"ttl,omitempty"`
	Reason string `json:"reason"`
	Force  bool   `json:"force,omitempty"` // a public suffix too
}

// Options hooks metrics in. Every field may be nil.
type Options struct {
	// OnRequest is called once per request with the endpoint (status,
	// explain, quarantine, blocks, audit, verdicts or other) and the
	// status code.
	OnRequest func(endpoint string, code int)
	// OnAuthFailure is called for every request refused with 401.
	OnAuthFailure func()
	// OnForbidden is called for every request refused with 403: a read
	// token asking for a change.
	OnForbidden func()
	// OnThrottle is called for every request refused with 429: its
	// source failed to authenticate too often.
	OnThrottle func()
	// Throttle limits failed authentications per source. Nil makes one
	// with the defaults for this handler; pass one to keep its state
	// across handlers (a Corefile reload makes a new handler).
	Throttle *AuthThrottle
}
