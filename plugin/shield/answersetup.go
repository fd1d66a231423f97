package shield

import (
	"fmt"

	"github.com/coredns/caddy"
	"github.com/dnsshield/shield/plugin/shield/blocklist"
)

// parseAnswerOption parses the options of the answer stage (answer.go):
//
//	rebind_protect [DOMAIN...]
//
// iplist is parsed with the other lists in setup.go. It reports whether
// opt was one of them.
func parseAnswerOption(c *caddy.Controller, s *Shield, opt string, args []string) (bool, error) {
	switch opt {
	case "rebind_protect":
		if s.answer != nil && s.answer.rebind {
			return true, c.Err("rebind_protect given twice")
		}
		a := s.answer
		if a == nil {
			a = &answerStage{}
			s.answer = a
		}
		a.rebind = true
		for _, d := range args {
			name, ok := blocklist.Normalize([]byte(d))
			if !ok {
				return true, c.Errf("rebind_protect: %q is not a domain name", d)
			}
			a.rebindAllow = append(a.rebindAllow, string(name))
		}
		return true, nil
	}
	return false, nil
}

// parseIPListFormat parses the FORMAT of an iplist: plain (one address or
// CIDR a line) or hosts (the address column of a hosts file).
func parseIPListFormat(v string) (blocklist.Format, error) {
	switch v {
	case "plain":
		return blocklist.FormatDomains, nil
	case "hosts":
		return blocklist.FormatHosts, nil
	case "auto":
		return blocklist.FormatAuto, nil
	}
	return blocklist.FormatAuto, fmt.Errorf("unknown iplist format %q: want plain or hosts", v)
}
