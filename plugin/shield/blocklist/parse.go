package blocklist

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Stats counts what Parse found in a list.
type Stats struct {
	Lines       int // lines read, comments included
	Entries     int // calls to Sink.Add
	Comments    int // lines without a rule: blank lines, comments, headers, zone directives and SOA/NS records, hosts lines naming only local hosts
	Invalid     int // rules that do not parse, and lines longer than 64 KiB
	Unsupported int // well-formed rules that a name match cannot express: URL paths, regexes, cosmetic rules, modifiers, IP addresses, forwarding, RPZ local data and non-QNAME triggers
	// Samples holds up to five rejected lines with line number and reason,
	// for example `line 12: "garbage here": not a domain name`. Invalid
	// lines take precedence over unsupported ones.
	Samples []string
}

// Limits of the line reader and of the samples kept in Stats.
const (
	maxLineLen = 64 << 10 // longest line Parse reads; a longer one counts as Invalid
	initialBuf = 8 << 10  // first size of the line buffer, which grows to maxLineLen+1 for long lines
	maxSamples = 5
	sampleClip = 80 // bytes of a rejected line quoted in a sample
)

// Reasons quoted in Stats.Samples. Rejections are counted per rule, so a
// hosts or dnsmasq line naming several bad hosts counts each of them.
const (
	reasonTooLong     = "line longer than 64 KiB"
	reasonName        = "not a domain name"
	reasonFields      = "more than one name on the line"
	reasonNoAddress   = "hosts line without an address"
	reasonBadAddress  = "hosts line without a valid address"
	reasonNoName      = "hosts line without a name"
	reasonIP          = "IP address, not a name"
	reasonCIDR        = "address range, not a name"
	reasonWildcard    = "wildcard inside a name"
	reasonRegex       = "regular expression"
	reasonCosmetic    = "cosmetic (element hiding) rule"
	reasonModifier    = "modifier DNS cannot express"
	reasonEmptyMod    = "empty modifier"
	reasonURL         = "URL path, port or scheme"
	reasonSubstring   = "substring match, not a domain"
	reasonDnsmasqOpt  = "dnsmasq option that does not block"
	reasonForward     = "forwards to a server, does not block"
	reasonAllNames    = "matches every name"
	reasonUnqualified = "matches unqualified names"
	reasonSlashes     = "domain list not closed by '/'"
	reasonTarget      = "address is not an IP"
	reasonDirective   = "zone directive not supported"
	reasonNoOwner     = "record without an owner name"
	reasonNoType      = "record without a type"
	reasonBadType     = "unknown record type"
	reasonApex        = "record at the zone apex"
	reasonTrigger     = "RPZ trigger other than QNAME"
	reasonLocalData   = "RPZ local data"
	reasonTCPOnly     = "RPZ rpz-tcp-only action"
	reasonNoTarget    = "CNAME without a target"
	reasonMultiLine   = "multi-line RPZ rule"
	reasonExtra       = "data after the CNAME target"
	reasonOrigin      = "bad $ORIGIN"
)

// Parse reads a list in format f from r and passes every entry to sink.
// Every entry blocks its name and all names below it, except where the
// format says otherwise (adblock "|name^" and exceptions, RPZ). It streams:
// memory use does not grow with the list, and the common path does not
// allocate per line. Lines may end in "\n", "\r\n" or "\r"; a UTF-8 byte
// order mark is ignored. Bad lines are counted in Stats, never fatal: Parse
// returns an error only when r fails or f is FormatAuto (run Detect first)
// or unknown. The Stats returned with a read error cover the lines read.
func Parse(r io.Reader, f Format, sink Sink) (Stats, error) {
	p := &parser{sink: sink}
	var rule func([]byte)
	switch f {
	case FormatHosts:
		rule = p.hostsLine
	case FormatDomains, FormatWildcard:
		rule = p.domainsLine
	case FormatAdblock:
		rule = p.adblockLine
	case FormatDnsmasq:
		rule = p.dnsmasqLine
	case FormatRPZ:
		rule = p.rpzLine
	case FormatAuto:
		return Stats{}, errors.New("list format auto: call Detect first")
	default:
		return Stats{}, fmt.Errorf("unknown list format %d", uint8(f))
	}
	lr := &lineReader{r: r, buf: make([]byte, initialBuf), nl: -1}
	for {
		line, long, ok := lr.next()
		if !ok {
			break
		}
		p.st.Lines++
		p.cur = line
		if long {
			p.reject(false, reasonTooLong)
			continue
		}
		line = trimBOM(line)
		p.cur = line
		rule(line)
	}
	if lr.err != io.EOF {
		return p.st, lr.err
	}
	return p.st, nil
}

