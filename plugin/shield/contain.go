package shield

import (
	"context"
	"net/netip"

	"github.com/coredns/caddy"
	"github.com/miekg/dns"
)

// Containment hooks. They are no-ops until client quarantine, emergency
// blocks and escalation are built (the containment issue).

// parseContainOption parses a containment option of the shield block.
// handled is false when opt is not one.
func parseContainOption(c *caddy.Controller, s *Shield, opt string, args []string, root string) (handled bool, err error) {
	return false, nil
}

// serveContain answers a query from a quarantined client, or for a name
// under an emergency block. done reports whether it answered.
func (s *Shield) serveContain(ctx context.Context, server string, w dns.ResponseWriter, r *dns.Msg, name []byte) (done bool, rc int, err error) {
	return false, 0, nil
}

// noteBlock tells the escalation ladder that client was blocked: kind is
// the list name for a list hit, or the detector name ("tunnel", "dga", ...)
// for a detection. name is the query name, reasons the detector's reasons.
// It must not block or allocate on the common path.
func (s *Shield) noteBlock(client netip.Addr, kind, name string, reasons []string) {}
