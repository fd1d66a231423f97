package blocklist

import "bytes"

// rpzTriggers are the RPZ trigger labels other than QNAME. An owner name
// with one of them is not a query name.
var rpzTriggers = [...]string{"rpz-ip", "rpz-nsdname", "rpz-nsip", "rpz-client-ip"}

// rpzLine parses one line of an RPZ zone file. Only QNAME triggers with the
// standard CNAME actions become entries.
func (p *parser) rpzLine(line []byte) {
	line, open := p.zoneScan(line)
	if open {
		p.comment() // inside a multi-line record such as the SOA
		return
	}
	blankOwner := len(line) > 0 && isSpace(line[0])
	line = trimSpace(line)
	if len(line) == 0 {
		p.comment()
		return
	}
	if line[0] == '$' {
		p.zoneDirective(line)
		return
	}
	var owner []byte
	if blankOwner {
		if p.owner == nil {
			p.reject(false, reasonNoOwner)
			return
		}
		owner = p.owner
	} else {
		owner, line = nextZoneField(line)
		p.owner = append(p.owner[:0], owner...)
	}
	typ, rdata := rrTypeField(line)
	switch {
	case len(typ) == 0:
		p.reject(false, reasonNoType)
		return
	case equalFold(typ, "soa"), equalFold(typ, "ns"):
		p.comment()
		return
	case !isRRType(typ):
		p.reject(false, reasonBadType)
		return
	}
	name, apex := p.rpzOwner(owner)
	switch {
	case apex:
		p.reject(true, reasonApex)
		return
	case hasRPZTrigger(name):
		p.reject(true, reasonTrigger)
		return
	case !equalFold(typ, "cname"):
		p.reject(true, reasonLocalData)
		return
	}
	target, extra := nextZoneField(rdata)
	switch {
	case len(target) == 0 && p.parens > 0:
		p.reject(true, reasonMultiLine)
		return
	case len(target) == 0:
		p.reject(false, reasonNoTarget)
		return
	case len(extra) > 0:
		p.reject(false, reasonExtra)
		return
	}
	var act Action
	switch {
	case equalFold(target, "."):
		act = ActNXDomain
	case equalFold(target, "*."):
		act = ActNoData
	case equalFold(target, "rpz-passthru."):
		act = ActAllow
	case equalFold(target, "rpz-drop."):
		act = ActDrop
	case equalFold(target, "rpz-tcp-only."):
		p.reject(true, reasonTCPOnly)
		return
	default:
		p.reject(true, reasonLocalData) // CNAME to a walled garden
		return
	}
	if len(name) == 1 && name[0] == '*' {
		p.reject(true, reasonAllNames)
		return
	}
	if bytes.HasPrefix(name, []byte("*.")) {
		p.addName(name[2:], ActNone, act)
		return
	}
	p.addName(name, act, ActNone)
}

// zoneScan cuts a ';' comment off a zone file line and tracks parentheses,
// both outside quoted strings. open reports that the line continues a
// record opened on an earlier line.
func (p *parser) zoneScan(line []byte) (code []byte, open bool) {
	open = p.parens > 0
	quoted := false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == ';':
			return line[:i], open
		case c == '(':
			p.parens++
		case c == ')':
			if p.parens > 0 {
				p.parens--
			}
		}
	}
	return line, open
}

// zoneDirective handles "$TTL", "$ORIGIN" and the directives it does not
// support ("$INCLUDE", "$GENERATE").
func (p *parser) zoneDirective(line []byte) {
	dir, rest := nextZoneField(line)
	switch {
	case equalFold(dir, "$ttl"):
		p.comment()
	case equalFold(dir, "$origin"):
		arg, extra := nextZoneField(rest)
		if len(arg) == 0 || len(extra) > 0 {
			p.reject(false, reasonOrigin)
			return
		}
		if len(arg) == 1 && arg[0] == '.' {
			p.origin, p.originSet = p.origin[:0], true
			p.comment()
			return
		}
		var buf [maxNameLen + 2]byte
		abs := arg[len(arg)-1] == '.'
		o := append(buf[:0], arg...)
		if !abs && p.originSet && len(p.origin) > 0 {
			o = append(append(o, '.'), p.origin...)
		}
		o, ok := Normalize(o)
		if !ok {
			p.reject(false, reasonOrigin)
			return
		}
		p.origin, p.originSet = append(p.origin[:0], o...), true
		p.comment()
	default:
		p.reject(true, reasonDirective)
	}
}