// parser holds the state of one Parse call.
type parser struct {
	sink Sink
	st   Stats
	cur  []byte // the line being parsed, quoted in samples

	// sampleUnsupported[i] reports whether st.Samples[i] is an unsupported
	// rule, which an invalid one may displace.
	sampleUnsupported [maxSamples]bool

	// RPZ zone state.
	origin    []byte // lower case, no trailing dot; empty for the root
	originSet bool
	owner     []byte // the last owner name, for records that leave it out
	parens    int    // '(' still open from earlier lines
}

func (p *parser) comment() { p.st.Comments++ }

// reject counts the current line as unsupported or invalid and keeps a
// sample of it while there is room.
func (p *parser) reject(unsupported bool, reason string) {
	if unsupported {
		p.st.Unsupported++
	} else {
		p.st.Invalid++
	}
	n := len(p.st.Samples)
	if n == maxSamples {
		if unsupported {
			return
		}
		// Make room by dropping the latest unsupported sample, if any.
		i := n - 1
		for i >= 0 && !p.sampleUnsupported[i] {
			i--
		}
		if i < 0 {
			return
		}
		p.st.Samples = append(p.st.Samples[:i], p.st.Samples[i+1:]...)
		copy(p.sampleUnsupported[i:], p.sampleUnsupported[i+1:])
		n--
	}
	text, more := p.cur, ""
	if len(text) > sampleClip {
		text, more = text[:sampleClip], "..."
	}
	kind := ""
	if unsupported {
		kind = "unsupported: "
	}
	p.st.Samples = append(p.st.Samples, fmt.Sprintf("line %d: %q%s: %s%s", p.st.Lines, text, more, kind, reason))
	p.sampleUnsupported[n] = unsupported
}

// addName normalises tok and adds it to the sink, or counts why not.
func (p *parser) addName(tok []byte, self, below Action) {
	name, ok := Normalize(tok)
	if !ok {
		switch {
		case IsIPLiteral(name):
			p.reject(true, reasonIP)
		case isCIDR(name):
			p.reject(true, reasonCIDR)
		case bytes.IndexByte(name, '*') >= 0:
			p.reject(true, reasonWildcard)
		default:
			p.reject(false, reasonName)
		}
		return
	}
	p.sink.Add(name, self, below)
	p.st.Entries++
}

// hostsLine parses "IP name [name...] [# comment]".
func (p *parser) hostsLine(line []byte) {
	line = trimSpace(cutHash(line))
	if len(line) == 0 {
		p.comment()
		return
	}
	addr, rest := nextField(line)
	if !IsIPLiteral(addr) {
		if len(rest) == 0 {
			p.reject(false, reasonNoAddress)
		} else {
			p.reject(false, reasonBadAddress)
		}
		return
	}
	if len(rest) == 0 {
		p.reject(false, reasonNoName)
		return
	}
	before := p.st.Entries + p.st.Invalid + p.st.Unsupported
	for len(rest) > 0 {
		var tok []byte
		tok, rest = nextField(rest)
		if isLocalHostName(tok) {
			continue
		}
		p.addName(tok, ActBlock, ActBlock)
	}
	if p.st.Entries+p.st.Invalid+p.st.Unsupported == before {
		p.comment() // only local names, such as "127.0.0.1 localhost"
	}
}

// localHostNames are the names system hosts files give to loopback and
// link-local addresses. Lists copy those lines; they are not block rules.
var localHostNames = [...]string{
	"localhost", "localhost.localdomain", "local", "broadcasthost",
	"localhost4", "localhost4.localdomain4", "localhost6", "localhost6.localdomain6",
	"0.0.0.0",
}

