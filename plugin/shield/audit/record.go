// Package audit writes shield's audit records: one JSON object per line,
// with Elastic Common Schema (ECS) field names as nested objects, so a SIEM
// can ingest the file as it is.
//
// A record is written for every block, sinkhole, monitor-mode match and
// containment change. AppendJSON encodes a Record without encoding/json and
// without allocating beyond growing its buffer. Every string is escaped so
// that a hostile query name (quotes, control bytes, line breaks, invalid
// UTF-8) can neither break the JSON nor start a second line.
//
// Writer copies records into a bounded batch and writes each batch from
// one goroutine with one write, so Log never blocks the query path and
// does not allocate; a full queue drops the record and counts the drop.
// Stdout and OpenFile (mode 0600, rotated by size with a bounded number of
// old files, symbolic links refused) are the sinks.
//
// The package uses only the standard library: the plugin glue owns logging
// and metrics and hooks them in through Options.
package audit

import (
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"
)

// ECSVersion is the Elastic Common Schema version the records follow. It
// is written as ecs.version, which ECS requires in every event.
const ECSVersion = "8.11.0"

// The values of Record.Action that shield writes. AppendJSON derives
// event.kind and event.type from them; any other non-empty value is written
// as it is, as an "event" of type "info".
const (
	ActionBlock       = "block"        // a query answered with a block reply
	ActionSinkhole    = "sinkhole"     // a query answered with the sinkhole address
	ActionMonitor     = "monitor"      // a match in monitor mode: the query was answered normally
	ActionAlert       = "alert"        // a detection that does not change the answer
	ActionQuarantine  = "quarantine"   // a client put into containment
	ActionRelease     = "release"      // a client released from containment by an operator
	ActionExpire      = "expire"       // a containment that ran out
	ActionBlockAdd    = "block_add"    // a domain added to the runtime blocklist
	ActionBlockRemove = "block_remove" // a domain removed from the runtime blocklist

	ActionVerdictClear   = "verdict_clear"   // an operator cleared a detection verdict
	ActionVerdictPromote = "verdict_promote" // an operator made a detection verdict fleet-wide
)

// Record is one audit event. The comment on each field names the ECS field
// it is written as. Empty strings, zero times, empty slices and an invalid
// Client are left out, and an object with no fields is left out whole.
//
// A Record handed to Writer.Log belongs to the writer from then on: the
// caller must not change the contents of Reasons or Evidence afterwards.
type Record struct {
	Time        time.Time  // @timestamp, RFC 3339 with nanoseconds in UTC
	Action      string     // event.action: one of the Action constants
	Client      netip.Addr // client.ip: written unmapped and without zone; left out if invalid
	QName       string     // dns.question.name, as received (may be hostile)
	QType       string     // dns.question.type, for example "A"
	Ruleset     string     // rule.ruleset: the list name
	RuleName    string     // rule.name: the entry that matched
	ListVersion string     // shield.list_version
	Score       int        // shield.score: left out when 0 and Reasons is empty
	Reasons     []string   // shield.reasons
	Mode        string     // shield.mode: "enforce" or "monitor"
	Observer    string     // observer.name
	Actor       string     // shield.actor: who changed a containment
	Reason      string     // shield.reason: why a containment was changed
	Expires     time.Time  // shield.expires: when a containment ends
	Evidence    []string   // shield.evidence
	Domain      string     // dns.question.registered_domain (ECS), and shield.registered_domain as before
	Scope       string     // shield.scope: whom a detection verdict applies to, "client" or "fleet"
	AnswerMatch string     // shield.answer_match: the answer element that matched, such as "CNAME evil.example." or "A 203.0.113.7"
}

// eventClass returns the ECS event.kind and the single event.type for an
// action. Query decisions (block, sinkhole, monitor, alert) are alerts;
// containment changes and runtime list edits are events. The types are ones
// ECS allows with event.category "network": "denied" when the answer was
// withheld, "allowed" when a match was only observed, "start" and "end"
// for the two ends of a containment, "info" otherwise.
func eventClass(action string) (kind, typ string) {
	switch action {
	case ActionBlock, ActionSinkhole:
		return "alert", "denied"
	case ActionMonitor:
		return "alert", "allowed"
	case ActionAlert:
		return "alert", "info"
	case ActionQuarantine:
		return "event", "start"
	case ActionRelease, ActionExpire, ActionVerdictClear:
		return "event", "end"
	}
	return "event", "info"
}

