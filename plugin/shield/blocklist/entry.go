// Package blocklist parses domain lists in the common blocklist formats,
// compiles them into a compact immutable matcher, and keeps a named list
// loaded from a file up to date (fsnotify with a polling fallback) without
// ever replacing a good list with a bad update.
//
// It does not import CoreDNS: the plugin glue in package shield owns
// logging and metrics, and this package returns errors and statistics.
package blocklist

// Action says what a list entry does to a name it matches.
type Action uint8

// The actions an entry can carry. ActNone means the entry says nothing
// about this position (for example an RPZ entry that covers only the exact
// name says nothing about the names below it).
const (
	ActNone     Action = iota
	ActBlock           // block with the action configured for the plugin
	ActNXDomain        // RPZ "CNAME ." : answer NXDOMAIN
	ActNoData          // RPZ "CNAME *.": answer NODATA
	ActDrop            // RPZ "rpz-drop.": send no answer
	ActAllow           // adblock "@@" exception, RPZ "rpz-passthru."
)

var actionNames = [...]string{"none", "block", "nxdomain", "nodata", "drop", "allow", "local"}

// String returns the lower-case name of the action.
func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "unknown"
}

// Sink receives the entries a parser finds. name is a normalised domain
// (lower case, no trailing dot, validated by Normalize); the slice is only
// valid during the call. self applies to the name itself, below to every
// name under it. A parser never calls Add with both actions ActNone.
type Sink interface {
	Add(name []byte, self, below Action)
}