// isLocalHostName reports whether tok is one of localHostNames or an
// "ip6-" loopback name such as ip6-localhost, ignoring case and a trailing
// dot.
func isLocalHostName(tok []byte) bool {
	if n := len(tok); n > 0 && tok[n-1] == '.' {
		tok = tok[:n-1]
	}
	if hasPrefixFold(tok, "ip6-") && bytes.IndexByte(tok, '.') < 0 {
		return true
	}
	for _, s := range localHostNames {
		if equalFold(tok, s) {
			return true
		}
	}
	return false
}

// domainsLine parses one name per line ("name", "*.name"), with "#" and "!"
// comments and inline "# comments".
func (p *parser) domainsLine(line []byte) {
	line = trimSpace(cutHash(line))
	if len(line) == 0 || line[0] == '!' {
		p.comment()
		return
	}
	tok, rest := nextField(line)
	if len(rest) > 0 {
		p.reject(false, reasonFields)
		return
	}
	if bytes.HasPrefix(tok, []byte("*.")) {
		tok = tok[2:]
	}
	p.addName(tok, ActBlock, ActBlock)
}

// adblockLine parses the domain subset of adblock syntax (Adblock Plus,
// uBlock Origin, AdGuard): "||name^", "|name^", "@@" exceptions, plain
// names, and the modifiers in acceptedModifiers.
func (p *parser) adblockLine(line []byte) {
	line = trimSpace(line)
	if len(line) == 0 || line[0] == '!' || line[0] == '[' && line[len(line)-1] == ']' {
		p.comment()
		return
	}
	if i := bytes.IndexByte(line, '#'); i >= 0 {
		switch {
		case isCosmetic(line[i:]):
			p.reject(true, reasonCosmetic)
			return
		case i == 0:
			p.comment()
			return
		case isSpace(line[i-1]):
			line = trimSpace(line[:i]) // "||name^ # comment"
		}
	}
	self, below := ActBlock, ActBlock
	if bytes.HasPrefix(line, []byte("@@")) {
		self, below = ActAllow, ActAllow
		line = line[2:]
	}
	if len(line) > 0 && line[0] == '/' {
		p.reject(true, reasonRegex)
		return
	}
	if i := bytes.IndexByte(line, '$'); i >= 0 {
		switch checkModifiers(line[i+1:]) {
		case modUnsupported:
			p.reject(true, reasonModifier)
			return
		case modEmpty:
			p.reject(false, reasonEmptyMod)
			return
		}
		line = line[:i]
	}
	switch {
	case bytes.HasPrefix(line, []byte("||")):
		line = line[2:]
		line = bytes.TrimSuffix(line, []byte("|"))
		line = bytes.TrimSuffix(line, []byte("^"))
		if bytes.HasPrefix(line, []byte("*.")) {
			line = line[2:]
		}
	case bytes.HasPrefix(line, []byte("|")):
		// "|name^": the name exactly, nothing below it.
		line = line[1:]
		end := len(line)
		line = bytes.TrimSuffix(line, []byte("|"))
		line = bytes.TrimSuffix(line, []byte("^"))
		if len(line) == end {
			p.reject(true, reasonSubstring) // "|name" is a prefix match
			return
		}
		below = ActNone
	default:
		if bytes.IndexAny(line, "^|") >= 0 {
			p.reject(true, reasonSubstring)
			return
		}
	}
	if bytes.IndexAny(line, "/:") >= 0 {
		p.reject(true, reasonURL)
		return
	}
	if bytes.IndexByte(line, '^') >= 0 {
		p.reject(true, reasonURL)
		return
	}
	p.addName(line, self, below)
}

// Results of checkModifiers.
const (
	modOK = iota
	modUnsupported
	modEmpty
)

// acceptedModifiers change nothing about which names a rule blocks when
// the rule is applied to DNS queries, so rules carrying only these apply.
var acceptedModifiers = [...]string{"important", "all", "doc", "document", "third-party", "3p", "popup"}

// checkModifiers reports whether the comma-separated adblock modifiers in
// mods all leave the rule's DNS meaning unchanged.
func checkModifiers(mods []byte) int {
	if len(mods) == 0 {
		return modEmpty
	}
	for len(mods) > 0 {
		m := mods
		if i := bytes.IndexByte(mods, ','); i >= 0 {
			m, mods = mods[:i], mods[i+1:]
		} else {
			mods = nil
		}
		m = trimSpace(m)
		if len(m) == 0 {
			return modEmpty
		}
		known := false
		for _, a := range acceptedModifiers {
			if equalFold(m, a) {
				known = true
				break
			}
		}
		if !known {
			return modUnsupported
		}
	}
	return modOK
}