// AppendJSON appends r to dst as one line of JSON followed by '\n' and
// returns the extended buffer. r must not be nil. The object looks like
//
//	{"@timestamp":"2026-03-01T12:00:00.5Z","ecs":{"version":"8.11.0"},
//	 "event":{"kind":"alert","category":["network"],"type":["denied"],"action":"block"},
//	 "client":{"ip":"192.0.2.7"},"dns":{"question":{"name":"evil.example.","type":"A"}},
//	 "rule":{"name":"evil.example","ruleset":"malware"},"observer":{"name":"ns1"},
//	 "shield":{"list_version":"v42","mode":"enforce"}}
//
// (shown wrapped). Fields are written in a fixed order and empty ones are
// left out (see Record).
//
// Strings are escaped by hand: '"' and '\\' get a backslash; bytes below
// 0x20, DEL and the C1 controls U+0080 to U+009F are written as \u00XX;
// U+2028 and U+2029 as \u2028 and \u2029; each byte that is not part of
// valid UTF-8 becomes \ufffd. The output therefore holds no raw control
// character and nothing any line splitter treats as a line break, whatever
// the input. AppendJSON allocates only when dst must grow.
func AppendJSON(dst []byte, r *Record) []byte {
	dst = append(dst, `{"@timestamp":`...)
	dst = appendTime(dst, r.Time)
	dst = append(dst, `,"ecs":{"version":"`+ECSVersion+`"}`...)

	kind, typ := eventClass(r.Action)
	dst = append(dst, `,"event":{"kind":"`...)
	dst = append(dst, kind...)
	dst = append(dst, `","category":["network"],"type":["`...)
	dst = append(dst, typ...)
	dst = append(dst, `"]`...)
	if r.Action != "" {
		dst = append(dst, `,"action":`...)
		dst = appendString(dst, r.Action)
	}
	dst = append(dst, '}')

	if r.Client.IsValid() {
		dst = append(dst, `,"client":{"ip":"`...)
		dst = r.Client.Unmap().WithZone("").AppendTo(dst)
		dst = append(dst, `"}`...)
	}

	if r.QName != "" || r.QType != "" || r.Domain != "" {
		dst = append(dst, `,"dns":{"question":{`...)
		o := object{}
		dst = o.str(dst, "name", r.QName)
		dst = o.str(dst, "type", r.QType)
		dst = o.str(dst, "registered_domain", r.Domain)
		dst = append(dst, `}}`...)
	}

	if r.RuleName != "" || r.Ruleset != "" {
		dst = append(dst, `,"rule":{`...)
		o := object{}
		dst = o.str(dst, "name", r.RuleName)
		dst = o.str(dst, "ruleset", r.Ruleset)
		dst = append(dst, '}')
	}

	if r.Observer != "" {
		dst = append(dst, `,"observer":{"name":`...)
		dst = appendString(dst, r.Observer)
		dst = append(dst, '}')
	}

	hasScore := r.Score != 0 || len(r.Reasons) > 0
	if r.ListVersion != "" || r.Mode != "" || hasScore || r.Domain != "" || r.Scope != "" ||
		r.Actor != "" || r.Reason != "" || !r.Expires.IsZero() || len(r.Evidence) > 0 || r.AnswerMatch != "" {
		dst = append(dst, `,"shield":{`...)
		o := object{}
		dst = o.str(dst, "list_version", r.ListVersion)
		dst = o.str(dst, "mode", r.Mode)
		if hasScore {
			dst = o.key(dst, "score")
			dst = strconv.AppendInt(dst, int64(r.Score), 10)
		}
		dst = o.list(dst, "reasons", r.Reasons)
		dst = o.str(dst, "registered_domain", r.Domain)
		dst = o.str(dst, "scope", r.Scope)
		dst = o.str(dst, "actor", r.Actor)
		dst = o.str(dst, "reason", r.Reason)
		if !r.Expires.IsZero() {
			dst = o.key(dst, "expires")
			dst = appendTime(dst, r.Expires)
		}
		dst = o.list(dst, "evidence", r.Evidence)
		dst = o.str(dst, "answer_match", r.AnswerMatch)
		dst = append(dst, '}')
	}

	return append(dst, "}\n"...)
}

