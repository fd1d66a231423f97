package score

import (
	"bytes"
)

// DefaultExempt are the suffixes exempt from scoring by default
// (DETECTION.md "Known false-positive sources"). Names under them, names
// with a label starting with '_' (service labels, DKIM, trust-anchor
// telemetry), PTR queries and single-label names are not scored.
var DefaultExempt = []string{
	// reverse zones and special-use names
	"arpa", "local", "localhost", "internal",
	"svc.cluster.local", "cluster.local",
	// antivirus and reputation lookups
	"sophosxl.net", "avqs.mcafee.com", "avts.mcafee.com", "gti.mcafee.com",
	// DNSBLs
	"zen.spamhaus.org", "sbl.spamhaus.org", "xbl.spamhaus.org", "pbl.spamhaus.org", "dbl.spamhaus.org",
	"zen.dq.spamhaus.net", "bl.spamcop.net", "b.barracudacentral.org", "multi.surbl.org",
	"multi.uribl.com", "dnsbl.sorbs.net", "cbl.abuseat.org",
	// CDNs and clouds
	"googlevideo.com", "gvt1.com", "gvt2.com", "cloudfront.net", "akamaiedge.net", "akamai.net",
	"akamaihd.net", "edgekey.net", "edgesuite.net", "trafficmanager.net", "azurefd.net",
	"azureedge.net", "amazonaws.com", "elb.amazonaws.com",
	// telemetry
	"events.data.microsoft.com", "push.apple.com", "ls.apple.com",
}

// exemptQuery reports whether a query is exempt by its type or a label of
// its lower-case name: PTR, or a label starting with '_'. Such a query is
// not scored, but a sticky verdict on its registered domain still blocks
// it: a tunnel must not get past its verdict by switching to PTR queries
// or a '_' label.
func exemptQuery(name []byte, qtype uint16) bool {
	if qtype == 12 { // PTR
		return true
	}
	if len(name) > 0 && name[0] == '_' {
		return true
	}
	return bytes.Contains(name, underscoreLabel)
}

// exempted reports whether the lower-case name is under an exempt suffix.
func (e *Engine) exempted(name []byte) bool {
	// Only suffixes of up to exemptLabels labels and exemptLen bytes can
	// match an exemption.
	labels := 0
	stop := len(name) - e.exemptLen - 1
	for i := len(name) - 1; i >= -1 && i >= stop && labels < e.exemptLabels; i-- {
		if i >= 0 && name[i] != '.' {
			continue
		}
		labels++
		if _, ok := e.exempt[string(name[i+1:])]; ok {
			return true
		}
	}
	return false
}

var underscoreLabel = []byte("._")
