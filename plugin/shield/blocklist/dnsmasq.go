package blocklist

import "bytes"

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