// dnsmasqLine parses "address=/name[/name...]/[target]",
// "server=/name/" and "local=/name/".
func (p *parser) dnsmasqLine(line []byte) {
	line = trimSpace(line)
	if len(line) == 0 || line[0] == '#' {
		p.comment()
		return
	}
	if i := indexInlineHash(line); i >= 0 {
		line = trimSpace(line[:i])
	}
	eq := bytes.IndexByte(line, '=')
	if eq < 0 {
		p.reject(true, reasonDnsmasqOpt)
		return
	}
	key, val := trimSpace(line[:eq]), trimSpace(line[eq+1:])
	address := equalFold(key, "address")
	if !address && !equalFold(key, "server") && !equalFold(key, "local") {
		p.reject(true, reasonDnsmasqOpt)
		return
	}
	if len(val) == 0 || val[0] != '/' {
		if address {
			p.reject(false, reasonSlashes)
		} else {
			p.reject(true, reasonForward) // "server=1.2.3.4": the default upstream
		}
		return
	}
	last := bytes.LastIndexByte(val, '/')
	if last == 0 {
		p.reject(false, reasonSlashes)
		return
	}
	names, target := val[1:last], val[last+1:]
	if len(names) == 0 {
		p.reject(true, reasonUnqualified) // "//": names without a dot
		return
	}
	switch {
	case address:
		// Empty (NXDOMAIN), "#" (the null address) or an address: all block.
		if len(target) > 0 && !(len(target) == 1 && target[0] == '#') && !IsIPLiteral(target) {
			p.reject(false, reasonTarget)
			return
		}
	case len(target) > 0:
		p.reject(true, reasonForward)
		return
	}
	for len(names) > 0 {
		name := names
		if i := bytes.IndexByte(names, '/'); i >= 0 {
			name, names = names[:i], names[i+1:]
		} else {
			names = nil
		}
		switch {
		case len(name) == 0:
			p.reject(true, reasonUnqualified) // "//": names without a dot
		case len(name) == 1 && name[0] == '#':
			p.reject(true, reasonAllNames)
		default:
			p.addName(name, ActBlock, ActBlock)
		}
	}
}

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

func isClass(b []byte) bool {
	return equalFold(b, "in") || equalFold(b, "ch") || equalFold(b, "hs") || equalFold(b, "cs")
}

