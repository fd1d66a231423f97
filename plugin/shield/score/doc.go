// Package score is shield's detection engine. It scores every query that
// no list decided from 0 to 100, with reasons, from per-query lexical
// features, per-registered-domain state (unique prefixes, information
// bits, query types, NXDOMAIN ratio, prevalence), per-client state (a burst
// of NXDOMAINs for many distinct domains), a DGA character model of the
// registered label, and whether the resolver saw the domain before.
//
// A score at or above the block threshold makes the verdict sticky for the
// registered domain: every later query under it is blocked, from any
// client, until the verdict expires. All state lives in fixed-size tables
// allocated when the Engine is made; a flood of unique names evicts state
// but never grows memory, and sticky verdicts live in their own table that
// protects verdicts still being hit.
//
// The package does not import CoreDNS: the plugin glue and shieldctl eval
// drive the same Engine.
package score
