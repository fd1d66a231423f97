package blocklist

import "bytes"

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