// isCIDR reports whether b is an address prefix such as "10.0.0.0/8".
func isCIDR(b []byte) bool {
	i := bytes.IndexByte(b, '/')
	if i <= 0 || i == len(b)-1 || !IsIPLiteral(b[:i]) {
		return false
	}
	for _, c := range b[i+1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// cutHash returns line up to its first '#', which starts a comment in the
// hosts, domains and wildcard formats (a name never contains '#').
func cutHash(line []byte) []byte {
	if i := bytes.IndexByte(line, '#'); i >= 0 {
		return line[:i]
	}
	return line
}

// indexInlineHash returns the index of the first '#' that follows white
// space, or -1.
func indexInlineHash(line []byte) int {
	for i := 1; i < len(line); i++ {
		if line[i] == '#' && isSpace(line[i-1]) {
			return i
		}
	}
	return -1
}

var bom = []byte{0xEF, 0xBB, 0xBF}

// trimBOM removes a UTF-8 byte order mark from the start of line.
func trimBOM(line []byte) []byte {
	return bytes.TrimPrefix(line, bom)
}

// spaceTab and zoneSepTab mark the bytes that separate fields: ASCII white
// space, and in zone files also parentheses.
var spaceTab, zoneSepTab = func() (sp, zs [256]bool) {
	for _, c := range []byte(" \t\v\f\r\n") {
		sp[c], zs[c] = true, true
	}
	zs['('], zs[')'] = true, true
	return sp, zs
}()

func isSpace(c byte) bool { return spaceTab[c] }

// trimSpace removes ASCII white space from both ends of b.
func trimSpace(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && isSpace(b[i]) {
		i++
	}
	for j > i && isSpace(b[j-1]) {
		j--
	}
	return b[i:j]
}

// nextField returns the first white-space separated field of b and the
// rest of b after the white space that follows it.
func nextField(b []byte) (field, rest []byte) {
	return splitField(b, &spaceTab)
}

// nextZoneField is nextField for zone files, where parentheses separate
// fields too.
func nextZoneField(b []byte) (field, rest []byte) {
	return splitField(b, &zoneSepTab)
}

func splitField(b []byte, sep *[256]bool) (field, rest []byte) {
	i := 0
	for i < len(b) && sep[b[i]] {
		i++
	}
	j := i
	for j < len(b) && !sep[b[j]] {
		j++
	}
	field = b[i:j]
	for j < len(b) && sep[b[j]] {
		j++
	}
	return field, b[j:]
}

// lineReader splits a stream into lines ending in "\n", "\r\n" or a lone
// "\r", reusing one buffer. Unlike bufio.Scanner it survives a line longer
// than its buffer: it skips the rest of that line and reports it as long.
type lineReader struct {
	r          io.Reader
	buf        []byte
	start, end int   // unread data is buf[start:end]
	nl         int   // index in buf of the next '\n' at or after start, or -1
	noNL       int   // buf[start:noNL] holds no '\n' (valid while nl < start)
	crSkip     bool  // a line ended in '\r' at the end of the data: drop a '\n' that follows
	err        error // the first read error; io.EOF at the end
	long       [sampleClip]byte
	longLen    int
}

// next returns the next line without its terminator; it is valid until the
// following call. long reports a line that did not fit in the buffer: line
// then holds only its first bytes. ok is false when the input is used up.
func (lr *lineReader) next() (line []byte, long, ok bool) {
	discarding := false
	empty := 0
	for {
		if lr.crSkip && lr.start < lr.end {
			lr.crSkip = false
			if lr.buf[lr.start] == '\n' {
				lr.start++
			}
		}
		if lr.nl < lr.start {
			from := max(lr.start, lr.noNL)
			if i := bytes.IndexByte(lr.buf[from:lr.end], '\n'); i >= 0 {
				lr.nl = from + i
			} else {
				lr.nl, lr.noNL = -1, lr.end
			}
		}
		lim := lr.end
		if lr.nl >= 0 {
			lim = lr.nl
		}
		eol := -1
		if i := bytes.IndexByte(lr.buf[lr.start:lim], '\r'); i >= 0 {
			eol = lr.start + i
		} else if lr.nl >= 0 {
			eol = lr.nl
		}
		if eol >= 0 {
			line = lr.buf[lr.start:eol]
			lr.start = eol + 1
			if lr.buf[eol] == '\r' {
				if lr.start < lr.end {
					if lr.buf[lr.start] == '\n' {
						lr.start++
					}
				} else {
					lr.crSkip = true
				}
			}
			if discarding {
				return lr.long[:lr.longLen], true, true
			}
			return line, false, true
		}
		if lr.err != nil {
			line = lr.buf[lr.start:lr.end]
			lr.start = lr.end
			switch {
			case discarding:
				return lr.long[:lr.longLen], true, true
			case len(line) > 0:
				return line, false, true
			}
			return nil, false, false
		}
		// No complete line: make room, then read.
		if lr.start > 0 {
			lr.end = copy(lr.buf, lr.buf[lr.start:lr.end])
			lr.noNL = max(lr.noNL-lr.start, 0)
			lr.start = 0
		}
		if lr.end == len(lr.buf) && len(lr.buf) < maxLineLen+1 {
			// Grow for a long line, up to the limit.
			buf := make([]byte, min(2*len(lr.buf), maxLineLen+1))
			lr.end = copy(buf, lr.buf[:lr.end])
			lr.buf = buf
		}
		if lr.end == len(lr.buf) {
			if !discarding {
				discarding = true
				lr.longLen = copy(lr.long[:], lr.buf)
			}
			lr.end, lr.noNL = 0, 0
		}
		n, err := lr.r.Read(lr.buf[lr.end:])
		lr.end += n
		if err != nil {
			lr.err = err
		}
		if n == 0 && err == nil {
			if empty++; empty > 100 {
				lr.err = io.ErrNoProgress
			}
		} else {
			empty = 0
		}
	}
}
