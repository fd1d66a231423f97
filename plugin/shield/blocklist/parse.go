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

// comment counts the current line as one without a rule.
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