// object writes the members of one JSON object and remembers whether a
// comma is needed before the next one. Keys are constants of this file and
// are written without escaping.
type object struct{ started bool }

// key appends the separator, if any, and `"k":`.
func (o *object) key(dst []byte, k string) []byte {
	if o.started {
		dst = append(dst, ',')
	}
	o.started = true
	dst = append(dst, '"')
	dst = append(dst, k...)
	return append(dst, '"', ':')
}

// str appends the member k with the string value v, unless v is empty.
func (o *object) str(dst []byte, k, v string) []byte {
	if v == "" {
		return dst
	}
	dst = o.key(dst, k)
	return appendString(dst, v)
}

// list appends the member k with the array of strings vs, unless vs is
// empty. Empty strings inside vs are kept.
func (o *object) list(dst []byte, k string, vs []string) []byte {
	if len(vs) == 0 {
		return dst
	}
	dst = o.key(dst, k)
	dst = append(dst, '[')
	for i, v := range vs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, v)
	}
	return append(dst, ']')
}

// appendTime appends t in UTC as a quoted RFC 3339 timestamp with
// nanoseconds, as time.RFC3339Nano formats it (trailing zeros of the
// fraction dropped). The layout writes only digits and separators, so the
// result needs no escaping. It writes the digits itself, which costs a
// fraction of what time.Time.AppendFormat costs; years outside 0 to 9999
// take the slow path.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	dst = append(dst, '"')
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		dst = t.AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"')
	}
	hour, min, sec := t.Clock()
	dst = appendDigits(dst, year, 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, int(month), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, min, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, sec, 2)
	if ns := t.Nanosecond(); ns != 0 {
		width := 9
		for ns%10 == 0 {
			ns /= 10
			width--
		}
		dst = append(dst, '.')
		dst = appendDigits(dst, ns, width)
	}
	return append(dst, 'Z', '"')
}

// appendDigits appends the non-negative v as exactly width decimal digits,
// with leading zeros.
func appendDigits(dst []byte, v, width int) []byte {
	var b [9]byte
	for i := width - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, b[:width]...)
}

const hexDigits = "0123456789abcdef"

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// load8 returns the 8 bytes of s at i as a little-endian word. i+8 must
// not exceed len(s). The compiler makes this one load.
func load8(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// plain8 reports whether all 8 bytes of x are plain (see plain), eight at
// a time: it flags bytes below 0x20, equal to '"', '\\' or DEL, and with
// the high bit set. (x - ones*n) & ^x has a byte's high bit set when that
// byte is below n, and (y - ones) & ^y when y has a zero byte.
func plain8(x uint64) bool {
	bad := (x - ones*0x20) & ^x
	q := x ^ (ones * '"')
	bad |= (q - ones) & ^q
	b := x ^ (ones * '\\')
	bad |= (b - ones) & ^b
	d := x ^ (ones * 0x7f)
	bad |= (d - ones) & ^d
	bad |= x
	return bad&highs == 0
}

// plain reports, for each byte, whether appendString copies it as it is
// when it stands alone: printable ASCII other than '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString appends s as a quoted JSON string, escaped as AppendJSON
// describes. Runs of bytes that need no escaping are copied in one append.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	// Most strings need no escaping at all: find the first byte that does
	// with one table lookup a byte, and copy everything before it at once.
	i := 0
	for i+8 <= len(s) && plain8(load8(s, i)) {
		i += 8
	}
	for i < len(s) && plain[s[i]] {
		i++
	}
	if i == len(s) {
		dst = append(dst, s...)
		return append(dst, '"')
	}
	start := 0 // start of the run not yet copied
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != 0x7f && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			if c == '"' || c == '\\' {
				dst = append(dst, '\\', c)
			} else {
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r >= 0x80 && r <= 0x9f, r == '\u2028', r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u',
				hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
