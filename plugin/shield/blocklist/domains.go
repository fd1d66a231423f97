package blocklist

import "bytes"

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
