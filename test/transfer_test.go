package test

import (
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestZoneTransferRefused: AXFR and IXFR, over UDP and over TCP, are
// answered REFUSED by shield (with EDE 21 when the query has EDNS0) and
// never reach the upstream, which would otherwise be asked for them.
func TestZoneTransferRefused(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	list := writeFile(t, dir, "c2.txt", "evil.test\n")
	r := startCoreDNS(t, shieldCorefile(up, "", "blocklist c2 "+list+"\naudit off"))
	for _, network := range []string{"udp", "tcp"} {
		addr := r.udp
		if network == "tcp" {
			addr = r.tcp
		}
		for _, qtype := range []uint16{dns.TypeAXFR, dns.TypeIXFR} {
			for _, edns := range []bool{true, false} {
				m, err := exchange(network, addr, "example.org.", qtype, edns, 2*time.Second)
				if err != nil {
					t.Fatalf("%s over %s: %v", dns.TypeToString[qtype], network, err)
				}
				if m.Rcode != dns.RcodeRefused {
					t.Errorf("%s over %s (EDNS0 %v): rcode %s, want REFUSED", dns.TypeToString[qtype], network, edns, dns.RcodeToString[m.Rcode])
				}
				e, ok := ede(m)
				switch {
				case edns && (!ok || e.InfoCode != dns.ExtendedErrorCodeNotSupported):
					t.Errorf("%s over %s: EDE %v, want 21 (Not Supported)", dns.TypeToString[qtype], network, e)
				case !edns && m.IsEdns0() != nil:
					t.Errorf("%s over %s without EDNS0: OPT record in the reply", dns.TypeToString[qtype], network)
				}
			}
		}
	}
	// The upstream works, and saw none of the transfers.
	if m := ask(t, "udp", r.udp, "example.org.", dns.TypeA); !forwarded(m) {
		t.Fatalf("A example.org. not forwarded: %v", m)
	}
	if n := up.count("example.org."); n != 1 {
		t.Errorf("the upstream saw example.org. %d times, want once (the A query only)", n)
	}
}
