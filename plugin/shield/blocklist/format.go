package blocklist

import (
	"bytes"
	"fmt"
	"strings"
)

// Format names a list syntax.
type Format uint8

// The list syntaxes Parse understands. FormatAuto is not a syntax: it asks
// the caller to run Detect on the head of the file first.
const (
	FormatAuto     Format = iota
	FormatHosts           // "0.0.0.0 name [name...]"
	FormatDomains         // "name", one per line
	FormatWildcard        // "*.name" (plain "name" too)
	FormatAdblock         // "||name^", "@@||name^"
	FormatDnsmasq         // "address=/name/0.0.0.0", "local=/name/", "server=/name/"
	FormatRPZ             // RPZ zone file: "name CNAME ."
)

var formatNames = [...]string{"auto", "hosts", "domains", "wildcard", "adblock", "dnsmasq", "rpz"}

// String returns the name ParseFormat accepts for f.
func (f Format) String() string {
	if int(f) < len(formatNames) {
		return formatNames[f]
	}
	return fmt.Sprintf("Format(%d)", uint8(f))
}

// ParseFormat returns the Format called s (case-insensitive). "auto" is
// accepted and means: detect the format from the file.
func ParseFormat(s string) (Format, error) {
	for i, n := range formatNames {
		if strings.EqualFold(s, n) {
			return Format(i), nil
		}
	}
	return FormatAuto, fmt.Errorf("unknown list format %q: want one of %s", s, strings.Join(formatNames[:], ", "))
}

// Detection limits. A list's header and first rules say what it is; the
// bytes after them add time, not certainty.
const (
	detectHead  = 64 << 10 // bytes of the file Detect looks at
	detectRules = 1000     // rule lines that take part in the vote
)

// Detect returns the format of the list whose first bytes are head (callers
// pass up to the first 64 KiB; more is ignored). Every rule line votes for
// the format whose syntax it uses; comment styles and headers that only one
// format uses ("!" and "[Adblock Plus]" for adblock, ";" and "$TTL" for
// RPZ) add weight. Bare names are valid in several formats: they count for
// adblock when the file has adblock comments, else for domains. With no
// votes at all Detect returns FormatDomains.
func Detect(head []byte) Format {
	if len(head) >= detectHead {
		// The file goes on: its last line here is probably cut, so leave
		// it out.
		head = head[:detectHead]
		if i := bytes.LastIndexAny(head, "\r\n"); i >= 0 {
			head = head[:i]
		}
	}
	var votes [len(formatNames)]int
	adblockHints, rules := 0, 0
	for len(head) > 0 && rules < detectRules {
		var line []byte
		line, head = cutLine(head)
		v, hint := classifyLine(line)
		switch {
		case hint == FormatAdblock:
			adblockHints++
		case hint == FormatRPZ:
			votes[FormatRPZ]++
		case v != FormatAuto:
			votes[v]++
			rules++
		}
	}
	if adblockHints > 0 {
		votes[FormatAdblock] += adblockHints + votes[FormatDomains]
	}
	best, bestVotes := FormatDomains, 0
	// Ties go to the earlier, more specific format in this order.
	for _, f := range [...]Format{FormatAdblock, FormatRPZ, FormatDnsmasq, FormatHosts, FormatWildcard, FormatDomains} {
		if votes[f] > bestVotes {
			best, bestVotes = f, votes[f]
		}
	}
	return best
}

// cutLine returns the first line of b and the rest after its terminator
// ("\n", "\r\n" or a lone "\r").
func cutLine(b []byte) (line, rest []byte) {
	for i, c := range b {
		switch c {
		case '\n':
			return b[:i], b[i+1:]
		case '\r':
			if i+1 < len(b) && b[i+1] == '\n' {
				return b[:i], b[i+2:]
			}
			return b[:i], b[i+1:]
		}
	}
	return b, nil
}

// classifyLine returns the format a line's syntax belongs to (vote), or
// the format a comment or directive hints at (hint). Both are FormatAuto
// for blank lines, plain "#" comments and lines no format explains.
func classifyLine(line []byte) (vote, hint Format) {
	line = trimSpace(trimBOM(line))
	if len(line) == 0 {
		return FormatAuto, FormatAuto
	}
	if bytes.HasPrefix(line, []byte("@@")) {
		return FormatAdblock, FormatAuto
	}
	switch line[0] {
	case '!':
		return FormatAuto, FormatAdblock
	case '[':
		if line[len(line)-1] == ']' {
			return FormatAuto, FormatAdblock
		}
	case ';', '$':
		return FormatAuto, FormatRPZ
	case '#':
		if isCosmetic(line) {
			return FormatAdblock, FormatAuto
		}
		return FormatAuto, FormatAuto
	case '|', '/':
		return FormatAdblock, FormatAuto
	}
	if hasPrefixFold(line, "address=") || hasPrefixFold(line, "server=") || hasPrefixFold(line, "local=") {
		return FormatDnsmasq, FormatAuto
	}
	if i := bytes.IndexByte(line, '#'); i > 0 {
		if isCosmetic(line[i:]) {
			return FormatAdblock, FormatAuto
		}
		line = trimSpace(line[:i])
	}
	first, rest := nextField(line)
	if len(rest) > 0 {
		if IsIPLiteral(first) {
			return FormatHosts, FormatAuto
		}
		if typ, _ := rrTypeField(rest); isRRType(first) || isRRType(typ) {
			return FormatRPZ, FormatAuto
		}
		return FormatAuto, FormatAuto
	}
	switch {
	case bytes.HasPrefix(first, []byte("*.")):
		return FormatWildcard, FormatAuto
	case bytes.IndexByte(first, '^') >= 0 || bytes.IndexByte(first, '$') >= 0:
		return FormatAdblock, FormatAuto
	}
	return FormatDomains, FormatAuto
}

// isCosmetic reports whether b, which starts with '#', opens an adblock
// element-hiding or scriptlet rule ("##", "#@#", "#?#", "#$#", "#%#").
func isCosmetic(b []byte) bool {
	if len(b) < 2 || b[0] != '#' {
		return false
	}
	switch b[1] {
	case '#', '@', '?', '$', '%':
		return true
	}
	return false
}

// hasPrefixFold reports whether b starts with the ASCII string prefix,
// ignoring case.
func hasPrefixFold(b []byte, prefix string) bool {
	if len(b) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if lower(b[i]) != prefix[i] {
			return false
		}
	}
	return true
}

// equalFold reports whether b equals the lower-case ASCII string s, ignoring
// case.
func equalFold(b []byte, s string) bool {
	return len(b) == len(s) && hasPrefixFold(b, s)
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}
