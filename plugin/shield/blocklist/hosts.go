package blocklist

import "bytes"

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
