package blocklist

import "bytes"

// Limits from RFC 1035 section 2.3.4, for a name written without its
// trailing dot.
const (
	maxNameLen  = 253
	maxLabelLen = 63
)

// nameByte maps each byte to its lower-case form when it may appear in a
// name ('.' for the label separator), and to 0 when it may not.
var nameByte = func() (t [256]byte) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = byte(c), byte(c)
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c)
	}
	t['-'], t['_'], t['.'] = '-', '_', '.'
	return t
}()

// Normalize lower-cases b in place, strips one trailing dot and reports
// whether the result is a domain name the matcher can hold: at most 253
// bytes, labels of 1 to 63 bytes, only the bytes a-z, 0-9, '-' and '_'.
// IPv4 and IPv6 literals are not names; see IsIPLiteral. The returned
// slice shares b's memory. Normalize does not allocate.
func Normalize(b []byte) ([]byte, bool) {
	if n := len(b); n > 0 && b[n-1] == '.' {
		b = b[:n-1]
	}
	if len(b) == 0 || len(b) > maxNameLen {
		return b, false
	}
	label := 0
	for i, c := range b {
		switch l := nameByte[c]; l {
		case 0:
			return b, false
		case '.':
			if label == 0 {
				return b, false
			}
			label = 0
			continue
		default:
			if l != c {
				b[i] = l
			}
		}
		label++
		if label > maxLabelLen {
			return b, false
		}
	}
	if label == 0 {
		return b, false
	}
	if isIPv4(b) {
		return b, false
	}
	return b, true
}

// IsIPLiteral reports whether b is an IPv4 address in dotted-decimal form
// or an IPv6 address (with an optional zone). List parsers use it to count
// address entries as unsupported rather than as garbage. It does not
// allocate.
func IsIPLiteral(b []byte) bool {
	return isIPv4(b) || isIPv6(b)
}

// isIPv4 reports whether b is four decimal octets (0-255) separated by
// dots. Leading zeros are accepted: such a string is an address to most
// resolvers and never a useful domain.
func isIPv4(b []byte) bool {
	parts, val, digits := 0, 0, 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			val = val*10 + int(c-'0')
			digits++
			if digits > 3 || val > 255 {
				return false
			}
		case c == '.':
			if digits == 0 {
				return false
			}
			parts++
			val, digits = 0, 0
		default:
			return false
		}
	}
	return parts == 3 && digits > 0
}

// isIPv6 reports whether b is an IPv6 address in RFC 4291 text form: up to
// eight groups of 1-4 hex digits, at most one "::", an optional trailing
// dotted IPv4 part and an optional "%zone".
func isIPv6(b []byte) bool {
	if i := bytes.IndexByte(b, '%'); i >= 0 {
		if i == len(b)-1 {
			return false
		}
		b = b[:i]
	}
	if len(b) < 2 {
		return false
	}
	groups := 0
	compressed := false
	i := 0
	if b[0] == ':' {
		if b[1] != ':' {
			return false
		}
		compressed = true
		i = 2
	}
	for i < len(b) {
		// One group: hex digits up to the next ':' or the end.
		j := i
		for j < len(b) && j-i <= 4 && isHex(b[j]) {
			j++
		}
		if j < len(b) && b[j] == '.' {
			// Embedded IPv4 must be the last part and counts as two groups.
			if !isIPv4(b[i:]) {
				return false
			}
			groups += 2
			i = len(b)
			break
		}
		if j == i || j-i > 4 {
			return false
		}
		groups++
		if j == len(b) {
			i = j
			break
		}
		if b[j] != ':' {
			return false
		}
		j++
		if j < len(b) && b[j] == ':' {
			if compressed {
				return false
			}
			compressed = true
			j++
		} else if j == len(b) {
			// A single trailing ':' ends nothing.
			return false
		}
		i = j
	}
	if compressed {
		return groups <= 7
	}
	return groups == 8
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