// rpzOwner turns an owner name into the query name it triggers on. RPZ
// owner names are relative to the policy zone: relative names are taken as
// written, "@" and the origin itself are the apex, and the origin is cut
// off absolute names below it.
func (p *parser) rpzOwner(owner []byte) (name []byte, apex bool) {
	if len(owner) == 1 && owner[0] == '@' {
		return nil, true
	}
	n := len(owner)
	if n == 0 || owner[n-1] != '.' || !p.originSet {
		return owner, false
	}
	abs := owner[:n-1]
	o := p.origin
	switch {
	case len(o) == 0:
		return abs, false
	case bytes.EqualFold(abs, o):
		return nil, true
	case len(abs) > len(o) && abs[len(abs)-len(o)-1] == '.' && bytes.EqualFold(abs[len(abs)-len(o):], o):
		return abs[:len(abs)-len(o)-1], false
	}
	return abs, false
}

// hasRPZTrigger reports whether one of name's labels is an rpzTriggers
// label.
func hasRPZTrigger(name []byte) bool {
	for len(name) > 0 {
		label := name
		if i := bytes.IndexByte(name, '.'); i >= 0 {
			label, name = name[:i], name[i+1:]
		} else {
			name = nil
		}
		if !hasPrefixFold(label, "rpz-") {
			continue
		}
		for _, t := range rpzTriggers {
			if equalFold(label, t) {
				return true
			}
		}
	}
	return false
}

// rrTypes are the record types a zone file line may carry. RPZ uses CNAME
// for its actions; the others are local data, SOA and NS.
var rrTypes = [...]string{
	"a", "aaaa", "cname", "dname", "ns", "soa", "txt", "mx", "ptr", "srv",
	"caa", "hinfo", "naptr", "svcb", "https", "ds", "dnskey", "rrsig", "nsec",
	"nsec3", "nsec3param", "tlsa", "sshfp", "loc", "spf", "rp", "afsdb", "cert", "uri",
}

// isRRType reports whether b names a record type: one of rrTypes or the
// generic "TYPEnnn".
func isRRType(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, t := range rrTypes {
		if equalFold(b, t) {
			return true
		}
	}
	if len(b) > 4 && hasPrefixFold(b, "type") {
		for _, c := range b[4:] {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	return false
}

// rrTypeField skips the optional TTL and class of a record (in either
// order) and returns its type and the rest of the line.
func rrTypeField(b []byte) (typ, rest []byte) {
	for i := 0; i < 3; i++ {
		f, r := nextZoneField(b)
		if len(f) == 0 {
			return nil, nil
		}
		if i < 2 && (isTTL(f) || isClass(f)) {
			b = r
			continue
		}
		return f, r
	}
	return nil, nil
}

// isTTL reports whether b is a zone file TTL: digits with optional BIND
// unit letters ("3600", "1h30m").
func isTTL(b []byte) bool {
	if len(b) == 0 || b[0] < '0' || b[0] > '9' {
		return false
	}
	for _, c := range b {
		switch lower(c) {
		case '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 's', 'm', 'h', 'd', 'w':
		default:
			return false
		}
	}
	return true
}

// isClass reports whether b is a DNS class mnemonic.
func isClass(b []byte) bool {
	return equalFold(b, "in") || equalFold(b, "ch") || equalFold(b, "hs") || equalFold(b, "cs")
}
