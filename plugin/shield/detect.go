package shield

import (
	"context"
	"net/netip"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"
)

// Detection hooks. They pass every query on until the detection engine is
// built (the detection issue).

// parseDetectOption parses a detection option of the shield block.
// handled is false when opt is not one.
func parseDetectOption(c *caddy.Controller, s *Shield, opt string, args []string) (handled bool, err error) {
	return false, nil
}

// serveDetect handles a query that no list decided: sticky verdicts and
// scoring, then the pass to the next plugin.
func (s *Shield) serveDetect(ctx context.Context, server string, w dns.ResponseWriter, r *dns.Msg, name []byte) (int, error) {
	countQuery(server, "pass")
	return plugin.NextOrFailure(s.Name(), s.Next, ctx, w, r)
}

// explainDetect returns what the detectors would say about a query for
// name from client, without recording or changing any state (for the
// management API's explain endpoint).
func (s *Shield) explainDetect(name string, client netip.Addr) (score int, reasons []string, sticky bool) {
	return 0, nil, false
}
