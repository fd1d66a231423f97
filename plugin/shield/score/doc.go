// Package score is shield's detection engine. It scores every query that
// no list decided from 0 to 100, with reasons, from per-query lexical
// features, per-registered-domain state (unique prefixes, information
// bits, query types, NXDOMAIN ratio, prevalence), per-client state (a burst
// of NXDOMAINs for many distinct domains), a DGA character model of the
// registered label, and whether the resolver saw the domain before.
//
// A score at or above the block threshold makes the verdict sticky for the
// registered domain: every later query under it is blocked until the
// verdict expires, from the clients in the verdict's scope. A verdict
// applies to the clients that earned it, and to every client only when
// the domain has low prevalence (no other client used it without scoring
// in the prevalence window) or FleetClients clients earned it; a domain
// that PopularClients other clients used stays client-scoped until an
// operator promotes it (operator.go). One client holds at most its share
// of the verdict table. Result.Detected tells a query's own detection
// from a block by an earlier verdict alone. All state lives in fixed-size tables
// allocated when the Engine is made; a flood of unique names evicts state
// but never grows memory, and sticky verdicts live in their own table that
// protects verdicts still being hit.
//
// The package does not import CoreDNS: the plugin glue and shieldctl eval
// drive the same Engine.
package score
